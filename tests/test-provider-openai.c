/* test-provider-openai.c — integration tests of daemon/provider-openai.c
 * against tests/mock-upstream.c, started as a child process on 127.0.0.1
 * (path in $MOAD_MOCK_UPSTREAM). Each test runs its own sd-event loop. */
#include <arpa/inet.h>
#include <check.h>

#include "check-main.h"
#include <curl/curl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "curl-glue.h"
#include "provider.h"
#include "util.h"

static pid_t mock_pid = -1;
static unsigned mock_port;
static char mock_url[128];

/* ---- the mock server -------------------------------------------------- */

static int mock_start(void) {
        const char *path = getenv("MOAD_MOCK_UPSTREAM");
        int pfd[2];
        char line[64] = "";

        if (!path) {
                fprintf(stderr, "MOAD_MOCK_UPSTREAM not set\n");
                return -ENOENT;
        }
        if (pipe(pfd) < 0)
                return -errno;
        mock_pid = fork();
        if (mock_pid < 0)
                return -errno;
        if (mock_pid == 0) {
                dup2(pfd[1], STDOUT_FILENO);
                close(pfd[0]);
                close(pfd[1]);
                execl(path, path, "--port", "0", (char *) NULL);
                _exit(127);
        }
        close(pfd[1]);
        FILE *f = fdopen(pfd[0], "r");
        if (!f || !fgets(line, sizeof line, f) || sscanf(line, "PORT %u", &mock_port) != 1 ||
            mock_port == 0) {
                fprintf(stderr, "mock-upstream did not report its port\n");
                return -EIO;
        }
        fclose(f);
        snprintf(mock_url, sizeof mock_url, "http://127.0.0.1:%u/v1", mock_port);
        return 0;
}

static void mock_stop(void) {
        if (mock_pid > 0) {
                kill(mock_pid, SIGTERM);
                waitpid(mock_pid, NULL, 0);
                mock_pid = -1;
        }
}

static size_t collect(char *ptr, size_t size, size_t n, void *userdata) {
        char *buf = userdata;
        size_t used = strlen(buf), len = size * n;
        if (used + len >= 8192)
                return 0;
        memcpy(buf + used, ptr, len);
        buf[used + len] = 0;
        return len;
}

/* Blocking helper for the test itself (not the code under test). */
static json_t *mock_http(const char *method, const char *path) {
        char url[256], buf[8192] = "";
        CURL *e = curl_easy_init();
        json_error_t err;

        snprintf(url, sizeof url, "http://127.0.0.1:%u%s", mock_port, path);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, buf);
        ck_assert_int_eq(curl_easy_perform(e), CURLE_OK);
        curl_easy_cleanup(e);
        json_t *j = json_loads(buf, 0, &err);
        ck_assert_ptr_nonnull(j);
        return j;
}

static void mock_reset(void) {
        json_decref(mock_http("POST", "/mock/reset"));
}

static long mock_calls(const char *model) {
        json_t *j = mock_http("GET", "/mock/stats");
        long n = (long) json_integer_value(json_object_get(json_object_get(j, "calls"), model));
        json_decref(j);
        return n;
}

/* Connections the code under test opened since mock_reset(): the stats
 * request itself is one more. Call it before any other mock_http(). */
static long mock_connections(void) {
        json_t *j = mock_http("GET", "/mock/stats");
        long n = (long) json_integer_value(json_object_get(j, "connections"));
        json_decref(j);
        return n - 1;
}

/* ---- the harness ------------------------------------------------------ */

typedef struct Outcome {
        int done; /* on_done calls */
        int error;
        unsigned status;
        unsigned attempts;
        char content[4096];
        char message[1024];
        char finish[32];
        ProviderUsage usage;
        char deltas[4096]; /* on_delta pieces concatenated */
        unsigned n_deltas;
        uint64_t done_at;
        /* cancel this call from its first on_delta */
        Provider *cancel_provider;
        ProviderCall *self;
} Outcome;

static int in_start; /* on_done must never run while this is set */
static unsigned pending;

static void on_delta(void *userdata, const char *text, size_t len) {
        Outcome *o = userdata;

        ck_assert_int_eq(o->done, 0);
        ck_assert_uint_lt(strlen(o->deltas) + len, sizeof o->deltas);
        strncat(o->deltas, text, len);
        o->n_deltas++;
        if (o->cancel_provider) {
                provider_call_cancel(o->cancel_provider, o->self);
                o->cancel_provider = NULL;
                pending--;
        }
}

