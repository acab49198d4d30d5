/* api-batches.c — OpenAI's Batches API: POST /v1/batches, GET /v1/batches,
 * GET /v1/batches/{id}, POST /v1/batches/{id}/cancel. Validation and the
 * response shapes; the work is jobs.c's. Also the routing of that shape
 * of job collection, which the ingest jobs share (api_job_routes()). The
 * store is reached through api-job-call.h: off the loop with PostgreSQL. */
#include <time.h>

#include "api-job-call.h"
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

/* Off the loop: the input file (the caller's, purpose "batch"), then the
 * batch stored and read back. -EACCES: not the caller's file;
 * -EMEDIUMTYPE: not a batch input (c->row the file's row). */
static int batches_create_work(ApiJobCall *c) {
        const char *purpose;
        int r = jobs_store_file_get(c->store, c->text, &c->row);

        if (r < 0)
                return r;
        if (!api_job_call_may(c, c->row))
                return -EACCES;
        purpose = json_string_value(json_object_get(c->row, "purpose"));
        if (!purpose || !streq(purpose, "batch"))
                return -EMEDIUMTYPE;
        /* Checked and counted when it was uploaded. */
        c->total = (long) json_integer_value(json_object_get(c->row, "lines"));
        r = jobs_store_batch_add(c->store, c->id, c->owner, c->text, BATCH_ENDPOINT, BATCH_WINDOW, c->data,
                                 c->total, c->at, c->at + (int64_t) c->limit);
        if (r >= 0)
                r = jobs_store_batch_get(c->store, c->id, &c->rows);
        return r;
}

static void batches_created(ApiJobCall *c, int r) {
        const char *purpose = json_string_value(json_object_get(c->row, "purpose"));

        if (r == -ENOENT && !c->row) {
                http_reply_error(c->req, 404, "invalid_request_error", "input_file_id", "file_not_found",
                                 "No such file: '%.64s'", c->text);
                return;
        }
        if (r == -EACCES) {
                (void) api_job_allowed(c->server, c->req,
                                       json_string_value(json_object_get(c->row, "owner")));
                return;
        }
        if (r == -EMEDIUMTYPE) {
                http_reply_error(c->req, 400, "invalid_request_error", "input_file_id", NULL,
                                 "file %.64s has purpose '%s', not 'batch'", c->text,
                                 purpose ? purpose : "?");
                return;
        }
        if (r >= 0)
                r = jobs_submit(c->server->jobs, c->id, c->at + (int64_t) c->limit);
        if (r < 0)
                return api_reply_store_error(c->req, r, c->row ? "store the batch" : c->what);
        log_full(LOG_LEVEL_INFO, 0, http_request_id(c->req), "batch %s of %s queued: %ld requests from %s",
                 c->id, c->owner, c->total, c->text);
        http_reply_json(c->req, 200, batch_object(c->rows));
}

static void batches_create(Server *s, HttpRequest *req) {
        json_auto_t *j = NULL;
        _cleanup_free_ char *meta = NULL;
        const char *input_id, *endpoint, *window;
        const json_t *metadata;
        json_error_t jerr;
        const char *body;
        ApiJobCall *c;
        size_t len;

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
        if (metadata && !json_is_null(metadata) && !(meta = json_dumps(metadata, JSON_COMPACT)))
                return api_reply_store_error(req, -ENOMEM, "store the batch");

        c = api_job_call_new(s, req, "read the input file");
        if (!c)
                return;
        c->text = strdup(input_id);
        c->data = TAKE_PTR(meta);
        jobs_make_id("batch_", c->id, sizeof c->id);
        c->at = (int64_t) time(NULL);
        c->limit = s->runtime->config->jobs.batch_window_seconds;
        if (!c->text) {
                c->req = NULL;
                api_job_call_resume(c, -ENOMEM); /* (frees it) */
                return api_reply_store_error(req, -ENOMEM, "store the batch");
        }
        (void) api_job_call_run(c, batches_create_work, batches_created);
}

static int batches_list_work(ApiJobCall *c) {
        return jobs_store_batch_list(c->store, c->admin ? NULL : c->owner, c->text, c->limit, &c->rows,
                                     &c->more);
}

