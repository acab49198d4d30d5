/* test-ingest.c — the background ingest worker (completion on the loop, many
 * jobs, cancel, free with pending jobs) and kb_ingest_path(), including the
 * shipped sample knowledge. */
#include <check.h>

#include "check-main.h"
#include <pthread.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>

#include "ingest.h"
#include "kb.h"
#include "util.h"

static char tmpdir[64];
static char dbpath[256];

static void setup(void) {
        strcpy(tmpdir, "/tmp/test-ingest-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        snprintf(dbpath, sizeof dbpath, "%s/agent.db", tmpdir);
}

static void teardown(void) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        ck_assert_int_eq(system(cmd), 0);
}

typedef struct Ctx {
        pthread_t loop_thread;
        unsigned calls;
        int results[256];
        int order[256];
        int exit_after;
        sd_event *e;
} Ctx;

typedef struct JobTag {
        Ctx *ctx;
        int id;
        int must_not_run;
} JobTag;

static void on_done(void *userdata, int result) {
        JobTag *t = userdata;
        ck_assert(!t->must_not_run);
        ck_assert(pthread_equal(pthread_self(), t->ctx->loop_thread));
        t->ctx->results[t->id] = result;
        t->ctx->order[t->ctx->calls++] = t->id;
}

static void run_loop(sd_event *e, Ctx *ctx) {
        /* Dispatch until the expected number of callbacks ran; the test
         * timeout guards against a hang. */
        while ((int) ctx->calls < ctx->exit_after)
                ck_assert_int_ge(sd_event_run(e, UINT64_MAX), 0);
}

