/* jobs-store-pg.c — see jobs-store-pg.h. */
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>

#include "jobs-store-pg.h"
#include "kb-pg.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

/* Statuses after which a batch never changes again. */
#define FINAL_STATUSES "('completed','failed','cancelled','expired')"

/* Any 64-bit constant: two instances starting at once create the schema one
 * after the other (CREATE TABLE IF NOT EXISTS races on the catalog). */
#define SCHEMA_LOCK "7152906143"

/* PostgreSQL type oids of the integer columns (pg_type.h). */
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23

static const char schema_sql[] =
        "CREATE TABLE IF NOT EXISTS moa_jobs_files ("
        " seq bigserial, id text PRIMARY KEY, owner text NOT NULL, filename text NOT NULL,"
        " purpose text NOT NULL, bytes bigint NOT NULL, created_at bigint NOT NULL, lines bigint,"
        " batch_id text, ok integer);"
        /* an upload's bytes, written by the worker before its row is added */
        "CREATE TABLE IF NOT EXISTS moa_jobs_file_data ("
        " id text PRIMARY KEY, data bytea NOT NULL, stored_at timestamptz NOT NULL DEFAULT now());"
        "CREATE TABLE IF NOT EXISTS moa_jobs_batches ("
        " seq bigserial PRIMARY KEY, id text UNIQUE NOT NULL, owner text NOT NULL,"
        " input_file_id text NOT NULL, endpoint text NOT NULL, completion_window text NOT NULL,"
        " metadata text, errors text, status text NOT NULL, total bigint NOT NULL,"
        " created_at bigint NOT NULL, expires_at bigint, in_progress_at bigint, finalizing_at bigint,"
        " completed_at bigint, failed_at bigint, expired_at bigint, cancelling_at bigint,"
        " cancelled_at bigint, output_file_id text, error_file_id text,"
        " lease_owner text, lease_expires timestamptz);"
        "CREATE INDEX IF NOT EXISTS moa_jobs_batches_open ON moa_jobs_batches (seq)"
        " WHERE status NOT IN " FINAL_STATUSES ";"
        "CREATE TABLE IF NOT EXISTS moa_jobs_results ("
        " batch_id text NOT NULL, line bigint NOT NULL, ok integer NOT NULL, output text NOT NULL,"
        " PRIMARY KEY (batch_id, line));";

/* After a connection failed, stopped answering or a statement ran into
 * statement_timeout, calls fail at once for this long instead of each
 * waiting for its own timeout: a database that is down, hung or locked
 * costs each lane one timeout per second at most. */
#define RETRY_MS 1000

static uint64_t mono_msec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

typedef struct PgLink {
        PGconn *conn;
        int down;          /* the last attempt failed: log the next failure at debug only */
        uint64_t retry_at; /* CLOCK_MONOTONIC ms: no new statement before */
        int retry_err;     /* what calls fail with until then */
} PgLink;

struct JobsPg {
        unsigned timeout_ms;         /* a lane's calls: each at most this */
        pthread_mutex_t schema_lock; /* the first lane to connect makes the tables */
        int schema_ok;
        PgLink lanes[JOBS_PG_LANES]; /* one per store thread (jobs_pg_enter()) */
        pthread_mutex_t worker_lock; /* the worker's connection */
        PgLink worker;
};

/* What the calls of this thread use, from jobs_pg_enter() to
 * jobs_pg_leave(): each lane is one thread's, so a connection is never
 * used by two threads at once. Outside (shutdown, with the threads
 * joined) the first lane, and a deadline of timeout_ms from each call. */
static _Thread_local struct {
        JobsPg *pg;
        PgLink *link;
        uint64_t deadline; /* CLOCK_MONOTONIC ms; 0: none */
} cur;

void jobs_pg_enter(JobsPg *pg, unsigned lane, uint64_t deadline_ms) {
        cur.pg = pg;
        cur.link = &pg->lanes[MIN(lane, (unsigned) JOBS_PG_LANES - 1)];
        cur.deadline = deadline_ms;
}

void jobs_pg_leave(void) {
        cur.pg = NULL;
        cur.link = NULL;
        cur.deadline = 0;
}

static PgLink *lane_link(JobsPg *pg) {
        return cur.pg == pg && cur.link ? cur.link : &pg->lanes[0];
}

/* The deadline of a statement on a lane: the call's, else timeout_ms from now. */
static uint64_t lane_deadline(JobsPg *pg) {
        return cur.pg == pg && cur.deadline ? cur.deadline : mono_msec() + pg->timeout_ms;
}

static void pqclearp(PGresult **r) {
        PQclear(*r);
}
#define _cleanup_res_ _cleanup_(pqclearp)

/* Waits until @c's socket is readable (or writable with @write) or the
 * deadline passes (-ETIMEDOUT). */
