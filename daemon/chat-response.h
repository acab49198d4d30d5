/* chat-response.h — the exact OpenAI response shapes (chat.completion,
 * chat.completion.chunk) and Server-Sent-Events framing of them. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "provider.h"

/**
 * chat_completion_new() - a non-streamed "chat.completion" object:
 * {id, object, created, model, choices:[{index, message:{role, content},
 * finish_reason}], usage:{prompt_tokens, completion_tokens, total_tokens}}.
 * Returns a new reference or NULL on OOM (or invalid UTF-8 content).
 */
json_t *chat_completion_new(const char *id, const char *model, int64_t created, const char *content,
                            const char *finish_reason, const ProviderUsage *usage);

/**
 * chat_chunk_new() - one "chat.completion.chunk": @role and/or @content go
 * into choices[0].delta (either may be NULL), @finish_reason NULL is null.
 */
json_t *chat_chunk_new(const char *id, const char *model, int64_t created, const char *role,
                       const char *content, size_t content_len, const char *finish_reason);

/** chat_usage_chunk_new() - the final usage chunk: choices [], usage {...}. */
json_t *chat_usage_chunk_new(const char *id, const char *model, int64_t created, const ProviderUsage *usage);

/** usage_to_json() - {"prompt_tokens","completion_tokens","total_tokens"}. */
json_t *usage_to_json(const ProviderUsage *usage);

/**
 * sse_frame() - "data: <compact json>\n\n" for @j (steals the reference).
 * JSON encoding escapes newlines, so a frame is always one data line.
 * Returns a malloc'ed string or NULL.
 */
char *sse_frame(json_t *j);

#define SSE_DONE "data: [DONE]\n\n"
