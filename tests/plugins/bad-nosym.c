/* bad-nosym.c — exports a descriptor under the wrong name: no entry symbol. */
#include "bad-common.h"

static const MoaPlugin desc = {
        MOA_PLUGIN_HEADER,
        .name = "bad-nosym",
        .score = ok_score,
        .build_prompt = ok_build_prompt,
};
MOA_PLUGIN_EXPORT const MoaPlugin *moa_plugin_entry_v0(void);
MOA_PLUGIN_EXPORT const MoaPlugin *moa_plugin_entry_v0(void) {
        return &desc;
}
