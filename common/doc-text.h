/* doc-text.h — turning the bytes of one file into the UTF-8 text of a
 * document: gzip decompression, encoding detection and conversion (UTF-8,
 * UTF-16 with a byte-order mark, Latin-1/Windows-1252), HTML text
 * extraction, PDF through pdftotext(1), and the refusal of anything else
 * with a reason a user can act on. Shared by moactl (ingest, ask -f) and
 * moad (ingest jobs), so both take and refuse exactly the same files. */
#pragma once

#include <stddef.h>

#include "pdf-text.h"

/**
 * text_gunzip() - decompress the gzip data of @size bytes at @data (one or
 * more members). Returns 0 and a malloc'ed, NUL-terminated buffer in *@ret
 * (length in *@ret_len), -EFBIG when the result would exceed @max bytes
 * (a "zip bomb" stops there), -EBADMSG for corrupt or truncated data,
 * -ENOMEM.
 */
int text_gunzip(const void *data, size_t size, size_t max, char **ret, size_t *ret_len);

/**
 * text_to_utf8() - @size bytes of text in UTF-8 (a BOM is dropped), UTF-16
 * with a BOM, or else Latin-1 (read as Windows-1252, whose 0x80-0x9f are
 * printable, falling back to ISO-8859-1), converted with iconv(3) to UTF-8.
 * Returns 0, a malloc'ed NUL-terminated buffer in *@ret, its length in
 * *@ret_len and a static name of the encoding found in *@ret_encoding
 * ("UTF-8", "UTF-16LE", "UTF-16BE", "Latin-1"); -EMEDIUMTYPE for binary
 * data (NUL bytes outside UTF-16, or many control characters), -EILSEQ for
 * broken UTF-16, -ENOMEM.
 */
int text_to_utf8(const char *data, size_t size, char **ret, size_t *ret_len, const char **ret_encoding);

/**
 * html_to_text() - the text of an HTML document: tags removed, the contents
 * of script, style, head-less noscript/template and comments dropped,
 * headings turned into Markdown "#" lines (so the knowledge base keeps its
 * sections), block elements into line breaks, runs of blanks collapsed and
 * character references decoded (numeric ones and the common named ones;
 * unknown names are kept as written). One linear pass; the result is never
 * longer than 3 * @len + 16 bytes. Returns 0 and a malloc'ed string, -ENOMEM.
 */
int html_to_text(const char *html, size_t len, char **ret, size_t *ret_len);

/**
 * looks_like_html() - whether @name (a file name, may be NULL) has an HTML
 * suffix or the text begins, after white space, with "<!doctype html" or
 * "<html".
 */
int looks_like_html(const char *name, const char *text, size_t len);

/**
 * doc_text() - the UTF-8 text of the file named @path (only its name is
 * used: suffixes) whose @size bytes are at @data: ".gz" (or gzip magic) is
 * decompressed first, then a PDF goes through text_from_pdf() with @lim
 * (NULL: CONVERT_LIMITS_DEFAULT), other data through text_to_utf8() and,
 * for HTML, html_to_text(). At most @max bytes of text. Returns 0 with the
 * text in *@ret / *@ret_len and what was done to it in @format (e.g.
 * "gzip, Latin-1, HTML"; "" for plain UTF-8), or a negative errno with
 * @why (of @why_len bytes) saying why the file was refused: -EMEDIUMTYPE
 * not text, -EFBIG too large, -ENOPKG no pdftotext, -EBADMSG corrupt,
 * -ENODATA no text in it, -ETIME / -ETIMEDOUT pdftotext stopped by a
 * limit, -ECANCELED @lim->cancel_fd became readable, -ENOMEM.
 */
int doc_text(const char *path, const char *data, size_t size, size_t max, const ConvertLimits *lim,
             char **ret, size_t *ret_len, char *format, size_t format_len, char *why, size_t why_len);
