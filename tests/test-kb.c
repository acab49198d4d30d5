/* test-kb.c — the knowledge base: schema and its migration from version 1,
 * ingest/replace, delete, list, count, search ranking (stemming, heading
 * weight, proximity) and snippets, file metadata and the migration from
 * version 2, headings of hits, hostile queries,
 * limits, and crash consistency of an interrupted ingest. */
#include <check.h>
#include <libstemmer.h>

#include "check-main.h"
#include <sqlite3.h>
#include <sys/wait.h>

#include "kb-pg-terms.h"
#include "kb-stats.h"
#include "kb-vocab.h"
#include "kb.h"
#include "spelling.h"
#include "util.h"

extern unsigned kb_test_crash_after_chunks;

static char tmpdir[] = "/tmp/test-kb-XXXXXX";
static char dbpath[256];

static void setup(void) {
        strcpy(tmpdir, "/tmp/test-kb-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        snprintf(dbpath, sizeof dbpath, "%s/agent.db", tmpdir);
}

static void teardown(void) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        ck_assert_int_eq(system(cmd), 0);
}

static Kb *open_kb(void) {
        Kb *kb = NULL;
        ck_assert_int_eq(kb_open(dbpath, 0, &kb), 0);
        ck_assert_ptr_nonnull(kb);
        return kb;
}

static int ingest_str(Kb *kb, const char *title, const char *text) {
        return kb_ingest(kb, title, "test", text, strlen(text), NULL);
}

/* FTS5's own consistency check of chunks_fts against its content (the
 * chunks_src view): fails if the triggers ever told the index something
 * else than what the tables hold. */
static void assert_index_consistent(void) {
        sqlite3 *db = NULL;
        char *err = NULL;
        ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
        int rc = sqlite3_exec(db, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)",
                              NULL, NULL, &err);
        ck_assert_msg(rc == SQLITE_OK, "integrity-check: %s", err ? err : sqlite3_errstr(rc));
        sqlite3_close(db);
}

static const char doc_bp[] =
        "# Hypertension\n\nHigh blood pressure (hypertension) is a reading persistently at or above "
        "130/80 mmHg. It usually causes no symptoms, which is why it is called a silent killer. "
        "Treatment starts with salt reduction, exercise and weight loss; medicines such as ACE "
        "inhibitors, thiazide diuretics and calcium channel blockers lower blood pressure further.\n";
static const char doc_git[] =
        "# Git\n\nA git rebase rewrites commits on top of another base. A merge keeps both histories "
        "and records a merge commit. Use git bisect to find the commit that introduced a bug.\n";
static const char doc_cafe[] = "# Café\n\nLe café crème est servi à Paris. Naïve façade, résumé.\n";

