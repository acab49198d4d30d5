/* kb-pg.c — the knowledge base in PostgreSQL (libpq): the shared schema
 * (documents, chunks with a weighted tsvector under a GIN index, and a row
 * per agent with its change counter and bm25 statistics), connecting with
 * bounded timeouts and reconnecting on the next call after a failure,
 * ingest and delete as one transaction each, and search: candidates by
 * bm25 computed from the tsvectors' positions in SQL, reranked in C by
 * kb-rank.c's coverage and proximity bonus and given kb-rank.c's
 * snippets, so hits read the same as the SQLite backend's. Synchronous
 * here; the loop's searches run the same statement and ranking on
 * kb-pg-async.c's non-blocking pool. See docs/knowledge.md. */
#include <libpq-fe.h>
#include <libstemmer.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>

#include "file-read.h"
#include "kb-pg-terms.h"
#include "kb-pg.h"
#include "kb-rank.h"
#include "kb-stats.h"
#include "kb-text.h"
#include "log.h"
#include "strbuf.h"
#include "terms.h"
#include "util.h"

#define KB_PG_MAX_PASSWORD_BYTES 1024u
#define KB_PG_MAX_LOCATOR_BYTES 128u
#define KB_PG_MAX_HITS 100u
/* One statement's array parameter: a document's chunks (overlapping by a
 * fraction, every byte escaped at worst) fit with room to spare. */
#define KB_PG_MAX_ARRAY_BYTES ((size_t) KB_MAX_DOCUMENT_BYTES * 6)

/* The crash test hook of kb.c: exit in the middle of the transaction. */
extern unsigned kb_test_crash_after_chunks;

struct KbPg {
        PGconn *conn;
        char *locator;
        char *agent;
        char *language;
        int read_only;
        int schema_ok;              /* created (read-write) or found (read-only) on this database */
        int down;                   /* the last connection attempt failed: logged once, not per call */
        sqlite3 *mem;               /* an in-memory SQLite connection, only for its FTS5 tokenizer */
        KbRank *rank;               /* bonus and snippets as the SQLite backend computes them */
        struct sb_stemmer *stemmer; /* the language's, for query terms; made at first use */
};

static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static char *config_conninfo, *config_read_conninfo, *config_password_file;
static unsigned config_pool_size = KB_PG_DEFAULT_POOL_SIZE, config_pool_queue = KB_PG_DEFAULT_POOL_QUEUE;
static unsigned config_prune_chunks = KB_PG_DEFAULT_PRUNE_CHUNKS;
static unsigned config_connect_timeout_s = KB_PG_DEFAULT_CONNECT_TIMEOUT_S;
static unsigned config_statement_timeout_ms = KB_PG_DEFAULT_STATEMENT_TIMEOUT_MS;

static const char *const languages[] = {"english", "german", "french", "spanish", "simple"};

/*
 * One advisory lock key for creating the schema (two instances starting
 * at once would otherwise race on CREATE ... IF NOT EXISTS).
 */
const char kb_pg_schema_sql[] =
        "SELECT pg_advisory_xact_lock(7231000001);"
        "CREATE TABLE IF NOT EXISTS moa_kb_agents ("
        "  agent text PRIMARY KEY,"
        "  stamp bigint NOT NULL DEFAULT 0,"
        "  n_chunks bigint NOT NULL DEFAULT 0,"
        "  tokens bigint NOT NULL DEFAULT 0);"
        "CREATE TABLE IF NOT EXISTS moa_kb_documents ("
        "  id bigserial PRIMARY KEY,"
        "  agent text NOT NULL,"
        "  title text NOT NULL,"
        "  source text NOT NULL DEFAULT '',"
        "  bytes bigint NOT NULL,"
        "  n_chunks integer NOT NULL,"
        "  ingested_at bigint NOT NULL,"
        "  sha256 text NOT NULL DEFAULT '',"
        "  file_bytes bigint,"
        "  mtime bigint,"
        "  UNIQUE (agent, title));"
        "CREATE TABLE IF NOT EXISTS moa_kb_chunks ("
        "  id bigserial PRIMARY KEY,"
        "  doc_id bigint NOT NULL REFERENCES moa_kb_documents(id) ON DELETE CASCADE,"
        "  agent text NOT NULL,"
        "  idx integer NOT NULL,"
        "  text text NOT NULL,"
        "  heading text NOT NULL,"
        "  tsv tsvector NOT NULL,"
        "  n_tokens integer NOT NULL,"
        "  UNIQUE (doc_id, idx));"
        "CREATE INDEX IF NOT EXISTS moa_kb_chunks_tsv ON moa_kb_chunks USING gin (tsv);"
        "CREATE INDEX IF NOT EXISTS moa_kb_chunks_agent ON moa_kb_chunks (agent, id);"
        /* listing pages by title in byte order (kb_pg_list_page()) */
        "CREATE INDEX IF NOT EXISTS moa_kb_documents_title_c ON moa_kb_documents (agent, title COLLATE "
        "\"C\");";

/* ---- configuration and locators ------------------------------------------------ */

int kb_pg_configure(const KbPgConfig *cfg) {
        char *c = NULL, *rc = NULL, *p = NULL;

        if ((cfg && cfg->conninfo && !(c = strdup(cfg->conninfo))) ||
            (cfg && cfg->read_conninfo && !(rc = strdup(cfg->read_conninfo))) ||
            (cfg && cfg->password_file && !(p = strdup(cfg->password_file)))) {
                free(c);
                free(rc);
                return -ENOMEM;
        }
        pthread_mutex_lock(&config_lock);
        free(config_conninfo);
        free(config_read_conninfo);
        free(config_password_file);
        config_conninfo = c;
        config_read_conninfo = rc;
        config_password_file = p;
        config_pool_size =
                cfg && cfg->pool_size ? MIN(cfg->pool_size, KB_PG_MAX_POOL_SIZE) : KB_PG_DEFAULT_POOL_SIZE;
        config_pool_queue = cfg && cfg->pool_queue ? MIN(cfg->pool_queue, KB_PG_MAX_POOL_QUEUE)
                                                   : KB_PG_DEFAULT_POOL_QUEUE;
        config_prune_chunks = cfg && cfg->prune_chunks ? cfg->prune_chunks : KB_PG_DEFAULT_PRUNE_CHUNKS;
        config_connect_timeout_s =
                cfg && cfg->connect_timeout_s ? cfg->connect_timeout_s : KB_PG_DEFAULT_CONNECT_TIMEOUT_S;
        config_statement_timeout_ms = cfg && cfg->statement_timeout_ms ? cfg->statement_timeout_ms
                                                                       : KB_PG_DEFAULT_STATEMENT_TIMEOUT_MS;
        pthread_mutex_unlock(&config_lock);
        return 0;
}

unsigned kb_pg_pool_size(void) {
        pthread_mutex_lock(&config_lock);
        unsigned n = config_pool_size;
        pthread_mutex_unlock(&config_lock);
        return n;
}

