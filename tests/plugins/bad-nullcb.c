/* bad-nullcb.c — the required score callback is NULL: refused. */
#include "bad-common.h"

static const MoaPlugin desc = {
        MOA_PLUGIN_HEADER,
        .name = "bad-nullcb",
        .score = NULL,
        .build_prompt = ok_build_prompt,
};
MOA_PLUGIN_DEFINE(desc)
