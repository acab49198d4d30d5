/* cmd-batch.c — "moactl batch IN -o OUT": every line of IN asked of moad,
 * a bounded number at a time (libcurl multi, one easy handle per line in
 * flight), retried with backoff when the failure is worth retrying, and
 * answered in OUT in the OpenAI Batch API output format. Owns the input
 * reader (JSONL or one question per line), the output file (one write(2)
 * and one fdatasync(2) per line, so OUT only ever ends in whole lines or a
 * torn last line that --resume cuts away), the progress display and the
 * CSV export. */
#include <curl/curl.h>
#include <fcntl.h>
#include <getopt.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "utf8.h"
#include "moactl.h"

#define BATCH_MAX_LINE (1024U * 1024U) /* bytes of one input line */
#define BATCH_MAX_LINES 100000U        /* non-blank lines of one input file */
#define BATCH_MAX_CUSTOM_ID 512U       /* bytes of one custom_id */
#define BATCH_DEFAULT_JOBS 4U
#define BATCH_MAX_JOBS 64U
#define BATCH_DEFAULT_ATTEMPTS 3U
#define BATCH_MAX_ATTEMPTS 10U
#define BATCH_DEFAULT_TIMEOUT_SEC 300L
#define BATCH_CONNECT_TIMEOUT_SEC 10L
#define BATCH_BACKOFF_FIRST_MSEC 500ULL /* doubled for every further attempt */
#define BATCH_MAX_WAIT_SEC 60ULL        /* cap of Retry-After and of the backoff */
#define BATCH_PLAIN_PROGRESS_SEC 5ULL   /* progress lines when stderr is no terminal */
#define BATCH_TTY_PROGRESS_MSEC 200ULL  /* redraws of the progress bar */
#define BATCH_MAX_SHOWN_FAILURES 20U    /* per-line failures echoed on stderr */
#define BATCH_PATH "/v1/chat/completions"

typedef struct BatchOptions {
        const char *input;
        const char *output;
        const char *csv;
        const char *socket_path;
        const char *model;
        long timeout_sec;
        unsigned jobs;
        unsigned attempts;
        int resume;
        int quiet;
        int server;     /* --server: run as a job of moad (cmd-jobs.c) */
        int local_only; /* an option --server has no use for was given */
} BatchOptions;

/* One input line turned into a request body, or into why it cannot be one. */
typedef struct Item {
        unsigned long line_no;
        char *custom_id;
        char *body;             /* the JSON request; NULL when error_code is set */
        const char *error_code; /* static string */
        char error[512];
} Item;

typedef struct Input {
        FILE *f;
        char *buf; /* BATCH_MAX_LINE + 1 bytes */
        unsigned long line_no;
        int decided; /* the first non-blank line decided the format */
        int jsonl;
} Input;

typedef enum SlotState {
        SLOT_FREE,
        SLOT_RUNNING,
        SLOT_WAITING, /* for its next attempt, at not_before */
} SlotState;

/* One line in flight: the concurrency bound is the number of slots. */
typedef struct Slot {
        CURL *curl;
        SlotState state;
        Item item;
        unsigned attempt;
        uint64_t not_before;
        char *reply;
        size_t reply_len;
        size_t reply_cap;
        int overflow;
        long retry_after_sec; /* -1: no Retry-After header */
        char request_id[80];
        char errbuf[CURL_ERROR_SIZE];
} Slot;

typedef struct Batch {
        BatchOptions opt;
        Input in;
        CURLM *multi;
        struct curl_slist *headers;
        Slot slots[BATCH_MAX_JOBS];
        json_t *input_ids; /* custom_ids of IN, as the keys of an object */
        json_t *done_ids;  /* custom_ids already in OUT */
        int out_fd;
        int input_done;
        size_t total;       /* lines this run has to answer */
        size_t skipped;     /* lines already in OUT (--resume) */
        size_t prev_failed; /* error lines already in OUT */
        size_t ok, failed;  /* lines this run wrote */
        size_t shown_failures;
        uint64_t start;
        uint64_t last_progress;
        int tty;
        int bar_drawn;
} Batch;

static void item_done(Item *it) {
        free(it->custom_id);
        free(it->body);
        *it = (Item){};
}

static void item_fail(Item *it, const char *code, const char *fmt, ...) _printf_(3, 4);
static void item_fail(Item *it, const char *code, const char *fmt, ...) {
        va_list ap;

        it->error_code = code;
        va_start(ap, fmt);
        vsnprintf(it->error, sizeof(it->error), fmt, ap);
        va_end(ap);
}

static int is_blank(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!strchr(" \t\r\f\v", s[i]))
                        return 0;
        return 1;
}

/* Reads one physical line into in->buf, at most BATCH_MAX_LINE bytes of
 * it. Returns 1 (and sets *ret_len, *ret_too_long), 0 at the end, -EIO. */
static int input_read_line(Input *in, size_t *ret_len, int *ret_too_long) {
        size_t n = 0;
        int c, too_long = 0, any = 0;

        for (;;) {
                c = getc_unlocked(in->f);
                if (c == EOF) {
                        if (ferror(in->f))
                                return -EIO;
                        if (!any)
                                return 0;
                        break;
                }
                any = 1;
                if (c == '\n')
                        break;
                if (n < BATCH_MAX_LINE)
                        in->buf[n++] = (char) c;
                else
                        too_long = 1;
        }
        in->line_no++;
        if (n > 0 && in->buf[n - 1] == '\r')
                n--;
        /* A UTF-8 byte order mark would hide a JSONL file's first '{'. */
        if (in->line_no == 1 && n >= 3 && memcmp(in->buf, "\xef\xbb\xbf", 3) == 0) {
                memmove(in->buf, in->buf + 3, n - 3);
                n -= 3;
        }
        in->buf[n] = '\0';
        *ret_len = n;
        *ret_too_long = too_long;
        return 1;
}

