/* prompts.c — see prompts.h. */
#include <ctype.h>

#include "prompts.h"
#include "util.h"

typedef struct Buf {
        char *s;
        size_t len, cap;
        int oom;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n) {
        if (b->oom)
                return;
        if (b->len + n + 1 > b->cap) {
                size_t cap = MAX(b->cap * 2, b->len + n + 64);
                char *p = realloc(b->s, cap);
                if (!p) {
                        b->oom = 1;
                        return;
                }
                b->s = p;
                b->cap = cap;
        }
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = 0;
}

char *prompt_render(const char *tmpl, const char *fallback, const char *system, const char *context,
                    const char *references) {
        static const char *const keys[] = {"{system}", "{context}", "{references}"};
        const char *vals[] = {system ? system : "", context ? context : "", references ? references : ""};
        const char *t = tmpl ? tmpl : fallback, *p = t;
        int used_refs = 0;
        Buf b = {0};
        size_t start = 0, end;

        buf_add(&b, "", 0);
        while (*p) {
                const char *q = strchr(p, '{');
                size_t i;

                if (!q) {
                        buf_add(&b, p, strlen(p));
                        break;
                }
                buf_add(&b, p, (size_t) (q - p));
                for (i = 0; i < ELEMENTSOF(keys); i++)
                        if (strncmp(q, keys[i], strlen(keys[i])) == 0)
                                break;
                if (i == ELEMENTSOF(keys)) {
                        buf_add(&b, "{", 1);
                        p = q + 1;
                        continue;
                }
                buf_add(&b, vals[i], strlen(vals[i]));
                if (i == 2)
                        used_refs = 1;
                p = q + strlen(keys[i]);
        }
        if (!used_refs && !isempty(references)) {
                buf_add(&b, "\n\n", 2);
                buf_add(&b, references, strlen(references));
        }
        if (b.oom) {
                free(b.s);
                return NULL;
        }
        /* Trim, so empty placeholders leave no stray blank lines at the ends. */
        while (start < b.len && isspace((unsigned char) b.s[start]))
                start++;
        end = b.len;
        while (end > start && isspace((unsigned char) b.s[end - 1]))
                end--;
        memmove(b.s, b.s + start, end - start);
        b.s[end - start] = 0;
        return b.s;
}
