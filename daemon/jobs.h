/* jobs.h — the batch runner: answers the lines of queued batches through
 * the engine (the same path as POST /v1/chat/completions), a bounded
 * number at a time (jobs.concurrency, over all batches) and only while no
 * interactive request waits for a slot. Each line's result is committed to
 * jobs.db as it completes; at start the runner picks up every batch that
 * was not finished and skips the lines already answered. With
 * knowledge.backend: postgresql the batches are shared by every instance
 * on that database and each runner claims the ones it runs (a lease, see
 * jobs.c and docs/scaling.md).
 * Every store call goes through jobs_call(): with PostgreSQL it runs on a
 * store thread (one per lane, each with its connection), never on the
 * loop; with SQLite at once on the loop, as it always did. */
#pragma once

#include "jobs-store.h"
#include "server.h"
#include "worker.h"

/**
 * jobs_new() - open jobs.db in @s's state directory and queue the batches
 * a previous run left unfinished (shared: open the PostgreSQL store, which
 * connects on first use, and start the heartbeat that claims batches).
 * Returns 0 or -errno.
 */
int jobs_new(Server *s, Jobs **ret);

/**
 * jobs_free() - cancel the lines in flight (their results are not stored:
 * the next start asks them again) and close the store. NULL ok; returns NULL.
 */
Jobs *jobs_free(Jobs *j);

/** jobs_store() - the database, for the HTTP endpoints. */
JobsStore *jobs_store(Jobs *j);

/** jobs_worker() - the thread for slow work (uploads, reading inputs). */
Worker *jobs_worker(Jobs *j);

typedef struct IngestJobs IngestJobs;
/** jobs_ingest() - the server-side ingest jobs (jobs-ingest.h). */
IngestJobs *jobs_ingest(Jobs *j);

/**
 * jobs_call() - @work(@data) with the store, then @done(@data, result) on
 * the loop, never from inside jobs_call(). Shared store: @work runs on the
 * store thread of @lane (JOBS_STORE_RUNNER or JOBS_STORE_API) inside
 * jobs_store_enter(), all its statements together bounded by
 * jobs.db_timeout_ms from now (a call that waited in the lane's queue gets
 * what is left); SQLite: @work runs at once, on the loop. @done gets
 * -ECANCELED when moad stops first. Returns 0, or -errno and @done is not
 * called.
 */
int jobs_call(Jobs *j, unsigned lane, WorkerWorkFn work, WorkerDoneFn done, void *data);

/**
 * jobs_submit() - queue a batch just stored (status "validating"), whose
 * completion window ends at @expires_at (unix seconds).
 */
int jobs_submit(Jobs *j, const char *batch_id, int64_t expires_at);

/* The end of jobs_cancel(): @r, and the batch's row after (a new reference, or NULL). */
typedef void (*JobsCancelDone)(void *userdata, int r, json_t *row);

/**
 * jobs_cancel() - stop a batch: lines in flight are cancelled, lines not
 * started are never asked, and the batch ends "cancelled" with output and
 * error files of the lines answered so far (shared: also a batch another
 * instance runs; that one stops at its next line or heartbeat). Returns 0
 * and calls @done later (-ENOENT, or -EALREADY when it had already ended),
 * or -errno at once without calling it (-EALREADY: a batch of this
 * instance that is not running, i.e. has ended).
 */
int jobs_cancel(Jobs *j, const char *batch_id, JobsCancelDone done, void *userdata);

/**
 * jobs_make_id() - a new random id "<prefix><24 hex digits>" in @buf
 * (at least strlen(@prefix) + 25 bytes).
 */
void jobs_make_id(const char *prefix, char *buf, size_t size);

/** jobs_inflight() - batch lines in flight, for status and tests. */
unsigned jobs_inflight(Jobs *j);
