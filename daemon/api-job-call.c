/* api-job-call.c — see api-job-call.h. */
#include "api-job-call.h"
#include "jobs.h"
#include "log.h"
#include "util.h"

static ApiJobCall *call_free(ApiJobCall *c) {
        if (!c)
                return NULL;
        if (c->req)
                http_request_set_abort(c->req, NULL, NULL);
        json_decref(c->row);
        json_decref(c->rows);
        free(c->data);
        free(c->text);
        if (c->free_userdata)
                c->free_userdata(c->userdata);
        free(c);
        return NULL;
}

ApiJobCall *api_job_call_new(Server *s, HttpRequest *req, const char *what) {
        ApiJobCall *c = calloc(1, sizeof *c);

        if (!c) {
                api_reply_store_error(req, -ENOMEM, what);
                return NULL;
        }
        c->server = s;
        c->req = req;
        c->store = jobs_store(s->jobs);
        c->what = what;
        api_job_owner(req, c->owner, sizeof c->owner);
        c->admin = api_job_is_admin(s, req);
        return c;
}

static void call_abort(HttpRequest *req, void *userdata) {
        ApiJobCall *c = userdata;

        c->req = NULL;
}

void api_job_call_resume(ApiJobCall *c, int r) {
        if (c->req)
                http_request_set_abort(c->req, NULL, NULL);
        c->kept = 0;
        if (!c->req) {
                if (c->abandoned && r != -ECANCELED)
                        c->abandoned(c, r);
        } else if (r == -ECANCELED)
                http_reply_error(c->req, 503, "server_error", NULL, NULL, "cannot %s: moad is stopping",
                                 c->what);
        else {
                c->in_reply = 1;
                c->reply(c, r);
                c->in_reply = 0;
        }
        if (!c->kept) {
                c->req = NULL; /* answered (or gone): its abort handler is no longer ours */
                call_free(c);
        }
}

static int call_work(void *userdata) {
        ApiJobCall *c = userdata;

        return c->work(c);
}

static void call_done(void *userdata, int r) {
        api_job_call_resume(userdata, r);
}

void api_job_call_hold(ApiJobCall *c, ApiJobReply reply) {
        c->reply = reply;
        c->kept = 1;
        if (c->req)
                http_request_set_abort(c->req, call_abort, c);
}

int api_job_call_run(ApiJobCall *c, ApiJobWork work, ApiJobReply reply) {
        int r;

        c->work = work;
        r = jobs_call(c->server->jobs, JOBS_STORE_API, call_work, call_done, c);
        if (r < 0) {
                if (c->req && r == -ESHUTDOWN)
                        http_reply_error(c->req, 503, "server_error", NULL, NULL,
                                         "cannot %s: moad is stopping", c->what);
                else if (c->req)
                        api_reply_store_error(c->req, r, c->what);
                if (!c->in_reply) {
                        c->req = NULL;
                        call_free(c);
                }
                return r;
        }
        api_job_call_hold(c, reply);
        return 0;
}

int api_job_call_may(const ApiJobCall *c, const json_t *row) {
        return c->admin || streq_ptr(json_string_value(json_object_get(row, "owner")), c->owner);
}

int api_job_call_reply_error(ApiJobCall *c, const char *kind, int r) {
        if (r == -EACCES) {
                /* answers 403 and logs who asked */
                (void) api_job_allowed(c->server, c->req,
                                       json_string_value(json_object_get(c->row, "owner")));
                return 1;
        }
        if (r >= 0)
                return 0;
        /* 404 or the store's error, as a look-up on the loop gave them */
        (void) api_job_row(c->server, c->req, kind, c->id, r, NULL);
        return 1;
}
