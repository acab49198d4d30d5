/* SPDX-License-Identifier: MIT */
/* moa/plugin-util.h — helpers for moad agent plugins, the ones the shipped
 * plugins are written with: a string builder that hands its result to the
 * host allocator, text normalisation with accent folding and tokenising, a
 * data-driven lexicon scorer (weighted phrases, prefixes, other-sense
 * penalties, co-occurrence rules), option look-ups, context formatting,
 * redaction of personal data (e-mail, phone, card numbers with Luhn check,
 * IBAN with mod-97, US SSN), a language guess and localised notices.
 *
 * Linked statically into the plugin from libmoa-plugin-util.a:
 *   cc -shared -fPIC $(pkg-config --cflags moa-plugin) my.c -o my.so \
 *      $(pkg-config --libs moa-plugin)
 * (the library is built with -fPIC; it needs libm, which --libs names).
 *
 * Versioning: MOA_PLUGIN_UTIL_VERSION_MAJOR changes when a function or
 * type below changes incompatibly (a plugin's source may need editing);
 * MOA_PLUGIN_UTIL_VERSION_MINOR when functions are added. As the library
 * is static, a built plugin never depends on the installed version.
 *
 * Memory: every MuBuf and MuText owns plain malloc() memory released by
 * mu_buf_free()/mu_text_done(); strings for the host are copied into
 * host->alloc memory by mu_buf_to_host(), mu_buf_finish() and
 * mu_return_prompt(). No function keeps global state: they may be used
 * from several agent instances at once. */
#ifndef MOA_PLUGIN_UTIL_H
#define MOA_PLUGIN_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <moa/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/** MOA_PLUGIN_UTIL_VERSION_MAJOR - incompatible API changes. */
#define MOA_PLUGIN_UTIL_VERSION_MAJOR 1
/** MOA_PLUGIN_UTIL_VERSION_MINOR - additions. */
#define MOA_PLUGIN_UTIL_VERSION_MINOR 0

/* Bounds on what the scorer looks at: a query longer than this is scored on
 * its first MU_MAX_TEXT bytes (routing needs the gist, not the whole text). */
#define MU_MAX_TEXT 8192u
#define MU_MAX_WORDS 1024u
#define MU_MAX_PATTERN_WORDS 8u

/**
 * mu_version() - the library's version as MAJOR * 1000 + MINOR, for a
 * plugin that wants to log what it was built with.
 */
unsigned mu_version(void);

/* ---- string builder --------------------------------------------------- */

/**
 * struct MuBuf - a growing NUL-terminated string; zero-initialise it
 * (`MuBuf b = {0};`). After an allocation failure @oom is set and every
 * further append is a no-op, so callers check once at the end.
 * @s:   the text (NULL while empty), @len bytes, @cap allocated.
 * @oom: non-zero once an allocation failed.
 */
typedef struct MuBuf {
        char *s;
        size_t len, cap;
        int oom;
} MuBuf;

/** mu_buf_free() - release @b's memory and empty it (it may be reused). */
void mu_buf_free(MuBuf *b);

/** mu_buf_reserve() - make room for @extra more bytes; 0 or -ENOMEM (sets @oom). */
int mu_buf_reserve(MuBuf *b, size_t extra);

/** mu_buf_add_n() - append @n bytes of @s (need not be NUL-terminated). */
void mu_buf_add_n(MuBuf *b, const char *s, size_t n);

/** mu_buf_add() - append the NUL-terminated @s. */
void mu_buf_add(MuBuf *b, const char *s);

/** mu_buf_printf() - append printf-formatted text. */
void mu_buf_printf(MuBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** mu_buf_to_host() - a copy of @b's text in host->alloc memory (the host
 * frees it), "" when empty; NULL on allocation failure or if @b->oom. */
char *mu_buf_to_host(const MoaHost *host, const MuBuf *b);

/** mu_buf_rtrim() - drop trailing blanks (spaces, tabs, newlines). */
void mu_buf_rtrim(MuBuf *b);

/**
 * mu_buf_finish() - end of a review: hand @b's text to the host in
 * *@ret_answer (host memory) and free @b. Returns 0, or -ENOMEM (nothing
 * set) when building or copying ran out of memory.
 */
int mu_buf_finish(const MoaHost *host, MuBuf *b, char **ret_answer);

