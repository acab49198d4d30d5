/* chat-response.c — see chat-response.h. */
#include "chat-response.h"
#include "json-write.h"
#include "util.h"

json_t *usage_to_json(const ProviderUsage *u) {
        return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t) u->prompt_tokens,
                         "completion_tokens", (json_int_t) u->completion_tokens, "total_tokens",
                         (json_int_t) (u->prompt_tokens + u->completion_tokens));
}

json_t *chat_completion_new(const char *id, const char *model, int64_t created, const char *content,
                            const char *finish_reason, const ProviderUsage *usage) {
        return json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:s},s:s,s:n}],s:o}", "id", id, "object",
                         "chat.completion", "created", (json_int_t) created, "model", model, "choices",
                         "index", 0, "message", "role", "assistant", "content", content, "finish_reason",
                         finish_reason ? finish_reason : "stop", "logprobs", "usage", usage_to_json(usage));
}

json_t *chat_chunk_new(const char *id, const char *model, int64_t created, const char *role,
                       const char *content, size_t content_len, const char *finish_reason) {
        json_t *delta = json_object(), *j;

        if (!delta)
                return NULL;
        if (role)
                json_object_set_new(delta, "role", json_string(role));
        if (content) {
                json_t *c = json_stringn(content, content_len);
                if (!c) {
                        json_decref(delta);
                        return NULL;
                }
                json_object_set_new(delta, "content", c);
        }
        j = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n,s:o}]}", "id", id, "object", "chat.completion.chunk",
                      "created", (json_int_t) created, "model", model, "choices", "index", 0, "delta", delta,
                      "logprobs", "finish_reason", finish_reason ? json_string(finish_reason) : json_null());
        return j;
}

json_t *chat_usage_chunk_new(const char *id, const char *model, int64_t created,
                             const ProviderUsage *usage) {
        return json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", id, "object", "chat.completion.chunk",
                         "created", (json_int_t) created, "model", model, "choices", "usage",
                         usage_to_json(usage));
}

char *sse_frame(json_t *j) {
        _cleanup_free_ char *s = NULL;
        char *out;

        if (!j)
                return NULL;
        s = json_write_compact(j, NULL);
        json_decref(j);
        if (!s)
                return NULL;
        if (asprintf(&out, "data: %s\n\n", s) < 0)
                return NULL;
        return out;
}
