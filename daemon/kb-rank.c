/* kb-rank.c — the FTS5 side of knowledge-base ranking: the moa_rank()
 * auxiliary function (column-weighted bm25, and a bonus for the coverage
 * and proximity of the query's terms in a chunk, from FTS5's own token
 * positions, so stemming applies), and snippets cut with the index's own
 * tokenizer. */
#include <math.h>

#include "kb-rank.h"
#include "kb-vocab.h"
#include "kb.h"
#include "log.h"
#include "util.h"

#define MAX_PHRASES 64u
/* Positions of one chunk looked at for proximity (a 1200-byte chunk has
 * about 200 tokens; larger chunk sizes are cut off here). */
#define MAX_POSITIONS 2048u
#define SNIPPET_WORDS 16u
#define SNIPPET_MAX_WORDS 4096u
#define MAX_TOKEN_BYTES 256u

KbRankParams kb_rank_params = KB_RANK_PARAMS_DEFAULT;

struct KbRank {
        fts5_api *api;
        fts5_tokenizer tok;
        Fts5Tokenizer *inst;
};

/* ---- moa_rank() ------------------------------------------------------------ */

#define BM25_K1 1.2
#define BM25_B 0.75

/* Per query (FTS5 keeps it per function and cursor): what bm25 needs, and
 * the last row's results, since the function is called twice per row. */
typedef struct RankQuery {
        int n;
        double idf[MAX_PHRASES];
        double idf_total;
        double avgdl;
        sqlite3_int64 row;
        int have_row;
        double bm25, bonus;
} RankQuery;

static int count_row(const Fts5ExtensionApi *api, Fts5Context *fts, void *userdata) {
        (*(sqlite3_int64 *) userdata)++;
        return SQLITE_OK;
}

/* As FTS5's bm25 computes it: idf per phrase (clamped to 1e-6 when the
 * phrase is in more than half of the rows), average row length in tokens. */
static RankQuery *rank_query(const Fts5ExtensionApi *api, Fts5Context *fts, int *ret_rc) {
        RankQuery *q = api->xGetAuxdata(fts, 0);
        if (q)
                return q;
        q = sqlite3_malloc(sizeof(RankQuery));
        if (!q) {
                *ret_rc = SQLITE_NOMEM;
                return NULL;
        }
        *q = (RankQuery){.n = MIN(api->xPhraseCount(fts), (int) MAX_PHRASES)};
        sqlite3_int64 rows = 0, tokens = 0;
        int rc = api->xRowCount(fts, &rows);
        if (rc == SQLITE_OK)
                rc = api->xColumnTotalSize(fts, -1, &tokens);
        q->avgdl = rows > 0 ? (double) tokens / (double) rows : 1.0;
        if (!(q->avgdl > 0))
                q->avgdl = 1.0;
        for (int i = 0; rc == SQLITE_OK && i < q->n; i++) {
                sqlite3_int64 hits = 0;
                rc = api->xQueryPhrase(fts, i, &hits, count_row);
                double idf = log(((double) (rows - hits) + 0.5) / ((double) hits + 0.5));
                q->idf[i] = idf > 1e-6 ? idf : 1e-6;
                q->idf_total += q->idf[i];
        }
        if (rc == SQLITE_OK)
                rc = api->xSetAuxdata(fts, q, sqlite3_free);
        else
                sqlite3_free(q);
        *ret_rc = rc;
        return rc == SQLITE_OK ? q : NULL;
}

/* Computes the current row's bm25 (weighted by column, as FTS5's
 * bm25(tbl, w_text, w_heading)) and bonus into @q. */
