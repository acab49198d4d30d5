/* SPDX-License-Identifier: MIT */
/* example.c — a complete, minimal moad agent plugin, written against the
 * public header only so it builds out of tree:
 *
 *   cc -shared -fPIC $(pkg-config --cflags moa-plugin) example.c -o cooking.so
 *
 * (It needs nothing else; a plugin using <moa/plugin-util.h> adds
 * $(pkg-config --libs moa-plugin).)
 *
 * A "cooking" agent: scores queries by counting kitchen words, asks for a
 * recipe-style answer, lists its passages as numbered notes, and appends a
 * food-safety line to answers that mention raw meat or eggs. Read it with
 * docs/plugins.md. */
#define _GNU_SOURCE /* strcasestr */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <moa/plugin.h>

/* Per-agent state: one .so may serve several agents, so nothing global. */
typedef struct Cooking {
        const MoaHost *host;
        MoaHostContext *ctx;
        const char *prompt; /* borrowed from MoaAgentInfo, valid until fini */
        double per_word;    /* option "per_word": score added per kitchen word */
} Cooking;

static const char *const words[] = {"recipe", "cook",  "cooking", "bake",       "baking",
                                    "oven",   "boil",  "fry",     "roast",      "dough",
                                    "flour",  "sauce", "simmer",  "ingredients"};

static int32_t cooking_init(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                            void **ret_state) {
        /* Only use what this host provides (1.0 hosts provide all of these). */
        if (!MOA_HOST_HAS(host, alloc) || !MOA_HOST_HAS(host, config_get))
                return -ENOTSUP;
        Cooking *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->host = host;
        c->ctx = ctx;
        c->prompt = info->prompt ? info->prompt
                                 : "You are a friendly cook. Answer with ingredients, then numbered steps.";
        c->per_word = 0.4;
        const char *v = host->config_get(ctx, "per_word");
        if (v) {
                char *end;
                double d = strtod(v, &end);
                if (*end || d <= 0 || d > 1) {
                        free(c);
                        return -EINVAL; /* the host refuses the agent and logs why */
                }
                c->per_word = d;
        }
        if (MOA_HOST_HAS(host, log))
                host->log(ctx, MOA_LOG_DEBUG, "cooking example ready");
        *ret_state = c;
        return 0;
}

static void cooking_fini(void *state) {
        free(state);
}

static int32_t cooking_score(void *state, const char *query, double *ret_score, char *reason,
                             uint32_t reason_size) {
        Cooking *c = state;
        unsigned n = 0;
        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
                if (strcasestr(query, words[i]))
                        n++;
        double s = n * c->per_word;
        *ret_score = s > 1 ? 1 : s;
        snprintf(reason, reason_size, "%u kitchen word%s", n, n == 1 ? "" : "s");
        return 0;
}

/* a + b + c in memory from the host allocator: the host frees what we return. */
static char *host_concat(const MoaHost *host, const char *a, const char *b, const char *c) {
        size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
        char *s = host->alloc((uint64_t) la + lb + lc + 1);
        if (!s)
                return NULL;
        memcpy(s, a, la);
        memcpy(s + la, b, lb);
        memcpy(s + la + lb, c, lc + 1);
        return s;
}

static int32_t cooking_build_prompt(void *state, const char *query, const MoaKbHit *hits, uint32_t n_hits,
                                    char **ret_system, char **ret_context) {
        Cooking *c = state;
        char *sys = c->host->strdup(c->prompt);
        if (!sys)
                return -ENOMEM;
        /* Up to three snippets as a bullet list: size it, then fill it. */
        uint32_t n = n_hits < 3 ? n_hits : 3;
        char *ctx = NULL;
        if (n > 0) {
                size_t len = 1;
                for (uint32_t i = 0; i < n; i++)
                        len += strlen(hits[i].snippet) + 3;
                ctx = c->host->alloc(len);
                if (!ctx) {
                        c->host->free(sys);
                        return -ENOMEM;
                }
                char *p = ctx;
                for (uint32_t i = 0; i < n; i++)
                        p += sprintf(p, "- %s\n", hits[i].snippet);
        }
        *ret_system = sys;
        *ret_context = ctx; /* NULL when nothing was retrieved */
        return 0;
}

static int32_t cooking_review(void *state, const char *answer, char **ret_answer) {
        Cooking *c = state;
        if (!strcasestr(answer, "raw") && !strcasestr(answer, "egg")) {
                *ret_answer = NULL; /* unchanged */
                return 0;
        }
        *ret_answer = host_concat(c->host, answer,
                                  "\n\nFood safety: cook meat and eggs through; keep raw food chilled.", "");
        return *ret_answer ? 0 : -ENOMEM;
}

static const MoaPlugin cooking = {
        MOA_PLUGIN_HEADER,
        .name = "cooking",
        .version = "0.1.0",
        .description = "Example plugin: recipes and kitchen questions",
        .init = cooking_init,
        .score = cooking_score,
        .build_prompt = cooking_build_prompt,
        .review = cooking_review,
        .fini = cooking_fini,
};

MOA_PLUGIN_DEFINE(cooking)
