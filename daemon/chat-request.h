/* chat-request.h — validation of an OpenAI chat-completions request body
 * into a ChatRequest. Untrusted input: every field type-checked and bounded. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct ChatMessage {
        char *role;    /* system | user | assistant | tool | developer */
        char *content; /* text; array-of-parts content is joined */
} ChatMessage;

typedef struct ChatRequest {
        char *model; /* NULL when the request named none (use the default pipeline) */
        ChatMessage *messages;
        size_t n_messages;
        int stream;
        int include_usage;  /* stream_options.include_usage */
        double temperature; /* < 0: unset */
        int64_t max_tokens; /* <= 0: unset */
        /* moa extension */
        int has_moa;   /* the request had a "moa" object: the reply carries one */
        char **agents; /* pinned agents */
        size_t n_agents;
        int trace;         /* moa.trace */
        int trace_content; /* moa.trace_content: include each agent's text */
        int progress;      /* moa.progress: stream a moa.progress event per finished call */
        unsigned layers;   /* moa.layers: 0 = pipeline's own */
} ChatRequest;

/* Why a request was refused: HTTP status and the OpenAI error fields. */
typedef struct ChatRequestError {
        unsigned status;
        const char *param; /* static string or NULL */
        const char *code;  /* static string or NULL */
        char message[256];
} ChatRequestError;

#define CHAT_MAX_PINNED_AGENTS 32u

/**
 * chat_request_parse() - parse and validate @body (@len bytes, not
 * necessarily NUL-terminated) under @limits. Unknown top-level fields are
 * ignored (as OpenAI-compatible servers do); known fields must have the
 * right type and range. Returns 0 and *ret, or -EINVAL with @err filled.
 */
int chat_request_parse(const char *body, size_t len, const LimitsConfig *limits, ChatRequest **ret,
                       ChatRequestError *err);

/** chat_request_free() - NULL ok; returns NULL. */
ChatRequest *chat_request_free(ChatRequest *r);

/** chat_request_query() - the last user message's text (the question). */
const char *chat_request_query(const ChatRequest *r);
