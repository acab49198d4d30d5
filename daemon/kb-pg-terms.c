/* kb-pg-terms.c — see kb-pg-terms.h. */
#include <libstemmer.h>

#include "kb-pg-terms.h"
#include "kb-text.h"
#include "kb.h"
#include "terms.h"
#include "util.h"

/* A lexeme longer than this is cut (PostgreSQL keeps up to 2 KiB; no
 * statistic worth having lives in a word this long). */
#define KB_PG_TERM_MAX_BYTES 255u

const char *kb_pg_stemmer_name(const char *language) {
        static const char *const names[] = {"english", "german", "french", "spanish"};
        for (size_t i = 0; language && i < ELEMENTSOF(names); i++)
                if (streq(language, names[i]))
                        return names[i];
        return NULL;
}

/* The length of the character at @q[i] (@q is valid UTF-8 of @len bytes)
 * and in *@ret_word whether it belongs to a word: an ASCII letter or digit,
 * or any character of more than one byte but U+FFFD, which stands for
 * replaced invalid bytes (a symbol, not a letter). */
static size_t char_at(const char *q, size_t len, size_t i, int *ret_word) {
        unsigned char c = (unsigned char) q[i];
        size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        n = MIN(n, len - i);
        if (c < 0x80)
                *ret_word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        else
                *ret_word = !(n == 3 && c == 0xef && (unsigned char) q[i + 1] == 0xbf &&
                              (unsigned char) q[i + 2] == 0xbd);
        return n;
}

/* Lower-case @w in place: ASCII, and Latin-1's capitals (U+00C0..U+00DE but
 * U+00D7), which stay two bytes long. */
static void lower(char *w, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) w[i];
                if (c >= 'A' && c <= 'Z')
                        w[i] = (char) (c + 32);
                else if (c == 0xc3 && i + 1 < n) {
                        unsigned char d = (unsigned char) w[i + 1];
                        if (d >= 0x80 && d <= 0x9e && d != 0x97)
                                w[i + 1] = (char) (d + 0x20);
                        i++;
                }
        }
}

static int seen(char **v, size_t n, const char *t) {
        for (size_t i = 0; i < n; i++)
                if (streq(v[i], t))
                        return 1;
        return 0;
}

int kb_pg_terms(const char *language, struct sb_stemmer *stemmer, const char *query, size_t max, char ***ret,
                size_t *ret_n) {
        size_t n = 0, ql;

        if (!query || !ret || !ret_n || max == 0)
                return -EINVAL;
        _cleanup_free_ char *q = kb_utf8_sanitize(query, strnlen(query, KB_MAX_QUERY_BYTES), &ql);
        if (!q)
                return -ENOMEM;
        char **v = calloc(max, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < ql && n < max;) {
                int word;
                size_t k = char_at(q, ql, i, &word);
                if (!word) {
                        i += k;
                        continue;
                }
                size_t start = i;
                while (i < ql && (k = char_at(q, ql, i, &word), word))
                        i += k;
                char w[KB_PG_TERM_MAX_BYTES + 1];
                size_t len = MIN(i - start, (size_t) KB_PG_TERM_MAX_BYTES);
                /* never cut inside a UTF-8 sequence */
                while (len > 0 && len < i - start && ((unsigned char) q[start + len] & 0xc0) == 0x80)
                        len--;
                memcpy(w, q + start, len);
                w[len] = 0;
                lower(w, len);
                if (kb_pg_is_stop_word(language, w) || (len < TERM_MAX_BYTES && terms_is_function_word(w)))
                        continue;
                char t[KB_PG_TERM_MAX_BYTES + 1];
                memcpy(t, w, len + 1);
                if (stemmer) {
                        const sb_symbol *st = sb_stemmer_stem(stemmer, (const sb_symbol *) w, (int) len);
                        int sl = st ? sb_stemmer_length(stemmer) : 0;
                        if (sl > 0 && (size_t) sl <= KB_PG_TERM_MAX_BYTES) {
                                memcpy(t, st, (size_t) sl);
                                t[sl] = 0;
                        }
                }
                if (seen(v, n, t))
                        continue;
                if (!(v[n] = strdup(t))) {
                        strv_free_n(v, n);
                        return -ENOMEM;
                }
                n++;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}