START_TEST(test_completion_on_loop) {
        sd_event *e = NULL;
        ck_assert_int_ge(sd_event_new(&e), 0);
        IngestWorker *w = NULL;
        ck_assert_int_eq(ingest_worker_new(e, &w), 0);

        Ctx ctx = {.loop_thread = pthread_self(), .exit_after = 1, .e = e};
        JobTag tag = {.ctx = &ctx, .id = 0};
        const char *text = "Hypertension is high blood pressure. It is treated with lifestyle changes.";
        IngestJob *job = NULL;
        ck_assert_int_eq(
                ingest_submit(w, dbpath, "bp", "unit", text, strlen(text), NULL, on_done, &tag, &job), 0);
        ck_assert_ptr_nonnull(job);
        ck_assert_uint_eq(ctx.calls, 0); /* never synchronously */
        run_loop(e, &ctx);
        ck_assert_uint_eq(ctx.calls, 1);
        ck_assert_int_eq(ctx.results[0], 1);

        Kb *kb = NULL;
        ck_assert_int_eq(kb_open(dbpath, 1, &kb), 0);
        ck_assert_int_eq(kb_count(kb), 1);
        kb_close(kb);

        /* errors come back through the callback too */
        ctx = (Ctx){.loop_thread = pthread_self(), .exit_after = 1, .e = e};
        ck_assert_int_eq(ingest_submit(w, dbpath, "empty", NULL, "   ", 3, NULL, on_done, &tag, NULL), 0);
        run_loop(e, &ctx);
        ck_assert_int_eq(ctx.results[0], -EINVAL);
        char bad[300];
        snprintf(bad, sizeof bad, "%s/no/such/dir/x.db", tmpdir);
        ctx = (Ctx){.loop_thread = pthread_self(), .exit_after = 1, .e = e};
        ck_assert_int_eq(ingest_submit(w, bad, "t", NULL, "x", 1, NULL, on_done, &tag, NULL), 0);
        run_loop(e, &ctx);
        ck_assert_int_lt(ctx.results[0], 0);

        /* submit-time validation */
        ck_assert_int_eq(ingest_submit(w, "", "t", NULL, "x", 1, NULL, NULL, NULL, NULL), -EINVAL);
        ck_assert_int_eq(ingest_submit(w, dbpath, "", NULL, "x", 1, NULL, NULL, NULL, NULL), -EINVAL);
        ck_assert_int_eq(ingest_submit(w, dbpath, "t", NULL, "x", (size_t) KB_MAX_DOCUMENT_BYTES + 1, NULL,
                                       NULL, NULL, NULL),
                         -E2BIG);

        ingest_worker_free(w);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_many_jobs_in_order) {
        sd_event *e = NULL;
        ck_assert_int_ge(sd_event_new(&e), 0);
        IngestWorker *w = NULL;
        ck_assert_int_eq(ingest_worker_new(e, &w), 0);

        enum { N = 100 };
        Ctx ctx = {.loop_thread = pthread_self(), .exit_after = N, .e = e};
        JobTag tags[N];
        for (int i = 0; i < N; i++) {
                char title[32], text[128];
                snprintf(title, sizeof title, "doc-%03d", i);
                snprintf(text, sizeof text, "Document number %d mentions token%d and the shared word zebra.",
                         i, i);
                tags[i] = (JobTag){.ctx = &ctx, .id = i};
                ck_assert_int_eq(ingest_submit(w, dbpath, title, NULL, text, strlen(text), NULL, on_done,
                                               &tags[i], NULL),
                                 0);
        }
        run_loop(e, &ctx);
        ck_assert_uint_eq(ctx.calls, N);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(ctx.order[i], i); /* one worker: FIFO */
                ck_assert_int_eq(ctx.results[i], 1);
        }
        ck_assert_uint_eq(ingest_worker_pending(w), 0);

        Kb *kb = NULL;
        ck_assert_int_eq(kb_open(dbpath, 1, &kb), 0);
        ck_assert_int_eq(kb_count(kb), N);
        KbHit *hits = NULL;
        size_t n = 0;
        ck_assert_int_eq(kb_search(kb, "token42", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(hits[0].title, "doc-042");
        kb_hits_free(hits, n);
        kb_close(kb);

        ingest_worker_free(w);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_cancel) {
        sd_event *e = NULL;
        ck_assert_int_ge(sd_event_new(&e), 0);
        IngestWorker *w = NULL;
        ck_assert_int_eq(ingest_worker_new(e, &w), 0);

        enum { N = 40 };
        Ctx ctx = {.loop_thread = pthread_self(), .e = e};
        JobTag tags[N + 1];
        IngestJob *jobs[N];
        /* A larger document first keeps the worker busy while we cancel. */
        size_t big_len = 512 * 1024;
        char *big = malloc(big_len);
        for (size_t i = 0; i < big_len; i++)
                big[i] = "lorem ipsum dolor sit amet. "[i % 28];
        for (int i = 0; i < N; i++) {
                char title[32];
                snprintf(title, sizeof title, "doc-%03d", i);
                tags[i] = (JobTag){.ctx = &ctx, .id = i, .must_not_run = i % 2 == 0};
                ck_assert_int_eq(ingest_submit(w, dbpath, title, NULL, big, i == 0 ? big_len : 100, NULL,
                                               on_done, &tags[i], &jobs[i]),
                                 0);
        }
        for (int i = 0; i < N; i += 2)
                ingest_job_cancel(jobs[i]); /* job 0 is likely running: finishes, unreported */
        ingest_job_cancel(NULL);

        /* A sentinel: FIFO, so when it reports every earlier job has been
         * reported or suppressed. */
        tags[N] = (JobTag){.ctx = &ctx, .id = N};
        ctx.exit_after = N / 2 + 1;
        ck_assert_int_eq(ingest_submit(w, dbpath, "sentinel", NULL, "end", 3, NULL, on_done, &tags[N], NULL),
                         0);
        run_loop(e, &ctx);
        ck_assert_uint_eq(ctx.calls, N / 2 + 1);
        ck_assert_int_eq(ctx.order[ctx.calls - 1], N);
        for (unsigned i = 0; i < ctx.calls; i++)
                ck_assert(ctx.order[i] % 2 == 1 || ctx.order[i] == N);
        free(big);
        ingest_worker_free(w);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_free_with_pending) {
        sd_event *e = NULL;
        ck_assert_int_ge(sd_event_new(&e), 0);
        IngestWorker *w = NULL;
        ck_assert_int_eq(ingest_worker_new(e, &w), 0);
        Ctx ctx = {.loop_thread = pthread_self(), .e = e};
        JobTag tag = {.ctx = &ctx, .must_not_run = 1};
        for (int i = 0; i < 200; i++) {
                char title[32];
                snprintf(title, sizeof title, "doc-%03d", i);
                ck_assert_int_eq(ingest_submit(w, dbpath, title, NULL, "some words here", 15, NULL, on_done,
                                               &tag, NULL),
                                 0);
        }
        ingest_worker_free(w); /* drops the rest, no callbacks, joins */
        /* the loop has nothing left to report */
        ck_assert_int_ge(sd_event_run(e, 0), 0);
        ck_assert_uint_eq(ctx.calls, 0);
        sd_event_unref(e);
        ingest_worker_free(NULL);
}
END_TEST

static void write_file(const char *dir, const char *name, const char *content) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs(content, f);
        fclose(f);
}

typedef struct Titles {
        char t[8][32];
        unsigned n;
} Titles;

static int collect(const KbDocInfo *d, void *userdata) {
        Titles *t = userdata;
        if (t->n < 8)
                snprintf(t->t[t->n++], sizeof t->t[0], "%s", d->title);
        return 0;
}

