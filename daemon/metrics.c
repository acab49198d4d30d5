/* metrics.c — counters kept on the loop thread and rendered as Prometheus
 * text. Endpoints are folded into a fixed label set so a client cannot
 * grow the series by inventing paths. */
#include <stdio.h>

#include "agents.h"
#include "ingest.h"
#include "metrics.h"
#include "plugin-call.h"
#include "server.h"
#include "util.h"

static const char *const endpoints[] = {"/v1/chat/completions",
                                        "/v1/models",
                                        "/v1/moa/route",
                                        "/v1/moa/agents",
                                        "/v1/moa/documents",
                                        "/v1/moa/reload",
                                        "/v1/moa/status",
                                        "/healthz",
                                        "/readyz",
                                        "/metrics",
                                        "other"};
static const unsigned statuses[] = {200, 400, 403, 404, 405, 413, 415, 429, 499, 500, 502, 503, 504, 0};
/* Request duration buckets, seconds. */
static const double buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 120};

typedef struct Histogram {
        uint64_t bucket[ELEMENTSOF(buckets)];
        uint64_t count;
        double sum;
} Histogram;

/* Agents are named by the configuration (bounded); past this many the rest
 * are counted as "other" so the series stay bounded across reloads. */
#define METRICS_MAX_AGENTS 64

typedef struct AgentStats {
        char name[65];
        uint64_t calls, errors, prompt_tokens, completion_tokens;
        uint64_t plugin_timeouts[_PLUGIN_CB_MAX];
        Histogram latency;
} AgentStats;

static AgentStats agents_stats[METRICS_MAX_AGENTS + 1];

/* Chat requests by pipeline (or single agent) and status; names come from
 * the configuration, so the table is bounded like the agents'. */
typedef struct PipelineStats {
        char name[65];
        uint64_t by_status[ELEMENTSOF(statuses)];
} PipelineStats;

static PipelineStats pipeline_stats[METRICS_MAX_AGENTS + 1];
static size_t n_pipeline_stats;
static size_t n_agents_stats;
static Histogram ttft, overhead;
static const double fine_buckets[] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10};

static void histogram_observe(Histogram *h, const double *b, double sec) {
        h->count++;
        h->sum += sec;
        for (size_t i = 0; i < ELEMENTSOF(buckets); i++)
                if (sec <= b[i])
                        h->bucket[i]++;
}

static void histogram_print(FILE *f, const char *name, const char *labels, const Histogram *h,
                            const double *b) {
        const char *sep = labels[0] ? "," : "";

        for (size_t i = 0; i < ELEMENTSOF(buckets); i++)
                fprintf(f, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, b[i],
                        (unsigned long long) h->bucket[i]);
        fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long) h->count);
        if (labels[0])
                fprintf(f, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
                        (unsigned long long) h->count);
        else
                fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name,
                        (unsigned long long) h->count);
}

static AgentStats *agent_stats(const char *agent) {
        for (size_t i = 0; i < n_agents_stats; i++)
                if (streq(agents_stats[i].name, agent))
                        return &agents_stats[i];
        if (n_agents_stats < METRICS_MAX_AGENTS) {
                AgentStats *a = &agents_stats[n_agents_stats++];
                snprintf(a->name, sizeof a->name, "%s", agent);
                return a;
        }
        snprintf(agents_stats[METRICS_MAX_AGENTS].name, sizeof agents_stats[0].name, "other");
        return &agents_stats[METRICS_MAX_AGENTS];
}

void metrics_observe_call(const char *agent, int ok, uint64_t latency_usec, uint64_t prompt_tokens,
                          uint64_t completion_tokens) {
        AgentStats *a = agent_stats(agent);

        a->calls++;
        if (!ok)
                a->errors++;
        a->prompt_tokens += prompt_tokens;
        a->completion_tokens += completion_tokens;
        histogram_observe(&a->latency, buckets, (double) latency_usec / 1e6);
}

void metrics_observe_plugin_timeout(const char *agent, const char *callback) {
        AgentStats *a = agent_stats(agent);
        for (int cb = 0; cb < _PLUGIN_CB_MAX; cb++)
                if (streq(callback, plugin_callback_name(cb)))
                        a->plugin_timeouts[cb]++;
}

void metrics_observe_chat(const char *pipeline, unsigned status) {
        PipelineStats *p = NULL;
        size_t k;

        for (size_t i = 0; i < n_pipeline_stats; i++)
                if (streq(pipeline_stats[i].name, pipeline))
                        p = &pipeline_stats[i];
        if (!p && n_pipeline_stats < METRICS_MAX_AGENTS) {
                p = &pipeline_stats[n_pipeline_stats++];
                snprintf(p->name, sizeof p->name, "%s", pipeline);
        }
        if (!p) {
                p = &pipeline_stats[METRICS_MAX_AGENTS];
                snprintf(p->name, sizeof p->name, "other");
        }
        for (k = 0; k + 1 < ELEMENTSOF(statuses) && statuses[k] != status; k++)
                ;
        p->by_status[k]++;
}