/** mu_set_reason() - copy @s into score()'s @reason buffer of @size bytes,
 * truncating on a UTF-8 character boundary. */
void mu_set_reason(char *reason, uint32_t size, const char *s);

/* ---- normalisation and tokens ---------------------------------------- */

/**
 * mu_normalize() - a malloc'ed normalised copy of (at most MU_MAX_TEXT
 * bytes of) @s: lower case, Latin-1 accents folded (é->e, ß->ss, œ->oe),
 * punctuation to single spaces; '_', '+' and '#' stay word characters (c++,
 * c#, snake_case are signals), other non-ASCII bytes are kept as letters.
 * NULL on allocation failure.
 */
char *mu_normalize(const char *s);

/**
 * struct MuText - a normalised text cut into words.
 * @norm: the normalised text (owned).
 * @word: the start of each word in @norm, @wlen its length, @n words (at
 *        most MU_MAX_WORDS).
 */
typedef struct MuText {
        char *norm;
        const char *word[MU_MAX_WORDS];
        uint16_t wlen[MU_MAX_WORDS];
        unsigned n;
} MuText;

/** mu_text_init() - normalise and tokenise @s (NULL: empty) into @t;
 * 0 or -ENOMEM. Release with mu_text_done(). */
int mu_text_init(MuText *t, const char *s);

/** mu_text_done() - release @t's memory. */
void mu_text_done(MuText *t);

/**
 * mu_match() - does @pattern occur in @t? A pattern is normalised words
 * separated by spaces (a phrase), a trailing '*' on a word matching any
 * word with that prefix, and '|' separating alternatives:
 * "landlord|tenan*|security deposit". Returns 1 or 0.
 */
int mu_match(const MuText *t, const char *pattern);

/**
 * mu_match_claim() - like mu_match(), but only a match none of whose words
 * is already set in @claimed (an array of @t->n flags) counts; the words of
 * the first such match are then claimed and returned as [*@ret_start,
 * *@ret_start + *@ret_len). So one word of the text feeds at most one rule.
 * Returns 1 or 0 (outputs untouched).
 */
int mu_match_claim(const MuText *t, const char *pattern, unsigned char *claimed, unsigned *ret_start,
                   unsigned *ret_len);

/* ---- the lexicon scorer ----------------------------------------------- */

/**
 * struct MuLex - one lexicon rule.
 * @pattern: normalised words (ASCII, lower case, accents folded), phrases
 *           allowed, '*' suffix = prefix, '|' = alternatives.
 * @weight:  added to the evidence when @pattern occurs (once per rule);
 *           negative for other senses ("river bank" for finance).
 * @with:    NULL, or a pattern that must also occur anywhere in the text
 *           for the rule to apply (co-occurrence: "bank" + "river").
 * @label:   for negative rules, the other sense the reason names (NULL:
 *           the pattern); positive rules show the words they matched.
 */
typedef struct MuLex {
        const char *pattern;
        double weight;
        const char *with;
        const char *label;
} MuLex;

/**
 * mu_lex_score() - sum the weights of every rule of @lex (@n rules) that
 * fires on @t (a positive rule fires only on words no earlier positive rule
 * used, so put strong rules first); fill @reason (@reason_size bytes, may
 * be NULL) with the matched words of the strongest positive rules and any
 * other-sense label. Returns the raw evidence (may be negative): turn it
 * into a score with mu_squash_signed().
 */
double mu_lex_score(const MuText *t, const MuLex *lex, size_t n, char *reason, uint32_t reason_size);

/** mu_squash() - evidence to [0, 1): 1 - exp(-@evidence / @scale), 0 for
 * evidence <= 0; @scale is the evidence that gives ~0.63. */
double mu_squash(double evidence, double scale);

/** mu_squash_signed() - evidence to (-1, 1): mu_squash() of its size with
 * its sign. A negative score says other-sense rules outweighed the domain's
 * terms (plugin ABI 1.1: the router counts it against the agent). */
double mu_squash_signed(double evidence, double scale);

/** mu_buf_add_words() - append words [@start, @start + @len) of @t to @b,
 * separated by spaces. */
void mu_buf_add_words(MuBuf *b, const MuText *t, unsigned start, unsigned len);

/* ---- options and logging ----------------------------------------------- */

