/* plugin-call.c — see plugin-call.h. Each agent has one thread of its own,
 * started at its first call and joined when the agent is freed; the loop
 * hands it one call at a time (a mutex and a condition variable), the
 * thread only reads the call's input and writes its result, then hands the
 * call back through a lock-free list and one eventfd for all agents (the
 * agents' threads finish together: a shared lock made them queue).
 * Everything else (queues, timers, offences, callbacks, freeing) happens on
 * the loop. A thread per call cost a clone, a stack mapping and an exit per
 * callback (about 0.1 ms each; docs/performance.md).
 *
 * The generic expert is the host's own code, bounded and never sleeping:
 * its score() and build_prompt() run on the loop instead, answered from a
 * defer source like any result (never from inside plugin_call_start()).
 * Handing them to a thread cost a futex wake, an eventfd round trip and a
 * budget timer armed and disarmed per call (issue 13). */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>

#include "log.h"
#include "metrics.h"
#include "plugin-call.h"
#include "util.h"

struct PluginCall {
        PluginCall *next; /* in its agent's queue, or in the done list */
        PluginAgent *agent;
        PluginCallback callback;
        PluginCallInput in;
        PluginCallResult res;     /* written by the thread */
        _Atomic uint64_t started; /* by the thread: when it entered the plugin */
        atomic_int finished;      /* by the thread, before it hands the call back */
        uint64_t submitted;
        uint64_t budget_usec;
        unsigned max_timeouts;
        sd_event_source *timer;
        PluginCallDone done; /* NULL once answered or cancelled */
        void *userdata;
        int running;     /* a thread is (or was) in it */
        int over_budget; /* answered -ETIMEDOUT while its thread ran on */
};

/* An agent's call thread. The agent owns it (PluginCallState.worker) and
 * joins it when freed: a call holds a reference on its agent, so by then the
 * thread has no call and waits, or is on its way back to waiting. */
typedef struct PluginWorker {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        PluginCall *call; /* handed to the thread, under @lock */
        int quit;         /* under @lock */
} PluginWorker;

static struct {
        sd_event *event;
        sd_event_source *source;
        int efd;
        _Atomic(PluginCall *) done;     /* pushed by the threads, taken whole by the loop */
        sd_event_source *inline_source; /* a defer: answers the generic expert's calls */
        PluginCall *inline_done;        /* its calls, run on the loop, newest first */
        unsigned live;                  /* calls not yet freed */
        unsigned stuck;                 /* threads past their budget */
} calls = {.efd = -1};

static const char *const callback_names[_PLUGIN_CB_MAX] = {
        [PLUGIN_CB_SCORE] = "score",
        [PLUGIN_CB_BUILD_PROMPT] = "build_prompt",
        [PLUGIN_CB_REVIEW] = "review",
};

const char *plugin_callback_name(PluginCallback cb) {
        return cb >= 0 && cb < _PLUGIN_CB_MAX ? callback_names[cb] : "?";
}

PluginBudget plugin_budget_from_limits(const LimitsConfig *l) {
        return (PluginBudget){
                .usec = {[PLUGIN_CB_SCORE] = l->plugin_score_ms * USEC_PER_MSEC,
                         [PLUGIN_CB_BUILD_PROMPT] = l->plugin_call_ms * USEC_PER_MSEC,
                         [PLUGIN_CB_REVIEW] = l->plugin_call_ms * USEC_PER_MSEC},
                .max_timeouts = l->plugin_max_timeouts,
                .max_stuck = l->plugin_max_stuck,
        };
}

static void call_free(PluginCall *c) {
        sd_event_source_disable_unref(c->timer);
        free(c->in.text);
        kb_hits_free(c->in.hits, c->in.n_hits);
        if (c->res.data && c->in.data_free)
                c->in.data_free(c->res.data);
        free(c->res.reason);
        free(c->res.system);
        free(c->res.context);
        free(c->res.text);
        plugin_agent_unref(c->agent); /* may unload the plugin: last */
        calls.live--;
        free(c);
}

/* ---- the thread ---- */

/* Any thread: hands @c (its result written) to the loop. The eventfd is
 * written only when the list was empty: the loop reads the eventfd before
 * it takes the list, so a non-empty list is already on its way. */
