/* cmd-docs.c — an agent's knowledge from the command line: ingest files
 * (one request per file, progress on stderr, going on past failures),
 * list the documents, delete one by title. */
#include <libgen.h>
#include <strings.h>
#include <time.h>

#include "file-text.h"
#include "moactl.h"

#define DOCS_DEFAULT_TIMEOUT_SEC 30L
#define INGEST_DEFAULT_TIMEOUT_SEC 600L

/* The one agent these commands work on: exactly one --agent. */
static int one_agent(const Moactl *m, const char *cmd, char **ret_escaped) {
        int r;

        if (m->n_agents != 1)
                return usage_error("%s needs exactly one --agent NAME", cmd);
        if (isempty(m->agents[0]))
                return usage_error("the agent name is empty");
        r = ctl_escape(m->agents[0], ret_escaped);
        if (r < 0)
                return usage_error("bad agent name: %s", strerror(-r));
        return MOACTL_EXIT_OK;
}

static int has_suffix_ci(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/* Builds the ingest body for @path; on failure fills @err and returns <0. */
static int build_document(const char *path, char **ret_body, char *err, size_t errlen) {
        _cleanup_free_ char *abs = NULL, *text = NULL, *copy = NULL;
        _cleanup_(json_decrefp) json_t *doc = NULL;
        size_t len = 0;
        char *body;
        int r;

        abs = realpath(path, NULL);
        if (!abs) {
                r = -errno;
                snprintf(err, errlen, "%s", strerror(-r));
                return r;
        }

        if (has_suffix_ci(path, ".pdf")) {
                r = text_from_pdf(abs, MOACTL_MAX_INGEST_FILE, &text, &len);
                if (r == -ENOPKG)
                        snprintf(err, errlen,
                                 "cannot read PDF files: pdftotext not found (install poppler-utils)");
                else if (r == -EBADMSG)
                        snprintf(err, errlen, "pdftotext could not extract text from it");
        } else
                r = text_read_file(abs, MOACTL_MAX_INGEST_FILE, &text, &len);
        if (r == -EFBIG)
                snprintf(err, errlen, "larger than %u MiB", MOACTL_MAX_INGEST_FILE >> 20);
        else if (r < 0 && r != -ENOPKG && r != -EBADMSG)
                snprintf(err, errlen, "%s", strerror(-r));
        if (r < 0)
                return r;

        if (memchr(text, '\0', len)) {
                snprintf(err, errlen, "looks like a binary file (contains NUL bytes)");
                return -EMEDIUMTYPE;
        }
        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        doc = json_object();
        if (!doc)
                return -ENOMEM;
        if (json_object_set_new(doc, "title", json_string(basename(copy))) < 0 ||
            json_object_set_new(doc, "source", json_string(abs)) < 0) {
                snprintf(err, errlen, "file name is not valid UTF-8");
                return -EINVAL;
        }
        if (json_object_set_new(doc, "text", json_stringn(text, len)) < 0) {
                snprintf(err, errlen, "not UTF-8 text");
                return -EMEDIUMTYPE;
        }
        body = json_dumps(doc, JSON_COMPACT);
        if (!body) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        *ret_body = body;
        return 0;
}

static void progress(size_t i, size_t n, const char *file, const char *fmt, ...) _printf_(4, 5);
static void progress(size_t i, size_t n, const char *file, const char *fmt, ...) {
        char msg[1200];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        fprintf(stderr, "[%zu/%zu] ", i, n);
        print_sanitized(stderr, file, strlen(file));
        fputs(": ", stderr);
        print_sanitized(stderr, msg, strlen(msg));
        fputc('\n', stderr);
}

int cmd_ingest(const Moactl *m, int argc, char **argv) {
        _cleanup_free_ char *agent = NULL, *path = NULL;
        long timeout = m->timeout_sec >= 0 ? m->timeout_sec : INGEST_DEFAULT_TIMEOUT_SEC;
        size_t n = (size_t) argc, ok = 0, failed = 0;
        long long chunks = 0;
        int code;

        code = one_agent(m, "ingest", &agent);
        if (code != MOACTL_EXIT_OK)
                return code;
        if (argc < 1)
                return usage_error("ingest needs at least one FILE");
        if (asprintf(&path, "/v1/moa/agents/%s/documents", agent) < 0) {
                path = NULL;
                return MOACTL_EXIT_FAILED;
        }

        for (size_t i = 0; i < n; i++) {
                _cleanup_(reply_done) Reply reply = {};
                _cleanup_(json_decrefp) json_t *root = NULL;
                _cleanup_free_ char *body = NULL;
                char err[512] = "";
                long long c;

                if (build_document(argv[i], &body, err, sizeof(err)) < 0) {
                        progress(i + 1, n, argv[i], "error: %s", err[0] ? err : "cannot read");
                        failed++;
                        continue;
                }

                code = ctl_call_json(m, "POST", path, body, timeout, &reply, &root);
                if (code == MOACTL_EXIT_CONNECT || code == MOACTL_EXIT_USAGE ||
                    (code == MOACTL_EXIT_FAILED && reply.status == 403))
                        /* Every further file would fail the same way. */
                        return ctl_fail(&reply, code);
                if (code != MOACTL_EXIT_OK) {
                        progress(i + 1, n, argv[i], "error: %s", reply.error);
                        failed++;
                        continue;
                }
                if (m->json)
                        print_raw(&reply);
                c = json_int(root, "chunks", -1);
                progress(i + 1, n, argv[i], "%lld chunk%s%s", c < 0 ? 0 : c, c == 1 ? "" : "s",
                         json_is_true(json_object_get(root, "replaced")) ? " (replaced)" : "");
                if (c > 0)
                        chunks += c;
                ok++;
        }

        fprintf(stderr, "ingested %zu of %zu file%s into agent ", ok, n, n == 1 ? "" : "s");
        print_sanitized(stderr, m->agents[0], strlen(m->agents[0]));
        fprintf(stderr, " (%lld chunk%s)", chunks, chunks == 1 ? "" : "s");
        if (failed > 0)
                fprintf(stderr, "; %zu failed", failed);
        fputc('\n', stderr);
        return failed > 0 ? MOACTL_EXIT_FAILED : MOACTL_EXIT_OK;
}

static void format_time(char *buf, size_t n, const json_t *v) {
        if (json_is_string(v)) {
                snprintf(buf, n, "%s", json_string_value(v));
                return;
        }
        if (json_is_number(v)) {
                double d = json_number_value(v);
                struct tm tm;
                time_t t;

                /* Seconds since the epoch, bounded to what gmtime_r() can show. */
                if (d >= 0 && d < 253402300800.0) {
                        t = (time_t) d;
                        if (gmtime_r(&t, &tm) && strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm) > 0)
                                return;
                }
        }
        snprintf(buf, n, "-");
}

