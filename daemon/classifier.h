/* classifier.h — the router's learned model: one-vs-rest logistic regression
 * over hashed features of a text (stemmed words, word pairs, character
 * 4-grams of words), trained at load and reload from every agent's example
 * questions and a sample of its documents. Small, deterministic (fixed
 * order, fixed epochs, no randomness), no network. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "terms.h"

#define CLASSIFIER_MAX_LABELS 64u
#define CLASSIFIER_MAX_SAMPLES 200000u
#define CLASSIFIER_MAX_TEXT_BYTES (8u * 1024u) /* of a sample or a query; the rest is ignored */
#define CLASSIFIER_EXPLAIN_TERMS 3u

typedef struct Classifier Classifier;

/**
 * struct ClassifierSample - one training text.
 * @text:   the text (UTF-8; at most CLASSIFIER_MAX_TEXT_BYTES are read).
 * @labels: bit i set = the text belongs to label i (several bits: a question
 *          for two agents). A text with no bit is a negative for every label.
 * @weight: how much it counts (> 0); examples 1, document passages less.
 * @offset: NULL, or one log-odds per label that the model is trained on
 *          top of (the lexicon's prior for this text): the learned score
 *          is then a correction to add to the prior, see classifier_train().
 */
typedef struct ClassifierSample {
        const char *text;
        uint64_t labels;
        float weight;
        const float *offset;
} ClassifierSample;

/**
 * struct ClassifierScore - one label's result for a text.
 * @p:     the probability the text belongs to the label, in [0,1].
 * @terms: up to CLASSIFIER_EXPLAIN_TERMS words that pushed @p up most,
 *         comma-separated ("" if none).
 */
typedef struct ClassifierScore {
        double p;
        char terms[CLASSIFIER_EXPLAIN_TERMS * (TERM_MAX_BYTES + 2)];
} ClassifierScore;

/**
 * classifier_train() - learn @n_labels labels from @n samples. @terms is
 * used during the call only. Returns 0 and a model in *@ret, -EINVAL
 * (no labels, more than CLASSIFIER_MAX_LABELS or CLASSIFIER_MAX_SAMPLES),
 * -ENOMEM. Labels without a positive or without a negative sample are not
 * learned: they score 0 for every text (see classifier_has_positives()).
 */
int classifier_train(Terms *terms, const ClassifierSample *samples, size_t n, size_t n_labels,
                     Classifier **ret);

/** classifier_ref() - one more reference to @c (a model never changes once trained). Returns @c. */
Classifier *classifier_ref(Classifier *c);

/** classifier_free() - drop a reference, freeing at the last; NULL is a no-op. Returns NULL. */
Classifier *classifier_free(Classifier *c);

/**
 * classifier_inputs_hash() - a 64-bit hash of everything classifier_train()
 * learns from (@n samples' text, labels and weight, @n_labels): the same
 * hash means the same model, so a reload may keep the one it has.
 */
uint64_t classifier_inputs_hash(const ClassifierSample *samples, size_t n, size_t n_labels);

/** classifier_trained_from() - classifier_inputs_hash() of @c's training samples. */
uint64_t classifier_trained_from(const Classifier *c);

/** classifier_n_labels() - the number of labels it was trained with. */
size_t classifier_n_labels(const Classifier *c);

/** classifier_has_positives() - whether label @label was learned: it had a
 * positive and a negative sample. */
int classifier_has_positives(const Classifier *c, size_t label);

/**
 * classifier_predict() - score @text for every label: @ret must have room for
 * classifier_n_labels() entries. With @explain the terms are filled in
 * (otherwise left ""). Returns 0 or -ENOMEM / -EINVAL.
 */
int classifier_predict(const Classifier *c, Terms *terms, const char *text, int explain,
                       ClassifierScore *ret);
