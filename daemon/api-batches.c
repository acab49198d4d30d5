/* api-batches.c — OpenAI's Batches API: POST /v1/batches, GET /v1/batches,
 * GET /v1/batches/{id}, POST /v1/batches/{id}/cancel. Validation and the
 * response shapes; the work is jobs.c's. Also the routing of that shape
 * of job collection, which the ingest jobs share (api_job_routes()). */
#include <time.h>

#include "batch-input.h"
#include "jobs.h"
#include "log.h"
#include "server.h"
#include "util.h"

/* The one completion window OpenAI accepts; how long it lasts here is
 * jobs.batch_window_seconds (24 h unless shortened, e.g. for tests). */
#define BATCH_WINDOW "24h"
#define BATCH_MAX_METADATA_KEYS 16u
#define BATCH_MAX_METADATA_KEY 64u
#define BATCH_MAX_METADATA_VALUE 512u
#define BATCH_LIST_DEFAULT 20
#define BATCH_LIST_MAX 100

/* The stored row as OpenAI's batch object (plus "moa_owner"). */
static json_t *batch_object(const json_t *row) {
        static const char *const copied[] = {"id",
                                             "endpoint",
                                             "errors",
                                             "input_file_id",
                                             "completion_window",
                                             "status",
                                             "output_file_id",
                                             "error_file_id",
                                             "created_at",
                                             "in_progress_at",
                                             "expires_at",
                                             "finalizing_at",
                                             "completed_at",
                                             "failed_at",
                                             "expired_at",
                                             "cancelling_at",
                                             "cancelled_at",
                                             "metadata"};
        json_t *o = json_object();

        if (!o)
                return NULL;
        json_object_set_new(o, "object", json_string("batch"));
        for (size_t i = 0; i < ELEMENTSOF(copied); i++) {
                json_t *v = json_object_get(row, copied[i]);
                json_object_set(o, copied[i], v ? v : json_null());
        }
        json_object_set_new(o, "request_counts",
                            json_pack("{s:O,s:O,s:O}", "total", json_object_get(row, "total"), "completed",
                                      json_object_get(row, "completed"), "failed",
                                      json_object_get(row, "failed")));
        json_object_set(o, "moa_owner", json_object_get(row, "owner"));
        return o;
}

/* Up to 16 string pairs, bounded like OpenAI's. NULL @m is fine. */
static int metadata_valid(const json_t *m) {
        const char *k;
        json_t *v;

        if (!m || json_is_null(m))
                return 1;
        if (!json_is_object(m) || json_object_size(m) > BATCH_MAX_METADATA_KEYS)
                return 0;
        json_object_foreach((json_t *) m, k,
                            v) if (strlen(k) > BATCH_MAX_METADATA_KEY || !json_is_string(v) ||
                                   json_string_length(v) > BATCH_MAX_METADATA_VALUE) return 0;
        return 1;
}

