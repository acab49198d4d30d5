/* engine.c — one request through the Mixture-of-Agents pipeline.
 *
 *   route ─► layer 1 (propose, all selected agents in parallel)
 *         ─► layer 2..n-1 (refine: every agent sees all previous answers,
 *            numbered and labelled by weight)
 *         ─► last layer (aggregate: one call synthesises the references;
 *            only this call streams to the client)
 *
 * Weights: reference weight = agent weight x router score x layer weight.
 * A layer ends when every call is done, or when its quorum answered and a
 * grace period passed (stragglers are cancelled), or at its deadline.
 * Failure rules: no proposal at all → 502/504 naming agents and causes; a
 * failed refine layer keeps the previous answers (warning); a failed
 * aggregator returns the best-weighted answer (warning). Everything runs
 * on the loop; nothing here blocks except short FTS5 look-ups. Plugin
 * callbacks (score, build_prompt, review) run on their threads within a
 * time budget (plugin-call.h) and the run goes on when they answer: an
 * agent over budget is skipped for the run, and an answer whose review
 * did not finish is never sent. */
#include <assert.h>
#include <math.h>

#include "agents.h"
#include "chat-response.h"
#include "citations.h"
#include "docs-index.h"
#include "engine.h"
#include "kb-named.h"
#include "stream-review.h"
#include "log.h"
#include "metrics.h"
#include "plugin-call.h"
#include "plugin-host.h"
#include "prompts.h"
#include "review.h"
#include "route-job.h"
#include "route-json.h"
#include "router.h"
#include "strbuf.h"
#include "util.h"

#define ENGINE_HITS_PER_AGENT 5u
/* Of those, at most this many from the documents attached to the request
 * (the rest from the agent's knowledge base, so an answer about a file can
 * be checked against what the agent knows). */
#define ENGINE_DOC_HITS_PER_AGENT 3u
/* Hits searched beyond ENGINE_HITS_PER_AGENT, among which a document the
 * question names may move up (kb-named.h). */
#define ENGINE_NAMED_EXTRA 10u
/* Partial text kept per staircase call: more than any prompt shows. */
#define ENGINE_PARTIAL_MAX (1024u * 1024u)

typedef struct Engine {
        sd_event *event;
        const Config *cfg;
        AgentSet *agents;
        Provider **providers;
        size_t n_providers;
        unsigned n_runs;
} Engine;

typedef struct AgentCall {
        EngineRun *run;
        char *agent; /* agent name ("legal", or "legal#2" in self-MoA) */
        Agent *a;    /* NULL for an aggregator that is not an agent */
        Provider *provider;
        ProviderCall *call;
        PluginCall *pcall;  /* its plugin building the prompt */
        KbSearch *ksearch;  /* its knowledge search, waiting for the database */
        int named_searched; /* the documents the question names were searched */
        KbHit *first_hits;  /* meanwhile, the first search's hits */
        size_t n_first;
        double weight;
        double route_score;    /* the router's score for the agent, also when pinned; 0: unknown */
        const char *knowledge; /* whose knowledge base c->hits come from (borrowed) */
        Kb *kb;                /* the agent's knowledge base (borrowed from the agent set) */
        int kb_down;           /* failed: its knowledge database (PostgreSQL) did not answer */
        uint64_t start_usec, end_usec;
        int state; /* 0 pending, 1 ok, -errno failed */
        unsigned http_status;
        char *content;
        char *error;
        ProviderUsage usage;
        unsigned attempts;
        KbHit *hits;
        size_t n_hits;
        size_t n_attached; /* the first hits are of the request's attached documents */
        char *focus;       /* moa.review: the agent's terms found in the documents */
        /* what the call sends, kept for fallbacks */
        json_t *messages;
        ProviderTask task;
        int stream;
        const char *model;               /* borrowed from the config */
        const char *provider_chain_head; /* the configured provider: its fallbacks apply */
        size_t fallback_idx;
        unsigned n_fallbacks_used;
        /* Staircase streaming (docs/engine.md): the call streams upstream,
         * its text is kept here, never sent to the client, and the next
         * layer may start on it before it is complete. */
        int staircase;
        StrBuf partial;
        size_t partial_chars; /* UTF-8 characters in partial */
        int cut;              /* the next layer started on its partial text; the call was cancelled */
        size_t seen_chars;    /* characters of it in the next layer's prompts */
} AgentCall;

typedef struct Selected {
        Agent *a;
        int answered; /* its call answered in some layer (its review must run) */
        char *name;
        double score;       /* router score (1 when pinned or single agent) */
        double route_score; /* the router's own score even when pinned; 0: not routed */
        double weight;      /* agent weight */
} Selected;

struct EngineRun {
        Engine *engine;
        EngineRunSpec spec;
        EngineCallbacks cb;
        void *userdata;
        char *query;

        RouteResult route;
        Selected *sel;
        size_t n_sel;

        LayerConfig *layers; /* effective layers */
        size_t n_layers;
        size_t layer; /* current */

        AgentCall *calls;
        size_t n_calls, n_pending, n_ok;
        char *layer_refs; /* the references block of a refine layer */
        PluginBudget budget;
        RouteJob *route_job;

        /* the selected agents' reviews, one after the other (review_chain_start) */
        PluginCall *chain_call;
        size_t chain_idx;
        char *chain_text;
        void (*chain_done)(EngineRun *run, int r, char *text);
        int chain_failed_agent; /* index in sel of the review that failed */
        char *final_answer;     /* streaming: the answer, waiting for the reviews of its sentences */
        int finishing;          /* the last layer ended: only reviews are left */
        uint64_t layer_start;
        uint64_t layer_deadline; /* this layer's end: its timeout or the pipeline deadline */
        int grace_armed;         /* quorum reached, stragglers have their grace period */
        uint64_t layers_usec;

        ExtractProposal *refs; /* answers of the previous layer, by weight */
        char **ref_texts;
        char **ref_agents;
        int *ref_partial; /* parallel to ref_texts: cut by the staircase, still in progress */
        size_t n_refs;

        /* Every passage an agent's prompt showed, once per (agent, document,
         * chunk), for the answer's citations (strings owned). */
        CitePassage *passages;
        size_t n_passages;
        int model_wrote;     /* a call ran on a provider other than the builtin one */
        Kb *docs;            /* the request's attached documents, indexed in memory; NULL if none */
        DocsIndex *docs_job; /* indexing them, on a thread */

        json_t *trace_layers;
        json_t *warnings;
        ProviderUsage usage;
        char *final;
        int streamed;
        size_t streamed_len;
        StreamReview *review; /* streaming with a reviewing plugin: nothing unreviewed leaves */
        int deadline_hit;

        sd_event_source *start_source, *deadline, *layer_timer;
        uint64_t deadline_usec;
};

/* ---- providers ---- */

static Provider *engine_provider(Engine *e, const char *name) {
        for (size_t i = 0; i < e->n_providers; i++)
                if (streq(e->providers[i]->name, name))
                        return e->providers[i];
        return NULL;
}

int engine_new(sd_event *event, const Config *cfg, AgentSet *agents, Engine **ret) {
        Engine *e = calloc(1, sizeof *e);
        int r;

        if (!e)
                return -ENOMEM;
        e->event = sd_event_ref(event);
        e->cfg = cfg;
        e->agents = agents;
        e->providers = calloc(cfg->n_providers + 1, sizeof(Provider *));
        if (!e->providers) {
                engine_free(e);
                return -ENOMEM;
        }
        for (size_t i = 0; i < cfg->n_providers; i++) {
                const ProviderConfig *pc = &cfg->providers[i];
                Provider *p = NULL;

                r = pc->type == PROVIDER_BUILTIN ? provider_builtin_new(event, pc, &p)
                                                 : provider_openai_new(event, pc, &p);
                if (r < 0) {
                        log_error_errno(r, "provider '%s': cannot create", pc->name);
                        engine_free(e);
                        return r;
                }
                e->providers[e->n_providers++] = p;
        }
        if (!engine_provider(e, "builtin")) {
                ProviderConfig pc = {.name = (char *) "builtin", .type = PROVIDER_BUILTIN};
                Provider *p = NULL;
                r = provider_builtin_new(event, &pc, &p);
                if (r < 0) {
                        engine_free(e);
                        return r;
                }
                e->providers[e->n_providers++] = p;
        }
        *ret = e;
        return 0;
}

Engine *engine_free(Engine *e) {
        if (!e)
                return NULL;
        for (size_t i = 0; i < e->n_providers; i++)
                provider_free(e->providers[i]);
        free(e->providers);
        sd_event_unref(e->event);
        free(e);
        return NULL;
}

unsigned engine_runs_active(Engine *e) {
        return e ? e->n_runs : 0;
}

/* ---- run bookkeeping ---- */

