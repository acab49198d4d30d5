/* test-agents.c — the agent registry over real plugins and real knowledge
 * bases in a temporary state directory: failing agents are skipped and the
 * rest keep working, knowledge is seeded once, routing uses plugin scores,
 * knowledge evidence, fallback and pins. Config structs are built by hand. */
#include <check.h>
#include <math.h>

#include "check-main.h"
#include <ftw.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agents.h"
#include "kb.h"
#include "log.h"

static char tmpdir[] = "/tmp/moa-test-agents-XXXXXX";

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
}

typedef struct Fixture {
        Config cfg;
        AgentConfig agents[5];
        char state[300], know[300], know_file[400];
        char *legal_knowledge[1];
        char bad_init[400], missing[400];
        KeyValue legal_opts[1];
} Fixture;

static void fixture(Fixture *f) {
        memset(f, 0, sizeof(*f));
        snprintf(f->state, sizeof(f->state), "%s/state", tmpdir);
        snprintf(f->know, sizeof(f->know), "%s/knowledge-legal", tmpdir);
        mkdir(f->know, 0755);
        snprintf(f->know_file, sizeof(f->know_file), "%s/tenancy.md", f->know);
        write_file(f->know_file,
                   "# Tenancy\n\nA landlord must return the security deposit within thirty days "
                   "after the tenant moves out, minus documented damage.\n");
        snprintf(f->bad_init, sizeof(f->bad_init), "%s/bad-init.so", TEST_PLUGIN_DIR);
        snprintf(f->missing, sizeof(f->missing), "%s/missing.so", TEST_PLUGIN_DIR);
        f->legal_knowledge[0] = f->know;
        f->legal_opts[0] = (KeyValue){(char *) "jurisdiction", (char *) "England"};

        f->agents[0] = (AgentConfig){.name = (char *) "legal",
                                     .plugin = (char *) "legal",
                                     .weight = 1.0,
                                     .knowledge = f->legal_knowledge,
                                     .n_knowledge = 1,
                                     .enabled = 1,
                                     .options = f->legal_opts,
                                     .n_options = 1,
                                     .model = (char *) "m-legal"};
        f->agents[1] =
                (AgentConfig){.name = (char *) "broken", .plugin = f->missing, .weight = 1.0, .enabled = 1};
        f->agents[2] = (AgentConfig){
                .name = (char *) "refuses", .plugin = f->bad_init, .weight = 1.0, .enabled = 1};
        f->agents[3] = (AgentConfig){
                .name = (char *) "code", .plugin = (char *) "code", .weight = 1.0, .enabled = 0};
        f->agents[4] = (AgentConfig){.name = (char *) "general",
                                     .plugin = (char *) "general",
                                     .weight = 0.6,
                                     .provider = (char *) "openai",
                                     .enabled = 1};
        f->cfg.plugin_dir = (char *) SHIPPED_PLUGIN_DIR;
        f->cfg.state_dir = f->state; /* does not exist yet: created */
        f->cfg.agents = f->agents;
        f->cfg.n_agents = ELEMENTSOF(f->agents);
        f->cfg.router = ROUTER_CONFIG_DEFAULT;
        f->cfg.router.fallback = (char *) "general";
}

