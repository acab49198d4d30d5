/* extract.h — the builtin provider's extractive algorithms, pure functions
 * (no I/O): answer a question from retrieved passages, and merge several
 * weighted answers into one. Honest retrieval, not a language model. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kb.h"

/* What an answer may contain and whose knowledge it speaks for. A NULL
 * options pointer means all defaults. */
typedef struct ExtractOptions {
        const char *agent;      /* whose knowledge base, named in a not-found answer; NULL: "this agent's" */
        int n_documents;        /* documents in that knowledge base, named when > 0 */
        unsigned max_sentences; /* 0: the function's default (3 answer, 5 aggregate); at most 20 */
        unsigned max_words;     /* 0: 200; at most 2000; cut at sentence boundaries */
        /* Whether the knowledge base has @word anywhere (NULL: not known).
         * A word of the question that is in no retrieved passage is weighed
         * as missing from the knowledge when @has_word says it has no such
         * word ("zorblax deposit" after the zorblax document was deleted:
         * not found); otherwise as a missing nuance: half its weight, and a
         * narrowing word ("security" in "security deposit") at most as much
         * as the word it narrows. */
        int (*has_word)(void *userdata, const char *word);
        void *has_word_userdata;
        /* The knowledge base's statistics of @word (NULL: not known): in
         * how many of its *@ret_chunks chunks it occurs. Returns 0, 1 when
         * the index does not keep the word at all (a function word), or
         * < 0 when it cannot say. They weigh the question's words by how
         * specific they are in that knowledge base. */
        int (*word_df)(void *userdata, const char *word, uint32_t *ret_df, uint32_t *ret_chunks);
        void *word_df_userdata;
} ExtractOptions;

/**
 * extract_answer() - compose one agent's answer to @query from @hits (its own
 * knowledge base's best chunks): the sentences relevant to the question
 * (above an absolute relevance floor and containing one of its key terms),
 * best first, each cited "[n]", followed by a "Sources:" list "[n] title,
 * chunk k"; at most @opts->max_sentences sentences and @opts->max_words
 * words. When no sentence is relevant, one sentence saying that the agent's
 * knowledge base has no passage about the question's key terms.
 * Deterministic. Returns a malloc'ed string (NULL on OOM).
 */
char *extract_answer(const char *query, const KbHit *hits, size_t n_hits, const ExtractOptions *opts);

typedef struct ExtractProposal {
        const char *agent;  /* agent name, used in the attribution */
        const char *text;   /* that agent's answer (possibly with [n] cites and Sources:) */
        double weight;      /* agent weight x router score x layer weight, > 0 */
        double route_score; /* the router's score for the agent (0..1), also when it was
                             * pinned; 0: unknown */
} ExtractProposal;

/**
 * extract_aggregate() - the builtin aggregator: drop proposals that found
 * nothing or whose weight or route score is far below the best one's, split
 * the others into sentences, keep those above the relevance floor of
 * extract_answer(), score each by weight x agreement x relevance, then
 * select greedily with MMR so near-duplicates are not repeated (at most
 * @opts->max_sentences and @opts->max_words), best first, and renumber
 * citations so the merged "Sources:" list is consistent. When nothing is
 * left, one sentence naming the agents consulted. Deterministic for equal
 * input. Returns a malloc'ed string (NULL on OOM).
 */
char *extract_aggregate(const char *query, const ExtractProposal *props, size_t n,
                        const ExtractOptions *opts);

/**
 * extract_review() - the builtin's review of attached documents for one
 * agent: @hits' first @n_attached are passages of the attached documents,
 * the rest of the agent's knowledge base; @focus the agent's domain phrases
 * found in the documents, ", "-separated (its plugin's lexicon terms). The
 * findings are the attached sentences holding the most focus phrases (at
 * most @opts->max_sentences, default 4, at most 8), one per line:
 * "- [high|medium|low] <sentence> [n]." where the severity is only how many
 * focus phrases the sentence holds (3+, 2, 1) — not a judgement of risk —
 * followed, when a knowledge sentence shares one of its phrases, by
 * " Knowledge: <sentence> [m]."; then a "Sources:" list as
 * extract_answer()'s. Quoted verbatim. Returns a malloc'ed string (NULL on
 * OOM).
 */
char *extract_review(const char *focus, const KbHit *hits, size_t n_hits, size_t n_attached,
                     const ExtractOptions *opts);

/**
 * extract_review_merge() - the builtin aggregator of reviews: every
 * "- [severity] ..." finding line of @props (extract_review()'s format), the
 * same finding from several agents once, high first, each line naming its
 * agents ("- [high] (legal, finance) ..."), citations renumbered into one
 * "Sources:" list "[n] title, chunk k (agent)". Returns a malloc'ed string
 * (NULL on OOM).
 */
char *extract_review_merge(const ExtractProposal *props, size_t n);
