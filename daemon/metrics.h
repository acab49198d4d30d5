/* metrics.h — Prometheus text exposition of the daemon's counters. */
#pragma once

#include <stdint.h>

#include "http.h"

typedef struct Server Server;

/** metrics_observe_request() - count one finished HTTP request. */
void metrics_observe_request(const char *path, unsigned status, uint64_t duration_usec);

/** api_metrics() - GET /metrics. */
void api_metrics(Server *s, HttpRequest *req);
