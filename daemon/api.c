/* api.c — the HTTP endpoints: URL/method routing, content-type checks, and
 * the small endpoints (health, models, route, agents, documents, reload,
 * status). Chat completions live in api-chat.c, metrics in metrics.c. */
#include <ctype.h>
#include <strings.h>
#include <time.h>

#include "access.h"
#include "agents.h"
#include "ingest.h"
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "plugin-call.h"
#include "plugin-host.h"
#include "route-job.h"
#include "route-json.h"
#include "router.h"
#include "server.h"
#include "build-config.h"
#include "util.h"

static int content_type_is_json(HttpRequest *req) {
        const char *ct = http_request_header(req, "Content-Type");
        size_t n;

        if (!ct)
                return 1; /* lenient: a JSON body without a type is still parsed strictly */
        n = strcspn(ct, ";");
        while (n > 0 && ct[n - 1] == ' ')
                n--;
        return n == strlen("application/json") && strncasecmp(ct, "application/json", n) == 0;
}

static void reply_method_not_allowed(HttpRequest *req, const char *allow) {
        char body[256];

        snprintf(body, sizeof body,
                 "{\"error\":{\"message\":\"method %s not allowed on %s; use "
                 "%s\",\"type\":\"invalid_request_error\","
                 "\"param\":null,\"code\":\"method_not_allowed\"}}",
                 http_request_method(req), "this path", allow);
        http_reply(req, 405, NULL, body, strlen(body), "Allow", allow);
}

static void api_healthz(Server *s, HttpRequest *req) {
        http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static const char *state_name(ServerState st) {
        return st == SERVER_READY ? "ready" : st == SERVER_DRAINING ? "draining" : "starting";
}

/* A /readyz waiting for the knowledge database's answer. */
typedef struct ReadyCall {
        HttpRequest *req;
        KbSearch *check;
} ReadyCall;

static void on_ready_abort(HttpRequest *req, void *userdata) {
        ReadyCall *c = userdata;

        kb_search_cancel(c->check);
        free(c);
}

static void reply_ready(HttpRequest *req, int r) {
        if (r == -ENOMEM)
                http_reply_json(req, 503, json_pack("{s:s}", "status", "out of memory"));
        else if (r < 0)
                http_reply_json(req, 503, json_pack("{s:s}", "status", "knowledge unavailable"));
        else
                http_reply_json(req, 200, json_pack("{s:s}", "status", "ready"));
}

static void on_ready_checked(void *userdata, int r, KbHit *hits, size_t n) {
        ReadyCall *c = userdata;

        kb_hits_free(hits, n);
        http_request_set_abort(c->req, NULL, NULL);
        reply_ready(c->req, r);
        free(c);
}

/* Not ready while a knowledge database (PostgreSQL) does not answer,
 * asked on the loop's non-blocking connections: the probe waits, the
 * loop does not. */
static void api_readyz(Server *s, HttpRequest *req) {
        if (s->state != SERVER_READY) {
                http_reply_json(req, 503, json_pack("{s:s}", "status", state_name(s->state)));
                return;
        }
        ReadyCall *c = calloc(1, sizeof *c);
        if (!c) {
                reply_ready(req, -ENOMEM);
                return;
        }
        c->req = req;
        int r = agents_knowledge_check_start(s->runtime->agents, s->event, on_ready_checked, c, &c->check);
        if (r != 0) {
                free(c);
                reply_ready(req, r);
                return;
        }
        http_request_set_abort(req, on_ready_abort, c);
}

/* One entry of /v1/models: a pipeline or a loaded agent. "created" is
 * when the daemon started. */
static json_t *model_object(Server *s, const char *id, const char *kind) {
        json_int_t created =
                (json_int_t) time(NULL) - (json_int_t) ((now_usec() - s->start_usec) / USEC_PER_SEC);

        return json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", id, "object", "model", "created", created,
                         "owned_by", "moad", "moa_kind", kind);
}

/* The model objects moad answers to (all, or only the one named @only). */
static json_t *models_find(Server *s, const char *only) {
        const Config *c = s->runtime->config;
        json_t *data = json_array();

        for (size_t i = 0; i < c->n_pipelines; i++)
                if (!only || streq(only, c->pipelines[i].name))
                        json_array_append_new(data, model_object(s, c->pipelines[i].name, "pipeline"));
        for (size_t i = 0; i < c->n_agents; i++)
                if (c->agents[i].enabled && agents_find(s->runtime->agents, c->agents[i].name) &&
                    (!only || streq(only, c->agents[i].name)))
                        json_array_append_new(data, model_object(s, c->agents[i].name, "agent"));
        return data;
}

static void api_models(Server *s, HttpRequest *req) {
        http_reply_json(req, 200, json_pack("{s:s,s:o}", "object", "list", "data", models_find(s, NULL)));
}

