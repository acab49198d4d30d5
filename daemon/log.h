/* log.h — the daemon's logger: journald when running under systemd
 * (structured fields), stderr otherwise. Thread-safe. */
#pragma once

#include "util.h"

enum {
        LOG_LEVEL_ERR = 3,
        LOG_LEVEL_WARNING = 4,
        LOG_LEVEL_NOTICE = 5,
        LOG_LEVEL_INFO = 6,
        LOG_LEVEL_DEBUG = 7,
};

/**
 * log_setup() - pick the sink (journald if $JOURNAL_STREAM matches stderr or
 * @force_journal, else stderr) and the maximum level to emit.
 */
void log_setup(int max_level, int force_journal);
void log_set_max_level(int max_level);
int log_get_max_level(void);
/** log_level_from_string() - "err".."debug" to a level, -EINVAL if unknown. */
int log_level_from_string(const char *s);

/**
 * log_full() - emit one line. @request_id may be NULL. Returns -@error if
 * @error is non-zero (so callers can `return log_error_errno(r, ...)`), else 0.
 * A "%m" in @fmt is not supported; use strerror(-error) via @error.
 */
int log_full(int level, int error, const char *request_id, const char *fmt, ...) _printf_(4, 5);

/**
 * log_request() - the one structured line per finished HTTP request:
 * REQUEST_ID, METHOD, PATH, STATUS, DURATION_USEC, PIPELINE, AGENTS fields.
 */
void log_request(const char *request_id, const char *method, const char *path, unsigned status,
                 uint64_t duration_usec, const char *pipeline, const char *agents);

#define log_debug(...) log_full(LOG_LEVEL_DEBUG, 0, NULL, __VA_ARGS__)
#define log_info(...) log_full(LOG_LEVEL_INFO, 0, NULL, __VA_ARGS__)
#define log_notice(...) log_full(LOG_LEVEL_NOTICE, 0, NULL, __VA_ARGS__)
#define log_warning(...) log_full(LOG_LEVEL_WARNING, 0, NULL, __VA_ARGS__)
#define log_error(...) log_full(LOG_LEVEL_ERR, 0, NULL, __VA_ARGS__)
#define log_error_errno(e, ...) log_full(LOG_LEVEL_ERR, (e), NULL, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full(LOG_LEVEL_WARNING, (e), NULL, __VA_ARGS__)