static int wait_socket(PGconn *c, int write, uint64_t deadline) {
        struct pollfd p = {.fd = PQsocket(c), .events = write ? POLLOUT : POLLIN};
        int k;

        if (p.fd < 0)
                return -ECONNRESET;
        for (;;) {
                uint64_t now = mono_msec();
                if (now >= deadline)
                        return -ETIMEDOUT;
                k = poll(&p, 1, (int) MIN(deadline - now, (uint64_t) INT_MAX));
                if (k > 0)
                        return 0;
                if (k < 0 && errno != EINTR)
                        return -errno;
        }
}

static void link_drop(PgLink *l) {
        if (l->conn)
                PQfinish(l->conn);
        l->conn = NULL;
}

/* The connection failed: dropped, and none tried again for RETRY_MS. */
static void link_fail(PgLink *l) {
        if (!l->down)
                log_warning("jobs: lost the PostgreSQL connection; job calls fail (503) until it is back");
        l->down = 1;
        link_drop(l);
        l->retry_at = mono_msec() + RETRY_MS;
        l->retry_err = -ECONNREFUSED;
}

static void notice(void *arg, const char *message) {
        (void) arg;
        log_debug("jobs: postgresql: %.*s", (int) strcspn(message, "\n"), message);
}

static int schema(JobsPg *pg, PgLink *l, uint64_t deadline);
static int run(JobsPg *pg, PgLink *l, uint64_t deadline, const char *sql, int n, const char *const *values,
               const int *lengths, const int *formats, int binary, ExecStatusType want, PGresult **ret);

/* Connects @l, waiting at most until @deadline (and connect_timeout). */
static int link_connect(JobsPg *pg, PgLink *l, unsigned statement_ms, uint64_t deadline) {
        _cleanup_(kb_pg_settings_done) KbPgSettings set = {0};
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        char sql[64];
        PGconn *c;
        int r;

        r = kb_pg_settings(&set);
        if (r < 0)
                return r;
        deadline = MIN(deadline, mono_msec() + (uint64_t) set.connect_timeout_s * 1000);
        c = PQconnectStartParams(set.keys, set.values, 1);
        if (!c)
                return -ENOMEM;
        while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
                r = wait_socket(c, st == PGRES_POLLING_WRITING, deadline);
                if (r < 0)
                        break;
                st = PQconnectPoll(c);
        }
        if (PQstatus(c) != CONNECTION_OK) {
                const char *m = PQerrorMessage(c);
                /* libpq's message names the server, never the password */
                log_full(l->down ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR, 0, NULL,
                         "jobs: cannot connect to PostgreSQL: %.*s", (int) strcspn(m, "\n"),
                         *m ? m : "timed out");
                l->down = 1;
                l->retry_at = mono_msec() + RETRY_MS;
                l->retry_err = -ECONNREFUSED;
                PQfinish(c);
                return r == -ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
        }
        PQsetNoticeProcessor(c, notice, NULL);
        if (PQsetnonblocking(c, 1) < 0) {
                PQfinish(c);
                return -EIO;
        }
        l->conn = c;
        snprintf(sql, sizeof sql, "SET statement_timeout = %u", statement_ms);
        r = run(pg, l, deadline, sql, 0, NULL, NULL, NULL, 0, PGRES_COMMAND_OK, NULL);
        /* a lane makes the tables: the worker's first call (an upload's
         * bytes) comes after a lane's (the file count) */
        if (r >= 0 && l != &pg->worker) {
                pthread_mutex_lock(&pg->schema_lock);
                if (!pg->schema_ok) {
                        r = schema(pg, l, deadline);
                        pg->schema_ok = r >= 0;
                }
                pthread_mutex_unlock(&pg->schema_lock);
        }
        if (r < 0) {
                link_fail(l);
                return r;
        }
        if (l->down)
                log_info("jobs: connected to PostgreSQL again");
        l->down = 0;
        return 0;
}

/* Sends a query and collects its last result, all before @deadline; past
 * it the connection is dropped (the server's statement_timeout ends the
 * statement there). */
static int exchange(PGconn *c, uint64_t deadline, const char *sql, int n, const char *const *values,
                    const int *lengths, const int *formats, int binary, PGresult **ret) {
        PGresult *last = NULL, *res;
        int k, r;

        if (!PQsendQueryParams(c, sql, n, NULL, values, lengths, formats, binary))
                return -ECONNRESET;
        while ((k = PQflush(c)) == 1)
                if ((r = wait_socket(c, 1, deadline)) < 0)
                        return r;
        if (k < 0)
                return -ECONNRESET;
        for (;;) {
                while (PQisBusy(c)) {
                        r = wait_socket(c, 0, deadline);
                        if (r < 0) {
                                PQclear(last);
                                return r;
                        }
                        if (!PQconsumeInput(c)) {
                                PQclear(last);
                                return -ECONNRESET;
                        }
                }
                res = PQgetResult(c);
                if (!res)
                        break;
                PQclear(last);
                last = res;
        }
        *ret = last;
        return last ? 0 : -ECONNRESET;
}

