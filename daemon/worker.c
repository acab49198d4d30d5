/* worker.c — see worker.h: a FIFO of tasks, one thread, and an eventfd
 * that brings the finished ones back to the loop. */
#include <pthread.h>
#include <sys/eventfd.h>

#include "log.h"
#include "util.h"
#include "worker.h"

struct WorkerTask {
        Worker *worker;
        WorkerWorkFn work;
        WorkerDoneFn done;
        void *data;
        int result;
        int cancelled; /* set on the loop, read on the loop */
        WorkerTask *next;
};

struct Worker {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        int thread_started;
        int inline_work; /* no thread: worker_submit() runs the work itself */
        int stop;
        /* All protected by @lock. */
        WorkerTask *queue_head, *queue_tail; /* waiting */
        WorkerTask *running;
        WorkerTask *done_head, *done_tail; /* finished, for the loop */
        unsigned n_queued, max_queued;
        int efd;
        sd_event_source *source;
};

static void list_append(WorkerTask **head, WorkerTask **tail, WorkerTask *t) {
        t->next = NULL;
        if (*tail)
                (*tail)->next = t;
        else
                *head = t;
        *tail = t;
}

static void *worker_main(void *arg) {
        Worker *w = arg;
        uint64_t one = 1;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                WorkerTask *t;

                while (!w->stop && !w->queue_head)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (w->stop)
                        break;
                t = w->queue_head;
                w->queue_head = t->next;
                if (!w->queue_head)
                        w->queue_tail = NULL;
                w->n_queued--;
                w->running = t;
                pthread_mutex_unlock(&w->lock);

                t->result = t->work(t->data);

                pthread_mutex_lock(&w->lock);
                w->running = NULL;
                list_append(&w->done_head, &w->done_tail, t);
                if (write(w->efd, &one, sizeof one) < 0 && errno != EAGAIN)
                        log_warning_errno(-errno, "worker: cannot signal completion");
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

/* Runs the callbacks of @list and frees it. Callbacks may cancel tasks
 * still on @list (that only marks them) and submit new ones. */
static void run_done(WorkerTask *list, int cancelled) {
        while (list) {
                WorkerTask *t = list;
                list = t->next;
                t->done(t->data, cancelled || t->cancelled ? -ECANCELED : t->result);
                free(t);
        }
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;
        WorkerTask *list;
        uint64_t v;

        if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN && errno != EINTR)
                log_warning_errno(-errno, "worker: eventfd read failed");
        pthread_mutex_lock(&w->lock);
        list = w->done_head;
        w->done_head = w->done_tail = NULL;
        pthread_mutex_unlock(&w->lock);
        run_done(list, 0);
        return 0;
}

static int worker_make(sd_event *e, const char *description, unsigned max_queued, int inline_work,
                       Worker **ret) {
        Worker *w;
        int r;

        if (!e || !ret)
                return -EINVAL;
        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        w->max_queued = max_queued;
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(e, &w->source, w->efd, EPOLLIN, on_done, w);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(w->source, description);
        w->inline_work = inline_work;
        if (!inline_work) {
                r = -pthread_create(&w->thread, NULL, worker_main, w);
                if (r < 0)
                        goto fail;
                w->thread_started = 1;
        }
        *ret = w;
        return 0;
fail:
        worker_free(w);
        return r;
}

int worker_new(sd_event *e, const char *description, unsigned max_queued, Worker **ret) {
        return worker_make(e, description, max_queued, 0, ret);
}

int worker_new_inline(sd_event *e, const char *description, Worker **ret) {
        return worker_make(e, description, 0, 1, ret);
}

Worker *worker_free(Worker *w) {
        WorkerTask *queued;

        if (!w)
                return NULL;
        pthread_mutex_lock(&w->lock);
        w->stop = 1;
        queued = w->queue_head;
        w->queue_head = w->queue_tail = NULL;
        w->n_queued = 0;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        if (w->thread_started)
                pthread_join(w->thread, NULL);
        run_done(w->done_head, 1);
        w->done_head = w->done_tail = NULL;
        run_done(queued, 1);
        w->source = sd_event_source_disable_unref(w->source);
        if (w->efd >= 0)
                close(w->efd);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

int worker_submit(Worker *w, WorkerWorkFn work, WorkerDoneFn done, void *data, WorkerTask **ret) {
        WorkerTask *t;

        if (!w || !work || !done)
                return -EINVAL;
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        *t = (WorkerTask){.worker = w, .work = work, .done = done, .data = data};
        if (w->inline_work && !w->stop) {
                uint64_t one = 1;
                /* the work now, its callback from the loop, as a thread's would be */
                t->result = work(data);
                pthread_mutex_lock(&w->lock);
                list_append(&w->done_head, &w->done_tail, t);
                pthread_mutex_unlock(&w->lock);
                if (write(w->efd, &one, sizeof one) < 0 && errno != EAGAIN)
                        log_warning_errno(-errno, "worker: cannot signal completion");
                if (ret)
                        *ret = t;
                return 0;
        }
        pthread_mutex_lock(&w->lock);
        if (w->stop || (w->max_queued > 0 && w->n_queued >= w->max_queued)) {
                int r = w->stop ? -ESHUTDOWN : -EBUSY;
                pthread_mutex_unlock(&w->lock);
                free(t);
                return r;
        }
        list_append(&w->queue_head, &w->queue_tail, t);
        w->n_queued++;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        if (ret)
                *ret = t;
        return 0;
}

void worker_task_cancel(WorkerTask *t) {
        Worker *w;

        if (!t)
                return;
        w = t->worker;
        pthread_mutex_lock(&w->lock);
        for (WorkerTask **p = &w->queue_head, *prev = NULL; *p; prev = *p, p = &(*p)->next) {
                if (*p != t)
                        continue;
                *p = t->next;
                if (w->queue_tail == t)
                        w->queue_tail = prev;
                w->n_queued--;
                pthread_mutex_unlock(&w->lock);
                t->done(t->data, -ECANCELED);
                free(t);
                return;
        }
        /* Running, or finished and waiting for the loop: reported cancelled. */
        t->cancelled = 1;
        pthread_mutex_unlock(&w->lock);
}

unsigned worker_pending(Worker *w) {
        unsigned n;

        if (!w)
                return 0;
        pthread_mutex_lock(&w->lock);
        n = w->n_queued + (w->running ? 1 : 0);
        pthread_mutex_unlock(&w->lock);
        return n;
}
