/* bad-name.c — a plugin whose name is not [a-z0-9_-]: refused. */
#include "bad-common.h"

static const MoaPlugin desc = {
        .abi_major = MOA_PLUGIN_ABI_MAJOR,
        .abi_minor = MOA_PLUGIN_ABI_MINOR,
        .size = (uint32_t) sizeof(MoaPlugin),
        .signature = MOA_PLUGIN_SIGNATURE,
        .name = "Bad Name",
        .score = ok_score,
        .build_prompt = ok_build_prompt,
};
MOA_PLUGIN_DEFINE(desc)
