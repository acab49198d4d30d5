/* test-stream-review.c — plugin review on a streamed answer: what leaves
 * is always reviewed text, and the stream ends with the reviewed answer
 * (a notice the review puts first comes last). */
#include "check-main.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "stream-review.h"

/* A review like the shipped plugins': digits redacted, an emergency notice
 * first when "chest pain" appears anywhere, a disclaimer last. */
static int review_like_plugins(void *userdata, const char *text, char **ret) {
        size_t n = strlen(text);
        char *body = strdup(text);
        (void) userdata;
        for (size_t i = 0; i < n; i++)
                if (isdigit((unsigned char) body[i]))
                        body[i] = '#';
        const char *notice = strstr(text, "chest pain") ? "NOTICE: call emergency services.\n\n" : "";
        if (asprintf(ret, "%s%s\n\nDISCLAIMER.", notice, body) < 0)
                *ret = NULL;
        free(body);
        return *ret ? 0 : -1;
}

/* A review that rewords the first word once the text grows past 40 bytes. */
static int review_rewrites(void *userdata, const char *text, char **ret) {
        (void) userdata;
        *ret = strdup(text);
        if (*ret && strlen(text) > 40 && strncmp(text, "Short", 5) == 0)
                memcpy(*ret, "Brief", 5);
        return *ret ? 0 : -1;
}

/* Feed @answer in @step-byte deltas; returns everything emitted, in order. */
static char *stream(StreamReviewFn fn, const char *answer, size_t step, int *ret_changed, char **ret_full) {
        StreamReview *s = NULL;
        size_t cap = 8192, len = 0;
        char *out = calloc(1, cap);
        ck_assert_int_eq(stream_review_new(fn, NULL, &s), 0);
        for (size_t off = 0; off < strlen(answer); off += step) {
                char *emit = NULL;
                size_t n = strlen(answer + off) < step ? strlen(answer + off) : step;
                ck_assert_int_eq(stream_review_feed(s, answer + off, n, &emit), 0);
                if (emit) {
                        /* released text is reviewed text: no digit, no notice mid-stream */
                        ck_assert_msg(strpbrk(emit, "0123456789") == NULL, "unreviewed digit in '%s'", emit);
                        ck_assert_ptr_null(strstr(emit, "DISCLAIMER"));
                        len += (size_t) snprintf(out + len, cap - len, "%s", emit);
                        free(emit);
                }
        }
        char *emit = NULL;
        *ret_changed = stream_review_finish(s, answer, &emit, ret_full);
        ck_assert_int_ge(*ret_changed, 0);
        len += (size_t) snprintf(out + len, cap - len, "%s", emit);
        free(emit);
        stream_review_free(s);
        return out;
}

START_TEST(test_redaction_and_disclaimer) {
        const char *a = "Call 555 1234 for help. Rest and drink water.\nSee a doctor within 3 days. Done.";
        for (size_t step = 1; step <= 9; step += 4) {
                int changed;
                char *full = NULL, *out = stream(review_like_plugins, a, step, &changed, &full);
                ck_assert_int_eq(changed, 0);
                ck_assert_str_eq(
                        out, "Call ### #### for help. Rest and drink water.\nSee a doctor within # days. "
                             "Done.\n\nDISCLAIMER.");
                ck_assert_str_eq(full, out);
                free(out);
                free(full);
        }
}
END_TEST

START_TEST(test_notice_comes_last) {
        /* text is released once two reviews agree, so the notice that
         * arrives with the third sentence finds two sentences already sent */
        const char *a =
                "Blood pressure is often silent. It rises with age. With chest pain, this is an emergency. "
                "Rest.";
        int changed;
        char *full = NULL, *out = stream(review_like_plugins, a, 3, &changed, &full);
        ck_assert_int_eq(changed, 0);
        ck_assert_str_eq(out,
                         "Blood pressure is often silent. It rises with age. With chest pain, this is an "
                         "emergency. Rest.\n\nDISCLAIMER.\n\nNOTICE: call emergency services.");
        ck_assert_str_eq(full, out);
        free(out);
        free(full);
}
END_TEST

/* A notice due from the first sentence on leads the stream, as unstreamed. */
START_TEST(test_early_notice_first) {
        const char *a = "Chest pain first. Then more. And the end.";
        const char *b = "With chest pain, go now. Then more. And the end.";
        int changed;
        char *full = NULL, *out = stream(review_like_plugins, a, 4, &changed, &full);
        ck_assert_str_eq(out, "Chest pain first. Then more. And the end.\n\nDISCLAIMER.");
        free(out);
        free(full);
        out = stream(review_like_plugins, b, 4, &changed, &full);
        ck_assert_str_eq(out, "NOTICE: call emergency services.\n\nWith chest pain, go now. Then more. And "
                              "the end.\n\nDISCLAIMER.");
        free(out);
        free(full);
}
END_TEST

/* A review that changes released text: the stream stops at what was
 * reviewed, says so, and never shows the unreviewed rest. */
START_TEST(test_rewrite_stops) {
        const char *a = "Short one. Another short one. A third sentence that is long.";
        int changed;
        char *full = NULL, *out = stream(review_rewrites, a, 5, &changed, &full);
        ck_assert_int_eq(changed, 1);
        ck_assert_str_eq(out, "Short one. ");
        ck_assert_str_eq(full, out);
        free(out);
        free(full);
}
END_TEST

START_TEST(test_bounds) {
        StreamReview *s = NULL;
        char *emit = NULL;
        ck_assert_int_eq(stream_review_new(NULL, NULL, &s), -EINVAL);
        ck_assert_int_eq(stream_review_new(review_like_plugins, NULL, &s), 0);
        char *big = malloc(STREAM_REVIEW_MAX_BYTES + 1);
        memset(big, 'a', STREAM_REVIEW_MAX_BYTES + 1);
        ck_assert_int_eq(stream_review_feed(s, big, STREAM_REVIEW_MAX_BYTES + 1, &emit), -E2BIG);
        ck_assert_ptr_null(emit);
        free(big);
        stream_review_free(s);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("stream-review");
        TCase *tc = tcase_create("stream-review");
        tcase_add_test(tc, test_redaction_and_disclaimer);
        tcase_add_test(tc, test_notice_comes_last);
        tcase_add_test(tc, test_early_notice_first);
        tcase_add_test(tc, test_rewrite_stops);
        tcase_add_test(tc, test_bounds);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
