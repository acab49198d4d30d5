/* ingest.c — background ingest: each document is a task of the shared
 * worker thread (worker.c) that opens its own Kb connection (WAL lets the
 * loop keep reading); the completion callbacks run on the loop. */
#include "ingest.h"
#include "log.h"
#include "util.h"
#include "worker.h"

/* The shared worker (worker.h), bounded to INGEST_MAX_PENDING queued jobs. */
struct IngestWorker {
        Worker *worker;
};

struct IngestJob {
        WorkerTask *task;
        int delete;   /* remove @title instead of ingesting (no text) */
        int replaced; /* a document of @title was there before this ingest */

        char *db_path;
        char *title;
        char *source;
        char *text;
        size_t len;
        KbChunkOpts opts;
        int have_opts;
        KbDocMeta meta; /* meta.sha256 points into sha256 */
        char sha256[65];

        IngestDoneFn done;
        void *userdata;
};

static int job_queue(IngestWorker *w, IngestJob *j, IngestDoneFn done, void *userdata, IngestJob **ret);

static IngestJob *job_free(IngestJob *j) {
        if (!j)
                return NULL;
        free(j->db_path);
        free(j->title);
        free(j->source);
        free(j->text);
        free(j);
        return NULL;
}

/* On the worker thread. */
static int job_run(void *data) {
        IngestJob *j = data;
        Kb *kb = NULL;
        int r = kb_open(j->db_path, 0, &kb);

        if (r < 0) {
                log_warning_errno(r, "ingest: cannot open %s", j->db_path);
                return r;
        }
        if (j->delete) {
                r = kb_delete(kb, j->title);
                kb_close(kb);
                if (r < 0 && r != -ENOENT)
                        log_warning_errno(r, "ingest: deleting '%s' from %s failed", j->title, j->db_path);
                return r;
        }
        /* Ingests run one at a time on this thread, so what is there now
         * is what this one replaces (other moad processes aside). */
        j->replaced = kb_has_document(kb, j->title) == 1;
        r = kb_ingest_meta(kb, j->title, j->source, j->text, j->len, j->have_opts ? &j->opts : NULL,
                           &j->meta);
        kb_close(kb);
        if (r < 0)
                log_warning_errno(r, "ingest: '%s' into %s failed", j->title, j->db_path);
        else
                log_debug("ingest: '%s' into %s: %d chunks", j->title, j->db_path, r);
        /* The big copy is no longer needed; free it off the loop. */
        j->text = mfree(j->text);
        return r;
}

/* On the loop: report the job unless it was cancelled (kb_ingest() never
 * fails with -ECANCELED), then free it. */
static void job_done(void *data, int result) {
        IngestJob *j = data;

        if (result != -ECANCELED && j->done)
                j->done(j->userdata, result);
        job_free(j);
}

/**
 * ingest_worker_new() - start the worker thread and register its completion
 * eventfd on @e. Returns 0 and the worker in @ret, or -errno.
 */
int ingest_worker_new(sd_event *e, IngestWorker **ret) {
        IngestWorker *w = calloc(1, sizeof *w);
        int r;

        if (!w)
                return -ENOMEM;
        r = worker_new(e, "ingest-done", INGEST_MAX_PENDING, &w->worker);
        if (r < 0) {
                free(w);
                return r;
        }
        *ret = w;
        return 0;
}

/**
 * ingest_worker_free() - stop after the current job, drop the rest without
 * callbacks, join, release. NULL is a no-op. Returns NULL.
 */
IngestWorker *ingest_worker_free(IngestWorker *w) {
        if (w)
                worker_free(w->worker);
        free(w);
        return NULL;
}

/**
 * ingest_submit() - copy the inputs into a job and queue it. See ingest.h
 * for the error codes.
 */
int ingest_submit(IngestWorker *w, const char *db_path, const char *title, const char *source,
                  const char *text, size_t len, const KbChunkOpts *opts, IngestDoneFn done, void *userdata,
                  IngestJob **ret) {
        return ingest_submit_meta(w, db_path, title, source, text, len, opts, NULL, done, userdata, ret);
}

/**
 * ingest_submit_meta() - ingest_submit() that also stores @meta (copied;
 * NULL: unknown) with the document. See ingest.h.
 */
int ingest_submit_meta(IngestWorker *w, const char *db_path, const char *title, const char *source,
                       const char *text, size_t len, const KbChunkOpts *opts, const KbDocMeta *meta,
                       IngestDoneFn done, void *userdata, IngestJob **ret) {
        if (!w || isempty(db_path) || isempty(title) || (!text && len > 0))
                return -EINVAL;
        if (meta && !isempty(meta->sha256) && !kb_sha256_valid(meta->sha256))
                return -EINVAL;
        if (len > KB_MAX_DOCUMENT_BYTES)
                return -E2BIG;

        IngestJob *j = calloc(1, sizeof(IngestJob));
        if (!j)
                return -ENOMEM;
        j->db_path = strdup(db_path);
        j->title = strdup(title);
        j->source = strdup(source ?: "");
        j->text = malloc(len + 1);
        if (!j->db_path || !j->title || !j->source || !j->text) {
                job_free(j);
                return -ENOMEM;
        }
        if (len > 0)
                memcpy(j->text, text, len);
        j->text[len] = 0;
        j->len = len;
        if (opts) {
                j->opts = *opts;
                j->have_opts = 1;
        }
        j->meta = meta ? *meta : KB_DOC_META_NONE;
        j->meta.sha256 = NULL;
        if (meta && !isempty(meta->sha256)) {
                memcpy(j->sha256, meta->sha256, 64);
                j->sha256[64] = 0;
                j->meta.sha256 = j->sha256;
        }
        return job_queue(w, j, done, userdata, ret);
}

/* Queue @j (taking it, freed on failure). */
static int job_queue(IngestWorker *w, IngestJob *j, IngestDoneFn done, void *userdata, IngestJob **ret) {
        j->done = done;
        j->userdata = userdata;

        int r = worker_submit(w->worker, job_run, job_done, j, &j->task);
        if (r < 0) {
                job_free(j);
                return r;
        }
        if (ret)
                *ret = j;
        return 0;
}

/**
 * ingest_submit_delete() - queue the removal of @title from @db_path. See
 * ingest.h.
 */
int ingest_submit_delete(IngestWorker *w, const char *db_path, const char *title, IngestDoneFn done,
                         void *userdata, IngestJob **ret) {
        if (!w || isempty(db_path) || isempty(title))
                return -EINVAL;

        IngestJob *j = calloc(1, sizeof(IngestJob));
        if (!j)
                return -ENOMEM;
        j->delete = 1;
        j->db_path = strdup(db_path);
        j->title = strdup(title);
        if (!j->db_path || !j->title) {
                job_free(j);
                return -ENOMEM;
        }
        return job_queue(w, j, done, userdata, ret);
}

/** ingest_job_replaced() - whether @job's ingest replaced a document. */
int ingest_job_replaced(const IngestJob *job) {
        return job && job->replaced;
}

/**
 * ingest_job_cancel() - suppress @job's callback; drop it if still queued.
 */
void ingest_job_cancel(IngestJob *job) {
        if (job)
                worker_task_cancel(job->task);
}

/** ingest_worker_pending() - jobs queued or running, not yet reported. */
unsigned ingest_worker_pending(IngestWorker *w) {
        return w ? worker_pending(w->worker) : 0;
}
