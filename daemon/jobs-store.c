/* jobs-store.c — see jobs-store.h. The SQLite store: one connection, used
 * on the loop (jobs.c's store calls run there at once). A store opened with jobs_store_open_shared() hands
 * files, batches and results to jobs-store-pg.c (every function below starts by dispatching, the way kb.c
 * does) and keeps only the ingest jobs here. */
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "file-read.h"
#include "jobs-store-pg.h"
#include "jobs-store.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

#define JOBS_SCHEMA_VERSION 1
#define JOBS_BUSY_TIMEOUT_MS 1000

#define JOBS_FILES_DIR "jobs-files"
#define JOBS_MAX_FILE (1ULL << 30) /* the largest jobs.max_upload_bytes */

struct JobsStore {
        sqlite3 *db;
        char *files_dir; /* uploaded files, one per id */
        JobsPg *pg;      /* shared: files, batches and results in PostgreSQL */
        char *owner;     /* shared: this instance's lease_owner, for result_add */
};

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS files ("
        " id TEXT PRIMARY KEY, owner TEXT NOT NULL, filename TEXT NOT NULL, purpose TEXT NOT NULL,"
        " bytes INTEGER NOT NULL, created_at INTEGER NOT NULL,"
        " lines INTEGER,"              /* an upload's request lines; its bytes are in jobs-files/<id> */
        " batch_id TEXT, ok INTEGER);" /* output (1) or error (0) file of batch_id */
        "CREATE TABLE IF NOT EXISTS batches ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, owner TEXT NOT NULL,"
        " input_file_id TEXT NOT NULL, endpoint TEXT NOT NULL, completion_window TEXT NOT NULL,"
        " metadata TEXT, errors TEXT, status TEXT NOT NULL, total INTEGER NOT NULL,"
        " created_at INTEGER NOT NULL, expires_at INTEGER, in_progress_at INTEGER,"
        " finalizing_at INTEGER, completed_at INTEGER, failed_at INTEGER, expired_at INTEGER,"
        " cancelling_at INTEGER, cancelled_at INTEGER, output_file_id TEXT, error_file_id TEXT);"
        "CREATE TABLE IF NOT EXISTS results ("
        " batch_id TEXT NOT NULL, line INTEGER NOT NULL, ok INTEGER NOT NULL, output TEXT NOT NULL,"
        " PRIMARY KEY (batch_id, line)) WITHOUT ROWID;"
        /* Server-side ingest jobs (jobs-ingest.c) and each file's outcome,
         * committed as it is acknowledged. */
        "CREATE TABLE IF NOT EXISTS ingest_jobs ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, owner TEXT NOT NULL,"
        " agent TEXT NOT NULL, path TEXT NOT NULL, status TEXT NOT NULL, total INTEGER,"
        " error TEXT, created_at INTEGER NOT NULL, in_progress_at INTEGER, completed_at INTEGER,"
        " failed_at INTEGER, cancelled_at INTEGER);"
        "CREATE TABLE IF NOT EXISTS ingest_files ("
        " job_id TEXT NOT NULL, title TEXT NOT NULL, outcome TEXT NOT NULL,"
        " PRIMARY KEY (job_id, title)) WITHOUT ROWID;"
        "PRAGMA user_version = 1;";

/* Statuses after which a batch never changes again. */
#define FINAL_STATUSES "('completed','failed','cancelled','expired')"

static int sql_error(JobsStore *st, int rc, const char *what) {
        log_warning("jobs.db: %s: %s", what, sqlite3_errmsg(st->db));
        return rc == SQLITE_NOMEM  ? -ENOMEM
               : rc == SQLITE_BUSY ? -EBUSY
               : rc == SQLITE_FULL ? -ENOSPC
                                   : -EIO;
}

static int exec(JobsStore *st, const char *sql) {
        int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : sql_error(st, rc, sql);
}

static int prepare(JobsStore *st, const char *sql, sqlite3_stmt **ret) {
        int rc = sqlite3_prepare_v2(st->db, sql, -1, ret, NULL);
        return rc == SQLITE_OK ? 0 : sql_error(st, rc, "prepare");
}

static inline void finalizep(sqlite3_stmt **s) {
        sqlite3_finalize(*s);
}
#define _cleanup_stmt_ _cleanup_(finalizep)

/* Binds @n text parameters (NULL binds NULL) from ?1. */
static void bind_texts(sqlite3_stmt *s, size_t n, const char *const *v) {
        for (size_t i = 0; i < n; i++)
                sqlite3_bind_text(s, (int) i + 1, v[i], -1, SQLITE_STATIC);
}

/* Runs a statement that returns no rows. */
static int step_done(JobsStore *st, sqlite3_stmt *s) {
        int rc = sqlite3_step(s);
        return rc == SQLITE_DONE ? 0 : rc == SQLITE_CONSTRAINT ? -EEXIST : sql_error(st, rc, "step");
}

/* The current row as {column: value}; blobs are left out. */
static json_t *row_json(sqlite3_stmt *s) {
        json_t *o = json_object();

        for (int i = 0; o && i < sqlite3_column_count(s); i++) {
                const char *name = sqlite3_column_name(s, i);
                json_t *v;

                switch (sqlite3_column_type(s, i)) {
                case SQLITE_INTEGER:
                        v = json_integer(sqlite3_column_int64(s, i));
                        break;
                case SQLITE_TEXT:
                        v = json_stringn((const char *) sqlite3_column_text(s, i),
                                         (size_t) sqlite3_column_bytes(s, i));
                        break;
                case SQLITE_NULL:
                        v = json_null();
                        break;
                default:
                        continue;
                }
                if (json_object_set_new(o, name, v ? v : json_null()) < 0)
                        o = (json_decref(o), NULL);
        }
        return o;
}

/* Every row of @s appended to a new array. */
static int rows_json(JobsStore *st, sqlite3_stmt *s, json_t **ret) {
        json_auto_t *arr = json_array();
        int rc;

        if (!arr)
                return -ENOMEM;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
                if (json_array_append_new(arr, row_json(s)) < 0)
                        return -ENOMEM;
        if (rc != SQLITE_DONE)
                return sql_error(st, rc, "step");
        *ret = TAKE_PTR(arr);
        return 0;
}

static int one_row(JobsStore *st, sqlite3_stmt *s, json_t **ret) {
        int rc = sqlite3_step(s);

        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sql_error(st, rc, "step");
        *ret = row_json(s);
        return *ret ? 0 : -ENOMEM;
}

int jobs_store_open(const char *dir, JobsStore **ret) {
        _cleanup_free_ char *path = NULL;
        JobsStore *st;
        int rc, r;

        if (mkdir(dir, 0750) < 0 && errno != EEXIST)
                return -errno;
        if (asprintf(&path, "%s/jobs.db", dir) < 0)
                return -ENOMEM;
        st = calloc(1, sizeof *st);
        if (!st)
                return -ENOMEM;
        if (asprintf(&st->files_dir, "%s/" JOBS_FILES_DIR, dir) < 0) {
                free(st);
                return -ENOMEM;
        }
        if (mkdir(st->files_dir, 0750) < 0 && errno != EEXIST) {
                r = -errno;
                jobs_store_close(st);
                return r;
        }
        rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
        if (rc != SQLITE_OK) {
                log_error("cannot open %s: %s", path, st->db ? sqlite3_errmsg(st->db) : "out of memory");
                jobs_store_close(st);
                return -EIO;
        }
        sqlite3_busy_timeout(st->db, JOBS_BUSY_TIMEOUT_MS);
        /* NORMAL: a commit survives a crash of moad (not of the machine)
         * without an fsync per answered line. */
        r = exec(st, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
        if (r >= 0)
                r = exec(st, schema);
        if (r < 0) {
                jobs_store_close(st);
                return r;
        }
        *ret = st;
        return 0;
}

int jobs_store_open_shared(const char *dir, unsigned timeout_ms, JobsStore **ret) {
        JobsStore *st = NULL;
        int r = jobs_store_open(dir, &st);

        if (r < 0)
                return r;
        r = jobs_pg_open(timeout_ms, &st->pg);
        if (r < 0) {
                jobs_store_close(st);
                return r;
        }
        *ret = st;
        return 0;
}

int jobs_store_set_owner(JobsStore *st, const char *owner) {
        char *o = strdup(owner);

        if (!o)
                return -ENOMEM;
        free(st->owner);
        st->owner = o;
        return 0;
}

void jobs_store_enter(JobsStore *st, unsigned lane, uint64_t deadline_ms) {
        if (st->pg)
                jobs_pg_enter(st->pg, lane, deadline_ms);
}

void jobs_store_leave(JobsStore *st) {
        if (st->pg)
                jobs_pg_leave();
}

int jobs_store_shared(JobsStore *st) {
        return st && st->pg;
}

int jobs_store_unavailable(int r) {
        return r == -ECONNREFUSED || r == -ECONNRESET || r == -ETIMEDOUT || r == -ENOTCONN;
}

JobsStore *jobs_store_close(JobsStore *st) {
        if (!st)
                return NULL;
        jobs_pg_close(st->pg);
        free(st->owner);
        sqlite3_close(st->db);
        free(st->files_dir);
        free(st);
        return NULL;
}

char *jobs_store_file_path(JobsStore *st, const char *id) {
        char *p;

        return asprintf(&p, "%s/%s", st->files_dir, id) < 0 ? NULL : p;
}

int jobs_file_write(const char *path, const char *data, size_t len) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        size_t off = 0;
        int r = 0;

        if (asprintf(&tmp, "%s.tmp", path) < 0)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (fd < 0)
                return -errno;
        while (off < len) {
                ssize_t k = write(fd, data + off, len - off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                off += (size_t) k;
        }
        /* On disk before the row that names it is committed. */
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

int jobs_store_file_put(JobsStore *st, const char *id, const char *data, size_t len) {
        _cleanup_free_ char *path = NULL;

        if (st->pg)
                return jobs_pg_file_put(st->pg, id, data, len);
        path = jobs_store_file_path(st, id);
        return path ? jobs_file_write(path, data, len) : -ENOMEM;
}

int jobs_store_file_read(JobsStore *st, const char *id, size_t max, char **ret, size_t *ret_len) {
        _cleanup_free_ char *path = NULL;

        if (st->pg)
                return jobs_pg_file_read(st->pg, id, max, ret, ret_len);
        path = jobs_store_file_path(st, id);
        return path ? text_read_file(path, max, ret, ret_len) : -ENOMEM;
}

int jobs_store_file_unput(JobsStore *st, const char *id) {
        _cleanup_free_ char *path = NULL;

        if (st->pg)
                return jobs_pg_file_unput(st->pg, id);
        path = jobs_store_file_path(st, id);
        if (!path)
                return -ENOMEM;
        return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int jobs_store_sweep_files(JobsStore *st) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        DIR *d;
        struct dirent *de;
        int n = 0, r;

        if (st->pg)
                return jobs_pg_sweep_files(st->pg);
        r = prepare(st, "SELECT 1 FROM files WHERE id = ?1", &s);
        if (r < 0)
                return r;
        d = opendir(st->files_dir);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                int rc;

                if (de->d_name[0] == '.')
                        continue;
                sqlite3_reset(s);
                sqlite3_bind_text(s, 1, de->d_name, -1, SQLITE_TRANSIENT);
                rc = sqlite3_step(s);
                if (rc == SQLITE_ROW)
                        continue;
                if (rc != SQLITE_DONE) {
                        r = sql_error(st, rc, "step");
                        break;
                }
                /* A "*.tmp" never finished; a file without a row was written
                 * but moad stopped before the row was added. */
                if (unlinkat(dirfd(d), de->d_name, 0) == 0)
                        n++;
        }
        closedir(d);
        return r < 0 ? r : n;
}

int jobs_store_file_add(JobsStore *st, const char *id, const char *owner, const char *filename,
                        const char *purpose, uint64_t bytes, long lines, int64_t created_at) {
        if (st->pg)
                return jobs_pg_file_add(st->pg, id, owner, filename, purpose, bytes, lines, created_at);
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(st,
                        "INSERT INTO files (id, owner, filename, purpose, bytes, created_at, lines) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        &s);

        if (r < 0)
                return r;
        bind_texts(s, 4, (const char *[]){id, owner, filename, purpose});
        sqlite3_bind_int64(s, 5, (sqlite3_int64) bytes);
        sqlite3_bind_int64(s, 6, created_at);
        sqlite3_bind_int64(s, 7, lines);
        return step_done(st, s);
}

int jobs_store_file_get(JobsStore *st, const char *id, json_t **ret) {
        if (st->pg)
                return jobs_pg_file_get(st->pg, id, ret);
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(st,
                        "SELECT id, owner, filename, purpose, bytes, created_at, lines, batch_id, ok "
                        "FROM files WHERE id = ?1",
                        &s);

        if (r < 0)
                return r;
        bind_texts(s, 1, &id);
        return one_row(st, s, ret);
}

/* The result lines of a batch with @ok, each followed by a newline. */
static int results_concat(JobsStore *st, const char *batch_id, int ok, char **ret, size_t *ret_len) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        _cleanup_(strbuf_done) StrBuf b = {0};
        int rc, r;

        r = prepare(st, "SELECT output FROM results WHERE batch_id = ?1 AND ok = ?2 ORDER BY line", &s);
        if (r < 0)
                return r;
        bind_texts(s, 1, &batch_id);
        sqlite3_bind_int(s, 2, ok);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                /* no bound of its own: each line was bounded when stored */
                r = strbuf_append(&b, (const char *) sqlite3_column_text(s, 0),
                                  (size_t) sqlite3_column_bytes(s, 0), SIZE_MAX / 2);
                if (r >= 0)
                        r = strbuf_append(&b, "\n", 1, SIZE_MAX / 2);
                if (r < 0)
                        return r;
        }
        if (rc != SQLITE_DONE)
                return sql_error(st, rc, "step");
        if (!b.p && !(b.p = calloc(1, 1)))
                return -ENOMEM;
        *ret_len = b.len;
        *ret = TAKE_PTR(b.p);
        return 0;
}

int jobs_store_file_content(JobsStore *st, const char *id, char **ret, size_t *ret_len) {
        if (st->pg)
                return jobs_pg_file_content(st->pg, id, JOBS_MAX_FILE, ret, ret_len);
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        _cleanup_free_ char *path = NULL;
        int rc, r;

        r = prepare(st, "SELECT batch_id, ok FROM files WHERE id = ?1", &s);
        if (r < 0)
                return r;
        bind_texts(s, 1, &id);
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sql_error(st, rc, "step");
        if (sqlite3_column_type(s, 0) == SQLITE_TEXT) {
                _cleanup_free_ char *batch = strdup((const char *) sqlite3_column_text(s, 0));
                int ok = sqlite3_column_int(s, 1);
                if (!batch)
                        return -ENOMEM;
                sqlite3_finalize(TAKE_PTR(s));
                return results_concat(st, batch, ok, ret, ret_len);
        }
        path = jobs_store_file_path(st, id);
        if (!path)
                return -ENOMEM;
        r = text_read_file(path, JOBS_MAX_FILE, ret, ret_len);
        if (r < 0)
                log_warning("jobs: cannot read %s: %s", path, strerror(-r));
        return r;
}

int jobs_store_file_delete(JobsStore *st, const char *id) {
        if (st->pg)
                return jobs_pg_file_delete(st->pg, id);
        _cleanup_stmt_ sqlite3_stmt *busy = NULL, *del = NULL;
        _cleanup_free_ char *path = NULL;
        int r, rc;

        r = prepare(st, "SELECT 1 FROM batches WHERE input_file_id = ?1 AND status NOT IN " FINAL_STATUSES,
                    &busy);
        if (r < 0)
                return r;
        bind_texts(busy, 1, &id);
        rc = sqlite3_step(busy);
        if (rc == SQLITE_ROW)
                return -EBUSY;
        if (rc != SQLITE_DONE)
                return sql_error(st, rc, "step");
        r = prepare(st, "DELETE FROM files WHERE id = ?1", &del);
        if (r < 0)
                return r;
        bind_texts(del, 1, &id);
        r = step_done(st, del);
        if (r < 0)
                return r;
        if (sqlite3_changes(st->db) == 0)
                return -ENOENT;
        path = jobs_store_file_path(st, id);
        if (path && unlink(path) < 0 && errno != ENOENT)
                log_warning("jobs: cannot remove %s: %m", path);
        return 0;
}

int jobs_store_file_list(JobsStore *st, const char *owner, json_t **ret) {
        if (st->pg)
                return jobs_pg_file_list(st->pg, owner, ret);
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(st,
                        "SELECT id, owner, filename, purpose, bytes, created_at, lines, batch_id, ok "
                        "FROM files WHERE ?1 IS NULL OR owner = ?1 ORDER BY created_at DESC, rowid DESC",
                        &s);

        if (r < 0)
                return r;
        bind_texts(s, 1, &owner);
        return rows_json(st, s, ret);
}

int jobs_store_file_count(JobsStore *st, unsigned *ret) {
        if (st->pg)
                return jobs_pg_file_count(st->pg, ret);
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(st, "SELECT COUNT(*) FROM files WHERE batch_id IS NULL", &s), rc;

        if (r < 0)
                return r;
        rc = sqlite3_step(s);
        if (rc != SQLITE_ROW)
                return sql_error(st, rc, "step");
        *ret = (unsigned) sqlite3_column_int64(s, 0);
        return 0;
}

int jobs_store_batch_add(JobsStore *st, const char *id, const char *owner, const char *input_file_id,
                         const char *endpoint, const char *completion_window, const char *metadata_json,
                         long total, int64_t created_at, int64_t expires_at) {
        if (st->pg)
                return jobs_pg_batch_add(st->pg, id, owner, input_file_id, endpoint, completion_window,
                                         metadata_json, total, created_at, expires_at);
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(st,
                        "INSERT INTO batches (id, owner, input_file_id, endpoint, completion_window, "
                        "metadata, status, total, created_at, expires_at) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'validating', ?7, ?8, ?9)",
                        &s);

        if (r < 0)
                return r;
        bind_texts(s, 6,
                   (const char *[]){id, owner, input_file_id, endpoint, completion_window, metadata_json});
        sqlite3_bind_int64(s, 7, total);
        sqlite3_bind_int64(s, 8, created_at);
        sqlite3_bind_int64(s, 9, expires_at);
        return step_done(st, s);
}

#define BATCH_COLUMNS                                                                                       \
        "b.id, b.owner, b.input_file_id, b.endpoint, b.completion_window, b.metadata, b.errors, "           \
        "b.status, b.total, b.created_at, b.expires_at, b.in_progress_at, b.finalizing_at, "                \
        "b.completed_at, b.failed_at, b.expired_at, b.cancelling_at, b.cancelled_at, "                      \
        "b.output_file_id, b.error_file_id, "                                                               \
        "(SELECT COUNT(*) FROM results r WHERE r.batch_id = b.id AND r.ok = 1) AS completed, "              \
        "(SELECT COUNT(*) FROM results r WHERE r.batch_id = b.id AND r.ok = 0) AS failed"

/* "metadata" and "errors" are stored as JSON text: hand them back parsed. */
static void batch_row_fix(json_t *row) {
        static const char *const keys[] = {"metadata", "errors"};

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const char *t = json_string_value(json_object_get(row, keys[i]));
                if (t)
                        json_object_set_new(row, keys[i], json_loads(t, 0, NULL) ?: json_null());
        }
}

