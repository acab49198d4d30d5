/* kb-vocab.h — a knowledge base's vocabulary, for the router's evidence:
 * how many chunks hold each indexed term (read from FTS5's own index with
 * fts5vocab, kept in memory), and a query's terms as the index's tokenizer
 * makes them, so both sides compare the same stems. Internal to the daemon. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kb.h"

#define KB_VOCAB_MAX_TERMS 100000000u /* distinct terms read from one index */

typedef struct KbVocab KbVocab;

/**
 * kb_vocab_load() - read the document frequency of every term of @kb's
 * index and the chunk count through @kb's connection (one scan of the
 * index: ~50 ms for 10 000 chunks). Returns 0 and a new table in *@ret,
 * or -errno.
 */
int kb_vocab_load(Kb *kb, KbVocab **ret);

/**
 * kb_vocab_load_file() - the same through a read-only connection of its
 * own to the database file @path, so that any thread may call it while
 * the loop uses the Kb handle; the table is stamped @stamp (the
 * kb_change_stamp() taken before). Returns 0 and a new table, or -errno.
 */
int kb_vocab_load_file(const char *path, uint64_t stamp, KbVocab **ret);

/**
 * kb_vocab_reload() - kb_vocab_load() only if @kb's content changed: reads
 * kb_change_stamp() and, when it is not @known, the statistics. For a
 * thread that owns @kb (the change stamp is a database read too).
 * Returns 0 with a new table in *@ret, or 0 and NULL when the stamp is
 * @known, or -errno (-ECONNREFUSED: PostgreSQL did not answer).
 */
int kb_vocab_reload(Kb *kb, uint64_t known, KbVocab **ret);

/** kb_file() - @kb's database file, NULL for an in-memory database. */
const char *kb_file(Kb *kb);

/** kb_chunk_count() - the number of chunks in @kb, -1 on error. */
int64_t kb_chunk_count(Kb *kb);

/** kb_vocab_ref() - one more reference to @v (a table never changes once read;
 * references may be taken and dropped on any thread). Returns @v. */
KbVocab *kb_vocab_ref(KbVocab *v);

/** kb_vocab_free() - drop a reference, freeing at the last; NULL is a no-op. Returns NULL. */
KbVocab *kb_vocab_free(KbVocab *v);

/** kb_vocab_chunks() - the number of chunks when the table was read. */
uint32_t kb_vocab_chunks(const KbVocab *v);

/** kb_vocab_df() - how many chunks hold @term (0 if none; NULL @v: 0). */
uint32_t kb_vocab_df(const KbVocab *v, const char *term);

/** kb_vocab_stamp() - the table's change stamp (see kb_change_stamp()). */
uint64_t kb_vocab_stamp(const KbVocab *v);

/**
 * kb_change_stamp() - a fingerprint of @kb's indexed content (of the FTS5
 * index's structure record): it changes whenever the content changed,
 * through any connection, and is the same for every connection to the
 * same content, so a reload can tell that a table read before still
 * holds. Returns 0 on error.
 */
uint64_t kb_change_stamp(Kb *kb);

/**
 * kb_query_terms() - the distinct terms of @query as @kb's index tokenizes
 * text, function words of the four languages left out (at most @max, first
 * occurrences first; the query is read up to KB_MAX_QUERY_BYTES). *@ret is
 * a malloc'ed array of malloc'ed strings (free with strv_free_n()).
 * Returns 0 or -errno.
 */
int kb_query_terms(Kb *kb, const char *query, size_t max, char ***ret, size_t *ret_n);

struct sqlite3;
struct fts5_api;

/* The FTS5 tokenizer of an SQLite handle's index, read once when the
 * handle is opened, so that tokenizing a query asks the database nothing
 * (kb_query_terms() runs on the loop). Filled in place: argv points into
 * spec. */
typedef struct KbTokenizer {
        struct fts5_api *api; /* NULL: FTS5 unavailable */
        char spec[256];       /* the tokenize= option's words */
        const char *argv[8];
        size_t argc;
} KbTokenizer;

/** kb_tokenizer_read() - fill @ret (in place) from @db's schema. Returns 0 or -errno. */
int kb_tokenizer_read(struct sqlite3 *db, KbTokenizer *ret);

/** kb_tokenizer() - the handle's tokenizer as read at kb_open() (defined in kb.c). */
const KbTokenizer *kb_tokenizer(Kb *kb);

/** kb_fts5_api() - the FTS5 C API of @db (SELECT fts5(?1)), NULL if absent. */
struct fts5_api *kb_fts5_api(struct sqlite3 *db);

/** kb_sqlite() - the handle's connection, for kb-vocab.c (defined in kb.c);
 * NULL for a PostgreSQL handle. */
struct sqlite3 *kb_sqlite(Kb *kb);

struct KbPg;
/** kb_pg() - the handle's PostgreSQL backend (kb-pg.h), NULL for SQLite. */
struct KbPg *kb_pg(Kb *kb);

/**
 * kb_sample_chunks() - up to @max chunks spread evenly over @kb (one
 * index seek per chunk, at evenly spaced ids; every chunk when it has
 * fewer), each as "title\ntext" with the text cut to @max_chars characters, for
 * training the router. *@ret is a malloc'ed array of malloc'ed strings
 * (free with strv_free_n()). Returns 0 or -errno.
 */
int kb_sample_chunks(Kb *kb, size_t max, size_t max_chars, char ***ret, size_t *ret_n);
