/* moabench.c — closed-loop HTTP load generator for moad's benchmark harness.
 *
 * Not daemon code: a client tool that keeps exactly C requests in flight
 * (libcurl multi, one easy handle per slot, keep-alive connections reused
 * from the multi's cache) over a Unix socket or TCP, until N requests have
 * completed or a time limit passes, and prints one JSON object with every
 * request's latency (and, with --stream, its time to first content token)
 * in microseconds. Statistics are computed by the caller (bench/bench.py),
 * which can then pool interleaved rounds.
 *
 *   moabench --url URL [--unix PATH] [--body JSON | --body-file F]
 *            [-n N] [-c C] [--warmup W] [--max-seconds S] [--timeout-ms T]
 *            [--stream] [--expect STRING] [--abort-after-first-token]
 *            [--header 'Name: value']...
 *
 * Without a body the request is a GET. --header adds a request header (at
 * most MAX_HEADERS; a gateway such as Portkey is told its upstream that
 * way). A request counts as ok when curl finished it without error, the
 * status was 200, and (with --expect) the body contained STRING. Bodies are
 * kept up to 1 MiB per request (the rest is counted, not stored). All loops
 * are bounded by N and by the time limit; only the given URL/socket is
 * contacted. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONCURRENCY 4096
#define MAX_REQUESTS 10000000L
#define MAX_KEEP_BODY (1024 * 1024)
#define MAX_BODY_FILE (64 * 1024 * 1024)
#define MAX_HEADERS 16
#define MAX_HEADER_LEN 1024

typedef struct Slot {
        CURL *easy;
        struct curl_slist *headers;
        char *buf;      /* received body, up to MAX_KEEP_BODY */
        size_t len;     /* bytes stored in buf */
        size_t total;   /* bytes received */
        size_t scanned; /* buf offset up to which the first-token scan ran */
        uint64_t start; /* monotonic ns at submission */
        uint64_t ttft;  /* ns from start to the first content token, 0 if none yet */
        int abort_now;  /* --abort-after-first-token: stop this transfer */
        int active;
} Slot;

typedef struct Options {
        const char *url;
        const char *unix_path;
        char *body;
        size_t body_len;
        long n;
        long concurrency;
        long warmup;
        double max_seconds;
        long timeout_ms;
        int stream;
        int abort_first;
        const char *expect;
        const char *headers[MAX_HEADERS];
        int n_headers;
} Options;

typedef struct Stats {
        long done, ok, errors, timeouts;
        long status[6]; /* 1xx..5xx and "other" in [0] */
        long curl_errors;
        char first_error[256];
        int64_t *lat_us;  /* ok requests only */
        int64_t *ttft_us; /* ok requests with a first token */
        long n_lat, n_ttft;
        uint64_t bytes;
} Stats;

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

/* Does the stored body, from the last scan position on, hold a
 * '"content":"X' with X not '"' (a non-empty content delta)? */
static int scan_first_token(Slot *s) {
        static const char key[] = "\"content\":";
        size_t from = s->scanned;

        if (s->len < sizeof key + 1)
                return 0;
        for (size_t i = from; i + sizeof key < s->len; i++) {
                if (memcmp(s->buf + i, key, sizeof key - 1) != 0)
                        continue;
                size_t j = i + sizeof key - 1;
                while (j < s->len && s->buf[j] == ' ')
                        j++;
                if (j + 1 >= s->len) {
                        s->scanned = i; /* incomplete: look again when more arrives */
                        return 0;
                }
                if (s->buf[j] == '"' && s->buf[j + 1] != '"')
                        return 1;
        }
        /* Keep a tail so a key split across two writes is still found. */
        s->scanned = s->len > sizeof key + 8 ? s->len - (sizeof key + 8) : 0;
        return 0;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata) {
        Slot *s = userdata;
        size_t n = size * nmemb;
        size_t keep = n;

        if (s->len + keep > MAX_KEEP_BODY)
                keep = MAX_KEEP_BODY - s->len;
        memcpy(s->buf + s->len, data, keep);
        s->len += keep;
        s->total += n;
        if (s->ttft == 0 && scan_first_token(s)) {
                s->ttft = now_ns() - s->start;
                if (s->abort_now)
                        return 0; /* CURLE_WRITE_ERROR: stop here, TTFT was all we wanted */
        }
        return n;
}