static void on_done(void *userdata, const ProviderResult *r) {
        Outcome *o = userdata;

        ck_assert_msg(!in_start, "on_done ran inside provider_call_start()");
        ck_assert_int_eq(o->done, 0);
        o->done++;
        o->error = r->error;
        o->status = r->http_status;
        o->attempts = r->attempts;
        snprintf(o->content, sizeof o->content, "%s", r->content ? r->content : "");
        snprintf(o->message, sizeof o->message, "%s", r->error_message ? r->error_message : "");
        snprintf(o->finish, sizeof o->finish, "%s", r->finish_reason ? r->finish_reason : "");
        o->usage = r->usage;
        o->done_at = now_usec();
        if (r->error == 0)
                ck_assert_ptr_null(r->error_message);
        else
                ck_assert_ptr_nonnull(r->error_message);
        pending--;
}

static const ProviderCallbacks callbacks = {.on_delta = on_delta, .on_done = on_done};

static ProviderConfig base_config(void) {
        return (ProviderConfig){
                .name = (char *) "mock",
                .type = PROVIDER_OPENAI,
                .base_url = mock_url,
                .temperature = -1,
                .retry_base_ms = 1,
                .retry_max_ms = 50,
        };
}

static Provider *make_provider(sd_event *e, const ProviderConfig *cfg) {
        Provider *p = NULL;
        ck_assert_int_eq(provider_openai_new(e, cfg, &p), 0);
        ck_assert_ptr_nonnull(p);
        return p;
}

static json_t *messages(const char *user) {
        return json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content", "be brief", "role", "user",
                         "content", user);
}

/* Start a call; returns its handle (or NULL with *ret_r set on failure). */
static ProviderCall *start(Provider *p, const char *model, int stream, uint64_t deadline, Outcome *o,
                           int *ret_r) {
        json_t *m = messages("hello world");
        ProviderRequest req = {
                .request_id = "test",
                .model = model,
                .messages = m,
                .temperature = -1,
                .stream = stream,
                .deadline_usec = deadline,
        };
        ProviderCall *call = NULL;

        in_start = 1;
        int r = provider_call_start(p, &req, &callbacks, o, &call);
        in_start = 0;
        json_decref(m); /* the provider copies what it keeps */
        if (ret_r)
                *ret_r = r;
        else
                ck_assert_int_eq(r, 0);
        if (r == 0) {
                pending++;
                o->self = call;
        }
        return call;
}

/* Run the loop until every started call finished; fail after @max_ms. */
static void run_until_done(sd_event *e, unsigned max_ms) {
        uint64_t end = now_usec() + max_ms * USEC_PER_MSEC;

        while (pending > 0) {
                ck_assert_msg(now_usec() < end, "calls did not finish within %u ms", max_ms);
                ck_assert_int_ge(sd_event_run(e, 100 * USEC_PER_MSEC), 0);
        }
}

/* Run the loop for @ms regardless. */
static void run_for(sd_event *e, unsigned ms) {
        uint64_t end = now_usec() + ms * USEC_PER_MSEC;

        while (now_usec() < end)
                ck_assert_int_ge(sd_event_run(e, 10 * USEC_PER_MSEC), 0);
}

