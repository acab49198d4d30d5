/* strbuf.h — a growable, always NUL-terminated byte buffer with a hard
 * size bound: the one used wherever untrusted input is accumulated
 * (upstream bodies, SSE lines and events, rendered prompts). */
#pragma once

#include <stddef.h>

typedef struct StrBuf {
        char *p; /* NULL until the first append; then p[len] == 0 */
        size_t len;
        size_t cap;
} StrBuf;

/**
 * strbuf_append() - append @n bytes of @s. Fails with -E2BIG (buffer
 * unchanged) when the result would exceed @max bytes, -ENOMEM on OOM.
 */
int strbuf_append(StrBuf *b, const char *s, size_t n, size_t max);

/** strbuf_set() - replace the contents with @n bytes of @s (same bounds). */
int strbuf_set(StrBuf *b, const char *s, size_t n, size_t max);

/** strbuf_reset() - empty the buffer, keeping its memory. */
void strbuf_reset(StrBuf *b);

/** strbuf_done() - free the memory; the buffer is empty afterwards. */
void strbuf_done(StrBuf *b);
