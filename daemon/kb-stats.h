/* kb-stats.h — what the event loop knows about a knowledge base without
 * asking it: its number of documents and its term statistics (kb-vocab.h),
 * published by the threads that write the base or read it again (ingest
 * and delete workers, the knowledge reader, an agent's statistics thread),
 * read by the loop. One entry per database (the file path or PostgreSQL
 * locator given to kb_open()), shared by every Kb handle to it in this
 * process and freed with the last. Thread-safe.
 *
 * Publishing is ordered by a generation: a writer takes a new one after
 * its commit, a reader takes the current one before its read, and a value
 * is published only while its generation is still the current one, so a
 * read that began before a write never replaces what the write published. */
#pragma once

#include <stdint.h>

#include "kb-vocab.h"

/* Up to this many chunks a write re-reads the base's term statistics on
 * the writer's thread (~5 ms), so the next question sees the change; a
 * larger base is re-read by its agent's statistics thread (agents.c). */
#define KB_STATS_SYNC_CHUNKS 1000

typedef struct KbStats KbStats;

/** kb_stats() - @kb's entry (defined in kb.c), NULL for an in-memory database. */
KbStats *kb_stats(Kb *kb);

/**
 * kb_stats_get() - the entry of @path, created if none is held (one more
 * reference). NULL for an in-memory database (":memory:"), which no other
 * handle shares, or on OOM: the handle then publishes nothing.
 */
KbStats *kb_stats_get(const char *path);

/** kb_stats_unref() - drop a reference, freeing the entry at the last; NULL is a no-op. Returns NULL. */
KbStats *kb_stats_unref(KbStats *s);

/** kb_stats_generation() - the current generation, taken before a read whose result is published. */
uint64_t kb_stats_generation(KbStats *s);

/** kb_stats_changed() - after a committed write: a new generation (returned), which
 * makes every read begun before it unpublishable. */
uint64_t kb_stats_changed(KbStats *s);

/** kb_stats_set_docs() - publish @n documents read at generation @gen (ignored if
 * @gen is no longer current or @n < 0). */
void kb_stats_set_docs(KbStats *s, uint64_t gen, int n);

/** kb_stats_docs() - the documents last published, -1 if none was. */
int kb_stats_docs(KbStats *s);

/** kb_stats_set_vocab() - publish @v (a reference is taken) read at generation @gen,
 * same rule as kb_stats_set_docs(). */
void kb_stats_set_vocab(KbStats *s, uint64_t gen, KbVocab *v);

/** kb_stats_vocab() - a new reference to the term statistics last published, or NULL. */
KbVocab *kb_stats_vocab(KbStats *s);
