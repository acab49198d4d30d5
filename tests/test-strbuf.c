/* The bounded string buffer used for upstream bodies, SSE and prompts. */
#include <check.h>

#include "check-main.h"
#include "strbuf.h"
#include "util.h"

START_TEST(test_append_and_bound) {
        StrBuf b = {};

        ck_assert_int_eq(strbuf_append(&b, "abc", 3, 8), 0);
        ck_assert_str_eq(b.p, "abc");
        ck_assert_int_eq(strbuf_append(&b, "defgh", 5, 8), 0); /* exactly the bound */
        ck_assert_str_eq(b.p, "abcdefgh");
        ck_assert_uint_eq(b.len, 8);
        ck_assert_int_eq(strbuf_append(&b, "i", 1, 8), -E2BIG); /* past it: unchanged */
        ck_assert_str_eq(b.p, "abcdefgh");
        ck_assert_int_eq(strbuf_append(&b, "x", (size_t) -1, 8), -E2BIG); /* no overflow */
        strbuf_done(&b);
        /* no bound at all (SIZE_MAX): max + 1 must not wrap the capacity to 0 */
        for (int i = 0; i < 100; i++)
                ck_assert_int_eq(strbuf_append(&b, "0123456789", 10, SIZE_MAX), 0);
        ck_assert_uint_eq(b.len, 1000);
        ck_assert_int_eq(b.p[1000], 0);
        strbuf_done(&b);
        ck_assert_ptr_null(b.p);
        ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_set_reset_binary) {
        StrBuf b = {};
        const char bin[] = {'a', 0, 'b'};

        ck_assert_int_eq(strbuf_set(&b, "hello", 5, 100), 0);
        ck_assert_int_eq(strbuf_set(&b, "hi", 2, 100), 0);
        ck_assert_str_eq(b.p, "hi");
        strbuf_reset(&b);
        ck_assert_str_eq(b.p, "");
        ck_assert_int_eq(strbuf_append(&b, bin, 3, 100), 0); /* embedded NUL kept, NUL after */
        ck_assert_uint_eq(b.len, 3);
        ck_assert_int_eq(memcmp(b.p, bin, 3), 0);
        ck_assert_int_eq(b.p[3], 0);
        for (int i = 0; i < 10000; i++)
                ck_assert_int_eq(strbuf_append(&b, "0123456789", 10, 1 << 20), 0);
        ck_assert_uint_eq(b.len, 100003);
        ck_assert_uint_le(b.cap, (1u << 20) + 1);
        strbuf_done(&b);
        strbuf_reset(&b); /* on an empty buffer: no crash */
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("strbuf");
        TCase *tc = tcase_create("strbuf");
        tcase_add_test(tc, test_append_and_bound);
        tcase_add_test(tc, test_set_reset_binary);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