struct KbRank *kb_pg_rank(KbPg *pg) {
        return pg ? pg->rank : NULL;
}

unsigned kb_pg_prune_chunks(void) {
        pthread_mutex_lock(&config_lock);
        unsigned n = config_prune_chunks;
        pthread_mutex_unlock(&config_lock);
        return n;
}

unsigned kb_pg_pool_queue(void) {
        pthread_mutex_lock(&config_lock);
        unsigned n = config_pool_queue;
        pthread_mutex_unlock(&config_lock);
        return n;
}

unsigned kb_pg_statement_timeout_ms(void) {
        pthread_mutex_lock(&config_lock);
        unsigned ms = config_statement_timeout_ms;
        pthread_mutex_unlock(&config_lock);
        return ms;
}

int kb_pg_is_locator(const char *path) {
        return path && strncmp(path, KB_PG_PREFIX, strlen(KB_PG_PREFIX)) == 0;
}

int kb_pg_language_valid(const char *language) {
        for (size_t i = 0; language && i < ELEMENTSOF(languages); i++)
                if (streq(language, languages[i]))
                        return 1;
        return 0;
}

/* An agent name as config.c allows it: a-z 0-9 _ -, 1-64 bytes. */
static int agent_name_valid(const char *s, size_t n) {
        if (n == 0 || n > 64)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
                      s[i] == '-'))
                        return 0;
        return 1;
}

char *kb_pg_locator(const char *agent, const char *language) {
        char *s = NULL;

        if (!agent || !agent_name_valid(agent, strlen(agent)))
                return NULL;
        if (!language)
                language = "english";
        if (!kb_pg_language_valid(language))
                return NULL;
        if (asprintf(&s, KB_PG_PREFIX "%s:%s", agent, language) < 0)
                return NULL;
        return s;
}

/* "postgresql:AGENT[:LANGUAGE]" into its parts. */
static int parse_locator(const char *locator, char **ret_agent, char **ret_language) {
        if (!kb_pg_is_locator(locator) || strlen(locator) > KB_PG_MAX_LOCATOR_BYTES)
                return -EINVAL;
        const char *a = locator + strlen(KB_PG_PREFIX), *colon = strchr(a, ':');
        size_t n = colon ? (size_t) (colon - a) : strlen(a);
        const char *lang = colon ? colon + 1 : "english";

        if (!agent_name_valid(a, n) || !kb_pg_language_valid(lang))
                return -EINVAL;
        *ret_agent = strndup(a, n);
        *ret_language = strdup(lang);
        if (!*ret_agent || !*ret_language) {
                free(*ret_agent);
                free(*ret_language);
                return -ENOMEM;
        }
        return 0;
}

/* ---- connection ----------------------------------------------------------------- */

void kb_pg_notice(void *arg, const char *message) {
        (void) arg;
        log_debug("kb: postgresql: %s", message);
}

/* The password file's first line (a credential file holds just the
 * password). Never logged. */
static int read_password(const char *path, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r = text_read_file(path, KB_PG_MAX_PASSWORD_BYTES, &buf, &len);
        if (r < 0)
                return r;
        buf[strcspn(buf, "\r\n")] = 0;
        if (!*buf)
                return -EINVAL;
        *ret = TAKE_PTR(buf);
        return 0;
}

static void password_free(char **p) {
        if (*p) {
                explicit_bzero(*p, strlen(*p));
                free(*p);
        }
}

/* SQLSTATE to -errno: the connection is gone, a timeout, or anything else. */
int kb_pg_error(const PGresult *res, PGconn *conn) {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

        if (!conn || PQstatus(conn) != CONNECTION_OK)
                return -ECONNRESET;
        if (!state)
                return -EIO;
        if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
                return -ECONNRESET;
        if (streq(state, "57014"))
                return -ETIMEDOUT;
        if (streq(state, "53100"))
                return -ENOSPC;
        if (strncmp(state, "28", 2) == 0 || streq(state, "42501"))
                return -EACCES;
        return -EIO;
}

static int pg_schema(KbPg *pg, PGconn *c);

void kb_pg_settings_done(KbPgSettings *s) {
        if (!s)
                return;
        free(s->conninfo);
        password_free(&s->password);
        *s = (KbPgSettings){0};
}

static int settings(KbPgSettings *ret, int pool) {
        _cleanup_free_ char *password_file = NULL;
        KbPgSettings *s = ret;
        int r;

        /* filled in place: the arrays point into it */
        *s = (KbPgSettings){0};
        pthread_mutex_lock(&config_lock);
        const char *conninfo = pool && config_read_conninfo ? config_read_conninfo : config_conninfo;
        s->conninfo = conninfo ? strdup(conninfo) : NULL;
        password_file = config_password_file ? strdup(config_password_file) : NULL;
        snprintf(s->connect_timeout, sizeof(s->connect_timeout), "%u", config_connect_timeout_s);
        s->connect_timeout_s = config_connect_timeout_s;
        s->statement_timeout_ms = config_statement_timeout_ms;
        pthread_mutex_unlock(&config_lock);

        if (!s->conninfo) {
                log_error("kb: knowledge.backend is postgresql but no knowledge.conninfo is set");
                return -ENOTCONN;
        }
        if (password_file) {
                r = read_password(password_file, &s->password);
                if (r < 0) {
                        kb_pg_settings_done(s);
                        return log_error_errno(r, "kb: cannot read the PostgreSQL password from %s",
                                               password_file);
                }
        }
        /* connect_timeout first, so the conninfo's own overrides it */
        s->keys[0] = "connect_timeout";
        s->values[0] = s->connect_timeout;
        s->keys[1] = "dbname";
        s->values[1] = s->conninfo;
        s->keys[2] = "application_name";
        s->values[2] = "moad";
        s->keys[3] = s->password ? "password" : NULL;
        s->values[3] = s->password;
        return 0;
}

int kb_pg_settings(KbPgSettings *ret) {
        return settings(ret, 0);
}

int kb_pg_pool_settings(KbPgSettings *ret) {
        return settings(ret, 1);
}

static int pg_connect(KbPg *pg) {
        _cleanup_(kb_pg_settings_done) KbPgSettings set = {0};
        char statement[64];
        int r;

        r = kb_pg_settings(&set);
        if (r < 0)
                return r;
        PGconn *c = PQconnectdbParams(set.keys, set.values, 1);
        if (!c)
                return -ENOMEM;
        if (PQstatus(c) != CONNECTION_OK) {
                /* libpq's message names the server, never the password */
                const char *m = PQerrorMessage(c);
                log_full(pg->down ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR, 0, NULL,
                         "kb: %s: cannot connect to PostgreSQL: %.*s", pg->locator, (int) strcspn(m, "\n"),
                         m);
                pg->down = 1;
                PQfinish(c);
                return -ECONNREFUSED;
        }
        PQsetNoticeProcessor(c, kb_pg_notice, NULL);
        snprintf(statement, sizeof(statement), "SET statement_timeout = %u", set.statement_timeout_ms);
        PGresult *res = PQexec(c, statement);
        r = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : kb_pg_error(res, c);
        PQclear(res);
        if (r < 0) {
                log_error("kb: PostgreSQL: cannot set statement_timeout: %s", PQerrorMessage(c));
                PQfinish(c);
                return r;
        }
        if (!pg->schema_ok) {
                r = pg_schema(pg, c);
                if (r < 0) {
                        PQfinish(c);
                        return r;
                }
                pg->schema_ok = 1;
        }
        if (pg->down)
                log_info("kb: %s: connected to PostgreSQL again", pg->locator);
        pg->down = 0;
        pg->conn = c;
        return 0;
}