/* GET /v1/models/{id} (OpenAI's models.retrieve). */
static void api_model(Server *s, HttpRequest *req, const char *id) {
        json_auto_t *found = models_find(s, id);

        if (json_array_size(found) == 0) {
                http_reply_error(req, 404, "invalid_request_error", "model", "model_not_found",
                                 "The model '%.128s' does not exist", id);
                return;
        }
        http_reply_json(req, 200, json_incref(json_array_get(found, 0)));
}

/* {"query": "..."} or {"messages": [...]} (the last user message). */
static int parse_route_query(Server *s, HttpRequest *req, char **ret, const char **ret_err) {
        const char *body;
        size_t len;
        json_auto_t *j = NULL;
        json_t *q, *msgs;

        body = http_request_body(req, &len);
        if (len > s->runtime->config->limits.max_body_bytes) {
                *ret_err = "request body too large";
                return -E2BIG;
        }
        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(j)) {
                *ret_err = "request body must be a JSON object";
                return -EINVAL;
        }
        q = json_object_get(j, "query");
        msgs = json_object_get(j, "messages");
        if (json_is_string(q) && json_string_length(q) > 0 && json_string_length(q) <= 65536) {
                *ret = strdup(json_string_value(q));
                return *ret ? 0 : -ENOMEM;
        }
        if (json_is_array(msgs)) {
                for (size_t i = json_array_size(msgs); i > 0; i--) {
                        json_t *m = json_array_get(msgs, i - 1);
                        const char *role = json_string_value(json_object_get(m, "role"));
                        json_t *c = json_object_get(m, "content");
                        if (role && streq(role, "user") && json_is_string(c) && json_string_length(c) > 0 &&
                            json_string_length(c) <= 65536) {
                                *ret = strdup(json_string_value(c));
                                return *ret ? 0 : -ENOMEM;
                        }
                }
        }
        *ret_err = "need a non-empty 'query' string (at most 64 KiB) or 'messages' with a user message";
        return -EINVAL;
}

typedef struct RouteCall {
        HttpRequest *req;
        Runtime *rt;
        RouteJob *job;
        char *query;
} RouteCall;

static void route_call_free(RouteCall *c) {
        route_job_cancel(c->job);
        runtime_unref(c->rt);
        free(c->query);
        free(c);
}

static void on_route_abort(HttpRequest *req, void *userdata) {
        route_call_free(userdata);
}

static void on_routed(void *userdata, int r, RouteResult *rr) {
        RouteCall *c = userdata;
        json_t *agents, *selected;

        c->job = NULL;
        http_request_set_abort(c->req, NULL, NULL);
        if (r < 0) {
                http_reply_error(c->req, 500, "server_error", NULL, NULL, "routing failed: %s",
                                 strerror(-r));
                route_call_free(c);
                return;
        }
        agents = json_array();
        selected = json_array();
        for (size_t i = 0; i < rr->n; i++) {
                RouteChoice *ch = &rr->choices[i];
                json_array_append_new(agents, route_choice_json(ch));
                if (ch->selected)
                        json_array_append_new(selected, json_string(ch->name));
        }
        http_reply_json(
                c->req, 200,
                json_pack("{s:s,s:o,s:o}", "query", c->query, "agents", agents, "selected", selected));
        route_call_free(c);
}

/* The plugins score on their threads (route-job.h); the answer follows. */
static void api_route(Server *s, HttpRequest *req) {
        _cleanup_free_ char *query = NULL;
        const char *err = NULL;
        RouteCall *c;
        int r;

        r = parse_route_query(s, req, &query, &err);
        if (r < 0) {
                http_reply_error(req,
                                 r == -ENOMEM  ? 500
                                 : r == -E2BIG ? 413
                                               : 400,
                                 "invalid_request_error", "query", NULL, "%s", err ? err : "out of memory");
                return;
        }
        c = calloc(1, sizeof *c);
        if (!c) {
                http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
                return;
        }
        c->req = req;
        c->rt = runtime_ref(s->runtime);
        c->query = TAKE_PTR(query);
        PluginBudget budget = plugin_budget_from_limits(&c->rt->config->limits);
        r = route_job_start(s->event, &budget, c->rt->agents, c->query, NULL, 0, 1, on_routed, c, &c->job);
        if (r < 0) {
                route_call_free(c);
                http_reply_error(req, 500, "server_error", NULL, NULL, "routing failed: %s", strerror(-r));
                return;
        }
        http_request_set_abort(req, on_route_abort, c);
}

/* GET /v1/moa/agents: the agents as the request found them; their
 * document counts are read on the reader thread (ingest.h), not here. */
typedef struct AgentsCall {
        HttpRequest *req;
        IngestJob *job;
        json_t *agents; /* "documents" filled in when the counts come */
} AgentsCall;

static void agents_call_free(AgentsCall *c) {
        json_decref(c->agents);
        free(c);
}