static void batches_create(Server *s, HttpRequest *req) {
        JobsStore *st = jobs_store(s->jobs);
        json_auto_t *j = NULL, *file = NULL, *row = NULL;
        _cleanup_free_ char *meta = NULL;
        const char *input_id, *endpoint, *window, *purpose;
        const json_t *metadata;
        char id[64], owner[64];
        json_error_t jerr;
        const char *body;
        size_t len;
        long total;
        int64_t now;
        int r;

        body = http_request_body(req, &len);
        if (len > s->runtime->config->limits.max_body_bytes) {
                http_reply_error(req, 413, "invalid_request_error", NULL, "body_too_large",
                                 "request body exceeds the limit of %llu bytes",
                                 (unsigned long long) s->runtime->config->limits.max_body_bytes);
                return;
        }
        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(j)) {
                http_reply_error(req, 400, "invalid_request_error", NULL, "invalid_json",
                                 "body must be a JSON object {\"input_file_id\", \"endpoint\", "
                                 "\"completion_window\"}: %s",
                                 j ? "not an object" : jerr.text);
                return;
        }
        input_id = json_string_value(json_object_get(j, "input_file_id"));
        endpoint = json_string_value(json_object_get(j, "endpoint"));
        window = json_string_value(json_object_get(j, "completion_window"));
        metadata = json_object_get(j, "metadata");
        if (isempty(input_id) || strlen(input_id) > 64) {
                http_reply_error(req, 400, "invalid_request_error", "input_file_id", NULL,
                                 "'input_file_id' must name a file uploaded with purpose 'batch'");
                return;
        }
        if (!endpoint || !streq(endpoint, BATCH_ENDPOINT)) {
                http_reply_error(req, 400, "invalid_request_error", "endpoint", "unsupported_endpoint",
                                 "'endpoint' must be '%s' (the only endpoint moad batches)", BATCH_ENDPOINT);
                return;
        }
        if (!window || !streq(window, BATCH_WINDOW)) {
                /* As OpenAI answers it. */
                http_reply_error(req, 400, "invalid_request_error", "completion_window", "invalid_value",
                                 "Invalid value: '%.32s'. Supported values are: '%s'.",
                                 window ? window : "null", BATCH_WINDOW);
                return;
        }
        if (!metadata_valid(metadata)) {
                http_reply_error(req, 400, "invalid_request_error", "metadata", NULL,
                                 "'metadata' must be an object of at most %u string values (keys up to %u "
                                 "bytes, values up to %u)",
                                 BATCH_MAX_METADATA_KEYS, BATCH_MAX_METADATA_KEY, BATCH_MAX_METADATA_VALUE);
                return;
        }
        r = jobs_store_file_get(st, input_id, &file);
        if (r == -ENOENT) {
                http_reply_error(req, 404, "invalid_request_error", "input_file_id", "file_not_found",
                                 "No such file: '%.64s'", input_id);
                return;
        }
        if (r < 0)
                return api_reply_store_error(req, r, "read the input file");
        if (!api_job_allowed(s, req, json_string_value(json_object_get(file, "owner"))))
                return;
        purpose = json_string_value(json_object_get(file, "purpose"));
        if (!purpose || !streq(purpose, "batch")) {
                http_reply_error(req, 400, "invalid_request_error", "input_file_id", NULL,
                                 "file %.64s has purpose '%s', not 'batch'", input_id,
                                 purpose ? purpose : "?");
                return;
        }
        /* Checked and counted when it was uploaded. */
        total = (long) json_integer_value(json_object_get(file, "lines"));
        if (metadata && !json_is_null(metadata) && !(meta = json_dumps(metadata, JSON_COMPACT)))
                return api_reply_store_error(req, -ENOMEM, "store the batch");

        api_job_owner(req, owner, sizeof owner);
        jobs_make_id("batch_", id, sizeof id);
        now = (int64_t) time(NULL);
        r = jobs_store_batch_add(st, id, owner, input_id, endpoint, window, meta, total, now,
                                 now + (int64_t) s->runtime->config->jobs.batch_window_seconds);
        if (r >= 0)
                r = jobs_submit(s->jobs, id);
        if (r >= 0)
                r = jobs_store_batch_get(st, id, &row);
        if (r < 0)
                return api_reply_store_error(req, r, "store the batch");
        log_full(LOG_LEVEL_INFO, 0, http_request_id(req), "batch %s of %s queued: %ld requests from %s", id,
                 owner, total, input_id);
        http_reply_json(req, 200, batch_object(row));
}

static void batches_list(Server *s, HttpRequest *req) {
        const char *after = http_request_query(req, "after"), *lim = http_request_query(req, "limit");
        json_auto_t *rows = NULL;
        json_t *data, *v;
        char owner[64], *end;
        long limit = BATCH_LIST_DEFAULT;
        size_t i;
        int more, r;

        if (lim) {
                errno = 0;
                limit = strtol(lim, &end, 10);
                if (errno || end == lim || *end || limit < 1 || limit > BATCH_LIST_MAX) {
                        http_reply_error(req, 400, "invalid_request_error", "limit", NULL,
                                         "'limit' must be an integer from 1 to %d", BATCH_LIST_MAX);
                        return;
                }
        }
        api_job_owner(req, owner, sizeof owner);
        r = jobs_store_batch_list(jobs_store(s->jobs), api_job_is_admin(s, req) ? NULL : owner,
                                  isempty(after) ? NULL : after, (unsigned) limit, &rows, &more);
        if (r < 0)
                return api_reply_store_error(req, r, "list batches");
        data = json_array();
        json_array_foreach(rows, i, v) json_array_append_new(data, batch_object(v));
        http_reply_json(req, 200,
                        json_pack("{s:s,s:o,s:O,s:O,s:b}", "object", "list", "data", data, "first_id",
                                  json_object_get(json_array_get(rows, 0), "id") ?: json_null(), "last_id",
                                  json_object_get(json_array_get(rows, json_array_size(rows) - 1), "id")
                                          ?: json_null(),
                                  "has_more", more));
}

