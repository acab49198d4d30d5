/* test-config.c — config_load(): defaults, the shipped files, every error
 * path with its exact "file:line:col: message", relative paths and the
 * bounds on hostile input. */
#include <check.h>

#include "check-main.h"
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>

#include "build-config.h"
#include "config.h"
#include "log.h"
#include "util.h"

static char tmp[PATH_MAX];

static const char *srcdir(void) {
        const char *s = getenv("MOAD_TEST_SRCDIR");
        return s ?: MOAD_SOURCE_DIR;
}

static char *data_path(const char *rel) {
        char *p;
        ck_assert_int_ge(asprintf(&p, "%s/tests/data/config/%s", srcdir(), rel), 0);
        return p;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static void setup(void) {
        unsetenv("MOAD_PLUGIN_DIR");
        unsetenv("STATE_DIRECTORY");
        strcpy(tmp, "/tmp/moad-test-config-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void teardown(void) {
        nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Write @content (of @size bytes, or strlen) to tmp/@rel, creating one level of directory. */
static char *write_sized(const char *rel, const char *content, size_t size) {
        char *p;
        FILE *f;

        ck_assert_int_ge(asprintf(&p, "%s/%s", tmp, rel), 0);
        char *slash = strrchr(p, '/');
        *slash = 0;
        mkdir(p, 0755);
        *slash = '/';
        f = fopen(p, "we");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(content, 1, size, f), size);
        fclose(f);
        return p;
}

static char *write_file(const char *rel, const char *content) {
        return write_sized(rel, content, strlen(content));
}

static char *tmp_path(const char *rel) {
        char *p;
        ck_assert_int_ge(asprintf(&p, "%s/%s", tmp, rel), 0);
        return p;
}

/* An empty agents directory, so moad.yaml tests do not depend on agents.d/. */
static char *empty_agents(void) {
        char *p = tmp_path("empty-agents");
        mkdir(p, 0755);
        return p;
}

/* Load and expect failure with exactly "@file:@rest". */
static void expect_error(const char *path, const char *agents_dir, const char *file, const char *rest) {
        _cleanup_free_ char *err = NULL, *want = NULL;
        Config *c = NULL;
        int r;

        r = config_load(path, agents_dir, &c, &err);
        ck_assert_msg(r < 0, "expected failure loading %s (want '%s')", path, rest);
        ck_assert_ptr_null(c);
        ck_assert_ptr_nonnull(err);
        ck_assert_int_ge(asprintf(&want, "%s:%s", file, rest), 0);
        ck_assert_str_eq(err, want);
}

/* moad.yaml with @yaml must fail with "<moad.yaml>:@rest". */
static void expect_main_error(const char *yaml, const char *rest) {
        _cleanup_free_ char *p = write_file("moad.yaml", yaml), *a = empty_agents();
        expect_error(p, a, p, rest);
}

/* A single agent file with @yaml must fail with "<agent file>:@rest". */
static void expect_agent_error(const char *yaml, const char *rest) {
        _cleanup_free_ char *p = write_file("agents/x.yaml", yaml), *d = tmp_path("agents");
        expect_error(NULL, d, p, rest);
}

static Config *load_ok(const char *path, const char *agents_dir) {
        _cleanup_free_ char *err = NULL;
        Config *c = NULL;
        int r;

        r = config_load(path, agents_dir, &c, &err);
        ck_assert_msg(r >= 0, "loading %s failed: %s", path ?: "(defaults)", err ?: "?");
        ck_assert_ptr_nonnull(c);
        return c;
}

static int dir_exists_for_test(const char *p) {
        struct stat st;
        return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void check_defaults_except_agents(const Config *c) {
        const PipelineConfig *p;
        const ProviderConfig *b;

        ck_assert_str_eq(c->socket_path, "/run/moad/moad.sock");
        ck_assert_uint_eq(c->socket_mode, 0660);
        ck_assert_ptr_null(c->tcp_listen);
        ck_assert_ptr_null(c->bearer_token_file);
        ck_assert_int_eq(c->log_level, LOG_LEVEL_INFO);
        ck_assert_str_eq(c->default_pipeline, "moa");
        ck_assert_str_eq(c->plugin_dir,
                         dir_exists_for_test(MOAD_PLUGIN_DIR) ? MOAD_PLUGIN_DIR : MOAD_BUILD_DIR "/plugins");
        ck_assert_str_eq(c->state_dir, MOAD_STATE_DIR);

        ck_assert_double_eq(c->router.threshold, ROUTER_CONFIG_DEFAULT.threshold);
        ck_assert_uint_eq(c->router.top_k, 3);
        ck_assert_double_eq(c->router.lexicon_weight, ROUTER_CONFIG_DEFAULT.lexicon_weight);
        ck_assert_double_eq(c->router.learned_weight, ROUTER_CONFIG_DEFAULT.learned_weight);
        ck_assert_double_eq(c->router.kb_weight, ROUTER_CONFIG_DEFAULT.kb_weight);
        ck_assert_double_eq(c->router.fallback_margin, ROUTER_CONFIG_DEFAULT.fallback_margin);
        ck_assert_str_eq(c->router.fallback, "general");

        ck_assert_uint_eq(c->limits.max_body_bytes, 1048576);
        ck_assert_uint_eq(c->limits.max_messages, 256);
        ck_assert_uint_eq(c->limits.max_message_bytes, 262144);
        ck_assert_uint_eq(c->limits.max_connections, 1024);
        ck_assert_uint_eq(c->limits.max_inflight, 256);
        ck_assert_uint_eq(c->limits.max_queue, 1024);
        ck_assert_uint_eq(c->limits.request_timeout_ms, 120000);
        ck_assert_uint_eq(c->limits.idle_timeout_ms, 30000);
        ck_assert_uint_eq(c->limits.shutdown_timeout_ms, 10000);
        ck_assert_uint_eq(c->limits.max_ingest_bytes, 16777216);
        ck_assert_uint_eq(c->limits.max_body_total_bytes, 67108864);
        ck_assert_uint_eq(c->limits.max_connections_per_peer, 256);
        ck_assert_uint_eq(c->limits.header_timeout_ms, 10000);
        ck_assert_uint_eq(c->limits.min_body_rate, 1024);
        ck_assert_uint_eq(c->limits.plugin_score_ms, 250);
        ck_assert_uint_eq(c->limits.plugin_call_ms, 1000);
        ck_assert_uint_eq(c->limits.plugin_max_timeouts, 3);
        ck_assert_uint_eq(c->limits.plugin_max_stuck, 16);
        ck_assert_uint_eq(c->jobs.lease_seconds, 30);
        ck_assert_uint_eq(c->jobs.db_timeout_ms, 2000);

        ck_assert_uint_eq(c->n_providers, 1);
        b = config_find_provider(c, "builtin");
        ck_assert_ptr_nonnull(b);
        ck_assert_int_eq(b->type, PROVIDER_BUILTIN);
        ck_assert_double_eq(b->temperature, -1);
        ck_assert_int_eq(b->max_tokens, 0);
        ck_assert_uint_eq(b->timeout_ms, 0);
        ck_assert_uint_eq(b->max_concurrency, 0);
        ck_assert_uint_eq(b->n_headers, 0);
        ck_assert_uint_eq(b->n_fallbacks, 0);

        ck_assert_uint_eq(c->n_pipelines, 2);
        p = config_find_pipeline(c, "moa");
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(p->n_layers, 3);
        ck_assert_int_eq(p->layers[0].role, LAYER_PROPOSE);
        ck_assert_int_eq(p->layers[1].role, LAYER_REFINE);
        ck_assert_int_eq(p->layers[2].role, LAYER_AGGREGATE);
        ck_assert_ptr_null(p->layers[0].agent);
        ck_assert_str_eq(p->layers[2].agent, "aggregator");
        for (size_t i = 0; i < p->n_layers; i++) {
                ck_assert_double_eq(p->layers[i].weight, 1.0);
                ck_assert_double_eq(p->layers[i].quorum, 0.5);
                ck_assert_uint_eq(p->layers[i].timeout_ms, 0);
        }
        ck_assert_uint_eq(p->deadline_ms, 120000);
        ck_assert_uint_eq(p->self_moa_samples, 0);
        ck_assert_ptr_null(p->refine_template);
        ck_assert_ptr_null(p->aggregate_template);
        p = config_find_pipeline(c, "moa-lite");
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(p->n_layers, 2);
        ck_assert_int_eq(p->layers[0].role, LAYER_PROPOSE);
        ck_assert_int_eq(p->layers[1].role, LAYER_AGGREGATE);
        ck_assert_str_eq(p->layers[1].agent, "aggregator");
        ck_assert_uint_eq(p->deadline_ms, 120000);
}

/* ---- defaults and shipped files ---- */

START_TEST(test_defaults) {
        Config *c = load_ok(NULL, NULL);

        ck_assert_ptr_null(c->file);
        check_defaults_except_agents(c);
        if (dir_exists_for_test(MOAD_CONF_DIR "/agents.d"))
                ck_assert_str_eq(c->agents_dir, MOAD_CONF_DIR "/agents.d");
        else
                ck_assert_str_eq(c->agents_dir, MOAD_SOURCE_DIR "/agents.d");
        config_free(c);
}
END_TEST

START_TEST(test_defaults_agents_override) {
        _cleanup_free_ char *a = empty_agents();
        Config *c = load_ok(NULL, a);

        check_defaults_except_agents(c);
        ck_assert_str_eq(c->agents_dir, a);
        ck_assert_uint_eq(c->n_agents, 0);
        config_free(c);
}
END_TEST

START_TEST(test_defaults_env) {
        _cleanup_free_ char *a = empty_agents();
        Config *c;

        setenv("MOAD_PLUGIN_DIR", "/opt/plugins", 1);
        setenv("STATE_DIRECTORY", "/var/lib/moad-a:/var/lib/moad-b", 1);
        c = load_ok(NULL, a);
        ck_assert_str_eq(c->plugin_dir, "/opt/plugins");
        ck_assert_str_eq(c->state_dir, "/var/lib/moad-a");
        config_free(c);
}
END_TEST

START_TEST(test_empty_files) {
        static const char *const files[] = {"empty.yaml", "comments-only.yaml", "null-document.yaml"};
        _cleanup_free_ char *a = empty_agents();

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *p = data_path(files[i]);
                Config *c = load_ok(p, a);
                ck_assert_str_eq(c->file, p);
                check_defaults_except_agents(c);
                config_free(c);
        }
}
END_TEST

START_TEST(test_shipped_moad_yaml) {
        _cleanup_free_ char *p = NULL, *a = empty_agents();
        Config *c;

        ck_assert_int_ge(asprintf(&p, "%s/etc/moad.yaml", srcdir()), 0);
        c = load_ok(p, a);
        /* The shipped example spells out the defaults. */
        check_defaults_except_agents(c);
        config_free(c);
}
END_TEST

START_TEST(test_shipped_agents) {
        static const char *const names[] = {"code", "finance", "general", "legal", "medical"};
        _cleanup_free_ char *d = NULL, *m = NULL;
        Config *c;

        ck_assert_int_ge(asprintf(&d, "%s/agents.d", srcdir()), 0);
        ck_assert_int_ge(asprintf(&m, "%s/etc/moad.yaml", srcdir()), 0);
        c = load_ok(m, d);
        ck_assert_uint_eq(c->n_agents, ELEMENTSOF(names));
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                const AgentConfig *ag = &c->agents[i];
                _cleanup_free_ char *kb = NULL, *file = NULL;

                ck_assert_str_eq(ag->name, names[i]); /* sorted by file name */
                ck_assert_str_eq(ag->plugin, names[i]);
                ck_assert_str_eq(ag->provider, "builtin");
                ck_assert_double_eq(ag->weight, streq(names[i], "general") ? 0.6 : 1.0);
                ck_assert_int_eq(ag->enabled, 1);
                ck_assert_ptr_null(ag->model);
                ck_assert_ptr_null(ag->prompt);
                ck_assert_uint_eq(ag->n_options, 0);
                ck_assert_uint_eq(ag->n_knowledge, 1);
                ck_assert_int_ge(asprintf(&kb, "%s/knowledge/%s", d, names[i]), 0);
                ck_assert_str_eq(ag->knowledge[0], kb);
                ck_assert_int_ge(asprintf(&file, "%s/%s.yaml", d, names[i]), 0);
                ck_assert_str_eq(ag->file, file);
                ck_assert_ptr_eq(config_find_agent(c, names[i]), ag);
        }
        ck_assert_ptr_null(config_find_agent(c, "nope"));
        config_free(c);
}
END_TEST

/* ---- every key ---- */

static const char *join(char **buf, const char *dir, const char *rel) {
        free(*buf);
        if (asprintf(buf, "%s/%s", dir, rel) < 0)
                abort();
        return *buf;
}

START_TEST(test_full) {
        _cleanup_free_ char *p = data_path("full.yaml"), *dir = data_path(""), *s = NULL;
        const ProviderConfig *pr;
        const PipelineConfig *pl;
        const AgentConfig *a;
        Config *c = load_ok(p, NULL);

        dir[strlen(dir) - 1] = 0; /* drop the trailing '/' */
#define IN_DIR(rel) join(&s, dir, rel)
        ck_assert_str_eq(c->socket_path, IN_DIR("run/moad.sock"));
        ck_assert_uint_eq(c->socket_mode, 0600);
        ck_assert_str_eq(c->tcp_listen, "127.0.0.1:8080");
        ck_assert_str_eq(c->bearer_token_file, IN_DIR("token"));
        ck_assert_str_eq(c->agents_dir, IN_DIR("full-agents"));
        ck_assert_str_eq(c->plugin_dir, "/opt/moad/plugins");
        ck_assert_str_eq(c->state_dir, "/var/tmp/moad-state");
        ck_assert_int_eq(c->log_level, LOG_LEVEL_DEBUG);
        ck_assert_str_eq(c->default_pipeline, "deep");
        ck_assert_double_eq(c->router.threshold, 0.5);
        ck_assert_uint_eq(c->router.top_k, 2);
        ck_assert_double_eq(c->router.kb_weight, 0.25);
        ck_assert_double_eq(c->router.fallback_margin, 0.1);
        ck_assert_str_eq(c->router.fallback, "code");
        ck_assert_uint_eq(c->limits.max_body_bytes, 2048);
        ck_assert_uint_eq(c->limits.max_messages, 10);
        ck_assert_uint_eq(c->limits.max_message_bytes, 1024);
        ck_assert_uint_eq(c->limits.max_connections, 8);
        ck_assert_uint_eq(c->limits.max_inflight, 4);
        ck_assert_uint_eq(c->limits.max_queue, 16);
        ck_assert_uint_eq(c->limits.request_timeout_ms, 5000);
        ck_assert_uint_eq(c->limits.idle_timeout_ms, 6000);
        ck_assert_uint_eq(c->limits.shutdown_timeout_ms, 7000);
        ck_assert_uint_eq(c->limits.max_ingest_bytes, 4096);
        ck_assert_uint_eq(c->limits.max_body_total_bytes, 65536);
        ck_assert_uint_eq(c->limits.max_connections_per_peer, 3);
        ck_assert_uint_eq(c->limits.header_timeout_ms, 2500);
        ck_assert_uint_eq(c->limits.min_body_rate, 100);

        ck_assert_uint_eq(c->n_providers, 3); /* builtin + 2 */
        ck_assert_str_eq(c->providers[0].name, "builtin");
        pr = config_find_provider(c, "local");
        ck_assert_ptr_nonnull(pr);
        ck_assert_int_eq(pr->type, PROVIDER_OPENAI);
        ck_assert_str_eq(pr->base_url, "http://127.0.0.1:8000/v1");
        ck_assert_str_eq(pr->api_key_file, IN_DIR("secrets/key"));
        ck_assert_ptr_null(pr->api_key_env);
        ck_assert_str_eq(pr->model, "tiny");
        ck_assert_double_eq(pr->temperature, 0.2);
        ck_assert_int_eq(pr->max_tokens, 512);
        ck_assert_uint_eq(pr->connect_timeout_ms, 100);
        ck_assert_uint_eq(pr->timeout_ms, 2000);
        ck_assert_uint_eq(pr->max_retries, 3);
        ck_assert_uint_eq(pr->retry_base_ms, 50);
        ck_assert_uint_eq(pr->retry_max_ms, 800);
        ck_assert_uint_eq(pr->max_concurrency, 4);
        ck_assert_uint_eq(pr->max_queue, 32);
        ck_assert_uint_eq(pr->breaker_failures, 5);
        ck_assert_uint_eq(pr->breaker_cooldown_ms, 10000);
        ck_assert_uint_eq(pr->n_headers, 2);
        ck_assert_str_eq(pr->headers[0].key, "X-Tenant");
        ck_assert_str_eq(pr->headers[0].value, "moad");
        ck_assert_str_eq(pr->headers[1].key, "X-Trace");
        ck_assert_str_eq(pr->headers[1].value, "on");
        ck_assert_uint_eq(pr->n_fallbacks, 2);
        ck_assert_str_eq(pr->fallbacks[0], "other");
        ck_assert_str_eq(pr->fallbacks[1], "builtin");
        pr = config_find_provider(c, "other");
        ck_assert_ptr_nonnull(pr);
        ck_assert_str_eq(pr->api_key_env, "OTHER_KEY");
        ck_assert_double_eq(pr->temperature, -1);
        ck_assert_ptr_null(config_find_provider(c, "nope"));

        ck_assert_uint_eq(c->n_pipelines, 3); /* deep + moa + moa-lite */
        pl = config_find_pipeline(c, "deep");
        ck_assert_ptr_nonnull(pl);
        ck_assert_str_eq(pl->description, "four layers");
        ck_assert_uint_eq(pl->deadline_ms, 60000);
        ck_assert_uint_eq(pl->self_moa_samples, 3);
        ck_assert_str_eq(pl->refine_template, "Refine: {answers}");
        ck_assert_str_eq(pl->aggregate_template, "Aggregate: {answers}");
        ck_assert_uint_eq(pl->n_layers, 4);
        ck_assert_int_eq(pl->layers[0].role, LAYER_PROPOSE);
        ck_assert_double_eq(pl->layers[0].weight, 2);
        ck_assert_double_eq(pl->layers[0].quorum, 1);
        ck_assert_uint_eq(pl->layers[0].timeout_ms, 1000);
        ck_assert_int_eq(pl->layers[1].role, LAYER_REFINE);
        ck_assert_ptr_null(pl->layers[1].agent);
        ck_assert_double_eq(pl->layers[1].quorum, 0.5);
        ck_assert_str_eq(pl->layers[2].agent, "code");
        ck_assert_int_eq(pl->layers[3].role, LAYER_AGGREGATE);
        ck_assert_str_eq(pl->layers[3].agent, "judge");
        ck_assert_ptr_nonnull(config_find_pipeline(c, "moa"));
        ck_assert_ptr_nonnull(config_find_pipeline(c, "moa-lite"));

        ck_assert_uint_eq(c->n_agents, 1);
        a = config_find_agent(c, "code");
        ck_assert_ptr_nonnull(a);
        ck_assert_str_eq(a->file, IN_DIR("full-agents/code.yaml"));
        ck_assert_str_eq(a->plugin, IN_DIR("full-agents/plugins/code.so"));
        ck_assert_double_eq(a->weight, 0.75);
        ck_assert_str_eq(a->provider, "local");
        ck_assert_str_eq(a->model, "coder");
        ck_assert_str_eq(a->prompt, "You write code.\n");
        ck_assert_uint_eq(a->n_knowledge, 2);
        ck_assert_str_eq(a->knowledge[0], IN_DIR("full-agents/docs"));
        ck_assert_str_eq(a->knowledge[1], "/srv/kb/code");
        ck_assert_int_eq(a->enabled, 0);
        ck_assert_uint_eq(a->n_options, 4);
        ck_assert_str_eq(agent_config_option(a, "style"), "terse");
        ck_assert_str_eq(agent_config_option(a, "max_lines"), "40");
        ck_assert_str_eq(agent_config_option(a, "fenced"), "true");
        ck_assert_str_eq(agent_config_option(a, "empty"), "");
        ck_assert_ptr_null(agent_config_option(a, "nope"));
#undef IN_DIR
        config_free(c);
}
END_TEST

/* ---- relative paths ---- */

START_TEST(test_relative_paths) {
        _cleanup_free_ char *rel = data_path("relative"), *want = NULL;
        _cleanup_free_ char *base = realpath(rel, NULL); /* getcwd() returns the resolved path */
        _cleanup_free_ char *cwd = getcwd(NULL, 0);
        Config *c;

        /* A relative config path is taken from the working directory. */
        ck_assert_int_eq(chdir(base), 0);
        c = load_ok("conf/moad.yaml", NULL);
        ck_assert_int_eq(chdir(cwd), 0);

#define EQ_IN(field, rel)                                                                                   \
        do {                                                                                                \
                free(want);                                                                                 \
                ck_assert_int_ge(asprintf(&want, "%s/%s", base, rel), 0);                                   \
                ck_assert_str_eq(field, want);                                                              \
        } while (0)
        EQ_IN(c->file, "conf/moad.yaml");
        EQ_IN(c->agents_dir, "conf/agents");
        EQ_IN(c->plugin_dir, "conf/../plugins");
        EQ_IN(c->state_dir, "conf/state");
        EQ_IN(config_find_provider(c, "p")->api_key_file, "conf/keys/p.key");
        ck_assert_uint_eq(c->n_agents, 1);
        ck_assert_uint_eq(c->agents[0].n_knowledge, 4);
        EQ_IN(c->agents[0].knowledge[0], "conf/agents/kb");
        EQ_IN(c->agents[0].knowledge[1], "conf/agents/kb2/");
        EQ_IN(c->agents[0].knowledge[2], "conf/agents/../shared");
        ck_assert_str_eq(c->agents[0].knowledge[3], "/abs/kb");
        /* A bare plugin name stays a name (looked up in plugin_dir). */
        ck_assert_str_eq(c->agents[0].plugin, "a");
        config_free(c);

        /* A relative --agents-dir is taken from the working directory too;
         * without moad.yaml, provider 'p' does not exist. */
        free(want);
        ck_assert_int_ge(asprintf(&want, "%s/conf/agents/a.yaml", base), 0);
        ck_assert_int_eq(chdir(base), 0);
        expect_error(NULL, "conf/agents", want, "3:11: unknown provider 'p' for agent 'a'");
        ck_assert_int_eq(chdir(cwd), 0);
#undef EQ_IN
}
END_TEST

/* ---- errors in moad.yaml ---- */

START_TEST(test_access) {
        _cleanup_free_ char *p = write_file("moad.yaml",
                                            "access:\n  ask:\n    users: [root, 1000]\n    groups: [0]\n"
                                            "  admin:\n    users: [0]\n"),
                            *a = empty_agents();
        Config *c = load_ok(p, a);
        ck_assert_uint_eq(c->access.ask.n_uids, 2);
        ck_assert_uint_eq(c->access.ask.uids[0], 0);
        ck_assert_uint_eq(c->access.ask.uids[1], 1000);
        ck_assert_uint_eq(c->access.ask.n_gids, 1);
        ck_assert_uint_eq(c->access.admin.n_uids, 1);
        ck_assert_uint_eq(c->access.admin.n_gids, 0);
        config_free(c);

        expect_main_error("access:\n  admin:\n    groups: [no-such-group-xyz]\n",
                          "3:14: unknown group 'no-such-group-xyz' in 'access.admin.groups'");
        expect_main_error("access:\n  admin:\n    users: root\n",
                          "3:12: expected a list for 'access.admin.users', got a scalar");
        expect_main_error("access:\n  everyone: {}\n", "2:3: unknown key 'everyone' in access");
}
END_TEST

START_TEST(test_error_syntax) {
        expect_main_error(
                "listen:\n  socket: /a\n bad: [\n",
                "3:2: syntax error: did not find expected key (while parsing a block mapping at line 1)");
        expect_main_error("log_level: \"info\n", "2:1: syntax error: found unexpected end of stream "
                                                 "(while scanning a quoted scalar at line 1)");
        expect_main_error("a: b: c\n", "1:5: syntax error: mapping values are not allowed in this context");
}
END_TEST

START_TEST(test_error_not_mapping) {
        _cleanup_free_ char *p = data_path("list.yaml"), *a = empty_agents();
        expect_error(p, a, p, "1:1: expected a mapping at the top level, got a sequence");
        expect_main_error("just a string\n", "1:1: expected a mapping at the top level, got a scalar");
        expect_main_error("listen: /run/x.sock\n", "1:9: expected a mapping for 'listen', got a scalar");
        expect_main_error("providers:\n  name: x\n", "2:3: expected a list for 'providers', got a mapping");
        expect_main_error("providers:\n  - builtin\n",
                          "2:5: expected a mapping for 'providers[0]', got a scalar");
}
END_TEST

START_TEST(test_error_unknown_keys) {
        expect_main_error("log_level: info\nfoo: 1\n", "2:1: unknown key 'foo'");
        expect_main_error("listen:\n  sock: /x\n", "2:3: unknown key 'sock' in listen");
        expect_main_error("limits:\n  max_body: 1\n", "2:3: unknown key 'max_body' in limits");
        expect_main_error("router:\n  top: 1\n", "2:3: unknown key 'top' in router");
        expect_main_error("providers:\n  - name: x\n    type: builtin\n    foo: bar\n",
                          "4:5: unknown key 'foo' in providers[0]");
        expect_main_error(
                "pipelines:\n  - name: p\n    layers:\n      - role: propose\n      - role: aggregate\n"
                "        agnt: x\n",
                "6:9: unknown key 'agnt' in pipelines[0].layers[1]");
}
END_TEST

START_TEST(test_error_types) {
        expect_main_error("limits:\n  max_body_bytes: lots\n",
                          "2:19: expected an integer for 'limits.max_body_bytes'");
        expect_main_error("limits:\n  max_body_bytes: \"5\"\n",
                          "2:19: expected an integer for 'limits.max_body_bytes'");
        expect_main_error("limits:\n  max_body_bytes: 1.5\n",
                          "2:19: expected an integer for 'limits.max_body_bytes'");
        expect_main_error("limits:\n  max_body_bytes: [1]\n",
                          "2:19: expected an integer for 'limits.max_body_bytes'");
        expect_main_error("limits:\n  max_messages: -3\n",
                          "2:17: 'limits.max_messages' must not be negative");
        expect_main_error("limits:\n  max_queue: 0\n", "2:14: 'limits.max_queue' must be at least 1, not 0");
        expect_main_error("limits:\n  plugin_score_ms: 0\n",
                          "2:20: 'limits.plugin_score_ms' must be at least 1, not 0");
        expect_main_error("limits:\n  plugin_call_ms: 60001\n",
                          "2:19: 'limits.plugin_call_ms' is out of range (at most 60000)");
        expect_main_error("limits:\n  plugin_max_stuck: 1025\n",
                          "2:21: 'limits.plugin_max_stuck' is out of range (at most 1024)");
        expect_main_error("jobs:\n  lease_seconds: 1\n", "2:18: 'jobs.lease_seconds' must be at least 2");
        expect_main_error("jobs:\n  db_timeout_ms: 60001\n",
                          "2:18: 'jobs.db_timeout_ms' is out of range (at most 60000)");
        expect_main_error("limits:\n  request_timeout_ms: 99999999999999999999999\n",
                          "2:23: 'limits.request_timeout_ms' is out of range (at most 86400000)");
        expect_main_error("limits:\n  max_connections: 4294967296\n",
                          "2:20: 'limits.max_connections' is out of range (at most 1000000)");
        expect_main_error("router:\n  threshold: high\n", "2:14: expected a number for 'router.threshold'");
        expect_main_error("router:\n  threshold: .nan\n", "2:14: expected a number for 'router.threshold'");
        expect_main_error("router:\n  threshold: 1.5\n", "2:14: 'router.threshold' must be between 0 and 1");
        expect_main_error("router:\n  kb_weight: -0.1\n",
                          "2:14: 'router.kb_weight' must be between 0 and 10");
        expect_main_error("router:\n  top_k: 0\n", "2:10: 'router.top_k' must be at least 1, not 0");
        expect_main_error("providers:\n  - name: x\n    type: builtin\n    temperature: 3\n",
                          "4:18: 'providers[0].temperature' must be between 0 and 2");
        expect_main_error("providers:\n  - name: x\n    type: builtin\n    max_retries: many\n",
                          "4:18: expected an integer for 'providers[0].max_retries'");
        expect_main_error("providers:\n  - name: x\n    type: builtin\n    headers: [a]\n",
                          "4:14: expected a mapping for 'providers[0].headers', got a sequence");
        expect_main_error("providers:\n  - name: x\n    type: builtin\n    headers:\n      X-A: {b: c}\n",
                          "5:12: expected a scalar for 'providers[0].headers.X-A', got a mapping");
        expect_main_error("pipelines:\n  - name: p\n    deadline_ms: 0\n    layers: [{role: propose}]\n",
                          "3:18: 'pipelines[0].deadline_ms' must be at least 1, not 0");
        expect_main_error("pipelines:\n  - name: p\n    layers: [{role: propose, quorum: 2}]\n",
                          "3:38: 'pipelines[0].layers[0].quorum' must be between 0 and 1");
        expect_main_error(
                "log_level: [info]\n",
                "1:12: invalid value for 'log_level' (expected err, warning, notice, info or debug)");
        expect_main_error(
                "default_pipeline: \"no spaces\"\n",
                "1:19: invalid name 'no spaces' for 'default_pipeline' (1-64 characters of A-Z a-z 0-9 "
                ". _ -, not starting with '.')");
}
END_TEST

START_TEST(test_socket_mode_and_tcp) {
        static const struct {
                const char *yaml;
                unsigned mode;
        } ok[] = {
                {"listen: {socket_mode: \"0600\"}\n", 0600},
                {"listen: {socket_mode: 0640}\n", 0640},
                {"listen: {socket_mode: 660}\n", 0660},
                {"listen: {socket_mode: 0o644}\n", 0644},
        };
        _cleanup_free_ char *a = empty_agents();

        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                _cleanup_free_ char *p = write_file("moad.yaml", ok[i].yaml);
                Config *c = load_ok(p, a);
                ck_assert_uint_eq(c->socket_mode, ok[i].mode);
                config_free(c);
        }
        expect_main_error("listen: {socket_mode: \"0999\"}\n",
                          "1:23: expected an octal mode such as \"0660\" for 'listen.socket_mode'");
        expect_main_error("listen: {socket_mode: 1777}\n",
                          "1:23: 'listen.socket_mode' must be at most 0777");
        expect_main_error("listen: {tcp: \"localhost\"}\n", "1:15: expected \"host:port\" for 'listen.tcp'");
        expect_main_error("listen: {tcp: \"127.0.0.1:0\"}\n",
                          "1:15: port in 'listen.tcp' must be between 1 and 65535");
        expect_main_error("listen: {tcp: \"127.0.0.1:http\"}\n", "1:15: invalid port in 'listen.tcp'");
        expect_main_error("listen: {tcp: \"::1:8080\"}\n",
                          "1:15: expected \"host:port\" or \"[address]:port\" for 'listen.tcp'");
        expect_main_error(
                "listen: {socket: "
                "/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock}\n",
                "1:18: 'listen.socket' is too long for a Unix socket (119 bytes, at most 107)");

        _cleanup_free_ char *p = write_file("moad.yaml", "listen: {tcp: \"[::1]:8080\"}\n");
        Config *c = load_ok(p, a);
        ck_assert_str_eq(c->tcp_listen, "[::1]:8080");
        config_free(c);
}
END_TEST