static void on_agents_abort(HttpRequest *req, void *userdata) {
        AgentsCall *c = userdata;

        ingest_job_cancel(c->job);
        agents_call_free(c);
}

static void reply_kb_read_error(HttpRequest *req, int r, const char *what);

static void on_agents_counted(void *userdata, const int *counts, size_t n) {
        AgentsCall *c = userdata;

        http_request_set_abort(c->req, NULL, NULL);
        for (size_t i = 0; i < n; i++)
                if (counts[i] < 0) {
                        reply_kb_read_error(c->req, counts[i], "cannot count documents");
                        agents_call_free(c);
                        return;
                }
        for (size_t i = 0; i < n; i++)
                json_object_set_new(json_array_get(c->agents, i), "documents", json_integer(counts[i]));
        http_reply_json(c->req, 200, json_pack("{s:O}", "agents", c->agents));
        agents_call_free(c);
}

static void api_agents(Server *s, HttpRequest *req) {
        AgentSet *set = s->runtime->agents;
        size_t n = agents_count(set);
        _cleanup_free_ const char **paths = calloc(n + 1, sizeof(char *));
        AgentsCall *c = calloc(1, sizeof *c);
        int r = -ENOMEM;

        if (c && paths && (c->agents = json_array())) {
                for (size_t i = 0; i < n; i++) {
                        Agent *a = agents_get(set, i);
                        PluginAgent *p = agent_plugin(a);
                        paths[i] = agent_kb_path(a);
                        json_array_append_new(
                                c->agents,
                                json_pack("{s:s,s:s,s:s,s:s,s:f,s:s,s:s?,s:n,s:{s:b,s:i,s:b}}", "name",
                                          agent_name(a), "plugin", plugin_agent_plugin_name(p), "version",
                                          plugin_agent_version(p), "description",
                                          plugin_agent_description(p), "weight", agent_weight(a), "provider",
                                          agent_provider(a), "model", agent_model(a), "documents",
                                          "plugin_state", "quarantined", plugin_agent_quarantined(p),
                                          "timeouts", (int) plugin_agent_timeouts(p), "stuck",
                                          plugin_agent_stuck(p)));
                }
                c->req = req;
                r = json_array_size(c->agents) == n
                            ? ingest_submit_counts(s->ingest, paths, n, on_agents_counted, c, &c->job)
                            : -ENOMEM;
        }
        if (r < 0) {
                if (c)
                        agents_call_free(c);
                reply_kb_read_error(req, r == -EBUSY ? -EAGAIN : r, "cannot list agents");
                return;
        }
        http_request_set_abort(req, on_agents_abort, c);
}

/* ---- documents ---- */

typedef struct IngestCall {
        HttpRequest *req;
        IngestJob *job;
        Runtime *rt;
        char *agent;
        char *title;
        int replaced;
} IngestCall;

static void ingest_call_free(IngestCall *c) {
        runtime_unref(c->rt);
        free(c->agent);
        free(c->title);
        free(c);
}

/* The state of one document write for @req, or NULL after answering 500. */
static IngestCall *ingest_call_new(Server *s, HttpRequest *req, Agent *a, const char *title) {
        IngestCall *c = calloc(1, sizeof *c);
        if (c) {
                c->req = req;
                c->rt = runtime_ref(s->runtime);
                c->agent = strdup(agent_name(a));
                c->title = strdup(title);
                if (c->agent && c->title)
                        return c;
                ingest_call_free(c);
        }
        http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
}

static void on_ingest_abort(HttpRequest *req, void *userdata) {
        IngestCall *c = userdata;

        /* The document is still ingested; only the answer has nowhere to go. */
        ingest_job_cancel(c->job);
        ingest_call_free(c);
}

/* An error object with Retry-After: 1, for a state that passes. */
static void reply_retry_later(HttpRequest *req, unsigned status, const char *type, const char *code,
                              const char *message) {
        _cleanup_(json_decrefp) json_t *err = NULL;
        _cleanup_free_ char *body = NULL;

        err = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", message, "type", type, "param", "code",
                        code);
        body = err ? json_dumps(err, JSON_COMPACT) : NULL;
        http_reply(req, status, NULL, body ? body : "{}", body ? strlen(body) : 2, "Retry-After", "1");
}

/* Another writer held the database past SQLite's busy timeout: nothing
 * was written (@what: "ingested", "deleted"; NULL for a read, whose locks
 * were taken), and trying again later is the remedy. */
static void reply_database_busy(HttpRequest *req, const char *what) {
        char msg[160];

        if (what)
                snprintf(msg, sizeof msg,
                         "the knowledge base is busy (another write holds it); nothing was %s, try again",
                         what);
        else
                snprintf(msg, sizeof msg,
                         "the knowledge base is busy (another process holds its locks), try again");
        reply_retry_later(req, 503, "server_error", "database_busy", msg);
}