static sd_event *setup(void) {
        sd_event *e = NULL;
        ck_assert_int_eq(sd_event_new(&e), 0);
        pending = 0;
        mock_reset();
        return e;
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(test_nonstream) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Provider *p = make_provider(e, &cfg);
        Outcome o = {};

        start(p, "echo", 0, 0, &o, NULL);
        ck_assert_int_eq(o.done, 0);
        run_until_done(e, 10000);
        ck_assert_int_eq(o.error, 0);
        ck_assert_str_eq(o.content, "[echo] you said: hello world");
        ck_assert_str_eq(o.finish, "stop");
        ck_assert_uint_eq(o.status, 200);
        ck_assert_uint_eq(o.attempts, 1);
        ck_assert_uint_eq(o.usage.prompt_tokens, 4);
        ck_assert_uint_eq(o.usage.completion_tokens, 5);
        ck_assert_uint_eq(o.n_deltas, 0);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_stream) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Provider *p = make_provider(e, &cfg);
        Outcome o = {};

        start(p, "stream-20", 1, 0, &o, NULL);
        run_until_done(e, 10000);
        ck_assert_int_eq(o.error, 0);
        ck_assert_str_eq(o.content, "[stream-20] you said: hello world");
        /* Deltas arrive in order and add up to the answer; with 20 ms
         * between tokens they come in more than one piece. */
        ck_assert_str_eq(o.deltas, o.content);
        ck_assert_uint_gt(o.n_deltas, 1);
        ck_assert_str_eq(o.finish, "stop");
        ck_assert_uint_eq(o.usage.completion_tokens, 5);
        ck_assert_uint_eq(o.attempts, 1);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_retry_after_honoured) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Outcome o = {};

        cfg.max_retries = 1;
        cfg.retry_max_ms = 5000; /* Retry-After: 1 is below the cap */
        Provider *p = make_provider(e, &cfg);
        uint64_t t0 = now_usec();
        start(p, "status-429", 0, 0, &o, NULL);
        run_until_done(e, 20000);
        ck_assert_int_eq(o.error, -EIO);
        ck_assert_uint_eq(o.status, 429);
        ck_assert_uint_eq(o.attempts, 2);
        ck_assert_int_eq(mock_calls("status-429"), 2);
        /* Backoff alone would be at most 1 ms (retry_base_ms); the retry
         * waited for Retry-After: 1. A lower bound only, never flaky. */
        ck_assert_uint_ge(o.done_at - t0, 900 * USEC_PER_MSEC);
        ck_assert_ptr_nonnull(strstr(o.message, "429"));

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_flaky_then_ok) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Outcome o = {};

        cfg.max_retries = 2;
        Provider *p = make_provider(e, &cfg);
        start(p, "flaky-2", 0, 0, &o, NULL);
        run_until_done(e, 10000);
        ck_assert_int_eq(o.error, 0);
        ck_assert_uint_eq(o.attempts, 3);
        ck_assert_uint_eq(o.status, 200);
        ck_assert_str_eq(o.content, "[flaky-2] you said: hello world");
        ck_assert_int_eq(mock_calls("flaky-2"), 3);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_no_retry_on_4xx) {
        static const char *const models[] = {"status-400", "status-401", "status-404"};
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Provider *p = make_provider(e, &cfg);
        Outcome o[3] = {};

        for (size_t i = 0; i < 3; i++)
                start(p, models[i], 0, 0, &o[i], NULL);
        run_until_done(e, 10000);
        for (size_t i = 0; i < 3; i++) {
                ck_assert_int_eq(o[i].error, -EIO);
                ck_assert_uint_eq(o[i].attempts, 1);
                ck_assert_int_eq(mock_calls(models[i]), 1);
                ck_assert_ptr_nonnull(strstr(o[i].message, "mock status"));
        }
        ck_assert_uint_eq(o[0].status, 400);
        ck_assert_uint_eq(o[2].status, 404);

        /* vLLM's error shape is understood too. */
        Outcome v = {};
        start(p, "vllm-error", 0, 0, &v, NULL);
        run_until_done(e, 10000);
        ck_assert_int_eq(v.error, -EIO);
        ck_assert_uint_eq(v.attempts, 1);
        ck_assert_str_eq(v.message, "upstream HTTP 400: vllm says no");

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_timeout_hang) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Outcome o = {}, d = {};

        cfg.timeout_ms = 300;
        cfg.max_retries = 1;
        Provider *p = make_provider(e, &cfg);
        start(p, "hang", 0, 0, &o, NULL);
        /* The request deadline bounds the attempt below timeout_ms too. */
        start(p, "fixed-5000", 0, now_usec() + 200 * USEC_PER_MSEC, &d, NULL);
        run_until_done(e, 5000);
        ck_assert_int_eq(o.error, -ETIMEDOUT);
        ck_assert_uint_eq(o.attempts, 2); /* timeouts are retried */
        ck_assert_int_eq(d.error, -ETIMEDOUT);
        ck_assert_uint_eq(d.attempts, 1); /* no time left for a retry */

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_trickle_timeout) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Outcome o = {};

        cfg.timeout_ms = 400;
        cfg.max_retries = 1;
        Provider *p = make_provider(e, &cfg);
        start(p, "trickle", 0, 0, &o, NULL);
        run_until_done(e, 5000);
        ck_assert_int_eq(o.error, -ETIMEDOUT);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_garbage) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Provider *p = make_provider(e, &cfg);
        Outcome a = {}, b = {};

        start(p, "garbage", 0, 0, &a, NULL);
        start(p, "garbage", 1, 0, &b, NULL);
        run_until_done(e, 10000);
        ck_assert_int_eq(a.error, -EPROTO);
        ck_assert_int_eq(b.error, -EPROTO);
        ck_assert_uint_eq(a.attempts, 1);
        ck_assert_uint_eq(b.attempts, 1);
        ck_assert_uint_eq(a.status, 200);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_truncated_stream) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Provider *p = make_provider(e, &cfg);
        Outcome o = {};

        start(p, "truncated", 1, 0, &o, NULL);
        run_until_done(e, 10000);
        ck_assert_int_eq(o.error, -EPROTO);
        /* What arrived is kept, was delivered, and is not retried. */
        ck_assert_str_eq(o.content, "[truncated] you said:");
        ck_assert_str_eq(o.deltas, o.content);
        ck_assert_uint_eq(o.attempts, 1);
        ck_assert_int_eq(mock_calls("truncated"), 1);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_midstream_error) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Provider *p = make_provider(e, &cfg);
        Outcome o = {};

        start(p, "midstream-error", 1, 0, &o, NULL);
        run_until_done(e, 10000);
        ck_assert_int_eq(o.error, -EIO);
        ck_assert_str_eq(o.content, "[midstream-error] you");
        ck_assert_str_eq(o.deltas, o.content);
        ck_assert_ptr_nonnull(strstr(o.message, "mock failure in the middle"));
        ck_assert_uint_eq(o.attempts, 1);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_connection_refused) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof sa;
        char url[128];
        Outcome o = {};

        /* A port that was free a moment ago and has no listener. */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &sa, &sl), 0);
        close(fd);
        snprintf(url, sizeof url, "http://127.0.0.1:%u/v1", ntohs(sa.sin_port));
        cfg.base_url = url;
        cfg.max_retries = 2;
        Provider *p = make_provider(e, &cfg);
        start(p, "echo", 0, 0, &o, NULL);
        run_until_done(e, 10000);
        ck_assert_int_eq(o.error, -ECONNREFUSED);
        ck_assert_uint_eq(o.attempts, 3);
        ck_assert_uint_eq(o.status, 0);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_concurrency_queue) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Outcome o[5] = {};
        int r;

        cfg.max_concurrency = 2;
        cfg.max_queue = 2;
        Provider *p = make_provider(e, &cfg);
        for (size_t i = 0; i < 4; i++)
                start(p, "fixed-100", 0, 0, &o[i], NULL);
        /* Two running, two queued: the fifth is refused, without on_done. */
        ck_assert_ptr_null(start(p, "fixed-100", 0, 0, &o[4], &r));
        ck_assert_int_eq(r, -EBUSY);
        run_until_done(e, 10000);
        for (size_t i = 0; i < 4; i++) {
                ck_assert_int_eq(o[i].error, 0);
                ck_assert_str_eq(o[i].content, "[fixed-100] fixed answer after 100 ms");
        }
        ck_assert_int_eq(o[4].done, 0);
        /* Never more than the cap in flight, so never more connections
         * (asked first: every stats request opens one more). */
        ck_assert_int_le(mock_connections(), 2);
        ck_assert_int_eq(mock_calls("fixed-100"), 4);
        /* The queued ones started only when a slot freed: each finished
         * after one of the first two. */
        uint64_t first = MIN(o[0].done_at, o[1].done_at);
        ck_assert_uint_gt(o[2].done_at, first);
        ck_assert_uint_gt(o[3].done_at, first);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_circuit_breaker) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Outcome o[7] = {};

        cfg.max_retries = 1; /* two attempts per call */
        cfg.breaker_failures = 2;
        cfg.breaker_cooldown_ms = 300;
        Provider *p = make_provider(e, &cfg);

        /* flaky-6: upstream attempts 1..6 fail, 7.. succeed. */
        start(p, "flaky-6", 0, 0, &o[0], NULL); /* attempts 1,2 */
        run_until_done(e, 10000);
        start(p, "flaky-6", 0, 0, &o[1], NULL); /* attempts 3,4: second failure opens */
        run_until_done(e, 10000);
        ck_assert_int_eq(o[0].error, -EIO);
        ck_assert_int_eq(o[1].error, -EIO);
        ck_assert_int_eq(mock_calls("flaky-6"), 4);

        start(p, "flaky-6", 0, 0, &o[2], NULL); /* fails fast */
        run_until_done(e, 10000);
        ck_assert_int_eq(o[2].error, -EBUSY);
        ck_assert_str_eq(o[2].message, "circuit open");
        ck_assert_uint_eq(o[2].attempts, 0);
        ck_assert_int_eq(mock_calls("flaky-6"), 4);

        run_for(e, 400);                        /* cooldown over: half-open */
        start(p, "flaky-6", 0, 0, &o[3], NULL); /* the probe: attempts 5,6 fail */
        start(p, "flaky-6", 0, 0, &o[4], NULL); /* refused while the probe runs */
        run_until_done(e, 10000);
        ck_assert_int_eq(o[3].error, -EIO);
        ck_assert_uint_eq(o[3].attempts, 2);
        ck_assert_int_eq(o[4].error, -EBUSY);
        ck_assert_int_eq(mock_calls("flaky-6"), 6);

        run_for(e, 400);
        start(p, "flaky-6", 0, 0, &o[5], NULL); /* probe succeeds: closed */
        run_until_done(e, 10000);
        ck_assert_int_eq(o[5].error, 0);
        start(p, "flaky-6", 0, 0, &o[6], NULL);
        run_until_done(e, 10000);
        ck_assert_int_eq(o[6].error, 0);
        ck_assert_int_eq(mock_calls("flaky-6"), 8);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