START_TEST(test_error_enums) {
        expect_main_error(
                "log_level: loud\n",
                "1:12: invalid value 'loud' for 'log_level' (expected err, warning, notice, info or debug)");
        expect_main_error(
                "providers:\n  - name: x\n    type: anthropic\n",
                "3:11: invalid value 'anthropic' for 'providers[0].type' (expected builtin or openai)");
        expect_main_error("pipelines:\n  - name: p\n    layers:\n      - role: vote\n",
                          "4:15: invalid value 'vote' for 'pipelines[0].layers[0].role' (expected propose, "
                          "refine or aggregate)");
}
END_TEST

START_TEST(test_error_missing) {
        expect_main_error("providers:\n  - name: x\n", "2:5: missing required key 'type' in providers[0]");
        expect_main_error("providers:\n  - type: builtin\n",
                          "2:5: missing required key 'name' in providers[0]");
        expect_main_error("providers:\n  - name: x\n    type: ~\n",
                          "2:5: missing required key 'type' in providers[0]");
        expect_main_error("providers:\n  - name: up\n    type: openai\n    model: m\n",
                          "2:5: missing required key 'base_url' for openai provider in providers[0]");
        expect_main_error("pipelines:\n  - layers: [{role: propose}]\n",
                          "2:5: missing required key 'name' in pipelines[0]");
        expect_main_error("pipelines:\n  - name: p\n    layers:\n      - weight: 1\n",
                          "4:9: missing required key 'role' in pipelines[0].layers[0]");
        expect_main_error("pipelines:\n  - name: p\n", "2:5: pipeline 'p' needs at least one layer");
        expect_main_error("pipelines:\n  - name: p\n    layers: []\n",
                          "3:13: pipeline 'p' needs at least one layer");
}
END_TEST