static void on_ingest_done(void *userdata, int result) {
        IngestCall *c = userdata;

        http_request_set_abort(c->req, NULL, NULL);
        if (result == -EBUSY)
                reply_database_busy(c->req, "ingested");
        else if (result < 0)
                http_reply_error(c->req,
                                 result == -E2BIG         ? 413
                                 : result == -EINVAL      ? 400
                                 : kb_unavailable(result) ? 503
                                                          : 500,
                                 result == -E2BIG || result == -EINVAL ? "invalid_request_error"
                                                                       : "server_error",
                                 NULL, NULL, "ingest of '%.200s' into %s failed: %s", c->title, c->agent,
                                 strerror(-result));
        else {
                c->replaced = ingest_job_replaced(c->job);
                log_full(LOG_LEVEL_INFO, 0, http_request_id(c->req), "ingested '%s' into %s: %d chunks",
                         c->title, c->agent, result);
                http_reply_json(c->req, 200,
                                json_pack("{s:s,s:s,s:i,s:b}", "agent", c->agent, "title", c->title,
                                          "chunks", result, "replaced", c->replaced));
        }
        ingest_call_free(c);
}

/* Bounds of the optional file fields: a size up to 2^53 (exact in JSON
 * numbers everywhere), an mtime up to the year 36812. */
#define DOC_MAX_FILE_SIZE (1LL << 53)
#define DOC_MAX_MTIME (1LL << 40)

/* An optional non-negative integer field of @j, at most @max: 0 and -1 in
 * *@ret when absent or null, 0 and the value, or -EINVAL. */
static int optional_uint(const json_t *j, const char *key, long long max, int64_t *ret) {
        const json_t *v = json_object_get(j, key);

        *ret = -1;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
                return -EINVAL;
        *ret = (int64_t) json_integer_value(v);
        return 0;
}

/* The optional file fields of an ingest request ("source", "sha256",
 * "size", "mtime"); on a bad one, 400 naming it, and -EINVAL. */
static int parse_doc_meta(HttpRequest *req, const json_t *j, KbDocMeta *ret_meta, const char **ret_source) {
        const json_t *src = json_object_get(j, "source"), *sha = json_object_get(j, "sha256");
        KbDocMeta m = KB_DOC_META_NONE;

        if (src && !json_is_null(src) && (!json_is_string(src) || json_string_length(src) > 4096)) {
                http_reply_error(req, 400, "invalid_request_error", "source", NULL,
                                 "'source' must be a string of at most 4096 bytes");
                return -EINVAL;
        }
        if (sha && !json_is_null(sha)) {
                if (!json_is_string(sha) || !kb_sha256_valid(json_string_value(sha))) {
                        http_reply_error(req, 400, "invalid_request_error", "sha256", NULL,
                                         "'sha256' must be 64 hex digits");
                        return -EINVAL;
                }
                m.sha256 = json_string_value(sha);
        }
        if (optional_uint(j, "size", DOC_MAX_FILE_SIZE, &m.file_bytes) < 0) {
                http_reply_error(req, 400, "invalid_request_error", "size", NULL,
                                 "'size' must be a non-negative integer (bytes of the original file)");
                return -EINVAL;
        }
        if (optional_uint(j, "mtime", DOC_MAX_MTIME, &m.mtime) < 0) {
                http_reply_error(req, 400, "invalid_request_error", "mtime", NULL,
                                 "'mtime' must be a non-negative integer (seconds since the epoch)");
                return -EINVAL;
        }
        *ret_meta = m;
        *ret_source = json_string_value(src);
        return 0;
}