START_TEST(test_schema) {
        Kb *kb = open_kb();
        kb = kb_close(kb);
        ck_assert_ptr_null(kb);

        sqlite3 *db = NULL;
        ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
        sqlite3_stmt *st = NULL;
        ck_assert_int_eq(sqlite3_prepare_v2(db,
                                            "SELECT count(*) FROM sqlite_master WHERE name IN "
                                            "('documents','chunks','chunks_fts')",
                                            -1, &st, NULL),
                         SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_int_eq(sqlite3_column_int(st, 0), 3);
        sqlite3_finalize(st);
        ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_str_eq((const char *) sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_int_eq(sqlite3_column_int(st, 0), 3);
        sqlite3_finalize(st);
        ck_assert_int_eq(sqlite3_exec(db, "SELECT heading FROM chunks", NULL, NULL, NULL), SQLITE_OK);
        ck_assert_int_eq(
                sqlite3_exec(db, "SELECT sha256, file_bytes, mtime FROM documents", NULL, NULL, NULL),
                SQLITE_OK);
        sqlite3_close(db);

        /* Reopen is idempotent; read-only open works on an existing db. */
        kb = open_kb();
        kb_close(kb);
        ck_assert_int_eq(kb_open(dbpath, 1, &kb), 0);
        ck_assert_int_eq(ingest_str(kb, "x", "y"), -EROFS);
        kb_close(kb);

        char missing[300];
        snprintf(missing, sizeof missing, "%s/missing.db", tmpdir);
        ck_assert_int_lt(kb_open(missing, 1, &kb), 0);
        ck_assert_int_eq(kb_open(NULL, 0, &kb), -EINVAL);
}
END_TEST

START_TEST(test_ingest_replace_delete) {
        Kb *kb = open_kb();
        ck_assert_int_eq(kb_count(kb), 0);
        ck_assert_int_eq(ingest_str(kb, "bp", doc_bp), 1);
        ck_assert_int_eq(ingest_str(kb, "bp", doc_bp), 1);
        ck_assert_int_eq(kb_count(kb), 1);

        /* Replacing leaves no stale chunks in the index. */
        ck_assert_int_eq(ingest_str(kb, "bp", "Completely different words about zebras."), 1);
        ck_assert_int_eq(kb_count(kb), 1);
        KbHit *hits = NULL;
        size_t n = 99;
        ck_assert_int_eq(kb_search(kb, "hypertension", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 0);
        ck_assert_int_eq(kb_search(kb, "zebras", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        kb_hits_free(hits, n);

        ck_assert_int_eq(ingest_str(kb, "git", doc_git), 1);
        ck_assert_int_eq(kb_count(kb), 2);
        ck_assert_int_eq(kb_delete(kb, "bp"), 0);
        ck_assert_int_eq(kb_delete(kb, "bp"), -ENOENT);
        ck_assert_int_eq(kb_count(kb), 1);
        ck_assert_int_eq(kb_search(kb, "zebras", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 0);
        kb_close(kb);
        assert_index_consistent();

        /* a document row deleted directly takes its chunks and their index
         * entries with it; its title cannot be changed under the index */
        sqlite3 *db = NULL;
        ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
        ck_assert_int_ne(sqlite3_exec(db, "UPDATE documents SET title = 'x'", NULL, NULL, NULL), SQLITE_OK);
        ck_assert_int_eq(
                sqlite3_exec(db, "PRAGMA foreign_keys = ON; DELETE FROM documents", NULL, NULL, NULL),
                SQLITE_OK);
        sqlite3_close(db);
        assert_index_consistent();
        kb = open_kb();
        ck_assert_int_eq(kb_search(kb, "git", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 0);
        kb_close(kb);
}
END_TEST

typedef struct ListCtx {
        char titles[8][64];
        unsigned chunks[8];
        unsigned n;
        int stop_after;
} ListCtx;

static int list_cb(const KbDocInfo *d, void *userdata) {
        ListCtx *c = userdata;
        ck_assert_uint_lt(c->n, 8);
        snprintf(c->titles[c->n], sizeof c->titles[0], "%s", d->title);
        c->chunks[c->n] = d->n_chunks;
        ck_assert_str_eq(d->source, "test");
        ck_assert_uint_gt(d->bytes, 0);
        ck_assert_int_gt(d->ingested_at, 1600000000);
        c->n++;
        if (c->stop_after && (int) c->n == c->stop_after)
                return 42;
        return 0;
}

static int list_cb_any(const KbDocInfo *d, void *userdata) {
        ListCtx *c = userdata;
        ck_assert_uint_lt(c->n, 8);
        snprintf(c->titles[c->n], sizeof c->titles[0], "%s", d->title);
        c->chunks[c->n++] = d->n_chunks;
        return 0;
}

START_TEST(test_list) {
        Kb *kb = open_kb();
        ck_assert_int_eq(ingest_str(kb, "c-third", doc_git), 1);
        ck_assert_int_eq(ingest_str(kb, "a-first", doc_bp), 1);
        ck_assert_int_eq(ingest_str(kb, "b-second", doc_cafe), 1);
        ListCtx c = {};
        ck_assert_int_eq(kb_list(kb, list_cb, &c), 0);
        ck_assert_uint_eq(c.n, 3);
        ck_assert_str_eq(c.titles[0], "a-first");
        ck_assert_str_eq(c.titles[1], "b-second");
        ck_assert_str_eq(c.titles[2], "c-third");
        ListCtx s = {.stop_after = 2};
        ck_assert_int_eq(kb_list(kb, list_cb, &s), 42);
        ck_assert_uint_eq(s.n, 2);

        /* pages: at most @limit, strictly after @after, which need not exist */
        ListCtx p = {};
        ck_assert_int_eq(kb_list_page(kb, NULL, 2, list_cb, &p), 0);
        ck_assert_uint_eq(p.n, 2);
        ck_assert_str_eq(p.titles[1], "b-second");
        p = (ListCtx){};
        ck_assert_int_eq(kb_list_page(kb, "b-second", 2, list_cb, &p), 0);
        ck_assert_uint_eq(p.n, 1);
        ck_assert_str_eq(p.titles[0], "c-third");
        p = (ListCtx){};
        ck_assert_int_eq(kb_list_page(kb, "a-firsu", 5, list_cb, &p), 0);
        ck_assert_uint_eq(p.n, 2);
        ck_assert_str_eq(p.titles[0], "b-second");
        p = (ListCtx){};
        ck_assert_int_eq(kb_list_page(kb, "c-third", 5, list_cb, &p), 0);
        ck_assert_uint_eq(p.n, 0);
        ck_assert_int_eq(kb_list_page(kb, NULL, 0, list_cb, &p), -EINVAL);
        kb_close(kb);
}
END_TEST

START_TEST(test_search_ranking_snippets) {
        Kb *kb = open_kb();
        ck_assert_int_eq(ingest_str(kb, "bp", doc_bp), 1);
        ck_assert_int_eq(ingest_str(kb, "git", doc_git), 1);
        ck_assert_int_eq(ingest_str(kb, "cafe", doc_cafe), 1);

        KbHit *hits = NULL;
        size_t n = 0;
        ck_assert_int_eq(kb_search(kb, "What is the treatment for high blood pressure?", 5, &hits, &n), 0);
        ck_assert_uint_ge(n, 1);
        ck_assert_str_eq(hits[0].title, "bp");
        ck_assert_str_eq(hits[0].source, "test");
        ck_assert_uint_eq(hits[0].chunk, 0);
        ck_assert(hits[0].score > 0);
        ck_assert_ptr_nonnull(strstr(hits[0].snippet, "[blood]"));
        ck_assert_ptr_nonnull(strstr(hits[0].text, "calcium channel blockers"));
        /* stop-words alone must not pull in the git document */
        for (size_t i = 0; i < n; i++)
                ck_assert_str_ne(hits[i].title, "git");
        kb_hits_free(hits, n);

        /* ordering: more matching terms rank higher */
        ck_assert_int_eq(kb_search(kb, "git merge rebase blood", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_str_eq(hits[0].title, "git");
        ck_assert(hits[0].score >= hits[1].score);
        kb_hits_free(hits, n);

        /* diacritics folded both ways, case-insensitive */
        ck_assert_int_eq(kb_search(kb, "CAFE naive", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(hits[0].title, "cafe");
        kb_hits_free(hits, n);
        ck_assert_int_eq(kb_search(kb, "façade", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        kb_hits_free(hits, n);

        /* limit respected; limit 0 gives nothing */
        ck_assert_int_eq(kb_search(kb, "git blood cafe", 1, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        kb_hits_free(hits, n);
        ck_assert_int_eq(kb_search(kb, "git", 0, &hits, &n), 0);
        ck_assert_uint_eq(n, 0);
        ck_assert_ptr_null(hits);
        kb_close(kb);
}
END_TEST

START_TEST(test_fts_query) {
        char *q;
#define CHECK_Q(in, out)                                                                                    \
        q = kb_fts_query(in);                                                                               \
        ck_assert_ptr_nonnull(q);                                                                           \
        ck_assert_str_eq(q, out);                                                                           \
        free(q)
        CHECK_Q("", "");
        CHECK_Q("   ?!", "");
        CHECK_Q("hello", "\"hello\"");
        CHECK_Q("What is the GDPR?", "\"gdpr\"");
        CHECK_Q("what is the", "\"what\" OR \"is\" OR \"the\"");
        CHECK_Q("ab\"cd", "\"ab\" OR \"cd\"");
        CHECK_Q("x NEAR(y z)", "\"x\" OR \"near\" OR \"y\" OR \"z\"");
        CHECK_Q("title:foo", "\"title\" OR \"foo\"");
        CHECK_Q("pre* ^start", "\"pre\" OR \"start\"");
        CHECK_Q("git git GIT", "\"git\"");
        CHECK_Q("Blutdruck senken", "\"blutdruck\" OR \"senken\"");
        CHECK_Q("高血压 治疗", "\"高血压\" OR \"治疗\"");
        /* a name with its version joined on is also searched as the two
         * words a document writes apart ("GPL-3", "version 3") */
        CHECK_Q("GPLv3 terms", "\"gplv3\" OR \"gpl\" OR \"3\" OR \"terms\"");
        CHECK_Q("ipv6 gpl3", "\"ipv6\" OR \"ip\" OR \"6\" OR \"gpl3\" OR \"gpl\" OR \"3\"");
        CHECK_Q("v8 x86 3d", "\"v8\" OR \"x86\" OR \"3d\"");
        /* British and American spellings find each other */
        CHECK_Q("licence tumor", "\"licence\" OR \"license\" OR \"tumor\" OR \"tumour\"");
#undef CHECK_Q
        /* never more than KB_MAX_QUERY_TERMS terms */
        char big[4096] = "";
        for (int i = 0; i < 100; i++) {
                char w[16];
                snprintf(w, sizeof w, "w%d ", i);
                strcat(big, w);
        }
        q = kb_fts_query(big);
        unsigned quotes = 0;
        for (char *p = q; *p; p++)
                quotes += *p == '"';
        ck_assert_uint_eq(quotes, 2 * KB_MAX_QUERY_TERMS);
        free(q);
}
END_TEST

START_TEST(test_spelling_variant) {
        char b[32];
#define V(w, am, out)                                                                                       \
        ck_assert_uint_eq(spelling_variant(w, strlen(w), am, b, sizeof b), strlen(out));                    \
        if (*(out))                                                                                         \
        ck_assert_str_eq(b, out)
        V("licence", 0, "license");
        V("licences", 1, "licenses");
        V("license", 0, "licence");
        V("license", 1, "");  /* American already */
        V("licensed", 0, ""); /* the British verb is spelt with s too */
        V("neighbours", 1, "neighbors");
        V("haemorrhage", 1, "hemorrhage");
        V("organisation", 1, "organization");
        V("organism", 1, ""); /* not an -ise word */
        V("judgement", 1, "judgment");
        V("colour", 1, "color");
        V("col", 1, "");
        V("Colour", 1, ""); /* lower case only */
#undef V
        ck_assert_uint_eq(spelling_variant("haemorrhage", 11, 1, b, 5), 0); /* does not fit */
}
END_TEST

START_TEST(test_hostile_queries) {
        Kb *kb = open_kb();
        ck_assert_int_eq(ingest_str(kb, "bp", doc_bp), 1);
        ck_assert_int_eq(ingest_str(kb, "git", doc_git), 1);

        static const char *const hostile[] = {
                "",
                "\"",
                "\"\"\"",
                "\"blood",
                "blood\" OR \"git",
                "NEAR(blood pressure)",
                "NEAR(blood pressure, 2)",
                "blood AND pressure",
                "blood OR",
                "AND",
                "NOT blood",
                "blood NOT git",
                "text:blood",
                "{text}: blood",
                "-text:blood",
                "blood*",
                "*",
                "^blood",
                "(blood",
                "blood)",
                "((((()))))",
                "'; DROP TABLE documents; --",
                "\\ \\\\ \x01\x02",
                "bl\xff\xfeood \xc3",
                "\xed\xa0\x80 surrogate",
                "+ - : ; , . @ # $ % & | ~ `",
        };
        for (size_t i = 0; i < ELEMENTSOF(hostile); i++) {
                KbHit *hits = NULL;
                size_t n = 0;
                ck_assert_msg(kb_search(kb, hostile[i], 5, &hits, &n) == 0, "query %zu failed", i);
                kb_hits_free(hits, n);
        }

        /* their words still match */
        KbHit *hits = NULL;
        size_t n = 0;
        ck_assert_int_eq(kb_search(kb, "NEAR(blood pressure)", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(hits[0].title, "bp");
        kb_hits_free(hits, n);

        /* 100 KB query */
        size_t big_len = 100 * 1024;
        char *big = malloc(big_len + 1);
        for (size_t i = 0; i < big_len; i++)
                big[i] = "blood \"NEAR( *^:"[i % 16];
        big[big_len] = 0;
        ck_assert_int_eq(kb_search(kb, big, 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        kb_hits_free(hits, n);
        memset(big, 'a', big_len);
        ck_assert_int_eq(kb_search(kb, big, 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 0);
        free(big);

        /* the database is intact afterwards */
        ck_assert_int_eq(kb_count(kb), 2);
        kb_close(kb);
}
END_TEST

START_TEST(test_non_utf8_document) {
        Kb *kb = open_kb();
        static const char bad[] = "Caf\xe9 au lait \xff\xfe overlong \xc0\xaf and nul\0byte, then pressure.";
        ck_assert_int_eq(kb_ingest(kb, "bad\xff", NULL, bad, sizeof bad - 1, NULL), 1);
        KbHit *hits = NULL;
        size_t n = 0;
        ck_assert_int_eq(kb_search(kb, "pressure", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(hits[0].title, "bad\xef\xbf\xbd");
        ck_assert_str_eq(hits[0].source, "");
        ck_assert_ptr_nonnull(
                strstr(hits[0].text, "Caf\xef\xbf\xbd au lait \xef\xbf\xbd\xef\xbf\xbd overlong"));
        ck_assert_ptr_nonnull(strstr(hits[0].text, "nul byte"));
        kb_hits_free(hits, n);
        kb_close(kb);
}
END_TEST

START_TEST(test_limits) {
        Kb *kb = open_kb();
        ck_assert_int_eq(kb_ingest(kb, "", NULL, "x", 1, NULL), -EINVAL);
        ck_assert_int_eq(kb_ingest(kb, NULL, NULL, "x", 1, NULL), -EINVAL);
        ck_assert_int_eq(kb_ingest(kb, "t", NULL, "", 0, NULL), -EINVAL);
        ck_assert_int_eq(kb_ingest(kb, "t", NULL, " \n\t ", 4, NULL), -EINVAL);
        char title[KB_MAX_TITLE_BYTES + 2];
        memset(title, 't', sizeof title - 1);
        title[sizeof title - 1] = 0;
        ck_assert_int_eq(kb_ingest(kb, title, NULL, "x", 1, NULL), -EINVAL);
        title[KB_MAX_TITLE_BYTES] = 0;
        ck_assert_int_eq(kb_ingest(kb, title, NULL, "x", 1, NULL), 1);
        /* -E2BIG is decided on the length, before reading the text */
        static const char small[] = "x";
        ck_assert_int_eq(kb_ingest(kb, "big", NULL, small, (size_t) KB_MAX_DOCUMENT_BYTES + 1, NULL),
                         -E2BIG);
        KbChunkOpts bad = {.chunk_size = 10, .overlap = 0};
        ck_assert_int_eq(kb_ingest(kb, "t", NULL, "abc", 3, &bad), -EINVAL);
        ck_assert_int_eq(kb_count(kb), 1);
        kb_close(kb);
}
END_TEST

START_TEST(test_crash_mid_ingest) {
        Kb *kb = open_kb();
        KbChunkOpts o = {.chunk_size = 100, .overlap = 0};
        size_t len = 5000;
        char *v1 = malloc(len + 1), *v2 = malloc(len + 1);
        for (size_t i = 0; i < len; i++) {
                v1[i] = "alpha beta gamma "[i % 17];
                v2[i] = "omega delta zeta "[i % 17];
        }
        v1[len] = v2[len] = 0;
        int n1 = kb_ingest(kb, "doc", NULL, v1, len, &o);
        ck_assert_int_gt(n1, 10);
        kb_close(kb);

        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                Kb *k = NULL;
                if (kb_open(dbpath, 0, &k) < 0)
                        _exit(1);
                kb_test_crash_after_chunks = 5;
                (void) kb_ingest(k, "doc", NULL, v2, len, &o);
                _exit(2); /* not reached: the hook exits with 77 */
        }
        int status = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 77);

        kb = open_kb();
        ck_assert_int_eq(kb_count(kb), 1);
        KbHit *hits = NULL;
        size_t n = 0;
        ck_assert_int_eq(kb_search(kb, "omega", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 0);
        ck_assert_int_eq(kb_search(kb, "alpha", 100, &hits, &n), 0);
        ck_assert_uint_eq(n, (size_t) n1);
        kb_hits_free(hits, n);
        /* and it can still be written */
        ck_assert_int_eq(kb_ingest(kb, "doc", NULL, v2, len, &o), n1);
        kb_close(kb);
        free(v1);
        free(v2);
}
END_TEST

START_TEST(test_concurrent_reader) {
        /* WAL: a reader sees the committed state while another connection
         * holds a write transaction. */
        Kb *w = open_kb();
        ck_assert_int_eq(ingest_str(w, "bp", doc_bp), 1);
        Kb *r = NULL;
        ck_assert_int_eq(kb_open(dbpath, 1, &r), 0);
        sqlite3 *raw = NULL;
        ck_assert_int_eq(sqlite3_open(dbpath, &raw), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(raw, "BEGIN IMMEDIATE; DELETE FROM documents;", NULL, NULL, NULL),
                         SQLITE_OK);
        ck_assert_int_eq(kb_count(r), 1);
        KbHit *hits = NULL;
        size_t n = 0;
        ck_assert_int_eq(kb_search(r, "blood", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        kb_hits_free(hits, n);
        sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(raw);
        kb_close(r);
        kb_close(w);
}
END_TEST

/* The change stamp is a fingerprint of the content: two connections agree
 * on it, any write changes it; the statistics read through a connection
 * of their own equal those read through the handle. */
START_TEST(test_vocab_stamp) {
        Kb *w = open_kb();
        ck_assert_int_eq(ingest_str(w, "bp", doc_bp), 1);
        Kb *r = NULL;
        ck_assert_int_eq(kb_open(dbpath, 1, &r), 0);
        uint64_t s0 = kb_change_stamp(w);
        ck_assert_uint_ne(s0, 0);
        ck_assert_uint_eq(kb_change_stamp(r), s0);
        ck_assert_str_eq(kb_file(w), dbpath);

        KbVocab *a = NULL, *b = NULL;
        ck_assert_int_eq(kb_vocab_load(w, &a), 0);
        ck_assert_int_eq(kb_vocab_load_file(dbpath, s0, &b), 0);
        ck_assert_uint_eq(kb_vocab_stamp(a), s0);
        ck_assert_uint_eq(kb_vocab_stamp(b), s0);
        ck_assert_uint_eq(kb_vocab_chunks(a), kb_vocab_chunks(b));
        ck_assert_uint_gt(kb_vocab_df(a, "pressur"), 0); /* porter stem */
        ck_assert_uint_eq(kb_vocab_df(a, "pressur"), kb_vocab_df(b, "pressur"));
        ck_assert_uint_eq(kb_vocab_df(b, "rebas"), 0);
        /* shared tables: the last reference frees */
        ck_assert_ptr_eq(kb_vocab_ref(a), a);
        kb_vocab_free(a);
        ck_assert_uint_gt(kb_vocab_df(a, "pressur"), 0);
        kb_vocab_free(a);
        kb_vocab_free(b);

        ck_assert_int_eq(ingest_str(w, "git", doc_git), 1);
        uint64_t s1 = kb_change_stamp(r);
        ck_assert_uint_ne(s1, s0);
        ck_assert_uint_eq(kb_change_stamp(w), s1);
        ck_assert_int_eq(kb_vocab_load_file(dbpath, s1, &b), 0);
        ck_assert_uint_gt(kb_vocab_df(b, "rebas"), 0);
        kb_vocab_free(b);
        ck_assert_int_eq(kb_delete(w, "git"), 0);
        ck_assert_uint_ne(kb_change_stamp(r), s1);
        ck_assert_int_lt(kb_vocab_load_file("/nonexistent/agent.db", 1, &b), 0);
        kb_close(r);
        kb_close(w);
}
END_TEST

/* Training samples: evenly spread over a large base, every chunk of a
 * small one, each cut to the size asked for. */
START_TEST(test_sample_chunks) {
        Kb *kb = open_kb();
        char **v = NULL;
        size_t n = 0;
        ck_assert_int_eq(kb_sample_chunks(kb, 5, 100, &v, &n), 0);
        ck_assert_uint_eq(n, 0);

        /* 40 sections, one chunk each: "## Section k" then its text */
        size_t cap = 64 * 1024, len = 0;
        char *doc = malloc(cap);
        ck_assert_ptr_nonnull(doc);
        for (int k = 0; k < 40; k++)
                len += (size_t) snprintf(
                        doc + len, cap - len,
                        "## Section %d\n\nParagraph %d talks about topic%d at some length so "
                        "that it is a chunk of its own with words enough.\n\n",
                        k, k, k);
        ck_assert_int_ge(kb_ingest(kb, "many", "test", doc, len, NULL), 20);
        free(doc);
        int64_t total = kb_chunk_count(kb);
        ck_assert_int_ge(total, 20);

        ck_assert_int_eq(kb_sample_chunks(kb, 4, 24, &v, &n), 0);
        ck_assert_uint_eq(n, 4);
        for (size_t i = 0; i < n; i++) {
                ck_assert_ptr_nonnull(strstr(v[i], "many\n")); /* title, newline, text */
                ck_assert_uint_le(strlen(v[i]), strlen("many\n") + 24);
                for (size_t j = 0; j < i; j++)
                        ck_assert_str_ne(v[i], v[j]);
        }
        /* spread: the first sample is the first chunk, the last comes from the last quarter */
        ck_assert_msg(strstr(v[0], "Section 0\n"), "first sample %s", v[0]);
        int last = -1;
        const char *t = strstr(v[3], "Section ");
        if (t)
                last = atoi(t + 8);
        ck_assert_msg(last >= 25, "last sample %s", v[3]);
        strv_free_n(v, n);

        ck_assert_int_eq(kb_sample_chunks(kb, 1000, 1000, &v, &n), 0);
        ck_assert_uint_eq(n, (size_t) total);
        strv_free_n(v, n);
        kb_close(kb);
}
END_TEST

static const char doc_sections[] =
        "# Packaging guide\n\nHow to build a package.\n\n"
        "## Copyright\n\nEvery package must ship its licence terms in debian/copyright.\n\n"
        "## Maintainer scripts\n\nScripts must be idempotent and must not prompt.\n";

START_TEST(test_hit_heading) {
        Kb *kb = open_kb();
        ck_assert_int_eq(ingest_str(kb, "guide", doc_sections), 3);
        KbHit *hits = NULL;
        size_t n = 0;
        ck_assert_int_eq(kb_search(kb, "idempotent scripts", 5, &hits, &n), 0);
        ck_assert_uint_ge(n, 1);
        ck_assert_str_eq(hits[0].heading, "Packaging guide > Maintainer scripts");
        ck_assert_int_eq(strncmp(hits[0].text, "## Maintainer scripts", 21), 0);
        ck_assert_uint_eq(hits[0].chunk, 2);
        kb_hits_free(hits, n);

        /* a heading word finds its section even when the text lacks it
         * (the heading column: section path and document title) */
        ck_assert_int_eq(ingest_str(kb, "notes", "# Storage\n\nKeep it dry.\n\n# Cooking\n\nBoil water.\n"),
                         2);
        ck_assert_int_eq(kb_search_texts(kb, "cooking water", 5, &hits, &n), 0);
        ck_assert_uint_ge(n, 1);
        ck_assert_str_eq(hits[0].heading, "Cooking");
        ck_assert_str_eq(hits[0].snippet, "");
        kb_hits_free(hits, n);
        ck_assert_int_eq(kb_search(kb, "packaging", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 3); /* the title is in every chunk's heading column */
        kb_hits_free(hits, n);

        /* no heading: "" */
        ck_assert_int_eq(ingest_str(kb, "plain", "Just words about zebras."), 1);
        ck_assert_int_eq(kb_search(kb, "zebras", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(hits[0].heading, "");
        kb_hits_free(hits, n);
        kb_close(kb);
        assert_index_consistent();
}
END_TEST

START_TEST(test_stemming) {
        Kb *kb = open_kb();
        ck_assert_int_eq(ingest_str(kb, "lic", "The licensing terms of the program are permissive."), 1);
        ck_assert_int_eq(ingest_str(kb, "other", "Nothing about that here, only zebras."), 1);
        static const char *const queries[] = {"licenses", "license", "Licensed", "LICENSING"};
        for (size_t i = 0; i < ELEMENTSOF(queries); i++) {
                KbHit *hits = NULL;
                size_t n = 0;
                ck_assert_int_eq(kb_search(kb, queries[i], 5, &hits, &n), 0);
                ck_assert_msg(n == 1, "'%s' found %zu", queries[i], n);
                ck_assert_str_eq(hits[0].title, "lic");
                /* the snippet marks the word as the index matched it */
                ck_assert_ptr_nonnull(strstr(hits[0].snippet, "[licensing]"));
                kb_hits_free(hits, n);
        }
        kb_close(kb);
}
END_TEST

START_TEST(test_proximity_order) {
        /* Two chunks with the same words, the same length and the same
         * counts: the one where the query's words stand together ranks
         * first, whichever was ingested first. */
        static const char together[] =
                "Alpha beta gamma delta epsilon. The conffile upgrade prompt appears here. Zeta eta theta "
                "iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega one two.";
        static const char apart[] =
                "Alpha beta gamma conffile delta epsilon. The upgrade here appears. Zeta eta theta iota "
                "kappa "
                "lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega one two prompt.";
        ck_assert_uint_eq(strlen(together), strlen(apart));
        for (int order = 0; order < 2; order++) {
                Kb *kb = open_kb();
                ck_assert_int_eq(ingest_str(kb, order ? "apart" : "together", order ? apart : together), 1);
                ck_assert_int_eq(ingest_str(kb, order ? "together" : "apart", order ? together : apart), 1);
                KbHit *hits = NULL;
                size_t n = 0;
                ck_assert_int_eq(kb_search(kb, "conffile upgrade prompt", 5, &hits, &n), 0);
                ck_assert_uint_eq(n, 2);
                ck_assert_str_eq(hits[0].title, "together");
                ck_assert(hits[0].score > hits[1].score);
                kb_hits_free(hits, n);

                /* equal documents: ties go by chunk id, the same every time */
                ck_assert_int_eq(ingest_str(kb, "twin-a", "Quokka wombat."), 1);
                ck_assert_int_eq(ingest_str(kb, "twin-b", "Quokka wombat."), 1);
                for (int k = 0; k < 3; k++) {
                        ck_assert_int_eq(kb_search(kb, "wombat quokka", 5, &hits, &n), 0);
                        ck_assert_uint_eq(n, 2);
                        ck_assert_str_eq(hits[0].title, "twin-a");
                        ck_assert(hits[0].score == hits[1].score);
                        kb_hits_free(hits, n);
                }
                kb_close(kb);
                teardown();
                setup();
        }
}
END_TEST

typedef struct MetaCtx {
        char sha256[65];
        int64_t file_bytes, mtime, ingested_at;
        unsigned n;
} MetaCtx;

static int meta_cb(const KbDocInfo *d, void *userdata) {
        MetaCtx *c = userdata;
        snprintf(c->sha256, sizeof c->sha256, "%s", d->sha256);
        c->file_bytes = d->file_bytes;
        c->mtime = d->mtime;
        c->ingested_at = d->ingested_at;
        c->n++;
        return 0;
}

START_TEST(test_ingest_meta) {
        static const char sha[] = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        KbDocMeta m = {.sha256 = sha, .file_bytes = 1234, .mtime = 1700000000};
        Kb *kb = open_kb();
        MetaCtx c = {};

        ck_assert_int_eq(kb_ingest_meta(kb, "a/b.md", "/srv/a/b.md", doc_bp, strlen(doc_bp), NULL, &m), 1);
        ck_assert_int_eq(kb_list(kb, meta_cb, &c), 0);
        ck_assert_uint_eq(c.n, 1);
        ck_assert_str_eq(c.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        ck_assert_int_eq(c.file_bytes, 1234);
        ck_assert_int_eq(c.mtime, 1700000000);
        ck_assert_int_gt(c.ingested_at, 1700000000);

        /* replaced without metadata: unknown again */
        ck_assert_int_eq(ingest_str(kb, "a/b.md", doc_bp), 1);
        c = (MetaCtx){};
        ck_assert_int_eq(kb_list(kb, meta_cb, &c), 0);
        ck_assert_str_eq(c.sha256, "");
        ck_assert_int_eq(c.file_bytes, -1);
        ck_assert_int_eq(c.mtime, -1);

        /* a malformed digest is refused */
        m.sha256 = "abc";
        ck_assert_int_eq(kb_ingest_meta(kb, "x", NULL, "x", 1, NULL, &m), -EINVAL);
        m.sha256 = "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        ck_assert_int_eq(kb_ingest_meta(kb, "x", NULL, "x", 1, NULL, &m), -EINVAL);
        ck_assert(!kb_sha256_valid(NULL));
        ck_assert(kb_sha256_valid(sha));
        ck_assert(!kb_sha256_valid("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550"));
        kb_close(kb);
}
END_TEST

/* A version-2 database (before the file columns): migrated in place, the
 * documents kept with unknown file data, searchable as before. */
START_TEST(test_migrate_v2) {
        Kb *kb = open_kb();
        ck_assert_int_eq(ingest_str(kb, "bp.md", doc_bp), 1);
        kb_close(kb);

        sqlite3 *db = NULL;
        ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(db,
                                      "ALTER TABLE documents DROP COLUMN sha256;"
                                      "ALTER TABLE documents DROP COLUMN file_bytes;"
                                      "ALTER TABLE documents DROP COLUMN mtime;"
                                      "PRAGMA user_version = 2;",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);

        ck_assert_int_eq(kb_open(dbpath, 1, &kb), -ENOMEDIUM);
        kb = open_kb();
        MetaCtx c = {};
        ck_assert_int_eq(kb_list(kb, meta_cb, &c), 0);
        ck_assert_uint_eq(c.n, 1);
        ck_assert_str_eq(c.sha256, "");
        ck_assert_int_eq(c.file_bytes, -1);
        KbHit *hits = NULL;
        size_t n = 0;
        ck_assert_int_eq(kb_search(kb, "hypertension", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        kb_hits_free(hits, n);
        KbDocMeta m = {.sha256 = NULL, .file_bytes = 5, .mtime = 6};
        ck_assert_int_eq(kb_ingest_meta(kb, "bp.md", NULL, doc_bp, strlen(doc_bp), NULL, &m), 1);
        c = (MetaCtx){};
        ck_assert_int_eq(kb_list(kb, meta_cb, &c), 0);
        ck_assert_int_eq(c.file_bytes, 5);
        ck_assert_int_eq(c.mtime, 6);
        kb_close(kb);
        assert_index_consistent();
}
END_TEST

/* The version-1 schema as moad wrote it before sections and stemming. */
static const char schema_v1[] =
        "CREATE TABLE documents (id INTEGER PRIMARY KEY, title TEXT NOT NULL UNIQUE,"
        "  source TEXT NOT NULL DEFAULT '', bytes INTEGER NOT NULL, n_chunks INTEGER NOT NULL,"
        "  ingested_at INTEGER NOT NULL);"
        "CREATE TABLE chunks (id INTEGER PRIMARY KEY,"
        "  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
        "  idx INTEGER NOT NULL, text TEXT NOT NULL, UNIQUE (doc_id, idx));"
        "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id',"
        "  tokenize='unicode61 remove_diacritics 2');"
        "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN"
        "  INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END;"
        "CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN"
        "  INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END;"
        "CREATE TRIGGER chunks_au AFTER UPDATE ON chunks BEGIN"
        "  INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);"
        "  INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END;"
        "INSERT INTO documents VALUES (1, 'guide.md', '/srv/guide.md', 200, 3, 1700000000);"
        "INSERT INTO chunks (doc_id, idx, text) VALUES"
        "  (1, 0, '# Guide' || char(10) || char(10) || 'Intro about licensing.'),"
        "  (1, 1, 'More intro words.' || char(10) || char(10) || '## Copyright' || char(10) || char(10) ||"
        "     'Copyright notes here.'),"
        "  (1, 2, '## Scripts' || char(10) || char(10) || 'Scripts must be idempotent.');"
        "INSERT INTO documents VALUES (2, 'plain.txt', '', 30, 1, 1700000001);"
        "INSERT INTO chunks (doc_id, idx, text) VALUES (2, 0, 'Plain text about zebras.');"
        "PRAGMA user_version = 1;";

START_TEST(test_migrate_v1) {
        sqlite3 *db = NULL;
        ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(db, schema_v1, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);

        /* read-only cannot migrate: a clear refusal, the file untouched */
        Kb *kb = NULL;
        ck_assert_int_eq(kb_open(dbpath, 1, &kb), -ENOMEDIUM);
        ck_assert_ptr_null(kb);

        kb = open_kb();
        ck_assert_int_eq(kb_count(kb), 2);
        ListCtx c = {};
        ck_assert_int_eq(kb_list(kb, list_cb_any, &c), 0);
        ck_assert_uint_eq(c.n, 2);
        ck_assert_str_eq(c.titles[0], "guide.md");
        ck_assert_uint_eq(c.chunks[0], 3);

        /* the stored chunks are kept as they were, headings recomputed from
         * their text: where each chunk begins */
        KbHit *hits = NULL;
        size_t n = 0;
        ck_assert_int_eq(kb_search(kb, "idempotent", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_uint_eq(hits[0].chunk, 2);
        ck_assert_str_eq(hits[0].heading, "Guide > Scripts");
        kb_hits_free(hits, n);
        ck_assert_int_eq(kb_search(kb, "more intro words", 5, &hits, &n), 0);
        ck_assert_uint_ge(n, 1);
        ck_assert_uint_eq(hits[0].chunk, 1);
        ck_assert_str_eq(hits[0].heading, "Guide");
        kb_hits_free(hits, n);
        /* rebuilt index: stemmed */
        ck_assert_int_eq(kb_search(kb, "licenses", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(hits[0].heading, "Guide");
        kb_hits_free(hits, n);
        ck_assert_int_eq(kb_search(kb, "zebra", 5, &hits, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(hits[0].heading, "");
        kb_hits_free(hits, n);

        /* and it is an ordinary version-3 database from now on */
        ck_assert_int_eq(ingest_str(kb, "guide.md", doc_sections), 3);
        ck_assert_int_eq(kb_delete(kb, "plain.txt"), 0);
        ck_assert_int_eq(kb_count(kb), 1);
        kb_close(kb);
        assert_index_consistent();
        ck_assert_int_eq(kb_open(dbpath, 1, &kb), 0);
        kb_close(kb);
        kb = open_kb(); /* reopening does not migrate again */
        ck_assert_int_eq(kb_count(kb), 1);
        kb_close(kb);
}
END_TEST

static int info_cb(const KbDocInfo *d, void *userdata) {
        KbDocInfo *out = userdata;
        *out = *d;
        out->title = strdup(d->title);
        out->source = strdup(d->source);
        out->sha256 = strdup(d->sha256);
        return 0;
}

/* kb_document_chunks() and kb_ingest_chunks(), what --migrate-knowledge
 * moves documents with: the chunks arrive as they were cut, searchable,
 * with the document's metadata. */
START_TEST(test_move_chunks) {
        Kb *a = open_kb(), *b = NULL;
        char **t = NULL, **h = NULL, **t2 = NULL, **h2 = NULL;
        size_t n = 0, n2 = 0;
        KbChunkOpts small = {.chunk_size = 200, .overlap = 40};
        KbDocMeta meta = {.sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                          .file_bytes = 777,
                          .mtime = 1700000000};
        int k = kb_ingest_meta(a, "bp", "/src/bp.md", doc_bp, strlen(doc_bp), &small, &meta);
        ck_assert_int_gt(k, 1);
        ck_assert_int_eq(kb_document_chunks(a, "bp", &t, &h, &n), 0);
        ck_assert_uint_eq(n, (size_t) k);
        ck_assert_int_eq(kb_document_chunks(a, "absent", &t2, &h2, &n2), -ENOENT);

        ck_assert_int_eq(kb_open(":memory:", 0, &b), 0);
        KbDocInfo d = {};
        ck_assert_int_eq(kb_list(a, info_cb, &d), 0);
        ck_assert_int_eq(kb_ingest_chunks(b, &d, t, h, n), (int) n);
        ck_assert_int_eq(kb_ingest_chunks(b, &d, t, h, 0), -EINVAL);
        KbDocInfo bad = d;
        bad.sha256 = "xyz";
        ck_assert_int_eq(kb_ingest_chunks(b, &bad, t, h, n), -EINVAL);

        KbDocInfo e = {};
        ck_assert_int_eq(kb_list(b, info_cb, &e), 0);
        ck_assert_str_eq(e.title, "bp");
        ck_assert_str_eq(e.source, "/src/bp.md");
        ck_assert_str_eq(e.sha256, meta.sha256);
        ck_assert_uint_eq(e.n_chunks, d.n_chunks);
        ck_assert_uint_eq(e.bytes, d.bytes);
        ck_assert_int_eq(e.file_bytes, 777);
        ck_assert_int_eq(e.mtime, 1700000000);
        ck_assert_int_eq(kb_document_chunks(b, "bp", &t2, &h2, &n2), 0);
        ck_assert_uint_eq(n2, n);
        for (size_t i = 0; i < n; i++) {
                ck_assert_str_eq(t2[i], t[i]);
                ck_assert_str_eq(h2[i], h[i]);
        }
        KbHit *hits = NULL;
        size_t nh = 0;
        ck_assert_int_eq(kb_search(b, "blood pressure", 3, &hits, &nh), 0);
        ck_assert_uint_gt(nh, 0);
        ck_assert_str_eq(hits[0].title, "bp");
        kb_hits_free(hits, nh);

        strv_free_n(t, n);
        strv_free_n(h, n);
        strv_free_n(t2, n2);
        strv_free_n(h2, n2);
        free((char *) d.title), free((char *) d.source), free((char *) d.sha256);
        free((char *) e.title), free((char *) e.source), free((char *) e.sha256);
        kb_close(b);
        kb_close(a);
}
END_TEST

/* The query's terms as PostgreSQL's to_tsvector() gives them, computed in
 * moad (kb-pg-terms.c). The expected lists are the server's own (PostgreSQL
 * 15, 'english' and 'french'), but where its parser keeps a compound and
 * where the router's function-word filter drops more. */
static void assert_pg_terms(const char *lang, struct sb_stemmer *st, const char *q, const char *want) {
        char **v = NULL;
        size_t n = 0;
        char got[512] = "";
        ck_assert_int_eq(kb_pg_terms(lang, st, q, 32, &v, &n), 0);
        for (size_t i = 0, o = 0; i < n; i++)
                o += (size_t) snprintf(got + o, sizeof(got) - o, "%s%s", i ? " " : "", v[i]);
        strv_free_n(v, n);
        ck_assert_str_eq(got, want);
}

START_TEST(test_pg_terms) {
        struct sb_stemmer *en = sb_stemmer_new(kb_pg_stemmer_name("english"), "UTF_8");
        struct sb_stemmer *fr = sb_stemmer_new(kb_pg_stemmer_name("french"), "UTF_8");
        ck_assert_ptr_nonnull(en);
        ck_assert_ptr_nonnull(fr);
        ck_assert_ptr_null(kb_pg_stemmer_name("simple"));
        ck_assert_ptr_null(kb_pg_stemmer_name("klingon"));
        assert_pg_terms("english", en, "Can my landlord keep my deposit for normal wear and tear?",
                        "landlord keep deposit normal wear tear");
        assert_pg_terms("english", en, "My kernel panics after a driver update",
                        "kernel panic driver updat");
        assert_pg_terms("english", en, "landlord's tenants' Kündigung résumé naïve",
                        "landlord tenant kündigung résumé naïv");
        /* the server keeps "quel": the router leaves function words out as well */
        assert_pg_terms("french", fr, "Quelle est la durée du préavis pour un appartement?",
                        "dur préav appart");
        /* a compound: its parts only (the server also keeps "blood-pressur") */
        assert_pg_terms("english", en, "Is ibuprofen safe with blood-pressure medication?",
                        "ibuprofen safe blood pressur medic");
        /* capitals of Latin-1 fold; no stemmer ("simple") keeps the words */
        assert_pg_terms("simple", NULL, "ÉTUDE Étude gplv3 GPLv3 2024", "étude gplv3 2024");
        /* hostile input: never an error, never more than asked */
        assert_pg_terms("english", en, "\xff\xfe \"\" '' -- ;; ", "");
        char **v = NULL;
        size_t n = 0;
        ck_assert_int_eq(kb_pg_terms("english", en, "alpha beta gamma delta", 2, &v, &n), 0);
        ck_assert_uint_eq(n, 2);
        strv_free_n(v, n);
        ck_assert_int_eq(kb_pg_terms("english", en, NULL, 2, &v, &n), -EINVAL);
        ck_assert_int_eq(kb_pg_terms("english", en, "x", 0, &v, &n), -EINVAL);
        sb_stemmer_delete(en);
        sb_stemmer_delete(fr);
}
END_TEST

/* A count is published for the loop by the handle that counts and by a
 * write through any handle to the same file; a read begun before a write
 * cannot publish over it. */
START_TEST(test_known_count) {
        Kb *loop = NULL, *worker = NULL;
        ck_assert_int_eq(kb_open(dbpath, 0, &loop), 0);
        ck_assert_int_eq(kb_known_count(loop), -1);
        ck_assert_int_eq(kb_count(loop), 0);
        ck_assert_int_eq(kb_known_count(loop), 0);

        ck_assert_int_eq(kb_open(dbpath, 0, &worker), 0);
        ck_assert_int_gt(kb_ingest(worker, "a", "", "Some text.", 10, NULL), 0);
        ck_assert_int_eq(kb_known_count(loop), 1);
        ck_assert_int_gt(kb_ingest(worker, "b", "", "More text.", 10, NULL), 0);
        ck_assert_int_eq(kb_known_count(loop), 2);
        ck_assert_int_eq(kb_delete(worker, "a"), 0);
        ck_assert_int_eq(kb_known_count(loop), 1);

        KbStats *st = kb_stats(loop);
        ck_assert_ptr_eq(st, kb_stats(worker));
        uint64_t gen = kb_stats_generation(st);
        kb_stats_changed(st); /* a write committed after that read began */
        kb_stats_set_docs(st, gen, 7);
        ck_assert_int_eq(kb_known_count(loop), 1);
        kb_close(worker);
        kb_close(loop);

        /* an in-memory database shares nothing */
        Kb *mem = NULL;
        ck_assert_int_eq(kb_open(":memory:", 0, &mem), 0);
        ck_assert_ptr_null(kb_stats(mem));
        ck_assert_int_eq(kb_known_count(mem), -1);
        kb_close(mem);
}
END_TEST

static Suite *kb_suite(void) {
        Suite *s = suite_create("kb");
        TCase *tc = tcase_create("core");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_schema);
        tcase_add_test(tc, test_ingest_replace_delete);
        tcase_add_test(tc, test_list);
        tcase_add_test(tc, test_search_ranking_snippets);
        tcase_add_test(tc, test_fts_query);
        tcase_add_test(tc, test_spelling_variant);
        tcase_add_test(tc, test_hostile_queries);
        tcase_add_test(tc, test_non_utf8_document);
        tcase_add_test(tc, test_limits);
        tcase_add_test(tc, test_crash_mid_ingest);
        tcase_add_test(tc, test_concurrent_reader);
        tcase_add_test(tc, test_hit_heading);
        tcase_add_test(tc, test_stemming);
        tcase_add_test(tc, test_proximity_order);
        tcase_add_test(tc, test_migrate_v1);
        tcase_add_test(tc, test_ingest_meta);
        tcase_add_test(tc, test_migrate_v2);
        tcase_add_test(tc, test_vocab_stamp);
        tcase_add_test(tc, test_sample_chunks);
        tcase_add_test(tc, test_move_chunks);
        tcase_add_test(tc, test_pg_terms);
        tcase_add_test(tc, test_known_count);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(kb_suite());
}