START_TEST(test_error_duplicates) {
        _cleanup_free_ char *p = data_path("duplicate-key.yaml"), *a = empty_agents();

        expect_error(p, a, p, "5:3: duplicate key 'top_k' (first defined at line 3)");
        expect_main_error("log_level: info\nlog_level: debug\n",
                          "2:1: duplicate key 'log_level' (first defined at line 1)");
        expect_main_error("providers:\n  - name: x\n    type: builtin\n  - name: x\n    type: builtin\n",
                          "4:11: duplicate provider name 'x'");
        expect_main_error("pipelines:\n  - name: p\n    layers: [{role: propose}]\n"
                          "  - name: p\n    layers: [{role: propose}]\n",
                          "4:11: duplicate pipeline name 'p'");
}
END_TEST

START_TEST(test_error_secrets) {
        expect_main_error(
                "providers:\n  - name: x\n    type: openai\n    base_url: http://127.0.0.1:1/v1\n"
                "    api_key: sk-123\n",
                "5:5: secrets are not allowed in the configuration: use 'api_key_file' or 'api_key_env' "
                "instead of 'api_key'");
        expect_main_error(
                "providers:\n  - name: x\n    type: openai\n    base_url: http://127.0.0.1:1/v1\n"
                "    headers:\n      authorization: Bearer sk-123\n",
                "6:7: secrets are not allowed in the configuration: use 'api_key_file' or 'api_key_env' "
                "instead of an Authorization header");
        expect_main_error("providers:\n  - name: x\n    type: openai\n    base_url: http://127.0.0.1:1/v1\n"
                          "    api_key_file: /k\n    api_key_env: K\n",
                          "2:5: set only one of 'api_key_file' and 'api_key_env' in providers[0]");
        expect_agent_error(
                "name: a\nplugin: a\napi_key: sk-1\n",
                "3:1: secrets are not allowed in the configuration: use 'api_key_file' or 'api_key_env' "
                "instead of 'api_key'");
}
END_TEST