static void calls_clear(EngineRun *run) {
        for (size_t i = 0; i < run->n_calls; i++) {
                AgentCall *c = &run->calls[i];
                if (c->call)
                        provider_call_cancel(c->provider, c->call);
                plugin_call_cancel(c->pcall);
                kb_search_cancel(c->ksearch);
                free(c->agent);
                free(c->content);
                free(c->error);
                json_decref(c->messages);
                kb_hits_free(c->hits, c->n_hits);
                kb_hits_free(c->first_hits, c->n_first);
                free(c->focus);
                strbuf_done(&c->partial);
        }
        free(run->calls);
        run->calls = NULL;
        run->n_calls = run->n_pending = run->n_ok = 0;
        free(run->layer_refs);
        run->layer_refs = NULL;
}

static void refs_clear(EngineRun *run) {
        for (size_t i = 0; i < run->n_refs; i++) {
                free(run->ref_texts[i]);
                free(run->ref_agents[i]);
        }
        free(run->refs);
        free(run->ref_texts);
        free(run->ref_agents);
        free(run->ref_partial);
        run->refs = NULL;
        run->ref_texts = run->ref_agents = NULL;
        run->ref_partial = NULL;
        run->n_refs = 0;
}

static void passages_clear(EngineRun *run) {
        for (size_t i = 0; i < run->n_passages; i++) {
                CitePassage *p = &run->passages[i];
                free((char *) p->agent);
                free((char *) p->title);
                free((char *) p->source);
                free((char *) p->text);
        }
        free(run->passages);
        run->passages = NULL;
        run->n_passages = 0;
}

/* Remember the hits @agent's prompt showed: those whose number "[n]" the
 * plugin's @context carries (a plugin may show fewer than it was given).
 * The first layer to show a passage keeps its number. */
static int passages_add(EngineRun *run, const char *agent, const KbHit *hits, size_t n_hits,
                        size_t n_attached, const char *context) {
        for (size_t i = 0; i < n_hits && i < CITATIONS_MAX; i++) {
                char mark[16];
                size_t k;

                snprintf(mark, sizeof mark, "[%zu]", i + 1);
                if (!context || !strstr(context, mark))
                        continue;
                for (k = 0; k < run->n_passages; k++)
                        if (streq(run->passages[k].agent, agent) &&
                            streq(run->passages[k].title, hits[i].title) &&
                            run->passages[k].chunk == hits[i].chunk)
                                break;
                if (k < run->n_passages || run->n_passages >= CITATIONS_MAX)
                        continue;
                CitePassage *n = reallocarray(run->passages, run->n_passages + 1, sizeof *n);
                if (!n)
                        return -ENOMEM;
                run->passages = n;
                n = &run->passages[run->n_passages];
                *n = (CitePassage){.agent = strdup(agent),
                                   .number = (unsigned) i + 1,
                                   .title = strdup(hits[i].title),
                                   .source = strdup(hits[i].source ? hits[i].source : ""),
                                   .chunk = hits[i].chunk,
                                   .text = strdup(hits[i].text ? hits[i].text : ""),
                                   .attached = i < n_attached};
                run->n_passages++;
                if (!n->agent || !n->title || !n->source || !n->text)
                        return -ENOMEM;
        }
        return 0;
}

static void run_free(EngineRun *run) {
        if (!run)
                return;
        calls_clear(run);
        passages_clear(run);
        route_job_cancel(run->route_job);
        plugin_call_cancel(run->chain_call);
        free(run->chain_text);
        free(run->final_answer);
        docs_index_cancel(run->docs_job);
        kb_close(run->docs);
        refs_clear(run);
        route_result_done(&run->route);
        for (size_t i = 0; i < run->n_sel; i++)
                free(run->sel[i].name);
        free(run->sel);
        free(run->layers);
        free(run->query);
        free(run->final);
        stream_review_free(run->review);
        json_decref(run->trace_layers);
        json_decref(run->warnings);
        sd_event_source_disable_unref(run->start_source);
        sd_event_source_disable_unref(run->deadline);
        sd_event_source_disable_unref(run->layer_timer);
        run->engine->n_runs--;
        free(run);
}

void engine_run_cancel(EngineRun *run) {
        run_free(run);
}

