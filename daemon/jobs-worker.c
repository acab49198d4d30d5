/* jobs-worker.c — see jobs-worker.h: a FIFO of tasks, one thread, and an
 * eventfd that brings the finished ones back to the loop (as ingest.c
 * does for documents). */
#include <pthread.h>
#include <sys/eventfd.h>

#include "jobs-worker.h"
#include "log.h"
#include "util.h"

typedef struct Task {
        JobsWorkFn work;
        JobsDoneFn done;
        void *data;
        int result;
        struct Task *next;
} Task;

struct JobsWorker {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        int thread_started;
        int stop;
        Task *queue_head, *queue_tail; /* waiting */
        Task *done_head, *done_tail;   /* finished, for the loop */
        int efd;
        sd_event_source *source;
};

static void list_append(Task **head, Task **tail, Task *t) {
        t->next = NULL;
        if (*tail)
                (*tail)->next = t;
        else
                *head = t;
        *tail = t;
}

static void *worker_main(void *arg) {
        JobsWorker *w = arg;
        uint64_t one = 1;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                Task *t;

                while (!w->stop && !w->queue_head)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (w->stop)
                        break;
                t = w->queue_head;
                w->queue_head = t->next;
                if (!w->queue_head)
                        w->queue_tail = NULL;
                pthread_mutex_unlock(&w->lock);

                t->result = t->work(t->data);

                pthread_mutex_lock(&w->lock);
                list_append(&w->done_head, &w->done_tail, t);
                if (write(w->efd, &one, sizeof one) < 0 && errno != EAGAIN)
                        log_warning_errno(-errno, "jobs worker: cannot signal completion");
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

static void run_done(Task *list, int cancelled) {
        while (list) {
                Task *t = list;
                list = t->next;
                t->done(t->data, cancelled ? -ECANCELED : t->result);
                free(t);
        }
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        JobsWorker *w = userdata;
        uint64_t v;
        Task *list;

        if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN && errno != EINTR)
                log_warning_errno(-errno, "jobs worker: eventfd read failed");
        pthread_mutex_lock(&w->lock);
        list = w->done_head;
        w->done_head = w->done_tail = NULL;
        pthread_mutex_unlock(&w->lock);
        run_done(list, 0);
        return 0;
}

int jobs_worker_new(sd_event *e, JobsWorker **ret) {
        JobsWorker *w = calloc(1, sizeof *w);
        int r;

        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(e, &w->source, w->efd, EPOLLIN, on_done, w);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(w->source, "jobs-worker-done");
        r = -pthread_create(&w->thread, NULL, worker_main, w);
        if (r < 0)
                goto fail;
        w->thread_started = 1;
        *ret = w;
        return 0;
fail:
        jobs_worker_free(w);
        return r;
}

JobsWorker *jobs_worker_free(JobsWorker *w) {
        Task *queued;

        if (!w)
                return NULL;
        pthread_mutex_lock(&w->lock);
        w->stop = 1;
        queued = w->queue_head;
        w->queue_head = w->queue_tail = NULL;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        if (w->thread_started)
                pthread_join(w->thread, NULL);
        run_done(w->done_head, 1);
        run_done(queued, 1);
        w->source = sd_event_source_disable_unref(w->source);
        if (w->efd >= 0)
                close(w->efd);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

int jobs_worker_submit(JobsWorker *w, JobsWorkFn work, JobsDoneFn done, void *data) {
        Task *t = calloc(1, sizeof *t);

        if (!t)
                return -ENOMEM;
        *t = (Task){.work = work, .done = done, .data = data};
        pthread_mutex_lock(&w->lock);
        if (w->stop) {
                pthread_mutex_unlock(&w->lock);
                free(t);
                return -ESHUTDOWN;
        }
        list_append(&w->queue_head, &w->queue_tail, t);
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        return 0;
}
