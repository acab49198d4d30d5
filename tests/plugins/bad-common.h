/* bad-common.h — shared bits of the deliberately broken test plugins: a
 * valid score/build_prompt pair, so each bad-*.c breaks exactly one rule. */
#include <errno.h>
#include <string.h>

#include <moa/plugin.h>

__attribute__((unused)) static int32_t ok_score(void *state, const char *query, double *ret_score,
                                                char *reason, uint32_t reason_size) {
        *ret_score = 0.5;
        if (reason_size)
                reason[0] = 0;
        return 0;
}

__attribute__((unused)) static int32_t ok_build_prompt(void *state, const char *query, const MoaKbHit *hits,
                                                       uint32_t n_hits, char **ret_system,
                                                       char **ret_context) {
        return -ENOTSUP;
}
