/* SPDX-License-Identifier: MIT */
/* plugin-util.c — libmoa-plugin-util, the helpers of <moa/plugin-util.h>
 * (documented there), linked statically into plugins. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <moa/plugin-util.h>

unsigned mu_version(void) {
        return MOA_PLUGIN_UTIL_VERSION_MAJOR * 1000u + MOA_PLUGIN_UTIL_VERSION_MINOR;
}

void mu_buf_free(MuBuf *b) {
        free(b->s);
        b->s = NULL;
        b->len = b->cap = 0;
}

int mu_buf_reserve(MuBuf *b, size_t extra) {
        if (b->oom)
                return -ENOMEM;
        if (b->len + extra + 1 <= b->cap)
                return 0;
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + extra + 1)
                ncap *= 2;
        char *n = realloc(b->s, ncap);
        if (!n) {
                b->oom = 1;
                return -ENOMEM;
        }
        b->s = n;
        b->cap = ncap;
        return 0;
}

void mu_buf_add_n(MuBuf *b, const char *s, size_t n) {
        if (mu_buf_reserve(b, n) < 0)
                return;
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = 0;
}

void mu_buf_add(MuBuf *b, const char *s) {
        mu_buf_add_n(b, s, strlen(s));
}

void mu_buf_printf(MuBuf *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0 || mu_buf_reserve(b, (size_t) n) < 0)
                return;
        va_start(ap, fmt);
        vsnprintf(b->s + b->len, (size_t) n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t) n;
}

char *mu_buf_to_host(const MoaHost *host, const MuBuf *b) {
        if (b->oom)
                return NULL;
        char *r = host->alloc((uint64_t) b->len + 1);
        if (!r)
                return NULL;
        if (b->len)
                memcpy(r, b->s, b->len);
        r[b->len] = 0;
        return r;
}

void mu_buf_rtrim(MuBuf *b) {
        while (b->len > 0 &&
               (b->s[b->len - 1] == '\n' || b->s[b->len - 1] == ' ' || b->s[b->len - 1] == '\t'))
                b->s[--b->len] = 0;
}

int mu_buf_finish(const MoaHost *host, MuBuf *b, char **ret_answer) {
        char *r = b->oom ? NULL : mu_buf_to_host(host, b);

        mu_buf_free(b);
        if (!r)
                return -ENOMEM;
        *ret_answer = r;
        return 0;
}

void mu_set_reason(char *reason, uint32_t size, const char *s) {
        if (!reason || size == 0)
                return;
        size_t n = strlen(s);
        if (n >= size) {
                n = size - 1;
                while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                        n--;
        }
        memcpy(reason, s, n);
        reason[n] = 0;
}

static const char *mu_fold_c3(unsigned char c) {
        /* second byte of U+00C0..U+00FF, upper and lower case */
        static const char *const tab[64] = {
                "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
                "d", "n", "o", "o", "o", "o", "o",  "x", "o", "u", "u", "u", "u", "y", "th", "ss",
                "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
                "d", "n", "o", "o", "o", "o", "o",  "/", "o", "u", "u", "u", "u", "y", "th", "y",
        };
        if (c < 0x80 || c > 0xBF)
                return NULL;
        return tab[c - 0x80];
}

static int mu_is_word_byte(unsigned char c) {
        return isalnum(c) || c == '_' || c == '+' || c == '#' || c >= 0x80;
}

