/* router.c — pure agent selection and the calibrated knowledge-base
 * evidence (see router.h and docs/routing.md). */
#include <math.h>

#include "router.h"
#include "util.h"

void route_result_done(RouteResult *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n; i++) {
                free(r->choices[i].name);
                free(r->choices[i].reason);
                free(r->choices[i].learned_terms);
                free(r->choices[i].kb_terms);
        }
        free(r->choices);
        *r = ROUTE_RESULT_INIT;
}

static double clamp01(double x) {
        if (isnan(x) || x < 0)
                return 0;
        return x > 1 ? 1 : x;
}

#define LEARNED_MIN 0.02 /* the classifier's probability is trusted to 1:49 odds */

double router_combine(const RouterConfig *cfg, const RouterCandidate *c) {
        double w = c->weight;
        if (!cfg || isnan(w) || w < 0)
                return 0;
        double lex = isnan(c->plugin_score) ? 0 : CLAMP(c->plugin_score, -1.0, 1.0);
        double z = cfg->bias + cfg->lexicon_weight * lex;
        if (!isnan(c->learned)) {
                double p = CLAMP(c->learned, LEARNED_MIN, 1 - LEARNED_MIN);
                z += cfg->learned_weight * log(p / (1 - p));
        }
        if (!isnan(c->kb_evidence))
                z += cfg->kb_weight * clamp01(c->kb_evidence);
        if (isnan(z))
                return 0;
        return clamp01(w / (1 + exp(-z)));
}

static char *strdup_or_empty(const char *s) {
        return strdup(s ? s : "");
}

static int choice_cmp(const void *x, const void *y) {
        const RouteChoice *a = x, *b = y;
        if (a->score > b->score)
                return -1;
        if (a->score < b->score)
                return 1;
        return strcmp(a->name, b->name);
}

int router_route(const RouterConfig *cfg, const RouterCandidate *cands, size_t n, const char *const *pinned,
                 size_t n_pinned, RouteResult *ret) {
        RouteResult r = ROUTE_RESULT_INIT;

        if (!cfg || !ret || (n && !cands) || (n_pinned && !pinned))
                return -EINVAL;
        if (n > ROUTER_MAX_CANDIDATES || n_pinned > ROUTER_MAX_CANDIDATES)
                return -E2BIG;
        for (size_t i = 0; i < n; i++)
                if (isempty(cands[i].name))
                        return -EINVAL;
        for (size_t p = 0; p < n_pinned; p++) {
                size_t i;
                if (isempty(pinned[p]))
                        return -EINVAL;
                for (i = 0; i < n; i++)
                        if (streq(cands[i].name, pinned[p]))
                                break;
                if (i == n)
                        return -ENOENT;
        }

        if (n > 0) {
                r.choices = calloc(n, sizeof(RouteChoice));
                if (!r.choices)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                RouteChoice *c = &r.choices[i];
                r.n = i + 1;
                c->name = strdup(cands[i].name);
                c->reason = strdup_or_empty(cands[i].reason);
                c->learned_terms = strdup_or_empty(cands[i].learned_terms);
                c->kb_terms = strdup_or_empty(cands[i].kb_terms);
                if (!c->name || !c->reason || !c->learned_terms || !c->kb_terms) {
                        route_result_done(&r);
                        return -ENOMEM;
                }
                c->plugin_score = isnan(cands[i].plugin_score) ? 0 : CLAMP(cands[i].plugin_score, -1.0, 1.0);
                c->learned = isnan(cands[i].learned) ? NAN : clamp01(cands[i].learned);
                c->kb_evidence = isnan(cands[i].kb_evidence) ? NAN : clamp01(cands[i].kb_evidence);
                c->weight = isnan(cands[i].weight) || cands[i].weight < 0 ? 0 : cands[i].weight;
                c->score = router_combine(cfg, &cands[i]);
        }
        if (r.n > 1)
                qsort(r.choices, r.n, sizeof(RouteChoice), choice_cmp);

        if (n_pinned > 0) {
                for (size_t i = 0; i < r.n; i++)
                        for (size_t p = 0; p < n_pinned; p++)
                                if (streq(r.choices[i].name, pinned[p]) && !r.choices[i].selected) {
                                        r.choices[i].selected = r.choices[i].pinned = 1;
                                        r.n_selected++;
                                }
        } else {
                double threshold = clamp01(cfg->threshold);
                /* The fallback agent has learned everyday talk: a specialist
                 * no more likely than that (by fallback_margin) is a domain
                 * word used in another sense ("a budget airline"), even at
                 * the threshold. Its own score, not weighed down. */
                const RouteChoice *fbc = NULL;
                for (size_t i = 0; i < r.n; i++)
                        if (cfg->fallback && streq(r.choices[i].name, cfg->fallback))
                                fbc = &r.choices[i];
                double beat = fbc ? fbc->score / MAX(fbc->weight, 1e-9) + MAX(cfg->fallback_margin, 0.0) : 0;
                for (size_t i = 0; i < r.n; i++) {
                        RouteChoice *c = &r.choices[i];
                        if (cfg->top_k > 0 && r.n_selected >= cfg->top_k)
                                break;
                        if (c->weight <= 0)
                                continue; /* disabled by weight even at threshold 0 */
                        /* the fallback is not a specialist: it is chosen only by fallback */
                        if (cfg->fallback && streq(c->name, cfg->fallback))
                                continue;
                        if (c->score < threshold)
                                break; /* sorted: nothing further qualifies */
                        if (fbc && c->score < beat)
                                continue;
                        c->selected = 1;
                        r.n_selected++;
                }
                /* Nobody reached the threshold: the best specialist still
                 * answers when it reaches the floor and scores above the
                 * fallback agent (which has learned what is everyday talk). */
                if (r.n_selected == 0 && r.n > 0 && cfg->floor > 0 && cfg->floor < threshold) {
                        for (size_t i = 0; i < r.n; i++) {
                                RouteChoice *c = &r.choices[i];
                                if (c == fbc || c->weight <= 0)
                                        continue;
                                if (c->score >= cfg->floor && (!fbc || c->score >= beat)) {
                                        c->selected = 1;
                                        r.n_selected = 1;
                                }
                                break; /* sorted: only the best may */
                        }
                }
                if (r.n_selected == 0 && r.n > 0) {
                        size_t pick = 0;
                        const char *fb = isempty(cfg->fallback) ? "general" : cfg->fallback;
                        for (size_t i = 0; i < r.n; i++)
                                if (streq(r.choices[i].name, fb)) {
                                        pick = i;
                                        break;
                                }
                        r.choices[pick].selected = r.choices[pick].fallback = 1;
                        r.n_selected = 1;
                }
        }

        *ret = r;
        return 0;
}

