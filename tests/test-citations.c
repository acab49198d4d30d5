/* Structured citations of an answer (daemon/citations.c): the builtin
 * provider's quotes traced to their passages, a model's answer cited by
 * the passages its prompt showed, and hostile answers. The extractive
 * round trip (extract_answer() then citations_build()) is checked on real
 * text, so a change of the builtin's output format breaks this test. */
#include <check.h>

#include "check-main.h"

#include "citations.h"
#include "extract.h"
#include "util.h"

static const char LEASE[] =
        "# Lease\n\nThe tenant pays the **rent** on the first day of each month. A landlord must return "
        "the deposit\nwithin thirty days after the tenancy ends. Late rent costs a fee of ten pounds.";

static const CitePassage passages[] = {
        {.agent = "legal",
         .number = 1,
         .title = "lease.md",
         .source = "/srv/lease.md",
         .chunk = 0,
         .text = LEASE},
        {.agent = "finance",
         .number = 1,
         .title = "fees, chunk 2.md",
         .source = "",
         .chunk = 3,
         .text = "A late fee is a charge for paying after the due date."},
};

static json_t *cite(const char *answer, int extractive) {
        json_t *a = citations_build(answer, passages, ELEMENTSOF(passages), extractive);
        ck_assert_ptr_nonnull(a);
        ck_assert(json_is_array(a));
        return a;
}

static const char *quote(json_t *a, size_t i) {
        return json_string_value(json_object_get(json_array_get(a, i), "quote"));
}

START_TEST(test_quotes_and_sources) {
        json_t *a = cite("The tenant pays the **rent** on the first day of each month [1]. A late fee is a "
                         "charge for paying after the due date [2].\n\nSources:\n[1] lease.md, chunk 0 "
                         "(legal)\n[2] fees, chunk 2.md, chunk 3 (finance#2)\n\nNot legal advice [1].",
                         1);
        ck_assert_uint_eq(json_array_size(a), 2);
        ck_assert_str_eq(quote(a, 0), "The tenant pays the **rent** on the first day of each month");
        json_t *c = json_array_get(a, 0);
        ck_assert_int_eq(json_integer_value(json_object_get(c, "number")), 1);
        ck_assert_str_eq(json_string_value(json_object_get(c, "agent")), "legal");
        ck_assert_str_eq(json_string_value(json_object_get(c, "document")), "lease.md");
        ck_assert_str_eq(json_string_value(json_object_get(c, "source")), "/srv/lease.md");
        ck_assert_int_eq(json_integer_value(json_object_get(c, "chunk")), 0);
        ck_assert(json_is_false(json_object_get(c, "attached")));
        /* a title with ", chunk " in it, a self-MoA agent name */
        c = json_array_get(a, 1);
        ck_assert_str_eq(json_string_value(json_object_get(c, "document")), "fees, chunk 2.md");
        ck_assert_str_eq(json_string_value(json_object_get(c, "agent")), "finance");
        ck_assert_str_eq(quote(a, 1), "A late fee is a charge for paying after the due date");
        json_decref(a);
}
END_TEST

START_TEST(test_wrapped_and_cut) {
        /* the quote crosses the chunk's line break; a cut sentence quotes
         * what was kept; two markers on one sentence cite both */
        json_t *a =
                cite("A landlord must return the deposit within thirty days... [1][2]. Late rent costs a "
                     "fee of ten pounds! [1].\n\nSources:\n[1] lease.md, chunk 0\n[2] nothing.md, "
                     "chunk 9 (legal)\n",
                     1);
        ck_assert_uint_eq(json_array_size(a), 1 + 1);
        ck_assert_str_eq(quote(a, 0), "A landlord must return the deposit within thirty days");
        ck_assert(citation_quote_in(quote(a, 0), LEASE));
        ck_assert_ptr_null(strstr(LEASE, quote(a, 0))); /* only with white space read as one */
        /* "fee of ten pounds!" is not in the chunk, which says "pounds." */
        ck_assert(json_is_null(json_object_get(json_array_get(a, 1), "quote")));
        json_decref(a);
}
END_TEST

START_TEST(test_model_answer_and_not_found) {
        /* a model's answer: every passage shown, numbered as its prompt did */
        json_t *a = cite("The rent is due monthly [1].", 0);
        ck_assert_uint_eq(json_array_size(a), 2);
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(a, 1), "number")), 1);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 1), "agent")), "finance");
        ck_assert(json_is_null(json_object_get(json_array_get(a, 0), "quote")));
        json_decref(a);
        /* the builtin found nothing: it quotes nothing */
        a = cite("The legal knowledge base (6 documents) has no passage about \"x\".", 1);
        ck_assert_uint_eq(json_array_size(a), 0);
        json_decref(a);
        /* a model's own "Sources:" that names no passage: passages again */
        a = cite("Yes [1].\n\nSources:\n[1] https://example.org\n", 0);
        ck_assert_uint_eq(json_array_size(a), 2);
        json_decref(a);
}
END_TEST

START_TEST(test_extract_round_trip) {
        KbHit hits[] = {{.title = (char *) "lease.md",
                         .source = (char *) "/srv/lease.md",
                         .chunk = 0,
                         .score = 2,
                         .snippet = (char *) "",
                         .text = (char *) LEASE,
                         .heading = (char *) ""}};
        CitePassage p = {.agent = "legal",
                         .number = 1,
                         .title = "lease.md",
                         .source = "/srv/lease.md",
                         .text = LEASE};
        ExtractOptions o = {.agent = "legal", .max_sentences = 4};
        const char *questions[] = {"When must the landlord return the deposit?",
                                   "When does the tenant pay the rent?",
                                   "How much is the fee for late rent?"};

        for (size_t q = 0; q < ELEMENTSOF(questions); q++) {
                char *answer = extract_answer(questions[q], hits, 1, &o);
                ck_assert_ptr_nonnull(answer);
                json_t *a = citations_build(answer, &p, 1, 1);
                ck_assert_msg(json_array_size(a) >= 1, "no citation in %s", answer);
                for (size_t i = 0; i < json_array_size(a); i++) {
                        const char *qt = quote(a, i);
                        ck_assert_msg(qt, "quote %zu of %s not in its chunk", i, answer);
                        ck_assert_ptr_nonnull(strstr(answer, qt));
                        ck_assert(citation_quote_in(qt, LEASE));
                }
                json_decref(a);
                free(answer);
        }
}
END_TEST

START_TEST(test_hostile) {
        static const char *const answers[] = {"",
                                              "[1].",
                                              " [1].",
                                              "x [99999999999]. y\n\nSources:\n[1] lease.md, chunk 0\n",
                                              "\n\nSources:\n[",
                                              "Sources:\n[1] lease.md, chunk 99999999999999 (legal)",
                                              "a [1]\n\nSources:\n[1] , chunk 0 ()",
                                              "q [1].\nSources:\n[1] lease.md, chunk 0 ("};
        for (size_t i = 0; i < ELEMENTSOF(answers); i++) {
                json_t *a = cite(answers[i], 1);
                json_decref(a);
        }
        ck_assert(!citation_quote_in("", LEASE));
        ck_assert(!citation_quote_in(NULL, LEASE));
        ck_assert(citation_quote_in("deposit within", LEASE));
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("citations");
        TCase *tc = tcase_create("build");
        tcase_add_test(tc, test_quotes_and_sources);
        tcase_add_test(tc, test_wrapped_and_cut);
        tcase_add_test(tc, test_model_answer_and_not_found);
        tcase_add_test(tc, test_extract_round_trip);
        tcase_add_test(tc, test_hostile);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
