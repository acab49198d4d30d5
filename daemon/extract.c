/* extract.c — the builtin provider's extractive algorithms. extract_answer()
 * quotes the sentences of an agent's retrieved chunks that answer the
 * question, best first, above an absolute relevance floor (idf-weighted
 * coverage of the question over the candidate sentences, query phrases,
 * key terms), at most 200 words, cited; or says in one sentence that the
 * knowledge base has nothing on it. extract_aggregate() drops proposals
 * that found nothing or are weak evidence, keeps the sentences above the
 * same floor and merges them by agreement and MMR-diverse selection with
 * consistent, renumbered citations. Pure functions: no I/O,
 * deterministic, every loop bounded. Honest retrieval, not a language
 * model. */
#include <ctype.h>
#include <libstemmer.h>
#include <math.h>
#include <pthread.h>

#include "answer-type.h"
#include "extract.h"
#include "kb-text.h"
#include "log.h"
#include "spelling.h"
#include "util.h"

#define EX_MAX_HITS 32u
#define EX_MAX_SENTENCES 512u      /* candidates considered in total */
#define EX_MAX_SENT_PER_SOURCE 64u /* per hit or per proposal */
#define EX_MAX_SENTENCE_BYTES 800u
#define EX_MAX_TERMS 96u /* content words kept per sentence */
#define EX_MAX_QUERY_TERMS 32u
#define EX_MAX_PARTS 32u /* clauses of a question (a bit each) */
#define EX_MAX_CITES 8u
#define EX_MAX_PROPOSALS 16u
#define EX_MAX_PROPOSAL_BYTES (64u * 1024u)
#define EX_MAX_SOURCES 64u /* Sources: lines per proposal */
#define EX_MAX_SOURCE_BYTES 300u
#define EX_MAX_OUT_SENTENCES 20u
#define EX_DEFAULT_ANSWER_SENTENCES 3u
#define EX_DEFAULT_AGGREGATE_SENTENCES 5u

#define EX_DEFAULT_MAX_WORDS 200u
#define EX_MAX_WORDS 2000u

#define EX_KNOWN_UNSEEN_SHARE 0.5 /* of its idf: a known word missing from the passages */
/* Of its idf: a word the knowledge base never uses, in a question of more
 * than EX_SHORT_QUESTION_TERMS terms. */
#define EX_STRAY_UNKNOWN_SHARE 0.5
#define EX_SHORT_QUESTION_TERMS 4u
#define EX_MMR_LAMBDA 0.7
#define EX_MIN_RELATIVE_COVERAGE 0.75 /* of the best sentence's query coverage */
#define EX_DUP_SIMILARITY 0.75        /* at or above: a near-duplicate, never both */
#define EX_BACK_REFERENCE_FACTOR 0.8  /* score of a sentence opening with "This", "However", ... */
#define EX_ANSWER_TYPE_FACTOR 1.5     /* score of one with the kind of answer asked for (answer-type.h) */
#define EX_ANSWER_TYPE_FLOOR 0.6      /* ... which passes at this share of the relevance floor */
#define EX_AGREED_HITS 3u             /* passages of one document: retrieval agrees on it */
#define EX_AGREED_FLOOR 0.8           /* ... whose sentences pass at this share of the floor */
/* A question asking what something is: a sentence that passes the floor,
 * opens with its subject and says what it is ranks before the others, and
 * is kept even when another sentence covers more of the question's words
 * (cmp_score_desc, defines_subject). */
#define EX_DEFINITION_LEAD 4u     /* content words at most before "is a", "means", ":" */
#define EX_DEFINITION_BYTES 80u   /* ... found within this many bytes */
#define EX_MIN_RELATIVE_SCORE 0.3 /* of the best score: weaker sentences are padding */

/* The relevance floor: a sentence must cover at least this share of the
 * question's weight (query phrases matched word for word count on top),
 * whatever the other candidates score. */
#define EX_MIN_RELEVANCE 0.45
/* Past this many weighed question words the floor falls (query_weigh). */
#define EX_FLOOR_TERMS 5.0
/* Key terms: the informative words (not a modifier of another query word)
 * whose idf is at least this share of the most informative one's. */
#define EX_KEY_IDF_SHARE 0.6
/* idf is computed as if the candidate set had at least this many sentences
 * (the missing ones containing no query word), so that a word found in all
 * three sentences of a small set still counts. */
#define EX_IDF_MIN_COLLECTION 30.0
/* A proposal whose weight (or route score) is under this share of the best
 * substantive proposal's is weak evidence: the aggregator ignores it. */
#define EX_MIN_RELATIVE_WEIGHT (1.0 / 3.0)
/* Words of the key terms named in a not-found sentence. */
#define EX_MAX_NAMED_WORDS 4u

/* How a not-found answer is recognised when it comes back as a proposal:
 * "The legal knowledge base (6 documents) has no passage about ...",
 * "None of the consulted knowledge bases (legal, code) has a passage about
 * ...", and the wording of earlier versions. */
static const char *const not_found_marks[] = {
        " knowledge base has no passage ",
        " document) has no passage ",
        " documents) has no passage ",
        "None of the consulted knowledge bases ",
        "Nothing in this agent's knowledge base matches the question.",
        "None of the consulted agents' knowledge bases has a passage on this question.",
        "No sentence in this agent's knowledge base answers the question directly.",
};

static int is_not_found(const char *t) {
        for (size_t i = 0; i < ELEMENTSOF(not_found_marks); i++)
                if (strstr(t, not_found_marks[i]))
                        return 1;
        return 0;
}

typedef struct Sent {
        char *text;      /* cleaned sentence, cites removed */
        unsigned src;    /* hit or proposal index */
        unsigned pos;    /* order within its source */
        uint32_t *terms; /* content-word hashes, sorted, with repeats */
        size_t n_terms;
        uint32_t *set; /* the same, unique */
        size_t n_set;
        uint32_t *bigrams; /* adjacent content-word pairs, sorted */
        size_t n_bigrams;
        unsigned group; /* document (answer) or proposal (aggregate) */
        unsigned cites[EX_MAX_CITES];
        unsigned n_cites;
        int head;   /* index of the section heading's words, -1 if none */
        double cov; /* share of the query's weight this sentence covers */
        double rel; /* relevance: cov plus the query phrases it matches */
        int key;    /* contains one of the query's key terms */
        int pass;   /* above the relevance floor, for the question or one of its parts */
        double score;
        int selected;
        int defines;     /* opens with the subject of a "What is X?" question and says what it is */
        int typed;       /* has the kind of answer the question asks for (answer-type.h) */
        double part_rel; /* relevance to its best clause of a question of several */
        unsigned part;   /* ... that clause */
        int part_best;   /* the best sentence for that clause */
} Sent;

#define EX_MAX_HEADINGS 128u

typedef struct SentList {
        Sent *v;
        size_t n;
        /* Word sets of section headings: context for the sentences below. */
        uint32_t *heads[EX_MAX_HEADINGS];
        size_t n_head_terms[EX_MAX_HEADINGS];
        size_t n_heads;
        /* Word sets of the documents' titles, by source (extract_answer):
         * "GPL-3" is the context of every sentence of that licence. */
        uint32_t *titles[EX_MAX_HITS];
        size_t n_title_terms[EX_MAX_HITS];
} SentList;

static void sent_list_done(SentList *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].text);
                free(l->v[i].terms);
                free(l->v[i].set);
                free(l->v[i].bigrams);
        }
        for (size_t i = 0; i < l->n_heads; i++)
                free(l->heads[i]);
        for (size_t i = 0; i < EX_MAX_HITS; i++)
                free(l->titles[i]);
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

/* Snowball's English stemmer, one per thread (extract runs on the loop and
 * in workers), freed when the thread ends. */
static pthread_key_t stemmer_key;
static pthread_once_t stemmer_once = PTHREAD_ONCE_INIT;

static void stemmer_free(void *p) {
        sb_stemmer_delete(p);
}

static void stemmer_key_make(void) {
        (void) pthread_key_create(&stemmer_key, stemmer_free);
}

static struct sb_stemmer *thread_stemmer(void) {
        (void) pthread_once(&stemmer_once, stemmer_key_make);
        struct sb_stemmer *st = pthread_getspecific(stemmer_key);
        if (!st) {
                st = sb_stemmer_new("english", "UTF_8");
                if (st && pthread_setspecific(stemmer_key, st) != 0) {
                        sb_stemmer_delete(st);
                        st = NULL;
                }
        }
        return st;
}

/* Crude English suffix stripping, when Snowball cannot be had: enough to
 * match "pressures"/"pressure", "tested"/"test". */