static void warn(EngineRun *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(EngineRun *run, const char *fmt, ...) {
        char buf[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        log_full(LOG_LEVEL_WARNING, 0, run->spec.request_id, "%s", buf);
        json_array_append_new(run->warnings, json_string(buf));
}

static char *selected_names(EngineRun *run) {
        size_t len = 1;
        char *s;

        for (size_t i = 0; i < run->n_sel; i++)
                len += strlen(run->sel[i].name) + 1;
        s = calloc(1, len);
        if (!s)
                return NULL;
        for (size_t i = 0; i < run->n_sel; i++) {
                if (i)
                        strcat(s, ",");
                strcat(s, run->sel[i].name);
        }
        return s;
}

/* Ends the run: calls on_done exactly once and frees the run. */
static void run_finish(EngineRun *run, int error, unsigned status, const char *type, const char *code,
                       const char *message) {
        _cleanup_free_ char *agents = selected_names(run);
        _cleanup_(json_decrefp) json_t *citations = NULL, *findings = NULL;
        json_t *trace = NULL;
        EngineResult res = {
                .error = error,
                .http_status = status,
                .error_type = type,
                .error_code = code,
                .error_message = message,
                .content = run->final ? run->final : "",
                .finish_reason = "stop",
                .usage = run->usage,
                .warnings = run->warnings,
                .agents = agents,
                .streamed = run->streamed,
                .layers_usec = run->layers_usec,
        };

        if (run->spec.chat->trace) {
                trace = json_pack("{s:o,s:O,s:s?}", "route", route_result_json(&run->route), "layers",
                                  run->trace_layers, "pipeline",
                                  run->spec.pipeline ? run->spec.pipeline->name : run->spec.agent);
                res.trace = trace;
        }
        if (error == 0) {
                citations = citations_build(run->final, run->passages, run->n_passages, !run->model_wrote);
                res.citations = citations;
        }
        if (error == 0 && run->spec.chat->review) {
                size_t i;
                json_t *f;
                findings = review_findings(run->final);
                /* one agent answered alone: its findings are its own */
                json_array_foreach(findings, i, f) if (run->n_sel == 1 &&
                                                       json_array_size(json_object_get(f, "agents")) == 0)
                        json_array_append_new(json_object_get(f, "agents"),
                                              json_string(agent_name(run->sel[0].a)));
                res.findings = findings;
        }
        run->cb.on_done(run->userdata, &res);
        json_decref(trace);
        run_free(run);
}

/* ---- messages ---- */

/* [system: @system + client system prompts], then the client's other turns. */
static json_t *build_messages(EngineRun *run, const char *system) {
        const ChatRequest *chat = run->spec.chat;
        json_t *msgs = json_array();
        _cleanup_free_ char *sys = strdup(system ? system : "");

        if (!msgs || !sys)
                goto oom;
        for (size_t i = 0; i < chat->n_messages; i++) {
                const ChatMessage *m = &chat->messages[i];
                if (streq(m->role, "system") || streq(m->role, "developer")) {
                        char *n;
                        if (asprintf(&n, "%s\n\n%s", sys, m->content) < 0)
                                goto oom;
                        free(sys);
                        sys = n;
                }
        }
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", sys));
        for (size_t i = 0; i < chat->n_messages; i++) {
                const ChatMessage *m = &chat->messages[i];
                if (streq(m->role, "system") || streq(m->role, "developer"))
                        continue;
                json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", m->role, "content", m->content));
        }
        return msgs;
oom:
        json_decref(msgs);
        return NULL;
}

/* ---- calls ---- */

static void layer_maybe_end(EngineRun *run);
static int call_try_fallback(EngineRun *run, AgentCall *c);

/* ---- reviews ---- */

static void review_chain_next(EngineRun *run);

/* Every selected agent's plugin reviews the text in turn (disclaimers,
 * redaction, fencing), each on its plugin's thread; then @done(run, 0,
 * text) with the reviewed text (malloc'd, the callee owns it). A review
 * that returns an error leaves the text as it was (plugin.h). A review
 * over its budget, or one that cannot be asked (quarantined or stuck) of
 * an agent that answered, fails: @done(run, -ETIMEDOUT/-EPERM/-EBUSY,
 * NULL), so that unreviewed text is never sent. */
static int review_chain_start(EngineRun *run, const char *text, void (*done)(EngineRun *, int, char *)) {
        assert(!run->chain_call && !run->chain_done);
        free(run->chain_text);
        run->chain_text = strdup(text);
        if (!run->chain_text)
                return -ENOMEM;
        run->chain_idx = 0;
        run->chain_done = done;
        review_chain_next(run);
        return 0;
}

static void review_chain_end(EngineRun *run, int r) {
        void (*done)(EngineRun *, int, char *) = run->chain_done;
        char *text = r < 0 ? NULL : TAKE_PTR(run->chain_text);

        run->chain_done = NULL;
        done(run, r, text);
}

static void on_chain_review(void *userdata, PluginCallResult *res) {
        EngineRun *run = userdata;
        size_t i = run->chain_idx - 1;

        run->chain_call = NULL;
        if (res->error == -EBUSY && !run->sel[i].answered) {
                /* it waited behind its own stuck call; it gave nothing to review for */
                review_chain_next(run);
                return;
        }
        if (res->error == -ETIMEDOUT || res->error == -EBUSY) {
                run->chain_failed_agent = (int) i;
                review_chain_end(run, res->error);
                return;
        }
        if (res->error < 0)
                log_full(LOG_LEVEL_WARNING, res->error, run->spec.request_id,
                         "agent %s: review failed, the text stays as it was: %s", run->sel[i].name,
                         strerror(-res->error));
        else if (res->text) {
                free(run->chain_text);
                run->chain_text = TAKE_PTR(res->text);
        }
        review_chain_next(run);
}

static void review_chain_next(EngineRun *run) {
        while (run->chain_idx < run->n_sel) {
                size_t i = run->chain_idx++;
                PluginAgent *p = agent_plugin(run->sel[i].a);
                PluginCallInput in = {};
                int r;

                if (!plugin_agent_has_review(p))
                        continue;
                in.text = strdup(run->chain_text);
                if (!in.text) {
                        review_chain_end(run, -ENOMEM);
                        return;
                }
                r = plugin_call_start(run->engine->event, &run->budget, p, PLUGIN_CB_REVIEW, &in,
                                      on_chain_review, run, &run->chain_call);
                if (r >= 0)
                        return;
                /* Not asked: fine for an agent that gave nothing to the answer. */
                if ((r == -EPERM || r == -EBUSY || r == -EAGAIN) && !run->sel[i].answered)
                        continue;
                run->chain_failed_agent = (int) i;
                review_chain_end(run, r);
                return;
        }
        review_chain_end(run, 0);
}

/* The stream reviewer runs its reviews through review_chain_start(), step
 * by step; this function is never called. */
static int review_elsewhere(void *userdata, const char *text, char **ret) {
        return -EOPNOTSUPP;
}

static int run_reviews(const EngineRun *run) {
        for (size_t i = 0; i < run->n_sel; i++)
                if (plugin_agent_has_review(agent_plugin(run->sel[i].a)))
                        return 1;
        return 0;
}

static void send_delta(EngineRun *run, const char *text, size_t len) {
        if (len == 0)
                return;
        run->streamed_len += len;
        run->cb.on_delta(run->userdata, text, len);
}

static void stream_review_kick(EngineRun *run);
static void review_failed(EngineRun *run, int r);

static void on_stream_step_reviewed(EngineRun *run, int r, char *text) {
        _cleanup_free_ char *emit = NULL;

        if (r < 0) {
                review_failed(run, r);
                return;
        }
        r = stream_review_apply(run->review, text, &emit);
        free(text);
        if (r < 0) {
                run_finish(run, -ENOMEM, 500, "server_error", NULL, "out of memory");
                return;
        }
        if (emit)
                send_delta(run, emit, strlen(emit));
        stream_review_kick(run);
}

static void on_stream_final_reviewed(EngineRun *run, int r, char *text) {
        _cleanup_free_ char *emit = NULL, *full = NULL;

        if (r < 0) {
                review_failed(run, r);
                return;
        }
        r = stream_review_finish_apply(run->review, text, &emit, &full);
        free(text);
        if (r < 0) {
                run_finish(run, -ENOMEM, 500, "server_error", NULL, "out of memory");
                return;
        }
        if (r > 0)
                warn(run, "review changed text already streamed; the stream ends with what was reviewed");
        send_delta(run, emit, strlen(emit));
        run->streamed = 1;
        free(run->final);
        run->final = TAKE_PTR(full);
        run_finish(run, 0, 200, NULL, NULL, NULL);
}

/* Streaming through the reviewer: one review at a time, of the sentences
 * complete so far; once the answer is complete, the whole of it. */
static void stream_review_kick(EngineRun *run) {
        _cleanup_free_ char *upto = NULL;
        int r;

        if (run->chain_done)
                return; /* a review is running; it kicks again when done */
        r = stream_review_next_sentence(run->review, &upto);
        if (r > 0)
                r = review_chain_start(run, upto, on_stream_step_reviewed);
        else if (r == 0 && run->final_answer) {
                if (stream_review_wants_final(run->review))
                        r = review_chain_start(run, run->final_answer, on_stream_final_reviewed);
                else
                        on_stream_final_reviewed(run, 0, NULL);
        }
        if (r < 0)
                run_finish(run, -ENOMEM, 500, "server_error", NULL, "out of memory");
}

static int staircase_maybe_step(EngineRun *run);

/* A staircase call's text so far: kept for the next layer, which may start
 * on it now (then @c and perhaps the run are gone). */
static void staircase_delta(EngineRun *run, AgentCall *c, const char *text, size_t len) {
        if (strbuf_append(&c->partial, text, len, ENGINE_PARTIAL_MAX) < 0)
                return; /* past the bound (or OOM): what is kept stays, the call goes on */
        for (size_t i = 0; i < len; i++)
                c->partial_chars += ((unsigned char) text[i] & 0xC0) != 0x80;
        (void) staircase_maybe_step(run);
}

static void on_call_delta(void *userdata, const char *text, size_t len) {
        AgentCall *c = userdata;
        EngineRun *run = c->run;

        if (c->staircase) {
                staircase_delta(run, c, text, len);
                return;
        }
        run->streamed = 1;
        if (run->review) {
                if (stream_review_append(run->review, text, len) < 0) {
                        run_finish(run, -E2BIG, 500, "server_error", NULL,
                                   "the answer is too long to review");
                        return;
                }
                stream_review_kick(run);
                return;
        }
        send_delta(run, text, len);
}

/* moa.progress: one event per finished call of the layers before the last. */
static void call_progress(EngineRun *run, const AgentCall *c) {
        json_t *ev;

        if (!run->spec.chat->progress || !run->cb.on_progress || run->layer + 1 >= run->n_layers)
                return;
        ev = json_pack("{s:s,s:I,s:s,s:s,s:I,s:s?}", "object", "moa.progress", "layer",
                       (json_int_t) run->layer + 1, "agent", c->agent, "status",
                       c->cut          ? "partial"
                       : c->state == 1 ? "ok"
                                       : "error",
                       "latency_ms", (json_int_t) (c->end_usec - c->start_usec) / 1000, "error", c->error);
        if (ev)
                run->cb.on_progress(run->userdata, ev);
        json_decref(ev);
}

static void on_call_done(void *userdata, const ProviderResult *res) {
        AgentCall *c = userdata;
        EngineRun *run = c->run;

        c->call = NULL;
        c->end_usec = now_usec();
        c->usage = res->usage;
        c->attempts = res->attempts;
        c->http_status = res->http_status;
        run->usage.prompt_tokens += res->usage.prompt_tokens;
        run->usage.completion_tokens += res->usage.completion_tokens;
        if (res->error == 0 && res->content) {
                c->state = 1;
                c->content = strdup(res->content);
                run->n_ok++;
                if (c->a && run->layers[run->layer].role != LAYER_AGGREGATE)
                        run->sel[c - run->calls].answered = 1;
        } else if (c->n_fallbacks_used < 8 && call_try_fallback(run, c) >= 0) {
                c->n_fallbacks_used++;
                free(c->error);
                if (asprintf(&c->error, "fell back after: %s",
                             res->error_message ? res->error_message : strerror(-res->error)) < 0)
                        c->error = NULL;
                return; /* the call goes on with the next provider */
        } else {
                c->state = res->error ? res->error : -EPROTO;
                free(c->error); /* a "fell back after" note of an earlier provider */
                c->error = strdup(res->error_message ? res->error_message : strerror(-c->state));
                /* A partial streamed answer is still what the client saw. */
                if (res->content)
                        c->content = strdup(res->content);
                log_full(LOG_LEVEL_WARNING, 0, run->spec.request_id, "agent %s failed: %s", c->agent,
                         c->error ? c->error : "?");
        }
        metrics_observe_call(c->agent, c->state == 1, c->end_usec - c->start_usec, res->usage.prompt_tokens,
                             res->usage.completion_tokens);
        call_progress(run, c);
        run->n_pending--;
        layer_maybe_end(run);
}

static const ProviderCallbacks call_callbacks = {.on_delta = on_call_delta, .on_done = on_call_done};

/* (Re)issue c's call on c->provider with the stored messages and task. */
static int call_issue(EngineRun *run, AgentCall *c) {
        const ChatRequest *chat = run->spec.chat;

        if (!streq(c->provider->ops->type, "builtin"))
                run->model_wrote = 1;
        ProviderRequest req = {
                .request_id = run->spec.request_id,
                .agent = c->agent,
                .model = c->model,
                .messages = c->messages,
                .temperature = chat->temperature,
                .max_tokens = chat->max_tokens,
                .stream = c->stream || c->staircase,
                .deadline_usec = run->deadline_usec,
                .task = c->task,
                .query = run->query,
                .hits = c->hits,
                .n_hits = c->n_hits,
                .knowledge = c->knowledge,
                .kb = c->kb,
                .vocab = c->a ? agent_vocab(c->a) : NULL,
                .refs = run->refs,
                .n_refs = run->n_refs,
                .review = chat->review,
                .focus = c->focus,
                .n_attached = c->n_attached,
        };
        return provider_call_start(c->provider, &req, &call_callbacks, c, &c->call);
}

static int call_start(EngineRun *run, AgentCall *c, ProviderTask task, const char *system, int stream,
                      const char *model) {
        c->messages = build_messages(run, system);
        if (!c->messages)
                return -ENOMEM;
        if (stream && !run->review && run_reviews(run) &&
            stream_review_new(review_elsewhere, run, &run->review) < 0)
                return -ENOMEM;
        c->task = task;
        c->stream = stream;
        c->model = model;
        c->start_usec = now_usec();
        return call_issue(run, c);
}

/* The provider failed this call (after its own retries): move on to the
 * next provider of its fallback list, with that provider's default model.
 * Not once text was streamed to the client: it cannot be taken back. */
static int call_try_fallback(EngineRun *run, AgentCall *c) {
        const ProviderConfig *pc;
        Provider *next;

        if (run->streamed || run->deadline_hit)
                return -EALREADY;
        pc = config_find_provider(run->engine->cfg, c->provider_chain_head);
        while (pc && c->fallback_idx < pc->n_fallbacks) {
                next = engine_provider(run->engine, pc->fallbacks[c->fallback_idx++]);
                if (!next || next == c->provider)
                        continue;
                log_full(LOG_LEVEL_NOTICE, 0, run->spec.request_id,
                         "agent %s: %s failed, falling back to %s", c->agent, c->provider->name, next->name);
                c->provider = next;
                c->model = NULL;
                strbuf_reset(&c->partial); /* the next provider writes its own answer */
                c->partial_chars = 0;
                if (call_issue(run, c) >= 0)
                        return 0;
        }
        return -ENOENT;
}

/* Reference @i was cut by the staircase (its text is still in progress). */
static int ref_is_partial(const EngineRun *run, size_t i) {
        for (size_t j = 0; run->ref_partial && j < run->n_refs; j++)
                if (run->ref_texts[j] == run->refs[i].text)
                        return run->ref_partial[j];
        return 0;
}

/* The references block shown to refiners and the aggregator: numbered,
 * best weight first, each labelled with its agent and weight (and as still
 * in progress when the staircase cut it), then the rule not to use the
 * ones that do not answer. */
static char *render_references(EngineRun *run) {
        char *out = strdup(""), *n;
        int any_partial = 0;

        for (size_t i = 0; out && i < run->n_refs; i++) {
                int partial = ref_is_partial(run, i);
                any_partial |= partial;
                if (asprintf(&n, "%s[%zu] %s (weight %.2f%s):\n%s%s\n\n", out, i + 1, run->refs[i].agent,
                             run->refs[i].weight, partial ? "; " PROMPT_PARTIAL_LABEL : "",
                             run->refs[i].text, partial ? " …" : "") < 0)
                        n = NULL;
                free(out);
                out = n;
        }
        if (out && run->n_refs > 0) {
                if (asprintf(&n, "%s%s%s%s", out, PROMPT_REFERENCES_RULES, any_partial ? " " : "",
                             any_partial ? PROMPT_PARTIAL_RULES : "") < 0)
                        n = NULL;
                free(out);
                out = n;
        }
        return out;
}

/* The knowledge base's @nk hits @kh (taken) after the c->n_attached hits
 * of the request's attached documents already in c->hits. */
static int call_hits_merge(AgentCall *c, KbHit *kh, size_t nk) {
        size_t nd = c->n_hits;
        KbHit *all;

        if (nk == 0) {
                free(kh);
                return 0;
        }
        if (nd == 0) {
                free(c->hits);
                c->hits = kh;
                c->n_hits = nk;
                return 0;
        }
        all = calloc(nd + nk, sizeof *all);
        if (!all) {
                kb_hits_free(kh, nk);
                return -ENOMEM;
        }
        /* the strings move; the arrays are freed empty */
        memcpy(all, c->hits, nd * sizeof *all);
        memcpy(all + nd, kh, nk * sizeof *all);
        free(c->hits);
        free(kh);
        c->hits = all;
        c->n_hits = nd + nk;
        return 0;
}

/* A copy of @n hits for a plugin thread (the call's own may be freed
 * while the thread still reads its copy). */
static int hits_copy(const KbHit *h, size_t n, KbHit **ret) {
        KbHit *c = n ? calloc(n, sizeof *c) : NULL;

        if (n && !c)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                c[i] = (KbHit){.title = strdup(h[i].title ? h[i].title : ""),
                               .source = strdup(h[i].source ? h[i].source : ""),
                               .chunk = h[i].chunk,
                               .score = h[i].score,
                               .snippet = strdup(h[i].snippet ? h[i].snippet : ""),
                               .text = strdup(h[i].text ? h[i].text : ""),
                               .heading = strdup(h[i].heading ? h[i].heading : "")};
                if (!c[i].title || !c[i].source || !c[i].snippet || !c[i].text || !c[i].heading) {
                        kb_hits_free(c, i + 1);
                        return -ENOMEM;
                }
        }
        *ret = c;
        return 0;
}

/* Only a lone final agent streams: parallel answers would interleave.
 * Otherwise the best one is sent whole when the layer ends. */
static int layer_streams(const EngineRun *run) {
        return run->layer + 1 == run->n_layers && run->spec.stream && run->n_sel == 1;
}

/* The rest of an agent's call once its plugin built @system and @context:
 * the prompt, then the provider call. Returns 0 (started), -ENOMEM, or
 * another -errno with c->state and c->error set (the call did not start). */
static int call_prompt_ready(EngineRun *run, AgentCall *c, const char *system, const char *context) {
        const LayerConfig *layer = &run->layers[run->layer];
        _cleanup_free_ char *grounded = NULL, *full = NULL;
        int r;

        /* The grounding rules go with the context, whatever the
         * plugin's prompt and the template say. */
        grounded = prompt_context(context);
        if (!grounded)
                return -ENOMEM;
        if (passages_add(run, agent_name(c->a), c->hits, c->n_hits, c->n_attached, context) < 0)
                return -ENOMEM;
        if (layer->role == LAYER_REFINE)
                full = prompt_render(run->spec.pipeline ? run->spec.pipeline->refine_template : NULL,
                                     PROMPT_REFINE_DEFAULT, system, grounded, run->layer_refs);
        else
                full = prompt_render(NULL, PROMPT_PROPOSE_DEFAULT, system, grounded, NULL);
        if (full && run->spec.chat->review) {
                char *n = NULL;
                if (asprintf(&n, "%s\n\n%s", full, PROMPT_REVIEW_RULES) < 0)
                        n = NULL;
                free(full);
                full = n;
        }
        if (!full)
                return -ENOMEM;
        r = call_start(run, c, layer->role == LAYER_REFINE ? PROVIDER_TASK_REFINE : PROVIDER_TASK_PROPOSE,
                       full, layer_streams(run), agent_model(c->a));
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                c->state = r;
                c->error = strdup(r == -EBUSY ? "provider busy (queue full or circuit open)"
                                              : "call could not start");
        }
        return r;
}

