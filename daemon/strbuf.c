/* strbuf.c — see strbuf.h. */
#include "strbuf.h"
#include "util.h"

int strbuf_append(StrBuf *b, const char *s, size_t n, size_t max) {
        if (n > max || b->len > max - n)
                return -E2BIG;
        if (b->len + n + 1 > b->cap) {
                size_t cap = MAX(b->cap * 2, (size_t) 64);
                while (cap < b->len + n + 1)
                        cap *= 2;
                if (max < SIZE_MAX) /* max + 1 would wrap to 0 */
                        cap = MIN(cap, max + 1);
                char *q = realloc(b->p, cap);
                if (!q)
                        return -ENOMEM;
                b->p = q;
                b->cap = cap;
        }
        if (n > 0)
                memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = 0;
        return 0;
}

int strbuf_set(StrBuf *b, const char *s, size_t n, size_t max) {
        strbuf_reset(b);
        return strbuf_append(b, s, n, max);
}

void strbuf_reset(StrBuf *b) {
        b->len = 0;
        if (b->p)
                b->p[0] = 0;
}

void strbuf_done(StrBuf *b) {
        free(b->p);
        *b = (StrBuf){};
}