static size_t stem_crude(char *w, size_t n) {
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

/* Stem @w (@n bytes, lower case) in place, the same on both sides of a
 * comparison: Snowball's English stemmer ("protection" and "protected"
 * are "protect"), and a noun's -ment or -ness, which Snowball keeps
 * ("treatment" answers "treated"). Returns the new length. */
static size_t stem(char *w, size_t n) {
        struct sb_stemmer *st = thread_stemmer();
        if (!st)
                return stem_crude(w, n);
        const sb_symbol *s = sb_stemmer_stem(st, (const sb_symbol *) w, (int) n);
        int sl = s ? sb_stemmer_length(st) : 0;
        if (sl <= 0 || (size_t) sl > n)
                return stem_crude(w, n);
        memcpy(w, s, (size_t) sl);
        n = (size_t) sl;
        if (n > 6 && (memcmp(w + n - 4, "ment", 4) == 0 || memcmp(w + n - 4, "ness", 4) == 0))
                return n - 4;
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

/* Function words of German and French questions ("Was ist die ...",
 * "Qu'est-ce que la ..."), dropped like the English stop-words so that a
 * question in those languages is weighed by its content words, and the
 * pieces of English contractions split at the apostrophe ("hasn", "ve").
 * Folded to ASCII as words_scan() folds them; words that are also English
 * content words (war, mit, pour, son, par, hat) are left out on purpose.
 * Sorted in byte order (bsearch). */
static const char *const extra_stop_words[] = {
        "aren",   "au",     "aux",  "avec",   "ce",    "ces",      "cette",   "comment", "couldn", "dans",
        "darf",   "das",    "dass", "de",     "dem",   "den",      "der",     "des",     "didn",   "die",
        "doesn",  "doit",   "du",   "durfen", "ein",   "eine",     "einem",   "einen",   "einer",  "eines",
        "elle",   "en",     "est",  "et",     "faut",  "fur",      "hadn",    "hasn",    "haven",  "ich",
        "ihr",    "ihre",   "il",   "ils",    "im",    "isn",      "ist",     "je",      "kann",   "kein",
        "keine",  "konnen", "la",   "le",     "les",   "leur",     "ll",      "mein",    "meine",  "muss",
        "mussen", "nicht",  "nous", "ou",     "peut",  "pourquoi", "qu",      "quand",   "que",    "quel",
        "quelle", "qui",    "quoi", "re",     "sein",  "seine",    "shouldn", "sind",    "soll",   "sont",
        "sur",    "uber",   "und",  "une",    "ve",    "vom",      "von",     "vous",    "wann",   "warum",
        "wasn",   "welche", "wer",  "werden", "weren", "wie",      "wird",    "without", "wo",     "won",
        "wouldn", "zu",     "zum",  "zur",
};

/* Words that frame a question rather than say what it is about ("how does
 * X work", "what are the rules of X", "the difference between", German
 * "wie hoch", French "combien"), and the small talk of a question told as
 * a story ("I got worried", "someone said", "a bit", "two days ago",
 * "dont" without its apostrophe): dropped from the query only. Sorted. */
static const char *const framing_words[] = {
        "actually",  "advantages", "ago",         "already",       "answer",     "anybody",   "anymore",
        "anyone",    "anything",   "anyway",      "apparently",    "asked",      "basics",    "bit",
        "bother",    "bothered",   "came",        "cant",          "combien",    "come",      "coming",
        "compare",   "comparison", "cons",        "currently",     "definitely", "detail",    "details",
        "didnt",     "difference", "differences", "disadvantages", "doesnt",     "dont",      "else",
        "enough",    "ever",       "everybody",   "everyone",      "everything", "exactly",   "example",
        "examples",  "gave",       "go",          "goes",          "going",      "gonna",     "got",
        "gotten",    "guess",      "guy",         "guys",          "happen",     "happens",   "hasnt",
        "havent",    "hello",      "help",        "helps",         "hey",        "hi",        "hoch",
        "honestly",  "im",         "info",        "information",   "isnt",       "ive",       "kind",
        "kinda",     "kinds",      "know",        "lange",         "lately",     "like",      "long",
        "lot",       "lots",       "make",        "makes",         "making",     "maybe",     "meant",
        "mentioned", "might",      "need",        "needs",         "obviously",  "oh",        "ok",
        "okay",      "overview",   "perhaps",     "pretty",        "probably",   "pros",      "question",
        "quite",     "rather",     "really",      "recently",      "rule",       "rules",     "safe",
        "said",      "say",        "says",        "seem",          "seemed",     "seems",     "somebody",
        "somehow",   "someone",    "something",   "somewhat",      "still",      "stuff",     "suppose",
        "supposed",  "sure",       "thank",       "thanks",        "thats",      "theres",    "thing",
        "things",    "think",      "thinking",    "thought",       "tried",      "trying",    "type",
        "types",     "usually",    "viel",        "wanna",         "want",       "wanted",    "wants",
        "way",       "ways",       "went",        "whats",         "wondered",   "wondering", "work",
        "works",     "yeah",       "yes",         "yesterday",
};

typedef struct WordKey {
        const char *w;
        size_t n;
} WordKey;

static int word_cmp(const void *key, const void *elem) {
        const WordKey *k = key;
        const char *e = *(const char *const *) elem;
        int c = strncmp(k->w, e, k->n);
        if (c != 0)
                return c;
        return e[k->n] ? -1 : 0; /* the key is a proper prefix of e: it sorts first */
}

/* Is @w (@n bytes, lower case) in @list, sorted in byte order? It runs for
 * every word of every candidate sentence. */
static int in_word_list(const char *const *list, size_t n_list, const char *w, size_t n) {
        WordKey k = {.w = w, .n = n};
        if (n == 0 || memchr(w, 0, n))
                return 0;
        return bsearch(&k, list, n_list, sizeof list[0], word_cmp) != NULL;
}

/* One content word: its hash, its position among all the words of the text
 * (stop-words included, and punctuation other than a hyphen or an
 * apostrophe counting as a gap, so adjacency means "next to each other in
 * the text": "security deposit", not "security, deposit") and where it is
 * in the text. */
typedef struct Word {
        uint32_t h;
        uint32_t pos;
        uint32_t off, len;
} Word;

#define WORDS_KEEP_STOP 1u /* keep stop-words */
#define WORDS_QUERY 2u     /* also drop question-framing words */

/* The content words of @s (valid UTF-8, NUL-terminated) in text order:
 * lower-cased, Latin-1 accents folded, stop-words dropped unless
 * WORDS_KEEP_STOP, stemmed (plural -s, -ies, -ed, -ing, -ment, -ness, -ly).
 * At most @max words. Returns the count; *ret is malloc'ed (NULL if 0). */
static int words_scan(const char *s, unsigned flags, size_t max, Word **ret, size_t *ret_n) {
        const unsigned char *p = (const unsigned char *) s;
        size_t len = strlen(s), n = 0;
        uint32_t pos = 0;
        int punct = 0; /* punctuation since the last word: not adjacent */
        Word *v = NULL;
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
                        punct |= !(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '-' ||
                                   c == '\'' || c == 0x2019);
                        i += l;
                        continue;
                }
                size_t wn = 0, start = i;
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
                pos += 1 + (uint32_t) punct;
                punct = 0;
                if (wn < 2 && !(wn == 1 && isdigit((unsigned char) w[0])))
                        continue;
                if (!(flags & WORDS_KEEP_STOP) &&
                    (kb_is_stop_word(w, wn) ||
                     in_word_list(extra_stop_words, ELEMENTSOF(extra_stop_words), w, wn)))
                        continue;
                if ((flags & WORDS_QUERY) && in_word_list(framing_words, ELEMENTSOF(framing_words), w, wn))
                        continue;
                if (!v) {
                        v = malloc(max * sizeof(Word));
                        if (!v)
                                return -ENOMEM;
                }
                /* "GPLv3" is the two words a text writes apart ("GPL-3",
                 * "GNU General Public License version 3" under "GPL-3") */
                size_t name = 0, letters = kb_versioned_name(w, wn, &name), digits = wn - letters;
                if (letters > 0 && n + 1 < max && i - start == wn) { /* ASCII */
                        v[n++] = (Word){.h = fnv1a(w, name),
                                        .pos = pos++,
                                        .off = (uint32_t) start,
                                        .len = (uint32_t) name};
                        v[n++] = (Word){.h = fnv1a(w + letters, digits),
                                        .pos = pos,
                                        .off = (uint32_t) (start + letters),
                                        .len = (uint32_t) digits};
                        continue;
                }
                /* "licence" and "license" are one word */
                char us[sizeof w];
                size_t un = spelling_variant(w, wn, 1, us, sizeof us);
                if (un > 0) {
                        memcpy(w, us, un);
                        wn = un;
                }
                wn = stem(w, wn);
                v[n++] = (Word){.h = fnv1a(w, wn),
                                .pos = pos,
                                .off = (uint32_t) start,
                                .len = (uint32_t) (i - start)};
        }
        *ret = v;
        *ret_n = n;
        return (int) n;
}

/* The hashes of two words next to each other, in this order. */
static uint32_t bigram_hash(uint32_t a, uint32_t b) {
        uint32_t h = a * 16777619u;
        h ^= b + 0x9e3779b9u + (h << 6) + (h >> 2);
        return h;
}

/* Hash the content words of @s, sorted (with repeats), and optionally the
 * sorted unique hashes of adjacent content-word pairs into *ret_bigrams.
 * Returns the count of words; arrays are malloc'ed (NULL if empty). */
