/* terms.c — words for the router: folding, joined forms, elisions, function
 * words, language guess and Snowball stemming (see terms.h). */
#include <libstemmer.h>

#include "kb-text.h"
#include "terms.h"
#include "util.h"

struct Terms {
        struct sb_stemmer *stemmer[TERM_LANG_MAX];
};

static const char *const lang_names[TERM_LANG_MAX] = {"en", "de", "fr", "es"};
static const char *const stemmer_names[TERM_LANG_MAX] = {"english", "german", "french", "spanish"};

const char *term_lang_name(TermLang lang) {
        return lang < TERM_LANG_MAX ? lang_names[lang] : "en";
}

Terms *terms_free(Terms *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < TERM_LANG_MAX; i++)
                if (t->stemmer[i])
                        sb_stemmer_delete(t->stemmer[i]);
        free(t);
        return NULL;
}

int terms_new(Terms **ret) {
        Terms *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < TERM_LANG_MAX; i++) {
                t->stemmer[i] = sb_stemmer_new(stemmer_names[i], "UTF_8");
                if (!t->stemmer[i]) {
                        terms_free(t);
                        return -ENOTSUP;
                }
        }
        *ret = t;
        return 0;
}

void term_list_done(TermList *l) {
        if (!l)
                return;
        free(l->v);
        *l = TERM_LIST_INIT;
}

/* ---- function words ------------------------------------------------------ */

/* Function words and question fillers, folded (no accents), sorted per
 * language for bsearch. They carry no domain and vote for the language. */
static const char *const stop_en[] = {
        "a",     "about", "all",   "also",   "am",    "an",    "and",    "any",  "are",  "as",    "at",
        "be",    "been",  "being", "but",    "by",    "can",   "could",  "did",  "do",   "does",  "doing",
        "for",   "from",  "get",   "got",    "had",   "has",   "have",   "he",   "her",  "here",  "him",
        "his",   "how",   "i",     "if",     "in",    "into",  "is",     "it",   "its",  "just",  "me",
        "might", "more",  "most",  "much",   "must",  "my",    "no",     "not",  "now",  "of",    "on",
        "or",    "our",   "out",   "please", "shall", "she",   "should", "so",   "some", "such",  "than",
        "that",  "the",   "their", "them",   "then",  "there", "these",  "they", "this", "those", "to",
        "too",   "up",    "us",    "very",   "was",   "we",    "were",   "what", "when", "where", "which",
        "while", "who",   "whom",  "why",    "will",  "with",  "would",  "you",  "your",
};
static const char *const stop_de[] = {
        "aber",   "als",   "am",    "an",    "auch", "auf",  "aus",   "bei",   "bin",    "bis",   "da",
        "das",    "dass",  "dem",   "den",   "der",  "des",  "die",   "doch",  "du",     "durch", "ein",
        "eine",   "einem", "einen", "einer", "es",   "fur",  "gibt",  "habe",  "haben",  "hat",   "ich",
        "ihr",    "im",    "in",    "ist",   "ja",   "kann", "mein",  "meine", "mich",   "mir",   "mit",
        "muss",   "nach",  "nicht", "noch",  "oder", "sich", "sie",   "sind",  "so",     "soll",  "uber",
        "um",     "und",   "uns",   "von",   "vor",  "war",  "warum", "was",   "welche", "wenn",  "wer",
        "werden", "wie",   "wieso", "wir",   "wird", "zu",   "zum",   "zur",
};
static const char *const stop_fr[] = {
        "au",   "aux",  "avec",     "ce",    "ces",  "cette", "comment", "dans",  "de",    "des",
        "dois", "donc", "du",       "elle",  "en",   "est",   "et",      "etre",  "faire", "il",
        "ils",  "je",   "la",       "le",    "les",  "leur",  "lui",     "ma",    "mais",  "me",
        "mes",  "moi",  "mon",      "ne",    "nous", "on",    "ou",      "par",   "pas",   "peut",
        "peux", "pour", "pourquoi", "quand", "que",  "quel",  "quelle",  "quels", "qui",   "quoi",
        "sa",   "sans", "se",       "ses",   "son",  "sont",  "suis",    "sur",   "ta",    "te",
        "tes",  "toi",  "ton",      "tu",    "un",   "une",   "vos",     "votre", "vous",
};
static const char *const stop_es[] = {
        "al",  "como", "con",  "cual", "cuando", "de",    "debo", "del", "donde",  "el",    "ella", "en",
        "es",  "esta", "este", "hay",  "la",     "las",   "le",   "lo",  "los",    "mas",   "me",   "mi",
        "mis", "muy",  "no",   "nos",  "o",      "para",  "pero", "por", "porque", "puedo", "que",  "se",
        "si",  "sin",  "son",  "su",   "sus",    "tengo", "tu",   "un",  "una",    "uno",   "y",    "yo",
};

