/* bench-corpus.c — see bench-corpus.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-corpus.h"
#include "file-read.h"
#include "kb.h"

static uint64_t next_rand(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

int bench_corpus_read(const char *const *files, unsigned n, char **ret, size_t *ret_len) {
        char *text = NULL;
        size_t len = 0;

        for (unsigned i = 0; i < n; i++) {
                char *t = NULL, *grown;
                size_t l = 0;
                int r = text_read_file(files[i], 64u << 20, &t, &l);
                if (r < 0) {
                        fprintf(stderr, "cannot read %s: %s\n", files[i], strerror(-r));
                        free(text);
                        return r;
                }
                grown = realloc(text, len + l + 1);
                if (!grown) {
                        free(t);
                        free(text);
                        return -ENOMEM;
                }
                text = grown;
                memcpy(text + len, t, l);
                len += l;
                text[len] = 0;
                free(t);
        }
        if (len < 4 * BENCH_WINDOW_BYTES) {
                fprintf(stderr, "corpus too small\n");
                free(text);
                return -EINVAL;
        }
        *ret = text;
        *ret_len = len;
        return 0;
}

int bench_kb_fill(const char *locator, const char *text, size_t len, unsigned chunks, uint64_t *rng) {
        Kb *kb = NULL;
        int r = kb_open(locator, 0, &kb);
        if (r < 0)
                return r;
        int have = kb_count(kb);
        char *doc = malloc(BENCH_DOC_CHUNKS * (BENCH_WINDOW_BYTES + 2) + 1);
        if (!doc) {
                kb_close(kb);
                return -ENOMEM;
        }
        for (unsigned d = have > 0 ? (unsigned) have : 0; d * BENCH_DOC_CHUNKS < chunks; d++) {
                size_t o = 0;
                for (unsigned c = 0; c < BENCH_DOC_CHUNKS; c++) {
                        /* from a word start, never past the end */
                        size_t at = next_rand(rng) % (len - BENCH_WINDOW_BYTES);
                        while (at < len - BENCH_WINDOW_BYTES && text[at] != ' ' && text[at] != '\n')
                                at++;
                        memcpy(doc + o, text + at, BENCH_WINDOW_BYTES);
                        o += BENCH_WINDOW_BYTES;
                        doc[o++] = '\n';
                        doc[o++] = '\n';
                }
                char title[64];
                snprintf(title, sizeof(title), "bench-%u", d);
                r = kb_ingest(kb, title, "bench", doc, o, NULL);
                if (r < 0)
                        break;
        }
        free(doc);
        kb_close(kb);
        return r < 0 ? r : 0;
}
