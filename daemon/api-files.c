/* api-files.c — OpenAI's Files API for batch input and output:
 * POST /v1/files (multipart/form-data, purpose "batch", parsed with
 * libmicrohttpd's post processor), GET /v1/files, GET/DELETE
 * /v1/files/{id}, GET /v1/files/{id}/content. Also who owns a job and who
 * may touch it, shared with api-batches.c. */
#include <time.h>

#include "access.h"
#include "batch-input.h"
#include "http-form.h"
#include "jobs.h"
#include "log.h"
#include "server.h"
#include "util.h"
#include "worker.h"

#define FILE_MAX_NAME 255u
#define FILE_MAX_PURPOSE 32u

void api_job_owner(HttpRequest *req, char *buf, size_t size) {
        uid_t uid;

        if (http_request_peer(req, &uid, NULL, NULL) >= 0)
                snprintf(buf, size, "uid:%u", (unsigned) uid);
        else
                snprintf(buf, size, "tcp");
}

int api_job_is_admin(Server *s, HttpRequest *req) {
        char reason[256];

        return access_check(&s->runtime->config->access, s->runtime->bearer_token, req, ACCESS_ADMIN, reason,
                            sizeof reason) >= 0;
}

int api_job_allowed(Server *s, HttpRequest *req, const char *owner) {
        char me[64];

        api_job_owner(req, me, sizeof me);
        if (streq_ptr(owner, me) || api_job_is_admin(s, req))
                return 1;
        log_full(LOG_LEVEL_WARNING, 0, http_request_id(req), "access denied to %s %s: job of %s, caller %s",
                 http_request_method(req), http_request_path(req), owner ? owner : "?", me);
        http_reply_error(req, 403, "permission_error", NULL, "forbidden",
                         "not allowed: this job belongs to another user (admin rights needed)");
        return 0;
}

static json_t *file_object(const json_t *row) {
        return json_pack("{s:O,s:s,s:O,s:O,s:O,s:O,s:s,s:n}", "id", json_object_get(row, "id"), "object",
                         "file", "bytes", json_object_get(row, "bytes"), "created_at",
                         json_object_get(row, "created_at"), "filename", json_object_get(row, "filename"),
                         "purpose", json_object_get(row, "purpose"), "status", "processed",
                         "status_details");
}

void api_reply_store_error(HttpRequest *req, int r, const char *what) {
        /* the shared jobs database is down or slow: worth retrying, not a fault of moad */
        if (jobs_store_unavailable(r))
                http_reply_error(req, 503, "server_error", NULL, "jobs_database_unavailable",
                                 "cannot %s: the jobs database (PostgreSQL) is unavailable: %s", what,
                                 strerror(-r));
        else
                http_reply_error(req, 500, "server_error", NULL, NULL, "cannot %s: %s", what, strerror(-r));
}

json_t *api_job_row(Server *s, HttpRequest *req, const char *kind, const char *id, int r, json_t *row) {
        char param[16], code[32], what[32];

        snprintf(param, sizeof param, "%s_id", kind);
        snprintf(code, sizeof code, "%s_not_found", kind);
        snprintf(what, sizeof what, "read the %s", kind);
        if (r == -ENOENT) {
                http_reply_error(req, 404, "invalid_request_error", param, code, "No such %s: '%.100s'",
                                 kind, id);
                return NULL;
        }
        if (r < 0) {
                api_reply_store_error(req, r, what);
                return NULL;
        }
        if (!api_job_allowed(s, req, json_string_value(json_object_get(row, "owner")))) {
                json_decref(row);
                return NULL;
        }
        return row;
}

/* ---- upload ---- */

/* One upload on its way through the jobs worker: the file is checked and
 * written there, the row is added and the answer sent on the loop. */
typedef struct Upload {
        Server *server;
        HttpRequest *req; /* NULL once the client has gone */
        char *data;       /* the file, taken over from the form */
        size_t len;
        unsigned max_lines;
        uint64_t max_line_bytes;
        JobsStore *store; /* on the worker: only jobs_store_file_put() */
        long lines;
        int written;
        char id[64], owner[64], filename[FILE_MAX_NAME + 1];
        char err[512];
} Upload;

static void upload_free(Upload *u) {
        free(u->data);
        free(u);
}

/* jansson refuses strings that are not UTF-8: the name must go into JSON. */
static int name_ok(const char *name) {
        json_t *j;

        if (isempty(name) || strlen(name) > FILE_MAX_NAME || !(j = json_string(name)))
                return 0;
        json_decref(j);
        return 1;
}

