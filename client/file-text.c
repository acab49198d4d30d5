/* file-text.c — getting text onto moactl's side: a question from stdin, a
 * document from a file, a PDF through pdftotext(1). Every read is bounded;
 * nothing here talks to the daemon. */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "file-text.h"
#include "moactl.h"

extern char **environ;

static int find_in_path(const char *name) {
        _cleanup_free_ char *path = NULL;
        const char *env = getenv("PATH");
        char *dir, *save = NULL;

        path = strdup(env ? env : "/usr/local/bin:/usr/bin:/bin");
        if (!path)
                return -ENOMEM;
        for (dir = strtok_r(path, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s/%s", *dir ? dir : ".", name) < 0)
                        return -ENOMEM;
                if (access(p, X_OK) == 0)
                        return 0;
        }
        return -ENOENT;
}

int text_from_pdf(const char *path, size_t max, char **ret, size_t *ret_len) {
        char *argv[] = {
                (char *) "pdftotext", (char *) "-q", (char *) "-enc", (char *) "UTF-8", (char *) path,
                (char *) "-",         NULL};
        posix_spawn_file_actions_t fa;
        _cleanup_close_ int rfd = -1;
        int pipefd[2], status, r;
        pid_t pid;

        r = find_in_path("pdftotext");
        if (r < 0)
                return r == -ENOENT ? -ENOPKG : r;
        /* pdftotext would open a missing file itself; say so in our own words. */
        if (access(path, R_OK) < 0)
                return -errno;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        rfd = pipefd[0];

        r = posix_spawn_file_actions_init(&fa);
        if (r != 0) {
                close(pipefd[1]);
                return -r;
        }
        r = posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawnp(&pid, "pdftotext", &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(pipefd[1]);
        if (r != 0)
                return -r;

        r = text_read_fd(rfd, max, ret, ret_len);
        if (r < 0)
                (void) kill(pid, SIGTERM);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return r < 0 ? r : -errno;
        if (r < 0)
                return r;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                free(*ret);
                *ret = NULL;
                return -EBADMSG;
        }
        return 0;
}

int utf8_valid(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s, *end = p + n;

        while (p < end) {
                unsigned c = *p;
                size_t k;
                uint32_t cp;

                if (c < 0x80) {
                        p++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        k = 1, cp = c & 0x1f;
                else if (c >= 0xe0 && c <= 0xef)
                        k = 2, cp = c & 0x0f;
                else if (c >= 0xf0 && c <= 0xf4)
                        k = 3, cp = c & 0x07;
                else
                        return 0;
                if ((size_t) (end - p) <= k)
                        return 0;
                for (size_t i = 1; i <= k; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return 0;
                        cp = (cp << 6) | (p[i] & 0x3f);
                }
                /* Overlong forms, UTF-16 surrogates, beyond U+10FFFF. */
                if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return 0;
                p += k + 1;
        }
        return 1;
}

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
