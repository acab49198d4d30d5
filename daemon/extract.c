/* extract.c — the builtin provider's extractive algorithms. extract_answer()
 * picks the sentences of an agent's retrieved chunks that best cover the
 * question (bm25-style weighting over the candidate sentences) and cites
 * them; extract_aggregate() merges several weighted answers by agreement and
 * MMR-diverse selection with consistent, renumbered citations. Pure
 * functions: no I/O, deterministic, every loop bounded. Honest retrieval,
 * not a language model. */
#include <ctype.h>
#include <math.h>

#include "extract.h"
#include "kb-text.h"
#include "util.h"

#define EX_MAX_HITS 32u
#define EX_MAX_SENTENCES 512u      /* candidates considered in total */
#define EX_MAX_SENT_PER_SOURCE 64u /* per hit or per proposal */
#define EX_MAX_SENTENCE_BYTES 800u
#define EX_MAX_TERMS 96u /* content words kept per sentence */
#define EX_MAX_QUERY_TERMS 32u
#define EX_MAX_CITES 8u
#define EX_MAX_PROPOSALS 16u
#define EX_MAX_PROPOSAL_BYTES (64u * 1024u)
#define EX_MAX_SOURCES 64u /* Sources: lines per proposal */
#define EX_MAX_SOURCE_BYTES 300u
#define EX_MAX_OUT_SENTENCES 20u
#define EX_DEFAULT_ANSWER_SENTENCES 3u
#define EX_DEFAULT_AGGREGATE_SENTENCES 5u

#define EX_MMR_LAMBDA 0.7
#define EX_MIN_RELATIVE_COVERAGE 0.4 /* of the best sentence's query coverage */
#define EX_DUP_SIMILARITY 0.75       /* at or above: a near-duplicate, never both */
#define EX_MIN_RELATIVE_SCORE 0.3    /* of the best score: weaker sentences are padding */

/* The no-hit messages; extract_aggregate() recognises the first one. */
#define EX_NO_HIT "Nothing in this agent's knowledge base matches the question."
#define EX_NO_HIT_ALL "None of the consulted agents' knowledge bases has a passage on this question."

typedef struct Sent {
        char *text;      /* cleaned sentence, cites removed */
        unsigned src;    /* hit or proposal index */
        unsigned pos;    /* order within its source */
        uint32_t *terms; /* content-word hashes, sorted, with repeats */
        size_t n_terms;
        uint32_t *set; /* the same, unique */
        size_t n_set;
        unsigned cites[EX_MAX_CITES];
        unsigned n_cites;
        int head;   /* index of the section heading's words, -1 if none */
        double cov; /* share of the query's idf this sentence covers */
        double score;
        int selected;
} Sent;

#define EX_MAX_HEADINGS 128u

typedef struct SentList {
        Sent *v;
        size_t n;
        /* Word sets of section headings: context for the sentences below. */
        uint32_t *heads[EX_MAX_HEADINGS];
        size_t n_head_terms[EX_MAX_HEADINGS];
        size_t n_heads;
} SentList;

static void sent_list_done(SentList *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].text);
                free(l->v[i].terms);
                free(l->v[i].set);
        }
        for (size_t i = 0; i < l->n_heads; i++)
                free(l->heads[i]);
        free(l->v);
        l->v = NULL;
        l->n = 0;
        l->n_heads = 0;
}

/* ---- words -------------------------------------------------------------- */

/* Latin-1 letters U+00C0..U+00FF folded to ASCII, 0 for × and ÷. */
static const char latin1_fold[65] = "aaaaaaaceeeeiiii"
                                    "dnooooo\0ouuuuyts"
                                    "aaaaaaaceeeeiiii"
                                    "dnooooo\0ouuuuyty";

/* Crude English suffix stripping, the same on both sides of a comparison:
 * enough to match "pressures"/"pressure", "tested"/"test". */
static size_t stem(char *w, size_t n) {
        if (n > 6 && memcmp(w + n - 4, "ment", 4) == 0)
                return n - 4;
        if (n > 6 && memcmp(w + n - 4, "ness", 4) == 0)
                return n - 4;
        if (n > 5 && memcmp(w + n - 2, "ly", 2) == 0)
                return n - 2;
        if (n > 5 && memcmp(w + n - 3, "ing", 3) == 0)
                return n - 3;
        if (n > 4 && memcmp(w + n - 2, "ed", 2) == 0)
                return n - 2;
        if (n > 4 && memcmp(w + n - 3, "ies", 3) == 0) {
                w[n - 3] = 'y';
                return n - 2;
        }
        if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u' && w[n - 2] != 'i')
                return n - 1;
        return n;
}

static uint32_t fnv1a(const char *s, size_t n) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < n; i++) {
                h ^= (unsigned char) s[i];
                h *= 16777619u;
        }
        return h;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

/* Hash the content words of @s (valid UTF-8, NUL-terminated): lower-cased,
 * Latin-1 accents folded, stop-words dropped unless @keep_stop, stemmed
 * (plural -s, -ies, -ed, -ing, -ment, -ness, -ly).
 * At most @max words. Returns the count; *ret is malloc'ed (NULL if 0). */
