/* cmd-ingest-jobs.c — moad's server-side ingest jobs from the command
 * line: "moactl ingest --sync DIR --server" creates one and follows it,
 * and "moactl jobs" lists, shows and cancels them next to the batches. */
#include <time.h>

#include "moactl.h"

#define INGEST_JOBS_TIMEOUT_SEC 30L
#define INGEST_JOBS_POLL_MSEC 500L
#define INGEST_JOBS_PROGRESS_SEC 5ULL

static long timeout(const Moactl *m) {
        return m->timeout_sec >= 0 ? m->timeout_sec : INGEST_JOBS_TIMEOUT_SEC;
}

static long long count(const json_t *job, const char *key) {
        return json_int(json_object_get(job, "counts"), key, 0);
}

/* Files done (every outcome but removals) of all the job found. */
static long long files_done(const json_t *job) {
        return count(job, "added") + count(job, "replaced") + count(job, "unchanged") +
               count(job, "refused") + count(job, "failed");
}

int ingest_jobs_rows(const Moactl *m, Table *t, size_t *ret_n) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL;
        json_t *v;
        size_t i;
        int code;

        *ret_n = 0;
        code = ctl_call_json(m, "GET", "/v1/moa/ingest-jobs", NULL, timeout(m), &reply, &root);
        if (code == MOACTL_EXIT_FAILED && reply.status == 404)
                return MOACTL_EXIT_OK; /* a moad without ingest jobs */
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        json_array_foreach(json_object_get(root, "data"), i, v) {
                char done[48], failed[24], created[32];
                const char *cells[6];

                snprintf(done, sizeof done, "%lld/%lld", files_done(v), json_int(v, "total", 0));
                snprintf(failed, sizeof failed, "%lld", count(v, "refused") + count(v, "failed"));
                jobs_fmt_time(created, sizeof created, v, "created_at");
                cells[0] = json_str(v, "id", "?");
                cells[1] = json_str(v, "status", "?");
                cells[2] = done;
                cells[3] = failed;
                cells[4] = created;
                cells[5] = json_str(v, "moa_owner", "-");
                if (table_add(t, cells) < 0)
                        return MOACTL_EXIT_FAILED;
                (*ret_n)++;
        }
        return MOACTL_EXIT_OK;
}

static void summary(FILE *f, const json_t *job) {
        const char *agent = json_str(job, "agent", "?");

        print_sanitized(f, agent, strlen(agent));
        fprintf(f, ": %lld added, %lld replaced, %lld unchanged, %lld refused, %lld removed",
                count(job, "added"), count(job, "replaced"), count(job, "unchanged"), count(job, "refused"),
                count(job, "removed"));
        if (count(job, "failed") > 0)
                fprintf(f, ", %lld failed", count(job, "failed"));
        fputc('\n', f);
}

static void show(const json_t *job) {
        static const struct {
                const char *label, *key;
        } fields[] = {{"id:", "id"},
                      {"status:", "status"},
                      {"agent:", "agent"},
                      {"directory:", "path"},
                      {"owner:", "moa_owner"}};
        static const struct {
                const char *label, *key;
        } times[] = {{"created:", "created_at"},
                     {"in progress:", "in_progress_at"},
                     {"completed:", "completed_at"},
                     {"cancelled:", "cancelled_at"},
                     {"failed:", "failed_at"}};
        char buf[64];

        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                const char *v = json_str(job, fields[i].key, "-");
                printf("%-15s ", fields[i].label);
                print_sanitized(stdout, v, strlen(v));
                fputc('\n', stdout);
        }
        printf("%-15s %lld of %lld done: ", "files:", files_done(job), json_int(job, "total", 0));
        summary(stdout, job);
        for (size_t i = 0; i < ELEMENTSOF(times); i++) {
                if (!json_is_integer(json_object_get(job, times[i].key)))
                        continue;
                jobs_fmt_time(buf, sizeof buf, job, times[i].key);
                printf("%-15s %s UTC\n", times[i].label, buf);
        }
        if (json_is_string(json_object_get(job, "error"))) {
                const char *e = json_str(job, "error", "");
                printf("%-15s ", "error:");
                print_sanitized(stdout, e, strlen(e));
                fputc('\n', stdout);
        }
}