/* Why an agent's plugin gave no prompt (@r from the call or its start). */
static const char *prompt_error(int r) {
        return r == -ETIMEDOUT ? "plugin build_prompt over its time budget: the agent is skipped"
               : r == -EPERM   ? "quarantined after repeated plugin timeouts: the agent is skipped"
               : r == -EBUSY   ? "plugin stuck in an earlier call: the agent is skipped"
               : r == -EAGAIN  ? "too many plugin threads are stuck: the agent is skipped"
                               : "plugin could not build its prompt";
}

/* The call's plugin step is over and it is no longer pending. */
static void call_end(EngineRun *run, AgentCall *c) {
        c->end_usec = now_usec();
        run->n_pending--;
        layer_maybe_end(run);
}

/* After a plugin step, the call's next step was started: @r >= 0, it is
 * pending on; -ENOMEM fails the run; another error (c->state and c->error
 * set by that step) ends the call. */
static void call_went_on(EngineRun *run, AgentCall *c, int r) {
        if (r == -ENOMEM)
                run_finish(run, r, 500, "server_error", NULL, "out of memory");
        else if (r < 0)
                call_end(run, c);
}

/* The plugin's step failed with @r (over budget, quarantined, refused). */
static void call_plugin_failed(EngineRun *run, AgentCall *c, int r) {
        c->state = r;
        c->error = strdup(prompt_error(r));
        call_end(run, c);
}

static void on_prompt_built(void *userdata, PluginCallResult *res) {
        AgentCall *c = userdata;
        EngineRun *run = c->run;
        int r = res->error;

        c->pcall = NULL;
        if (r >= 0)
                call_went_on(run, c, call_prompt_ready(run, c, res->system, res->context));
        else
                call_plugin_failed(run, c, r);
}

/* The agent's knowledge search ended (@r, @kh taken): its passages are the
 * attached ones, then @kh; the plugin builds the prompt on its thread and
 * on_prompt_built() goes on. A failed search is no passages, except when
 * the knowledge database did not answer (kb_unavailable()): "no passage"
 * would be a false answer, so the agent drops out. Returns 0 (pending),
 * -ENOMEM, or -errno with c->state and c->error set. */
/* What a call searches for: a review's focus terms, or the question. */
static const char *call_query(const EngineRun *run, const AgentCall *c) {
        return !isempty(c->focus) ? c->focus : run->query;
}