static int words_hash(const char *s, int keep_stop, size_t max, uint32_t **ret, size_t *ret_n) {
        const unsigned char *p = (const unsigned char *) s;
        size_t len = strlen(s), n = 0;
        uint32_t *v = NULL;
        char w[64];

        *ret = NULL;
        *ret_n = 0;
        for (size_t i = 0; i < len && n < max;) {
                size_t l = kb_utf8_valid_len(p + i, len - i);
                if (l == 0) {
                        i++;
                        continue;
                }
                uint32_t c = kb_utf8_decode(p + i, l);
                if (!kb_is_word_cp(c)) {
                        i += l;
                        continue;
                }
                size_t wn = 0;
                while (i < len) {
                        l = kb_utf8_valid_len(p + i, len - i);
                        if (l == 0)
                                break;
                        c = kb_utf8_decode(p + i, l);
                        if (!kb_is_word_cp(c))
                                break;
                        if (c < 0x80) {
                                if (wn < sizeof w)
                                        w[wn++] = (char) tolower((int) c);
                        } else if (c >= 0xC0 && c <= 0xFF && latin1_fold[c - 0xC0]) {
                                if (wn < sizeof w)
                                        w[wn++] = latin1_fold[c - 0xC0];
                        } else {
                                for (size_t k = 0; k < l && wn < sizeof w; k++)
                                        w[wn++] = (char) p[i + k];
                        }
                        i += l;
                }
                if (wn < 2 && !(wn == 1 && isdigit((unsigned char) w[0])))
                        continue;
                if (!keep_stop && kb_is_stop_word(w, wn))
                        continue;
                wn = stem(w, wn);
                if (!v) {
                        v = malloc(max * sizeof(uint32_t));
                        if (!v)
                                return -ENOMEM;
                }
                v[n++] = fnv1a(w, wn);
        }
        if (n > 0)
                qsort(v, n, sizeof(uint32_t), cmp_u32);
        *ret = v;
        *ret_n = n;
        return (int) n;
}

static size_t unique_u32(const uint32_t *v, size_t n, uint32_t **ret) {
        *ret = NULL;
        if (n == 0)
                return 0;
        uint32_t *u = malloc(n * sizeof(uint32_t));
        if (!u)
                return (size_t) -1;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (k == 0 || u[k - 1] != v[i])
                        u[k++] = v[i];
        *ret = u;
        return k;
}

static int set_has(const uint32_t *set, size_t n, uint32_t h) {
        if (n == 0)
                return 0;
        return bsearch(&h, set, n, sizeof(uint32_t), cmp_u32) != NULL;
}

static size_t count_of(const uint32_t *v, size_t n, uint32_t h) {
        if (n == 0)
                return 0;
        const uint32_t *p = bsearch(&h, v, n, sizeof(uint32_t), cmp_u32);
        if (!p)
                return 0;
        while (p > v && p[-1] == h)
                p--;
        size_t c = 0;
        while (p < v + n && *p == h) {
                c++;
                p++;
        }
        return c;
}

/* Jaccard similarity of two sorted unique sets. */
static double jaccard(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
        if (na == 0 || nb == 0)
                return 0;
        size_t i = 0, j = 0, inter = 0;
        while (i < na && j < nb) {
                if (a[i] == b[j]) {
                        inter++;
                        i++;
                        j++;
                } else if (a[i] < b[j])
                        i++;
                else
                        j++;
        }
        return (double) inter / (double) (na + nb - inter);
}

/* ---- sentences ------------------------------------------------------- */

static const char *const abbreviations[] = {
        "e.g",    "i.e",  "etc", "vs",  "dr",   "mr",  "mrs", "ms",  "prof", "st",  "fig",
        "approx", "cf",   "inc", "ltd", "jr",   "sr",  "u.s", "u.k", "e.u",  "al",  "art",
        "sec",    "para", "pp",  "vol", "ch",   "no",  "nos", "jan", "feb",  "mar", "apr",
        "jun",    "jul",  "aug", "sep", "sept", "oct", "nov", "dec", "min",  "max", "est",
};