START_TEST(test_error_references) {
        expect_main_error("providers:\n  - name: x\n    type: builtin\n    fallbacks: [y]\n",
                          "4:17: unknown provider 'y' in 'providers[0].fallbacks'");
        expect_main_error("providers:\n  - name: x\n    type: builtin\n    fallbacks: [x]\n",
                          "4:17: provider 'x' cannot be its own fallback");
        expect_main_error("default_pipeline: nothing\n",
                          "1:19: unknown pipeline or agent 'nothing' for 'default_pipeline'");
        expect_agent_error("name: a\nplugin: a\nprovider: gpt\n",
                           "3:11: unknown provider 'gpt' for agent 'a'");
}
END_TEST

START_TEST(test_builtin_provider_and_pipelines) {
        _cleanup_free_ char *a = empty_agents();
        _cleanup_free_ char *p = write_file(
                "moad.yaml", "providers:\n  - name: builtin\n    type: builtin\n    max_concurrency: 2\n"
                             "pipelines:\n  - name: moa\n    layers: [{role: propose}]\n");
        Config *c = load_ok(p, a);

        /* The user's builtin replaces the implicit one rather than duplicating it. */
        ck_assert_uint_eq(c->n_providers, 1);
        ck_assert_uint_eq(config_find_provider(c, "builtin")->max_concurrency, 2);
        /* The user's moa replaces the default; moa-lite is still there. */
        ck_assert_uint_eq(c->n_pipelines, 2);
        ck_assert_uint_eq(config_find_pipeline(c, "moa")->n_layers, 1);
        ck_assert_uint_eq(config_find_pipeline(c, "moa-lite")->n_layers, 2);
        config_free(c);

        expect_main_error(
                "providers:\n  - name: builtin\n    type: openai\n    base_url: http://127.0.0.1:1/v1\n",
                "3:11: the provider name 'builtin' is reserved for a provider of type builtin");
        expect_main_error("pipelines:\n  - name: p\n    layers: [{role: aggregate}, {role: propose}]\n",
                          "3:33: an aggregate layer must be the last layer of pipeline 'p'");
}
END_TEST

