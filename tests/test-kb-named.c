/* test-kb-named.c — documents a question names by title (kb-named.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check-main.h"
#include "kb-named.h"

START_TEST(test_title_named) {
        /* versions written joined, apart, with "v" or a trailing ".0" */
        ck_assert_int_eq(kb_title_named("GPL-3", "gplv3 modified source: what must it say?"), 1);
        ck_assert_int_eq(kb_title_named("GPL-3", "Is GPL 3.0 ok for SaaS?"), 1);
        ck_assert_int_eq(kb_title_named("Apache-2.0", "Apache 2 patent clause"), 1);
        ck_assert_int_eq(kb_title_named("LGPL-2.1", "an LGPL v2.1 library"), 1);
        /* another licence of the family is not this one */
        ck_assert_int_eq(kb_title_named("GPL-3", "LGPLv3 attribution"), 0);
        ck_assert_int_eq(kb_title_named("GPL-3", "GPLv2 only"), 0);
        ck_assert_int_eq(kb_title_named("LGPL-2.1", "LGPL 2"), 0);
        /* path and extension do not count, stop-words need not be there */
        ck_assert_int_eq(kb_title_named("contracts/the-acme-nda.md", "What does the Acme NDA say on term?"),
                         1);
        ck_assert_int_eq(kb_title_named("contracts/acme-nda.md", "What does our NDA say on term?"), 0);
        /* a title without a name of two letters, or too long, is never named */
        ck_assert_int_eq(kb_title_named("2024", "revenue in 2024"), 0);
        ck_assert_int_eq(kb_title_named("a b c d e f g h i", "a b c d e f g h i"), 0);
        ck_assert_int_eq(kb_title_named("", "anything"), 0);
        ck_assert_int_eq(kb_title_named(NULL, "anything"), 0);
        /* case and accents: ASCII folds, the rest compares as written */
        ck_assert_int_eq(kb_title_named("Café-Policy.txt", "the café policy on tips"), 1);
}
END_TEST

static KbHit hit(const char *title, unsigned chunk, double score) {
        return (KbHit){.title = strdup(title),
                       .source = strdup(""),
                       .chunk = chunk,
                       .score = score,
                       .snippet = strdup(""),
                       .text = strdup("text"),
                       .heading = strdup("")};
}

START_TEST(test_prefer_named) {
        KbHit *h = calloc(4, sizeof *h);
        ck_assert_ptr_nonnull(h);
        h[0] = hit("guide.md", 1, 10);
        h[1] = hit("guide.md", 2, 9);
        h[2] = hit("GPL-3", 7, 3);
        h[3] = hit("MIT", 0, 1);
        size_t n = kb_hits_prefer_named("does the GPLv3 allow this?", h, 4, 3);
        ck_assert_uint_eq(n, 3);
        /* 3 x KB_NAMED_BOOST beats 10 */
        ck_assert_str_eq(h[0].title, "GPL-3");
        ck_assert_double_eq(h[0].score, 3 * KB_NAMED_BOOST);
        ck_assert_str_eq(h[1].title, "guide.md");
        ck_assert_uint_eq(h[1].chunk, 1);
        ck_assert_uint_eq(h[2].chunk, 2);
        ck_assert_ptr_null(h[3].title); /* freed */
        kb_hits_free(h, n);

        /* nothing named: the order stays */
        h = calloc(2, sizeof *h);
        h[0] = hit("a.md", 0, 2);
        h[1] = hit("b.md", 0, 2);
        ck_assert_uint_eq(kb_hits_prefer_named("unrelated question", h, 2, 5), 2);
        ck_assert_str_eq(h[0].title, "a.md");
        ck_assert_double_eq(h[0].score, 2);
        kb_hits_free(h, 2);
}
END_TEST

START_TEST(test_named_globs_and_join) {
        KbHit *h = calloc(3, sizeof *h);
        char *globs[KB_NAMED_MAX];

        h[0] = hit("guide.md", 0, 5);
        h[1] = hit("odd*[name]?.txt", 2, 4);
        h[2] = hit("odd*[name]?.txt", 3, 3);
        ck_assert_int_eq(kb_hits_named_globs("guide", h, 3, globs), 1);
        ck_assert_str_eq(globs[0], "guide.md");
        kb_named_globs_free(globs, 1);
        /* metacharacters bracketed, each title once */
        ck_assert_int_eq(kb_hits_named_globs("odd name", h, 3, globs), 1);
        ck_assert_str_eq(globs[0], "odd[*][[]name][?].txt");
        kb_named_globs_free(globs, 1);
        ck_assert_int_eq(kb_hits_named_globs("nothing here", h, 3, globs), 0);

        KbHit *more = calloc(2, sizeof *more);
        more[0] = hit("odd*[name]?.txt", 2, 9); /* already there */
        more[1] = hit("odd*[name]?.txt", 5, 8);
        int n = kb_hits_join(&h, 3, more, 2);
        ck_assert_int_eq(n, 4);
        ck_assert_uint_eq(h[3].chunk, 5);
        ck_assert_double_eq(h[1].score, 4); /* the first one's stays */
        kb_hits_free(h, (size_t) n);
}
END_TEST

static Suite *kb_named_suite(void) {
        Suite *s = suite_create("kb-named");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_title_named);
        tcase_add_test(tc, test_prefer_named);
        tcase_add_test(tc, test_named_globs_and_join);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(kb_named_suite());
}