static int rank_row(const Fts5ExtensionApi *api, Fts5Context *fts, RankQuery *q, const double *w_col,
                    double w_cov, double w_prox, int window) {
        double freq[MAX_PHRASES] = {0};
        int pos[MAX_POSITIONS], phr[MAX_POSITIONS], n_pos = 0, sorted = 1, n_inst = 0, n_tok = 0;
        uint64_t seen = 0;

        int rc = api->xInstCount(fts, &n_inst);
        for (int i = 0; rc == SQLITE_OK && i < n_inst; i++) {
                int p, c, o;
                rc = api->xInst(fts, i, &p, &c, &o);
                if (rc != SQLITE_OK || p < 0 || p >= q->n)
                        continue;
                freq[p] += w_col[c == 0 ? 0 : 1];
                seen |= UINT64_C(1) << p;
                if (c == 0 && n_pos < (int) MAX_POSITIONS) {
                        /* FTS5 gives instances by column, then offset */
                        sorted &= n_pos == 0 || pos[n_pos - 1] <= o;
                        pos[n_pos] = o;
                        phr[n_pos++] = p;
                }
        }
        if (rc == SQLITE_OK)
                rc = api->xColumnSize(fts, -1, &n_tok);
        if (rc != SQLITE_OK)
                return rc;

        double score = 0, d = (double) n_tok;
        for (int i = 0; i < q->n; i++)
                score += q->idf[i] * (freq[i] * (BM25_K1 + 1.0)) /
                         (freq[i] + BM25_K1 * (1 - BM25_B + BM25_B * d / q->avgdl));

        /* Coverage: the idf-weighted share of the phrases present. */
        double cov = 0;
        for (int i = 0; i < q->n; i++)
                if (seen & (UINT64_C(1) << i))
                        cov += q->idf[i];
        cov = q->idf_total > 0 ? cov / q->idf_total : 0;

        /* Proximity: a sliding window over the text's positions, the best
         * idf weight of two or more distinct phrases within @window tokens. */
        double best = 0, weight = 0;
        unsigned count[MAX_PHRASES] = {0};
        int distinct = 0;
        if (!sorted) /* never seen; then proximity is simply not counted */
                n_pos = 0;
        for (int lo = 0, hi = 0; hi < n_pos; hi++) {
                if (count[phr[hi]]++ == 0) {
                        weight += q->idf[phr[hi]];
                        distinct++;
                }
                while (pos[hi] - pos[lo] >= window) {
                        if (--count[phr[lo]] == 0) {
                                weight -= q->idf[phr[lo]];
                                distinct--;
                        }
                        lo++;
                }
                if (distinct >= 2 && weight > best)
                        best = weight;
        }
        double prox = q->idf_total > 0 ? best / q->idf_total : 0;

        q->bm25 = score;
        q->bonus = q->n < 2 ? 1.0 : 1.0 + w_cov * CLAMP(cov, 0.0, 1.0) + w_prox * CLAMP(prox, 0.0, 1.0);
        q->row = api->xRowid(fts);
        q->have_row = 1;
        return SQLITE_OK;
}

/*
 * moa_rank(chunks_fts, what, w_text, w_heading, coverage, proximity,
 * window) - with @what 0, the row's bm25 score, exactly as FTS5's
 * bm25(chunks_fts, w_text, w_heading) but positive (larger is better);
 * with @what 1, its rank bonus factor 1 + coverage * C + proximity * P:
 * C is the idf-weighted share of the query's phrases found in the row
 * (any column), P the largest idf-weighted share found together within
 * @window consecutive tokens of the text column, counted only with at
 * least two distinct phrases in it. C and P are in [0, 1]; a one-phrase
 * query gets 1. One function for both, so the per-query data (idf, which
 * costs a pass over each phrase's rows) is computed once, and the row's
 * once. Deterministic: a function of the row's positions and the index.
 */
static void rank_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int n_val,
                    sqlite3_value **val) {
        int rc = SQLITE_OK;

        if (n_val != 6) {
                sqlite3_result_error(ctx, "moa_rank: wrong number of arguments", -1);
                return;
        }
        RankQuery *q = rank_query(api, fts, &rc);
        if (!q) {
                sqlite3_result_error_code(ctx, rc);
                return;
        }
        if (!q->have_row || q->row != api->xRowid(fts)) {
                double w_col[2] = {sqlite3_value_double(val[1]), sqlite3_value_double(val[2])};
                int window = sqlite3_value_int(val[5]);
                rc = rank_row(api, fts, q, w_col, sqlite3_value_double(val[3]), sqlite3_value_double(val[4]),
                              MAX(window, 1));
                if (rc != SQLITE_OK) {
                        sqlite3_result_error_code(ctx, rc);
                        return;
                }
        }
        sqlite3_result_double(ctx, sqlite3_value_int(val[0]) == 0 ? q->bm25 : q->bonus);
}

/* ---- setup ------------------------------------------------------------------ */

/** kb_rank_new() - see kb-rank.h. */
int kb_rank_new(sqlite3 *db, KbRank **ret) {
        static const char *const args[] = {KB_TOKENIZER};
        void *tok_data = NULL;

        if (!db || !ret)
                return -EINVAL;
        KbRank *r = calloc(1, sizeof(KbRank));
        if (!r)
                return -ENOMEM;
        r->api = kb_fts5_api(db);
        if (!r->api || r->api->iVersion < 2) {
                log_error("kb: SQLite has no FTS5");
                free(r);
                return -EIO;
        }
        if (r->api->xFindTokenizer(r->api, args[0], &tok_data, &r->tok) != SQLITE_OK ||
            r->tok.xCreate(tok_data, (const char **) args + 1, (int) ELEMENTSOF(args) - 1, &r->inst) !=
                    SQLITE_OK) {
                log_error("kb: FTS5 has no '%s' tokenizer", KB_TOKENIZE_SQL);
                free(r);
                return -EIO;
        }
        if (r->api->xCreateFunction(r->api, "moa_rank", NULL, rank_fn, NULL) != SQLITE_OK) {
                r->tok.xDelete(r->inst);
                free(r);
                return -EIO;
        }
        *ret = r;
        return 0;
}