static void on_searched(void *userdata, int r, KbHit *hits, size_t n);

/* A second search, in the documents the question names by their title
 * among the first search's @nk hits @kh (kb-named.h). When it is not
 * needed, *@taken is 0, @kh untouched and the return 0 (or -ENOMEM).
 * Otherwise *@taken is 1, @kh is kept in c->first_hits until it answers,
 * and the return is call_searched()'s: at once (SQLite) or 0 and
 * on_searched() later. */
static int call_search_named(EngineRun *run, AgentCall *c, KbHit *kh, size_t nk, int *taken);

static int call_searched(EngineRun *run, AgentCall *c, int r, KbHit *kh, size_t nk) {
        PluginCallInput in = {};
        size_t want = ENGINE_HITS_PER_AGENT - c->n_attached;
        int named = run->spec.chat->n_doc_filter > 0; /* a title may be named among the hits */

        if (c->first_hits) { /* the named documents' search answered */
                named = 1;
                KbHit *first = TAKE_PTR(c->first_hits);
                size_t nf = c->n_first;
                c->n_first = 0;
                if (r < 0 && !kb_unavailable(r)) {
                        kb_hits_free(kh, nk);
                        kh = NULL;
                        nk = 0;
                        r = 0;
                }
                if (r >= 0) {
                        int j = kb_hits_join(&first, nf, kh, nk);
                        if (j < 0) {
                                kb_hits_free(first, nf);
                                return -ENOMEM;
                        }
                        kh = first;
                        nk = (size_t) j;
                } else
                        kb_hits_free(first, nf);
        } else if (r >= 0 && !c->named_searched) {
                int taken = 0, n = call_search_named(run, c, kh, nk, &taken);
                if (taken || n < 0) {
                        if (!taken)
                                kb_hits_free(kh, nk);
                        return n;
                }
        }
        if (r < 0 && kb_unavailable(r)) {
                kb_hits_free(kh, nk);
                kb_hits_free(c->hits, c->n_hits); /* no passages for a call that did not happen */
                c->hits = NULL;
                c->n_hits = c->n_attached = 0;
                c->state = r;
                c->kb_down = 1;
                c->error = strdup("its knowledge database is unavailable");
                return r;
        }
        if (r < 0) {
                kb_hits_free(kh, nk);
                kh = NULL;
                nk = 0;
        }
        /* A document the question names by its title comes first; the
         * snippets only of the hits kept (searched without). */
        nk = kb_hits_prefer_named(named ? call_query(run, c) : NULL, kh, nk, want);
        if (kb_hits_snippets(c->kb, call_query(run, c), kh, nk) < 0) {
                kb_hits_free(kh, nk);
                return -ENOMEM;
        }
        if (call_hits_merge(c, kh, nk) < 0)
                return -ENOMEM;
        in.text = strdup(run->query);
        if (!in.text || hits_copy(c->hits, c->n_hits, &in.hits) < 0) {
                free(in.text);
                return -ENOMEM;
        }
        in.n_hits = c->n_hits;
        r = plugin_call_start(run->engine->event, &run->budget, agent_plugin(c->a), PLUGIN_CB_BUILD_PROMPT,
                              &in, on_prompt_built, c, &c->pcall);
        if (r < 0 && r != -ENOMEM) {
                c->state = r;
                c->error = strdup(prompt_error(r));
        }
        return r;
}

static void on_searched(void *userdata, int r, KbHit *hits, size_t n) {
        AgentCall *c = userdata;

        c->ksearch = NULL;
        call_went_on(c->run, c, call_searched(c->run, c, r, hits, n));
}

static int call_search_named(EngineRun *run, AgentCall *c, KbHit *kh, size_t nk, int *taken) {
        const ChatRequest *chat = run->spec.chat;
        char *globs[KB_NAMED_MAX];
        KbHit *nh = NULL;
        size_t nn = 0;

        *taken = 0;
        c->named_searched = 1;
        if (chat->n_doc_filter > 0) /* the request chose its documents */
                return 0;
        int n = kb_hits_named_globs(call_query(run, c), kh, nk, globs);
        if (n <= 0)
                return n;
        *taken = 1;
        c->first_hits = kh;
        c->n_first = nk;
        int r = agent_search_start(c->a, run->engine->event, call_query(run, c),
                                   ENGINE_HITS_PER_AGENT - (unsigned) c->n_attached, 0,
                                   (const char *const *) globs, (size_t) n, on_searched, c, &c->ksearch, &nh,
                                   &nn);
        kb_named_globs_free(globs, (size_t) n);
        if (r == 0)
                return 0;
        return call_searched(run, c, r < 0 ? r : 0, nh, nn);
}

/* Retrieval for @query (in a review: its focus terms, and the @nd chunks
 * @dh its plugin picked, taken): the best chunks of the request's attached
 * documents first (at most ENGINE_DOC_HITS_PER_AGENT, searched here: an
 * in-memory index), then of its knowledge base (only the documents
 * moa.doc_filter names, if it names any), ENGINE_HITS_PER_AGENT in all.
 * SQLite answers at once; PostgreSQL later, on the loop (on_searched()),
 * so the loop never waits for the database. Returns as call_searched(). */
static int call_retrieved(EngineRun *run, AgentCall *c, KbHit *dh, size_t nd) {
        const ChatRequest *chat = run->spec.chat;
        const char *query = call_query(run, c);
        KbHit *kh = NULL;
        size_t nk = 0;

        /* A review brings the chunks its plugin picked (pick_start()). */
        if (!chat->review && run->docs &&
            kb_search(run->docs, query, ENGINE_DOC_HITS_PER_AGENT, &dh, &nd) < 0)
                nd = 0;
        c->hits = dh;
        c->n_hits = c->n_attached = nd;
        int r = agent_search_start(c->a, run->engine->event, query,
                                   ENGINE_HITS_PER_AGENT + ENGINE_NAMED_EXTRA - (unsigned) nd, 0,
                                   (const char *const *) chat->doc_filter, chat->n_doc_filter, on_searched,
                                   c, &c->ksearch, &kh, &nk);
        if (r == 0)
                return 0;
        return call_searched(run, c, r < 0 ? r : 0, kh, nk);
}

/* A review (moa.review): the agent's plugin scores the chunks of the
 * attached documents on its thread (review_pick()), with its own copy of
 * them, within the build_prompt budget. */
typedef struct PickJob {
        ChatDocument *docs;
        size_t n_docs;
        KbHit *hits;
        size_t n_hits;
        char *focus;
} PickJob;

static void pick_job_free(void *p) {
        PickJob *j = p;

        for (size_t i = 0; i < j->n_docs; i++) {
                free(j->docs[i].title);
                free(j->docs[i].source);
                free(j->docs[i].text);
        }
        free(j->docs);
        kb_hits_free(j->hits, j->n_hits);
        free(j->focus);
        free(j);
}

static int pick_fn(PluginAgent *a, void *data) {
        PickJob *j = data;
        return review_pick(a, j->docs, j->n_docs, ENGINE_DOC_HITS_PER_AGENT, &j->hits, &j->n_hits,
                           &j->focus);
}

static void on_picked(void *userdata, PluginCallResult *res) {
        AgentCall *c = userdata;
        EngineRun *run = c->run;
        PickJob *j = res->data;
        int r = res->error;

        c->pcall = NULL;
        if (r >= 0) {
                c->focus = TAKE_PTR(j->focus);
                r = call_retrieved(run, c, TAKE_PTR(j->hits), j->n_hits);
                j->n_hits = 0;
                call_went_on(run, c, r);
        } else
                call_plugin_failed(run, c, r);
}

static int pick_start(EngineRun *run, AgentCall *c) {
        const ChatRequest *chat = run->spec.chat;
        PickJob *j = calloc(1, sizeof *j);
        PluginCallInput in = {.fn = pick_fn, .data = j, .data_free = pick_job_free};
        int r;

        if (!j || !(j->docs = calloc(MAX(chat->n_documents, (size_t) 1), sizeof *j->docs))) {
                free(j);
                return -ENOMEM;
        }
        for (; j->n_docs < chat->n_documents; j->n_docs++) {
                const ChatDocument *d = &chat->documents[j->n_docs];
                ChatDocument *n = &j->docs[j->n_docs];
                n->title = strdup(d->title);
                n->source = strdup(d->source ? d->source : "");
                n->text = malloc(d->len + 1);
                n->len = d->len;
                if (!n->title || !n->source || !n->text) {
                        j->n_docs++;
                        pick_job_free(j);
                        return -ENOMEM;
                }
                memcpy(n->text, d->text, d->len);
                n->text[d->len] = 0;
        }
        in.budget_usec = run->budget.usec[PLUGIN_CB_BUILD_PROMPT];
        r = plugin_call_start(run->engine->event, &run->budget, agent_plugin(c->a), PLUGIN_CB_SCORE, &in,
                              on_picked, c, &c->pcall);
        if (r < 0 && r != -ENOMEM) {
                c->state = r;
                c->error = strdup(prompt_error(r));
        }
        return r;
}

