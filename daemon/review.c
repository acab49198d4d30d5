/* review.c — see review.h. */
#include <ctype.h>

#include "review.h"
#include "util.h"

#define REVIEW_PICK_FLOOR 0.05

typedef struct Cand {
        double score;
        size_t doc, idx;
        KbChunk chunk;
} Cand;

static int cand_cmp(const void *a, const void *b) {
        const Cand *x = a, *y = b;
        if (x->score != y->score)
                return x->score > y->score ? -1 : 1;
        return x->doc != y->doc ? (x->doc < y->doc ? -1 : 1) : (x->idx < y->idx ? -1 : x->idx > y->idx);
}

typedef struct Term {
        char *s;
        unsigned n;
} Term;

/* "terms: a, b c; other sense: x" → count a and "b c". */
static void add_terms(Term *t, size_t *n, const char *reason) {
        if (!reason || strncmp(reason, "terms: ", 7) != 0)
                return;
        const char *p = reason + 7, *end = p + strcspn(p, ";");
        while (p < end) {
                size_t l = strcspn(p, ",;");
                if (p + l > end)
                        l = (size_t) (end - p);
                while (l > 0 && *p == ' ')
                        p++, l--;
                size_t k = 0;
                while (k < *n && !(strlen(t[k].s) == l && strncmp(t[k].s, p, l) == 0))
                        k++;
                if (k < *n)
                        t[k].n++;
                else if (l >= 2 && *n < REVIEW_MAX_FOCUS * 4 && (t[*n].s = strndup(p, l)))
                        t[(*n)++].n = 1;
                p += l;
                if (p < end)
                        p++;
        }
}

static int term_cmp(const void *a, const void *b) {
        const Term *x = a, *y = b;
        return x->n != y->n ? (x->n > y->n ? -1 : 1) : strcmp(x->s, y->s);
}

int review_pick(PluginAgent *pa, const ChatDocument *docs, size_t n_docs, unsigned limit, KbHit **ret_hits,
                size_t *ret_n, char **ret_focus) {
        KbChunkOpts opts = KB_CHUNK_OPTS_DEFAULT;
        _cleanup_free_ Cand *c = calloc(REVIEW_MAX_CHUNKS, sizeof *c);
        KbChunks *chunks = calloc(n_docs + 1, sizeof *chunks);
        Term terms[REVIEW_MAX_FOCUS * 4] = {};
        size_t n_c = 0, n_terms = 0, n = 0;
        KbHit *hits = NULL;
        char *focus = NULL;
        int r = -ENOMEM;

        if (!c || !chunks)
                goto out;
        for (size_t d = 0; d < n_docs && n_c < REVIEW_MAX_CHUNKS; d++) {
                r = kb_chunk_sections(docs[d].text, docs[d].len, &opts, &chunks[d]);
                if (r < 0)
                        goto out;
                for (size_t i = 0; i < chunks[d].n && n_c < REVIEW_MAX_CHUNKS; i++) {
                        const KbChunk *k = &chunks[d].chunks[i];
                        _cleanup_free_ char *text = strndup(docs[d].text + k->offset, k->len),
                                            *reason = NULL;
                        double score = 0;
                        if (!text) {
                                r = -ENOMEM;
                                goto out;
                        }
                        if (plugin_agent_score(pa, text, &score, &reason) < 0 ||
                            !(score > REVIEW_PICK_FLOOR))
                                continue;
                        add_terms(terms, &n_terms, reason);
                        c[n_c++] = (Cand){.score = score, .doc = d, .idx = i, .chunk = *k};
                }
        }
        qsort(c, n_c, sizeof *c, cand_cmp);
        n = MIN(n_c, (size_t) limit);
        hits = calloc(n + 1, sizeof *hits);
        if (!hits) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                const ChatDocument *d = &docs[c[i].doc];
                hits[i] = (KbHit){.title = strdup(d->title),
                                  .source = strdup(d->source),
                                  .chunk = (unsigned) c[i].idx,
                                  .score = c[i].score,
                                  .snippet = strdup(""),
                                  .text = strndup(d->text + c[i].chunk.offset, c[i].chunk.len),
                                  .heading = strdup(chunks[c[i].doc].headings + c[i].chunk.heading)};
                if (!hits[i].title || !hits[i].source || !hits[i].snippet || !hits[i].text ||
                    !hits[i].heading) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        qsort(terms, n_terms, sizeof *terms, term_cmp);
        focus = strdup("");
        for (size_t i = 0; focus && i < n_terms && i < REVIEW_MAX_FOCUS; i++) {
                char *f;
                if (asprintf(&f, "%s%s%s", focus, i ? ", " : "", terms[i].s) < 0)
                        f = NULL;
                free(focus);
                focus = f;
        }
        if (!focus) {
                r = -ENOMEM;
                goto out;
        }
        *ret_hits = TAKE_PTR(hits);
        *ret_n = n;
        *ret_focus = TAKE_PTR(focus);
        r = 0;
out:
        kb_hits_free(hits, n);
        for (size_t i = 0; chunks && i < n_docs; i++)
                kb_chunks_done(&chunks[i]);
        free(chunks);
        for (size_t i = 0; i < n_terms; i++)
                free(terms[i].s);
        return r;
}

json_t *review_findings(const char *report) {
        static const char *const sev[] = {"high", "medium", "low"};
        json_t *a = json_array();

        for (const char *p = report ? report : ""; a && *p;) {
                size_t e = strcspn(p, "\n"), k;
                const char *s = NULL;

                for (size_t i = 0; i < ELEMENTSOF(sev); i++)
                        if (e > 4 && p[0] == '-' && p[1] == ' ' && p[2] == '[' &&
                            strncmp(p + 3, sev[i], strlen(sev[i])) == 0 && p[3 + strlen(sev[i])] == ']')
                                s = sev[i];
                if (s) {
                        k = 4 + strlen(s);
                        while (k < e && p[k] == ' ')
                                k++;
                        json_t *agents = json_array(), *cites = json_array();
                        const char *close = k < e ? memchr(p + k, ')', e - k) : NULL;
                        if (k < e && p[k] == '(' && close) {
                                size_t q = k + 1;
                                while (q < e && p[q] != ')') {
                                        size_t l = strcspn(p + q, ",)");
                                        while (l > 0 && p[q] == ' ')
                                                q++, l--;
                                        if (q + l <= e && l > 0)
                                                json_array_append_new(agents, json_stringn(p + q, l));
                                        q += l;
                                        if (q < e && p[q] == ',')
                                                q++;
                                }
                                k = q < e ? q + 1 : e;
                                while (k < e && p[k] == ' ')
                                        k++;
                        }
                        if (k >= e) { /* a tag and nothing else */
                                json_decref(agents);
                                json_decref(cites);
                                p += e + (p[e] == '\n');
                                continue;
                        }
                        for (size_t i = k; i + 2 < e; i++)
                                if (p[i] == '[' && isdigit((unsigned char) p[i + 1])) {
                                        size_t q = i + 1;
                                        long v = 0;
                                        while (q < e && q - i <= 4 && isdigit((unsigned char) p[q]))
                                                v = v * 10 + (p[q++] - '0');
                                        if (q < e && p[q] == ']')
                                                json_array_append_new(cites, json_integer(v));
                                }
                        json_array_append_new(a,
                                              json_pack("{s:s,s:o,s:s%,s:o}", "severity", s, "agents",
                                                        agents, "text", p + k, e - k, "citations", cites));
                }
                p += e + (p[e] == '\n');
        }
        return a;
}
