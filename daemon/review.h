/* review.h — reviews of attached documents (moa.review): which passages of
 * the documents each agent reviews (its plugin's score of every chunk, the
 * lexicon terms it found there as the agent's focus), and the structured
 * findings of the final report. */
#pragma once

#include <jansson.h>

#include "chat-request.h"
#include "kb.h"
#include "plugin-host.h"

/* Chunks of the attached documents scored per agent; past it, the rest of
 * the documents is not reviewed (a bound on plugin calls on the loop). */
#define REVIEW_MAX_CHUNKS 256u
#define REVIEW_MAX_FOCUS 16u

/**
 * review_pick() - the @limit chunks of @docs that @pa's plugin scores
 * highest (above 0; cut by kb_chunk_sections() as the knowledge base cuts
 * them), best first, as hits (free with kb_hits_free()), and in *@ret_focus
 * the lexicon terms its reasons named in them, ", "-separated, most
 * frequent first ("" when none). Returns 0 or -errno.
 */
int review_pick(PluginAgent *pa, const ChatDocument *docs, size_t n_docs, unsigned limit, KbHit **ret_hits,
                size_t *ret_n, char **ret_focus);

/**
 * review_findings() - the findings of a review report: every line
 * "- [high|medium|low] (agent, ...) text" as {severity, agents: [...],
 * text, citations: [n, ...]} (the "[n]" markers of the line), in order.
 * Lines of any other shape are not findings. New reference, NULL on OOM.
 */
json_t *review_findings(const char *report);
