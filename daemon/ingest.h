/* ingest.h — background ingest (and deletes): one worker thread (worker.h) with its own SQLite
 * connection per job, so the event loop never waits for a long write; the
 * completion callback runs on the loop. Listings and counts run the same
 * way on a second thread, so they wait neither on the loop nor behind
 * writes. Also the synchronous file/directory
 * ingest used at start-up for the shipped sample knowledge. */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

#include "kb.h"

typedef struct IngestWorker IngestWorker;
typedef struct IngestJob IngestJob;

/* Called on the loop when a job finishes: @result is the number of chunks
 * (>= 0) or -errno from kb_open()/kb_ingest(). The job is freed after the
 * callback returns. */
typedef void (*IngestDoneFn)(void *userdata, int result);

/* Bound on jobs waiting in the queue (ingest_submit() returns -EBUSY past it). */
#define INGEST_MAX_PENDING 1024u

/* Bound on listings and counts waiting (ingest_submit_list() and
 * ingest_submit_counts() return -EBUSY past it). */
#define INGEST_MAX_PENDING_READS 64u
/* The most documents in one listing page, and databases in one count. */
#define KB_MAX_LIST_PAGE 1000u
#define INGEST_MAX_COUNTS 4096u

/* One page of documents, read on the reader thread; the strings belong to
 * the page and live until the callback returns. */
typedef struct IngestDocPage {
        KbDocInfo *docs;
        size_t n;
        int has_more; /* documents after docs[n - 1] exist */
} IngestDocPage;

/* On the loop when a listing finishes: @result 0 with @page, or -errno
 * (-EBUSY: the database stayed locked for the busy timeout; see
 * kb_unavailable()) with @page NULL. */
typedef void (*IngestListFn)(void *userdata, int result, const IngestDocPage *page);

/* On the loop when counting finishes: @counts[i] is the number of
 * documents in the i-th database, or its -errno; counting stops at the
 * first -errno (the counts after it are 0). */
typedef void (*IngestCountsFn)(void *userdata, const int *counts, size_t n);

/**
 * ingest_worker_new() - start the worker thread and register its completion
 * eventfd on @e (io source described "ingest-done"). Returns 0 and the worker
 * in @ret, or -errno.
 */
int ingest_worker_new(sd_event *e, IngestWorker **ret);

/**
 * ingest_worker_free() - stop the worker after its current job, drop pending
 * and finished-but-unreported jobs without calling their callbacks, join the
 * thread and release the event source. NULL is a no-op. Returns NULL.
 */
IngestWorker *ingest_worker_free(IngestWorker *w);

/**
 * ingest_submit() - queue one document for kb_ingest() into the database at
 * @db_path. Every input is copied. @opts may be NULL (defaults). @done may be
 * NULL. The job handle stored in @ret (optional) is valid until @done has run
 * or ingest_job_cancel() was called on it. Returns 0, -EINVAL for an empty
 * path or title, -E2BIG for @len over KB_MAX_DOCUMENT_BYTES, -EBUSY when
 * INGEST_MAX_PENDING jobs are waiting, -ESHUTDOWN after shutdown, -ENOMEM.
 */
int ingest_submit(IngestWorker *w, const char *db_path, const char *title, const char *source,
                  const char *text, size_t len, const KbChunkOpts *opts, IngestDoneFn done, void *userdata,
                  IngestJob **ret);

/**
 * ingest_submit_meta() - ingest_submit() that also stores @meta with the
 * document (copied; NULL: all unknown). -EINVAL also for a bad sha256.
 */
int ingest_submit_meta(IngestWorker *w, const char *db_path, const char *title, const char *source,
                       const char *text, size_t len, const KbChunkOpts *opts, const KbDocMeta *meta,
                       IngestDoneFn done, void *userdata, IngestJob **ret);

/**
 * ingest_submit_delete() - queue the removal of the document @title from the
 * database at @db_path, on the same worker (so it waits for ingests before
 * it instead of for SQLite's busy timeout on the loop). @done gets 0,
 * -ENOENT (no such document), -EBUSY (the database stayed locked for the
 * busy timeout) or another -errno. Same handle rules and errors as
 * ingest_submit().
 */
int ingest_submit_delete(IngestWorker *w, const char *db_path, const char *title, IngestDoneFn done,
                         void *userdata, IngestJob **ret);

/**
 * ingest_submit_list() - queue kb_list_page(@after, @limit) on a read-only
 * connection to @db_path, on the reader thread. @limit is 1 to
 * KB_MAX_LIST_PAGE. Same handle rules as ingest_submit(). Returns 0,
 * -EINVAL, -EBUSY when INGEST_MAX_PENDING_READS reads wait, -ESHUTDOWN,
 * -ENOMEM.
 */
int ingest_submit_list(IngestWorker *w, const char *db_path, const char *after, unsigned limit,
                       IngestListFn done, void *userdata, IngestJob **ret);

/**
 * ingest_submit_counts() - queue kb_count() of each of the @n (at most
 * INGEST_MAX_COUNTS) databases @db_paths (copied), on the reader thread.
 * Same handle rules and errors as ingest_submit_list().
 */
int ingest_submit_counts(IngestWorker *w, const char *const *db_paths, size_t n, IngestCountsFn done,
                         void *userdata, IngestJob **ret);

/**
 * ingest_job_replaced() - in the job's completion callback: whether its
 * ingest replaced a document of the same title (decided on the worker, just
 * before the write, so concurrent ingests of one title each say the truth).
 */
int ingest_job_replaced(const IngestJob *job);

/**
 * ingest_job_cancel() - the job's callback will not be called. A queued job
 * is dropped; a running one finishes (its transaction commits or not) but is
 * not reported. @job must not be used afterwards. NULL is a no-op.
 */
void ingest_job_cancel(IngestJob *job);

/**
 * ingest_worker_pending() - jobs queued or running (finished jobs waiting
 * for the loop are not counted), for metrics and tests.
 */
unsigned ingest_worker_pending(IngestWorker *w);

/**
 * kb_ingest_path() - synchronously ingest a file, or every regular *.md,
 * *.txt and *.text file of a directory in name order (not recursive; hidden
 * files and README.md skipped), into @kb. The title is the file name
 * without its directory (as "moactl ingest DIR" titles a directory's
 * files), the source its resolved path, and the file's sha256, size and
 * mtime are stored as moactl stores them. Files over
 * KB_MAX_DOCUMENT_BYTES are refused (-E2BIG for a single file; in a
 * directory they, and empty files, are skipped with a warning). Returns 0 and the number of
 * documents ingested in @ret_docs (optional), or the first -errno.
 */
int kb_ingest_path(Kb *kb, const char *path, const KbChunkOpts *opts, int *ret_docs);