/* A connection, made again if the last one broke (the server restarted or
 * went away): every call after a failure tries once more. */
static int pg_ensure(KbPg *pg) {
        if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
                return 0;
        if (pg->conn) {
                log_info("kb: %s: the PostgreSQL connection was lost, reconnecting", pg->locator);
                PQfinish(pg->conn);
                pg->conn = NULL;
        }
        return pg_connect(pg);
}

/* Runs @sql with text parameters; a result of @want status in *ret, else
 * -errno (logged at debug; the caller decides what the user sees). */
static int pg_exec(KbPg *pg, const char *sql, int n, const char *const *params, ExecStatusType want,
                   PGresult **ret) {
        kb_note_statement();
        int r = pg_ensure(pg);
        if (r < 0)
                return r;
        PGresult *res = PQexecParams(pg->conn, sql, n, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != want) {
                r = kb_pg_error(res, pg->conn);
                log_debug("kb: %s: PostgreSQL: %s", pg->locator,
                          res ? PQresultErrorMessage(res) : PQerrorMessage(pg->conn));
                PQclear(res);
                if (r == -ECONNRESET) {
                        PQfinish(pg->conn);
                        pg->conn = NULL;
                }
                return r;
        }
        if (ret)
                *ret = res;
        else
                PQclear(res);
        return 0;
}

static int pg_command(KbPg *pg, const char *sql, int n, const char *const *params) {
        return pg_exec(pg, sql, n, params, PGRES_COMMAND_OK, NULL);
}

static void pg_rollback(KbPg *pg) {
        if (pg->conn && PQtransactionStatus(pg->conn) != PQTRANS_IDLE) {
                PGresult *res = PQexec(pg->conn, "ROLLBACK");
                PQclear(res);
        }
}

static void pqclearp(PGresult **r) {
        PQclear(*r);
}
#define _cleanup_res_ _cleanup_(pqclearp)

/* ---- open / close --------------------------------------------------------------- */