static void api_documents_post(Server *s, HttpRequest *req, Agent *a) {
        const LimitsConfig *limits = &s->runtime->config->limits;
        json_auto_t *j = NULL;
        const char *body, *title, *text, *source;
        KbDocMeta meta;
        json_error_t jerr;
        IngestCall *c;
        size_t len;
        int r;

        body = http_request_body(req, &len);
        if (len > limits->max_ingest_bytes) {
                http_reply_error(req, 413, "invalid_request_error", NULL, "body_too_large",
                                 "document exceeds max_ingest_bytes (%llu)",
                                 (unsigned long long) limits->max_ingest_bytes);
                return;
        }
        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(j)) {
                http_reply_error(req, 400, "invalid_request_error", NULL, "invalid_json",
                                 "body must be a JSON object {\"title\",\"text\",\"source\"}: %s",
                                 j ? "not an object" : jerr.text);
                return;
        }
        title = json_string_value(json_object_get(j, "title"));
        text = json_string_value(json_object_get(j, "text"));
        if (parse_doc_meta(req, j, &meta, &source) < 0)
                return;
        if (isempty(title) || strlen(title) > KB_MAX_TITLE_BYTES) {
                http_reply_error(req, 400, "invalid_request_error", "title", NULL,
                                 "'title' must be a non-empty string of at most %u bytes",
                                 KB_MAX_TITLE_BYTES);
                return;
        }
        if (!text || json_string_length(json_object_get(j, "text")) == 0) {
                http_reply_error(req, 400, "invalid_request_error", "text", NULL,
                                 "'text' must be a non-empty string");
                return;
        }

        c = ingest_call_new(s, req, a, title);
        if (!c)
                return;
        r = ingest_submit_meta(s->ingest, agent_kb_path(a), title, source ? source : "", text,
                               json_string_length(json_object_get(j, "text")), NULL, &meta, on_ingest_done,
                               c, &c->job);
        if (r < 0) {
                ingest_call_free(c);
                if (r == -EBUSY)
                        http_reply(req, 429, NULL,
                                   "{\"error\":{\"message\":\"ingest queue "
                                   "full\",\"type\":\"rate_limit_error\","
                                   "\"param\":null,\"code\":\"queue_full\"}}",
                                   strlen("{\"error\":{\"message\":\"ingest queue "
                                          "full\",\"type\":\"rate_limit_error\","
                                          "\"param\":null,\"code\":\"queue_full\"}}"),
                                   "Retry-After", "1");
                else
                        http_reply_error(req, r == -E2BIG ? 413 : 400, "invalid_request_error", NULL, NULL,
                                         "cannot ingest: %s", strerror(-r));
                return;
        }
        http_request_set_abort(req, on_ingest_abort, c);
}

/* Unknown file fields (documents from before schema version 3, or sent
 * without them) are null. */
static int list_cb(const KbDocInfo *d, void *userdata) {
        json_array_append_new(
                userdata, json_pack("{s:s,s:s,s:i,s:I,s:I,s:o,s:o,s:o}", "title", d->title, "source",
                                    d->source ? d->source : "", "chunks", (int) d->n_chunks, "bytes",
                                    (json_int_t) d->bytes, "ingested_at", (json_int_t) d->ingested_at,
                                    "sha256", isempty(d->sha256) ? json_null() : json_string(d->sha256),
                                    "size", d->file_bytes >= 0 ? json_integer(d->file_bytes) : json_null(),
                                    "mtime", d->mtime >= 0 ? json_integer(d->mtime) : json_null()));
        return 0;
}

/* A read of the knowledge that failed: busy as for a write, a full
 * reader queue as for a full ingest queue, the database unreachable 503. */
static void reply_kb_read_error(HttpRequest *req, int r, const char *what) {
        if (r == -EBUSY)
                reply_database_busy(req, NULL);
        else if (r == -EAGAIN)
                reply_retry_later(req, 429, "rate_limit_error", "queue_full",
                                  "too many listings waiting, try again");
        else
                http_reply_error(req, kb_unavailable(r) ? 503 : 500, "server_error", NULL, NULL, "%s: %s%s",
                                 what, strerror(-r),
                                 kb_unavailable(r) ? " (the knowledge database is unavailable)" : "");
}

typedef struct ListCall {
        HttpRequest *req;
        IngestJob *job;
        Runtime *rt;
        char *agent;
} ListCall;

static void list_call_free(ListCall *c) {
        runtime_unref(c->rt);
        free(c->agent);
        free(c);
}

static void on_list_abort(HttpRequest *req, void *userdata) {
        ListCall *c = userdata;

        ingest_job_cancel(c->job);
        list_call_free(c);
}

static void on_listed(void *userdata, int result, const IngestDocPage *page) {
        ListCall *c = userdata;
        json_t *arr;

        http_request_set_abort(c->req, NULL, NULL);
        if (result < 0) {
                reply_kb_read_error(c->req, result, "cannot list documents");
                list_call_free(c);
                return;
        }
        arr = json_array();
        for (size_t i = 0; i < page->n; i++)
                list_cb(&page->docs[i], arr);
        /* The limits let a client refuse a file before sending it. */
        http_reply_json(c->req, 200,
                        json_pack("{s:s,s:o,s:b,s:{s:I,s:i}}", "agent", c->agent, "documents", arr,
                                  "has_more", page->has_more, "limits", "max_ingest_bytes",
                                  (json_int_t) c->rt->config->limits.max_ingest_bytes, "max_title_bytes",
                                  (int) KB_MAX_TITLE_BYTES));
        list_call_free(c);
}

/* ?limit=1..KB_MAX_LIST_PAGE (default the most) and ?after=TITLE: one page,
 * read on the reader thread (a large base or a locked one never holds the
 * loop); the last title of a page is the next one's "after". */
