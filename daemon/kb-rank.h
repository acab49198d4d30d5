/* kb-rank.h — internal to the knowledge base (kb.c, kb-rank.c, and the
 * retrieval evaluation that tunes it): the FTS5 side of ranking. A KbRank
 * belongs to one SQLite connection: it registers the proximity function
 * and holds an instance of the index's tokenizer for snippets. */
#pragma once

#include <sqlite3.h>
#include <stddef.h>

/* The tokenizer of chunks_fts; queries and snippets tokenize alike. */
#define KB_TOKENIZER "porter", "unicode61", "remove_diacritics", "2"
#define KB_TOKENIZE_SQL "porter unicode61 remove_diacritics 2"

/*
 * KbRankParams - how kb_search ranks, tuned on the dev split of
 * tests/data/retrieval/policy-questions.tsv with tests/retrieval-eval.
 * @w_body, @w_heading: bm25 column weights (chunk text; heading path and
 * document title).
 * @candidates: how many of the best bm25 hits are reranked.
 * @coverage: bonus weight of the idf-weighted share of the query's terms a
 * chunk contains (in either column).
 * @proximity: bonus weight of the best @window-token span of the text: the
 * idf-weighted share of the query's terms found together in it (two
 * distinct terms at least).
 * A hit's score is -bm25 * (1 + coverage * share + proximity * span), so
 * the bonus is bounded by 1 + @coverage + @proximity.
 */
typedef struct KbRankParams {
        double w_body, w_heading;
        unsigned candidates;
        double coverage, proximity;
        unsigned window;
} KbRankParams;

#define KB_RANK_PARAMS_DEFAULT                                                                              \
        ((KbRankParams){.w_body = 1.0,                                                                      \
                        .w_heading = 2.0,                                                                   \
                        .candidates = 50,                                                                   \
                        .coverage = 0.5,                                                                    \
                        .proximity = 0.5,                                                                   \
                        .window = 12})

/* The parameters kb_search uses; tests and the evaluation may change them
 * (before searching). Not thread-safe to change while searching. */
extern KbRankParams kb_rank_params;

typedef struct KbRank KbRank;

/**
 * kb_rank_new() - register the "moa_rank" FTS5 function on @db and
 * create a tokenizer like the index's. Returns 0 and the object in @ret, or
 * -EIO (FTS5 or its porter tokenizer missing), -ENOMEM.
 */
int kb_rank_new(sqlite3 *db, KbRank **ret);

/** kb_rank_free() - release; call before closing the connection. NULL is a no-op; returns NULL. */
KbRank *kb_rank_free(KbRank *r);

/**
 * kb_rank_snippet() - the 16-token window of @text holding the most
 * distinct terms of the FTS5 expression @expr (as built by kb_fts_query),
 * matches marked [like this] as the index matches them (stemmed, case and
 * accents folded), "..." where the text goes on. Returns a malloc'ed
 * string, NULL on OOM.
 */
char *kb_rank_snippet(KbRank *r, const char *text, const char *expr);

/**
 * kb_rank_bonus() - moa_rank()'s bonus factor for a chunk whose text and
 * heading path (plus title) are given, rather than read from FTS5's
 * positions: 1 + @w_cov * coverage + @w_prox * proximity over @window
 * tokens of @text, each of @expr's quoted terms weighted by @idf (@n_idf
 * entries, in the order of @expr; missing ones weigh 1). A one-term
 * query gets 1. Used by the PostgreSQL backend, whose own rank has no
 * such bonus.
 */
double kb_rank_bonus(KbRank *r, const char *text, const char *heading, const char *expr, const double *idf,
                     size_t n_idf, double w_cov, double w_prox, unsigned window);
