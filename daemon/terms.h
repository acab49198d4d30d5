/* terms.h — the router's view of text. Words are folded to lower case with
 * Latin accents removed ("Kündigung" -> kundigung), split on punctuation but
 * with joined forms kept ("GPLv3" -> gplv3, "401(k)" -> 401k, "COVID-19" ->
 * covid19 plus the parts covid and 19, "non-compete" -> noncompete, non,
 * compete), French elisions and English possessives dropped ("l'avocat" ->
 * avocat, "landlord's" -> landlord), function words of English, German,
 * French and Spanish flagged, and every word stemmed with the Snowball
 * stemmer (libstemmer) of the text's guessed language. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define TERM_MAX_BYTES 48u      /* longer words are cut (a cut word is still a word) */
#define TERMS_MAX_DEFAULT 4096u /* terms_split() never returns more than its @max */

typedef enum TermLang {
        TERM_LANG_EN,
        TERM_LANG_DE,
        TERM_LANG_FR,
        TERM_LANG_ES,
        TERM_LANG_MAX,
} TermLang;

/**
 * struct Term - one word of a text.
 * @word: the folded surface form, NUL-terminated.
 * @stem: its stem in the text's language, NUL-terminated.
 * @stop: a function word ("the", "der", "les", "los", ...).
 * @part: a piece of a joined word ("covid" of "covid-19"); the joined form
 *        precedes its parts in the list.
 */
typedef struct Term {
        char word[TERM_MAX_BYTES];
        char stem[TERM_MAX_BYTES];
        uint8_t stop;
        uint8_t part;
} Term;

/** struct TermList - the words of one text, in order; release with term_list_done(). */
typedef struct TermList {
        Term *v;
        size_t n;
        TermLang lang;
} TermList;

#define TERM_LIST_INIT ((TermList){0})

typedef struct Terms Terms;

/**
 * terms_new() - the stemmers for every supported language. A Terms is used by
 * one thread at a time. Returns 0 or -ENOMEM / -ENOTSUP (a stemmer missing
 * from libstemmer).
 */
int terms_new(Terms **ret);

/** terms_free() - free; NULL is a no-op. Returns NULL. */
Terms *terms_free(Terms *t);

/**
 * terms_split() - the words of @len bytes of UTF-8 @text (invalid bytes are
 * separators), at most @max of them (0: TERMS_MAX_DEFAULT). The language is
 * guessed from function words and letters such as ß, ñ or ç; English when in
 * doubt. Fills *@ret (which must be empty). Returns 0 or -ENOMEM.
 */
int terms_split(Terms *t, const char *text, size_t len, size_t max, TermList *ret);

/** term_list_done() - free the contents of @l and zero it. */
void term_list_done(TermList *l);

/**
 * terms_is_function_word() - whether the folded lower-case word @w is a
 * function word of English, German, French or Spanish ("les", "und", "what"),
 * but not one that is an English content word ("mit", "son", "die").
 */
int terms_is_function_word(const char *w);

/** term_lang_name() - "en", "de", "fr" or "es". */
const char *term_lang_name(TermLang lang);