/* The current layer feeds a next one and the pipeline asked for the staircase. */
static int staircase_layer(const EngineRun *run) {
        return run->spec.pipeline && run->spec.pipeline->staircase && run->layer + 1 < run->n_layers;
}

static int start_agent_layer(EngineRun *run, const LayerConfig *layer) {
        int r;

        if (layer->role == LAYER_REFINE) {
                run->layer_refs = render_references(run);
                if (!run->layer_refs)
                        return -ENOMEM;
        }
        run->calls = calloc(run->n_sel, sizeof *run->calls);
        if (!run->calls)
                return -ENOMEM;

        for (size_t i = 0; i < run->n_sel; i++) {
                AgentCall *c = &run->calls[i];
                Selected *s = &run->sel[i];

                c->run = run;
                c->a = s->a;
                c->agent = strdup(s->name);
                c->weight = s->weight * s->score * layer->weight;
                c->route_score = s->route_score;
                c->knowledge = agent_name(s->a);
                c->kb = agent_kb(s->a);
                c->provider = engine_provider(run->engine, agent_provider(s->a));
                c->provider_chain_head = agent_provider(s->a);
                /* The builtin provider answers at once: nothing to stream. */
                c->staircase =
                        staircase_layer(run) && c->provider && !streq(c->provider->ops->type, "builtin");
                c->start_usec = now_usec();
                run->n_calls++;
                if (!c->agent)
                        return -ENOMEM;
                if (!c->provider) {
                        c->state = -ENOENT;
                        c->error = strdup("provider not found");
                        continue;
                }
                r = run->spec.chat->review ? pick_start(run, c) : call_retrieved(run, c, NULL, 0);
                if (r == -ENOMEM)
                        return r;
                if (r >= 0)
                        run->n_pending++;
        }
        return 0;
}

/* Which provider synthesises: an agent named by the layer, a provider of
 * that name, else the provider of the best selected agent. */
static int start_aggregate_layer(EngineRun *run, const LayerConfig *layer) {
        _cleanup_free_ char *refs = render_references(run), *system = NULL;
        Engine *e = run->engine;
        AgentCall *c;
        Agent *a = NULL;
        Provider *p = NULL;
        const char *model = NULL;
        int r;

        if (!refs)
                return -ENOMEM;
        run->calls = calloc(1, sizeof *run->calls);
        if (!run->calls)
                return -ENOMEM;
        c = &run->calls[0];
        run->n_calls = 1;
        c->run = run;
        c->weight = layer->weight;
        c->agent = strdup(layer->agent ? layer->agent : "aggregator");
        if (!c->agent)
                return -ENOMEM;

        if (layer->agent && (a = agents_find(e->agents, layer->agent))) {
                p = engine_provider(e, agent_provider(a));
                model = agent_model(a);
        } else if (layer->agent && (p = engine_provider(e, layer->agent)))
                ;
        else if (run->n_sel > 0) {
                p = engine_provider(e, agent_provider(run->sel[0].a));
                model = agent_model(run->sel[0].a);
        }
        c->provider = p ? p : engine_provider(e, "builtin");
        c->provider_chain_head = c->provider->name;

        system = run->spec.chat->review
                         ? prompt_render(PROMPT_REVIEW_AGGREGATE, NULL, NULL, NULL, refs)
                         : prompt_render(run->spec.pipeline ? run->spec.pipeline->aggregate_template : NULL,
                                         PROMPT_AGGREGATE_DEFAULT, NULL, NULL, refs);
        if (!system)
                return -ENOMEM;
        r = call_start(run, c, PROVIDER_TASK_AGGREGATE, system, run->spec.stream, model);
        if (r < 0) {
                c->state = r;
                c->error = strdup("aggregator call could not start");
                return 0;
        }
        run->n_pending++;
        return 0;
}

/* ---- layers ---- */

static void layer_end(EngineRun *run);

static int on_layer_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        EngineRun *run = userdata;

        layer_end(run);
        return 0;
}

static void arm_layer_timer(EngineRun *run, uint64_t at) {
        if (!run->layer_timer) {
                if (sd_event_add_time(run->engine->event, &run->layer_timer, CLOCK_MONOTONIC, at, 1,
                                      on_layer_timer, run) < 0)
                        return;
                (void) sd_event_source_set_description(run->layer_timer, "engine-layer-timer");
                return;
        }
        (void) sd_event_source_set_time(run->layer_timer, at);
        (void) sd_event_source_set_enabled(run->layer_timer, SD_EVENT_ONESHOT);
}

/* All done → end now. Quorum reached → give stragglers as long again as
 * the layer took so far (bounded by the layer deadline), then end. */
static void layer_maybe_end(EngineRun *run) {
        const LayerConfig *layer = &run->layers[run->layer];
        size_t need;

        if (run->n_pending == 0) {
                layer_end(run);
                return;
        }
        if (staircase_maybe_step(run))
                return;
        need = (size_t) ceil(layer->quorum * (double) run->n_calls);
        if (need < 1)
                need = 1;
        if (run->n_ok >= need && !run->grace_armed) {
                uint64_t now = now_usec(), grace = now - run->layer_start;
                /* Early aggregation: the aggregator starts at the quorum of the layer feeding it. */
                if (run->spec.pipeline && run->spec.pipeline->early_aggregation &&
                    run->layer + 2 == run->n_layers &&
                    run->layers[run->n_layers - 1].role == LAYER_AGGREGATE) {
                        layer_end(run);
                        return;
                }
                run->grace_armed = 1;
                arm_layer_timer(run, MIN(now + MAX(grace, 50 * USEC_PER_MSEC), run->layer_deadline));
        }
}

/* ---- staircase ---- */

/* The layer ends now: every running staircase call with at least
 * staircase_min_chars characters becomes an answer as it stands (marked
 * partial) and is cancelled, since the next layer's prompts are fixed when
 * it starts; the others are cancelled by layer_end() with this reason.
 * Returns 0 or -ENOMEM. */
static int staircase_take_partials(EngineRun *run) {
        const PipelineConfig *p = run->spec.pipeline;
        uint64_t now = now_usec();

        for (size_t i = 0; i < run->n_calls; i++) {
                AgentCall *c = &run->calls[i];

                if (c->state != 0 || !(c->call || c->pcall || c->ksearch))
                        continue;
                if (!c->call || c->partial_chars < p->staircase_min_chars) {
                        free(c->error);
                        if (asprintf(&c->error,
                                     "cancelled: the next layer started (staircase) with %zu of the %u "
                                     "characters it needed",
                                     c->partial_chars, p->staircase_min_chars) < 0)
                                c->error = NULL;
                        continue;
                }
                c->content = strndup(c->partial.p, c->partial.len);
                if (!c->content)
                        return -ENOMEM;
                provider_call_cancel(c->provider, c->call);
                c->call = NULL;
                c->state = 1;
                c->cut = 1;
                c->seen_chars = c->partial_chars;
                c->end_usec = now;
                run->n_ok++;
                run->n_pending--;
                if (c->a)
                        run->sel[i].answered = 1;
                metrics_observe_call(c->agent, 1, c->end_usec - c->start_usec, 0, 0);
                call_progress(run, c);
        }
        return 0;
}

/* The next layer starts once staircase_quorum of this layer's calls (of
 * those that did not fail) have staircase_min_chars characters or have
 * finished. Returns 1 when it ended the layer (the run may be gone), 0
 * otherwise. */
static int staircase_maybe_step(EngineRun *run) {
        const PipelineConfig *p = run->spec.pipeline;
        size_t ready = 0, failed = 0, need;

        if (!staircase_layer(run) || run->finishing || run->n_pending == 0)
                return 0;
        for (size_t i = 0; i < run->n_calls; i++) {
                const AgentCall *c = &run->calls[i];
                if (c->state == 1 ||
                    (c->state == 0 && c->call && c->partial_chars >= p->staircase_min_chars))
                        ready++;
                else if (c->state < 0)
                        failed++;
        }
        need = (size_t) ceil(p->staircase_quorum * (double) run->n_calls);
        need = MAX(MIN(need, run->n_calls - failed), (size_t) 1);
        if (ready < need)
                return 0;
        layer_end(run);
        return 1;
}

static int ref_cmp(const void *a, const void *b) {
        const ExtractProposal *x = a, *y = b;
        if (x->weight != y->weight)
                return x->weight > y->weight ? -1 : 1;
        return strcmp(x->agent, y->agent);
}

static size_t utf8_chars(const char *s) {
        size_t n = 0;

        for (; s && *s; s++)
                n += ((unsigned char) *s & 0xC0) != 0x80;
        return n;
}

