/* route-model.h — the router's learned model, trained from every agent's
 * example questions and an even sample of its knowledge (see
 * docs/routing.md). One classifier label per agent, in the given order. */
#pragma once

#include <stddef.h>

#include "classifier.h"
#include "kb.h"

#define ROUTE_MODEL_CHUNKS_PER_AGENT 100u /* knowledge chunks sampled per agent */
#define ROUTE_MODEL_CHUNK_WEIGHT 0.4f     /* a chunk counts less than a real question */
#define ROUTE_MODEL_CHUNK_CHARS 300u      /* of a chunk's title and text: enough to say what it is about */

/**
 * struct RouteModelAgent - what one agent contributes (borrowed).
 * @examples:   its example questions.
 * @kb:         its knowledge base, or NULL.
 */
typedef struct RouteModelAgent {
        char *const *examples;
        size_t n_examples;
        Kb *kb;
} RouteModelAgent;

/**
 * route_model_train() - train the classifier for @n agents (label i =
 * @agents[i]). A question listed under several agents is one sample with
 * several labels. If @prev (may be NULL) was trained from the very same
 * samples, a reference to it is returned instead of training again (a
 * reload that changed no example and no knowledge). *@ret_samples (if not
 * NULL) receives the number of samples, *@ret_reused (if not NULL) whether
 * @prev was kept. Returns 0 and the model in *@ret, or -errno (-EINVAL for
 * more than CLASSIFIER_MAX_LABELS agents).
 */
int route_model_train(Terms *terms, const RouteModelAgent *agents, size_t n, Classifier *prev,
                      Classifier **ret, size_t *ret_samples, int *ret_reused);
