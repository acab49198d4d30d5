/* The Batch API input file: splitting into request lines and the checks
 * an upload must pass. */
#include <check.h>

#include "batch-input.h"
#include "check-main.h"
#include "util.h"

#define GOOD(id)                                                                                            \
        "{\"custom_id\":\"" id "\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{}}"

static long check(const char *data, unsigned max_lines, uint64_t max_line, char *err, size_t n) {
        return batch_input_check(data, strlen(data), max_lines, max_line, err, n);
}

typedef struct Seen {
        size_t n;
        size_t index[8], line_no[8], len[8];
} Seen;

static int collect(void *userdata, const BatchLine *l) {
        Seen *s = userdata;

        ck_assert_uint_lt(s->n, 8);
        s->index[s->n] = l->index;
        s->line_no[s->n] = l->line_no;
        s->len[s->n] = l->len;
        s->n++;
        return 0;
}

START_TEST(test_walk_lines) {
        /* BOM, CRLF, blank lines (spaces too) and no final newline */
        const char data[] = "\xef\xbb\xbf"
                            "ab\r\n\n  \t\ncd\nef";
        Seen s = {};

        ck_assert_int_eq(batch_input_walk(data, strlen(data), collect, &s), 3);
        ck_assert_uint_eq(s.n, 3);
        ck_assert_uint_eq(s.index[0], 0);
        ck_assert_uint_eq(s.line_no[0], 1);
        ck_assert_uint_eq(s.len[0], 2); /* "\r" is not part of the line */
        ck_assert_uint_eq(s.index[1], 1);
        ck_assert_uint_eq(s.line_no[1], 4);
        ck_assert_uint_eq(s.index[2], 2);
        ck_assert_uint_eq(s.line_no[2], 5);
        ck_assert_uint_eq(s.len[2], 2);
        ck_assert_int_eq(batch_input_walk("", 0, collect, &s), 0);
}
END_TEST

START_TEST(test_check_good_and_bad) {
        char err[256];

        ck_assert_int_eq(check(GOOD("a") "\n" GOOD("b") "\n", 10, 1024, err, sizeof err), 2);
        ck_assert_int_eq(check(GOOD("a") "\n" GOOD("a"), 10, 1024, err, sizeof err), -EINVAL);
        ck_assert_str_eq(err, "line 2: custom_id \"a\" already used on line 1");
        ck_assert_int_eq(check(GOOD("a") "\n\n[1]", 10, 1024, err, sizeof err), -EINVAL);
        ck_assert_str_eq(err, "line 3: not a JSON object");
        ck_assert_int_eq(check("{\"custom_id\":\"\",\"method\":\"POST\"}", 10, 1024, err, sizeof err),
                         -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "\"custom_id\" must be a string"));
        ck_assert_int_eq(check("{\"custom_id\":\"x\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                               "\"body\":[]}",
                               10, 1024, err, sizeof err),
                         -EINVAL);
        ck_assert_str_eq(err, "line 1: \"body\" must be a JSON object");
        ck_assert_int_eq(check("{\"custom_id\":\"x\",\"custom_id\":\"y\"}", 10, 1024, err, sizeof err),
                         -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "not JSON"));
        ck_assert_int_eq(check(" \n\n", 10, 1024, err, sizeof err), -EINVAL);
        ck_assert_str_eq(err, "the file has no request lines");
}
END_TEST

START_TEST(test_check_bounds) {
        char err[256], long_line[300];

        ck_assert_int_eq(check(GOOD("a") "\n" GOOD("b") "\n" GOOD("c"), 2, 1024, err, sizeof err), -E2BIG);
        ck_assert_str_eq(err, "line 3: more than 2 requests in one file (jobs.max_lines)");
        memset(long_line, ' ', sizeof long_line - 1);
        long_line[sizeof long_line - 1] = 0;
        long_line[0] = 'x';
        ck_assert_int_eq(check(long_line, 2, 100, err, sizeof err), -E2BIG);
        ck_assert_str_eq(err, "line 1: longer than 100 bytes (jobs.max_line_bytes)");
        /* a tiny error buffer is never overrun */
        ck_assert_int_eq(check(long_line, 2, 100, err, 8), -E2BIG);
        ck_assert_uint_eq(strlen(err), 7);
}
END_TEST

START_TEST(test_line_parse) {
        const char data[] = "{\"custom_id\":\"q1\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                            "\"body\":{\"model\":\"moa\",\"stream\":true,\"stream_options\":{}}}";
        BatchLine l = {.p = data, .len = strlen(data)};
        _cleanup_free_ char *id = NULL;
        json_t *body = NULL;

        ck_assert_int_eq(batch_line_parse(&l, &id, &body), 0);
        ck_assert_str_eq(id, "q1");
        ck_assert_str_eq(json_string_value(json_object_get(body, "model")), "moa");
        ck_assert_ptr_null(json_object_get(body, "stream"));
        ck_assert_ptr_null(json_object_get(body, "stream_options"));
        json_decref(body);
        l = (BatchLine){.p = "[]", .len = 2};
        ck_assert_int_eq(batch_line_parse(&l, &id, &body), -EINVAL);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("batch-input");
        TCase *tc = tcase_create("batch-input");
        tcase_add_test(tc, test_walk_lines);
        tcase_add_test(tc, test_check_good_and_bad);
        tcase_add_test(tc, test_check_bounds);
        tcase_add_test(tc, test_line_parse);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