/* The batch row of @id if the caller may see it; otherwise answered. */
static json_t *batch_lookup(Server *s, HttpRequest *req, const char *id) {
        json_t *row = NULL;
        int r = jobs_store_batch_get(jobs_store(s->jobs), id, &row);

        return api_job_row(s, req, "batch", id, r, row);
}

static void batch_cancel(Server *s, HttpRequest *req, const char *id) {
        json_auto_t *row = batch_lookup(s, req, id), *after = NULL;
        int r;

        if (!row)
                return;
        r = jobs_cancel(s->jobs, id);
        if (r == -EALREADY) {
                http_reply_error(req, 409, "invalid_request_error", "batch_id", "batch_ended",
                                 "batch %.100s has already ended (%s)", id,
                                 json_string_value(json_object_get(row, "status")) ?: "?");
                return;
        }
        if (r >= 0)
                r = jobs_store_batch_get(jobs_store(s->jobs), id, &after);
        if (r < 0)
                return api_reply_store_error(req, r, "cancel the batch");
        log_full(LOG_LEVEL_INFO, 0, http_request_id(req), "batch %s cancelled", id);
        http_reply_json(req, 200, batch_object(after));
}

void api_job_routes(Server *s, HttpRequest *req, const char *rest, const ApiJobRoutes *routes) {
        const char *method = http_request_method(req);
        int get = streq(method, "GET") || streq(method, "HEAD");
        char id[65];
        size_t n;

        if (!s->jobs) {
                http_reply_error(req, 503, "server_error", NULL, NULL, "jobs are not available");
                return;
        }
        if (*rest == 0) {
                if (streq(method, "POST"))
                        routes->create(s, req);
                else if (get)
                        routes->list(s, req);
                else
                        http_reply_error(req, 405, "invalid_request_error", NULL, "method_not_allowed",
                                         "use GET or POST");
                return;
        }
        n = strcspn(rest + 1, "/");
        if (rest[0] != '/' || n == 0 || n >= sizeof id) {
                http_reply_error(req, 404, "invalid_request_error", NULL, "not_found", "no such %s",
                                 routes->what);
                return;
        }
        memcpy(id, rest + 1, n);
        id[n] = 0;
        rest += 1 + n;
        if (streq(rest, "/cancel")) {
                if (streq(method, "POST"))
                        routes->cancel(s, req, id);
                else
                        http_reply_error(req, 405, "invalid_request_error", NULL, "method_not_allowed",
                                         "use POST");
        } else if (*rest == 0) {
                if (get)
                        routes->get(s, req, id);
                else
                        http_reply_error(req, 405, "invalid_request_error", NULL, "method_not_allowed",
                                         "use GET");
        } else
                http_reply_error(req, 404, "invalid_request_error", NULL, "not_found", "no such endpoint");
}

static void batch_get(Server *s, HttpRequest *req, const char *id) {
        json_t *row = batch_lookup(s, req, id);

        if (row) {
                http_reply_json(req, 200, batch_object(row));
                json_decref(row);
        }
}

/* @rest: what follows "/v1/batches" in the path. */
void api_batches(Server *s, HttpRequest *req, const char *rest) {
        static const ApiJobRoutes routes = {
                .what = "batch",
                .create = batches_create,
                .list = batches_list,
                .get = batch_get,
                .cancel = batch_cancel,
        };

        api_job_routes(s, req, rest, &routes);
}
