/* extract.h — the builtin provider's extractive algorithms, pure functions
 * (no I/O): answer a question from retrieved passages, and merge several
 * weighted answers into one. Honest retrieval, not a language model. */
#pragma once

#include <stddef.h>

#include "kb.h"

/**
 * extract_answer() - compose one agent's answer to @query from @hits (its own
 * knowledge base's best chunks): pick the sentences that best cover the query
 * terms (at most @max_sentences), keep them in a readable order and append a
 * citation "[n]" to each, followed by a "Sources:" list "[n] title, chunk k".
 * With no hits, says plainly that the agent's knowledge has nothing on it.
 * Deterministic. Returns a malloc'ed string (NULL on OOM).
 */
char *extract_answer(const char *query, const KbHit *hits, size_t n_hits, unsigned max_sentences);

typedef struct ExtractProposal {
        const char *agent; /* agent name, used in the attribution */
        const char *text;  /* that agent's answer (possibly with [n] cites and Sources:) */
        double weight;     /* agent weight x router score, > 0 */
} ExtractProposal;

/**
 * extract_aggregate() - the builtin aggregator: split every proposal into
 * sentences, score each by weight x agreement (similar sentences in other
 * proposals raise it), then select greedily with MMR so near-duplicates are
 * not repeated, at most @max_sentences, and renumber citations so the
 * merged "Sources:" list is consistent. Deterministic for equal input.
 * Returns a malloc'ed string (NULL on OOM).
 */
char *extract_aggregate(const char *query, const ExtractProposal *props, size_t n, unsigned max_sentences);
