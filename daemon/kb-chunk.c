/* kb-chunk.c — cutting a document into retrieval chunks along its
 * structure. Finds the headings (Markdown ATX, setext/reStructuredText
 * underlines, numbered section lines, "§ 4" / "Section 4." lines), keeps
 * the heading path of every section and cuts each section into bounded,
 * overlapping chunks that never cross into the next section. Also
 * recomputes the headings of chunks stored without them (schema 1). */
#include <ctype.h>

#include "kb-chunk.h"
#include "kb.h"
#include "util.h"

#define KB_MIN_CHUNK_SIZE 64u
#define KB_MAX_CHUNK_SIZE (1024u * 1024u)
/* A heading line (its title) is at most this long; longer lines are text. */
#define HEADING_MAX_LINE 200u
/* Numbered and "Section" lines: short lines of a few words only. */
#define NUMBERED_MAX_LINE 100u
#define NUMBERED_MAX_WORDS 12u
/* Underline styles told apart (their order of first use is their level). */
#define MAX_STYLES 8u
/* Candidates kept while scanning (markup decides which kinds survive). */
#define MAX_CANDIDATES (2u * KB_MAX_SECTIONS)

static int is_space(unsigned char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_continuation(unsigned char c) {
        return (c & 0xC0) == 0x80;
}

/* ---- lines --------------------------------------------------------------- */

typedef struct Line {
        size_t b, e; /* [b, e): the line without its line break */
        size_t f;    /* first non-blank byte (e if none) */
        size_t t;    /* end without trailing blanks */
        size_t next; /* start of the next line; the end of the text for the last one */
        unsigned indent;
} Line;

static Line line_at(const unsigned char *s, size_t end, size_t pos) {
        const unsigned char *nl = memchr(s + pos, '\n', end - pos);
        Line l = {.b = pos, .e = nl ? (size_t) (nl - s) : end};

        l.next = nl ? l.e + 1 : end;
        l.f = l.b;
        while (l.f < l.e && (s[l.f] == ' ' || s[l.f] == '\t')) {
                l.indent += s[l.f] == '\t' ? 4 : 1;
                l.f++;
        }
        l.t = l.e;
        while (l.t > l.f && is_space(s[l.t - 1]))
                l.t--;
        return l;
}

static int line_blank(const Line *l) {
        return l->t == l->f;
}

static size_t utf8_chars(const unsigned char *s, size_t b, size_t e) {
        size_t n = 0;
        for (size_t i = b; i < e; i++)
                n += !is_continuation(s[i]);
        return n;
}

static unsigned count_words(const unsigned char *s, size_t b, size_t e) {
        unsigned n = 0;
        for (size_t i = b; i < e; i++)
                n += !is_space(s[i]) && (i == b || is_space(s[i - 1]));
        return n;
}

/* ---- what a heading looks like -------------------------------------------- */

/* A setext/RST underline: at most 3 spaces of indent, then at least three
 * of one of = - ~ * ^ and nothing else. Returns the character (0 if @l is
 * no underline) and its count in *ret_n. */
static unsigned char underline_char(const unsigned char *s, const Line *l, size_t *ret_n) {
        if (l->indent > 3 || l->t - l->f < 3 || !s[l->f] || !strchr("=-~*^", s[l->f]))
                return 0;
        for (size_t i = l->f; i < l->t; i++)
                if (s[i] != s[l->f])
                        return 0;
        if (ret_n)
                *ret_n = l->t - l->f;
        return s[l->f];
}

/* "## Title ##": the level (1-6) and the title span, or 0. */
static unsigned atx_level(const unsigned char *s, const Line *l, size_t *ret_tb, size_t *ret_te) {
        size_t p = l->f, tb, te;
        unsigned level = 0;

        if (l->indent > 3)
                return 0;
        while (p < l->t && s[p] == '#' && level < 7) {
                level++;
                p++;
        }
        if (level == 0 || level > 6 || (p < l->t && s[p] != ' ' && s[p] != '\t'))
                return 0;
        while (p < l->t && (s[p] == ' ' || s[p] == '\t'))
                p++;
        tb = p;
        te = l->t;
        /* a closing sequence of '#' counts only after a blank */
        size_t q = te;
        while (q > tb && s[q - 1] == '#')
                q--;
        if (q == tb || s[q - 1] == ' ' || s[q - 1] == '\t') {
                te = q;
                while (te > tb && is_space(s[te - 1]))
                        te--;
        }
        if (te == tb || te - tb > HEADING_MAX_LINE)
                return 0;
        *ret_tb = tb;
        *ret_te = te;
        return level;
}

/* Digits separated by dots at @p ("10.7.3"): the number of components, and
 * where the number ends in *ret_p. At most 3 digits per component. */
static unsigned section_number(const unsigned char *s, size_t p, size_t e, size_t *ret_p) {
        unsigned comps = 0;
        for (;;) {
                size_t d = p;
                while (p < e && isdigit(s[p]) && p - d < 4)
                        p++;
                if (p == d || p - d > 3)
                        return 0;
                comps++;
                if (p + 1 < e && s[p] == '.' && isdigit(s[p + 1]))
                        p++;
                else
                        break;
        }
        *ret_p = p;
        return comps;
}

/* Is the text from @p to @e a plausible title: starts with a capital
 * (or a non-ASCII letter), a few words, one sentence at most? */
static int title_like(const unsigned char *s, size_t p, size_t e) {
        if (p >= e || !(isupper(s[p]) || s[p] >= 0xC0))
                return 0;
        if (count_words(s, p, e) > NUMBERED_MAX_WORDS || (s[e - 1] && strchr(",;:(", s[e - 1])))
                return 0;
        for (size_t i = p; i + 1 < e; i++)
                if ((s[i] == '.' || s[i] == '?' || s[i] == '!') && s[i + 1] == ' ')
                        return 0; /* a second sentence: this is prose */
        return 1;
}

/* "6. Conveying Non-Source Forms." or "10.7.3 Behavior": the level (the
 * number of components) or 0. A single number needs its dot. */
static unsigned numbered_level(const unsigned char *s, const Line *l) {
        size_t p;
        if (l->indent > 3 || l->t - l->b > NUMBERED_MAX_LINE)
                return 0;
        unsigned comps = section_number(s, l->f, l->t, &p);
        if (comps == 0)
                return 0;
        if (p < l->t && s[p] == '.')
                p++;
        else if (comps == 1)
                return 0;
        if (p >= l->t || (s[p] != ' ' && s[p] != '\t'))
                return 0;
        while (p < l->t && (s[p] == ' ' || s[p] == '\t'))
                p++;
        return title_like(s, p, l->t) ? comps : 0;
}

static int prefix_ci(const unsigned char *s, size_t p, size_t e, const char *w) {
        size_t n = strlen(w);
        return e - p > n && strncasecmp((const char *) s + p, w, n) == 0 &&
               (s[p + n] == ' ' || s[p + n] == '\t');
}

/* "§ 4", "§4.2 Scope", "Section 4.", "ARTICLE IV - Term": the level (the
 * number of components, 1 for a roman numeral) or 0. */
static unsigned section_word_level(const unsigned char *s, const Line *l) {
        static const char *const words[] = {"section", "article", "chapter"};
        size_t p = l->f, e = l->t;
        unsigned comps = 0;

        if (l->indent > 3 || e - l->b > NUMBERED_MAX_LINE)
                return 0;
        if (e - p >= 2 && s[p] == 0xC2 && s[p + 1] == 0xA7)
                p += 2;
        else {
                size_t i;
                for (i = 0; i < ELEMENTSOF(words); i++)
                        if (prefix_ci(s, p, e, words[i]))
                                break;
                if (i == ELEMENTSOF(words))
                        return 0;
                p += strlen(words[i]);
        }
        while (p < e && (s[p] == ' ' || s[p] == '\t'))
                p++;
        if (p < e && isdigit(s[p]))
                comps = section_number(s, p, e, &p);
        else {
                size_t b = p;
                while (p < e && p - b < 8 && s[p] && strchr("IVXLCivxlc", s[p]))
                        p++;
                comps = p > b ? 1 : 0;
        }
        if (comps == 0)
                return 0;
        if (p == e)
                return comps;
        if (s[p] == '.' || s[p] == ':' || s[p] == ')')
                p++;
        while (p < e && (s[p] == ' ' || s[p] == '\t' || s[p] == '-'))
                p++;
        if (e - p >= 3 && s[p] == 0xE2 && s[p + 1] == 0x80 && (s[p + 2] == 0x93 || s[p + 2] == 0x94))
                p += 3; /* en or em dash */
        while (p < e && (s[p] == ' ' || s[p] == '\t'))
                p++;
        return p == e || title_like(s, p, e) ? comps : 0;
}

/* List markers at a line start: "1." "12)" are numbered; "a)" "(b)" "iv."
 * "-" "*" "•" are other items. */
enum { MARK_NONE, MARK_NUMBER, MARK_OTHER };

static int list_marker(const unsigned char *s, const Line *l) {
        size_t p = l->f, e = l->t;
        if (p >= e)
                return MARK_NONE;
        if ((s[p] == '-' || s[p] == '*' || s[p] == '+') && p + 1 < e && s[p + 1] == ' ')
                return MARK_OTHER;
        if (e - p >= 3 && s[p] == 0xE2 && s[p + 1] == 0x80 && s[p + 2] == 0xA2)
                return MARK_OTHER;
        if (isdigit(s[p])) {
                while (p < e && isdigit(s[p]))
                        p++;
                return p < e && (s[p] == '.' || s[p] == ')') ? MARK_NUMBER : MARK_NONE;
        }
        if (s[p] == '(')
                p++;
        size_t b = p;
        while (p < e && p - b < 4 && isalpha(s[p]))
                p++;
        return p > b && p < e && (s[p] == ')' || (s[p] == '.' && p - b == 1)) ? MARK_OTHER : MARK_NONE;
}

/* ---- finding the headings ------------------------------------------------- */

enum { KIND_MARKUP, KIND_NUMBERED, KIND_WORD };

typedef struct Heading {
        size_t start;  /* its first line (the overline, if any) */
        size_t end;    /* the end of its last line */
        size_t tb, te; /* the title */
        unsigned level;
        int kind;
} Heading;

/* Scanner state that outlives one text (the migration scans a document
 * chunk by chunk): the underline styles seen, the open headings. */
typedef struct Scan {
        unsigned char style_char[MAX_STYLES];
        uint8_t style_over[MAX_STYLES];
        unsigned n_styles;
        unsigned depth;
        unsigned level[KB_MAX_HEADING_DEPTH];
        char title[KB_MAX_HEADING_DEPTH][KB_MAX_HEADING_BYTES];
} Scan;

/* reStructuredText has no fixed levels: the first underline style used is
 * level 1, the next new one level 2, ... (an overlined style differs from
 * the same character underlined only). */
static unsigned style_level(Scan *sc, unsigned char c, int over) {
        for (unsigned i = 0; i < sc->n_styles; i++)
                if (sc->style_char[i] == c && sc->style_over[i] == over)
                        return i + 1;
        if (sc->n_styles == MAX_STYLES)
                return MAX_STYLES;
        sc->style_char[sc->n_styles] = c;
        sc->style_over[sc->n_styles] = (uint8_t) over;
        return ++sc->n_styles;
}

typedef struct Headings {
        Heading *h;
        size_t n, cap;
        int markup; /* an ATX or setext heading was seen */
} Headings;

/* A heading that is the whole line @l (its title: the line's non-blank text). */
static Heading line_heading(const Line *l, unsigned level, int kind) {
        return (Heading){.start = l->b, .end = l->e, .tb = l->f, .te = l->t, .level = level, .kind = kind};
}

static int headings_add(Headings *hs, Heading h) {
        if (h.kind == KIND_MARKUP)
                hs->markup = 1;
        if (hs->n >= MAX_CANDIDATES)
                return 0; /* past the bound: the line stays text */
        if (hs->n == hs->cap) {
                size_t nc = hs->cap ? hs->cap * 2 : 64;
                Heading *nh = realloc(hs->h, nc * sizeof(Heading));
                if (!nh)
                        return -ENOMEM;
                hs->h = nh;
                hs->cap = nc;
        }
        hs->h[hs->n++] = h;
        return 0;
}

/* May a numbered or "Section" line @l stand alone as a heading? It must
 * follow a blank line (checked by the caller) and be followed by a blank
 * line, or by a line that starts a new capitalised paragraph at the same
 * indent (not a wrapped continuation or an indented definition). */
static int own_line(const unsigned char *s, const Line *l, const Line *n, int next_blank) {
        if (next_blank)
                return 1;
        if (n->indent > l->indent || (s[l->t - 1] && strchr(",;:-", s[l->t - 1])))
                return 0;
        return isupper(s[n->f]) || s[n->f] >= 0xC0;
}

/*
 * find_headings() - every heading line of @s[0, @end): ATX and setext
 * (markup) headings, and numbered or "§"/"Section" lines standing alone.
 * Fenced code blocks are skipped. A numbered line right after a lead-in
 * ending in ':' (or after such list items) is a list item, not a heading.
 * Whether numbered lines may be headings at all is decided by the caller
 * from hs->markup: in a document that marks its headings, they are lists.
 */
static int find_headings(const unsigned char *s, size_t end, Scan *sc, Headings *hs) {
        enum { LIST_NONE, LIST_LEAD, LIST_NUMBERED, LIST_OTHER } list = LIST_NONE;
        Line prev = {0};
        int prev_blank = 1, prev_prev_blank = 1, fence = 0;
        unsigned char fence_ch = 0;
        size_t pos = 0;
        int r;

        while (pos < end) {
                Line l = line_at(s, end, pos);
                int blank = line_blank(&l), heading = 0;

                if (blank)
                        goto next;
                if (l.indent <= 3 && l.t - l.f >= 3 && (s[l.f] == '`' || s[l.f] == '~') &&
                    s[l.f + 1] == s[l.f] && s[l.f + 2] == s[l.f] && (!fence || s[l.f] == fence_ch)) {
                        fence = !fence;
                        fence_ch = s[l.f];
                        goto next;
                }
                if (fence)
                        goto next;

                Line n = l.next < end ? line_at(s, end, l.next)
                                      : (Line){.b = end, .e = end, .f = end, .t = end};
                int next_blank = l.next >= end || line_blank(&n);
                size_t tb, te, un, pn;
                unsigned lv;
                unsigned char uc;

                if ((lv = atx_level(s, &l, &tb, &te))) {
                        r = headings_add(
                                hs, (Heading){.start = l.b, .end = l.e, .tb = tb, .te = te, .level = lv});
                        if (r < 0)
                                return r;
                        heading = 1;
                } else if (!next_blank && l.indent <= 3 && l.t - l.f <= HEADING_MAX_LINE &&
                           (uc = underline_char(s, &n, &un)) && !underline_char(s, &l, NULL)) {
                        size_t tc = utf8_chars(s, l.f, l.t), tol = MAX((size_t) 2, tc / 4);
                        int over = !prev_blank && underline_char(s, &prev, &pn) == uc && prev_prev_blank &&
                                   pn + tol >= tc;
                        if ((prev_blank || over) && un + tol >= tc && un <= tc + tol) {
                                lv = style_level(sc, uc, over);
                                r = headings_add(hs, (Heading){.start = over ? prev.b : l.b,
                                                               .end = n.e,
                                                               .tb = l.f,
                                                               .te = l.t,
                                                               .level = lv});
                                if (r < 0)
                                        return r;
                                /* the underline is part of the heading */
                                prev = n;
                                prev_blank = prev_prev_blank = 0;
                                list = LIST_NONE;
                                pos = n.next;
                                continue;
                        }
                }
                if (!heading && prev_blank && (lv = section_word_level(s, &l)) &&
                    own_line(s, &l, &n, next_blank)) {
                        r = headings_add(hs, line_heading(&l, lv, KIND_WORD));
                        if (r < 0)
                                return r;
                        heading = 1;
                }
                if (!heading && prev_blank && (lv = numbered_level(s, &l)) &&
                    !(lv == 1 && (list == LIST_LEAD || list == LIST_NUMBERED)) &&
                    own_line(s, &l, &n, next_blank)) {
                        r = headings_add(hs, line_heading(&l, lv, KIND_NUMBERED));
                        if (r < 0)
                                return r;
                        heading = 1;
                }

                if (heading)
                        list = LIST_NONE;
                else {
                        int m = list_marker(s, &l);
                        if (m != MARK_NONE && list != LIST_NONE)
                                list = m == MARK_NUMBER ? LIST_NUMBERED : LIST_OTHER;
                        else if (m == MARK_NONE && s[l.t - 1] == ':')
                                list = LIST_LEAD;
                        else if (m == MARK_NONE && l.indent <= 3)
                                list = LIST_NONE;
                }
        next:
                prev_prev_blank = prev_blank;
                prev_blank = blank;
                prev = l;
                pos = l.next;
        }
        return 0;
}

/* Drops the numbered candidates of a document that marks its headings, and
 * everything past KB_MAX_SECTIONS. */
static void headings_settle(Headings *hs) {
        size_t k = 0;
        for (size_t i = 0; i < hs->n && k < KB_MAX_SECTIONS; i++)
                if (!(hs->markup && hs->h[i].kind == KIND_NUMBERED))
                        hs->h[k++] = hs->h[i];
        hs->n = k;
}

/* ---- heading paths ------------------------------------------------------ */

/* Enters heading @h (title in @s) into the open headings. */
static void scan_enter(Scan *sc, const unsigned char *s, const Heading *h) {
        unsigned level = MIN(h->level, KB_MAX_HEADING_DEPTH);
        while (sc->depth > 0 && sc->level[sc->depth - 1] >= level)
                sc->depth--;
        if (sc->depth == KB_MAX_HEADING_DEPTH)
                sc->depth--;

        /* the title with its whitespace collapsed, cut on a character */
        char *o = sc->title[sc->depth];
        size_t k = 0, i;
        for (i = h->tb; i < h->te && k + 1 < KB_MAX_HEADING_BYTES; i++) {
                if (is_space(s[i])) {
                        if (k > 0 && o[k - 1] != ' ')
                                o[k++] = ' ';
                } else
                        o[k++] = (char) s[i];
        }
        if (i < h->te && is_continuation(s[i])) {
                /* cut inside a character: drop its bytes so far */
                while (k > 0 && is_continuation((unsigned char) o[k - 1]))
                        k--;
                if (k > 0)
                        k--;
        }
        while (k > 0 && o[k - 1] == ' ')
                k--;
        o[k] = 0;
        sc->level[sc->depth++] = level;
}

/* The open headings joined by " > " into @buf (KB_MAX_HEADING_BYTES), cut
 * on a character boundary. Returns its length. */
static size_t scan_path(const Scan *sc, char *buf) {
        size_t k = 0;
        buf[0] = 0;
        for (unsigned i = 0; i < sc->depth; i++) {
                const char *t = sc->title[i];
                if (!*t)
                        continue;
                if (k > 0) {
                        if (k + 3 >= KB_MAX_HEADING_BYTES)
                                break;
                        memcpy(buf + k, " > ", 3);
                        k += 3;
                }
                size_t tl = strlen(t);
                if (k + tl >= KB_MAX_HEADING_BYTES) {
                        tl = KB_MAX_HEADING_BYTES - 1 - k;
                        while (tl > 0 && is_continuation((unsigned char) t[tl]))
                                tl--;
                }
                memcpy(buf + k, t, tl);
                k += tl;
        }
        while (k > 0 && buf[k - 1] == ' ')
                k--;
        buf[k] = 0;
        return k;
}

/* ---- cutting a section into chunks --------------------------------------- */

/* Is there a CJK full stop / exclamation / question mark ending at @p? */
static int cjk_sentence_end_before(const unsigned char *s, size_t start, size_t p) {
        if (p < start + 3)
                return 0;
        const unsigned char *q = s + p - 3;
        return (q[0] == 0xE3 && q[1] == 0x80 && q[2] == 0x82) || /* 。 */
               (q[0] == 0xEF && q[1] == 0xBC && q[2] == 0x81) || /* ！ */
               (q[0] == 0xEF && q[1] == 0xBC && q[2] == 0x9F);   /* ？ */
}

/* Where to end the chunk that starts at @start: the last paragraph break,
 * else the last sentence or line end, else the last whitespace in the back
 * half of the window, else a hard cut on a UTF-8 boundary. @len is the end
 * of the section. */
static size_t chunk_cut(const unsigned char *s, size_t len, size_t start, size_t size) {
        size_t end = start + size; /* < len, checked by the caller */
        size_t lo = start + size / 2;
        size_t para = 0, sent = 0, ws = 0;

        for (size_t p = lo; p <= end; p++) {
                if (is_space(s[p])) {
                        if (s[p] == '\n' && p + 1 < len &&
                            (s[p + 1] == '\n' || (s[p + 1] == '\r' && p + 2 < len && s[p + 2] == '\n')))
                                para = p;
                        else if (s[p] == '\n' || s[p - 1] == '.' || s[p - 1] == '!' || s[p - 1] == '?' ||
                                 s[p - 1] == ':' || s[p - 1] == ';')
                                sent = p;
                        else
                                ws = p;
                } else if (cjk_sentence_end_before(s, start, p))
                        sent = p;
        }
        if (para)
                return para;
        if (sent)
                return sent;
        if (ws)
                return ws;

        /* No boundary at all: cut at a character boundary, backing off at
         * most three continuation bytes (more can only be invalid input). */
        size_t p = end;
        for (unsigned i = 0; i < 3 && p > start + 1 && is_continuation(s[p]); i++)
                p--;
        if (is_continuation(s[p]))
                p = end;
        return p;
}

static int chunks_add(KbChunks *c, size_t *cap, size_t offset, size_t len, size_t heading) {
        if (c->n == *cap) {
                size_t nc = *cap ? *cap * 2 : 16;
                KbChunk *nk = realloc(c->chunks, nc * sizeof(KbChunk));
                if (!nk)
                        return -ENOMEM;
                c->chunks = nk;
                *cap = nc;
        }
        c->chunks[c->n++] = (KbChunk){.offset = offset, .len = len, .heading = heading};
        return 0;
}

/* Cuts @s[@start, @len) (one section) into chunks of heading @heading. */
static int chunk_section(const unsigned char *s, size_t start, size_t len, const KbChunkOpts *o,
                         size_t heading, KbChunks *c, size_t *cap) {
        while (start < len && is_space(s[start]))
                start++;

        while (start < len) {
                size_t cut = len - start <= o->chunk_size ? len : chunk_cut(s, len, start, o->chunk_size);
                size_t e = cut;
                while (e > start && is_space(s[e - 1]))
                        e--;
                if (e > start) {
                        int r = chunks_add(c, cap, start, e - start, heading);
                        if (r < 0)
                                return r;
                }
                if (cut >= len)
                        break;

                /* Next chunk: back up by the overlap, then forward to the
                 * start of a word so the overlap never begins mid-word. */
                size_t ns = cut;
                if (o->overlap > 0 && cut - o->overlap > start) {
                        /* Prefer the first sentence start in the overlap, so
                         * the next chunk begins with a whole sentence. */
                        size_t w = cut - o->overlap, p;
                        for (p = w; p < cut; p++)
                                if (is_space(s[p - 1]) && p >= w + 1 &&
                                    (s[p - 1] == '\n' || s[p - 2] == '.' || s[p - 2] == '!' ||
                                     s[p - 2] == '?'))
                                        break;
                        if (p < cut && !is_space(s[p]))
                                ns = p;
                        else {
                                ns = w;
                                while (ns < cut && !is_space(s[ns - 1]))
                                        ns++;
                        }
                }
                while (ns < len && is_space(s[ns]))
                        ns++;
                if (ns <= start) /* cannot happen, but never loop forever */
                        ns = cut;
                start = ns;
        }
        return 0;
}

static int pool_add(KbChunks *c, size_t *cap, const char *str, size_t n, size_t *ret) {
        if (c->headings_len + n + 1 > *cap) {
                size_t nc = MAX(*cap * 2, c->headings_len + n + 1 + 256);
                char *np = realloc(c->headings, nc);
                if (!np)
                        return -ENOMEM;
                c->headings = np;
                *cap = nc;
        }
        *ret = c->headings_len;
        memcpy(c->headings + c->headings_len, str, n);
        c->headings[c->headings_len + n] = 0;
        c->headings_len += n + 1;
        return 0;
}

/** kb_chunks_done() - see kb.h. */
void kb_chunks_done(KbChunks *c) {
        if (!c)
                return;
        free(c->chunks);
        free(c->headings);
        *c = (KbChunks){0};
}

/**
 * kb_chunk_sections() - cut @text into sections at its headings, then each
 * section into chunks per @opts (NULL means KB_CHUNK_OPTS_DEFAULT;
 * chunk_size 0 means 1200).
 *
 * Headings: Markdown ATX lines ("## Title"); setext / reStructuredText
 * titles, a line over an underline of = - ~ * or ^ of about its length
 * (within a quarter, at least 2 characters), optionally with an overline,
 * levels by order of first use as in reStructuredText; and, in documents
 * without such markup only, numbered lines ("6. Conveying Non-Source
 * Forms.", "10.7.3 Behavior") standing alone after a blank line; "§ 4" and
 * "Section 4." lines in any document. A numbered line after a lead-in
 * ending in ':' is a list item and stays in its section's text, as do
 * "a)" and "(b)" items. Lines in ``` or ~~~ fences are never headings.
 *
 * Each section runs from its heading line to the next heading; a heading
 * with no text before a deeper heading opens the chunk of that subsection
 * instead of being a chunk of its own (and lives on in the heading paths
 * below it), so no text is ever dropped. Within a section,
 * chunks are at most chunk_size bytes, end preferably at a paragraph, then
 * a sentence, then whitespace, never inside a UTF-8 sequence, carry no
 * leading or trailing whitespace, and overlap (clamped to chunk_size/4 so
 * chunking always makes progress) inside the section only, starting at the
 * first sentence start in the overlap, else on a word boundary. Every
 * chunk's heading is the path of its section ("4. Source packages > 4.5.
 * Copyright"), "" before the first heading.
 *
 * Returns 0 with @ret filled (release with kb_chunks_done()), -EINVAL for a
 * chunk_size outside [64, 1 MiB] or overlap >= chunk_size, -ENOMEM.
 */
int kb_chunk_sections(const char *text, size_t len, const KbChunkOpts *opts, KbChunks *ret) {
        KbChunkOpts o = opts ? *opts : KB_CHUNK_OPTS_DEFAULT;
        const unsigned char *s = (const unsigned char *) text;

        if (!ret || (!text && len > 0))
                return -EINVAL;
        if (o.chunk_size == 0)
                o.chunk_size = KB_CHUNK_OPTS_DEFAULT.chunk_size;
        if (o.chunk_size < KB_MIN_CHUNK_SIZE || o.chunk_size > KB_MAX_CHUNK_SIZE ||
            o.overlap >= o.chunk_size)
                return -EINVAL;
        o.overlap = MIN(o.overlap, o.chunk_size / 4);

        _cleanup_free_ Scan *sc = calloc(1, sizeof(Scan));
        Headings hs = {0};
        KbChunks c = {0};
        size_t cap = 0, pool_cap = 0, off = 0;
        char path[KB_MAX_HEADING_BYTES];
        int r = -ENOMEM;

        if (!sc)
                return -ENOMEM;
        r = pool_add(&c, &pool_cap, "", 0, &off);
        if (r < 0)
                goto fail;
        r = find_headings(s, len, sc, &hs);
        if (r < 0)
                goto fail;
        headings_settle(&hs);

        /* the text before the first heading */
        r = chunk_section(s, 0, hs.n > 0 ? hs.h[0].start : len, &o, 0, &c, &cap);
        for (size_t i = 0, start = SIZE_MAX; r >= 0 && i < hs.n; i++) {
                const Heading *h = &hs.h[i];
                size_t end = i + 1 < hs.n ? hs.h[i + 1].start : len, p = h->end;

                scan_enter(sc, s, h);
                if (start == SIZE_MAX)
                        start = h->start;
                while (p < end && is_space(s[p]))
                        p++;
                if (p == end && i + 1 < hs.n &&
                    MIN(hs.h[i + 1].level, KB_MAX_HEADING_DEPTH) > MIN(h->level, KB_MAX_HEADING_DEPTH))
                        continue; /* a bare heading: it opens its first subsection's chunk */
                size_t pl = scan_path(sc, path);
                r = pool_add(&c, &pool_cap, path, pl, &off);
                if (r >= 0)
                        r = chunk_section(s, start, end, &o, off, &c, &cap);
                start = SIZE_MAX;
        }
        if (r < 0)
                goto fail;
        free(hs.h);
        *ret = c;
        return 0;

fail:
        free(hs.h);
        kb_chunks_done(&c);
        return r;
}

/**
 * kb_chunk() - kb_chunk_sections() without headings: sets *ret_offsets and
 * *ret_lens (malloc'ed arrays of *ret_n entries). Returns 0 or -errno.
 */
int kb_chunk(const char *text, size_t len, const KbChunkOpts *opts, size_t **ret_offsets, size_t **ret_lens,
             size_t *ret_n) {
        if (!ret_offsets || !ret_lens || !ret_n)
                return -EINVAL;

        KbChunks c = {0};
        int r = kb_chunk_sections(text, len, opts, &c);
        if (r < 0)
                return r;
        _cleanup_free_ size_t *offs = malloc(MAX(c.n, (size_t) 1) * sizeof(size_t));
        _cleanup_free_ size_t *lens = malloc(MAX(c.n, (size_t) 1) * sizeof(size_t));
        if (!offs || !lens) {
                kb_chunks_done(&c);
                return -ENOMEM;
        }
        for (size_t i = 0; i < c.n; i++) {
                offs[i] = c.chunks[i].offset;
                lens[i] = c.chunks[i].len;
        }
        *ret_n = c.n;
        *ret_offsets = TAKE_PTR(offs);
        *ret_lens = TAKE_PTR(lens);
        kb_chunks_done(&c);
        return 0;
}

/** kb_strv_free() - see kb-chunk.h. */
void kb_strv_free(char **v, size_t n) {
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/**
 * kb_chunk_headings_recompute() - see kb-chunk.h. Two passes: the first
 * decides whether the document marks its headings (then numbered lines are
 * not headings), the second walks the chunks in order with one scanner
 * state, so levels and open headings carry from chunk to chunk. A heading
 * at the very start of a chunk is its own; a heading repeated by the
 * overlap of the next chunk is entered again, which changes nothing.
 */
int kb_chunk_headings_recompute(const char *const *texts, const size_t *lens, size_t n, char ***ret) {
        _cleanup_free_ Scan *probe = calloc(1, sizeof(Scan)), *sc = calloc(1, sizeof(Scan));
        char **out = calloc(MAX(n, (size_t) 1), sizeof(char *));
        char path[KB_MAX_HEADING_BYTES];
        int markup = 0, r = 0;

        if (!probe || !sc || !out) {
                free(out);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n && !markup; i++) {
                Headings hs = {0};
                r = find_headings((const unsigned char *) texts[i], lens[i], probe, &hs);
                markup = hs.markup;
                free(hs.h);
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < n; i++) {
                const unsigned char *s = (const unsigned char *) texts[i];
                Headings hs = {.markup = markup};
                size_t f = 0, k = 0;

                r = find_headings(s, lens[i], sc, &hs);
                if (r < 0) {
                        free(hs.h);
                        goto fail;
                }
                hs.markup |= markup;
                headings_settle(&hs);
                while (f < lens[i] && is_space(s[f]))
                        f++;
                for (; k < hs.n && hs.h[k].start <= f; k++)
                        scan_enter(sc, s, &hs.h[k]);
                size_t pl = scan_path(sc, path);
                out[i] = strndup(path, pl);
                for (; k < hs.n; k++)
                        scan_enter(sc, s, &hs.h[k]);
                free(hs.h);
                if (!out[i]) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        *ret = out;
        return 0;

fail:
        kb_strv_free(out, n);
        return r;
}
