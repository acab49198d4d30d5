/* jobs-worker.h — one thread for the jobs' slow work (checking and writing
 * an uploaded batch file, reading one back), so the loop never waits for it.
 * Tasks run in submission order; their completion runs on the loop. */
#pragma once

#include <systemd/sd-event.h>

typedef struct JobsWorker JobsWorker;

/* On the worker thread: the work. Its return is handed to the JobsDoneFn. */
typedef int (*JobsWorkFn)(void *data);
/* On the loop, exactly once per task (with -ECANCELED when the worker is
 * freed first): use the result, free @data. */
typedef void (*JobsDoneFn)(void *data, int result);

/** jobs_worker_new() - start the thread, its eventfd an io source on @e. */
int jobs_worker_new(sd_event *e, JobsWorker **ret);

/**
 * jobs_worker_free() - finish the running task, cancel the queued ones
 * (their JobsDoneFn runs with -ECANCELED), join. NULL ok; returns NULL.
 */
JobsWorker *jobs_worker_free(JobsWorker *w);

/** jobs_worker_submit() - queue a task. Returns 0, -ENOMEM or -ESHUTDOWN. */
int jobs_worker_submit(JobsWorker *w, JobsWorkFn work, JobsDoneFn done, void *data);
