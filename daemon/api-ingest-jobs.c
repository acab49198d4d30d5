/* api-ingest-jobs.c — server-side ingest jobs over HTTP:
 * POST /v1/moa/ingest-jobs ({"agent", "path"}: admin only, path below
 * jobs.ingest_roots), GET /v1/moa/ingest-jobs[/{id}], POST
 * /v1/moa/ingest-jobs/{id}/cancel. Validation and the response shapes; the
 * work is jobs-ingest.c's. */
#include <sys/stat.h>
#include <time.h>

#include "agents.h"
#include "jobs-ingest.h"
#include "jobs.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define INGEST_JOBS_LIST_MAX 100u
#define INGEST_JOB_MAX_PATH 4095u

/* The stored row as the API's job object. */
static json_t *job_object(const json_t *row) {
        static const char *const copied[] = {"id",           "agent",     "path",        "status",
                                             "total",        "error",     "created_at",  "in_progress_at",
                                             "completed_at", "failed_at", "cancelled_at"};
        static const char *const counts[] = {"added",   "replaced", "unchanged",
                                             "removed", "refused",  "failed"};
        json_t *o = json_object(), *c = json_object();

        if (!o || !c) {
                json_decref(o);
                json_decref(c);
                return NULL;
        }
        json_object_set_new(o, "object", json_string("moa.ingest_job"));
        for (size_t i = 0; i < ELEMENTSOF(copied); i++) {
                json_t *v = json_object_get(row, copied[i]);
                json_object_set(o, copied[i], v ? v : json_null());
        }
        for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
                json_t *v = json_object_get(row, counts[i]);
                json_object_set(c, counts[i], v ? v : json_integer(0));
        }
        json_object_set_new(o, "counts", c);
        json_object_set(o, "moa_owner", json_object_get(row, "owner"));
        return o;
}

static void jobs_create(Server *s, HttpRequest *req) {
        const JobsConfig *jc = &s->runtime->config->jobs;
        JobsStore *st = jobs_store(s->jobs);
        json_auto_t *j = NULL, *row = NULL;
        _cleanup_free_ char *real = NULL, *root = NULL;
        const char *agent, *path, *body;
        char id[64], owner[64];
        json_error_t jerr;
        struct stat sb;
        size_t len;
        int r;

        /* moad reads the files with its own rights: only those trusted with
         * its configuration may point it at a directory. */
        if (!api_job_is_admin(s, req)) {
                http_reply_error(
                        req, 403, "permission_error", NULL, "forbidden",
                        "server-side ingest needs admin rights (root, moad's user or access.admin)");
                return;
        }
        if (jc->n_ingest_roots == 0) {
                http_reply_error(req, 403, "permission_error", NULL, "ingest_roots_unset",
                                 "server-side ingest is off: jobs.ingest_roots in moad.yaml lists no "
                                 "directory moad may read");
                return;
        }
        body = http_request_body(req, &len);
        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(j)) {
                http_reply_error(req, 400, "invalid_request_error", NULL, "invalid_json",
                                 "body must be a JSON object {\"agent\", \"path\"}: %s",
                                 j ? "not an object" : jerr.text);
                return;
        }
        agent = json_string_value(json_object_get(j, "agent"));
        path = json_string_value(json_object_get(j, "path"));
        if (isempty(agent) || !agents_find(s->runtime->agents, agent)) {
                http_reply_error(req, 404, "invalid_request_error", "agent", "agent_not_found",
                                 "no agent named '%.128s'", agent ?: "");
                return;
        }
        if (!path || path[0] != '/' || strlen(path) > INGEST_JOB_MAX_PATH) {
                http_reply_error(req, 400, "invalid_request_error", "path", NULL,
                                 "'path' must be an absolute directory path of at most %u bytes",
                                 INGEST_JOB_MAX_PATH);
                return;
        }
        real = realpath(path, NULL);
        if (!real || stat(real, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
                http_reply_error(req, 400, "invalid_request_error", "path", NULL, "'%.200s': %s", path,
                                 real ? "not a directory" : strerror(errno));
                return;
        }
        r = ingest_root_of(jc->ingest_roots, jc->n_ingest_roots, real, &root);
        if (r == -EPERM) {
                http_reply_error(req, 403, "permission_error", "path", "path_not_allowed",
                                 "'%.200s' (%.200s) is not below a directory of jobs.ingest_roots", path,
                                 real);
                return;
        }
        if (r < 0)
                return api_reply_store_error(req, r, "check the path");

        api_job_owner(req, owner, sizeof owner);
        jobs_make_id("ingest_", id, sizeof id);
        r = jobs_store_ingest_add(st, id, owner, agent, real, (int64_t) time(NULL));
        if (r >= 0)
                r = ingest_jobs_submit(jobs_ingest(s->jobs), id);
        if (r >= 0)
                r = jobs_store_ingest_get(st, id, &row);
        if (r < 0)
                return api_reply_store_error(req, r, "store the ingest job");
        log_full(LOG_LEVEL_INFO, 0, http_request_id(req), "ingest job %s of %s queued: sync %s into %s", id,
                 owner, real, agent);
        http_reply_json(req, 200, job_object(row));
}

static void jobs_list(Server *s, HttpRequest *req) {
        json_auto_t *rows = NULL;
        json_t *data, *v;
        char owner[64];
        size_t i;
        int r;

        api_job_owner(req, owner, sizeof owner);
        r = jobs_store_ingest_list(jobs_store(s->jobs), api_job_is_admin(s, req) ? NULL : owner,
                                   INGEST_JOBS_LIST_MAX, &rows);
        if (r < 0)
                return api_reply_store_error(req, r, "list ingest jobs");
        data = json_array();
        json_array_foreach(rows, i, v) json_array_append_new(data, job_object(v));
        http_reply_json(req, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

static json_t *job_lookup(Server *s, HttpRequest *req, const char *id) {
        json_t *row = NULL;
        int r = jobs_store_ingest_get(jobs_store(s->jobs), id, &row);

        return api_job_row(s, req, "ingest_job", id, r, row);
}

static void job_cancel(Server *s, HttpRequest *req, const char *id) {
        json_auto_t *row = job_lookup(s, req, id), *after = NULL;
        int r;

        if (!row)
                return;
        r = ingest_jobs_cancel(jobs_ingest(s->jobs), id);
        if (r == -EALREADY) {
                http_reply_error(req, 409, "invalid_request_error", "ingest_job_id", "job_ended",
                                 "ingest job %.100s has already ended (%s)", id,
                                 json_string_value(json_object_get(row, "status")) ?: "?");
                return;
        }
        if (r >= 0)
                r = jobs_store_ingest_get(jobs_store(s->jobs), id, &after);
        if (r < 0)
                return api_reply_store_error(req, r, "cancel the ingest job");
        http_reply_json(req, 200, job_object(after));
}

static void job_get(Server *s, HttpRequest *req, const char *id) {
        json_t *row = job_lookup(s, req, id);

        if (row) {
                http_reply_json(req, 200, job_object(row));
                json_decref(row);
        }
}

/* @rest: what follows "/v1/moa/ingest-jobs" in the path. */
void api_ingest_jobs(Server *s, HttpRequest *req, const char *rest) {
        static const ApiJobRoutes routes = {
                .what = "ingest job",
                .create = jobs_create,
                .list = jobs_list,
                .get = job_get,
                .cancel = job_cancel,
        };

        api_job_routes(s, req, rest, &routes);
}