int jobs_store_batch_get(JobsStore *st, const char *id, json_t **ret) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r;

        if (st->pg)
                r = jobs_pg_batch_get(st->pg, id, ret);
        else {
                r = prepare(st, "SELECT " BATCH_COLUMNS " FROM batches b WHERE b.id = ?1", &s);
                if (r < 0)
                        return r;
                bind_texts(s, 1, &id);
                r = one_row(st, s, ret);
        }
        if (r >= 0)
                batch_row_fix(*ret);
        return r;
}

int jobs_store_batch_list(JobsStore *st, const char *owner, const char *after, unsigned limit, json_t **ret,
                          int *ret_more) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        json_t *arr = NULL, *v;
        size_t i;
        int r;

        if (st->pg) {
                r = jobs_pg_batch_list(st->pg, owner, after, limit, &arr, ret_more);
                if (r < 0)
                        return r;
                json_array_foreach(arr, i, v) batch_row_fix(v);
                *ret = arr;
                return 0;
        }
        r = prepare(st,
                    "SELECT " BATCH_COLUMNS " FROM batches b WHERE (?1 IS NULL OR b.owner = ?1) AND "
                    "(?2 IS NULL OR b.seq < (SELECT seq FROM batches WHERE id = ?2)) "
                    "ORDER BY b.seq DESC LIMIT ?3",
                    &s);

        if (r < 0)
                return r;
        bind_texts(s, 2, (const char *[]){owner, after});
        sqlite3_bind_int64(s, 3, (sqlite3_int64) limit + 1);
        r = rows_json(st, s, &arr);
        if (r < 0)
                return r;
        *ret_more = json_array_size(arr) > limit;
        if (*ret_more)
                json_array_remove(arr, limit);
        json_array_foreach(arr, i, v) batch_row_fix(v);
        *ret = arr;
        return 0;
}

