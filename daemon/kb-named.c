/* kb-named.c — a question that names a document by its title ("the
 * GPLv3", "our acme-nda") is about that document: its chunks come first
 * among the retrieved ones. Words are read as kb_fts_query() reads them,
 * so "GPLv3", "GPL-3" and "GPL 3.0" all name "GPL-3". */
#include <errno.h>
#include <string.h>

#include "kb-named.h"
#include "kb-text.h"
#include "util.h"

#define NAMED_MAX_WORDS 64u
#define NAMED_MAX_WORD 32u
#define NAMED_MAX_TITLE_WORDS 8u

typedef struct Words {
        char w[NAMED_MAX_WORDS][NAMED_MAX_WORD + 1];
        size_t n;
} Words;

static void words_add(Words *ws, const char *w, size_t n) {
        if (ws->n >= NAMED_MAX_WORDS || n == 0 || n > NAMED_MAX_WORD)
                return;
        memcpy(ws->w[ws->n], w, n);
        ws->w[ws->n][n] = 0;
        ws->n++;
}

/* One lower-cased word: "gplv3" is "gpl" "3", "v2" is "2". */
static void word_add(Words *ws, const char *w, size_t n) {
        size_t name_len, letters = kb_versioned_name(w, n, &name_len);

        if (letters > 0) {
                words_add(ws, w, name_len);
                words_add(ws, w + letters, n - letters);
        } else if (n >= 2 && w[0] == 'v' && w[1] >= '0' && w[1] <= '9' &&
                   strspn(w + 1, "0123456789") >= n - 1)
                words_add(ws, w + 1, n - 1);
        else
                words_add(ws, w, n);
}

/* The words of the @len bytes at @s: runs of word characters, ASCII
 * lower-cased. Invalid UTF-8 ends a word. */
static void words_read(Words *ws, const char *s, size_t len) {
        char buf[NAMED_MAX_WORD + 4];
        size_t b = 0, i = 0;
        int long_word = 0;

        while (i <= len) {
                size_t l = i < len ? kb_utf8_valid_len((const unsigned char *) s + i, len - i) : 0;
                uint32_t c = l ? kb_utf8_decode((const unsigned char *) s + i, l) : 0;
                if (l && kb_is_word_cp(c)) {
                        if (b + l <= NAMED_MAX_WORD) {
                                for (size_t k = 0; k < l; k++) {
                                        char ch = s[i + k];
                                        buf[b++] = l == 1 && ch >= 'A' && ch <= 'Z' ? (char) (ch + 32) : ch;
                                }
                        } else
                                long_word = 1;
                        i += l;
                        continue;
                }
                if (b > 0 && !long_word)
                        word_add(ws, buf, b);
                b = 0;
                long_word = 0;
                i += l ? l : 1;
        }
}

static int words_has(const Words *ws, const char *w) {
        for (size_t i = 0; i < ws->n; i++)
                if (streq(ws->w[i], w))
                        return 1;
        return 0;
}

static int is_number(const char *w) {
        return w[0] && strspn(w, "0123456789") == strlen(w);
}

/* The title's last path component without an extension of 1-5 letters
 * ("contract.md", not "LGPL-2.1"). */
static void title_name(const char *title, const char **ret, size_t *ret_len) {
        const char *base = strrchr(title, '/');
        base = base ? base + 1 : title;
        size_t n = strlen(base);
        const char *dot = strrchr(base, '.');
        if (dot && dot > base) {
                size_t e = strlen(dot + 1), letters = 0;
                while (letters < e && ((dot[1 + letters] >= 'a' && dot[1 + letters] <= 'z') ||
                                       (dot[1 + letters] >= 'A' && dot[1 + letters] <= 'Z')))
                        letters++;
                if (e >= 1 && e <= 5 && letters == e)
                        n = (size_t) (dot - base);
        }
        *ret = base;
        *ret_len = n;
}