static int slot_init(Slot *s, const Options *o) {
        s->easy = curl_easy_init();
        s->buf = malloc(MAX_KEEP_BODY);
        if (!s->easy || !s->buf)
                return -ENOMEM;
        s->headers = curl_slist_append(NULL, "Content-Type: application/json");
        s->headers = curl_slist_append(s->headers, "Expect:");
        for (int i = 0; s->headers && i < o->n_headers; i++)
                s->headers = curl_slist_append(s->headers, o->headers[i]);
        if (!s->headers)
                return -ENOMEM;
        curl_easy_setopt(s->easy, CURLOPT_URL, o->url);
        if (o->unix_path)
                curl_easy_setopt(s->easy, CURLOPT_UNIX_SOCKET_PATH, o->unix_path);
        curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
        if (o->body) {
                curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, o->body);
                curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) o->body_len);
        }
        curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
        curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, o->timeout_ms);
        curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(s->easy, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, "http");
        return 0;
}

static void slot_free(Slot *s) {
        if (s->easy)
                curl_easy_cleanup(s->easy);
        curl_slist_free_all(s->headers);
        free(s->buf);
}

static int slot_submit(Slot *s, CURLM *multi, int abort_first) {
        s->len = s->total = s->scanned = 0;
        s->ttft = 0;
        s->abort_now = abort_first;
        s->start = now_ns();
        s->active = 1;
        return curl_multi_add_handle(multi, s->easy) == CURLM_OK ? 0 : -EIO;
}

static int body_contains(const Slot *s, const char *needle) {
        size_t nl = strlen(needle);
        if (nl == 0)
                return 1;
        for (size_t i = 0; i + nl <= s->len; i++)
                if (memcmp(s->buf + i, needle, nl) == 0)
                        return 1;
        return 0;
}

/* Account one finished transfer; record latencies when @record. */
static void finish(Slot *s, CURLcode cc, const Options *o, Stats *st, int record) {
        uint64_t lat = now_ns() - s->start;
        long code = 0;
        int ok;

        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
        s->active = 0;
        if (!record)
                return;
        st->done++;
        st->bytes += s->total;
        st->status[code >= 100 && code < 600 ? code / 100 : 0]++;
        /* Aborting after the first token is a write error we asked for. */
        if (cc == CURLE_WRITE_ERROR && s->abort_now && s->ttft > 0)
                cc = CURLE_OK;
        ok = cc == CURLE_OK && code == 200;
        if (ok && o->expect && !(s->abort_now && s->ttft > 0))
                ok = body_contains(s, o->expect);
        if (ok && o->stream && s->ttft == 0)
                ok = 0; /* a stream without any content token */
        if (!ok) {
                st->errors++;
                if (cc == CURLE_OPERATION_TIMEDOUT)
                        st->timeouts++;
                if (cc != CURLE_OK)
                        st->curl_errors++;
                if (!st->first_error[0]) {
                        if (cc != CURLE_OK)
                                snprintf(st->first_error, sizeof st->first_error, "curl: %s",
                                         curl_easy_strerror(cc));
                        else
                                snprintf(st->first_error, sizeof st->first_error, "HTTP %ld: %.*s", code,
                                         (int) (s->len < 160 ? s->len : 160), s->buf);
                }
                return;
        }
        st->ok++;
        st->lat_us[st->n_lat++] = (int64_t) (lat / 1000);
        if (s->ttft > 0)
                st->ttft_us[st->n_ttft++] = (int64_t) (s->ttft / 1000);
}

/* Run @total requests at @o->concurrency, stop early at @deadline_ns.
 * Returns the number completed. */