/** kb_rank_free() - see kb-rank.h. */
KbRank *kb_rank_free(KbRank *r) {
        if (!r)
                return NULL;
        if (r->inst)
                r->tok.xDelete(r->inst);
        free(r);
        return NULL;
}

/* ---- snippets --------------------------------------------------------------- */

typedef struct Token {
        size_t b, e; /* byte span in the text */
        int term;    /* index of the query term it matches, -1 if none */
} Token;

typedef struct Terms {
        char s[KB_MAX_QUERY_TERMS][MAX_TOKEN_BYTES];
        int len[KB_MAX_QUERY_TERMS];
        int term[KB_MAX_QUERY_TERMS]; /* the quoted term each token came from */
        int n, current;
} Terms;

static int term_token(void *userdata, int flags, const char *tok, int n, int b, int e) {
        Terms *t = userdata;
        if (t->n >= (int) KB_MAX_QUERY_TERMS || n <= 0 || n > (int) MAX_TOKEN_BYTES)
                return SQLITE_OK;
        memcpy(t->s[t->n], tok, (size_t) n);
        t->len[t->n] = n;
        t->term[t->n++] = t->current;
        return SQLITE_OK;
}

typedef struct Words {
        const Terms *terms;
        Token *w;
        size_t n;
} Words;

static int text_token(void *userdata, int flags, const char *tok, int n, int b, int e) {
        Words *ws = userdata;
        if (ws->n >= SNIPPET_MAX_WORDS)
                return SQLITE_DONE;
        if (flags & FTS5_TOKEN_COLOCATED)
                return SQLITE_OK;
        Token *t = &ws->w[ws->n++];
        *t = (Token){.b = (size_t) b, .e = (size_t) e, .term = -1};
        for (int k = 0; k < ws->terms->n; k++)
                if (ws->terms->len[k] == n && memcmp(ws->terms->s[k], tok, (size_t) n) == 0) {
                        t->term = ws->terms->term[k];
                        break;
                }
        return SQLITE_OK;
}

/** kb_rank_snippet() - see kb-rank.h. Done in C with the tokenizer rather
 * than with FTS5's snippet(), which re-reads and re-tokenises every hit and
 * cost two thirds of a search. */
char *kb_rank_snippet(KbRank *r, const char *text, const char *expr) {
        _cleanup_free_ Terms *terms = calloc(1, sizeof(Terms));
        _cleanup_free_ Token *w = malloc(sizeof(Token) * SNIPPET_MAX_WORDS);
        size_t len = strlen(text), best = 0, end, o = 0;
        int best_count = -1, n_terms = 0;
        char *out;

        if (!terms || !w)
                return NULL;
        for (const char *p = expr; n_terms < (int) KB_MAX_QUERY_TERMS && (p = strchr(p, '"'));) {
                const char *q = strchr(p + 1, '"');
                if (!q)
                        break;
                terms->current = n_terms++;
                (void) r->tok.xTokenize(r->inst, terms, FTS5_TOKENIZE_QUERY, p + 1, (int) (q - p - 1),
                                        term_token);
                p = q + 1;
        }
        Words ws = {.terms = terms, .w = w};
        if (len > INT32_MAX)
                len = INT32_MAX;
        (void) r->tok.xTokenize(r->inst, &ws, FTS5_TOKENIZE_DOCUMENT, text, (int) len, text_token);
        size_t n = ws.n;
        if (n == 0)
                return strdup("");

        for (size_t start = 0; start + SNIPPET_WORDS <= MAX(n, (size_t) SNIPPET_WORDS); start++) {
                uint32_t seen = 0;
                for (size_t k = start; k < MIN(n, start + SNIPPET_WORDS); k++)
                        if (w[k].term >= 0)
                                seen |= 1u << w[k].term;
                if (__builtin_popcount(seen) > best_count) {
                        best_count = __builtin_popcount(seen);
                        best = start;
                }
                if (start + SNIPPET_WORDS >= n)
                        break;
        }
        end = MIN(n, best + SNIPPET_WORDS);

        out = malloc((w[end - 1].e - w[best].b) + 2 * SNIPPET_WORDS + 7);
        if (!out)
                return NULL;
        if (best > 0)
                o += (size_t) sprintf(out, "...");
        for (size_t k = best; k < end; k++) {
                size_t gap_end = k + 1 < end ? w[k + 1].b : w[k].e;
                if (w[k].term >= 0)
                        out[o++] = '[';
                memcpy(out + o, text + w[k].b, w[k].e - w[k].b);
                o += w[k].e - w[k].b;
                if (w[k].term >= 0)
                        out[o++] = ']';
                memcpy(out + o, text + w[k].e, gap_end - w[k].e);
                o += gap_end - w[k].e;
        }
        if (end < n)
                o += (size_t) sprintf(out + o, "...");
        out[o] = 0;
        return out;
}

