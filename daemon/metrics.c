/* metrics.c — counters kept on the loop thread and rendered as Prometheus
 * text. Endpoints are folded into a fixed label set so a client cannot
 * grow the series by inventing paths. */
#include <stdio.h>

#include "agents.h"
#include "ingest.h"
#include "metrics.h"
#include "server.h"
#include "util.h"

static const char *const endpoints[] = { "/v1/chat/completions", "/v1/models", "/v1/moa/route", "/v1/moa/agents",
                                         "/v1/moa/documents", "/v1/moa/reload", "/v1/moa/status", "/healthz",
                                         "/readyz", "/metrics", "other" };
static const unsigned statuses[] = { 200, 400, 403, 404, 405, 413, 415, 429, 499, 500, 502, 503, 504, 0 };
/* Request duration buckets, seconds. */
static const double buckets[] = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 120 };

static uint64_t requests[ELEMENTSOF(endpoints)][ELEMENTSOF(statuses)];
static uint64_t dur_bucket[ELEMENTSOF(endpoints)][ELEMENTSOF(buckets)];
static uint64_t dur_count[ELEMENTSOF(endpoints)];
static double dur_sum[ELEMENTSOF(endpoints)];

static size_t endpoint_index(const char *path) {
        if (strncmp(path, "/v1/moa/agents/", 15) == 0)
                return 4;
        if (streq(path, "/chat/completions"))
                return 0;
        if (streq(path, "/models"))
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
        dur_count[e]++;
        dur_sum[e] += sec;
        for (size_t b = 0; b < ELEMENTSOF(buckets); b++)
                if (sec <= buckets[b])
                        dur_bucket[e][b]++;
}

void api_metrics(Server *s, HttpRequest *req) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f) {
                http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
                return;
        }
        fputs("# HELP moad_http_requests_total HTTP requests by endpoint and status (499: client went away).\n"
              "# TYPE moad_http_requests_total counter\n",
              f);
        for (size_t e = 0; e < ELEMENTSOF(endpoints); e++)
                for (size_t k = 0; k < ELEMENTSOF(statuses); k++)
                        if (requests[e][k])
                                fprintf(f, "moad_http_requests_total{endpoint=\"%s\",status=\"%s%u\"} %llu\n",
                                        endpoints[e], statuses[k] ? "" : "other", statuses[k] ? statuses[k] : 0,
                                        (unsigned long long) requests[e][k]);
        fputs("# HELP moad_http_request_duration_seconds Time from request start to the last byte handed to the "
              "client.\n# TYPE moad_http_request_duration_seconds histogram\n",
              f);
        for (size_t e = 0; e < ELEMENTSOF(endpoints); e++) {
                if (!dur_count[e])
                        continue;
                for (size_t b = 0; b < ELEMENTSOF(buckets); b++)
                        fprintf(f, "moad_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n",
                                endpoints[e], buckets[b], (unsigned long long) dur_bucket[e][b]);
                fprintf(f, "moad_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n",
                        endpoints[e], (unsigned long long) dur_count[e]);
                fprintf(f, "moad_http_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n", endpoints[e], dur_sum[e]);
                fprintf(f, "moad_http_request_duration_seconds_count{endpoint=\"%s\"} %llu\n", endpoints[e],
                        (unsigned long long) dur_count[e]);
        }
        fprintf(f,
                "# HELP moad_inflight_requests Chat completions being processed.\n# TYPE moad_inflight_requests gauge\n"
                "moad_inflight_requests %u\n"
                "# HELP moad_queued_requests Chat completions waiting for a slot.\n# TYPE moad_queued_requests gauge\n"
                "moad_queued_requests %u\n"
                "# HELP moad_ingest_pending Documents waiting or being ingested.\n# TYPE moad_ingest_pending gauge\n"
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