/* On the worker: the whole file checked, then written. */
static int upload_work(void *userdata) {
        Upload *u = userdata;
        long n = batch_input_check(u->data ? u->data : "", u->len, u->max_lines, u->max_line_bytes, u->err,
                                   sizeof u->err);
        int r = n < 0 ? (int) n : jobs_store_file_put(u->store, u->id, u->data ? u->data : "", u->len);

        if (n >= 0 && r < 0)
                snprintf(u->err, sizeof u->err, "cannot store the file: %s", strerror(-r));
        if (r >= 0) {
                u->lines = n;
                u->written = 1;
        }
        u->data = mfree(u->data); /* a large free, off the loop too */
        return r;
}

static void upload_abort(HttpRequest *req, void *userdata) {
        Upload *u = userdata;

        u->req = NULL;
}

static void upload_done(void *userdata, int result) {
        Upload *u = userdata;
        JobsStore *st = u->server->jobs ? jobs_store(u->server->jobs) : NULL;
        json_auto_t *row = NULL;
        int r = result, k;

        if (u->req)
                http_request_set_abort(u->req, NULL, NULL);
        if (r >= 0 && u->req && st) {
                r = jobs_store_file_add(st, u->id, u->owner, u->filename, "batch", u->len, u->lines,
                                        (int64_t) time(NULL));
                if (r >= 0)
                        r = jobs_store_file_get(st, u->id, &row);
                if (r < 0)
                        snprintf(u->err, sizeof u->err, "cannot store the file: %s", strerror(-r));
        }
        if (r < 0 && jobs_store_unavailable(r))
                snprintf(u->err, sizeof u->err,
                         "cannot store the file: the jobs database (PostgreSQL) is unavailable: %s",
                         strerror(-r));
        if ((r < 0 || !u->req || !row) && u->written && st && (k = jobs_store_file_unput(st, u->id)) < 0)
                log_warning("jobs: cannot remove the bytes of %s: %s", u->id, strerror(-k));
        if (u->req && row) {
                log_full(LOG_LEVEL_INFO, 0, http_request_id(u->req),
                         "file %s stored for %s: %zu bytes, %ld requests", u->id, u->owner, u->len,
                         u->lines);
                http_reply_json(u->req, 200, file_object(row));
        } else if (u->req && (r == -EINVAL || r == -E2BIG))
                http_reply_error(u->req, r == -E2BIG ? 413 : 400, "invalid_request_error", "file",
                                 "invalid_batch_file", "%.200s: %s", u->filename, u->err);
        else if (u->req)
                http_reply_error(u->req, r == -ECANCELED || jobs_store_unavailable(r) ? 503 : 500,
                                 "server_error", NULL,
                                 jobs_store_unavailable(r) ? "jobs_database_unavailable" : NULL, "%s",
                                 r == -ECANCELED ? "moad is stopping"
                                 : u->err[0]     ? u->err
                                                 : strerror(-r));
        upload_free(u);
}

static void files_create(Server *s, HttpRequest *req) {
        const JobsConfig *jc = &s->runtime->config->jobs;
        HttpFormField *file, *purpose;
        HttpForm *form = NULL;
        unsigned count;
        Upload *u;
        int r;

        r = http_request_form(req, &form);
        if (r == -EMEDIUMTYPE) {
                http_reply_error(req, 415, "invalid_request_error", NULL, "unsupported_media_type",
                                 "Content-Type must be multipart/form-data with the fields 'file' and "
                                 "'purpose'");
                return;
        }
        if (r < 0) {
                http_reply_error(req, r == -ENOMEM ? 500 : 400, "invalid_request_error", NULL, NULL,
                                 "cannot read the form: %s",
                                 r == -EBADMSG ? "malformed body"
                                 : r == -E2BIG ? "too many fields"
                                               : strerror(-r));
                return;
        }
        file = http_form_get(form, "file");
        purpose = http_form_get(form, "purpose");
        if (!file) {
                http_reply_error(req, 400, "invalid_request_error", "file", NULL,
                                 "the form needs a 'file' field");
                return;
        }
        if (!purpose || !purpose->data || !streq(purpose->data, "batch")) {
                http_reply_error(req, 400, "invalid_request_error", "purpose", NULL,
                                 "'purpose' must be 'batch' (the only purpose moad stores files for)");
                return;
        }
        if (file->len > jc->max_upload_bytes) {
                http_reply_error(req, 413, "invalid_request_error", "file", "file_too_large",
                                 "the file exceeds jobs.max_upload_bytes (%llu bytes)",
                                 (unsigned long long) jc->max_upload_bytes);
                return;
        }
        r = jobs_store_file_count(jobs_store(s->jobs), &count);
        if (r < 0)
                return api_reply_store_error(req, r, "count files");
        if (count >= jc->max_files) {
                http_reply_error(req, 400, "invalid_request_error", NULL, "too_many_files",
                                 "%u files are stored already (jobs.max_files): delete some first", count);
                return;
        }

        u = calloc(1, sizeof *u);
        if (!u)
                return api_reply_store_error(req, -ENOMEM, "store the file");
        u->server = s;
        u->req = req;
        u->data = TAKE_PTR(file->data);
        u->len = file->len;
        u->max_lines = jc->max_lines;
        u->max_line_bytes = jc->max_line_bytes;
        jobs_make_id("file-", u->id, sizeof u->id);
        api_job_owner(req, u->owner, sizeof u->owner);
        snprintf(u->filename, sizeof u->filename, "%s",
                 name_ok(file->filename) ? file->filename : "upload.jsonl");
        u->store = jobs_store(s->jobs);
        r = worker_submit(jobs_worker(s->jobs), upload_work, upload_done, u, NULL);
        if (r < 0) {
                upload_free(u);
                return api_reply_store_error(req, r, "store the file");
        }
        http_request_set_abort(req, upload_abort, u);
}