/* Staircase streaming: off by default with documented defaults; the
 * keys are range-checked, and tuning a staircase that is off is refused. */
START_TEST(test_pipeline_staircase) {
        _cleanup_free_ char *a = empty_agents();
        _cleanup_free_ char *p =
                write_file("moad.yaml", "pipelines:\n  - name: s\n    staircase: true\n"
                                        "    staircase_quorum: 0.5\n"
                                        "    staircase_min_chars: 80\n"
                                        "    layers: [{role: propose}, {role: aggregate}]\n");
        Config *c = load_ok(p, a);
        const PipelineConfig *pl = config_find_pipeline(c, "s");

        ck_assert_int_eq(pl->staircase, 1);
        ck_assert_double_eq(pl->staircase_quorum, 0.5);
        ck_assert_uint_eq(pl->staircase_min_chars, 80);
        pl = config_find_pipeline(c, "moa");
        ck_assert_int_eq(pl->staircase, 0);
        ck_assert_double_eq(pl->staircase_quorum, 1.0);
        ck_assert_uint_eq(pl->staircase_min_chars, 200);
        config_free(c);

        expect_main_error("pipelines:\n  - name: p\n    staircase: maybe\n    layers: [{role: propose}]\n",
                          "3:16: expected a boolean (true/false/yes/no) for 'pipelines[0].staircase'");
        expect_main_error("pipelines:\n  - name: p\n    staircase: true\n    staircase_quorum: 1.5\n"
                          "    layers: [{role: propose}]\n",
                          "4:23: 'pipelines[0].staircase_quorum' must be between 0 and 1");
        expect_main_error("pipelines:\n  - name: p\n    staircase: true\n    staircase_min_chars: 0\n"
                          "    layers: [{role: propose}]\n",
                          "4:26: 'pipelines[0].staircase_min_chars' must be at least 1, not 0");
        expect_main_error("pipelines:\n  - name: p\n    staircase: true\n    staircase_min_chars: 65537\n"
                          "    layers: [{role: propose}]\n",
                          "4:26: 'pipelines[0].staircase_min_chars' is out of range (at most 65536)");
        expect_main_error(
                "pipelines:\n  - name: p\n    staircase_quorum: 0.5\n    layers: [{role: propose}]\n",
                "3:5: 'staircase_quorum' of pipeline 'p' has no effect without 'staircase: true'");
}
END_TEST