/* Runs @sql on @l (connecting it first if needed); a result of status
 * @want in *@ret (NULL: dropped), else -errno, logged at debug (the caller
 * decides what the user sees). */
static int run(JobsPg *pg, PgLink *l, uint64_t deadline, const char *sql, int n, const char *const *values,
               const int *lengths, const int *formats, int binary, ExecStatusType want, PGresult **ret) {
        PGresult *res = NULL;
        int r;

        /* the call waited its whole budget in its lane's queue: nothing sent, the connection kept */
        if (mono_msec() >= deadline)
                return -ETIMEDOUT;
        /* it failed a moment ago (never inside a transaction: its ROLLBACK must go through) */
        if (mono_msec() < l->retry_at && (!l->conn || PQtransactionStatus(l->conn) == PQTRANS_IDLE))
                return l->retry_err;
        if (!l->conn || PQstatus(l->conn) != CONNECTION_OK) {
                unsigned ms = l != &pg->worker ? pg->timeout_ms : kb_pg_statement_timeout_ms();
                link_drop(l);
                r = link_connect(pg, l, ms, deadline);
                if (r < 0)
                        return r;
        }
        r = exchange(l->conn, deadline, sql, n, values, lengths, formats, binary, &res);
        if (r < 0) {
                log_debug("jobs: PostgreSQL: %s",
                          r == -ETIMEDOUT ? "no answer in time" : PQerrorMessage(l->conn));
                link_fail(l);
                return r;
        }
        if (PQresultStatus(res) != want) {
                r = kb_pg_error(res, l->conn);
                if (streq_ptr(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23505"))
                        r = -EEXIST;
                log_debug("jobs: PostgreSQL: %s", PQresultErrorMessage(res));
                PQclear(res);
                if (r == -ETIMEDOUT) {
                        /* statement_timeout: held up by a lock or a slow server */
                        l->retry_at = mono_msec() + RETRY_MS;
                        l->retry_err = -ETIMEDOUT;
                }
                if (r == -ECONNRESET)
                        link_fail(l);
                else if (PQtransactionStatus(l->conn) == PQTRANS_INERROR) {
                        /* (a statement_timeout leaves the connection usable) */
                        res = NULL;
                        if (exchange(l->conn, mono_msec() + 1000, "ROLLBACK", 0, NULL, NULL, NULL, 0, &res) <
                                    0 ||
                            PQresultStatus(res) != PGRES_COMMAND_OK)
                                link_fail(l);
                        PQclear(res);
                }
                return r;
        }
        if (ret)
                *ret = res;
        else
                PQclear(res);
        return 0;
}

static int schema(JobsPg *pg, PgLink *l, uint64_t deadline) {
        _cleanup_free_ char *sql = NULL;
        int r;

        /* several statements: the simple protocol (no parameters) runs them as one transaction */
        if (asprintf(&sql, "BEGIN; SELECT pg_advisory_xact_lock(" SCHEMA_LOCK "); %s COMMIT;", schema_sql) <
            0)
                return -ENOMEM;
        if (!PQsendQuery(l->conn, sql))
                return -ECONNRESET;
        r = 0;
        for (;;) {
                PGresult *res;
                while (PQisBusy(l->conn)) {
                        int k = wait_socket(l->conn, 0, deadline);
                        if (k < 0)
                                return k;
                        if (!PQconsumeInput(l->conn))
                                return -ECONNRESET;
                }
                res = PQgetResult(l->conn);
                if (!res)
                        break;
                if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK &&
                    r == 0) {
                        r = kb_pg_error(res, l->conn);
                        log_error("jobs: cannot create the jobs tables in PostgreSQL: %s",
                                  PQresultErrorMessage(res));
                }
                PQclear(res);
        }
        return r;
}

/* A statement on this thread's lane, bounded by the call's deadline. */
static int q(JobsPg *pg, const char *sql, int n, const char *const *values, ExecStatusType want,
             PGresult **ret) {
        return run(pg, lane_link(pg), lane_deadline(pg), sql, n, values, NULL, NULL, 0, want, ret);
}

static int cmd(JobsPg *pg, const char *sql, int n, const char *const *values) {
        return q(pg, sql, n, values, PGRES_COMMAND_OK, NULL);
}

/* Ends a transaction begun on this thread's lane: COMMIT when @r >= 0,
 * else ROLLBACK (if the connection is still there: given a second of its
 * own, as the call's deadline may have passed) and @r. */
static int tx_end(JobsPg *pg, int r) {
        PgLink *l = lane_link(pg);

        /* a COMMIT refused unsent (past the deadline) leaves the transaction open: rolled back below */
        if (r >= 0 && (r = cmd(pg, "COMMIT", 0, NULL)) >= 0)
                return r;
        if (l->conn && PQtransactionStatus(l->conn) != PQTRANS_IDLE)
                (void) run(pg, l, mono_msec() + 1000, "ROLLBACK", 0, NULL, NULL, NULL, 0, PGRES_COMMAND_OK,
                           NULL);
        return r;
}

/* ---- rows as JSON ---- */

static json_t *row_json(const PGresult *res, int row) {
        json_t *o = json_object();

        for (int i = 0; o && i < PQnfields(res); i++) {
                const char *v = PQgetvalue(res, row, i);
                Oid t = PQftype(res, i);
                json_t *j;

                if (PQgetisnull(res, row, i))
                        j = json_null();
                else if (t == INT8OID || t == INT4OID || t == INT2OID)
                        j = json_integer(strtoll(v, NULL, 10));
                else
                        j = json_stringn(v, (size_t) PQgetlength(res, row, i));
                if (json_object_set_new(o, PQfname(res, i), j ? j : json_null()) < 0)
                        o = (json_decref(o), NULL);
        }
        return o;
}

static int rows_json(const PGresult *res, json_t **ret) {
        json_auto_t *arr = json_array();

        if (!arr)
                return -ENOMEM;
        for (int i = 0; i < PQntuples(res); i++)
                if (json_array_append_new(arr, row_json(res, i)) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(arr);
        return 0;
}

static int query_rows(JobsPg *pg, const char *sql, int n, const char *const *values, json_t **ret) {
        _cleanup_res_ PGresult *res = NULL;
        int r = q(pg, sql, n, values, PGRES_TUPLES_OK, &res);

        return r < 0 ? r : rows_json(res, ret);
}

static int query_one(JobsPg *pg, const char *sql, int n, const char *const *values, json_t **ret) {
        _cleanup_res_ PGresult *res = NULL;
        int r = q(pg, sql, n, values, PGRES_TUPLES_OK, &res);

        if (r < 0)
                return r;
        if (PQntuples(res) == 0)
                return -ENOENT;
        *ret = row_json(res, 0);
        return *ret ? 0 : -ENOMEM;
}

/* Rows changed by a command (UPDATE, DELETE, INSERT). */
static long changed(const PGresult *res) {
        return strtol(PQcmdTuples((PGresult *) res), NULL, 10);
}

static int cmd_count(JobsPg *pg, const char *sql, int n, const char *const *values) {
        _cleanup_res_ PGresult *res = NULL;
        int r = q(pg, sql, n, values, PGRES_COMMAND_OK, &res);

        return r < 0 ? r : (int) MIN(changed(res), (long) INT_MAX);
}

/* ---- open / close ---- */

int jobs_pg_open(unsigned timeout_ms, JobsPg **ret) {
        JobsPg *pg = calloc(1, sizeof *pg);

        if (!pg)
                return -ENOMEM;
        pg->timeout_ms = timeout_ms;
        pthread_mutex_init(&pg->schema_lock, NULL);
        pthread_mutex_init(&pg->worker_lock, NULL);
        *ret = pg;
        return 0;
}

JobsPg *jobs_pg_close(JobsPg *pg) {
        if (!pg)
                return NULL;
        for (size_t i = 0; i < JOBS_PG_LANES; i++)
                link_drop(&pg->lanes[i]);
        link_drop(&pg->worker);
        pthread_mutex_destroy(&pg->schema_lock);
        pthread_mutex_destroy(&pg->worker_lock);
        free(pg);
        return NULL;
}

/* ---- file bytes, on the worker ---- */

/* A statement on the worker's connection; the caller holds worker_lock. */
static int wq(JobsPg *pg, const char *sql, int n, const char *const *values, const int *lengths,
              const int *formats, int binary, ExecStatusType want, PGresult **ret) {
        uint64_t deadline = mono_msec() + kb_pg_statement_timeout_ms() + 1000;

        return run(pg, &pg->worker, deadline, sql, n, values, lengths, formats, binary, want, ret);
}

int jobs_pg_file_put(JobsPg *pg, const char *id, const char *data, size_t len) {
        const char *values[2] = {id, data};
        int lengths[2] = {0, (int) len}, formats[2] = {0, 1};
        int r;

        if (len > INT_MAX)
                return -E2BIG;
        pthread_mutex_lock(&pg->worker_lock);
        r = wq(pg, "INSERT INTO moa_jobs_file_data (id, data) VALUES ($1, $2)", 2, values, lengths, formats,
               0, PGRES_COMMAND_OK, NULL);
        pthread_mutex_unlock(&pg->worker_lock);
        return r;
}

/* The bytes of an upload from a binary-format result, NUL-terminated. */
static int bytes_of(const PGresult *res, size_t max, char **ret, size_t *ret_len) {
        size_t n;
        char *buf;

        if (PQntuples(res) == 0)
                return -ENOENT;
        n = (size_t) PQgetlength(res, 0, 0);
        if (n > max)
                return -EFBIG;
        buf = malloc(n + 1);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, PQgetvalue(res, 0, 0), n);
        buf[n] = 0;
        *ret = buf;
        *ret_len = n;
        return 0;
}

int jobs_pg_file_read(JobsPg *pg, const char *id, size_t max, char **ret, size_t *ret_len) {
        _cleanup_res_ PGresult *res = NULL;
        int r;

        pthread_mutex_lock(&pg->worker_lock);
        r = wq(pg, "SELECT data FROM moa_jobs_file_data WHERE id = $1", 1, &id, NULL, NULL, 1,
               PGRES_TUPLES_OK, &res);
        pthread_mutex_unlock(&pg->worker_lock);
        return r < 0 ? r : bytes_of(res, max, ret, ret_len);
}

int jobs_pg_file_unput(JobsPg *pg, const char *id) {
        return cmd(pg, "DELETE FROM moa_jobs_file_data WHERE id = $1", 1, &id);
}

int jobs_pg_sweep_files(JobsPg *pg) {
        /* Another instance may be between writing the bytes and adding the
         * row: only bytes older than any upload takes are left-overs. */
        return cmd_count(pg,
                         "DELETE FROM moa_jobs_file_data d WHERE d.stored_at < now() - interval '1 hour' "
                         "AND NOT EXISTS (SELECT 1 FROM moa_jobs_files f WHERE f.id = d.id)",
                         0, NULL);
}

/* ---- files ---- */

int jobs_pg_file_add(JobsPg *pg, const char *id, const char *owner, const char *filename,
                     const char *purpose, uint64_t bytes, long lines, int64_t created_at) {
        char b[24], c[24], l[24];

        snprintf(b, sizeof b, "%" PRIu64, bytes);
        snprintf(c, sizeof c, "%" PRId64, created_at);
        snprintf(l, sizeof l, "%ld", lines);
        return cmd(pg,
                   "INSERT INTO moa_jobs_files (id, owner, filename, purpose, bytes, created_at, lines) "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                   7, (const char *[]){id, owner, filename, purpose, b, c, l});
}

#define FILE_COLUMNS "id, owner, filename, purpose, bytes, created_at, lines, batch_id, ok"

int jobs_pg_file_get(JobsPg *pg, const char *id, json_t **ret) {
        return query_one(pg, "SELECT " FILE_COLUMNS " FROM moa_jobs_files WHERE id = $1", 1, &id, ret);
}

int jobs_pg_file_content(JobsPg *pg, const char *id, size_t max, char **ret, size_t *ret_len) {
        _cleanup_res_ PGresult *res = NULL;
        _cleanup_(strbuf_done) StrBuf b = {0};
        json_auto_t *row = NULL;
        int r = jobs_pg_file_get(pg, id, &row);

        if (r < 0)
                return r;
        if (!json_is_string(json_object_get(row, "batch_id"))) {
                r = run(pg, lane_link(pg), lane_deadline(pg),
                        "SELECT data FROM moa_jobs_file_data WHERE id = $1", 1, &id, NULL, NULL, 1,
                        PGRES_TUPLES_OK, &res);
                return r < 0 ? r : bytes_of(res, max, ret, ret_len);
        }
        /* a batch's output or error file: its lines in input order, each with its newline */
        r = run(pg, lane_link(pg), lane_deadline(pg),
                "SELECT convert_to(r.output, 'UTF8') FROM moa_jobs_files f "
                "JOIN moa_jobs_results r ON r.batch_id = f.batch_id AND r.ok = f.ok "
                "WHERE f.id = $1 ORDER BY r.line",
                1, &id, NULL, NULL, 1, PGRES_TUPLES_OK, &res);
        if (r < 0)
                return r;
        for (int i = 0; i < PQntuples(res); i++) {
                r = strbuf_append(&b, PQgetvalue(res, i, 0), (size_t) PQgetlength(res, i, 0), max);
                if (r >= 0)
                        r = strbuf_append(&b, "\n", 1, max);
                if (r < 0)
                        return r == -E2BIG ? -EFBIG : r;
        }
        if (!b.p && !(b.p = calloc(1, 1)))
                return -ENOMEM;
        *ret_len = b.len;
        *ret = TAKE_PTR(b.p);
        return 0;
}

int jobs_pg_file_delete(JobsPg *pg, const char *id) {
        int r;

        r = cmd(pg, "BEGIN", 0, NULL);
        if (r < 0)
                return r;
        {
                /* the open batches reading the file, locked: none ends or starts reading it meanwhile */
                _cleanup_res_ PGresult *res = NULL;
                r = q(pg,
                      "SELECT 1 FROM moa_jobs_batches WHERE input_file_id = $1 AND status NOT "
                      "IN " FINAL_STATUSES " FOR UPDATE",
                      1, &id, PGRES_TUPLES_OK, &res);
                if (r >= 0 && PQntuples(res) > 0)
                        r = -EBUSY;
        }
        if (r >= 0) {
                r = cmd_count(pg, "DELETE FROM moa_jobs_files WHERE id = $1", 1, &id);
                if (r == 0)
                        r = -ENOENT;
        }
        if (r >= 0)
                r = cmd(pg, "DELETE FROM moa_jobs_file_data WHERE id = $1", 1, &id);
        return tx_end(pg, r);
}

int jobs_pg_file_list(JobsPg *pg, const char *owner, json_t **ret) {
        return query_rows(pg,
                          "SELECT " FILE_COLUMNS " FROM moa_jobs_files WHERE $1::text IS NULL OR owner = $1 "
                          "ORDER BY created_at DESC, seq DESC",
                          1, &owner, ret);
}

int jobs_pg_file_count(JobsPg *pg, unsigned *ret) {
        json_auto_t *row = NULL;
        int r = query_one(pg, "SELECT count(*) AS n FROM moa_jobs_files WHERE batch_id IS NULL", 0, NULL,
                          &row);

        if (r < 0)
                return r;
        *ret = (unsigned) json_integer_value(json_object_get(row, "n"));
        return 0;
}

/* ---- batches ---- */

int jobs_pg_batch_add(JobsPg *pg, const char *id, const char *owner, const char *input_file_id,
                      const char *endpoint, const char *completion_window, const char *metadata_json,
                      long total, int64_t created_at, int64_t expires_at) {
        char t[24], c[24], e[24];

        snprintf(t, sizeof t, "%ld", total);
        snprintf(c, sizeof c, "%" PRId64, created_at);
        snprintf(e, sizeof e, "%" PRId64, expires_at);
        return cmd(pg,
                   "INSERT INTO moa_jobs_batches (id, owner, input_file_id, endpoint, completion_window, "
                   "metadata, status, total, created_at, expires_at) "
                   "VALUES ($1, $2, $3, $4, $5, $6, 'validating', $7, $8, $9)",
                   9,
                   (const char *[]){id, owner, input_file_id, endpoint, completion_window, metadata_json, t,
                                    c, e});
}

#define BATCH_COLUMNS                                                                                       \
        "b.id, b.owner, b.input_file_id, b.endpoint, b.completion_window, b.metadata, b.errors, b.status, " \
        "b.total, b.created_at, b.expires_at, b.in_progress_at, b.finalizing_at, b.completed_at, "          \
        "b.failed_at, b.expired_at, b.cancelling_at, b.cancelled_at, b.output_file_id, b.error_file_id, "   \
        "(SELECT count(*) FROM moa_jobs_results r WHERE r.batch_id = b.id AND r.ok = 1) AS completed, "     \
        "(SELECT count(*) FROM moa_jobs_results r WHERE r.batch_id = b.id AND r.ok = 0) AS failed"

int jobs_pg_batch_get(JobsPg *pg, const char *id, json_t **ret) {
        return query_one(pg, "SELECT " BATCH_COLUMNS " FROM moa_jobs_batches b WHERE b.id = $1", 1, &id,
                         ret);
}

int jobs_pg_batch_list(JobsPg *pg, const char *owner, const char *after, unsigned limit, json_t **ret,
                       int *ret_more) {
        json_t *arr = NULL;
        char lim[16];
        int r;

        snprintf(lim, sizeof lim, "%u", limit + 1);
        r = query_rows(pg,
                       "SELECT " BATCH_COLUMNS
                       " FROM moa_jobs_batches b WHERE ($1::text IS NULL OR b.owner = $1) "
                       "AND ($2::text IS NULL OR b.seq < (SELECT seq FROM moa_jobs_batches WHERE id = $2)) "
                       "ORDER BY b.seq DESC LIMIT $3",
                       3, (const char *[]){owner, after, lim}, &arr);
        if (r < 0)
                return r;
        *ret_more = json_array_size(arr) > limit;
        if (*ret_more)
                json_array_remove(arr, limit);
        *ret = arr;
        return 0;
}

/* @at_column is checked by the caller (it goes into the SQL text). A batch
 * that has ended keeps its final status whatever another instance sets. */
int jobs_pg_batch_set_status(JobsPg *pg, const char *id, const char *status, const char *at_column,
                             int64_t at) {
        _cleanup_free_ char *sql = NULL;
        char a[24];

        snprintf(a, sizeof a, "%" PRId64, at);
        if (asprintf(&sql,
                     "UPDATE moa_jobs_batches SET status = $2%s%s%s WHERE id = $1 AND status NOT "
                     "IN " FINAL_STATUSES,
                     at_column ? ", " : "", at_column ?: "", at_column ? " = $3" : "") < 0)
                return -ENOMEM;
        return cmd(pg, sql, at_column ? 3 : 2, (const char *[]){id, status, a});
}

int jobs_pg_batch_fail(JobsPg *pg, const char *id, const char *errors_json, int64_t at) {
        char a[24];

        snprintf(a, sizeof a, "%" PRId64, at);
        return cmd(pg,
                   "UPDATE moa_jobs_batches SET status = 'failed', failed_at = $3, errors = $2 "
                   "WHERE id = $1 AND status NOT IN " FINAL_STATUSES,
                   3, (const char *[]){id, errors_json, a});
}

/* Inside a transaction: the batch row locked; -EALREADY when it has ended
 * (another instance finished it first). */
static int lock_open_batch(JobsPg *pg, const char *id) {
        json_auto_t *row = NULL;
        int r = query_one(pg, "SELECT status FROM moa_jobs_batches WHERE id = $1 FOR UPDATE", 1, &id, &row);
        const char *s;

        if (r < 0)
                return r;
        s = json_string_value(json_object_get(row, "status"));
        if (!s || streq(s, "completed") || streq(s, "failed") || streq(s, "cancelled") ||
            streq(s, "expired"))
                return -EALREADY;
        return 0;
}

static int batch_finish_tx(JobsPg *pg, const char *id, const char *status, const char *at_column,
                           const char *output_id, const char *error_id, int64_t at) {
        static const char add_file[] =
                "INSERT INTO moa_jobs_files (id, owner, filename, purpose, bytes, created_at, batch_id, ok) "
                "SELECT $2, b.owner, b.id || CASE $3::int WHEN 1 THEN '_output.jsonl' ELSE '_error.jsonl' "
                "END, "
                " 'batch_output', "
                " COALESCE((SELECT sum(octet_length(output) + 1) FROM moa_jobs_results r "
                "  WHERE r.batch_id = b.id AND r.ok = $3::int), 0), $4, b.id, $3::int FROM moa_jobs_batches "
                "b "
                "WHERE b.id = $1 AND EXISTS (SELECT 1 FROM moa_jobs_results r WHERE r.batch_id = b.id AND "
                "r.ok = "
                "$3::int)";
        _cleanup_free_ char *sql = NULL;
        const char *ids[2] = {output_id, error_id};
        char a[24];
        int r;

        snprintf(a, sizeof a, "%" PRId64, at);
        for (int k = 0; k < 2; k++) {
                r = cmd(pg, add_file, 4, (const char *[]){id, ids[k], k == 0 ? "1" : "0", a});
                if (r < 0)
                        return r;
        }
        if (asprintf(&sql,
                     "UPDATE moa_jobs_batches SET output_file_id = (SELECT id FROM moa_jobs_files WHERE id "
                     "= $2), "
                     "error_file_id = (SELECT id FROM moa_jobs_files WHERE id = $3), status = $4, %s = $5 "
                     "WHERE id = $1",
                     at_column) < 0)
                return -ENOMEM;
        return cmd(pg, sql, 5, (const char *[]){id, output_id, error_id, status, a});
}

int jobs_pg_batch_finish(JobsPg *pg, const char *id, const char *status, const char *at_column,
                         const char *output_id, const char *error_id, int64_t at) {
        int r = cmd(pg, "BEGIN", 0, NULL);

        if (r < 0)
                return r;
        r = lock_open_batch(pg, id);
        if (r >= 0)
                r = batch_finish_tx(pg, id, status, at_column, output_id, error_id, at);
        return tx_end(pg, r);
}

int jobs_pg_batch_expire(JobsPg *pg, const char *id, const long *lines, char *const *outputs, size_t n,
                         const char *output_id, const char *error_id, int64_t at) {
        int r = cmd(pg, "BEGIN", 0, NULL);

        if (r < 0)
                return r;
        r = lock_open_batch(pg, id);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                char l[24];
                snprintf(l, sizeof l, "%ld", lines[i]);
                r = cmd(pg,
                        "INSERT INTO moa_jobs_results (batch_id, line, ok, output) VALUES ($1, $2, 0, $3) "
                        "ON CONFLICT DO NOTHING",
                        3, (const char *[]){id, l, outputs[i]});
        }
        if (r >= 0)
                r = batch_finish_tx(pg, id, "expired", "expired_at", output_id, error_id, at);
        return tx_end(pg, r);
}

