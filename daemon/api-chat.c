/* api-chat.c — POST /v1/chat/completions: validation, admission control
 * (bounded in-flight runs, bounded FIFO queue, 429 beyond), and delivery
 * of the engine's answer as one JSON object or as an SSE stream. The
 * stream starts with the first token, so failures before it still get a
 * proper HTTP status; failures after it become an SSE error event. */
#include <time.h>

#include "chat-response.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "util.h"

struct ChatJob {
        Server *server;
        Runtime *rt;
        HttpRequest *req;
        ChatRequest *chat;
        EngineRunSpec spec;
        EngineRun *run;
        ChatJob *next;
        int queued;
        int running;
        int stream_started;
        int first_token_seen;
        int64_t created;
        char id[96];
};

static ChatJob *job_free(ChatJob *j) {
        if (!j)
                return NULL;
        engine_run_cancel(j->run);
        chat_request_free(j->chat);
        runtime_unref(j->rt);
        free(j);
        return NULL;
}

static void queue_remove(Server *s, ChatJob *j) {
        ChatJob **p = &s->queue_head, *prev = NULL;

        for (; *p; prev = *p, p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        if (s->queue_tail == j)
                                s->queue_tail = prev;
                        s->queued--;
                        j->queued = 0;
                        j->next = NULL;
                        return;
                }
}

/* The client went away (or the server is stopping): cancel everything the
 * request started. */
static void on_abort(HttpRequest *req, void *userdata) {
        ChatJob *j = userdata;
        Server *s = j->server;

        j->req = NULL;
        if (j->queued)
                queue_remove(s, j);
        if (j->running) {
                engine_run_cancel(j->run);
                j->run = NULL;
                s->inflight--;
        }
        job_free(j);
        api_chat_drain_queue(s);
}

static void stream_send(ChatJob *j, json_t *chunk) {
        _cleanup_free_ char *frame = sse_frame(chunk);

        if (frame)
                (void) http_stream_write(j->req, frame, strlen(frame));
}

static void stream_start(ChatJob *j) {
        if (j->stream_started)
                return;
        j->stream_started = 1;
        (void) http_stream_begin(j->req, 200, "text/event-stream");
        stream_send(j, chat_chunk_new(j->id, j->chat->model, j->created, "assistant", "", 0, NULL));
}

static void on_delta(void *userdata, const char *text, size_t len) {
        ChatJob *j = userdata;

        if (!j->req || len == 0)
                return;
        if (!j->first_token_seen) {
                /* Time to the first token of the answer (progress events do not count). */
                j->first_token_seen = 1;
                metrics_observe_ttft(now_usec() - http_request_start_usec(j->req));
        }
        stream_start(j);
        stream_send(j, chat_chunk_new(j->id, j->chat->model, j->created, NULL, text, len, NULL));
}

static void on_progress(void *userdata, json_t *event) {
        ChatJob *j = userdata;

        if (!j->req || !j->chat->stream)
                return;
        stream_start(j);
        stream_send(j, json_incref(event));
}

/* The "moa" extension object of a response: trace, warnings and the
 * citations; present when the request had a "moa" object or moad has
 * warnings to report. */
json_t *chat_moa_extension(const ChatRequest *chat, const EngineResult *res) {
        json_t *o;

        if (!chat->has_moa && !res->trace && (!res->warnings || json_array_size(res->warnings) == 0))
                return NULL;
        o = res->trace ? json_deep_copy(res->trace) : json_object();
        if (o && res->warnings && json_array_size(res->warnings) > 0)
                json_object_set(o, "warnings", res->warnings);
        if (o)
                json_object_set_new(o, "citations",
                                    res->citations ? json_copy(res->citations) : json_array());
        if (o && res->findings)
                json_object_set_new(o, "findings", json_copy(res->findings));
        return o;
}

