/* route-model.c — training samples for the router's classifier: examples
 * (merged across agents, so a two-domain question is positive for both
 * and a negative for neither) and knowledge chunks, each with the plugins'
 * lexicon scores as its prior (kept for the next reload), then
 * classifier_train(). */
#include <pthread.h>

#include "kb-vocab.h"
#include "log.h"
#include "route-model.h"
#include "util.h"

typedef struct Samples {
        ClassifierSample *v;
        size_t n, cap;
        char **owned; /* chunk texts to free */
        size_t n_owned;
} Samples;

static int samples_add(Samples *s, const char *text, uint64_t labels, float weight) {
        if (s->n >= CLASSIFIER_MAX_SAMPLES)
                return 0;
        if (s->n == s->cap) {
                size_t nc = s->cap ? s->cap * 2 : 256;
                ClassifierSample *v = reallocarray(s->v, nc, sizeof(ClassifierSample));
                if (!v)
                        return -ENOMEM;
                s->v = v;
                s->cap = nc;
        }
        s->v[s->n++] = (ClassifierSample){.text = text, .labels = labels, .weight = weight};
        return 0;
}

static int cmp_sample_text(const void *x, const void *y) {
        const ClassifierSample *a = x, *b = y;
        int c = strcmp(a->text, b->text);
        if (c)
                return c;
        return a->labels < b->labels ? -1 : a->labels > b->labels;
}

/* Same text under several agents: one sample with their labels ORed. */
static void merge_duplicates(Samples *s) {
        if (s->n < 2)
                return;
        qsort(s->v, s->n, sizeof(ClassifierSample), cmp_sample_text);
        size_t o = 0;
        for (size_t i = 0; i < s->n; i++) {
                if (o > 0 && streq(s->v[o - 1].text, s->v[i].text)) {
                        s->v[o - 1].labels |= s->v[i].labels;
                        s->v[o - 1].weight = MAX(s->v[o - 1].weight, s->v[i].weight);
                } else
                        s->v[o++] = s->v[i];
        }
        s->n = o;
}

struct RoutePriors {
        uint64_t key; /* the plugins and weight they were scored with */
        size_t n, n_agents;
        uint64_t *text; /* sorted hashes of the sample texts */
        float *row;     /* n rows of n_agents log-odds, in the order of text */
};