START_TEST(test_registry) {
        Fixture f;
        AgentSet *s = NULL;
        fixture(&f);

        ck_assert_int_eq(agents_new(&f.cfg, &s), 0);
        /* broken (missing file) and refuses (failing init) are skipped, code is disabled */
        ck_assert_uint_eq(agents_count(s), 2);
        Agent *legal = agents_find(s, "legal"), *general = agents_find(s, "general");
        ck_assert_ptr_nonnull(legal);
        ck_assert_ptr_nonnull(general);
        ck_assert_ptr_null(agents_find(s, "broken"));
        ck_assert_ptr_null(agents_find(s, "code"));
        ck_assert_ptr_eq(agents_get(s, 0), legal);
        ck_assert_ptr_eq(agents_get(s, 1), general);
        ck_assert_ptr_null(agents_get(s, 2));
        ck_assert_str_eq(agent_name(legal), "legal");
        ck_assert_str_eq(agent_provider(legal), "builtin");
        ck_assert_str_eq(agent_model(legal), "m-legal");
        ck_assert_str_eq(agent_provider(general), "openai");
        ck_assert_ptr_null(agent_model(general));
        ck_assert(agent_weight(general) == 0.6);
        ck_assert_str_eq(plugin_agent_plugin_name(agent_plugin(legal)), "legal");
        ck_assert_ptr_nonnull(agent_kb(legal));
        ck_assert_int_eq(agent_doc_count(legal), 1);
        ck_assert_int_eq(agent_doc_count(general), 0);
        char db[400];
        snprintf(db, sizeof(db), "%s/kb/legal.db", f.state);
        ck_assert_str_eq(agent_kb_path(legal), db);
        ck_assert_int_eq(access(db, F_OK), 0);
        ck_assert_str_eq(agents_router_config(s)->fallback, "general");

        KbHit *hits = NULL;
        size_t n = 0;
        ck_assert_int_eq(agent_search(legal, "deposit", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_ptr_nonnull(strstr(hits[0].text, "security deposit"));
        kb_hits_free(hits, n);

        /* the plugin's own search service reaches the agent's KB: legal
         * retries with its terms when it was given no hits */
        char *sys = NULL, *ctx = NULL;
        ck_assert_int_eq(plugin_agent_build_prompt(agent_plugin(legal), "my landlord and the deposit", NULL,
                                                   0, &sys, &ctx),
                         0);
        ck_assert_ptr_nonnull(strstr(sys, "England"));
        ck_assert_ptr_nonnull(ctx);
        ck_assert_ptr_nonnull(strstr(ctx, "tenancy"));
        free(sys);
        free(ctx);
        agents_free(s);

        /* Reopen: the KB is not empty, so new knowledge files are not ingested again. */
        char second[400];
        snprintf(second, sizeof(second), "%s/more.md", f.know);
        write_file(second, "Leases longer than three years must be made by deed.\n");
        ck_assert_int_eq(agents_new(&f.cfg, &s), 0);
        ck_assert_int_eq(agent_doc_count(agents_find(s, "legal")), 1);
        ck_assert_ptr_null(agents_free(s));
        ck_assert_ptr_null(agents_free(NULL));
}
END_TEST

START_TEST(test_route) {
        Fixture f;
        AgentSet *s = NULL;
        RouteResult r = ROUTE_RESULT_INIT;
        fixture(&f);
        ck_assert_int_eq(agents_new(&f.cfg, &s), 0);

        ck_assert_int_eq(agents_route(s, "Can my landlord keep the security deposit?", NULL, 0, 1, &r), 0);
        ck_assert_uint_eq(r.n, 2);
        ck_assert_uint_eq(r.n_selected, 1);
        ck_assert_str_eq(r.choices[0].name, "legal");
        ck_assert(r.choices[0].selected && !r.choices[0].fallback);
        /* one knowledge base and one classifier label: nothing to contrast
         * them with, so neither signal is claimed; the lexicon decides */
        ck_assert(isnan(r.choices[0].kb_evidence));
        ck_assert(isnan(r.choices[0].learned));
        ck_assert(r.choices[0].plugin_score > 0.5);
        ck_assert_ptr_nonnull(strstr(r.choices[0].reason, "landlord"));
        route_result_done(&r);

        ck_assert_int_eq(agents_route(s, "What is a nice name for a goldfish?", NULL, 0, 0, &r), 0);
        ck_assert_uint_eq(r.n_selected, 1);
        for (size_t i = 0; i < r.n; i++)
                if (r.choices[i].selected) {
                        ck_assert_str_eq(r.choices[i].name, "general");
                        ck_assert(r.choices[i].fallback);
                }
        route_result_done(&r);

        const char *pin[] = {"general"};
        ck_assert_int_eq(agents_route(s, "Can my landlord keep the security deposit?", pin, 1, 0, &r), 0);
        ck_assert_uint_eq(r.n_selected, 1);
        for (size_t i = 0; i < r.n; i++)
                ck_assert_int_eq(r.choices[i].selected, streq(r.choices[i].name, "general"));
        route_result_done(&r);

        const char *unknown[] = {"code"}; /* disabled: not routable */
        ck_assert_int_eq(agents_route(s, "x", unknown, 1, 0, &r), -ENOENT);
        ck_assert_int_eq(agents_route(s, "", NULL, 0, 0, &r), 0);
        ck_assert_uint_eq(r.n_selected, 1);
        route_result_done(&r);
        agents_free(s);
}
END_TEST

static double evidence_of(AgentSet *s, const char *name, const char *query) {
        RouteResult r = ROUTE_RESULT_INIT;
        double e = NAN;
        ck_assert_int_eq(agents_route(s, query, NULL, 0, 0, &r), 0);
        for (size_t i = 0; i < r.n; i++)
                if (streq(r.choices[i].name, name))
                        e = r.choices[i].kb_evidence;
        route_result_done(&r);
        return e;
}

/* A large knowledge base changed under a running set: its term statistics
 * are re-read on a thread, the question that noticed the change answered
 * with the old ones meanwhile; a reload keeps what is still current. */
START_TEST(test_large_kb_refresh) {
        Fixture f;
        AgentSet *s = NULL, *s2 = NULL;
        const char *q = "zebrafish aquaculture permit";
        fixture(&f);
        ck_assert_int_eq(agents_new(&f.cfg, &s), 0);
        ck_assert(isnan(evidence_of(s, "legal", q)));

        /* written as the ingest worker does, through connections of its own */
        Kb *kb = NULL;
        size_t cap = 256 * 1024, len = 0;
        char *doc = malloc(cap);
        ck_assert_ptr_nonnull(doc);
        for (int k = 0; k < 40; k++) /* enough for a contrast */
                len += (size_t) snprintf(doc + len, cap - len,
                                         "## Loaf %d\n\nKnead the dough, let it rise and bake loaf %d.\n\n",
                                         k, k);
        ck_assert_int_eq(kb_open(agent_kb_path(agents_find(s, "general")), 0, &kb), 0);
        ck_assert_int_gt(kb_ingest(kb, "bread", "test", doc, len, NULL), 1);
        kb_close(kb);
        len = (size_t) snprintf(doc, cap, "# Register\n\nRules of the estate.\n\n");
        /* a specific term: in one section of ten, as a corpus would have it */
        for (int k = 0; k <= AGENTS_VOCAB_SYNC_CHUNKS + 50; k++)
                len += (size_t) snprintf(
                        doc + len, cap - len, "## Rule %d\n\n%s, clause %d.\n\n", k,
                        k % 10 ? "A tenancy deposit is returned" : "A zebrafish aquaculture permit", k);
        ck_assert_int_eq(kb_open(agent_kb_path(agents_find(s, "legal")), 0, &kb), 0);
        ck_assert_int_gt(kb_ingest(kb, "permits", "test", doc, len, NULL), AGENTS_VOCAB_SYNC_CHUNKS);
        kb_close(kb);
        free(doc);

        usleep(AGENTS_VOCAB_REFRESH_USEC + 100000);
        /* the change is noticed, the re-read starts, this answer has the old
         * statistics (no zebrafish; general's small base was re-read here) */
        double e = evidence_of(s, "legal", q);
        ck_assert_msg(!(e > 0), "legal evidence %f before the re-read", e);
        for (int i = 0; i < 400 && !(e > 0); i++) {
                usleep(25000);
                e = evidence_of(s, "legal", q);
        }
        ck_assert_msg(e > 0.5, "legal evidence %f after the re-read", e);

        /* a reload: the statistics are current at once */
        ck_assert_int_eq(agents_renew(&f.cfg, s, &s2), 0);
        agents_free(s);
        ck_assert(evidence_of(s2, "legal", q) > 0.5);
        agents_free(s2);
}
END_TEST

/* A document written as the ingest worker writes it: on a thread of its
 * own, through a connection of its own. */
static void *write_zebrafish(void *path) {
        static const char text[] = "# Zebrafish\n\nA zebrafish aquaculture permit is needed to breed "
                                   "zebrafish for sale.\n";
        Kb *kb = NULL;
        ck_assert_int_eq(kb_open(path, 0, &kb), 0);
        ck_assert_int_gt(kb_ingest(kb, "zebrafish.md", "test", text, strlen(text), NULL), 0);
        kb_close(kb);
        return NULL;
}

static double scored_evidence(AgentSet *s, const char *name, const char *query) {
        AgentScore given[8] = {{0}};
        RouteResult r = ROUTE_RESULT_INIT;
        double e = NAN;
        ck_assert_uint_le(agents_count(s), ELEMENTSOF(given));
        ck_assert_int_eq(agents_route_scored(s, query, NULL, 0, 0, given, &r), 0);
        for (size_t i = 0; i < r.n; i++)
                if (streq(r.choices[i].name, name))
                        e = r.choices[i].kb_evidence;
        route_result_done(&r);
        return e;
}

/* What the event loop does for each question (this thread stands for it)
 * asks the knowledge databases nothing: the document count an answer
 * names, the routing evidence, the re-check of the term statistics when
 * it is due. A write on another thread is seen at once all the same: its
 * document count, and a small base's terms. */
START_TEST(test_loop_asks_nothing) {
        Fixture f;
        AgentSet *s = NULL;
        const char *q = "zebrafish aquaculture permit";
        fixture(&f);
        ck_assert_int_eq(agents_new(&f.cfg, &s), 0);
        Agent *legal = agents_find(s, "legal"), *general = agents_find(s, "general");

        unsigned long before = kb_thread_statements();
        ck_assert_int_eq(agent_doc_count(legal), 1);
        ck_assert_int_eq(agent_doc_count(general), 0);
        ck_assert(!(scored_evidence(s, "general", q) > 0));
        ck_assert_uint_eq(kb_thread_statements(), before);

        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, write_zebrafish, (void *) agent_kb_path(general)), 0);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        ck_assert_int_eq(agent_doc_count(general), 1);
        double e = scored_evidence(s, "general", q);
        ck_assert_msg(e > 0, "general's new document not in its evidence (%f)", e);
        ck_assert_uint_eq(kb_thread_statements(), before);

        /* the re-check is due: it runs on the agents' threads */
        usleep(AGENTS_VOCAB_REFRESH_USEC + 100000);
        ck_assert(scored_evidence(s, "general", q) > 0);
        ck_assert_int_eq(agent_doc_count(legal), 1);
        ck_assert_uint_eq(kb_thread_statements(), before);

        /* the counter counts: a count asked here is one statement */
        ck_assert_int_eq(kb_count(agent_kb(legal)), 1);
        ck_assert_uint_gt(kb_thread_statements(), before);
        agents_free(s);
}
END_TEST

