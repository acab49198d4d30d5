/* route-model.c — training samples for the router's classifier: examples
 * (merged across agents, so a two-domain question is positive for both
 * and a negative for neither) and knowledge chunks, then classifier_train(). */
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

int route_model_train(Terms *terms, const RouteModelAgent *agents, size_t n, Classifier *prev,
                      Classifier **ret, size_t *ret_samples, int *ret_reused) {
        Samples s = {0};
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
        int reuse = r >= 0 && prev && classifier_trained_from(prev) == classifier_inputs_hash(s.v, s.n, n);
        if (reuse)
                *ret = classifier_ref(prev);
        else if (r >= 0)
                r = classifier_train(terms, s.v, s.n, n, ret);
        if (ret_reused)
                *ret_reused = reuse;
        if (r >= 0 && ret_samples)
                *ret_samples = s.n;
        free(s.v);
        strv_free_n(s.owned, s.n_owned);
        return r;
}
