/* classifier.c — hashed-feature one-vs-rest logistic regression for routing
 * (see classifier.h). Features of a text, each hashed into 2^16 slots and the
 * vector L2-normalised:
 *   w:STEM        every content word (function words dropped), 1.0
 *   b:STEM STEM   neighbouring content words ("security deposit"), 0.7
 *   c:GRAM        character 4-grams of "^word$" for words of 4+ letters,
 *                 0.25: typos ("morgage") and inflections in any language
 * Training: stochastic gradient descent in a fixed pseudo-random order, a
 * fixed number of epochs with a decaying rate, positives and negatives of
 * each label weighted to balance, L2 decay once per epoch. */
#include <math.h>

#include "classifier.h"
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

struct Classifier {
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

Classifier *classifier_free(Classifier *c) {
        if (!c)
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

        for (size_t i = 0; i < n && r >= 0; i++) {
                if (!samples[i].text || !(samples[i].weight > 0))
                        continue;
                r = text_features(terms, samples[i].text, &x[i], NULL);
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

        for (unsigned e = 0; e < EPOCHS; e++) {
                double rate = RATE0 / (1.0 + e * 0.5);
                for (size_t k = 0; k < n; k++) {
                        size_t i = order[k];
                        if (x[i].n == 0)
                                continue;
                        for (size_t l = 0; l < n_labels; l++) {
                                if (!c->has_pos[l])
                                        continue;
                                float *w = c->w + l * DIM;
                                int y = (samples[i].labels >> l) & 1;
                                double p = sigmoid(c->b[l] + dot(w, &x[i]));
                                double cw = total_w / (2.0 * (y ? pos_w[l] : neg_w[l]));
                                double g = (p - y) * cw * samples[i].weight * rate;
                                if (fabs(p - y) < 0.02) /* learned well enough: save the update */
                                        continue;
                                for (size_t f = 0; f < x[i].n; f++)
                                        w[x[i].v[f].idx] -= (float) (g * x[i].v[f].val);
                                c->b[l] -= (float) (g * 0.1);
                        }
                }
                float shrink = (float) (1.0 - rate * DECAY);
                for (size_t j = 0; j < n_labels * DIM; j++)
                        c->w[j] *= shrink;
        }
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
