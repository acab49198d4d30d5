/* question.c — the question of "moactl ask" and "moactl route": the
 * argument itself, or stdin read to its end (bounded). */
#include "file-read.h"
#include "moactl.h"
#include "utf8.h"

int read_question(const char *arg, char **ret) {
        _cleanup_free_ char *q = NULL;
        size_t len;
        int r;

        if (!streq(arg, "-")) {
                len = strlen(arg);
                q = strdup(arg);
                if (!q)
                        return -ENOMEM;
        } else {
                r = text_read_fd(STDIN_FILENO, MOACTL_MAX_RESPONSE, &q, &len);
                if (r < 0)
                        return r;
                if (memchr(q, '\0', len))
                        return -EILSEQ;
                /* "echo question | moactl ask -" should not send echo's newline. */
                while (len > 0 && strchr(" \t\r\n", q[len - 1]))
                        q[--len] = '\0';
        }
        if (!utf8_valid(q, len))
                return -EILSEQ;
        *ret = TAKE_PTR(q);
        return 0;
}
