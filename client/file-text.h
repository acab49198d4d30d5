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

/**
 * text_from_pdf() - the text of the PDF @path via "pdftotext -q -enc UTF-8
 * @path -". Returns 0 like text_read_fd(); -ENOPKG if pdftotext is not in
 * $PATH, -EBADMSG if it failed (e.g. not a PDF), -EFBIG over @max bytes.
 */
int text_from_pdf(const char *path, size_t max, char **ret, size_t *ret_len);