int jobs_store_batch_unfinished(JobsStore *st, json_t **ret) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        json_t *rows = NULL, *ids, *v;
        size_t i;
        int r;

        if (st->pg)
                return -EOPNOTSUPP; /* shared batches are claimed, not all taken at start */
        r = prepare(st, "SELECT id FROM batches WHERE status NOT IN " FINAL_STATUSES " ORDER BY seq", &s);

        if (r < 0)
                return r;
        r = rows_json(st, s, &rows);
        if (r < 0)
                return r;
        ids = json_array();
        json_array_foreach(rows, i, v) json_array_append(ids, json_object_get(v, "id"));
        json_decref(rows);
        if (!ids)
                return -ENOMEM;
        *ret = ids;
        return 0;
}

/* The *_at columns a caller may name (they go into the SQL text). */
static int at_column_valid(const char *c) {
        static const char *const cols[] = {"in_progress_at", "finalizing_at", "completed_at", "failed_at",
                                           "expired_at",     "cancelling_at", "cancelled_at"};

        for (size_t i = 0; c && i < ELEMENTSOF(cols); i++)
                if (streq(c, cols[i]))
                        return 1;
        return 0;
}

int jobs_store_batch_set_status(JobsStore *st, const char *id, const char *status, const char *at_column,
                                int64_t at) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        _cleanup_free_ char *sql = NULL;
        int r;

        if (at_column && !at_column_valid(at_column))
                return -EINVAL;
        if (st->pg)
                return jobs_pg_batch_set_status(st->pg, id, status, at_column, at);
        if (asprintf(&sql, "UPDATE batches SET status = ?2%s%s%s WHERE id = ?1", at_column ? ", " : "",
                     at_column ?: "", at_column ? " = ?3" : "") < 0)
                return -ENOMEM;
        r = prepare(st, sql, &s);
        if (r < 0)
                return r;
        bind_texts(s, 2, (const char *[]){id, status});
        if (at_column)
                sqlite3_bind_int64(s, 3, at);
        return step_done(st, s);
}

