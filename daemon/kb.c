/* kb.c — one agent's knowledge base in its own SQLite database: documents,
 * their overlapping chunks, and an external-content FTS5 index over the chunk
 * text ranked with bm25. Owns the schema, UTF-8 sanitising, chunking, and the
 * translation of free text into a safe FTS5 MATCH expression. */
#include <ctype.h>
#include <sqlite3.h>

#include "kb-text.h"
#include "kb-vocab.h"
#include "kb.h"
#include "log.h"
#include "util.h"

#define KB_SCHEMA_VERSION 1
#define KB_BUSY_TIMEOUT_MS 5000
#define KB_MAX_SOURCE_BYTES 4096u
#define KB_MIN_CHUNK_SIZE 64u
#define KB_MAX_CHUNK_SIZE (1024u * 1024u)
#define KB_MAX_TOKEN_BYTES 128u
#define KB_MAX_HITS 100u

struct Kb {
        sqlite3 *db;
        int read_only;
        /* Searches run on the request path: prepared once, reset after use. */
        sqlite3_stmt *search;
};

/* Test hook (not in kb.h): when non-zero, kb_ingest() calls _exit(77) after
 * inserting this many chunks, i.e. in the middle of its transaction. Tests
 * declare it extern to prove crash consistency. */
unsigned kb_test_crash_after_chunks = 0;

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

/* ---- UTF-8 ------------------------------------------------------------- */

