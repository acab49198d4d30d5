/* pdf-text.c — a PDF's text through pdftotext(1) in a sandboxed child:
 * its own process group, rlimits, a wall clock, bounded output, and a
 * cancel descriptor that kills it from outside (moad's job cancel). Used
 * by moactl and by moad's ingest jobs alike. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "pdf-text.h"
#include "util.h"

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

/* Like text_read_fd(), but gives up with -ETIME at @deadline (CLOCK_MONOTONIC
 * microseconds), since the converter may stop writing without ever
 * exiting, and with -ECANCELED as soon as @cancel_fd (>= 0) is readable. */
static int read_until(int fd, int cancel_fd, size_t max, uint64_t deadline, char **ret, size_t *ret_len) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;

        for (;;) {
                struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = cancel_fd, .events = POLLIN}};
                uint64_t now = now_usec();
                ssize_t n;
                int k;

                if (now >= deadline)
                        return -ETIME;
                k = poll(pfd, cancel_fd >= 0 ? 2 : 1,
                         (int) MIN((deadline - now + 999) / 1000, (uint64_t) INT_MAX));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (cancel_fd >= 0 && pfd[1].revents)
                        return -ECANCELED;
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

/* After the end of its output: waits until @pid has exited, without
 * reaping it (its process group stays ours to kill), until @deadline or
 * @cancel_fd. Killing it at once would race with its own exit and turn a
 * success into SIGKILL. */
static int wait_exited(pid_t pid, int cancel_fd, uint64_t deadline) {
        for (;;) {
                struct pollfd pfd = {.fd = cancel_fd, .events = POLLIN};
                siginfo_t si = {};

                if (waitid(P_PID, (id_t) pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno != EINTR)
                        return -errno;
                if (si.si_pid == pid)
                        return 0;
                if (now_usec() >= deadline)
                        return -ETIME;
                /* Converters exit right after their output: a short wait is rare. */
                if (poll(&pfd, cancel_fd >= 0 ? 1 : 0, 10) > 0)
                        return -ECANCELED;
        }
}

/* A sealed memfd holding the @size bytes at @data, at offset 0. */
static int memfd_of(const char *data, size_t size) {
        _cleanup_close_ int fd = -1;

        fd = memfd_create("moa-pdf", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        for (size_t off = 0; off < size;) {
                ssize_t n = write(fd, data + off, size - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                off += (size_t) n;
        }
        if (lseek(fd, 0, SEEK_SET) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* The child: its own process group (so a converter's own children die
 * with it), stdin the document, stdout the pipe, default signal handling
 * (moad blocks SIGTERM/SIGINT/SIGHUP and ignores SIGPIPE, and both would
 * be inherited), and hard limits on CPU time and address space before
 * exec. prlimit(), not setrlimit(): moad.service's SystemCallFilter denies
 * setrlimit (@resources) but allows prlimit64 (@default); without
 * CAP_SYS_RESOURCE either can only lower a limit. Only async-signal-safe
 * calls. */
static _Noreturn void converter_exec(const char *exe, char **argv, int in_fd, int out_fd, unsigned cpu_sec) {
        struct rlimit cpu = {.rlim_cur = cpu_sec, .rlim_max = cpu_sec + 1};
        struct rlimit as = {.rlim_cur = CONVERT_MAX_AS_BYTES, .rlim_max = CONVERT_MAX_AS_BYTES};
        struct rlimit core = {0, 0};
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigset_t none;

        (void) setpgid(0, 0);
        for (int sig = 1; sig < NSIG; sig++)
                (void) sigaction(sig, &dfl, NULL); /* SIGKILL, SIGSTOP: EINVAL, harmless */
        sigemptyset(&none);
        if (sigprocmask(SIG_SETMASK, &none, NULL) < 0 || dup2(in_fd, STDIN_FILENO) < 0 ||
            dup2(out_fd, STDOUT_FILENO) < 0 || prlimit(0, RLIMIT_CPU, &cpu, NULL) < 0 ||
            prlimit(0, RLIMIT_AS, &as, NULL) < 0 || prlimit(0, RLIMIT_CORE, &core, NULL) < 0)
                _exit(126);
        execv(exe, argv);
        _exit(127);
}

int text_from_pdf(const char *data, size_t size, const ConvertLimits *lim, size_t max, char **ret,
                  size_t *ret_len) {
        char *argv[] = {(char *) "pdftotext", (char *) "-q", (char *) "-enc", (char *) "UTF-8", (char *) "-",
                        (char *) "-",         NULL};
        const ConvertLimits l = lim ? *lim : CONVERT_LIMITS_DEFAULT;
        _cleanup_free_ char *exe = NULL;
        _cleanup_close_ int rfd = -1, in_fd = -1;
        int pipefd[2], status, r;
        size_t len = 0;
        uint64_t deadline;
        pid_t pid;

        r = find_in_path("pdftotext", &exe);
        if (r < 0)
                return r == -ENOENT ? -ENOPKG : r;
        in_fd = memfd_of(data, size);
        if (in_fd < 0)
                return in_fd;
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
                converter_exec(exe, argv, in_fd, pipefd[1], l.cpu_sec);
        close(pipefd[1]);
        (void) setpgid(pid, pid); /* also here: no window before the child's own call */

        deadline = now_usec() + (uint64_t) l.timeout_sec * USEC_PER_SEC;
        r = read_until(rfd, l.cancel_fd, max, deadline, ret, &len);
        if (r >= 0) {
                r = wait_exited(pid, l.cancel_fd, deadline);
                if (r < 0)
                        *ret = mfree(*ret);
        }
        /* Whatever happened, nothing of the converter outlives this call. */
        (void) kill(-pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        if (r >= 0)
                                *ret = mfree(*ret);
                        return r < 0 ? r : -errno;
                }
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