static int cancel_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Outcome *o = userdata;
        provider_call_cancel(o->cancel_provider, o->self);
        o->cancel_provider = NULL;
        pending--;
        return 0;
}

START_TEST(test_cancel) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        sd_event_source *t = NULL;
        Outcome running = {}, queued = {}, immediate = {}, in_delta = {}, other = {};
        ProviderCall *c;

        cfg.max_concurrency = 3;
        Provider *p = make_provider(e, &cfg);

        /* Cancelled while its request is in flight. */
        start(p, "hang", 0, 0, &running, NULL);
        running.cancel_provider = p;
        ck_assert_int_ge(sd_event_add_time_relative(e, &t, CLOCK_MONOTONIC, 100 * USEC_PER_MSEC, 0,
                                                    cancel_timer, &running),
                         0);
        /* Cancelled from its own first on_delta. */
        start(p, "stream-50", 1, 0, &in_delta, NULL);
        in_delta.cancel_provider = p;
        /* Cancelled before the loop ever ran. */
        c = start(p, "echo", 0, 0, &immediate, NULL);
        provider_call_cancel(p, c);
        pending--;
        /* Cancelled while waiting in the queue (3 slots taken). */
        start(p, "fixed-200", 0, 0, &other, NULL);
        c = start(p, "echo", 0, 0, &queued, NULL);
        provider_call_cancel(p, c);
        pending--;

        run_until_done(e, 10000);
        run_for(e, 300);
        ck_assert_int_eq(running.done, 0);
        ck_assert_int_eq(queued.done, 0);
        ck_assert_int_eq(immediate.done, 0);
        ck_assert_int_eq(in_delta.done, 0);
        ck_assert_uint_eq(in_delta.n_deltas, 1);
        ck_assert_int_eq(other.done, 1);
        ck_assert_int_eq(other.error, 0);

        sd_event_source_unref(t);
        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_api_key) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Outcome none = {}, env = {}, file = {}, leak = {};
        char path[] = "/tmp/moad-test-key-XXXXXX";

        /* No key configured: no Authorization header. */
        Provider *p0 = make_provider(e, &cfg);
        start(p0, "auth", 0, 0, &none, NULL);

        setenv("MOAD_TEST_API_KEY", "sk-env-secret-123", 1);
        cfg.api_key_env = (char *) "MOAD_TEST_API_KEY";
        Provider *p1 = make_provider(e, &cfg);
        start(p1, "auth", 0, 0, &env, NULL);
        start(p1, "leak-key", 0, 0, &leak, NULL);

        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "sk-file-secret-456\n", 19), 19);
        close(fd);
        cfg.api_key_env = NULL;
        cfg.api_key_file = path;
        Provider *p2 = make_provider(e, &cfg);
        unlink(path);
        start(p2, "auth", 0, 0, &file, NULL);

        run_until_done(e, 10000);
        ck_assert_str_eq(none.content, "[auth] authorization: none");
        ck_assert_str_eq(env.content, "[auth] authorization: Bearer sk-env-secret-123");
        ck_assert_str_eq(file.content, "[auth] authorization: Bearer sk-file-secret-456");
        /* The upstream repeated the key in its error: we do not. */
        ck_assert_int_eq(leak.error, -EIO);
        ck_assert_uint_eq(leak.status, 401);
        ck_assert_ptr_nonnull(strstr(leak.message, "invalid credentials"));
        ck_assert_ptr_null(strstr(leak.message, "sk-env-secret-123"));

        /* A missing key file is a configuration error. */
        Provider *bad = NULL;
        ck_assert_int_lt(provider_openai_new(e, &cfg, &bad), 0);
        ck_assert_ptr_null(bad);

        provider_free(p0);
        provider_free(p1);
        provider_free(p2);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_bad_config) {
        sd_event *e = NULL;
        ProviderConfig cfg = base_config();
        Provider *p = NULL;
        KeyValue h = {.key = (char *) "X-Evil", .value = (char *) "a\r\nInjected: yes"};

        ck_assert_int_eq(sd_event_new(&e), 0);
        cfg.base_url = (char *) "ftp://example";
        ck_assert_int_eq(provider_openai_new(e, &cfg, &p), -EINVAL);
        cfg.base_url = NULL;
        ck_assert_int_eq(provider_openai_new(e, &cfg, &p), -EINVAL);
        cfg = base_config();
        cfg.headers = &h;
        cfg.n_headers = 1;
        ck_assert_int_eq(provider_openai_new(e, &cfg, &p), -EINVAL);
        ck_assert_ptr_null(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_free_with_calls_in_flight) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Outcome a = {}, b = {};

        cfg.max_concurrency = 1;
        Provider *p = make_provider(e, &cfg);
        start(p, "hang", 0, 0, &a, NULL);
        start(p, "echo", 0, 0, &b, NULL); /* queued */
        run_for(e, 100);
        provider_free(p); /* defensive: cancels both, no callbacks */
        run_for(e, 100);
        ck_assert_int_eq(a.done, 0);
        ck_assert_int_eq(b.done, 0);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_stream_answered_with_json) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Provider *p = make_provider(e, &cfg);
        Outcome o = {};

        start(p, "nostream", 1, 0, &o, NULL);
        run_until_done(e, 10000);
        ck_assert_int_eq(o.error, 0);
        ck_assert_str_eq(o.content, "[nostream] you said: hello world");
        /* Still delivered through on_delta, in one piece. */
        ck_assert_str_eq(o.deltas, o.content);
        ck_assert_uint_eq(o.n_deltas, 1);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_keepalive_reuse) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Provider *p = make_provider(e, &cfg);
        Outcome o[3] = {};

        for (size_t i = 0; i < 3; i++) {
                start(p, "echo", i == 1, 0, &o[i], NULL);
                run_until_done(e, 10000);
                ck_assert_int_eq(o[i].error, 0);
        }
        /* Three sequential calls, one TCP connection. */
        ck_assert_int_eq(mock_connections(), 1);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_queue_deadline) {
        sd_event *e = setup();
        ProviderConfig cfg = base_config();
        Outcome slow = {}, waiting = {};

        cfg.max_concurrency = 1;
        Provider *p = make_provider(e, &cfg);
        start(p, "fixed-1000", 0, 0, &slow, NULL);
        start(p, "echo", 0, now_usec() + 200 * USEC_PER_MSEC, &waiting, NULL);
        run_until_done(e, 10000);
        ck_assert_int_eq(slow.error, 0);
        /* Its deadline passed in the queue: it never reached the upstream. */
        ck_assert_int_eq(waiting.error, -ETIMEDOUT);
        ck_assert_uint_eq(waiting.attempts, 0);
        ck_assert_uint_lt(waiting.done_at, slow.done_at);
        ck_assert_int_eq(mock_calls("echo"), 0);

        provider_free(p);
        sd_event_unref(e);
}
END_TEST

