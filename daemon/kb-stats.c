/* kb-stats.c — the published document counts and term statistics of the
 * open knowledge bases (see kb-stats.h): a short list under one mutex (one
 * entry per agent's database), never held across a database call. */
#include <pthread.h>

#include "kb-stats.h"
#include "util.h"

struct KbStats {
        KbStats *next;
        char *path;
        unsigned n_ref;
        uint64_t gen;
        int docs; /* -1: not read yet */
        KbVocab *vocab;
};

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static KbStats *stats_list;

KbStats *kb_stats_get(const char *path) {
        KbStats *s;

        if (isempty(path) || streq(path, ":memory:"))
                return NULL;
        pthread_mutex_lock(&stats_lock);
        for (s = stats_list; s; s = s->next)
                if (streq(s->path, path))
                        break;
        if (s)
                s->n_ref++;
        else if ((s = calloc(1, sizeof(*s)))) {
                s->path = strdup(path);
                if (!s->path)
                        s = mfree(s);
                else {
                        s->n_ref = 1;
                        s->gen = 1;
                        s->docs = -1;
                        s->next = stats_list;
                        stats_list = s;
                }
        }
        pthread_mutex_unlock(&stats_lock);
        return s;
}

KbStats *kb_stats_unref(KbStats *s) {
        if (!s)
                return NULL;
        pthread_mutex_lock(&stats_lock);
        if (--s->n_ref > 0) {
                pthread_mutex_unlock(&stats_lock);
                return NULL;
        }
        for (KbStats **p = &stats_list; *p; p = &(*p)->next)
                if (*p == s) {
                        *p = s->next;
                        break;
                }
        pthread_mutex_unlock(&stats_lock);
        kb_vocab_free(s->vocab);
        free(s->path);
        free(s);
        return NULL;
}

uint64_t kb_stats_generation(KbStats *s) {
        if (!s)
                return 0;
        pthread_mutex_lock(&stats_lock);
        uint64_t g = s->gen;
        pthread_mutex_unlock(&stats_lock);
        return g;
}

uint64_t kb_stats_changed(KbStats *s) {
        if (!s)
                return 0;
        pthread_mutex_lock(&stats_lock);
        uint64_t g = ++s->gen;
        pthread_mutex_unlock(&stats_lock);
        return g;
}

void kb_stats_set_docs(KbStats *s, uint64_t gen, int n) {
        if (!s || n < 0)
                return;
        pthread_mutex_lock(&stats_lock);
        if (gen == s->gen)
                s->docs = n;
        pthread_mutex_unlock(&stats_lock);
}

int kb_stats_docs(KbStats *s) {
        if (!s)
                return -1;
        pthread_mutex_lock(&stats_lock);
        int n = s->docs;
        pthread_mutex_unlock(&stats_lock);
        return n;
}

void kb_stats_set_vocab(KbStats *s, uint64_t gen, KbVocab *v) {
        KbVocab *old = NULL;

        if (!s || !v)
                return;
        pthread_mutex_lock(&stats_lock);
        if (gen == s->gen) {
                old = s->vocab;
                s->vocab = kb_vocab_ref(v);
        }
        pthread_mutex_unlock(&stats_lock);
        kb_vocab_free(old); /* outside the lock: the last reference frees a large table */
}

KbVocab *kb_stats_vocab(KbStats *s) {
        if (!s)
                return NULL;
        pthread_mutex_lock(&stats_lock);
        KbVocab *v = kb_vocab_ref(s->vocab);
        pthread_mutex_unlock(&stats_lock);
        return v;
}