char *mu_normalize(const char *s) {
        size_t n = strnlen(s, MU_MAX_TEXT);
        char *out = malloc(n * 2 + 2);
        if (!out)
                return NULL;
        size_t o = 0;
        int space = 1;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                const char *rep = NULL;
                char one[2] = {0, 0};
                if (c == 0xC3 && i + 1 < n) {
                        rep = mu_fold_c3((unsigned char) s[i + 1]);
                        if (rep)
                                i++;
                } else if (c == 0xC5 && i + 1 < n &&
                           ((unsigned char) s[i + 1] == 0x92 || (unsigned char) s[i + 1] == 0x93)) {
                        rep = "oe";
                        i++;
                } else if (c == 0xE2 && i + 2 < n && (unsigned char) s[i + 1] == 0x80 &&
                           ((unsigned char) s[i + 2] == 0x99 || (unsigned char) s[i + 2] == 0x98)) {
                        rep = " "; /* typographic apostrophes split words like ' does */
                        i += 2;
                }
                if (!rep) {
                        if (mu_is_word_byte(c)) {
                                one[0] = (char) tolower(c);
                                rep = one;
                        } else
                                rep = " ";
                }
                if (rep[0] == ' ' || rep[0] == '/') {
                        if (!space) {
                                out[o++] = ' ';
                                space = 1;
                        }
                        continue;
                }
                for (const char *r = rep; *r; r++)
                        out[o++] = *r;
                space = 0;
        }
        while (o > 0 && out[o - 1] == ' ')
                o--;
        out[o] = 0;
        return out;
}

int mu_text_init(MuText *t, const char *s) {
        memset(t, 0, sizeof(*t));
        t->norm = mu_normalize(s ? s : "");
        if (!t->norm)
                return -ENOMEM;
        const char *p = t->norm;
        while (*p && t->n < MU_MAX_WORDS) {
                const char *e = strchr(p, ' ');
                size_t l = e ? (size_t) (e - p) : strlen(p);
                t->word[t->n] = p;
                t->wlen[t->n] = (uint16_t) (l > 0xFFFF ? 0xFFFF : l);
                t->n++;
                if (!e)
                        break;
                p = e + 1;
        }
        return 0;
}

void mu_text_done(MuText *t) {
        free(t->norm);
        t->norm = NULL;
        t->n = 0;
}

/* Find an occurrence of the one-alternative pattern [p, p+plen)
 * (space-separated words, a trailing '*' on a word = prefix) in @t at word
 * position >= @from. Returns the 1-based word position of the match (its
 * length in *ret_len), 0 if none. */
/* Which words (and which three-letter beginnings) a text has, as two
 * 4096-bit sets: a lexicon rule whose words cannot all be there is skipped
 * without scanning the text. Only ever rules out; a match is still
 * confirmed word by word. */
#define MU_FILTER_BITS 4096u
typedef struct MuFilter {
        uint64_t word[MU_FILTER_BITS / 64];
        uint64_t pre3[MU_FILTER_BITS / 64];
} MuFilter;

static unsigned mu_filter_hash(const char *p, size_t n) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < n; i++)
                h = (h ^ (unsigned char) p[i]) * 16777619u;
        return (h ^ (h >> 13)) & (MU_FILTER_BITS - 1);
}

static void mu_filter_init(MuFilter *f, const MuText *t) {
        memset(f, 0, sizeof(*f));
        for (unsigned w = 0; w < t->n; w++) {
                unsigned h = mu_filter_hash(t->word[w], t->wlen[w]);
                f->word[h / 64] |= UINT64_C(1) << (h % 64);
                if (t->wlen[w] >= 3) {
                        h = mu_filter_hash(t->word[w], 3);
                        f->pre3[h / 64] |= UINT64_C(1) << (h % 64);
                }
        }
}

static int mu_filter_may_have(const MuFilter *f, const char *p, size_t l, int prefix) {
        if (!f)
                return 1;
        if (prefix && l < 3)
                return 1; /* too short to say */
        unsigned h = mu_filter_hash(p, prefix ? 3 : l);
        const uint64_t *set = prefix ? f->pre3 : f->word;
        return (set[h / 64] >> (h % 64)) & 1;
}

