/* test-answer-type.c — the kind of answer a question asks for, and
 * sentences that have one (answer-type.c). */
#include <check.h>

#include "answer-type.h"
#include "check-main.h"

START_TEST(test_question_kinds) {
        ck_assert_int_eq(answer_type_of("How long have I got to take legal action?"), ANSWER_DURATION);
        ck_assert_int_eq(answer_type_of("deposit protection deadline England AST?"), ANSWER_DURATION);
        ck_assert_int_eq(answer_type_of("cancellation window UK?"), ANSWER_DURATION);
        ck_assert_int_eq(answer_type_of("How many days have I got to send it back?"), ANSWER_DURATION);
        ck_assert_int_eq(answer_type_of("Wie lange gilt die Kündigungsfrist?"), ANSWER_DURATION);
        ck_assert_int_eq(answer_type_of("¿Cuánto tiempo tengo?"), ANSWER_DURATION);
        ck_assert_int_eq(answer_type_of("How much money should I put away?"), ANSWER_QUANTITY);
        ck_assert_int_eq(answer_type_of("AE minimum total contribution %?"), ANSWER_QUANTITY);
        ck_assert_int_eq(answer_type_of("combien coûte un avocat ?"), ANSWER_QUANTITY);
        ck_assert_int_eq(answer_type_of("What is a security deposit?"), ANSWER_ANY);
        /* words inside other words do not count: "belong", "windows" */
        ck_assert_int_eq(answer_type_of("Does this belong to me?"), ANSWER_ANY);
        ck_assert_int_eq(answer_type_of("Windows update broke my printer"), ANSWER_ANY);
        ck_assert_int_eq(answer_type_of(NULL), ANSWER_ANY);
        ck_assert_int_eq(answer_type_of(""), ANSWER_ANY);
}
END_TEST

START_TEST(test_sentence_durations) {
        ck_assert(answer_type_matches(ANSWER_DURATION, "It must be protected within 30 days."));
        ck_assert(answer_type_matches(ANSWER_DURATION, "the Regulations give a 14-day cancellation period"));
        ck_assert(
                answer_type_matches(ANSWER_DURATION, "The limitation period is one year from publication"));
        ck_assert(answer_type_matches(ANSWER_DURATION, "give a second dose after five minutes"));
        ck_assert(answer_type_matches(ANSWER_DURATION, "Reply within 10 working days."));
        ck_assert(answer_type_matches(ANSWER_DURATION, "Marks stay for Six Years."));
        /* a number without a unit of time, a unit without a number */
        ck_assert(!answer_type_matches(ANSWER_DURATION, "Section 21 needs a valid notice."));
        ck_assert(!answer_type_matches(ANSWER_DURATION, "Payments are due every month."));
        ck_assert(!answer_type_matches(ANSWER_DURATION, "one of the days"));
        ck_assert(!answer_type_matches(ANSWER_DURATION, "GPL3 days"));
        ck_assert(!answer_type_matches(ANSWER_ANY, "within 30 days"));
}
END_TEST

START_TEST(test_sentence_quantities) {
        ck_assert(answer_type_matches(ANSWER_QUANTITY, "three to six months of essential expenses"));
        ck_assert(answer_type_matches(ANSWER_QUANTITY, "capped at 5 weeks' rent"));
        ck_assert(answer_type_matches(ANSWER_QUANTITY, "a 25% bonus"));
        ck_assert(answer_type_matches(ANSWER_QUANTITY, "costs \xc2\xa3"
                                                       "120"));
        ck_assert(!answer_type_matches(ANSWER_QUANTITY, "one of the best ways to save"));
        ck_assert(!answer_type_matches(ANSWER_QUANTITY, "Keep an emergency fund."));
        ck_assert(!answer_type_matches(ANSWER_QUANTITY, NULL));
}
END_TEST

static Suite *answer_type_suite(void) {
        Suite *s = suite_create("answer-type");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_question_kinds);
        tcase_add_test(tc, test_sentence_durations);
        tcase_add_test(tc, test_sentence_quantities);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(answer_type_suite());
}
