/* bad-major.c — a plugin built for a future ABI major: must be refused. */
#include "bad-common.h"

static const MoaPlugin desc = {
        .abi_major = MOA_PLUGIN_ABI_MAJOR + 1,
        .abi_minor = 0,
        .size = sizeof(MoaPlugin),
        .signature = MOA_PLUGIN_SIGNATURE,
        .name = "bad-major",
        .score = ok_score,
        .build_prompt = ok_build_prompt,
};
MOA_PLUGIN_DEFINE(desc)
