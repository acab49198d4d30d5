/* bad-init.c — init fails (e.g. a missing option): refused, fini never called. */
#include <stdlib.h>

#include "bad-common.h"

static int32_t failing_init(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                            void **ret_state) {
        if (MOA_HOST_HAS(host, log))
                host->log(ctx, MOA_LOG_ERR, "option 'required' is missing");
        return -EACCES;
}

static void fini_must_not_run(void *state) {
        abort();
}

static const MoaPlugin desc = {
        MOA_PLUGIN_HEADER,
        .name = "bad-init",
        .init = failing_init,
        .score = ok_score,
        .build_prompt = ok_build_prompt,
        .fini = fini_must_not_run,
};
MOA_PLUGIN_DEFINE(desc)
