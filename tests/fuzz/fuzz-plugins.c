/* fuzz-plugins.c — every shipped plugin's score, build_prompt and review,
 * the generic expert's, and the learned router's tokenizer and classifier,
 * on arbitrary bytes: the query, the answer and the retrieved passage are
 * all the input. Plugins are loaded and a small model trained once. */
#include <stdint.h>

#include "classifier.h"
#include "log.h"
#include "plugin-host.h"
#include "terms.h"

/* "generic" is the built-in generic expert (no .so) */
static const char *const names[] = {"legal", "medical", "finance", "code", "general", "example", "generic"};
static PluginAgent *agents[sizeof(names) / sizeof(names[0])];
static Terms *terms;
static Classifier *model;
static int loaded;

static void unload(void) {
        for (size_t i = 0; i < ELEMENTSOF(agents); i++)
                agents[i] = plugin_agent_free(agents[i]);
        model = classifier_free(model);
        terms = terms_free(terms);
}

static void load(void) {
        log_setup(LOG_LEVEL_ERR, 0);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char path[1024];
                snprintf(path, sizeof(path), "%s/%s.so", SHIPPED_PLUGIN_DIR, names[i]);
                PluginAgentSpec spec = {
                        .path = streq(names[i], "generic") ? NULL : path, .name = names[i], .weight = 1};
                if (plugin_agent_load(&spec, &agents[i], NULL) < 0)
                        abort();
        }
        static const ClassifierSample samples[] = {
                {"Can my landlord keep the deposit?", 1, 1, NULL},
                {"Kann mein Vermieter die Kaution behalten?", 1, 1, NULL},
                {"segfault in strlen after free", 2, 1, NULL},
                {"How do I boil an egg?", 0, 1, NULL},
        };
        if (terms_new(&terms) < 0 || classifier_train(terms, samples, ELEMENTSOF(samples), 2, &model) < 0)
                abort();
        atexit(unload);
        loaded = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!loaded)
                load();
        if (size > 256 * 1024)
                return 0;
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = 0; /* embedded NULs just shorten the string */

        KbHit hit = {.title = s, .source = (char *) "", .snippet = s, .text = s, .score = 1};
        for (size_t i = 0; i < ELEMENTSOF(agents); i++) {
                double score = -1;
                char *reason = NULL, *sys = NULL, *ctx = NULL, *out = NULL;
                if (plugin_agent_score(agents[i], s, &score, &reason) == 0) {
                        if (!(score >= -1 && score <= 1))
                                abort();
                        free(reason);
                }
                if (plugin_agent_build_prompt(agents[i], s, &hit, 1, &sys, &ctx) == 0) {
                        free(sys);
                        free(ctx);
                }
                if (plugin_agent_review(agents[i], s, &out) == 0)
                        free(out);
        }
        ClassifierScore p[2];
        if (classifier_predict(model, terms, s, 1, p) < 0)
                abort();
        for (size_t i = 0; i < ELEMENTSOF(p); i++)
                if (!(p[i].p >= 0 && p[i].p <= 1) || strlen(p[i].terms) >= sizeof(p[i].terms))
                        abort();
        TermList l = TERM_LIST_INIT;
        if (terms_split(terms, s, size, 0, &l) < 0)
                abort();
        for (size_t i = 0; i < l.n; i++)
                if (strlen(l.v[i].word) >= TERM_MAX_BYTES || strlen(l.v[i].stem) >= TERM_MAX_BYTES)
                        abort();
        term_list_done(&l);
        free(s);
        return 0;
}
