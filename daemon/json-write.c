/* json-write.c — see json-write.h. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-write.h"

/* Deeper than any body moad builds; json_dumps has no limit of its own
 * (it fails on cycles), this one also fails here instead of recursing on. */
#define JSON_WRITE_MAX_DEPTH 512

typedef struct Out {
        char *buf;
        size_t len, size;
} Out;

static int out_reserve(Out *o, size_t more) {
        if (o->size - o->len > more)
                return 0;
        size_t want = o->size ? o->size : 256;
        while (want - o->len <= more) {
                if (want > SIZE_MAX / 2)
                        return -ENOMEM;
                want *= 2;
        }
        char *n = realloc(o->buf, want);
        if (!n)
                return -ENOMEM;
        o->buf = n;
        o->size = want;
        return 0;
}

static int out_add(Out *o, const char *s, size_t n) {
        if (out_reserve(o, n) < 0)
                return -ENOMEM;
        memcpy(o->buf + o->len, s, n);
        o->len += n;
        return 0;
}

static int out_char(Out *o, char c) {
        return out_add(o, &c, 1);
}

/* Length of the valid UTF-8 sequence at @s (first byte >= 0x80), or 0:
 * the checks of jansson's utf8_check_first/utf8_check_full (no overlong
 * forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_sequence(const unsigned char *s, size_t avail) {
        unsigned char c = s[0];
        size_t n;
        uint32_t cp;

        if (c >= 0xC2 && c <= 0xDF) {
                n = 2;
                cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
                n = 3;
                cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
                n = 4;
                cp = c & 0x07;
        } else
                return 0;
        if (n > avail)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xC0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3F);
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (n == 3 && cp < 0x800) ||
            (n == 4 && cp < 0x10000))
                return 0;
        return n;
}

static int write_string(Out *o, const char *str, size_t len) {
        static const char hex[] = "0123456789ABCDEF";
        const unsigned char *s = (const unsigned char *) str;
        size_t run = 0, i = 0;

        if (out_char(o, '"') < 0)
                return -ENOMEM;
        while (i < len) {
                unsigned char c = s[i];
                if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0x80) {
                        size_t n = utf8_sequence(s + i, len - i);
                        if (n == 0)
                                return -EILSEQ;
                        i += n;
                        continue;
                }
                /* flush the run before the character that needs escaping */
                if (out_add(o, str + run, i - run) < 0)
                        return -ENOMEM;
                char esc[6] = {'\\', 0};
                size_t n = 2;
                switch (c) {
                case '"':
                case '\\':
                        esc[1] = (char) c;
                        break;
                case '\b':
                        esc[1] = 'b';
                        break;
                case '\f':
                        esc[1] = 'f';
                        break;
                case '\n':
                        esc[1] = 'n';
                        break;
                case '\r':
                        esc[1] = 'r';
                        break;
                case '\t':
                        esc[1] = 't';
                        break;
                default:
                        memcpy(esc + 1, "u00", 3);
                        esc[4] = hex[c >> 4];
                        esc[5] = hex[c & 0xF];
                        n = 6;
                }
                if (out_add(o, esc, n) < 0)
                        return -ENOMEM;
                run = ++i;
        }
        if (out_add(o, str + run, len - run) < 0)
                return -ENOMEM;
        return out_char(o, '"');
}

static int write_value(Out *o, const json_t *v, unsigned depth) {
        char num[32];
        int r;

        if (depth > JSON_WRITE_MAX_DEPTH)
                return -ELOOP;
        switch (json_typeof(v)) {
        case JSON_NULL:
                return out_add(o, "null", 4);
        case JSON_TRUE:
                return out_add(o, "true", 4);
        case JSON_FALSE:
                return out_add(o, "false", 5);
        case JSON_INTEGER:
                r = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                return r < 0 ? -EIO : out_add(o, num, (size_t) r);
        case JSON_REAL: {
                /* jansson's own %.17g and its ".0" rule: rare, not worth copying */
                char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
                if (!s)
                        return -ENOMEM;
                r = out_add(o, s, strlen(s));
                free(s);
                return r;
        }
        case JSON_STRING:
                return write_string(o, json_string_value(v), json_string_length(v));
        case JSON_ARRAY: {
                size_t n = json_array_size(v);
                if (out_char(o, '[') < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        if (i > 0 && out_char(o, ',') < 0)
                                return -ENOMEM;
                        r = write_value(o, json_array_get(v, i), depth + 1);
                        if (r < 0)
                                return r;
                }
                return out_char(o, ']');
        }
        case JSON_OBJECT: {
                const char *key;
                json_t *val;
                int first = 1;
                if (out_char(o, '{') < 0)
                        return -ENOMEM;
                /* the iteration json_dumps uses without JSON_SORT_KEYS */
                json_object_foreach((json_t *) v, key, val) {
                        if (!first && out_char(o, ',') < 0)
                                return -ENOMEM;
                        first = 0;
                        r = write_string(o, key, strlen(key));
                        if (r < 0)
                                return r;
                        if (out_char(o, ':') < 0)
                                return -ENOMEM;
                        r = write_value(o, val, depth + 1);
                        if (r < 0)
                                return r;
                }
                return out_char(o, '}');
        }
        }
        return -EINVAL;
}

char *json_write_compact(const json_t *v, size_t *ret_len) {
        Out o = {0};

        /* json_dumps without JSON_ENCODE_ANY: only an object or an array */
        if (!v || (!json_is_object(v) && !json_is_array(v)))
                return NULL;
        if (write_value(&o, v, 0) < 0 || out_char(&o, 0) < 0) {
                free(o.buf);
                return NULL;
        }
        if (ret_len)
                *ret_len = o.len - 1;
        return o.buf;
}
