/* file-read.h — bounded reads of whole files and descriptors (shared by
 * moad and moactl; no other dependency than libc). */
#pragma once

#include <stddef.h>

/**
 * text_read_fd() - read @fd to its end. Returns 0 and a malloc'ed,
 * NUL-terminated buffer in *@ret (and its length in *@ret_len if not NULL),
 * -EFBIG if there are more than @max bytes, or another -errno.
 */
int text_read_fd(int fd, size_t max, char **ret, size_t *ret_len);

/**
 * text_read_file() - text_read_fd() on the regular file @path; -EISDIR or
 * -EBADFD for a directory or another non-regular file, -EFBIG when it is
 * larger than @max.
 */
int text_read_file(const char *path, size_t max, char **ret, size_t *ret_len);