static void api_documents_get(Server *s, HttpRequest *req, Agent *a) {
        const char *after = http_request_query(req, "after"), *lim = http_request_query(req, "limit");
        unsigned long limit = KB_MAX_LIST_PAGE;
        ListCall *c;
        int r;

        if (lim) {
                char *end = NULL;
                errno = 0;
                limit = strtoul(lim, &end, 10);
                if (errno || end == lim || *end || !isdigit((unsigned char) *lim) || limit < 1 ||
                    limit > KB_MAX_LIST_PAGE) {
                        http_reply_error(req, 400, "invalid_request_error", "limit", NULL,
                                         "'limit' must be an integer from 1 to %u", KB_MAX_LIST_PAGE);
                        return;
                }
        }
        if (after && strlen(after) > KB_MAX_TITLE_BYTES) {
                http_reply_error(req, 400, "invalid_request_error", "after", NULL,
                                 "'after' must be a title of at most %u bytes", KB_MAX_TITLE_BYTES);
                return;
        }
        c = calloc(1, sizeof *c);
        if (!c || !(c->agent = strdup(agent_name(a)))) {
                free(c);
                http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
                return;
        }
        c->req = req;
        c->rt = runtime_ref(s->runtime);
        r = ingest_submit_list(s->ingest, agent_kb_path(a), after, (unsigned) limit, on_listed, c, &c->job);
        if (r < 0) {
                list_call_free(c);
                reply_kb_read_error(req, r == -EBUSY ? -EAGAIN : r, "cannot list documents");
                return;
        }
        http_request_set_abort(req, on_list_abort, c);
}

static void on_delete_done(void *userdata, int result) {
        IngestCall *c = userdata;

        http_request_set_abort(c->req, NULL, NULL);
        if (result == -ENOENT)
                http_reply_error(c->req, 404, "not_found_error", "title", "document_not_found",
                                 "agent %s has no document '%.200s'", c->agent, c->title);
        else if (result == -EBUSY)
                reply_database_busy(c->req, "deleted");
        else if (result < 0)
                http_reply_error(c->req, kb_unavailable(result) ? 503 : 500, "server_error", NULL, NULL,
                                 "cannot delete '%.200s' from %s: %s", c->title, c->agent,
                                 strerror(-result));
        else {
                log_full(LOG_LEVEL_INFO, 0, http_request_id(c->req), "deleted '%s' from %s", c->title,
                         c->agent);
                http_reply_json(c->req, 200, json_pack("{s:b,s:s}", "deleted", 1, "title", c->title));
        }
        ingest_call_free(c);
}

/* @title comes from the path, which libmicrohttpd already percent-decoded.
 * The delete is a write: it runs on the ingest worker, behind any ingest
 * before it, and the request answers when it is done. */
static void api_documents_delete(Server *s, HttpRequest *req, Agent *a, const char *title) {
        IngestCall *c;
        int r;

        if (isempty(title) || strlen(title) > KB_MAX_TITLE_BYTES) {
                http_reply_error(req, 400, "invalid_request_error", "title", NULL,
                                 "bad document title in URL");
                return;
        }
        c = ingest_call_new(s, req, a, title);
        if (!c)
                return;
        r = ingest_submit_delete(s->ingest, agent_kb_path(a), title, on_delete_done, c, &c->job);
        if (r < 0) {
                ingest_call_free(c);
                http_reply_error(req, r == -EBUSY ? 429 : 500, "server_error", NULL, NULL,
                                 "cannot delete: %s", strerror(-r));
                return;
        }
        http_request_set_abort(req, on_ingest_abort, c);
}

/* /v1/moa/agents/{name}/documents[/{title}] */
static void api_documents(Server *s, HttpRequest *req, const char *rest) {
        const char *method = http_request_method(req);
        char name[129];
        size_t n = strcspn(rest, "/");
        const char *tail = rest + n;
        Agent *a;

        if (n == 0 || n >= sizeof name) {
                http_reply_error(req, 404, "not_found_error", NULL, NULL, "no such endpoint");
                return;
        }
        memcpy(name, rest, n);
        name[n] = 0;
        if (strncmp(tail, "/documents", 10) != 0 || (tail[10] && tail[10] != '/')) {
                http_reply_error(req, 404, "not_found_error", NULL, NULL, "no such endpoint");
                return;
        }
        a = agents_find(s->runtime->agents, name);
        if (!a) {
                http_reply_error(req, 404, "not_found_error", "agent", "agent_not_found",
                                 "no agent named '%s'", name);
                return;
        }
        tail += 10;
        if (*tail == '/' && tail[1]) {
                if (!streq(method, "DELETE")) {
                        reply_method_not_allowed(req, "DELETE");
                        return;
                }
                api_documents_delete(s, req, a, tail + 1);
                return;
        }
        if (streq(method, "GET") || streq(method, "HEAD"))
                api_documents_get(s, req, a);
        else if (streq(method, "POST")) {
                if (!content_type_is_json(req)) {
                        http_reply_error(req, 415, "invalid_request_error", NULL, "unsupported_media_type",
                                         "Content-Type must be application/json");
                        return;
                }
                api_documents_post(s, req, a);
        } else
                reply_method_not_allowed(req, "GET, POST");
}