static int set_line_id(Item *it) {
        if (asprintf(&it->custom_id, "line-%lu", it->line_no) < 0) {
                it->custom_id = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* A JSONL line: an OpenAI Batch API input object. */
static int item_from_json(Item *it, const char *line, size_t len, const char *model) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        json_error_t err;
        json_t *body, *v;
        const char *id;

        root = json_loadb(line, len, 0, &err);
        if (!json_is_object(root)) {
                if (set_line_id(it) < 0)
                        return -ENOMEM;
                if (root)
                        item_fail(it, "invalid_json_line", "not a JSON object");
                else
                        item_fail(it, "invalid_json_line", "not JSON: %s (column %d)", err.text, err.column);
                return 0;
        }
        id = json_str(root, "custom_id", NULL);
        if (isempty(id) || strlen(id) > BATCH_MAX_CUSTOM_ID) {
                if (set_line_id(it) < 0)
                        return -ENOMEM;
                item_fail(it, "invalid_custom_id", "\"custom_id\" must be a string of 1 to %u bytes",
                          BATCH_MAX_CUSTOM_ID);
                return 0;
        }
        it->custom_id = strdup(id);
        if (!it->custom_id)
                return -ENOMEM;

        v = json_object_get(root, "method");
        if (v && !(json_is_string(v) && streq(json_string_value(v), "POST"))) {
                item_fail(it, "invalid_method", "\"method\" must be \"POST\"");
                return 0;
        }
        v = json_object_get(root, "url");
        if (v && !(json_is_string(v) && streq(json_string_value(v), BATCH_PATH))) {
                item_fail(it, "invalid_url", "\"url\" must be \"%s\"", BATCH_PATH);
                return 0;
        }
        body = json_object_get(root, "body");
        if (!json_is_object(body)) {
                item_fail(it, "invalid_body", "\"body\" must be a JSON object");
                return 0;
        }
        /* Batches are answered whole: a stream would only have to be reassembled. */
        (void) json_object_del(body, "stream");
        (void) json_object_del(body, "stream_options");
        if (!json_object_get(body, "model") && json_object_set_new(body, "model", json_string(model)) < 0)
                return -ENOMEM;
        it->body = json_dumps(body, JSON_COMPACT);
        return it->body ? 0 : -ENOMEM;
}

/* A plain line: the question itself. */
static int item_from_text(Item *it, const char *line, size_t len, const char *model) {
        _cleanup_(json_decrefp) json_t *req = NULL;

        if (set_line_id(it) < 0)
                return -ENOMEM;
        if (memchr(line, '\0', len) || !utf8_valid(line, len)) {
                item_fail(it, "invalid_line", "not UTF-8 text");
                return 0;
        }
        req = json_pack("{s:s, s:[{s:s, s:s%}]}", "model", model, "messages", "role", "user", "content",
                        line, len);
        it->body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        return it->body ? 0 : -ENOMEM;
}

/* The next non-blank line as an Item. Returns 1, 0 at the end, or -errno. */
static int input_next(Input *in, const char *model, Item *ret) {
        size_t len;
        int too_long, r;

        for (;;) {
                r = input_read_line(in, &len, &too_long);
                if (r <= 0)
                        return r;
                if (!too_long && is_blank(in->buf, len))
                        continue;
                break;
        }

        *ret = (Item){.line_no = in->line_no};
        if (!in->decided) {
                /* One decision for the whole file, so that a broken JSONL
                 * line is reported as such, not asked as a question. */
                const char *p = in->buf;

                while (*p == ' ' || *p == '\t')
                        p++;
                in->jsonl = *p == '{';
                in->decided = 1;
        }
        if (too_long) {
                r = set_line_id(ret);
                if (r < 0)
                        return r;
                item_fail(ret, "line_too_long", "longer than %u KiB", BATCH_MAX_LINE >> 10);
                return 1;
        }
        r = in->jsonl ? item_from_json(ret, in->buf, len, model) : item_from_text(ret, in->buf, len, model);
        if (r < 0) {
                item_done(ret);
                return r;
        }
        return 1;
}

/* First pass over IN: count the lines to do, refuse duplicate custom_ids
 * (a second answer under the same id would make --resume ambiguous) and
 * files over the line bound. */
static int input_scan(Batch *b) {
        json_t *seen = b->input_ids;
        size_t n = 0;
        int r;

        for (;;) {
                Item it = {};
                json_t *first;

                r = input_next(&b->in, b->opt.model, &it);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (++n > BATCH_MAX_LINES) {
                        item_done(&it);
                        fprintf(stderr, "moactl: %s: more than %u lines; split it\n", b->opt.input,
                                BATCH_MAX_LINES);
                        return -EFBIG;
                }
                first = json_object_get(seen, it.custom_id);
                if (first) {
                        fprintf(stderr, "moactl: %s:%lu: custom_id \"", b->opt.input, it.line_no);
                        print_sanitized(stderr, it.custom_id, strlen(it.custom_id));
                        fprintf(stderr, "\" already used on line %lld\n", json_integer_value(first));
                        item_done(&it);
                        return -EEXIST;
                }
                if (json_object_set_new(seen, it.custom_id, json_integer((json_int_t) it.line_no)) < 0) {
                        item_done(&it);
                        return -ENOMEM;
                }
                item_done(&it);
        }
        b->total = n;
        if (fseeko(b->in.f, 0, SEEK_SET) < 0)
                return -errno;
        b->in.line_no = 0;
        b->in.decided = 0;
        return 0;
}

/* OUT with --resume: remember its custom_ids, cut a torn last line. */
static int output_load(Batch *b) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        off_t good = 0;
        unsigned long n = 0;
        const char *key;
        json_t *v;
        ssize_t len;
        int fd;

        fd = fcntl(b->out_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        f = fdopen(fd, "r");
        if (!f) {
                close(fd);
                return -errno;
        }
        while ((len = getline(&line, &cap, f)) > 0) {
                _cleanup_(json_decrefp) json_t *root = NULL;
                const char *id;

                n++;
                if (line[len - 1] != '\n') {
                        if (!b->opt.quiet)
                                fprintf(stderr, "moactl: %s: dropping its torn last line (%zd bytes)\n",
                                        b->opt.output, len);
                        break;
                }
                root = json_loadb(line, (size_t) len, 0, NULL);
                id = json_str(root, "custom_id", NULL);
                if (!id) {
                        fprintf(stderr,
                                "moactl: %s: line %lu is not a batch output line; not appending to it\n",
                                b->opt.output, n);
                        return -EBADMSG;
                }
                if (json_object_set_new(b->done_ids, id, json_true()) < 0)
                        return -ENOMEM;
                if (!json_is_null(json_object_get(root, "error")))
                        b->prev_failed++;
                good += len;
        }
        if (ferror(f))
                return -EIO;
        json_object_foreach(b->done_ids, key, v) {
                if (json_object_get(b->input_ids, key))
                        b->skipped++;
        }
        b->total -= b->skipped;
        if (ftruncate(b->out_fd, good) < 0 || fdatasync(b->out_fd) < 0)
                return -errno;
        return 0;
}

static int output_open(Batch *b) {
        int r;

        b->out_fd = open(b->opt.output,
                         O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | (b->opt.resume ? 0 : O_EXCL), 0644);
        if (b->out_fd < 0) {
                r = -errno;
                if (r == -EEXIST)
                        return usage_error("%s exists: pass --resume to go on with it, or remove it",
                                           b->opt.output);
                fprintf(stderr, "moactl: cannot open %s: %s\n", b->opt.output, strerror(-r));
                return MOACTL_EXIT_FAILED;
        }
        if (!b->opt.resume)
                return MOACTL_EXIT_OK;
        r = output_load(b);
        if (r == -EBADMSG)
                return MOACTL_EXIT_FAILED;
        if (r < 0) {
                fprintf(stderr, "moactl: cannot read %s: %s\n", b->opt.output, strerror(-r));
                return MOACTL_EXIT_FAILED;
        }
        return MOACTL_EXIT_OK;
}

static void random_id(char *buf, size_t n) {
        uint8_t bytes[12];

        if (getrandom(bytes, sizeof(bytes), GRND_NONBLOCK) != (ssize_t) sizeof(bytes)) {
                uint64_t t = now_usec() ^ ((uint64_t) getpid() << 32);

                for (size_t i = 0; i < sizeof(bytes); i++)
                        bytes[i] = (uint8_t) (t >> (8 * (i % 8))) ^ (uint8_t) (i * 131);
        }
        snprintf(buf, n, "batch_req_");
        for (size_t i = 0, o = strlen(buf); i < sizeof(bytes) && o + 2 < n; i++, o += 2)
                snprintf(buf + o, n - o, "%02x", bytes[i]);
}

static void clear_bar(Batch *b) {
        if (b->bar_drawn) {
                fputs("\r\033[K", stderr);
                b->bar_drawn = 0;
        }
}

/* Appends one output line: one write(2), then fdatasync(2), so a line
 * counts as done only once it is on disk and OUT never holds half a line
 * except after a crash inside the write, which --resume cuts away. */
static int output_write(Batch *b, const Item *it, long status, const char *request_id, json_t *body,
                        const char *code, const char *message) {
        _cleanup_(json_decrefp) json_t *o = NULL;
        _cleanup_free_ char *s = NULL, *where = NULL;
        char id[64];
        size_t len, off = 0;

        /* A line moactl refused names itself; moad's answers name the request. */
        if (code && it->error_code) {
                if (asprintf(&where, "line %lu: %s", it->line_no, message) < 0) {
                        where = NULL;
                        return -ENOMEM;
                }
                message = where;
        }
        random_id(id, sizeof(id));
        if (code)
                o = json_pack("{s:s, s:s, s:n, s:{s:s, s:s}}", "id", id, "custom_id", it->custom_id,
                              "response", "error", "code", code, "message", message);
        else
                o = json_pack("{s:s, s:s, s:{s:i, s:s, s:O}, s:n}", "id", id, "custom_id", it->custom_id,
                              "response", "status_code", (json_int_t) status, "request_id", request_id,
                              "body", body, "error");
        s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (!s)
                return -ENOMEM;
        len = strlen(s);
        s[len++] = '\n'; /* replaces the NUL: the string is not used as one any more */
        while (off < len) {
                ssize_t k = write(b->out_fd, s + off, len - off);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += (size_t) k;
        }
        if (fdatasync(b->out_fd) < 0)
                return -errno;

        if (code) {
                b->failed++;
                if (!b->opt.quiet && b->shown_failures < BATCH_MAX_SHOWN_FAILURES) {
                        clear_bar(b);
                        fputs("moactl: ", stderr);
                        print_sanitized(stderr, b->opt.input, strlen(b->opt.input));
                        fprintf(stderr, ":%lu: ", it->line_no);
                        if (!it->error_code) {
                                print_sanitized(stderr, it->custom_id, strlen(it->custom_id));
                                fputs(": ", stderr);
                        }
                        print_sanitized(stderr, it->error_code ? it->error : message,
                                        strlen(it->error_code ? it->error : message));
                        fputc('\n', stderr);
                        if (++b->shown_failures == BATCH_MAX_SHOWN_FAILURES)
                                fputs("moactl: (further failures only in the output file)\n", stderr);
                }
        } else
                b->ok++;
        return 0;
}

static void format_duration(char *buf, size_t n, double sec) {
        unsigned long s = sec < 0 ? 0 : (unsigned long) (sec + 0.5);

        if (s >= 3600)
                snprintf(buf, n, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
        else
                snprintf(buf, n, "%lu:%02lu", s / 60, s % 60);
}

static void progress(Batch *b, int force) {
        uint64_t now = now_usec();
        size_t done = b->ok + b->failed;
        double elapsed = (double) (now - b->start) / USEC_PER_SEC;
        double rate = elapsed > 0 ? done / elapsed : 0;
        char eta[32] = "-:--";

        if (b->opt.quiet)
                return;
        if (!force && now - b->last_progress < (b->tty ? BATCH_TTY_PROGRESS_MSEC * USEC_PER_MSEC
                                                       : BATCH_PLAIN_PROGRESS_SEC * USEC_PER_SEC))
                return;
        b->last_progress = now;
        if (rate > 0)
                format_duration(eta, sizeof(eta), (double) (b->total - done) / rate);

        if (b->tty) {
                char bar[31];
                size_t fill = b->total ? done * (sizeof(bar) - 1) / b->total : sizeof(bar) - 1;

                memset(bar, '#', fill);
                memset(bar + fill, '.', sizeof(bar) - 1 - fill);
                bar[sizeof(bar) - 1] = '\0';
                fprintf(stderr, "\r\033[K[%s] %zu/%zu %.1f/s ETA %s", bar, done, b->total, rate, eta);
                if (b->failed)
                        fprintf(stderr, " (%zu failed)", b->failed);
                b->bar_drawn = 1;
        } else
                fprintf(stderr, "moactl: batch: %zu/%zu lines, %zu failed, %.1f lines/s, ETA %s\n", done,
                        b->total, b->failed, rate, eta);
        fflush(stderr);
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        Slot *s = userdata;
        size_t n = size * nmemb;

        if (n > MOACTL_MAX_RESPONSE - s->reply_len) {
                s->overflow = 1;
                return 0;
        }
        if (s->reply_len + n + 1 > s->reply_cap) {
                size_t cap = MAX(s->reply_cap * 2, (size_t) 4096);
                char *p;

                while (cap < s->reply_len + n + 1)
                        cap *= 2;
                p = realloc(s->reply, cap);
                if (!p)
                        return 0;
                s->reply = p;
                s->reply_cap = cap;
        }
        memcpy(s->reply + s->reply_len, ptr, n);
        s->reply_len += n;
        s->reply[s->reply_len] = '\0';
        return n;
}

static int header_is(const char *buf, size_t n, const char *name, const char **ret_value, size_t *ret_len) {
        size_t k = strlen(name);

        if (n <= k || strncasecmp(buf, name, k) != 0)
                return 0;
        buf += k, n -= k;
        while (n > 0 && (*buf == ' ' || *buf == '\t'))
                buf++, n--;
        while (n > 0 && (buf[n - 1] == '\r' || buf[n - 1] == '\n' || buf[n - 1] == ' '))
                n--;
        *ret_value = buf;
        *ret_len = n;
        return 1;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata) {
        Slot *s = userdata;
        size_t n = size * nitems, len, o = 0;
        const char *v;

        if (header_is(buf, n, "x-request-id:", &v, &len)) {
                for (size_t i = 0; i < len && o + 1 < sizeof(s->request_id); i++)
                        if (v[i] > 0x20 && v[i] < 0x7f)
                                s->request_id[o++] = v[i];
                s->request_id[o] = '\0';
        } else if (header_is(buf, n, "retry-after:", &v, &len)) {
                /* Seconds only; an HTTP date falls back to our own backoff. */
                long sec = 0;

                for (size_t i = 0; i < len && sec >= 0; i++)
                        sec = v[i] >= '0' && v[i] <= '9' && sec < 100000 ? sec * 10 + (v[i] - '0') : -1;
                s->retry_after_sec = len > 0 ? sec : -1;
        }
        return n;
}

static int slot_start(Batch *b, Slot *s) {
        s->reply_len = 0;
        s->overflow = 0;
        s->retry_after_sec = -1;
        s->request_id[0] = '\0';
        s->errbuf[0] = '\0';
        s->attempt++;

        curl_easy_reset(s->curl);
        (void) curl_easy_setopt(s->curl, CURLOPT_URL, "http://localhost" BATCH_PATH);
        (void) curl_easy_setopt(s->curl, CURLOPT_UNIX_SOCKET_PATH, b->opt.socket_path);
        (void) curl_easy_setopt(s->curl, CURLOPT_PROTOCOLS_STR, "http");
        (void) curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
        (void) curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, s->errbuf);
        (void) curl_easy_setopt(s->curl, CURLOPT_USERAGENT, "moactl/" MOACTL_VERSION);
        (void) curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, b->headers);
        (void) curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT, BATCH_CONNECT_TIMEOUT_SEC);
        (void) curl_easy_setopt(s->curl, CURLOPT_TIMEOUT, b->opt.timeout_sec);
        (void) curl_easy_setopt(s->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) MOACTL_MAX_RESPONSE);
        (void) curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_write);
        (void) curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, s);
        (void) curl_easy_setopt(s->curl, CURLOPT_HEADERFUNCTION, on_header);
        (void) curl_easy_setopt(s->curl, CURLOPT_HEADERDATA, s);
        (void) curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, s->item.body);
        (void) curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(s->item.body));
        (void) curl_easy_setopt(s->curl, CURLOPT_PRIVATE, s);
        if (curl_multi_add_handle(b->multi, s->curl) != CURLM_OK)
                return -ENOMEM;
        s->state = SLOT_RUNNING;
        return 0;
}

