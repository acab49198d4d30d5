/* file-text.c — getting text onto moactl's side: a question from stdin, a
 * document from a file, a PDF through pdftotext(1). Every read is bounded;
 * nothing here talks to the daemon. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "file-text.h"
#include "moactl.h"

/* The full path of @name in $PATH (caller frees), or -ENOENT. */
static int find_in_path(const char *name, char **ret) {
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
                if (access(p, X_OK) == 0) {
                        *ret = TAKE_PTR(p);
                        return 0;
                }
        }
        return -ENOENT;
}

/* A positive number of seconds from the environment (tests shorten the
 * limits), else @def. */
static unsigned env_seconds(const char *name, unsigned def) {
        const char *v = getenv(name);
        char *end;
        unsigned long n;

        if (!v || !*v)
                return def;
        errno = 0;
        n = strtoul(v, &end, 10);
        return errno || *end || n == 0 || n > 86400 ? def : (unsigned) n;
}

unsigned convert_timeout_sec(void) {
        return env_seconds("MOACTL_CONVERT_TIMEOUT", CONVERT_TIMEOUT_SEC);
}

unsigned convert_cpu_sec(void) {
        return env_seconds("MOACTL_CONVERT_CPU", CONVERT_CPU_SEC);
}

/* Like text_read_fd(), but gives up with -ETIME at @deadline (CLOCK_MONOTONIC
 * microseconds): the converter may stop writing without ever exiting. */
static int read_until(int fd, size_t max, uint64_t deadline, char **ret, size_t *ret_len) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;

        for (;;) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                uint64_t now = now_usec();
                ssize_t n;
                int k;

                if (now >= deadline)
                        return -ETIME;
                k = poll(&pfd, 1, (int) MIN((deadline - now + 999) / 1000, (uint64_t) INT_MAX));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        continue;
                if (cap - len < 2) { /* room for one more byte and the NUL */
                        size_t ncap = MIN(MAX(cap * 2, (size_t) 65536), max + 2);
                        char *b;

                        if (ncap <= cap)
                                return -EFBIG;
                        b = realloc(buf, ncap);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        cap = ncap;
                }
                n = read(fd, buf + len, cap - len - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > max)
                        return -EFBIG;
        }
        if (!buf && !(buf = strdup("")))
                return -ENOMEM;
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/* The child: its own process group (so a converter's own children die
 * with it), stdin from /dev/null, stdout to the pipe, and hard limits on
 * CPU time and address space before exec. Only async-signal-safe calls. */
static _Noreturn void converter_exec(const char *exe, char **argv, int out_fd, unsigned cpu_sec) {
        struct rlimit cpu = {.rlim_cur = cpu_sec, .rlim_max = cpu_sec + 1};
        struct rlimit as = {.rlim_cur = CONVERT_MAX_AS_BYTES, .rlim_max = CONVERT_MAX_AS_BYTES};
        struct rlimit core = {0, 0};
        int null_fd;

        (void) setpgid(0, 0);
        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
            setrlimit(RLIMIT_CPU, &cpu) < 0 || setrlimit(RLIMIT_AS, &as) < 0 ||
            setrlimit(RLIMIT_CORE, &core) < 0)
                _exit(126);
        execv(exe, argv);
        _exit(127);
}

int text_from_pdf(const char *path, size_t max, char **ret, size_t *ret_len) {
        char *argv[] = {
                (char *) "pdftotext", (char *) "-q", (char *) "-enc", (char *) "UTF-8", (char *) path,
                (char *) "-",         NULL};
        unsigned timeout = convert_timeout_sec(), cpu = convert_cpu_sec();
        _cleanup_free_ char *exe = NULL;
        _cleanup_close_ int rfd = -1;
        int pipefd[2], status, r;
        size_t len = 0;
        pid_t pid;

        r = find_in_path("pdftotext", &exe);
        if (r < 0)
                return r == -ENOENT ? -ENOPKG : r;
        /* pdftotext would open a missing file itself; say so in our own words. */
        if (access(path, R_OK) < 0)
                return -errno;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        rfd = pipefd[0];
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close(pipefd[1]);
                return r;
        }
        if (pid == 0)
                converter_exec(exe, argv, pipefd[1], cpu);
        close(pipefd[1]);
        (void) setpgid(pid, pid); /* also here: no window before the child's own call */

        r = read_until(rfd, max, now_usec() + (uint64_t) timeout * USEC_PER_SEC, ret, &len);
        /* Whatever happened, nothing of the converter outlives this call. */
        (void) kill(-pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return r < 0 ? r : -errno;
        if (r < 0)
                return r;
        if (ret_len)
                *ret_len = len;
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU)
                r = -ETIMEDOUT;
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                r = -EBADMSG;
        if (r < 0) {
                *ret = mfree(*ret);
                return r;
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