static long run_phase(CURLM *multi, Slot *slots, long total, const Options *o, Stats *st, int record,
                      uint64_t deadline_ns) {
        long started = 0, finished = 0, inflight = 0;
        long c = o->concurrency < total ? o->concurrency : total;

        for (long i = 0; i < c; i++) {
                if (slot_submit(&slots[i], multi, o->abort_first) < 0)
                        return -EIO;
                started++;
                inflight++;
        }
        while (inflight > 0) {
                int running = 0, msgs = 0;
                CURLMsg *m;

                if (curl_multi_perform(multi, &running) != CURLM_OK)
                        return -EIO;
                while ((m = curl_multi_info_read(multi, &msgs))) {
                        Slot *s;
                        if (m->msg != CURLMSG_DONE)
                                continue;
                        CURLcode cc = m->data.result;
                        CURL *e = m->easy_handle;
                        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **) &s);
                        curl_multi_remove_handle(multi, e);
                        finish(s, cc, o, st, record);
                        finished++;
                        inflight--;
                        if (started < total && now_ns() < deadline_ns) {
                                if (slot_submit(s, multi, o->abort_first) < 0)
                                        return -EIO;
                                started++;
                                inflight++;
                        }
                }
                if (inflight > 0 && curl_multi_poll(multi, NULL, 0, 100, NULL) != CURLM_OK)
                        return -EIO;
        }
        return finished;
}

static int read_file(const char *path, char **ret, size_t *ret_len) {
        FILE *f = fopen(path, "re");
        char *b;
        size_t n;

        if (!f)
                return -errno;
        b = malloc(MAX_BODY_FILE + 1);
        if (!b) {
                fclose(f);
                return -ENOMEM;
        }
        n = fread(b, 1, MAX_BODY_FILE + 1, f);
        fclose(f);
        if (n > MAX_BODY_FILE) {
                free(b);
                return -EFBIG;
        }
        b[n] = 0;
        *ret = b;
        *ret_len = n;
        return 0;
}

static void print_array(const char *name, const int64_t *v, long n) {
        printf("\"%s\":[", name);
        for (long i = 0; i < n; i++)
                printf("%s%lld", i ? "," : "", (long long) v[i]);
        printf("]");
}

static void print_json_string(const char *s) {
        putchar('"');
        for (; *s; s++) {
                unsigned char ch = (unsigned char) *s;
                if (ch == '"' || ch == '\\')
                        printf("\\%c", ch);
                else if (ch < 0x20)
                        printf("\\u%04x", ch);
                else
                        putchar(ch);
        }
        putchar('"');
}

static void usage(void) {
        fprintf(stderr,
                "usage: moabench --url URL [--unix PATH] [--body JSON | --body-file F] [-n N] [-c C]\n"
                "                [--warmup W] [--max-seconds S] [--timeout-ms T] [--stream]\n"
                "                [--expect STRING] [--abort-after-first-token]\n"
                "                [--header 'Name: value']...\n");
}