void metrics_observe_ttft(uint64_t usec) {
        histogram_observe(&ttft, buckets, (double) usec / 1e6);
}

void metrics_observe_overhead(uint64_t usec) {
        histogram_observe(&overhead, fine_buckets, (double) usec / 1e6);
}

static uint64_t requests[ELEMENTSOF(endpoints)][ELEMENTSOF(statuses)];
static Histogram durations[ELEMENTSOF(endpoints)];

/* "200", ..., or "other" for a status outside the table. */
static const char *status_label(size_t k, char buf[static 12]) {
        if (!statuses[k])
                return "other";
        snprintf(buf, 12, "%u", statuses[k]);
        return buf;
}

static size_t endpoint_index(const char *path) {
        if (strncmp(path, "/v1/moa/agents/", 15) == 0)
                return 4;
        if (streq(path, "/chat/completions"))
                return 0;
        if (streq(path, "/models") || strncmp(path, "/v1/models/", 11) == 0)
                return 1;
        for (size_t i = 0; i + 1 < ELEMENTSOF(endpoints); i++)
                if (streq(endpoints[i], path))
                        return i;
        return ELEMENTSOF(endpoints) - 1;
}

void metrics_observe_request(const char *path, unsigned status, uint64_t duration_usec) {
        size_t e = endpoint_index(path), k;
        double sec = (double) duration_usec / 1e6;

        for (k = 0; k + 1 < ELEMENTSOF(statuses) && statuses[k] != status; k++)
                ;
        requests[e][k]++;
        histogram_observe(&durations[e], buckets, sec);
}

