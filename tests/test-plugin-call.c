/* test-plugin-call.c — where plugin callbacks run: a loaded plugin's on its
 * agent's thread, the generic expert's on the loop (no thread, answered from
 * a defer, never from inside plugin_call_start()), and a cancelled inline
 * call is never answered. */
#include <check.h>

#include "check-main.h"
#include <dirent.h>
#include <systemd/sd-event.h>

#include "plugin-call.h"
#include "plugin-host.h"
#include "util.h"

typedef struct Answer {
        int called;
        int error;
        char *system;
} Answer;

static void on_done(void *userdata, PluginCallResult *res) {
        Answer *a = userdata;

        a->called++;
        a->error = res->error;
        a->system = TAKE_PTR(res->system);
}

static unsigned threads(void) {
        DIR *d = opendir("/proc/self/task");
        unsigned n = 0;

        ck_assert_ptr_nonnull(d);
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static const PluginBudget budget = {
        .usec = {[PLUGIN_CB_SCORE] = 5 * USEC_PER_SEC,
                 [PLUGIN_CB_BUILD_PROMPT] = 5 * USEC_PER_SEC,
                 [PLUGIN_CB_REVIEW] = 5 * USEC_PER_SEC},
        .max_timeouts = 3,
        .max_stuck = 16,
};

static PluginAgent *load(const char *path, const char *name) {
        PluginAgentSpec spec = {.path = path, .name = name, .weight = 1, .description = "contracts"};
        PluginAgent *a = NULL;

        ck_assert_int_eq(plugin_agent_load(&spec, &a, NULL), 0);
        ck_assert_ptr_nonnull(a);
        return a;
}

/* Starts build_prompt("deposit") and runs the loop until it is answered. */
static void build_prompt(sd_event *e, PluginAgent *a, Answer *ans) {
        PluginCallInput in = {.text = strdup("deposit")};
        PluginCall *c = NULL;

        ck_assert_int_eq(plugin_call_start(e, &budget, a, PLUGIN_CB_BUILD_PROMPT, &in, on_done, ans, &c), 0);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(ans->called, 0); /* never from inside the start */
        for (int i = 0; i < 1000 && !ans->called; i++)
                ck_assert_int_ge(sd_event_run(e, 100 * USEC_PER_MSEC), 0);
        ck_assert_int_eq(ans->called, 1);
        ck_assert_int_eq(ans->error, 0);
        ck_assert_ptr_nonnull(ans->system);
}

START_TEST(test_generic_runs_on_the_loop) {
        sd_event *e = NULL;
        PluginAgent *a = load(NULL, "gen");
        Answer ans = {0};
        unsigned before;

        ck_assert_int_ge(sd_event_new(&e), 0);
        before = threads();
        build_prompt(e, a, &ans);
        ck_assert_ptr_nonnull(strstr(ans.system, "contracts"));
        ck_assert_uint_eq(threads(), before); /* no call thread was started */
        free(ans.system);

        /* twice in a row: the defer is armed again */
        ans = (Answer){0};
        build_prompt(e, a, &ans);
        free(ans.system);
        ck_assert_uint_eq(threads(), before);

        plugin_agent_free(a);
        plugin_calls_shutdown();
        sd_event_unref(e);
}
END_TEST

START_TEST(test_generic_cancelled) {
        sd_event *e = NULL;
        PluginAgent *a = load(NULL, "gen");
        PluginCallInput in = {.text = strdup("deposit")};
        PluginCall *c = NULL;
        Answer ans = {0};

        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_eq(plugin_call_start(e, &budget, a, PLUGIN_CB_SCORE, &in, on_done, &ans, &c), 0);
        plugin_call_cancel(c);
        for (int i = 0; i < 5; i++)
                ck_assert_int_ge(sd_event_run(e, 0), 0);
        ck_assert_int_eq(ans.called, 0);
        plugin_agent_free(a); /* the call was freed by the loop: nothing leaks (ASan) */
        plugin_calls_shutdown();
        sd_event_unref(e);
}
END_TEST

START_TEST(test_plugin_runs_on_its_thread) {
        sd_event *e = NULL;
        PluginAgent *a = load(SHIPPED_PLUGIN_DIR "/legal.so", "legal");
        Answer ans = {0};
        unsigned before;

        ck_assert_int_ge(sd_event_new(&e), 0);
        before = threads();
        build_prompt(e, a, &ans);
        free(ans.system);
        ck_assert_uint_eq(threads(), before + 1); /* the agent's call thread */
        plugin_agent_free(a);                     /* joins it */
        ck_assert_uint_eq(threads(), before);
        plugin_calls_shutdown();
        sd_event_unref(e);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("plugin-call");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_generic_runs_on_the_loop);
        tcase_add_test(tc, test_generic_cancelled);
        tcase_add_test(tc, test_plugin_runs_on_its_thread);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
