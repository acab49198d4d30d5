/* bad-signature.c — right major, wrong build signature (another platform): refused. */
#include "bad-common.h"

static const MoaPlugin desc = {
        .abi_major = MOA_PLUGIN_ABI_MAJOR,
        .abi_minor = MOA_PLUGIN_ABI_MINOR,
        .size = sizeof(MoaPlugin),
        .signature = "moa-plugin/1/p4/o4321/d8",
        .name = "bad-signature",
        .score = ok_score,
        .build_prompt = ok_build_prompt,
};
MOA_PLUGIN_DEFINE(desc)