static json_t *call_to_json(EngineRun *run, const AgentCall *c, const LayerConfig *layer) {
        static const char *const role_names[] = {"propose", "refine", "aggregate"};
        const char *status = c->cut          ? "partial"
                             : c->state == 1 ? "ok"
                             : c->state == 0 ? "cancelled"
                                             : "error";
        json_t *o = json_pack("{s:s,s:s,s:f,s:I,s:s,s:o,s:I}", "agent", c->agent, "role",
                              role_names[layer->role], "weight", c->weight, "latency_ms",
                              (json_int_t) ((c->end_usec ? c->end_usec : now_usec()) - c->start_usec) / 1000,
                              "status", status, "usage", usage_to_json(&c->usage), "attempts",
                              (json_int_t) c->attempts);
        if (o && c->error)
                json_object_set_new(o, c->state == 1 ? "fallback" : "error", json_string(c->error));
        if (o && c->provider)
                json_object_set_new(o, "provider", json_string(c->provider->name));
        if (o && run->spec.chat->trace_content && c->content)
                json_object_set_new(o, "content", json_string(c->content));
        /* What the next layer's prompts hold of this answer. */
        if (o && staircase_layer(run) && !run->deadline_hit)
                json_object_set_new(o, "next_layer_saw",
                                    json_pack("{s:I,s:b}", "chars", (json_int_t) c->seen_chars, "complete",
                                              c->state == 1 && !c->cut));
        return o;
}

static void run_fail_no_answers(EngineRun *run) {
        char msg[1024];
        size_t off = 0;
        int all_timeout = run->n_calls > 0, all_kb_down = run->n_calls > 0;

        off += (size_t) snprintf(msg, sizeof msg, "every agent failed:");
        for (size_t i = 0; i < run->n_calls && off < sizeof msg; i++) {
                AgentCall *c = &run->calls[i];
                if (c->state != -ETIMEDOUT && c->state != 0)
                        all_timeout = 0;
                all_kb_down &= c->kb_down;
                off += (size_t) snprintf(msg + off, sizeof msg - off, "%s %s: %s", i ? ";" : "", c->agent,
                                         c->state == 0 ? "timed out"
                                         : c->error    ? c->error
                                                       : "failed");
        }
        if (all_kb_down) /* not the upstream's fault: the shared knowledge is down */
                run_finish(run, -ECONNREFUSED, 503, "server_error", "knowledge_unavailable", msg);
        else
                run_finish(run, -EIO, all_timeout ? 504 : 502, "upstream_error",
                           all_timeout ? "timeout" : "upstream_failed", msg);
}

static void start_next_layer(EngineRun *run);

/* A review over its budget (or that could not be asked): the answer is
 * withheld, never sent unreviewed. */
static void review_failed(EngineRun *run, int r) {
        char msg[512];
        const char *agent = run->chain_failed_agent >= 0 && (size_t) run->chain_failed_agent < run->n_sel
                                    ? run->sel[run->chain_failed_agent].name
                                    : "?";

        if (r == -ENOMEM) {
                run_finish(run, r, 500, "server_error", NULL, "out of memory");
                return;
        }
        snprintf(msg, sizeof msg,
                 "agent %s: the plugin's review %s; the answer is withheld rather than sent unreviewed",
                 agent,
                 r == -ETIMEDOUT ? "did not finish within its time budget"
                 : r == -EPERM   ? "cannot run (the agent is quarantined)"
                 : r == -EAGAIN  ? "cannot run (too many plugin threads are stuck)"
                                 : "cannot run (the plugin is stuck in an earlier call)");
        run_finish(run, r, r == -ETIMEDOUT ? 504 : 503, "server_error", "plugin_timeout", msg);
}

static void on_final_reviewed(EngineRun *run, int r, char *text) {
        _cleanup_free_ char *answer = TAKE_PTR(run->final_answer);

        if (r < 0) {
                review_failed(run, r);
                return;
        }
        if (run->spec.stream) {
                /* nothing was streamed (parallel answers) or no plugin reviews */
                size_t sl = strlen(answer);
                if (!run->streamed)
                        send_delta(run, text, strlen(text));
                else if (strncmp(text, answer, sl) == 0 && run->streamed_len == sl)
                        send_delta(run, text + sl, strlen(text + sl));
                else if (!streq(text, answer))
                        warn(run, "review changed already streamed text; the stream shows the "
                                  "unreviewed text");
        }
        run->streamed = run->spec.stream;
        free(run->final);
        run->final = text;
        run_finish(run, 0, 200, NULL, NULL, NULL);
}

/* The last layer's answer: reviewed by the selected agents' plugins, then
 * sent. From here on only reviews run (the deadline no longer ends layers). */
static void finish_with_answer(EngineRun *run, const char *answer) {
        int r;

        run->finishing = 1;
        free(run->final_answer);
        run->final_answer = strdup(answer);
        if (!run->final_answer) {
                run_finish(run, -ENOMEM, 500, "server_error", NULL, "out of memory");
                return;
        }
        if (run->spec.stream && run->review) {
                /* streamed through the reviewer: send what it still holds */
                stream_review_kick(run);
                return;
        }
        r = review_chain_start(run, answer, on_final_reviewed);
        if (r < 0)
                run_finish(run, r, 500, "server_error", NULL, "out of memory");
}

static void layer_end(EngineRun *run) {
        const LayerConfig *layer = &run->layers[run->layer];
        json_t *tl = json_array();
        size_t n_ok = 0;

        run->layer_timer = sd_event_source_disable_unref(run->layer_timer);
        run->layers_usec += now_usec() - run->layer_start;
        /* Staircase: the next layer takes the stragglers' text as it stands. */
        if (staircase_layer(run) && staircase_take_partials(run) < 0) {
                json_decref(tl);
                run_finish(run, -ENOMEM, 500, "server_error", NULL, "out of memory");
                return;
        }
        /* Stragglers past quorum or deadline are cancelled. */
        for (size_t i = 0; i < run->n_calls; i++) {
                AgentCall *c = &run->calls[i];
                if (c->state == 1 && !c->cut)
                        c->seen_chars = utf8_chars(c->content);
                if (c->call || c->pcall || c->ksearch) {
                        if (c->call)
                                provider_call_cancel(c->provider, c->call);
                        plugin_call_cancel(c->pcall);
                        kb_search_cancel(c->ksearch);
                        c->call = NULL;
                        c->pcall = NULL;
                        c->ksearch = NULL;
                        c->end_usec = now_usec();
                        if (!c->error)
                                c->error = strdup("cancelled: the layer ended without it");
                }
                json_array_append_new(tl, call_to_json(run, c, layer));
                if (c->state == 1)
                        n_ok++;
        }
        json_array_append_new(run->trace_layers, tl);
        run->n_pending = 0;

        if (layer->role == LAYER_AGGREGATE || run->layer + 1 == run->n_layers) {
                AgentCall *best = NULL;
                for (size_t i = 0; i < run->n_calls; i++)
                        if (run->calls[i].state == 1 && (!best || run->calls[i].weight > best->weight))
                                best = &run->calls[i];
                if (best) {
                        finish_with_answer(run, best->content);
                        return;
                }
                if (run->streamed) {
                        run_finish(run, -EIO, 502, "upstream_error", "stream_failed",
                                   run->calls[0].error ? run->calls[0].error : "the answer stream failed");
                        return;
                }
                if (run->n_refs > 0) {
                        warn(run, "%s failed (%s); returning the best proposal from %s",
                             layer->role == LAYER_AGGREGATE ? "aggregator" : "last layer",
                             run->calls[0].error ? run->calls[0].error : "no answer", run->refs[0].agent);
                        finish_with_answer(run, run->refs[0].text);
                        return;
                }
                run_fail_no_answers(run);
                return;
        }

        if (n_ok == 0) {
                if (run->n_refs == 0) {
                        run_fail_no_answers(run);
                        return;
                }
                warn(run, "every refiner in layer %zu failed; keeping the previous answers", run->layer + 1);
        } else {
                refs_clear(run);
                run->refs = calloc(n_ok, sizeof *run->refs);
                run->ref_texts = calloc(n_ok, sizeof(char *));
                run->ref_agents = calloc(n_ok, sizeof(char *));
                run->ref_partial = calloc(n_ok, sizeof(int));
                if (!run->refs || !run->ref_texts || !run->ref_agents || !run->ref_partial) {
                        run_finish(run, -ENOMEM, 500, "server_error", NULL, "out of memory");
                        return;
                }
                for (size_t i = 0; i < run->n_calls; i++) {
                        AgentCall *c = &run->calls[i];
                        if (c->state != 1)
                                continue;
                        run->ref_texts[run->n_refs] = TAKE_PTR(c->content);
                        run->ref_agents[run->n_refs] = strdup(c->agent);
                        run->ref_partial[run->n_refs] = c->cut;
                        run->refs[run->n_refs] = (ExtractProposal){
                                .agent = run->ref_agents[run->n_refs],
                                .text = run->ref_texts[run->n_refs],
                                .weight = c->weight > 0 ? c->weight : 1e-6,
                                .route_score = c->route_score,
                        };
                        run->n_refs++;
                }
                qsort(run->refs, run->n_refs, sizeof *run->refs, ref_cmp);
        }
        calls_clear(run);
        if (run->deadline_hit) {
                /* No time for more layers: the best answer so far. */
                warn(run, "returning the best answer so far (%s)", run->refs[0].agent);
                finish_with_answer(run, run->refs[0].text);
                return;
        }
        run->layer++;
        start_next_layer(run);
}

