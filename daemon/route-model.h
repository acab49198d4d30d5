/* route-model.h — the router's learned model, trained from every agent's
 * example questions and an even sample of its knowledge (see
 * docs/routing.md). One classifier label per agent, in the given order. */
#pragma once

#include <stddef.h>

#include "classifier.h"
#include "kb.h"
#include "plugin-host.h"

#define ROUTE_MODEL_CHUNKS_PER_AGENT 100u   /* knowledge chunks sampled per agent */
#define ROUTE_MODEL_CHUNK_WEIGHT 0.4f       /* a chunk counts less than a real question */
#define ROUTE_MODEL_CHUNK_CHARS 300u        /* of a chunk's title and text: enough to say what it is about */
#define ROUTE_MODEL_PRIOR_SLOW_USEC 250000u /* one plugin's scores of every sample: slower is logged */
#define ROUTE_MODEL_PRIOR_MAX_USEC 20000000u /* ... and slower than this gets no prior */
#define ROUTE_MODEL_PRIOR_THREADS 8u /* agents' priors scored in parallel, one thread per CPU at most */

/**
 * struct RouteModelAgent - what one agent contributes (borrowed).
 * @name:       its name, for the log (may be NULL).
 * @examples:   its example questions.
 * @kb:         its knowledge base, or NULL.
 * @plugin:     its plugin, or NULL: its score() of every sample is the
 *              prior the model is trained on top of.
 */
typedef struct RouteModelAgent {
        const char *name;
        char *const *examples;
        size_t n_examples;
        Kb *kb;
        PluginAgent *plugin;
} RouteModelAgent;

/* The lexicon priors of the last training, kept for the next (opaque). */
typedef struct RoutePriors RoutePriors;

/** route_priors_free() - free @p (NULL is a no-op). Returns NULL. */
RoutePriors *route_priors_free(RoutePriors *p);

/**
 * struct RouteModelPrior - the lexicon as the prior the model learns on top of.
 * @weight:   log-odds per unit of plugin score (the router's
 *            lexicon_weight); 0 = no prior.
 * @key:      a hash of what the plugins' scores depend on (which plugin
 *            files, options and @weight): @prev is used only when it is
 *            the same.
 * @prev:     the priors of the last training, or NULL: the rows of texts
 *            it has are not scored again.
 * @call_usec: a plugin whose score() of one sample takes longer (its
 *            run-time budget) gets no prior; 0 = no limit.
 * @ret_kept: if not NULL, receives this training's priors (free with
 *            route_priors_free()), or NULL without a prior.
 */
typedef struct RouteModelPrior {
        double weight;
        uint64_t key;
        const RoutePriors *prev;
        uint64_t call_usec;
        RoutePriors **ret_kept;
} RouteModelPrior;

/**
 * route_model_train() - train the classifier for @n agents (label i =
 * @agents[i]). A question listed under several agents is one sample with
 * several labels. With @prior (may be NULL) of weight > 0 every sample
 * carries, per agent, the weight times its plugin's score (the log-odds
 * the router adds for the lexicon), and the model learns on top of it:
 * its score is then a correction of the lexicon (docs/routing.md). If
 * @prev (may be NULL) was trained from the very same samples and priors,
 * a reference to it is returned instead of training again (a reload that
 * changed no example and no knowledge). *@ret_samples (if not NULL)
 * receives the number of samples, *@ret_reused (if not NULL) whether
 * @prev was kept. Returns 0 and the model in *@ret, or -errno (-EINVAL
 * for more than CLASSIFIER_MAX_LABELS agents).
 */
int route_model_train(Terms *terms, const RouteModelAgent *agents, size_t n, const RouteModelPrior *prior,
                      Classifier *prev, Classifier **ret, size_t *ret_samples, int *ret_reused);
