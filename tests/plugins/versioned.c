/* versioned.c — a plugin whose version is chosen when it is compiled
 * (-DVERSIONED_VERSION='"2.0.0"'), and whose review signs every answer with
 * it: the reload tests rebuild it in place and read which build answered. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <moa/plugin.h>

#ifndef VERSIONED_VERSION
#define VERSIONED_VERSION "0.0.0"
#endif

static int32_t versioned_init(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                              void **ret_state) {
        *ret_state = (void *) host; /* all the state it needs */
        return 0;
}

static int32_t versioned_score(void *state, const char *query, double *ret_score, char *reason,
                               uint32_t reason_size) {
        *ret_score = 0.5;
        snprintf(reason, reason_size, "versioned %s", VERSIONED_VERSION);
        return 0;
}

static int32_t versioned_build_prompt(void *state, const char *query, const MoaKbHit *hits, uint32_t n_hits,
                                      char **ret_system, char **ret_context) {
        const MoaHost *host = state;
        char *s = host->strdup("You answer briefly.");
        if (!s)
                return -ENOMEM;
        *ret_system = s;
        *ret_context = NULL;
        return 0;
}

static int32_t versioned_review(void *state, const char *answer, char **ret_answer) {
        static const char sig[] = " [versioned " VERSIONED_VERSION "]";
        size_t n = strlen(answer);
        while (n > 0 && answer[n - 1] == '\n') /* the host's answer ends in a newline */
                n--;
        const MoaHost *host = state;
        char *r = host->alloc(n + sizeof sig);
        if (!r)
                return -ENOMEM;
        memcpy(r, answer, n);
        memcpy(r + n, sig, sizeof sig);
        *ret_answer = r;
        return 0;
}

static const MoaPlugin desc = {
        MOA_PLUGIN_HEADER,
        .name = "versioned",
        .version = VERSIONED_VERSION,
        .description = "answers signed with the build's version",
        .init = versioned_init,
        .score = versioned_score,
        .build_prompt = versioned_build_prompt,
        .review = versioned_review,
};
MOA_PLUGIN_DEFINE(desc)
