/* prompts.h — the default prompt templates of the pipeline layers and the
 * renderer. Placeholders: {system} (the agent's system prompt), {context}
 * (its retrieved knowledge, formatted by its plugin), {references} (the
 * previous layer's answers, numbered, best weight first). Pipelines may
 * override the refine and aggregate templates in moad.yaml. */
#pragma once

#define PROMPT_PROPOSE_DEFAULT "{system}\n\n{context}"

/* Refine: the MoA paper's "aggregate-and-synthesize" instruction, given to
 * each specialist together with its own prompt and knowledge. */
#define PROMPT_REFINE_DEFAULT                                                                               \
        "{system}\n\n{context}\n\n"                                                                         \
        "You have been provided with a set of responses from specialist agents to the latest user query, "  \
        "numbered and ordered by weight (a higher weight means the agent was judged more relevant). Use "   \
        "them "                                                                                             \
        "as references: critically evaluate them, recognising that some of the information may be biased "  \
        "or "                                                                                               \
        "incorrect, and give your own refined, accurate answer from your specialty. Do not simply copy "    \
        "them.\n\n"                                                                                         \
        "Responses from agents:\n{references}"

#define PROMPT_AGGREGATE_DEFAULT                                                                            \
        "You have been provided with a set of responses from specialist agents to the latest user query, "  \
        "numbered and ordered by weight (a higher weight means the agent was judged more relevant to the "  \
        "query). Your task is to synthesize these responses into a single, high-quality response. It is "   \
        "crucial to critically evaluate the information provided in these responses, recognizing that "     \
        "some of "                                                                                          \
        "it may be biased or incorrect. Give more credence to higher-weighted responses, keep their "       \
        "citations "                                                                                        \
        "where you use them, and do not simply replicate the given answers: offer a refined, accurate and " \
        "comprehensive reply. Ensure your response is well-structured, coherent, and adheres to the "       \
        "highest "                                                                                          \
        "standards of accuracy and reliability.\n\nResponses from agents:\n{references}"

/* Grounding rules the host adds where it formats what the model reads, so
 * they reach the model whatever the plugin's system prompt or a pipeline's
 * custom template says: after the agent's retrieved context, and after the
 * references shown to refiners and the aggregator. */
#define PROMPT_CONTEXT_RULES                                                                                \
        "Use only the passages above that bear on the question and ignore the others; never cite a "        \
        "passage that does not. If they do not cover the question, say so plainly (\"The provided context " \
        "does not cover this.\") instead of answering from unrelated passages."
#define PROMPT_NO_CONTEXT                                                                                   \
        "No passage of the knowledge base matched this question. If you answer, say first that the "        \
        "provided context does not cover it."
#define PROMPT_REFERENCES_RULES                                                                             \
        "Some responses may say that their knowledge does not cover the question, or quote passages "       \
        "unrelated to it: do not use those. If no response answers the question, say so plainly instead "   \
        "of composing an answer from unrelated material."

/* Staircase streaming: a reference cut while its agent was still writing
 * is labelled with PROMPT_PARTIAL_LABEL after its weight, and the block
 * then ends with PROMPT_PARTIAL_RULES, so the model neither takes the cut
 * for the agent's conclusion nor finishes the sentence for it. */
#define PROMPT_PARTIAL_LABEL "answer still in progress"
#define PROMPT_PARTIAL_RULES                                                                                \
        "Responses marked \"" PROMPT_PARTIAL_LABEL "\" were still being written when you were asked: "      \
        "they may stop mid-sentence. Use what they say; do not complete them or guess how they go on."

/* Reviews (moa.review): what each agent is told after its context, and the
 * aggregator's template. The line format is what review_findings() parses. */
#define PROMPT_REVIEW_RULES                                                                                 \
        "Review the attached documents (the passages marked as theirs above) from your specialty only. "    \
        "Write each finding on its own line, exactly as \"- [high] finding [n]\", \"- [medium] finding "    \
        "[n]\" or \"- [low] finding [n]\", where the severity is how much the issue matters to the reader " \
        "and [n] cites the passage it rests on (the document's, and your knowledge's where it applies). "   \
        "No other text."
#define PROMPT_REVIEW_AGGREGATE                                                                             \
        "You have been provided with the findings of specialist agents reviewing the same documents, "      \
        "ordered by weight. Merge them into one report: one finding per line, exactly as \"- [severity] "   \
        "(agent) finding [n]\" with the severity high, medium or low and the agent (or agents, comma-"      \
        "separated) who found it; the same finding once; high first; keep each finding's citations. No "    \
        "other text.\n\nFindings from agents:\n{references}"

/**
 * prompt_context() - an agent's retrieved @context (as its plugin formatted
 * it; NULL or empty when nothing matched) followed by PROMPT_CONTEXT_RULES,
 * or PROMPT_NO_CONTEXT alone. Returns a malloc'ed string, NULL on OOM.
 */
char *prompt_context(const char *context);

/**
 * prompt_render() - expand @tmpl (or @fallback when @tmpl is NULL) with the
 * three placeholders; NULL values expand to "". If the template has no
 * {references} but @references is non-empty, they are appended, so a
 * custom template cannot silently drop them. Returns a malloc'ed string
 * with surrounding blank space trimmed, or NULL on OOM (or past 16 MiB).
 */
char *prompt_render(const char *tmpl, const char *fallback, const char *system, const char *context,
                    const char *references);
