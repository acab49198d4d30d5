/* kb.c — one agent's knowledge base in its own SQLite database: documents,
 * their chunks (cut by kb-chunk.c) with their section headings, and an
 * external-content FTS5 index over chunk text and heading, ranked by
 * weighted bm25 and reranked by kb-rank.c's proximity bonus. Owns the
 * schema and its migration, UTF-8 sanitising, the translation of free text
 * into a safe FTS5 MATCH expression, and search. */
#include <ctype.h>
#include <sqlite3.h>

#include "kb-chunk.h"
#include "kb-pg-async.h"
#include "kb-pg.h"
#include "kb-rank.h"
#include "kb-stats.h"
#include "kb-text.h"
#include "kb-vocab.h"
#include "kb.h"
#include "log.h"
#include "spelling.h"
#include "util.h"

#define KB_SCHEMA_VERSION 3
#define KB_SCHEMA_VERSION_SQL "3" /* the same, for PRAGMA user_version */
#define KB_BUSY_TIMEOUT_MS 5000
#define KB_MAX_SOURCE_BYTES 4096u
#define KB_MAX_TOKEN_BYTES 128u
#define KB_MAX_HITS 100u

/* A Kb is either an SQLite database (db) or, opened with a "postgresql:"
 * locator, a PostgreSQL connection (pg, kb-pg.c): every public function
 * below hands a pg handle to its kb_pg_* half after the checks and the
 * work both share (UTF-8 sanitising, chunking, the query's terms). */
struct Kb {
        KbPg *pg;
        sqlite3 *db;
        int read_only;
        KbRank *rank;
        /* Searches run on the request path: prepared once, reset after use. */
        sqlite3_stmt *search;
        sqlite3_stmt *fetch;
        /* The search's read transaction: sqlite3_exec() would parse
         * "BEGIN" and "COMMIT" again on every search. */
        sqlite3_stmt *begin;
        sqlite3_stmt *commit;
        sqlite3_stmt *any_chunk;
        KbTokenizer tok; /* SQLite: the index's tokenizer, read at open */
        KbStats *stats;  /* what the loop knows of this database, shared by its handles */
};

/* Test hook (not in kb.h): when non-zero, kb_ingest() calls _exit(77) after
 * inserting this many chunks, i.e. in the middle of its transaction. Tests
 * declare it extern to prove crash consistency. */
unsigned kb_test_crash_after_chunks = 0;

/* Statements this thread ran on a knowledge database and waited for (see
 * kb_thread_statements()). */
static _Thread_local unsigned long thread_statements;

void kb_note_statement(void) {
        thread_statements++;
}

unsigned long kb_thread_statements(void) {
        return thread_statements;
}

static int on_sqlite_statement(unsigned type, void *ctx, void *p, void *x) {
        thread_statements++;
        return 0;
}

static int errno_from_sqlite(int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
        /* a WAL reader that found every read lock taken for about 10 s */
        case SQLITE_PROTOCOL:
                return -EBUSY;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CANTOPEN:
                return -ENOENT;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        default:
                return -EIO;
        }
}

static void sqlite3_finalizep(sqlite3_stmt **s) {
        if (*s)
                sqlite3_finalize(*s);
}
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

/* For statements cached in the Kb: reset instead of finalize. */
static void sqlite3_resetp(sqlite3_stmt **s) {
        if (*s) {
                sqlite3_reset(*s);
                sqlite3_clear_bindings(*s);
        }
}
#define _reset_stmt_ _cleanup_(sqlite3_resetp)

static int kb_prepare(Kb *kb, const char *sql, sqlite3_stmt **ret) {
        int rc = sqlite3_prepare_v2(kb->db, sql, -1, ret, NULL);
        if (rc != SQLITE_OK) {
                log_debug("kb: prepare failed: %s", sqlite3_errmsg(kb->db));
                return errno_from_sqlite(rc);
        }
        return 0;
}

static int kb_exec(Kb *kb, const char *sql) {
        char *err = NULL;
        int rc = sqlite3_exec(kb->db, sql, NULL, NULL, &err);
        if (rc != SQLITE_OK) {
                log_debug("kb: '%s' failed: %s", sql, err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                return errno_from_sqlite(rc);
        }
        return 0;
}

/* Runs @sql (no result rows) through the statement cached in *@cache,
 * prepared at the first call and kept until kb_close(). */
static int kb_exec_cached(Kb *kb, sqlite3_stmt **cache, const char *sql) {
        if (!*cache) {
                int rc = sqlite3_prepare_v3(kb->db, sql, -1, SQLITE_PREPARE_PERSISTENT, cache, NULL);
                if (rc != SQLITE_OK) {
                        log_debug("kb: prepare failed: %s", sqlite3_errmsg(kb->db));
                        return errno_from_sqlite(rc);
                }
        }
        int rc = sqlite3_step(*cache);
        sqlite3_reset(*cache);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
                log_debug("kb: '%s' failed: %s", sql, sqlite3_errmsg(kb->db));
                return errno_from_sqlite(rc) ?: -EIO;
        }
        return 0;
}

/* ---- UTF-8 ------------------------------------------------------------- */

static int is_continuation(unsigned char c) {
        return (c & 0xC0) == 0x80;
}

/* ---- FTS5 query building ---------------------------------------------- */

typedef struct Term {
        const char *s;
        size_t n;
        int stop;
} Term;

/**
 * kb_fts_query() - turn free text into a safe FTS5 expression: every word
 * token (ASCII letters folded to lower case) becomes a double-quoted string,
 * duplicates dropped, at most KB_MAX_QUERY_TERMS, OR-joined. English
 * stop-words are dropped unless nothing else is left. Since quotes are word
 * separators no term can contain one, so no FTS5 operator, column filter,
 * prefix or NEAR group can ever be formed. Returns a malloc'ed string, ""
 * when the text has no words, NULL on OOM.
 */
