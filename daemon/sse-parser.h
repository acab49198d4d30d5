/* sse-parser.h — incremental Server-Sent-Events parser (the WHATWG
 * "text/event-stream" format) for upstream LLM streams. Pure: no I/O, no
 * allocation per byte; bytes go in in arbitrary pieces, whole events come out
 * through a callback. */
#pragma once

#include <stddef.h>

typedef struct SseParser SseParser;

typedef struct SseEvent {
        const char *event; /* "event:" field, "" if none ("message" by default in browsers) */
        const char *id;    /* "id:" field, "" if none */
        const char *data;  /* the "data:" lines joined with '\n', NUL-terminated */
        size_t data_len;
        int done; /* data is exactly "[DONE]" (the OpenAI end-of-stream marker) */
} SseEvent;

/* Return < 0 to stop parsing: sse_parser_feed() then returns that value. */
typedef int (*SseEventCallback)(void *userdata, const SseEvent *ev);

#define SSE_DEFAULT_MAX_LINE (256U * 1024U)
#define SSE_DEFAULT_MAX_EVENT (1024U * 1024U)

/**
 * sse_parser_new() - a new parser. @max_line bounds one line (field name and
 * value, without its ending), @max_event the joined data of one event; 0
 * picks SSE_DEFAULT_MAX_LINE / SSE_DEFAULT_MAX_EVENT. Returns 0 and *ret, or
 * -EINVAL / -ENOMEM.
 */
int sse_parser_new(size_t max_line, size_t max_event, SseEventCallback cb, void *userdata, SseParser **ret);

/** sse_parser_free() - free a parser; NULL is a no-op. Returns NULL. */
SseParser *sse_parser_free(SseParser *p);

/**
 * sse_parser_feed() - parse @len bytes. Lines may end in "\r\n", "\n" or
 * "\r", and may be split anywhere across calls (also between '\r' and
 * '\n'). Comment lines (starting with ':') are skipped; a blank line
 * dispatches the pending event if it has data. Returns 0, -E2BIG when a line
 * or event exceeds its bound, -ENOMEM, or the callback's negative return.
 * After an error the parser stays failed and returns the same error.
 */
int sse_parser_feed(SseParser *p, const void *buf, size_t len);

/**
 * sse_parser_finish() - the stream ended. An unterminated last line is
 * processed and a pending event with data is dispatched (lenient: the
 * caller decides from the content, e.g. a missing "[DONE]", whether the
 * stream was cut). Returns 0 or a negative error as sse_parser_feed().
 */
int sse_parser_finish(SseParser *p);

/** sse_parser_reset() - forget all state and any error, keep the settings. */
void sse_parser_reset(SseParser *p);

/** sse_parser_events() - number of events dispatched since new/reset. */
size_t sse_parser_events(const SseParser *p);