static int is_space_b(unsigned char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Is the word ending just before the '.' at @dot an abbreviation or an
 * initial ("J. Smith")? */
static int abbreviation_before(const char *s, size_t start, size_t dot) {
        size_t b = dot;
        while (b > start && !is_space_b((unsigned char) s[b - 1]) && s[b - 1] != '(' && s[b - 1] != '"')
                b--;
        size_t n = dot - b;
        if (n == 0)
                return 0;
        if (n == 1 && isupper((unsigned char) s[b])) {
                /* An initial ("J. Smith", "John F. Kennedy") follows a
                 * capitalised word or starts the sentence; "A - P." does not. */
                size_t e = b;
                while (e > start && is_space_b((unsigned char) s[e - 1]))
                        e--;
                if (e == start)
                        return 1;
                size_t w = e;
                while (w > start && !is_space_b((unsigned char) s[w - 1]))
                        w--;
                return isupper((unsigned char) s[w]);
        }
        if (n == 1)
                return islower((unsigned char) s[b]) == 0 ? 0 : 1;
        if (n > 8)
                return 0;
        char w[9];
        for (size_t i = 0; i < n; i++)
                w[i] = (char) tolower((unsigned char) s[b + i]);
        w[n] = 0;
        for (size_t i = 0; i < ELEMENTSOF(abbreviations); i++)
                if (streq(w, abbreviations[i]))
                        return 1;
        return 0;
}

/* A Markdown block marker at the start of a line: heading, list item,
 * table row or quote. */
static int line_marker_at(const char *s, size_t len, size_t j) {
        if (j >= len)
                return 0;
        unsigned char c = (unsigned char) s[j];
        if (c == '#' || c == '|' || c == '>')
                return 1;
        if ((c == '-' || c == '*' || c == '+') && j + 1 < len && s[j + 1] == ' ')
                return 1;
        if (isdigit(c)) {
                size_t k = j;
                while (k < len && k - j < 4 && isdigit((unsigned char) s[k]))
                        k++;
                return k + 1 < len && (s[k] == '.' || s[k] == ')') && s[k + 1] == ' ';
        }
        return 0;
}

typedef int (*SentenceFn)(const char *s, size_t len, void *userdata);

/* Split valid UTF-8 @s into raw sentence spans. A span ends after . ! ? (and
 * any closing quote or bracket) followed by space and not an abbreviation or
 * a lower-case continuation, after a CJK full stop, at a blank line, and at
 * a line break before a Markdown block marker or after a heading, colon or
 * sentence end. Other line breaks are soft wraps. Stops early when @fn
 * returns non-zero (returned). */
static int split_sentences(const char *s, size_t len, SentenceFn fn, void *userdata) {
        size_t start = 0;
        while (start < len && is_space_b((unsigned char) s[start]))
                start++;

        int lead_in = 0;
        for (size_t i = start; i < len; i++) {
                unsigned char c = (unsigned char) s[i];
                size_t end = 0; /* exclusive end of the sentence, if any */

                if (c == '\n') {
                        size_t j = i + 1;
                        while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r'))
                                j++;
                        size_t k = i;
                        while (k > start && is_space_b((unsigned char) s[k - 1]))
                                k--;
                        char prev = k > start ? s[k - 1] : 0;
                        int item = line_marker_at(s, len, j) && s[j] != '#' && s[j] != '|';
                        if (j >= len || s[j] == '\n' || s[start] == '#')
                                end = i;
                        else if (item && (prev == ':' || lead_in)) {
                                /* "... only if:" followed by list items: keep the
                                 * items with their lead-in so it reads whole. */
                                lead_in = 1;
                        } else if (line_marker_at(s, len, j) || prev == ':' || prev == '.' || prev == '!' ||
                                   prev == '?')
                                end = i;
                } else if (c == '.' || c == '!' || c == '?') {
                        size_t j = i + 1;
                        while (j < len && (s[j] == '"' || s[j] == '\'' || s[j] == ')' || s[j] == ']'))
                                j++;
                        if (j >= len)
                                end = j;
                        else if (is_space_b((unsigned char) s[j])) {
                                size_t k = j;
                                while (k < len && is_space_b((unsigned char) s[k]))
                                        k++;
                                int lower_next = k < len && islower((unsigned char) s[k]);
                                if (!lower_next && !(c == '.' && abbreviation_before(s, start, i)))
                                        end = j;
                        }
                } else if (c == 0xE3 && i + 2 < len && (unsigned char) s[i + 1] == 0x80 &&
                           (unsigned char) s[i + 2] == 0x82) /* 。 */
                        end = i + 3;
                else if (c == 0xEF && i + 2 < len && (unsigned char) s[i + 1] == 0xBC &&
                         ((unsigned char) s[i + 2] == 0x81 || (unsigned char) s[i + 2] == 0x9F)) /* ！？ */
                        end = i + 3;

                if (end) {
                        if (end > start) {
                                int r = fn(s + start, end - start, userdata);
                                if (r != 0)
                                        return r;
                        }
                        start = end;
                        lead_in = 0;
                        while (start < len && is_space_b((unsigned char) s[start]))
                                start++;
                        i = start - 1;
                }
        }
        if (start < len)
                return fn(s + start, len - start, userdata);
        return 0;
}

/* Clean one raw span: collapse whitespace, drop Markdown markers and "**",
 * optionally pull out " [n]" citations into @cites. Returns a malloc'ed
 * string ("" if nothing is left) or NULL on OOM; *ret_heading is 1 for a
 * Markdown heading, 2 for a table row (neither is an answer sentence). */
static char *clean_sentence(const char *s, size_t len, int parse_cites, unsigned *cites, unsigned *n_cites,
                            int *ret_heading) {
        size_t i = 0;
        while (i < len && is_space_b((unsigned char) s[i]))
                i++;
        *ret_heading = i < len && s[i] == '#' ? 1 : i < len && s[i] == '|' ? 2 : 0;
        while (i < len && (s[i] == '#' || s[i] == '>' || s[i] == '|'))
                i++;
        if (i + 1 < len && (s[i] == '-' || s[i] == '*' || s[i] == '+') && s[i + 1] == ' ')
                i += 2;
        else if (i < len && isdigit((unsigned char) s[i])) {
                size_t k = i;
                while (k < len && k - i < 4 && isdigit((unsigned char) s[k]))
                        k++;
                if (k + 1 < len && (s[k] == '.' || s[k] == ')') && s[k + 1] == ' ')
                        i = k + 2;
        }

        size_t cap = MIN(len - MIN(i, len), (size_t) EX_MAX_SENTENCE_BYTES) + 4;
        char *out = malloc(cap);
        if (!out)
                return NULL;
        size_t o = 0;
        int truncated = 0;
        if (n_cites)
                *n_cites = 0;

        for (; i < len; i++) {
                unsigned char c = (unsigned char) s[i];
                if (is_space_b(c)) {
                        if (o > 0 && out[o - 1] != ' ')
                                out[o++] = ' ';
                } else if (c == '*' && i + 1 < len && s[i + 1] == '*') {
                        i++;
                } else if (parse_cites && c == '[' && (o == 0 || !isalnum((unsigned char) out[o - 1]))) {
                        size_t k = i + 1;
                        unsigned v = 0;
                        while (k < len && k - i <= 3 && isdigit((unsigned char) s[k]))
                                v = v * 10 + (unsigned) (s[k++] - '0');
                        if (k > i + 1 && k < len && s[k] == ']') {
                                if (*n_cites < EX_MAX_CITES)
                                        cites[(*n_cites)++] = v;
                                if (o > 0 && out[o - 1] == ' ')
                                        o--;
                                i = k;
                        } else
                                out[o++] = (char) c;
                } else
                        out[o++] = (char) c;

                if (o >= EX_MAX_SENTENCE_BYTES) {
                        truncated = 1;
                        break;
                }
        }
        if (truncated) {
                /* Cut back to a word boundary, never inside a UTF-8 sequence. */
                size_t k = o;
                while (k > o / 2 && out[k - 1] != ' ')
                        k--;
                if (k > o / 2)
                        o = k - 1;
                else {
                        size_t c0 = o - 1;
                        while (c0 > 0 && ((unsigned char) out[c0] & 0xC0) == 0x80)
                                c0--;
                        if (kb_utf8_valid_len((const unsigned char *) out + c0, o - c0) != o - c0)
                                o = c0;
                }
                memcpy(out + o, "...", 3);
                o += 3;
        }
        while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == ';' || out[o - 1] == ','))
                o--;
        /* "word ." left behind by a removed citation */
        if (o >= 2 && out[o - 2] == ' ' && (out[o - 1] == '.' || out[o - 1] == '!' || out[o - 1] == '?')) {
                out[o - 2] = out[o - 1];
                o--;
        }
        out[o] = 0;
        return out;
}

