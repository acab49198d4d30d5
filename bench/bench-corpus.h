/* bench-corpus.h — knowledge bases of real English text for the in-process
 * benchmarks (route-cost, kb-backends): windows of a corpus (licence texts,
 * the Debian Policy Manual) ingested as documents of 50 chunks each. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define BENCH_WINDOW_BYTES 1100 /* about one chunk */
#define BENCH_DOC_CHUNKS 50

/**
 * bench_corpus_read() - the @n files @files as one text (at most 64 MiB
 * each) in *@ret (malloc'ed, NUL-terminated) and its length. Returns 0, or
 * -errno with a message on stderr.
 */
int bench_corpus_read(const char *const *files, unsigned n, char **ret, size_t *ret_len);

/**
 * bench_kb_fill() - fill the knowledge base at @locator (a SQLite path or
 * a "postgresql:" locator, kb_open()) to at least @chunks chunks: documents
 * "bench-N" of BENCH_DOC_CHUNKS windows of @text taken at pseudo-random
 * offsets from the xorshift state *@rng (the same state gives the same
 * documents on any backend). Documents already there are kept. Returns 0 or
 * -errno.
 */
int bench_kb_fill(const char *locator, const char *text, size_t len, unsigned chunks, uint64_t *rng);