int jobs_store_batch_fail(JobsStore *st, const char *id, const char *code, const char *message, int64_t at) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        json_auto_t *e =
                json_pack("{s:s,s:[{s:s,s:s}]}", "object", "list", "data", "code", code, "message", message);
        _cleanup_free_ char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
        int r;

        if (!text)
                return -ENOMEM;
        if (st->pg)
                return jobs_pg_batch_fail(st->pg, id, text, at);
        r = prepare(st, "UPDATE batches SET status = 'failed', failed_at = ?3, errors = ?2 WHERE id = ?1",
                    &s);
        if (r < 0)
                return r;
        bind_texts(s, 2, (const char *[]){id, text});
        sqlite3_bind_int64(s, 3, at);
        return step_done(st, s);
}

static int batch_finish_tx(JobsStore *st, const char *id, const char *status, const char *at_column,
                           const char *output_id, const char *error_id, int64_t at) {
        static const char *const add_file =
                "INSERT INTO files (id, owner, filename, purpose, bytes, created_at, batch_id, ok) "
                "SELECT ?2, b.owner, b.id || CASE ?3 WHEN 1 THEN '_output.jsonl' ELSE '_error.jsonl' END, "
                " 'batch_output', "
                " COALESCE((SELECT SUM(LENGTH(CAST(output AS BLOB)) + 1) FROM results r "
                "  WHERE r.batch_id = b.id AND r.ok = ?3), 0), ?4, b.id, ?3 FROM batches b "
                "WHERE b.id = ?1 AND EXISTS (SELECT 1 FROM results r WHERE r.batch_id = b.id AND r.ok = ?3)";
        const char *ids[2] = {output_id, error_id};
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r;

        for (int k = 0; k < 2; k++) {
                r = prepare(st, add_file, &s);
                if (r < 0)
                        return r;
                bind_texts(s, 2, (const char *[]){id, ids[k]});
                sqlite3_bind_int(s, 3, k == 0);
                sqlite3_bind_int64(s, 4, at);
                r = step_done(st, s);
                if (r < 0)
                        return r;
                sqlite3_finalize(TAKE_PTR(s));
        }
        r = prepare(st,
                    "UPDATE batches SET output_file_id = (SELECT id FROM files WHERE id = ?2), "
                    "error_file_id = (SELECT id FROM files WHERE id = ?3) WHERE id = ?1",
                    &s);
        if (r < 0)
                return r;
        bind_texts(s, 3, (const char *[]){id, output_id, error_id});
        r = step_done(st, s);
        if (r < 0)
                return r;
        return jobs_store_batch_set_status(st, id, status, at_column, at);
}

