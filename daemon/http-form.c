/* http-form.c — see http-form.h. The last bytes of every piece are held
 * back until the next one comes (or the body ends), so that the close
 * delimiter can be found and what follows it dropped. */
#include <microhttpd.h>
#include <strings.h>

#include "http-form.h"
#include "util.h"

/* "\r\n--" + a boundary of at most 70 characters + "--\r\n", with room. */
#define FORM_TAIL 128u

struct HttpForm {
        struct MHD_PostProcessor *pp;
        char delim[80]; /* "--BOUNDARY--" */
        size_t delim_len;
        char tail[FORM_TAIL];
        size_t tail_len;
        HttpFormField fields[HTTP_FORM_MAX_FIELDS];
        size_t n_fields;
        int error;
};

static int field_append(HttpFormField *fl, const char *data, size_t size) {
        char *p = realloc(fl->data, fl->len + size + 1);

        if (!p)
                return -ENOMEM;
        memcpy(p + fl->len, data, size);
        fl->data = p;
        fl->len += size;
        fl->data[fl->len] = 0;
        return 0;
}

static enum MHD_Result on_piece(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                const char *content_type, const char *transfer_encoding, const char *data,
                                uint64_t off, size_t size) {
        HttpForm *f = cls;
        HttpFormField *fl = f->n_fields > 0 ? &f->fields[f->n_fields - 1] : NULL;

        /* A new field starts at offset 0; pieces of one field follow in order. */
        if (!fl || off == 0) {
                if (f->n_fields >= HTTP_FORM_MAX_FIELDS) {
                        f->error = -E2BIG;
                        return MHD_NO;
                }
                fl = &f->fields[f->n_fields++];
                fl->name = strdup(key ? key : "");
                fl->filename = filename ? strdup(filename) : NULL;
                if (!fl->name || (filename && !fl->filename)) {
                        f->error = -ENOMEM;
                        return MHD_NO;
                }
        } else if (off != fl->len) {
                f->error = -EBADMSG;
                return MHD_NO;
        }
        if (size > 0 && field_append(fl, data, size) < 0) {
                f->error = -ENOMEM;
                return MHD_NO;
        }
        return MHD_YES;
}

HttpForm *http_form_new(struct MHD_Connection *conn) {
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
                   *b;
        HttpForm *f;
        size_t n;

        if (!ct || strncasecmp(ct, "multipart/form-data", strlen("multipart/form-data")) != 0)
                return NULL;
        b = strcasestr(ct, "boundary=");
        if (!b)
                return NULL;
        b += strlen("boundary=");
        if (*b == '"')
                b++;
        n = strcspn(b, "\";, \t");
        if (n == 0 || n > 70) /* RFC 2046: 1 to 70 characters */
                return NULL;
        f = calloc(1, sizeof *f);
        if (!f)
                return NULL;
        f->delim_len = (size_t) snprintf(f->delim, sizeof f->delim, "--%.*s--", (int) n, b);
        f->pp = MHD_create_post_processor(conn, 64 * 1024, on_piece, f);
        if (!f->pp)
                return http_form_free(f);
        return f;
}

HttpForm *http_form_free(HttpForm *f) {
        if (!f)
                return NULL;
        if (f->pp)
                (void) MHD_destroy_post_processor(f->pp);
        for (size_t i = 0; i < f->n_fields; i++) {
                free(f->fields[i].name);
                free(f->fields[i].filename);
                free(f->fields[i].data);
        }
        free(f);
        return NULL;
}

static int process(HttpForm *f, const char *data, size_t n) {
        if (f->error || n == 0)
                return f->error;
        if (MHD_post_process(f->pp, data, n) != MHD_YES && !f->error)
                f->error = -EBADMSG;
        return f->error;
}

int http_form_feed(HttpForm *f, const char *data, size_t n) {
        size_t keep;

        if (f->error)
                return f->error;
        if (f->tail_len + n <= FORM_TAIL) {
                memcpy(f->tail + f->tail_len, data, n);
                f->tail_len += n;
                return 0;
        }
        /* Hand on the held tail and all but the last FORM_TAIL bytes. */
        keep = MIN(n, FORM_TAIL);
        if (process(f, f->tail, f->tail_len) < 0)
                return f->error;
        f->tail_len = 0;
        if (process(f, data, n - keep) < 0)
                return f->error;
        memcpy(f->tail, data + n - keep, keep);
        f->tail_len = keep;
        return 0;
}

int http_form_finish(HttpForm *f) {
        size_t end = f->tail_len;

        if (f->error)
                return f->error;
        for (size_t e = f->tail_len; e >= f->delim_len; e--)
                if (memcmp(f->tail + e - f->delim_len, f->delim, f->delim_len) == 0) {
                        end = e + (e + 2 <= f->tail_len && memcmp(f->tail + e, "\r\n", 2) == 0 ? 2 : 0);
                        break;
                }
        if (process(f, f->tail, end) < 0)
                return f->error;
        f->tail_len = 0;
        /* MHD_NO here: the body ended inside a part. */
        if (MHD_destroy_post_processor(f->pp) != MHD_YES)
                f->error = -EBADMSG;
        f->pp = NULL;
        return f->error;
}

HttpFormField *http_form_get(HttpForm *f, const char *name) {
        for (size_t i = 0; f && i < f->n_fields; i++)
                if (streq(f->fields[i].name, name))
                        return &f->fields[i];
        return NULL;
}
