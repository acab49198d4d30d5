/* test-client-output.c — Check suite for moactl's pure helpers: the text
 * tables (padding by characters, not bytes; cutting; control characters
 * from the daemon neutralised), the tolerant JSON getters, and the bounded
 * reads of daemon/file-read.c. */
#include <check.h>

#include "check-main.h"
#include <fcntl.h>
#include <sys/stat.h>

#include "file-read.h"
#include "utf8.h"
#include "moactl.h"

/* Render @t into a string (caller frees). */
static char *render(const Table *t, size_t max_width) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        ck_assert_ptr_nonnull(f);
        table_print(t, f, max_width);
        fclose(f);
        return buf;
}

START_TEST(test_table_pads_columns) {
        static const char *const headers[] = {"NAME", "SCORE", "REASON"};
        static const char *const row1[] = {"legal", "0.71", "contract"};
        static const char *const row2[] = {"medical", NULL, ""};
        _cleanup_(table_freep) Table *t = table_new(3, headers);
        _cleanup_free_ char *out = NULL;

        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(table_add(t, row1), 0);
        ck_assert_int_eq(table_add(t, row2), 0);
        out = render(t, 0);
        ck_assert_str_eq(out, "NAME     SCORE  REASON\n"
                              "legal    0.71   contract\n"
                              "medical  -      \n");
}
END_TEST

START_TEST(test_table_counts_characters_not_bytes) {
        static const char *const headers[] = {"A", "B"};
        static const char *const row1[] = {"\xc3\xa9t\xc3\xa9", "x"}; /* "été": 3 characters, 5 bytes */
        static const char *const row2[] = {"abcd", "y"};
        _cleanup_(table_freep) Table *t = table_new(2, headers);
        _cleanup_free_ char *out = NULL;

        ck_assert_int_eq(table_add(t, row1), 0);
        ck_assert_int_eq(table_add(t, row2), 0);
        out = render(t, 0);
        ck_assert_str_eq(out, "A     B\n"
                              "\xc3\xa9t\xc3\xa9   x\n"
                              "abcd  y\n");
}
END_TEST

START_TEST(test_table_cuts_long_cells) {
        static const char *const headers[] = {"TEXT", "N"};
        static const char *const row[] = {"abcdefghijkl", "1"};
        _cleanup_(table_freep) Table *t = table_new(2, headers);
        _cleanup_free_ char *out = NULL;

        ck_assert_int_eq(table_add(t, row), 0);
        out = render(t, 8);
        ck_assert_str_eq(out, "TEXT      N\n"
                              "abcde...  1\n");
}
END_TEST

START_TEST(test_table_neutralises_control_characters) {
        static const char *const headers[] = {"X"};
        static const char *const row[] = {"red\x1b[31m\nline\ttab\x7f"};
        _cleanup_(table_freep) Table *t = table_new(1, headers);
        _cleanup_free_ char *out = NULL;

        ck_assert_int_eq(table_add(t, row), 0);
        out = render(t, 0);
        ck_assert_str_eq(out, "X\nred?[31m line tab?\n");
}
END_TEST

START_TEST(test_print_sanitized) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        static const char in[] = "a\x1b]0;title\x07z\n\tb\r";

        print_sanitized(f, in, sizeof(in) - 1);
        fclose(f);
        ck_assert_str_eq(buf, "a?]0;title?z\n\tb?");
        free(buf);
}
END_TEST

START_TEST(test_json_getters_tolerate_anything) {
        _cleanup_(json_decrefp) json_t *o = json_pack("{s:s, s:i, s:f, s:b, s:f, s:n}", "s", "v", "i", 7,
                                                      "r", 2.9, "b", 1, "huge", 1e300, "n");
        char buf[32];

        ck_assert_ptr_nonnull(o);
        ck_assert_str_eq(json_str(o, "s", "d"), "v");
        ck_assert_str_eq(json_str(o, "i", "d"), "d");
        ck_assert_str_eq(json_str(NULL, "s", "d"), "d");
        ck_assert_int_eq(json_int(o, "i", -1), 7);
        ck_assert_int_eq(json_int(o, "r", -1), 2);
        ck_assert_int_eq(json_int(o, "huge", -1), -1); /* no undefined cast */
        ck_assert_int_eq(json_int(o, "s", -1), -1);
        ck_assert(json_num(o, "i", 0) == 7.0);
        ck_assert(json_num(o, "n", 5) == 5.0);
        ck_assert_str_eq(json_yes_no(o, "b"), "yes");
        ck_assert_str_eq(json_yes_no(o, "s"), "-");
        json_fmt_num(buf, sizeof(buf), o, "r", 2, " ms");
        ck_assert_str_eq(buf, "2.90 ms");
        json_fmt_num(buf, sizeof(buf), o, "missing", 2, NULL);
        ck_assert_str_eq(buf, "-");
        json_fmt_num(buf, sizeof(buf), o, "huge", 0, NULL); /* truncated, not overflowed */
        ck_assert_uint_eq(strlen(buf), sizeof(buf) - 1);
}
END_TEST

