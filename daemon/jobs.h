/* jobs.h — the batch runner: answers the lines of queued batches through
 * the engine (the same path as POST /v1/chat/completions), a bounded
 * number at a time (jobs.concurrency, over all batches) and only while no
 * interactive request waits for a slot. Each line's result is committed to
 * jobs.db as it completes; at start the runner picks up every batch that
 * was not finished and skips the lines already answered. With
 * knowledge.backend: postgresql the batches are shared by every instance
 * on that database and each runner claims the ones it runs (a lease, see
 * jobs.c and docs/scaling.md). */
#pragma once

#include "jobs-store.h"
#include "server.h"

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

typedef struct Worker Worker;
/** jobs_worker() - the thread for slow work (uploads, reading inputs). */
Worker *jobs_worker(Jobs *j);

typedef struct IngestJobs IngestJobs;
/** jobs_ingest() - the server-side ingest jobs (jobs-ingest.h). */
IngestJobs *jobs_ingest(Jobs *j);

/** jobs_submit() - queue a batch just stored (status "validating"). */
int jobs_submit(Jobs *j, const char *batch_id);

/**
 * jobs_cancel() - stop a batch: lines in flight are cancelled, lines not
 * started are never asked, and the batch ends "cancelled" with output and
 * error files of the lines answered so far (shared: also a batch another
 * instance runs; that one stops at its next line or heartbeat). -ENOENT,
 * or -EALREADY when it had already ended.
 */
int jobs_cancel(Jobs *j, const char *batch_id);

/**
 * jobs_make_id() - a new random id "<prefix><24 hex digits>" in @buf
 * (at least strlen(@prefix) + 25 bytes).
 */
void jobs_make_id(const char *prefix, char *buf, size_t size);

/** jobs_inflight() - batch lines in flight, for status and tests. */
unsigned jobs_inflight(Jobs *j);