KbPg *kb_pg_close(KbPg *pg) {
        if (!pg)
                return NULL;
        if (pg->conn)
                PQfinish(pg->conn);
        kb_rank_free(pg->rank);
        if (pg->mem)
                sqlite3_close_v2(pg->mem);
        if (pg->stemmer)
                sb_stemmer_delete(pg->stemmer);
        free(pg->locator);
        free(pg->agent);
        free(pg->language);
        free(pg);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(KbPg *, kb_pg_close);

/* Creates the schema (read-write) or checks that it exists (read-only) on
 * the new connection @c. */
static int pg_schema(KbPg *pg, PGconn *c) {
        int r;

        if (pg->read_only) {
                PGresult *res = PQexec(c, "SELECT to_regclass('moa_kb_chunks') IS NOT NULL");
                r = PQresultStatus(res) != PGRES_TUPLES_OK ? kb_pg_error(res, c)
                    : !streq(PQgetvalue(res, 0, 0), "t")   ? -ENOMEDIUM
                                                           : 0;
                PQclear(res);
                return r;
        }
        /* several statements: the simple query protocol, one transaction */
        _cleanup_free_ char *sql = NULL;
        if (asprintf(&sql, "BEGIN; %s COMMIT;", kb_pg_schema_sql) < 0)
                return -ENOMEM;
        PGresult *res = PQexec(c, sql);
        r = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : kb_pg_error(res, c);
        if (r < 0)
                log_error("kb: %s: cannot create the knowledge schema: %s", pg->locator,
                          PQresultErrorMessage(res));
        PQclear(res);
        if (PQtransactionStatus(c) != PQTRANS_IDLE)
                PQclear(PQexec(c, "ROLLBACK"));
        return r;
}

/* A server that cannot be reached does not fail the open: the handle
 * connects on its first call and on every call after a failure, so an
 * agent opened while the database is down works once it is back. */
int kb_pg_open(const char *locator, int read_only, KbPg **ret) {
        _cleanup_(kb_pg_closep) KbPg *pg = calloc(1, sizeof(KbPg));
        int r;

        if (!pg)
                return -ENOMEM;
        pg->read_only = !!read_only;
        r = parse_locator(locator, &pg->agent, &pg->language);
        if (r < 0)
                return r;
        if (!(pg->locator = strdup(locator)))
                return -ENOMEM;
        if (sqlite3_open_v2(":memory:", &pg->mem, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK)
                return -ENOMEM;
        r = kb_rank_new(pg->mem, &pg->rank);
        if (r < 0)
                return r;
        r = pg_connect(pg);
        if (r < 0 && r != -ECONNREFUSED)
                return r;
        *ret = TAKE_PTR(pg);
        return 0;
}

int kb_pg_check(KbPg *pg) {
        if (!pg)
                return -EINVAL;
        return pg_exec(pg, "SELECT 1", 0, NULL, PGRES_TUPLES_OK, NULL);
}

const char *kb_pg_locator_of(KbPg *pg) {
        return pg ? pg->locator : NULL;
}

/* ---- ingest / delete ------------------------------------------------------------ */

/* Appends @s (@n bytes) as a double-quoted element of a PostgreSQL array
 * literal. */
static int array_append(StrBuf *b, const char *s, size_t n) {
        int r = strbuf_append(b, b->len ? ",\"" : "{\"", 2, KB_PG_MAX_ARRAY_BYTES);
        for (size_t i = 0; r >= 0 && i < n;) {
                size_t k = strcspn(s + i, "\"\\");
                k = MIN(k, n - i);
                r = strbuf_append(b, s + i, k, KB_PG_MAX_ARRAY_BYTES);
                i += k;
                if (r >= 0 && i < n) {
                        char esc[2] = {'\\', s[i++]};
                        r = strbuf_append(b, esc, 2, KB_PG_MAX_ARRAY_BYTES);
                }
        }
        return r < 0 ? r : strbuf_append(b, "\"", 1, KB_PG_MAX_ARRAY_BYTES);
}

static int array_end(StrBuf *b) {
        return strbuf_append(b, b->len ? "}" : "{}", b->len ? 1 : 2, KB_PG_MAX_ARRAY_BYTES);
}

/* After a change: the agent's change counter, and the chunk count and
 * token total bm25 needs (its N and average length). */
#define AGENT_STATS_SQL                                                                                     \
        "UPDATE moa_kb_agents a SET stamp = a.stamp + 1, n_chunks = s.n, tokens = s.tokens FROM "           \
        "(SELECT count(*) AS n, coalesce(sum(n_tokens), 0) AS tokens FROM moa_kb_chunks WHERE agent = $1) " \
        "s "                                                                                                \
        "WHERE a.agent = $1"

static int ingest_locked(KbPg *pg, const char *title, const char *source, const char *text, size_t len,
                         const KbChunks *c, const KbDocMeta *meta) {
        _cleanup_(strbuf_done) StrBuf texts = {0}, headings = {0};
        _cleanup_res_ PGresult *doc = NULL;
        char bytes[24], n_chunks[24], now[24], file_bytes[24], mtime[24];
        int r;

        const char *lock[] = {pg->agent};
        r = pg_exec(pg, "SELECT pg_advisory_xact_lock(hashtext('moa_kb:' || $1))", 1, lock, PGRES_TUPLES_OK,
                    NULL);
        if (r < 0)
                return r;
        r = pg_command(pg, "INSERT INTO moa_kb_agents (agent) VALUES ($1) ON CONFLICT DO NOTHING", 1, lock);
        if (r < 0)
                return r;
        const char *del[] = {pg->agent, title};
        r = pg_command(pg, "DELETE FROM moa_kb_documents WHERE agent = $1 AND title = $2", 2, del);
        if (r < 0)
                return r;

        snprintf(bytes, sizeof(bytes), "%zu", len);
        snprintf(n_chunks, sizeof(n_chunks), "%zu", c->n);
        snprintf(now, sizeof(now), "%lld", (long long) time(NULL));
        snprintf(file_bytes, sizeof(file_bytes), "%lld", (long long) (meta ? meta->file_bytes : -1));
        snprintf(mtime, sizeof(mtime), "%lld", (long long) (meta ? meta->mtime : -1));
        const char *ins[] = {pg->agent,
                             title,
                             source,
                             bytes,
                             n_chunks,
                             now,
                             meta && meta->sha256 ? meta->sha256 : "",
                             meta && meta->file_bytes >= 0 ? file_bytes : NULL,
                             meta && meta->mtime >= 0 ? mtime : NULL};
        r = pg_exec(
                pg,
                "INSERT INTO moa_kb_documents (agent, title, source, bytes, n_chunks, ingested_at, sha256, "
                "file_bytes, mtime) VALUES ($1, $2, $3, $4, $5, $6, lower($7), $8, $9) RETURNING id",
                9, ins, PGRES_TUPLES_OK, &doc);
        if (r < 0)
                return r;

        /* All chunks in one statement, as two arrays: one round trip. */
        for (size_t i = 0; r >= 0 && i < c->n; i++) {
                const char *h = c->headings + c->chunks[i].heading;
                r = array_append(&texts, text + c->chunks[i].offset, c->chunks[i].len);
                if (r >= 0)
                        r = array_append(&headings, h, strlen(h));
        }
        if (r >= 0)
                r = array_end(&texts);
        if (r >= 0)
                r = array_end(&headings);
        if (r < 0)
                return r;
        const char *chunks[] = {PQgetvalue(doc, 0, 0), pg->agent, texts.p, headings.p, pg->language, title};
        /* n_tokens: the indexed tokens (stop words are not), bm25's length */
        r = pg_command(pg,
                       "INSERT INTO moa_kb_chunks (doc_id, agent, idx, text, heading, tsv, n_tokens) "
                       "SELECT $1, $2, v.i - 1, v.t, v.h, v.tsv, "
                       "(SELECT coalesce(sum(array_length(x.positions, 1)), 0) FROM unnest(v.tsv) AS x) "
                       "FROM (SELECT u.i, u.t, u.h, "
                       "setweight(to_tsvector($5::regconfig, u.h || E'\\n' || $6), 'A') || "
                       "setweight(to_tsvector($5::regconfig, u.t), 'D') AS tsv "
                       "FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS u(t, h, i)) AS v",
                       6, chunks);
        if (r < 0)
                return r;
        if (kb_test_crash_after_chunks > 0 && c->n >= kb_test_crash_after_chunks)
                _exit(77);
        return pg_command(pg, AGENT_STATS_SQL, 1, lock);
}

int kb_pg_ingest(KbPg *pg, const char *title, const char *source, const char *text, size_t len,
                 const KbChunks *chunks, const KbDocMeta *meta) {
        if (!pg)
                return -EINVAL;
        if (pg->read_only)
                return -EROFS;
        int r = pg_command(pg, "BEGIN", 0, NULL);
        if (r < 0)
                return r;
        r = ingest_locked(pg, title, source, text, len, chunks, meta);
        if (r >= 0)
                r = pg_command(pg, "COMMIT", 0, NULL);
        if (r < 0) {
                log_debug("kb: %s: ingest of '%s' rolled back", pg->locator, title);
                pg_rollback(pg);
                return r;
        }
        return (int) chunks->n;
}

int kb_pg_delete(KbPg *pg, const char *title) {
        _cleanup_res_ PGresult *res = NULL;

        if (!pg || isempty(title))
                return -EINVAL;
        if (pg->read_only)
                return -EROFS;
        const char *p[] = {pg->agent, title};
        int r = pg_command(pg, "BEGIN", 0, NULL);
        if (r >= 0)
                r = pg_exec(pg, "SELECT pg_advisory_xact_lock(hashtext('moa_kb:' || $1))", 1, p,
                            PGRES_TUPLES_OK, NULL);
        if (r >= 0)
                r = pg_exec(pg, "DELETE FROM moa_kb_documents WHERE agent = $1 AND title = $2 RETURNING id",
                            2, p, PGRES_TUPLES_OK, &res);
        if (r >= 0 && PQntuples(res) == 0)
                r = -ENOENT;
        if (r >= 0)
                r = pg_command(pg, AGENT_STATS_SQL, 1, p);
        if (r >= 0)
                r = pg_command(pg, "COMMIT", 0, NULL);
        if (r < 0)
                pg_rollback(pg);
        return r < 0 ? r : 0;
}

/* ---- listing -------------------------------------------------------------------- */

static int64_t value_i64(const PGresult *res, int row, int col) {
        return PQgetisnull(res, row, col) ? -1 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

int kb_pg_list(KbPg *pg, int (*cb)(const KbDocInfo *doc, void *userdata), void *userdata) {
        return kb_pg_list_page(pg, NULL, 0, cb, userdata);
}

/* @limit 0: every document (kb_list()). */
int kb_pg_list_page(KbPg *pg, const char *after, unsigned limit,
                    int (*cb)(const KbDocInfo *doc, void *userdata), void *userdata) {
        _cleanup_res_ PGresult *res = NULL;
        char lim[16];

        if (!pg || !cb)
                return -EINVAL;
        snprintf(lim, sizeof lim, "%u", limit);
        const char *p[] = {pg->agent, after ?: "", limit > 0 ? lim : NULL};
        /* COLLATE "C": by bytes, as SQLite orders and compares (and as the
         * moa_kb_documents_title_c index is built) */
        int r = pg_exec(pg,
                        "SELECT title, source, n_chunks, bytes, ingested_at, sha256, file_bytes, mtime "
                        "FROM moa_kb_documents WHERE agent = $1 AND title COLLATE \"C\" > $2 "
                        "ORDER BY title COLLATE \"C\" LIMIT $3::bigint",
                        3, p, PGRES_TUPLES_OK, &res);
        if (r < 0)
                return r;
        for (int i = 0; i < PQntuples(res); i++) {
                KbDocInfo d = {
                        .title = PQgetvalue(res, i, 0),
                        .source = PQgetvalue(res, i, 1),
                        .n_chunks = (unsigned) value_i64(res, i, 2),
                        .bytes = (uint64_t) value_i64(res, i, 3),
                        .ingested_at = value_i64(res, i, 4),
                        .sha256 = PQgetvalue(res, i, 5),
                        .file_bytes = value_i64(res, i, 6),
                        .mtime = value_i64(res, i, 7),
                };
                r = cb(&d, userdata);
                if (r != 0)
                        return r;
        }
        return 0;
}

static int64_t single_i64(KbPg *pg, const char *sql) {
        _cleanup_res_ PGresult *res = NULL;
        const char *p[] = {pg->agent};
        int r = pg_exec(pg, sql, 1, p, PGRES_TUPLES_OK, &res);
        if (r < 0)
                return r;
        return PQntuples(res) > 0 ? value_i64(res, 0, 0) : 0;
}

int kb_pg_count(KbPg *pg) {
        if (!pg)
                return -EINVAL;
        int64_t n = single_i64(pg, "SELECT count(*) FROM moa_kb_documents WHERE agent = $1");
        return n < 0 ? (int) n : n > INT32_MAX ? INT32_MAX : (int) n;
}

int64_t kb_pg_chunk_count(KbPg *pg) {
        if (!pg)
                return -1;
        int64_t n = single_i64(pg, "SELECT count(*) FROM moa_kb_chunks WHERE agent = $1");
        return n < 0 ? -1 : n;
}

/* The agent's change counter (bumped by every committed ingest and
 * delete, by any instance) mixed with its name: 0 only on error. */
uint64_t kb_pg_change_stamp(KbPg *pg) {
        if (!pg)
                return 0;
        int64_t s = single_i64(pg, "SELECT coalesce((SELECT stamp FROM moa_kb_agents WHERE agent = $1), 0)");
        if (s < 0)
                return 0;
        uint64_t h = 14695981039346656037ULL;
        for (const char *c = pg->agent; *c; c++)
                h = (h ^ (unsigned char) *c) * 1099511628211ULL;
        h = (h ^ (uint64_t) s) * 1099511628211ULL;
        return h ? h : 1;
}

/* ---- search --------------------------------------------------------------------- */

/* The quoted terms of a kb_fts_query() expression as an array literal. */
static int expr_terms(const char *expr, StrBuf *b, size_t *ret_n) {
        size_t n = 0;
        int r = 0;
        for (const char *p = expr; r >= 0 && (p = strchr(p, '"'));) {
                const char *q = strchr(p + 1, '"');
                if (!q)
                        break;
                r = array_append(b, p + 1, (size_t) (q - p - 1));
                n++;
                p = q + 1;
        }
        if (r >= 0)
                r = array_end(b);
        *ret_n = n;
        return r;
}

/* A SQLite GLOB pattern as an anchored PostgreSQL regular expression. */
static int glob_to_regex(const char *g, StrBuf *b) {
        int r = strbuf_append(b, "^", 1, KB_PG_MAX_ARRAY_BYTES);
        for (const char *s = g; r >= 0 && *s; s++) {
                if (*s == '*')
                        r = strbuf_append(b, ".*", 2, KB_PG_MAX_ARRAY_BYTES);
                else if (*s == '?')
                        r = strbuf_append(b, ".", 1, KB_PG_MAX_ARRAY_BYTES);
                else if (*s == '[' && strchr(s + 2, ']')) {
                        /* a class: "[^...]" negates in both; a ']' first is literal */
                        const char *e = strchr(s + 2, ']');
                        r = strbuf_append(b, "[", 1, KB_PG_MAX_ARRAY_BYTES);
                        for (const char *k = s + 1; r >= 0 && k < e; k++)
                                r = *k == '\\' ? strbuf_append(b, "\\\\", 2, KB_PG_MAX_ARRAY_BYTES)
                                               : strbuf_append(b, k, 1, KB_PG_MAX_ARRAY_BYTES);
                        if (r >= 0)
                                r = strbuf_append(b, "]", 1, KB_PG_MAX_ARRAY_BYTES);
                        s = e;
                } else if (strchr(".^$|()[]{}+*?\\", *s)) {
                        char esc[2] = {'\\', *s};
                        r = strbuf_append(b, esc, 2, KB_PG_MAX_ARRAY_BYTES);
                } else
                        r = strbuf_append(b, s, 1, KB_PG_MAX_ARRAY_BYTES);
        }
        return r < 0 ? r : strbuf_append(b, "$", 1, KB_PG_MAX_ARRAY_BYTES);
}

typedef struct PgCandidate {
        int row;
        int64_t id;
        double score;
} PgCandidate;

static int pg_candidate_cmp(const void *a, const void *b) {
        const PgCandidate *x = a, *y = b;
        if (x->score != y->score)
                return x->score > y->score ? -1 : 1;
        return x->id < y->id ? -1 : x->id > y->id;
}

/* bm25 as FTS5 computes it (k1 1.2, b 0.75, idf clamped at 1e-6), from
 * the tsvectors: a term's frequency is its positions, weighted by part (A
 * heading and title, D text); N, average length from moa_kb_agents.
 * Titles filter after df, as in SQLite; the text of the best $5 only is
 * read. Two ways to pick the chunks scored:
 *  - exact ($8, $9 NULL): every chunk of the agent holding a term (the OR
 *    query), df counted over them, as FTS5 does;
 *  - pruned ($8 each term's chunk count from the term statistics, $9 the
 *    rare terms, kb_pg_search_params()): the chunks holding a rare term,
 *    the best KB_PG_PRUNED_SHORTLIST of them by ts_rank (m0), of which
 *    the best KB_PG_PRUNED_CANDIDATES by the summed idf of the rare
 *    lexemes they hold (rw: the six rarest, one match each: a fixed
 *    expression, no subplan per row), then by ts_rank (m), scored exactly
 *    with df from $8 (or the candidates, if more). ts_rank alone is blind
 *    to idf: a chunk repeating a merely uncommon word outranked the one
 *    holding the rarest, and the answer was cut (bench/kb-backends.py).
 * The last two columns are each term's chunk count and the agent's chunk
 * count: the idf weights of the coverage and proximity bonus ($8 when
 * given; counted per term, as an init plan, only when not). */
const char kb_pg_search_sql[] =
        "WITH tl AS (SELECT x.lexeme, u.df FROM unnest($3::text[], $8::int8[]) AS u(t, df), "
        "  unnest(to_tsvector($2::regconfig, u.t)) AS x), "
        "terms AS (SELECT lexeme, max(df) AS df FROM tl GROUP BY lexeme), "
        "a AS (SELECT array_agg(lexeme) AS a FROM terms), "
        "q AS (SELECT string_agg(DISTINCT quote_literal(x.lexeme), ' | ')::tsquery AS q "
        "  FROM unnest(coalesce($9::text[], $3::text[])) AS u(t), "
        "  unnest(to_tsvector($2::regconfig, u.t)) AS x), "
        "rw AS (SELECT array_agg(quote_literal(t.lexeme)::tsquery ORDER BY t.df, t.lexeme) AS qs, "
        "  array_agg(greatest(ln((n.n - t.df + 0.5) / (t.df + 0.5)), 1e-6) ORDER BY t.df, t.lexeme) AS ws "
        "  FROM terms t, (SELECT greatest(n_chunks, 1)::float8 AS n FROM moa_kb_agents WHERE agent = $1) n "
        "  WHERE t.df IS NOT NULL AND t.lexeme IN (SELECT y.lexeme FROM unnest($9::text[]) AS v(w), "
        "  unnest(to_tsvector($2::regconfig, v.w)) AS y)), "
        "m0 AS (SELECT c.id, c.doc_id, c.tsv, c.n_tokens, "
        "  CASE WHEN $9::text[] IS NULL THEN 0 ELSE ts_rank(c.tsv, q.q) END AS rk FROM q, moa_kb_chunks c "
        "  WHERE c.agent = $1 AND c.tsv @@ q.q ORDER BY 5 DESC, c.id "
        "  LIMIT CASE WHEN $9::text[] IS NULL THEN NULL ELSE " KB_PG_PRUNED_SHORTLIST " END), "
        "m AS (SELECT m0.id, m0.doc_id, m0.tsv, m0.n_tokens FROM m0, rw "
        "  ORDER BY CASE WHEN $9::text[] IS NULL THEN 0 ELSE "
        "  (CASE WHEN m0.tsv @@ rw.qs[1] THEN rw.ws[1] ELSE 0 END) + "
        "  (CASE WHEN m0.tsv @@ rw.qs[2] THEN rw.ws[2] ELSE 0 END) + "
        "  (CASE WHEN m0.tsv @@ rw.qs[3] THEN rw.ws[3] ELSE 0 END) + "
        "  (CASE WHEN m0.tsv @@ rw.qs[4] THEN rw.ws[4] ELSE 0 END) + "
        "  (CASE WHEN m0.tsv @@ rw.qs[5] THEN rw.ws[5] ELSE 0 END) + "
        "  (CASE WHEN m0.tsv @@ rw.qs[6] THEN rw.ws[6] ELSE 0 END) "
        "  END DESC, m0.rk DESC, m0.id "
        "  LIMIT CASE WHEN $9::text[] IS NULL THEN NULL ELSE " KB_PG_PRUNED_CANDIDATES " END), "
        "tf AS (SELECT m.id, m.doc_id, m.n_tokens, x.lexeme, "
        "  $4::float8 * (SELECT count(*) FROM unnest(x.weights) w WHERE w = 'D') + "
        "  $7::float8 * (SELECT count(*) FROM unnest(x.weights) w WHERE w = 'A') AS f "
        "  FROM a, m, unnest(m.tsv) AS x WHERE x.lexeme = ANY(a.a)), "
        "dfm AS (SELECT lexeme, count(*) AS n FROM tf GROUP BY lexeme), "
        "df AS (SELECT t.lexeme, greatest(coalesce(t.df, 0), coalesce(dfm.n, 0)) AS n "
        "  FROM terms t LEFT JOIN dfm USING (lexeme)), "
        "st AS (SELECT greatest(n_chunks, 1)::float8 AS n, "
        "  greatest(tokens::float8 / greatest(n_chunks, 1), 1) AS avgdl FROM moa_kb_agents "
        "  WHERE agent = $1), "
        "s AS (SELECT tf.id, tf.doc_id, sum(greatest(ln((st.n - df.n + 0.5) / (df.n + 0.5)), 1e-6) * "
        "  (tf.f * 2.2) / (tf.f + 1.2 * (0.25 + 0.75 * tf.n_tokens / st.avgdl))) AS bm25 "
        "  FROM tf JOIN df USING (lexeme), st GROUP BY tf.id, tf.doc_id), "
        "top AS (SELECT s.id, s.bm25 FROM s JOIN moa_kb_documents d ON d.id = s.doc_id "
        "  WHERE $6::text[] IS NULL OR d.title ~ ANY($6::text[]) "
        "  ORDER BY s.bm25 DESC, s.id LIMIT $5::integer) "
        "SELECT top.id, top.bm25, d.title, d.source, c.idx, c.text, c.heading, "
        "CASE WHEN $8::int8[] IS NULL THEN "
        "  (SELECT array_agg((SELECT count(*) FROM moa_kb_chunks c2 WHERE c2.agent = $1 "
        "    AND c2.tsv @@ plainto_tsquery($2::regconfig, u.t)) ORDER BY u.i) "
        "    FROM unnest($3::text[]) WITH ORDINALITY AS u(t, i)) "
        "  ELSE $8::int8[] END, "
        "coalesce((SELECT n_chunks FROM moa_kb_agents WHERE agent = $1), 0) "
        "FROM top JOIN moa_kb_chunks c ON c.id = top.id JOIN moa_kb_documents d ON d.id = c.doc_id "
        "ORDER BY 2 DESC, 1";

void kb_pg_search_params_done(KbPgSearchParams *p) {
        if (!p)
                return;
        free(p->expr);
        strbuf_done(&p->terms);
        strbuf_done(&p->dfs);
        strbuf_done(&p->rare);
        strbuf_done(&p->globs);
        *p = (KbPgSearchParams){0};
}

typedef struct PruneTerm {
        const char *t; /* in the expression */
        size_t n;
        uint32_t df;
} PruneTerm;

static int prune_df_cmp(const void *a, const void *b) {
        const PruneTerm *x = *(const PruneTerm *const *) a, *y = *(const PruneTerm *const *) b;
        return x->df < y->df ? -1 : x->df > y->df;
}

/* A pruned search's $8 and $9 (kb_pg_search_sql) in @p->dfs and @p->rare
 * when @pg's base has at least kb_pg_prune_chunks() chunks by the term
 * statistics last published for it (kb-stats.h: no database call), else
 * nothing (an exact search). Each term's chunk count is its stem's (as
 * kb_pg_query_terms() stems it); the rare terms are the KB_PG_PRUNED_TERMS
 * with the fewest chunks among those in at most KB_PG_PRUNED_RARE_SHARE of
 * the base (at least the two fewest held anywhere). Returns 0 or -ENOMEM. */
static int prune_params(KbPg *pg, const char *expr, KbPgSearchParams *p) {
        PruneTerm terms[KB_MAX_QUERY_TERMS];
        const PruneTerm *by_df[KB_MAX_QUERY_TERMS];
        size_t n = 0, n_held = 0;
        int r = 0;

        KbStats *st = kb_stats_get(pg->locator);
        KbVocab *v = st ? kb_stats_vocab(st) : NULL;
        kb_stats_unref(st);
        uint32_t chunks = v ? kb_vocab_chunks(v) : 0;
        if (!v || chunks < kb_pg_prune_chunks()) {
                kb_vocab_free(v);
                return 0;
        }
        for (const char *q = expr; n < ELEMENTSOF(terms) && (q = strchr(q, '"'));) {
                const char *e = strchr(q + 1, '"');
                if (!e)
                        break;
                _cleanup_free_ char *t = strndup(q + 1, (size_t) (e - q - 1));
                char **stems = NULL;
                size_t ns = 0;
                if (!t || kb_pg_query_terms(pg, t, 1, &stems, &ns) < 0) {
                        kb_vocab_free(v);
                        return -ENOMEM;
                }
                terms[n] = (PruneTerm){
                        .t = q + 1, .n = (size_t) (e - q - 1), .df = ns > 0 ? kb_vocab_df(v, stems[0]) : 0};
                strv_free_n(stems, ns);
                if (terms[n].df > 0)
                        by_df[n_held++] = &terms[n];
                n++;
                q = e + 1;
        }
        kb_vocab_free(v);
        if (n_held == 0)
                return 0; /* nothing the statistics know: exact */
        qsort(by_df, n_held, sizeof(by_df[0]), prune_df_cmp);
        for (size_t i = 0; r >= 0 && i < n_held && i < KB_PG_PRUNED_TERMS; i++)
                if (i < 2 || by_df[i]->df <= KB_PG_PRUNED_RARE_SHARE * chunks)
                        r = array_append(&p->rare, by_df[i]->t, by_df[i]->n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                char num[16];
                int l = snprintf(num, sizeof(num), "%s%u", i ? "," : "{", terms[i].df);
                r = strbuf_append(&p->dfs, num, (size_t) l, KB_PG_MAX_ARRAY_BYTES);
        }
        if (r >= 0)
                r = strbuf_append(&p->dfs, "}", 1, KB_PG_MAX_ARRAY_BYTES);
        if (r >= 0)
                r = array_end(&p->rare);
        if (r >= 0)
                log_debug("kb: %s: pruned search, %zu of %zu terms select the candidates (%u chunks)",
                          pg->agent, MIN(n_held, (size_t) KB_PG_PRUNED_TERMS), n, chunks);
        return r;
}

int kb_pg_search_params(KbPg *pg, const char *expr, unsigned limit, int snippets, const char *const *titles,
                        size_t n_titles, KbPgSearchParams *ret) {
        const KbRankParams *rp = &kb_rank_params;
        KbPgSearchParams *p = ret;
        int r;

        if (!pg || !expr || !ret)
                return -EINVAL;
        /* filled in place: values[] points into it */
        *p = (KbPgSearchParams){0};
        p->limit = MIN(limit, KB_PG_MAX_HITS);
        p->snippets = !!snippets;
        if (!(p->expr = strdup(expr)))
                return -ENOMEM;
        r = expr_terms(expr, &p->terms, &p->n_terms);
        for (size_t i = 0; r >= 0 && i < n_titles; i++) {
                _cleanup_(strbuf_done) StrBuf re = {0};
                r = glob_to_regex(titles[i], &re);
                if (r >= 0)
                        r = array_append(&p->globs, re.p, re.len);
        }
        if (r >= 0)
                r = array_end(&p->globs);
        if (r < 0) {
                kb_pg_search_params_done(p);
                return r;
        }
        if (r >= 0)
                r = prune_params(pg, expr, p);
        if (r < 0) {
                kb_pg_search_params_done(p);
                return r;
        }
        snprintf(p->w_body, sizeof(p->w_body), "%.9g", rp->w_body);
        snprintf(p->w_heading, sizeof(p->w_heading), "%.9g", rp->w_heading);
        snprintf(p->want, sizeof(p->want), "%u", MAX(p->limit, MAX(rp->candidates, 1u)));
        p->values[0] = pg->agent;
        p->values[1] = pg->language;
        p->values[2] = p->terms.p;
        p->values[3] = p->w_body;
        p->values[4] = p->want;
        p->values[5] = n_titles > 0 ? p->globs.p : NULL;
        p->values[6] = p->w_heading;
        p->values[7] = p->dfs.len ? p->dfs.p : NULL;
        p->values[8] = p->rare.len ? p->rare.p : NULL;
        return 0;
}

/* The integers of a PostgreSQL int8[] in text form ("{3,0,12}"), at most @max. */
static size_t parse_int_array(const char *s, double *v, size_t max) {
        size_t n = 0;

        if (!s || *s++ != '{')
                return 0;
        while (n < max && *s && *s != '}') {
                char *end;
                long long x = strtoll(s, &end, 10);
                if (end == s)
                        break;
                v[n++] = (double) x;
                s = *end == ',' ? end + 1 : end;
        }
        return n;
}

int kb_pg_search_result(KbPg *pg, const PGresult *res, const KbPgSearchParams *p, KbHit **ret_hits,
                        size_t *ret_n) {
        const KbRankParams *rp = &kb_rank_params;
        _cleanup_free_ PgCandidate *c = NULL;
        double idf[KB_MAX_QUERY_TERMS], df[KB_MAX_QUERY_TERMS];
        size_t n_idf = MIN(p->n_terms, ELEMENTSOF(idf)), n = 0;

        *ret_hits = NULL;
        *ret_n = 0;
        int rows = PQntuples(res);
        if (rows <= 0 || PQnfields(res) < 9)
                return 0;
        /* idf of each term as FTS5's bm25 computes it, from the agent's
         * chunks holding it */
        size_t got = parse_int_array(PQgetvalue(res, 0, 7), df, n_idf);
        double total = (double) value_i64(res, 0, 8);
        for (size_t i = 0; i < n_idf; i++) {
                double x = i < got ? log((total - df[i] + 0.5) / (df[i] + 0.5)) : 1.0;
                idf[i] = x > 1e-6 ? x : 1e-6;
        }

        c = calloc((size_t) rows, sizeof(PgCandidate));
        if (!c)
                return -ENOMEM;
        for (int i = 0; i < rows; i++) {
                _cleanup_free_ char *heading = NULL;
                if (asprintf(&heading, "%s\n%s", PQgetvalue(res, i, 6), PQgetvalue(res, i, 2)) < 0)
                        return -ENOMEM;
                double base = strtod(PQgetvalue(res, i, 1), NULL);
                double bonus = kb_rank_bonus(pg->rank, PQgetvalue(res, i, 5), heading, p->expr, idf, n_idf,
                                             rp->coverage, rp->proximity, rp->window);
                c[i] = (PgCandidate){.row = i,
                                     .id = value_i64(res, i, 0),
                                     .score = (base > 0 ? base : 1e-9) * (bonus >= 1 ? bonus : 1)};
        }
        qsort(c, (size_t) rows, sizeof(PgCandidate), pg_candidate_cmp);

        size_t k = MIN((size_t) rows, (size_t) p->limit);
        if (k == 0)
                return 0;
        KbHit *hits = calloc(k, sizeof(KbHit));
        if (!hits)
                return -ENOMEM;
        for (n = 0; n < k; n++) {
                int row = c[n].row;
                KbHit *h = &hits[n];
                h->title = strdup(PQgetvalue(res, row, 2));
                h->source = strdup(PQgetvalue(res, row, 3));
                h->chunk = (unsigned) value_i64(res, row, 4);
                h->score = c[n].score;
                h->text = strdup(PQgetvalue(res, row, 5));
                h->heading = strdup(PQgetvalue(res, row, 6));
                h->snippet = !h->text      ? NULL
                             : p->snippets ? kb_rank_snippet(pg->rank, h->text, p->expr)
                                           : strdup("");
                if (!h->title || !h->source || !h->text || !h->heading || !h->snippet) {
                        kb_hits_free(hits, n + 1);
                        return -ENOMEM;
                }
        }
        *ret_hits = hits;
        *ret_n = n;
        return 0;
}

int kb_pg_search(KbPg *pg, const char *expr, unsigned limit, int snippets, const char *const *titles,
                 size_t n_titles, KbHit **ret_hits, size_t *ret_n) {
        _cleanup_(kb_pg_search_params_done) KbPgSearchParams p = {0};
        _cleanup_res_ PGresult *res = NULL;
        int r;

        if (!pg || !expr || !ret_hits || !ret_n)
                return -EINVAL;
        r = kb_pg_search_params(pg, expr, limit, snippets, titles, n_titles, &p);
        if (r < 0)
                return r;
        if (p.n_terms == 0 || p.limit == 0)
                return 0;
        r = pg_exec(pg, kb_pg_search_sql, KB_PG_SEARCH_PARAMS, p.values, PGRES_TUPLES_OK, &res);
        if (r < 0)
                return r;
        return kb_pg_search_result(pg, res, &p, ret_hits, ret_n);
}

/* ---- routing evidence ----------------------------------------------------------- */

int kb_pg_vocab(KbPg *pg, int (*add)(void *userdata, const char *term, size_t len, uint32_t df),
                void *userdata) {
        _cleanup_res_ PGresult *res = NULL;

        if (!pg || !add)
                return -EINVAL;
        const char *p[] = {pg->agent};
        /* ts_stat's ndoc: chunks holding the lexeme in any weight, as
         * fts5vocab's 'row' table counts rows */
        int r = pg_exec(
                pg,
                "SELECT word, ndoc FROM ts_stat(format('SELECT tsv FROM moa_kb_chunks WHERE agent = %L', "
                "$1::text))",
                1, p, PGRES_TUPLES_OK, &res);
        if (r < 0)
                return r;
        for (int i = 0; i < PQntuples(res); i++) {
                int64_t df = value_i64(res, i, 1);
                const char *t = PQgetvalue(res, i, 0);
                if (df <= 0 || !*t)
                        continue;
                r = add(userdata, t, strlen(t), (uint32_t) MIN(df, (int64_t) UINT32_MAX));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Computed here, not asked of the server (kb-pg-terms.h): this runs on the loop. */
int kb_pg_query_terms(KbPg *pg, const char *query, size_t max, char ***ret, size_t *ret_n) {
        if (!pg)
                return -EINVAL;
        const char *name = kb_pg_stemmer_name(pg->language);
        if (name && !pg->stemmer && !(pg->stemmer = sb_stemmer_new(name, "UTF_8")))
                return -ENOMEM;
        return kb_pg_terms(pg->language, pg->stemmer, query, max, ret, ret_n);
}

int kb_pg_sample_chunks(KbPg *pg, size_t max, size_t max_chars, char ***ret, size_t *ret_n) {
        _cleanup_res_ PGresult *res = NULL;
        char max_s[24], chars_s[24];
        size_t n = 0;

        if (!pg || !ret || !ret_n)
                return -EINVAL;
        *ret = NULL;
        *ret_n = 0;
        if (max == 0)
                return 0;
        snprintf(max_s, sizeof(max_s), "%zu", max);
        snprintf(chars_s, sizeof(chars_s), "%zu", MIN(max_chars, (size_t) INT32_MAX));
        const char *p[] = {pg->agent, max_s, chars_s};
        /* @max chunks spread evenly in id order: row rn is taken when
         * rn * max / total reaches a new integer */
        int r = pg_exec(
                pg,
                "WITH x AS (SELECT c.id, c.doc_id, row_number() OVER (ORDER BY c.id) - 1 AS rn, "
                "count(*) OVER () AS total FROM moa_kb_chunks c WHERE c.agent = $1) "
                "SELECT d.title || E'\\n' || substr(c.text, 1, $3::integer) FROM x "
                "JOIN moa_kb_chunks c ON c.id = x.id JOIN moa_kb_documents d ON d.id = x.doc_id "
                "WHERE x.total <= $2::bigint OR (x.rn * $2::bigint) % x.total < $2::bigint ORDER BY x.id",
                3, p, PGRES_TUPLES_OK, &res);
        if (r < 0)
                return r;
        size_t rows = MIN((size_t) PQntuples(res), max);
        if (rows == 0)
                return 0;
        char **v = calloc(rows, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (n = 0; n < rows; n++)
                if (!(v[n] = strdup(PQgetvalue(res, (int) n, 0)))) {
                        strv_free_n(v, n);
                        return -ENOMEM;
                }
        *ret = v;
        *ret_n = n;
        return 0;
}

/* ---- moving documents ----------------------------------------------------------- */

int kb_pg_document_chunks(KbPg *pg, const char *title, char ***ret_texts, char ***ret_headings,
                          size_t *ret_n) {
        _cleanup_res_ PGresult *res = NULL;

        if (!pg || !title)
                return -EINVAL;
        const char *p[] = {pg->agent, title};
        int r = pg_exec(
                pg,
                "SELECT c.text, c.heading FROM moa_kb_chunks c JOIN moa_kb_documents d ON d.id = c.doc_id "
                "WHERE d.agent = $1 AND d.title = $2 ORDER BY c.idx",
                2, p, PGRES_TUPLES_OK, &res);
        if (r < 0)
                return r;
        size_t n = (size_t) PQntuples(res);
        if (n == 0)
                return -ENOENT;
        char **t = calloc(n, sizeof(char *)), **h = calloc(n, sizeof(char *));
        for (size_t i = 0; t && h && i < n; i++)
                if (!(t[i] = strdup(PQgetvalue(res, (int) i, 0))) ||
                    !(h[i] = strdup(PQgetvalue(res, (int) i, 1)))) {
                        strv_free_n(t, n);
                        strv_free_n(h, n);
                        return -ENOMEM;
                }
        if (!t || !h) {
                free(t);
                free(h);
                return -ENOMEM;
        }
        *ret_texts = t;
        *ret_headings = h;
        *ret_n = n;
        return 0;
}
