/* cmd-jobs.c — moad's batch jobs (the Batches API): "moactl jobs" lists
 * them (and the ingest jobs, cmd-ingest-jobs.c), "jobs show ID" and "jobs
 * cancel ID", and "moactl batch --server" uploads a file, creates a batch,
 * follows it and writes its output. */
#include <fcntl.h>
#include <libgen.h>
#include <time.h>

#include "file-read.h"
#include "utf8.h"
#include "moactl.h"

#define JOBS_DEFAULT_TIMEOUT_SEC 30L
#define JOBS_LIST_LIMIT 100
#define JOBS_POLL_MSEC 500L
#define JOBS_PLAIN_PROGRESS_SEC 5ULL
#define JOBS_MAX_INPUT (1024U * 1024U * 1024U) /* moad refuses more anyway (jobs.max_upload_bytes) */
#define JOBS_ENDPOINT "/v1/chat/completions"

static long jobs_timeout(const Moactl *m) {
        return m->timeout_sec >= 0 ? m->timeout_sec : JOBS_DEFAULT_TIMEOUT_SEC;
}

void jobs_fmt_time(char *buf, size_t n, const json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        time_t t;
        struct tm tm;

        if (!json_is_integer(v)) {
                snprintf(buf, n, "-");
                return;
        }
        t = (time_t) json_integer_value(v);
        if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                snprintf(buf, n, "?");
}

static void fmt_counts(char *buf, size_t n, const json_t *batch) {
        const json_t *c = json_object_get(batch, "request_counts");

        snprintf(buf, n, "%lld/%lld", json_int(c, "completed", 0) + json_int(c, "failed", 0),
                 json_int(c, "total", 0));
}

int jobs_table_add(Table *t, const json_t *job, const char *done, long long failed) {
        char failed_s[24], created[32];
        const char *cells[6];

        snprintf(failed_s, sizeof failed_s, "%lld", failed);
        jobs_fmt_time(created, sizeof created, job, "created_at");
        cells[0] = json_str(job, "id", "?");
        cells[1] = json_str(job, "status", "?");
        cells[2] = done;
        cells[3] = failed_s;
        cells[4] = created;
        cells[5] = json_str(job, "moa_owner", "-");
        return table_add(t, cells);
}