int ingest_job_show(const Moactl *m, const char *id, int cancel) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_free_ char *esc = NULL, *path = NULL;
        int code;

        if (ctl_escape(id, &esc) < 0)
                return usage_error("bad job id: %s", id);
        if (asprintf(&path, "/v1/moa/ingest-jobs/%s%s", esc, cancel ? "/cancel" : "") < 0) {
                path = NULL;
                return MOACTL_EXIT_FAILED;
        }
        code = ctl_call_json(m, cancel ? "POST" : "GET", path, cancel ? "{}" : NULL, timeout(m), &reply,
                             &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        if (m->json)
                print_raw(&reply);
        else if (cancel) {
                fputs("cancelled ", stdout);
                print_sanitized(stdout, json_str(root, "id", "?"), strlen(json_str(root, "id", "?")));
                printf(": %lld of %lld files done\n", files_done(root), json_int(root, "total", 0));
        } else
                show(root);
        return MOACTL_EXIT_OK;
}

static int final(const char *status) {
        return streq(status, "completed") || streq(status, "failed") || streq(status, "cancelled");
}

int ingest_on_server(const Moactl *m, const char *agent, const char *dir) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *job = NULL, *req = NULL;
        _cleanup_free_ char *real = NULL, *body = NULL, *path = NULL;
        uint64_t last = 0;
        const char *status, *id;
        int code;

        /* moad resolves and checks it again, against its own roots. */
        real = realpath(dir, NULL);
        if (!real)
                return usage_error("--sync %s: %s", dir, strerror(errno));
        req = json_pack("{s:s,s:s}", "agent", agent, "path", real);
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        if (!body)
                return MOACTL_EXIT_FAILED;
        code = ctl_call_json(m, "POST", "/v1/moa/ingest-jobs", body, timeout(m), &reply, &job);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        id = json_str(job, "id", "?");
        fputs("moactl: ingest job ", stderr);
        print_sanitized(stderr, id, strlen(id));
        fputs(" submitted; 'moactl jobs show ", stderr);
        print_sanitized(stderr, id, strlen(id));
        fputs("' follows it\n", stderr);
        if (asprintf(&path, "/v1/moa/ingest-jobs/%s", id) < 0 || strcspn(id, "/?#%") != strlen(id)) {
                path = mfree(path);
                return MOACTL_EXIT_PROTOCOL;
        }
        for (;;) {
                status = json_str(job, "status", "?");
                if (final(status))
                        break;
                if (now_usec() - last >= INGEST_JOBS_PROGRESS_SEC * USEC_PER_SEC) {
                        fprintf(stderr, "moactl: ingest job %s: %s, %lld of %lld files done\n", id, status,
                                files_done(job), json_int(job, "total", 0));
                        last = now_usec();
                }
                (void) nanosleep(&(struct timespec){.tv_nsec = INGEST_JOBS_POLL_MSEC * 1000000L}, NULL);
                reply_done(&reply);
                json_decref(TAKE_PTR(job));
                code = ctl_call_json(m, "GET", path, NULL, timeout(m), &reply, &job);
                if (code != MOACTL_EXIT_OK)
                        return ctl_fail(&reply, code);
                id = json_str(job, "id", "?");
        }
        summary(stderr, job);
        if (!streq(status, "completed")) {
                const char *e = json_str(job, "error", NULL);
                fprintf(stderr, "moactl: ingest job %s %s", id, status);
                if (e) {
                        fputs(": ", stderr);
                        print_sanitized(stderr, e, strlen(e));
                }
                fputc('\n', stderr);
                return MOACTL_EXIT_FAILED;
        }
        return count(job, "refused") + count(job, "failed") > 0 ? MOACTL_EXIT_FAILED : MOACTL_EXIT_OK;
}
