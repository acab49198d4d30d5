/* kb-chunk.h — internal to the knowledge base (kb.c, kb-chunk.c): what the
 * schema migration needs from the section scanner. The chunking API itself
 * is in kb.h. */
#pragma once

#include <stddef.h>

/**
 * kb_chunk_headings_recompute() - heading paths for the @n stored chunks
 * @texts (with lengths @lens) of one document, in document order, as
 * well as they can be told without the original text: the path in effect
 * where each chunk begins, headings being found in the chunk texts
 * themselves. Used to migrate version-1 databases, whose chunks were cut
 * without regard to sections. Sets *@ret to a malloc'ed array of @n
 * malloc'ed strings ("" when none); free with kb_strv_free(). Returns 0 or
 * -ENOMEM.
 */
int kb_chunk_headings_recompute(const char *const *texts, const size_t *lens, size_t n, char ***ret);

/** kb_strv_free() - free an array of @n strings and the array; NULL is a no-op. */
void kb_strv_free(char **v, size_t n);
