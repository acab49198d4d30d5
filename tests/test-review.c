/* The builtin's extractive review (extract_review, extract_review_merge)
 * and the findings parser of review reports (review_findings): severity is
 * the count of the agent's focus phrases, nothing else; findings from
 * several agents merge; hostile report lines are not findings. */
#include <check.h>

#include "check-main.h"

#include "extract.h"
#include "review.h"
#include "util.h"

static const char CONTRACT[] =
        "# Terms\n\nThe supplier's liability is limited to the fees paid. Either party "
        "may terminate with notice; termination for breach is immediate and liability "
        "for negligence stays. The office is in Leeds.";
static const char KNOW[] = "Limitation clauses cap liability in business contracts. Cats are mammals.";

START_TEST(test_severity_is_term_count) {
        KbHit hits[] = {{.title = (char *) "c.md",
                         .source = (char *) "",
                         .chunk = 0,
                         .score = 1,
                         .snippet = (char *) "",
                         .text = (char *) CONTRACT,
                         .heading = (char *) ""},
                        {.title = (char *) "k.md",
                         .source = (char *) "",
                         .chunk = 2,
                         .score = 1,
                         .snippet = (char *) "",
                         .text = (char *) KNOW,
                         .heading = (char *) ""}};
        char *r = extract_review("liability, terminate, negligence, termination", hits, 2, 1, NULL);
        ck_assert_ptr_nonnull(r);
        /* 4 phrases: high; 1: low; the Leeds sentence has none */
        ck_assert_ptr_nonnull(
                strstr(r, "- [high] Either party may terminate with notice; termination for "
                          "breach is immediate and liability for negligence stays [1]. "
                          "Knowledge: Limitation clauses cap liability in business contracts [2]."));
        ck_assert_ptr_nonnull(
                strstr(r, "- [low] The supplier's liability is limited to the fees paid [1]."));
        ck_assert_ptr_null(strstr(r, "Leeds"));
        ck_assert_ptr_nonnull(strstr(r, "\nSources:\n[1] c.md, chunk 0\n[2] k.md, chunk 2\n"));
        ExtractProposal props[] = {{.agent = "legal", .text = r, .weight = 1},
                                   {.agent = "finance#2", .text = r, .weight = 0.5}};
        char *m = extract_review_merge(props, 2);
        ck_assert_ptr_nonnull(m);
        /* the same finding from both agents: once, naming both */
        ck_assert_ptr_nonnull(strstr(m, "- [high] (legal, finance) Either party"));
        ck_assert_ptr_nonnull(strstr(m, "[1] c.md, chunk 0 (legal)\n[2] k.md, chunk 2 (legal)\n"));
        json_t *f = review_findings(m);
        ck_assert_uint_eq(json_array_size(f), 2);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(f, 0), "severity")), "high");
        ck_assert_uint_eq(json_array_size(json_object_get(json_array_get(f, 0), "agents")), 2);
        json_decref(f);
        free(m);
        free(r);
        /* no focus, nothing found: one sentence, no finding line */
        r = extract_review("", hits, 2, 1, &(ExtractOptions){.agent = "legal"});
        ck_assert_str_eq(r, "The legal review found no passage of the attached documents in its field.");
        free(r);
}
END_TEST

START_TEST(test_findings_parser) {
        json_t *f = review_findings("Intro\n- [medium] (a, b) Text [1][22].\n- [urgent] no\n- [low] plain\n"
                                    "- [high]\n- [high] (unclosed x [3]\n\nSources:\n[1] x, chunk 0\n");
        ck_assert_uint_eq(json_array_size(f), 3);
        json_t *a = json_array_get(f, 0);
        ck_assert_str_eq(json_string_value(json_object_get(a, "text")), "Text [1][22].");
        ck_assert_uint_eq(json_array_size(json_object_get(a, "citations")), 2);
        ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(a, "citations"), 1)), 22);
        ck_assert_uint_eq(json_array_size(json_object_get(json_array_get(f, 1), "agents")), 0);
        json_decref(f);
        f = review_findings(NULL);
        ck_assert_uint_eq(json_array_size(f), 0);
        json_decref(f);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("review");
        TCase *tc = tcase_create("review");
        tcase_add_test(tc, test_severity_is_term_count);
        tcase_add_test(tc, test_findings_parser);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
