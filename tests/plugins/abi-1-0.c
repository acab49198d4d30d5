/* abi-1-0.c — a valid plugin built for ABI 1.0 whose score is negative: a
 * 1.0 score is in [0, 1], so the host clamps it to 0 (negative scores are
 * other-sense penalties only from ABI 1.1 on). */
#include "bad-common.h"

static int32_t negative_score(void *state, const char *query, double *ret_score, char *reason,
                              uint32_t reason_size) {
        *ret_score = -0.5;
        if (reason_size)
                reason[0] = 0;
        return 0;
}

static const MoaPlugin desc = {
        .abi_major = MOA_PLUGIN_ABI_MAJOR,
        .abi_minor = 0,
        .size = (uint32_t) sizeof(MoaPlugin),
        .signature = MOA_PLUGIN_SIGNATURE,
        .name = "abi-1-0",
        .score = negative_score,
        .build_prompt = ok_build_prompt,
};
MOA_PLUGIN_DEFINE(desc)
