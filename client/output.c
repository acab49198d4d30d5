/* output.c — how moactl shows things: tolerant JSON field getters (a reply
 * missing a field prints "-", it never crashes) and plain-text tables whose
 * cells are stripped of control characters, since every cell comes from
 * the daemon. */
#include "moactl.h"

struct Table {
        size_t n_cols;
        char **cells; /* n_rows + 1 (header) rows of n_cols */
        size_t n_rows;
        size_t cap_rows;
};

const char *json_str(const json_t *o, const char *key, const char *def) {
        const char *s = json_string_value(json_object_get(o, key));

        return s ? s : def;
}

double json_num(const json_t *o, const char *key, double def) {
        json_t *v = json_object_get(o, key);

        return json_is_number(v) ? json_number_value(v) : def;
}

long long json_int(const json_t *o, const char *key, long long def) {
        json_t *v = json_object_get(o, key);
        double d;

        if (json_is_integer(v))
                return json_integer_value(v);
        if (!json_is_real(v))
                return def;
        d = json_real_value(v);
        /* A hostile double must not become undefined behaviour in the cast. */
        if (!(d > -9.0e18 && d < 9.0e18))
                return def;
        return (long long) d;
}

const char *json_yes_no(const json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);

        if (!json_is_boolean(v))
                return "-";
        return json_is_true(v) ? "yes" : "no";
}

void json_fmt_num(char *buf, size_t n, const json_t *o, const char *key, int decimals, const char *suffix) {
        json_t *v = json_object_get(o, key);

        if (json_is_number(v))
                snprintf(buf, n, "%.*f%s", decimals, json_number_value(v), suffix ? suffix : "");
        else
                snprintf(buf, n, "-");
}

/* Columns count characters, not bytes: skip UTF-8 continuation bytes. */
static size_t display_width(const char *s) {
        size_t w = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xc0) != 0x80)
                        w++;
        return w;
}

static char *sanitized_dup(const char *s) {
        char *d, *p;

        d = strdup(s ? s : "-");
        if (!d)
                return NULL;
        for (p = d; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = *p == '\n' || *p == '\t' ? ' ' : '?';
        return d;
}

Table *table_new(size_t n_cols, const char *const *headers) {
        Table *t;

        if (n_cols == 0)
                return NULL;
        t = calloc(1, sizeof(Table));
        if (!t)
                return NULL;
        t->n_cols = n_cols;
        t->n_rows = 0;
        t->cells = NULL;
        /* The header is row 0 of the same storage. */
        if (table_add(t, headers) < 0)
                return table_free(t);
        return t;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

int table_add(Table *t, const char *const *cells) {
        size_t base;

        if (t->n_rows == t->cap_rows) {
                size_t cap = MAX(t->cap_rows * 2, (size_t) 8);
                char **c = reallocarray(t->cells, cap * t->n_cols, sizeof(char *));

                if (!c)
                        return -ENOMEM;
                t->cells = c;
                t->cap_rows = cap;
        }
        base = t->n_rows * t->n_cols;
        for (size_t i = 0; i < t->n_cols; i++) {
                t->cells[base + i] = sanitized_dup(cells[i]);
                if (!t->cells[base + i]) {
                        while (i > 0)
                                free(t->cells[base + --i]);
                        return -ENOMEM;
                }
        }
        t->n_rows++;
        return 0;
}

/* Print @s cut to @max characters (0: no limit); returns characters printed. */
static size_t print_cut(FILE *f, const char *s, size_t max) {
        size_t w = display_width(s), n = 0;

        if (max == 0 || w <= max) {
                fputs(s, f);
                return w;
        }
        if (max <= 3) {
                fprintf(f, "%.*s", (int) max, "...");
                return max;
        }
        for (; *s; s++) {
                if (((unsigned char) *s & 0xc0) != 0x80) {
                        if (n == max - 3)
                                break;
                        n++;
                }
                fputc(*s, f);
        }
        fputs("...", f);
        return max;
}

void table_print(const Table *t, FILE *f, size_t max_width) {
        _cleanup_free_ size_t *widths = calloc(t->n_cols, sizeof(size_t));

        if (!widths)
                return;
        for (size_t r = 0; r < t->n_rows; r++)
                for (size_t c = 0; c < t->n_cols; c++) {
                        size_t w = display_width(t->cells[r * t->n_cols + c]);

                        if (max_width > 0)
                                w = MIN(w, max_width);
                        widths[c] = MAX(widths[c], w);
                }

        for (size_t r = 0; r < t->n_rows; r++) {
                for (size_t c = 0; c < t->n_cols; c++) {
                        size_t w = print_cut(f, t->cells[r * t->n_cols + c], max_width);

                        if (c + 1 < t->n_cols)
                                fprintf(f, "%*s", (int) (widths[c] - w + 2), "");
                }
                fputc('\n', f);
        }
}

void print_sanitized(FILE *f, const char *s, size_t len) {
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];

                if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
                        fputc('?', f);
                else
                        fputc(c, f);
        }
}

void print_raw(const Reply *reply) {
        if (reply->size > 0)
                fwrite(reply->body, 1, reply->size, stdout);
        if (reply->size == 0 || reply->body[reply->size - 1] != '\n')
                fputc('\n', stdout);
}