/* ---- results ---- */

int jobs_pg_result_add(JobsPg *pg, const char *owner, const char *batch_id, long line, int ok,
                       const char *output) {
        json_auto_t *row = NULL;
        const char *st, *holder;
        char l[24];
        int r;

        snprintf(l, sizeof l, "%ld", line);
        /* Only by the lease holder, and only while the batch is open: one
         * instance at a time stores a batch's lines, and a cancel on
         * another instance ends it with the lines stored then. FOR SHARE
         * waits for a transaction ending the batch and then sees it ended. */
        r = cmd_count(pg,
                      "INSERT INTO moa_jobs_results (batch_id, line, ok, output) "
                      "SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM moa_jobs_batches "
                      " WHERE id = $1 AND status NOT IN " FINAL_STATUSES
                      " AND ($5::text IS NULL OR lease_owner = $5) FOR SHARE) "
                      "ON CONFLICT DO NOTHING",
                      5, (const char *[]){batch_id, l, ok ? "1" : "0", output, owner});
        if (r != 0)
                return r < 0 ? r : 0;
        /* refused or already there: which? */
        r = query_one(pg, "SELECT status, lease_owner FROM moa_jobs_batches WHERE id = $1", 1, &batch_id,
                      &row);
        if (r < 0)
                return r == -ENOENT ? -ESTALE : r;
        st = json_string_value(json_object_get(row, "status"));
        holder = json_string_value(json_object_get(row, "lease_owner"));
        if (!st || streq(st, "completed") || streq(st, "failed") || streq(st, "cancelled") ||
            streq(st, "expired"))
                return -ESTALE;
        if (owner && !streq_ptr(holder, owner))
                return -ESTALE;
        return -EEXIST;
}