/* Ends the transaction "BEGIN IMMEDIATE" opened: commits when @r (what
 * ran inside) is >= 0, else rolls back and returns @r. */
static int tx_end(JobsStore *st, int r) {
        if (r < 0) {
                (void) exec(st, "ROLLBACK");
                return r;
        }
        return exec(st, "COMMIT");
}

int jobs_store_batch_finish(JobsStore *st, const char *id, const char *status, const char *at_column,
                            const char *output_id, const char *error_id, int64_t at) {
        if (st->pg)
                return jobs_pg_batch_finish(st->pg, id, status, at_column, output_id, error_id, at);
        int r = exec(st, "BEGIN IMMEDIATE");

        return r < 0 ? r : tx_end(st, batch_finish_tx(st, id, status, at_column, output_id, error_id, at));
}

static int batch_expire_tx(JobsStore *st, const char *id, const long *lines, char *const *outputs, size_t n,
                           const char *output_id, const char *error_id, int64_t at) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(
                st, "INSERT OR IGNORE INTO results (batch_id, line, ok, output) VALUES (?1, ?2, 0, ?3)", &s);

        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                sqlite3_reset(s);
                bind_texts(s, 1, &id);
                sqlite3_bind_int64(s, 2, lines[i]);
                sqlite3_bind_text(s, 3, outputs[i], -1, SQLITE_STATIC);
                r = step_done(st, s);
                if (r < 0)
                        return r;
        }
        return batch_finish_tx(st, id, "expired", "expired_at", output_id, error_id, at);
}

