/* The worker (worker.h): a threaded worker and the inline one that the
 * SQLite jobs store uses, with the same contract: the callback comes from
 * the loop, never from inside worker_submit(), exactly once per task. */
#include <check.h>
#include <pthread.h>

#include "check-main.h"
#include "util.h"
#include "worker.h"

typedef struct Probe {
        pthread_t loop_thread;
        pthread_t work_thread;
        int worked;
        int done;
        int result;
        sd_event *event;
        unsigned *pending; /* counts down; exits the loop at 0 */
} Probe;

static int probe_work(void *userdata) {
        Probe *p = userdata;

        p->work_thread = pthread_self();
        p->worked = 1;
        return 42;
}

static void probe_done(void *userdata, int result) {
        Probe *p = userdata;

        ck_assert(pthread_equal(pthread_self(), p->loop_thread));
        p->done++;
        p->result = result;
        if (p->pending && --*p->pending == 0)
                (void) sd_event_exit(p->event, 0);
}

static void run_worker(int inline_work) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Probe p[3] = {};
        unsigned pending = 3;
        Worker *w = NULL;

        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_ge(inline_work ? worker_new_inline(e, "test-worker", &w)
                                     : worker_new(e, "test-worker", 0, &w),
                         0);
        for (size_t i = 0; i < ELEMENTSOF(p); i++) {
                p[i] = (Probe){.loop_thread = pthread_self(), .event = e, .pending = &pending};
                ck_assert_int_eq(worker_submit(w, probe_work, probe_done, &p[i], NULL), 0);
                /* never called back from inside worker_submit() */
                ck_assert_int_eq(p[i].done, 0);
                if (inline_work)
                        ck_assert(p[i].worked && pthread_equal(p[i].work_thread, pthread_self()));
        }
        ck_assert_int_ge(sd_event_loop(e), 0);
        for (size_t i = 0; i < ELEMENTSOF(p); i++) {
                ck_assert_int_eq(p[i].done, 1);
                ck_assert_int_eq(p[i].result, 42);
                /* inline: on the loop's thread; else on the worker's */
                ck_assert_int_eq(!!pthread_equal(p[i].work_thread, pthread_self()), inline_work);
        }
        worker_free(w);
}

START_TEST(test_threaded) {
        run_worker(0);
}
END_TEST

START_TEST(test_inline) {
        run_worker(1);
}
END_TEST

START_TEST(test_inline_free_reports_cancelled) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Probe p = {.loop_thread = pthread_self()};
        Worker *w = NULL;

        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_ge(worker_new_inline(e, "test-worker", &w), 0);
        ck_assert_int_eq(worker_submit(w, probe_work, probe_done, &p, NULL), 0);
        ck_assert(p.worked);
        /* done but not delivered: reported cancelled, once */
        worker_free(w);
        ck_assert_int_eq(p.done, 1);
        ck_assert_int_eq(p.result, -ECANCELED);
}
END_TEST

int main(void) {
        Suite *s = suite_create("worker");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_threaded);
        tcase_add_test(tc, test_inline);
        tcase_add_test(tc, test_inline_free_reports_cancelled);
        suite_add_tcase(s, tc);
        return moa_check_run(s);
}