/* ---- the rest ---- */

static void files_list(Server *s, HttpRequest *req) {
        json_auto_t *rows = NULL;
        json_t *data = json_array(), *v;
        char owner[64];
        size_t i;
        int r;

        api_job_owner(req, owner, sizeof owner);
        r = jobs_store_file_list(jobs_store(s->jobs), api_job_is_admin(s, req) ? NULL : owner, &rows);
        if (r < 0) {
                json_decref(data);
                return api_reply_store_error(req, r, "list files");
        }
        json_array_foreach(rows, i, v) json_array_append_new(data, file_object(v));
        http_reply_json(req, 200, json_pack("{s:s,s:o,s:b}", "object", "list", "data", data, "has_more", 0));
}

/* The file row of @id if the caller may see it; otherwise answered. */
static json_t *file_lookup(Server *s, HttpRequest *req, const char *id) {
        json_t *row = NULL;
        int r = jobs_store_file_get(jobs_store(s->jobs), id, &row);

        return api_job_row(s, req, "file", id, r, row);
}

static void file_content(Server *s, HttpRequest *req, const char *id) {
        json_auto_t *row = file_lookup(s, req, id);
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r;

        if (!row)
                return;
        r = jobs_store_file_content(jobs_store(s->jobs), id, &data, &len);
        if (r < 0)
                return api_reply_store_error(req, r, "read the file");
        http_reply(req, 200, "application/jsonl", data, len, NULL, NULL);
}

static void file_delete(Server *s, HttpRequest *req, const char *id) {
        json_auto_t *row = file_lookup(s, req, id);
        int r;

        if (!row)
                return;
        r = jobs_store_file_delete(jobs_store(s->jobs), id);
        if (r == -EBUSY) {
                http_reply_error(req, 409, "invalid_request_error", "file_id", "file_in_use",
                                 "file %.100s is the input of a batch that has not ended; cancel it first",
                                 id);
                return;
        }
        if (r < 0 && r != -ENOENT)
                return api_reply_store_error(req, r, "delete the file");
        http_reply_json(req, 200, json_pack("{s:s,s:s,s:b}", "id", id, "object", "file", "deleted", 1));
}

static void reply_405(HttpRequest *req, const char *allow) {
        http_reply_error(req, 405, "invalid_request_error", NULL, "method_not_allowed",
                         "method %s not allowed here; use %s", http_request_method(req), allow);
}

/* @rest: what follows "/v1/files" in the path. */
void api_files(Server *s, HttpRequest *req, const char *rest) {
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
                        files_create(s, req);
                else if (get)
                        files_list(s, req);
                else
                        reply_405(req, "GET, POST");
                return;
        }
        n = strcspn(rest + 1, "/");
        if (rest[0] != '/' || n == 0 || n >= sizeof id) {
                http_reply_error(req, 404, "invalid_request_error", NULL, "not_found", "no such file");
                return;
        }
        memcpy(id, rest + 1, n);
        id[n] = 0;
        rest += 1 + n;
        if (streq(rest, "/content")) {
                if (get)
                        file_content(s, req, id);
                else
                        reply_405(req, "GET");
        } else if (*rest == 0) {
                json_t *row;
                if (streq(method, "DELETE"))
                        file_delete(s, req, id);
                else if (!get)
                        reply_405(req, "GET, DELETE");
                else if ((row = file_lookup(s, req, id))) {
                        http_reply_json(req, 200, file_object(row));
                        json_decref(row);
                }
        } else
                http_reply_error(req, 404, "invalid_request_error", NULL, "not_found", "no such endpoint");
}