/* Records the slot's line and frees the slot. */
static int slot_record(Batch *b, Slot *s, long status, json_t *body, const char *code, const char *message) {
        int r;

        r = output_write(b, &s->item, status, s->request_id, body, code, message);
        item_done(&s->item);
        s->state = SLOT_FREE;
        s->attempt = 0;
        return r;
}

/* Another attempt later, if any is left: Retry-After when moad sent one,
 * else exponential backoff with jitter. Returns 1 if scheduled. */
static int slot_retry(Batch *b, Slot *s) {
        uint64_t wait_ms;
        uint32_t jitter = 0;

        if (s->attempt >= b->opt.attempts)
                return 0;
        if (s->retry_after_sec >= 0)
                wait_ms = MIN((uint64_t) s->retry_after_sec, BATCH_MAX_WAIT_SEC) * 1000ULL;
        else {
                wait_ms = MIN(BATCH_BACKOFF_FIRST_MSEC << (s->attempt - 1), BATCH_MAX_WAIT_SEC * 1000ULL);
                (void) getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK);
                wait_ms += jitter % (wait_ms / 2 + 1);
        }
        s->not_before = now_usec() + wait_ms * USEC_PER_MSEC;
        s->state = SLOT_WAITING;
        return 1;
}

/* The daemon's error object → code and message for the output line. */
static int record_http_error(Batch *b, Slot *s, long status) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        char code[64], message[1024];
        const json_t *err;
        const char *msg, *c;

        root = s->reply ? json_loadb(s->reply, s->reply_len, 0, NULL) : NULL;
        err = json_object_get(root, "error");
        msg = json_str(err, "message", NULL);
        c = json_str(err, "code", json_str(err, "type", NULL));
        if (c && strlen(c) < sizeof(code))
                snprintf(code, sizeof(code), "%s", c);
        else
                snprintf(code, sizeof(code), "http_%ld", status);
        snprintf(message, sizeof(message), "HTTP %ld: %s%s%s", status, msg ? msg : "no error message",
                 s->request_id[0] ? " [request " : "", s->request_id[0] ? s->request_id : "");
        if (s->request_id[0])
                strncat(message, "]", sizeof(message) - strlen(message) - 1);
        return slot_record(b, s, 0, NULL, code, message);
}