static void call_publish(PluginCall *c) {
        PluginCall *head = atomic_load_explicit(&calls.done, memory_order_relaxed);
        uint64_t one = 1;

        atomic_store_explicit(&c->finished, 1, memory_order_release);
        do
                c->next = head;
        while (!atomic_compare_exchange_weak_explicit(&calls.done, &head, c, memory_order_release,
                                                      memory_order_relaxed));
        /* c belongs to the loop from here on */
        if (!head && write(calls.efd, &one, sizeof one) < 0 && errno != EAGAIN)
                log_warning_errno(-errno, "plugin calls: cannot signal a result");
}

/* Runs the callback; writes only c->res. */
static void call_compute(PluginCall *c) {
        PluginCallResult *res = &c->res;

        if (c->in.fn) {
                res->error = c->in.fn(c->agent, c->in.data);
                res->data = c->in.data;
        } else if (c->callback == PLUGIN_CB_SCORE)
                res->error = plugin_agent_score(c->agent, c->in.text, &res->score, &res->reason);
        else if (c->callback == PLUGIN_CB_BUILD_PROMPT)
                res->error = plugin_agent_build_prompt(c->agent, c->in.text, c->in.hits, c->in.n_hits,
                                                       &res->system, &res->context);
        else
                res->error = plugin_agent_review(c->agent, c->in.text, &res->text);
}

static void call_execute(PluginCall *c) {
        atomic_store_explicit(&c->started, now_usec(), memory_order_relaxed);
        call_compute(c);
        call_publish(c);
}

static void *worker_thread(void *p) {
        PluginWorker *w = p;

        for (;;) {
                PluginCall *c;

                pthread_mutex_lock(&w->lock);
                while (!w->call && !w->quit)
                        pthread_cond_wait(&w->wake, &w->lock);
                c = TAKE_PTR(w->call);
                pthread_mutex_unlock(&w->lock);
                if (!c)
                        return NULL; /* quit: the agent is being freed */
                call_execute(c);
        }
}

/* PluginCallState.release: runs when the agent is freed, on the loop. */
static void worker_release(PluginCallState *st) {
        PluginWorker *w = st->worker;

        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        w->quit = 1;
        pthread_mutex_unlock(&w->lock);
        pthread_cond_signal(&w->wake);
        /* Never long: no call of this agent is left (each holds a reference). */
        (void) pthread_join(w->thread, NULL);
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        st->worker = NULL;
        st->release = NULL;
}

static int worker_start(PluginCallState *st, PluginAgent *a) {
        PluginWorker *w;
        char name[16];
        int r;

        if (st->worker)
                return 0;
        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        (void) pthread_mutex_init(&w->lock, NULL);
        (void) pthread_cond_init(&w->wake, NULL);
        r = -pthread_create(&w->thread, NULL, worker_thread, w);
        if (r < 0) {
                pthread_cond_destroy(&w->wake);
                pthread_mutex_destroy(&w->lock);
                free(w);
                return r;
        }
        /* "plugin:<agent>" in top -H and in a debugger (15 bytes at most) */
        (void) snprintf(name, sizeof name, "plugin:%s", plugin_agent_name(a));
        (void) pthread_setname_np(w->thread, name);
        st->worker = w;
        st->release = worker_release;
        return 0;
}

static int on_budget(sd_event_source *s, uint64_t usec, void *userdata);

/* Only the host's own callbacks: a PluginCallInput.fn is the caller's code. */
static int call_runs_inline(const PluginCall *c) {
        return !c->in.fn && plugin_agent_is_generic(c->agent);
}

static void call_run(PluginCall *c) {
        PluginCallState *st = plugin_agent_call_state(c->agent);
        int r;

        st->running = c;
        c->running = 1;
        if (call_runs_inline(c)) {
                atomic_store_explicit(&c->started, now_usec(), memory_order_relaxed);
                call_compute(c);
                atomic_store_explicit(&c->finished, 1, memory_order_relaxed);
                c->next = calls.inline_done;
                calls.inline_done = c;
                (void) sd_event_source_set_enabled(calls.inline_source, SD_EVENT_ONESHOT);
                return;
        }
        /* The budget is the plugin's time: it starts when the call does
         * (a call waiting behind another waits at most for that one's). */
        r = sd_event_add_time_relative(calls.event, &c->timer, CLOCK_MONOTONIC, c->budget_usec, 1000,
                                       on_budget, c);
        if (r >= 0)
                (void) sd_event_source_set_description(c->timer, "plugin-call-budget");
        else
                log_warning_errno(r, "agent %s: no budget timer for %s", plugin_agent_name(c->agent),
                                  plugin_callback_name(c->callback));
        r = worker_start(st, c->agent);
        if (r < 0) {
                /* answered through the loop like any result */
                log_warning_errno(r, "agent %s: cannot start a thread for %s", plugin_agent_name(c->agent),
                                  plugin_callback_name(c->callback));
                c->res.error = r;
                call_publish(c);
                return;
        }
        pthread_mutex_lock(&st->worker->lock);
        st->worker->call = c;
        pthread_mutex_unlock(&st->worker->lock);
        /* after unlocking: woken under the lock, the thread would block on it */
        pthread_cond_signal(&st->worker->wake);
}