/* 200 {"status": "reloaded"} when every enabled agent loaded; 207
 * {"status": "partial"} when the new configuration is active without some
 * (docs/api.md). Both list the refused agents. */
static void api_reload(Server *s, HttpRequest *req) {
        _cleanup_free_ char *err = NULL;
        int r = server_reload(s, &err);

        if (r < 0) {
                http_reply_error(req, 400, "invalid_request_error", NULL, "reload_failed",
                                 "reload failed, previous configuration still active: %s",
                                 err ? err : strerror(-r));
                return;
        }
        const AgentRefusals *rs = agents_refused(s->runtime->agents);
        json_t *refused = json_array();
        for (size_t i = 0; i < rs->n; i++)
                json_array_append_new(refused, json_pack("{s:s,s:s?,s:s}", "agent", rs->v[i].agent, "file",
                                                         rs->v[i].file, "reason", rs->v[i].reason));
        http_reply_json(req, rs->n ? 207 : 200,
                        json_pack("{s:s,s:I,s:i,s:o}", "status", rs->n ? "partial" : "reloaded",
                                  "generation", (json_int_t) s->runtime->generation, "agents",
                                  (int) agents_count(s->runtime->agents), "refused", refused));
}

static void api_status(Server *s, HttpRequest *req) {
        const Config *c = s->runtime->config;
        json_t *pipes = json_array();

        for (size_t i = 0; i < c->n_pipelines; i++)
                json_array_append_new(pipes, json_string(c->pipelines[i].name));
        http_reply_json(req, 200,
                        json_pack("{s:s,s:s,s:I,s:i,s:i,s:I,s:i,s:o,s:I,s:i,s:i}", "version", MOAD_VERSION,
                                  "state", state_name(s->state), "uptime_s",
                                  (json_int_t) ((now_usec() - s->start_usec) / USEC_PER_SEC), "inflight",
                                  (int) s->inflight, "queued", (int) s->queued, "requests_total",
                                  (json_int_t) s->requests_total, "agents",
                                  (int) agents_count(s->runtime->agents), "pipelines", pipes, "generation",
                                  (json_int_t) s->runtime->generation, "ingest_pending",
                                  (int) ingest_worker_pending(s->ingest), "batch_inflight",
                                  (int) jobs_inflight(s->jobs)));
}

typedef struct Route {
        const char *path;
        const char *methods; /* for 405's Allow */
        AccessClass access;
        int json_body;
        void (*get)(Server *s, HttpRequest *req);
        void (*post)(Server *s, HttpRequest *req);
} Route;

static const Route routes[] = {
        {"/v1/chat/completions", "POST", ACCESS_ASK, 1, NULL, api_chat_completions},
        {"/chat/completions", "POST", ACCESS_ASK, 1, NULL, api_chat_completions},
        {"/v1/models", "GET", ACCESS_ASK, 0, api_models, NULL},
        {"/models", "GET", ACCESS_ASK, 0, api_models, NULL},
        {"/healthz", "GET", ACCESS_OPEN, 0, api_healthz, NULL},
        {"/readyz", "GET", ACCESS_OPEN, 0, api_readyz, NULL},
        {"/metrics", "GET", ACCESS_ASK, 0, api_metrics, NULL},
        {"/v1/moa/route", "POST", ACCESS_ASK, 1, NULL, api_route},
        {"/v1/moa/agents", "GET", ACCESS_ASK, 0, api_agents, NULL},
        {"/v1/moa/reload", "POST", ACCESS_ADMIN, 0, NULL, api_reload},
        {"/v1/moa/status", "GET", ACCESS_ASK, 0, api_status, NULL},
};

/* Refused requests get 403 and one log line naming the peer. */
static int allowed(Server *s, HttpRequest *req, AccessClass cls) {
        char reason[256];

        if (access_check(&s->runtime->config->access, s->runtime->bearer_token, req, cls, reason,
                         sizeof reason) >= 0)
                return 1;
        log_full(LOG_LEVEL_WARNING, 0, http_request_id(req), "access denied to %s %s: %s",
                 http_request_method(req), http_request_path(req), reason);
        http_reply_error(req, 403, "permission_error", NULL, "forbidden",
                         "not allowed: %s endpoints need a permitted user or group",
                         cls == ACCESS_ADMIN ? "admin" : "these");
        return 0;
}

/* Bodyless endpoints still read a little (a stray "{}"), nothing more. */
#define API_SMALL_BODY 4096

/* The access class of METHOD PATH as api_handle() routes it. A path it
 * does not know is ask: a refused peer learns nothing, not even a 404. */