static int title_named_in(const char *title, const Words *q) {
        Words t = {};
        const char *name;
        size_t len;
        int has_name = 0;

        title_name(title, &name, &len);
        words_read(&t, name, len);
        if (t.n == 0 || t.n > NAMED_MAX_TITLE_WORDS)
                return 0;
        for (size_t i = 0; i < t.n; i++) {
                const char *w = t.w[i];
                size_t n = strlen(w);
                if (kb_is_stop_word(w, n))
                        continue;
                /* "Apache-2.0" is named by "Apache 2" too */
                if (streq(w, "0") && i > 0 && is_number(t.w[i - 1]))
                        continue;
                if (!words_has(q, w))
                        return 0;
                if (n >= 2 && !is_number(w))
                        has_name = 1;
        }
        return has_name;
}

/** kb_title_named() - see kb-named.h. */
int kb_title_named(const char *title, const char *query) {
        Words q = {};

        if (!title || !query)
                return 0;
        words_read(&q, query, strnlen(query, KB_MAX_QUERY_BYTES));
        return title_named_in(title, &q);
}

/* @title as a GLOB pattern that matches only itself. */
static char *glob_exact(const char *title) {
        size_t n = strlen(title);
        char *g = malloc(3 * n + 1), *p = g;

        if (!g)
                return NULL;
        for (const char *t = title; *t; t++)
                if (*t == '*' || *t == '?' || *t == '[') {
                        *p++ = '[';
                        *p++ = *t;
                        *p++ = ']';
                } else
                        *p++ = *t;
        *p = 0;
        return g;
}

void kb_named_globs_free(char **globs, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(globs[i]);
}

/** kb_hits_named_globs() - see kb-named.h. */
int kb_hits_named_globs(const char *query, const KbHit *hits, size_t n, char *ret[static KB_NAMED_MAX]) {
        const char *titles[KB_NAMED_MAX];
        size_t k = 0;
        Words q = {};

        if (!query || n == 0)
                return 0;
        words_read(&q, query, strnlen(query, KB_MAX_QUERY_BYTES));
        for (size_t i = 0; i < n && k < KB_NAMED_MAX; i++) {
                int seen = 0;
                for (size_t j = 0; j < k && !seen; j++)
                        seen = streq(titles[j], hits[i].title);
                if (!seen && hits[i].title && title_named_in(hits[i].title, &q))
                        titles[k++] = hits[i].title;
        }
        for (size_t i = 0; i < k; i++) {
                ret[i] = glob_exact(titles[i]);
                if (!ret[i]) {
                        kb_named_globs_free(ret, i);
                        return -ENOMEM;
                }
        }
        return (int) k;
}

/** kb_hits_join() - see kb-named.h. */
int kb_hits_join(KbHit **a, size_t na, KbHit *b, size_t nb) {
        KbHit *all = realloc(*a, (na + nb + 1) * sizeof *all);

        if (!all) {
                kb_hits_free(b, nb);
                return -ENOMEM;
        }
        *a = all;
        for (size_t i = 0; i < nb; i++) {
                int dup = 0;
                for (size_t j = 0; j < na && !dup; j++)
                        dup = all[j].chunk == b[i].chunk && streq(all[j].title, b[i].title);
                if (dup)
                        kb_hit_clear(&b[i]);
                else
                        all[na++] = b[i];
        }
        free(b);
        return (int) na;
}

/** kb_hits_prefer_named() - see kb-named.h. Insertion sort: a handful of
 * hits, and it keeps equal scores in their order. */
size_t kb_hits_prefer_named(const char *query, KbHit *hits, size_t n, size_t keep) {
        Words q = {};

        if (query && n > 0) {
                words_read(&q, query, strnlen(query, KB_MAX_QUERY_BYTES));
                for (size_t i = 0; i < n; i++)
                        if (hits[i].title && title_named_in(hits[i].title, &q))
                                hits[i].score *= KB_NAMED_BOOST;
                for (size_t i = 1; i < n; i++) {
                        KbHit h = hits[i];
                        size_t j = i;
                        for (; j > 0 && hits[j - 1].score < h.score; j--)
                                hits[j] = hits[j - 1];
                        hits[j] = h;
                }
        }
        if (keep >= n)
                return n;
        for (size_t i = keep; i < n; i++)
                kb_hit_clear(&hits[i]);
        return keep;
}
