/* jobs-ingest.h — server-side ingest jobs: moad syncs a directory into an
 * agent's knowledge itself ("moactl ingest --sync DIR --server"), as
 * "moactl ingest --sync" would: new files added, changed ones re-ingested
 * (by sha256), unchanged ones skipped, documents whose file is gone
 * removed; each file is converted (gzip, HTML, UTF-16, Latin-1, PDF) and
 * refused for the same reasons as by moactl, whose code it runs
 * (common/doc-text.c). Only directories below jobs.ingest_roots,
 * resolved, may be read, so moad never reads for a client what the client
 * could not name there. One job runs at a time, one file per task of the jobs worker;
 * each file's outcome is committed to jobs.db when the loop has it, so a
 * restart goes on without redoing an acknowledged file. */
#pragma once

#include "jobs-store.h"
#include "server.h"

typedef struct IngestJobs IngestJobs;
typedef struct Worker Worker;

/**
 * ingest_jobs_new() - the runner, using @st and @w (both outlive it, and
 * @w must be freed before it), with the unfinished jobs of a previous run
 * queued again. Returns 0 or -errno.
 */
int ingest_jobs_new(Server *s, JobsStore *st, Worker *w, IngestJobs **ret);

/** ingest_jobs_free() - forget the queue (jobs stay unfinished in jobs.db). NULL ok; returns NULL. */
IngestJobs *ingest_jobs_free(IngestJobs *ij);

/** ingest_jobs_submit() - queue a job just stored (status "queued"). 0 or -ENOMEM. */
int ingest_jobs_submit(IngestJobs *ij, const char *id);

/**
 * ingest_jobs_cancel() - stop a job: the file being read is finished and
 * kept (a PDF being converted is not: its pdftotext is killed and the file
 * is not recorded), no further one is started, the status becomes
 * "cancelled". -ENOENT, or -EALREADY when it had ended.
 */
int ingest_jobs_cancel(IngestJobs *ij, const char *id);

/**
 * ingest_jobs_stop() - on shutdown, before the worker is freed: kill the
 * converter a running task may have started, so freeing the worker does
 * not wait for it; the job stays unfinished in jobs.db. NULL is a no-op.
 */
void ingest_jobs_stop(IngestJobs *ij);

/**
 * ingest_root_of() - the first of the @n directories @roots
 * (jobs.ingest_roots), resolved with realpath(3), that the resolved path
 * @real lies in or is. Returns 0 and a malloc'ed resolved root, -EPERM
 * when none holds it, -ENOMEM.
 */
int ingest_root_of(char *const *roots, size_t n, const char *real, char **ret_root);