static size_t count_words(const char *s) {
        size_t n = 0;
        int in = 0;
        for (; *s; s++) {
                if (*s == ' ')
                        in = 0;
                else if (!in) {
                        in = 1;
                        n++;
                }
        }
        return n;
}

typedef struct SplitCtx {
        SentList *list;
        unsigned src;
        unsigned pos;
        int parse_cites;
        size_t min_words;
        int cur_head;
        int oom;
} SplitCtx;

static int on_sentence(const char *s, size_t len, void *userdata) {
        SplitCtx *c = userdata;
        if (c->list->n >= EX_MAX_SENTENCES || c->pos >= EX_MAX_SENT_PER_SOURCE)
                return 1;

        Sent st = {.src = c->src, .head = c->cur_head};
        int heading;
        st.text = clean_sentence(s, len, c->parse_cites, st.cites, &st.n_cites, &heading);
        if (!st.text) {
                c->oom = 1;
                return 1;
        }
        if (!c->parse_cites && islower((unsigned char) st.text[0])) {
                /* Knowledge text: a chunk overlap that began inside a
                 * sentence, or a list item fragment ("use-after-free and
                 * double free;") that needs its lead-in to make sense. */
                free(st.text);
                return 0;
        }
        if (heading == 1) {
                /* A section heading ("## Choking") gives context to the
                 * sentences below it; the document title ("# ...") would
                 * only favour the first chunk, so it is not used. */
                SentList *l = c->list;
                size_t level = 0;
                while (level < len && s[level] == '#')
                        level++;
                c->cur_head = -1;
                if (level >= 2 && l->n_heads < EX_MAX_HEADINGS) {
                        uint32_t *all = NULL, *set = NULL;
                        size_t n_all = 0;
                        if (words_hash(st.text, 0, EX_MAX_TERMS, &all, &n_all) < 0) {
                                free(st.text);
                                c->oom = 1;
                                return 1;
                        }
                        size_t k = unique_u32(all, n_all, &set);
                        free(all);
                        if (k == (size_t) -1) {
                                free(st.text);
                                c->oom = 1;
                                return 1;
                        }
                        l->heads[l->n_heads] = set;
                        l->n_head_terms[l->n_heads] = k;
                        c->cur_head = (int) l->n_heads++;
                }
                free(st.text);
                return 0;
        }
        size_t tl = strlen(st.text);
        /* A lead-in to a list ("... only if:") says nothing on its own. */
        if (heading || (tl > 0 && st.text[tl - 1] == ':') || count_words(st.text) < c->min_words ||
            strstr(st.text, EX_NO_HIT)) {
                free(st.text);
                return 0;
        }
        /* exact duplicates (overlapping chunks) are kept once */
        for (size_t i = 0; i < c->list->n; i++)
                if (streq(c->list->v[i].text, st.text)) {
                        free(st.text);
                        return 0;
                }
        if (words_hash(st.text, 0, EX_MAX_TERMS, &st.terms, &st.n_terms) < 0) {
                free(st.text);
                c->oom = 1;
                return 1;
        }
        size_t k = unique_u32(st.terms, st.n_terms, &st.set);
        if (k == (size_t) -1) {
                free(st.text);
                free(st.terms);
                c->oom = 1;
                return 1;
        }
        st.n_set = k;
        st.pos = c->pos++;
        c->list->v[c->list->n++] = st;
        return 0;
}

static int split_into(SentList *l, const char *text, size_t len, unsigned src, int parse_cites,
                      size_t min_words) {
        size_t clen;
        char *clean = kb_utf8_sanitize(text, len, &clen);
        if (!clean)
                return -ENOMEM;
        SplitCtx c = {
                .list = l, .src = src, .parse_cites = parse_cites, .min_words = min_words, .cur_head = -1};
        (void) split_sentences(clean, clen, on_sentence, &c);
        free(clean);
        return c.oom ? -ENOMEM : 0;
}

/* Print @text with @cite inserted before its final punctuation:
 * "... mmHg [1]." */
static void print_cited(FILE *f, const char *text, const unsigned *cites, size_t n_cites) {
        size_t len = strlen(text);
        char last = len > 0 ? text[len - 1] : 0;
        int punct = last == '.' || last == '!' || last == '?';
        if (punct && len >= 3 && memcmp(text + len - 3, "...", 3) == 0)
                punct = 0;
        fwrite(text, 1, punct ? len - 1 : len, f);
        for (size_t i = 0; i < n_cites; i++)
                fprintf(f, i == 0 ? " [%u]" : "[%u]", cites[i]);
        fputc(punct ? last : '.', f);
}