static unsigned mu_match_one_from(const MuText *t, const MuFilter *f, const char *p, size_t plen,
                                  unsigned from, unsigned *ret_len) {
        const char *pw[MU_MAX_PATTERN_WORDS];
        size_t pl[MU_MAX_PATTERN_WORDS];
        unsigned np = 0;
        size_t i = 0;
        while (i < plen && np < MU_MAX_PATTERN_WORDS) {
                while (i < plen && p[i] == ' ')
                        i++;
                if (i >= plen)
                        break;
                size_t s = i;
                while (i < plen && p[i] != ' ')
                        i++;
                pw[np] = p + s;
                pl[np] = i - s;
                np++;
        }
        if (np == 0)
                return 0;
        for (unsigned k = 0; k < np; k++) {
                int prefix = pl[k] > 1 && pw[k][pl[k] - 1] == '*';
                if (!mu_filter_may_have(f, pw[k], prefix ? pl[k] - 1 : pl[k], prefix))
                        return 0;
        }
        for (unsigned w = from; w + np <= t->n; w++) {
                unsigned k;
                for (k = 0; k < np; k++) {
                        size_t l = pl[k];
                        int prefix = l > 1 && pw[k][l - 1] == '*';
                        if (prefix)
                                l--;
                        if (prefix ? t->wlen[w + k] < l : t->wlen[w + k] != l)
                                break;
                        if (memcmp(t->word[w + k], pw[k], l) != 0)
                                break;
                }
                if (k == np) {
                        if (ret_len)
                                *ret_len = np;
                        return w + 1;
                }
        }
        return 0;
}

static int mu_match_filtered(const MuText *t, const MuFilter *f, const char *pattern) {
        const char *p = pattern;
        for (;;) {
                const char *bar = strchr(p, '|');
                size_t l = bar ? (size_t) (bar - p) : strlen(p);
                if (mu_match_one_from(t, f, p, l, 0, NULL))
                        return 1;
                if (!bar)
                        return 0;
                p = bar + 1;
        }
}

int mu_match(const MuText *t, const char *pattern) {
        return mu_match_filtered(t, NULL, pattern);
}

static int mu_match_claim_filtered(const MuText *t, const MuFilter *f, const char *pattern,
                                   unsigned char *claimed, unsigned *ret_start, unsigned *ret_len) {
        const char *p = pattern;
        for (;;) {
                const char *bar = strchr(p, '|');
                size_t l = bar ? (size_t) (bar - p) : strlen(p);
                unsigned from = 0, pos, len = 0;
                while ((pos = mu_match_one_from(t, f, p, l, from, &len)) > 0) {
                        unsigned w = pos - 1, k;
                        for (k = 0; k < len; k++)
                                if (claimed[w + k])
                                        break;
                        if (k == len) {
                                for (k = 0; k < len; k++)
                                        claimed[w + k] = 1;
                                *ret_start = w;
                                *ret_len = len;
                                return 1;
                        }
                        from = pos;
                }
                if (!bar)
                        return 0;
                p = bar + 1;
        }
}

int mu_match_claim(const MuText *t, const char *pattern, unsigned char *claimed, unsigned *ret_start,
                   unsigned *ret_len) {
        return mu_match_claim_filtered(t, NULL, pattern, claimed, ret_start, ret_len);
}

double mu_squash(double evidence, double scale) {
        if (!(evidence > 0))
                return 0.0;
        return 1.0 - exp(-evidence / scale);
}

double mu_squash_signed(double evidence, double scale) {
        if (evidence < 0)
                return -mu_squash(-evidence, scale);
        return mu_squash(evidence, scale);
}

void mu_buf_add_words(MuBuf *b, const MuText *t, unsigned start, unsigned len) {
        for (unsigned k = 0; k < len; k++) {
                if (k)
                        mu_buf_add(b, " ");
                mu_buf_add_n(b, t->word[start + k], t->wlen[start + k]);
        }
}

