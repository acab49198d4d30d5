/* prompts.c — see prompts.h. */
#include <ctype.h>

#include "prompts.h"
#include "strbuf.h"
#include "util.h"

/* Prompts are built from configuration and bounded knowledge; this bound
 * only guards against a runaway template. */
#define PROMPT_MAX_BYTES (16u * 1024u * 1024u)

char *prompt_render(const char *tmpl, const char *fallback, const char *system, const char *context,
                    const char *references) {
        static const char *const keys[] = {"{system}", "{context}", "{references}"};
        const char *vals[] = {system ? system : "", context ? context : "", references ? references : ""};
        const char *t = tmpl ? tmpl : fallback, *p = t;
        int used_refs = 0, r;
        StrBuf b = {};
        size_t start = 0, end;

        r = strbuf_append(&b, "", 0, PROMPT_MAX_BYTES);
        while (r >= 0 && *p) {
                const char *q = strchr(p, '{');
                size_t i;

                if (!q) {
                        r = strbuf_append(&b, p, strlen(p), PROMPT_MAX_BYTES);
                        break;
                }
                r = strbuf_append(&b, p, (size_t) (q - p), PROMPT_MAX_BYTES);
                for (i = 0; i < ELEMENTSOF(keys); i++)
                        if (strncmp(q, keys[i], strlen(keys[i])) == 0)
                                break;
                if (r < 0)
                        break;
                if (i == ELEMENTSOF(keys)) {
                        r = strbuf_append(&b, "{", 1, PROMPT_MAX_BYTES);
                        p = q + 1;
                        continue;
                }
                r = strbuf_append(&b, vals[i], strlen(vals[i]), PROMPT_MAX_BYTES);
                if (i == 2)
                        used_refs = 1;
                p = q + strlen(keys[i]);
        }
        if (r >= 0 && !used_refs && !isempty(references)) {
                r = strbuf_append(&b, "\n\n", 2, PROMPT_MAX_BYTES);
                if (r >= 0)
                        r = strbuf_append(&b, references, strlen(references), PROMPT_MAX_BYTES);
        }
        if (r < 0) {
                strbuf_done(&b);
                return NULL;
        }
        /* Trim, so empty placeholders leave no stray blank lines at the ends. */
        while (start < b.len && isspace((unsigned char) b.p[start]))
                start++;
        end = b.len;
        while (end > start && isspace((unsigned char) b.p[end - 1]))
                end--;
        memmove(b.p, b.p + start, end - start);
        b.p[end - start] = 0;
        return b.p;
}

char *prompt_context(const char *context) {
        char *s;

        if (isempty(context))
                return strdup(PROMPT_NO_CONTEXT);
        if (asprintf(&s, "%s\n\n%s", context, PROMPT_CONTEXT_RULES) < 0)
                return NULL;
        return s;
}
