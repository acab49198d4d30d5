/* kb-named.h — documents a question names by their title ("what does
 * GPLv3 say about ..." names the document "GPL-3"), preferred among the
 * retrieved chunks. Internal to the daemon (engine.c). */
#pragma once
#include <stddef.h>

#include "kb.h"

/* How much a named document's chunks weigh over the others' (a factor on
 * KbHit.score): enough to put its best chunks first when they were
 * retrieved at all, not enough to lift an unrelated chunk of it over a
 * strong match elsewhere. */
#define KB_NAMED_BOOST 4.0

/**
 * kb_title_named() - whether @query names the document @title: every word
 * of the title's last path component (without an extension such as ".md",
 * without stop-words, a version's trailing ".0" optional) is a word of the
 * query, compared as kb_fts_query() reads words ("GPLv3" is "gpl" "3",
 * "v2.1" is "2" "1"), and the title has a word of two letters or more.
 * Titles of more than 8 words are never named. Returns 1 or 0.
 */
int kb_title_named(const char *title, const char *query);

/* At most this many named documents are searched for one question. */
#define KB_NAMED_MAX 4u

/**
 * kb_hits_named_globs() - the titles among the @n hits that @query names
 * (kb_title_named(), each once, at most KB_NAMED_MAX, best hit first) as
 * GLOB patterns matching exactly that title ('*', '?' and '[' bracketed),
 * for kb_search_in(). Returns the count with the malloc'ed patterns in
 * @ret (free with kb_named_globs_free()), 0 when none, -ENOMEM.
 */
int kb_hits_named_globs(const char *query, const KbHit *hits, size_t n, char *ret[static KB_NAMED_MAX]);
void kb_named_globs_free(char **globs, size_t n);

/**
 * kb_hits_join() - append to the @na hits *@a those of the @nb hits @b
 * (taken) that are not already there (same title and chunk; duplicates are
 * freed). Returns the new count, or -ENOMEM (then @b is freed and *@a
 * unchanged).
 */
int kb_hits_join(KbHit **a, size_t na, KbHit *b, size_t nb);

/**
 * kb_hits_prefer_named() - multiply the score of each of the @n hits whose
 * document @query names by KB_NAMED_BOOST, sort them by score (stable),
 * and keep the best @keep (the others are freed). A NULL @query boosts
 * nothing and keeps the first @keep as they are. Returns how many are
 * kept.
 */
size_t kb_hits_prefer_named(const char *query, KbHit *hits, size_t n, size_t keep);
