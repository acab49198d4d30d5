/* api-files.c — OpenAI's Files API for batch input and output:
 * POST /v1/files (multipart/form-data, purpose "batch", parsed with
 * libmicrohttpd's post processor), GET /v1/files, GET/DELETE
 * /v1/files/{id}, GET /v1/files/{id}/content. Also who owns a job and who
 * may touch it, shared with api-batches.c. The store is reached through
 * api-job-call.h: off the loop with PostgreSQL. */
#include <time.h>

#include "access.h"
#include "api-job-call.h"
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

/* One upload on its way: the files counted (store), the file checked and
 * written (jobs worker), its row added (store), then the answer. */
typedef struct Upload {
        char *data; /* the file, taken over from the form */
        size_t len;
        unsigned max_files;
        unsigned max_lines;
        uint64_t max_line_bytes;
        unsigned count;
        long lines;
        int written;
        char filename[FILE_MAX_NAME + 1];
        char err[512];
} Upload;

static void upload_free(void *userdata) {
        Upload *u = userdata;

        if (u) {
                free(u->data);
                free(u);
        }
}

/* jansson refuses strings that are not UTF-8: the name must go into JSON. */
static int name_ok(const char *name) {
        json_t *j;

        if (isempty(name) || strlen(name) > FILE_MAX_NAME || !(j = json_string(name)))
                return 0;
        json_decref(j);
        return 1;
}

/* On the jobs worker: the whole file checked, then written. */
static int upload_work(void *userdata) {
        ApiJobCall *c = userdata;
        Upload *u = c->userdata;
        long n = batch_input_check(u->data ? u->data : "", u->len, u->max_lines, u->max_line_bytes, u->err,
                                   sizeof u->err);
        int r = n < 0 ? (int) n : jobs_store_file_put(c->store, c->id, u->data ? u->data : "", u->len);

        if (n >= 0 && r < 0)
                snprintf(u->err, sizeof u->err, "cannot store the file: %s", strerror(-r));
        if (r >= 0) {
                u->lines = n;
                u->written = 1;
        }
        u->data = mfree(u->data); /* a large free, off the loop too */
        return r;
}

static void upload_worker_done(void *userdata, int result) {
        api_job_call_resume(userdata, result);
}

/* Off the loop: the row of the file whose bytes are stored, and it read
 * back; without it, the bytes go. */
static int upload_add_work(ApiJobCall *c) {
        Upload *u = c->userdata;
        int r = jobs_store_file_add(c->store, c->id, c->owner, u->filename, "batch", u->len, u->lines,
                                    c->at);
        int k;

        if (r >= 0)
                r = jobs_store_file_get(c->store, c->id, &c->row);
        if (r < 0) {
                snprintf(u->err, sizeof u->err, "cannot store the file: %s", strerror(-r));
                if ((k = jobs_store_file_unput(c->store, c->id)) < 0)
                        log_warning("jobs: cannot remove the bytes of %s: %s", c->id, strerror(-k));
        }
        return r;
}

static int upload_unput_work(ApiJobCall *c) {
        int k = jobs_store_file_unput(c->store, c->id);

        if (k < 0)
                log_warning("jobs: cannot remove the bytes of %s: %s", c->id, strerror(-k));
        return k;
}

static void upload_unput_reply(ApiJobCall *c, int r) {
}

/* The client left while its file was written: the bytes go. */
static void upload_abandoned(ApiJobCall *c, int r) {
        Upload *u = c->userdata;

        if (u->written && !c->row) {
                ApiJobCall *d = calloc(1, sizeof *d);
                if (!d)
                        return;
                d->server = c->server;
                d->store = c->store;
                d->what = "remove an upload";
                memcpy(d->id, c->id, sizeof d->id);
                (void) api_job_call_run(d, upload_unput_work, upload_unput_reply);
        }
}

static void upload_reply_error(ApiJobCall *c, int r) {
        Upload *u = c->userdata;

        if (jobs_store_unavailable(r))
                snprintf(u->err, sizeof u->err,
                         "cannot store the file: the jobs database (PostgreSQL) is unavailable: %s",
                         strerror(-r));
        if (r == -EINVAL || r == -E2BIG)
                http_reply_error(c->req, r == -E2BIG ? 413 : 400, "invalid_request_error", "file",
                                 "invalid_batch_file", "%.200s: %s", u->filename, u->err);
        else
                http_reply_error(c->req, jobs_store_unavailable(r) ? 503 : 500, "server_error", NULL,
                                 jobs_store_unavailable(r) ? "jobs_database_unavailable" : NULL, "%s",
                                 u->err[0] ? u->err : strerror(-r));
}

static void upload_added(ApiJobCall *c, int r) {
        Upload *u = c->userdata;

        if (r < 0)
                return upload_reply_error(c, r);
        log_full(LOG_LEVEL_INFO, 0, http_request_id(c->req),
                 "file %s stored for %s: %zu bytes, %ld requests", c->id, c->owner, u->len, u->lines);
        http_reply_json(c->req, 200, file_object(c->row));
}

static void upload_written(ApiJobCall *c, int r) {
        if (r < 0)
                return upload_reply_error(c, r);
        c->at = (int64_t) time(NULL);
        (void) api_job_call_run(c, upload_add_work, upload_added);
}

static int upload_count_work(ApiJobCall *c) {
        Upload *u = c->userdata;

        return jobs_store_file_count(c->store, &u->count);
}

