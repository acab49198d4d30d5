/* bad-utf8.c — a loadable plugin whose every string is invalid UTF-8 (a
 * lone continuation byte, a truncated sequence, an overlong form, a NUL in
 * the reason): the host must repair them all the same way (U+FFFD). */
#include <stdlib.h>

#include "bad-common.h"

static const MoaHost *host;

static int32_t utf8_init(const MoaHost *h, MoaHostContext *ctx, const MoaAgentInfo *info, void **ret_state) {
        host = h;
        *ret_state = NULL;
        return 0;
}

static int32_t utf8_score(void *state, const char *query, double *ret_score, char *reason,
                          uint32_t reason_size) {
        static const char bad[] = "r\x80 \xe2\x82";
        *ret_score = 0.9;
        if (reason_size >= sizeof(bad))
                memcpy(reason, bad, sizeof(bad));
        return 0;
}

static int32_t utf8_build_prompt(void *state, const char *query, const MoaKbHit *hits, uint32_t n_hits,
                                 char **ret_system, char **ret_context) {
        *ret_system = host->strdup("sys \xc0\xaf");
        *ret_context = host->strdup("ctx \xff");
        return *ret_system && *ret_context ? 0 : -ENOMEM;
}

static int32_t utf8_review(void *state, const char *answer, char **ret_answer) {
        *ret_answer = host->strdup("reviewed \xed\xa0\x80 ok");
        return *ret_answer ? 0 : -ENOMEM;
}

static const MoaPlugin desc = {
        .abi_major = MOA_PLUGIN_ABI_MAJOR,
        .abi_minor = MOA_PLUGIN_ABI_MINOR,
        .size = (uint32_t) sizeof(MoaPlugin),
        .signature = MOA_PLUGIN_SIGNATURE,
        .name = "bad-utf8",
        .version = "1.\xff",
        .description = "caf\xe9",
        .init = utf8_init,
        .score = utf8_score,
        .build_prompt = utf8_build_prompt,
        .review = utf8_review,
};
MOA_PLUGIN_DEFINE(desc)
