/* sleepy.c — a test plugin that sleeps in its callbacks, to show that a
 * slow plugin does not stall the daemon (plugin-call.h). Options:
 *   sleep_ms  how long to sleep (default 0)
 *   sleep_in  where: any of "score", "build_prompt", "review" (default all)
 *   word      a query with this word scores 1, others 0 (default "drowsy")
 * Every callback returns memory from the host allocator after its sleep,
 * so a late result must be freed by the host after the request is gone. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <moa/plugin.h>

typedef struct Sleepy {
        const MoaHost *host;
        long sleep_ms;
        char sleep_in[128];
        char word[64];
} Sleepy;

static int32_t sleepy_init(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                           void **ret_state) {
        Sleepy *s = calloc(1, sizeof(*s));
        const char *v;

        if (!s)
                return -ENOMEM;
        s->host = host;
        v = host->config_get(ctx, "sleep_ms");
        s->sleep_ms = v ? strtol(v, NULL, 10) : 0;
        v = host->config_get(ctx, "sleep_in");
        snprintf(s->sleep_in, sizeof(s->sleep_in), "%s", v ? v : "score,build_prompt,review");
        v = host->config_get(ctx, "word");
        snprintf(s->word, sizeof(s->word), "%s", v ? v : "drowsy");
        *ret_state = s;
        return 0;
}

static void sleepy_fini(void *state) {
        free(state);
}

static void nap(const Sleepy *s, const char *callback) {
        struct timespec ts = {.tv_sec = s->sleep_ms / 1000, .tv_nsec = (s->sleep_ms % 1000) * 1000000L};

        if (s->sleep_ms <= 0 || !strstr(s->sleep_in, callback))
                return;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int32_t sleepy_score(void *state, const char *query, double *ret_score, char *reason,
                            uint32_t reason_size) {
        Sleepy *s = state;

        nap(s, "score");
        *ret_score = strstr(query, s->word) ? 1.0 : 0.0;
        snprintf(reason, reason_size, "sleepy: %s", *ret_score > 0 ? s->word : "no match");
        return 0;
}

static int32_t sleepy_build_prompt(void *state, const char *query, const MoaKbHit *hits, uint32_t n_hits,
                                   char **ret_system, char **ret_context) {
        Sleepy *s = state;

        nap(s, "build_prompt");
        *ret_system = s->host->strdup("You are a sleepy assistant.");
        *ret_context = NULL;
        return *ret_system ? 0 : -ENOMEM;
}

static int32_t sleepy_review(void *state, const char *answer, char **ret_answer) {
        Sleepy *s = state;
        size_t n = strlen(answer);

        nap(s, "review");
        while (n > 0 && (answer[n - 1] == '\n' || answer[n - 1] == ' '))
                n--;
        *ret_answer = s->host->alloc(n + sizeof("\n\n(reviewed by sleepy)"));
        if (!*ret_answer)
                return -ENOMEM;
        memcpy(*ret_answer, answer, n);
        memcpy(*ret_answer + n, "\n\n(reviewed by sleepy)", sizeof("\n\n(reviewed by sleepy)"));
        return 0;
}

static const MoaPlugin descriptor = {
        MOA_PLUGIN_HEADER,
        .name = "sleepy",
        .version = "1.0.0",
        .description = "sleeps in its callbacks (test plugin)",
        .init = sleepy_init,
        .score = sleepy_score,
        .build_prompt = sleepy_build_prompt,
        .review = sleepy_review,
        .fini = sleepy_fini,
};

MOA_PLUGIN_DEFINE(descriptor)