int cmd_documents(const Moactl *m, int argc, char **argv) {
        static const char *const headers[] = {"TITLE", "CHUNKS", "BYTES", "INGESTED (UTC)", "SOURCE"};
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *agent = NULL, *path = NULL;
        json_t *v;
        size_t i;
        int code;

        code = one_agent(m, "documents", &agent);
        if (code != MOACTL_EXIT_OK)
                return code;
        if (argc != 0)
                return usage_error("documents takes no operands");
        if (asprintf(&path, "/v1/moa/agents/%s/documents", agent) < 0) {
                path = NULL;
                return MOACTL_EXIT_FAILED;
        }
        code = ctl_call_json(m, "GET", path, NULL,
                             m->timeout_sec >= 0 ? m->timeout_sec : DOCS_DEFAULT_TIMEOUT_SEC, &reply, &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        if (m->json) {
                print_raw(&reply);
                return MOACTL_EXIT_OK;
        }

        t = table_new(ELEMENTSOF(headers), headers);
        if (!t)
                return MOACTL_EXIT_FAILED;
        json_array_foreach(json_object_get(root, "documents"), i, v) {
                char chunks[32], bytes[32], when[64];

                snprintf(chunks, sizeof(chunks), "%lld", json_int(v, "chunks", 0));
                snprintf(bytes, sizeof(bytes), "%lld", json_int(v, "bytes", 0));
                format_time(when, sizeof(when), json_object_get(v, "ingested_at"));
                const char *cells[] = {json_str(v, "title", "?"), chunks, bytes, when,
                                       json_str(v, "source", "-")};
                if (table_add(t, cells) < 0)
                        return MOACTL_EXIT_FAILED;
        }
        table_print(t, stdout, 0);
        return MOACTL_EXIT_OK;
}

int cmd_delete(const Moactl *m, int argc, char **argv) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_free_ char *agent = NULL, *title = NULL, *path = NULL;
        int code, r;

        code = one_agent(m, "delete", &agent);
        if (code != MOACTL_EXIT_OK)
                return code;
        if (argc != 1 || isempty(argv[0]))
                return usage_error("delete needs exactly one document TITLE");
        r = ctl_escape(argv[0], &title);
        if (r < 0)
                return usage_error("bad title: %s", strerror(-r));
        if (asprintf(&path, "/v1/moa/agents/%s/documents/%s", agent, title) < 0) {
                path = NULL;
                return MOACTL_EXIT_FAILED;
        }
        code = ctl_call_json(m, "DELETE", path, NULL,
                             m->timeout_sec >= 0 ? m->timeout_sec : DOCS_DEFAULT_TIMEOUT_SEC, &reply, &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        if (m->json) {
                print_raw(&reply);
                return json_is_true(json_object_get(root, "deleted")) ? MOACTL_EXIT_OK : MOACTL_EXIT_FAILED;
        }
        if (!json_is_true(json_object_get(root, "deleted"))) {
                fputs("moactl: moad did not delete the document\n", stderr);
                return MOACTL_EXIT_FAILED;
        }
        fputs("deleted \"", stdout);
        print_sanitized(stdout, argv[0], strlen(argv[0]));
        fputs("\" from agent ", stdout);
        print_sanitized(stdout, m->agents[0], strlen(m->agents[0]));
        fputc('\n', stdout);
        return MOACTL_EXIT_OK;
}
