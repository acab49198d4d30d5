/* kb-vocab.c — term statistics of a knowledge base read from its FTS5 index
 * (fts5vocab 'row': term, number of chunks) or, for a PostgreSQL handle,
 * from ts_stat() over the agent's tsvectors (kb-pg.c), kept in an
 * open-addressing hash table, and query tokenising through the index's own
 * tokenizer (FTS5's C API, or to_tsvector with the agent's configuration),
 * so that "licenses" is looked up as the stem the index stored. */
#include <sqlite3.h>
#include <stdatomic.h>

#include "kb-pg.h"
#include "kb-vocab.h"
#include "log.h"
#include "terms.h"
#include "util.h"

typedef struct Slot {
        uint32_t hash;
        uint32_t df;
        uint32_t off; /* into the arena; 0 = empty (the arena starts with a NUL) */
} Slot;

struct KbVocab {
        Slot *slots;
        size_t mask;
        size_t n;
        char *arena;
        size_t arena_len, arena_cap;
        uint32_t n_chunks;
        uint64_t stamp;
        atomic_uint n_ref; /* tables are shared between threads (kb-stats.h) */
};

static uint32_t str_hash(const char *s, size_t n) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < n; i++)
                h = (h ^ (unsigned char) s[i]) * 16777619u;
        return h ? h : 1;
}

KbVocab *kb_vocab_ref(KbVocab *v) {
        if (v)
                atomic_fetch_add_explicit(&v->n_ref, 1, memory_order_relaxed);
        return v;
}

KbVocab *kb_vocab_free(KbVocab *v) {
        if (!v || atomic_fetch_sub_explicit(&v->n_ref, 1, memory_order_acq_rel) > 1)
                return NULL;
        free(v->slots);
        free(v->arena);
        free(v);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(KbVocab *, kb_vocab_free);

static int vocab_grow(KbVocab *v) {
        size_t cap = v->slots ? (v->mask + 1) * 2 : 1024;
        Slot *s = calloc(cap, sizeof(Slot));
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; v->slots && i <= v->mask; i++) {
                if (!v->slots[i].off)
                        continue;
                size_t j = v->slots[i].hash & (cap - 1);
                while (s[j].off)
                        j = (j + 1) & (cap - 1);
                s[j] = v->slots[i];
        }
        free(v->slots);
        v->slots = s;
        v->mask = cap - 1;
        return 0;
}

static int vocab_add(KbVocab *v, const char *term, size_t len, uint32_t df) {
        if (v->n >= KB_VOCAB_MAX_TERMS)
                return 0;
        if (!v->slots || (v->n + 1) * 2 > v->mask + 1) {
                int r = vocab_grow(v);
                if (r < 0)
                        return r;
        }
        if (v->arena_len + len + 1 > v->arena_cap) {
                size_t cap = MAX(v->arena_cap * 2, v->arena_len + len + 1 + 4096);
                if (cap > UINT32_MAX)
                        return 0; /* 4 GiB of terms: keep what we have */
                char *a = realloc(v->arena, cap);
                if (!a)
                        return -ENOMEM;
                v->arena = a;
                v->arena_cap = cap;
        }
        uint32_t h = str_hash(term, len);
        size_t j = h & v->mask;
        while (v->slots[j].off)
                j = (j + 1) & v->mask;
        memcpy(v->arena + v->arena_len, term, len);
        v->arena[v->arena_len + len] = 0;
        v->slots[j] = (Slot){.hash = h, .df = df, .off = (uint32_t) v->arena_len};
        v->arena_len += len + 1;
        v->n++;
        return 0;
}

uint32_t kb_vocab_df(const KbVocab *v, const char *term) {
        if (!v || !v->slots || !term)
                return 0;
        size_t len = strlen(term);
        uint32_t h = str_hash(term, len);
        for (size_t j = h & v->mask; v->slots[j].off; j = (j + 1) & v->mask)
                if (v->slots[j].hash == h && streq(v->arena + v->slots[j].off, term))
                        return v->slots[j].df;
        return 0;
}

uint32_t kb_vocab_chunks(const KbVocab *v) {
        return v ? v->n_chunks : 0;
}

uint64_t kb_vocab_stamp(const KbVocab *v) {
        return v ? v->stamp : 0;
}

static int64_t single_int(sqlite3 *db, const char *sql) {
        sqlite3_stmt *st = NULL;
        int64_t x = -1;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
                x = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return x;
}

