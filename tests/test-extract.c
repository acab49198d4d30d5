/* test-extract.c — the builtin provider's extractive algorithms: cited
 * answers (numbering, consistency, order, limits, determinism, no-hit) and
 * the weighted, redundancy-aware aggregation. */
#include <check.h>

#include "check-main.h"

#include "extract.h"
#include "util.h"

static KbHit hit(const char *title, unsigned chunk, double score, const char *text) {
        return (KbHit){.title = (char *) title,
                       .source = (char *) "",
                       .chunk = chunk,
                       .score = score,
                       .snippet = (char *) text,
                       .text = (char *) text};
}

static size_t count_str(const char *hay, const char *needle) {
        size_t n = 0;
        for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

/* Every "[n]" in the body has a Sources line, every Sources line is cited,
 * numbers are 1..k in order of first use. Returns k. */
static unsigned check_citations(const char *out) {
        const char *src = strstr(out, "\n\nSources:\n");
        size_t body_len = src ? (size_t) (src - out) : strlen(out);
        unsigned max_seen = 0, next_new = 1;
        int used[64] = {};
        for (size_t i = 0; i < body_len; i++) {
                unsigned v;
                int n = 0;
                if (out[i] == '[' && sscanf(out + i, "[%u]%n", &v, &n) == 1 && n > 0) {
                        ck_assert_uint_ge(v, 1);
                        ck_assert_uint_lt(v, 64);
                        if (!used[v]) {
                                ck_assert_uint_eq(v, next_new); /* first use in order */
                                next_new++;
                                used[v] = 1;
                        }
                        max_seen = MAX(max_seen, v);
                }
        }
        if (max_seen == 0) {
                ck_assert_ptr_null(src);
                return 0;
        }
        ck_assert_ptr_nonnull(src);
        unsigned lines = 0;
        for (const char *p = src + strlen("\n\nSources:\n"); *p;) {
                unsigned v;
                ck_assert_int_eq(sscanf(p, "[%u]", &v), 1);
                ck_assert_uint_eq(v, ++lines);
                const char *nl = strchr(p, '\n');
                ck_assert_ptr_nonnull(nl);
                p = nl + 1;
        }
        ck_assert_uint_eq(lines, max_seen);
        return lines;
}

/* The source line for citation @n, e.g. "bp.md, chunk 0". */
static char *source_line(const char *out, unsigned n) {
        char key[16];
        snprintf(key, sizeof key, "\n[%u] ", n);
        const char *p = strstr(out, key);
        ck_assert_ptr_nonnull(p);
        p += strlen(key);
        return strndup(p, strcspn(p, "\n"));
}

/* The citation number attached to the sentence containing @needle. */
static unsigned cite_of(const char *out, const char *needle) {
        const char *p = strstr(out, needle);
        ck_assert_msg(p != NULL, "'%s' not in output:\n%s", needle, out);
        p = strchr(p, '[');
        ck_assert_ptr_nonnull(p);
        unsigned v = 0;
        ck_assert_int_eq(sscanf(p, "[%u]", &v), 1);
        return v;
}

static const char bp0[] = "# Hypertension\n\n"
                          "Hypertension means blood pressure that stays at or above 130/80 mmHg. "
                          "Most people with high blood pressure have no symptoms at all. "
                          "Dr. Smith notes that readings vary during the day, e.g. after coffee. "
                          "The heart is a muscle that pumps blood through the body.\n\n"
                          "- Treatment starts with less salt, more exercise and weight loss.\n"
                          "- Medicines such as ACE inhibitors lower blood pressure further.\n";
static const char bp1[] = "Untreated high blood pressure damages arteries, the kidneys and the eyes. "
                          "Home blood pressure monitors are useful for tracking treatment.";
static const char git0[] =
        "A git rebase rewrites commits on top of another base. Merges keep both histories.";

START_TEST(test_answer_cites_and_sources) {
        KbHit hits[] = {hit("bp.md", 0, 5.0, bp0), hit("bp.md", 1, 3.0, bp1), hit("git.md", 0, 0.5, git0)};
        char *out = extract_answer("How is high blood pressure treated?", hits, 3, 3);
        ck_assert_ptr_nonnull(out);
        unsigned k = check_citations(out);
        ck_assert_uint_ge(k, 1);
        /* the one sentence covering every query word is chosen */
        ck_assert_msg(strstr(out, "monitors are useful for tracking treatment") != NULL, "%s", out);
        ck_assert_ptr_null(strstr(out, "rebase"));
        ck_assert_ptr_null(strstr(out, "# Hypertension"));
        char *s1 = source_line(out, cite_of(out, "tracking treatment"));
        ck_assert_str_eq(s1, "bp.md, chunk 1");
        free(s1);
        /* at most 3 cited sentences */
        const char *src = strstr(out, "\n\nSources:");
        size_t body = (size_t) (src - out);
        char *b = strndup(out, body);
        ck_assert_uint_le(count_str(b, " ["), 3);
        free(b);
        free(out);

        out = extract_answer("less salt and more exercise", hits, 3, 3);
        ck_assert_msg(strstr(out, "Treatment starts with less salt, more exercise and weight loss [1].") !=
                              NULL,
                      "%s", out);
        ck_assert_ptr_null(strstr(out, "- Treatment")); /* list marker stripped */
        s1 = source_line(out, 1);
        ck_assert_str_eq(s1, "bp.md, chunk 0");
        free(s1);
        free(out);
}
END_TEST

START_TEST(test_answer_document_order_and_determinism) {
        KbHit hits[] = {hit("bp.md", 1, 5.0, bp1), hit("bp.md", 0, 4.0, bp0)};
        char *a = extract_answer("blood pressure arteries kidneys monitors salt symptoms", hits, 2, 6);
        char *b = extract_answer("blood pressure arteries kidneys monitors salt symptoms", hits, 2, 6);
        ck_assert_ptr_nonnull(a);
        ck_assert_str_eq(a, b);
        check_citations(a);
        /* chunk 0 sentences come before chunk 1 sentences although chunk 1
         * ranked first; within a chunk the original order is kept */
        const char *sym = strstr(a, "no symptoms"), *salt = strstr(a, "less salt"),
                   *art = strstr(a, "arteries");
        ck_assert_ptr_nonnull(sym);
        ck_assert_ptr_nonnull(salt);
        ck_assert_ptr_nonnull(art);
        ck_assert(sym < salt);
        ck_assert(salt < art);
        char *s = source_line(a, 1);
        ck_assert_str_eq(s, "bp.md, chunk 0");
        free(s);
        free(a);
        free(b);
}
END_TEST

START_TEST(test_answer_abbreviations) {
        KbHit hits[] = {hit("bp.md", 0, 5.0, bp0)};
        char *out = extract_answer("Dr. Smith readings coffee", hits, 1, 1);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_nonnull(
                strstr(out, "Dr. Smith notes that readings vary during the day, e.g. after coffee [1]."));
        free(out);
}
END_TEST

START_TEST(test_answer_no_hit) {
        char *out = extract_answer("anything", NULL, 0, 3);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_nonnull(strstr(out, "Nothing in this agent's knowledge base"));
        ck_assert_ptr_null(strstr(out, "Sources:"));
        free(out);

        /* hits whose sentences share no word with the question: honest
         * fallback quoting the best snippet, still cited */
        KbHit hits[] = {hit("git.md", 0, 1.0, git0)};
        out = extract_answer("zebra", hits, 1, 3);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_nonnull(strstr(out, "No sentence"));
        ck_assert_uint_eq(check_citations(out), 1);
        free(out);
}
END_TEST

START_TEST(test_answer_hostile_input) {
        static const char pat[] = "word \xff\xfe. [1] ** # \n\n- x ";
        size_t n = 200000;
        char *big = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
                big[i] = pat[i % (sizeof pat - 1)];
        big[n] = 0;
        KbHit hits[40];
        for (int i = 0; i < 40; i++)
                hits[i] = hit("t\xff", (unsigned) i, 1.0, big);
        char *out = extract_answer("word \xc3", hits, 40, 100);
        ck_assert_ptr_nonnull(out);
        free(out);
        KbHit empty = {0};
        out = extract_answer(NULL, &empty, 1, 0);
        ck_assert_ptr_nonnull(out);
        free(out);
        free(big);
}
END_TEST

START_TEST(test_aggregate_agreement_raises) {
        ExtractProposal p[] = {
                {"legal",
                 "Contracts need an offer and an acceptance to be binding. "
                 "Judges dislike vague penalty clauses in commercial leases.",
                 1.0},
                {"finance", "A binding contract needs an offer plus acceptance by the other party.", 1.0},
                {"general", "Chess is played on a board of sixty-four squares.", 1.0},
        };
        char *out = extract_aggregate("what makes a contract binding", p, 3, 1);
        ck_assert_ptr_nonnull(out);
        /* the agreed sentence wins, from legal or finance, not the penalty
         * clause sentence nor the lone chess one */
        ck_assert_msg(strstr(out, "offer") != NULL, "%s", out);
        ck_assert_ptr_null(strstr(out, "penalty"));
        ck_assert_ptr_null(strstr(out, "Chess"));
        free(out);
}
END_TEST

START_TEST(test_aggregate_weight_matters) {
        ExtractProposal p[] = {
                {"a", "Apples are grown in orchards across temperate regions.", 0.2},
                {"b", "Bananas are grown on large tropical plantations.", 0.9},
        };
        char *out = extract_aggregate("fruit", p, 2, 1);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_nonnull(strstr(out, "Bananas"));
        ck_assert_ptr_null(strstr(out, "Apples"));
        free(out);
        p[0].weight = 2.0;
        out = extract_aggregate("fruit", p, 2, 1);
        ck_assert_ptr_nonnull(strstr(out, "Apples"));
        free(out);
}
END_TEST

START_TEST(test_aggregate_no_duplicates) {
        ExtractProposal p[] = {
                {"legal",
                 "The GDPR applies to personal data of people in the EU [1].\n\nSources:\n[1] gdpr.md, "
                 "chunk 0\n",
                 1.0},
                {"code",
                 "The GDPR applies to personal data of people in the EU [1]. Logs can contain personal "
                 "data such as IP addresses [2].\n\nSources:\n[1] gdpr.md, chunk 0\n[2] logging.md, chunk "
                 "3\n",
                 0.8},
                {"medical", "The GDPR applies to the personal data of people in the EU.", 0.5},
        };
        char *out = extract_aggregate("Does GDPR apply to logs?", p, 3, 5);
        ck_assert_ptr_nonnull(out);
        ck_assert_uint_eq(count_str(out, "applies to"), 1);
        ck_assert_ptr_nonnull(strstr(out, "IP addresses"));
        check_citations(out);
        free(out);
}
END_TEST

START_TEST(test_aggregate_renumbers_citations) {
        ExtractProposal p[] = {
                {"legal",
                 "Employers must give written notice before dismissal [1]. Severance depends on the "
                 "contract and "
                 "local law [2].\n\nSources:\n[1] termination.md, chunk 0\n[2] termination.md, chunk 2\n",
                 1.0},
                {"finance",
                 "Severance pay is usually taxed as ordinary income [1].\n\nSources:\n[1] taxes.md, chunk "
                 "4\n",
                 0.9},
        };
        char *out = extract_aggregate("dismissal notice severance tax", p, 2, 5);
        ck_assert_ptr_nonnull(out);
        unsigned k = check_citations(out);
        ck_assert_uint_eq(k, 3);
        char *s;
        s = source_line(out, cite_of(out, "written notice"));
        ck_assert_str_eq(s, "termination.md, chunk 0 (legal)");
        free(s);
        s = source_line(out, cite_of(out, "local law"));
        ck_assert_str_eq(s, "termination.md, chunk 2 (legal)");
        free(s);
        s = source_line(out, cite_of(out, "ordinary income"));
        ck_assert_str_eq(s, "taxes.md, chunk 4 (finance)");
        free(s);
        /* deterministic */
        char *again = extract_aggregate("dismissal notice severance tax", p, 2, 5);
        ck_assert_str_eq(out, again);
        free(again);
        free(out);
}
END_TEST

START_TEST(test_aggregate_no_hit_and_fallbacks) {
        char *none = extract_answer("q", NULL, 0, 3);
        ExtractProposal p[] = {{"a", none, 1.0}, {"b", none, 2.0}};
        char *out = extract_aggregate("q", p, 2, 3);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_nonnull(strstr(out, "None of the consulted agents"));
        free(out);

        /* one no-hit answer does not pollute a real one */
        ExtractProposal q[] = {{"a", none, 5.0}, {"b", "Rivers flow into seas and oceans eventually.", 1.0}};
        out = extract_aggregate("rivers", q, 2, 3);
        ck_assert_ptr_nonnull(strstr(out, "Rivers flow"));
        ck_assert_ptr_null(strstr(out, "Nothing in this agent"));
        free(out);

        /* answers too short to be sentences: the heaviest is returned as is */
        ExtractProposal r[] = {{"a", "Yes", 1.0}, {"b", "No", 3.0}};
        out = extract_aggregate("q", r, 2, 3);
        ck_assert_str_eq(out, "No");
        free(out);

        out = extract_aggregate("q", NULL, 0, 3);
        ck_assert_ptr_nonnull(out);
        free(out);
        free(none);
}
END_TEST

START_TEST(test_aggregate_chains) {
        /* An aggregate of answers is itself a valid proposal (refine layers). */
        KbHit h1[] = {hit("bp.md", 0, 5.0, bp0)};
        KbHit h2[] = {hit("bp.md", 1, 5.0, bp1)};
        char *a1 = extract_answer("high blood pressure treatment", h1, 1, 3);
        char *a2 = extract_answer("high blood pressure treatment", h2, 1, 3);
        ExtractProposal p[] = {{"medical", a1, 1.0}, {"general", a2, 0.5}};
        char *l1 = extract_aggregate("high blood pressure treatment", p, 2, 4);
        check_citations(l1);
        ExtractProposal p2[] = {{"refiner", l1, 1.0}, {"medical", a1, 1.0}};
        char *l2 = extract_aggregate("high blood pressure treatment", p2, 2, 4);
        check_citations(l2);
        ck_assert_ptr_nonnull(strstr(l2, "bp.md, chunk 0"));
        /* attribution survives the layers once, not "(medical) (refiner)" */
        ck_assert_msg(strstr(l2, "bp.md, chunk 0 (medical)\n") != NULL, "%s", l2);
        ck_assert_ptr_null(strstr(l2, ") ("));
        free(a1);
        free(a2);
        free(l1);
        free(l2);
}
END_TEST

START_TEST(test_aggregate_hostile) {
        static const char pat[] = "Word [7] stuff. \xff [999] Sources:\n[1] x\n";
        size_t n = 100000;
        char *big = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
                big[i] = pat[i % (sizeof pat - 1)];
        big[n] = 0;
        ExtractProposal p[20];
        for (int i = 0; i < 20; i++)
                p[i] = (ExtractProposal){.agent = i % 2 ? NULL : "x",
                                         .text = i % 3 ? big : NULL,
                                         .weight = i % 4 ? (double) i : -1.0};
        char *out = extract_aggregate("word \xff", p, 20, 50);
        ck_assert_ptr_nonnull(out);
        free(out);
        free(big);
}
END_TEST

static Suite *extract_suite(void) {
        Suite *s = suite_create("extract");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_answer_cites_and_sources);
        tcase_add_test(tc, test_answer_document_order_and_determinism);
        tcase_add_test(tc, test_answer_abbreviations);
        tcase_add_test(tc, test_answer_no_hit);
        tcase_add_test(tc, test_answer_hostile_input);
        tcase_add_test(tc, test_aggregate_agreement_raises);
        tcase_add_test(tc, test_aggregate_weight_matters);
        tcase_add_test(tc, test_aggregate_no_duplicates);
        tcase_add_test(tc, test_aggregate_renumbers_citations);
        tcase_add_test(tc, test_aggregate_no_hit_and_fallbacks);
        tcase_add_test(tc, test_aggregate_chains);
        tcase_add_test(tc, test_aggregate_hostile);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(extract_suite());
}
