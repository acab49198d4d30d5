/* server.h — the daemon's state: the loop, the HTTP server, and the active
 * Runtime (config + agents + engine). A Runtime is reference-counted: each
 * request holds the one it started on, so a reload swaps in a new Runtime
 * while in-flight requests finish on the old one. */
#pragma once

#include <systemd/sd-event.h>

#include "config.h"
#include "engine.h"
#include "http.h"

typedef struct IngestWorker IngestWorker;
typedef struct Jobs Jobs;

typedef enum ServerState {
        SERVER_STARTING,
        SERVER_READY,
        SERVER_DRAINING,
} ServerState;

typedef struct Runtime {
        unsigned n_ref;
        Config *config;
        AgentSet *agents;
        Engine *engine;
        char *bearer_token; /* TCP listener's token, from listen.bearer_token_file */
        char *admin_token;  /* TCP admin token, from listen.admin_token_file */
        uint64_t generation;
        sd_event *event;
        sd_event_source *destroy; /* deferred free once the last reference is gone */
        struct Runtime *next_dying;
} Runtime;

typedef struct ChatJob ChatJob;

typedef struct Server {
        sd_event *event;
        HttpServer *http;
        Runtime *runtime;
        IngestWorker *ingest;
        Jobs *jobs; /* batches (jobs.c) */
        ServerState state;
        uint64_t start_usec;
        uint64_t generation;

        /* admission control for chat completions */
        unsigned inflight;
        unsigned queued;
        ChatJob *queue_head, *queue_tail;

        uint64_t requests_total;

        /* where to reload from */
        char *config_path;
        char *agents_dir_override;
        char *state_dir_override;
        char *upstream_override;
} Server;

Runtime *runtime_ref(Runtime *rt);
/**
 * runtime_unref() - drop a reference. The last one frees the Runtime from a
 * defer source, not at once: it may be dropped inside a provider's callback
 * (a request finishing on a replaced configuration), and the provider must
 * not be freed under its own feet. Returns NULL.
 */
Runtime *runtime_unref(Runtime *rt);
/** runtime_free_now() - free a runtime synchronously, references or not. */
void runtime_free_now(Runtime *rt);
/** runtime_reap() - free every runtime still waiting for its deferred free
 * (at exit, when the loop will not run again). */
void runtime_reap(void);

/**
 * runtime_new() - load config from @s's paths, agents and engine.
 * On failure returns -errno and a malloc'ed message in *ret_error.
 */
int runtime_new(Server *s, Runtime **ret, char **ret_error);

/** server_reload() - build a new Runtime and swap it in; the old one stays
 * active on failure. Returns 0 or -errno with *ret_error. */
int server_reload(Server *s, char **ret_error);

/** api_handle() - the HttpHandler: routes a request to its endpoint. */
void api_handle(HttpRequest *req, void *userdata);
/**
 * api_admit() - HttpAdmitHandler: access (403) and the body limit of the
 * endpoint a request names, decided from its headers before its body.
 */
void api_admit(HttpRequest *req, void *userdata);

/* api-chat.c */
void api_chat_completions(Server *s, HttpRequest *req);
/** api_chat_drain_queue() - start queued chat jobs while slots are free. */
void api_chat_drain_queue(Server *s);
/**
 * chat_resolve_spec() - the pipeline or agent @chat->model names and its
 * pinned agents, checked against @cfg, into @spec (which keeps pointers into
 * @cfg and @chat). Returns 0, or -EINVAL with the 404/400 in @err.
 */
int chat_resolve_spec(const Config *cfg, const ChatRequest *chat, EngineRunSpec *spec,
                      ChatRequestError *err);
/**
 * chat_moa_extension() - a response's "moa" object (trace, warnings,
 * citations) or NULL when @chat had no "moa" object and there is nothing
 * to report.
 */
json_t *chat_moa_extension(const ChatRequest *chat, const EngineResult *res);

/* api-files.c, api-batches.c: the Files and Batches API; api-ingest-jobs.c:
 * server-side ingest jobs (jobs-ingest.h). */
void api_files(Server *s, HttpRequest *req, const char *rest);
void api_batches(Server *s, HttpRequest *req, const char *rest);
void api_ingest_jobs(Server *s, HttpRequest *req, const char *rest);
/* The handlers of a job collection (/v1/batches, /v1/moa/ingest-jobs). */
typedef struct ApiJobRoutes {
        const char *what; /* "batch": for "no such batch" */
        void (*create)(Server *s, HttpRequest *req);
        void (*list)(Server *s, HttpRequest *req);
        void (*get)(Server *s, HttpRequest *req, const char *id);
        void (*cancel)(Server *s, HttpRequest *req, const char *id);
} ApiJobRoutes;

/**
 * api_job_routes() - route @rest, what follows a job collection's path:
 * "" to create (POST) or list (GET), "/{id}" to get (GET), "/{id}/cancel"
 * to cancel (POST); 404 and 405 otherwise, 503 without jobs
 * (api-batches.c).
 */
void api_job_routes(Server *s, HttpRequest *req, const char *rest, const ApiJobRoutes *routes);
/**
 * api_job_owner() - who a job belongs to: "uid:N" on the Unix socket, "tcp"
 * on the TCP listener (its one bearer token is one identity).
 */
void api_job_owner(HttpRequest *req, char *buf, size_t size);
/**
 * api_job_allowed() - may @req touch a job of @owner? Its own, or any with
 * admin rights. Otherwise answers 403 and returns 0.
 */
int api_job_allowed(Server *s, HttpRequest *req, const char *owner);
/**
 * api_job_row() - the row a store look-up of the @kind ("batch" or "file")
 * @id gave (@r, @row), if @req may see it. Otherwise answers 404, 500 or 403,
 * releases @row and returns NULL.
 */
json_t *api_job_row(Server *s, HttpRequest *req, const char *kind, const char *id, int r, json_t *row);
/** api_reply_store_error() - 500 "cannot @what: <errno text>". */
void api_reply_store_error(HttpRequest *req, int r, const char *what);
/** api_job_is_admin() - does @req have admin rights (to see every job)? */
int api_job_is_admin(Server *s, HttpRequest *req);