RoutePriors *route_priors_free(RoutePriors *p) {
        if (p) {
                free(p->text);
                free(p->row);
                free(p);
        }
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(RoutePriors *, route_priors_free);

static uint64_t text_hash(const char *t) {
        uint64_t h = 14695981039346656037ULL;
        for (; *t; t++)
                h = (h ^ (unsigned char) *t) * 1099511628211ULL;
        return h;
}

/* The row of @prev for the text hashed @h, or NULL. */
static const float *priors_find(const RoutePriors *prev, uint64_t h) {
        size_t lo = 0, hi = prev ? prev->n : 0;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (prev->text[mid] < h)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < (prev ? prev->n : 0) && prev->text[lo] == h ? prev->row + lo * prev->n_agents : NULL;
}

typedef struct PriorJob {
        const RouteModelAgent *agents;
        size_t n, first, step;
        double weight;
        uint64_t call_usec; /* one score() slower than this: no prior for that agent */
        const Samples *s;
        const uint8_t *known; /* sample i's row came from the previous priors */
        float *offsets;
} PriorJob;

/* The priors of agents first, first + step, ...: each agent's own plugin
 * instance, as at run time, where every agent scores on its own thread. */
static void *prior_worker(void *userdata) {
        const PriorJob *j = userdata;
        for (size_t a = j->first; a < j->n; a += j->step) {
                uint64_t t0 = now_usec();
                size_t scored = 0;
                const char *why = NULL;
                if (!j->agents[a].plugin)
                        continue;
                for (size_t i = 0; i < j->s->n && !why; i++) {
                        double score = 0;
                        if (j->known[i])
                                continue;
                        uint64_t t1 = now_usec();
                        if (plugin_agent_score(j->agents[a].plugin, j->s->v[i].text, &score, NULL) >= 0)
                                j->offsets[i * j->n + a] = (float) (j->weight * score);
                        scored++;
                        uint64_t t2 = now_usec();
                        if (t2 - t1 > j->call_usec)
                                why = "one score() took longer than the plugin's budget";
                        else if (t2 - t0 > ROUTE_MODEL_PRIOR_MAX_USEC)
                                why = "scoring every sample took too long";
                }
                uint64_t took = now_usec() - t0;
                const char *name = j->agents[a].name ? j->agents[a].name : "?";
                if (why) {
                        /* far slower than any lexicon: learned without it
                         * rather than holding up the start (and the model
                         * for every other agent stays the same) */
                        log_warning(
                                "router: agent %s's plugin: %s (%zu samples in %.0f ms): learning without "
                                "its lexicon as a prior",
                                name, why, scored, (double) took / 1000.0);
                        for (size_t i = 0; i < j->s->n; i++)
                                j->offsets[i * j->n + a] = 0;
                } else if (took > ROUTE_MODEL_PRIOR_SLOW_USEC)
                        log_warning("router: agent %s's plugin took %.0f ms to score %zu training samples",
                                    name, (double) took / 1000.0, scored);
        }
        return NULL;
}

static int cmp_u64_row(const void *x, const void *y) {
        uint64_t a = *(const uint64_t *) x, b = *(const uint64_t *) y;
        return a < b ? -1 : a > b;
}

/* Every sample's lexicon prior for every agent (@weight times its plugin's
 * score: the log-odds the router adds for it) into @offsets (@s->n rows of
 * @n, sample order), each sample pointed at its row. The rows of texts
 * @prev has (scored with the same plugins and weight, @key) are taken from
 * it, the others scored by the agents' plugins, spread over up to one
 * thread per CPU. An agent whose plugin takes longer than its budget for
 * one sample, or ROUTE_MODEL_PRIOR_MAX_USEC for all, has no prior (a
 * plugin that slow is no lexicon; the limits are far above what any
 * lexicon takes, so the model does not depend on how busy the machine is).
 * The priors, for the next training, in *@ret. */
static int priors(const RouteModelAgent *agents, size_t n, const RouteModelPrior *prior, Samples *s,
                  float *offsets, RoutePriors **ret) {
        const RoutePriors *prev = prior->prev;
        _cleanup_(route_priors_freep) RoutePriors *p = calloc(1, sizeof(RoutePriors));
        _cleanup_free_ uint8_t *known = calloc(MAX(s->n, (size_t) 1), 1);
        _cleanup_free_ uint64_t *order = calloc(MAX(s->n, (size_t) 1) * 2, sizeof(uint64_t));
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned k_max = (unsigned) MIN((size_t) CLAMP(cpus, 1L, (long) ROUTE_MODEL_PRIOR_THREADS), n);
        pthread_t th[ROUTE_MODEL_PRIOR_THREADS];
        int running[ROUTE_MODEL_PRIOR_THREADS] = {0};
        PriorJob job[ROUTE_MODEL_PRIOR_THREADS];
        uint64_t t0 = now_usec();
        size_t reused = 0;

        if (!p || !known || !order)
                return -ENOMEM;
        p->key = prior->key;
        p->n = s->n;
        p->n_agents = n;
        p->text = calloc(MAX(s->n, (size_t) 1), sizeof(uint64_t));
        p->row = calloc(MAX(s->n * n, (size_t) 1), sizeof(float));
        if (!p->text || !p->row)
                return -ENOMEM;
        if (prev && (prev->key != prior->key || prev->n_agents != n))
                prev = NULL;
        for (size_t i = 0; i < s->n; i++) {
                order[2 * i] = text_hash(s->v[i].text);
                order[2 * i + 1] = i;
                const float *row = priors_find(prev, order[2 * i]);
                if (row) {
                        memcpy(offsets + i * n, row, n * sizeof(float));
                        known[i] = 1;
                        reused++;
                }
        }
        for (unsigned k = 0; k < k_max; k++) {
                job[k] = (PriorJob){.agents = agents,
                                    .n = n,
                                    .first = k,
                                    .step = k_max,
                                    .weight = prior->weight,
                                    .call_usec = prior->call_usec ? prior->call_usec : UINT64_MAX,
                                    .s = s,
                                    .known = known,
                                    .offsets = offsets};
                if (k > 0)
                        running[k] = pthread_create(&th[k], NULL, prior_worker, &job[k]) == 0;
        }
        prior_worker(&job[0]);
        for (unsigned k = 1; k < k_max; k++) {
                if (running[k])
                        pthread_join(th[k], NULL);
                else
                        prior_worker(&job[k]);
        }
        for (size_t i = 0; i < s->n; i++)
                s->v[i].offset = offsets + i * n;

        /* kept sorted by text hash, for the next reload's look-ups */
        qsort(order, s->n, 2 * sizeof(uint64_t), cmp_u64_row);
        for (size_t i = 0; i < s->n; i++) {
                p->text[i] = order[2 * i];
                memcpy(p->row + i * n, offsets + order[2 * i + 1] * n, n * sizeof(float));
        }
        log_debug("router: lexicon priors of %zu samples (%zu kept from the last training) in %.1f ms", s->n,
                  reused, (double) (now_usec() - t0) / 1000.0);
        *ret = TAKE_PTR(p);
        return 0;
}

int route_model_train(Terms *terms, const RouteModelAgent *agents, size_t n, const RouteModelPrior *prior,
                      Classifier *prev, Classifier **ret, size_t *ret_samples, int *ret_reused) {
        Samples s = {0};
        _cleanup_free_ float *offsets = NULL;
        RoutePriors *kept = NULL;
        int r = 0;

        if (!terms || !ret || (n && !agents))
                return -EINVAL;
        if (n == 0 || n > CLASSIFIER_MAX_LABELS)
                return -EINVAL;

        for (size_t a = 0; a < n && r >= 0; a++)
                for (size_t i = 0; i < agents[a].n_examples && r >= 0; i++)
                        r = samples_add(&s, agents[a].examples[i], UINT64_C(1) << a, 1.0f);
        if (r >= 0)
                merge_duplicates(&s);

        uint64_t t0 = now_usec();
        for (size_t a = 0; a < n && r >= 0; a++) {
                char **texts = NULL;
                size_t nt = 0;
                if (!agents[a].kb)
                        continue;
                int k = kb_sample_chunks(agents[a].kb, ROUTE_MODEL_CHUNKS_PER_AGENT, ROUTE_MODEL_CHUNK_CHARS,
                                         &texts, &nt);
                if (k < 0) {
                        log_warning_errno(k, "router: cannot sample knowledge of agent %zu for training", a);
                        continue;
                }
                if (nt == 0)
                        continue;
                char **owned = reallocarray(s.owned, s.n_owned + nt, sizeof(char *));
                if (!owned) {
                        strv_free_n(texts, nt);
                        r = -ENOMEM;
                        break;
                }
                s.owned = owned;
                for (size_t i = 0; i < nt; i++) {
                        s.owned[s.n_owned++] = texts[i];
                        if (r >= 0)
                                r = samples_add(&s, texts[i], UINT64_C(1) << a, ROUTE_MODEL_CHUNK_WEIGHT);
                }
                free(texts);
        }

        log_debug("router: knowledge sampled in %.1f ms", (double) (now_usec() - t0) / 1000.0);
        if (r >= 0 && prior && prior->weight > 0 && s.n > 0) {
                offsets = calloc(s.n * n, sizeof(float));
                r = offsets ? priors(agents, n, prior, &s, offsets, &kept) : -ENOMEM;
        }
        int reuse = r >= 0 && prev && classifier_trained_from(prev) == classifier_inputs_hash(s.v, s.n, n);
        if (reuse)
                *ret = classifier_ref(prev);
        else if (r >= 0)
                r = classifier_train(terms, s.v, s.n, n, ret);
        if (ret_reused)
                *ret_reused = reuse;
        if (r >= 0 && ret_samples)
                *ret_samples = s.n;
        if (r >= 0 && prior && prior->ret_kept)
                *prior->ret_kept = TAKE_PTR(kept);
        route_priors_free(kept);
        free(s.v);
        strv_free_n(s.owned, s.n_owned);
        return r;
}