static void reply_done(ChatJob *j, const EngineResult *res) {
        HttpRequest *req = j->req;
        json_t *moa;

        http_request_set_log(req, j->spec.pipeline ? j->spec.pipeline->name : j->spec.agent, res->agents);
        metrics_observe_chat(
                j->spec.pipeline ? j->spec.pipeline->name : j->spec.agent,
                res->error ? (j->stream_started ? 200 : (res->http_status ? res->http_status : 500)) : 200);

        if (res->error) {
                if (j->stream_started) {
                        json_t *e = json_pack("{s:{s:s,s:s,s:n,s:s?}}", "error", "message",
                                              res->error_message ? res->error_message : "pipeline failed",
                                              "type", res->error_type ? res->error_type : "server_error",
                                              "param", "code", res->error_code);
                        stream_send(j, e);
                        (void) http_stream_end(req);
                        return;
                }
                http_reply_error(req, res->http_status ? res->http_status : 500,
                                 res->error_type ? res->error_type : "server_error", NULL, res->error_code,
                                 "%s", res->error_message ? res->error_message : "pipeline failed");
                return;
        }

        moa = chat_moa_extension(j->chat, res);
        if (!j->chat->stream) {
                json_t *o = chat_completion_new(j->id, j->chat->model, j->created, res->content,
                                                res->finish_reason, &res->usage);
                if (o && moa)
                        json_object_set_new(o, "moa", moa);
                else
                        json_decref(moa);
                http_reply_json(req, 200, o);
                return;
        }

        stream_start(j);
        if (!res->streamed && !isempty(res->content))
                stream_send(j, chat_chunk_new(j->id, j->chat->model, j->created, NULL, res->content,
                                              strlen(res->content), NULL));
        json_t *last = chat_chunk_new(j->id, j->chat->model, j->created, NULL, NULL, 0,
                                      res->finish_reason ? res->finish_reason : "stop");
        if (last && moa)
                json_object_set_new(last, "moa", moa);
        else
                json_decref(moa);
        stream_send(j, last);
        if (j->chat->include_usage)
                stream_send(j, chat_usage_chunk_new(j->id, j->chat->model, j->created, &res->usage));
        (void) http_stream_write(req, SSE_DONE, strlen(SSE_DONE));
        (void) http_stream_end(req);
}

static void on_done(void *userdata, const EngineResult *res) {
        ChatJob *j = userdata;
        Server *s = j->server;

        j->run = NULL;
        j->running = 0;
        s->inflight--;
        if (j->req) {
                uint64_t total = now_usec() - http_request_start_usec(j->req);
                metrics_observe_overhead(total > res->layers_usec ? total - res->layers_usec : 0);
                http_request_set_abort(j->req, NULL, NULL);
                reply_done(j, res);
        }
        job_free(j);
        api_chat_drain_queue(s);
}

static int job_start(ChatJob *j) {
        static const EngineCallbacks callbacks = {
                .on_delta = on_delta, .on_progress = on_progress, .on_done = on_done};
        Server *s = j->server;
        int r;

        r = engine_run_start(j->rt->engine, &j->spec, &callbacks, j, &j->run);
        if (r < 0)
                return r;
        j->running = 1;
        s->inflight++;
        return 0;
}

void api_chat_drain_queue(Server *s) {
        while (s->queue_head && s->inflight < s->runtime->config->limits.max_inflight) {
                ChatJob *j = s->queue_head;
                int r;

                queue_remove(s, j);
                r = job_start(j);
                if (r < 0) {
                        http_request_set_abort(j->req, NULL, NULL);
                        http_reply_error(j->req, 500, "server_error", NULL, NULL,
                                         "cannot start the pipeline: %s", strerror(-r));
                        job_free(j);
                }
        }
}

int chat_resolve_spec(const Config *cfg, const ChatRequest *chat, EngineRunSpec *spec,
                      ChatRequestError *err) {
        spec->chat = chat;
        spec->stream = chat->stream;
        spec->pipeline = config_find_pipeline(cfg, chat->model);
        if (!spec->pipeline) {
                const AgentConfig *a = config_find_agent(cfg, chat->model);
                if (!a || !a->enabled) {
                        *err = (ChatRequestError){
                                .status = 404, .param = "model", .code = "model_not_found"};
                        snprintf(err->message, sizeof err->message,
                                 "The model '%.128s' does not exist: use a pipeline (see GET /v1/models) "
                                 "or an agent name",
                                 chat->model);
                        return -EINVAL;
                }
                spec->agent = a->name;
        }
        for (size_t i = 0; i < chat->n_agents; i++) {
                const AgentConfig *a = config_find_agent(cfg, chat->agents[i]);
                if (!a || !a->enabled) {
                        *err = (ChatRequestError){
                                .status = 400, .param = "moa.agents", .code = "agent_not_found"};
                        snprintf(err->message, sizeof err->message, "unknown agent '%.128s' in moa.agents",
                                 chat->agents[i]);
                        return -EINVAL;
                }
        }
        return 0;
}

