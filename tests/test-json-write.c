/* test-json-write.c — json_write_compact() writes exactly what
 * json_dumps(JSON_COMPACT) writes: every ASCII byte in a string, UTF-8 up
 * to four bytes, reals, integers, empty and nested containers, key order,
 * thousands of random documents; and fails where it fails (invalid UTF-8,
 * a scalar at the top). */
#include <check.h>

#include "check-main.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json-write.h"

/* Both encoders agree on @v (NULL from both counts as agreeing). */
static void same(json_t *v) {
        char *want = json_dumps(v, JSON_COMPACT);
        size_t len = 0;
        char *got = json_write_compact(v, &len);

        if (!want) {
                ck_assert_ptr_null(got);
                return;
        }
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got, want);
        ck_assert_uint_eq(len, strlen(want));
        free(want);
        free(got);
}

START_TEST(test_every_ascii_byte) {
        char s[128];
        for (int i = 0; i < 128; i++)
                s[i] = (char) i;
        json_t *v = json_pack("{s:s%,s:s}", "all", s, (size_t) 128, "plain", "no escapes at all");
        same(v);
        json_decref(v);
        /* one character that needs escaping at each end, alone, doubled */
        const char *cases[] = {"\"", "\\", "\n", "a\"", "\"a", "\x01\x1f", "\t\t", "", "/", "\x7f"};
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                v = json_pack("[s]", cases[i]);
                same(v);
                json_decref(v);
        }
}
END_TEST

START_TEST(test_utf8) {
        json_t *v = json_pack("{s:s,s:s,s:s}", "é", "café ünïcödé", "cjk", "契約違反 — “quotes”", "emoji",
                              "\xf0\x9f\x98\x80 and \xf4\x8f\xbf\xbf");
        same(v);
        json_decref(v);
        /* not UTF-8 (jansson's checks): both refuse */
        const char *bad[] = {"\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\x80", "\x80",
                             "abc\xc3",  "\xff"};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                v = json_array();
                json_array_append_new(v, json_stringn_nocheck(bad[i], strlen(bad[i])));
                same(v);
                json_decref(v);
        }
}
END_TEST

START_TEST(test_numbers_and_containers) {
        json_t *v =
                json_pack("{s:f,s:f,s:f,s:I,s:I,s:i,s:b,s:b,s:n,s:{},s:[],s:[[],{}],s:f}", "t", 0.7, "one",
                          1.0, "tiny", 1e-300, "big", (json_int_t) INT64_MAX, "neg", (json_int_t) INT64_MIN,
                          "zero", 0, "yes", 1, "no", 0, "none", "obj", "arr", "nested", "neg0", -0.0);
        same(v);
        json_decref(v);
        /* scalars at the top: json_dumps refuses them without JSON_ENCODE_ANY */
        v = json_string("x");
        same(v);
        json_decref(v);
        ck_assert_ptr_null(json_write_compact(NULL, NULL));
}
END_TEST

/* ---- random documents ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned rnd(unsigned n) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (unsigned) (rng % n);
}

static json_t *random_string(void) {
        static const char *const pieces[] = {"a",  "word ", "\"", "\\",   "\n",
                                             "\t", "\x01",  "é",  "契",   "\xf0\x9f\x98\x80",
                                             "/",  "{}",    "[",  "\x7f", " "};
        char buf[256];
        size_t len = 0;
        for (unsigned n = rnd(24); n > 0; n--) {
                const char *p = pieces[rnd(sizeof pieces / sizeof *pieces)];
                size_t l = strlen(p);
                if (len + l >= sizeof buf)
                        break;
                memcpy(buf + len, p, l);
                len += l;
        }
        return json_stringn(buf, len);
}

static json_t *random_value(unsigned depth) {
        switch (depth > 4 ? rnd(5) : rnd(7)) {
        case 0:
                return json_integer((json_int_t) rnd(1u << 31) - (1 << 30));
        case 1:
                return json_real((double) rnd(100000) / (double) (1 + rnd(1000)));
        case 2:
                return random_string();
        case 3:
                return rnd(3) == 0 ? json_null() : json_boolean(rnd(2));
        case 4:
                return json_string("");
        case 5: {
                json_t *a = json_array();
                for (unsigned n = rnd(5); n > 0; n--)
                        json_array_append_new(a, random_value(depth + 1));
                return a;
        }
        default: {
                json_t *o = json_object();
                for (unsigned n = rnd(5); n > 0; n--) {
                        json_t *k = random_string();
                        json_object_set_new(o, json_string_value(k), random_value(depth + 1));
                        json_decref(k);
                }
                return o;
        }
        }
}

START_TEST(test_random_documents) {
        for (int i = 0; i < 3000; i++) {
                json_t *v = rnd(2) ? json_object() : json_array();
                for (unsigned n = 1 + rnd(6); n > 0; n--) {
                        json_t *x = random_value(1);
                        if (json_is_object(v))
                                json_object_set_new(v, i % 2 ? "messages" : "k", x);
                        else
                                json_array_append_new(v, x);
                }
                same(v);
                json_decref(v);
        }
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("json-write");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_every_ascii_byte);
        tcase_add_test(tc, test_utf8);
        tcase_add_test(tc, test_numbers_and_containers);
        tcase_add_test(tc, test_random_documents);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
