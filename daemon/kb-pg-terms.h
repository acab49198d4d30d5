/* kb-pg-terms.h — a query's lexemes as PostgreSQL's to_tsvector() with one
 * of moad's text-search configurations makes them, computed here instead
 * of asked of the server: the routing evidence and the builtin provider
 * tokenize on the event loop, which must not wait for a round trip. */
#pragma once

#include <stddef.h>

struct sb_stemmer;

/**
 * kb_pg_terms() - the distinct lexemes of @query (read up to
 * KB_MAX_QUERY_BYTES, invalid UTF-8 replaced), first occurrences first, at
 * most @max: words are the runs of letters and digits (a byte >= 0x80 counts
 * as a letter; apostrophes and hyphens split, as the default parser's parts),
 * lower-cased (ASCII and Latin-1), the stop words of configuration
 * @language (kb_pg_is_stop_word(), which PostgreSQL drops) and the function
 * words of the four languages (which the router ignores) left out, the rest
 * stemmed with @stemmer (the configuration's Snowball stemmer; NULL for
 * "simple").
 * An approximation of the server's parser: a compound ("covid-19") counts
 * only as its parts, and e-mail addresses, URLs and version numbers are
 * split where the server keeps them whole. *@ret is a malloc'ed array of
 * malloc'ed strings (free with strv_free_n()). Returns 0 or -errno.
 */
int kb_pg_terms(const char *language, struct sb_stemmer *stemmer, const char *query, size_t max, char ***ret,
                size_t *ret_n);

/** kb_pg_is_stop_word() - whether configuration @language drops the lower-cased @word (kb-pg-stopwords.c).
 */
int kb_pg_is_stop_word(const char *language, const char *word);

/** kb_pg_stemmer_name() - the Snowball stemmer of configuration @language, NULL for "simple" or unknown. */
const char *kb_pg_stemmer_name(const char *language);
