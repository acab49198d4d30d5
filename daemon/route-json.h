/* route-json.h — a routing result as the API shows it (route endpoint and
 * the chat trace): one object per agent with every signal behind its score. */
#pragma once

#include <jansson.h>

#include "router.h"

/**
 * route_choice_json() - {"name", "score", "plugin_score", "learned_score",
 * "kb_score", "weight", "selected", "fallback", "reason",
 * "learned_terms", "kb_terms"}; a signal the agent does not have (no
 * learned model, no knowledge) is null. Returns a new reference, NULL on OOM.
 */
json_t *route_choice_json(const RouteChoice *c);

/** route_result_json() - an array of route_choice_json(), best first. */
json_t *route_result_json(const RouteResult *r);
