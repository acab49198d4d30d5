/* ingest.c — the background ingest worker: a job queue served by one thread
 * that opens its own Kb connection per job (WAL lets the loop keep reading),
 * and an eventfd that brings completions back to the sd-event loop, where the
 * callbacks run. */
#include <pthread.h>
#include <sys/eventfd.h>

#include "ingest.h"
#include "log.h"
#include "util.h"

typedef enum JobState {
        JOB_QUEUED,
        JOB_RUNNING,
        JOB_DONE,
} JobState;

struct IngestJob {
        IngestWorker *worker;
        IngestJob *next;
        JobState state;
        int cancelled;
        int result;
        int delete; /* remove @title instead of ingesting (no text) */

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

struct IngestWorker {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        int thread_started;
        int stop;

        /* FIFO of queued jobs, the running one, and finished ones waiting
         * for the loop; all protected by @lock. */
        IngestJob *queue_head, *queue_tail;
        IngestJob *running;
        IngestJob *done_head, *done_tail;
        unsigned n_queued;

        int efd;
        sd_event_source *source;
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

static void job_list_free(IngestJob *j) {
        while (j) {
                IngestJob *next = j->next;
                job_free(j);
                j = next;
        }
}

static int job_run(IngestJob *j) {
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
        r = kb_ingest_meta(kb, j->title, j->source, j->text, j->len, j->have_opts ? &j->opts : NULL,
                           &j->meta);
        kb_close(kb);
        if (r < 0)
                log_warning_errno(r, "ingest: '%s' into %s failed", j->title, j->db_path);
        else
                log_debug("ingest: '%s' into %s: %d chunks", j->title, j->db_path, r);
        return r;
}

static void *worker_main(void *arg) {
        IngestWorker *w = arg;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!w->stop && !w->queue_head)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (w->stop)
                        break;

                IngestJob *j = w->queue_head;
                w->queue_head = j->next;
                if (!w->queue_head)
                        w->queue_tail = NULL;
                w->n_queued--;
                j->next = NULL;
                j->state = JOB_RUNNING;
                w->running = j;
                pthread_mutex_unlock(&w->lock);

                int result = job_run(j);

                /* The big copy is no longer needed; free it off the loop. */
                free(j->text);
                j->text = NULL;

                pthread_mutex_lock(&w->lock);
                w->running = NULL;
                j->result = result;
                j->state = JOB_DONE;
                if (w->done_tail)
                        w->done_tail->next = j;
                else
                        w->done_head = j;
                w->done_tail = j;
                pthread_mutex_unlock(&w->lock);

                uint64_t one = 1;
                if (write(w->efd, &one, sizeof one) < 0 && errno != EAGAIN)
                        log_warning_errno(-errno, "ingest: cannot signal completion");

                pthread_mutex_lock(&w->lock);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

/* On the loop: report every finished job, then free it. */
static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        IngestWorker *w = userdata;
        uint64_t v;

        if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN && errno != EINTR)
                log_warning_errno(-errno, "ingest: eventfd read failed");

        pthread_mutex_lock(&w->lock);
        IngestJob *list = w->done_head;
        w->done_head = w->done_tail = NULL;
        pthread_mutex_unlock(&w->lock);

        /* Callbacks may cancel jobs still on @list: cancel only marks a done
         * job, so walking the list stays safe. They must not free @w. */
        while (list) {
                IngestJob *j = list;
                list = j->next;
                if (!j->cancelled && j->done)
                        j->done(j->userdata, j->result);
                job_free(j);
        }
        return 0;
}

/**
 * ingest_worker_new() - start the worker thread and register its completion
 * eventfd on @e. Returns 0 and the worker in @ret, or -errno.
 */
int ingest_worker_new(sd_event *e, IngestWorker **ret) {
        if (!e || !ret)
                return -EINVAL;

        IngestWorker *w = calloc(1, sizeof(IngestWorker));
        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);

        int r;
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(e, &w->source, w->efd, EPOLLIN, on_done, w);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(w->source, "ingest-done");

        r = -pthread_create(&w->thread, NULL, worker_main, w);
        if (r < 0)
                goto fail;
        w->thread_started = 1;

        *ret = w;
        return 0;

fail:
        ingest_worker_free(w);
        return r;
}

/**
 * ingest_worker_free() - stop after the current job, drop the rest without
 * callbacks, join, release. NULL is a no-op. Returns NULL.
 */
IngestWorker *ingest_worker_free(IngestWorker *w) {
        if (!w)
                return NULL;

        pthread_mutex_lock(&w->lock);
        w->stop = 1;
        IngestJob *queued = w->queue_head;
        w->queue_head = w->queue_tail = NULL;
        w->n_queued = 0;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        job_list_free(queued);

        if (w->thread_started)
                pthread_join(w->thread, NULL);

        job_list_free(w->done_head);
        w->done_head = w->done_tail = NULL;

        w->source = sd_event_source_disable_unref(w->source);
        if (w->efd >= 0)
                close(w->efd);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
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
        j->worker = w;
        j->done = done;
        j->userdata = userdata;
        j->state = JOB_QUEUED;

        pthread_mutex_lock(&w->lock);
        if (w->stop) {
                pthread_mutex_unlock(&w->lock);
                job_free(j);
                return -ESHUTDOWN;
        }
        if (w->n_queued >= INGEST_MAX_PENDING) {
                pthread_mutex_unlock(&w->lock);
                job_free(j);
                return -EBUSY;
        }
        if (w->queue_tail)
                w->queue_tail->next = j;
        else
                w->queue_head = j;
        w->queue_tail = j;
        w->n_queued++;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);

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

/**
 * ingest_job_cancel() - suppress @job's callback; drop it if still queued.
 */
void ingest_job_cancel(IngestJob *job) {
        if (!job)
                return;
        IngestWorker *w = job->worker;

        pthread_mutex_lock(&w->lock);
        if (job->state == JOB_QUEUED) {
                IngestJob **p = &w->queue_head, *prev = NULL;
                while (*p && *p != job) {
                        prev = *p;
                        p = &(*p)->next;
                }
                if (*p) {
                        *p = job->next;
                        if (w->queue_tail == job)
                                w->queue_tail = prev;
                        w->n_queued--;
                        pthread_mutex_unlock(&w->lock);
                        job_free(job);
                        return;
                }
        }
        /* Running, or done and waiting for the loop: the loop frees it. */
        job->cancelled = 1;
        pthread_mutex_unlock(&w->lock);
}

/** ingest_worker_pending() - jobs queued or running, not yet reported. */
unsigned ingest_worker_pending(IngestWorker *w) {
        if (!w)
                return 0;
        pthread_mutex_lock(&w->lock);
        unsigned n = w->n_queued + (w->running ? 1 : 0);
        pthread_mutex_unlock(&w->lock);
        return n;
}
