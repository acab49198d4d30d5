/* kb.h — one agent's knowledge base: documents chunked with overlap into a
 * SQLite FTS5 table, ranked by bm25. One database file per agent, so agents
 * are isolated (own lock, own WAL, removable with their plugin).
 *
 * A Kb handle is one SQLite connection and is used from one thread at a time:
 * the event loop has its own handle for searches; ingest workers open their
 * own (WAL lets readers proceed while a writer commits). */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct Kb Kb;

/* Chunking parameters (in bytes of UTF-8 text; cut on whitespace, never
 * inside a UTF-8 sequence). */
typedef struct KbChunkOpts {
        size_t chunk_size; /* target chunk length, default 1200 */
        size_t overlap;    /* bytes repeated from the previous chunk, default 200 */
} KbChunkOpts;

#define KB_CHUNK_OPTS_DEFAULT ((KbChunkOpts){.chunk_size = 1200, .overlap = 200})

/* Hard limits on untrusted input. */
#define KB_MAX_DOCUMENT_BYTES (16u * 1024u * 1024u)
#define KB_MAX_TITLE_BYTES 512u
#define KB_MAX_QUERY_BYTES 4096u
#define KB_MAX_QUERY_TERMS 32u

typedef struct KbHit {
        char *title;    /* document title (citation) */
        char *source;   /* where it came from (path or URL), may be "" */
        unsigned chunk; /* chunk index in the document, 0-based */
        double score;   /* relevance, > 0, larger is better (negated bm25) */
        char *snippet;  /* FTS5 snippet() with the matches, plain text */
        char *text;     /* the whole chunk */
} KbHit;

typedef struct KbDocInfo {
        const char *title;
        const char *source;
        unsigned n_chunks;
        uint64_t bytes;
        int64_t ingested_at; /* unix seconds */
} KbDocInfo;

/**
 * kb_open() - open (creating if needed) the database at @path, set WAL and
 * create the schema. @read_only opens without creating (for searches).
 * Returns 0 and a handle in @ret, or -errno / -EIO on SQLite failure.
 */
int kb_open(const char *path, int read_only, Kb **ret);

/** kb_close() - close the handle; NULL is a no-op. Returns NULL. */
Kb *kb_close(Kb *kb);

/**
 * kb_ingest() - add or replace (same @title) one document, in one
 * transaction: a crash leaves either the old or the new version.
 * @text need not be NUL-terminated and need not be valid UTF-8 (invalid
 * bytes are replaced). Returns the number of chunks (>= 0) or -errno:
 * -EINVAL empty title/text, -E2BIG over KB_MAX_DOCUMENT_BYTES.
 */
int kb_ingest(Kb *kb, const char *title, const char *source, const char *text, size_t len,
              const KbChunkOpts *opts);

/** kb_delete() - remove a document. 0 if removed, -ENOENT if absent. */
int kb_delete(Kb *kb, const char *title);

/** kb_list() - call @cb for every document, ordered by title. Stops and
 * returns @cb's value if it returns non-zero. */
int kb_list(Kb *kb, int (*cb)(const KbDocInfo *doc, void *userdata), void *userdata);

/** kb_count() - number of documents, or -errno. */
int kb_count(Kb *kb);

/**
 * kb_search() - best @limit chunks for a free-text @query. The query is
 * never passed to FTS5 as syntax: it is split into word tokens, each quoted,
 * OR-ed. Hostile input (quotes, NEAR, AND, column filters, non-UTF-8, empty,
 * huge) returns 0 hits or the hits of its words, never an error.
 * On success *ret_hits (free with kb_hits_free) and *ret_n are set.
 */
int kb_search(Kb *kb, const char *query, unsigned limit, KbHit **ret_hits, size_t *ret_n);

/**
 * kb_search_texts() - kb_search() without snippets (each hit's snippet is
 * ""): for callers that only read the chunk texts, such as the router's
 * evidence, at about a third of the cost.
 */
int kb_search_texts(Kb *kb, const char *query, unsigned limit, KbHit **ret_hits, size_t *ret_n);

void kb_hits_free(KbHit *hits, size_t n);

/**
 * kb_chunk() - split @text into chunks per @opts. Exposed for tests and for
 * the ingest progress display. Sets *ret_offsets and *ret_lens (malloc'ed arrays
 * of *ret_n entries). Returns 0 or -errno.
 */
int kb_chunk(const char *text, size_t len, const KbChunkOpts *opts, size_t **ret_offsets, size_t **ret_lens,
             size_t *ret_n);

/**
 * kb_fts_query() - build the safe FTS5 MATCH expression used by kb_search
 * from free text (exposed for tests). Returns a malloc'ed string, "" if the
 * text has no word tokens; NULL only on OOM.
 */
char *kb_fts_query(const char *text);