static char *write_temp(const char *content, size_t len) {
        char *path = strdup("/tmp/test-client-output-XXXXXX");
        int fd;

        ck_assert_ptr_nonnull(path);
        fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, content, len), (ssize_t) len);
        close(fd);
        return path;
}

START_TEST(test_text_read_file_bounds) {
        _cleanup_free_ char *path = write_temp("0123456789", 10);
        char *text = NULL;
        size_t len = 0;

        ck_assert_int_eq(text_read_file(path, 10, &text, &len), 0);
        ck_assert_uint_eq(len, 10);
        ck_assert_str_eq(text, "0123456789");
        free(text);
        text = NULL;
        ck_assert_int_eq(text_read_file(path, 9, &text, &len), -EFBIG);
        ck_assert_ptr_null(text);
        ck_assert_int_eq(text_read_file("/", 10, &text, &len), -EISDIR);
        ck_assert_int_eq(text_read_file("/nonexistent/x", 10, &text, &len), -ENOENT);
        unlink(path);
}
END_TEST

START_TEST(test_text_read_fd_pipe_bounds) {
        int p[2];
        char *text = NULL;
        size_t len = 0;
        char block[1000];

        /* A pipe has no size to check up front: the bound must hold while reading. */
        memset(block, 'x', sizeof(block));
        ck_assert_int_eq(pipe(p), 0);
        ck_assert_int_eq(write(p[1], block, sizeof(block)), (ssize_t) sizeof(block));
        close(p[1]);
        ck_assert_int_eq(text_read_fd(p[0], 999, &text, &len), -EFBIG);
        close(p[0]);

        ck_assert_int_eq(pipe(p), 0);
        ck_assert_int_eq(write(p[1], block, sizeof(block)), (ssize_t) sizeof(block));
        close(p[1]);
        ck_assert_int_eq(text_read_fd(p[0], 1000, &text, &len), 0);
        ck_assert_uint_eq(len, 1000);
        ck_assert_uint_eq(strlen(text), 1000);
        free(text);
        close(p[0]);

        ck_assert_int_eq(pipe(p), 0);
        close(p[1]);
        ck_assert_int_eq(text_read_fd(p[0], 10, &text, &len), 0);
        ck_assert_uint_eq(len, 0);
        ck_assert_str_eq(text, "");
        free(text);
        close(p[0]);
}
END_TEST

START_TEST(test_utf8_valid) {
        static const struct {
                const char *s;
                int valid;
        } cases[] = {
                {"", 1},
                {"plain ascii", 1},
                {"\xc3\xa9t\xc3\xa9", 1}, /* été */
                {"\xe2\x82\xac", 1},      /* € */
                {"\xf0\x9f\x98\x80", 1},  /* U+1F600 */
                {"\xf4\x8f\xbf\xbf", 1},  /* U+10FFFF */
                {"\xff", 0},              /* never in UTF-8 */
                {"caf\xe9", 0},           /* Latin-1 */
                {"\xc3", 0},              /* cut */
                {"\xe2\x82", 0},          /* cut */
                {"\xc0\xaf", 0},          /* overlong '/' */
                {"\xe0\x80\xaf", 0},      /* overlong '/' */
                {"\xed\xa0\x80", 0},      /* surrogate U+D800 */
                {"\xf4\x90\x80\x80", 0},  /* U+110000 */
                {"\xe2\x28\xa1", 0},      /* bad continuation */
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                ck_assert_msg(utf8_valid(cases[i].s, strlen(cases[i].s)) == cases[i].valid, "case %zu", i);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("client-output");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_table_pads_columns);
        tcase_add_test(tc, test_table_counts_characters_not_bytes);
        tcase_add_test(tc, test_table_cuts_long_cells);
        tcase_add_test(tc, test_table_neutralises_control_characters);
        tcase_add_test(tc, test_print_sanitized);
        tcase_add_test(tc, test_json_getters_tolerate_anything);
        tcase_add_test(tc, test_text_read_file_bounds);
        tcase_add_test(tc, test_text_read_fd_pipe_bounds);
        tcase_add_test(tc, test_utf8_valid);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
