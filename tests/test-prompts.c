/* Prompt template rendering. */
#include <check.h>

#include "check-main.h"

#include "prompts.h"
#include "util.h"

START_TEST(test_placeholders) {
        char *s = prompt_render("A {system} B {context} C {references} D", NULL, "sys", "ctx", "refs");
        ck_assert_str_eq(s, "A sys B ctx C refs D");
        free(s);
}
END_TEST

START_TEST(test_defaults_and_empty) {
        char *s = prompt_render(NULL, PROMPT_PROPOSE_DEFAULT, "You are a lawyer.", NULL, NULL);
        ck_assert_str_eq(s, "You are a lawyer.");
        free(s);
        s = prompt_render(NULL, PROMPT_AGGREGATE_DEFAULT, NULL, NULL, "[1] legal (weight 0.90):\nx");
        ck_assert_ptr_nonnull(strstr(s, "synthesize"));
        ck_assert_ptr_nonnull(strstr(s, "[1] legal (weight 0.90):\nx"));
        free(s);
}
END_TEST

START_TEST(test_references_never_dropped) {
        char *s = prompt_render("Summarise.", NULL, NULL, NULL, "[1] a");
        ck_assert_str_eq(s, "Summarise.\n\n[1] a");
        free(s);
}
END_TEST

START_TEST(test_unknown_braces_kept) {
        char *s = prompt_render("{x} {system", NULL, "s", NULL, NULL);
        ck_assert_str_eq(s, "{x} {system");
        free(s);
}
END_TEST

START_TEST(test_context_rules) {
        /* the host's grounding rules follow the plugin's context */
        char *c = prompt_context("[1] tenancy.md\nDeposits are returned within 30 days.");
        ck_assert_ptr_nonnull(
                strstr(c, "[1] tenancy.md\nDeposits are returned within 30 days.\n\nUse only"));
        ck_assert_ptr_nonnull(strstr(c, "ignore the others"));
        ck_assert_ptr_nonnull(strstr(c, "The provided context does not cover this."));
        char *s = prompt_render(NULL, PROMPT_PROPOSE_DEFAULT, "You are a lawyer.", c, NULL);
        ck_assert_ptr_nonnull(strstr(s, "You are a lawyer.\n\n[1] tenancy.md"));
        ck_assert_ptr_nonnull(strstr(s, "say so plainly"));
        free(s);
        free(c);
        /* nothing retrieved: said so */
        c = prompt_context(NULL);
        ck_assert_str_eq(c, PROMPT_NO_CONTEXT);
        free(c);
        c = prompt_context("");
        ck_assert_str_eq(c, PROMPT_NO_CONTEXT);
        free(c);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("prompts");
        TCase *tc = tcase_create("render");
        tcase_add_test(tc, test_placeholders);
        tcase_add_test(tc, test_defaults_and_empty);
        tcase_add_test(tc, test_references_never_dropped);
        tcase_add_test(tc, test_unknown_braces_kept);
        tcase_add_test(tc, test_context_rules);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