static const struct {
        const char *const *words;
        size_t n;
} stop_lists[TERM_LANG_MAX] = {
        {stop_en, ELEMENTSOF(stop_en)},
        {stop_de, ELEMENTSOF(stop_de)},
        {stop_fr, ELEMENTSOF(stop_fr)},
        {stop_es, ELEMENTSOF(stop_es)},
};

static int cmp_str(const void *key, const void *elem) {
        return strcmp(key, *(const char *const *) elem);
}

static int is_stop_in(TermLang lang, const char *w) {
        return bsearch(w, stop_lists[lang].words, stop_lists[lang].n, sizeof(char *), cmp_str) != NULL;
}

/* Function words of German, French or Spanish that are English content
 * words: "the MIT licence", "my son", "can it die", "the war", a "sin". Kept
 * as terms everywhere (a German "mit" is then a common, low-idf term).
 * Sorted for bsearch. */
static const char *const en_content[] = {"bin", "die", "hat", "mit", "sin", "son", "war"};

int terms_is_function_word(const char *w) {
        if (!w)
                return 0;
        if (!is_stop_in(TERM_LANG_EN, w) &&
            bsearch(w, en_content, ELEMENTSOF(en_content), sizeof(char *), cmp_str))
                return 0;
        for (size_t g = 0; g < TERM_LANG_MAX; g++)
                if (is_stop_in(g, w))
                        return 1;
        return 0;
}

/* ---- folding ------------------------------------------------------------- */

/* U+00C0..U+00FF and U+0100..U+017F to lower-case ASCII; '?' = not a letter
 * with a plain base (× ÷ and the like), '*' = a two-letter expansion handled
 * in fold_cp(). */
static const char latin1[] = "aaaaaa*ceeeeiiiidnooooo?ouuuuyt*"  /* C0..DF */
                             "aaaaaa*ceeeeiiiidnooooo?ouuuuyty"; /* E0..FF */
static const char latin_ext_a[] = "aaaaaaccccccccdd"             /* 100 */
                                  "ddeeeeeeeeeegggg"             /* 110 */
                                  "gggghhhhiiiiiiii"             /* 120 */
                                  "iiiijjkkklllllll"             /* 130 */
                                  "lllnnnnnnnnnoooo"             /* 140 */
                                  "oo**rrrrrrssssss"             /* 150 */
                                  "ssttttttuuuuuuuu"             /* 160 */
                                  "uuuuwwyyyzzzzzzs";            /* 170 */

/* Appends the folded form of @c to @out (room for 2 bytes at least);
 * returns the bytes written, 0 if @c is not folded (copy it as it is). */
static size_t fold_cp(uint32_t c, char *out) {
        if (c < 0x80) {
                out[0] = (char) (c >= 'A' && c <= 'Z' ? c + 32 : c);
                return 1;
        }
        if (c == 0xDF) { /* ß */
                memcpy(out, "ss", 2);
                return 2;
        }
        if (c == 0xC6 || c == 0xE6) { /* æ */
                memcpy(out, "ae", 2);
                return 2;
        }
        if (c == 0x152 || c == 0x153) { /* œ */
                memcpy(out, "oe", 2);
                return 2;
        }
        if (c == 0xDE || c == 0xFE) { /* þ */
                memcpy(out, "th", 2);
                return 2;
        }
        if (c >= 0xC0 && c <= 0xFF && latin1[c - 0xC0] != '?') {
                out[0] = latin1[c - 0xC0];
                return 1;
        }
        if (c >= 0x100 && c <= 0x17F) {
                out[0] = latin_ext_a[c - 0x100];
                return 1;
        }
        return 0;
}

