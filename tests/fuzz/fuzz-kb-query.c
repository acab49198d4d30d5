/* fuzz-kb-query.c — fuzz target for the knowledge base's untrusted inputs.
 * The first byte picks a mode: 0 kb_fts_query() (the result must consist
 * only of "quoted" terms joined by " OR ") plus kb_search() against a small
 * in-memory knowledge base, 1 kb_chunk_sections() invariants (bounds,
 * progress, no overlap across a heading, bounded heading paths), 2
 * kb_ingest() of the input as a document and a search for its own words.
 * Any crash, sanitizer report or abort() is a finding. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Kb *kb;

static void check(int ok, const char *what) {
        if (!ok) {
                fprintf(stderr, "invariant violated: %s\n", what);
                abort();
        }
}

static Kb *get_kb(void) {
        if (kb)
                return kb;
        check(kb_open(":memory:", 0, &kb) == 0, "kb_open");
        static const char *const docs[][2] = {
                {"bp", "Hypertension is high blood pressure. Treatment starts with less salt."},
                {"git", "A git rebase rewrites commits. Use git bisect to find a bad commit."},
                {"cafe", "Le café crème est servi à Paris. 高血压是一种常见的慢性病。"},
        };
        for (size_t i = 0; i < sizeof docs / sizeof *docs; i++)
                check(kb_ingest(kb, docs[i][0], "", docs[i][1], strlen(docs[i][1]), NULL) == 1,
                      "seed ingest");
        return kb;
}

/* The expression must be ("term")( OR "term")* with no quote inside a term. */
static void check_expression(const char *q) {
        const char *p = q;
        unsigned terms = 0;
        if (!*p)
                return;
        for (;;) {
                check(*p == '"', "term starts with a quote");
                p++;
                const char *e = strchr(p, '"');
                check(e != NULL, "term ends with a quote");
                check(e > p, "term not empty");
                p = e + 1;
                terms++;
                if (!*p)
                        break;
                check(strncmp(p, " OR ", 4) == 0, "terms joined by OR");
                p += 4;
        }
        check(terms <= KB_MAX_QUERY_TERMS, "term count bounded");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size == 0)
                return 0;
        unsigned mode = data[0] % 3;
        const char *text = (const char *) data + 1;
        size_t len = size - 1;

        char *s = malloc(len + 1);
        if (!s)
                return 0;
        memcpy(s, text, len);
        s[len] = 0; /* embedded NULs simply end the C string */

        if (mode == 0) {
                char *q = kb_fts_query(s);
                check(q != NULL, "kb_fts_query");
                check_expression(q);
                free(q);
                KbHit *hits = NULL;
                size_t n = 0;
                check(kb_search(get_kb(), s, 5, &hits, &n) == 0, "kb_search never fails on content");
                for (size_t i = 0; i < n; i++)
                        check(hits[i].score > 0 && hits[i].text && hits[i].snippet && hits[i].heading,
                              "hit fields");
                kb_hits_free(hits, n);
        } else if (mode == 1) {
                KbChunks c = {0};
                KbChunkOpts o = {.chunk_size = 64 + (len % 200), .overlap = len % 40};
                check(kb_chunk_sections(text, len, &o, &c) == 0, "kb_chunk_sections");
                for (size_t i = 0; i < c.n; i++) {
                        const KbChunk *k = &c.chunks[i];
                        check(k->len > 0 && k->len <= o.chunk_size, "chunk size bounded");
                        check(k->offset + k->len <= len, "chunk inside text");
                        check(k->heading < c.headings_len &&
                                      strlen(c.headings + k->heading) < KB_MAX_HEADING_BYTES,
                              "heading bounded");
                        if (i > 0) {
                                const KbChunk *p = &c.chunks[i - 1];
                                check(k->offset > p->offset, "chunking progresses");
                                check(k->offset >= p->offset + p->len || k->heading == p->heading,
                                      "overlap only within a section");
                        }
                }
                kb_chunks_done(&c);
        } else {
                Kb *k = get_kb();
                int r = kb_ingest(k, "fuzz", NULL, text, len, NULL);
                check(r >= 0 || r == -EINVAL, "kb_ingest of arbitrary bytes");
                KbHit *hits = NULL;
                size_t n = 0;
                check(kb_search(k, s, 3, &hits, &n) == 0, "kb_search after ingest");
                kb_hits_free(hits, n);
                if (r >= 0)
                        check(kb_delete(k, "fuzz") == 0, "kb_delete");
                check(kb_count(k) == 3, "count back to the seed documents");
        }
        free(s);
        return 0;
}