long jobs_pg_results_done(JobsPg *pg, const char *batch_id, uint8_t *done, size_t n) {
        _cleanup_res_ PGresult *res = NULL;
        long count = 0;
        int r = q(pg, "SELECT line FROM moa_jobs_results WHERE batch_id = $1", 1, &batch_id, PGRES_TUPLES_OK,
                  &res);

        if (r < 0)
                return r;
        for (int i = 0; i < PQntuples(res); i++) {
                long long line = strtoll(PQgetvalue(res, i, 0), NULL, 10);
                if (line >= 0 && (unsigned long long) line < n && !done[line]) {
                        done[line] = 1;
                        count++;
                }
        }
        return count;
}

/* ---- leases ---- */

int jobs_pg_batch_claim(JobsPg *pg, const char *owner, unsigned lease_s, const char *id, char **ret_id) {
        _cleanup_res_ PGresult *res = NULL;
        char l[16];
        int r;

        snprintf(l, sizeof l, "%u", lease_s);
        /* the oldest open batch no live lease holds; rows another instance
         * is claiming right now are skipped, not waited for */
        r = q(pg,
              "UPDATE moa_jobs_batches SET lease_owner = $1, "
              "lease_expires = now() + make_interval(secs => $2::int) "
              "WHERE id = (SELECT id FROM moa_jobs_batches WHERE status NOT IN " FINAL_STATUSES
              " AND ($3::text IS NULL OR id = $3) "
              " AND (lease_owner IS NULL OR lease_expires < now() OR ($3::text IS NOT NULL AND lease_owner "
              "= $1)) "
              " ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
              3, (const char *[]){owner, l, id}, PGRES_TUPLES_OK, &res);
        if (r < 0)
                return r;
        if (PQntuples(res) == 0)
                return -ENOENT;
        *ret_id = strdup(PQgetvalue(res, 0, 0));
        return *ret_id ? 0 : -ENOMEM;
}