static int is_space(unsigned char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_continuation(unsigned char c) {
        return (c & 0xC0) == 0x80;
}

/* ---- chunking ---------------------------------------------------------- */

/* Is there a CJK full stop / exclamation / question mark ending at @p? */
static int cjk_sentence_end_before(const unsigned char *s, size_t start, size_t p) {
        if (p < start + 3)
                return 0;
        const unsigned char *q = s + p - 3;
        return (q[0] == 0xE3 && q[1] == 0x80 && q[2] == 0x82) || /* 。 */
               (q[0] == 0xEF && q[1] == 0xBC && q[2] == 0x81) || /* ！ */
               (q[0] == 0xEF && q[1] == 0xBC && q[2] == 0x9F);   /* ？ */
}

/* Where to end the chunk that starts at @start: the last paragraph break,
 * else the last sentence or line end, else the last whitespace in the back
 * half of the window, else a hard cut on a UTF-8 boundary. */
static size_t chunk_cut(const unsigned char *s, size_t len, size_t start, size_t size) {
        size_t end = start + size; /* < len, checked by the caller */
        size_t lo = start + size / 2;
        size_t para = 0, sent = 0, ws = 0;

        for (size_t p = lo; p <= end; p++) {
                if (is_space(s[p])) {
                        if (s[p] == '\n' && p + 1 < len &&
                            (s[p + 1] == '\n' || (s[p + 1] == '\r' && p + 2 < len && s[p + 2] == '\n')))
                                para = p;
                        else if (s[p] == '\n' || s[p - 1] == '.' || s[p - 1] == '!' || s[p - 1] == '?' ||
                                 s[p - 1] == ':' || s[p - 1] == ';')
                                sent = p;
                        else
                                ws = p;
                } else if (cjk_sentence_end_before(s, start, p))
                        sent = p;
        }
        if (para)
                return para;
        if (sent)
                return sent;
        if (ws)
                return ws;

        /* No boundary at all: cut at a character boundary, backing off at
         * most three continuation bytes (more can only be invalid input). */
        size_t p = end;
        for (unsigned i = 0; i < 3 && p > start + 1 && is_continuation(s[p]); i++)
                p--;
        if (is_continuation(s[p]))
                p = end;
        return p;
}

/**
 * kb_chunk() - split @text into overlapping chunks per @opts (NULL means
 * KB_CHUNK_OPTS_DEFAULT; chunk_size 0 means 1200). Chunks are at most
 * chunk_size bytes, end preferably at a paragraph, then a sentence, then
 * whitespace, never inside a UTF-8 sequence, and carry no leading or trailing
 * whitespace. The overlap (clamped to chunk_size/4 so chunking always makes
 * progress) starts at the first sentence start inside it, else on a word
 * boundary. Returns 0 with the arrays set, or
 * -EINVAL for a chunk_size outside [64, 1 MiB] or overlap >= chunk_size,
 * -ENOMEM.
 */
int kb_chunk(const char *text, size_t len, const KbChunkOpts *opts, size_t **ret_offsets, size_t **ret_lens,
             size_t *ret_n) {
        KbChunkOpts o = opts ? *opts : KB_CHUNK_OPTS_DEFAULT;
        const unsigned char *s = (const unsigned char *) text;

        if (!ret_offsets || !ret_lens || !ret_n || (!text && len > 0))
                return -EINVAL;
        if (o.chunk_size == 0)
                o.chunk_size = KB_CHUNK_OPTS_DEFAULT.chunk_size;
        if (o.chunk_size < KB_MIN_CHUNK_SIZE || o.chunk_size > KB_MAX_CHUNK_SIZE ||
            o.overlap >= o.chunk_size)
                return -EINVAL;
        o.overlap = MIN(o.overlap, o.chunk_size / 4);

        _cleanup_free_ size_t *offs = NULL, *lens = NULL;
        size_t n = 0, cap = 0;
        size_t start = 0;

        while (start < len && is_space(s[start]))
                start++;

        while (start < len) {
                size_t cut = len - start <= o.chunk_size ? len : chunk_cut(s, len, start, o.chunk_size);
                size_t e = cut;
                while (e > start && is_space(s[e - 1]))
                        e--;
                if (e > start) {
                        if (n == cap) {
                                size_t nc = cap ? cap * 2 : 16;
                                size_t *no = realloc(offs, nc * sizeof(size_t));
                                if (!no)
                                        return -ENOMEM;
                                offs = no;
                                size_t *nl = realloc(lens, nc * sizeof(size_t));
                                if (!nl)
                                        return -ENOMEM;
                                lens = nl;
                                cap = nc;
                        }
                        offs[n] = start;
                        lens[n] = e - start;
                        n++;
                }
                if (cut >= len)
                        break;

                /* Next chunk: back up by the overlap, then forward to the
                 * start of a word so the overlap never begins mid-word. */
                size_t ns = cut;
                if (o.overlap > 0 && cut - o.overlap > start) {
                        /* Prefer the first sentence start in the overlap, so
                         * the next chunk begins with a whole sentence. */
                        size_t w = cut - o.overlap, p;
                        for (p = w; p < cut; p++)
                                if (is_space(s[p - 1]) && p >= w + 1 &&
                                    (s[p - 1] == '\n' || s[p - 2] == '.' || s[p - 2] == '!' ||
                                     s[p - 2] == '?'))
                                        break;
                        if (p < cut && !is_space(s[p]))
                                ns = p;
                        else {
                                ns = w;
                                while (ns < cut && !is_space(s[ns - 1]))
                                        ns++;
                        }
                }
                while (ns < len && is_space(s[ns]))
                        ns++;
                if (ns <= start) /* cannot happen, but never loop forever */
                        ns = cut;
                start = ns;
        }

        *ret_offsets = TAKE_PTR(offs);
        *ret_lens = TAKE_PTR(lens);
        *ret_n = n;
        return 0;
}

/* ---- FTS5 query building ---------------------------------------------- */

typedef struct Term {
        char *s;
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
        size_t n_terms = 0, n_content = 0;
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

                int dup = 0;
                for (size_t k = 0; k < n_terms && !dup; k++)
                        dup = terms[k].n == n && memcmp(terms[k].s, clean + b, n) == 0;
                if (dup)
                        continue;
                terms[n_terms].s = clean + b;
                terms[n_terms].n = n;
                terms[n_terms].stop = kb_is_stop_word(clean + b, n);
                if (!terms[n_terms].stop)
                        n_content++;
                n_terms++;
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

static const char schema_sql[] =
        "CREATE TABLE IF NOT EXISTS documents ("
        "  id INTEGER PRIMARY KEY,"
        "  title TEXT NOT NULL UNIQUE,"
        "  source TEXT NOT NULL DEFAULT '',"
        "  bytes INTEGER NOT NULL,"
        "  n_chunks INTEGER NOT NULL,"
        "  ingested_at INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS chunks ("
        "  id INTEGER PRIMARY KEY,"
        "  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
        "  idx INTEGER NOT NULL,"
        "  text TEXT NOT NULL,"
        "  UNIQUE (doc_id, idx));"
        "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5("
        "  text, content='chunks', content_rowid='id',"
        "  tokenize='unicode61 remove_diacritics 2');"
        "CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN"
        "  INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);"
        "END;"
        "CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN"
        "  INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);"
        "END;"
        "CREATE TRIGGER IF NOT EXISTS chunks_au AFTER UPDATE ON chunks BEGIN"
        "  INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);"
        "  INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);"
        "END;"
        "PRAGMA user_version = 1;";

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

/**
 * kb_open() - open (creating if needed) the database at @path with WAL, a
 * busy timeout and foreign keys, and create the schema. With @read_only the
 * file must exist and hold a schema (-ENOENT / -ENOMEDIUM otherwise); the
 * handle then only searches and lists. A newer schema version is refused
 * with -EPROTONOSUPPORT. Returns 0 and the handle in @ret, or -errno.
 */
int kb_open(const char *path, int read_only, Kb **ret) {
        if (isempty(path) || !ret)
                return -EINVAL;

        Kb *kb = calloc(1, sizeof(Kb));
        if (!kb)
                return -ENOMEM;
        kb->read_only = !!read_only;

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

        r = kb_exec(kb, "PRAGMA foreign_keys = ON");
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
        if (r < KB_SCHEMA_VERSION) {
                if (read_only) {
                        r = -ENOMEDIUM;
                        goto fail;
                }
                r = kb_exec(kb, "BEGIN IMMEDIATE");
                if (r < 0)
                        goto fail;
                r = kb_exec(kb, schema_sql);
                if (r < 0) {
                        (void) kb_exec(kb, "ROLLBACK");
                        goto fail;
                }
                r = kb_exec(kb, "COMMIT");
                if (r < 0) {
                        (void) kb_exec(kb, "ROLLBACK");
                        goto fail;
                }
        }

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
        if (kb->search)
                sqlite3_finalize(kb->search);
        if (kb->db)
                sqlite3_close_v2(kb->db);
        free(kb);
        return NULL;
}

/* ---- ingest / delete --------------------------------------------------- */

static int kb_ingest_locked(Kb *kb, const char *title, const char *source, const char *text, size_t len,
                            const size_t *offs, const size_t *lens, size_t n) {
        _cleanup_stmt_ sqlite3_stmt *del_chunks = NULL, *del_doc = NULL, *ins_doc = NULL, *ins_chunk = NULL;
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
                       "INSERT INTO documents (title, source, bytes, n_chunks, ingested_at) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)",
                       &ins_doc);
        if (r < 0)
                return r;
        sqlite3_bind_text(ins_doc, 1, title, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_doc, 2, source, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins_doc, 3, (sqlite3_int64) len);
        sqlite3_bind_int64(ins_doc, 4, (sqlite3_int64) n);
        sqlite3_bind_int64(ins_doc, 5, (sqlite3_int64) time(NULL));
        rc = sqlite3_step(ins_doc);
        if (rc != SQLITE_DONE)
                return errno_from_sqlite(rc) ?: -EIO;
        sqlite3_int64 doc_id = sqlite3_last_insert_rowid(kb->db);

        r = kb_prepare(kb, "INSERT INTO chunks (doc_id, idx, text) VALUES (?1, ?2, ?3)", &ins_chunk);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                sqlite3_reset(ins_chunk);
                sqlite3_bind_int64(ins_chunk, 1, doc_id);
                sqlite3_bind_int64(ins_chunk, 2, (sqlite3_int64) i);
                sqlite3_bind_text(ins_chunk, 3, text + offs[i], (int) lens[i], SQLITE_STATIC);
                rc = sqlite3_step(ins_chunk);
                if (rc != SQLITE_DONE)
                        return errno_from_sqlite(rc) ?: -EIO;
                if (kb_test_crash_after_chunks > 0 && i + 1 >= kb_test_crash_after_chunks)
                        _exit(77);
        }
        return 0;
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
        if (!kb || isempty(title) || (!text && len > 0))
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

        _cleanup_free_ size_t *offs = NULL, *lens = NULL;
        size_t n;
        int r = kb_chunk(clean, clen, opts, &offs, &lens, &n);
        if (r < 0)
                return r;
        if (n == 0)
                return -EINVAL; /* whitespace only */
        if (n > INT32_MAX)
                return -E2BIG;

        r = kb_exec(kb, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = kb_ingest_locked(kb, t, src, clean, clen, offs, lens, n);
        if (r >= 0)
                r = kb_exec(kb, "COMMIT");
        if (r < 0) {
                if (!sqlite3_get_autocommit(kb->db))
                        (void) kb_exec(kb, "ROLLBACK");
                return r;
        }
        return (int) n;
}

/** kb_delete() - remove the document @title and its chunks in one
 * transaction. Returns 0, -ENOENT if absent, or -errno. */
int kb_delete(Kb *kb, const char *title) {
        if (!kb || isempty(title))
                return -EINVAL;
        if (kb->read_only)
                return -EROFS;

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
        return r < 0 ? r : 0;
}

/* ---- queries ----------------------------------------------------------- */

/** kb_list() - call @cb for every document ordered by title; stops and
 * returns @cb's value if it is non-zero. The strings in the KbDocInfo are
 * valid only during the call. Returns 0 or -errno. */
int kb_list(Kb *kb, int (*cb)(const KbDocInfo *doc, void *userdata), void *userdata) {
        if (!kb || !cb)
                return -EINVAL;

        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = kb_prepare(
                kb, "SELECT title, source, n_chunks, bytes, ingested_at FROM documents ORDER BY title", &st);
        if (r < 0)
                return r;
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
                };
                if (!d.title)
                        return -ENOMEM;
                if (!d.source)
                        d.source = "";
                r = cb(&d, userdata);
                if (r != 0)
                        return r;
        }
}

