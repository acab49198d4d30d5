/* chat-request.c — see chat-request.h. */
#include <jansson.h>
#include <math.h>

#include "chat-request.h"
#include "util.h"

static int fail(ChatRequestError *err, unsigned status, const char *param, const char *code, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

static int fail(ChatRequestError *err, unsigned status, const char *param, const char *code, const char *fmt,
                ...) {
        va_list ap;

        err->status = status;
        err->param = param;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

ChatRequest *chat_request_free(ChatRequest *r) {
        if (!r)
                return NULL;
        free(r->model);
        for (size_t i = 0; i < r->n_messages; i++) {
                free(r->messages[i].role);
                free(r->messages[i].content);
        }
        free(r->messages);
        for (size_t i = 0; i < r->n_agents; i++)
                free(r->agents[i]);
        free(r->agents);
        free(r);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(ChatRequest *, chat_request_free);

static const char *const roles[] = {"system", "user", "assistant", "tool", "developer"};

static int role_valid(const char *role) {
        for (size_t i = 0; i < ELEMENTSOF(roles); i++)
                if (streq(roles[i], role))
                        return 1;
        return 0;
}

/* content: a string, or an array of parts of which text parts are joined
 * with newlines (other part types, e.g. images, are refused). */
static int parse_content(json_t *c, size_t idx, const LimitsConfig *limits, char **ret,
                         ChatRequestError *err) {
        if (json_is_null(c)) {
                *ret = strdup("");
                return *ret ? 0 : -ENOMEM;
        }
        if (json_is_string(c)) {
                if (json_string_length(c) > limits->max_message_bytes)
                        return fail(err, 413, "messages", "message_too_large",
                                    "messages[%zu].content exceeds the limit of %llu bytes", idx,
                                    (unsigned long long) limits->max_message_bytes);
                *ret = strndup(json_string_value(c), json_string_length(c));
                return *ret ? 0 : -ENOMEM;
        }
        if (json_is_array(c)) {
                size_t total = 0, i;
                json_t *part;
                char *buf;

                json_array_foreach(c, i, part) {
                        json_t *t = json_object_get(part, "text");
                        const char *type = json_string_value(json_object_get(part, "type"));
                        if (!json_is_object(part) || !type || !streq(type, "text") || !json_is_string(t))
                                return fail(err, 400, "messages", "invalid_content",
                                            "messages[%zu].content[%zu] must be a text part", idx, i);
                        total += json_string_length(t) + 1;
                }
                if (total > limits->max_message_bytes)
                        return fail(err, 413, "messages", "message_too_large",
                                    "messages[%zu].content exceeds the limit of %llu bytes", idx,
                                    (unsigned long long) limits->max_message_bytes);
                buf = malloc(total + 1);
                if (!buf)
                        return -ENOMEM;
                buf[0] = 0;
                size_t off = 0;
                json_array_foreach(c, i, part) {
                        json_t *t = json_object_get(part, "text");
                        if (off)
                                buf[off++] = '\n';
                        memcpy(buf + off, json_string_value(t), json_string_length(t));
                        off += json_string_length(t);
                }
                buf[off] = 0;
                *ret = buf;
                return 0;
        }
        return fail(err, 400, "messages", "invalid_type",
                    "messages[%zu].content must be a string or an array", idx);
}

static int parse_messages(json_t *msgs, const LimitsConfig *limits, ChatRequest *r, ChatRequestError *err) {
        size_t i, n_user = 0;
        json_t *m;

        if (!msgs)
                return fail(err, 400, "messages", "missing_required_parameter", "'messages' is required");
        if (!json_is_array(msgs))
                return fail(err, 400, "messages", "invalid_type", "'messages' must be an array");
        if (json_array_size(msgs) == 0)
                return fail(err, 400, "messages", "empty_array", "'messages' must not be empty");
        if (json_array_size(msgs) > limits->max_messages)
                return fail(err, 400, "messages", "too_many_messages", "'messages' has more than %u entries",
                            limits->max_messages);

        r->messages = calloc(json_array_size(msgs), sizeof *r->messages);
        if (!r->messages)
                return -ENOMEM;

        json_array_foreach(msgs, i, m) {
                json_t *role = json_object_get(m, "role");
                int k;

                if (!json_is_object(m))
                        return fail(err, 400, "messages", "invalid_type", "messages[%zu] must be an object",
                                    i);
                if (!json_is_string(role))
                        return fail(err, 400, "messages", "invalid_type",
                                    "messages[%zu].role must be a string", i);
                if (!role_valid(json_string_value(role)))
                        return fail(err, 400, "messages", "invalid_value",
                                    "messages[%zu].role '%.32s' is not one of system, user, assistant, "
                                    "tool, developer",
                                    i, json_string_value(role));
                r->messages[i].role = strdup(json_string_value(role));
                r->n_messages = i + 1;
                if (!r->messages[i].role)
                        return -ENOMEM;
                k = parse_content(json_object_get(m, "content"), i, limits, &r->messages[i].content, err);
                if (k < 0)
                        return k;
                if (streq(r->messages[i].role, "user"))
                        n_user++;
        }
        if (n_user == 0)
                return fail(err, 400, "messages", "missing_user_message", "'messages' has no user message");
        if (isempty(chat_request_query(r)))
                return fail(err, 400, "messages", "empty_content", "the last user message is empty");
        return 0;
}

static int parse_moa(json_t *moa, ChatRequest *r, ChatRequestError *err) {
        json_t *agents, *v;

        if (!moa || json_is_null(moa))
                return 0;
        if (!json_is_object(moa))
                return fail(err, 400, "moa", "invalid_type", "'moa' must be an object");
        r->has_moa = 1;

        agents = json_object_get(moa, "agents");
        if (agents && !json_is_null(agents)) {
                size_t i;
                json_t *a;

                if (!json_is_array(agents))
                        return fail(err, 400, "moa.agents", "invalid_type",
                                    "'moa.agents' must be an array of names");
                if (json_array_size(agents) > CHAT_MAX_PINNED_AGENTS)
                        return fail(err, 400, "moa.agents", "too_many_agents",
                                    "'moa.agents' has more than %u names", CHAT_MAX_PINNED_AGENTS);
                r->agents = calloc(json_array_size(agents) + 1, sizeof(char *));
                if (!r->agents)
                        return -ENOMEM;
                json_array_foreach(agents, i, a) {
                        if (!json_is_string(a) || json_string_length(a) == 0 || json_string_length(a) > 128)
                                return fail(err, 400, "moa.agents", "invalid_type",
                                            "'moa.agents[%zu]' must be a non-empty agent name", i);
                        r->agents[r->n_agents] = strdup(json_string_value(a));
                        if (!r->agents[r->n_agents++])
                                return -ENOMEM;
                }
        }
        v = json_object_get(moa, "trace");
        if (v && !json_is_boolean(v))
                return fail(err, 400, "moa.trace", "invalid_type", "'moa.trace' must be a boolean");
        r->trace = json_is_true(v);
        v = json_object_get(moa, "trace_content");
        if (v && !json_is_boolean(v))
                return fail(err, 400, "moa.trace_content", "invalid_type",
                            "'moa.trace_content' must be a boolean");
        r->trace_content = json_is_true(v);
        v = json_object_get(moa, "progress");
        if (v && !json_is_boolean(v))
                return fail(err, 400, "moa.progress", "invalid_type", "'moa.progress' must be a boolean");
        r->progress = json_is_true(v);
        v = json_object_get(moa, "layers");
        if (v) {
                if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 8)
                        return fail(err, 400, "moa.layers", "invalid_value",
                                    "'moa.layers' must be an integer 1..8");
                r->layers = (unsigned) json_integer_value(v);
        }
        return 0;
}

int chat_request_parse(const char *body, size_t len, const LimitsConfig *limits, ChatRequest **ret,
                       ChatRequestError *err) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(chat_request_freep) ChatRequest *r = NULL;
        json_error_t jerr;
        json_t *v;
        int k;

        memset(err, 0, sizeof *err);
        if (len == 0)
                return fail(err, 400, NULL, "invalid_json", "request body is empty");
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return fail(err, 400, NULL, "invalid_json", "malformed JSON at line %d column %d: %s",
                            jerr.line, jerr.column, jerr.text);
        if (!json_is_object(root))
                return fail(err, 400, NULL, "invalid_json", "request body must be a JSON object");

        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->temperature = -1;

        /* No model (or null): the caller applies its default pipeline. */
        v = json_object_get(root, "model");
        if (v && !json_is_null(v)) {
                if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 256)
                        return fail(err, 400, "model", "invalid_type", "'model' must be a non-empty string");
                r->model = strdup(json_string_value(v));
                if (!r->model)
                        return -ENOMEM;
        }

        k = parse_messages(json_object_get(root, "messages"), limits, r, err);
        if (k < 0)
                return k;

        v = json_object_get(root, "stream");
        if (v && !json_is_null(v)) {
                if (!json_is_boolean(v))
                        return fail(err, 400, "stream", "invalid_type", "'stream' must be a boolean");
                r->stream = json_is_true(v);
        }
        v = json_object_get(root, "stream_options");
        if (v && !json_is_null(v)) {
                json_t *iu = json_object_get(v, "include_usage");
                if (!json_is_object(v))
                        return fail(err, 400, "stream_options", "invalid_type",
                                    "'stream_options' must be an object");
                if (iu && !json_is_boolean(iu))
                        return fail(err, 400, "stream_options.include_usage", "invalid_type",
                                    "'stream_options.include_usage' must be a boolean");
                r->include_usage = json_is_true(iu);
        }
        v = json_object_get(root, "temperature");
        if (v && !json_is_null(v)) {
                if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 2 ||
                    !isfinite(json_number_value(v)))
                        return fail(err, 400, "temperature", "invalid_value",
                                    "'temperature' must be a number 0..2");
                r->temperature = json_number_value(v);
        }
        v = json_object_get(root, "max_completion_tokens");
        if (!v || json_is_null(v))
                v = json_object_get(root, "max_tokens");
        if (v && !json_is_null(v)) {
                if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
                        return fail(err, 400, "max_tokens", "invalid_value",
                                    "'max_tokens' must be an integer 1..1000000");
                r->max_tokens = json_integer_value(v);
        }
        v = json_object_get(root, "n");
        if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 1))
                return fail(err, 400, "n", "unsupported_value", "only 'n': 1 is supported");

        k = parse_moa(json_object_get(root, "moa"), r, err);
        if (k < 0)
                return k;

        *ret = TAKE_PTR(r);
        return 0;
}

const char *chat_request_query(const ChatRequest *r) {
        for (size_t i = r->n_messages; i > 0; i--)
                if (streq(r->messages[i - 1].role, "user"))
                        return r->messages[i - 1].content;
        return NULL;
}