char *kb_fts_query(const char *text) {
        if (!text)
                return strdup("");

        size_t len = strlen(text);
        _cleanup_free_ char *clean = kb_utf8_sanitize(text, len, &len);
        if (!clean)
                return NULL;

        const unsigned char *s = (const unsigned char *) clean;
        Term terms[KB_MAX_QUERY_TERMS * 4];
        char variants[KB_MAX_QUERY_TERMS][40];
        size_t n_terms = 0, n_content = 0, n_variants = 0;
        char *result = NULL;

        for (size_t i = 0; i < len && n_content < KB_MAX_QUERY_TERMS && n_terms < ELEMENTSOF(terms);) {
                size_t l = kb_utf8_valid_len(s + i, len - i);
                if (!kb_is_word_cp(kb_utf8_decode(s + i, l))) {
                        i += l;
                        continue;
                }
                size_t b = i;
                while (i < len) {
                        l = kb_utf8_valid_len(s + i, len - i);
                        if (!kb_is_word_cp(kb_utf8_decode(s + i, l)))
                                break;
                        i += l;
                }
                size_t n = i - b;
                if (n > KB_MAX_TOKEN_BYTES)
                        continue; /* no real word is this long */
                for (size_t k = b; k < i; k++)
                        clean[k] = (char) tolower((unsigned char) clean[k]);

                /* "gplv3" also as "gpl" and "3": a document writes
                 * "GPL-3" or "version 3" */
                size_t name = 0, letters = kb_versioned_name(clean + b, n, &name);
                const char *part[4] = {clean + b, clean + b, clean + b + letters, NULL};
                size_t part_n[4] = {n, name, n - letters, 0}, n_parts = letters > 0 ? 3 : 1;
                /* and in its other spelling: "licence" finds "license" */
                if (n_variants < ELEMENTSOF(variants)) {
                        char *var = variants[n_variants];
                        size_t vn = spelling_variant(clean + b, n, 0, var, sizeof variants[0]);
                        if (vn > 0) {
                                part[n_parts] = var;
                                part_n[n_parts++] = vn;
                                n_variants++;
                        }
                }
                for (size_t p = 0; p < n_parts && n_terms < ELEMENTSOF(terms); p++) {
                        int dup = 0;
                        for (size_t k = 0; k < n_terms && !dup; k++)
                                dup = terms[k].n == part_n[p] && memcmp(terms[k].s, part[p], part_n[p]) == 0;
                        if (dup)
                                continue;
                        terms[n_terms].s = part[p];
                        terms[n_terms].n = part_n[p];
                        terms[n_terms].stop = kb_is_stop_word(part[p], part_n[p]);
                        if (!terms[n_terms].stop)
                                n_content++;
                        n_terms++;
                }
        }

        size_t cap = 1;
        for (size_t k = 0; k < n_terms; k++)
                cap += terms[k].n + 6;
        result = malloc(cap);
        if (!result)
                return NULL;

        size_t o = 0, used = 0;
        for (size_t k = 0; k < n_terms && used < KB_MAX_QUERY_TERMS; k++) {
                if (n_content > 0 && terms[k].stop)
                        continue;
                if (used > 0) {
                        memcpy(result + o, " OR ", 4);
                        o += 4;
                }
                result[o++] = '"';
                memcpy(result + o, terms[k].s, terms[k].n);
                o += terms[k].n;
                result[o++] = '"';
                used++;
        }
        result[o] = 0;
        return result;
}

/* ---- open / close ------------------------------------------------------ */

/*
 * Version 3 (version 2 plus the documents' file columns: sha256, file_bytes
 * and mtime of the file a client read, NULL or '' when unknown). chunks_fts indexes two columns: the chunk
 * text, and its heading path followed by the document title (through the chunks_src view, which is also what
 * 'rebuild' reads). The triggers look the title up when a chunk is inserted or deleted, so a document's
 * chunks are deleted before the document itself (documents_bd) and its title never changes (documents_bu):
 * otherwise the index could not be told exactly what to forget.
 */
static const char schema_sql[] =
        "CREATE TABLE IF NOT EXISTS documents ("
        "  id INTEGER PRIMARY KEY,"
        "  title TEXT NOT NULL UNIQUE,"
        "  source TEXT NOT NULL DEFAULT '',"
        "  bytes INTEGER NOT NULL,"
        "  n_chunks INTEGER NOT NULL,"
        "  ingested_at INTEGER NOT NULL,"
        "  sha256 TEXT NOT NULL DEFAULT '',"
        "  file_bytes INTEGER,"
        "  mtime INTEGER);"
        "CREATE TABLE IF NOT EXISTS chunks ("
        "  id INTEGER PRIMARY KEY,"
        "  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
        "  idx INTEGER NOT NULL,"
        "  text TEXT NOT NULL,"
        "  heading TEXT NOT NULL DEFAULT '',"
        "  UNIQUE (doc_id, idx));"
        "CREATE VIEW IF NOT EXISTS chunks_src AS"
        "  SELECT c.id AS id, c.text AS text, c.heading || char(10) || d.title AS heading"
        "  FROM chunks c JOIN documents d ON d.id = c.doc_id;"
        "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5("
        "  text, heading, content='chunks_src', content_rowid='id',"
        "  tokenize='" KB_TOKENIZE_SQL "');"
        "CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN"
        "  INSERT INTO chunks_fts(rowid, text, heading)"
        "    SELECT new.id, new.text, new.heading || char(10) || d.title FROM documents d"
        "    WHERE d.id = new.doc_id;"
        "END;"
        "CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN"
        "  INSERT INTO chunks_fts(chunks_fts, rowid, text, heading)"
        "    SELECT 'delete', old.id, old.text, old.heading || char(10) || d.title FROM documents d"
        "    WHERE d.id = old.doc_id;"
        "END;"
        "CREATE TRIGGER IF NOT EXISTS chunks_au AFTER UPDATE ON chunks BEGIN"
        "  INSERT INTO chunks_fts(chunks_fts, rowid, text, heading)"
        "    SELECT 'delete', old.id, old.text, old.heading || char(10) || d.title FROM documents d"
        "    WHERE d.id = old.doc_id;"
        "  INSERT INTO chunks_fts(rowid, text, heading)"
        "    SELECT new.id, new.text, new.heading || char(10) || d.title FROM documents d"
        "    WHERE d.id = new.doc_id;"
        "END;"
        "CREATE TRIGGER IF NOT EXISTS documents_bd BEFORE DELETE ON documents BEGIN"
        "  DELETE FROM chunks WHERE doc_id = old.id;"
        "END;"
        "CREATE TRIGGER IF NOT EXISTS documents_bu BEFORE UPDATE OF id, title ON documents BEGIN"
        "  SELECT RAISE(ABORT, 'a document''s id and title are fixed: delete it and ingest it again');"
        "END;";

static int kb_user_version(Kb *kb) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = kb_prepare(kb, "PRAGMA user_version", &st);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return errno_from_sqlite(rc) ?: -EIO;
        return sqlite3_column_int(st, 0);
}

/* Recomputes the headings of one document's version-1 chunks from their
 * text (kb_chunk_headings_recompute) and stores them. */
static int migrate_document(Kb *kb, sqlite3_int64 doc_id, sqlite3_stmt *sel, sqlite3_stmt *upd) {
        _cleanup_free_ sqlite3_int64 *ids = NULL;
        _cleanup_free_ char **texts = NULL;
        _cleanup_free_ size_t *lens = NULL;
        size_t n = 0, cap = 0;
        char **headings = NULL;
        int r = 0, rc;

        sqlite3_reset(sel);
        sqlite3_bind_int64(sel, 1, doc_id);
        while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 64;
                        sqlite3_int64 *ni = realloc(ids, nc * sizeof(*ni));
                        if (ni)
                                ids = ni;
                        char **nt = realloc(texts, nc * sizeof(*nt));
                        if (nt)
                                texts = nt;
                        size_t *nl = realloc(lens, nc * sizeof(*nl));
                        if (nl)
                                lens = nl;
                        if (!ni || !nt || !nl) {
                                r = -ENOMEM;
                                goto out;
                        }
                        cap = nc;
                }
                const char *t = (const char *) sqlite3_column_text(sel, 1);
                ids[n] = sqlite3_column_int64(sel, 0);
                lens[n] = (size_t) sqlite3_column_bytes(sel, 1);
                texts[n] = t ? strndup(t, lens[n]) : strdup("");
                if (!texts[n]) {
                        r = -ENOMEM;
                        goto out;
                }
                n++;
        }
        if (rc != SQLITE_DONE) {
                r = errno_from_sqlite(rc) ?: -EIO;
                goto out;
        }
        r = kb_chunk_headings_recompute((const char *const *) texts, lens, n, &headings);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                sqlite3_reset(upd);
                sqlite3_bind_int64(upd, 1, ids[i]);
                sqlite3_bind_text(upd, 2, headings[i], -1, SQLITE_STATIC);
                rc = sqlite3_step(upd);
                if (rc != SQLITE_DONE)
                        r = errno_from_sqlite(rc) ?: -EIO;
        }
