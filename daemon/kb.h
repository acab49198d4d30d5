/* kb.h — one agent's knowledge base: documents cut along their sections
 * into overlapping chunks, indexed in a SQLite FTS5 table (stemmed body and
 * heading columns), ranked by weighted bm25 with a proximity rerank. One
 * database file per agent, so agents are isolated (own lock, own WAL,
 * removable with their plugin).
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
/* Structure limits: a heading path ("4. Binary packages > 4.5. Copyright")
 * is cut at KB_MAX_HEADING_BYTES, at most KB_MAX_HEADING_DEPTH levels are
 * kept, and headings past the first KB_MAX_SECTIONS of a document are
 * ordinary text (so a hostile document cannot explode the chunk count). */
#define KB_MAX_HEADING_BYTES 256u
#define KB_MAX_HEADING_DEPTH 8u
#define KB_MAX_SECTIONS 65536u

typedef struct KbHit {
        char *title;    /* document title (citation) */
        char *source;   /* where it came from (path or URL), may be "" */
        unsigned chunk; /* chunk index in the document, 0-based */
        double score;   /* relevance, > 0, larger is better (bm25 x rerank bonus) */
        char *snippet;  /* FTS5 snippet() with the matches, plain text */
        char *text;     /* the whole chunk */
        char *heading;  /* heading path of the chunk's section, "" if none */
} KbHit;

/* One chunk of a document as cut by kb_chunk_sections(). */
typedef struct KbChunk {
        size_t offset;  /* first byte in the text */
        size_t len;     /* bytes, > 0 */
        size_t heading; /* its heading path: KbChunks.headings + heading */
} KbChunk;

/* The chunks of a document and the heading paths they point into. */
typedef struct KbChunks {
        KbChunk *chunks;
        size_t n;
        char *headings; /* NUL-terminated paths back to back; "" at 0 */
        size_t headings_len;
} KbChunks;

typedef struct KbDocInfo {
        const char *title;
        const char *source;
        unsigned n_chunks;
        uint64_t bytes;
        int64_t ingested_at; /* unix seconds */
        const char *sha256;  /* of the original file, 64 lower-case hex digits; "" if unknown */
        int64_t file_bytes;  /* size of the original file, -1 if unknown */
        int64_t mtime;       /* the original file's mtime, unix seconds; -1 if unknown */
} KbDocInfo;

/* What a client says about the file a document came from (schema version
 * 3); kept with the document and listed, never interpreted. */
typedef struct KbDocMeta {
        const char *sha256; /* 64 lower-case hex digits, or NULL */
        int64_t file_bytes; /* -1: unknown */
        int64_t mtime;      /* -1: unknown */
} KbDocMeta;

#define KB_DOC_META_NONE ((KbDocMeta){.sha256 = NULL, .file_bytes = -1, .mtime = -1})

/**
 * kb_open() - open (creating if needed) the database at @path, set WAL and
 * create the schema, migrating an older database to version 3 in place
 * (from 1: documents and chunks kept, headings recomputed, index rebuilt;
 * from 2: the file columns added, empty for existing documents).
 * @read_only opens without creating or migrating (for searches): a missing
 * or older schema is -ENOMEDIUM (logged), a newer one -EPROTONOSUPPORT.
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

/**
 * kb_ingest_meta() - kb_ingest() that also stores @meta (may be NULL: all
 * unknown) with the document. -EINVAL also for a sha256 that is not 64
 * hex digits.
 */
int kb_ingest_meta(Kb *kb, const char *title, const char *source, const char *text, size_t len,
                   const KbChunkOpts *opts, const KbDocMeta *meta);

/** kb_sha256_valid() - whether @s is 64 hex digits (either case). */
int kb_sha256_valid(const char *s);

/** kb_has_document() - 1 if a document is titled @title, 0 if not, or -errno. */
int kb_has_document(Kb *kb, const char *title);

/** kb_delete() - remove a document. 0 if removed, -ENOENT if absent. */
int kb_delete(Kb *kb, const char *title);

/** kb_list() - call @cb for every document, ordered by title. Stops and
 * returns @cb's value if it returns non-zero. */
int kb_list(Kb *kb, int (*cb)(const KbDocInfo *doc, void *userdata), void *userdata);

