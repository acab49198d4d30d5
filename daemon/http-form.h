/* http-form.h — a multipart/form-data body decoded while it arrives, with
 * libmicrohttpd's post processor, so a large upload costs the loop a little
 * per read instead of one long parse at the end. Fields are kept in memory,
 * bounded by the HTTP body limit. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct MHD_Connection;
typedef struct HttpForm HttpForm;

#define HTTP_FORM_MAX_FIELDS 16u

typedef struct HttpFormField {
        char *name;
        char *filename; /* NULL for a plain field */
        char *data;     /* NUL-terminated; NULL until the first byte */
        size_t len;
} HttpFormField;

/**
 * http_form_new() - a decoder for the body of @conn when its Content-Type is
 * multipart/form-data with a boundary; NULL otherwise (or out of memory).
 */
HttpForm *http_form_new(struct MHD_Connection *conn);

/** http_form_free() - NULL ok; returns NULL. */
HttpForm *http_form_free(HttpForm *f);

/**
 * http_form_feed() - the next @n bytes of the body. Returns 0, or -EBADMSG
 * (malformed), -E2BIG (more than HTTP_FORM_MAX_FIELDS fields), -ENOMEM;
 * after an error further bytes are ignored and the error stays.
 */
int http_form_feed(HttpForm *f, const char *data, size_t n);

/**
 * http_form_finish() - the body has ended: decode what is left up to the
 * close delimiter (an epilogue after it, such as the "\r\n" the OpenAI Node
 * SDK sends, is ignored as RFC 2046 says; libmicrohttpd 0.9.75 would report
 * the body incomplete). Returns 0 or the first error (-EBADMSG for a body
 * that ends inside a part).
 */
int http_form_finish(HttpForm *f);

/** http_form_get() - the first field named @name, or NULL. */
HttpFormField *http_form_get(HttpForm *f, const char *name);
