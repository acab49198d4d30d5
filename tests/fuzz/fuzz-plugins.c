/* fuzz-plugins.c — every shipped plugin's score, build_prompt and review,
 * and the router's knowledge evidence, on arbitrary bytes: the query, the
 * answer and the retrieved passage are all the input. Plugins are loaded
 * once with the daemon's loader. */
#include <stdint.h>

#include "log.h"
#include "plugin-host.h"
#include "router.h"

static const char *const names[] = {"legal", "medical", "finance", "code", "general", "example"};
static PluginAgent *agents[sizeof(names) / sizeof(names[0])];
static int loaded;

static void unload(void) {
        for (size_t i = 0; i < ELEMENTSOF(agents); i++)
                agents[i] = plugin_agent_free(agents[i]);
}

static void load(void) {
        log_setup(LOG_LEVEL_ERR, 0);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char path[1024];
                snprintf(path, sizeof(path), "%s/%s.so", SHIPPED_PLUGIN_DIR, names[i]);
                PluginAgentSpec spec = {.path = path, .name = names[i], .weight = 1};
                if (plugin_agent_load(&spec, &agents[i]) < 0)
                        abort();
        }
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
                        if (!(score >= 0 && score <= 1))
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
        double e = router_kb_evidence(s, &hit, 1);
        if (!(e >= 0 && e <= 1))
                abort();
        free(s);
        return 0;
}