/** kb_count() - the number of documents, or -errno. */
int kb_count(Kb *kb) {
        if (!kb)
                return -EINVAL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = kb_prepare(kb, "SELECT count(*) FROM documents", &st);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return errno_from_sqlite(rc) ?: -EIO;
        sqlite3_int64 c = sqlite3_column_int64(st, 0);
        return c > INT32_MAX ? INT32_MAX : (int) c;
}

/** kb_hits_free() - free @n hits returned by kb_search(); NULL is a no-op. */
void kb_hits_free(KbHit *hits, size_t n) {
        if (!hits)
                return;
        for (size_t i = 0; i < n; i++) {
                free(hits[i].title);
                free(hits[i].source);
                free(hits[i].snippet);
                free(hits[i].text);
        }
        free(hits);
}

static char *strdup_col(sqlite3_stmt *st, int col) {
        const char *s = (const char *) sqlite3_column_text(st, col);
        return strdup(s ?: "");
}

/**
 * kb_search() - the best @limit (capped at 100) chunks for the free-text
 * @query, built into a safe expression by kb_fts_query() after truncating
 * the query to KB_MAX_QUERY_BYTES. Ranked by bm25; score is -bm25 (> 0);
 * snippet is plain text with matches in '[' ']' and "..." at cuts. A query
 * without words, or @limit 0, gives 0 hits. Returns 0 or -errno (database
 * errors only, never for the query's content).
 */
