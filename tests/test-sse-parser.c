/* test-sse-parser.c — unit tests of daemon/sse-parser.c: line endings,
 * fields, comments, joins, [DONE], limits, and that every way of cutting
 * the input into pieces yields the same events. */
#include <check.h>

#include "check-main.h"

#include "sse-parser.h"
#include "util.h"

/* Records events as "event|id|data|done;" so whole streams compare as one string. */
typedef struct Rec {
        char out[8192];
        size_t n;
        int fail_at; /* return -ECANCELED from the n-th event (1-based), 0 = never */
} Rec;

static int rec_cb(void *userdata, const SseEvent *ev) {
        Rec *r = userdata;
        size_t used = strlen(r->out);

        ck_assert_uint_eq(strlen(ev->data), ev->data_len);
        snprintf(r->out + used, sizeof r->out - used, "%s|%s|%s|%d;", ev->event, ev->id, ev->data, ev->done);
        r->n++;
        if (r->fail_at > 0 && (int) r->n == r->fail_at)
                return -ECANCELED;
        return 0;
}

/* Feed @s in pieces of @chunk bytes (0: all at once), then finish. */
static int run(const char *s, size_t chunk, size_t max_line, size_t max_event, Rec *rec) {
        SseParser *p = NULL;
        size_t len = strlen(s);
        int r;

        memset(rec, 0, sizeof *rec);
        ck_assert_int_eq(sse_parser_new(max_line, max_event, rec_cb, rec, &p), 0);
        if (chunk == 0)
                chunk = len ? len : 1;
        for (size_t i = 0; i < len; i += chunk) {
                r = sse_parser_feed(p, s + i, MIN(chunk, len - i));
                if (r < 0)
                        goto out;
        }
        r = sse_parser_finish(p);
out:
        sse_parser_free(p);
        return r;
}

/* Every chunk size from 1 to the whole length must give @expect. */
static void check_all_chunkings(const char *s, const char *expect) {
        Rec rec;
        size_t len = strlen(s);

        for (size_t chunk = 0; chunk <= len; chunk++) {
                ck_assert_int_eq(run(s, chunk, 0, 0, &rec), 0);
                ck_assert_msg(streq(rec.out, expect), "chunk %zu: got '%s' want '%s'", chunk, rec.out,
                              expect);
        }
}

START_TEST(test_simple) {
        check_all_chunkings("data: hello\n\n", "||hello|0;");
        check_all_chunkings("data: a\n\ndata: b\n\n", "||a|0;||b|0;");
}
END_TEST

START_TEST(test_line_endings) {
        check_all_chunkings("data: a\r\n\r\ndata: b\r\rdata: c\n\n", "||a|0;||b|0;||c|0;");
        /* A "\r\n" split across two feeds is one line end, not two (which would dispatch early). */
        check_all_chunkings("data: a\r\ndata: b\r\n\r\n", "||a\nb|0;");
        /* Mixed endings inside one event. */
        check_all_chunkings("data: x\rdata: y\ndata: z\r\n\n", "||x\ny\nz|0;");
}
END_TEST

START_TEST(test_split_crlf_explicit) {
        SseParser *p = NULL;
        Rec rec = {};

        ck_assert_int_eq(sse_parser_new(0, 0, rec_cb, &rec, &p), 0);
        ck_assert_int_eq(sse_parser_feed(p, "data: a\r", 8), 0);
        ck_assert_uint_eq(rec.n, 0);
        ck_assert_int_eq(sse_parser_feed(p, "\n", 1), 0);
        ck_assert_uint_eq(rec.n, 0); /* still no blank line */
        ck_assert_int_eq(sse_parser_feed(p, "\r", 1), 0);
        ck_assert_uint_eq(rec.n, 1);
        ck_assert_int_eq(sse_parser_feed(p, "\n", 1), 0); /* belongs to the previous \r */
        ck_assert_uint_eq(rec.n, 1);
        ck_assert_str_eq(rec.out, "||a|0;");
        ck_assert_uint_eq(sse_parser_events(p), 1);
        sse_parser_free(p);
}
END_TEST