/* Titles come from the database (already repaired) or from callers; print
 * them repaired and bounded either way. */
static int fput_clean(FILE *f, const char *s) {
        _cleanup_free_ char *c = kb_utf8_sanitize(s ?: "", s ? strnlen(s, 1024) : 0, NULL);
        if (!c)
                return -ENOMEM;
        fputs(c, f);
        return 0;
}

static char *finish_stream(FILE *f, char **buf) {
        if (fflush(f) != 0 || ferror(f)) {
                fclose(f);
                free(*buf);
                return NULL;
        }
        fclose(f);
        return *buf;
}

/* ---- extract_answer --------------------------------------------------- */

static int in_heading(const SentList *l, const Sent *s, uint32_t h) {
        return s->head >= 0 && set_has(l->heads[s->head], l->n_head_terms[s->head], h);
}

static int cmp_score_desc(const void *a, const void *b) {
        const Sent *x = *(Sent *const *) a, *y = *(Sent *const *) b;
        if (x->score != y->score)
                return x->score > y->score ? -1 : 1;
        if (x->src != y->src)
                return x->src < y->src ? -1 : 1;
        return x->pos < y->pos ? -1 : x->pos > y->pos;
}

typedef struct OrderCtx {
        const KbHit *hits;
        const unsigned *doc_rank; /* per hit: rank of its document's first hit */
} OrderCtx;

