/* kb-pg.h — the PostgreSQL backend of the knowledge base, internal to
 * kb.c and kb-vocab.c, which dispatch to it when a Kb was opened with a
 * "postgresql:AGENT[:LANGUAGE]" locator instead of a database file. Every
 * agent's knowledge lives in the same three tables, keyed by agent name, so
 * any number of moad instances on one database share it. libpq is used
 * synchronously here, bounded by connect and statement timeouts; the
 * loop's searches go through kb-pg-async.c's non-blocking pool, which
 * shares the settings, the search statement and its ranking below. */
#pragma once

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "kb.h"
#include "strbuf.h"

#define KB_PG_PREFIX "postgresql:"
#define KB_PG_MAX_CONNINFO 4096u
#define KB_PG_DEFAULT_CONNECT_TIMEOUT_S 5u
#define KB_PG_DEFAULT_STATEMENT_TIMEOUT_MS 10000u
/* The search pool of each event loop (kb-pg-async.c): connections, and
 * searches waiting for one (more are refused as unavailable). */
#define KB_PG_DEFAULT_POOL_SIZE 4u
#define KB_PG_MAX_POOL_SIZE 64u
#define KB_PG_DEFAULT_POOL_QUEUE 256u
#define KB_PG_MAX_POOL_QUEUE 65536u

typedef struct KbPg KbPg;

/* Where the knowledge database is; set by the daemon from moad.yaml
 * (knowledge:), read by every kb_open() of a locator, on any thread. */
typedef struct KbPgConfig {
        const char *conninfo;       /* libpq key=value string, URI or "service=NAME" */
        const char *read_conninfo;  /* the search pool's, or NULL: conninfo */
        const char *password_file;  /* a file holding only the password, or NULL (PGPASSFILE/.pgpass) */
        unsigned connect_timeout_s; /* 0: default */
        unsigned statement_timeout_ms;
        unsigned pool_size;    /* 0: default; at most KB_PG_MAX_POOL_SIZE */
        unsigned pool_queue;   /* 0: default; at most KB_PG_MAX_POOL_QUEUE */
        unsigned prune_chunks; /* a base of at least this many chunks is searched from its
                                * rarest query terms (kb_pg_search_sql); 0: default,
                                * UINT_MAX: never */
} KbPgConfig;

/**
 * kb_pg_configure() - copy @cfg as the process-wide connection settings
 * (NULL: forget them). Later kb_open() calls use it; handles already open
 * keep their connection. Returns 0 or -ENOMEM.
 */
int kb_pg_configure(const KbPgConfig *cfg);

/** kb_pg_pool_size() - the configured connections of a loop's search pool. */
unsigned kb_pg_pool_size(void);
/** kb_pg_pool_queue() - the configured searches that may wait for one. */
unsigned kb_pg_pool_queue(void);

/** kb_pg_rank() - @pg's ranking helper (the SQLite tokenizer's bonus and snippets). */
struct KbRank *kb_pg_rank(KbPg *pg);

/** kb_pg_prune_chunks() - from how many chunks searches are pruned (UINT_MAX: never). */
unsigned kb_pg_prune_chunks(void);

/** kb_pg_statement_timeout_ms() - the configured statement_timeout. */
unsigned kb_pg_statement_timeout_ms(void);

/** kb_pg_is_locator() - whether @path is a "postgresql:" locator. */
int kb_pg_is_locator(const char *path);

/**
 * kb_pg_locator() - the locator of @agent's knowledge with text-search
 * configuration @language (NULL: english). Returns a malloc'ed string, or
 * NULL on OOM or an invalid name or language.
 */
char *kb_pg_locator(const char *agent, const char *language);

/** kb_pg_language_valid() - whether @language is a configuration moad uses. */
int kb_pg_language_valid(const char *language);

/* The backend's halves of the kb.h and kb-vocab.h functions; same contracts. */
int kb_pg_open(const char *locator, int read_only, KbPg **ret);
KbPg *kb_pg_close(KbPg *pg);
int kb_pg_ingest(KbPg *pg, const char *title, const char *source, const char *text, size_t len,
                 const KbChunks *chunks, const KbDocMeta *meta);
int kb_pg_delete(KbPg *pg, const char *title);
int kb_pg_list(KbPg *pg, int (*cb)(const KbDocInfo *doc, void *userdata), void *userdata);
int kb_pg_list_page(KbPg *pg, const char *after, unsigned limit,
                    int (*cb)(const KbDocInfo *doc, void *userdata), void *userdata);
int kb_pg_count(KbPg *pg);
int kb_pg_search(KbPg *pg, const char *expr, unsigned limit, int snippets, const char *const *titles,
                 size_t n_titles, KbHit **ret_hits, size_t *ret_n);
const char *kb_pg_locator_of(KbPg *pg);
/* 0 if the server answers (connecting again if needed), else -errno. */
int kb_pg_check(KbPg *pg);
uint64_t kb_pg_change_stamp(KbPg *pg);
int64_t kb_pg_chunk_count(KbPg *pg);
/* Calls @add for every (term, chunks holding it) of the agent's index. */
int kb_pg_vocab(KbPg *pg, int (*add)(void *userdata, const char *term, size_t len, uint32_t df),
                void *userdata);