/** mu_option() - the agent's option @key (host->config_get), NULL if unset
 * or the host has no config_get. Valid until fini. */
const char *mu_option(const MoaHost *host, MoaHostContext *ctx, const char *key);

/** mu_option_bool() - option @key as a boolean (yes/true/on/1, no/false/off/0);
 * @def when unset or not a boolean. */
int mu_option_bool(const MoaHost *host, MoaHostContext *ctx, const char *key, int def);

/** mu_option_long() - option @key as an integer in [@lo, @hi]; @def when
 * unset or invalid. */
long mu_option_long(const MoaHost *host, MoaHostContext *ctx, const char *key, long def, long lo, long hi);

/** mu_log() - log a printf-formatted line (at most 511 bytes) at @level
 * (MOA_LOG_*) through host->log, if the host has it. */
void mu_log(const MoaHost *host, MoaHostContext *ctx, int level, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* ---- context and redaction --------------------------------------------- */

/** mu_add_clipped() - append @s cut to @max_chars bytes (on a UTF-8
 * boundary, then " [...]"). */
void mu_add_clipped(MuBuf *b, const char *s, size_t max_chars);

/* What mu_redact() replaces (bits). */
enum {
        MU_REDACT_EMAIL = 1u << 0,
        MU_REDACT_PHONE = 1u << 1,
        MU_REDACT_CARD = 1u << 2,
        MU_REDACT_IBAN = 1u << 3,
        MU_REDACT_SSN = 1u << 4,
};

/**
 * mu_redact() - copy @s to @out replacing personal data selected by @what
 * (MU_REDACT_*) with "[redacted e-mail]" etc.: e-mail addresses, phone
 * numbers (9..15 digits, or 8 after a leading '+', with separators),
 * payment card numbers (13..19 digits passing Luhn), IBANs (mod-97), US
 * SSNs (ddd-dd-dddd). Returns the number of replacements.
 */
unsigned mu_redact(const char *s, unsigned what, MuBuf *out);

/* ---- per-instance state ---------------------------------------------- */

/**
 * struct MuState - what most plugins keep per agent instance; embed it
 * first in the plugin's own state.
 * @host, @ctx, @info: from init.
 * @prompt:            the configured prompt, or the plugin's default.
 * @max_passages:      option max_passages, 1..32, default 5.
 * @max_passage_chars: option max_passage_chars, 200..8000, default 1200.
 * @review:            option review (yes/no), default yes.
 */
typedef struct MuState {
        const MoaHost *host;
        MoaHostContext *ctx;
        const MoaAgentInfo *info;
        const char *prompt;
        unsigned max_passages;
        unsigned max_passage_chars;
        int review;
} MuState;

/** mu_state_setup() - fill @s from init's arguments and the options above.
 * 0, or -EINVAL when the host lacks alloc/free or @info is NULL. */
int mu_state_setup(MuState *s, const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                   const char *default_prompt);

/** mu_return_prompt() - hand two builders to the host as build_prompt's
 * (*@ret_system, *@ret_context) and free both; an empty context becomes
 * NULL. Returns 0 or -ENOMEM (nothing set). */
int32_t mu_return_prompt(const MuState *s, MuBuf *sys, MuBuf *ctx, char **ret_system, char **ret_context);

/* ---- languages and notices ------------------------------------------- */

/* Languages mu_detect_lang() tells apart; index of mu_append_notice()'s arrays. */
enum { MU_LANG_EN, MU_LANG_DE, MU_LANG_FR, MU_LANG_ES };

/** mu_detect_lang() - guess @s's language (MU_LANG_*) from its function
 * words; MU_LANG_EN when unsure. */
int mu_detect_lang(const char *s);

/** mu_contains_ci() - does @hay contain @needle, ASCII case-insensitively? */
int mu_contains_ci(const char *hay, const char *needle);

/**
 * mu_append_notice() - the disclaimer helper: append @notices[lang] (lang =
 * mu_detect_lang(@answer)) to @out as its own paragraph, after trimming
 * @out, unless @answer already contains one of @markers (any language).
 * Both arrays are indexed by MU_LANG_* and every entry must be non-NULL.
 */
void mu_append_notice(MuBuf *out, const char *answer, const char *const markers[4],
                      const char *const notices[4]);

#ifdef __cplusplus
}
#endif

#endif /* MOA_PLUGIN_UTIL_H */