/**
 * kb_list_page() - one page of kb_list(): at most @limit (> 0) documents
 * whose title sorts after @after (NULL or "": from the first), in byte
 * order (memcmp of the UTF-8, in both backends), so the last title of a
 * page is the @after of the next. Same callback rules and returns as
 * kb_list().
 */
int kb_list_page(Kb *kb, const char *after, unsigned limit, int (*cb)(const KbDocInfo *doc, void *userdata),
                 void *userdata);

/** kb_count() - number of documents, or -errno. Asks the database, so
 * never on the loop; the count is also published for kb_known_count(). */
int kb_count(Kb *kb);

/**
 * kb_known_count() - @kb's number of documents as last published, without
 * asking the database (for the loop): set by every kb_count() and after
 * every write through any handle of this process to the same database;
 * changes made by another process (PostgreSQL shared by several moad) are
 * seen when a thread of this one counts again. -1 while none was counted.
 */
int kb_known_count(Kb *kb);

/**
 * kb_search() - best @limit chunks for a free-text @query, by stemmed bm25
 * over chunk text and heading (weighted higher), the best 50 reranked by
 * how many of the query's terms they hold and how close together; ties by
 * chunk id. The query is never passed to FTS5 as syntax: it is split into
 * word tokens, each quoted, OR-ed. Hostile input (quotes, NEAR, AND,
 * column filters, non-UTF-8, empty, huge) returns 0 hits or the hits of
 * its words, never an error.
 * On success *ret_hits (free with kb_hits_free) and *ret_n are set.
 */
int kb_search(Kb *kb, const char *query, unsigned limit, KbHit **ret_hits, size_t *ret_n);

#define KB_MAX_TITLE_FILTERS 32u

/**
 * kb_search_in() - kb_search() restricted to the documents whose title
 * matches one of the @n_titles (at most KB_MAX_TITLE_FILTERS) SQLite GLOB
 * patterns @titles ("*", "?", "[...]", case-sensitive; a plain title matches
 * itself). @n_titles 0 searches everything. -EINVAL for too many.
 */
int kb_search_in(Kb *kb, const char *query, unsigned limit, const char *const *titles, size_t n_titles,
                 KbHit **ret_hits, size_t *ret_n);

/**
 * kb_search_texts() - kb_search() without snippets (each hit's snippet is
 * ""): for callers that only read the chunk texts, such as the router's
 * evidence, at about a third of the cost.
 */
int kb_search_texts(Kb *kb, const char *query, unsigned limit, KbHit **ret_hits, size_t *ret_n);

void kb_hits_free(KbHit *hits, size_t n);

/** kb_hit_clear() - free one hit's strings and zero it (the array stays). */
void kb_hit_clear(KbHit *h);

/**
 * kb_hits_snippets() - give each of the @n hits of @kb found for @query
 * without snippets (kb_search_start() with @snippets 0) the snippet a
 * search would have made: for a caller that keeps only some of the hits
 * it searched. Returns 0 or -ENOMEM.
 */
int kb_hits_snippets(Kb *kb, const char *query, KbHit *hits, size_t n);

struct sd_event;
typedef struct KbSearch KbSearch;

/* A search's end: @r 0 and the hits (the callee takes them: free with
 * kb_hits_free()), or -errno (kb_unavailable() tells which mean the
 * database did not answer). */
typedef void (*KbSearchDone)(void *userdata, int r, KbHit *hits, size_t n);

/**
 * kb_search_start() - kb_search_in() for a caller on event loop @e, which
 * must not wait for the database. An SQLite handle searches at once, as
 * kb_search_in() does, and returns 1 with the hits in *@ret_hits and
 * *@ret_n. A PostgreSQL handle sends the search on @e's pool of
 * non-blocking connections (kb-pg-async.h) and returns 0 with the search
 * in *@ret: @done runs later on @e's loop, exactly once, never from
 * inside this function, unless kb_search_cancel() is called first; @kb
 * must stay open until then. A query without words answers 1 with no
 * hits on both. Returns -errno without calling anything on failure (for
 * PostgreSQL also -ECONNREFUSED while the pool waits to reconnect, and
 * -EAGAIN when too many searches wait: both kb_unavailable()). With
 * @snippets 0 every snippet is "" (kb_hits_snippets() makes them later).
 */
