/* file-text.h — bounded reading of text for moactl: stdin, plain files,
 * PDFs through pdftotext(1). */
#pragma once

#include <stddef.h>

#include "file-read.h" /* text_read_fd(), text_read_file() */

/**
 * utf8_valid() - whether @n bytes at @s are strict UTF-8 (no overlong
 * forms, surrogates or code points above U+10FFFF), as JSON requires.
 */
int utf8_valid(const char *s, size_t n);

/* Limits on pdftotext: a crafted PDF kept it busy for 727 s at 1.4 GB.
 * MOACTL_CONVERT_TIMEOUT and MOACTL_CONVERT_CPU (seconds) override the
 * first two. */
#define CONVERT_TIMEOUT_SEC 30                       /* wall clock */
#define CONVERT_CPU_SEC 20                           /* RLIMIT_CPU */
#define CONVERT_MAX_AS_BYTES (1024ULL * 1024 * 1024) /* RLIMIT_AS */

/** convert_timeout_sec(), convert_cpu_sec() - the limits in force. */
unsigned convert_timeout_sec(void);
unsigned convert_cpu_sec(void);

/**
 * text_from_pdf() - the text of the PDF @path via "pdftotext -q -enc UTF-8
 * @path -", run in its own process group with RLIMIT_CPU, RLIMIT_AS, at
 * most @max bytes of output and a wall-clock timeout; the whole group is
 * killed when it returns. Returns 0 like text_read_fd(); -ENOPKG if
 * pdftotext is not in $PATH, -EBADMSG if it failed (e.g. not a PDF, or out
 * of memory), -EFBIG over @max bytes, -ETIME over the wall-clock timeout,
 * -ETIMEDOUT over the CPU-time limit.
 */
int text_from_pdf(const char *path, size_t max, char **ret, size_t *ret_len);