static void upload_counted(ApiJobCall *c, int r) {
        Upload *u = c->userdata;

        if (r < 0)
                return api_reply_store_error(c->req, r, "count files");
        if (u->count >= u->max_files) {
                http_reply_error(c->req, 400, "invalid_request_error", NULL, "too_many_files",
                                 "%u files are stored already (jobs.max_files): delete some first",
                                 u->count);
                return;
        }
        r = worker_submit(jobs_worker(c->server->jobs), upload_work, upload_worker_done, c, NULL);
        if (r < 0)
                return api_reply_store_error(c->req, r, "store the file");
        api_job_call_hold(c, upload_written);
}

static void files_create(Server *s, HttpRequest *req) {
        const JobsConfig *jc = &s->runtime->config->jobs;
        HttpFormField *file, *purpose;
        HttpForm *form = NULL;
        ApiJobCall *c;
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

        c = api_job_call_new(s, req, "store the file");
        if (!c)
                return;
        u = calloc(1, sizeof *u);
        if (!u) {
                api_reply_store_error(req, -ENOMEM, "store the file");
                c->req = NULL;
                api_job_call_resume(c, -ENOMEM); /* (frees it) */
                return;
        }
        c->userdata = u;
        c->free_userdata = upload_free;
        c->abandoned = upload_abandoned;
        u->data = TAKE_PTR(file->data);
        u->len = file->len;
        u->max_files = jc->max_files;
        u->max_lines = jc->max_lines;
        u->max_line_bytes = jc->max_line_bytes;
        jobs_make_id("file-", c->id, sizeof c->id);
        snprintf(u->filename, sizeof u->filename, "%s",
                 name_ok(file->filename) ? file->filename : "upload.jsonl");
        (void) api_job_call_run(c, upload_count_work, upload_counted);
}

/* ---- the rest ---- */

static int files_list_work(ApiJobCall *c) {
        return jobs_store_file_list(c->store, c->admin ? NULL : c->owner, &c->rows);
}

static void files_listed(ApiJobCall *c, int r) {
        json_t *data, *v;
        size_t i;

        if (r < 0)
                return api_reply_store_error(c->req, r, "list files");
        data = json_array();
        json_array_foreach(c->rows, i, v) json_array_append_new(data, file_object(v));
        http_reply_json(c->req, 200,
                        json_pack("{s:s,s:o,s:b}", "object", "list", "data", data, "has_more", 0));
}

static void files_list(Server *s, HttpRequest *req) {
        ApiJobCall *c = api_job_call_new(s, req, "list files");

        if (c)
                (void) api_job_call_run(c, files_list_work, files_listed);
}

/* Off the loop: the file's row, if the caller may see it (-EACCES). */
static int file_lookup_work(ApiJobCall *c) {
        int r = jobs_store_file_get(c->store, c->id, &c->row);

        return r < 0 ? r : api_job_call_may(c, c->row) ? 0 : -EACCES;
}

static void file_got(ApiJobCall *c, int r) {
        if (!api_job_call_reply_error(c, "file", r))
                http_reply_json(c->req, 200, file_object(c->row));
}

static int file_content_work(ApiJobCall *c) {
        int r = file_lookup_work(c);

        return r < 0 ? r : jobs_store_file_content(c->store, c->id, &c->data, &c->len);
}

static void file_content_read(ApiJobCall *c, int r) {
        if (r < 0 && c->row && r != -EACCES)
                return api_reply_store_error(c->req, r, "read the file");
        if (!api_job_call_reply_error(c, "file", r))
                http_reply(c->req, 200, "application/jsonl", c->data, c->len, NULL, NULL);
}

/* -EBUSY while a batch that has not ended reads it; gone already is no error. */
static int file_delete_work(ApiJobCall *c) {
        int r = file_lookup_work(c);

        if (r < 0)
                return r;
        r = jobs_store_file_delete(c->store, c->id);
        return r == -ENOENT ? 0 : r;
}

static void file_deleted(ApiJobCall *c, int r) {
        if (r == -EBUSY) {
                http_reply_error(c->req, 409, "invalid_request_error", "file_id", "file_in_use",
                                 "file %.100s is the input of a batch that has not ended; cancel it first",
                                 c->id);
                return;
        }
        if (r < 0 && c->row && r != -EACCES)
                return api_reply_store_error(c->req, r, "delete the file");
        if (!api_job_call_reply_error(c, "file", r))
                http_reply_json(c->req, 200,
                                json_pack("{s:s,s:s,s:b}", "id", c->id, "object", "file", "deleted", 1));
}

/* One store step on the file @id, answered by @reply. */
static void file_call(Server *s, HttpRequest *req, const char *id, const char *what, ApiJobWork work,
                      ApiJobReply reply) {
        ApiJobCall *c = api_job_call_new(s, req, what);

        if (!c)
                return;
        snprintf(c->id, sizeof c->id, "%s", id);
        (void) api_job_call_run(c, work, reply);
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
                        file_call(s, req, id, "read the file", file_content_work, file_content_read);
                else
                        reply_405(req, "GET");
        } else if (*rest == 0) {
                if (streq(method, "DELETE"))
                        file_call(s, req, id, "delete the file", file_delete_work, file_deleted);
                else if (!get)
                        reply_405(req, "GET, DELETE");
                else
                        file_call(s, req, id, "read the file", file_lookup_work, file_got);
        } else
                http_reply_error(req, 404, "invalid_request_error", NULL, "not_found", "no such endpoint");
}