static int slot_finish(Batch *b, Slot *s, CURLcode cc) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        char message[CURL_ERROR_SIZE + 128];
        long status = 0, os_errno = 0;

        (void) curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
        (void) curl_easy_getinfo(s->curl, CURLINFO_OS_ERRNO, &os_errno);
        (void) curl_multi_remove_handle(b->multi, s->curl);

        switch (cc) {
        case CURLE_OK:
                break;
        case CURLE_COULDNT_CONNECT:
        case CURLE_GOT_NOTHING:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_PARTIAL_FILE:
        case CURLE_OPERATION_TIMEDOUT:
                if (slot_retry(b, s))
                        return 0;
                if (cc == CURLE_COULDNT_CONNECT)
                        snprintf(message, sizeof(message), "cannot connect to %s: %s", b->opt.socket_path,
                                 strerror(os_errno ? (int) os_errno : ECONNREFUSED));
                else if (cc == CURLE_OPERATION_TIMEDOUT)
                        snprintf(message, sizeof(message),
                                 "timed out after %ld s waiting for moad (see --timeout)",
                                 b->opt.timeout_sec);
                else
                        snprintf(message, sizeof(message), "connection to moad failed: %s",
                                 s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc));
                snprintf(message + strlen(message), sizeof(message) - strlen(message), " (%u attempts)",
                         s->attempt);
                return slot_record(b, s, 0, NULL,
                                   cc == CURLE_OPERATION_TIMEDOUT ? "timeout" : "connection_error", message);
        case CURLE_FILESIZE_EXCEEDED:
        case CURLE_WRITE_ERROR:
                if (!s->overflow && cc == CURLE_WRITE_ERROR)
                        return -ENOMEM;
                snprintf(message, sizeof(message), "the reply is larger than %u MiB",
                         MOACTL_MAX_RESPONSE >> 20);
                return slot_record(b, s, 0, NULL, "response_too_large", message);
        default:
                snprintf(message, sizeof(message), "bad reply from moad: %s",
                         s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc));
                return slot_record(b, s, 0, NULL, "invalid_response", message);
        }

        if (status == 429 || status >= 500) {
                if (slot_retry(b, s))
                        return 0;
                return record_http_error(b, s, status);
        }
        if (status < 200 || status >= 300)
                return record_http_error(b, s, status);

        body = s->reply ? json_loadb(s->reply, s->reply_len, 0, NULL) : NULL;
        if (!json_is_object(body))
                return slot_record(b, s, 0, NULL, "invalid_response",
                                   "bad reply from moad: not a JSON object");
        return slot_record(b, s, status, body, NULL, NULL);
}

