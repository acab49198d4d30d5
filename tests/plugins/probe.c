/* probe.c — a test plugin exercising every host service: config look-up in
 * init, kb_search + kb_hits_free and the host allocator in build_prompt,
 * logging; a future-minor descriptor (larger size, minor + 1) to prove
 * the host accepts additive growth; a score that echoes an option. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moa/plugin.h>

typedef struct Probe {
        const MoaHost *host;
        MoaHostContext *ctx;
        double score;
        char name[64];
} Probe;

static int32_t probe_init(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                          void **ret_state) {
        if (!MOA_HOST_HAS(host, config_get) || !MOA_HOST_HAS(host, kb_search) ||
            host->size < sizeof(MoaHost))
                return -EPROTO;
        if (info->size < sizeof(MoaAgentInfo) || strcmp(host->config_get(ctx, "name"), info->name) != 0)
                return -EINVAL;
        Probe *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->host = host;
        p->ctx = ctx;
        const char *s = host->config_get(ctx, "score");
        p->score = s ? strtod(s, NULL) : 0.25;
        snprintf(p->name, sizeof(p->name), "%s", info->name);
        host->log(ctx, MOA_LOG_INFO, "probe ready");
        *ret_state = p;
        return 0;
}

static void probe_fini(void *state) {
        free(state);
}

static int32_t probe_score(void *state, const char *query, double *ret_score, char *reason,
                           uint32_t reason_size) {
        Probe *p = state;
        *ret_score = strstr(query, "nan")   ? NAN
                     : strstr(query, "big") ? 7.0
                     : strstr(query, "neg") ? -7.0
                                            : p->score;
        /* deliberately longer than any reason buffer: the host must cope */
        char longr[1000];
        memset(longr, 'x', sizeof(longr) - 1);
        longr[sizeof(longr) - 1] = 0;
        snprintf(reason, reason_size, "probe %s %s", p->name, strstr(query, "long") ? longr : "");
        return strstr(query, "fail") ? -EIO : 0;
}

/* system = "<prompt option>|<n passed hits>"; context = titles of the hits the
 * plugin found itself through host->kb_search("probe"), one per line. */
static int32_t probe_build_prompt(void *state, const char *query, const MoaKbHit *hits, uint32_t n_hits,
                                  char **ret_system, char **ret_context) {
        Probe *p = state;
        const char *prompt = p->host->config_get(p->ctx, "prompt");
        char buf[256];
        snprintf(buf, sizeof(buf), "%s|%u|%s", prompt ? prompt : "(none)", n_hits,
                 n_hits ? hits[0].title : "");
        char *sys = p->host->strdup(buf);
        if (!sys)
                return -ENOMEM;
        MoaKbHit *found = NULL;
        uint32_t n = 0;
        int32_t r = p->host->kb_search(p->ctx, "probe", 8, &found, &n);
        if (r < 0) {
                snprintf(buf, sizeof(buf), "search error %d", (int) r);
        } else {
                buf[0] = 0;
                for (uint32_t i = 0; i < n; i++)
                        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s\n", found[i].title);
                p->host->kb_hits_free(found, n);
        }
        char *ctx = p->host->strdup(buf);
        if (!ctx) {
                p->host->free(sys);
                return -ENOMEM;
        }
        *ret_system = sys;
        *ret_context = ctx;
        return 0;
}

static int32_t probe_review(void *state, const char *answer, char **ret_answer) {
        Probe *p = state;
        if (strcmp(answer, "keep") == 0) {
                *ret_answer = NULL;
                return 0;
        }
        if (strcmp(answer, "fail") == 0)
                return -EINVAL;
        size_t n = strlen(answer);
        char *s = p->host->alloc(n + 8);
        if (!s)
                return -ENOMEM;
        memcpy(s, "probe: ", 7);
        memcpy(s + 7, answer, n + 1);
        *ret_answer = s;
        return 0;
}

/* A descriptor from a hypothetical ABI 1.1 plugin: one extra field carved
 * after the 1.0 layout. The host must accept it and ignore the field. */
typedef struct ProbeDescriptor {
        MoaPlugin base;
        void *future_callback;
} ProbeDescriptor;

static const ProbeDescriptor desc = {
        .base =
                {
                        .abi_major = MOA_PLUGIN_ABI_MAJOR,
                        .abi_minor = MOA_PLUGIN_ABI_MINOR + 1,
                        .size = sizeof(ProbeDescriptor),
                        .signature = MOA_PLUGIN_SIGNATURE,
                        .name = "probe",
                        .version = "9.9",
                        .description = "test probe",
                        .init = probe_init,
                        .score = probe_score,
                        .build_prompt = probe_build_prompt,
                        .review = probe_review,
                        .fini = probe_fini,
                },
};

MOA_PLUGIN_EXPORT const MoaPlugin *moa_plugin_entry(void);
MOA_PLUGIN_EXPORT const MoaPlugin *moa_plugin_entry(void) {
        return &desc.base;
}
