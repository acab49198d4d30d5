/* spelling.h — British and American spellings of the same English word
 * ("licence"/"license", "tumour"/"tumor", "organise"/"organize",
 * "haemorrhage"/"hemorrhage"), so that a question in one finds a document
 * in the other. A fixed table of the variants that matter in the agents'
 * fields; no rule that could turn one word into another. */
#pragma once

#include <stddef.h>

/**
 * spelling_variant() - the other spelling of the lower-case ASCII word @w
 * (@n bytes). With @to_american only British forms are changed (a
 * canonical form both sides of a comparison can use); otherwise either way.
 * Writes the variant, NUL-terminated, to @buf (@size bytes) and returns its
 * length; 0 when the word has no listed variant or it does not fit.
 */
size_t spelling_variant(const char *w, size_t n, int to_american, char *buf, size_t size);
