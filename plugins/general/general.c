/* SPDX-License-Identifier: MIT */
/* general.c — the general-purpose fallback agent. It never competes with
 * the specialists: its score is a small constant, so the router picks it
 * only as the configured fallback (or when a request pins it). Its context
 * is a compact list of snippets rather than whole passages, and its review
 * step tidies whitespace and redacts e-mail addresses and phone numbers.
 *
 * Options: score (0..0.5, default 0.05), plus the common max_passages,
 * max_passage_chars, review. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <moa/plugin-util.h>

static const char default_prompt[] =
        "You are a helpful, concise general assistant. Answer directly, say when you are unsure, and "
        "use the notes from the context (cite as [n]) when they are relevant. If the question needs "
        "a specialist (legal, medical, financial or programming), give general information and say "
        "that a specialist should be consulted.";

typedef struct GeneralState {
        MuState base;
        double score;
} GeneralState;

static int32_t general_init(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                            void **ret_state) {
        GeneralState *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        int r = mu_state_setup(&s->base, host, ctx, info, default_prompt);
        if (r < 0) {
                free(s);
                return r;
        }
        s->score = 0.05;
        const char *v = mu_option(host, ctx, "score");
        if (v) {
                char *end;
                double d = strtod(v, &end);
                if (*end || !(d >= 0 && d <= 0.5))
                        mu_log(host, ctx, MOA_LOG_WARNING,
                               "option score=\"%.32s\" is not in [0, 0.5], using 0.05", v);
                else
                        s->score = d;
        }
        *ret_state = s;
        return 0;
}

static void general_fini(void *state) {
        free(state);
}

static int32_t general_score(void *state, const char *query, double *ret_score, char *reason,
                             uint32_t reason_size) {
        GeneralState *s = state;
        *ret_score = s->score;
        mu_set_reason(reason, reason_size, "general fallback");
        return 0;
}

static int32_t general_build_prompt(void *state, const char *query, const MoaKbHit *hits, uint32_t n_hits,
                                    char **ret_system, char **ret_context) {
        GeneralState *s = state;
        MuBuf sys = {0}, ctx = {0};

        mu_buf_add(&sys, s->base.prompt);
        if (n_hits > 0) {
                mu_buf_add(&ctx, "Notes:\n");
                for (uint32_t i = 0; i < n_hits && i < s->base.max_passages; i++) {
                        mu_buf_printf(&ctx, "[%u] %s: ", i + 1, hits[i].title);
                        mu_add_clipped(&ctx, *hits[i].snippet ? hits[i].snippet : hits[i].text,
                                       s->base.max_passage_chars / 2);
                        mu_buf_add(&ctx, "\n");
                }
        }
        return mu_return_prompt(&s->base, &sys, &ctx, ret_system, ret_context);
}

static int32_t general_review(void *state, const char *answer, char **ret_answer) {
        GeneralState *s = state;
        MuBuf red = {0}, out = {0};

        if (!s->base.review) {
                *ret_answer = NULL;
                return 0;
        }
        mu_redact(answer, MU_REDACT_EMAIL | MU_REDACT_PHONE, &red);
        /* trim, and collapse runs of more than one blank line */
        const char *p = red.s ? red.s : "";
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
                p++;
        unsigned newlines = 0;
        for (; *p; p++) {
                if (*p == '\r')
                        continue;
                if (*p == '\n') {
                        if (++newlines > 2)
                                continue;
                } else if (*p != ' ' && *p != '\t')
                        newlines = 0;
                mu_buf_add_n(&out, p, 1);
        }
        mu_buf_rtrim(&out);
        mu_buf_free(&red);
        return mu_buf_finish(s->base.host, &out, ret_answer);
}

static const MoaPlugin descriptor = {
        MOA_PLUGIN_HEADER,
        .name = "general",
        .version = "1.0.0",
        .description = "General-purpose fallback agent, chosen when no specialist qualifies",
        .init = general_init,
        .score = general_score,
        .build_prompt = general_build_prompt,
        .review = general_review,
        .fini = general_fini,
};

MOA_PLUGIN_DEFINE(descriptor)