out:
        sqlite3_reset(sel);
        sqlite3_reset(upd);
        kb_strv_free(headings, headings ? n : 0);
        for (size_t i = 0; i < n; i++)
                free(texts[i]);
        return r;
}

/*
 * Version 1 to 2, inside the caller's transaction: the old index and its
 * triggers go, chunks get a heading column, filled from the stored chunk
 * text (the original document is not stored), then the version-2 objects
 * are created and the index is rebuilt from chunks_src. Documents and
 * chunks are kept as they are.
 */
static int migrate_v1(Kb *kb) {
        _cleanup_stmt_ sqlite3_stmt *docs = NULL, *sel = NULL, *upd = NULL;
        int r, rc;

        r = kb_exec(kb, "DROP TRIGGER IF EXISTS chunks_ai;"
                        "DROP TRIGGER IF EXISTS chunks_ad;"
                        "DROP TRIGGER IF EXISTS chunks_au;"
                        "DROP TABLE IF EXISTS chunks_fts;"
                        "ALTER TABLE chunks ADD COLUMN heading TEXT NOT NULL DEFAULT '';");
        if (r < 0)
                return r;
        r = kb_prepare(kb, "SELECT id FROM documents ORDER BY id", &docs);
        if (r >= 0)
                r = kb_prepare(kb, "SELECT id, text FROM chunks WHERE doc_id = ?1 ORDER BY idx", &sel);
        if (r >= 0)
                r = kb_prepare(kb, "UPDATE chunks SET heading = ?2 WHERE id = ?1", &upd);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(docs)) == SQLITE_ROW) {
                r = migrate_document(kb, sqlite3_column_int64(docs, 0), sel, upd);
                if (r < 0)
                        return r;
        }
        if (rc != SQLITE_DONE)
                return errno_from_sqlite(rc) ?: -EIO;
        r = kb_exec(kb, schema_sql);
        if (r < 0)
                return r;
        return kb_exec(kb, "INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')");
}

/*
 * Version 2 to 3, inside the caller's transaction: the file columns are
 * added; existing documents keep everything and have them unknown (so a
 * client's next ingest of the same file counts it as changed once).
 */
static int migrate_v2(Kb *kb) {
        return kb_exec(kb, "ALTER TABLE documents ADD COLUMN sha256 TEXT NOT NULL DEFAULT '';"
                           "ALTER TABLE documents ADD COLUMN file_bytes INTEGER;"
                           "ALTER TABLE documents ADD COLUMN mtime INTEGER;");
}

/* Creates or migrates the schema in one write transaction; the version is
 * read again inside it, since another process may have just done it. */