/* ---- the bonus, from chunk text (for backends without FTS5 positions) ------ */

/* Marks in @seen which query terms the tokens of @text hold; with @pos,
 * also lists the text's matching token positions (up to MAX_POSITIONS). */
static void bonus_scan(KbRank *r, const Terms *terms, const char *text, uint64_t *seen, int *pos, int *phr,
                       int *ret_n_pos) {
        _cleanup_free_ Token *w = malloc(sizeof(Token) * SNIPPET_MAX_WORDS);
        Words ws = {.terms = terms, .w = w};
        size_t len = strlen(text);
        int n_pos = 0;

        if (!w)
                return;
        (void) r->tok.xTokenize(r->inst, &ws, FTS5_TOKENIZE_DOCUMENT, text,
                                (int) MIN(len, (size_t) INT32_MAX), text_token);
        for (size_t k = 0; k < ws.n; k++) {
                if (w[k].term < 0)
                        continue;
                *seen |= UINT64_C(1) << w[k].term;
                if (pos && n_pos < (int) MAX_POSITIONS) {
                        pos[n_pos] = (int) k;
                        phr[n_pos++] = w[k].term;
                }
        }
        if (ret_n_pos)
                *ret_n_pos = n_pos;
}

/** kb_rank_bonus() - see kb-rank.h: moa_rank()'s bonus (what 1) computed
 * from the texts with the same tokenizer, for the PostgreSQL backend. */
double kb_rank_bonus(KbRank *r, const char *text, const char *heading, const char *expr, const double *idf,
                     size_t n_idf, double w_cov, double w_prox, unsigned window) {
        _cleanup_free_ Terms *terms = calloc(1, sizeof(Terms));
        _cleanup_free_ int *pos = malloc(sizeof(int) * MAX_POSITIONS);
        _cleanup_free_ int *phr = malloc(sizeof(int) * MAX_POSITIONS);
        int n = 0, n_pos = 0;
        uint64_t seen = 0;

        if (!r || !terms || !pos || !phr || !text || !expr)
                return 1.0;
        for (const char *p = expr; n < (int) MIN(KB_MAX_QUERY_TERMS, MAX_PHRASES) && (p = strchr(p, '"'));) {
                const char *q = strchr(p + 1, '"');
                if (!q)
                        break;
                terms->current = n++;
                (void) r->tok.xTokenize(r->inst, terms, FTS5_TOKENIZE_QUERY, p + 1, (int) (q - p - 1),
                                        term_token);
                p = q + 1;
        }
        if (n < 2)
                return 1.0;
        bonus_scan(r, terms, text, &seen, pos, phr, &n_pos);
        if (heading)
                bonus_scan(r, terms, heading, &seen, NULL, NULL, NULL);

        double total = 0, cov = 0, best = 0, weight = 0;
        unsigned count[MAX_PHRASES] = {0};
        int distinct = 0;
        for (int i = 0; i < n; i++) {
                double x = (size_t) i < n_idf ? idf[i] : 1.0;
                total += x;
                if (seen & (UINT64_C(1) << i))
                        cov += x;
        }
        for (int lo = 0, hi = 0; hi < n_pos; hi++) {
                double x = (size_t) phr[hi] < n_idf ? idf[phr[hi]] : 1.0;
                if (count[phr[hi]]++ == 0) {
                        weight += x;
                        distinct++;
                }
                while (pos[hi] - pos[lo] >= (int) MAX(window, 1u)) {
                        double y = (size_t) phr[lo] < n_idf ? idf[phr[lo]] : 1.0;
                        if (--count[phr[lo]] == 0) {
                                weight -= y;
                                distinct--;
                        }
                        lo++;
                }
                if (distinct >= 2 && weight > best)
                        best = weight;
        }
        if (!(total > 0))
                return 1.0;
        return 1.0 + w_cov * CLAMP(cov / total, 0.0, 1.0) + w_prox * CLAMP(best / total, 0.0, 1.0);
}
