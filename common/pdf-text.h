/* pdf-text.h — the text of a PDF through pdftotext(1), run as a sandboxed
 * child with limits on time, CPU, memory and output, and stoppable from
 * outside. Shared by moactl and moad (common/). */
#pragma once

#include <stddef.h>

/* Limits on pdftotext: a crafted PDF kept it busy for 727 s at 1.4 GB. */
#define CONVERT_TIMEOUT_SEC 30                       /* wall clock */
#define CONVERT_CPU_SEC 20                           /* RLIMIT_CPU */
#define CONVERT_MAX_AS_BYTES (1024ULL * 1024 * 1024) /* RLIMIT_AS */

/**
 * struct ConvertLimits - how one conversion may run.
 * @timeout_sec: wall clock of the converter, seconds.
 * @cpu_sec: its RLIMIT_CPU, seconds.
 * @cancel_fd: when this descriptor becomes readable the converter is
 *             killed at once and the conversion fails with -ECANCELED;
 *             -1: never. The caller owns it and never reads it here.
 */
typedef struct ConvertLimits {
        unsigned timeout_sec;
        unsigned cpu_sec;
        int cancel_fd;
} ConvertLimits;

#define CONVERT_LIMITS_DEFAULT                                                                              \
        ((ConvertLimits){.timeout_sec = CONVERT_TIMEOUT_SEC, .cpu_sec = CONVERT_CPU_SEC, .cancel_fd = -1})

/**
 * text_from_pdf() - the text of the @size bytes of PDF at @data via
 * "pdftotext -q -enc UTF-8 - -", the bytes handed to it as stdin (a
 * sealed memfd, so it reads exactly what the caller read and hashed, not
 * a path that may have changed since). The child runs in its own process
 * group with RLIMIT_CPU @lim->cpu_sec, RLIMIT_AS CONVERT_MAX_AS_BYTES, no
 * core, default signal handling, at most @max bytes of output and
 * @lim->timeout_sec of wall clock; the whole group is killed when this
 * returns. @lim NULL: CONVERT_LIMITS_DEFAULT. Returns 0 with a malloc'ed,
 * NUL-terminated buffer in *@ret (length in *@ret_len); -ENOPKG if
 * pdftotext is not in $PATH, -EBADMSG if it failed (e.g. not a PDF, or
 * out of memory), -EFBIG over @max bytes, -ETIME over the wall clock,
 * -ETIMEDOUT over the CPU time, -ECANCELED when @lim->cancel_fd became
 * readable, another -errno.
 */
int text_from_pdf(const char *data, size_t size, const ConvertLimits *lim, size_t max, char **ret,
                  size_t *ret_len);
