/* OpenAI response shapes and SSE framing. */
#include <check.h>

#include "check-main.h"

#include "chat-response.h"
#include "util.h"

static json_t *parse_frame(const char *frame) {
        size_t n = strlen(frame);
        ck_assert_msg(strncmp(frame, "data: ", 6) == 0, "frame starts with 'data: '");
        ck_assert_msg(n >= 8 && frame[n - 1] == '\n' && frame[n - 2] == '\n',
                      "frame ends with a blank line");
        ck_assert_msg(memchr(frame, '\n', n - 2) == NULL, "exactly one line per frame");
        json_t *j = json_loadb(frame + 6, n - 8, 0, NULL);
        ck_assert_ptr_nonnull(j);
        return j;
}

START_TEST(test_completion_shape) {
        ProviderUsage u = {.prompt_tokens = 3, .completion_tokens = 4};
        json_t *j = chat_completion_new("chatcmpl-1", "moa", 1700000000, "hello", NULL, &u);
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "chat.completion");
        ck_assert_int_eq(json_integer_value(json_object_get(j, "created")), 1700000000);
        json_t *c = json_array_get(json_object_get(j, "choices"), 0);
        ck_assert_int_eq(json_integer_value(json_object_get(c, "index")), 0);
        ck_assert_str_eq(json_string_value(json_object_get(c, "finish_reason")), "stop");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "message"), "role")),
                         "assistant");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "message"), "content")),
                         "hello");
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")),
                         7);
        json_decref(j);
}
END_TEST

START_TEST(test_chunk_frames) {
        /* Content with newlines and quotes still makes a single data line. */
        const char text[] = "line one\nline \"two\"\n\ndata: not a frame";
        char *f = sse_frame(chat_chunk_new("id", "moa", 1, NULL, text, strlen(text), NULL));
        ck_assert_ptr_nonnull(f);
        json_t *j = parse_frame(f);
        json_t *c = json_array_get(json_object_get(j, "choices"), 0);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "delta"), "content")), text);
        ck_assert(json_is_null(json_object_get(c, "finish_reason")));
        ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "chat.completion.chunk");
        json_decref(j);
        free(f);

        f = sse_frame(chat_chunk_new("id", "moa", 1, "assistant", "", 0, NULL));
        j = parse_frame(f);
        c = json_array_get(json_object_get(j, "choices"), 0);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "delta"), "role")),
                         "assistant");
        json_decref(j);
        free(f);

        f = sse_frame(chat_chunk_new("id", "moa", 1, NULL, NULL, 0, "stop"));
        j = parse_frame(f);
        c = json_array_get(json_object_get(j, "choices"), 0);
        ck_assert_str_eq(json_string_value(json_object_get(c, "finish_reason")), "stop");
        ck_assert_int_eq(json_object_size(json_object_get(c, "delta")), 0);
        json_decref(j);
        free(f);
}
END_TEST

START_TEST(test_usage_chunk) {
        ProviderUsage u = {.prompt_tokens = 10, .completion_tokens = 5};
        char *f = sse_frame(chat_usage_chunk_new("id", "moa", 1, &u));
        json_t *j = parse_frame(f);
        ck_assert_int_eq(json_array_size(json_object_get(j, "choices")), 0);
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")),
                         15);
        json_decref(j);
        free(f);
        ck_assert_str_eq(SSE_DONE, "data: [DONE]\n\n");
}
END_TEST

START_TEST(test_invalid_utf8_content) {
        /* A split multi-byte character cannot be encoded: no frame, no crash. */
        ck_assert_ptr_null(sse_frame(chat_chunk_new("id", "moa", 1, NULL, "\xe2\x82", 2, NULL)));
        ck_assert_ptr_null(sse_frame(NULL));
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("chat-response");
        TCase *tc = tcase_create("shapes");
        tcase_add_test(tc, test_completion_shape);
        tcase_add_test(tc, test_chunk_frames);
        tcase_add_test(tc, test_usage_chunk);
        tcase_add_test(tc, test_invalid_utf8_content);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