static AccessClass endpoint_access(const char *method, const char *path) {
        int read_only = streq(method, "GET") || streq(method, "HEAD");

        if (strncmp(path, "/v1/models/", 11) == 0)
                return ACCESS_ASK;
        if (strncmp(path, "/v1/moa/agents/", 15) == 0)
                return read_only ? ACCESS_ASK : ACCESS_ADMIN;
        for (size_t i = 0; i < ELEMENTSOF(routes); i++)
                if (streq(routes[i].path, path))
                        return routes[i].access;
        return ACCESS_ASK;
}

/* The most body bytes METHOD PATH reads; 0 for paths not known here (the
 * HTTP layer's ceiling applies). */
static uint64_t endpoint_body_limit(Server *s, const char *method, const char *path) {
        const LimitsConfig *l = &s->runtime->config->limits;

        if (strncmp(path, "/v1/moa/agents/", 15) == 0)
                return streq(method, "POST") ? l->max_ingest_bytes : API_SMALL_BODY;
        if (strncmp(path, "/v1/models/", 11) == 0)
                return API_SMALL_BODY;
        if (strncmp(path, "/v1/moa/ingest-jobs", 19) == 0) /* an agent and a path of up to 4095 bytes */
                return 2 * API_SMALL_BODY;
        /* a question may carry attached documents (moa.documents) */
        if (streq(path, "/v1/chat/completions") && streq(method, "POST"))
                return l->max_body_bytes + l->max_ask_bytes;
        for (size_t i = 0; i < ELEMENTSOF(routes); i++)
                if (streq(routes[i].path, path))
                        return routes[i].post && routes[i].json_body && streq(method, "POST")
                                       ? l->max_body_bytes
                                       : API_SMALL_BODY;
        return 0;
}

void api_admit(HttpRequest *req, void *userdata) {
        Server *s = userdata;
        const char *path = http_request_path(req), *method = http_request_method(req);
        uint64_t limit;

        if (!allowed(s, req, endpoint_access(method, path)))
                return;
        limit = endpoint_body_limit(s, method, path);
        if (limit > 0)
                http_request_set_body_limit(req, limit);
}

void api_handle(HttpRequest *req, void *userdata) {
        Server *s = userdata;
        const char *path = http_request_path(req), *method = http_request_method(req);

        s->requests_total++;
        /* Checked when the headers came in (api_admit); again here, as a
         * reload while the body arrived may have changed the rules. */
        if (!allowed(s, req, endpoint_access(method, path)))
                return;
        if (strncmp(path, "/v1/models/", 11) == 0 && path[11]) {
                if (streq(method, "GET") || streq(method, "HEAD"))
                        api_model(s, req, path + 11);
                else
                        reply_method_not_allowed(req, "GET");
                return;
        }
        if (strncmp(path, "/v1/moa/agents/", 15) == 0) {
                api_documents(s, req, path + 15);
                return;
        }
        /* The Files and Batches API: ask class; the job's owner or admin beyond. */
        if (strncmp(path, "/v1/files", 9) == 0 && (path[9] == 0 || path[9] == '/')) {
                if (allowed(s, req, ACCESS_ASK))
                        api_files(s, req, path + 9);
                return;
        }
        if (strncmp(path, "/v1/batches", 11) == 0 && (path[11] == 0 || path[11] == '/')) {
                if (!allowed(s, req, ACCESS_ASK))
                        return;
                if (streq(method, "POST") && path[11] == 0 && !content_type_is_json(req))
                        http_reply_error(req, 415, "invalid_request_error", NULL, "unsupported_media_type",
                                         "Content-Type must be application/json");
                else
                        api_batches(s, req, path + 11);
                return;
        }
        /* Server-side ingest: creating one needs admin (checked there). */
        if (strncmp(path, "/v1/moa/ingest-jobs", 19) == 0 && (path[19] == 0 || path[19] == '/')) {
                if (streq(method, "POST") && path[19] == 0 && !content_type_is_json(req))
                        http_reply_error(req, 415, "invalid_request_error", NULL, "unsupported_media_type",
                                         "Content-Type must be application/json");
                else
                        api_ingest_jobs(s, req, path + 19);
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                const Route *rt = &routes[i];
                if (!streq(rt->path, path))
                        continue;
                if (rt->get && (streq(method, "GET") || streq(method, "HEAD")))
                        rt->get(s, req);
                else if (rt->post && streq(method, "POST")) {
                        if (rt->json_body && !content_type_is_json(req)) {
                                http_reply_error(req, 415, "invalid_request_error", NULL,
                                                 "unsupported_media_type",
                                                 "Content-Type must be application/json, not '%.100s'",
                                                 http_request_header(req, "Content-Type"));
                                return;
                        }
                        rt->post(s, req);
                } else
                        reply_method_not_allowed(req, rt->methods);
                return;
        }
        http_reply_error(req, 404, "not_found_error", NULL, "not_found", "no endpoint %.200s", path);
}