/* curl-glue on its own: completion callbacks, removal, freeing with
 * transfers still running. */
static unsigned glue_done_calls;

static size_t discard(char *ptr, size_t size, size_t n, void *userdata) {
        return size * n;
}

static void glue_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata) {
        long status = 0;

        ck_assert_int_eq(result, CURLE_OK);
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        ck_assert_int_eq(status, 200);
        ck_assert_ptr_eq(userdata, (void *) easy);
        glue_done_calls++;
        curl_easy_cleanup(easy); /* the handle is ours again */
        pending--;
}

static CURL *glue_easy(const char *path, const char *post) {
        char url[256];
        CURL *e = curl_easy_init();

        snprintf(url, sizeof url, "http://127.0.0.1:%u%s", mock_port, path);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
        if (post)
                curl_easy_setopt(e, CURLOPT_POSTFIELDS, post);
        return e;
}

START_TEST(test_curl_glue) {
        sd_event *e = setup();
        CurlGlue *g = NULL;
        CURL *a, *b, *removed, *hang;

        ck_assert_int_eq(curl_glue_new(e, "test", &g), 0);
        glue_done_calls = 0;
        a = glue_easy("/v1/models", NULL);
        b = glue_easy("/mock/stats", NULL);
        removed = glue_easy("/v1/chat/completions", "{\"model\":\"hang\",\"messages\":[]}");
        ck_assert_int_eq(curl_glue_add(g, a, glue_done, a), 0);
        ck_assert_int_eq(curl_glue_add(g, b, glue_done, b), 0);
        ck_assert_int_eq(curl_glue_add(g, removed, glue_done, removed), 0);
        ck_assert_uint_eq(curl_glue_n_transfers(g), 3);
        pending += 2;
        run_until_done(e, 10000);
        ck_assert_uint_eq(glue_done_calls, 2);
        /* Removed while running: its callback never comes. */
        curl_glue_remove(g, removed);
        curl_glue_remove(g, removed); /* unknown now: ignored */
        ck_assert_uint_eq(curl_glue_n_transfers(g), 0);
        run_for(e, 500);
        ck_assert_uint_eq(glue_done_calls, 2);
        curl_easy_cleanup(removed);

        /* Freed with a transfer still added: no callback, handle stays ours. */
        hang = glue_easy("/v1/chat/completions", "{\"model\":\"hang\",\"messages\":[]}");
        ck_assert_int_eq(curl_glue_add(g, hang, glue_done, hang), 0);
        run_for(e, 100);
        ck_assert_ptr_null(curl_glue_free(g));
        curl_easy_cleanup(hang);
        ck_assert_uint_eq(glue_done_calls, 2);
        ck_assert_int_eq(curl_glue_add(NULL, NULL, glue_done, NULL), -EINVAL);
        sd_event_unref(e);
}
END_TEST

