/* jobs-store-pg.h — the PostgreSQL half of jobs-store.h, internal to
 * jobs-store.c, which dispatches to it when the knowledge backend is
 * PostgreSQL: uploaded files (their bytes as bytea), batches and their
 * result lines live in the knowledge database, so every moad instance on it
 * sees, lists and cancels the same jobs, and one instance at a time owns a
 * batch through a lease (lease_owner, lease_expires) taken with
 * SELECT ... FOR UPDATE SKIP LOCKED and renewed by a heartbeat.
 *
 * Nothing here runs on the event loop. One connection per lane
 * (JOBS_PG_LANES: the runner's and the API's store threads, jobs.c), used
 * by the thread between jobs_pg_enter() and jobs_pg_leave() (every call
 * bounded by its deadline, at most jobs.db_timeout_ms: libpq in
 * non-blocking mode, polled with the deadline, the connection dropped when
 * it passes), and one used on the jobs worker for file bytes (guarded by a
 * mutex, bounded by knowledge.statement_timeout_ms). Each connects again on
 * the call after a failure. The connection settings
 * (conninfo, password file) are the knowledge backend's (kb_pg_settings()).
 * The functions have the contracts of their jobs_store_ namesakes; a
 * database that cannot be reached gives -ECONNREFUSED, -ECONNRESET or
 * -ETIMEDOUT (jobs_store_unavailable()). */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct JobsPg JobsPg;

/* Store threads, each with a connection of its own. */
#define JOBS_PG_LANES 2

/**
 * jobs_pg_enter() - the calls this thread makes until jobs_pg_leave() use
 * lane @lane's connection and end by @deadline_ms (CLOCK_MONOTONIC ms;
 * 0: jobs.db_timeout_ms from each call). One thread per lane at a time.
 */
void jobs_pg_enter(JobsPg *pg, unsigned lane, uint64_t deadline_ms);
void jobs_pg_leave(void);

/** jobs_pg_open() - a handle; it connects on first use, so a database down at start is no error. */
int jobs_pg_open(unsigned timeout_ms, JobsPg **ret);
JobsPg *jobs_pg_close(JobsPg *pg);

int jobs_pg_file_put(JobsPg *pg, const char *id, const char *data, size_t len);
int jobs_pg_file_read(JobsPg *pg, const char *id, size_t max, char **ret, size_t *ret_len);
int jobs_pg_file_unput(JobsPg *pg, const char *id);
int jobs_pg_sweep_files(JobsPg *pg);
int jobs_pg_file_add(JobsPg *pg, const char *id, const char *owner, const char *filename,
                     const char *purpose, uint64_t bytes, long lines, int64_t created_at);
int jobs_pg_file_get(JobsPg *pg, const char *id, json_t **ret);
int jobs_pg_file_content(JobsPg *pg, const char *id, size_t max, char **ret, size_t *ret_len);
int jobs_pg_file_delete(JobsPg *pg, const char *id);
int jobs_pg_file_list(JobsPg *pg, const char *owner, json_t **ret);
int jobs_pg_file_count(JobsPg *pg, unsigned *ret);

int jobs_pg_batch_add(JobsPg *pg, const char *id, const char *owner, const char *input_file_id,
                      const char *endpoint, const char *completion_window, const char *metadata_json,
                      long total, int64_t created_at, int64_t expires_at);
int jobs_pg_batch_get(JobsPg *pg, const char *id, json_t **ret);
int jobs_pg_batch_list(JobsPg *pg, const char *owner, const char *after, unsigned limit, json_t **ret,
                       int *ret_more);
int jobs_pg_batch_set_status(JobsPg *pg, const char *id, const char *status, const char *at_column,
                             int64_t at);
int jobs_pg_batch_fail(JobsPg *pg, const char *id, const char *errors_json, int64_t at);
int jobs_pg_batch_finish(JobsPg *pg, const char *id, const char *status, const char *at_column,
                         const char *output_id, const char *error_id, int64_t at);
int jobs_pg_batch_expire(JobsPg *pg, const char *id, const long *lines, char *const *outputs, size_t n,
                         const char *output_id, const char *error_id, int64_t at);
int jobs_pg_result_add(JobsPg *pg, const char *owner, const char *batch_id, long line, int ok,
                       const char *output);
long jobs_pg_results_done(JobsPg *pg, const char *batch_id, uint8_t *done, size_t n);

int jobs_pg_batch_claim(JobsPg *pg, const char *owner, unsigned lease_s, const char *id, char **ret_id);
int jobs_pg_batch_renew(JobsPg *pg, const char *owner, unsigned lease_s, const char *const *ids, size_t n,
                        json_t **ret);
int jobs_pg_batch_release(JobsPg *pg, const char *owner, const char *id);
int jobs_pg_batch_cancel(JobsPg *pg, const char *id, const char *output_id, const char *error_id,
                         int64_t at);
