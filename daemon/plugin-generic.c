/* plugin-generic.c — the generic expert: what an agent file without
 * 'plugin:' runs. Written against the public plugin ABI like any plugin and
 * linked into the daemon: its prompt is the agent's 'prompt:' (or one made
 * from its 'description:'), its context the agent's numbered passages, it
 * scores 0 (the learned router and the agent's knowledge route to it) and it
 * has no review step. A .so plugin is for custom behaviour on top. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <moa/plugin-util.h>
#include "plugin-host.h"

typedef struct GenericState {
        MuState base;
        char *prompt; /* made from the description when no prompt is configured */
} GenericState;

static int32_t generic_init(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                            void **ret_state) {
        GenericState *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        const char *desc = mu_option(host, ctx, "description");
        if (asprintf(&s->prompt,
                     "You are the %s expert%s%s. Answer from the numbered context passages and cite them as "
                     "[n]. Use only passages that are relevant to the question; if the context does not "
                     "cover the question, say so plainly instead of guessing.",
                     info->name, desc ? ": " : "", desc ? desc : "") < 0) {
                free(s);
                return -ENOMEM;
        }
        int r = mu_state_setup(&s->base, host, ctx, info, s->prompt);
        if (r < 0) {
                free(s->prompt);
                free(s);
                return r;
        }
        *ret_state = s;
        return 0;
}

static void generic_fini(void *state) {
        GenericState *s = state;
        if (!s)
                return;
        free(s->prompt);
        free(s);
}

static int32_t generic_score(void *state, const char *query, double *ret_score, char *reason,
                             uint32_t reason_size) {
        *ret_score = 0;
        mu_set_reason(reason, reason_size, "generic expert (no lexicon)");
        return 0;
}

static int32_t generic_build_prompt(void *state, const char *query, const MoaKbHit *hits, uint32_t n_hits,
                                    char **ret_system, char **ret_context) {
        GenericState *s = state;
        MuBuf sys = {0}, ctx = {0};

        mu_buf_add(&sys, s->base.prompt);
        if (n_hits > 0) {
                mu_buf_add(&ctx, "Passages from the knowledge base, best match first (cite as [n]):\n");
                for (uint32_t i = 0; i < n_hits && i < s->base.max_passages; i++) {
                        mu_buf_printf(&ctx, "\n[%u] %s\n", i + 1, hits[i].title);
                        mu_add_clipped(&ctx, hits[i].text, s->base.max_passage_chars);
                        mu_buf_add(&ctx, "\n");
                }
        }
        return mu_return_prompt(&s->base, &sys, &ctx, ret_system, ret_context);
}

static const MoaPlugin generic_descriptor = {
        MOA_PLUGIN_HEADER,
        .name = "generic",
        .version = "1.0.0",
        .description = "Generic expert configured in YAML (prompt, examples, knowledge)",
        .init = generic_init,
        .score = generic_score,
        .build_prompt = generic_build_prompt,
        .fini = generic_fini,
};

const MoaPlugin *plugin_generic_descriptor(void) {
        return &generic_descriptor;
}
