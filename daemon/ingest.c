/* ingest.c — background ingest: each document is a task of the shared
 * worker thread (worker.c) that opens its own Kb connection (WAL lets the
 * loop keep reading); the completion callbacks run on the loop. Listings
 * and counts are tasks of a second worker, the reader: a long ingest does
 * not hold them up, and they never hold up the loop. */
#include "ingest.h"
#include "log.h"
#include "util.h"
#include "worker.h"

/* The shared worker (worker.h), bounded to INGEST_MAX_PENDING queued jobs,
 * and the reader, bounded to INGEST_MAX_PENDING_READS. */
struct IngestWorker {
        Worker *worker;
        Worker *reader;
};

typedef enum IngestKind {
        JOB_INGEST,
        JOB_DELETE, /* remove @title (no text) */
        JOB_LIST,   /* a page of documents after @title ("" : from the first) */
        JOB_COUNTS, /* the documents of each of @paths */
} IngestKind;

struct IngestJob {
        WorkerTask *task;
        IngestKind kind;
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

        unsigned limit;     /* JOB_LIST */
        IngestDocPage page; /* JOB_LIST: filled on the reader */
        char **paths;       /* JOB_COUNTS: n_paths paths, counted into counts */
        int *counts;
        size_t n_paths;

        IngestDoneFn done;
        IngestListFn list_done;
        IngestCountsFn counts_done;
        void *userdata;
};

static int job_queue(IngestWorker *w, IngestJob *j, IngestDoneFn done, void *userdata, IngestJob **ret);

static void page_done(IngestDocPage *p) {
        for (size_t i = 0; i < p->n; i++) {
                free((char *) p->docs[i].title);
                free((char *) p->docs[i].source);
                free((char *) p->docs[i].sha256);
        }
        free(p->docs);
        *p = (IngestDocPage){};
}