static int kb_setup_schema(Kb *kb, const char *path) {
        int r = kb_exec(kb, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = kb_user_version(kb);
        if (r == 0)
                r = kb_exec(kb, schema_sql);
        else if (r == 1) {
                log_info("kb: %s: migrating schema version 1 to %d (rebuilding its index)", path,
                         KB_SCHEMA_VERSION);
                r = migrate_v1(kb);
                if (r >= 0)
                        r = migrate_v2(kb);
        } else if (r == 2) {
                log_info("kb: %s: migrating schema version 2 to %d (adding file columns)", path,
                         KB_SCHEMA_VERSION);
                r = migrate_v2(kb);
        } else if (r > 0)
                r = 0; /* done meanwhile */
        if (r >= 0)
                r = kb_exec(kb, "PRAGMA user_version = " KB_SCHEMA_VERSION_SQL);
        if (r >= 0)
                r = kb_exec(kb, "COMMIT");
        if (r < 0 && !sqlite3_get_autocommit(kb->db))
                (void) kb_exec(kb, "ROLLBACK");
        return r;
}

/**
 * kb_open() - open (creating if needed) the database at @path with WAL, a
 * busy timeout and foreign keys, and create the schema, or migrate an older
 * schema in place (from version 1: documents and chunks kept, headings
 * recomputed from the chunk text, index rebuilt; from version 2: file
 * columns added; one transaction, so an interrupted migration leaves the
 * old version). With @read_only the file must exist and hold a current
 * schema: missing or older is -ENOMEDIUM (an older one is logged, with the
 * remedy); the handle then only searches
 * and lists. A newer schema version is refused with -EPROTONOSUPPORT.
 * Returns 0 and the handle in @ret, or -errno.
 */
int kb_open(const char *path, int read_only, Kb **ret) {
        if (isempty(path) || !ret)
                return -EINVAL;

        Kb *kb = calloc(1, sizeof(Kb));
        if (!kb)
                return -ENOMEM;
        kb->read_only = !!read_only;
        kb->stats = kb_stats_get(path);
        if (kb_pg_is_locator(path)) {
                int r = kb_pg_open(path, read_only, &kb->pg);
                if (r < 0) {
                        kb_close(kb);
                        return r;
                }
                *ret = kb;
                return 0;
        }

        int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
        int rc = sqlite3_open_v2(path, &kb->db, flags, NULL);
        int r;
        if (rc != SQLITE_OK) {
                r = errno_from_sqlite(rc);
                if (rc == SQLITE_CANTOPEN && kb->db && sqlite3_system_errno(kb->db) > 0)
                        r = -sqlite3_system_errno(kb->db);
                log_debug("kb: cannot open %s: %s", path,
                          kb->db ? sqlite3_errmsg(kb->db) : sqlite3_errstr(rc));
                goto fail;
        }
        sqlite3_extended_result_codes(kb->db, 0);
        sqlite3_busy_timeout(kb->db, KB_BUSY_TIMEOUT_MS);
        sqlite3_trace_v2(kb->db, SQLITE_TRACE_STMT, on_sqlite_statement, NULL);

        r = kb_exec(kb, "PRAGMA foreign_keys = ON");
        if (r < 0)
                goto fail;
        r = kb_rank_new(kb->db, &kb->rank);
        if (r < 0)
                goto fail;

        if (!read_only) {
                /* WAL: the loop's reader never waits for a worker's commit.
                 * synchronous=NORMAL is still crash consistent in WAL mode. */
                r = kb_exec(kb, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
                if (r < 0)
                        goto fail;
        }

        r = kb_user_version(kb);
        if (r < 0)
                goto fail;
        if (r > KB_SCHEMA_VERSION) {
                log_error("kb: %s has schema version %d, this moad knows %d", path, r, KB_SCHEMA_VERSION);
                r = -EPROTONOSUPPORT;
                goto fail;
        }
        if (r < KB_SCHEMA_VERSION && read_only) {
                if (r > 0)
                        log_error(
                                "kb: %s has schema version %d and needs migrating to %d, which a read-only "
                                "open cannot do: open it read-write once (moad does at start)",
                                path, r, KB_SCHEMA_VERSION);
                r = -ENOMEDIUM;
                goto fail;
        }
        if (r < KB_SCHEMA_VERSION) {
                r = kb_setup_schema(kb, path);
                if (r < 0)
                        goto fail;
        }
        /* without it kb_query_terms() answers -ENOTSUP, as before */
        (void) kb_tokenizer_read(kb->db, &kb->tok);

        *ret = kb;
        return 0;

fail:
        kb_close(kb);
        return r;
}

/** kb_close() - close the handle; NULL is a no-op. Returns NULL. */
Kb *kb_close(Kb *kb) {
        if (!kb)
                return NULL;
        kb_pg_close(kb->pg);
        if (kb->search)
                sqlite3_finalize(kb->search);
        if (kb->fetch)
                sqlite3_finalize(kb->fetch);
        if (kb->begin)
                sqlite3_finalize(kb->begin);
        if (kb->commit)
                sqlite3_finalize(kb->commit);
        if (kb->any_chunk)
                sqlite3_finalize(kb->any_chunk);

        kb_rank_free(kb->rank);
        if (kb->db)
                sqlite3_close_v2(kb->db);
        kb_stats_unref(kb->stats);
        free(kb);
        return NULL;
}

/* The documents, asked of the database. */
static int count_documents(Kb *kb) {
        if (kb->pg)
                return kb_pg_count(kb->pg);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = kb_prepare(kb, "SELECT count(*) FROM documents", &st);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return errno_from_sqlite(rc) ?: -EIO;
        int64_t n = sqlite3_column_int64(st, 0);
        return n > INT32_MAX ? INT32_MAX : (int) n;
}

/*
 * After a committed write through @kb (on a worker thread): publish the
 * new document count and, for a small base whose statistics the loop
 * uses, the new term statistics, so that a question asked after the write
 * was answered sees it without the loop reading anything. A larger base's
 * statistics are re-read by its agent's thread (agents.c), seconds later.
 */
static void published_after_write(Kb *kb) {
        if (!kb->stats)
                return;
        uint64_t gen = kb_stats_changed(kb->stats);
        /* only what an agent reads is kept fresh: a copy between backends
         * (kb-migrate.c) counts nothing per document */
        if (kb_stats_docs(kb->stats) >= 0)
                kb_stats_set_docs(kb->stats, gen, count_documents(kb));
        KbVocab *old = kb_stats_vocab(kb->stats);
        if (!old)
                return; /* no agent reads them (yet): nothing to keep fresh */
        kb_vocab_free(old);
        int64_t chunks = kb_chunk_count(kb);
        if (chunks < 0 || chunks > KB_STATS_SYNC_CHUNKS)
                return;
        KbVocab *v = NULL;
        if (kb_vocab_load(kb, &v) >= 0)
                kb_stats_set_vocab(kb->stats, gen, v);
        kb_vocab_free(v);
}

/* ---- ingest / delete --------------------------------------------------- */

static int kb_ingest_locked(Kb *kb, const char *title, const char *source, const char *text, size_t len,
                            const KbChunks *c, const KbDocMeta *meta) {
        size_t n = c->n;
        _cleanup_stmt_ sqlite3_stmt *del_chunks = NULL, *del_doc = NULL, *ins_doc = NULL, *ins_chunk = NULL,
                                    *move = NULL;
        int r, rc;

        r = kb_prepare(kb, "DELETE FROM chunks WHERE doc_id IN (SELECT id FROM documents WHERE title = ?1)",
                       &del_chunks);
        if (r < 0)
                return r;
        sqlite3_bind_text(del_chunks, 1, title, -1, SQLITE_STATIC);
        rc = sqlite3_step(del_chunks);
        if (rc != SQLITE_DONE)
                return errno_from_sqlite(rc) ?: -EIO;

        r = kb_prepare(kb, "DELETE FROM documents WHERE title = ?1", &del_doc);
        if (r < 0)
                return r;
        sqlite3_bind_text(del_doc, 1, title, -1, SQLITE_STATIC);
        rc = sqlite3_step(del_doc);
        if (rc != SQLITE_DONE)
                return errno_from_sqlite(rc) ?: -EIO;

        r = kb_prepare(kb,
                       "INSERT INTO documents (title, source, bytes, n_chunks, ingested_at, sha256, "
                       "file_bytes, mtime) VALUES (?1, ?2, ?3, ?4, ?5, lower(?6), ?7, ?8)",
                       &ins_doc);
        if (r < 0)
                return r;
        sqlite3_bind_text(ins_doc, 1, title, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_doc, 2, source, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins_doc, 3, (sqlite3_int64) len);
        sqlite3_bind_int64(ins_doc, 4, (sqlite3_int64) n);
        sqlite3_bind_int64(ins_doc, 5, (sqlite3_int64) time(NULL));
        sqlite3_bind_text(ins_doc, 6, meta && meta->sha256 ? meta->sha256 : "", -1, SQLITE_STATIC);
        if (meta && meta->file_bytes >= 0)
                sqlite3_bind_int64(ins_doc, 7, meta->file_bytes);
        if (meta && meta->mtime >= 0)
                sqlite3_bind_int64(ins_doc, 8, meta->mtime);
        rc = sqlite3_step(ins_doc);
        if (rc != SQLITE_DONE)
                return errno_from_sqlite(rc) ?: -EIO;
        sqlite3_int64 doc_id = sqlite3_last_insert_rowid(kb->db);

        /* The chunks go to a temporary table first and into chunks (and so
         * the index, by trigger) in one statement: FTS5 flushes its pending
         * terms at every statement, so one INSERT per chunk would leave a
         * document's index in as many segments as it has chunks, and
         * searches measurably slower until they are merged. */
        r = kb_exec(kb, "CREATE TEMP TABLE IF NOT EXISTS pending_chunks ("
                        "  idx INTEGER PRIMARY KEY, text TEXT NOT NULL, heading TEXT NOT NULL);"
                        "DELETE FROM temp.pending_chunks");
        if (r < 0)
                return r;
        r = kb_prepare(kb, "INSERT INTO temp.pending_chunks (idx, text, heading) VALUES (?1, ?2, ?3)",
                       &ins_chunk);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                sqlite3_reset(ins_chunk);
                sqlite3_bind_int64(ins_chunk, 1, (sqlite3_int64) i);
                sqlite3_bind_text(ins_chunk, 2, text + c->chunks[i].offset, (int) c->chunks[i].len,
                                  SQLITE_STATIC);
                sqlite3_bind_text(ins_chunk, 3, c->headings + c->chunks[i].heading, -1, SQLITE_STATIC);
                rc = sqlite3_step(ins_chunk);
                if (rc != SQLITE_DONE)
                        return errno_from_sqlite(rc) ?: -EIO;
                if (kb_test_crash_after_chunks > 0 && i + 1 >= kb_test_crash_after_chunks)
                        _exit(77);
        }
        r = kb_prepare(kb,
                       "INSERT INTO chunks (doc_id, idx, text, heading) "
                       "SELECT ?1, idx, text, heading FROM temp.pending_chunks ORDER BY idx",
                       &move);
        if (r < 0)
                return r;
        sqlite3_bind_int64(move, 1, doc_id);
        rc = sqlite3_step(move);
        if (rc != SQLITE_DONE)
                return errno_from_sqlite(rc) ?: -EIO;
        return kb_exec(kb, "DELETE FROM temp.pending_chunks");
}

/**
 * kb_ingest() - add or replace (same @title) one document in one transaction
 * (BEGIN IMMEDIATE ... COMMIT, rolled back on any error), so a crash leaves
 * the old or the new version. Invalid UTF-8 in @text and @title is replaced
 * with U+FFFD. @source may be NULL. Returns the number of chunks or -errno:
 * -EINVAL for an empty or over-long (> KB_MAX_TITLE_BYTES) title, an
 * over-long source, text without any non-space character, bad @opts or a
 * read-only handle; -E2BIG for text over KB_MAX_DOCUMENT_BYTES.
 */
int kb_ingest(Kb *kb, const char *title, const char *source, const char *text, size_t len,
              const KbChunkOpts *opts) {
        return kb_ingest_meta(kb, title, source, text, len, opts, NULL);
}

/** kb_sha256_valid() - whether @s is exactly 64 hex digits. */
int kb_sha256_valid(const char *s) {
        size_t i;

        if (!s)
                return 0;
        for (i = 0; s[i]; i++)
                if (i >= 64 || !isxdigit((unsigned char) s[i]))
                        return 0;
        return i == 64;
}

/**
 * kb_ingest_meta() - kb_ingest() storing @meta (NULL: unknown) with the
 * document: the sha256 lower-cased, negative sizes and times as unknown.
 * -EINVAL also for a sha256 that is neither NULL, "" nor 64 hex digits.
 */
int kb_ingest_meta(Kb *kb, const char *title, const char *source, const char *text, size_t len,
                   const KbChunkOpts *opts, const KbDocMeta *meta) {
        if (!kb || isempty(title) || (!text && len > 0))
                return -EINVAL;
        if (meta && !isempty(meta->sha256) && !kb_sha256_valid(meta->sha256))
                return -EINVAL;
        if (kb->read_only)
                return -EROFS;
        if (strlen(title) > KB_MAX_TITLE_BYTES || (source && strlen(source) > KB_MAX_SOURCE_BYTES))
                return -EINVAL;
        if (len > KB_MAX_DOCUMENT_BYTES)
                return -E2BIG;
        if (len == 0)
                return -EINVAL;

        _cleanup_free_ char *t = kb_utf8_sanitize(title, strlen(title), NULL);
        _cleanup_free_ char *src = kb_utf8_sanitize(source ?: "", source ? strlen(source) : 0, NULL);
        size_t clen;
        _cleanup_free_ char *clean = kb_utf8_sanitize(text, len, &clen);
        if (!t || !src || !clean)
                return -ENOMEM;

        _cleanup_(kb_chunks_done) KbChunks chunks = {0};
        int r = kb_chunk_sections(clean, clen, opts, &chunks);
        if (r < 0)
                return r;
        size_t n = chunks.n;
        if (n == 0)
                return -EINVAL; /* whitespace only */
        if (n > INT32_MAX)
                return -E2BIG;

        if (kb->pg) {
                r = kb_pg_ingest(kb->pg, t, src, clean, clen, &chunks, meta);
                if (r >= 0)
                        published_after_write(kb);
                return r;
        }
        r = kb_exec(kb, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = kb_ingest_locked(kb, t, src, clean, clen, &chunks, meta);
        if (r >= 0)
                r = kb_exec(kb, "COMMIT");
        if (r < 0) {
                if (!sqlite3_get_autocommit(kb->db))
                        (void) kb_exec(kb, "ROLLBACK");
                return r;
        }
        published_after_write(kb);
        return (int) n;
}

/** kb_delete() - remove the document @title and its chunks in one
 * transaction. Returns 0, -ENOENT if absent, or -errno. */
int kb_delete(Kb *kb, const char *title) {
        if (!kb || isempty(title))
                return -EINVAL;
        if (kb->read_only)
                return -EROFS;
        if (kb->pg) {
                int r = kb_pg_delete(kb->pg, title);
                if (r >= 0)
                        published_after_write(kb);
                return r;
        }

        int r = kb_exec(kb, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;

        _cleanup_stmt_ sqlite3_stmt *a = NULL, *b = NULL;
        r = kb_prepare(kb, "DELETE FROM chunks WHERE doc_id IN (SELECT id FROM documents WHERE title = ?1)",
                       &a);
        if (r >= 0) {
                sqlite3_bind_text(a, 1, title, -1, SQLITE_STATIC);
                int rc = sqlite3_step(a);
                if (rc != SQLITE_DONE)
                        r = errno_from_sqlite(rc) ?: -EIO;
        }
        if (r >= 0)
                r = kb_prepare(kb, "DELETE FROM documents WHERE title = ?1", &b);
        if (r >= 0) {
                sqlite3_bind_text(b, 1, title, -1, SQLITE_STATIC);
                int rc = sqlite3_step(b);
                if (rc != SQLITE_DONE)
                        r = errno_from_sqlite(rc) ?: -EIO;
                else if (sqlite3_changes(kb->db) == 0)
                        r = -ENOENT;
        }
        if (r >= 0)
                r = kb_exec(kb, "COMMIT");
        if (r < 0 && !sqlite3_get_autocommit(kb->db))
                (void) kb_exec(kb, "ROLLBACK");
        if (r < 0)
                return r;
        published_after_write(kb);
        return 0;
}

/* ---- queries ----------------------------------------------------------- */

/* The documents with a title after @after (byte order), at most @limit
 * of them (-1: all), to @cb; stops and returns @cb's value if non-zero. */
static int list_rows(Kb *kb, const char *after, sqlite3_int64 limit,
                     int (*cb)(const KbDocInfo *doc, void *userdata), void *userdata) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = kb_prepare(
                kb,
                "SELECT title, source, n_chunks, bytes, ingested_at, sha256, ifnull(file_bytes, -1), "
                "ifnull(mtime, -1) FROM documents WHERE title > ?1 ORDER BY title LIMIT ?2",
                &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, limit);
        for (;;) {
                int rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        return 0;
                if (rc != SQLITE_ROW)
                        return errno_from_sqlite(rc) ?: -EIO;
                KbDocInfo d = {
                        .title = (const char *) sqlite3_column_text(st, 0),
                        .source = (const char *) sqlite3_column_text(st, 1),
                        .n_chunks = (unsigned) sqlite3_column_int64(st, 2),
                        .bytes = (uint64_t) sqlite3_column_int64(st, 3),
                        .ingested_at = sqlite3_column_int64(st, 4),
                        .sha256 = (const char *) sqlite3_column_text(st, 5),
                        .file_bytes = sqlite3_column_int64(st, 6),
                        .mtime = sqlite3_column_int64(st, 7),
                };
                if (!d.title)
                        return -ENOMEM;
                if (!d.source)
                        d.source = "";
                if (!d.sha256)
                        d.sha256 = "";
                r = cb(&d, userdata);
                if (r != 0)
                        return r;
        }
}

/** kb_list() - call @cb for every document ordered by title; stops and
 * returns @cb's value if it is non-zero. The strings in the KbDocInfo are
 * valid only during the call. Returns 0 or -errno. */
int kb_list(Kb *kb, int (*cb)(const KbDocInfo *doc, void *userdata), void *userdata) {
        if (!kb || !cb)
                return -EINVAL;
        if (kb->pg)
                return kb_pg_list(kb->pg, cb, userdata);
        return list_rows(kb, "", -1, cb, userdata); /* every title is longer than "" */
}

/**
 * kb_list_page() - kb_list() of at most @limit documents whose title sorts
 * after @after. See kb.h.
 */
int kb_list_page(Kb *kb, const char *after, unsigned limit, int (*cb)(const KbDocInfo *doc, void *userdata),
                 void *userdata) {
        if (!kb || !cb || limit == 0)
                return -EINVAL;
        if (kb->pg)
                return kb_pg_list_page(kb->pg, after, limit, cb, userdata);
        return list_rows(kb, after ?: "", limit, cb, userdata);
}

/** kb_count() - the number of documents, or -errno; published for the loop (kb_known_count()). */
int kb_count(Kb *kb) {
        if (!kb)
                return -EINVAL;
        uint64_t gen = kb_stats_generation(kb->stats);
        int n = count_documents(kb);
        kb_stats_set_docs(kb->stats, gen, n);
        return n;
}

/** kb_known_count() - see kb.h. */
int kb_known_count(Kb *kb) {
        return kb ? kb_stats_docs(kb->stats) : -1;
}

/** kb_stats() - see kb-stats.h. */
KbStats *kb_stats(Kb *kb) {
        return kb ? kb->stats : NULL;
}

static int has_title_cb(const KbDocInfo *doc, void *userdata) {
        return streq(doc->title, userdata) ? 1 : 0;
}

/** kb_has_document() - 1 if a document is titled @title, 0 if not, or -errno. */
int kb_has_document(Kb *kb, const char *title) {
        if (!kb || isempty(title))
                return -EINVAL;
        if (kb->pg) {
                int r = kb_list(kb, has_title_cb, (void *) title);
                return r < 0 ? r : r == 1;
        }
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = kb_prepare(kb, "SELECT 1 FROM documents WHERE title = ?1", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, title, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return 1;
        return rc == SQLITE_DONE ? 0 : errno_from_sqlite(rc) ?: -EIO;
}

/** kb_hits_free() - free @n hits returned by kb_search(); NULL is a no-op. */
void kb_hits_free(KbHit *hits, size_t n) {
        if (!hits)
                return;
        for (size_t i = 0; i < n; i++)
                kb_hit_clear(&hits[i]);
        free(hits);
}

/** kb_hit_clear() - see kb.h. */
void kb_hit_clear(KbHit *h) {
        free(h->title);
        free(h->source);
        free(h->snippet);
        free(h->text);
        free(h->heading);
        *h = (KbHit){};
}

static char *strdup_col(sqlite3_stmt *st, int col) {
        const char *s = (const char *) sqlite3_column_text(st, col);
        return strdup(s ?: "");
}

typedef struct Candidate {
        sqlite3_int64 id;
        double score;
} Candidate;

/* Best score first; equal scores by chunk id, so the order is total. */
static int candidate_cmp(const void *a, const void *b) {
        const Candidate *x = a, *y = b;
        if (x->score != y->score)
                return x->score > y->score ? -1 : 1;
        return x->id < y->id ? -1 : x->id > y->id;
}

/* The best kb_rank_params.candidates (at least @limit) chunks by weighted
 * bm25, each scored bm25 times its moa_rank() bonus, in score order.
 * Returns the count (>= 0) with *ret, or -errno. */
static int search_candidates(Kb *kb, const char *expr, unsigned limit, const char *const *titles,
                             size_t n_titles, Candidate **ret) {
        const KbRankParams *p = &kb_rank_params;
        unsigned want = MAX(limit, MAX(p->candidates, 1u));
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *filtered = NULL;

        if (n_titles > 0) {
                /* Only chunks of documents whose title matches a glob: one
                 * statement per search (the pattern count varies). */
                _cleanup_free_ char *sql = strdup(
                        "SELECT rowid, moa_rank(chunks_fts, 0, ?3, ?4, ?5, ?6, ?7), "
                        "moa_rank(chunks_fts, 1, ?3, ?4, ?5, ?6, ?7) "
                        "FROM chunks_fts WHERE chunks_fts MATCH ?1 AND rowid IN (SELECT c.id FROM chunks c "
                        "JOIN documents d ON d.id = c.doc_id WHERE 0");
                for (size_t i = 0; sql && i < n_titles; i++) {
                        char *n = NULL;
                        if (asprintf(&n, "%s OR d.title GLOB ?%zu", sql, i + 8) < 0)
                                n = NULL;
                        free(sql);
                        sql = n;
                }
                char *n = NULL;
                if (sql && asprintf(&n, "%s) ORDER BY 2 DESC, 1 LIMIT ?2", sql) < 0)
                        n = NULL;
                free(sql);
                sql = n;
                if (!sql)
                        return -ENOMEM;
                int rc = sqlite3_prepare_v2(kb->db, sql, -1, &filtered, NULL);
                if (rc != SQLITE_OK) {
                        log_debug("kb: prepare failed: %s", sqlite3_errmsg(kb->db));
                        return errno_from_sqlite(rc);
                }
                for (size_t i = 0; i < n_titles; i++)
                        sqlite3_bind_text(filtered, (int) i + 8, titles[i], -1, SQLITE_STATIC);
        } else if (!kb->search) {
                int rc = sqlite3_prepare_v3(kb->db,
                                            "SELECT rowid, moa_rank(chunks_fts, 0, ?3, ?4, ?5, ?6, ?7), "
                                            "moa_rank(chunks_fts, 1, ?3, ?4, ?5, ?6, ?7) "
                                            "FROM chunks_fts WHERE chunks_fts MATCH ?1 "
                                            "ORDER BY 2 DESC, 1 LIMIT ?2",
                                            -1, SQLITE_PREPARE_PERSISTENT, &kb->search, NULL);
                if (rc != SQLITE_OK) {
                        log_debug("kb: prepare failed: %s", sqlite3_errmsg(kb->db));
                        return errno_from_sqlite(rc);
                }
        }
        _reset_stmt_ sqlite3_stmt *st = filtered ? filtered : kb->search;
        sqlite3_bind_text(st, 1, expr, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, (int) want);
        sqlite3_bind_double(st, 3, p->w_body);
        sqlite3_bind_double(st, 4, p->w_heading);
        sqlite3_bind_double(st, 5, p->coverage);
        sqlite3_bind_double(st, 6, p->proximity);
        sqlite3_bind_int(st, 7, (int) MAX(p->window, 1u));

        _cleanup_free_ Candidate *c = calloc(want, sizeof(Candidate));
        if (!c)
                return -ENOMEM;
        size_t n = 0;
        for (;;) {
                int rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW) {
                        log_debug("kb: search failed: %s", sqlite3_errmsg(kb->db));
                        return errno_from_sqlite(rc) ?: -EIO;
                }
                if (n >= want)
                        break;
                double bm25 = sqlite3_column_double(st, 1), bonus = sqlite3_column_double(st, 2);
                c[n].id = sqlite3_column_int64(st, 0);
                c[n].score = (bm25 > 0 ? bm25 : 1e-9) * (bonus >= 1 ? bonus : 1);
                n++;
        }
        qsort(c, n, sizeof(Candidate), candidate_cmp);
        *ret = TAKE_PTR(c);
        return (int) n;
}

/* 1 if the base has a chunk at all, 0 if it is empty, or -errno. An agent
 * without knowledge still has a (empty) base: one b-tree step here instead
 * of an FTS5 query (its structure record, the expression, the cursor). */
static int has_chunks(Kb *kb) {
        if (!kb->any_chunk) {
                int rc = sqlite3_prepare_v3(kb->db, "SELECT EXISTS (SELECT 1 FROM chunks)", -1,
                                            SQLITE_PREPARE_PERSISTENT, &kb->any_chunk, NULL);
                if (rc != SQLITE_OK) {
                        log_debug("kb: prepare failed: %s", sqlite3_errmsg(kb->db));
                        return errno_from_sqlite(rc);
                }
        }
        _reset_stmt_ sqlite3_stmt *st = kb->any_chunk;
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return errno_from_sqlite(rc) ?: -EIO;
        return sqlite3_column_int(st, 0) != 0;
}

/* Fills @h with chunk @c's document and text. Returns 0, -ENOENT if the
 * chunk is gone, or -errno. */
static int fetch_hit(Kb *kb, const Candidate *c, const char *expr, int snippets, KbHit *h) {
        if (!kb->fetch) {
                int rc = sqlite3_prepare_v3(
                        kb->db,
                        "SELECT d.title, d.source, c.idx, c.text, c.heading "
                        "FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = ?1",
                        -1, SQLITE_PREPARE_PERSISTENT, &kb->fetch, NULL);
                if (rc != SQLITE_OK) {
                        log_debug("kb: prepare failed: %s", sqlite3_errmsg(kb->db));
                        return errno_from_sqlite(rc);
                }
        }
        _reset_stmt_ sqlite3_stmt *st = kb->fetch;
        sqlite3_bind_int64(st, 1, c->id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return errno_from_sqlite(rc) ?: -EIO;
        h->title = strdup_col(st, 0);
        h->source = strdup_col(st, 1);
        h->chunk = (unsigned) sqlite3_column_int64(st, 2);
        h->score = c->score;
        h->text = strdup_col(st, 3);
        h->heading = strdup_col(st, 4);
        h->snippet = !h->text ? NULL : snippets ? kb_rank_snippet(kb->rank, h->text, expr) : strdup("");
        if (!h->title || !h->source || !h->snippet || !h->text || !h->heading)
                return -ENOMEM;
        return 0;
}

/*
 * search() - see kb_search(). Two steps, both bounded: the best candidates
 * by weighted bm25 with their proximity bonus (one FTS5 query, no chunk
 * text read), reranked in C; then the text of the @limit best only, by
 * chunk id. Both run in one read transaction, so a writer committing in
 * between cannot make them disagree.
 */
/* The safe expression kb_fts_query() makes of @query cut at
 * KB_MAX_QUERY_BYTES (on a character boundary; a cut word is just a word):
 * "" when it has no words. NULL on OOM. */
static char *search_expr(const char *query) {
        size_t ql = strnlen(query, KB_MAX_QUERY_BYTES + 1);
        if (ql > KB_MAX_QUERY_BYTES) {
                ql = KB_MAX_QUERY_BYTES;
                while (ql > 0 && is_continuation((unsigned char) query[ql]))
                        ql--;
        }
        _cleanup_free_ char *q = strndup(query, ql);
        return q ? kb_fts_query(q) : NULL;
}

/* The bounded limit and the FTS expression of a search: 1 with *@ret_expr
 * (malloc'ed), 0 when there is nothing to look for (no query, limit 0, no
 * words), -ENOMEM. */
static int search_prepare(const char *query, unsigned *limit, char **ret_expr) {
        *ret_expr = NULL;
        *limit = MIN(*limit, KB_MAX_HITS);
        if (!query || *limit == 0)
                return 0;
        char *expr = search_expr(query);
        if (!expr)
                return -ENOMEM;
        if (!*expr) {
                free(expr);
                return 0;
        }
        *ret_expr = expr;
        return 1;
}

static int search(Kb *kb, const char *query, unsigned limit, int snippets, const char *const *titles,
                  size_t n_titles, KbHit **ret_hits, size_t *ret_n) {
        if (!kb || !ret_hits || !ret_n)
                return -EINVAL;

        *ret_hits = NULL;
        *ret_n = 0;
        _cleanup_free_ char *expr = NULL;
        int p = search_prepare(query, &limit, &expr);
        if (p <= 0)
                return p;
        if (kb->pg)
                return kb_pg_search(kb->pg, expr, limit, snippets, titles, n_titles, ret_hits, ret_n);

        /* A read transaction of our own unless a caller's is open. */
        int own = sqlite3_get_autocommit(kb->db), r = own ? kb_exec_cached(kb, &kb->begin, "BEGIN") : 0;
        if (r < 0)
                return r;
        _cleanup_free_ Candidate *c = NULL;
        KbHit *hits = NULL;
        size_t n = 0;
        /* in the transaction: a chunk committed after this check is not
         * seen by the query either */
        r = has_chunks(kb);
        if (r > 0)
                r = search_candidates(kb, expr, limit, titles, n_titles, &c);
        if (r > 0) {
                size_t nc = (size_t) r;
                hits = calloc(MIN(nc, (size_t) limit), sizeof(KbHit));
                if (!hits)
                        r = -ENOMEM;
                for (size_t i = 0; r >= 0 && i < nc && n < limit; i++) {
                        r = fetch_hit(kb, &c[i], expr, snippets, &hits[n]);
                        if (r == -ENOENT) /* cannot happen inside the transaction */
                                r = 0;
                        else
                                n++;
                }
        }
        if (own && !sqlite3_get_autocommit(kb->db))
                (void) kb_exec_cached(kb, &kb->commit, "COMMIT");
        if (r < 0) {
                kb_hits_free(hits, n);
                return r;
        }
        if (n == 0) {
                free(hits);
                return 0;
        }
        *ret_hits = hits;
        *ret_n = n;
        return 0;
}

/**
 * kb_search() - the best @limit (capped at 100) chunks for the free-text
 * @query, built into a safe expression by kb_fts_query() after truncating
 * the query to KB_MAX_QUERY_BYTES. Ranked by bm25 with the heading column
 * weighted above the text, the best candidates reranked by the proximity
 * and coverage of the query's terms (kb-rank.h); score is -bm25 times that
 * bonus (> 0, descending, ties by chunk id); snippet is plain text with
 * matches in '[' ']' and "..." at cuts; heading is the section's heading
 * path. A query without words, or @limit 0, gives 0 hits. Returns 0 or
 * -errno (database errors only, never for the query's content).
 */
int kb_search(Kb *kb, const char *query, unsigned limit, KbHit **ret_hits, size_t *ret_n) {
        return search(kb, query, limit, 1, NULL, 0, ret_hits, ret_n);
}

/** kb_search_in() - kb_search() in the documents whose title matches one of @titles. */
int kb_search_in(Kb *kb, const char *query, unsigned limit, const char *const *titles, size_t n_titles,
                 KbHit **ret_hits, size_t *ret_n) {
        if (n_titles > KB_MAX_TITLE_FILTERS || (n_titles > 0 && !titles))
                return -EINVAL;
        return search(kb, query, limit, 1, titles, n_titles, ret_hits, ret_n);
}

/** kb_search_texts() - kb_search() with every snippet "". */
int kb_search_texts(Kb *kb, const char *query, unsigned limit, KbHit **ret_hits, size_t *ret_n) {
        return search(kb, query, limit, 0, NULL, 0, ret_hits, ret_n);
}

int kb_search_start(Kb *kb, sd_event *e, const char *query, unsigned limit, int snippets,
                    const char *const *titles, size_t n_titles, KbSearchDone done, void *userdata,
                    KbSearch **ret, KbHit **ret_hits, size_t *ret_n) {
        if (!kb || !ret || !ret_hits || !ret_n || (kb->pg && (!e || !done)))
                return -EINVAL;
        if (n_titles > KB_MAX_TITLE_FILTERS || (n_titles > 0 && !titles))
                return -EINVAL;
        *ret = NULL;
        *ret_hits = NULL;
        *ret_n = 0;
        if (!kb->pg) {
                int r = search(kb, query, limit, snippets, titles, n_titles, ret_hits, ret_n);
                return r < 0 ? r : 1;
        }
        _cleanup_free_ char *expr = NULL;
        int p = search_prepare(query, &limit, &expr);
        if (p <= 0)
                return p < 0 ? p : 1;
        return kb_pg_search_start(kb->pg, e, expr, limit, snippets, titles, n_titles, done, userdata, ret);
}

/** kb_hits_snippets() - see kb.h: the snippets fetch_hit() and
 * kb_pg_search_result() make, from the same expression. */
int kb_hits_snippets(Kb *kb, const char *query, KbHit *hits, size_t n) {
        if (!kb || n == 0)
                return 0;
        _cleanup_free_ char *expr = search_expr(query ?: "");
        if (!expr)
                return -ENOMEM;
        KbRank *rank = kb->pg ? kb_pg_rank(kb->pg) : kb->rank;
        for (size_t i = 0; i < n; i++) {
                char *s = hits[i].text ? kb_rank_snippet(rank, hits[i].text, expr) : NULL;
                if (!s)
                        return -ENOMEM;
                free(hits[i].snippet);
                hits[i].snippet = s;
        }
        return 0;
}

void kb_search_cancel(KbSearch *s) {
        kb_pg_search_cancel(s);
}

/* ---- for kb-vocab.c -------------------------------------------------------- */

sqlite3 *kb_sqlite(Kb *kb) {
        return kb ? kb->db : NULL;
}

const KbTokenizer *kb_tokenizer(Kb *kb) {
        return kb && kb->db ? &kb->tok : NULL;
}

KbPg *kb_pg(Kb *kb) {
        return kb ? kb->pg : NULL;
}

/* ---- moving documents between backends ---------------------------------------- */

/** kb_document_chunks() - see kb.h. */
int kb_document_chunks(Kb *kb, const char *title, char ***ret_texts, char ***ret_headings, size_t *ret_n) {
        if (!kb || isempty(title) || !ret_texts || !ret_headings || !ret_n)
                return -EINVAL;
        if (kb->pg)
                return kb_pg_document_chunks(kb->pg, title, ret_texts, ret_headings, ret_n);

        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = kb_prepare(kb,
                           "SELECT c.text, c.heading FROM chunks c JOIN documents d ON d.id = c.doc_id "
                           "WHERE d.title = ?1 ORDER BY c.idx",
                           &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, title, -1, SQLITE_STATIC);
        char **t = NULL, **h = NULL;
        size_t n = 0, cap = 0;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 16;
                        char **nt = realloc(t, nc * sizeof(char *));
                        if (nt)
                                t = nt;
                        char **nh = realloc(h, nc * sizeof(char *));
                        if (nh)
                                h = nh;
                        if (!nt || !nh) {
                                r = -ENOMEM;
                                break;
                        }
                        cap = nc;
                }
                t[n] = strdup_col(st, 0);
                h[n] = strdup_col(st, 1);
                if (!t[n] || !h[n]) {
                        free(t[n]);
                        free(h[n]);
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        if (r >= 0 && rc != SQLITE_DONE)
                r = errno_from_sqlite(rc) ?: -EIO;
        if (r >= 0 && n == 0)
                r = -ENOENT;
        if (r < 0) {
                strv_free_n(t, n);
                strv_free_n(h, n);
                return r;
        }
        *ret_texts = t;
        *ret_headings = h;
        *ret_n = n;
        return 0;
}

/** kb_ingest_chunks() - see kb.h: the chunks back to back in one text, so
 * both backends' ingest takes them as if kb_chunk_sections() had cut them. */
int kb_ingest_chunks(Kb *kb, const KbDocInfo *doc, char *const *texts, char *const *headings, size_t n) {
        if (!kb || !doc || isempty(doc->title) || strlen(doc->title) > KB_MAX_TITLE_BYTES || n == 0 ||
            !texts || !headings || n > INT32_MAX)
                return -EINVAL;
        if (!isempty(doc->sha256) && !kb_sha256_valid(doc->sha256))
                return -EINVAL;
        if (kb->read_only)
                return -EROFS;

        KbChunks c = {.n = n};
        size_t tl = 0, hl = 1;
        for (size_t i = 0; i < n; i++) {
                tl += strlen(texts[i]);
                hl += strlen(headings[i]) + 1;
        }
        _cleanup_free_ char *text = malloc(tl + 1);
        _cleanup_free_ KbChunk *chunks = calloc(n, sizeof(KbChunk));
        _cleanup_free_ char *hs = malloc(hl);
        if (!text || !chunks || !hs)
                return -ENOMEM;
        size_t to = 0, ho = 1;
        hs[0] = 0;
        for (size_t i = 0; i < n; i++) {
                size_t a = strlen(texts[i]), b = strlen(headings[i]);
                memcpy(text + to, texts[i], a);
                chunks[i] = (KbChunk){.offset = to, .len = a, .heading = b ? ho : 0};
                to += a;
                if (b) {
                        memcpy(hs + ho, headings[i], b + 1);
                        ho += b + 1;
                }
        }
        text[to] = 0;
        c.chunks = chunks;
        c.headings = hs;
        c.headings_len = ho;
        KbDocMeta meta = {.sha256 = doc->sha256, .file_bytes = doc->file_bytes, .mtime = doc->mtime};
        const char *source = doc->source ?: "";

        int r;
        if (kb->pg) {
                r = kb_pg_ingest(kb->pg, doc->title, source, text, (size_t) doc->bytes, &c, &meta);
                if (r >= 0)
                        published_after_write(kb);
                return r;
        }
        r = kb_exec(kb, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = kb_ingest_locked(kb, doc->title, source, text, (size_t) doc->bytes, &c, &meta);
        if (r >= 0)
                r = kb_exec(kb, "COMMIT");
        if (r < 0) {
                if (!sqlite3_get_autocommit(kb->db))
                        (void) kb_exec(kb, "ROLLBACK");
                return r;
        }
        published_after_write(kb);
        return (int) n;
}

/* ---- availability ----------------------------------------------------------- */

/** kb_check_start() - see kb.h. */
int kb_check_start(Kb *kb, sd_event *e, KbSearchDone done, void *userdata, KbSearch **ret) {
        if (!kb || !e || !done || !ret)
                return -EINVAL;
        return kb->pg ? kb_pg_check_start(e, done, userdata, ret) : 1;
}

/** kb_check() - see kb.h. */
int kb_check(Kb *kb) {
        if (!kb)
                return -EINVAL;
        return kb->pg ? kb_pg_check(kb->pg) : 0;
}

/** kb_unavailable() - see kb.h. */
int kb_unavailable(int r) {
        return r == -ECONNREFUSED || r == -ECONNRESET || r == -ETIMEDOUT || r == -ENOTCONN || r == -EAGAIN;
}