START_TEST(test_ingest_path) {
        char docs[300];
        snprintf(docs, sizeof docs, "%s/docs", tmpdir);
        ck_assert_int_eq(mkdir(docs, 0755), 0);
        write_file(docs, "b.txt", "Second file about rivers and deltas.");
        write_file(docs, "a.md", "# First\n\nA file about mountains.");
        write_file(docs, "c.text", "Third about glaciers.");
        write_file(docs, "ignored.bin", "binary stuff");
        write_file(docs, ".hidden.md", "hidden");
        write_file(docs, "README.md", "readme");
        write_file(docs, "empty.md", "");

        Kb *kb = NULL;
        ck_assert_int_eq(kb_open(dbpath, 0, &kb), 0);
        int n = -1;
        ck_assert_int_eq(kb_ingest_path(kb, docs, NULL, &n), 0);
        ck_assert_int_eq(n, 3);
        Titles t = {};
        ck_assert_int_eq(kb_list(kb, collect, &t), 0);
        ck_assert_uint_eq(t.n, 3);
        ck_assert_str_eq(t.t[0], "a.md");
        ck_assert_str_eq(t.t[1], "b.txt");
        ck_assert_str_eq(t.t[2], "c.text");

        /* idempotent */
        ck_assert_int_eq(kb_ingest_path(kb, docs, NULL, &n), 0);
        ck_assert_int_eq(kb_count(kb), 3);

        /* a single file; too big is refused */
        char p[400];
        snprintf(p, sizeof p, "%s/ignored.bin", docs);
        ck_assert_int_eq(kb_ingest_path(kb, p, NULL, &n), 0);
        ck_assert_int_eq(n, 1);
        snprintf(p, sizeof p, "%s/huge.md", docs);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(ftruncate(fileno(f), (off_t) KB_MAX_DOCUMENT_BYTES + 1), 0);
        fclose(f);
        ck_assert_int_eq(kb_ingest_path(kb, p, NULL, &n), -E2BIG);
        ck_assert_int_eq(kb_ingest_path(kb, docs, NULL, &n), 0); /* skipped in a directory */
        ck_assert_int_eq(n, 3);
        snprintf(p, sizeof p, "%s/missing.md", docs);
        ck_assert_int_eq(kb_ingest_path(kb, p, NULL, &n), -ENOENT);
        kb_close(kb);
}
END_TEST

/* Does @title start with one of the '|'-separated @prefixes? */
static int title_matches(const char *title, const char *prefixes) {
        for (const char *p = prefixes; *p;) {
                size_t n = strcspn(p, "|");
                if (strncmp(title, p, n) == 0)
                        return 1;
                p += n + (p[n] == '|');
        }
        return 0;
}

/* The shipped sample knowledge loads, and each agent's corpus answers the
 * questions it is meant for (a document on it is among the best three). */
START_TEST(test_sample_knowledge) {
        const char *src = getenv("MOAD_TEST_SRCDIR");
        ck_assert_ptr_nonnull(src);
        static const struct {
                const char *agent;
                const char *query;
                const char *title_prefix;
        } cases[] = {
                {"legal", "What does GDPR say about the right to erasure?", "gdpr"},
                {"legal", "Can I use GPL code in a proprietary product?", "open-source|dependency-licences"},
                {"medical", "What is a normal blood pressure reading?", "hypertension"},
                {"medical", "Can I take ibuprofen with warfarin?", "medication"},
                {"finance", "How does compound interest work?", "compound"},
                {"finance", "What is an index fund?", "index"},
                {"code", "How do I find a use-after-free with AddressSanitizer?", "c-memory"},
                {"code", "What does HTTP 404 mean?", "http"},
                {"general", "What are the rules for castling in chess?", "chess"},
                {"general", "Which is the longest river in the world?", "rivers"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char dir[512], db[512];
                snprintf(dir, sizeof dir, "%s/agents.d/knowledge/%s", src, cases[i].agent);
                snprintf(db, sizeof db, "%s/%s.db", tmpdir, cases[i].agent);
                Kb *kb = NULL;
                ck_assert_int_eq(kb_open(db, 0, &kb), 0);
                int n = 0;
                ck_assert_int_eq(kb_ingest_path(kb, dir, NULL, &n), 0);
                ck_assert_int_ge(n, 5);
                KbHit *hits = NULL;
                size_t nh = 0;
                ck_assert_int_eq(kb_search(kb, cases[i].query, 3, &hits, &nh), 0);
                ck_assert_uint_ge(nh, 1);
                /* in the top 3, which is what an agent's prompt shows first
                 * (the broader corpus has other pages that mention 404) */
                int found = 0;
                for (size_t h = 0; h < nh; h++)
                        found |= title_matches(hits[h].title, cases[i].title_prefix);
                ck_assert_msg(found, "%s: '%s' -> %s", cases[i].agent, cases[i].query, hits[0].title);
                kb_hits_free(hits, nh);
                kb_close(kb);
        }
}
END_TEST

static Suite *ingest_suite(void) {
        Suite *s = suite_create("ingest");
        TCase *tc = tcase_create("core");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_completion_on_loop);
        tcase_add_test(tc, test_many_jobs_in_order);
        tcase_add_test(tc, test_cancel);
        tcase_add_test(tc, test_free_with_pending);
        tcase_add_test(tc, test_ingest_path);
        tcase_add_test(tc, test_sample_knowledge);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(ingest_suite());
}
