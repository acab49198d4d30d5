/* fuzz-extract.c — fuzz target for the extractive algorithms. The input is
 * split at 0x1E bytes into a query and up to 16 texts; the first byte picks
 * extract_answer() (texts become hits) or extract_aggregate() (texts become
 * proposals with weights from the input). The result must exist, be
 * NUL-terminated valid UTF-8, and be identical when computed twice. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what) {
        if (!ok) {
                fprintf(stderr, "invariant violated: %s\n", what);
                abort();
        }
}

static int valid_utf8(const unsigned char *s) {
        while (*s) {
                unsigned char c = *s;
                size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
                if (l == 0)
                        return 0;
                for (size_t i = 1; i < l; i++)
                        if ((s[i] & 0xC0) != 0x80)
                                return 0;
                s += l;
        }
        return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 2)
                return 0;
        int aggregate = data[0] & 1;
        unsigned max = data[1] % 8;
        char *buf = malloc(size - 1);
        if (!buf)
                return 0;
        memcpy(buf, data + 2, size - 2);
        buf[size - 2] = 0;

        char *parts[17];
        size_t n = 0;
        parts[n++] = buf;
        for (size_t i = 0; i + 2 < size && n < 17; i++)
                if (buf[i] == 0x1E) {
                        buf[i] = 0;
                        parts[n++] = buf + i + 1;
                }

        char *a, *b;
        if (!aggregate) {
                KbHit hits[16];
                for (size_t i = 1; i < n; i++)
                        hits[i - 1] = (KbHit){.title = parts[i],
                                              .source = (char *) "",
                                              .chunk = (unsigned) i,
                                              .score = (double) (n - i),
                                              .snippet = parts[i],
                                              .text = parts[i]};
                ExtractOptions o = {.agent = "fuzz",
                                    .n_documents = (int) n - 2,
                                    .max_sentences = max,
                                    .max_words = (unsigned) data[1] * 4u};
                a = extract_answer(parts[0], hits, n - 1, &o);
                b = extract_answer(parts[0], hits, n - 1, &o);
        } else {
                ExtractProposal props[16];
                for (size_t i = 1; i < n; i++)
                        props[i - 1] = (ExtractProposal){
                                .agent = i % 2 ? "a" : "b",
                                .text = parts[i],
                                .weight = (double) ((unsigned char) parts[i][0] % 5),
                                .route_score = (double) ((unsigned char) parts[i][0] % 3) / 2.0};
                ExtractOptions o = {.max_sentences = max, .max_words = (unsigned) data[1] * 4u};
                a = extract_aggregate(parts[0], props, n - 1, &o);
                b = extract_aggregate(parts[0], props, n - 1, &o);
        }
        check(a && b, "result");
        check(strcmp(a, b) == 0, "deterministic");
        check(valid_utf8((const unsigned char *) a), "valid UTF-8");
        free(a);
        free(b);
        free(buf);
        return 0;
}
