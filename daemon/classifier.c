/* classifier.c — hashed-feature one-vs-rest logistic regression for routing
 * (see classifier.h). Features of a text, each hashed into 2^16 slots and the
 * vector L2-normalised:
 *   w:STEM        every content word (function words dropped), 1.0
 *   b:STEM STEM   neighbouring content words ("security deposit"), 0.7
 *   c:GRAM        character 4-grams of "^word$" for words of 4+ letters,
 *                 0.25: typos ("morgage") and inflections in any language
 * Training: a sample may carry a prior per label (the plugin lexicon's
 * log-odds), which the model is trained on top of (an offset, as in
 * boosting), so that its own weights learn what the prior gets wrong: a
 * domain word the lexicon counts in an everyday question is pushed back by
 * the question's other words. Stochastic gradient descent in a fixed pseudo-random order, a
 * fixed number of epochs with a decaying rate, positives and negatives of
 * each label weighted to balance, L2 decay once per epoch. Features and
 * labels are computed on one thread per CPU (labels are independent, so
 * the model does not depend on the number of threads). */
#include <math.h>
#include <pthread.h>

#include "classifier.h"
#include "log.h"
#include "util.h"

#define DIM_BITS 16u
#define DIM (1u << DIM_BITS)
#define EPOCHS 8u
#define RATE0 1.0
#define DECAY 0.05 /* L2 shrink per epoch, times the rate */
#define W_WORD 1.0f
#define W_PAIR 0.7f
#define W_GRAM 0.25f
#define MAX_GRAMS_PER_WORD 12u
#define TRAIN_THREADS 8u /* labels are trained in parallel, one thread per CPU at most */

struct Classifier {
        unsigned n_ref;
        uint64_t inputs; /* classifier_inputs_hash() of the samples */
        size_t n_labels;
        float *w; /* n_labels rows of DIM */
        float *b;
        uint8_t *has_pos;
};

typedef struct Feat {
        uint32_t idx;
        float val;
} Feat;

typedef struct FeatVec {
        Feat *v;
        size_t n;
} FeatVec;

static uint32_t hash_feature(char kind, const char *a, const char *b) {
        uint32_t h = 2166136261u;
        h = (h ^ (unsigned char) kind) * 16777619u;
        for (const char *p = a; *p; p++)
                h = (h ^ (unsigned char) *p) * 16777619u;
        if (b) {
                h = (h ^ ' ') * 16777619u;
                for (const char *p = b; *p; p++)
                        h = (h ^ (unsigned char) *p) * 16777619u;
        }
        h ^= h >> 15; /* FNV's low bits are weak */
        h *= 0x2c1b3c6dU;
        h ^= h >> 12;
        return h & (DIM - 1);
}

typedef struct FeatBuf {
        Feat *v;
        size_t n, cap;
} FeatBuf;

static int feat_add(FeatBuf *f, uint32_t idx, float val) {
        if (f->n == f->cap) {
                size_t nc = f->cap ? f->cap * 2 : 64;
                Feat *v = realloc(f->v, nc * sizeof(Feat));
                if (!v)
                        return -ENOMEM;
                f->v = v;
                f->cap = nc;
        }
        f->v[f->n++] = (Feat){idx, val};
        return 0;
}