double mu_lex_score(const MuText *t, const MuLex *lex, size_t n, char *reason, uint32_t reason_size) {
        unsigned char claimed[MU_MAX_WORDS];
        double sum = 0;
        MuBuf pos = {0}, neg = {0};
        unsigned npos = 0, nneg = 0;

        MuFilter f;
        mu_filter_init(&f, t);
        memset(claimed, 0, sizeof(claimed));
        for (size_t i = 0; i < n; i++) {
                unsigned start = 0, len = 0;
                if (lex[i].weight > 0) {
                        if (!mu_match_claim_filtered(t, &f, lex[i].pattern, claimed, &start, &len))
                                continue;
                } else if (!mu_match_filtered(t, &f, lex[i].pattern))
                        continue;
                if (lex[i].with && !mu_match_filtered(t, &f, lex[i].with))
                        continue;
                sum += lex[i].weight;
                if (lex[i].weight > 0 && npos < 5) {
                        if (npos)
                                mu_buf_add(&pos, ", ");
                        mu_buf_add_words(&pos, t, start, len);
                        npos++;
                } else if (lex[i].weight < 0 && nneg < 2) {
                        mu_buf_printf(&neg, "%s%s", nneg ? ", " : "",
                                      lex[i].label ? lex[i].label : lex[i].pattern);
                        nneg++;
                }
        }
        if (reason && reason_size) {
                MuBuf r = {0};
                if (npos)
                        mu_buf_printf(&r, "terms: %s", pos.s ? pos.s : "");
                if (nneg)
                        mu_buf_printf(&r, "%sother sense: %s", npos ? "; " : "", neg.s ? neg.s : "");
                if (!npos && !nneg)
                        mu_buf_add(&r, "no domain terms");
                mu_set_reason(reason, reason_size, r.s ? r.s : "");
                mu_buf_free(&r);
        }
        mu_buf_free(&pos);
        mu_buf_free(&neg);
        return sum;
}

const char *mu_option(const MoaHost *host, MoaHostContext *ctx, const char *key) {
        if (!MOA_HOST_HAS(host, config_get))
                return NULL;
        return host->config_get(ctx, key);
}

int mu_option_bool(const MoaHost *host, MoaHostContext *ctx, const char *key, int def) {
        const char *v = mu_option(host, ctx, key);
        if (!v)
                return def;
        if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
                return 1;
        if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
                return 0;
        return def;
}

long mu_option_long(const MoaHost *host, MoaHostContext *ctx, const char *key, long def, long lo, long hi) {
        const char *v = mu_option(host, ctx, key);
        if (!v || !*v)
                return def;
        char *end;
        errno = 0;
        long r = strtol(v, &end, 10);
        if (errno || *end || r < lo || r > hi)
                return def;
        return r;
}

void mu_log(const MoaHost *host, MoaHostContext *ctx, int level, const char *fmt, ...) {
        if (!MOA_HOST_HAS(host, log))
                return;
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        host->log(ctx, level, msg);
}

void mu_add_clipped(MuBuf *b, const char *s, size_t max_chars) {
        size_t n = strlen(s);
        if (n > max_chars) {
                n = max_chars;
                while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                        n--;
                mu_buf_add_n(b, s, n);
                mu_buf_add(b, " [...]");
        } else
                mu_buf_add_n(b, s, n);
}