int jobs_store_batch_expire(JobsStore *st, const char *id, const long *lines, char *const *outputs, size_t n,
                            const char *output_id, const char *error_id, int64_t at) {
        if (st->pg)
                return jobs_pg_batch_expire(st->pg, id, lines, outputs, n, output_id, error_id, at);
        int r = exec(st, "BEGIN IMMEDIATE");

        return r < 0 ? r : tx_end(st, batch_expire_tx(st, id, lines, outputs, n, output_id, error_id, at));
}

int jobs_store_result_add(JobsStore *st, const char *batch_id, long line, int ok, const char *output) {
        if (st->pg)
                return jobs_pg_result_add(st->pg, st->owner, batch_id, line, ok, output);
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(st, "INSERT INTO results (batch_id, line, ok, output) VALUES (?1, ?2, ?3, ?4)", &s);

        if (r < 0)
                return r;
        bind_texts(s, 1, &batch_id);
        sqlite3_bind_int64(s, 2, line);
        sqlite3_bind_int(s, 3, ok);
        sqlite3_bind_text(s, 4, output, -1, SQLITE_STATIC);
        return step_done(st, s);
}

long jobs_store_results_done(JobsStore *st, const char *batch_id, uint8_t *done, size_t n) {
        if (st->pg)
                return jobs_pg_results_done(st->pg, batch_id, done, n);
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        long count = 0;
        int rc, r = prepare(st, "SELECT line FROM results WHERE batch_id = ?1", &s);

        if (r < 0)
                return r;
        bind_texts(s, 1, &batch_id);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                sqlite3_int64 line = sqlite3_column_int64(s, 0);
                if (line >= 0 && (uint64_t) line < n && !done[line]) {
                        done[line] = 1;
                        count++;
                }
        }
        if (rc != SQLITE_DONE)
                return sql_error(st, rc, "step");
        return count;
}

