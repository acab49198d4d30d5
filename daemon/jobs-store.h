/* jobs-store.h — persistence of the Files and Batches API: one SQLite
 * database (jobs.db, WAL) in the daemon's state directory, next to the
 * knowledge bases, with the rows of uploaded files (their bytes are files
 * in jobs-files/, written by the jobs worker), batches, and one row per
 * answered batch line, committed as the line completes, so a restart
 * resumes a batch without asking a finished line again. Used on the loop:
 * every write is one short statement on a few rows.
 * With the PostgreSQL knowledge backend the files (bytes included),
 * batches and results are in that database instead
 * (jobs_store_open_shared()), so that any number of instances share them;
 * the ingest jobs stay in jobs.db, as they read a directory of this host.
 * The calls of files, batches, results and leases then never run on the
 * loop: jobs.c makes them on its store threads (jobs_call()), one per
 * lane, each inside jobs_store_enter() and jobs_store_leave().
 * Rows come back as JSON objects keyed by column name. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct JobsStore JobsStore;

/** jobs_store_open() - open or create @dir/jobs.db. Returns 0 or -errno. */
int jobs_store_open(const char *dir, JobsStore **ret);

/**
 * jobs_store_open_shared() - @dir/jobs.db for the ingest jobs, and files,
 * batches and results in the PostgreSQL knowledge database
 * (jobs-store-pg.h), shared by every instance on it. Does not connect: a
 * database down at start is no error, the first call tries. Every call
 * waits at most @timeout_ms. Returns 0 or -errno.
 */
int jobs_store_open_shared(const char *dir, unsigned timeout_ms, JobsStore **ret);

/**
 * jobs_store_set_owner() - the lease owner this instance claims batches as
 * (shared): jobs_store_result_add() then stores a line only while @owner
 * holds the batch. Returns 0 or -ENOMEM.
 */
int jobs_store_set_owner(JobsStore *st, const char *owner);

/* The lanes of a shared store: the batch runner's calls, and the HTTP API's. */
enum { JOBS_STORE_RUNNER = 0, JOBS_STORE_API = 1 };

/**
 * jobs_store_enter() - the calls this thread makes on @st until
 * jobs_store_leave() use the connection of @lane and end by @deadline_ms
 * (CLOCK_MONOTONIC ms; 0: jobs.db_timeout_ms from each call), failing with
 * -ETIMEDOUT past it. One thread per lane at a time. Nothing for SQLite.
 */
void jobs_store_enter(JobsStore *st, unsigned lane, uint64_t deadline_ms);
void jobs_store_leave(JobsStore *st);

/** jobs_store_shared() - whether @st is shared (PostgreSQL). */
int jobs_store_shared(JobsStore *st);

/**
 * jobs_store_unavailable() - whether the error @r of a store call means
 * the shared database could not be reached or did not answer in time
 * (503 for a client, worth retrying), rather than a fault of the request.
 */
int jobs_store_unavailable(int r);

/** jobs_store_close() - NULL ok; returns NULL. */
JobsStore *jobs_store_close(JobsStore *st);

/* ---- files ---- */

/**
 * jobs_store_file_path() - where the bytes of upload @id live
 * (<dir>/jobs-files/@id). Malloc'ed; NULL on OOM.
 */
char *jobs_store_file_path(JobsStore *st, const char *id);

/**
 * jobs_file_write() - write @len bytes to @path (through @path.tmp, synced
 * and renamed). No store needed: safe on any thread. Returns 0 or -errno.
 */
int jobs_file_write(const char *path, const char *data, size_t len);

/**
 * jobs_store_file_put() - store the @len bytes of upload @id before its
 * row is added (SQLite: the file jobs_store_file_path() through
 * jobs_file_write(); shared: a bytea row). Safe on the jobs worker: it is
 * what calls it. Returns 0 or -errno.
 */
int jobs_store_file_put(JobsStore *st, const char *id, const char *data, size_t len);

/**
 * jobs_store_file_read() - the bytes of upload @id (at most @max, else
 * -EFBIG), malloc'ed and NUL-terminated; for the jobs worker. -ENOENT.
 */
int jobs_store_file_read(JobsStore *st, const char *id, size_t max, char **ret, size_t *ret_len);

