/* citations.h — the structured citations of an answer (moa.citations):
 * which passages it quotes, from which agent, document, source and chunk,
 * and the quoted words. Pure functions over the final answer text and the
 * passages the request's agents were given; no I/O. */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* One passage an agent was given: as its prompt numbered it ("[2]"), from
 * its knowledge base or from a document attached to the request. */
typedef struct CitePassage {
        const char *agent;  /* whose retrieval found it (the knowledge owner, no "#n") */
        unsigned number;    /* 1-based, as the agent's prompt numbers it */
        const char *title;  /* document title */
        const char *source; /* the document's source path, "" if none */
        unsigned chunk;     /* chunk index in the document, 0-based */
        const char *text;   /* the whole chunk */
        int attached;       /* from moa.documents of the request, not a knowledge base */
} CitePassage;

/* Bounds: citations per answer, bytes of answer read. */
#define CITATIONS_MAX 128u
#define CITATIONS_MAX_ANSWER_BYTES (256u * 1024u)

/**
 * citations_build() - the citations of @answer, a JSON array (new
 * reference; NULL only on OOM) of {number, agent, document, source, chunk,
 * quote, attached}.
 *
 * An answer with a "Sources:" list in the builtin provider's format ("[n]
 * title, chunk k" with an optional " (agent)") that names passages of @p
 * is quoted: one citation per "[n]" marker of its body, in order, whose
 * quote is the text before the marker back to the previous marker (without
 * a final "..."), when that text is in the passage (runs of white space
 * read as one space), else null. Otherwise, when @extractive (every call
 * of the request ran on the builtin provider) the answer quotes nothing:
 * []. Any other answer (a model's text): every passage of @p, in order,
 * numbered as its agent's prompt numbered it, quote null (what a model
 * quoted is not known).
 */
json_t *citations_build(const char *answer, const CitePassage *p, size_t n, int extractive);

/**
 * citation_quote_in() - whether @quote occurs in @text with every run of
 * white space in either read as one space. Exposed for tests.
 */
int citation_quote_in(const char *quote, const char *text);