/* ---- leases (shared store only) ---- */

int jobs_store_batch_claim(JobsStore *st, const char *owner, unsigned lease_s, const char *id,
                           char **ret_id) {
        return st->pg ? jobs_pg_batch_claim(st->pg, owner, lease_s, id, ret_id) : -EOPNOTSUPP;
}

int jobs_store_batch_renew(JobsStore *st, const char *owner, unsigned lease_s, const char *const *ids,
                           size_t n, json_t **ret) {
        return st->pg ? jobs_pg_batch_renew(st->pg, owner, lease_s, ids, n, ret) : -EOPNOTSUPP;
}

int jobs_store_batch_release(JobsStore *st, const char *owner, const char *id) {
        return st->pg ? jobs_pg_batch_release(st->pg, owner, id) : -EOPNOTSUPP;
}

int jobs_store_batch_cancel(JobsStore *st, const char *id, const char *output_id, const char *error_id,
                            int64_t at) {
        return st->pg ? jobs_pg_batch_cancel(st->pg, id, output_id, error_id, at) : -EOPNOTSUPP;
}

/* ---- ingest jobs ---- */

int jobs_store_ingest_add(JobsStore *st, const char *id, const char *owner, const char *agent,
                          const char *path, int64_t created_at) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(st,
                        "INSERT INTO ingest_jobs (id, owner, agent, path, status, created_at) "
                        "VALUES (?1, ?2, ?3, ?4, 'queued', ?5)",
                        &s);

        if (r < 0)
                return r;
        bind_texts(s, 4, (const char *[]){id, owner, agent, path});
        sqlite3_bind_int64(s, 5, created_at);
        return step_done(st, s);
}

