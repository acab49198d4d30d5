/* log.c — one line per event, to journald (structured) or stderr. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include "log.h"

static atomic_int max_level = LOG_LEVEL_INFO;
static int use_journal;
static pthread_mutex_t stderr_lock = PTHREAD_MUTEX_INITIALIZER;
/* moad never forks, so its pid is read once: getpid() is a system call
 * per log line otherwise (one per request at log_level info). */
static atomic_int log_pid;

static int pid_for_log(void) {
        int pid = atomic_load(&log_pid);
        if (pid == 0) {
                pid = (int) getpid();
                atomic_store(&log_pid, pid);
        }
        return pid;
}

/* systemd sets JOURNAL_STREAM=dev:ino when stderr is connected to the
 * journal; only then are structured fields worth sending. */
static int stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return 0;
        if (fstat(STDERR_FILENO, &st) < 0)
                return 0;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(int level, int force_journal) {
        atomic_store(&max_level, level);
        use_journal = force_journal || stderr_is_journal();
}

void log_set_max_level(int level) {
        atomic_store(&max_level, level);
}

int log_get_max_level(void) {
        return atomic_load(&max_level);
}

int log_level_from_string(const char *s) {
        static const char *const names[] = {[LOG_LEVEL_ERR] = "err",
                                            [LOG_LEVEL_WARNING] = "warning",
                                            [LOG_LEVEL_NOTICE] = "notice",
                                            [LOG_LEVEL_INFO] = "info",
                                            [LOG_LEVEL_DEBUG] = "debug"};
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (names[i] && streq(names[i], s))
                        return (int) i;
        if (streq(s, "error"))
                return LOG_LEVEL_ERR;
        if (streq(s, "warn"))
                return LOG_LEVEL_WARNING;
        return -EINVAL;
}

static void emit(int level, const char *request_id, const char *msg) {
        static const char prefix[8][8] = {"", "", "", "error", "warning", "notice", "info", "debug"};

        if (use_journal) {
                if (request_id)
                        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%i", level, "REQUEST_ID=%s", request_id,
                                        "SYSLOG_IDENTIFIER=moad", NULL);
                else
                        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%i", level, "SYSLOG_IDENTIFIER=moad",
                                        NULL);
                return;
        }

        pthread_mutex_lock(&stderr_lock);
        if (request_id)
                fprintf(stderr, "moad[%d]: %s: [%s] %s\n", pid_for_log(), prefix[level & 7], request_id,
                        msg);
        else
                fprintf(stderr, "moad[%d]: %s: %s\n", pid_for_log(), prefix[level & 7], msg);
        pthread_mutex_unlock(&stderr_lock);
}

int log_full(int level, int error, const char *request_id, const char *fmt, ...) {
        char buf[2048];
        va_list ap;

        if (level > atomic_load(&max_level))
                return error ? -abs(error) : 0;

        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        if (n >= 0 && error && (size_t) n < sizeof buf)
                snprintf(buf + n, sizeof buf - (size_t) n, ": %s", strerror(abs(error)));

        emit(level, request_id, buf);
        return error ? -abs(error) : 0;
}

void log_request(const char *request_id, const char *method, const char *path, unsigned status,
                 uint64_t duration_usec, const char *pipeline, const char *agents) {
        int level = status >= 500 ? LOG_LEVEL_WARNING : LOG_LEVEL_INFO;

        if (level > atomic_load(&max_level))
                return;
        if (use_journal) {
                sd_journal_send("MESSAGE=%s %s %u %.1fms", method, path, status, duration_usec / 1000.0,
                                "PRIORITY=%i", level, "SYSLOG_IDENTIFIER=moad", "REQUEST_ID=%s",
                                request_id ? request_id : "-", "HTTP_METHOD=%s", method, "HTTP_PATH=%s",
                                path, "HTTP_STATUS=%u", status, "DURATION_USEC=%llu",
                                (unsigned long long) duration_usec, "PIPELINE=%s", pipeline ? pipeline : "",
                                "AGENTS=%s", agents ? agents : "", NULL);
                return;
        }
        char buf[1024];
        snprintf(buf, sizeof buf, "%s %s %u %.1fms%s%s%s%s", method, path, status, duration_usec / 1000.0,
                 pipeline ? " pipeline=" : "", pipeline ? pipeline : "", agents ? " agents=" : "",
                 agents ? agents : "");
        emit(level, request_id, buf);
}