void api_chat_completions(Server *s, HttpRequest *req) {
        const LimitsConfig *limits = &s->runtime->config->limits;
        ChatRequestError err;
        ChatRequest *chat = NULL;
        ChatJob *j;
        const char *body;
        size_t len;
        int r;

        body = http_request_body(req, &len);
        /* api_admit() bounded the body by this sum already; checked again
         * against the runtime in force now (a reload may have lowered it). */
        if (len > limits->max_body_bytes + limits->max_ask_bytes) {
                http_reply_error(req, 413, "invalid_request_error", NULL, "body_too_large",
                                 "request body exceeds the limit of %llu bytes (with documents)",
                                 (unsigned long long) (limits->max_body_bytes + limits->max_ask_bytes));
                return;
        }
        r = chat_request_parse(body, len, limits, &chat, &err);
        /* Only attached documents may take a body past max_body_bytes. */
        if (len > limits->max_body_bytes && r != -ENOMEM &&
            (r < 0 ? err.status != 413 : chat->n_documents == 0)) {
                chat = chat_request_free(chat);
                http_reply_error(req, 413, "invalid_request_error", NULL, "body_too_large",
                                 "request body exceeds the limit of %llu bytes",
                                 (unsigned long long) limits->max_body_bytes);
                return;
        }
        if (r == -ENOMEM) {
                http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
                return;
        }
        if (r < 0) {
                http_reply_error(req, err.status, "invalid_request_error", err.param, err.code, "%s",
                                 err.message);
                return;
        }

        if (!chat->model)
                chat->model = strdup(s->runtime->config->default_pipeline);
        j = calloc(1, sizeof *j);
        if (!j || !chat->model) {
                free(j);
                chat_request_free(chat);
                http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
                return;
        }
        j->server = s;
        j->rt = runtime_ref(s->runtime);
        j->req = req;
        j->chat = chat;
        j->created = (int64_t) time(NULL);
        snprintf(j->id, sizeof j->id, "chatcmpl-%s", http_request_id(req));

        j->spec.request_id = http_request_id(req);
        if (chat_resolve_spec(j->rt->config, chat, &j->spec, &err) < 0) {
                http_reply_error(req, err.status, "invalid_request_error", err.param, err.code, "%s",
                                 err.message);
                job_free(j);
                return;
        }

        http_request_set_abort(req, on_abort, j);
        if (s->inflight < limits->max_inflight) {
                r = job_start(j);
                if (r < 0) {
                        http_request_set_abort(req, NULL, NULL);
                        http_reply_error(req, 500, "server_error", NULL, NULL,
                                         "cannot start the pipeline: %s", strerror(-r));
                        job_free(j);
                }
                return;
        }
        if (s->queued >= limits->max_queue) {
                http_request_set_abort(req, NULL, NULL);
                {
                        json_t *e = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message",
                                              "too many requests in flight; retry later", "type",
                                              "rate_limit_error", "param", "code", "queue_full");
                        _cleanup_free_ char *b = json_dumps(e, JSON_COMPACT);
                        json_decref(e);
                        http_reply(req, 429, NULL, b ? b : "{}", b ? strlen(b) : 2, "Retry-After", "1");
                }
                log_full(LOG_LEVEL_WARNING, 0, http_request_id(req), "queue full (%u queued), answered 429",
                         s->queued);
                job_free(j);
                return;
        }
        j->queued = 1;
        if (s->queue_tail)
                s->queue_tail->next = j;
        else
                s->queue_head = j;
        s->queue_tail = j;
        s->queued++;
}