static void batches_listed(ApiJobCall *c, int r) {
        json_t *data, *v;
        size_t i;

        if (r < 0)
                return api_reply_store_error(c->req, r, "list batches");
        data = json_array();
        json_array_foreach(c->rows, i, v) json_array_append_new(data, batch_object(v));
        http_reply_json(
                c->req, 200,
                json_pack("{s:s,s:o,s:O,s:O,s:b}", "object", "list", "data", data, "first_id",
                          json_object_get(json_array_get(c->rows, 0), "id") ?: json_null(), "last_id",
                          json_object_get(json_array_get(c->rows, json_array_size(c->rows) - 1), "id")
                                  ?: json_null(),
                          "has_more", c->more));
}

static void batches_list(Server *s, HttpRequest *req) {
        const char *after = http_request_query(req, "after"), *lim = http_request_query(req, "limit");
        long limit = BATCH_LIST_DEFAULT;
        ApiJobCall *c;
        char *end;

        if (lim) {
                errno = 0;
                limit = strtol(lim, &end, 10);
                if (errno || end == lim || *end || limit < 1 || limit > BATCH_LIST_MAX) {
                        http_reply_error(req, 400, "invalid_request_error", "limit", NULL,
                                         "'limit' must be an integer from 1 to %d", BATCH_LIST_MAX);
                        return;
                }
        }
        c = api_job_call_new(s, req, "list batches");
        if (!c)
                return;
        c->limit = (unsigned) limit;
        if (!isempty(after) && !(c->text = strndup(after, 128))) {
                c->req = NULL;
                api_job_call_resume(c, -ENOMEM); /* (frees it) */
                return api_reply_store_error(req, -ENOMEM, "list batches");
        }
        (void) api_job_call_run(c, batches_list_work, batches_listed);
}

/* Off the loop: the batch's row, if the caller may see it (-EACCES). */
static int batch_lookup_work(ApiJobCall *c) {
        int r = jobs_store_batch_get(c->store, c->id, &c->row);

        return r < 0 ? r : api_job_call_may(c, c->row) ? 0 : -EACCES;
}

static void batch_got(ApiJobCall *c, int r) {
        if (!api_job_call_reply_error(c, "batch", r))
                http_reply_json(c->req, 200, batch_object(c->row));
}

static void batch_cancel_done(void *userdata, int r, json_t *row) {
        ApiJobCall *c = userdata;

        json_decref(c->rows);
        c->rows = row;
        api_job_call_resume(c, r);
}

static void batch_cancelled(ApiJobCall *c, int r) {
        if (r == -EALREADY) {
                http_reply_error(c->req, 409, "invalid_request_error", "batch_id", "batch_ended",
                                 "batch %.100s has already ended (%s)", c->id,
                                 json_string_value(json_object_get(c->row, "status")) ?: "?");
                return;
        }
        if (r >= 0 && !c->rows)
                r = -ENOENT;
        if (r < 0)
                return api_reply_store_error(c->req, r, "cancel the batch");
        log_full(LOG_LEVEL_INFO, 0, http_request_id(c->req), "batch %s cancelled", c->id);
        http_reply_json(c->req, 200, batch_object(c->rows));
}

/* The batch is the caller's: cancelled by the runner (jobs_cancel()). */
static void batch_cancel_found(ApiJobCall *c, int r) {
        if (api_job_call_reply_error(c, "batch", r))
                return;
        r = jobs_cancel(c->server->jobs, c->id, batch_cancel_done, c);
        if (r < 0)
                return batch_cancelled(c, r);
        api_job_call_hold(c, batch_cancelled);
}

static void batch_call(Server *s, HttpRequest *req, const char *id, const char *what, ApiJobReply reply) {
        ApiJobCall *c = api_job_call_new(s, req, what);

        if (!c)
                return;
        snprintf(c->id, sizeof c->id, "%s", id);
        (void) api_job_call_run(c, batch_lookup_work, reply);
}

static void batch_cancel(Server *s, HttpRequest *req, const char *id) {
        batch_call(s, req, id, "read the batch", batch_cancel_found);
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
        batch_call(s, req, id, "read the batch", batch_got);
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