static Suite *provider_suite(void) {
        Suite *s = suite_create("provider-openai");
        TCase *tc = tcase_create("mock");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_nonstream);
        tcase_add_test(tc, test_stream);
        tcase_add_test(tc, test_retry_after_honoured);
        tcase_add_test(tc, test_flaky_then_ok);
        tcase_add_test(tc, test_no_retry_on_4xx);
        tcase_add_test(tc, test_timeout_hang);
        tcase_add_test(tc, test_trickle_timeout);
        tcase_add_test(tc, test_garbage);
        tcase_add_test(tc, test_truncated_stream);
        tcase_add_test(tc, test_midstream_error);
        tcase_add_test(tc, test_connection_refused);
        tcase_add_test(tc, test_concurrency_queue);
        tcase_add_test(tc, test_circuit_breaker);
        tcase_add_test(tc, test_cancel);
        tcase_add_test(tc, test_api_key);
        tcase_add_test(tc, test_bad_config);
        tcase_add_test(tc, test_free_with_calls_in_flight);
        tcase_add_test(tc, test_stream_answered_with_json);
        tcase_add_test(tc, test_keepalive_reuse);
        tcase_add_test(tc, test_queue_deadline);
        tcase_add_test(tc, test_curl_glue);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        int failed;

        signal(SIGPIPE, SIG_IGN);
        /* Only 127.0.0.1 is ever called: keep a proxy from the environment out of it. */
        static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                              "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
        for (size_t i = 0; i < ELEMENTSOF(proxies); i++)
                unsetenv(proxies[i]);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (mock_start() < 0) {
                mock_stop();
                return EXIT_FAILURE;
        }
        failed = moa_check_run(provider_suite()) != EXIT_SUCCESS;
        mock_stop();
        curl_global_cleanup();
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