void api_metrics(Server *s, HttpRequest *req) {
        char sb[12];
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f) {
                http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
                return;
        }
        fputs("# HELP moad_http_requests_total HTTP requests by endpoint and status (499: client went "
              "away).\n"
              "# TYPE moad_http_requests_total counter\n",
              f);
        for (size_t e = 0; e < ELEMENTSOF(endpoints); e++)
                for (size_t k = 0; k < ELEMENTSOF(statuses); k++)
                        if (requests[e][k])
                                fprintf(f, "moad_http_requests_total{endpoint=\"%s\",status=\"%s\"} %llu\n",
                                        endpoints[e], status_label(k, sb),
                                        (unsigned long long) requests[e][k]);
        fputs("# HELP moad_http_request_duration_seconds Time from request start to the last byte handed to "
              "the "
              "client.\n# TYPE moad_http_request_duration_seconds histogram\n",
              f);
        for (size_t e = 0; e < ELEMENTSOF(endpoints); e++)
                if (durations[e].count) {
                        char labels[64];
                        snprintf(labels, sizeof labels, "endpoint=\"%s\"", endpoints[e]);
                        histogram_print(f, "moad_http_request_duration_seconds", labels, &durations[e],
                                        buckets);
                }
        fputs("# HELP moad_chat_requests_total Chat completions by pipeline (or agent) and final status.\n"
              "# TYPE moad_chat_requests_total counter\n",
              f);
        for (size_t i = 0; i <= METRICS_MAX_AGENTS; i++)
                for (size_t k = 0; k < ELEMENTSOF(statuses); k++)
                        if (pipeline_stats[i].by_status[k])
                                fprintf(f,
                                        "moad_chat_requests_total{pipeline=\"%.64s\",status=\"%s\"} %llu\n",
                                        pipeline_stats[i].name, status_label(k, sb),
                                        (unsigned long long) pipeline_stats[i].by_status[k]);
        fputs("# HELP moad_agent_calls_total Calls made for each agent (every layer).\n"
              "# TYPE moad_agent_calls_total counter\n",
              f);
        for (size_t i = 0; i <= METRICS_MAX_AGENTS; i++)
                if (agents_stats[i].calls)
                        fprintf(f, "moad_agent_calls_total{agent=\"%s\"} %llu\n", agents_stats[i].name,
                                (unsigned long long) agents_stats[i].calls);
        fputs("# HELP moad_agent_errors_total Calls that ended without an answer.\n"
              "# TYPE moad_agent_errors_total counter\n",
              f);
        for (size_t i = 0; i <= METRICS_MAX_AGENTS; i++)
                if (agents_stats[i].calls)
                        fprintf(f, "moad_agent_errors_total{agent=\"%s\"} %llu\n", agents_stats[i].name,
                                (unsigned long long) agents_stats[i].errors);
        fputs("# HELP moad_agent_tokens_total Tokens used by each agent's calls.\n"
              "# TYPE moad_agent_tokens_total counter\n",
              f);
        for (size_t i = 0; i <= METRICS_MAX_AGENTS; i++)
                if (agents_stats[i].calls)
                        fprintf(f,
                                "moad_agent_tokens_total{agent=\"%s\",kind=\"prompt\"} %llu\n"
                                "moad_agent_tokens_total{agent=\"%s\",kind=\"completion\"} %llu\n",
                                agents_stats[i].name, (unsigned long long) agents_stats[i].prompt_tokens,
                                agents_stats[i].name,
                                (unsigned long long) agents_stats[i].completion_tokens);
        fputs("# HELP moad_agent_call_duration_seconds Latency of each agent's calls.\n"
              "# TYPE moad_agent_call_duration_seconds histogram\n",
              f);
        for (size_t i = 0; i <= METRICS_MAX_AGENTS; i++)
                if (agents_stats[i].calls) {
                        char labels[96];
                        snprintf(labels, sizeof labels, "agent=\"%.64s\"", agents_stats[i].name);
                        histogram_print(f, "moad_agent_call_duration_seconds", labels,
                                        &agents_stats[i].latency, buckets);
                }
        fputs("# HELP moad_plugin_timeouts_total Plugin callbacks that went over their time budget.\n"
              "# TYPE moad_plugin_timeouts_total counter\n",
              f);
        for (size_t i = 0; i <= METRICS_MAX_AGENTS; i++)
                for (int cb = 0; cb < _PLUGIN_CB_MAX; cb++)
                        if (agents_stats[i].plugin_timeouts[cb])
                                fprintf(f, "moad_plugin_timeouts_total{agent=\"%s\",callback=\"%s\"} %llu\n",
                                        agents_stats[i].name, plugin_callback_name(cb),
                                        (unsigned long long) agents_stats[i].plugin_timeouts[cb]);
        fputs("# HELP moad_agent_quarantined Agents refused without a plugin call until the next reload "
              "(1), after repeated plugin timeouts.\n# TYPE moad_agent_quarantined gauge\n",
              f);
        for (size_t i = 0; i < agents_count(s->runtime->agents); i++) {
                Agent *a = agents_get(s->runtime->agents, i);
                fprintf(f, "moad_agent_quarantined{agent=\"%s\"} %d\n", agent_name(a),
                        plugin_agent_quarantined(agent_plugin(a)));
        }
        fprintf(f,
                "# HELP moad_plugin_calls_stuck Threads still inside a plugin callback past its budget.\n"
                "# TYPE moad_plugin_calls_stuck gauge\nmoad_plugin_calls_stuck %u\n",
                plugin_calls_stuck());
        fputs("# HELP moad_time_to_first_token_seconds From request arrival to the first streamed token.\n"
              "# TYPE moad_time_to_first_token_seconds histogram\n",
              f);
        histogram_print(f, "moad_time_to_first_token_seconds", "", &ttft, buckets);
        fputs("# HELP moad_overhead_seconds Time of a chat request spent outside its upstream layers "
              "(parsing, "
              "routing, prompts, delivery).\n# TYPE moad_overhead_seconds histogram\n",
              f);
        histogram_print(f, "moad_overhead_seconds", "", &overhead, fine_buckets);
        fprintf(f,
                "# HELP moad_inflight_requests Chat completions being processed.\n# TYPE "
                "moad_inflight_requests gauge\n"
                "moad_inflight_requests %u\n"
                "# HELP moad_queued_requests Chat completions waiting for a slot.\n# TYPE "
                "moad_queued_requests gauge\n"
                "moad_queued_requests %u\n"
                "# HELP moad_ingest_pending Documents waiting or being ingested.\n# TYPE "
                "moad_ingest_pending gauge\n"
                "moad_ingest_pending %u\n"
                "# HELP moad_agents Agents loaded.\n# TYPE moad_agents gauge\nmoad_agents %zu\n"
                "# HELP moad_uptime_seconds Seconds since start.\n# TYPE moad_uptime_seconds gauge\n"
                "moad_uptime_seconds %llu\n",
                s->inflight, s->queued, ingest_worker_pending(s->ingest), agents_count(s->runtime->agents),
                (unsigned long long) ((now_usec() - s->start_usec) / USEC_PER_SEC));
        if (fclose(f) != 0 || !buf) {
                free(buf);
                http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
                return;
        }
        http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len, NULL, NULL);
        free(buf);
}