static int words_hash(const char *s, int keep_stop, size_t max, uint32_t **ret, size_t *ret_n,
                      uint32_t **ret_bigrams, size_t *ret_n_bigrams) {
        _cleanup_free_ Word *words = NULL;
        size_t n = 0;
        uint32_t *v = NULL, *b = NULL;
        size_t nb = 0;

        *ret = NULL;
        *ret_n = 0;
        if (ret_bigrams) {
                *ret_bigrams = NULL;
                *ret_n_bigrams = 0;
        }
        if (words_scan(s, keep_stop ? WORDS_KEEP_STOP : 0, max, &words, &n) < 0)
                return -ENOMEM;
        if (n == 0)
                return 0;
        v = malloc(n * sizeof(uint32_t));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                v[i] = words[i].h;
        qsort(v, n, sizeof(uint32_t), cmp_u32);
        if (ret_bigrams && n > 1) {
                b = malloc((n - 1) * sizeof(uint32_t));
                if (!b) {
                        free(v);
                        return -ENOMEM;
                }
                for (size_t i = 0; i + 1 < n; i++)
                        if (words[i + 1].pos == words[i].pos + 1)
                                b[nb++] = bigram_hash(words[i].h, words[i + 1].h);
                if (nb > 0)
                        qsort(b, nb, sizeof(uint32_t), cmp_u32);
                else
                        b = mfree(b);
        }
        *ret = v;
        *ret_n = n;
        if (ret_bigrams) {
                *ret_bigrams = b;
                *ret_n_bigrams = nb;
        }
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
                        /* closing quotes, brackets and Markdown emphasis ("**Note.** Text") */
                        while (j < len &&
                               (s[j] == '"' || s[j] == '\'' || s[j] == ')' || s[j] == ']' || s[j] == '*'))
                                j++;
                        if (j >= len)
                                end = j;
                        else if (is_space_b((unsigned char) s[j])) {
                                size_t k = j;
                                while (k < len && is_space_b((unsigned char) s[k]))
                                        k++;
                                int lower_next = k < len && islower((unsigned char) s[k]);
                                /* "3.2. Availability ...": a section number, not a sentence */
                                int number = c == '.';
                                for (size_t m = start; m < i && number; m++)
                                        number = isdigit((unsigned char) s[m]) || s[m] == '.';
                                if (!lower_next && !number &&
                                    !(c == '.' && abbreviation_before(s, start, i)))
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

/* Is the raw span a bold run-in heading, "**MIT licence.**", all of it bold? */
static int is_run_in_heading(const char *s, size_t len) {
        while (len > 0 && is_space_b((unsigned char) s[len - 1]))
                len--;
        while (len > 0 && is_space_b((unsigned char) *s))
                s++, len--;
        if (len < 5 || memcmp(s, "**", 2) != 0 || memcmp(s + len - 2, "**", 2) != 0)
                return 0;
        /* no bold run closes inside: "**a** and **b**" is a sentence */
        const char *inner = memmem(s + 2, len - 4, "**", 2);
        return inner == NULL;
}

/* A small word a title leaves in lower case ("Availability of Source
 * Code"). */
static int is_title_small_word(const char *w, size_t n) {
        static const char *const small[] = {"a",  "an", "and", "as", "at",  "by", "for", "from",
                                            "in", "of", "on",  "or", "the", "to", "with"};
        for (size_t i = 0; i < ELEMENTSOF(small); i++)
                if (strlen(small[i]) == n && memcmp(small[i], w, n) == 0)
                        return 1;
        return 0;
}

/* Is the raw span @s a plain-text section heading rather than a sentence:
 * a numbered title ("3.2. Availability of Source Code.", "a) Definitions",
 * "§ 4 Termination"), or a short line in capitals ("NO WARRANTY")? Plain
 * text (licences, manuals, contracts) marks its sections so; quoted, such
 * a heading answers nothing, but it is the context of what follows. */
static int is_plain_heading(const char *s, size_t len) {
        size_t i = 0, words = 0, lower_start = 0, letters = 0, lower = 0;
        while (i < len && is_space_b((unsigned char) s[i]))
                i++;
        while (len > i && (is_space_b((unsigned char) s[len - 1]) || s[len - 1] == '.'))
                len--;
        size_t start = i;
        int numbered = 0;
        if (i + 1 < len && (unsigned char) s[i] == 0xc2 && (unsigned char) s[i + 1] == 0xa7) { /* § */
                i += 2;
                while (i < len && s[i] == ' ')
                        i++;
                numbered = i < len && isdigit((unsigned char) s[i]);
        } else if (i + 1 < len && islower((unsigned char) s[i]) && s[i + 1] == ')')
                numbered = 1, i += 2;
        else if (i < len && isdigit((unsigned char) s[i]))
                numbered = 1;
        if (numbered) {
                while (i < len && (isdigit((unsigned char) s[i]) || s[i] == '.' || s[i] == ')'))
                        i++;
                if (i >= len || s[i] != ' ')
                        return 0;
        } else
                i = start;
        for (size_t j = i; j < len; j++) {
                unsigned char c = (unsigned char) s[j];
                if (c == '\n')
                        return 0; /* a heading is one line */
                if (c == ',' || c == ';' || c == '?' || c == '!' ||
                    (c == '.' && j + 1 < len && s[j + 1] == ' '))
                        return 0; /* punctuation of a sentence */
                letters += isalpha(c) != 0;
                lower += islower(c) != 0;
                if (isalpha(c) && (j == i || s[j - 1] == ' ')) {
                        size_t e = j;
                        while (e < len && isalpha((unsigned char) s[e]))
                                e++;
                        words++;
                        if (islower(c) && !is_title_small_word(s + j, e - j))
                                lower_start++;
                }
        }
        if (words == 0 || words > 8 || letters < 4)
                return 0;
        if (numbered)
                return lower_start == 0;
        return lower == 0 && words >= 2; /* "NO WARRANTY" */
}

/* Clean one raw span: collapse whitespace, drop the block markers that
 * start a line ("#", ">", "- ", "1. "), optionally pull out " [n]"
 * citations into @cites. Everything else is kept byte for byte (emphasis
 * too), so a quoted sentence is found verbatim in its chunk once runs of
 * white space are read as one space (see citations.h). Returns a malloc'ed
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
        if (parse_cites && o >= 2 && out[o - 2] == ' ' &&
            (out[o - 1] == '.' || out[o - 1] == '!' || out[o - 1] == '?')) {
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
        unsigned group;
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

        Sent st = {.src = c->src, .group = c->group, .head = c->cur_head};
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
        if (heading == 0 && (is_run_in_heading(s, len) || (!c->parse_cites && is_plain_heading(s, len))))
                heading = 3;
        if (heading == 1 || heading == 3) {
                /* A section heading ("## Choking") gives context to the
                 * sentences below it; the document title ("# ...") would
                 * only favour the first chunk, so it is not used. A bold
                 * run-in heading ("**MIT licence.** Very short. You may
                 * ...") is the context of its paragraph, not a sentence. */
                SentList *l = c->list;
                size_t level = heading == 3 ? 2 : 0;
                while (level < len && s[level] == '#')
                        level++;
                c->cur_head = -1;
                if (level >= 2 && l->n_heads < EX_MAX_HEADINGS) {
                        uint32_t *all = NULL, *set = NULL;
                        size_t n_all = 0;
                        if (words_hash(st.text, 0, EX_MAX_TERMS, &all, &n_all, NULL, NULL) < 0) {
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
            is_not_found(st.text)) {
                free(st.text);
                return 0;
        }
        /* exact duplicates (overlapping chunks) are kept once per
         * document; licences sharing a clause keep it each, so the one
         * whose title the question names can be quoted */
        for (size_t i = 0; i < c->list->n; i++)
                if (c->list->v[i].group == st.group && streq(c->list->v[i].text, st.text)) {
                        free(st.text);
                        return 0;
                }
        if (words_hash(st.text, 0, EX_MAX_TERMS, &st.terms, &st.n_terms, &st.bigrams, &st.n_bigrams) < 0) {
                free(st.text);
                free(st.terms);
                c->oom = 1;
                return 1;
        }
        size_t k = unique_u32(st.terms, st.n_terms, &st.set);
        if (k == (size_t) -1) {
                free(st.text);
                free(st.terms);
                free(st.bigrams);
                c->oom = 1;
                return 1;
        }
        st.n_set = k;
        st.pos = c->pos++;
        c->list->v[c->list->n++] = st;
        return 0;
}

static int split_into(SentList *l, const char *text, size_t len, unsigned src, unsigned group,
                      int parse_cites, size_t min_words) {
        size_t clen;
        char *clean = kb_utf8_sanitize(text, len, &clen);
        if (!clean)
                return -ENOMEM;
        SplitCtx c = {.list = l,
                      .src = src,
                      .group = group,
                      .parse_cites = parse_cites,
                      .min_words = min_words,
                      .cur_head = -1};
        (void) split_sentences(clean, clen, on_sentence, &c);
        free(clean);
        return c.oom ? -ENOMEM : 0;
}

/* The words of hit @src's document title, as context for its sentences. */
static int title_terms(SentList *l, unsigned src, const char *title) {
        _cleanup_free_ char *clean = kb_utf8_sanitize(title ?: "", title ? strnlen(title, 1024) : 0, NULL);
        _cleanup_free_ uint32_t *all = NULL;
        size_t n_all = 0, k;
        if (!clean || words_hash(clean, 0, EX_MAX_TERMS, &all, &n_all, NULL, NULL) < 0)
                return -ENOMEM;
        k = unique_u32(all, n_all, &l->titles[src]);
        if (k == (size_t) -1)
                return -ENOMEM;
        l->n_title_terms[src] = k;
        return 0;
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

/* ---- the question ---------------------------------------------------- */

/* Two query words next to each other ("security deposit"): the first
 * narrows the second. */
typedef struct QueryPair {
        unsigned a, b; /* term indices */
        uint32_t bigram;
        int key; /* word for word in a sentence, as good as a key term */
} QueryPair;

typedef struct Query {
        char *clean; /* the repaired question; Word offsets point into it */
        Word *words; /* its content words in order */
        size_t n_words;
        uint32_t term[EX_MAX_QUERY_TERMS]; /* unique terms, in order of first use */
        size_t n;
        QueryPair pair[EX_MAX_QUERY_TERMS];
        size_t n_pairs;
        int modifier[EX_MAX_QUERY_TERMS];   /* narrows a following query word */
        int digit[EX_MAX_QUERY_TERMS];      /* a single digit: "2" of "Apache 2.0", "(1)" */
        uint32_t parts[EX_MAX_QUERY_TERMS]; /* clauses of the question it is used in (a bit each) */
        unsigned n_parts;
        /* Weighed against the candidate sentences (query_weigh): */
        double idf[EX_MAX_QUERY_TERMS];      /* how informative: the knowledge base's, else cidf */
        double cidf[EX_MAX_QUERY_TERMS];     /* over the candidates: ranks them (bm25) */
        double weight[EX_MAX_QUERY_TERMS];   /* idf; a modifier's capped at its head's */
        int seen[EX_MAX_QUERY_TERMS];        /* in some candidate */
        uint64_t groups[EX_MAX_QUERY_TERMS]; /* documents or proposals containing it */
        int key[EX_MAX_QUERY_TERMS];
        uint32_t part_key[EX_MAX_QUERY_TERMS]; /* clauses it is a key term of */
        double part_total[EX_MAX_QUERY_TERMS];
        unsigned part_terms[EX_MAX_QUERY_TERMS];
        double total; /* sum of the weights */
        double floor; /* the relevance a sentence needs (EX_MIN_RELEVANCE, lower for long questions) */
        int missing;  /* a short question whose subject the knowledge base never uses */
} Query;

static void query_done(Query *q) {
        q->clean = mfree(q->clean);
        q->words = mfree(q->words);
        q->n_words = 0;
}

static int term_index(const Query *q, uint32_t h) {
        for (size_t t = 0; t < q->n; t++)
                if (q->term[t] == h)
                        return (int) t;
        return -1;
}

static const char *const conjunctions[] = {
        "and", "et", "oder", "or", "ou", "und",
};
static const char *const question_words[] = {
        "are",   "can",  "comment", "could", "did",      "do",    "does",  "est",  "how",    "is",
        "ist",   "kann", "may",     "muss",  "pourquoi", "quand", "que",   "quel", "quelle", "should",
        "sind",  "wann", "warum",   "was",   "welche",   "were",  "what",  "when", "where",  "whether",
        "which", "who",  "why",     "wie",   "will",     "wo",    "would",
};

/* Does the text between two content words of the question start a new
 * clause: a ',', ';', ':', '?' or '!', or "and"/"or" followed by a
 * question word ("..., and how is it taxed?")? */
static int clause_break(const char *s, size_t len) {
        int conj = 0;
        for (size_t i = 0; i < len;) {
                if (strchr(",;:?!", s[i]))
                        return 1;
                if (!isalpha((unsigned char) s[i])) {
                        i++;
                        continue;
                }
                size_t e = i;
                char w[16];
                while (e < len && isalpha((unsigned char) s[e]))
                        e++;
                size_t n = MIN(e - i, sizeof w - 1);
                for (size_t k = 0; k < n; k++)
                        w[k] = (char) tolower((unsigned char) s[i + k]);
                w[n] = 0;
                if (conj && in_word_list(question_words, ELEMENTSOF(question_words), w, n))
                        return 1;
                conj = in_word_list(conjunctions, ELEMENTSOF(conjunctions), w, n);
                i = e;
        }
        return 0;
}

/* Split @query into its terms, adjacent pairs and clauses. Only
 * stop-words: those are the terms. */
static int query_parse(Query *q, const char *query) {
        q->clean = kb_utf8_sanitize(query ?: "", query ? strnlen(query, KB_MAX_QUERY_BYTES) : 0, NULL);
        if (!q->clean)
                return -ENOMEM;
        if (words_scan(q->clean, WORDS_QUERY, EX_MAX_QUERY_TERMS, &q->words, &q->n_words) < 0)
                return -ENOMEM;
        if (q->n_words == 0 &&
            words_scan(q->clean, WORDS_KEEP_STOP, EX_MAX_QUERY_TERMS, &q->words, &q->n_words) < 0)
                return -ENOMEM;
        unsigned part = 0;
        for (size_t i = 0; i < q->n_words; i++) {
                if (i > 0) {
                        size_t from = q->words[i - 1].off + q->words[i - 1].len;
                        if (clause_break(q->clean + from, q->words[i].off - from))
                                part++;
                }
                /* a word used again in a later clause ("... MIT and GPL,
                 * and can I use GPL code ...?") belongs to both */
                part = MIN(part, EX_MAX_PARTS - 1);
                int t = term_index(q, q->words[i].h);
                if (t >= 0)
                        q->parts[t] |= UINT32_C(1) << part;
                else {
                        q->digit[q->n] =
                                q->words[i].len == 1 && isdigit((unsigned char) q->clean[q->words[i].off]);
                        q->parts[q->n] = UINT32_C(1) << part;
                        q->term[q->n++] = q->words[i].h;
                }
        }
        q->n_parts = q->n > 0 ? part + 1 : 0;
        for (size_t i = 0; i + 1 < q->n_words; i++) {
                if (q->words[i + 1].pos != q->words[i].pos + 1)
                        continue;
                int a = term_index(q, q->words[i].h), b = term_index(q, q->words[i + 1].h);
                int dup = a == b;
                for (size_t k = 0; k < q->n_pairs && !dup; k++)
                        dup = q->pair[k].a == (unsigned) a && q->pair[k].b == (unsigned) b;
                if (dup || q->n_pairs >= EX_MAX_QUERY_TERMS)
                        continue;
                q->pair[q->n_pairs++] = (QueryPair){.a = (unsigned) a,
                                                    .b = (unsigned) b,
                                                    .bigram = bigram_hash(q->words[i].h, q->words[i + 1].h)};
                q->modifier[a] = 1;
        }
        return 0;
}

static int in_heading(const SentList *l, const Sent *s, uint32_t h) {
        return (s->head >= 0 && set_has(l->heads[s->head], l->n_head_terms[s->head], h)) ||
               (s->src < EX_MAX_HITS && set_has(l->titles[s->src], l->n_title_terms[s->src], h));
}

/* Weigh the query's terms against the candidate set: idf like bm25 (a word
 * no candidate contains weighs most), where each occurs (groups < 64), and
 * which are the key terms. With @ignore_unseen (the aggregator, whose
 * candidates are answers that already passed their own floor) a word no
 * candidate contains weighs nothing: whether a knowledge base lacks it was
 * for the proposer to judge. */
static void query_weigh(Query *q, const SentList *l, int ignore_unseen, const int *known,
                        const double *kb_idf, double kb_unseen_idf);

/* Unseen words the knowledge base has elsewhere (opts->has_word): marked
 * in @known; returns how many. At most one look-up per term. */
static int query_known_unseen(const Query *q, const ExtractOptions *opts, int *known) {
        int n = 0;
        if (!opts || !opts->has_word)
                return 0;
        for (size_t t = 0; t < q->n; t++) {
                if (q->seen[t])
                        continue;
                for (size_t w = 0; w < q->n_words; w++) {
                        const Word *x = &q->words[w];
                        if (x->h != q->term[t])
                                continue;
                        char buf[64];
                        if (x->len < sizeof(buf)) {
                                memcpy(buf, q->clean + x->off, x->len);
                                buf[x->len] = 0;
                                if (opts->has_word(opts->has_word_userdata, buf) > 0) {
                                        known[t] = 1;
                                        n++;
                                }
                        }
                        break;
                }
        }
        return n;
}

/* How informative each term is in the whole knowledge base (opts->word_df):
 * bm25's idf over its chunks, in @kb_idf (-1: not known). The candidates
 * were retrieved for the question's subject, so over them the subject
 * looks common and a stray word rare: the knowledge base's statistics say
 * which words are specific. Returns the idf of a word in no chunk (0: no
 * statistics). */
static double query_kb_idf(const Query *q, const ExtractOptions *opts, double *kb_idf) {
        double unseen = 0;
        for (size_t t = 0; t < q->n; t++)
                kb_idf[t] = -1;
        if (!opts || !opts->word_df)
                return 0;
        for (size_t t = 0; t < q->n; t++) {
                const Word *x = NULL;
                for (size_t w = 0; w < q->n_words && !x; w++)
                        if (q->words[w].h == q->term[t])
                                x = &q->words[w];
                char buf[64];
                if (!x || x->len >= sizeof(buf))
                        continue;
                memcpy(buf, q->clean + x->off, x->len);
                buf[x->len] = 0;
                uint32_t df = 0, n = 0;
                int r = opts->word_df(opts->word_df_userdata, buf, &df, &n);
                /* as over the candidates, a small base counts as
                 * EX_IDF_MIN_COLLECTION chunks */
                double nc = MAX((double) n, EX_IDF_MIN_COLLECTION), d = (double) MIN(df, n);
                if (r == 1)
                        kb_idf[t] = 0; /* a function word the index does not keep */
                else if (r == 0 && n > 0) {
                        kb_idf[t] = log(1.0 + (nc - d + 0.5) / (d + 0.5));
                        unseen = log(1.0 + (nc + 0.5) / 0.5);
                }
        }
        return unseen;
}

/* Does term @t narrow a word the passages or the knowledge base have
 * ("zorblax deposit")? */
static int narrows_known(const Query *q, size_t t, const int *known) {
        for (size_t k = 0; k < q->n_pairs; k++)
                if (q->pair[k].a == t && (q->seen[q->pair[k].b] || (known && known[q->pair[k].b])))
                        return 1;
        return 0;
}

static void query_weigh(Query *q, const SentList *l, int ignore_unseen, const int *known,
                        const double *kb_idf, double kb_unseen_idf) {
        double n = MAX((double) l->n, EX_IDF_MIN_COLLECTION), max_key = 0;
        int any_head = 0;

        for (size_t t = 0; t < q->n; t++) {
                size_t df = 0;
                q->groups[t] = 0;
                for (size_t i = 0; i < l->n; i++) {
                        const Sent *s = &l->v[i];
                        int in = set_has(s->set, s->n_set, q->term[t]);
                        df += in;
                        if ((in || in_heading(l, s, q->term[t])) && s->group < 64)
                                q->groups[t] |= UINT64_C(1) << s->group;
                }
                q->seen[t] = df > 0;
                q->cidf[t] = q->idf[t] = log(1.0 + (n - (double) df + 0.5) / ((double) df + 0.5));
                if (kb_idf && (kb_idf[t] == 0 || (kb_idf[t] > 0 && (q->seen[t] || (known && known[t])))))
                        q->idf[t] = kb_idf[t];
                else if (kb_idf && kb_unseen_idf > 0 && !q->seen[t])
                        q->idf[t] = kb_unseen_idf;
                any_head |= !q->modifier[t];
        }
        /* A modifier narrows its head: it cannot weigh more than the word it
         * narrows ("security" in "security deposit" is worth at most what
         * "deposit" is), unless no candidate has it at all. */
        q->total = 0;
        q->missing = 0;
        size_t n_content = 0; /* terms that are not function words of the index */
        for (size_t t = 0; t < q->n; t++)
                n_content += !kb_idf || kb_idf[t] != 0;
        for (size_t t = 0; t < q->n; t++) {
                q->weight[t] = ignore_unseen && !q->seen[t] ? 0 : q->idf[t];
                /* a word the knowledge base uses, only not in these
                 * passages ("medication" where they say "medicines"):
                 * a missing nuance, not a missing subject */
                if (!q->seen[t] && known && known[t])
                        q->weight[t] *= EX_KNOWN_UNSEEN_SHARE;
                /* a word the knowledge base never uses: in a short question
                 * narrowing a word it has, its missing subject ("the
                 * zorblax deposit": no passage answers it); in a longer
                 * one as likely the asker's story ("my uncle", "the shop") */
                else if (!q->seen[t] && kb_idf && kb_idf[t] != 0) {
                        if (n_content > EX_SHORT_QUESTION_TERMS)
                                q->weight[t] *= EX_STRAY_UNKNOWN_SHARE;
                        else if (narrows_known(q, t, known))
                                q->missing = 1;
                }
                for (size_t k = 0; k < q->n_pairs && (q->seen[t] || (known && known[t])); k++)
                        if (q->pair[k].a == t)
                                q->weight[t] = MIN(q->weight[t], q->idf[q->pair[k].b]);
                q->total += q->weight[t];
                if (q->seen[t] && !q->digit[t] && (!q->modifier[t] || !any_head))
                        max_key = MAX(max_key, q->idf[t]);
        }
        for (size_t t = 0; t < q->n; t++)
                q->key[t] = q->seen[t] && !q->digit[t] && (!q->modifier[t] || !any_head) &&
                            q->idf[t] >= EX_KEY_IDF_SHARE * max_key;
        /* A phrase of the question found word for word is as specific as
         * its most informative word: "502 Bad" in "**502 Bad Gateway**:
         * ...", whose head ("page" of "502 Bad Gateway page") is elsewhere. */
        for (size_t k = 0; k < q->n_pairs; k++) {
                unsigned a = q->pair[k].a, b = q->pair[k].b;
                q->pair[k].key = (!q->digit[a] && q->idf[a] >= EX_KEY_IDF_SHARE * max_key) ||
                                 (!q->digit[b] && q->idf[b] >= EX_KEY_IDF_SHARE * max_key);
        }
        /* One sentence rarely answers every word of a question told at
         * length: past EX_FLOOR_TERMS weighed words, the share it must
         * cover falls with the square root of their number. */
        size_t n_weighed = 0;
        for (size_t t = 0; t < q->n; t++)
                n_weighed += q->weight[t] > 0;
        q->floor = EX_MIN_RELEVANCE * sqrt(MIN(1.0, EX_FLOOR_TERMS / (double) MAX(n_weighed, (size_t) 1)));

        /* the same per clause */
        double part_max[EX_MAX_QUERY_TERMS] = {};
        for (size_t p = 0; p < q->n_parts; p++) {
                q->part_total[p] = 0;
                q->part_terms[p] = 0;
        }
        for (size_t t = 0; t < q->n; t++)
                for (size_t p = 0; p < q->n_parts; p++) {
                        if (!(q->parts[t] & (UINT32_C(1) << p)))
                                continue;
                        q->part_total[p] += q->weight[t];
                        q->part_terms[p]++;
                        if (q->seen[t] && !q->digit[t] && !q->modifier[t])
                                part_max[p] = MAX(part_max[p], q->idf[t]);
                }
        for (size_t t = 0; t < q->n; t++) {
                q->part_key[t] = 0;
                for (size_t p = 0; p < q->n_parts; p++)
                        if ((q->parts[t] & (UINT32_C(1) << p)) && q->seen[t] && !q->digit[t] &&
                            !q->modifier[t] && q->idf[t] >= EX_KEY_IDF_SHARE * part_max[p])
                                q->part_key[t] |= UINT32_C(1) << p;
        }
}

/* How well @s answers the query: the share of the query's weight it
 * covers, plus the weight of the query phrases it contains word for word.
 * A modifier counts half in a document (or proposal) that never has its
 * head: "security" in a licence of RSA Data Security says little about a
 * security deposit. @s passes the floor with a key term and relevance
 * >= EX_MIN_RELEVANCE; a question of several clauses ("What notice do I
 * get, and how is it taxed?") is also weighed clause by clause, so that a
 * sentence answering one clause of two words or more (a quarter of the
 * question's weight at least) with two of its words passes too, ranked at
 * 3/4 of that. */
/* Is @h a word of the sentence before @s in its paragraph of the same
 * hit? "In England and Wales they are enforceable only if ..." is about
 * the restrictive covenants its predecessor names. */
static int opens_with_back_reference(const char *t);
static int refers_back(const char *t);

static int in_predecessor(const SentList *l, const Sent *s, uint32_t h) {
        if (!refers_back(s->text))
                return 0;
        size_t i = (size_t) (s - l->v);
        if (i == 0 || i >= l->n)
                return 0;
        const Sent *p = &l->v[i - 1];
        return p->src == s->src && p->pos + 1 == s->pos && set_has(p->set, p->n_set, h);
}

static void sent_relevance(const Query *q, const SentList *l, Sent *s) {
        double covered = 0, phrase = 0;
        double p_covered[EX_MAX_QUERY_TERMS] = {}, p_phrase[EX_MAX_QUERY_TERMS] = {};
        int key = 0;
        uint32_t pkey = 0;
        unsigned p_words[EX_MAX_QUERY_TERMS] = {};

        for (size_t t = 0; t < q->n; t++) {
                double w = set_has(s->set, s->n_set, q->term[t])                              ? 1.0
                           : in_heading(l, s, q->term[t]) || in_predecessor(l, s, q->term[t]) ? 0.5
                                                                                              : 0.0;
                if (w == 0)
                        continue;
                key |= q->key[t];
                pkey |= q->part_key[t];
                for (size_t k = 0; k < q->n_pairs; k++) {
                        if (q->pair[k].a != t)
                                continue;
                        unsigned h = q->pair[k].b;
                        if (s->group >= 64 || !(q->groups[h] & (UINT64_C(1) << s->group)))
                                w *= 0.5;
                }
                covered += w * q->weight[t];
                for (size_t p = 0; p < q->n_parts; p++)
                        if (q->parts[t] & (UINT32_C(1) << p)) {
                                p_covered[p] += w * q->weight[t];
                                p_words[p] += w == 1.0;
                        }
        }
        for (size_t k = 0; k < q->n_pairs; k++)
                if (set_has(s->bigrams, s->n_bigrams, q->pair[k].bigram)) {
                        double w = q->weight[q->pair[k].a] + q->weight[q->pair[k].b];
                        key |= q->pair[k].key;
                        phrase += w;
                        uint32_t both = q->parts[q->pair[k].a] & q->parts[q->pair[k].b];
                        for (size_t p = 0; p < q->n_parts; p++)
                                if (both & (UINT32_C(1) << p))
                                        p_phrase[p] += w;
                }
        s->cov = q->total > 0 ? covered / q->total : 0;
        s->rel = q->total > 0 ? s->cov + phrase / q->total : 0;
        s->key = key;
        s->pass = key && s->rel >= q->floor - 1e-9 && !q->missing;
        for (size_t p = 0; q->n_parts > 1 && !q->missing && p < q->n_parts; p++) {
                double pt = q->part_total[p];
                if (q->part_terms[p] < 2 || p_words[p] < 2 || !(pt > 0) || pt < 0.25 * q->total ||
                    !(pkey & (UINT32_C(1) << p)))
                        continue;
                double cov = p_covered[p] / pt, rel = cov + p_phrase[p] / pt;
                if (rel < EX_MIN_RELEVANCE - 1e-9)
                        continue;
                if (rel > s->part_rel) {
                        s->part_rel = rel;
                        s->part = (unsigned) p;
                }
                s->pass = 1;
                s->key = 1;
                s->cov = MAX(s->cov, 0.75 * cov);
                s->rel = MAX(s->rel, 0.75 * rel);
        }
}

static int sent_passes(const Sent *s) {
        return s->pass;
}

/* Print the question's key terms for a not-found sentence: the most
 * informative words (those no candidate has come first) with the words
 * next to them in the question ("zorblax deposit"); whole runs, the most
 * informative first, at most EX_MAX_NAMED_WORDS words (one run even if
 * longer), printed in question order: "\"security deposit\"" or
 * "\"a\" or \"b c\"". "this question" when it has no words. */
static void print_key_terms(FILE *f, const Query *q) {
        size_t run_start[EX_MAX_QUERY_TERMS], run_end[EX_MAX_QUERY_TERMS];
        double run_idf[EX_MAX_QUERY_TERMS];
        int take[EX_MAX_QUERY_TERMS] = {};
        size_t n_runs = 0, words = 0, printed = 0;
        double top = 0;

        for (size_t i = 0; i < q->n_words && n_runs < EX_MAX_QUERY_TERMS;) {
                size_t e = i + 1;
                while (e < q->n_words && q->words[e].pos == q->words[e - 1].pos + 1)
                        e++;
                double m = 0;
                for (size_t k = i; k < e; k++) {
                        int t = term_index(q, q->words[k].h);
                        if (t >= 0)
                                m = MAX(m, q->idf[t]);
                }
                run_start[n_runs] = i;
                run_end[n_runs] = e;
                run_idf[n_runs++] = m;
                i = e;
        }
        /* Greedy by informativeness; ties keep question order. Bounded:
         * at most n_runs rounds over n_runs runs. */
        for (size_t round = 0; round < n_runs; round++) {
                size_t best = n_runs;
                for (size_t r = 0; r < n_runs; r++)
                        if (!take[r] && (best == n_runs || run_idf[r] > run_idf[best]))
                                best = r;
                if (best == n_runs)
                        break;
                size_t len = run_end[best] - run_start[best];
                if (words > 0 && (words + len > EX_MAX_NAMED_WORDS || run_idf[best] < 0.8 * top))
                        break;
                if (words == 0)
                        top = run_idf[best];
                take[best] = 1;
                words += len;
                if (words >= EX_MAX_NAMED_WORDS)
                        break;
        }
        for (size_t r = 0; r < n_runs; r++) {
                if (!take[r])
                        continue;
                fputs(printed++ ? " or \"" : "\"", f);
                for (size_t k = run_start[r]; k < run_end[r] && k - run_start[r] < EX_MAX_NAMED_WORDS; k++) {
                        if (k > run_start[r])
                                fputc(' ', f);
                        fwrite(q->clean + q->words[k].off, 1, q->words[k].len, f);
                }
                fputc('"', f);
        }
        if (printed == 0)
                fputs("this question", f);
}

/* ---- extract_answer --------------------------------------------------- */

static int cmp_score_desc(const void *a, const void *b) {
        const Sent *x = *(Sent *const *) a, *y = *(Sent *const *) b;
        if (x->defines != y->defines) /* asked what X is: what says so comes first */
                return x->defines ? -1 : 1;
        if (x->score != y->score)
                return x->score > y->score ? -1 : 1;
        if (x->src != y->src)
                return x->src < y->src ? -1 : 1;
        return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Print at most @max_words words of @text: a longer sentence is cut at a
 * word and ends in "..." (still a quote of its chunk). */
static void print_words(FILE *f, const char *text, size_t max_words, const unsigned *cites, size_t n_cites) {
        max_words = max_words > 1 ? max_words - 1 : 1; /* the "[n]" is a word too */
        if (count_words(text) <= max_words) {
                print_cited(f, text, cites, n_cites);
                return;
        }
        size_t words = 0, i = 0;
        int in = 0;
        for (; text[i]; i++) {
                if (text[i] == ' ')
                        in = 0;
                else if (!in) {
                        in = 1;
                        if (++words > max_words)
                                break;
                }
        }
        while (i > 0 && text[i - 1] == ' ')
                i--;
        _cleanup_free_ char *cut = NULL;
        if (asprintf(&cut, "%.*s...", (int) i, text) < 0) {
                print_cited(f, text, cites, n_cites);
                return;
        }
        print_cited(f, cut, cites, n_cites);
}

/* "The legal knowledge base (6 documents) has no passage about "x"." */
static void print_not_found(FILE *f, const Query *q, const ExtractOptions *opts) {
        if (opts && !isempty(opts->agent)) {
                fputs("The ", f);
                (void) fput_clean(f, opts->agent);
                fputs(" knowledge base", f);
        } else
                fputs("This agent's knowledge base", f);
        if (opts && opts->n_documents > 0)
                fprintf(f, " (%d document%s)", opts->n_documents, opts->n_documents == 1 ? "" : "s");
        fputs(" has no passage about ", f);
        print_key_terms(f, q);
        fputc('.', f);
}

/* "\nSources:\n[n] title, chunk k" for the hits in citation order (the
 * format citations.c reads back). */
static int print_hit_sources(FILE *f, const KbHit *hits, const unsigned *cited_hit, unsigned n_cited) {
        fputs("\nSources:\n", f);
        for (unsigned c = 0; c < n_cited; c++) {
                fprintf(f, "[%u] ", c + 1);
                if (fput_clean(f, hits[cited_hit[c]].title) < 0)
                        return -1;
                fprintf(f, ", chunk %u\n", hits[cited_hit[c]].chunk);
        }
        return 0;
}

/* "\nSources:\n[n] source" for renumbered sources. */
static void print_sources(FILE *f, char *const *gs, size_t n_gs) {
        fputs("\nSources:\n", f);
        for (size_t g = 0; g < n_gs; g++)
                fprintf(f, "[%zu] %s\n", g + 1, gs[g]);
}

/* Does @t describe its own document ("This page covers ...", "This guide
 * explains ...")? It tells a reader what the source is about, and answers
 * nothing: never part of an answer. */
static int describes_its_document(const char *t) {
        static const char *const subjects[] = {
                "This page ",    "This document ", "This guide ", "This section ", "This article ",
                "This chapter ", "This leaflet ",  "This note ",  "This file ",    "This overview "};
        static const char *const verbs[] = {"covers ",     "describes ", "explains ",   "lists ",
                                            "sets out ",   "outlines ",  "summarises ", "summarizes ",
                                            "focuses on ", "gives ",     "is "};
        size_t n = 0;
        /* "Beyond dismissal (covered in the employment termination notes),
         * employment law governs ...": it points at the other notes */
        const char *c = strstr(t, "covered in the ");
        if (c && (strstr(c, " notes") || strstr(c, " note")))
                return 1;
        for (size_t i = 0; i < ELEMENTSOF(subjects) && !n; i++)
                if (strncmp(t, subjects[i], strlen(subjects[i])) == 0)
                        n = strlen(subjects[i]);
        if (!n)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strncmp(t + n, verbs[i], strlen(verbs[i])) == 0)
                        return 1;
        return 0;
}

/* Does @query ask what something is ("What is an index fund?", "What
 * does HTTP 404 mean?", "Define ...", "Was ist ...", "Qu'est-ce que ...")? */
static int asks_definition(const char *query) {
        static const char *const openers[] = {"what is ",  "what's ",        "whats ",      "what are ",
                                              "define ",   "definition of ", "meaning of ", "was ist ",
                                              "was sind ", "qu'est-ce ",     "que es ",     "qué es "};
        while (*query == ' ' || *query == '*' || *query == '"')
                query++;
        for (size_t i = 0; i < ELEMENTSOF(openers); i++)
                if (strncasecmp(query, openers[i], strlen(openers[i])) == 0)
                        return 1;
        return strncasecmp(query, "what does ", 10) == 0 && strcasestr(query, " mean") != NULL;
}

/* Does @s define the question's subject: it says what it is early
 * ("An index fund is an ...", "404 Not Found: ...", "Inflation is the
 * rate ..."), and what stands before that is at most EX_DEFINITION_LEAD
 * content words, opening with a word of the question and holding every
 * key term? */
static int defines_subject(const Query *q, const Sent *s) {
        static const char *const copulas[] = {" is a ",    " is an ", " is the ",    " are a ", " are an ",
                                              " are the ", " means ", " refers to ", ": "};
        _cleanup_free_ Word *w = NULL;
        size_t n = 0, head = 0;
        char buf[EX_DEFINITION_BYTES + 1];
        char *end = NULL;

        snprintf(buf, sizeof buf, "%s", s->text);
        for (char *p = buf; *p; p++)
                if (*p == '*')
                        *p = ' '; /* "**404 Not Found**: ..." */
        for (size_t i = 0; i < ELEMENTSOF(copulas); i++) {
                char *p = strstr(buf, copulas[i]);
                if (p && (!end || p < end))
                        end = p;
        }
        if (!end)
                return 0;
        *end = 0;
        if (words_scan(buf, 0, EX_DEFINITION_LEAD + 1, &w, &n) <= 0 || n > EX_DEFINITION_LEAD ||
            term_index(q, w[0].h) < 0)
                return 0;
        for (size_t t = 0; t < q->n; t++) {
                if (!q->key[t])
                        continue;
                int found = 0;
                for (size_t i = 0; i < n && !found; i++)
                        found = w[i].h == q->term[t];
                if (!found)
                        return 0;
                head++;
        }
        return head > 0;
}

/* Does @t open with a word that points back at a sentence we do not show
 * ("This is why ...", "However, ...")? Out of its paragraph such a sentence
 * reads as an answer to something else. */
static int opens_with_back_reference(const char *t) {
        static const char *const openers[] = {"This",  "That", "These",   "Those",     "It",   "They",
                                              "Their", "Such", "However", "Therefore", "Thus", "Also",
                                              "But",   "So",   "Then",    "Otherwise", "Hence"};
        while (*t == '*' || *t == '_' || *t == '"' || *t == '(' || *t == ' ')
                t++;
        for (size_t i = 0; i < ELEMENTSOF(openers); i++) {
                size_t n = strlen(openers[i]);
                if (strncmp(t, openers[i], n) == 0 && (t[n] == ' ' || t[n] == ','))
                        return 1;
        }
        return 0;
}

/* Does @t lean on the sentence before it: it opens with a back-reference,
 * or a pronoun stands in its first words for what that sentence named
 * ("In England and Wales they are enforceable only if ...")? */
static int refers_back(const char *t) {
        static const char *const pronouns[] = {"they", "it",   "these", "this",
                                               "such", "them", "its",   "their"};
        if (opens_with_back_reference(t))
                return 1;
        for (unsigned w = 0; *t && w < 6; w++) {
                while (*t && !isalpha((unsigned char) *t))
                        t++;
                size_t n = 0;
                while (isalpha((unsigned char) t[n]))
                        n++;
                for (size_t i = 0; i < ELEMENTSOF(pronouns); i++)
                        if (strlen(pronouns[i]) == n && strncmp(t, pronouns[i], n) == 0)
                                return 1;
                t += n;
        }
        return 0;
}

/* How many bytes of @s to print for at most @max: never half a UTF-8
 * character. */
static int utf8_prefix(const char *s, size_t max) {
        size_t n = strnlen(s, max);
        while (n > 0 && s[n] && ((unsigned char) s[n] & 0xC0) == 0x80)
                n--;
        return (int) n;
}

/* With log_level debug: why these sentences, one line per answer. The
 * hits (title#chunk), the question's words with their weights ("*" a key
 * term, "-" in no candidate), the floor, and the best candidates by
 * relevance ("+" passed the floor). */
static void trace_answer(const Query *q, const SentList *l, const KbHit *hits, size_t n_hits) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return;
        fprintf(f, "extract: hits");
        for (size_t h = 0; h < n_hits; h++)
                fprintf(f, " h%zu=%.*s#%u", h, utf8_prefix(hits[h].title ?: "", 40), hits[h].title ?: "",
                        hits[h].chunk);
        fprintf(f, "; floor %.2f%s; words", q->floor, q->missing ? " (subject missing)" : "");
        uint64_t shown = 0; /* terms, once each */
        for (size_t w = 0; w < q->n_words; w++) {
                int t = term_index(q, q->words[w].h);
                if (t < 0 || (shown & (UINT64_C(1) << t)))
                        continue;
                shown |= UINT64_C(1) << t;
                fprintf(f, " %.*s=%.2f%s%s", (int) MIN(q->words[w].len, (size_t) 24),
                        q->clean + q->words[w].off, q->weight[t], q->key[t] ? "*" : "",
                        q->seen[t] ? "" : "-");
        }
        const Sent *top[6] = {};
        for (size_t i = 0; i < l->n; i++) {
                const Sent *s = &l->v[i];
                for (size_t k = 0; k < ELEMENTSOF(top); k++)
                        if (!top[k] || s->rel > top[k]->rel) {
                                memmove(top + k + 1, top + k, (ELEMENTSOF(top) - k - 1) * sizeof(top[0]));
                                top[k] = s;
                                break;
                        }
        }
        for (size_t k = 0; k < ELEMENTSOF(top) && top[k]; k++)
                fprintf(f, " | %s%.2f/%.2f h%u \"%.*s\"", top[k]->pass ? "+" : "", top[k]->rel, top[k]->cov,
                        top[k]->src, utf8_prefix(top[k]->text, 60), top[k]->text);
        if (fclose(f) == 0 && buf)
                log_debug("%s", buf);
        free(buf);
}

/**
 * extract_answer() - the sentences of @hits that answer @query, best first,
 * cited; or one sentence saying the knowledge base has nothing on it.
 *
 * Candidates are the sentences of the first 32 hits (at most 512; headings,
 * fragments under three words and duplicates from overlapping chunks
 * dropped). The query's terms are weighed by idf over the candidates (a
 * term no candidate has weighs most; a modifier of the next query word at
 * most as much as that word). A sentence's relevance is the share of that
 * weight it covers plus the weight of the query phrases it contains word
 * for word; a modifier only counts in documents that also have its head.
 * A sentence is eligible only with relevance >= 0.45 and one of the key
 * terms (the most informative words). Eligible sentences are ranked by
 * relevance x (1 + 0.25 x normalised bm25) x (1 + 0.05 x hit prior), x 0.8
 * for a sentence opening with a back reference ("This is why", "However"),
 * and taken best first, skipping near-duplicates and sentences covering under
 * 40% of the best one's share, up to @opts->max_sentences (0: 3, at most
 * 20) and @opts->max_words words in total (0: 200), cut at sentence
 * boundaries. Each has "[n]"; a "Sources:" list "[n] title, chunk k"
 * follows. Nothing eligible: "The <agent> knowledge base (<n> documents)
 * has no passage about "<key terms>"." Returns a malloc'ed string, NULL on
 * OOM.
 */
char *extract_answer(const char *query, const KbHit *hits, size_t n_hits, const ExtractOptions *opts) {
        unsigned max_sentences =
                opts && opts->max_sentences ? opts->max_sentences : EX_DEFAULT_ANSWER_SENTENCES;
        size_t max_words =
                opts && opts->max_words ? MIN(opts->max_words, EX_MAX_WORDS) : EX_DEFAULT_MAX_WORDS;
        max_sentences = MIN(max_sentences, EX_MAX_OUT_SENTENCES);
        n_hits = hits ? MIN(n_hits, (size_t) EX_MAX_HITS) : 0;

        char *buf = NULL, *result = NULL;
        size_t buf_len = 0;
        FILE *f = open_memstream(&buf, &buf_len);
        if (!f)
                return NULL;

        SentList l = {.v = calloc(EX_MAX_SENTENCES, sizeof(Sent))};
        Query q = {};
        Sent **order = NULL;
        if (!l.v)
                goto out;

        /* Documents, by their best hit: the groups a modifier's head is
         * looked for in. */
        unsigned doc_rank[EX_MAX_HITS];
        for (size_t h = 0; h < n_hits; h++) {
                doc_rank[h] = (unsigned) h;
                for (size_t g = 0; g < h; g++)
                        if (streq_ptr(hits[g].title, hits[h].title)) {
                                doc_rank[h] = doc_rank[g];
                                break;
                        }
        }
        for (size_t h = 0; h < n_hits; h++) {
                const char *t = hits[h].text ?: "";
                if (split_into(&l, t, strlen(t), (unsigned) h, doc_rank[h], 0, 3) < 0 ||
                    title_terms(&l, (unsigned) h, hits[h].title) < 0)
                        goto out;
        }
        if (query_parse(&q, query) < 0)
                goto out;
        int known[EX_MAX_QUERY_TERMS] = {0};
        double kb_idf[EX_MAX_QUERY_TERMS];
        double kb_unseen = query_kb_idf(&q, opts, kb_idf);
        query_weigh(&q, &l, 0, NULL, NULL, 0);
        query_known_unseen(&q, opts, known);
        query_weigh(&q, &l, 0, known, kb_unseen > 0 ? kb_idf : NULL, kb_unseen);

        /* bm25 over the candidates ranks sentences of equal relevance */
        double avglen = 0, max_hit = 0, max_bm25 = 0;
        for (size_t i = 0; i < l.n; i++)
                avglen += (double) l.v[i].n_terms;
        avglen = l.n > 0 ? MAX(avglen / (double) l.n, 1.0) : 1.0;
        for (size_t h = 0; h < n_hits; h++)
                max_hit = MAX(max_hit, hits[h].score);
        const double k1 = 1.2, b = 0.75;
        for (size_t i = 0; i < l.n; i++) {
                Sent *s = &l.v[i];
                double sc = 0;
                for (size_t t = 0; t < q.n; t++) {
                        /* a word of the section heading counts half */
                        double tf = (double) count_of(s->terms, s->n_terms, q.term[t]) +
                                    (in_heading(&l, s, q.term[t]) ? 0.5 : 0.0);
                        if (tf == 0)
                                continue;
                        double dl = (double) s->n_terms / avglen;
                        sc += q.cidf[t] * (tf * (k1 + 1)) / (tf + k1 * (1 - b + b * dl));
                }
                s->score = sc;
                max_bm25 = MAX(max_bm25, sc);
                sent_relevance(&q, &l, s);
        }
        if (log_get_max_level() >= LOG_LEVEL_DEBUG)
                trace_answer(&q, &l, hits, n_hits);

        order = malloc(MAX(l.n, (size_t) 1) * sizeof(Sent *));
        if (!order)
                goto out;
        size_t n_ok = 0;
        double best_cov = 0;
        int definition = asks_definition(q.clean);
        /* Retrieval agrees on one document when EX_AGREED_HITS of the
         * passages are from it: a question told as a story ("I was
         * prescribed ibuprofen after a car accident that wasn't my fault.
         * Can I claim the costs back ...?") is about that document though
         * each of its sentences shares only part of the story. Its
         * sentences pass at EX_AGREED_FLOOR of the floor. */
        int dominant = -1;
        for (size_t h = 0; h < n_hits && dominant < 0; h++) {
                size_t same = 0;
                for (size_t g = 0; g < n_hits; g++)
                        same += doc_rank[g] == doc_rank[h];
                if (same >= EX_AGREED_HITS)
                        dominant = (int) doc_rank[h];
        }
        AnswerType atype = answer_type_of(query);
        for (size_t i = 0; i < l.n; i++) {
                Sent *s = &l.v[i];
                /* "how long ...?": the sentence with "within 30 days"
                 * answers it with fewer of the question's words */
                int typed = atype != ANSWER_ANY && !q.missing && s->rel >= EX_ANSWER_TYPE_FLOOR * q.floor &&
                            answer_type_matches(atype, s->text);
                int agreed = dominant >= 0 && (int) s->group == dominant && s->key && !q.missing &&
                             s->rel >= EX_AGREED_FLOOR * q.floor;
                if ((!sent_passes(s) && !typed && !agreed) || describes_its_document(s->text))
                        continue;
                s->typed = typed;
                double prior = max_hit > 0 ? hits[s->src].score / max_hit : 0;
                double bm = max_bm25 > 0 ? s->score / max_bm25 : 0;
                s->score = s->rel * (1.0 + 0.25 * bm) * (1.0 + 0.05 * prior);
                if (typed)
                        s->score *= EX_ANSWER_TYPE_FACTOR;
                if (opens_with_back_reference(s->text))
                        s->score *= EX_BACK_REFERENCE_FACTOR;
                s->defines = definition && defines_subject(&q, s);
                best_cov = MAX(best_cov, s->cov);
                order[n_ok++] = s;
        }
        qsort(order, n_ok, sizeof(Sent *), cmp_score_desc);
        /* A question of several clauses ("What is the difference between
         * MIT and GPL, and can I use GPL code in a commercial product?"):
         * the best sentence for each clause is never padding, even beside
         * one naming more of the whole question. */
        for (size_t p = 0; q.n_parts > 1 && p < q.n_parts; p++) {
                Sent *best = NULL;
                for (size_t i = 0; i < n_ok; i++)
                        if (order[i]->part_rel > 0 && order[i]->part == p &&
                            (!best || order[i]->part_rel > best->part_rel))
                                best = order[i];
                if (best)
                        best->part_best = 1;
        }

        size_t n_sel = 0, words = 0;
        for (size_t i = 0; i < n_ok && n_sel < max_sentences; i++) {
                Sent *s = order[i];
                /* Matching clearly less of the question than the best
                 * sentence is padding, unless it is from the documents the
                 * question is about, or the best for a clause of it. */
                if (s->cov < EX_MIN_RELATIVE_COVERAGE * best_cov && !s->defines && !s->typed &&
                    !s->part_best && !(opts && s->src < opts->n_attached))
                        continue;
                int dup = 0;
                for (size_t j = 0; j < n_sel && !dup; j++)
                        dup = jaccard(s->set, s->n_set, order[j]->set, order[j]->n_set) >= EX_DUP_SIMILARITY;
                if (dup)
                        continue;
                size_t w = count_words(s->text) + 1; /* and its "[n]" */
                if (n_sel > 0 && words + w > max_words)
                        break;
                words += w;
                s->selected = 1;
                order[n_sel++] = s; /* compact selected to the front (j <= i) */
        }

        if (n_sel == 0) {
                print_not_found(f, &q, opts);
                result = finish_stream(f, &buf);
                f = NULL;
                goto out;
        }

        /* Best first; sources numbered by first use. */
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
                print_words(f, order[i]->text, max_words, &cite_of_hit[h], 1);
        }
        fputc('\n', f);
        if (print_hit_sources(f, hits, cited_hit, n_cited) < 0)
                goto out;
        result = finish_stream(f, &buf);
        f = NULL;

out:
        if (f) {
                fclose(f);
                free(buf);
        }
        free(order);
        query_done(&q);
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
        double route_score; /* 0: unknown */
        SourceRef src[EX_MAX_SOURCES];
        size_t n_src;
        int not_found; /* says its knowledge has nothing on the question */
        int empty;     /* nothing but white space */
        int used;      /* substantive and not weak: its sentences are candidates */
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

/* What a not-found proposal said it searched for: the text after "has no
 * passage about " up to the sentence's end, at most 300 bytes; NULL if it
 * does not say. */
static char *named_terms(const char *t) {
        const char *p = strstr(t, "has no passage about ");
        if (p)
                p += strlen("has no passage about ");
        else if ((p = strstr(t, "has a passage about ")))
                p += strlen("has a passage about ");
        else
                return NULL;
        size_t n = strcspn(p, "\n");
        while (n > 0 && (p[n - 1] == '.' || p[n - 1] == ' '))
                n--;
        if (n == 0 || n > 300)
                return NULL;
        return strndup(p, n);
}

/* "None of the consulted knowledge bases (legal, code) has a passage about
 * "x"." Agent names once each, without a self-MoA "#n" suffix. The terms
 * are those the heaviest not-found proposal named, else the query's. */
static void print_none_found(FILE *f, const Query *q, const Prop *ps, char *const *texts, size_t n) {
        size_t named = 0, best = n;
        for (size_t i = 0; i < n; i++)
                if (ps[i].not_found && (best == n || ps[i].weight > ps[best].weight))
                        best = i;
        _cleanup_free_ char *terms = best < n ? named_terms(texts[best]) : NULL;

        /* One agent consulted (perhaps sampled several times): its own
         * sentence says it best, with its document count. */
        int one = best < n;
        for (size_t i = 0; i < n && one; i++)
                one = strcspn(ps[i].agent, "#") == strcspn(ps[best].agent, "#") &&
                      strncmp(ps[i].agent, ps[best].agent, strcspn(ps[best].agent, "#")) == 0;
        if (one) {
                const char *t = texts[best] + strspn(texts[best], " \t\r\n");
                size_t len = strlen(t);
                while (len > 0 && is_space_b((unsigned char) t[len - 1]))
                        len--;
                fwrite(t, 1, len, f);
                return;
        }

        fputs("None of the consulted knowledge bases", f);
        for (size_t i = 0; i < n; i++) {
                const char *a = ps[i].agent;
                size_t len = strcspn(a, "#");
                int dup = len == 0;
                for (size_t j = 0; j < i && !dup; j++)
                        dup = strcspn(ps[j].agent, "#") == len && strncmp(ps[j].agent, a, len) == 0;
                if (dup)
                        continue;
                _cleanup_free_ char *name = strndup(a, MIN(len, (size_t) 64));
                if (!name)
                        continue;
                fputs(named++ ? ", " : " (", f);
                (void) fput_clean(f, name);
        }
        if (named)
                fputc(')', f);
        fputs(" has a passage about ", f);
        if (terms)
                fputs(terms, f);
        else
                print_key_terms(f, q);
        fputc('.', f);
}

/**
 * extract_aggregate() - merge weighted proposals into one cited answer.
 *
 * Each proposal (at most 16, 64 KB each) is split into its body and its
 * "Sources:" list; body sentences (at most 64 per proposal) lose their
 * "[n]" citations, which are remembered. Proposals that say their knowledge
 * has nothing are dropped, and so are weak ones: a weight, or a route
 * score, under a third of the best substantive proposal's. The remaining
 * sentences are weighed against the query as in extract_answer() (a
 * proposal is a document) and only those above the same relevance floor,
 * with a key term, are eligible. A sentence's score is its proposal's
 * weight x (1 + agreement) x relevance, where agreement is the sum, over
 * the OTHER proposals, of the best Jaccard similarity of content-word sets
 * with any of their sentences. Selection is greedy MMR (lambda 0.7 on the
 * normalised score against the similarity to what is already chosen),
 * never a near-duplicate (Jaccard >= 0.75), ignoring sentences under 30% of
 * the best score, at most @opts->max_sentences (0: 5, at most 20) and
 * @opts->max_words words (0: 200), in selection order (best first).
 * Citations are renumbered into one "Sources:" list "[n] source (agent)"
 * (a line that already names its agent is kept as is). Nothing eligible:
 * one sentence naming the agents consulted and the key terms. Returns a
 * malloc'ed string, NULL on OOM.
 */
char *extract_aggregate(const char *query, const ExtractProposal *props, size_t n,
                        const ExtractOptions *opts) {
        unsigned max_sentences =
                opts && opts->max_sentences ? opts->max_sentences : EX_DEFAULT_AGGREGATE_SENTENCES;
        size_t max_words =
                opts && opts->max_words ? MIN(opts->max_words, EX_MAX_WORDS) : EX_DEFAULT_MAX_WORDS;
        max_sentences = MIN(max_sentences, EX_MAX_OUT_SENTENCES);
        n = props ? MIN(n, (size_t) EX_MAX_PROPOSALS) : 0;

        char *buf = NULL, *result = NULL;
        size_t buf_len = 0;
        FILE *f = open_memstream(&buf, &buf_len);
        if (!f)
                return NULL;

        SentList l = {.v = calloc(EX_MAX_SENTENCES, sizeof(Sent))};
        Prop *ps = calloc(MAX(n, (size_t) 1), sizeof(Prop));
        Query q = {};
        Sent **sel = NULL;
        char *texts[EX_MAX_PROPOSALS] = {};
        if (!l.v || !ps)
                goto out;

        double best_w = 0, best_r = 0;
        for (size_t i = 0; i < n; i++) {
                const char *raw = props[i].text ?: "";
                texts[i] = kb_utf8_sanitize(raw, strnlen(raw, EX_MAX_PROPOSAL_BYTES), NULL);
                if (!texts[i])
                        goto out;
                ps[i].agent = props[i].agent ?: "";
                double w = props[i].weight, r = props[i].route_score;
                ps[i].weight = isfinite(w) && w > 0 ? MIN(w, 1e6) : 1e-6;
                ps[i].route_score = isfinite(r) && r > 0 ? MIN(r, 1.0) : 0;
                ps[i].not_found = is_not_found(texts[i]);
                ps[i].empty = texts[i][strspn(texts[i], " \t\r\n\f\v")] == 0;
                if (ps[i].not_found || ps[i].empty)
                        continue;
                best_w = MAX(best_w, ps[i].weight);
                best_r = MAX(best_r, ps[i].route_score);
        }
        for (size_t i = 0; i < n; i++) {
                if (ps[i].not_found || ps[i].empty)
                        continue;
                if (ps[i].weight < EX_MIN_RELATIVE_WEIGHT * best_w)
                        continue;
                if (ps[i].route_score > 0 && ps[i].route_score < EX_MIN_RELATIVE_WEIGHT * best_r)
                        continue;
                ps[i].used = 1;
                size_t len = strlen(texts[i]), so = find_sources(texts[i], len);
                if (so < len && parse_sources(&ps[i], texts[i] + so, len - so) < 0)
                        goto out;
                if (split_into(&l, texts[i], so, (unsigned) i, (unsigned) i, 1, 2) < 0)
                        goto out;
        }
        if (query_parse(&q, query) < 0)
                goto out;
        query_weigh(&q, &l, 1, NULL, NULL, 0);

        if (l.n == 0) {
                /* No sentences (answers like "Yes"): the heaviest usable
                 * proposal verbatim, else an honest "nothing". */
                size_t best = n;
                for (size_t i = 0; i < n; i++)
                        if (ps[i].used && (best == n || ps[i].weight > ps[best].weight))
                                best = i;
                if (best < n)
                        fputs(texts[best], f);
                else
                        print_none_found(f, &q, ps, texts, n);
                result = finish_stream(f, &buf);
                f = NULL;
                goto out;
        }

        /* agreement-weighted scores of the sentences above the floor */
        double max_score = 0, max_base = 0;
        for (size_t i = 0; i < l.n; i++) {
                Sent *s = &l.v[i];
                sent_relevance(&q, &l, s);
                if (!sent_passes(s)) {
                        s->score = 0;
                        continue;
                }
                double best[EX_MAX_PROPOSALS] = {};
                for (size_t j = 0; j < l.n; j++)
                        if (l.v[j].src != s->src)
                                best[l.v[j].src] = MAX(best[l.v[j].src],
                                                       jaccard(s->set, s->n_set, l.v[j].set, l.v[j].n_set));
                double agreement = 0;
                for (size_t p = 0; p < n; p++)
                        agreement += best[p];
                s->score = ps[s->src].weight * (1.0 + agreement) * s->rel;
                max_score = MAX(max_score, s->score);
                max_base = MAX(max_base, ps[s->src].weight * s->rel);
        }
        if (!(max_score > 0)) {
                print_none_found(f, &q, ps, texts, n);
                result = finish_stream(f, &buf);
                f = NULL;
                goto out;
        }

        /* greedy MMR */
        sel = malloc(max_sentences * sizeof(Sent *));
        if (!sel)
                goto out;
        size_t n_sel = 0, words = 0;
        while (n_sel < max_sentences) {
                Sent *pick = NULL;
                double pick_val = -INFINITY;
                for (size_t i = 0; i < l.n; i++) {
                        Sent *s = &l.v[i];
                        if (s->selected || !(s->score > 0))
                                continue;
                        double red = 0;
                        for (size_t j = 0; j < n_sel; j++)
                                red = MAX(red, jaccard(s->set, s->n_set, sel[j]->set, sel[j]->n_set));
                        /* padding: far weaker than the best, agreement aside
                         * (a sentence only one agent has is not weak) */
                        if (red >= EX_DUP_SIMILARITY ||
                            ps[s->src].weight * s->rel < EX_MIN_RELATIVE_SCORE * max_base)
                                continue;
                        double v = EX_MMR_LAMBDA * (s->score / max_score) - (1 - EX_MMR_LAMBDA) * red;
                        if (v > pick_val) { /* strict: ties keep the earlier sentence */
                                pick_val = v;
                                pick = s;
                        }
                }
                if (!pick)
                        break;
                size_t w = count_words(pick->text) + (pick->n_cites > 0); /* and its "[n]" */
                if (n_sel > 0 && words + w > max_words)
                        break;
                words += w;
                pick->selected = 1;
                sel[n_sel++] = pick;
        }

        /* Renumber citations: merged source lines "title, chunk k (agent)";
         * a line that already names its agent (from an earlier
         * aggregation) is kept as is. */
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
                print_words(f, s->text, max_words, out_cites, n_out);
        }
        if (n_gs > 0) {
                fputc('\n', f);
                print_sources(f, gs, n_gs);
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
        query_done(&q);
        for (size_t i = 0; i < n; i++)
                free(texts[i]);
        if (ps)
                for (size_t i = 0; i < n; i++)
                        for (size_t k = 0; k < ps[i].n_src; k++)
                                free(ps[i].src[k].text);
        free(ps);
        sent_list_done(&l);
        return result;
}

/* ---- reviews ------------------------------------------------------------ */

#define EX_MAX_FOCUS 16u
#define EX_MAX_FINDINGS 8u
#define EX_DEFAULT_FINDINGS 4u

/* ", "-separated focus phrases → up to EX_MAX_FOCUS NUL-terminated copies
 * in @buf (of @size bytes). Returns their count. */
static size_t focus_split(const char *focus, char *buf, size_t size, const char **out) {
        size_t n = 0, o = 0;

        for (const char *p = focus ? focus : ""; *p && n < EX_MAX_FOCUS;) {
                size_t l = strcspn(p, ",");
                while (l > 0 && is_space_b((unsigned char) *p))
                        p++, l--;
                size_t e = l;
                while (e > 0 && is_space_b((unsigned char) p[e - 1]))
                        e--;
                if (e >= 2 && o + e + 1 <= size) {
                        memcpy(buf + o, p, e);
                        buf[o + e] = 0;
                        out[n++] = buf + o;
                        o += e + 1;
                }
                p += l;
                if (*p == ',')
                        p++;
        }
        return n;
}

/* How many of the focus phrases @s holds (whole words, any case), as a
 * bit set in *ret_mask. */
static unsigned focus_count(const char *s, const char *const *focus, size_t n, uint32_t *ret_mask) {
        unsigned c = 0;
        uint32_t mask = 0;

        for (size_t i = 0; i < n; i++) {
                size_t fl = strlen(focus[i]);
                for (const char *p = strcasestr(s, focus[i]); p; p = strcasestr(p + 1, focus[i])) {
                        int before = p == s || !isalnum((unsigned char) p[-1]);
                        int after = !isalnum((unsigned char) p[fl]) ||
                                    (p[fl] == 's' && !isalnum((unsigned char) p[fl + 1]));
                        if (before && after) {
                                c++;
                                mask |= 1u << i;
                                break;
                        }
                }
        }
        *ret_mask = mask;
        return c;
}

static const char *severity_of(unsigned terms) {
        return terms >= 3 ? "high" : terms == 2 ? "medium" : "low";
}

/**
 * extract_review() - see extract.h.
 */
char *extract_review(const char *focus, const KbHit *hits, size_t n_hits, size_t n_attached,
                     const ExtractOptions *opts) {
        unsigned max_findings = opts && opts->max_sentences ? MIN(opts->max_sentences, EX_MAX_FINDINGS)
                                                            : EX_DEFAULT_FINDINGS;
        char fbuf[1024];
        const char *fv[EX_MAX_FOCUS];
        size_t nf = focus_split(focus, fbuf, sizeof fbuf, fv);
        char *buf = NULL, *result = NULL;
        size_t buf_len = 0;
        SentList l = {.v = calloc(EX_MAX_SENTENCES, sizeof(Sent))};
        Sent *sel[EX_MAX_FINDINGS];
        unsigned counts[EX_MAX_FINDINGS];
        size_t n_sel = 0;
        FILE *f;

        n_hits = hits ? MIN(n_hits, (size_t) EX_MAX_HITS) : 0;
        n_attached = MIN(n_attached, n_hits);
        if (!l.v)
                return NULL;
        f = open_memstream(&buf, &buf_len);
        if (!f) {
                free(l.v);
                return NULL;
        }
        for (size_t h = 0; h < n_hits; h++) {
                const char *t = hits[h].text ?: "";
                if (split_into(&l, t, strlen(t), (unsigned) h, (unsigned) h, 0, 4) < 0)
                        goto out;
        }
        /* Findings: the attached sentences holding the most focus phrases,
         * in document order among equals; near-duplicates once. */
        for (unsigned want = (unsigned) nf; want >= 1 && n_sel < max_findings; want--)
                for (size_t i = 0; i < l.n && n_sel < max_findings; i++) {
                        Sent *s = &l.v[i];
                        uint32_t mask;
                        int dup = 0;
                        if (s->src >= n_attached || s->selected ||
                            focus_count(s->text, fv, nf, &mask) != want)
                                continue;
                        for (size_t j = 0; j < n_sel && !dup; j++)
                                dup = jaccard(s->set, s->n_set, sel[j]->set, sel[j]->n_set) >=
                                      EX_DUP_SIMILARITY;
                        if (dup)
                                continue;
                        s->selected = 1;
                        counts[n_sel] = want;
                        sel[n_sel++] = s;
                }
        if (n_sel == 0) {
                fputs("The ", f);
                (void) fput_clean(f, opts && opts->agent ? opts->agent : "agent's");
                fputs(" review found no passage of the attached documents in its field.", f);
                result = finish_stream(f, &buf);
                f = NULL;
                goto out;
        }

        unsigned cite_of_hit[EX_MAX_HITS] = {}, cited_hit[EX_MAX_HITS], n_cited = 0;
        for (size_t i = 0; i < n_sel; i++) {
                Sent *s = sel[i], *kb = NULL;
                uint32_t fmask, m;
                unsigned best = 0;

                (void) focus_count(s->text, fv, nf, &fmask);
                /* the knowledge sentence sharing most of the finding's phrases */
                for (size_t j = 0; j < l.n; j++) {
                        Sent *k = &l.v[j];
                        if (k->src < n_attached)
                                continue;
                        (void) focus_count(k->text, fv, nf, &m);
                        unsigned c = (unsigned) __builtin_popcount(m & fmask);
                        if (c > best) {
                                best = c;
                                kb = k;
                        }
                }
                fprintf(f, "- [%s] ", severity_of(counts[i]));
                if (!cite_of_hit[s->src]) {
                        cited_hit[n_cited] = s->src;
                        cite_of_hit[s->src] = ++n_cited;
                }
                print_cited(f, s->text, &cite_of_hit[s->src], 1);
                if (kb) {
                        if (!cite_of_hit[kb->src]) {
                                cited_hit[n_cited] = kb->src;
                                cite_of_hit[kb->src] = ++n_cited;
                        }
                        fputs(" Knowledge: ", f);
                        print_cited(f, kb->text, &cite_of_hit[kb->src], 1);
                }
                fputc('\n', f);
        }
        if (print_hit_sources(f, hits, cited_hit, n_cited) < 0)
                goto out;
        result = finish_stream(f, &buf);
        f = NULL;
out:
        if (f) {
                fclose(f);
                free(buf);
        }
        sent_list_done(&l);
        return result;
}

typedef struct Finding {
        const char *line; /* after "- [sev] ", to the end of the line (not NUL-terminated) */
        size_t len;
        int sev; /* 0 high, 1 medium, 2 low */
        size_t prop;
        char agents[256];
} Finding;

static int sev_rank(const char *s, size_t *ret_len) {
        static const char *const names[] = {"[high] ", "[medium] ", "[low] "};
        for (int i = 0; i < 3; i++)
                if (strncmp(s, names[i], strlen(names[i])) == 0) {
                        *ret_len = strlen(names[i]);
                        return i;
                }
        return -1;
}

/* Print @line (@len bytes) with each " [n]" marker renumbered through the
 * merged sources list @gs (line text per number of @p). */
static int print_renumbered(FILE *f, const char *line, size_t len, const Prop *p, char **gs, size_t *n_gs) {
        for (size_t i = 0; i < len; i++) {
                if (line[i] == '[' && i > 0 && line[i - 1] == ' ') {
                        size_t k = i + 1;
                        unsigned v = 0;
                        while (k < len && k - i <= 4 && isdigit((unsigned char) line[k]))
                                v = v * 10 + (unsigned) (line[k++] - '0');
                        const SourceRef *src =
                                k > i + 1 && k < len && line[k] == ']' ? source_of(p, v) : NULL;
                        if (src) {
                                _cleanup_free_ char *g = NULL;
                                if (src->attributed || !*p->agent)
                                        g = strdup(src->text);
                                else if (asprintf(&g, "%s (%.*s)", src->text, (int) strcspn(p->agent, "#"),
                                                  p->agent) < 0)
                                        g = NULL;
                                if (!g)
                                        return -ENOMEM;
                                size_t n = 0;
                                while (n < *n_gs && !streq(gs[n], g))
                                        n++;
                                if (n == *n_gs) {
                                        if (*n_gs >= EX_MAX_SOURCES)
                                                return -E2BIG;
                                        gs[(*n_gs)++] = TAKE_PTR(g);
                                }
                                fprintf(f, "[%zu]", n + 1);
                                i = k;
                                continue;
                        }
                }
                fputc(line[i], f);
        }
        return 0;
}

/**
 * extract_review_merge() - see extract.h.
 */
char *extract_review_merge(const ExtractProposal *props, size_t n) {
        Prop *ps = calloc(EX_MAX_PROPOSALS, sizeof(Prop));
        Finding *fs = calloc(EX_MAX_PROPOSALS * EX_MAX_FINDINGS, sizeof(Finding));
        char *gs[EX_MAX_SOURCES] = {}, *buf = NULL, *result = NULL;
        size_t n_fs = 0, n_gs = 0, buf_len = 0;
        FILE *f = NULL;

        n = props ? MIN(n, (size_t) EX_MAX_PROPOSALS) : 0;
        if (!ps || !fs)
                goto out;
        for (size_t i = 0; i < n; i++) {
                const char *t = props[i].text ?: "";
                size_t len = strnlen(t, EX_MAX_PROPOSAL_BYTES), so = find_sources(t, len);
                ps[i].agent = props[i].agent ?: "";
                if (so < len && parse_sources(&ps[i], t + so, len - so) < 0)
                        goto out;
                for (size_t k = 0; k < so && n_fs < EX_MAX_PROPOSALS * EX_MAX_FINDINGS;) {
                        size_t e = k, sl;
                        while (e < so && t[e] != '\n')
                                e++;
                        int sev =
                                e - k > 2 && t[k] == '-' && t[k + 1] == ' ' ? sev_rank(t + k + 2, &sl) : -1;
                        if (sev >= 0) {
                                Finding *x = &fs[n_fs];
                                *x = (Finding){.line = t + k + 2 + sl,
                                               .len = e - k - 2 - sl,
                                               .sev = sev,
                                               .prop = i};
                                snprintf(x->agents, sizeof x->agents, "%.*s",
                                         (int) strcspn(ps[i].agent, "#"), ps[i].agent);
                                /* the same finding from another agent: one line naming both */
                                size_t d = 0;
                                while (d < n_fs &&
                                       !(fs[d].len == x->len && memcmp(fs[d].line, x->line, x->len) == 0))
                                        d++;
                                if (d < n_fs) {
                                        char who[sizeof x->agents];
                                        memcpy(who, x->agents, sizeof who);
                                        size_t al = strlen(fs[d].agents);
                                        if (!strstr(fs[d].agents, who))
                                                snprintf(fs[d].agents + al, sizeof fs[d].agents - al, ", %s",
                                                         who);
                                        fs[d].sev = MIN(fs[d].sev, sev);
                                } else
                                        n_fs++;
                        }
                        k = e + 1;
                }
        }
        f = open_memstream(&buf, &buf_len);
        if (!f)
                goto out;
        if (n_fs == 0) {
                fputs("None of the reviewing agents found a passage of the attached documents in its field.",
                      f);
                result = finish_stream(f, &buf);
                f = NULL;
                goto out;
        }
        for (int sev = 0; sev < 3; sev++)
                for (size_t i = 0; i < n_fs; i++) {
                        if (fs[i].sev != sev)
                                continue;
                        fprintf(f, "- [%s] (%s) ", severity_of(3 - (unsigned) sev), fs[i].agents);
                        if (print_renumbered(f, fs[i].line, fs[i].len, &ps[fs[i].prop], gs, &n_gs) < 0)
                                goto out;
                        fputc('\n', f);
                }
        print_sources(f, gs, n_gs);
        result = finish_stream(f, &buf);
        f = NULL;
out:
        if (f) {
                fclose(f);
                free(buf);
        }
        for (size_t g = 0; g < n_gs; g++)
                free(gs[g]);
        if (ps)
                for (size_t i = 0; i < n; i++)
                        for (size_t k = 0; k < ps[i].n_src; k++)
                                free(ps[i].src[k].text);
        free(ps);
        free(fs);
        return result;
}