/* ---- agent files ---- */

/* An agent without 'plugin' is a generic expert; its examples come inline
 * and from examples_file (relative to the agent file, '#' and blank lines
 * skipped), inline first. */
START_TEST(test_agent_examples) {
        _cleanup_free_ char *d = tmp_path("ex-agents"), *err = NULL, *ex = NULL, *want = NULL;
        mkdir(d, 0755);
        _cleanup_free_ char *f =
                write_file("ex-agents/sec.yaml", "name: security\ndescription: IT security\n"
                                                 "examples: [\"How do I rotate a TLS certificate?\"]\n"
                                                 "examples_file: sec.txt\n");
        _cleanup_free_ char *t =
                write_file("ex-agents/sec.txt", "# comment\n\n  What is a CSRF token?  \r\nIs MD5 safe?\n");
        Config *c = load_ok(NULL, d);
        const AgentConfig *a = config_find_agent(c, "security");
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_null(a->plugin);
        ck_assert_str_eq(a->description, "IT security");
        ck_assert_uint_eq(a->n_examples, 3);
        ck_assert_str_eq(a->examples[0], "How do I rotate a TLS certificate?");
        ck_assert_str_eq(a->examples[1], "What is a CSRF token?");
        ck_assert_str_eq(a->examples[2], "Is MD5 safe?");
        config_free(c);

        /* a missing file and an over-long line name the file (and the line) */
        unlink(t);
        c = NULL;
        ck_assert_int_lt(config_load(NULL, d, &c, &err), 0);
        ck_assert_ptr_nonnull(strstr(err, "sec.txt: cannot open: No such file or directory"));
        free(err);
        err = NULL;
        ck_assert_ptr_nonnull(ex = calloc(1, 2000));
        memset(ex, 'x', 1500);
        ck_assert_int_ge(asprintf(&want, "ok?\n%s\n", ex), 0);
        free(write_file("ex-agents/sec.txt", want));
        ck_assert_int_lt(config_load(NULL, d, &c, &err), 0);
        ck_assert_ptr_nonnull(strstr(err, "sec.txt: line 2: example longer than 1024 bytes"));
        unlink(f);
        unlink(t);
}
END_TEST