/* ---- snippets ----------------------------------------------------------- */

#define SNIPPET_WORDS 16u
#define SNIPPET_MAX_WORDS 4096u

typedef struct SnippetWord {
        size_t b, e; /* byte span in the text */
        int term;    /* index of the query term it matches, -1 if none */
} SnippetWord;

/* Does the word @w (@n bytes) equal query term @t (@tn bytes, lower case)? */
static int word_is_term(const char *w, size_t n, const char *t, size_t tn) {
        if (n != tn)
                return 0;
        for (size_t i = 0; i < n; i++)
                if ((char) tolower((unsigned char) w[i]) != t[i])
                        return 0;
        return 1;
}

/*
 * make_snippet() - the 16-word window of @text holding the most distinct
 * terms of the FTS5 expression @expr (as built by kb_fts_query: "a" OR
 * "b"), matches marked [like this], "..." where the text goes on. Done in C
 * rather than with FTS5's snippet(), which re-tokenises every hit and cost
 * two thirds of a search. Returns a malloc'ed string, NULL on OOM.
 */
static char *make_snippet(const char *text, const char *expr) {
        const char *terms[KB_MAX_QUERY_TERMS];
        size_t term_len[KB_MAX_QUERY_TERMS], n_terms = 0, n = 0, len = strlen(text);
        _cleanup_free_ SnippetWord *w = NULL;
        const unsigned char *s = (const unsigned char *) text;
        size_t best = 0, end, o = 0;
        int best_count = -1;
        char *out;

        for (const char *p = expr; n_terms < KB_MAX_QUERY_TERMS && (p = strchr(p, '"'));) {
                const char *q = strchr(p + 1, '"');
                if (!q)
                        break;
                terms[n_terms] = p + 1;
                term_len[n_terms++] = (size_t) (q - p - 1);
                p = q + 1;
        }
        w = malloc(sizeof *w * SNIPPET_MAX_WORDS);
        if (!w)
                return NULL;
        for (size_t i = 0; i < len && n < SNIPPET_MAX_WORDS;) {
                size_t l = kb_utf8_valid_len(s + i, len - i), b;
                if (!kb_is_word_cp(kb_utf8_decode(s + i, l))) {
                        i += l;
                        continue;
                }
                for (b = i; i < len; i += l) {
                        l = kb_utf8_valid_len(s + i, len - i);
                        if (!kb_is_word_cp(kb_utf8_decode(s + i, l)))
                                break;
                }
                w[n] = (SnippetWord){.b = b, .e = i, .term = -1};
                for (size_t k = 0; k < n_terms; k++)
                        if (word_is_term(text + b, i - b, terms[k], term_len[k])) {
                                w[n].term = (int) k;
                                break;
                        }
                n++;
        }
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

static int search(Kb *kb, const char *query, unsigned limit, int snippets, KbHit **ret_hits, size_t *ret_n) {
        if (!kb || !ret_hits || !ret_n)
                return -EINVAL;

        *ret_hits = NULL;
        *ret_n = 0;
        limit = MIN(limit, KB_MAX_HITS);
        if (!query || limit == 0)
                return 0;

        size_t ql = strnlen(query, KB_MAX_QUERY_BYTES + 1);
        _cleanup_free_ char *q = NULL;
        if (ql > KB_MAX_QUERY_BYTES) {
                /* Truncate at a character boundary; a cut word is just a word. */
                ql = KB_MAX_QUERY_BYTES;
                while (ql > 0 && is_continuation((unsigned char) query[ql]))
                        ql--;
        }
        q = strndup(query, ql);
        if (!q)
                return -ENOMEM;

        _cleanup_free_ char *expr = kb_fts_query(q);
        if (!expr)
                return -ENOMEM;
        if (!*expr)
                return 0;

        if (!kb->search) {
                int rc = sqlite3_prepare_v3(
                        kb->db,
                        "SELECT d.title, d.source, c.idx, bm25(chunks_fts), c.text "
                        "FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id "
                        "= c.doc_id "
                        "WHERE chunks_fts MATCH ?1 ORDER BY bm25(chunks_fts), c.id LIMIT ?2",
                        -1, SQLITE_PREPARE_PERSISTENT, &kb->search, NULL);
                if (rc != SQLITE_OK) {
                        log_debug("kb: prepare failed: %s", sqlite3_errmsg(kb->db));
                        return errno_from_sqlite(rc);
                }
        }
        _reset_stmt_ sqlite3_stmt *st = kb->search;
        sqlite3_bind_text(st, 1, expr, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, (int) limit);

        KbHit *hits = calloc(limit, sizeof(KbHit));
        if (!hits)
                return -ENOMEM;
        size_t n = 0;
        for (;;) {
                int rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW) {
                        log_debug("kb: search failed: %s", sqlite3_errmsg(kb->db));
                        kb_hits_free(hits, n);
                        return errno_from_sqlite(rc) ?: -EIO;
                }
                if (n >= limit)
                        break;
                KbHit *h = &hits[n++];
                h->title = strdup_col(st, 0);
                h->source = strdup_col(st, 1);
                h->chunk = (unsigned) sqlite3_column_int64(st, 2);
                h->score = -sqlite3_column_double(st, 3);
                if (!(h->score > 0))
                        h->score = 1e-9;
                h->text = strdup_col(st, 4);
                h->snippet = !h->text ? NULL : snippets ? make_snippet(h->text, expr) : strdup("");
                if (!h->title || !h->source || !h->snippet || !h->text) {
                        kb_hits_free(hits, n);
                        return -ENOMEM;
                }
        }
        if (n == 0) {
                free(hits);
                return 0;
        }
        *ret_hits = hits;
        *ret_n = n;
        return 0;
}

int kb_search(Kb *kb, const char *query, unsigned limit, KbHit **ret_hits, size_t *ret_n) {
        return search(kb, query, limit, 1, ret_hits, ret_n);
}

int kb_search_texts(Kb *kb, const char *query, unsigned limit, KbHit **ret_hits, size_t *ret_n) {
        return search(kb, query, limit, 0, ret_hits, ret_n);
}

/* ---- for kb-vocab.c -------------------------------------------------------- */

sqlite3 *kb_sqlite(Kb *kb) {
        return kb ? kb->db : NULL;
}