#define INGEST_COLUMNS                                                                                      \
        "j.id, j.owner, j.agent, j.path, j.status, j.total, j.error, j.created_at, j.in_progress_at, "      \
        "j.completed_at, j.failed_at, j.cancelled_at, "                                                     \
        "(SELECT COUNT(*) FROM ingest_files f WHERE f.job_id = j.id AND f.outcome = 'added') AS added, "    \
        "(SELECT COUNT(*) FROM ingest_files f WHERE f.job_id = j.id AND f.outcome = 'replaced') "           \
        "AS replaced, "                                                                                     \
        "(SELECT COUNT(*) FROM ingest_files f WHERE f.job_id = j.id AND f.outcome = 'unchanged') "          \
        "AS unchanged, "                                                                                    \
        "(SELECT COUNT(*) FROM ingest_files f WHERE f.job_id = j.id AND f.outcome = 'removed') AS "         \
        "removed, "                                                                                         \
        "(SELECT COUNT(*) FROM ingest_files f WHERE f.job_id = j.id AND f.outcome = 'refused') AS "         \
        "refused, "                                                                                         \
        "(SELECT COUNT(*) FROM ingest_files f WHERE f.job_id = j.id AND f.outcome = 'failed') AS failed"

int jobs_store_ingest_get(JobsStore *st, const char *id, json_t **ret) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(st, "SELECT " INGEST_COLUMNS " FROM ingest_jobs j WHERE j.id = ?1", &s);

        if (r < 0)
                return r;
        bind_texts(s, 1, &id);
        return one_row(st, s, ret);
}

int jobs_store_ingest_list(JobsStore *st, const char *owner, unsigned limit, json_t **ret) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(st,
                        "SELECT " INGEST_COLUMNS " FROM ingest_jobs j WHERE ?1 IS NULL OR j.owner = ?1 "
                        "ORDER BY j.seq DESC LIMIT ?2",
                        &s);

        if (r < 0)
                return r;
        bind_texts(s, 1, &owner);
        sqlite3_bind_int64(s, 2, limit);
        return rows_json(st, s, ret);
}

int jobs_store_ingest_unfinished(JobsStore *st, json_t **ret) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(
                st, "SELECT id FROM ingest_jobs WHERE status IN ('queued', 'in_progress') ORDER BY seq", &s);

        if (r < 0)
                return r;
        return rows_json(st, s, ret);
}

int jobs_store_ingest_set_status(JobsStore *st, const char *id, const char *status, const char *at_column,
                                 int64_t at, const char *error) {
        static const char *const cols[] = {"in_progress_at", "completed_at", "failed_at", "cancelled_at"};
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        _cleanup_free_ char *sql = NULL;
        int known = 0, r;

        for (size_t i = 0; i < ELEMENTSOF(cols); i++)
                known |= streq(at_column, cols[i]);
        if (!known)
                return -EINVAL;
        if (asprintf(&sql,
                     "UPDATE ingest_jobs SET status = ?2, %s = ?3, error = COALESCE(?4, error) "
                     "WHERE id = ?1",
                     at_column) < 0)
                return -ENOMEM;
        r = prepare(st, sql, &s);
        if (r < 0)
                return r;
        bind_texts(s, 2, (const char *[]){id, status});
        sqlite3_bind_int64(s, 3, at);
        sqlite3_bind_text(s, 4, error, -1, SQLITE_STATIC);
        return step_done(st, s);
}

int jobs_store_ingest_set_total(JobsStore *st, const char *id, long total) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(st, "UPDATE ingest_jobs SET total = ?2 WHERE id = ?1", &s);

        if (r < 0)
                return r;
        bind_texts(s, 1, &id);
        sqlite3_bind_int64(s, 2, total);
        return step_done(st, s);
}

int jobs_store_ingest_file_add(JobsStore *st, const char *id, const char *title, const char *outcome) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(
                st, "INSERT OR IGNORE INTO ingest_files (job_id, title, outcome) VALUES (?1, ?2, ?3)", &s);

        if (r < 0)
                return r;
        bind_texts(s, 3, (const char *[]){id, title, outcome});
        return step_done(st, s);
}

int jobs_store_ingest_files_done(JobsStore *st, const char *id, json_t **ret) {
        _cleanup_stmt_ sqlite3_stmt *s = NULL;
        int r = prepare(st, "SELECT title FROM ingest_files WHERE job_id = ?1 ORDER BY title", &s);

        if (r < 0)
                return r;
        bind_texts(s, 1, &id);
        return rows_json(st, s, ret);
}
