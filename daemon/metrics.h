/* metrics.h — Prometheus text exposition of the daemon's counters. */
#pragma once

#include <stdint.h>

#include "http.h"

typedef struct Server Server;

/** metrics_observe_request() - count one finished HTTP request. */
void metrics_observe_request(const char *path, unsigned status, uint64_t duration_usec);

/** metrics_observe_call() - one agent call ended (@ok: it answered). */
void metrics_observe_call(const char *agent, int ok, uint64_t latency_usec, uint64_t prompt_tokens,
                          uint64_t completion_tokens);

/** metrics_observe_chat() - a chat completion ended with @status; @pipeline
 * is the pipeline or agent it ran on (a configured name). */
void metrics_observe_chat(const char *pipeline, unsigned status);

/** metrics_observe_ttft() - a streamed answer's first token reached the client. */
void metrics_observe_ttft(uint64_t usec);

/** metrics_observe_overhead() - a request's time outside its upstream layers
 * (parsing, routing, prompts, delivery): what moad itself adds. */
void metrics_observe_overhead(uint64_t usec);

/** metrics_observe_plugin_timeout() - @agent's plugin @callback ("score",
 * "build_prompt", "review") went over its time budget. */
void metrics_observe_plugin_timeout(const char *agent, const char *callback);

/** api_metrics() - GET /metrics. */
void api_metrics(Server *s, HttpRequest *req);