static long parse_long(const char *s, long lo, long hi) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || *end || v < lo || v > hi)
                return -1;
        return v;
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                {"url", required_argument, NULL, 'u'},
                {"unix", required_argument, NULL, 'U'},
                {"body", required_argument, NULL, 'b'},
                {"body-file", required_argument, NULL, 'B'},
                {"requests", required_argument, NULL, 'n'},
                {"concurrency", required_argument, NULL, 'c'},
                {"warmup", required_argument, NULL, 'w'},
                {"max-seconds", required_argument, NULL, 't'},
                {"timeout-ms", required_argument, NULL, 'T'},
                {"stream", no_argument, NULL, 's'},
                {"expect", required_argument, NULL, 'e'},
                {"abort-after-first-token", no_argument, NULL, 'a'},
                {"header", required_argument, NULL, 'H'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        Options o = {.n = 100, .concurrency = 1, .warmup = 0, .max_seconds = 60, .timeout_ms = 30000};
        Stats st = {};
        Slot *slots = NULL;
        CURLM *multi = NULL;
        int opt, r = 1;

        while ((opt = getopt_long(argc, argv, "n:c:h", longopts, NULL)) != -1) {
                switch (opt) {
                case 'u':
                        o.url = optarg;
                        break;
                case 'U':
                        o.unix_path = optarg;
                        break;
                case 'b':
                        free(o.body);
                        o.body = strdup(optarg);
                        if (!o.body)
                                return 1;
                        o.body_len = strlen(o.body);
                        break;
                case 'B':
                        free(o.body);
                        o.body = NULL;
                        if (read_file(optarg, &o.body, &o.body_len) < 0) {
                                fprintf(stderr, "moabench: cannot read %s\n", optarg);
                                return 1;
                        }
                        break;
                case 'n':
                        o.n = parse_long(optarg, 1, MAX_REQUESTS);
                        break;
                case 'c':
                        o.concurrency = parse_long(optarg, 1, MAX_CONCURRENCY);
                        break;
                case 'w':
                        o.warmup = parse_long(optarg, 0, MAX_REQUESTS);
                        break;
                case 't':
                        o.max_seconds = strtod(optarg, NULL);
                        break;
                case 'T':
                        o.timeout_ms = parse_long(optarg, 1, 3600000);
                        break;
                case 's':
                        o.stream = 1;
                        break;
                case 'e':
                        o.expect = optarg;
                        break;
                case 'a':
                        o.abort_first = 1;
                        o.stream = 1;
                        break;
                case 'H':
                        /* "Name: value", one line: curl would send anything */
                        if (o.n_headers >= MAX_HEADERS ||
                            strnlen(optarg, MAX_HEADER_LEN + 1) > MAX_HEADER_LEN || !strchr(optarg, ':') ||
                            optarg[0] == ':' || strpbrk(optarg, "\r\n")) {
                                fprintf(stderr,
                                        "moabench: bad or too many --header (at most %d 'Name: value')\n",
                                        MAX_HEADERS);
                                free(o.body);
                                return 2;
                        }
                        o.headers[o.n_headers++] = optarg;
                        break;
                case 'h':
                        usage();
                        return 0;
                default:
                        usage();
                        free(o.body);
                        return 2;
                }
        }
        if (!o.url || o.n < 0 || o.concurrency < 0 || o.warmup < 0 || o.timeout_ms < 0 ||
            !(o.max_seconds > 0 && o.max_seconds <= 3600)) {
                usage();
                free(o.body);
                return 2;
        }

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return 1;
        multi = curl_multi_init();
        slots = calloc((size_t) o.concurrency, sizeof *slots);
        st.lat_us = calloc((size_t) o.n, sizeof *st.lat_us);
        st.ttft_us = calloc((size_t) o.n, sizeof *st.ttft_us);
        if (!multi || !slots || !st.lat_us || !st.ttft_us)
                goto out;
        /* Keep one idle connection per slot so every request can reuse one. */
        curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, o.concurrency + 8);
        for (long i = 0; i < o.concurrency; i++)
                if (slot_init(&slots[i], &o) < 0)
                        goto out;

        uint64_t t0 = now_ns();
        uint64_t deadline = t0 + (uint64_t) (o.max_seconds * 1e9);
        if (o.warmup > 0 && run_phase(multi, slots, o.warmup, &o, &st, 0, deadline) < 0)
                goto out;
        uint64_t t1 = now_ns();
        if (run_phase(multi, slots, o.n, &o, &st, 1, deadline) < 0)
                goto out;
        uint64_t t2 = now_ns();

        double wall = (double) (t2 - t1) / 1e9;
        printf("{\"requests\":%ld,\"ok\":%ld,\"errors\":%ld,\"timeouts\":%ld,\"curl_errors\":%ld,", st.done,
               st.ok, st.errors, st.timeouts, st.curl_errors);
        printf("\"status\":{\"other\":%ld,\"1xx\":%ld,\"2xx\":%ld,\"3xx\":%ld,\"4xx\":%ld,\"5xx\":%ld},",
               st.status[0], st.status[1], st.status[2], st.status[3], st.status[4], st.status[5]);
        printf("\"concurrency\":%ld,\"warmup\":%ld,\"wall_s\":%.6f,\"rps\":%.3f,\"bytes\":%llu,"
               "\"truncated_by_time\":%s,",
               o.concurrency, o.warmup, wall, wall > 0 ? (double) st.done / wall : 0.0,
               (unsigned long long) st.bytes, st.done < o.n ? "true" : "false");
        printf("\"first_error\":");
        print_json_string(st.first_error);
        printf(",");
        print_array("lat_us", st.lat_us, st.n_lat);
        printf(",");
        print_array("ttft_us", st.ttft_us, st.n_ttft);
        printf("}\n");
        r = 0;
out:
        if (r)
                fprintf(stderr, "moabench: setup or transfer failure\n");
        for (long i = 0; slots && i < o.concurrency; i++) {
                if (slots[i].active && multi)
                        curl_multi_remove_handle(multi, slots[i].easy);
                slot_free(&slots[i]);
        }
        free(slots);
        if (multi)
                curl_multi_cleanup(multi);
        curl_global_cleanup();
        free(st.lat_us);
        free(st.ttft_us);
        free(o.body);
        return r;
}
