/* Validation of chat-completions request bodies: every refusal path. */
#include <check.h>

#include "check-main.h"

#include "chat-request.h"
#include "util.h"

static const LimitsConfig limits = {
        .max_body_bytes = 1 << 20,
        .max_messages = 4,
        .max_message_bytes = 64,
};

static ChatRequest *ok(const char *body) {
        ChatRequest *r = NULL;
        ChatRequestError err;
        int k = chat_request_parse(body, strlen(body), &limits, &r, &err);
        ck_assert_msg(k == 0, "unexpected refusal: %s", err.message);
        ck_assert_ptr_nonnull(r);
        return r;
}

static void refused(const char *body, unsigned status, const char *param, const char *code) {
        ChatRequest *r = NULL;
        ChatRequestError err;
        int k = chat_request_parse(body, strlen(body), &limits, &r, &err);
        ck_assert_int_eq(k, -EINVAL);
        ck_assert_ptr_null(r);
        ck_assert_uint_eq(err.status, status);
        ck_assert_msg(err.message[0], "message must be set");
        if (param)
                ck_assert_str_eq(err.param, param);
        if (code)
                ck_assert_str_eq(err.code, code);
}

START_TEST(test_minimal) {
        ChatRequest *r = ok("{\"model\":\"moa\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
        ck_assert_str_eq(r->model, "moa");
        ck_assert_uint_eq(r->n_messages, 1);
        ck_assert_int_eq(r->stream, 0);
        ck_assert(r->temperature < 0);
        ck_assert_int_eq(r->max_tokens, 0);
        ck_assert_str_eq(chat_request_query(r), "hi");
        chat_request_free(r);
}
END_TEST

START_TEST(test_full) {
        ChatRequest *r =
                ok("{\"model\":\"moa\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                   "\"temperature\":0.5,\"max_tokens\":100,\"top_p\":1,\"user\":\"x\","
                   "\"messages\":[{\"role\":\"system\",\"content\":\"be nice\"},"
                   "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\","
                   "\"text\":\"b\"}]},"
                   "{\"role\":\"assistant\",\"content\":null},{\"role\":\"user\",\"content\":\"last\"}],"
                   "\"moa\":{\"agents\":[\"legal\",\"code\"],\"trace\":true,\"layers\":2}}");
        ck_assert_int_eq(r->stream, 1);
        ck_assert_int_eq(r->include_usage, 1);
        ck_assert(r->temperature == 0.5);
        ck_assert_int_eq(r->max_tokens, 100);
        ck_assert_uint_eq(r->n_messages, 4);
        ck_assert_str_eq(r->messages[1].content, "a\nb");
        ck_assert_str_eq(r->messages[2].content, "");
        ck_assert_str_eq(chat_request_query(r), "last");
        ck_assert_uint_eq(r->n_agents, 2);
        ck_assert_str_eq(r->agents[1], "code");
        ck_assert_int_eq(r->trace, 1);
        ck_assert_uint_eq(r->layers, 2);
        chat_request_free(r);
}
END_TEST

START_TEST(test_no_model) {
        /* No model (or null) is accepted: the daemon uses its default pipeline. */
        ChatRequest *r = ok("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}");
        ck_assert_ptr_null(r->model);
        chat_request_free(r);
        r = ok("{\"model\":null,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}");
        ck_assert_ptr_null(r->model);
        chat_request_free(r);
}
END_TEST

START_TEST(test_max_completion_tokens) {
        ChatRequest *r = ok("{\"model\":\"m\",\"max_completion_tokens\":7,\"messages\":[{\"role\":\"user\","
                            "\"content\":\"q\"}]}");
        ck_assert_int_eq(r->max_tokens, 7);
        chat_request_free(r);
}
END_TEST

START_TEST(test_refusals) {
        refused("", 400, NULL, "invalid_json");
        refused("{", 400, NULL, "invalid_json");
        refused("[]", 400, NULL, "invalid_json");
        refused("{\"model\":\"a\",\"model\":\"b\",\"messages\":[]}", 400, NULL,
                "invalid_json"); /* duplicate key */
        refused("{\"model\":\"\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", 400, "model",
                "invalid_type");
        refused("{\"model\":3,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", 400, "model",
                "invalid_type");
        refused("{\"model\":\"m\"}", 400, "messages", "missing_required_parameter");
        refused("{\"model\":\"m\",\"messages\":{}}", 400, "messages", "invalid_type");
        refused("{\"model\":\"m\",\"messages\":[]}", 400, "messages", "empty_array");
        refused("{\"model\":\"m\",\"messages\":[1]}", 400, "messages", "invalid_type");
        refused("{\"model\":\"m\",\"messages\":[{\"content\":\"q\"}]}", 400, "messages", "invalid_type");
        refused("{\"model\":\"m\",\"messages\":[{\"role\":\"god\",\"content\":\"q\"}]}", 400, "messages",
                "invalid_value");
        refused("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400, "messages",
                "invalid_type");
        refused("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]"
                "}",
                400, "messages", "invalid_content");
        refused("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"q\"}]}", 400, "messages",
                "missing_user_message");
        refused("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\"}]}", 400, "messages",
                "empty_content");
        refused("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"user\","
                "\"content\":\"q\"},"
                "{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"user\",\"content\":\"q\"},{\"role\":"
                "\"user\",\"content\":\"q\"}]}",
                400, "messages", "too_many_messages");
        refused("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                "\"0123456789012345678901234567890123456789"
                "012345678901234567890123456789\"}]}",
                413, "messages", "message_too_large");
        refused("{\"model\":\"m\",\"stream\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", 400,
                "stream", NULL);
        refused("{\"model\":\"m\",\"stream_options\":[],\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]"
                "}",
                400, "stream_options", NULL);
        refused("{\"model\":\"m\",\"temperature\":3,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
                400, "temperature", NULL);
        refused("{\"model\":\"m\",\"temperature\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]"
                "}",
                400, "temperature", NULL);
        refused("{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
                400, "max_tokens", NULL);
        refused("{\"model\":\"m\",\"max_tokens\":1.5,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
                400, "max_tokens", NULL);
        refused("{\"model\":\"m\",\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", 400, "n",
                NULL);
        refused("{\"model\":\"m\",\"moa\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", 400,
                "moa", NULL);
        refused("{\"model\":\"m\",\"moa\":{\"agents\":\"legal\"},\"messages\":[{\"role\":\"user\","
                "\"content\":\"q\"}]}",
                400, "moa.agents", NULL);
        refused("{\"model\":\"m\",\"moa\":{\"agents\":[\"\"]},\"messages\":[{\"role\":\"user\",\"content\":"
                "\"q\"}]}",
                400, "moa.agents", NULL);
        refused("{\"model\":\"m\",\"moa\":{\"trace\":\"yes\"},\"messages\":[{\"role\":\"user\",\"content\":"
                "\"q\"}]}",
                400, "moa.trace", NULL);
        refused("{\"model\":\"m\",\"moa\":{\"layers\":0},\"messages\":[{\"role\":\"user\",\"content\":\"q\"}"
                "]}",
                400, "moa.layers", NULL);
}
END_TEST

START_TEST(test_not_nul_terminated_and_invalid_utf8) {
        const char body[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}XXXX";
        ChatRequest *r = NULL;
        ChatRequestError err;
        ck_assert_int_eq(chat_request_parse(body, sizeof body - 5, &limits, &r, &err), 0);
        chat_request_free(r);
        r = NULL;
        const char bad[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}";
        ck_assert_int_eq(chat_request_parse(bad, strlen(bad), &limits, &r, &err), -EINVAL);
        ck_assert_uint_eq(err.status, 400);
        /* embedded NUL inside the JSON text is rejected by the parser */
        const char nul[] = "{\"model\":\"m\"\0,\"messages\":[]}";
        ck_assert_int_eq(chat_request_parse(nul, sizeof nul - 1, &limits, &r, &err), -EINVAL);
}
END_TEST

START_TEST(test_too_many_pins) {
        char body[4096] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"moa\":{"
                          "\"agents\":[";
        for (unsigned i = 0; i <= CHAT_MAX_PINNED_AGENTS; i++)
                strcat(body, i ? ",\"a\"" : "\"a\"");
        strcat(body, "]}}");
        refused(body, 400, "moa.agents", "too_many_agents");
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("chat-request");
        TCase *tc = tcase_create("parse");
        tcase_add_test(tc, test_minimal);
        tcase_add_test(tc, test_full);
        tcase_add_test(tc, test_max_completion_tokens);
        tcase_add_test(tc, test_no_model);
        tcase_add_test(tc, test_refusals);
        tcase_add_test(tc, test_not_nul_terminated_and_invalid_utf8);
        tcase_add_test(tc, test_too_many_pins);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