static IngestJob *job_free(IngestJob *j) {
        if (!j)
                return NULL;
        page_done(&j->page);
        for (size_t i = 0; i < j->n_paths; i++)
                free(j->paths[i]);
        free(j->paths);
        free(j->counts);
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
        if (j->kind == JOB_DELETE) {
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

/* On the reader: one document into the page, copied (the row's strings
 * are gone after this call); the one past the limit only says there is
 * more, and stops the listing. */
static int page_add(const KbDocInfo *d, void *userdata) {
        IngestJob *j = userdata;
        IngestDocPage *p = &j->page;

        if (p->n >= j->limit) {
                p->has_more = 1;
                return 1;
        }
        if (p->n == 0) {
                p->docs = calloc(j->limit, sizeof(KbDocInfo));
                if (!p->docs)
                        return -ENOMEM;
        }
        KbDocInfo *c = &p->docs[p->n];
        *c = *d;
        c->title = strdup(d->title);
        c->source = strdup(d->source ?: "");
        c->sha256 = strdup(d->sha256 ?: "");
        p->n++; /* counted before the check, so page_done() frees what was copied */
        return c->title && c->source && c->sha256 ? 0 : -ENOMEM;
}

/* On the reader thread, on a connection of its own that only reads. */
static int read_run(void *data) {
        IngestJob *j = data;

        if (j->kind == JOB_COUNTS) {
                for (size_t i = 0; i < j->n_paths; i++) {
                        Kb *kb = NULL;
                        int r = kb_open(j->paths[i], 1, &kb);
                        j->counts[i] = r < 0 ? r : kb_count(kb);
                        kb_close(kb);
                        /* one failure fails the whole answer: waiting out
                         * the next locked base would only delay it */
                        if (j->counts[i] < 0)
                                break;
                }
                return 0;
        }
        Kb *kb = NULL;
        int r = kb_open(j->db_path, 1, &kb);
        if (r < 0)
                return r;
        /* one more than the page, to learn whether there is more */
        r = kb_list_page(kb, j->title, j->limit + 1, page_add, j);
        kb_close(kb);
        if (r < 0) {
                page_done(&j->page);
                return r;
        }
        return 0;
}

/* On the loop: report the job unless it was cancelled (no kb_* call
 * fails with -ECANCELED), then free it. */
static void job_done(void *data, int result) {
        IngestJob *j = data;

        if (result != -ECANCELED) {
                if (j->done)
                        j->done(j->userdata, result);
                else if (j->list_done)
                        j->list_done(j->userdata, result, result < 0 ? NULL : &j->page);
                else if (j->counts_done)
                        j->counts_done(j->userdata, j->counts, j->n_paths);
        }
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
        if (r >= 0)
                r = worker_new(e, "kb-read-done", INGEST_MAX_PENDING_READS, &w->reader);
        if (r < 0) {
                ingest_worker_free(w);
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
        if (w) {
                worker_free(w->worker);
                worker_free(w->reader);
        }
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

/* Queue @j (taking it, freed on failure): a read on the reader, a write
 * on the worker. */
static int job_queue(IngestWorker *w, IngestJob *j, IngestDoneFn done, void *userdata, IngestJob **ret) {
        int read = j->kind == JOB_LIST || j->kind == JOB_COUNTS;

        j->done = done;
        j->userdata = userdata;

        int r = worker_submit(read ? w->reader : w->worker, read ? read_run : job_run, job_done, j,
                              &j->task);
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
        j->kind = JOB_DELETE;
        j->db_path = strdup(db_path);
        j->title = strdup(title);
        if (!j->db_path || !j->title) {
                job_free(j);
                return -ENOMEM;
        }
        return job_queue(w, j, done, userdata, ret);
}

/**
 * ingest_submit_list() - queue one page of @db_path's documents on the
 * reader. See ingest.h.
 */
int ingest_submit_list(IngestWorker *w, const char *db_path, const char *after, unsigned limit,
                       IngestListFn done, void *userdata, IngestJob **ret) {
        if (!w || isempty(db_path) || !done || limit == 0 || limit > KB_MAX_LIST_PAGE ||
            (after && strlen(after) > KB_MAX_TITLE_BYTES))
                return -EINVAL;

        IngestJob *j = calloc(1, sizeof(IngestJob));
        if (!j)
                return -ENOMEM;
        j->kind = JOB_LIST;
        j->limit = limit;
        j->list_done = done;
        j->db_path = strdup(db_path);
        j->title = strdup(after ?: "");
        if (!j->db_path || !j->title) {
                job_free(j);
                return -ENOMEM;
        }
        return job_queue(w, j, NULL, userdata, ret);
}

/**
 * ingest_submit_counts() - queue counting the documents of each of
 * @db_paths on the reader. See ingest.h.
 */
int ingest_submit_counts(IngestWorker *w, const char *const *db_paths, size_t n, IngestCountsFn done,
                         void *userdata, IngestJob **ret) {
        if (!w || !done || (n > 0 && !db_paths) || n > INGEST_MAX_COUNTS)
                return -EINVAL;

        IngestJob *j = calloc(1, sizeof(IngestJob));
        if (!j)
                return -ENOMEM;
        j->kind = JOB_COUNTS;
        j->counts_done = done;
        j->paths = calloc(n + 1, sizeof(char *));
        j->counts = calloc(n + 1, sizeof(int));
        if (!j->paths || !j->counts) {
                job_free(j);
                return -ENOMEM;
        }
        for (; j->n_paths < n; j->n_paths++) {
                j->paths[j->n_paths] = strdup(db_paths[j->n_paths] ?: "");
                if (!j->paths[j->n_paths]) {
                        job_free(j);
                        return -ENOMEM;
                }
        }
        return job_queue(w, j, NULL, userdata, ret);
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

/** ingest_worker_pending() - writes queued or running, not yet reported. */
unsigned ingest_worker_pending(IngestWorker *w) {
        return w ? worker_pending(w->worker) : 0;
}