START_TEST(test_nothing_loads) {
        Fixture f;
        AgentSet *s = NULL;
        RouteResult r = ROUTE_RESULT_INIT;
        fixture(&f);
        f.cfg.agents = &f.agents[1];
        f.cfg.n_agents = 2; /* broken + refuses */
        ck_assert_int_eq(agents_new(&f.cfg, &s), 0);
        ck_assert_uint_eq(agents_count(s), 0);
        ck_assert_int_eq(agents_route(s, "anything", NULL, 0, 0, &r), 0);
        ck_assert_uint_eq(r.n_selected, 0);
        route_result_done(&r);
        agents_free(s);
        ck_assert_int_eq(agents_new(NULL, &s), -EINVAL);
}
END_TEST

static void setup(void) {
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
        nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        strcpy(tmpdir, "/tmp/moa-test-agents-XXXXXX");
}

static Suite *suite(void) {
        Suite *s = suite_create("agents");
        TCase *tc = tcase_create("registry");
        tcase_set_timeout(
                tc,
                120); /* test_large_kb_refresh ingests 1 000 chunks: slow under ASan on a busy CI machine */
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_registry);
        tcase_add_test(tc, test_route);
        tcase_add_test(tc, test_nothing_loads);
        tcase_add_test(tc, test_large_kb_refresh);
        tcase_add_test(tc, test_loop_asks_nothing);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        log_setup(LOG_LEVEL_INFO, 0);
        return moa_check_run(suite());
}