static int cmp_feat(const void *x, const void *y) {
        const Feat *a = x, *b = y;
        return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int is_content(const Term *t) {
        return !t->stop && strlen(t->word) >= 2;
}

static int add_grams(FeatBuf *f, const char *word) {
        char g[TERM_MAX_BYTES + 3];
        size_t n = strlen(word);
        if (n < 4 || n + 2 >= sizeof(g))
                return 0;
        g[0] = '^';
        memcpy(g + 1, word, n);
        g[n + 1] = '$';
        g[n + 2] = 0;
        for (size_t i = 0; i + 4 <= n + 2 && i < MAX_GRAMS_PER_WORD; i++) {
                char q[5];
                memcpy(q, g + i, 4);
                q[4] = 0;
                if (feat_add(f, hash_feature('c', q, NULL), W_GRAM) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* The normalised feature vector of @l (sorted by slot, slots unique). */
static int features_of(const TermList *l, FeatVec *ret) {
        FeatBuf f = {0};
        const Term *prev = NULL;
        int r = 0;

        for (size_t i = 0; i < l->n && r >= 0; i++) {
                const Term *t = &l->v[i];
                if (!is_content(t))
                        continue;
                r = feat_add(&f, hash_feature('w', t->stem, NULL), W_WORD);
                if (r >= 0 && !t->part) {
                        if (prev)
                                r = feat_add(&f, hash_feature('b', prev->stem, t->stem), W_PAIR);
                        prev = t;
                        if (r >= 0)
                                r = add_grams(&f, t->word);
                }
        }
        if (r < 0) {
                free(f.v);
                return r;
        }
        if (f.n > 1)
                qsort(f.v, f.n, sizeof(Feat), cmp_feat);
        size_t o = 0;
        for (size_t i = 0; i < f.n; i++) {
                if (o > 0 && f.v[o - 1].idx == f.v[i].idx)
                        f.v[o - 1].val += f.v[i].val;
                else
                        f.v[o++] = f.v[i];
        }
        double norm = 0;
        for (size_t i = 0; i < o; i++)
                norm += (double) f.v[i].val * f.v[i].val;
        norm = sqrt(norm);
        for (size_t i = 0; i < o && norm > 0; i++)
                f.v[i].val = (float) (f.v[i].val / norm);
        *ret = (FeatVec){f.v, o};
        return 0;
}

static int text_features(Terms *terms, const char *text, FeatVec *ret, TermList *ret_terms) {
        TermList l = TERM_LIST_INIT;
        int r = terms_split(terms, text, strnlen(text, CLASSIFIER_MAX_TEXT_BYTES), 0, &l);
        if (r < 0)
                return r;
        r = features_of(&l, ret);
        if (r >= 0 && ret_terms)
                *ret_terms = l;
        else
                term_list_done(&l);
        return r;
}

Classifier *classifier_ref(Classifier *c) {
        if (c)
                c->n_ref++;
        return c;
}

Classifier *classifier_free(Classifier *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        free(c->w);
        free(c->b);
        free(c->has_pos);
        free(c);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Classifier *, classifier_free);

size_t classifier_n_labels(const Classifier *c) {
        return c ? c->n_labels : 0;
}

int classifier_has_positives(const Classifier *c, size_t label) {
        return c && label < c->n_labels && c->has_pos[label];
}

static double sigmoid(double z) {
        if (z < -30)
                return 0;
        if (z > 30)
                return 1;
        return 1.0 / (1.0 + exp(-z));
}

static double dot(const float *w, const FeatVec *x) {
        double z = 0;
        for (size_t k = 0; k < x->n; k++)
                z += (double) w[x->v[k].idx] * x->v[k].val;
        return z;
}

/* One training run: what every label's worker reads (never writes, but
 * its own row of c->w and c->b). */
typedef struct Training {
        Classifier *c;
        const ClassifierSample *samples;
        const FeatVec *x;
        const size_t *order;
        size_t n;
        const double *pos_w, *neg_w;
        double total_w;
        unsigned first, step; /* labels first, first + step, ... */
} Training;

/* SGD of one label: labels are independent (one-vs-rest), so each is
 * trained alone, in a fixed order of samples: the same weights whichever
 * thread runs it. */
static void train_label(const Training *t, size_t l) {
        Classifier *c = t->c;
        float *w = c->w + l * DIM;
        for (unsigned e = 0; e < EPOCHS; e++) {
                double rate = RATE0 / (1.0 + e * 0.5);
                for (size_t k = 0; k < t->n; k++) {
                        size_t i = t->order[k];
                        if (t->x[i].n == 0)
                                continue;
                        int y = (t->samples[i].labels >> l) & 1;
                        /* trained on top of the sample's prior: the model
                         * learns what the lexicon gets wrong, not again
                         * what it already says */
                        double p = sigmoid(c->b[l] + dot(w, &t->x[i]) +
                                           (t->samples[i].offset ? t->samples[i].offset[l] : 0));
                        if (fabs(p - y) < 0.02) /* learned well enough: save the update */
                                continue;
                        double cw = t->total_w / (2.0 * (y ? t->pos_w[l] : t->neg_w[l]));
                        double g = (p - y) * cw * t->samples[i].weight * rate;
                        for (size_t f = 0; f < t->x[i].n; f++)
                                w[t->x[i].v[f].idx] -= (float) (g * t->x[i].v[f].val);
                        c->b[l] -= (float) (g * 0.1);
                }
                float shrink = (float) (1.0 - rate * DECAY);
                for (size_t j = 0; j < DIM; j++)
                        w[j] *= shrink;
        }
}

static void *train_worker(void *userdata) {
        const Training *t = userdata;
        for (size_t l = t->first; l < t->c->n_labels; l += t->step)
                if (t->c->has_pos[l])
                        train_label(t, l);
        return NULL;
}

/* Train every label, on up to TRAIN_THREADS threads (one per CPU): label l
 * belongs to share l % n; a share whose thread cannot start runs here. */
static void train_labels(const Training *t) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned n = (unsigned) MIN((size_t) CLAMP(cpus, 1L, (long) TRAIN_THREADS),
                                    MAX(t->c->n_labels, (size_t) 1));
        pthread_t th[TRAIN_THREADS];
        int running[TRAIN_THREADS] = {0};
        Training part[TRAIN_THREADS];

        for (unsigned k = 0; k < n; k++) {
                part[k] = *t;
                part[k].first = k;
                part[k].step = n;
                if (k > 0)
                        running[k] = pthread_create(&th[k], NULL, train_worker, &part[k]) == 0;
        }
        train_worker(&part[0]);
        for (unsigned k = 1; k < n; k++) {
                if (running[k])
                        pthread_join(th[k], NULL);
                else
                        train_worker(&part[k]);
        }
}

typedef struct FeatureJob {
        Terms *terms;
        const ClassifierSample *samples;
        FeatVec *x;
        size_t first, step, n;
        int r;
} FeatureJob;

static void *feature_worker(void *userdata) {
        FeatureJob *j = userdata;
        for (size_t i = j->first; i < j->n && j->r >= 0; i += j->step)
                if (j->samples[i].text && j->samples[i].weight > 0)
                        j->r = text_features(j->terms, j->samples[i].text, &j->x[i], NULL);
        return NULL;
}

/* Features of every sample into @x, the samples split between up to
 * TRAIN_THREADS threads (each with its own stemmers; @terms serves this
 * thread; a share whose thread cannot start runs here). Returns 0 or
 * -ENOMEM. */
static int features_all(Terms *terms, const ClassifierSample *samples, size_t n, FeatVec *x) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned k_max =
                (unsigned) MIN((size_t) CLAMP(cpus, 1L, (long) TRAIN_THREADS), MAX(n / 256, (size_t) 1));
        pthread_t th[TRAIN_THREADS];
        int running[TRAIN_THREADS] = {0};
        FeatureJob job[TRAIN_THREADS];
        int r = 0;

        for (unsigned k = 0; k < k_max; k++) {
                job[k] = (FeatureJob){.terms = k == 0 ? terms : NULL,
                                      .samples = samples,
                                      .x = x,
                                      .first = k,
                                      .step = k_max,
                                      .n = n};
                if (k > 0 && terms_new(&job[k].terms) >= 0)
                        running[k] = pthread_create(&th[k], NULL, feature_worker, &job[k]) == 0;
        }
        feature_worker(&job[0]);
        for (unsigned k = 1; k < k_max; k++) {
                if (running[k])
                        pthread_join(th[k], NULL);
                else {
                        job[k].terms = terms_free(job[k].terms);
                        job[k].terms = terms;
                        feature_worker(&job[k]);
                        job[k].terms = NULL;
                }
                terms_free(job[k].terms);
                if (job[k].r < 0)
                        r = job[k].r;
        }
        return job[0].r < 0 ? job[0].r : r;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
        const unsigned char *b = p;
        for (size_t i = 0; i < n; i++)
                h = (h ^ b[i]) * 1099511628211ULL;
        return h;
}

uint64_t classifier_inputs_hash(const ClassifierSample *samples, size_t n, size_t n_labels) {
        uint64_t h = hash_bytes(14695981039346656037ULL, &n_labels, sizeof(n_labels));
        for (size_t i = 0; samples && i < n; i++) {
                const char *t = samples[i].text ? samples[i].text : "";
                h = hash_bytes(h, t, strlen(t) + 1);
                h = hash_bytes(h, &samples[i].labels, sizeof(samples[i].labels));
                h = hash_bytes(h, &samples[i].weight, sizeof(samples[i].weight));
                if (samples[i].offset)
                        h = hash_bytes(h, samples[i].offset, n_labels * sizeof(float));
        }
        return h;
}

uint64_t classifier_trained_from(const Classifier *c) {
        return c ? c->inputs : 0;
}

int classifier_train(Terms *terms, const ClassifierSample *samples, size_t n, size_t n_labels,
                     Classifier **ret) {
        _cleanup_(classifier_freep) Classifier *c = NULL;
        _cleanup_free_ FeatVec *x = NULL;
        _cleanup_free_ size_t *order = NULL;
        _cleanup_free_ double *pos_w = NULL, *neg_w = NULL;
        double total_w = 0;
        int r = 0;

        if (!terms || !ret || (n && !samples) || n_labels == 0 || n_labels > CLASSIFIER_MAX_LABELS ||
            n > CLASSIFIER_MAX_SAMPLES)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->inputs = classifier_inputs_hash(samples, n, n_labels);
        c->n_labels = n_labels;
        c->w = calloc(n_labels * DIM, sizeof(float));
        c->b = calloc(n_labels, sizeof(float));
        c->has_pos = calloc(n_labels, 1);
        x = calloc(n ? n : 1, sizeof(FeatVec));
        order = calloc(n ? n : 1, sizeof(size_t));
        pos_w = calloc(n_labels, sizeof(double));
        neg_w = calloc(n_labels, sizeof(double));
        if (!c->w || !c->b || !c->has_pos || !x || !order || !pos_w || !neg_w)
                return -ENOMEM;

        uint64_t t0 = now_usec();
        r = features_all(terms, samples, n, x);
        uint64_t t1 = now_usec();
        for (size_t i = 0; i < n && r >= 0; i++) {
                if (!samples[i].text || !(samples[i].weight > 0))
                        continue;
                total_w += samples[i].weight;
                for (size_t l = 0; l < n_labels; l++)
                        if (samples[i].labels & (UINT64_C(1) << l)) {
                                pos_w[l] += samples[i].weight;
                                c->has_pos[l] = 1;
                        } else
                                neg_w[l] += samples[i].weight;
        }
        if (r < 0)
                goto out;
        /* a label nothing contrasts with (no negative) is not learned */
        for (size_t l = 0; l < n_labels; l++)
                if (!(neg_w[l] > 0))
                        c->has_pos[l] = 0;

        /* A fixed shuffle (LCG Fisher-Yates): SGD wants mixed labels, the
         * result must not depend on anything but the samples. */
        for (size_t i = 0; i < n; i++)
                order[i] = i;
        uint64_t seed = 0x9E3779B97F4A7C15ULL;
        for (size_t i = n; i > 1; i--) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                size_t j = (size_t) ((seed >> 33) % i);
                size_t t = order[i - 1];
                order[i - 1] = order[j];
                order[j] = t;
        }

        Training t = {.c = c,
                      .samples = samples,
                      .x = x,
                      .order = order,
                      .n = n,
                      .pos_w = pos_w,
                      .neg_w = neg_w,
                      .total_w = total_w};
        train_labels(&t);
        log_debug("router: features of %zu samples in %.1f ms, %zu labels trained in %.1f ms", n,
                  (double) (t1 - t0) / 1000.0, n_labels, (double) (now_usec() - t1) / 1000.0);
        *ret = TAKE_PTR(c);
out:
        for (size_t i = 0; i < n; i++)
                free(x[i].v);
        return r;
}

/* The content words of @l that pushed label row @w up most, "a, b, c". */
static void explain(const float *w, const TermList *l, const FeatVec *x, char *out, size_t size) {
        double best[CLASSIFIER_EXPLAIN_TERMS] = {0};
        const char *word[CLASSIFIER_EXPLAIN_TERMS] = {0};

        for (size_t i = 0; i < l->n; i++) {
                const Term *t = &l->v[i];
                if (!is_content(t))
                        continue;
                Feat key = {.idx = hash_feature('w', t->stem, NULL)};
                const Feat *f = bsearch(&key, x->v, x->n, sizeof(Feat), cmp_feat); /* x is sorted */
                double v = f ? (double) w[f->idx] * f->val : 0;
                int dup = 0;
                for (size_t k = 0; k < CLASSIFIER_EXPLAIN_TERMS && !dup; k++)
                        dup = word[k] && streq(word[k], t->word);
                if (dup || v <= 0.02)
                        continue;
                for (size_t k = 0; k < CLASSIFIER_EXPLAIN_TERMS; k++)
                        if (v > best[k]) {
                                for (size_t m = CLASSIFIER_EXPLAIN_TERMS - 1; m > k; m--) {
                                        best[m] = best[m - 1];
                                        word[m] = word[m - 1];
                                }
                                best[k] = v;
                                word[k] = t->word;
                                break;
                        }
        }
        size_t o = 0;
        out[0] = 0;
        for (size_t k = 0; k < CLASSIFIER_EXPLAIN_TERMS && word[k]; k++) {
                int m = snprintf(out + o, size - o, "%s%s", k ? ", " : "", word[k]);
                if (m < 0 || (size_t) m >= size - o)
                        break;
                o += (size_t) m;
        }
}

int classifier_predict(const Classifier *c, Terms *terms, const char *text, int explain_terms,
                       ClassifierScore *ret) {
        FeatVec x = {0};
        TermList l = TERM_LIST_INIT;

        if (!c || !terms || !text || !ret)
                return -EINVAL;
        int r = text_features(terms, text, &x, explain_terms ? &l : NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < c->n_labels; i++) {
                const float *w = c->w + i * DIM;
                ret[i].terms[0] = 0;
                ret[i].p = c->has_pos[i] && x.n > 0 ? sigmoid(c->b[i] + dot(w, &x)) : 0;
                if (explain_terms && ret[i].p > 0)
                        explain(w, &l, &x, ret[i].terms, sizeof(ret[i].terms));
        }
        free(x.v);
        term_list_done(&l);
        return 0;
}