int kb_pg_query_terms(KbPg *pg, const char *query, size_t max, char ***ret, size_t *ret_n);
int kb_pg_sample_chunks(KbPg *pg, size_t max, size_t max_chars, char ***ret, size_t *ret_n);
int kb_pg_document_chunks(KbPg *pg, const char *title, char ***ret_texts, char ***ret_headings,
                          size_t *ret_n);

/* ---- shared with kb-pg-async.c ---- */

/* What a connection needs: libpq's keyword/value arrays (NULL-terminated)
 * pointing into the copies held here, password included. */
typedef struct KbPgSettings {
        char *conninfo;
        char *password; /* wiped by kb_pg_settings_done() */
        char connect_timeout[16];
        unsigned connect_timeout_s;
        unsigned statement_timeout_ms;
        const char *keys[5];
        const char *values[5];
} KbPgSettings;

/**
 * kb_pg_settings() - fill in @ret (in place: do not copy it) with the
 * process-wide connection settings as they are now, the password read
 * from knowledge.password_file (never logged).
 * Returns 0, -ENOTCONN without a conninfo, or the password file's -errno
 * (logged).
 */
int kb_pg_settings(KbPgSettings *ret);
/**
 * kb_pg_pool_settings() - kb_pg_settings() for the search pool: with
 * knowledge.read_conninfo set, that instead of knowledge.conninfo (the
 * same password file).
 */
int kb_pg_pool_settings(KbPgSettings *ret);
/** kb_pg_settings_done() - free and wipe what kb_pg_settings() filled in. */
void kb_pg_settings_done(KbPgSettings *s);

/** kb_note_statement() - count one blocking statement of this thread (kb_thread_statements()). */
void kb_note_statement(void);

/** kb_pg_error() - a failed result's SQLSTATE (or the connection's state) as -errno. */
int kb_pg_error(const PGresult *res, PGconn *conn);
/** kb_pg_notice() - the notice processor: libpq's notices go to the debug log. */
void kb_pg_notice(void *arg, const char *message);

/* The statements creating the knowledge tables if they do not exist (one
 * transaction of the simple query protocol; an advisory lock orders
 * instances creating them at once). */
extern const char kb_pg_schema_sql[];

/* knowledge.search_prune_chunks: from this many chunks a search scores
 * only the chunks holding its rarest terms, the best KB_PG_PRUNED_CANDIDATES
 * of them by the idf of the rarest terms they hold, then ts_rank (the full
 * match set costs ~50 us a chunk). */
#define KB_PG_DEFAULT_PRUNE_CHUNKS 5000u
#define KB_PG_PRUNED_TERMS 4u         /* at most this many rare terms select the candidates */
#define KB_PG_PRUNED_RARE_SHARE 0.1   /* rare: in at most this share of the chunks */
#define KB_PG_PRUNED_CANDIDATES "500" /* scored exactly (SQL literal) */
#define KB_PG_PRUNED_SHORTLIST "2000" /* by ts_rank, then ordered by the rare terms' idf (SQL literal) */

/* The search statement's parameters ($1..$9) in text form. */
#define KB_PG_SEARCH_PARAMS 9
extern const char kb_pg_search_sql[];

/* One search's parameters, built from a kb_fts_query() expression. */
typedef struct KbPgSearchParams {
        char *expr;
        StrBuf terms, globs;
        StrBuf dfs, rare; /* pruned search: each term's chunks, the rare terms; empty: exact */
        size_t n_terms;
        unsigned limit;
        int snippets;
        char w_body[32], w_heading[32], want[16];
        const char *values[KB_PG_SEARCH_PARAMS]; /* borrowed from the above and the KbPg */
} KbPgSearchParams;

/**
 * kb_pg_search_params() - fill in @ret (in place: do not copy it) with the
 * parameters of kb_pg_search_sql for @expr on @pg's agent (borrowed from
 * @pg: it must outlive them). No search is
 * needed when n_terms or limit is 0. Returns 0 or -errno.
 */
int kb_pg_search_params(KbPg *pg, const char *expr, unsigned limit, int snippets, const char *const *titles,
                        size_t n_titles, KbPgSearchParams *ret);
/** kb_pg_search_params_done() - free what kb_pg_search_params() filled in. */
void kb_pg_search_params_done(KbPgSearchParams *p);
/**
 * kb_pg_search_result() - the hits of a kb_pg_search_sql result @res,
 * reranked with the SQLite backend's bonus and given its snippets (CPU
 * only, no database call). Returns 0 (hits in *@ret_hits, free with
 * kb_hits_free()) or -ENOMEM.
 */
int kb_pg_search_result(KbPg *pg, const PGresult *res, const KbPgSearchParams *p, KbHit **ret_hits,
                        size_t *ret_n);