int kb_search_start(Kb *kb, struct sd_event *e, const char *query, unsigned limit, int snippets,
                    const char *const *titles, size_t n_titles, KbSearchDone done, void *userdata,
                    KbSearch **ret, KbHit **ret_hits, size_t *ret_n);

/** kb_search_cancel() - a pending search's @done will not run (its answer is dropped); NULL is a no-op. */
void kb_search_cancel(KbSearch *s);

/**
 * kb_check_start() - kb_check() for a caller on event loop @e: an SQLite
 * handle answers 1 at once (a file has nothing to reach); a PostgreSQL
 * handle asks on @e's pool of non-blocking connections and returns 0 with
 * the request in *@ret: @done gets 0 (and no hits) or -errno later, as
 * for kb_search_start(), which it shares the rules, errors and
 * kb_search_cancel() with.
 */
int kb_check_start(Kb *kb, struct sd_event *e, KbSearchDone done, void *userdata, KbSearch **ret);

/**
 * kb_document_chunks() - the stored chunks of document @title in order:
 * their texts and heading paths, as two malloc'ed arrays of *@ret_n
 * malloc'ed strings (free each with strv_free_n()). For moving knowledge
 * between backends. Returns 0, -ENOENT if there is no such document, or
 * -errno.
 */
int kb_document_chunks(Kb *kb, const char *title, char ***ret_texts, char ***ret_headings, size_t *ret_n);

/**
 * kb_ingest_chunks() - add or replace the document @doc->title with these
 * @n chunks exactly as given (not cut again) and @doc's source, bytes,
 * sha256, file size and mtime (its ingest time becomes now), in one
 * transaction. For moving knowledge between backends. Returns @n, or
 * -errno (-EINVAL as kb_ingest_meta() for a bad title, sha256 or no chunks).
 */
int kb_ingest_chunks(Kb *kb, const KbDocInfo *doc, char *const *texts, char *const *headings, size_t n);

/**
 * kb_check() - whether @kb's store answers now: 0 for an SQLite handle; a
 * PostgreSQL handle runs one trivial statement, connecting again first if
 * its connection was lost. Returns 0 or -errno (see kb_unavailable()).
 */
int kb_check(Kb *kb);

/**
 * kb_thread_statements() - how many statements the calling thread has run
 * on knowledge databases and waited for: every SQLite statement of a
 * kb_open() handle (FTS5 searches included), every blocking PostgreSQL
 * call (the non-blocking pool's are not counted). For tests that the
 * event loop's thread asks the database nothing it should not.
 */
unsigned long kb_thread_statements(void);

/**
 * kb_unavailable() - whether the -errno @r of a kb_* call means that the
 * knowledge database could not be reached or did not answer in time
 * (PostgreSQL down, restarting, or over statement_timeout, or too many
 * searches already waiting for it): the caller
 * answers 503, not 500, and the next call tries again.
 */
int kb_unavailable(int r);

/**
 * kb_chunk_sections() - cut @text into sections at its headings (Markdown
 * ATX, setext/reStructuredText underlines, numbered or "§"/"Section" lines)
 * and each section into chunks per @opts, each chunk knowing its heading
 * path. No chunk straddles a heading. Fills @ret (release with
 * kb_chunks_done()). Returns 0 or -errno (-EINVAL for bad @opts).
 */
int kb_chunk_sections(const char *text, size_t len, const KbChunkOpts *opts, KbChunks *ret);

/** kb_chunks_done() - free what kb_chunk_sections() filled in and zero @c. */
void kb_chunks_done(KbChunks *c);

/**
 * kb_chunk() - kb_chunk_sections() without the headings, for tests and the
 * ingest progress display. Sets *ret_offsets and *ret_lens (malloc'ed
 * arrays of *ret_n entries). Returns 0 or -errno.
 */
int kb_chunk(const char *text, size_t len, const KbChunkOpts *opts, size_t **ret_offsets, size_t **ret_lens,
             size_t *ret_n);

/**
 * kb_fts_query() - build the safe FTS5 MATCH expression used by kb_search
 * from free text (exposed for tests). Returns a malloc'ed string, "" if the
 * text has no word tokens; NULL only on OOM.
 */
char *kb_fts_query(const char *text);