/* Letters that hint at a language, whatever the function words say. */
static int lang_hint(uint32_t c) {
        switch (c) {
        case 0xDF: /* ß */
        case 0xE4: /* ä */
        case 0xF6: /* ö */
        case 0xFC: /* ü */
                return TERM_LANG_DE;
        case 0xF1: /* ñ */
        case 0xBF: /* ¿ */
        case 0xA1: /* ¡ */
        case 0xE1: /* á */
        case 0xED: /* í */
        case 0xF3: /* ó */
        case 0xFA: /* ú */
                return TERM_LANG_ES;
        case 0xE7:  /* ç */
        case 0xE8:  /* è */
        case 0xEA:  /* ê */
        case 0xE0:  /* à */
        case 0xF9:  /* ù */
        case 0xEE:  /* î */
        case 0xF4:  /* ô */
        case 0x153: /* œ */
                return TERM_LANG_FR;
        default:
                return -1;
        }
}

/* ---- splitting ----------------------------------------------------------- */

typedef struct Splitter {
        TermList *out;
        size_t max;
        size_t cap;
        unsigned votes[TERM_LANG_MAX];
        /* the word being built: folded bytes, and where joined parts end */
        char buf[TERM_MAX_BYTES];
        size_t len;
        size_t cuts[8];
        size_t n_cuts;
        int elided; /* buf held an elision (l', d', qu') that was dropped */
} Splitter;

static int push(Splitter *s, const char *w, size_t n, int part) {
        if (n == 0 || s->out->n >= s->max)
                return 0;
        if (s->out->n == s->cap) {
                size_t nc = s->cap ? s->cap * 2 : 32;
                Term *v = realloc(s->out->v, nc * sizeof(Term));
                if (!v)
                        return -ENOMEM;
                s->out->v = v;
                s->cap = nc;
        }
        Term *t = &s->out->v[s->out->n++];
        *t = (Term){.part = (uint8_t) part};
        n = MIN(n, (size_t) TERM_MAX_BYTES - 1);
        memcpy(t->word, w, n);
        t->word[n] = 0;
        return 0;
}

/* Emits the word in s->buf: the joined form, then its parts if it had any. */
static int flush(Splitter *s) {
        int r = 0;
        if (s->len == 0)
                goto out;
        /* possessive: landlord's -> landlord (the cut sits before the 's') */
        if (s->n_cuts > 0 && s->cuts[s->n_cuts - 1] == s->len - 1 && s->buf[s->len - 1] == 's') {
                s->len--;
                s->n_cuts--;
        }
        r = push(s, s->buf, s->len, 0);
        if (r < 0 || s->n_cuts == 0)
                goto out;
        for (size_t i = 0, b = 0; i <= s->n_cuts && r >= 0; i++) {
                size_t e = i < s->n_cuts ? s->cuts[i] : s->len;
                if (e >= b + 2) /* "t" of don't is no word */
                        r = push(s, s->buf + b, e - b, 1);
                b = e;
        }
out:
        s->len = 0;
        s->n_cuts = 0;
        return r;
}

static void add_bytes(Splitter *s, const char *b, size_t n) {
        if (s->len + n < sizeof(s->buf)) {
                memcpy(s->buf + s->len, b, n);
                s->len += n;
        }
}

/* A French/Italian elision before an apostrophe: l', d', j', qu', n', s', c', m', t'. */
static int is_elision(const char *w, size_t n) {
        return (n == 1 && strchr("ldjnsctm", w[0])) || (n == 2 && memcmp(w, "qu", 2) == 0);
}

static int is_word(uint32_t c) {
        return (c < 0x80 && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) ||
               (c >= 0x80 && kb_is_word_cp(c) && c != 0xBF && c != 0xA1);
}

