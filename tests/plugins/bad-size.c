/* bad-size.c — a descriptor claiming to be shorter than ABI 1.0's: refused. */
#include "bad-common.h"

static const MoaPlugin desc = {
        .abi_major = MOA_PLUGIN_ABI_MAJOR,
        .abi_minor = 0,
        .size = 16,
        .signature = MOA_PLUGIN_SIGNATURE,
        .name = "bad-size",
        .score = ok_score,
        .build_prompt = ok_build_prompt,
};
MOA_PLUGIN_DEFINE(desc)