static int mu_is_email_char(unsigned char c) {
        return isalnum(c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '%';
}

/* Length of an e-mail address starting at @s (local@domain.tld), 0 if none. */
static size_t mu_email_at(const char *s, const char *start) {
        if (s > start && mu_is_email_char((unsigned char) s[-1]))
                return 0;
        size_t i = 0;
        while (mu_is_email_char((unsigned char) s[i]))
                i++;
        if (i == 0 || s[i] != '@')
                return 0;
        i++;
        size_t d = i, dots = 0;
        while (isalnum((unsigned char) s[i]) || s[i] == '-' ||
               (s[i] == '.' && isalnum((unsigned char) s[i + 1]))) {
                if (s[i] == '.')
                        dots++;
                i++;
        }
        if (i == d || dots == 0)
                return 0;
        return i;
}

/* Length of a digit run with separators (space, '-', '.', '/', '(', ')')
 * starting at @s; *ret_digits gets the digit count. */
static size_t mu_digit_run(const char *s, unsigned *ret_digits, char *digits, size_t max) {
        size_t i = 0, nd = 0, last_digit_end = 0;
        if (s[0] == '+')
                i++;
        while (s[i]) {
                if (isdigit((unsigned char) s[i])) {
                        if (nd < max)
                                digits[nd] = s[i];
                        nd++;
                        i++;
                        last_digit_end = i;
                } else if ((s[i] == ' ' || s[i] == '-' || s[i] == '.' || s[i] == '(' || s[i] == ')') &&
                           (isdigit((unsigned char) s[i + 1]) || s[i + 1] == '(' || s[i + 1] == ' '))
                        i++;
                else
                        break;
        }
        *ret_digits = (unsigned) nd;
        return last_digit_end;
}

static int mu_luhn(const char *d, unsigned n) {
        unsigned sum = 0;
        for (unsigned i = 0; i < n; i++) {
                unsigned v = (unsigned) (d[n - 1 - i] - '0');
                if (i % 2 == 1) {
                        v *= 2;
                        if (v > 9)
                                v -= 9;
                }
                sum += v;
        }
        return sum % 10 == 0;
}

/* IBAN: two letters, two digits, 11..30 alphanumerics (spaces allowed in
 * groups of four), mod-97 == 1. Returns its length at @s or 0. */
static size_t mu_iban_at(const char *s, const char *start) {
        if (s > start && isalnum((unsigned char) s[-1]))
                return 0;
        if (!isupper((unsigned char) s[0]) || !isupper((unsigned char) s[1]) ||
            !isdigit((unsigned char) s[2]) || !isdigit((unsigned char) s[3]))
                return 0;
        char buf[40];
        size_t n = 0, i = 0, end = 0;
        while (s[i] && n < sizeof(buf)) {
                if (isalnum((unsigned char) s[i])) {
                        buf[n++] = (char) toupper((unsigned char) s[i]);
                        i++;
                        end = i;
                } else if (s[i] == ' ' && isalnum((unsigned char) s[i + 1]) && n % 4 == 0)
                        i++;
                else
                        break;
        }
        if (n < 15 || n > 34)
                return 0;
        unsigned rem = 0;
        for (size_t k = 0; k < n; k++) {
                char c = buf[(k + 4) % n];
                if (isdigit((unsigned char) c))
                        rem = (rem * 10 + (unsigned) (c - '0')) % 97;
                else if (isupper((unsigned char) c))
                        rem = (rem * 100 + (unsigned) (c - 'A' + 10)) % 97;
                else
                        return 0;
        }
        return rem == 1 ? end : 0;
}

unsigned mu_redact(const char *s, unsigned what, MuBuf *out) {
        unsigned n = 0;
        const char *p = s;
        while (*p) {
                size_t l;
                if ((what & MU_REDACT_EMAIL) && (l = mu_email_at(p, s))) {
                        mu_buf_add(out, "[redacted e-mail]");
                        p += l;
                        n++;
                        continue;
                }
                if ((what & MU_REDACT_IBAN) && (l = mu_iban_at(p, s))) {
                        mu_buf_add(out, "[redacted IBAN]");
                        p += l;
                        n++;
                        continue;
                }
                if ((isdigit((unsigned char) *p) || (*p == '+' && isdigit((unsigned char) p[1]))) &&
                    (p == s || !isalnum((unsigned char) p[-1]))) {
                        char digits[32];
                        unsigned nd;
                        l = mu_digit_run(p, &nd, digits, sizeof(digits));
                        int boundary = !isalnum((unsigned char) p[l]);
                        if (boundary && (what & MU_REDACT_SSN) && l == 11 && nd == 9 && p[3] == '-' &&
                            p[6] == '-') {
                                mu_buf_add(out, "[redacted SSN]");
                                p += l;
                                n++;
                                continue;
                        }
                        if (boundary && (what & MU_REDACT_CARD) && nd >= 13 && nd <= 19 &&
                            mu_luhn(digits, nd)) {
                                mu_buf_add(out, "[redacted card number]");
                                p += l;
                                n++;
                                continue;
                        }
                        int has_sep =
                                memchr(p, ' ', l) || memchr(p, '-', l) || memchr(p, '(', l) || *p == '+';
                        /* 9+ digits (8 with a leading '+'): dates (2024-01-15) and
                         * year ranges (1990-2000) have 8 and stay; so does a US
                         * ZIP+4 code (02110-1301, in every GNU licence's address) */
                        int zip4 = l == 10 && nd == 9 && p[5] == '-';
                        if (boundary && (what & MU_REDACT_PHONE) && (nd >= 9 || (*p == '+' && nd >= 8)) &&
                            nd <= 15 && has_sep && !memchr(p, '.', l) && !zip4) {
                                mu_buf_add(out, "[redacted phone]");
                                p += l;
                                n++;
                                continue;
                        }
                        /* not personal data: copy the whole run so its tail is not re-scanned */
                        if (l == 0)
                                l = 1;
                        mu_buf_add_n(out, p, l);
                        p += l;
                        continue;
                }
                mu_buf_add_n(out, p, 1);
                p++;
        }
        return n;
}

int mu_state_setup(MuState *s, const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                   const char *default_prompt) {
        if (!host || !MOA_HOST_HAS(host, alloc) || !MOA_HOST_HAS(host, free) || !info)
                return -EINVAL;
        s->host = host;
        s->ctx = ctx;
        s->info = info;
        s->prompt = info->prompt && *info->prompt ? info->prompt : default_prompt;
        s->max_passages = (unsigned) mu_option_long(host, ctx, "max_passages", 5, 1, 32);
        s->max_passage_chars = (unsigned) mu_option_long(host, ctx, "max_passage_chars", 1200, 200, 8000);
        s->review = mu_option_bool(host, ctx, "review", 1);
        return 0;
}

int32_t mu_return_prompt(const MuState *s, MuBuf *sys, MuBuf *ctx, char **ret_system, char **ret_context) {
        int32_t r = 0;
        char *a = NULL, *b = NULL;
        if (sys->oom || ctx->oom) {
                r = -ENOMEM;
                goto out;
        }
        a = mu_buf_to_host(s->host, sys);
        if (!a) {
                r = -ENOMEM;
                goto out;
        }
        if (ctx->len > 0) {
                b = mu_buf_to_host(s->host, ctx);
                if (!b) {
                        s->host->free(a);
                        r = -ENOMEM;
                        goto out;
                }
        }
        *ret_system = a;
        *ret_context = b;
out:
        mu_buf_free(sys);
        mu_buf_free(ctx);
        return r;
}

int mu_detect_lang(const char *s) {
        static const char *const words[4] = {
                /* "was" is German too: a tie stays English */
                ("the|and|is|are|of|to|what|how|my|can|i|you|it|for|a|an|in|on|at|by|from|this|that|with|"
                 "as|or|not|be|was|were|has|have|his|her|its|if|will|your|their|they|we"),
                "der|die|das|und|ist|ich|nicht|ein|eine|mit|wie|was|mein|meine|kann|fur|bei|zu",
                "le|la|les|et|est|je|un|une|des|du|pour|que|qui|mon|ma|mes|pas|avec|comment|quel",
                "el|la|los|las|y|es|yo|un|una|del|para|que|mi|mis|con|como|puedo|por|cual|no",
        };
        MuText t;
        if (mu_text_init(&t, s) < 0)
                return MU_LANG_EN;
        unsigned count[4] = {0};
        for (unsigned w = 0; w < t.n && w < 400; w++)
                for (int l = 0; l < 4; l++) {
                        const char *p = words[l];
                        for (;;) {
                                const char *bar = strchr(p, '|');
                                size_t n = bar ? (size_t) (bar - p) : strlen(p);
                                if (t.wlen[w] == n && memcmp(t.word[w], p, n) == 0) {
                                        count[l]++;
                                        break;
                                }
                                if (!bar)
                                        break;
                                p = bar + 1;
                        }
                }
        mu_text_done(&t);
        int best = MU_LANG_EN;
        for (int l = 1; l < 4; l++)
                if (count[l] > count[best])
                        best = l;
        return best;
}

int mu_contains_ci(const char *hay, const char *needle) {
        size_t n = strlen(needle);
        for (const char *p = hay; *p; p++)
                if (strncasecmp(p, needle, n) == 0)
                        return 1;
        return 0;
}

void mu_append_notice(MuBuf *out, const char *answer, const char *const markers[4],
                      const char *const notices[4]) {
        for (int i = 0; i < 4; i++)
                if (mu_contains_ci(answer, markers[i]))
                        return;
        mu_buf_rtrim(out);
        mu_buf_printf(out, "\n\n%s", notices[mu_detect_lang(answer)]);
}