START_TEST(test_agent_errors) {
        expect_agent_error("plugin: a\n", "1:1: missing required key 'name'");
        expect_agent_error("", "1:1: empty agent file: 'name' is required");
        expect_agent_error("name: a\nexamples: q\n", "2:11: expected a list for 'examples', got a scalar");
        expect_agent_error("- name: a\n", "1:1: expected a mapping at the top level, got a sequence");
        expect_agent_error("name: a\nplugin: a\ncolour: red\n", "3:1: unknown key 'colour'");
        expect_agent_error("name: a\nplugin: a\nenabled: maybe\n",
                           "3:10: expected a boolean (true/false/yes/no) for 'enabled'");
        expect_agent_error("name: a\nplugin: a\nenabled: 1\n",
                           "3:10: expected a boolean (true/false/yes/no) for 'enabled'");
        expect_agent_error("name: a\nplugin: a\nenabled: \"true\"\n",
                           "3:10: expected a boolean (true/false/yes/no) for 'enabled'");
        expect_agent_error("name: a\nplugin: a\nweight: -1\n", "3:9: 'weight' must be between 0 and 100");
        expect_agent_error("name: a\nplugin: a\nknowledge: kb\n",
                           "3:12: expected a list for 'knowledge', got a scalar");
        expect_agent_error("name: a\nplugin: a\nknowledge: [kb, [x]]\n",
                           "3:17: expected a path for 'knowledge[1]', got a sequence");
        expect_agent_error("name: a\nplugin: a\noptions: {k: [1]}\n",
                           "3:14: expected a scalar for 'options.k', got a sequence");
        expect_agent_error("name: a/b\nplugin: a\n",
                           "1:7: invalid name 'a/b' for 'name' (1-64 characters of A-Z a-z 0-9 . _ -, not "
                           "starting with '.')");
        expect_agent_error("name: a\nplugin: a\nname: b\n",
                           "3:1: duplicate key 'name' (first defined at line 1)");
        /* an agent name is a model id, a path segment and a metric label */
        expect_agent_error("name: Legal\nplugin: a\n",
                           "1:7: invalid agent name 'Legal' (1-64 characters of a-z 0-9 _ -)");
        expect_agent_error("name: legal.v2\nplugin: a\n",
                           "1:7: invalid agent name 'legal.v2' (1-64 characters of a-z 0-9 _ -)");
}
END_TEST

START_TEST(test_agent_duplicate_names) {
        _cleanup_free_ char *x = write_file("agents/10-x.yaml", "name: same\nplugin: a\n");
        _cleanup_free_ char *y = write_file("agents/20-y.yml", "# second\nname: same\nplugin: b\n");
        _cleanup_free_ char *d = tmp_path("agents"), *rest = NULL;

        ck_assert_int_ge(asprintf(&rest, "2:7: duplicate agent name 'same' (also in %s)", x), 0);
        expect_error(NULL, d, y, rest);
}
END_TEST

START_TEST(test_agent_dir_scan) {
        _cleanup_free_ char *d = tmp_path("agents"), *f1 = NULL, *f2 = NULL, *f3 = NULL, *f4 = NULL,
                            *f5 = NULL, *sub = NULL;
        Config *c;

        f1 = write_file("agents/b.yaml", "name: bravo\nplugin: b\n");
        f2 = write_file("agents/a.yml", "name: alpha\nplugin: a\nenabled: false\n");
        f3 = write_file("agents/README.txt", "not yaml: [");
        f4 = write_file("agents/.hidden.yaml", "not: [valid");
        f5 = write_file("agents/c.yaml~", "not: [valid");
        sub = tmp_path("agents/dir.yaml");
        ck_assert_int_eq(mkdir(sub, 0755), 0);
        c = load_ok(NULL, d);
        ck_assert_uint_eq(c->n_agents, 2);
        ck_assert_str_eq(c->agents[0].name, "alpha"); /* a.yml sorts before b.yaml */
        ck_assert_int_eq(c->agents[0].enabled, 0);
        ck_assert_str_eq(c->agents[1].name, "bravo");
        ck_assert_int_eq(c->agents[1].enabled, 1);
        ck_assert_double_eq(c->agents[1].weight, 1.0);
        ck_assert_str_eq(c->agents[1].provider, "builtin");
        config_free(c);
}
END_TEST

