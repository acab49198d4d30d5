/* provider-builtin.c — the offline, deterministic extractive provider.
 * It does not generate text: a proposer answers with the best sentences of
 * its own knowledge-base hits (extract_answer), a refiner or aggregator
 * merges the weighted references (extract_aggregate). Results are delivered
 * from a defer source so callers see the same asynchronous contract as an
 * HTTP provider; with stream set the answer arrives word by word. */
#include <ctype.h>

#include "log.h"
#include "provider.h"
#include "util.h"

/* Bounds on what one answer may contain, in sentences (and, by
 * extract.c's default, 200 words). */
#define BUILTIN_PROPOSE_SENTENCES 4u
#define BUILTIN_REFINE_SENTENCES 5u
#define BUILTIN_AGGREGATE_SENTENCES 6u

typedef struct BuiltinProvider {
        Provider base;
        sd_event *event;
} BuiltinProvider;

struct ProviderCall {
        BuiltinProvider *provider;
        sd_event_source *defer;
        char *content;
        int stream;
        ProviderUsage usage;
        ProviderCallbacks cb;
        void *userdata;
};

/* Whitespace-separated words: the builtin provider's notion of a token. */
static uint64_t count_words(const char *s) {
        uint64_t n = 0;
        int in_word = 0;

        for (; s && *s; s++) {
                if (isspace((unsigned char) *s))
                        in_word = 0;
                else if (!in_word) {
                        in_word = 1;
                        n++;
                }
        }
        return n;
}

static ProviderCall *call_free(ProviderCall *c) {
        if (!c)
                return NULL;
        sd_event_source_disable_unref(c->defer);
        free(c->content);
        free(c);
        return NULL;
}

static int on_deliver(sd_event_source *s, void *userdata) {
        ProviderCall *c = userdata;
        ProviderResult res = {
                .content = c->content,
                .finish_reason = "stop",
                .usage = c->usage,
                .attempts = 1,
        };

        if (c->stream && c->cb.on_delta) {
                /* One word (with its trailing space) per delta, like tokens. */
                const char *p = c->content;
                while (*p) {
                        size_t n = strcspn(p, " \n");
                        n += strspn(p + n, " \n");
                        c->cb.on_delta(c->userdata, p, n);
                        p += n;
                }
        }
        c->cb.on_done(c->userdata, &res);
        call_free(c);
        return 0;
}

/* Has the knowledge base a chunk with @word at all? (ExtractOptions.has_word)
 * SQLite: one short FTS5 look-up. PostgreSQL: the term statistics, since a
 * search there would make the loop wait for a round trip; they are
 * re-read after every write of this process to a base under
 * KB_STATS_SYNC_CHUNKS chunks, otherwise they may lag a change by a few
 * seconds (kb-stats.h). */
static int kb_has_word(void *userdata, const char *word) {
        const ProviderRequest *req = userdata;
        KbHit *hits = NULL;
        size_t n = 0;
        if (kb_pg(req->kb)) {
                char **terms = NULL;
                if (!req->vocab || kb_query_terms(req->kb, word, 1, &terms, &n) < 0)
                        return -EIO;
                int r = n > 0 && kb_vocab_df(req->vocab, terms[0]) > 0;
                strv_free_n(terms, n);
                return r;
        }
        if (kb_search_texts(req->kb, word, 1, &hits, &n) < 0)
                return -EIO;
        kb_hits_free(hits, n);
        return n > 0;
}

/* In how many chunks of the knowledge base is @word, as its index
 * tokenizes it? (ExtractOptions.word_df) */
static int kb_word_df(void *userdata, const char *word, uint32_t *ret_df, uint32_t *ret_chunks) {
        const ProviderRequest *req = userdata;
        char **terms = NULL;
        size_t n = 0;
        int r = kb_query_terms(req->kb, word, 1, &terms, &n);
        if (r < 0)
                return r;
        *ret_chunks = kb_vocab_chunks(req->vocab);
        *ret_df = n > 0 ? kb_vocab_df(req->vocab, terms[0]) : 0;
        strv_free_n(terms, n);
        return n > 0 ? 0 : 1; /* 1: a function word the index does not keep */
}

static char *compose(const ProviderRequest *req) {
        ExtractOptions o = {.agent = req->knowledge,
                            .has_word = req->kb ? kb_has_word : NULL,
                            .has_word_userdata = (void *) req,
                            .word_df = req->kb && req->vocab ? kb_word_df : NULL,
                            .word_df_userdata = (void *) req,
                            .n_attached = req->n_attached};

        if (req->review)
                return req->task == PROVIDER_TASK_PROPOSE
                               ? extract_review(req->focus, req->hits, req->n_hits, req->n_attached, &o)
                               : extract_review_merge(req->refs, req->n_refs);
        switch (req->task) {
        case PROVIDER_TASK_PROPOSE:
                o.max_sentences = BUILTIN_PROPOSE_SENTENCES;
                /* Here, not by the engine for every call: only this answer
                 * names the count ("... (6 documents) has no passage"). The
                 * count last published (kb-stats.h): this runs on the loop,
                 * which never asks the database. */
                o.n_documents = req->kb ? kb_known_count(req->kb) : 0;
                return extract_answer(req->query, req->hits, req->n_hits, &o);
        case PROVIDER_TASK_REFINE:
                o.max_sentences = BUILTIN_REFINE_SENTENCES;
                return extract_aggregate(req->query, req->refs, req->n_refs, &o);
        case PROVIDER_TASK_AGGREGATE:
                o.max_sentences = BUILTIN_AGGREGATE_SENTENCES;
                return extract_aggregate(req->query, req->refs, req->n_refs, &o);
        }
        return NULL;
}

static int builtin_call_start(Provider *base, const ProviderRequest *req, const ProviderCallbacks *cb,
                              void *userdata, ProviderCall **ret) {
        BuiltinProvider *p = (BuiltinProvider *) base;
        ProviderCall *c;
        size_t i;
        json_t *m;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->provider = p;
        c->cb = *cb;
        c->userdata = userdata;
        c->stream = req->stream;
        c->content = compose(req);
        if (!c->content) {
                call_free(c);
                return -ENOMEM;
        }
        json_array_foreach(req->messages, i, m) c->usage.prompt_tokens +=
                count_words(json_string_value(json_object_get(m, "content")));
        c->usage.completion_tokens = count_words(c->content);

        r = sd_event_add_defer(p->event, &c->defer, on_deliver, c);
        if (r < 0) {
                call_free(c);
                return r;
        }
        (void) sd_event_source_set_description(c->defer, "builtin-provider-call");
        (void) sd_event_source_set_enabled(c->defer, SD_EVENT_ONESHOT);
        *ret = c;
        return 0;
}

static void builtin_call_cancel(ProviderCall *c) {
        call_free(c);
}

static void builtin_free(Provider *base) {
        BuiltinProvider *p = (BuiltinProvider *) base;

        sd_event_unref(p->event);
        free(p->base.name);
        free(p);
}

static const ProviderOps builtin_ops = {
        .type = "builtin",
        .call_start = builtin_call_start,
        .call_cancel = builtin_call_cancel,
        .free = builtin_free,
};

int provider_builtin_new(sd_event *e, const ProviderConfig *cfg, Provider **ret) {
        BuiltinProvider *p = calloc(1, sizeof *p);

        if (!p)
                return -ENOMEM;
        p->base.ops = &builtin_ops;
        p->base.name = strdup(cfg && cfg->name ? cfg->name : "builtin");
        if (!p->base.name) {
                free(p);
                return -ENOMEM;
        }
        p->event = sd_event_ref(e);
        *ret = &p->base;
        return 0;
}
