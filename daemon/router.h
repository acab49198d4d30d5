/* router.h — agent selection, pure (no I/O): combine each agent's plugin
 * lexicon score (a prior), the learned classifier's probability and its
 * calibrated knowledge-base evidence in log-odds, times its weight; select
 * every agent at or above the threshold up to top-k, honour a pinned list,
 * fall back to the configured fallback agent when none qualifies. The
 * formulas are in docs/routing.md. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* More candidates or pinned names than this are refused (-E2BIG). */
#define ROUTER_MAX_CANDIDATES 1024u

/**
 * struct RouterCandidate - one agent's inputs to the router (borrowed).
 * @name:         agent name (unique among the candidates).
 * @plugin_score: the plugin's lexicon score in [-1,1] (clamped; NaN -> 0);
 *                negative: the words are used in another sense.
 * @reason:       the plugin's short reason, may be NULL.
 * @learned:      the classifier's probability in [0,1]; NaN: the agent has
 *                no learned model (no examples, no documents).
 * @learned_terms: words behind @learned, may be NULL.
 * @kb_evidence:  router_kb_evidence() for this agent in [0,1]; NaN: the
 *                agent has no knowledge base.
 * @kb_terms:     the terms and documents behind @kb_evidence, may be NULL.
 * @weight:       the agent's configured weight (>= 0; NaN -> 0).
 */
typedef struct RouterCandidate {
        const char *name;
        double plugin_score;
        const char *reason;
        double learned;
        const char *learned_terms;
        double kb_evidence;
        const char *kb_terms;
        double weight;
} RouterCandidate;

/**
 * struct RouteChoice - one agent in a routing result (owned by the result).
 * @score:    the combined score in [0,1] the selection used.
 * @learned, @kb_evidence: as given (NaN: not available).
 * @selected: chosen for this query.
 * @fallback: chosen only because nothing else qualified.
 * @pinned:   chosen because the request named it.
 */
typedef struct RouteChoice {
        char *name;
        char *reason;
        char *learned_terms;
        char *kb_terms;
        double score;
        double plugin_score;
        double learned;
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
 * weight * sigmoid(bias + lexicon_weight * plugin_score + learned_weight *
 * logit(learned) + kb_weight * kb_evidence), clamped to [0,1]; a signal
 * that is NaN (not available) adds nothing, learned is clamped to
 * [0.02, 0.98] first.
 */
double router_combine(const RouterConfig *cfg, const RouterCandidate *c);

/**
 * router_route() - route one query. With @n_pinned > 0 exactly the pinned
 * agents are selected (in any order, duplicates ignored; an unknown name
 * is -ENOENT). Otherwise every candidate with combined score >= threshold
 * is selected, best first, at most top_k (0 = no limit), provided it
 * scores at least the fallback agent's own (unweighted) score plus
 * fallback_margin; when none qualifies, the best specialist from the
 * floor up under the same condition, else the fallback agent is selected
 * (flag @fallback); if the
 * fallback is not among the candidates, the best-scoring candidate is.
 * On success fills *@ret (which must be empty) and returns 0; returns
 * -EINVAL / -E2BIG / -ENOENT / -ENOMEM otherwise, leaving *@ret empty.
 */
int router_route(const RouterConfig *cfg, const RouterCandidate *cands, size_t n, const char *const *pinned,
                 size_t n_pinned, RouteResult *ret);

/**
 * router_kb_evidence() - calibrated knowledge evidence of every agent for one
 * query. @df holds @n_agents rows of @n_terms document frequencies: row a,
 * column t = how many of agent a's @n_chunks[a] chunks hold query term t.
 * For each term known anywhere, its weight is its rarity over all agents'
 * chunks (idf), and agent a owns the share p_a / (p_a + p_rest) of it, p_a
 * being the term's rate in a's chunks and p_rest its rate in everyone
 * else's: a term frequent in a's knowledge and rare elsewhere is strong
 * evidence, a word common everywhere is none, and a larger knowledge base
 * does not raise its own evidence by size. An agent's owned weight is the
 * sum over terms of idf * (share - 1/2) / (1/2) (shares above even only),
 * damped by max(df / (df + 2), 1 - exp(-30 df / N)) (a term in one
 * chunk of many may be incidental, in one of three it is not); its evidence is
 * its part of all agents' owned weight times a confidence
 * 1 - exp(-owned / 4), in [0,1).
 * Agents with @n_chunks[a] == 0 get NaN (no knowledge), and so does an agent
 * when no other agent has knowledge (nothing to contrast it with). @ret_best_term[a],
 * if not NULL, receives the index of a's strongest term, or -1.
 * Pure; never fails.
 */
void router_kb_evidence(const uint32_t *df, const uint32_t *n_chunks, size_t n_agents, size_t n_terms,
                        double *ret, int *ret_best_term);
