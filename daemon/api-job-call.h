/* api-job-call.h — the store work of one Files or Batches API request,
 * done through jobs_call() on the API lane (with PostgreSQL on a store
 * thread with its own connection, never on the loop; with SQLite at once)
 * and answered on the loop when it is done. A client that hangs up
 * meanwhile is not answered; moad stopping first answers 503. */
#pragma once

#include <jansson.h>

#include "jobs-store.h"
#include "server.h"

typedef struct ApiJobCall ApiJobCall;

/* Off the loop: store calls on c->store with the call's inputs only (no
 * HttpRequest, no Server state). Returns 0 or -errno. */
typedef int (*ApiJobWork)(ApiJobCall *c);

/* On the loop, c->req the request (never NULL): answer it, or go on with
 * api_job_call_run() or api_job_call_hold(). */
typedef void (*ApiJobReply)(ApiJobCall *c, int r);

struct ApiJobCall {
        Server *server;
        HttpRequest *req; /* NULL once the client has gone */
        JobsStore *store;
        ApiJobWork work;
        ApiJobReply reply;
        void (*abandoned)(ApiJobCall *c, int r); /* optional: a step ended with the client gone */
        const char *what;                        /* "list files": for "cannot list files: ..." */
        int in_reply, kept;
        /* inputs */
        char id[65];
        char owner[64]; /* the caller's (api_job_owner()) */
        int admin;      /* the caller may see and touch every job */
        char *text;     /* one more string an operation needs */
        unsigned limit;
        int64_t at;
        /* outputs */
        json_t *row;
        json_t *rows;
        char *data;
        size_t len;
        int more;
        long total;
        void *userdata; /* an operation's own state, freed with @free_userdata */
        void (*free_userdata)(void *userdata);
};

/**
 * api_job_call_new() - a call for @req with the caller's identity filled
 * in; @what names the operation in errors. NULL on OOM (then answered 500).
 */
ApiJobCall *api_job_call_new(Server *s, HttpRequest *req, const char *what);

/**
 * api_job_call_run() - @work off the loop, then @reply on the loop. In a
 * reply this chains another step. On failure answers @req (503 while moad
 * stops, 500), frees @c unless in a reply, and returns -errno.
 */
int api_job_call_run(ApiJobCall *c, ApiJobWork work, ApiJobReply reply);

/**
 * api_job_call_hold() - the next step is done elsewhere (the jobs worker,
 * jobs_cancel()): @c is kept, and api_job_call_resume() brings its result
 * to @reply. From a handler or a reply.
 */
void api_job_call_hold(ApiJobCall *c, ApiJobReply reply);
void api_job_call_resume(ApiJobCall *c, int r);

/** api_job_call_may() - off the loop: may the caller touch the job whose row is @row? */
int api_job_call_may(const ApiJobCall *c, const json_t *row);

/**
 * api_job_call_reply_error() - the answer when a look-up of @kind gave @r
 * (-EACCES: api_job_call_may() said no, @c->row the row): 404, 403, 503
 * or 500. Returns 1 when it answered, 0 when @r is a success.
 */
int api_job_call_reply_error(ApiJobCall *c, const char *kind, int r);