/* The index's averages (row 1) and structure (row 10: its segments and
 * write counter) change with every write to it, and only then: a
 * fingerprint of the content that any connection reads the same. */
uint64_t kb_change_stamp(Kb *kb) {
        if (kb_pg(kb))
                return kb_pg_change_stamp(kb_pg(kb));
        sqlite3 *db = kb ? kb_sqlite(kb) : NULL;
        sqlite3_stmt *st = NULL;
        uint64_t h = 14695981039346656037ULL;
        int rc;

        if (!db ||
            sqlite3_prepare_v2(db, "SELECT block FROM chunks_fts_data WHERE id IN (1, 10) ORDER BY id", -1,
                               &st, NULL) != SQLITE_OK) {
                sqlite3_finalize(st);
                return 0;
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const unsigned char *b = sqlite3_column_blob(st, 0);
                int n = sqlite3_column_bytes(st, 0);
                for (int k = 0; b && k < n; k++)
                        h = (h ^ b[k]) * 1099511628211ULL;
                h = (h ^ 0xff) * 1099511628211ULL;
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE && h ? h : 0;
}

int64_t kb_chunk_count(Kb *kb) {
        if (kb_pg(kb))
                return kb_pg_chunk_count(kb_pg(kb));
        sqlite3 *db = kb ? kb_sqlite(kb) : NULL;
        return db ? single_int(db, "SELECT count(*) FROM chunks") : -1;
}

/* An empty table stamped @stamp. */
static int vocab_new(uint64_t stamp, KbVocab **ret) {
        _cleanup_(kb_vocab_freep) KbVocab *v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        atomic_init(&v->n_ref, 1);
        /* offset 0 means "empty slot": start the arena with one NUL */
        v->arena = malloc(4096);
        if (!v->arena)
                return -ENOMEM;
        v->arena[0] = 0;
        v->arena_len = 1;
        v->arena_cap = 4096;
        v->stamp = stamp;
        *ret = TAKE_PTR(v);
        return 0;
}

static int vocab_add_cb(void *userdata, const char *term, size_t len, uint32_t df) {
        return vocab_add(userdata, term, len, df);
}

/* The PostgreSQL backend's statistics into a new table stamped @stamp. */
static int vocab_read_pg(Kb *kb, uint64_t stamp, KbVocab **ret) {
        _cleanup_(kb_vocab_freep) KbVocab *v = NULL;
        int r = vocab_new(stamp, &v);
        if (r < 0)
                return r;
        int64_t n = kb_pg_chunk_count(kb_pg(kb));
        if (n < 0)
                return -EIO;
        v->n_chunks = (uint32_t) MIN(n, (int64_t) UINT32_MAX);
        r = kb_pg_vocab(kb_pg(kb), vocab_add_cb, v);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

/* One scan of @db's index into a new table stamped @stamp. */
static int vocab_read(sqlite3 *db, uint64_t stamp, KbVocab **ret) {
        _cleanup_(kb_vocab_freep) KbVocab *v = NULL;
        sqlite3_stmt *st = NULL;
        int r, rc;

        r = vocab_new(stamp, &v);
        if (r < 0)
                return r;

        int64_t n = single_int(db, "SELECT count(*) FROM chunks");
        if (n < 0)
                return -EIO;
        v->n_chunks = (uint32_t) MIN(n, (int64_t) UINT32_MAX);

        rc = sqlite3_exec(db,
                          "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kb_vocab_row USING "
                          "fts5vocab(main, 'chunks_fts', 'row')",
                          NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                log_debug("kb: cannot create the vocabulary view: %s", sqlite3_errmsg(db));
                return -EIO;
        }
        if (sqlite3_prepare_v2(db, "SELECT term, doc FROM temp.kb_vocab_row", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *t = (const char *) sqlite3_column_text(st, 0);
                int len = sqlite3_column_bytes(st, 0);
                int64_t df = sqlite3_column_int64(st, 1);
                if (!t || len <= 0 || df <= 0)
                        continue;
                r = vocab_add(v, t, (size_t) len, (uint32_t) MIN(df, (int64_t) UINT32_MAX));
                if (r < 0)
                        break;
        }
        if (r >= 0 && rc != SQLITE_DONE)
                r = -EIO;
        sqlite3_finalize(st);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

int kb_vocab_load(Kb *kb, KbVocab **ret) {
        if (kb_pg(kb))
                return ret ? vocab_read_pg(kb, kb_change_stamp(kb), ret) : -EINVAL;
        sqlite3 *db = kb ? kb_sqlite(kb) : NULL;
        if (!db || !ret)
                return -EINVAL;
        return vocab_read(db, kb_change_stamp(kb), ret);
}

const char *kb_file(Kb *kb) {
        if (kb_pg(kb))
                return kb_pg_locator_of(kb_pg(kb));
        sqlite3 *db = kb ? kb_sqlite(kb) : NULL;
        const char *f = db ? sqlite3_db_filename(db, "main") : NULL;
        return f && *f ? f : NULL;
}

int kb_vocab_reload(Kb *kb, uint64_t known, KbVocab **ret) {
        if (!kb || !ret)
                return -EINVAL;
        *ret = NULL;
        uint64_t stamp = kb_change_stamp(kb);
        if (stamp == 0)
                return kb_pg(kb) ? -ECONNREFUSED : -EIO;
        if (stamp == known)
                return 0;
        return kb_pg(kb) ? vocab_read_pg(kb, stamp, ret) : vocab_read(kb_sqlite(kb), stamp, ret);
}

int kb_vocab_load_file(const char *path, uint64_t stamp, KbVocab **ret) {
        sqlite3 *db = NULL;
        if (!path || !ret)
                return -EINVAL;
        if (kb_pg_is_locator(path)) {
                Kb *kb = NULL;
                int r = kb_open(path, 1, &kb);
                if (r >= 0)
                        r = vocab_read_pg(kb, stamp, ret);
                kb_close(kb);
                return r;
        }
        /* a connection of this thread's own: the loop keeps using kb's */
        int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                sqlite3_close(db);
                return -EIO;
        }
        sqlite3_busy_timeout(db, 5000);
        int r = vocab_read(db, stamp, ret);
        sqlite3_close(db);
        return r;
}

/* ---- the index's tokenizer ------------------------------------------------ */

fts5_api *kb_fts5_api(sqlite3 *db) {
        fts5_api *api = NULL;
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) != SQLITE_OK)
                return NULL;
        sqlite3_bind_pointer(st, 1, (void *) &api, "fts5_api_ptr", NULL);
        (void) sqlite3_step(st);
        sqlite3_finalize(st);
        return api;
}

/* The words of the chunks_fts table's tokenize= option, e.g. "porter",
 * "unicode61", "remove_diacritics", "2", in @buf; "unicode61" if unset. */
static size_t tokenize_args(sqlite3 *db, char *buf, size_t size, const char **argv, size_t max) {
        sqlite3_stmt *st = NULL;
        const char *spec = "unicode61";
        size_t n = 0;

        if (sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE name = 'chunks_fts'", -1, &st,
                               NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
                const char *sql = (const char *) sqlite3_column_text(st, 0);
                const char *p = sql ? strstr(sql, "tokenize") : NULL;
                if (p && (p = strpbrk(p, "'\""))) {
                        const char *q = strchr(p + 1, *p);
                        if (q && (size_t) (q - p - 1) < size) {
                                memcpy(buf, p + 1, (size_t) (q - p - 1));
                                buf[q - p - 1] = 0;
                                spec = NULL;
                        }
                }
        }
        sqlite3_finalize(st);
        if (spec)
                snprintf(buf, size, "%s", spec);
        for (char *s = buf, *save = NULL; n < max && (s = strtok_r(s, " \t", &save)); s = NULL)
                argv[n++] = s;
        return n;
}

int kb_tokenizer_read(sqlite3 *db, KbTokenizer *ret) {
        if (!db || !ret)
                return -EINVAL;
        *ret = (KbTokenizer){0};
        ret->api = kb_fts5_api(db);
        if (!ret->api)
                return -ENOTSUP;
        ret->argc = tokenize_args(db, ret->spec, sizeof(ret->spec), ret->argv, ELEMENTSOF(ret->argv));
        return ret->argc > 0 ? 0 : -ENOTSUP;
}

typedef struct TokenSink {
        char **v;
        size_t n, max;
        int err;
} TokenSink;

static int on_token(void *ud, int tflags, const char *tok, int len, int start, int end) {
        TokenSink *s = ud;
        if (len <= 0 || s->n >= s->max || (tflags & FTS5_TOKEN_COLOCATED))
                return SQLITE_OK;
        char w[TERM_MAX_BYTES];
        if ((size_t) len < sizeof(w)) {
                memcpy(w, tok, (size_t) len);
                w[len] = 0;
                if (terms_is_function_word(w))
                        return SQLITE_OK; /* "les", "what": no domain in them */
        }
        for (size_t i = 0; i < s->n; i++)
                if (strlen(s->v[i]) == (size_t) len && memcmp(s->v[i], tok, (size_t) len) == 0)
                        return SQLITE_OK;
        char *t = strndup(tok, (size_t) len);
        if (!t) {
                s->err = -ENOMEM;
                return SQLITE_NOMEM;
        }
        s->v[s->n++] = t;
        return SQLITE_OK;
}

int kb_query_terms(Kb *kb, const char *query, size_t max, char ***ret, size_t *ret_n) {
        fts5_tokenizer tok;
        void *tok_ud = NULL;
        Fts5Tokenizer *t = NULL;

        if (kb_pg(kb))
                return kb_pg_query_terms(kb_pg(kb), query, max, ret, ret_n);
        /* read when the handle was opened: tokenizing asks the database nothing */
        const KbTokenizer *k = kb ? kb_tokenizer(kb) : NULL;
        if (!k || !query || !ret || !ret_n || max == 0)
                return -EINVAL;
        if (!k->api || k->argc == 0)
                return -ENOTSUP;
        fts5_api *api = k->api;
        if (api->xFindTokenizer(api, k->argv[0], &tok_ud, &tok) != SQLITE_OK)
                return -ENOTSUP;
        if (tok.xCreate(tok_ud, k->argc > 1 ? (const char **) k->argv + 1 : NULL, (int) k->argc - 1, &t) !=
            SQLITE_OK)
                return -ENOTSUP;

        TokenSink s = {.v = calloc(max, sizeof(char *)), .max = max};
        if (!s.v) {
                tok.xDelete(t);
                return -ENOMEM;
        }
        size_t ql = strnlen(query, KB_MAX_QUERY_BYTES);
        (void) tok.xTokenize(t, &s, FTS5_TOKENIZE_QUERY, query, (int) ql, on_token);
        tok.xDelete(t);
        if (s.err < 0) {
                strv_free_n(s.v, s.n);
                return s.err;
        }
        *ret = s.v;
        *ret_n = s.n;
        return 0;
}

/* ---- training sample --------------------------------------------------------- */

int kb_sample_chunks(Kb *kb, size_t max, size_t max_chars, char ***ret, size_t *ret_n) {
        sqlite3 *db = kb ? kb_sqlite(kb) : NULL;
        sqlite3_stmt *st = NULL;
        char **v = NULL;
        size_t n = 0;
        int r = 0, rc = SQLITE_DONE;

        if (kb_pg(kb))
                return kb_pg_sample_chunks(kb_pg(kb), max, max_chars, ret, ret_n);
        if (!db || !ret || !ret_n)
                return -EINVAL;
        *ret = NULL;
        *ret_n = 0;
        int64_t lo = single_int(db, "SELECT ifnull(min(id), 0) FROM chunks");
        int64_t hi = single_int(db, "SELECT ifnull(max(id), -1) FROM chunks");
        if (lo < 0 || hi < -1)
                return -EIO;
        int64_t total = single_int(db, "SELECT count(*) FROM chunks");
        if (total < 0)
                return -EIO;
        if (hi < lo || total == 0 || max == 0)
                return 0;
        int all = total <= (int64_t) max; /* then every chunk, in id order */
        /* @max seeks to evenly spaced ids (not a scan: a large base has
         * megabytes of text in the table) */
        if (sqlite3_prepare_v2(db,
                               "SELECT c.id, d.title || char(10) || substr(c.text, 1, ?2) FROM chunks c "
                               "JOIN documents d ON d.id = c.doc_id WHERE c.id >= ?1 ORDER BY c.id LIMIT 1",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        v = calloc(max, sizeof(char *));
        if (!v) {
                sqlite3_finalize(st);
                return -ENOMEM;
        }
        double span = (double) (hi - lo + 1);
        int64_t next = lo;
        for (size_t k = 0; k < max && n < max; k++) {
                int64_t want = all ? next : lo + (int64_t) (span * (double) k / (double) max);
                if (want < next)
                        want = next;
                if (want > hi)
                        break;
                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, want);
                sqlite3_bind_int64(st, 2, (sqlite3_int64) MIN(max_chars, (size_t) INT32_MAX));
                rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW)
                        break;
                next = sqlite3_column_int64(st, 0) + 1;
                const char *t = (const char *) sqlite3_column_text(st, 1);
                if (!t)
                        continue;
                if (!(v[n] = strdup(t))) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        if (r >= 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
                r = -EIO;
        sqlite3_finalize(st);
        if (r < 0) {
                strv_free_n(v, n);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}