static int cmp_doc_order(const void *a, const void *b, void *userdata) {
        const OrderCtx *oc = userdata;
        const Sent *x = *(Sent *const *) a, *y = *(Sent *const *) b;
        unsigned rx = oc->doc_rank[x->src], ry = oc->doc_rank[y->src];
        if (rx != ry)
                return rx < ry ? -1 : 1;
        unsigned cx = oc->hits[x->src].chunk, cy = oc->hits[y->src].chunk;
        if (cx != cy)
                return cx < cy ? -1 : 1;
        if (x->src != y->src)
                return x->src < y->src ? -1 : 1;
        return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Strip the '[' ']' match markers of a snippet (and repair its UTF-8). */
static char *snippet_plain(const char *raw) {
        size_t n;
        _cleanup_free_ char *s = kb_utf8_sanitize(raw, strnlen(raw, 4096), &n);
        if (!s)
                return NULL;
        char *o = malloc(n + 1);
        if (!o)
                return NULL;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (s[i] != '[' && s[i] != ']')
                        o[k++] = s[i] == '\n' ? ' ' : s[i];
        o[k] = 0;
        return o;
}

/**
 * extract_answer() - the sentences of @hits that best answer @query, cited.
 *
 * Candidates are the sentences of the first 32 hits (at most 512; headings,
 * fragments under three words and duplicates from overlapping chunks
 * dropped). Each is scored like bm25 over the candidate set: for every query
 * content word it contains, idf x saturated tf with length normalisation;
 * the sum is multiplied by (0.5 + covered share of the query's idf) and by a
 * small prior from its hit's rank score. The best are taken greedily (up to
 * @max_sentences, default 3, at most 20), skipping near-duplicates and
 * anything under 30% of the best score or covering under 40% of what the
 * best-covering sentence covers, then printed in document order
 * with "[n]" per sentence and a "Sources:" list "[n] title, chunk k". With
 * no hits, or no sentence sharing a word with the query, it says so (the
 * latter quoting the top snippet). Returns a malloc'ed string, NULL on OOM.
 */
char *extract_answer(const char *query, const KbHit *hits, size_t n_hits, unsigned max_sentences) {
        if (max_sentences == 0)
                max_sentences = EX_DEFAULT_ANSWER_SENTENCES;
        max_sentences = MIN(max_sentences, EX_MAX_OUT_SENTENCES);
        n_hits = hits ? MIN(n_hits, (size_t) EX_MAX_HITS) : 0;

        char *buf = NULL;
        size_t buf_len = 0;
        FILE *f = open_memstream(&buf, &buf_len);
        if (!f)
                return NULL;

        if (n_hits == 0) {
                fputs(EX_NO_HIT, f);
                return finish_stream(f, &buf);
        }

        SentList l = {.v = calloc(EX_MAX_SENTENCES, sizeof(Sent))};
        uint32_t *q_all = NULL, *q = NULL;
        size_t n_q_all = 0, n_q = 0;
        Sent **order = NULL;
        char *result = NULL, *qclean = NULL;
        if (!l.v)
                goto out;

        for (size_t h = 0; h < n_hits; h++) {
                const char *t = hits[h].text ?: "";
                if (split_into(&l, t, strlen(t), (unsigned) h, 0, 3) < 0)
                        goto out;
        }

        /* Query words; if only stop-words, use them. */
        qclean = kb_utf8_sanitize(query ?: "", query ? strnlen(query, 4096) : 0, NULL);
        if (!qclean)
                goto out;
        if (words_hash(qclean, 0, EX_MAX_QUERY_TERMS, &q_all, &n_q_all) < 0)
                goto out;
        if (n_q_all == 0 && words_hash(qclean, 1, EX_MAX_QUERY_TERMS, &q_all, &n_q_all) < 0)
                goto out;
        n_q = unique_u32(q_all, n_q_all, &q);
        if (n_q == (size_t) -1)
                goto out;

        /* bm25 over the candidate sentences */
        double N = (double) l.n, avglen = 0, idf_total = 0;
        double idf[EX_MAX_QUERY_TERMS];
        for (size_t i = 0; i < l.n; i++)
                avglen += (double) l.v[i].n_terms;
        avglen = l.n > 0 ? MAX(avglen / N, 1.0) : 1.0;
        for (size_t t = 0; t < n_q; t++) {
                size_t df = 0;
                for (size_t i = 0; i < l.n; i++)
                        df += set_has(l.v[i].set, l.v[i].n_set, q[t]);
                idf[t] = log(1.0 + (N - (double) df + 0.5) / ((double) df + 0.5));
                idf_total += idf[t];
        }
        double max_hit = 0;
        for (size_t h = 0; h < n_hits; h++)
                max_hit = MAX(max_hit, hits[h].score);

        const double k1 = 1.2, b = 0.75;
        double best = 0, best_cov = 0;
        for (size_t i = 0; i < l.n; i++) {
                Sent *s = &l.v[i];
                double sc = 0, covered = 0;
                for (size_t t = 0; t < n_q; t++) {
                        /* a word of the section heading counts half */
                        double tf = (double) count_of(s->terms, s->n_terms, q[t]) +
                                    (in_heading(&l, s, q[t]) ? 0.5 : 0.0);
                        if (tf == 0)
                                continue;
                        double dl = (double) s->n_terms / avglen;
                        sc += idf[t] * (tf * (k1 + 1)) / (tf + k1 * (1 - b + b * dl));
                        covered += idf[t];
                }
                s->cov = idf_total > 0 ? covered / idf_total : 0;
                if (sc > 0) {
                        double prior = max_hit > 0 ? hits[s->src].score / max_hit : 0;
                        sc *= (0.5 + s->cov) * (1.0 + 0.1 * prior);
                }
                s->score = sc;
                best = MAX(best, sc);
                best_cov = MAX(best_cov, s->cov);
        }

        order = malloc(MAX(l.n, (size_t) 1) * sizeof(Sent *));
        if (!order)
                goto out;
        for (size_t i = 0; i < l.n; i++)
                order[i] = &l.v[i];
        qsort(order, l.n, sizeof(Sent *), cmp_score_desc);

        size_t n_sel = 0;
        for (size_t i = 0; i < l.n && n_sel < max_sentences; i++) {
                Sent *s = order[i];
                if (!(s->score > 0) || s->score < EX_MIN_RELATIVE_SCORE * best)
                        break;
                /* Matching only a minor word of the question ("apply" in
                 * "does GDPR apply to logs") is not an answer. */
                if (s->cov < EX_MIN_RELATIVE_COVERAGE * best_cov)
                        continue;
                int dup = 0;
                for (size_t j = 0; j < n_sel && !dup; j++)
                        dup = jaccard(s->set, s->n_set, order[j]->set, order[j]->n_set) >= EX_DUP_SIMILARITY;
                if (dup)
                        continue;
                s->selected = 1;
                order[n_sel++] = s; /* compact selected to the front (j <= i) */
        }

        if (n_sel == 0) {
                /* The index matched (perhaps a heading or a folded form), no
                 * sentence did: be honest and show the closest passage. */
                _cleanup_free_ char *snip = snippet_plain(hits[0].snippet ?: "");
                if (!snip)
                        goto out;
                fprintf(f,
                        "No sentence in this agent's knowledge base answers the question directly. "
                        "The closest passage is: \"%s\" [1]\n\nSources:\n[1] ",
                        snip);
                if (fput_clean(f, hits[0].title) < 0)
                        goto out;
                fprintf(f, ", chunk %u\n", hits[0].chunk);
                result = finish_stream(f, &buf);
                f = NULL;
                goto out;
        }

        /* Document order: documents by their best hit, then chunk, then
         * position. */
        unsigned doc_rank[EX_MAX_HITS];
        for (size_t h = 0; h < n_hits; h++) {
                doc_rank[h] = (unsigned) h;
                for (size_t g = 0; g < h; g++)
                        if (streq_ptr(hits[g].title, hits[h].title)) {
                                doc_rank[h] = doc_rank[g];
                                break;
                        }
        }
        OrderCtx oc = {.hits = hits, .doc_rank = doc_rank};
        qsort_r(order, n_sel, sizeof(Sent *), cmp_doc_order, &oc);

        /* Number the sources by first use. */
        unsigned cite_of_hit[EX_MAX_HITS] = {};
        unsigned n_cited = 0;
        unsigned cited_hit[EX_MAX_HITS];
        for (size_t i = 0; i < n_sel; i++) {
                unsigned h = order[i]->src;
                if (!cite_of_hit[h]) {
                        cited_hit[n_cited] = h;
                        cite_of_hit[h] = ++n_cited;
                }
                if (i > 0)
                        fputc(' ', f);
                print_cited(f, order[i]->text, &cite_of_hit[h], 1);
        }
        fputs("\n\nSources:\n", f);
        for (unsigned c = 0; c < n_cited; c++) {
                fprintf(f, "[%u] ", c + 1);
                if (fput_clean(f, hits[cited_hit[c]].title) < 0)
                        goto out;
                fprintf(f, ", chunk %u\n", hits[cited_hit[c]].chunk);
        }
        result = finish_stream(f, &buf);
        f = NULL;

out:
        if (f) {
                fclose(f);
                free(buf);
        }
        free(order);
        free(qclean);
        free(q_all);
        free(q);
        sent_list_done(&l);
        return result;
}

/* ---- extract_aggregate ------------------------------------------------ */

typedef struct SourceRef {
        unsigned n;
        char *text;
        int attributed; /* already ends in "(agent)": an earlier aggregate's line */
} SourceRef;

/* Does @t end in " (name)" with a short name without spaces? */
static int has_attribution(const char *t) {
        size_t n = strlen(t);
        if (n < 4 || t[n - 1] != ')')
                return 0;
        size_t k = n - 1;
        while (k > 0 && t[k - 1] != '(' && n - k < 64) {
                char c = t[k - 1];
                if (c == ' ' || c == ')' || c == ',')
                        return 0;
                k--;
        }
        return k >= 2 && t[k - 1] == '(' && k < n - 1 && t[k - 2] == ' ';
}

typedef struct Prop {
        const char *agent;
        double weight;
        SourceRef src[EX_MAX_SOURCES];
        size_t n_src;
        int no_hit;
} Prop;

/* Find the "Sources:" line; returns the offset of the line or @len. */
static size_t find_sources(const char *s, size_t len) {
        for (size_t i = 0; i + 8 <= len; i++) {
                if ((i == 0 || s[i - 1] == '\n') && memcmp(s + i, "Sources:", 8) == 0) {
                        size_t k = i + 8;
                        while (k < len && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r'))
                                k++;
                        if (k >= len || s[k] == '\n')
                                return i;
                }
        }
        return len;
}

static int parse_sources(Prop *p, const char *s, size_t len) {
        size_t i = 0;
        while (i < len && p->n_src < EX_MAX_SOURCES) {
                size_t e = i;
                while (e < len && s[e] != '\n')
                        e++;
                size_t k = i;
                while (k < e && (s[k] == ' ' || s[k] == '\t'))
                        k++;
                if (k < e && s[k] == '[') {
                        size_t d = k + 1;
                        unsigned v = 0;
                        while (d < e && d - k <= 3 && isdigit((unsigned char) s[d]))
                                v = v * 10 + (unsigned) (s[d++] - '0');
                        if (d > k + 1 && d < e && s[d] == ']') {
                                d++;
                                while (d < e && (s[d] == ' ' || s[d] == '\t'))
                                        d++;
                                size_t te = e;
                                while (te > d && is_space_b((unsigned char) s[te - 1]))
                                        te--;
                                size_t n = MIN(te - d, (size_t) EX_MAX_SOURCE_BYTES);
                                while (n > 0 && n < te - d && ((unsigned char) s[d + n] & 0xC0) == 0x80)
                                        n--;
                                char *t = strndup(s + d, n);
                                if (!t)
                                        return -ENOMEM;
                                p->src[p->n_src++] =
                                        (SourceRef){.n = v, .text = t, .attributed = has_attribution(t)};
                        }
                }
                i = e + 1;
        }
        return 0;
}

static const SourceRef *source_of(const Prop *p, unsigned n) {
        for (size_t i = 0; i < p->n_src; i++)
                if (p->src[i].n == n)
                        return &p->src[i];
        return NULL;
}

/**
 * extract_aggregate() - merge weighted proposals into one cited answer.
 *
 * Each proposal (at most 16, 64 KB each) is split into its body and its
 * "Sources:" list; body sentences (at most 64 per proposal) lose their
 * "[n]" citations, which are remembered. A sentence's score is its
 * proposal's weight x (1 + agreement) x (0.5 + 0.5 x query coverage), where
 * agreement is the sum, over the OTHER proposals, of the best Jaccard
 * similarity of content-word sets with any of their sentences. Selection is
 * greedy MMR (lambda 0.7 on the normalised score against the similarity to
 * what is already chosen), never taking a near-duplicate (Jaccard >= 0.75),
 * ignoring sentences under 30% of the best score, at most @max_sentences
 * (default 5, at most 20), in selection order.
 * Citations are renumbered into one "Sources:" list "[n] source (agent)"
 * (a line that already names its agent is kept as is).
 * Proposals that only say their knowledge has nothing are ignored; if all
 * do, says so. Returns a malloc'ed string, NULL on OOM.
 */
char *extract_aggregate(const char *query, const ExtractProposal *props, size_t n, unsigned max_sentences) {
        if (max_sentences == 0)
                max_sentences = EX_DEFAULT_AGGREGATE_SENTENCES;
        max_sentences = MIN(max_sentences, EX_MAX_OUT_SENTENCES);
        n = props ? MIN(n, (size_t) EX_MAX_PROPOSALS) : 0;

        char *buf = NULL, *result = NULL;
        size_t buf_len = 0;
        FILE *f = open_memstream(&buf, &buf_len);
        if (!f)
                return NULL;

        SentList l = {.v = calloc(EX_MAX_SENTENCES, sizeof(Sent))};
        Prop *ps = calloc(MAX(n, (size_t) 1), sizeof(Prop));
        uint32_t *q_all = NULL, *q = NULL;
        size_t n_q_all = 0, n_q = 0;
        Sent **sel = NULL;
        char *qclean = NULL;
        if (!l.v || !ps)
                goto out;

        for (size_t i = 0; i < n; i++) {
                const char *raw = props[i].text ?: "";
                size_t len;
                _cleanup_free_ char *t = kb_utf8_sanitize(raw, strnlen(raw, EX_MAX_PROPOSAL_BYTES), &len);
                if (!t)
                        goto out;
                ps[i].agent = props[i].agent ?: "";
                double w = props[i].weight;
                ps[i].weight = isfinite(w) && w > 0 ? MIN(w, 1e6) : 1e-6;
                ps[i].no_hit = strstr(t, EX_NO_HIT) != NULL;
                size_t so = find_sources(t, len);
                if (so < len && parse_sources(&ps[i], t + so, len - so) < 0)
                        goto out;
                if (split_into(&l, t, so, (unsigned) i, 1, 2) < 0)
                        goto out;
        }

        if (l.n == 0) {
                /* Nothing to select: the best substantive proposal verbatim,
                 * else an honest "nothing". */
                size_t best = n;
                for (size_t i = 0; i < n; i++) {
                        const char *t = props[i].text;
                        if (ps[i].no_hit || isempty(t))
                                continue;
                        size_t k = 0;
                        while (t[k] && is_space_b((unsigned char) t[k]))
                                k++;
                        if (!t[k])
                                continue;
                        if (best == n || ps[i].weight > ps[best].weight)
                                best = i;
                }
                if (best < n) {
                        size_t len = strnlen(props[best].text, EX_MAX_PROPOSAL_BYTES);
                        _cleanup_free_ char *c = kb_utf8_sanitize(props[best].text, len, NULL);
                        if (!c)
                                goto out;
                        fputs(c, f);
                } else
                        fputs(EX_NO_HIT_ALL, f);
                result = finish_stream(f, &buf);
                f = NULL;
                goto out;
        }

        qclean = kb_utf8_sanitize(query ?: "", query ? strnlen(query, 4096) : 0, NULL);
        if (!qclean)
                goto out;
        if (words_hash(qclean, 0, EX_MAX_QUERY_TERMS, &q_all, &n_q_all) < 0)
                goto out;
        n_q = unique_u32(q_all, n_q_all, &q);
        if (n_q == (size_t) -1)
                goto out;

        /* agreement-weighted scores */
        double max_score = 0;
        for (size_t i = 0; i < l.n; i++) {
                Sent *s = &l.v[i];
                double best[EX_MAX_PROPOSALS] = {};
                for (size_t j = 0; j < l.n; j++)
                        if (l.v[j].src != s->src)
                                best[l.v[j].src] = MAX(best[l.v[j].src],
                                                       jaccard(s->set, s->n_set, l.v[j].set, l.v[j].n_set));
                double agreement = 0;
                for (size_t p = 0; p < n; p++)
                        agreement += best[p];
                size_t covered = 0;
                for (size_t t = 0; t < n_q; t++)
                        covered += set_has(s->set, s->n_set, q[t]);
                double cov = n_q > 0 ? (double) covered / (double) n_q : 0;
                /* Query relevance matters too: a sentence sharing no word
                 * with the question keeps half its weight. */
                s->score = ps[s->src].weight * (1.0 + agreement) * (0.5 + 0.5 * cov);
                max_score = MAX(max_score, s->score);
        }

        /* greedy MMR */
        sel = malloc(max_sentences * sizeof(Sent *));
        if (!sel)
                goto out;
        size_t n_sel = 0;
        while (n_sel < max_sentences) {
                Sent *pick = NULL;
                double pick_val = -INFINITY;
                for (size_t i = 0; i < l.n; i++) {
                        Sent *s = &l.v[i];
                        if (s->selected)
                                continue;
                        double red = 0;
                        for (size_t j = 0; j < n_sel; j++)
                                red = MAX(red, jaccard(s->set, s->n_set, sel[j]->set, sel[j]->n_set));
                        if (red >= EX_DUP_SIMILARITY || s->score < EX_MIN_RELATIVE_SCORE * max_score)
                                continue;
                        double v = EX_MMR_LAMBDA * (s->score / max_score) - (1 - EX_MMR_LAMBDA) * red;
                        if (v > pick_val) { /* strict: ties keep the earlier sentence */
                                pick_val = v;
                                pick = s;
                        }
                }
                if (!pick)
                        break;
                pick->selected = 1;
                sel[n_sel++] = pick;
        }

        /* renumber citations */
        /* Merged source lines "title, chunk k (agent)"; a line that already
         * names its agent (from an earlier aggregation) is kept as is. */
        char *gs[EX_MAX_OUT_SENTENCES * EX_MAX_CITES];
        size_t n_gs = 0;
        for (size_t i = 0; i < n_sel; i++) {
                Sent *s = sel[i];
                unsigned out_cites[EX_MAX_CITES];
                size_t n_out = 0;
                for (size_t c = 0; c < s->n_cites; c++) {
                        const SourceRef *src = source_of(&ps[s->src], s->cites[c]);
                        if (!src)
                                continue;
                        const char *agent = ps[s->src].agent;
                        _cleanup_free_ char *line = NULL;
                        if (src->attributed || !*agent)
                                line = strdup(src->text);
                        else if (asprintf(&line, "%s (%s)", src->text, agent) < 0)
                                line = NULL;
                        if (!line)
                                goto gs_oom;
                        size_t g = 0;
                        while (g < n_gs && !streq(gs[g], line))
                                g++;
                        if (g == n_gs)
                                gs[n_gs++] = TAKE_PTR(line);
                        unsigned num = (unsigned) g + 1;
                        int seen = 0;
                        for (size_t k = 0; k < n_out; k++)
                                seen |= out_cites[k] == num;
                        if (!seen)
                                out_cites[n_out++] = num;
                }
                if (i > 0)
                        fputc(' ', f);
                print_cited(f, s->text, out_cites, n_out);
        }
        if (n_gs > 0) {
                fputs("\n\nSources:\n", f);
                for (size_t g = 0; g < n_gs; g++)
                        fprintf(f, "[%zu] %s\n", g + 1, gs[g]);
        }
        for (size_t g = 0; g < n_gs; g++)
                free(gs[g]);
        result = finish_stream(f, &buf);
        f = NULL;
        goto out;

gs_oom:
        for (size_t g = 0; g < n_gs; g++)
                free(gs[g]);
out:
        if (f) {
                fclose(f);
                free(buf);
        }
        free(sel);
        free(qclean);
        free(q_all);
        free(q);
        if (ps)
                for (size_t i = 0; i < n; i++)
                        for (size_t k = 0; k < ps[i].n_src; k++)
                                free(ps[i].src[k].text);
        free(ps);
        sent_list_done(&l);
        return result;
}
