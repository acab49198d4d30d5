/* batch-input.c — see batch-input.h. Pure functions over a buffer. */
#include "batch-input.h"
#include "util.h"

static int is_blank(const char *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!strchr(" \t\r\f\v", p[i]))
                        return 0;
        return 1;
}

long batch_input_walk(const char *data, size_t len, BatchLineFn fn, void *userdata) {
        size_t off = 0, line_no = 0, index = 0;

        if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
                off = 3;
        while (off < len) {
                const char *p = data + off, *nl = memchr(p, '\n', len - off);
                size_t n = nl ? (size_t) (nl - p) : len - off;
                BatchLine l;
                int r;

                off += n + (nl ? 1 : 0);
                line_no++;
                if (n > 0 && p[n - 1] == '\r')
                        n--;
                if (is_blank(p, n))
                        continue;
                l = (BatchLine){.index = index++, .line_no = line_no, .p = p, .len = n};
                r = fn(userdata, &l);
                if (r < 0)
                        return r;
        }
        return (long) index;
}

typedef struct Check {
        unsigned max_lines;
        uint64_t max_line_bytes;
        json_t *seen; /* custom_id -> line number */
        char *err;
        size_t err_size;
} Check;

static int check_fail(Check *c, int r, const BatchLine *l, const char *fmt, ...) _printf_(4, 5);
static int check_fail(Check *c, int r, const BatchLine *l, const char *fmt, ...) {
        va_list ap;
        int n = snprintf(c->err, c->err_size, "line %zu: ", l->line_no);

        va_start(ap, fmt);
        if (n >= 0 && (size_t) n < c->err_size)
                vsnprintf(c->err + n, c->err_size - (size_t) n, fmt, ap);
        va_end(ap);
        return r;
}

static int check_line(void *userdata, const BatchLine *l) {
        Check *c = userdata;
        json_auto_t *root = NULL;
        json_error_t jerr;
        const json_t *first, *v;
        const char *id;

        if (l->index >= c->max_lines)
                return check_fail(c, -E2BIG, l, "more than %u requests in one file (jobs.max_lines)",
                                  c->max_lines);
        if (l->len > c->max_line_bytes)
                return check_fail(c, -E2BIG, l, "longer than %llu bytes (jobs.max_line_bytes)",
                                  (unsigned long long) c->max_line_bytes);
        root = json_loadb(l->p, l->len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(root))
                return root ? check_fail(c, -EINVAL, l, "not a JSON object")
                            : check_fail(c, -EINVAL, l, "not JSON: %s (column %d)", jerr.text, jerr.column);
        id = json_string_value(json_object_get(root, "custom_id"));
        if (isempty(id) || strlen(id) > BATCH_MAX_CUSTOM_ID)
                return check_fail(c, -EINVAL, l, "\"custom_id\" must be a string of 1 to %u bytes",
                                  BATCH_MAX_CUSTOM_ID);
        first = json_object_get(c->seen, id);
        if (first)
                return check_fail(c, -EINVAL, l, "custom_id \"%.64s\" already used on line %lld", id,
                                  (long long) json_integer_value(first));
        if (json_object_set_new(c->seen, id, json_integer((json_int_t) l->line_no)) < 0)
                return -ENOMEM;
        v = json_object_get(root, "method");
        if (!json_is_string(v) || !streq(json_string_value(v), "POST"))
                return check_fail(c, -EINVAL, l, "\"method\" must be \"POST\"");
        v = json_object_get(root, "url");
        if (!json_is_string(v) || !streq(json_string_value(v), BATCH_ENDPOINT))
                return check_fail(c, -EINVAL, l, "\"url\" must be \"%s\"", BATCH_ENDPOINT);
        if (!json_is_object(json_object_get(root, "body")))
                return check_fail(c, -EINVAL, l, "\"body\" must be a JSON object");
        return 0;
}

long batch_input_check(const char *data, size_t len, unsigned max_lines, uint64_t max_line_bytes, char *err,
                       size_t err_size) {
        json_auto_t *seen = json_object();
        Check c = {.max_lines = max_lines,
                   .max_line_bytes = max_line_bytes,
                   .seen = seen,
                   .err = err,
                   .err_size = err_size};
        long n;

        if (!seen)
                return -ENOMEM;
        if (err_size > 0)
                err[0] = 0;
        n = batch_input_walk(data, len, check_line, &c);
        if (n == 0) {
                snprintf(err, err_size, "the file has no request lines");
                return -EINVAL;
        }
        return n;
}

int batch_line_parse(const BatchLine *line, char **ret_custom_id, json_t **ret_body) {
        json_auto_t *root = json_loadb(line->p, line->len, 0, NULL);
        const char *id = json_string_value(json_object_get(root, "custom_id"));
        json_t *body = json_object_get(root, "body");
        char *cid;

        if (!id || !json_is_object(body))
                return -EINVAL;
        cid = strdup(id);
        if (!cid)
                return -ENOMEM;
        (void) json_object_del(body, "stream");
        (void) json_object_del(body, "stream_options");
        *ret_custom_id = cid;
        *ret_body = json_incref(body);
        return 0;
}