int jobs_pg_batch_renew(JobsPg *pg, const char *owner, unsigned lease_s, const char *const *ids, size_t n,
                        json_t **ret) {
        _cleanup_free_ char *arr = NULL;
        size_t len = 2;
        char l[16], *p;

        /* ids are "batch_" and hex digits: an array literal needs no quoting */
        for (size_t i = 0; i < n; i++)
                len += strlen(ids[i]) + 1;
        arr = malloc(len + 1);
        if (!arr)
                return -ENOMEM;
        p = arr;
        *p++ = '{';
        for (size_t i = 0; i < n; i++)
                p += sprintf(p, "%s%s", i ? "," : "", ids[i]);
        *p++ = '}';
        *p = 0;
        snprintf(l, sizeof l, "%u", lease_s);
        return query_rows(
                pg,
                "UPDATE moa_jobs_batches SET lease_expires = now() + make_interval(secs => $2::int) "
                "WHERE lease_owner = $1 AND id = ANY($3::text[]) RETURNING id, status",
                3, (const char *[]){owner, l, arr}, ret);
}

int jobs_pg_batch_release(JobsPg *pg, const char *owner, const char *id) {
        return cmd(pg,
                   "UPDATE moa_jobs_batches SET lease_owner = NULL, lease_expires = NULL "
                   "WHERE id = $2 AND lease_owner = $1",
                   2, (const char *[]){owner, id});
}

int jobs_pg_batch_cancel(JobsPg *pg, const char *id, const char *output_id, const char *error_id,
                         int64_t at) {
        char a[24];
        int r = cmd(pg, "BEGIN", 0, NULL);

        if (r < 0)
                return r;
        snprintf(a, sizeof a, "%" PRId64, at);
        r = lock_open_batch(pg, id);
        if (r >= 0)
                r = cmd(pg,
                        "UPDATE moa_jobs_batches SET cancelling_at = COALESCE(cancelling_at, $2::bigint) "
                        "WHERE id = $1",
                        2, (const char *[]){id, a});
        if (r >= 0)
                r = batch_finish_tx(pg, id, "cancelled", "cancelled_at", output_id, error_id, at);
        return tx_end(pg, r);
}
