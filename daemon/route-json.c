/* route-json.c — RouteChoice to JSON for the API (see route-json.h). */
#include <math.h>

#include "route-json.h"

static json_t *num_or_null(double x) {
        return isnan(x) ? json_null() : json_real(x);
}

json_t *route_choice_json(const RouteChoice *c) {
        return json_pack("{s:s,s:f,s:f,s:o,s:o,s:f,s:b,s:b,s:s,s:s,s:s}", "name", c->name, "score", c->score,
                         "plugin_score", c->plugin_score, "learned_score", num_or_null(c->learned),
                         "kb_score", num_or_null(c->kb_evidence), "weight", c->weight, "selected",
                         c->selected, "fallback", c->fallback, "reason", c->reason ? c->reason : "",
                         "learned_terms", c->learned_terms ? c->learned_terms : "", "kb_terms",
                         c->kb_terms ? c->kb_terms : "");
}

json_t *route_result_json(const RouteResult *r) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < r->n; i++)
                if (json_array_append_new(a, route_choice_json(&r->choices[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}