static void start_next_layer(EngineRun *run) {
        const LayerConfig *layer = &run->layers[run->layer];
        uint64_t now = now_usec(), end = run->deadline_usec;
        int r;

        run->layer_start = now;
        run->grace_armed = 0;
        r = layer->role == LAYER_AGGREGATE ? start_aggregate_layer(run, layer)
                                           : start_agent_layer(run, layer);
        if (r < 0) {
                run_finish(run, r, 500, "server_error", NULL, "cannot start the layer");
                return;
        }
        /* Without a layer timeout the pipeline deadline timer covers the layer. */
        if (layer->timeout_ms > 0) {
                end = MIN(end, now + layer->timeout_ms * USEC_PER_MSEC);
                arm_layer_timer(run, end);
        }
        run->layer_deadline = end;
        if (run->n_pending == 0)
                layer_end(run); /* nothing could start: decide now */
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        EngineRun *run = userdata;

        if (run->finishing)
                return 0; /* the answer is being reviewed, within the review's own budget */
        if (run->route_job) {
                run_finish(run, -ETIMEDOUT, 504, "upstream_error", "timeout",
                           "the deadline passed while the agents were scored");
                return 0;
        }
        if (run->docs_job) {
                run_finish(run, -ETIMEDOUT, 504, "upstream_error", "timeout",
                           "the deadline passed while the attached documents were indexed");
                return 0;
        }
        warn(run, "pipeline deadline reached in layer %zu", run->layer + 1);
        run->deadline_hit = 1;
        for (size_t i = 0; i < run->n_calls; i++) {
                AgentCall *c = &run->calls[i];
                if ((c->call || c->pcall || c->ksearch) && c->state == 0) {
                        c->state = -ETIMEDOUT;
                        free(c->error);
                        c->error = strdup("timed out (pipeline deadline)");
                }
        }
        layer_end(run);
        return 0;
}

/* ---- start ---- */

/* A request for one agent: no routing. */
static int select_agent(EngineRun *run) {
        Agent *a = agents_find(run->engine->agents, run->spec.agent);

        if (!a)
                return -ENOENT;
        run->sel = calloc(1, sizeof *run->sel);
        if (!run->sel)
                return -ENOMEM;
        run->sel[0] =
                (Selected){.a = a, .name = strdup(run->spec.agent), .score = 1, .weight = agent_weight(a)};
        run->n_sel = 1;
        return run->sel[0].name ? 0 : -ENOMEM;
}

/* The agents run->route selected. */
static int select_agents(EngineRun *run) {
        Engine *e = run->engine;
        unsigned samples = run->spec.pipeline ? run->spec.pipeline->self_moa_samples : 0;

        run->sel = calloc(MAX(run->route.n_selected, 1) * MAX(samples, 1), sizeof *run->sel);
        if (!run->sel)
                return -ENOMEM;
        for (size_t i = 0; i < run->route.n; i++) {
                RouteChoice *c = &run->route.choices[i];
                Agent *a;
                if (!c->selected || !(a = agents_find(e->agents, c->name)))
                        continue;
                /* Self-MoA: the best agent alone, sampled several times. */
                for (unsigned k = 0; k < MAX(samples, 1); k++) {
                        Selected *s = &run->sel[run->n_sel++];
                        s->a = a;
                        s->score = c->pinned ? 1.0 : MAX(c->score, 0.05);
                        /* The aggregator compares it between agents even
                         * when they were pinned (weights are then equal). */
                        s->route_score = MAX(c->score, 0.001);
                        s->weight = agent_weight(a);
                        if (samples > 1 && asprintf(&s->name, "%s#%u", c->name, k + 1) < 0)
                                s->name = NULL;
                        else if (samples <= 1)
                                s->name = strdup(c->name);
                        if (!s->name)
                                return -ENOMEM;
                }
                if (samples > 0)
                        break;
        }
        return run->n_sel > 0 ? 0 : -ENOENT;
}

static int build_layers(EngineRun *run) {
        const PipelineConfig *p = run->spec.pipeline;
        unsigned want = run->spec.chat->layers;

        if (!p) {
                run->layers = calloc(1, sizeof *run->layers);
                if (!run->layers)
                        return -ENOMEM;
                run->layers[0] = (LayerConfig){.role = LAYER_PROPOSE, .weight = 1, .quorum = 1};
                run->n_layers = 1;
                return 0;
        }
        run->layers = calloc(p->n_layers + 1, sizeof *run->layers);
        if (!run->layers)
                return -ENOMEM;
        memcpy(run->layers, p->layers, p->n_layers * sizeof *p->layers);
        run->n_layers = p->n_layers;
        /* moa.layers N keeps the first N-1 layers and the last one; 1 keeps
         * only the proposers (an aggregator with nothing to aggregate is
         * pointless), and the best proposal answers. */
        if (want == 1)
                run->n_layers = 1;
        else if (want > 0 && want < run->n_layers) {
                run->layers[want - 1] = run->layers[run->n_layers - 1];
                run->n_layers = want;
        }
        if (run->spec.chat->review) {
                /* A review: the agents' findings, then one merge; refining
                 * findings against each other adds nothing to a list. */
                size_t k = 0;
                for (size_t i = 0; i < run->n_layers; i++)
                        if (run->layers[i].role != LAYER_REFINE || i == 0)
                                run->layers[k++] = run->layers[i];
                run->n_layers = k;
        }
        return 0;
}

static void on_docs_indexed(void *userdata, int r, Kb *kb) {
        EngineRun *run = userdata;

        run->docs_job = NULL;
        if (r < 0) {
                log_full(LOG_LEVEL_WARNING, r, run->spec.request_id,
                         "cannot index the attached documents: %s", strerror(-r));
                run_finish(run, r, 500, "server_error", NULL, "cannot index the attached documents");
                return;
        }
        run->docs = kb;
        start_next_layer(run);
}

static void selected(EngineRun *run, int r);

static void on_routed(void *userdata, int r, RouteResult *res) {
        EngineRun *run = userdata;

        run->route_job = NULL;
        if (r >= 0) {
                run->route = *res;
                *res = (RouteResult) ROUTE_RESULT_INIT;
                r = select_agents(run);
        }
        selected(run, r);
}

static int on_start(sd_event_source *s, void *userdata) {
        EngineRun *run = userdata;
        const ChatRequest *chat = run->spec.chat;
        int r;

        run->start_source = sd_event_source_disable_unref(run->start_source);
        r = build_layers(run);
        if (r >= 0 && run->spec.agent)
                r = select_agent(run);
        else if (r >= 0) {
                /* the plugins score on their threads; on_routed() goes on */
                r = route_job_start(run->engine->event, &run->budget, run->engine->agents, run->query,
                                    (const char *const *) chat->agents, chat->n_agents, 0, on_routed, run,
                                    &run->route_job);
                if (r >= 0)
                        return 0;
        }
        selected(run, r);
        return 0;
}

static void selected(EngineRun *run, int r) {
        if (r < 0) {
                run_finish(run, r, r == -ENOENT ? 503 : 500, "server_error",
                           r == -ENOENT ? "no_agent" : NULL,
                           r == -ENOENT ? "no agent is available to answer (plugins failed to load?)"
                                        : "routing failed");
                return;
        }
        /* The attached documents are indexed on a thread, then the layers start. */
        if (run->spec.chat->n_documents > 0 && !run->spec.chat->review) {
                r = docs_index_start(run->engine->event, run->spec.chat->documents,
                                     run->spec.chat->n_documents, on_docs_indexed, run, &run->docs_job);
                if (r < 0)
                        run_finish(run, r, 500, "server_error", NULL, "cannot index the attached documents");
                return;
        }
        start_next_layer(run);
}

int engine_run_start(Engine *e, const EngineRunSpec *spec, const EngineCallbacks *cb, void *userdata,
                     EngineRun **ret) {
        EngineRun *run;
        uint64_t deadline_ms;
        int r;

        run = calloc(1, sizeof *run);
        if (!run)
                return -ENOMEM;
        e->n_runs++;
        run->engine = e;
        run->spec = *spec;
        run->cb = *cb;
        run->userdata = userdata;
        run->query = strdup(chat_request_query(spec->chat));
        run->budget = plugin_budget_from_limits(&e->cfg->limits);
        run->chain_failed_agent = -1;
        run->trace_layers = json_array();
        run->warnings = json_array();
        if (!run->query || !run->trace_layers || !run->warnings) {
                run_free(run);
                return -ENOMEM;
        }

        deadline_ms = e->cfg->limits.request_timeout_ms;
        if (spec->pipeline && spec->pipeline->deadline_ms > 0)
                deadline_ms = MIN(deadline_ms, spec->pipeline->deadline_ms);
        run->deadline_usec = now_usec() + deadline_ms * USEC_PER_MSEC;

        r = sd_event_add_time(e->event, &run->deadline, CLOCK_MONOTONIC, run->deadline_usec, 1, on_deadline,
                              run);
        if (r >= 0)
                r = sd_event_add_defer(e->event, &run->start_source, on_start, run);
        if (r < 0) {
                run_free(run);
                return r;
        }
        (void) sd_event_source_set_description(run->deadline, "engine-deadline");
        (void) sd_event_source_set_description(run->start_source, "engine-start");
        *ret = run;
        return 0;
}
