/* route-job.h — routing with the plugins' scores computed off the loop:
 * every wanted agent's score() runs on its plugin thread within its budget
 * (plugin-call.h), then agents_route_scored() decides on the loop. An
 * agent whose score failed or ran over budget counts as scoring 0; a
 * quarantined agent is not asked and is routed with weight 0. */
#pragma once

#include <systemd/sd-event.h>

#include "agents.h"
#include "plugin-call.h"
#include "router.h"

typedef struct RouteJob RouteJob;

/* @r is 0 or -errno; on 0 the callee may take @res (route_result_done()
 * is called on it after the callback otherwise). */
typedef void (*RouteJobDone)(void *userdata, int r, RouteResult *res);

/**
 * route_job_start() - route @query over @set (which must outlive the job)
 * as agents_route() would, calling the plugins on their threads. @done runs
 * once on the loop, never from inside this function, unless the job is
 * cancelled. Inputs are copied. Returns 0 and the job in *@ret, or -errno.
 */
int route_job_start(sd_event *e, const PluginBudget *budget, AgentSet *set, const char *query,
                    const char *const *pinned, size_t n_pinned, int explain, RouteJobDone done,
                    void *userdata, RouteJob **ret);

/** route_job_cancel() - free the job without calling back; NULL is a no-op. */
void route_job_cancel(RouteJob *j);