/* ---- I/O and hostile input ---- */

START_TEST(test_error_io) {
        _cleanup_free_ char *missing = tmp_path("nope.yaml"), *a = empty_agents(),
                            *nodir = tmp_path("no-such-dir");
        _cleanup_free_ char *rest = NULL, *p = NULL;
        Config *c = NULL;
        char *err = NULL;

        ck_assert_int_eq(config_load(missing, a, &c, &err), -ENOENT);
        ck_assert_ptr_null(c);
        ck_assert_ptr_nonnull(err);
        ck_assert_int_ge(asprintf(&rest, "%s: cannot open: No such file or directory", missing), 0);
        ck_assert_str_eq(err, rest);
        free(err);
        err = NULL;

        /* Without ret_error it still fails cleanly. */
        ck_assert_int_eq(config_load(missing, a, &c, NULL), -ENOENT);

        free(rest);
        ck_assert_int_ge(
                asprintf(&rest, "%s: cannot open agents directory: No such file or directory", nodir), 0);
        ck_assert_int_eq(config_load(NULL, nodir, &c, &err), -ENOENT);
        ck_assert_str_eq(err, rest);
        free(err);
        err = NULL;

        /* A configured agents_dir must exist too. */
        p = write_file("moad.yaml", "agents_dir: no-such-dir\n");
        ck_assert_int_eq(config_load(p, NULL, &c, &err), -ENOENT);
        ck_assert_str_eq(err, rest);
        free(err);
}
END_TEST

START_TEST(test_non_utf8) {
        _cleanup_free_ char *p = data_path("non-utf8.yaml"), *a = empty_agents();
        expect_error(p, a, p, "2:23: invalid input: invalid leading UTF-8 octet");
}
END_TEST

START_TEST(test_aliases_and_documents) {
        expect_main_error("router: &r {top_k: 2}\nlimits: *r\n", "2:9: aliases (*r) are not supported");
        expect_main_error("log_level: info\n---\nlog_level: debug\n",
                          "2:1: only one YAML document is allowed");
        expect_main_error("? [a, b]\n: c\n", "1:3: mapping keys must be scalars, not a sequence");
}
END_TEST

START_TEST(test_deep_nesting) {
        /* 100 levels of flow sequences: refused at level 65, before any allocation blow-up. */
        char buf[512];
        size_t n = 0;

        n += (size_t) snprintf(buf, sizeof(buf), "x: ");
        for (int i = 0; i < 100; i++)
                buf[n++] = '[';
        for (int i = 0; i < 100; i++)
                buf[n++] = ']';
        buf[n++] = '\n';
        buf[n] = 0;
        /* The mapping is level 1, so the 64th '[' (column 4 + 63) is level 65. */
        expect_main_error(buf, "1:67: nesting too deep (more than 64 levels)");
}
END_TEST

START_TEST(test_huge_documents) {
        const size_t items = 200000; /* "- a\n" x 200000 = 800 KB, under the size bound */
        _cleanup_free_ char *big = malloc(items * 4 + 16), *a = empty_agents(), *p = NULL, *rest = NULL;
        _cleanup_free_ char *huge = NULL;
        char *err = NULL;
        Config *c = NULL;
        size_t n = 0;

        ck_assert_ptr_nonnull(big);
        n += (size_t) sprintf(big, "providers:\n");
        for (size_t i = 0; i < items; i++) {
                memcpy(big + n, "- a\n", 4);
                n += 4;
        }
        big[n] = 0;
        /* The mapping, its key and the list come first: node 100001 is item 99998,
         * on line 99999, its scalar in column 3. */
        expect_main_error(big, "99999:3: document too large (more than 100000 nodes)");

        /* Over 1 MiB: refused before parsing. */
        huge = malloc(1024 * 1024 + 2);
        ck_assert_ptr_nonnull(huge);
        memset(huge, '#', 1024 * 1024 + 1);
        p = write_sized("big.yaml", huge, 1024 * 1024 + 1);
        ck_assert_int_eq(config_load(p, a, &c, &err), -EFBIG);
        ck_assert_int_ge(asprintf(&rest, "%s: file too large (1048577 bytes, at most 1048576)", p), 0);
        ck_assert_str_eq(err, rest);
        free(err);
        /* Exactly 1 MiB of comments is fine. */
        free(p);
        p = write_sized("big.yaml", huge, 1024 * 1024);
        c = load_ok(p, a);
        config_free(c);
}
END_TEST

static Suite *config_suite(void) {
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("core");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_defaults);
        tcase_add_test(tc, test_defaults_agents_override);
        tcase_add_test(tc, test_defaults_env);
        tcase_add_test(tc, test_empty_files);
        tcase_add_test(tc, test_shipped_moad_yaml);
        tcase_add_test(tc, test_shipped_agents);
        tcase_add_test(tc, test_full);
        tcase_add_test(tc, test_relative_paths);
        tcase_add_test(tc, test_error_syntax);
        tcase_add_test(tc, test_error_not_mapping);
        tcase_add_test(tc, test_error_unknown_keys);
        tcase_add_test(tc, test_access);
        tcase_add_test(tc, test_error_types);
        tcase_add_test(tc, test_socket_mode_and_tcp);
        tcase_add_test(tc, test_error_enums);
        tcase_add_test(tc, test_error_missing);
        tcase_add_test(tc, test_error_duplicates);
        tcase_add_test(tc, test_error_secrets);
        tcase_add_test(tc, test_error_references);
        tcase_add_test(tc, test_builtin_provider_and_pipelines);
        tcase_add_test(tc, test_agent_errors);
        tcase_add_test(tc, test_agent_examples);
        tcase_add_test(tc, test_agent_duplicate_names);
        tcase_add_test(tc, test_agent_dir_scan);
        tcase_add_test(tc, test_error_io);
        tcase_add_test(tc, test_non_utf8);
        tcase_add_test(tc, test_aliases_and_documents);
        tcase_add_test(tc, test_deep_nesting);
        tcase_add_test(tc, test_huge_documents);
        tcase_add_test(tc, test_pipeline_staircase);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(config_suite());
}