/* ---- the loop ---- */

static void call_answer(PluginCall *c, PluginCallResult *res) {
        PluginCallDone done = c->done;

        c->done = NULL;
        if (done)
                done(c->userdata, res);
}

/* An answer that is not the thread's (timeout, refusal): nothing to take. */
static void call_answer_error(PluginCall *c, int error) {
        PluginCallResult res = {.error = error, .elapsed_usec = now_usec() - c->submitted};
        call_answer(c, &res);
}

static PluginCall *queue_pop(PluginCallState *st) {
        PluginCall *c = st->head;
        if (c) {
                st->head = c->next;
                if (!st->head)
                        st->tail = NULL;
                c->next = NULL;
        }
        return c;
}

static void queue_kick(PluginCallState *st) {
        if (!st->running && st->head)
                call_run(queue_pop(st));
}

static int on_budget(sd_event_source *s, uint64_t usec, void *userdata) {
        PluginCall *c = userdata;
        PluginCallState *st = plugin_agent_call_state(c->agent);
        const char *name = plugin_agent_name(c->agent), *cb = plugin_callback_name(c->callback);
        uint64_t now = now_usec(), started, ms;
        int finished;

        finished = atomic_load_explicit(&c->finished, memory_order_acquire);
        started = atomic_load_explicit(&c->started, memory_order_relaxed);
        if (finished)
                return 0; /* its result is on the way (the loop was late, not the plugin) */
        if (started == 0 || now - started < c->budget_usec) {
                /* the thread started late (a busy machine): the plugin's own time counts */
                (void) sd_event_source_set_time(s, (started ? started : now) + c->budget_usec);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                return 0;
        }
        ms = (now - started) / USEC_PER_MSEC;

        c->over_budget = 1;
        st->stuck = 1;
        calls.stuck++;
        st->timeouts++;
        metrics_observe_plugin_timeout(name, cb);
        log_warning("agent %s: plugin %s %s() is over its budget of %llu ms (%llu ms); the agent is skipped "
                    "for this request (%u of %u timeouts)",
                    name, plugin_agent_plugin_name(c->agent), cb,
                    (unsigned long long) (c->budget_usec / USEC_PER_MSEC), (unsigned long long) ms,
                    st->timeouts, c->max_timeouts);
        if (!st->quarantined && st->timeouts >= c->max_timeouts) {
                st->quarantined = 1;
                log_error(
                        "agent %s: quarantined after %u plugin timeouts: it is skipped without a call until "
                        "the next reload",
                        name, st->timeouts);
        }
        call_answer_error(c, -ETIMEDOUT);
        /* Whoever waits behind it would wait for as long as the plugin sleeps. */
        for (PluginCall *q; (q = queue_pop(st));) {
                call_answer_error(q, -EBUSY);
                call_free(q);
        }
        return 0;
}

/* Answers and frees every call of @list (finished, newest first). */
static void results_take(PluginCall *list) {
        while (list) {
                PluginCall *c = list;
                PluginCallState *st = plugin_agent_call_state(c->agent);

                list = c->next;
                c->next = NULL;
                c->timer = sd_event_source_disable_unref(c->timer);
                c->res.elapsed_usec = now_usec() - c->submitted;
                st->running = NULL;
                if (c->over_budget) {
                        calls.stuck--;
                        st->stuck = 0;
                        log_notice("agent %s: the late %s() returned after %llu ms; its result is dropped",
                                   plugin_agent_name(c->agent), plugin_callback_name(c->callback),
                                   (unsigned long long) (c->res.elapsed_usec / USEC_PER_MSEC));
                } else
                        call_answer(c, &c->res);
                queue_kick(st);
                call_free(c);
        }
}