START_TEST(test_comments_keepalive) {
        check_all_chunkings(": keep-alive\n\n", "");
        check_all_chunkings(":\n\n: ping\r\n\r\ndata: x\n: in between\ndata: y\n\n", "||x\ny|0;");
}
END_TEST

START_TEST(test_multiline_data) {
        check_all_chunkings("data: one\ndata: two\ndata:three\n\n", "||one\ntwo\nthree|0;");
        /* Empty data lines contribute empty lines. */
        check_all_chunkings("data\ndata:\ndata: z\n\n", "||\n\nz|0;");
}
END_TEST

START_TEST(test_fields) {
        check_all_chunkings("event: delta\nid: 7\ndata: x\n\n", "delta|7|x|0;");
        /* The event name resets per event; the last id persists (spec). */
        check_all_chunkings("event: a\nid: 1\ndata: x\n\ndata: y\n\n", "a|1|x|0;|1|y|0;");
        /* Unknown fields and retry: are ignored. */
        check_all_chunkings("retry: 100\nfoo: bar\ndata: z\n\n", "||z|0;");
        /* An event without data is not dispatched. */
        check_all_chunkings("event: lonely\n\ndata: q\n\n", "||q|0;");
}
END_TEST

START_TEST(test_space_rules) {
        /* Only one space after the colon is stripped. */
        check_all_chunkings("data:  two spaces\n\n", "|| two spaces|0;");
        check_all_chunkings("data:nospace\n\n", "||nospace|0;");
        /* The value may contain colons. */
        check_all_chunkings("data: {\"a\":\"b:c\"}\n\n", "||{\"a\":\"b:c\"}|0;");
}
END_TEST

START_TEST(test_done) {
        check_all_chunkings("data: {\"x\":1}\n\ndata: [DONE]\n\n", "||{\"x\":1}|0;||[DONE]|1;");
        /* Only exactly "[DONE]" is the marker. */
        check_all_chunkings("data: [DONE] \n\n", "||[DONE] |0;");
}
END_TEST

START_TEST(test_finish_unterminated) {
        /* EOF without the final blank line still yields the event. */
        check_all_chunkings("data: a\n\ndata: tail", "||a|0;||tail|0;");
        check_all_chunkings("data: tail\n", "||tail|0;");
        check_all_chunkings("", "");
}
END_TEST

START_TEST(test_bom) {
        check_all_chunkings("\xEF\xBB\xBF"
                            "data: b\n\n",
                            "||b|0;");
        /* A partial BOM is not a BOM: the bytes stay. The line becomes an unknown field. */
        check_all_chunkings("\xEF\xBB"
                            "data: b\n\ndata: c\n\n",
                            "||c|0;");
        /* Only at the start. */
        check_all_chunkings("data: \xEF\xBB\xBFx\n\n", "||\xEF\xBB\xBFx|0;");
}
END_TEST

START_TEST(test_line_limit) {
        Rec rec;
        char buf[200];

        /* Exactly at the limit: "data: " + 10 bytes = 16. */
        ck_assert_int_eq(run("data: 0123456789\n\n", 0, 16, 0, &rec), 0);
        ck_assert_str_eq(rec.out, "||0123456789|0;");
        /* One past it, fed whole or byte by byte. */
        ck_assert_int_eq(run("data: 0123456789x\n\n", 0, 16, 0, &rec), -E2BIG);
        ck_assert_int_eq(run("data: 0123456789x\n\n", 1, 16, 0, &rec), -E2BIG);
        ck_assert_uint_eq(rec.n, 0);
        /* A long line without any line end errors before it ends. */
        memset(buf, 'a', sizeof buf - 1);
        buf[sizeof buf - 1] = 0;
        ck_assert_int_eq(run(buf, 7, 100, 0, &rec), -E2BIG);
}
END_TEST