/* Fills free slots from the input and restarts waiting ones whose time
 * has come. Lines that cannot become requests are recorded at once. */
static int fill_slots(Batch *b) {
        uint64_t now = now_usec();
        int r;

        for (unsigned i = 0; i < b->opt.jobs; i++) {
                Slot *s = &b->slots[i];

                if (s->state == SLOT_WAITING && now >= s->not_before) {
                        r = slot_start(b, s);
                        if (r < 0)
                                return r;
                }
                while (s->state == SLOT_FREE && !b->input_done) {
                        r = input_next(&b->in, b->opt.model, &s->item);
                        if (r < 0)
                                return r;
                        if (r == 0) {
                                b->input_done = 1;
                                break;
                        }
                        if (json_object_get(b->done_ids, s->item.custom_id)) {
                                item_done(&s->item);
                                continue;
                        }
                        if (s->item.error_code) {
                                r = slot_record(b, s, 0, NULL, s->item.error_code, s->item.error);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        r = slot_start(b, s);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int batch_run(Batch *b) {
        int r;

        for (;;) {
                uint64_t now, wake = UINT64_MAX;
                int busy = 0, still;
                CURLMsg *msg;
                long timeout_ms;

                r = fill_slots(b);
                if (r < 0)
                        return r;
                for (unsigned i = 0; i < b->opt.jobs; i++) {
                        if (b->slots[i].state != SLOT_FREE)
                                busy = 1;
                        if (b->slots[i].state == SLOT_WAITING)
                                wake = MIN(wake, b->slots[i].not_before);
                }
                if (!busy && b->input_done)
                        return 0;

                now = now_usec();
                timeout_ms = b->tty ? (long) BATCH_TTY_PROGRESS_MSEC : 1000L;
                if (wake != UINT64_MAX)
                        timeout_ms =
                                MIN(timeout_ms, wake > now ? (long) ((wake - now) / USEC_PER_MSEC) + 1 : 0L);
                if (curl_multi_poll(b->multi, NULL, 0, (int) timeout_ms, NULL) != CURLM_OK ||
                    curl_multi_perform(b->multi, &still) != CURLM_OK)
                        return -EIO;
                while ((msg = curl_multi_info_read(b->multi, &still))) {
                        Slot *s = NULL;

                        if (msg->msg != CURLMSG_DONE)
                                continue;
                        (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);
                        r = slot_finish(b, s, msg->data.result);
                        if (r < 0)
                                return r;
                }
                progress(b, 0);
        }
}

/* RFC 4180: quoted when needed, quotes doubled. */
static void csv_field(FILE *f, const char *s) {
        if (!s)
                s = "";
        if (!strpbrk(s, ",\"\r\n")) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"')
                        fputc('"', f);
                fputc(*s, f);
        }
        fputc('"', f);
}

/* The CSV is made from the complete OUT at the end, so it always has one
 * row per output line, resumed runs included. Written to a temporary file
 * and renamed into place. */
static int write_csv(Batch *b) {
        _cleanup_fclose_ FILE *in = NULL, *out = NULL;
        _cleanup_free_ char *tmp = NULL, *line = NULL;
        size_t cap = 0;
        ssize_t len;
        int fd, r;

        in = fopen(b->opt.output, "re");
        if (!in)
                return -errno;
        if (asprintf(&tmp, "%s.XXXXXX", b->opt.csv) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        out = fdopen(fd, "w");
        if (!out) {
                r = -errno;
                close(fd);
                (void) unlink(tmp);
                return r;
        }
        (void) fchmod(fd, 0644);
        fputs("custom_id,status,answer,error\r\n", out);
        while ((len = getline(&line, &cap, in)) > 0) {
                _cleanup_(json_decrefp) json_t *root = json_loadb(line, (size_t) len, 0, NULL);
                json_t *err = json_object_get(root, "error"), *choices;
                const char *answer = NULL;

                if (!root)
                        continue;
                choices = json_object_get(json_object_get(json_object_get(root, "response"), "body"),
                                          "choices");
                answer = json_str(json_object_get(json_array_get(choices, 0), "message"), "content", NULL);
                csv_field(out, json_str(root, "custom_id", ""));
                fputc(',', out);
                csv_field(out, json_is_null(err) ? "ok" : "failed");
                fputc(',', out);
                csv_field(out, answer);
                fputc(',', out);
                csv_field(out, json_str(err, "message", NULL));
                fputs("\r\n", out);
        }
        r = ferror(in) ? -EIO : 0;
        if (r == 0 && (fflush(out) != 0 || ferror(out) || fsync(fileno(out)) < 0))
                r = errno ? -errno : -EIO;
        if (r == 0 && rename(tmp, b->opt.csv) < 0)
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

static void batch_done(Batch *b) {
        for (unsigned i = 0; i < BATCH_MAX_JOBS; i++) {
                Slot *s = &b->slots[i];

                if (s->curl) {
                        if (s->state == SLOT_RUNNING)
                                (void) curl_multi_remove_handle(b->multi, s->curl);
                        curl_easy_cleanup(s->curl);
                }
                item_done(&s->item);
                free(s->reply);
        }
        if (b->multi)
                curl_multi_cleanup(b->multi);
        curl_slist_free_all(b->headers);
        json_decref(b->input_ids);
        json_decref(b->done_ids);
        if (b->in.f)
                fclose(b->in.f);
        free(b->in.buf);
        if (b->out_fd >= 0)
                close(b->out_fd);
}

static void batch_help(void) {
        printf("Usage: moactl batch [OPTIONS] IN -o OUT\n"
               "\n"
               "Ask moad every line of IN: OpenAI Batch API input lines (JSONL with custom_id,\n"
               "method, url and body), or one plain question per line. Each line gets one line in\n"
               "OUT in the OpenAI Batch API output format.\n"
               "\n"
               "Options:\n"
               "  -o, --output OUT    the output file (JSONL); must not exist unless --resume\n"
               "  -j, --jobs N        questions in flight at once (1..%u, default %u)\n"
               "      --resume        skip the custom_ids OUT already has and append the rest\n"
               "      --csv FILE      also write custom_id,status,answer,error as CSV\n"
               "      --attempts N    tries of a line on 429, 5xx or connection errors (1..%u,\n"
               "                      default %u)\n"
               "  -m, --model NAME    model of plain questions and of JSONL bodies without one\n"
               "                      (default: %s)\n"
               "  -s, --socket PATH   moad's socket\n"
               "      --timeout SEC   give up on one attempt after SEC seconds (default %ld)\n"
               "  -q, --quiet         no progress and no per-line errors on stderr\n"
               "      --server        let moad run it as a job (Batches API): it survives moactl\n"
               "                      and daemon restarts; moactl uploads IN, waits and writes OUT\n"
               "  -h, --help          show this help\n"
               "\n"
               "Exit status: 0 every line answered, 6 some lines failed (OUT is still complete),\n"
               "1 IN or OUT could not be read or written, 2 usage error. See moactl(1).\n",
               BATCH_MAX_JOBS, BATCH_DEFAULT_JOBS, BATCH_MAX_ATTEMPTS, BATCH_DEFAULT_ATTEMPTS,
               MOACTL_DEFAULT_MODEL, BATCH_DEFAULT_TIMEOUT_SEC);
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < lo || v > hi)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

/* Returns -1 to go on, else the exit code. */
static int batch_parse_argv(const Moactl *m, int argc, char **argv, BatchOptions *o) {
        enum { ARG_RESUME = 0x100, ARG_CSV, ARG_ATTEMPTS, ARG_TIMEOUT, ARG_SERVER };
        static const struct option options[] = {
                {"output", required_argument, NULL, 'o'},
                {"jobs", required_argument, NULL, 'j'},
                {"resume", no_argument, NULL, ARG_RESUME},
                {"csv", required_argument, NULL, ARG_CSV},
                {"attempts", required_argument, NULL, ARG_ATTEMPTS},
                {"model", required_argument, NULL, 'm'},
                {"socket", required_argument, NULL, 's'},
                {"timeout", required_argument, NULL, ARG_TIMEOUT},
                {"quiet", no_argument, NULL, 'q'},
                {"server", no_argument, NULL, ARG_SERVER},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        unsigned t;
        int c;

        *o = (BatchOptions){
                .socket_path = m->socket_path,
                .model = m->model,
                .timeout_sec = m->timeout_sec >= 0 ? m->timeout_sec : BATCH_DEFAULT_TIMEOUT_SEC,
                .jobs = BATCH_DEFAULT_JOBS,
                .attempts = BATCH_DEFAULT_ATTEMPTS,
        };
        if (m->n_agents > 0 || m->trace || m->json)
                return usage_error(
                        "batch takes no --agent, --trace or --json (put them in the JSONL bodies)");

        /* argv[-1] is the word "batch", which getopt takes for the program name. */
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc + 1, argv - 1, ":o:j:m:s:qh", options, NULL)) >= 0) {
                switch (c) {
                case 'o':
                        if (isempty(optarg))
                                return usage_error("--output needs a file name");
                        o->output = optarg;
                        break;
                case 'j':
                        if (parse_uint(optarg, 1, BATCH_MAX_JOBS, &o->jobs) < 0)
                                return usage_error("--jobs needs a number from 1 to %u: %s", BATCH_MAX_JOBS,
                                                   optarg);
                        o->local_only = 1;
                        break;
                case ARG_RESUME:
                        o->resume = 1;
                        o->local_only = 1;
                        break;
                case ARG_CSV:
                        if (isempty(optarg))
                                return usage_error("--csv needs a file name");
                        o->csv = optarg;
                        o->local_only = 1;
                        break;
                case ARG_ATTEMPTS:
                        if (parse_uint(optarg, 1, BATCH_MAX_ATTEMPTS, &o->attempts) < 0)
                                return usage_error("--attempts needs a number from 1 to %u: %s",
                                                   BATCH_MAX_ATTEMPTS, optarg);
                        o->local_only = 1;
                        break;
                case ARG_SERVER:
                        o->server = 1;
                        break;
                case 'm':
                        if (isempty(optarg) || !utf8_valid(optarg, strlen(optarg)))
                                return usage_error("--model needs a name (UTF-8)");
                        o->model = optarg;
                        break;
                case 's':
                        if (isempty(optarg))
                                return usage_error("--socket needs a path");
                        o->socket_path = optarg;
                        break;
                case ARG_TIMEOUT:
                        if (parse_uint(optarg, 0, 7U * 24 * 3600, &t) < 0)
                                return usage_error("--timeout needs a number of seconds (0 to 604800): %s",
                                                   optarg);
                        o->timeout_sec = t;
                        break;
                case 'q':
                        o->quiet = 1;
                        break;
                case 'h':
                        batch_help();
                        return MOACTL_EXIT_OK;
                case ':':
                        return usage_error("option %s needs an argument", argv[optind - 2]);
                default:
                        if (optopt)
                                return usage_error("unknown option -%c", optopt);
                        return usage_error("unknown option %s", argv[optind - 2]);
                }
        }
        if (optind != argc)
                return usage_error(optind > argc ? "batch needs an input file IN"
                                                 : "batch takes one input file (and -o OUT)");
        o->input = argv[optind - 1];
        if (!o->output)
                return usage_error("batch needs -o OUT");
        if (strlen(o->socket_path) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                return usage_error("socket path too long: %s", o->socket_path);
        if (streq(o->input, o->output) || (o->csv && (streq(o->csv, o->output) || streq(o->csv, o->input))))
                return usage_error("IN, OUT and --csv must be different files");
        if (o->server && o->local_only)
                return usage_error("--server takes no -j, --resume, --csv or --attempts (moad runs the job; "
                                   "see jobs.concurrency)");
        return -1;
}

static int batch_setup(Batch *b) {
        struct curl_slist *h;

        b->in.buf = malloc(BATCH_MAX_LINE + 1);
        b->input_ids = json_object();
        b->done_ids = json_object();
        b->multi = curl_multi_init();
        if (!b->in.buf || !b->input_ids || !b->done_ids || !b->multi)
                return -ENOMEM;
        /* No "Expect: 100-continue" round trip for large bodies. */
        h = curl_slist_append(NULL, "Accept: application/json");
        if (h)
                b->headers = h;
        h = h ? curl_slist_append(b->headers, "Content-Type: application/json") : NULL;
        h = h ? curl_slist_append(b->headers, "Expect:") : NULL;
        if (!h)
                return -ENOMEM;
        (void) curl_multi_setopt(b->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) b->opt.jobs);
        for (unsigned i = 0; i < b->opt.jobs; i++) {
                b->slots[i].curl = curl_easy_init();
                if (!b->slots[i].curl)
                        return -ENOMEM;
        }
        return 0;
}

int cmd_batch(const Moactl *m, int argc, char **argv) {
        _cleanup_(batch_done) Batch b = {.out_fd = -1};
        struct stat st;
        int code, r;

        code = batch_parse_argv(m, argc, argv, &b.opt);
        if (code >= 0)
                return code;
        if (b.opt.server) {
                Moactl sm = *m;

                sm.socket_path = b.opt.socket_path;
                sm.timeout_sec = b.opt.timeout_sec;
                return batch_on_server(&sm, b.opt.input, b.opt.output, b.opt.model, b.opt.quiet);
        }

        b.in.f = fopen(b.opt.input, "re");
        if (!b.in.f) {
                fprintf(stderr, "moactl: cannot open %s: %s\n", b.opt.input, strerror(errno));
                return MOACTL_EXIT_FAILED;
        }
        /* Read twice: once to count and check, once to ask. */
        if (fstat(fileno(b.in.f), &st) < 0 || !S_ISREG(st.st_mode))
                return usage_error("%s is not a regular file (batch reads IN twice)", b.opt.input);
        r = batch_setup(&b);
        if (r < 0) {
                fputs("moactl: out of memory\n", stderr);
                return MOACTL_EXIT_FAILED;
        }
        /* IN first: a file refused as a whole leaves no OUT behind. */
        r = input_scan(&b);
        if (r == -EFBIG || r == -EEXIST)
                return MOACTL_EXIT_FAILED;
        if (r < 0) {
                fprintf(stderr, "moactl: cannot read %s: %s\n", b.opt.input, strerror(-r));
                return MOACTL_EXIT_FAILED;
        }
        code = output_open(&b);
        if (code != MOACTL_EXIT_OK)
                return code;

        b.tty = isatty(STDERR_FILENO);
        b.start = b.last_progress = now_usec();
        r = batch_run(&b);
        clear_bar(&b);
        if (r < 0) {
                fprintf(stderr, "moactl: batch stopped: %s; --resume goes on from here\n", strerror(-r));
                return MOACTL_EXIT_FAILED;
        }
        if (b.opt.csv) {
                r = write_csv(&b);
                if (r < 0) {
                        fprintf(stderr, "moactl: cannot write %s: %s\n", b.opt.csv, strerror(-r));
                        return MOACTL_EXIT_FAILED;
                }
        }
        if (!b.opt.quiet) {
                fprintf(stderr, "moactl: batch: %zu lines: %zu answered, %zu failed", b.total, b.ok,
                        b.failed);
                if (b.skipped > 0)
                        fprintf(stderr, "; %zu already in %s", b.skipped, b.opt.output);
                fputc('\n', stderr);
        }
        return b.failed + b.prev_failed > 0 ? MOACTL_EXIT_PARTIAL : MOACTL_EXIT_OK;
}