static int on_results(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        uint64_t v;

        if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN && errno != EINTR)
                log_warning_errno(-errno, "plugin calls: eventfd read failed");
        /* after the read: a call pushed since finds the list empty and writes again */
        results_take(atomic_exchange_explicit(&calls.done, NULL, memory_order_acquire));
        return 0;
}

static int on_inline_results(sd_event_source *s, void *userdata) {
        /* answering may start more inline calls: they wait for the next run */
        results_take(TAKE_PTR(calls.inline_done));
        return 0;
}

static int calls_init(sd_event *e) {
        int r;

        if (calls.source)
                return calls.event == e ? 0 : -EXDEV;
        calls.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (calls.efd < 0)
                return -errno;
        r = sd_event_add_io(e, &calls.source, calls.efd, EPOLLIN, on_results, NULL);
        if (r < 0) {
                close(calls.efd);
                calls.efd = -1;
                return r;
        }
        (void) sd_event_source_set_description(calls.source, "plugin-call-done");
        r = sd_event_add_defer(e, &calls.inline_source, on_inline_results, NULL);
        if (r < 0) {
                calls.source = sd_event_source_disable_unref(calls.source);
                close(calls.efd);
                calls.efd = -1;
                return r;
        }
        (void) sd_event_source_set_enabled(calls.inline_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(calls.inline_source, "plugin-call-inline-done");
        calls.event = sd_event_ref(e);
        return 0;
}

void plugin_calls_shutdown(void) {
        if (calls.live > 0 || !calls.source)
                return;
        calls.source = sd_event_source_disable_unref(calls.source);
        calls.inline_source = sd_event_source_disable_unref(calls.inline_source);
        close(calls.efd);
        calls.efd = -1;
        calls.event = sd_event_unref(calls.event);
}

static void input_done(PluginCallInput *in) {
        free(in->text);
        kb_hits_free(in->hits, in->n_hits);
        if (in->data && in->data_free)
                in->data_free(in->data);
        *in = (PluginCallInput){};
}

int plugin_call_start(sd_event *e, const PluginBudget *budget, PluginAgent *a, PluginCallback cb,
                      PluginCallInput *in, PluginCallDone done, void *userdata, PluginCall **ret) {
        PluginCallState *st = plugin_agent_call_state(a);
        PluginCall *c;
        int r;

        if (!e || !budget || !a || cb < 0 || cb >= _PLUGIN_CB_MAX || !in || !ret) {
                if (in)
                        input_done(in);
                return -EINVAL;
        }
        if (st->quarantined || st->stuck || calls.stuck >= budget->max_stuck) {
                input_done(in);
                return st->quarantined ? -EPERM : st->stuck ? -EBUSY : -EAGAIN;
        }
        r = calls_init(e);
        if (r < 0) {
                input_done(in);
                return r;
        }
        c = calloc(1, sizeof *c);
        if (!c) {
                input_done(in);
                return -ENOMEM;
        }
        calls.live++;
        c->agent = plugin_agent_ref(a);
        c->callback = cb;
        c->in = *in;
        *in = (PluginCallInput){};
        c->submitted = now_usec();
        c->budget_usec = c->in.budget_usec ? c->in.budget_usec : budget->usec[cb];
        c->max_timeouts = budget->max_timeouts;
        c->done = done;
        c->userdata = userdata;
        if (st->tail)
                st->tail->next = c;
        else
                st->head = c;
        st->tail = c;
        queue_kick(st);
        *ret = c;
        return 0;
}

void plugin_call_cancel(PluginCall *c) {
        PluginCallState *st;

        if (!c)
                return;
        c->done = NULL;
        if (c->running)
                return; /* freed when its thread is done; the budget still counts */
        st = plugin_agent_call_state(c->agent);
        for (PluginCall **p = &st->head, *prev = NULL; *p; prev = *p, p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        if (st->tail == c)
                                st->tail = prev;
                        break;
                }
        call_free(c);
}

int plugin_agent_quarantined(PluginAgent *a) {
        return a && plugin_agent_call_state(a)->quarantined;
}

unsigned plugin_agent_timeouts(PluginAgent *a) {
        return a ? plugin_agent_call_state(a)->timeouts : 0;
}

int plugin_agent_stuck(PluginAgent *a) {
        return a && plugin_agent_call_state(a)->stuck;
}

unsigned plugin_calls_stuck(void) {
        return calls.stuck;
}