/* ---- calibrated knowledge evidence ------------------------------------ */

#define EVIDENCE_RATE_TRUST 30.0 /* a term in 1 of 30 chunks is trusted to 1 - 1/e */
#define EVIDENCE_CONFIDENCE 4.0  /* owned idf giving 1 - 1/e confidence: about one rare term */
#define EVIDENCE_SMOOTH 0.01     /* chunks added to every rate, so unseen is not impossible */

void router_kb_evidence(const uint32_t *df, const uint32_t *n_chunks, size_t n_agents, size_t n_terms,
                        double *ret, int *ret_best_term) {
        double total_chunks = 0, all_owned = 0;

        if (!ret)
                return;
        for (size_t a = 0; a < n_agents; a++) {
                ret[a] = n_chunks && n_chunks[a] > 0 ? 0 : NAN;
                if (ret_best_term)
                        ret_best_term[a] = -1;
                if (n_chunks)
                        total_chunks += n_chunks[a];
        }
        /* Evidence is a contrast with the other agents' knowledge: without
         * any, there is nothing to calibrate against. */
        for (size_t a = 0; n_chunks && a < n_agents; a++)
                if (!isnan(ret[a]) && total_chunks - n_chunks[a] <= 0)
                        ret[a] = NAN;
        if (!df || !n_chunks || n_agents == 0 || n_terms == 0 || total_chunks <= 0)
                return;

        _cleanup_free_ double *owned = calloc(n_agents, sizeof(double)),
                              *best = calloc(n_agents, sizeof(double));
        if (!owned || !best)
                return; /* out of memory: no evidence, which routing survives */

        for (size_t t = 0; t < n_terms; t++) {
                double df_all = 0;
                for (size_t a = 0; a < n_agents; a++)
                        df_all += df[a * n_terms + t];
                if (df_all <= 0)
                        continue; /* unknown everywhere: says nothing about anyone */
                double idf = log((total_chunks + 1.0) / (df_all + 0.5));
                if (!(idf > 0))
                        continue;
                for (size_t a = 0; a < n_agents; a++) {
                        double d = df[a * n_terms + t];
                        if (d <= 0 || isnan(ret[a]))
                                continue;
                        double p_a = (d + EVIDENCE_SMOOTH) / (n_chunks[a] + 1.0);
                        double rest = total_chunks - n_chunks[a];
                        double p_rest = (df_all - d + EVIDENCE_SMOOTH) / (rest + 1.0);
                        double share = p_a / (p_a + p_rest);
                        /* as frequent here as everywhere else is no evidence */
                        double even = 0.5;
                        /* a chunk or two of many may be incidental mentions:
                         * trusted by count (d / (d + 2)) or by rate (one
                         * chunk of three is no accident) */
                        double rate = d / (double) n_chunks[a];
                        double trust = MAX(d / (d + 2.0), 1.0 - exp(-rate * EVIDENCE_RATE_TRUST));
                        double gain = share > even ? idf * (share - even) / (1.0 - even) * trust : 0;
                        owned[a] += gain;
                        if (ret_best_term && gain > best[a]) {
                                best[a] = gain;
                                ret_best_term[a] = (int) t;
                        }
                }
        }
        for (size_t a = 0; a < n_agents; a++)
                all_owned += owned[a];
        /* the agent's share of all owned evidence, trusted as far as its own
         * amount allows: one incidental word is not a strong match */
        for (size_t a = 0; a < n_agents; a++)
                if (!isnan(ret[a]) && all_owned > 0)
                        ret[a] = CLAMP(owned[a] / all_owned * (1.0 - exp(-owned[a] / EVIDENCE_CONFIDENCE)),
                                       0.0, 1.0);
}