static int is_digit_b(char c) {
        return c >= '0' && c <= '9';
}

int terms_split(Terms *t, const char *text, size_t len, size_t max, TermList *ret) {
        const unsigned char *p = (const unsigned char *) text;
        Splitter s = {.out = ret, .max = max ? max : TERMS_MAX_DEFAULT};
        int r = 0;

        if (!t || !ret || (!text && len > 0))
                return -EINVAL;
        *ret = TERM_LIST_INIT;

        for (size_t i = 0; i < len && r >= 0;) {
                size_t l = kb_utf8_valid_len(p + i, len - i);
                if (l == 0) {
                        r = flush(&s);
                        i++;
                        continue;
                }
                uint32_t c = kb_utf8_decode(p + i, l);
                int hint = lang_hint(c);
                if (hint >= 0)
                        s.votes[hint] += 2;
                if (is_word(c)) {
                        char f[4];
                        size_t fl = fold_cp(c, f);
                        if (fl > 0)
                                add_bytes(&s, f, fl);
                        else
                                add_bytes(&s, (const char *) p + i, l);
                        i += l;
                        continue;
                }
                /* joiners between word characters */
                size_t nl = i + l < len ? kb_utf8_valid_len(p + i + l, len - i - l) : 0;
                uint32_t next = nl ? kb_utf8_decode(p + i + l, nl) : 0;
                if (s.len > 0 && is_word(next)) {
                        if (c == '-' && s.n_cuts < ELEMENTSOF(s.cuts)) {
                                s.cuts[s.n_cuts++] = s.len;
                                i += l;
                                continue;
                        }
                        if (c == '\'' || c == 0x2019) {
                                if (is_elision(s.buf, s.len)) {
                                        s.len = 0; /* l'avocat -> avocat */
                                        s.n_cuts = 0;
                                } else if (s.n_cuts < ELEMENTSOF(s.cuts))
                                        s.cuts[s.n_cuts++] = s.len; /* don't, landlord's */
                                i += l;
                                continue;
                        }
                        /* 401(k), 403(b), 501(c)(3): a digit, '(', one letter or digit, ')' */
                        if (c == '(' && is_digit_b(s.buf[s.len - 1]) && i + l + nl < len &&
                            p[i + l + nl] == ')' && next < 0x80) {
                                char f[4];
                                if (fold_cp(next, f) == 1)
                                        add_bytes(&s, f, 1);
                                i += l + nl + 1;
                                continue;
                        }
                }
                r = flush(&s);
                i += l;
        }
        if (r >= 0)
                r = flush(&s);
        if (r < 0) {
                term_list_done(ret);
                return r;
        }

        /* The language: function words vote, letters such as ß have voted. */
        for (size_t i = 0; i < ret->n; i++)
                for (size_t g = 0; g < TERM_LANG_MAX; g++)
                        if (is_stop_in(g, ret->v[i].word))
                                s.votes[g]++;
        TermLang lang = TERM_LANG_EN;
        for (size_t g = 1; g < TERM_LANG_MAX; g++)
                if (s.votes[g] > s.votes[lang])
                        lang = g;
        ret->lang = lang;

        for (size_t i = 0; i < ret->n; i++) {
                Term *w = &ret->v[i];
                /* a function word of any of the four languages is one here too:
                 * "die" is German in a German query and a verb nowhere else */
                w->stop = is_stop_in(lang, w->word) ||
                          (lang == TERM_LANG_EN ? 0 : is_stop_in(TERM_LANG_EN, w->word));
                const sb_symbol *st = sb_stemmer_stem(t->stemmer[lang], (const sb_symbol *) w->word,
                                                      (int) strlen(w->word));
                int sl = st ? sb_stemmer_length(t->stemmer[lang]) : 0;
                if (!st || sl <= 0 || (size_t) sl >= sizeof(w->stem))
                        memcpy(w->stem, w->word, sizeof(w->stem));
                else {
                        memcpy(w->stem, st, (size_t) sl);
                        w->stem[sl] = 0;
                }
        }
        return 0;
}
