/* kb-text.c — text helpers shared by kb.c and extract.c: UTF-8 validation
 * and repair, what counts as a word character, English stop-words. */
#include <ctype.h>

#include "kb-text.h"
#include "util.h"

/** kb_utf8_valid_len() - see kb-text.h. */
size_t kb_utf8_valid_len(const unsigned char *s, size_t n) {
        if (n == 0)
                return 0;
        unsigned char c = s[0];
        if (c < 0x80)
                return 1;
        if (c >= 0xC2 && c <= 0xDF)
                return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
        if (c >= 0xE0 && c <= 0xEF) {
                if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
                        return 0;
                if (c == 0xE0 && s[1] < 0xA0)
                        return 0; /* overlong */
                if (c == 0xED && s[1] >= 0xA0)
                        return 0; /* surrogate */
                return 3;
        }
        if (c >= 0xF0 && c <= 0xF4) {
                if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
                        return 0;
                if (c == 0xF0 && s[1] < 0x90)
                        return 0;
                if (c == 0xF4 && s[1] >= 0x90)
                        return 0;
                return 4;
        }
        return 0;
}

/** kb_utf8_sanitize() - copy @text with every invalid byte replaced by U+FFFD and NUL bytes by a
 * space (chunks are C strings later). Returns a NUL-terminated malloc'ed
 * string and its length in *ret_len, or NULL on OOM. */
char *kb_utf8_sanitize(const char *text, size_t len, size_t *ret_len) {
        const unsigned char *s = (const unsigned char *) text;
        size_t out_max = len;
        /* Worst case every byte becomes 3 bytes; count first to stay small. */
        for (size_t i = 0; i < len;) {
                size_t l = kb_utf8_valid_len(s + i, len - i);
                if (l == 0) {
                        out_max += 2;
                        i++;
                } else
                        i += l;
        }
        char *out = malloc(out_max + 1);
        if (!out)
                return NULL;
        size_t o = 0;
        for (size_t i = 0; i < len;) {
                size_t l = kb_utf8_valid_len(s + i, len - i);
                if (l == 0) {
                        memcpy(out + o, "\xEF\xBF\xBD", 3);
                        o += 3;
                        i++;
                } else if (l == 1 && s[i] == 0) {
                        out[o++] = ' ';
                        i++;
                } else {
                        memcpy(out + o, s + i, l);
                        o += l;
                        i += l;
                }
        }
        out[o] = 0;
        if (ret_len)
                *ret_len = o;
        return out;
}

/* Sorted (byte order) for bsearch. */
static const char *const stop_words[] = {
        "a",          "about",    "above",   "after", "again", "against", "all",     "am",        "an",
        "and",        "any",      "are",     "as",    "at",    "be",      "because", "been",      "before",
        "being",      "below",    "between", "both",  "but",   "by",      "can",     "could",     "define",
        "definition", "describe", "did",     "do",    "does",  "doing",   "don",     "down",      "during",
        "each",       "explain",  "few",     "for",   "from",  "further", "get",     "had",       "has",
        "have",       "having",   "he",      "her",   "here",  "hers",    "herself", "him",       "himself",
        "his",        "how",      "i",       "if",    "in",    "into",    "is",      "it",        "its",
        "itself",     "just",     "many",    "me",    "mean",  "meaning", "means",   "more",      "most",
        "much",       "my",       "myself",  "no",    "nor",   "not",     "now",     "of",        "off",
        "on",         "once",     "only",    "or",    "other", "our",     "ours",    "ourselves", "out",
        "over",       "own",      "please",  "s",     "same",  "she",     "should",  "so",        "some",
        "such",       "t",        "tell",    "than",  "that",  "the",     "their",   "theirs",    "them",
        "themselves", "then",     "there",   "these", "they",  "this",    "those",   "through",   "to",
        "too",        "under",    "until",   "up",    "use",   "versus",  "very",    "vs",        "was",
        "we",         "were",     "what",    "when",  "where", "whether", "which",   "while",     "who",
        "whom",       "why",      "will",    "with",  "would", "you",     "your",    "yours",     "yourself",
        "yourselves",
};

typedef struct StopKey {
        const char *w;
        size_t n;
} StopKey;

static int stop_cmp(const void *key, const void *elem) {
        const StopKey *k = key;
        const char *s = *(const char *const *) elem;
        int c = strncmp(k->w, s, k->n);
        if (c != 0)
                return c;
        return s[k->n] ? -1 : 0; /* the key is a proper prefix of s: it sorts first */
}

size_t kb_versioned_name(const char *w, size_t n, size_t *name_len) {
        size_t letters = 0;
        while (letters < n && w[letters] >= 'a' && w[letters] <= 'z')
                letters++;
        if (letters < 2 || letters == n)
                return 0;
        for (size_t k = letters; k < n; k++)
                if (w[k] < '0' || w[k] > '9')
                        return 0;
        *name_len = letters - (letters >= 3 && w[letters - 1] == 'v');
        return letters;
}

/** kb_is_stop_word() - binary search: it runs for every word of every
 * retrieved passage on the request path. */
int kb_is_stop_word(const char *w, size_t n) {
        StopKey k = {.w = w, .n = n};

        if (n == 0 || n > 16 || memchr(w, 0, n))
                return 0;
        return bsearch(&k, stop_words, ELEMENTSOF(stop_words), sizeof stop_words[0], stop_cmp) != NULL;
}

/** kb_utf8_decode() - decode one code point of valid UTF-8 (the caller
 * sanitised the input). */
uint32_t kb_utf8_decode(const unsigned char *s, size_t l) {
        switch (l) {
        case 1:
                return s[0];
        case 2:
                return ((uint32_t) (s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        case 3:
                return ((uint32_t) (s[0] & 0x0F) << 12) | ((uint32_t) (s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        default:
                return ((uint32_t) (s[0] & 0x07) << 18) | ((uint32_t) (s[1] & 0x3F) << 12) |
                       ((uint32_t) (s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        }
}

/** kb_is_word_cp() - word characters: ASCII letters and digits, and any non-ASCII code point
 * that is not common punctuation, a space or a symbol. FTS5's unicode61
 * tokenizer re-tokenizes inside the quotes anyway; this only decides where
 * our terms split. */
int kb_is_word_cp(uint32_t c) {
        if (c < 0x80)
                return isalnum((int) c);
        if (c <= 0xBF) /* Latin-1 punctuation and symbols, NBSP */
                return c == 0xAA || c == 0xB5 || c == 0xBA;
        if (c == 0xD7 || c == 0xF7)
                return 0;
        if (c >= 0x2000 && c <= 0x2BFF) /* general punctuation .. arrows, symbols */
                return 0;
        if (c >= 0x3000 && c <= 0x303F) /* CJK punctuation */
                return 0;
        if (c >= 0xFE30 && c <= 0xFE4F)
                return 0;
        if ((c >= 0xFF00 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) || (c >= 0xFF3B && c <= 0xFF40) ||
            (c >= 0xFF5B && c <= 0xFF65))
                return 0;
        if (c >= 0xFFF0 && c <= 0xFFFF) /* specials, U+FFFD */
                return 0;
        if (c >= 0x1F000 && c <= 0x1FAFF) /* emoji and pictographs */
                return 0;
        return 1;
}