static int jobs_list(const Moactl *m) {
        static const char *const headers[] = {"ID", "STATUS", "DONE", "FAILED", "CREATED (UTC)", "OWNER"};
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        char path[64];
        size_t i, n_ingest = 0;
        json_t *v;
        int code;

        snprintf(path, sizeof path, "/v1/batches?limit=%d", JOBS_LIST_LIMIT);
        code = ctl_call_json(m, "GET", path, NULL, jobs_timeout(m), &reply, &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        if (m->json) {
                print_raw(&reply);
                return MOACTL_EXIT_OK;
        }
        t = table_new(ELEMENTSOF(headers), headers);
        if (!t)
                return MOACTL_EXIT_FAILED;
        json_array_foreach(json_object_get(root, "data"), i, v) {
                char done[48];

                fmt_counts(done, sizeof done, v);
                if (jobs_table_add(t, v, done, json_int(json_object_get(v, "request_counts"), "failed", 0)) <
                    0)
                        return MOACTL_EXIT_FAILED;
        }
        code = ingest_jobs_rows(m, t, &n_ingest);
        if (code != MOACTL_EXIT_OK)
                return code;
        if (json_array_size(json_object_get(root, "data")) + n_ingest == 0)
                fputs("no batch jobs\n", stdout);
        else
                table_print(t, stdout, 0);
        if (json_is_true(json_object_get(root, "has_more")))
                printf("(only the newest %d shown; see GET /v1/batches?after=ID)\n", JOBS_LIST_LIMIT);
        return MOACTL_EXIT_OK;
}

static void show_field(const char *name, const char *value) {
        printf("%-15s ", name);
        print_sanitized(stdout, value, strlen(value));
        fputc('\n', stdout);
}

static void batch_print(const json_t *b) {
        static const struct {
                const char *label, *key;
        } times[] = {{"created:", "created_at"},     {"in progress:", "in_progress_at"},
                     {"completed:", "completed_at"}, {"cancelled:", "cancelled_at"},
                     {"failed:", "failed_at"},       {"expired:", "expired_at"},
                     {"expires:", "expires_at"}};
        const json_t *c = json_object_get(b, "request_counts");
        const json_t *errors = json_object_get(json_object_get(b, "errors"), "data");
        char buf[128];
        const json_t *v;
        size_t i;

        show_field("id:", json_str(b, "id", "?"));
        show_field("status:", json_str(b, "status", "?"));
        show_field("owner:", json_str(b, "moa_owner", "-"));
        snprintf(buf, sizeof buf, "%lld total, %lld answered, %lld failed", json_int(c, "total", 0),
                 json_int(c, "completed", 0), json_int(c, "failed", 0));
        show_field("requests:", buf);
        show_field("input file:", json_str(b, "input_file_id", "-"));
        show_field("output file:", json_str(b, "output_file_id", "-"));
        show_field("error file:", json_str(b, "error_file_id", "-"));
        for (i = 0; i < ELEMENTSOF(times); i++) {
                if (!json_is_integer(json_object_get(b, times[i].key)))
                        continue;
                jobs_fmt_time(buf, sizeof buf, b, times[i].key);
                strncat(buf, " UTC", sizeof buf - strlen(buf) - 1);
                show_field(times[i].label, buf);
        }
        json_array_foreach(errors, i, v) show_field("error:", json_str(v, "message", "?"));
}

/* The batch path of @id (escaped), or a usage error. */
static int batch_path(const char *id, const char *suffix, char **ret) {
        _cleanup_free_ char *esc = NULL;

        if (ctl_escape(id, &esc) < 0)
                return usage_error("bad job id: %s", id);
        if (asprintf(ret, "/v1/batches/%s%s", esc, suffix) < 0)
                return MOACTL_EXIT_FAILED;
        return MOACTL_EXIT_OK;
}

static int jobs_show(const Moactl *m, const char *id, int cancel) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_free_ char *path = NULL;
        const json_t *c;
        int code;

        code = batch_path(id, cancel ? "/cancel" : "", &path);
        if (code != MOACTL_EXIT_OK)
                return code;
        code = ctl_call_json(m, cancel ? "POST" : "GET", path, cancel ? "{}" : NULL, jobs_timeout(m), &reply,
                             &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        if (m->json)
                print_raw(&reply);
        else if (cancel) {
                c = json_object_get(root, "request_counts");
                fputs("cancelled ", stdout);
                print_sanitized(stdout, json_str(root, "id", "?"), strlen(json_str(root, "id", "?")));
                printf(": %lld of %lld requests answered, %lld failed\n", json_int(c, "completed", 0),
                       json_int(c, "total", 0), json_int(c, "failed", 0));
        } else
                batch_print(root);
        return MOACTL_EXIT_OK;
}

int cmd_jobs(const Moactl *m, int argc, char **argv) {
        if (argc == 0)
                return jobs_list(m);
        if (argc == 2 && (streq(argv[0], "show") || streq(argv[0], "cancel")))
                return strncmp(argv[1], "ingest_", 7) == 0
                               ? ingest_job_show(m, argv[1], streq(argv[0], "cancel"))
                               : jobs_show(m, argv[1], streq(argv[0], "cancel"));
        if (argc >= 1 && (streq(argv[0], "show") || streq(argv[0], "cancel")))
                return usage_error("jobs %s needs exactly one job id", argv[0]);
        return usage_error("jobs takes no operand, or 'show ID' or 'cancel ID'");
}

/* ---- batch --server ---- */

/* IN as an upload: JSONL as it is, with @model put into bodies that name
 * none; a file of plain questions turned into JSONL lines "line-N" (N its
 * line number), as "moactl batch" does. Blank lines are kept, so moad's
 * line numbers are IN's. */
static int input_to_jsonl(const char *data, size_t len, const char *model, char **ret, size_t *ret_len) {
        _cleanup_free_ char *out = NULL;
        size_t out_len = 0, out_cap = 0, off = 0, line_no = 0;
        int decided = 0, jsonl = 0;
        FILE *f;

        f = open_memstream(&out, &out_cap);
        if (!f)
                return -ENOMEM;
        if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
                off = 3;
        while (off < len) {
                const char *p = data + off, *nl = memchr(p, '\n', len - off);
                size_t n = nl ? (size_t) (nl - p) : len - off, skip = 0;
                _cleanup_(json_decrefp) json_t *o = NULL;
                _cleanup_free_ char *s = NULL;

                off += n + (nl ? 1 : 0);
                line_no++;
                if (n > 0 && p[n - 1] == '\r')
                        n--;
                while (skip < n && strchr(" \t\f\v", p[skip]))
                        skip++;
                if (skip == n) {
                        fputc('\n', f);
                        continue;
                }
                if (!decided) {
                        decided = 1;
                        jsonl = p[skip] == '{';
                }
                if (jsonl) {
                        json_t *body;
                        o = json_loadb(p, n, 0, NULL);
                        body = json_object_get(o, "body");
                        if (json_is_object(body) && !json_object_get(body, "model"))
                                json_object_set_new(body, "model", json_string(model));
                } else if (utf8_valid(p, n) && !memchr(p, '\0', n)) {
                        char id[32];
                        snprintf(id, sizeof id, "line-%zu", line_no);
                        o = json_pack("{s:s,s:s,s:s,s:{s:s,s:[{s:s,s:s%}]}}", "custom_id", id, "method",
                                      "POST", "url", JOBS_ENDPOINT, "body", "model", model, "messages",
                                      "role", "user", "content", p, n);
                }
                s = o ? json_dumps(o, JSON_COMPACT) : NULL;
                if (s)
                        fputs(s, f);
                else
                        fwrite(p, 1, n, f); /* as it is: moad names what is wrong with it */
                fputc('\n', f);
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        out_len = out_cap;
        *ret = TAKE_PTR(out);
        *ret_len = out_len;
        return 0;
}

static void progress(const json_t *b, int tty, int final) {
        const json_t *c = json_object_get(b, "request_counts");
        long long total = json_int(c, "total", 0), ok = json_int(c, "completed", 0),
                  failed = json_int(c, "failed", 0);

        if (tty)
                fputs("\r\033[K", stderr);
        fprintf(stderr, "moactl: batch %s: %s, %lld of %lld done", json_str(b, "id", "?"),
                json_str(b, "status", "?"), ok + failed, total);
        if (failed > 0)
                fprintf(stderr, " (%lld failed)", failed);
        if (!tty || final)
                fputc('\n', stderr);
        fflush(stderr);
}

static int status_final(const char *s) {
        return streq(s, "completed") || streq(s, "failed") || streq(s, "cancelled") || streq(s, "expired");
}

/* Appends the content of file @id (if any) to @fd. */
static int append_file(const Moactl *m, const char *id, int fd) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_free_ char *esc = NULL, *path = NULL;
        size_t off = 0;
        int code;

        if (!id)
                return MOACTL_EXIT_OK;
        if (ctl_escape(id, &esc) < 0 || asprintf(&path, "/v1/files/%s/content", esc) < 0)
                return MOACTL_EXIT_FAILED;
        code = ctl_call(m, "GET", path, NULL, jobs_timeout(m), &reply);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        while (off < reply.size) {
                ssize_t k = write(fd, reply.body + off, reply.size - off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += (size_t) k;
        }
        return MOACTL_EXIT_OK;
}

static int write_output(const Moactl *m, const json_t *b, const char *output) {
        _cleanup_close_ int fd = -1;
        int code;

        fd = open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
                fprintf(stderr, "moactl: cannot create %s: %s\n", output, strerror(errno));
                return MOACTL_EXIT_FAILED;
        }
        code = append_file(m, json_str(b, "output_file_id", NULL), fd);
        if (code == MOACTL_EXIT_OK)
                code = append_file(m, json_str(b, "error_file_id", NULL), fd);
        if (code < 0 || (code == MOACTL_EXIT_OK && fsync(fd) < 0)) {
                fprintf(stderr, "moactl: cannot write %s: %s\n", output, strerror(code < 0 ? -code : errno));
                code = MOACTL_EXIT_FAILED;
        }
        if (code != MOACTL_EXIT_OK)
                (void) unlink(output);
        return code;
}

int batch_on_server(const Moactl *m, const char *input, const char *output, const char *model, int quiet) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *file = NULL, *batch = NULL, *req = NULL;
        _cleanup_free_ char *data = NULL, *upload = NULL, *body = NULL, *path = NULL, *in_copy = NULL;
        size_t len, upload_len;
        uint64_t last = 0;
        long long failed;
        const char *status;
        int tty = isatty(STDERR_FILENO), code, r;

        if (access(output, F_OK) == 0)
                return usage_error("%s exists: remove it, or name another OUT", output);
        r = text_read_file(input, JOBS_MAX_INPUT, &data, &len);
        if (r < 0) {
                fprintf(stderr, "moactl: cannot read %s: %s\n", input, strerror(-r));
                return MOACTL_EXIT_FAILED;
        }
        in_copy = strdup(input);
        if (!in_copy || input_to_jsonl(data, len, model, &upload, &upload_len) < 0) {
                fputs("moactl: out of memory\n", stderr);
                return MOACTL_EXIT_FAILED;
        }
        code = ctl_upload(m, "/v1/files", "batch", basename(in_copy), upload, upload_len, jobs_timeout(m),
                          &reply);
        if (code == MOACTL_EXIT_OK)
                code = reply_json(&reply, &file);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        reply_done(&reply);

        req = json_pack("{s:s,s:s,s:s}", "input_file_id", json_str(file, "id", ""), "endpoint",
                        JOBS_ENDPOINT, "completion_window", "24h");
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        if (!body)
                return MOACTL_EXIT_FAILED;
        code = ctl_call_json(m, "POST", "/v1/batches", body, jobs_timeout(m), &reply, &batch);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        reply_done(&reply);
        if (!quiet)
                fprintf(stderr,
                        "moactl: batch %s submitted (%lld requests); 'moactl jobs show %s' follows it\n",
                        json_str(batch, "id", "?"),
                        json_int(json_object_get(batch, "request_counts"), "total", 0),
                        json_str(batch, "id", "?"));
        code = batch_path(json_str(batch, "id", ""), "", &path);
        if (code != MOACTL_EXIT_OK)
                return code;

        for (;;) {
                status = json_str(batch, "status", "?");
                if (status_final(status))
                        break;
                if (!quiet && (tty || now_usec() - last >= JOBS_PLAIN_PROGRESS_SEC * USEC_PER_SEC)) {
                        progress(batch, tty, 0);
                        last = now_usec();
                }
                (void) nanosleep(&(struct timespec){.tv_nsec = JOBS_POLL_MSEC * 1000000L}, NULL);
                json_decref(TAKE_PTR(batch));
                code = ctl_call_json(m, "GET", path, NULL, jobs_timeout(m), &reply, &batch);
                if (code != MOACTL_EXIT_OK)
                        return ctl_fail(&reply, code);
                reply_done(&reply);
        }
        if (!quiet)
                progress(batch, tty, 1);
        if (streq(status, "failed")) {
                const json_t *e =
                        json_array_get(json_object_get(json_object_get(batch, "errors"), "data"), 0);
                fprintf(stderr, "moactl: batch %s failed: %s\n", json_str(batch, "id", "?"),
                        json_str(e, "message", "no reason given"));
                return MOACTL_EXIT_FAILED;
        }
        code = write_output(m, batch, output);
        if (code != MOACTL_EXIT_OK)
                return code;
        if (!streq(status, "completed")) {
                fprintf(stderr, "moactl: batch %s was %s; %s holds the lines answered before\n",
                        json_str(batch, "id", "?"), status, output);
                return MOACTL_EXIT_FAILED;
        }
        failed = json_int(json_object_get(batch, "request_counts"), "failed", 0);
        return failed > 0 ? MOACTL_EXIT_PARTIAL : MOACTL_EXIT_OK;
}
