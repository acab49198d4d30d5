/* router.h — agent selection, pure (no I/O): combine each agent's plugin
 * score with its knowledge-base evidence and weight, select every agent at
 * or above the threshold up to top-k, honour a pinned list, fall back to
 * the configured fallback agent when none qualifies. The formula is in
 * docs/routing.md. */
#pragma once

#include <stddef.h>

#include "config.h"
#include "kb.h"

/* More candidates or pinned names than this are refused (-E2BIG). */
#define ROUTER_MAX_CANDIDATES 1024u

/**
 * struct RouterCandidate - one agent's inputs to the router (borrowed).
 * @name:         agent name (unique among the candidates).
 * @plugin_score: the plugin's score in [0,1] (clamped; NaN -> 0).
 * @reason:       the plugin's short reason, may be NULL.
 * @kb_evidence:  router_kb_evidence() for this agent, in [0,1].
 * @weight:       the agent's configured weight (>= 0; NaN -> 0).
 */
typedef struct RouterCandidate {
        const char *name;
        double plugin_score;
        const char *reason;
        double kb_evidence;
        double weight;
} RouterCandidate;

/**
 * struct RouteChoice - one agent in a routing result (owned by the result).
 * @score:    the combined score in [0,1] the selection used.
 * @selected: chosen for this query.
 * @fallback: chosen only because nothing else qualified.
 * @pinned:   chosen because the request named it.
 */
typedef struct RouteChoice {
        char *name;
        char *reason;
        double score;
        double plugin_score;
        double kb_evidence;
        double weight;
        int selected;
        int fallback;
        int pinned;
} RouteChoice;

/**
 * struct RouteResult - every candidate, ordered by score (descending, ties
 * by name), with @n_selected of them selected. Embedded: initialise with
 * ROUTE_RESULT_INIT / zero, release with route_result_done().
 */
typedef struct RouteResult {
        RouteChoice *choices;
        size_t n;
        size_t n_selected;
} RouteResult;

#define ROUTE_RESULT_INIT ((RouteResult){0})

/** route_result_done() - free the contents of @r and zero it; NULL is a no-op. */
void route_result_done(RouteResult *r);

/**
 * router_combine() - the combined score of one candidate under @cfg:
 * clamp(weight * ((1 - kb_weight) * plugin_score + kb_weight * kb_evidence), 0, 1).
 */
double router_combine(const RouterConfig *cfg, const RouterCandidate *c);

/**
 * router_route() - route one query. With @n_pinned > 0 exactly the pinned
 * agents are selected (in any order, duplicates ignored; an unknown name
 * is -ENOENT). Otherwise every candidate with combined score >= threshold
 * is selected, best first, at most top_k (0 = no limit); when none
 * qualifies the fallback agent is selected (flag @fallback); if the
 * fallback is not among the candidates, the best-scoring candidate is.
 * On success fills *@ret (which must be empty) and returns 0; returns
 * -EINVAL / -E2BIG / -ENOENT / -ENOMEM otherwise, leaving *@ret empty.
 */
int router_route(const RouterConfig *cfg, const RouterCandidate *cands, size_t n, const char *const *pinned,
                 size_t n_pinned, RouteResult *ret);

/**
 * router_kb_evidence() - how well an agent's knowledge base covers @query,
 * in [0,1], from its top @n hits: the share of the query's distinct content
 * terms (stop words in English, German, French and Spanish dropped, terms
 * shorter than 3 bytes dropped, at most 32 terms) found as words in the
 * hits' texts, times a damping factor n / (n + 1) for thin evidence. A term
 * counts as found when a hit word equals it or shares its first 5 bytes
 * (cheap stemming: "contracts"/"contract"). 0 when the query has no
 * content terms or there are no hits. Pure; never fails.
 */
double router_kb_evidence(const char *query, const KbHit *hits, size_t n);