/** jobs_store_file_unput() - forget the bytes of an upload whose row was never added. */
int jobs_store_file_unput(JobsStore *st, const char *id);

/**
 * jobs_store_sweep_files() - remove what an interrupted upload left in
 * jobs-files/ (a file without a row). Returns how many, or -errno.
 */
int jobs_store_sweep_files(JobsStore *st);

/**
 * jobs_store_file_add() - the row of an upload whose bytes are already at
 * jobs_store_file_path(). Returns 0 or -errno.
 */
int jobs_store_file_add(JobsStore *st, const char *id, const char *owner, const char *filename,
                        const char *purpose, uint64_t bytes, long lines, int64_t created_at);

/**
 * jobs_store_file_get() - the file's row {id, owner, filename, purpose,
 * bytes, created_at, lines, batch_id, ok} (a new reference); -ENOENT.
 */
int jobs_store_file_get(JobsStore *st, const char *id, json_t **ret);

/**
 * jobs_store_file_content() - the bytes of a file: an upload read back, a
 * batch's output (ok 1) or error file (ok 0) assembled from its result
 * lines in input order. *@ret is malloc'ed (NUL-terminated). -ENOENT.
 */
int jobs_store_file_content(JobsStore *st, const char *id, char **ret, size_t *ret_len);

/**
 * jobs_store_file_delete() - -ENOENT, or -EBUSY while a batch that is not
 * finished reads it.
 */
int jobs_store_file_delete(JobsStore *st, const char *id);

/** jobs_store_file_list() - file rows, newest first; @owner NULL: all. */
int jobs_store_file_list(JobsStore *st, const char *owner, json_t **ret);

/** jobs_store_file_count() - uploaded files kept (outputs not counted). */
int jobs_store_file_count(JobsStore *st, unsigned *ret);

/* ---- batches ---- */

/** jobs_store_batch_add() - a new batch in status "validating" (queued). */
int jobs_store_batch_add(JobsStore *st, const char *id, const char *owner, const char *input_file_id,
                         const char *endpoint, const char *completion_window, const char *metadata_json,
                         long total, int64_t created_at, int64_t expires_at);

/**
 * jobs_store_batch_get() - the batch's row with "completed" and "failed"
 * counted from its results, and "errors" and "metadata" parsed. -ENOENT.
 */
int jobs_store_batch_get(JobsStore *st, const char *id, json_t **ret);

/**
 * jobs_store_batch_list() - batch rows newest first, at most @limit, only
 * those created before @after (a batch id; NULL: from the newest), only
 * @owner's (NULL: all). *@ret_more is set when more follow.
 */
int jobs_store_batch_list(JobsStore *st, const char *owner, const char *after, unsigned limit, json_t **ret,
                          int *ret_more);

/**
 * jobs_store_batch_unfinished() - ids of batches not in a final state, oldest
 * first (an array of strings), for the runner at start.
 */
int jobs_store_batch_unfinished(JobsStore *st, json_t **ret);

/**
 * jobs_store_batch_set_status() - set the status and, when @at_column is
 * not NULL (one of the *_at columns), that timestamp.
 */
int jobs_store_batch_set_status(JobsStore *st, const char *id, const char *status, const char *at_column,
                                int64_t at);

/**
 * jobs_store_batch_fail() - status "failed" with one error {code, message}.
 */
int jobs_store_batch_fail(JobsStore *st, const char *id, const char *code, const char *message, int64_t at);

/**
 * jobs_store_batch_finish() - in one transaction: the output and error
 * files (only those with lines), named by @output_id and @error_id, and the
 * final @status ("completed" or "cancelled") with its timestamp column.
 */
int jobs_store_batch_finish(JobsStore *st, const char *id, const char *status, const char *at_column,
                            const char *output_id, const char *error_id, int64_t at);

/**
 * jobs_store_batch_expire() - in one transaction: the @n error lines
 * @outputs for the unfinished lines @lines (0-based; a line already stored
 * is kept), the output and error files as jobs_store_batch_finish() makes
 * them, and status "expired" with expired_at @at.
 */
int jobs_store_batch_expire(JobsStore *st, const char *id, const long *lines, char *const *outputs, size_t n,
                            const char *output_id, const char *error_id, int64_t at);

