/* plugin-load.c — load one plugin with the daemon's loader and exercise
 * it once: used by the out-of-tree build test.
 * usage: plugin-load <plugin.so> <query> [expected-name]
 * Exit 0 if it loads, scores the query above 0, builds a prompt and
 * reviews an answer (and its descriptor name matches, if given). */
#include "log.h"
#include "plugin-host.h"

int main(int argc, char **argv) {
        PluginAgent *a = NULL;
        char *reason = NULL, *sys = NULL, *ctx = NULL, *ans = NULL;
        double score = 0;
        int r, ok = 0;

        if (argc < 3) {
                fprintf(stderr, "usage: %s <plugin.so> <query> [expected-name]\n", argv[0]);
                return 2;
        }
        log_setup(LOG_LEVEL_INFO, 0);
        PluginAgentSpec spec = {.path = argv[1], .name = "oot", .weight = 1.0};
        r = plugin_agent_load(&spec, &a, NULL);
        if (r < 0) {
                fprintf(stderr, "load failed: %s\n", strerror(-r));
                return 1;
        }
        if (argc > 3 && !streq(plugin_agent_plugin_name(a), argv[3]))
                fprintf(stderr, "plugin name %s != %s\n", plugin_agent_plugin_name(a), argv[3]);
        else if ((r = plugin_agent_score(a, argv[2], &score, &reason)) < 0 || score <= 0)
                fprintf(stderr, "score failed: r=%d score=%g\n", r, score);
        else if ((r = plugin_agent_build_prompt(a, argv[2], NULL, 0, &sys, &ctx)) < 0)
                fprintf(stderr, "build_prompt failed: %s\n", strerror(-r));
        else if ((r = plugin_agent_review(a, "Beat two eggs.", &ans)) < 0)
                fprintf(stderr, "review failed: %s\n", strerror(-r));
        else {
                printf("loaded %s %s: score %.2f (%s)\nsystem: %s\nreviewed: %s\n",
                       plugin_agent_plugin_name(a), plugin_agent_version(a), score, reason, sys, ans);
                ok = 1;
        }
        free(reason);
        free(sys);
        free(ctx);
        free(ans);
        plugin_agent_free(a);
        return ok ? 0 : 1;
}
