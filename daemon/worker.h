/* worker.h — one thread for slow work off the event loop (document ingest,
 * batch uploads, reading batch inputs): tasks run in submission order on
 * the thread, and each one's completion comes back to the loop through an
 * eventfd io source, where its callback runs. */
#pragma once

#include <systemd/sd-event.h>

typedef struct Worker Worker;
typedef struct WorkerTask WorkerTask;

/* On the worker thread: the work. Its return is handed to the WorkerDoneFn. */
typedef int (*WorkerWorkFn)(void *data);
/* On the loop, exactly once per task: use the result, free @data.
 * @result is -ECANCELED for a task cancelled, or dropped by
 * worker_free(), before its result was delivered. */
typedef void (*WorkerDoneFn)(void *data, int result);

/**
 * worker_new() - start the thread; its eventfd becomes an io source on @e
 * described @description. At most @max_queued tasks wait at once (0: no
 * bound). Returns 0 and the worker in @ret, or -errno.
 */
int worker_new(sd_event *e, const char *description, unsigned max_queued, Worker **ret);

/**
 * worker_new_inline() - a worker without a thread, for work that is fast
 * enough for the loop but whose callers are written for worker_submit():
 * the work runs inside worker_submit(), its callback later from the loop
 * (never from inside worker_submit()), exactly as with a thread.
 */
int worker_new_inline(sd_event *e, const char *description, Worker **ret);

/**
 * worker_free() - let the running task finish, join the thread, then run
 * the callbacks of every task not yet reported with -ECANCELED. NULL is a
 * no-op; returns NULL.
 */
Worker *worker_free(Worker *w);

/**
 * worker_submit() - queue @work(@data), then @done(@data, result) on the
 * loop. The handle stored in @ret (optional) is valid until @done runs.
 * Returns 0, -EBUSY when max_queued tasks wait, -ESHUTDOWN during
 * worker_free(), -ENOMEM (@done is not called on failure).
 */
int worker_submit(Worker *w, WorkerWorkFn work, WorkerDoneFn done, void *data, WorkerTask **ret);

/**
 * worker_task_cancel() - on the loop: a queued task is dropped and its
 * callback runs at once with -ECANCELED; a running or finished one is
 * reported with -ECANCELED instead of its result. NULL is a no-op.
 */
void worker_task_cancel(WorkerTask *t);

/** worker_pending() - tasks queued or running (not those finished), for metrics. */
unsigned worker_pending(Worker *w);