/* ---- leases: who runs a shared batch (jobs_store_shared() only, else -EOPNOTSUPP) ---- */

/**
 * jobs_store_batch_claim() - take the oldest unfinished batch (only @id
 * when not NULL) that no live lease holds, for @lease_s seconds as @owner
 * (an instance id), skipping rows another instance is claiming. Returns 0
 * and the malloc'ed id, -ENOENT when there is none.
 */
int jobs_store_batch_claim(JobsStore *st, const char *owner, unsigned lease_s, const char *id,
                           char **ret_id);

/**
 * jobs_store_batch_renew() - the heartbeat: extend by @lease_s the leases
 * @owner still holds among the @n batches @ids. *@ret: rows {id, status}
 * of those renewed (a batch missing was lost to another instance).
 */
int jobs_store_batch_renew(JobsStore *st, const char *owner, unsigned lease_s, const char *const *ids,
                           size_t n, json_t **ret);

/** jobs_store_batch_release() - give the lease up (on shutdown): another instance may take the batch at
 * once. */
int jobs_store_batch_release(JobsStore *st, const char *owner, const char *id);

/**
 * jobs_store_batch_cancel() - end a batch another instance may be running,
 * in one transaction: cancelling_at and cancelled_at @at, status
 * "cancelled", the output and error files of the lines stored so far (as
 * jobs_store_batch_finish()). Its owner learns it when its next result is
 * refused (-ESTALE) or at its next heartbeat, and lets it go. -ENOENT, or
 * -EALREADY when it had ended.
 */
int jobs_store_batch_cancel(JobsStore *st, const char *id, const char *output_id, const char *error_id,
                            int64_t at);

/* ---- results ---- */

/**
 * jobs_store_result_add() - the output line of request @line (0-based) of
 * a batch, committed at once. A line already stored is kept (-EEXIST).
 * Shared: refused with -ESTALE once the batch has ended (cancelled on
 * another instance) or another instance holds its lease (this one's ran
 * out): one instance at a time stores a batch's lines.
 */
int jobs_store_result_add(JobsStore *st, const char *batch_id, long line, int ok, const char *output);

/**
 * jobs_store_results_done() - mark in @done (@n bytes, one per line) the
 * lines of the batch that already have a result. Returns how many.
 */
long jobs_store_results_done(JobsStore *st, const char *batch_id, uint8_t *done, size_t n);

/* ---- server-side ingest jobs (jobs-ingest.c) ---- */

/** jobs_store_ingest_add() - a new ingest job of @agent on the directory @path, status "queued". */
int jobs_store_ingest_add(JobsStore *st, const char *id, const char *owner, const char *agent,
                          const char *path, int64_t created_at);

/**
 * jobs_store_ingest_get() - the job's row with its files counted by
 * outcome ("added", "replaced", "unchanged", "removed", "refused",
 * "failed"). -ENOENT.
 */
int jobs_store_ingest_get(JobsStore *st, const char *id, json_t **ret);

/** jobs_store_ingest_list() - rows newest first, at most @limit, @owner's only (NULL: all). */
int jobs_store_ingest_list(JobsStore *st, const char *owner, unsigned limit, json_t **ret);

/** jobs_store_ingest_unfinished() - rows {id} of jobs queued or in progress, oldest first. */
int jobs_store_ingest_unfinished(JobsStore *st, json_t **ret);

/**
 * jobs_store_ingest_set_status() - @status with the timestamp @at_column
 * ("in_progress_at", "completed_at", "failed_at" or "cancelled_at") and,
 * if not NULL, the @error message.
 */
int jobs_store_ingest_set_status(JobsStore *st, const char *id, const char *status, const char *at_column,
                                 int64_t at, const char *error);

/** jobs_store_ingest_set_total() - the number of files (and removals) the job found. */
int jobs_store_ingest_set_total(JobsStore *st, const char *id, long total);

/**
 * jobs_store_ingest_file_add() - the acknowledged @outcome of the document
 * @title, committed at once (a title already there is kept).
 */
int jobs_store_ingest_file_add(JobsStore *st, const char *id, const char *title, const char *outcome);

/** jobs_store_ingest_files_done() - rows {title} the job acknowledged, by title. */
int jobs_store_ingest_files_done(JobsStore *st, const char *id, json_t **ret);