START_TEST(test_event_limit) {
        Rec rec;

        /* 3 lines of 4 joined: 4+1+4+1+4 = 14. */
        ck_assert_int_eq(run("data: aaaa\ndata: bbbb\ndata: cccc\n\n", 0, 0, 14, &rec), 0);
        ck_assert_int_eq(run("data: aaaa\ndata: bbbb\ndata: cccc\n\n", 1, 0, 13, &rec), -E2BIG);
        ck_assert_uint_eq(rec.n, 0);
        /* The limit is per event: many small events are fine. */
        ck_assert_int_eq(run("data: aaaa\n\ndata: bbbb\n\ndata: cccc\n\n", 3, 0, 5, &rec), 0);
        ck_assert_uint_eq(rec.n, 3);
}
END_TEST

START_TEST(test_sticky_error_and_reset) {
        SseParser *p = NULL;
        Rec rec = {};

        ck_assert_int_eq(sse_parser_new(8, 0, rec_cb, &rec, &p), 0);
        ck_assert_int_eq(sse_parser_feed(p, "data: 123456789\n", 16), -E2BIG);
        ck_assert_int_eq(sse_parser_feed(p, "data: x\n\n", 9), -E2BIG);
        ck_assert_int_eq(sse_parser_finish(p), -E2BIG);
        ck_assert_uint_eq(rec.n, 0);
        sse_parser_reset(p);
        ck_assert_int_eq(sse_parser_feed(p, "data: x\n\n", 9), 0);
        ck_assert_str_eq(rec.out, "||x|0;");
        sse_parser_free(p);
}
END_TEST

START_TEST(test_callback_error) {
        Rec rec;

        memset(&rec, 0, sizeof rec);
        SseParser *p = NULL;
        rec.fail_at = 2;
        ck_assert_int_eq(sse_parser_new(0, 0, rec_cb, &rec, &p), 0);
        ck_assert_int_eq(sse_parser_feed(p, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27), -ECANCELED);
        ck_assert_uint_eq(rec.n, 2);
        ck_assert_int_eq(sse_parser_feed(p, "data: 4\n\n", 9), -ECANCELED);
        ck_assert_uint_eq(rec.n, 2);
        sse_parser_free(p);
}
END_TEST

START_TEST(test_args) {
        SseParser *p = NULL;
        Rec rec = {};

        ck_assert_int_eq(sse_parser_new(0, 0, NULL, NULL, &p), -EINVAL);
        ck_assert_int_eq(sse_parser_new(0, 0, rec_cb, &rec, &p), 0);
        ck_assert_int_eq(sse_parser_feed(p, NULL, 3), -EINVAL);
        ck_assert_int_eq(sse_parser_feed(p, NULL, 0), 0);
        ck_assert_ptr_null(sse_parser_free(p));
        ck_assert_ptr_null(sse_parser_free(NULL));
}
END_TEST

START_TEST(test_openai_stream) {
        /* A realistic OpenAI stream with keep-alive comments and CRLF. */
        const char *s = ": OPENROUTER PROCESSING\r\n\r\n"
                        "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n"
                        "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\r\n\r\n"
                        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\r\n\r\n"
                        "data: [DONE]\r\n\r\n";
        check_all_chunkings(s, "||{\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}|0;"
                               "||{\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}|0;"
                               "||{\"choices\":[],\"usage\":{\"prompt_tokens\":3}}|0;"
                               "||[DONE]|1;");
}
END_TEST

static Suite *sse_suite(void) {
        Suite *s = suite_create("sse-parser");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_simple);
        tcase_add_test(tc, test_line_endings);
        tcase_add_test(tc, test_split_crlf_explicit);
        tcase_add_test(tc, test_comments_keepalive);
        tcase_add_test(tc, test_multiline_data);
        tcase_add_test(tc, test_fields);
        tcase_add_test(tc, test_space_rules);
        tcase_add_test(tc, test_done);
        tcase_add_test(tc, test_finish_unterminated);
        tcase_add_test(tc, test_bom);
        tcase_add_test(tc, test_line_limit);
        tcase_add_test(tc, test_event_limit);
        tcase_add_test(tc, test_sticky_error_and_reset);
        tcase_add_test(tc, test_callback_error);
        tcase_add_test(tc, test_args);
        tcase_add_test(tc, test_openai_stream);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(sse_suite());
}
