/* citations.c — see citations.h. The builtin provider writes each quoted
 * sentence as "<quote> [n]." followed by a "Sources:" list; parsing that
 * back is enough to name every quote's passage, whatever layers merged it,
 * and works on the final text after the plugins' review. */
#include <ctype.h>

#include "citations.h"
#include "util.h"

#define CITE_MAX_SOURCES 64u
#define CITE_MAX_AGENT 64u

typedef struct SourceLine {
        unsigned n;
        const CitePassage *p; /* NULL: names no known passage */
} SourceLine;

static int is_ws(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int citation_quote_in(const char *quote, const char *text) {
        if (isempty(quote) || !text)
                return 0;
        /* Naive scan with white space runs matched as one: quotes are a
         * sentence and chunks about a kilobyte, both bounded by callers. */
        for (const char *t = text; *t; t++) {
                const char *a = quote, *b = t;
                if (is_ws(*b) && (b > text && is_ws(b[-1])))
                        continue;
                while (*a && *b) {
                        if (is_ws(*a) && is_ws(*b)) {
                                while (is_ws(*a))
                                        a++;
                                while (is_ws(*b))
                                        b++;
                                continue;
                        }
                        if (*a != *b)
                                break;
                        a++, b++;
                }
                if (!*a)
                        return 1;
        }
        return 0;
}

/* The "Sources:" line at a line start, followed by the end of the line;
 * returns its offset or @len. */
static size_t find_sources(const char *s, size_t len) {
        for (size_t i = 0; i + 8 <= len; i++)
                if ((i == 0 || s[i - 1] == '\n') && memcmp(s + i, "Sources:", 8) == 0) {
                        size_t k = i + 8;
                        while (k < len && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r'))
                                k++;
                        if (k >= len || s[k] == '\n')
                                return i;
                }
        return len;
}

/* "title, chunk k" or "title, chunk k (agent)" (@l bytes) → the passage. */
static const CitePassage *resolve(const char *l, size_t len, const CitePassage *p, size_t n) {
        char agent[CITE_MAX_AGENT + 1] = "";
        size_t e = len, k;
        unsigned chunk = 0;

        if (e > 0 && l[e - 1] == ')') {
                k = e - 1;
                while (k > 0 && l[k - 1] != '(' && e - k < CITE_MAX_AGENT)
                        k--;
                if (k >= 2 && l[k - 1] == '(' && l[k - 2] == ' ') {
                        size_t al = e - 1 - k;
                        memcpy(agent, l + k, al);
                        agent[al] = 0;
                        agent[strcspn(agent, "#")] = 0; /* self-MoA "legal#2" */
                        e = k - 2;
                }
        }
        k = e;
        while (k > 0 && isdigit((unsigned char) l[k - 1]) && e - k < 9)
                k--;
        if (k == e || k < 8 || memcmp(l + k - 8, ", chunk ", 8) != 0)
                return NULL;
        for (size_t i = k; i < e; i++)
                chunk = chunk * 10 + (unsigned) (l[i] - '0');
        size_t tl = k - 8;
        for (size_t i = 0; i < n; i++)
                if (p[i].chunk == chunk && strlen(p[i].title) == tl && memcmp(p[i].title, l, tl) == 0 &&
                    (!*agent || streq(p[i].agent, agent)))
                        return &p[i];
        return NULL;
}

/* The "[n] ..." lines after "Sources:"; returns how many name a passage. */
static size_t parse_sources(const char *s, size_t len, const CitePassage *p, size_t n, SourceLine *out,
                            size_t *ret_n) {
        size_t i = 0, n_out = 0, resolved = 0;

        while (i < len && n_out < CITE_MAX_SOURCES) {
                size_t e = i, d;
                unsigned v = 0;

                while (e < len && s[e] != '\n')
                        e++;
                if (i < e && s[i] == '[') {
                        for (d = i + 1; d < e && d - i <= 4 && isdigit((unsigned char) s[d]); d++)
                                v = v * 10 + (unsigned) (s[d] - '0');
                        if (d > i + 1 && d + 1 < e && s[d] == ']' && s[d + 1] == ' ') {
                                size_t te = e;
                                while (te > d + 2 && is_ws(s[te - 1]))
                                        te--;
                                out[n_out] = (SourceLine){.n = v, .p = resolve(s + d + 2, te - d - 2, p, n)};
                                resolved += out[n_out].p != NULL;
                                n_out++;
                        }
                } else if (i < e && n_out > 0)
                        break; /* the list ended (a plugin's notice follows) */
                i = e + 1;
        }
        *ret_n = n_out;
        return resolved;
}

static const CitePassage *source_passage(const SourceLine *src, size_t n, unsigned num) {
        for (size_t i = 0; i < n; i++)
                if (src[i].n == num)
                        return src[i].p;
        return NULL;
}

static int append(json_t *a, unsigned number, const CitePassage *p, const char *quote) {
        if (json_array_size(a) >= CITATIONS_MAX)
                return 0;
        return json_array_append_new(
                a, json_pack("{s:I,s:s,s:s,s:s,s:I,s:s?,s:b}", "number", (json_int_t) number, "agent",
                             p->agent, "document", p->title, "source", p->source ? p->source : "", "chunk",
                             (json_int_t) p->chunk, "quote", quote, "attached", p->attached));
}

/* A marker group " [1][2]" at @i (the space) followed by . ! or ? and then
 * white space or the end: returns its end (after the punctuation), or 0. */
static size_t marker_group(const char *s, size_t len, size_t i, unsigned *nums, size_t *ret_n) {
        size_t k = i + 1, n = 0;

        while (k < len && s[k] == '[') {
                size_t d = k + 1;
                unsigned v = 0;
                while (d < len && d - k <= 4 && isdigit((unsigned char) s[d]))
                        v = v * 10 + (unsigned) (s[d++] - '0');
                if (d == k + 1 || d >= len || s[d] != ']')
                        return 0;
                if (n < 8)
                        nums[n++] = v;
                k = d + 1;
        }
        if (n == 0 || k >= len || (s[k] != '.' && s[k] != '!' && s[k] != '?'))
                return 0;
        if (k + 1 < len && !is_ws(s[k + 1]))
                return 0;
        *ret_n = n;
        return k + 1;
}

static int quoted(json_t *a, const char *body, size_t len, const SourceLine *src, size_t n_src) {
        size_t start = 0;

        while (start < len && is_ws(body[start]))
                start++;
        for (size_t i = start; i < len; i++) {
                unsigned nums[8];
                size_t n_nums = 0, end;

                if (body[i] != ' ' || i + 1 >= len || body[i + 1] != '[')
                        continue;
                end = marker_group(body, len, i, nums, &n_nums);
                if (!end)
                        continue;
                size_t ql = i - start;
                if (ql >= 3 && memcmp(body + start + ql - 3, "...", 3) == 0)
                        ql -= 3; /* a sentence cut short: the quote is what was kept */
                while (ql > 0 && is_ws(body[start + ql - 1]))
                        ql--;
                _cleanup_free_ char *q = strndup(body + start, ql);
                if (!q)
                        return -ENOMEM;
                for (size_t k = 0; k < n_nums; k++) {
                        const CitePassage *p = source_passage(src, n_src, nums[k]);
                        if (!p)
                                continue;
                        if (append(a, nums[k], p, citation_quote_in(q, p->text) ? q : NULL) < 0)
                                return -ENOMEM;
                }
                start = end;
                while (start < len && is_ws(body[start]))
                        start++;
                i = start - (start > 0);
        }
        return 0;
}

json_t *citations_build(const char *answer, const CitePassage *p, size_t n, int extractive) {
        _cleanup_(json_decrefp) json_t *a = json_array();
        SourceLine src[CITE_MAX_SOURCES];
        size_t len, so, n_src = 0;

        if (!a)
                return NULL;
        len = answer ? strnlen(answer, CITATIONS_MAX_ANSWER_BYTES) : 0;
        so = find_sources(answer ? answer : "", len);
        if (so < len && parse_sources(answer + so + 8, len - so - 8, p, n, src, &n_src) > 0) {
                if (quoted(a, answer, so, src, n_src) < 0)
                        return NULL;
                return TAKE_PTR(a);
        }
        if (extractive)
                return TAKE_PTR(a);
        for (size_t i = 0; i < n; i++)
                if (append(a, p[i].number, &p[i], NULL) < 0)
                        return NULL;
        return TAKE_PTR(a);
}
