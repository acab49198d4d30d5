/* test-extract.c — the builtin provider's extractive algorithms: cited
 * answers (numbering, consistency, order, limits, determinism, no-hit) and
 * the weighted, redundancy-aware aggregation. */
#include <check.h>

#include "check-main.h"

#include "extract.h"
#include "util.h"

/* answer() / aggregate() with a sentence bound only. */
static char *answer(const char *q, const KbHit *hits, size_t n, unsigned max_sentences) {
        ExtractOptions o = {.max_sentences = max_sentences};
        return extract_answer(q, hits, n, &o);
}

static char *aggregate(const char *q, const ExtractProposal *props, size_t n, unsigned max_sentences) {
        ExtractOptions o = {.max_sentences = max_sentences};
        return extract_aggregate(q, props, n, &o);
}

#define PROP(a, t, w) ((ExtractProposal){.agent = (a), .text = (t), .weight = (w)})

static KbHit hit(const char *title, unsigned chunk, double score, const char *text) {
        return (KbHit){.title = (char *) title,
                       .source = (char *) "",
                       .chunk = chunk,
                       .score = score,
                       .snippet = (char *) text,
                       .text = (char *) text};
}

static size_t count_str(const char *hay, const char *needle) {
        size_t n = 0;
        for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

/* Every "[n]" in the body has a Sources line, every Sources line is cited,
 * numbers are 1..k in order of first use. Returns k. */
static unsigned check_citations(const char *out) {
        const char *src = strstr(out, "\n\nSources:\n");
        size_t body_len = src ? (size_t) (src - out) : strlen(out);
        unsigned max_seen = 0, next_new = 1;
        int used[64] = {};
        for (size_t i = 0; i < body_len; i++) {
                unsigned v;
                int n = 0;
                if (out[i] == '[' && sscanf(out + i, "[%u]%n", &v, &n) == 1 && n > 0) {
                        ck_assert_uint_ge(v, 1);
                        ck_assert_uint_lt(v, 64);
                        if (!used[v]) {
                                ck_assert_uint_eq(v, next_new); /* first use in order */
                                next_new++;
                                used[v] = 1;
                        }
                        max_seen = MAX(max_seen, v);
                }
        }
        if (max_seen == 0) {
                ck_assert_ptr_null(src);
                return 0;
        }
        ck_assert_ptr_nonnull(src);
        unsigned lines = 0;
        for (const char *p = src + strlen("\n\nSources:\n"); *p;) {
                unsigned v;
                ck_assert_int_eq(sscanf(p, "[%u]", &v), 1);
                ck_assert_uint_eq(v, ++lines);
                const char *nl = strchr(p, '\n');
                ck_assert_ptr_nonnull(nl);
                p = nl + 1;
        }
        ck_assert_uint_eq(lines, max_seen);
        return lines;
}

/* The source line for citation @n, e.g. "bp.md, chunk 0". */
static char *source_line(const char *out, unsigned n) {
        char key[16];
        snprintf(key, sizeof key, "\n[%u] ", n);
        const char *p = strstr(out, key);
        ck_assert_ptr_nonnull(p);
        p += strlen(key);
        return strndup(p, strcspn(p, "\n"));
}

/* The citation number attached to the sentence containing @needle. */
static unsigned cite_of(const char *out, const char *needle) {
        const char *p = strstr(out, needle);
        ck_assert_msg(p != NULL, "'%s' not in output:\n%s", needle, out);
        p = strchr(p, '[');
        ck_assert_ptr_nonnull(p);
        unsigned v = 0;
        ck_assert_int_eq(sscanf(p, "[%u]", &v), 1);
        return v;
}

static const char bp0[] = "# Hypertension\n\n"
                          "Hypertension means blood pressure that stays at or above 130/80 mmHg. "
                          "Most people with high blood pressure have no symptoms at all. "
                          "Dr. Smith notes that readings vary during the day, e.g. after coffee. "
                          "The heart is a muscle that pumps blood through the body.\n\n"
                          "- Treatment starts with less salt, more exercise and weight loss.\n"
                          "- Medicines such as ACE inhibitors lower blood pressure further.\n";
static const char bp1[] = "Untreated high blood pressure damages arteries, the kidneys and the eyes. "
                          "Home blood pressure monitors are useful for tracking treatment.";
static const char git0[] =
        "A git rebase rewrites commits on top of another base. Merges keep both histories.";

START_TEST(test_answer_cites_and_sources) {
        KbHit hits[] = {hit("bp.md", 0, 5.0, bp0), hit("bp.md", 1, 3.0, bp1), hit("git.md", 0, 0.5, git0)};
        char *out = answer("How is high blood pressure treated?", hits, 3, 3);
        ck_assert_ptr_nonnull(out);
        unsigned k = check_citations(out);
        ck_assert_uint_ge(k, 1);
        /* the one sentence covering every query word is chosen */
        ck_assert_msg(strstr(out, "monitors are useful for tracking treatment") != NULL, "%s", out);
        ck_assert_ptr_null(strstr(out, "rebase"));
        ck_assert_ptr_null(strstr(out, "# Hypertension"));
        char *s1 = source_line(out, cite_of(out, "tracking treatment"));
        ck_assert_str_eq(s1, "bp.md, chunk 1");
        free(s1);
        /* at most 3 cited sentences */
        const char *src = strstr(out, "\n\nSources:");
        size_t body = (size_t) (src - out);
        char *b = strndup(out, body);
        ck_assert_uint_le(count_str(b, " ["), 3);
        free(b);
        free(out);

        out = answer("less salt and more exercise", hits, 3, 3);
        ck_assert_msg(strstr(out, "Treatment starts with less salt, more exercise and weight loss [1].") !=
                              NULL,
                      "%s", out);
        ck_assert_ptr_null(strstr(out, "- Treatment")); /* list marker stripped */
        s1 = source_line(out, 1);
        ck_assert_str_eq(s1, "bp.md, chunk 0");
        free(s1);
        free(out);
}
END_TEST

START_TEST(test_answer_best_first_and_determinism) {
        /* The sentence that answers best comes first even though it is the
         * last one of the lower-ranked chunk. */
        KbHit hits[] = {hit("bp.md", 0, 5.0, bp0), hit("bp.md", 1, 4.0, bp1)};
        char *a = answer("Are home blood pressure monitors useful?", hits, 2, 4);
        char *b = answer("Are home blood pressure monitors useful?", hits, 2, 4);
        ck_assert_ptr_nonnull(a);
        ck_assert_str_eq(a, b);
        check_citations(a);
        ck_assert_msg(
                strncmp(a, "Home blood pressure monitors are useful for tracking treatment [1].",
                        strlen("Home blood pressure monitors are useful for tracking treatment [1].")) == 0,
                "%s", a);
        char *s = source_line(a, 1);
        ck_assert_str_eq(s, "bp.md, chunk 1");
        free(s);
        free(a);
        free(b);
}
END_TEST

/* Every sentence of an answer's body is a quote of the chunk its citation
 * names (the chunks here are plain text, one space between words). */
static void check_quotes(const char *out, const KbHit *hits, size_t n_hits) {
        const char *end = strstr(out, "\n\nSources:\n");
        ck_assert_ptr_nonnull(end);
        for (const char *p = out; p < end;) {
                const char *cite = strstr(p, " [");
                ck_assert_ptr_nonnull(cite);
                ck_assert(cite < end);
                unsigned n = 0;
                ck_assert_int_eq(sscanf(cite, " [%u]", &n), 1);
                char *src = source_line(out, n);
                const KbHit *h = NULL;
                for (size_t i = 0; i < n_hits && !h; i++) {
                        char line[256];
                        snprintf(line, sizeof line, "%s, chunk %u", hits[i].title, hits[i].chunk);
                        if (streq(line, src))
                                h = &hits[i];
                }
                ck_assert_msg(h != NULL, "no hit for source %s", src);
                char *quote = strndup(p, (size_t) (cite - p));
                ck_assert_msg(strstr(h->text, quote) != NULL, "'%s' is not in %s", quote, src);
                free(quote);
                free(src);
                p = strchr(cite, ']') + 2; /* "]." then a space or the end */
                while (p < end && *p == ' ')
                        p++;
        }
}

static const char rsa[] =
        "Copyright (C) 1991-2, RSA Data Security, Inc. Created 1991. All rights reserved. "
        "License to copy and use this software is granted provided that it is identified as the RSA Data "
        "Security, Inc. MD5 Message-Digest Algorithm in all material mentioning or referencing this "
        "software. "
        "RSA Data Security, Inc. makes no representations concerning either the merchantability of this "
        "software or the suitability of this software for any particular purpose. "
        "These notices must be retained in any copies of any part of this documentation and software.";
static const char deposits[] =
        "Most landlords take a deposit against unpaid rent or damage beyond normal wear and tear. "
        "In England, deposits must be protected in a government-approved scheme within 30 days. "
        "Rent increases are usually limited by the contract and by law.";

START_TEST(test_answer_floor_ambiguous_word) {
        /* "security" alone (RSA Data Security) is no answer to a question
         * about a security deposit, however many licences say it. */
        KbHit hits[] = {hit("md5.txt", 0, 9.0, rsa), hit("md4.txt", 0, 8.5, rsa),
                        hit("md2.txt", 0, 8.0, rsa), hit("tenancy.md", 1, 3.0, deposits),
                        hit("sha.txt", 0, 2.0, rsa)};
        char *out = answer("What is a security deposit?", hits, 5, 5);
        ck_assert_ptr_nonnull(out);
        ck_assert_msg(strstr(out, "RSA") == NULL && strstr(out, "Rent increases") == NULL, "%s", out);
        ck_assert_msg(strncmp(out, "Most landlords take a deposit", 29) == 0, "%s", out);
        ck_assert_uint_eq(count_str(out, " [1]"), 2); /* both deposit sentences */
        check_quotes(out, hits, 5);
        free(out);

        /* the licences alone: nothing about it */
        ExtractOptions o = {.agent = "legal", .n_documents = 12};
        out = extract_answer("What is a security deposit?", hits, 3, &o);
        ck_assert_str_eq(
                out, "The legal knowledge base (12 documents) has no passage about \"security deposit\".");
        free(out);
}
END_TEST

START_TEST(test_answer_context_of_predecessor) {
        /* "it" is the deposit its predecessor names: the sentence passes
         * with that context; the same words without a pronoun leaning on
         * the sentence before do not */
        static const char t[] =
                "Tenancy deposit protection schemes hold a tenant's deposit for the tenancy. "
                "The landlord must protect it within 30 days.";
        KbHit hits[] = {hit("tenancy.md", 0, 1.0, t)};
        char *out = answer("Has my landlord got to put my deposit in a protection scheme?", hits, 1, 3);
        ck_assert_msg(strstr(out, "The landlord must protect it within 30 days [1].") != NULL, "%s", out);
        free(out);
        static const char u[] =
                "Tenancy deposit protection schemes hold a tenant's deposit for the tenancy. "
                "The landlord must protect the money within 30 days.";
        KbHit hits_u[] = {hit("tenancy.md", 0, 1.0, u)};
        out = answer("Has my landlord got to put my deposit in a protection scheme?", hits_u, 1, 3);
        ck_assert_msg(strstr(out, "within 30 days") == NULL, "%s", out);
        free(out);
}
END_TEST

START_TEST(test_answer_plain_text_headings) {
        /* a numbered or capitalised heading line of a plain-text document
         * is context, never quoted as a sentence */
        static const char t[] =
                "  3.2. Availability of Source Code.\n\n"
                "  Any Modification which You create must be made available in Source Code form.\n\n"
                "  NO WARRANTY\n\n"
                "  The source code is provided without warranty of any kind.";
        KbHit hits[] = {hit("MPL-1.1", 0, 1.0, t)};
        char *out = answer("Must I make the source code of my modification available?", hits, 1, 3);
        ck_assert_msg(strstr(out, "Availability of Source Code") == NULL, "%s", out);
        ck_assert_msg(strstr(out, "Any Modification which You create") != NULL, "%s", out);
        free(out);
        out = answer("Is there a warranty?", hits, 1, 3);
        ck_assert_msg(strstr(out, "NO WARRANTY") == NULL, "%s", out);
        ck_assert_msg(strstr(out, "provided without warranty") != NULL, "%s", out);
        free(out);
}
END_TEST

/* A knowledge base of 300 chunks as word_df sees it: the words of
 * @userdata (a DfTable) in their number of chunks, every other in none. */
typedef struct DfEntry {
        const char *w;
        uint32_t df;
} DfEntry;

typedef struct DfTable {
        const DfEntry *v;
        size_t n;
} DfTable;

static int table_df(void *userdata, const char *word, uint32_t *ret_df, uint32_t *ret_chunks) {
        const DfTable *t = userdata;
        *ret_chunks = 300;
        *ret_df = 0;
        for (size_t i = 0; i < t->n; i++)
                if (strcasecmp(word, t->v[i].w) == 0)
                        *ret_df = t->v[i].df;
        return 0;
}

#define DF_TABLE(name, ...)                                                                                 \
        static const DfEntry name##_v[] = {__VA_ARGS__};                                                    \
        static const DfTable name = {.v = name##_v, .n = ELEMENTSOF(name##_v)}

START_TEST(test_answer_word_of_two_clauses) {
        /* the best sentence for the second clause ("can I use GPL code in
         * a commercial product?", whose "GPL" the first clause used
         * already) is no padding beside one that only names the licences
         * the first clause asks about */
        static const char t[] =
                "Use SPDX identifiers such as `MIT`, `Apache-2.0`, `GPL-2.0-only` or `GPL-3.0-or-later` "
                "to state a licence unambiguously. "
                "Permissive code can usually be included in GPL projects; GPL code cannot be "
                "included in a proprietary product that is distributed without releasing source.";
        KbHit hits[] = {hit("licences.md", 0, 1.0, t)};
        DF_TABLE(licence, {"mit", 8}, {"gpl", 20}, {"licence", 20}, {"code", 30}, {"commercial", 15},
                 {"product", 15}); /* the shipped legal knowledge */
        ExtractOptions o = {.max_sentences = 3, .word_df = table_df, .word_df_userdata = (void *) &licence};
        char *out = extract_answer(
                "What is the difference between the MIT and the GPL licence, and can I use GPL "
                "code in a commercial product?",
                hits, 1, &o);
        ck_assert_msg(strstr(out, "GPL code cannot be included in a proprietary product") != NULL, "%s",
                      out);
        free(out);
}
END_TEST

START_TEST(test_answer_retrieval_agrees) {
        /* a story told at length: no sentence shares enough of it to pass
         * the floor alone, but three of the passages are from one
         * document, so its sentences pass at 80% of the floor; the same
         * passages from three documents are no answer */
        static const char q[] =
                "I was prescribed ibuprofen after a car accident that wasn't my fault. Can I claim "
                "the costs back from the other driver's insurer?";
        static const char a[] =
                "A personal injury claim seeks compensation for harm caused by someone else's "
                "fault, such as road accidents.";
        static const char b[] = "Victims of uninsured drivers are compensated by a national bureau.";
        static const char c[] = "Legal expenses cover is often part of a home policy.";
        KbHit same[] = {hit("injury.md", 0, 3.0, a), hit("injury.md", 1, 2.0, b),
                        hit("injury.md", 2, 1.0, c)};
        /* "prescribed" and "ibuprofen" are in no chunk */
        DF_TABLE(injury, {"car", 15}, {"accident", 12}, {"fault", 10}, {"claim", 40}, {"costs", 30},
                 {"back", 30}, {"driver", 10}, {"insurer", 12});
        ExtractOptions o = {.max_sentences = 3, .word_df = table_df, .word_df_userdata = (void *) &injury};
        char *out = extract_answer(q, same, 3, &o);
        ck_assert_msg(strncmp(out, "A personal injury claim seeks compensation", 42) == 0, "%s", out);
        free(out);
        KbHit apart[] = {hit("injury.md", 0, 3.0, a), hit("motor.md", 1, 2.0, b), hit("home.md", 2, 1.0, c)};
        out = extract_answer(q, apart, 3, &o);
        ck_assert_msg(strstr(out, "has no passage about") != NULL, "%s", out);
        free(out);
}
END_TEST

START_TEST(test_answer_phrase_counts_more) {
        /* words apart, or separated by punctuation, are not the phrase */
        static const char t[] = "A deposit for the security of the bank is held in a vault. "
                                "For the bank's security, deposit boxes are kept in a vault. "
                                "A security deposit protects the landlord against damage to the flat.";
        KbHit hits[] = {hit("mix.md", 0, 1.0, t)};
        char *out = answer("What is a security deposit?", hits, 1, 1);
        ck_assert_msg(strncmp(out, "A security deposit protects", 27) == 0, "%s", out);
        free(out);
}
END_TEST

START_TEST(test_answer_kind_of_answer) {
        /* "how long": the sentence with the duration answers it, though it
         * shares too few of the question's words to pass the floor alone */
        static const char t[] =
                "Tenancy deposit protection schemes hold a tenant's deposit for the tenancy. "
                "The landlord must protect the money within 30 days.";
        KbHit hits[] = {hit("tenancy.md", 0, 1.0, t)};
        char *out =
                answer("How long has my landlord got to put my deposit in a protection scheme?", hits, 1, 3);
        ck_assert_msg(strstr(out, "The landlord must protect the money within 30 days [1].") != NULL, "%s",
                      out);
        free(out);
        /* without "how long" it is not an answer */
        out = answer("Has my landlord got to put my deposit in a protection scheme?", hits, 1, 3);
        ck_assert_msg(strstr(out, "within 30 days") == NULL, "%s", out);
        ck_assert_msg(strncmp(out, "Tenancy deposit protection schemes", 34) == 0, "%s", out);
        free(out);
}
END_TEST

START_TEST(test_answer_back_reference_not_first) {
        /* Two sentences as relevant; the one that opens with "This is why"
         * points at a sentence the answer does not show: the other leads. */
        static const char t[] =
                "This is why GPL code cannot go into a proprietary product that is distributed. "
                "Rest of the page about something else entirely.";
        static const char u[] =
                "GPL code cannot go into a proprietary product that is distributed without source.";
        KbHit hits[] = {hit("a.md", 0, 2.0, t), hit("b.md", 0, 1.0, u)};
        char *out = answer("Can GPL code go into a proprietary product?", hits, 2, 2);
        ck_assert_msg(strncmp(out, "GPL code cannot go", 18) == 0, "%s", out);
        free(out);
}
END_TEST

START_TEST(test_answer_not_found) {
        /* the relevant document was deleted: what is left shares common
         * words with the question, and must not be served as an answer */
        static const char left[] = "The tenant must give one month of notice to end a periodic tenancy. "
                                   "Most landlords take a deposit against unpaid rent or damage. "
                                   "Deposits are returned at the end of the tenancy. "
                                   "A landlord must follow a court process to evict a tenant.";
        KbHit hits[] = {hit("tenancy.md", 0, 4.0, left)};
        ExtractOptions o = {.agent = "legal", .n_documents = 5};
        char *out = extract_answer("When must a landlord return the zorblax deposit?", hits, 1, &o);
        ck_assert_str_eq(out,
                         "The legal knowledge base (5 documents) has no passage about \"zorblax deposit\".");
        free(out);

        /* no hits at all; one document; unknown agent and count */
        o.n_documents = 1;
        out = extract_answer("Where is the Quorvath hedge ordinance?", NULL, 0, &o);
        ck_assert_str_eq(
                out,
                "The legal knowledge base (1 document) has no passage about \"Quorvath hedge ordinance\".");
        free(out);
        out = extract_answer("zebra", NULL, 0, NULL);
        ck_assert_str_eq(out, "This agent's knowledge base has no passage about \"zebra\".");
        free(out);
        out = extract_answer("???", hits, 1, NULL);
        ck_assert_str_eq(out, "This agent's knowledge base has no passage about this question.");
        free(out);
}
END_TEST

/* Licences share clauses word for word: the copy under the document the
 * question names ("GPLv3" is the "GPL-3" title's two words) is the one
 * quoted, not whichever was retrieved first; a lone digit ("EUPL 1.2"
 * against a "(1)") is never what makes a sentence relevant. */
START_TEST(test_answer_document_title_context) {
        static const char clause[] =
                "However, if you cease all violation of this License, then your license "
                "from a particular copyright holder is reinstated provisionally.";
        KbHit hits[] = {hit("GFDL-1.3", 0, 5.0, clause), hit("GPL-3", 0, 4.0, clause)};
        char *out = answer("If I violated GPLv3 and stopped, is my license reinstated?", hits, 2, 3);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_nonnull(strstr(out, "[1] GPL-3"));
        ck_assert_ptr_null(strstr(out, "GFDL-1.3"));
        ck_assert_uint_eq(count_str(out, "However, if you cease"), 1);
        free(out);

        static const char mech[] = "A suitable mechanism is one that (1) uses a copy already present on "
                                   "the system, and (2) will operate properly with a modified version.";
        KbHit h2[] = {hit("mechanism.txt", 0, 3.0, mech)};
        out = answer("EUPL 1.2?", h2, 1, 3);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_null(strstr(out, "[1]"));
        free(out);
}
END_TEST

/* A phrase of the question found word for word makes a sentence specific
 * even when the phrase's last word ("page") is elsewhere: the question
 * tells a story around "502 Bad Gateway". */
/* A question in British spelling finds a document in American ("licence"
 * and "license" are one word). */
START_TEST(test_answer_spelling_variants) {
        static const char t[] = "The license grants you the right to copy and distribute the program. "
                                "Warranty is disclaimed to the extent permitted by law.";
        KbHit hits[] = {hit("COPYING", 0, 2.0, t)};
        char *out = answer("What does the licence grant?", hits, 1, 3);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_nonnull(strstr(out, "The license grants you the right"));
        free(out);
}
END_TEST

START_TEST(test_answer_phrase_is_key) {
        static const char codes[] = "**502 Bad Gateway**: a gateway or proxy received an invalid response "
                                    "from the upstream server. **504 Gateway Timeout**: the upstream "
                                    "server did not answer in time. A page can be cached by the browser.";
        static const char other[] = "Hosting providers differ in price. Someone changed the settings of the "
                                    "website since yesterday. Showing a page keeps users informed.";
        KbHit hits[] = {hit("http-status-codes.md", 0, 3.0, codes), hit("hosting.md", 0, 2.0, other)};
        char *out = answer("My website keeps showing a '502 Bad Gateway' page ever since the hosting guy "
                           "changed something. What does that actually mean?",
                           hits, 2, 3);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_nonnull(strstr(out, "a gateway or proxy received an invalid response"));
        free(out);
}
END_TEST

static int has_word_yes(void *userdata, const char *word) {
        return strcasecmp(word, userdata) == 0;
}

/* "security" narrows "deposit" and is in no retrieved passage: when the
 * knowledge base has the word elsewhere (a GDPR page on security), the
 * deposit sentences answer; when it has no such word at all (zorblax after
 * its document was deleted), nothing does. */
START_TEST(test_answer_modifier_known_elsewhere) {
        KbHit hits[] = {hit("tenancy.md", 1, 3.0, deposits)};
        ExtractOptions o = {.agent = "legal", .n_documents = 6, .has_word = has_word_yes};
        o.has_word_userdata = (void *) "security";
        char *out = extract_answer("What is a security deposit?", hits, 1, &o);
        ck_assert_msg(strncmp(out, "Most landlords take a deposit", 29) == 0, "%s", out);
        check_quotes(out, hits, 1);
        free(out);
        o.has_word_userdata = (void *) "other";
        out = extract_answer("What is a security deposit?", hits, 1, &o);
        ck_assert_str_eq(
                out, "The legal knowledge base (6 documents) has no passage about \"security deposit\".");
        free(out);
        o.has_word_userdata = (void *) "security";
        out = extract_answer("When must a landlord return the zorblax deposit?", hits, 1, &o);
        ck_assert_msg(strncmp(out, "The legal knowledge base (6 documents) has no passage about", 59) == 0 &&
                              strstr(out, "\"zorblax deposit\"") && !strchr(out, '['),
                      "%s", out);
        free(out);
}
END_TEST

/* "safe" frames the question rather than naming its subject, and
 * "medication" where the passage says "medicines", a word the knowledge
 * base uses elsewhere, is a nuance, not a missing subject. */
START_TEST(test_answer_known_head_elsewhere) {
        static const char t[] = "Beta blockers are used after a heart attack. Do not stop blood pressure "
                                "medicines abruptly, because painkillers such as ibuprofen can raise blood "
                                "pressure and interact with these drugs.";
        KbHit hits[] = {hit("hypertension.md", 7, 4.0, t)};
        ExtractOptions o = {.agent = "medical", .has_word = has_word_yes};
        o.has_word_userdata = (void *) "medication";
        char *out = extract_answer("Is ibuprofen safe with blood-pressure medication?", hits, 1, &o);
        ck_assert_msg(strncmp(out, "Do not stop blood pressure medicines", 36) == 0, "%s", out);
        check_quotes(out, hits, 1);
        free(out);
}
END_TEST

/* A bold run-in heading ("**MIT licence.** Very short. ...") is the context
 * of its paragraph, not a sentence of the answer. */
START_TEST(test_answer_run_in_heading) {
        static const char t[] =
                "**MIT licence.** Very short. You may do almost anything with the code, including "
                "using it in proprietary, closed-source products, provided you keep the copyright "
                "notice.\n\n**GPL.** A strong copyleft licence.";
        KbHit hits[] = {hit("licences.md", 0, 2.0, t)};
        char *out = answer("Can I use MIT licence code in a closed-source product?", hits, 1, 3);
        ck_assert_msg(strncmp(out, "You may do almost anything", 26) == 0, "%s", out);
        ck_assert_msg(strstr(out, "MIT licence.") == NULL && strstr(out, "Very short") == NULL, "%s", out);
        check_quotes(out, hits, 1);
        free(out);
}
END_TEST

START_TEST(test_answer_clauses) {
        /* A question of two clauses: a sentence answering one of them is an
         * answer; one sharing a single word with a clause is not. */
        static const char t[] = "Employers must give written notice before a dismissal. "
                                "Severance pay is usually taxed as ordinary income. "
                                "Notice boards in the office list the fire exits.";
        KbHit hits[] = {hit("work.md", 0, 1.0, t)};
        char *out =
                answer("What notice must employers give before a dismissal, and how is severance pay taxed?",
                       hits, 1, 4);
        ck_assert_ptr_nonnull(strstr(out, "written notice before a dismissal [1]."));
        ck_assert_ptr_nonnull(strstr(out, "Severance pay is usually taxed as ordinary income [1]."));
        ck_assert_msg(strstr(out, "Notice boards") == NULL, "%s", out);
        free(out);
}
END_TEST

START_TEST(test_answer_word_cap) {
        /* 30 relevant sentences of 12 words: at most 200 words, whole sentences */
        char text[8192] = "";
        for (int i = 0; i < 30; i++) {
                char s[128];
                snprintf(s, sizeof s, "Rule %d says the zorblax deposit is due within %d days of leaving. ",
                         i, i + 10);
                strcat(text, s);
        }
        KbHit hits[] = {hit("z.md", 0, 1.0, text)};
        ExtractOptions o = {.max_sentences = 20};
        char *out = extract_answer("zorblax deposit", hits, 1, &o);
        char *body = strndup(out, (size_t) (strstr(out, "\n\nSources:") - out));
        size_t words = count_str(body, " ") + 1;
        ck_assert_uint_le(words, 200);
        ck_assert_uint_ge(words, 150);
        ck_assert_uint_eq(count_str(body, " [1]."), count_str(body, "Rule "));
        free(body);
        free(out);

        /* a smaller cap; one sentence longer than the cap is cut with "..." */
        o.max_words = 30;
        out = extract_answer("zorblax deposit", hits, 1, &o);
        ck_assert_uint_eq(count_str(out, "Rule "), 2);
        free(out);
        o.max_words = 5;
        out = extract_answer("zorblax deposit", hits, 1, &o);
        ck_assert_msg(strncmp(out, "Rule ", 5) == 0 && strstr(out, "... [1]") != NULL, "%s", out);
        free(out);
}
END_TEST

START_TEST(test_answer_german_french) {
        static const char de[] = "# Mietrecht\n\n"
                                 "Die Mietkaution darf höchstens drei Nettokaltmieten betragen. "
                                 "Der Vermieter muss die Kaution getrennt von seinem Vermögen anlegen. "
                                 "Die Kündigungsfrist für Mieter beträgt drei Monate.";
        static const char fr[] =
                "Le dépôt de garantie ne peut pas dépasser un mois de loyer hors charges. "
                "Le propriétaire doit restituer le dépôt de garantie dans un délai de deux mois. "
                "Le bail d'habitation est conclu pour une durée de trois ans.";
        KbHit hd[] = {hit("miete.md", 0, 2.0, de)};
        char *out = answer("Wie hoch darf die Mietkaution sein?", hd, 1, 3);
        ck_assert_msg(
                strncmp(out, "Die Mietkaution darf höchstens drei Nettokaltmieten betragen [1].", 60) == 0,
                "%s", out);
        ck_assert_ptr_null(strstr(out, "Kündigungsfrist"));
        free(out);
        out = answer("Muss der Vermieter die Kaution getrennt anlegen?", hd, 1, 3);
        ck_assert_msg(strncmp(out, "Der Vermieter muss die Kaution getrennt", 39) == 0, "%s", out);
        free(out);

        KbHit hf[] = {hit("bail.md", 0, 2.0, fr)};
        out = answer("Quand le propriétaire doit-il restituer le dépôt de garantie ?", hf, 1, 3);
        ck_assert_msg(strncmp(out, "Le propriétaire doit restituer le dépôt de garantie", 50) == 0, "%s",
                      out);
        ck_assert_ptr_null(strstr(out, "bail d'habitation"));
        free(out);
        ExtractOptions o = {.agent = "legal", .n_documents = 1};
        out = extract_answer("Qu'est-ce qu'une servitude de passage ?", hf, 1, &o);
        ck_assert_str_eq(
                out,
                "The legal knowledge base (1 document) has no passage about \"servitude\" or \"passage\".");
        free(out);
}
END_TEST

START_TEST(test_answer_abbreviations) {
        KbHit hits[] = {hit("bp.md", 0, 5.0, bp0)};
        char *out = answer("Dr. Smith readings coffee", hits, 1, 1);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_nonnull(
                strstr(out, "Dr. Smith notes that readings vary during the day, e.g. after coffee [1]."));
        free(out);
}
END_TEST

START_TEST(test_answer_hostile_input) {
        static const char pat[] = "word \xff\xfe. [1] ** # \n\n- x ";
        size_t n = 200000;
        char *big = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
                big[i] = pat[i % (sizeof pat - 1)];
        big[n] = 0;
        KbHit hits[40];
        for (int i = 0; i < 40; i++)
                hits[i] = hit("t\xff", (unsigned) i, 1.0, big);
        char *out = answer("word \xc3", hits, 40, 100);
        ck_assert_ptr_nonnull(out);
        free(out);
        KbHit empty = {0};
        out = answer(NULL, &empty, 1, 0);
        ck_assert_ptr_nonnull(out);
        free(out);
        free(big);
}
END_TEST

START_TEST(test_aggregate_agreement_raises) {
        ExtractProposal p[] = {
                PROP("legal",
                     "Contracts need an offer and an acceptance to be binding. "
                     "Judges dislike vague penalty clauses in commercial leases.",
                     1.0),
                PROP("finance", "A binding contract needs an offer plus acceptance by the other party.",
                     1.0),
                PROP("general", "Chess is played on a board of sixty-four squares.", 1.0),
        };
        char *out = aggregate("what makes a contract binding", p, 3, 1);
        ck_assert_ptr_nonnull(out);
        /* the agreed sentence wins, from legal or finance, not the penalty
         * clause sentence nor the lone chess one */
        ck_assert_msg(strstr(out, "offer") != NULL, "%s", out);
        ck_assert_ptr_null(strstr(out, "penalty"));
        ck_assert_ptr_null(strstr(out, "Chess"));
        free(out);
}
END_TEST

START_TEST(test_aggregate_weight_matters) {
        ExtractProposal p[] = {
                PROP("a", "Apples are grown in orchards across temperate regions.", 0.2),
                PROP("b", "Bananas are grown on large tropical plantations.", 0.9),
        };
        char *out = aggregate("Where is fruit grown?", p, 2, 1);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_nonnull(strstr(out, "Bananas"));
        ck_assert_ptr_null(strstr(out, "Apples"));
        free(out);
        p[0].weight = 2.0;
        out = aggregate("Where is fruit grown?", p, 2, 1);
        ck_assert_ptr_nonnull(strstr(out, "Apples"));
        free(out);
}
END_TEST

START_TEST(test_aggregate_no_duplicates) {
        ExtractProposal p[] = {
                PROP("legal",
                     "The GDPR applies to personal data of people in the EU [1].\n\nSources:\n[1] gdpr.md, "
                     "chunk 0\n",
                     1.0),
                PROP("code",
                     "The GDPR applies to personal data of people in the EU [1]. Under the GDPR, logs can "
                     "contain "
                     "personal data such as IP addresses [2].\n\nSources:\n[1] gdpr.md, chunk 0\n[2] "
                     "logging.md, chunk "
                     "3\n",
                     0.8),
                PROP("medical", "The GDPR applies to the personal data of people in the EU.", 0.5),
        };
        char *out = aggregate("Does GDPR apply to logs?", p, 3, 5);
        ck_assert_ptr_nonnull(out);
        ck_assert_uint_eq(count_str(out, "applies to"), 1);
        ck_assert_ptr_nonnull(strstr(out, "IP addresses"));
        check_citations(out);
        free(out);
}
END_TEST

START_TEST(test_aggregate_renumbers_citations) {
        ExtractProposal p[] = {
                PROP("legal",
                     "Employers must give written notice before dismissal [1]. Severance pay after a "
                     "dismissal depends "
                     "on the contract and local law [2].\n\nSources:\n[1] termination.md, chunk 0\n[2] "
                     "termination.md, chunk 2\n",
                     1.0),
                PROP("finance",
                     "Severance pay is usually taxed as ordinary income [1].\n\nSources:\n[1] taxes.md, "
                     "chunk "
                     "4\n",
                     0.9),
        };
        char *out = aggregate("What notice and severance pay do I get on dismissal, and how is it taxed?", p,
                              2, 5);
        ck_assert_ptr_nonnull(out);
        unsigned k = check_citations(out);
        ck_assert_uint_eq(k, 3);
        char *s;
        s = source_line(out, cite_of(out, "written notice"));
        ck_assert_str_eq(s, "termination.md, chunk 0 (legal)");
        free(s);
        s = source_line(out, cite_of(out, "local law"));
        ck_assert_str_eq(s, "termination.md, chunk 2 (legal)");
        free(s);
        s = source_line(out, cite_of(out, "ordinary income"));
        ck_assert_str_eq(s, "taxes.md, chunk 4 (finance)");
        free(s);
        /* deterministic */
        char *again = aggregate("What notice and severance pay do I get on dismissal, and how is it taxed?",
                                p, 2, 5);
        ck_assert_str_eq(out, again);
        free(again);
        free(out);
}
END_TEST

START_TEST(test_aggregate_no_hit_and_fallbacks) {
        char *none = answer("q", NULL, 0, 3);
        ExtractProposal p[] = {PROP("a", none, 1.0), PROP("b", none, 2.0)};
        char *out = aggregate("q", p, 2, 3);
        ck_assert_ptr_nonnull(out);
        ck_assert_str_eq(out,
                         "None of the consulted knowledge bases (a, b) has a passage about this question.");
        free(out);

        /* one no-hit answer does not pollute a real one */
        ExtractProposal q[] = {PROP("a", none, 5.0),
                               PROP("b", "Rivers flow into seas and oceans eventually.", 1.0)};
        out = aggregate("rivers", q, 2, 3);
        ck_assert_ptr_nonnull(strstr(out, "Rivers flow"));
        ck_assert_ptr_null(strstr(out, "no passage"));
        free(out);

        /* answers too short to be sentences: the heaviest is returned as is */
        ExtractProposal r[] = {PROP("a", "Yes", 1.0), PROP("b", "No", 3.0)};
        out = aggregate("q", r, 2, 3);
        ck_assert_str_eq(out, "No");
        free(out);

        out = aggregate("q", NULL, 0, 3);
        ck_assert_ptr_nonnull(out);
        free(out);
        free(none);
}
END_TEST

START_TEST(test_aggregate_chains) {
        /* An aggregate of answers is itself a valid proposal (refine layers). */
        KbHit h1[] = {hit("bp.md", 0, 5.0, bp0)};
        KbHit h2[] = {hit("bp.md", 1, 5.0, bp1)};
        char *a1 = answer("What is blood pressure?", h1, 1, 3);
        char *a2 = answer("What is blood pressure?", h2, 1, 3);
        ExtractProposal p[] = {PROP("medical", a1, 1.0), PROP("general", a2, 0.5)};
        char *l1 = aggregate("What is blood pressure?", p, 2, 4);
        check_citations(l1);
        ExtractProposal p2[] = {PROP("refiner", l1, 1.0), PROP("medical", a1, 1.0)};
        char *l2 = aggregate("What is blood pressure?", p2, 2, 4);
        check_citations(l2);
        ck_assert_ptr_nonnull(strstr(l2, "bp.md, chunk 0"));
        /* attribution survives the layers once, not "(medical) (refiner)" */
        ck_assert_msg(strstr(l2, "bp.md, chunk 0 (medical)\n") != NULL, "%s", l2);
        ck_assert_ptr_null(strstr(l2, ") ("));
        free(a1);
        free(a2);
        free(l1);
        free(l2);
}
END_TEST

START_TEST(test_aggregate_drops_weak_and_not_found) {
        static const char tls[] =
                "When a TLS client connects, the server sends its certificate chain [1]. The client "
                "verifies "
                "that the certificate chain leads to a trusted root certificate authority [1].\n\nSources:\n"
                "[1] tls.md, chunk 0\n";
        static const char weak[] = "A server certificate is checked by the client against a trusted "
                                   "authority [1]. Rivers carry sediment to the sea [1].\n\nSources:\n"
                                   "[1] notes.md, chunk 3\n";
        static const char none[] = "The legal knowledge base (6 documents) has no passage about \"TLS\".";
        const char *q = "How does a TLS client verify the server certificate?";

        /* weights far apart: the weak agent's sentence is left out */
        ExtractProposal p[] = {PROP("code", tls, 0.9), PROP("general", weak, 0.2), PROP("legal", none, 0.3)};
        char *out = aggregate(q, p, 3, 5);
        ck_assert_msg(strstr(out, "checked by the client") == NULL && strstr(out, "Rivers") == NULL, "%s",
                      out);
        ck_assert_ptr_null(strstr(out, "no passage"));
        ck_assert_ptr_null(strstr(out, "(general)"));
        ck_assert_ptr_nonnull(strstr(out, "tls.md, chunk 0 (code)"));
        free(out);

        /* pinned agents have equal weights: the route score decides */
        p[1].weight = 0.9;
        p[0].route_score = 0.83;
        p[1].route_score = 0.02;
        out = aggregate(q, p, 3, 5);
        ck_assert_msg(strstr(out, "checked by the client") == NULL, "%s", out);
        free(out);

        /* comparable evidence: both are used, the irrelevant sentence never */
        p[1].route_score = 0.6;
        out = aggregate(q, p, 3, 5);
        ck_assert_msg(strstr(out, "checked by the client") != NULL && strstr(out, "Rivers") == NULL, "%s",
                      out);
        check_citations(out);
        free(out);

        /* every agent found nothing: one sentence naming them */
        static const char none2[] = "The code knowledge base (7 documents) has no passage about \"TLS\".";
        ExtractProposal n[] = {PROP("legal", none, 0.3), PROP("code#1", none2, 0.9),
                               PROP("code#2", none2, 0.9)};
        out = aggregate(q, n, 3, 5);
        ck_assert_str_eq(out,
                         "None of the consulted knowledge bases (legal, code) has a passage about \"TLS\".");
        free(out);
        /* one agent: its own sentence, kept through the layers */
        out = aggregate(q, n + 1, 2, 5);
        ck_assert_str_eq(out, none2);
        free(out);
}
END_TEST

START_TEST(test_aggregate_floor_and_word_cap) {
        /* an agent's answer with an irrelevant sentence: the sentence is
         * not repeated by the aggregator */
        static const char a[] =
                "A security deposit is money the tenant pays against damage [1]. RSA Data "
                "Security, Inc. makes no representations about this software [2].\n\nSources:\n"
                "[1] tenancy.md, chunk 1\n[2] md5.txt, chunk 0\n";
        ExtractProposal p[] = {PROP("legal", a, 1.0)};
        char *out = aggregate("What is a security deposit?", p, 1, 5);
        ck_assert_msg(strstr(out, "RSA") == NULL && strstr(out, "money the tenant pays") != NULL, "%s", out);
        ck_assert_uint_eq(check_citations(out), 1);
        free(out);

        /* long relevant answers: at most 200 words, whole sentences */
        char text[8192] = "";
        for (int i = 0; i < 40; i++) {
                char s[160];
                snprintf(s, sizeof s, "Deposit rule %d: a security deposit is returned within %d days [1]. ",
                         i, i + 10);
                strcat(text, s);
        }
        strcat(text, "\n\nSources:\n[1] rules.md, chunk 0\n");
        ExtractProposal r[] = {PROP("legal", text, 1.0)};
        out = aggregate("When is a security deposit returned?", r, 1, 20);
        char *body = strndup(out, (size_t) (strstr(out, "\n\nSources:") - out));
        ck_assert_uint_le(count_str(body, " ") + 1, 200);
        ck_assert_uint_ge(count_str(body, " ") + 1, 150);
        free(body);
        free(out);
}
END_TEST

START_TEST(test_aggregate_hostile) {
        static const char pat[] = "Word [7] stuff. \xff [999] Sources:\n[1] x\n";
        size_t n = 100000;
        char *big = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
                big[i] = pat[i % (sizeof pat - 1)];
        big[n] = 0;
        ExtractProposal p[20];
        for (int i = 0; i < 20; i++)
                p[i] = (ExtractProposal){.agent = i % 2 ? NULL : "x",
                                         .text = i % 3 ? big : NULL,
                                         .weight = i % 4 ? (double) i : -1.0};
        char *out = aggregate("word \xff", p, 20, 50);
        ck_assert_ptr_nonnull(out);
        free(out);
        free(big);
}
END_TEST

/* A knowledge base of 300 chunks as word_df sees it: the words of the
 * tenancy page are specific (few chunks), "one" is a function word the
 * index drops, every other word is in no chunk. */
static int tenancy_df(void *userdata, const char *word, uint32_t *ret_df, uint32_t *ret_chunks) {
        static const struct {
                const char *w;
                uint32_t df;
        } table[] = {{"landlord", 12}, {"deposit", 9}, {"protection", 25}, {"scheme", 15}, {"schemes", 15},
                     {"months", 40},   {"two", 60},    {"time", 50},       {"limit", 30},  {"put", 20},
                     {"moved", 5},     {"return", 20}, {"must", 80}};
        (void) userdata;
        *ret_chunks = 300;
        if (strcasecmp(word, "one") == 0)
                return 1;
        *ret_df = 0;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcasecmp(word, table[i].w) == 0)
                        *ret_df = table[i].df;
        return 0;
}

static int has_word_df(void *userdata, const char *word) {
        uint32_t df = 0, n = 0;
        return tenancy_df(userdata, word, &df, &n) == 0 && df > 0;
}

/* A question told at length: weighed over the retrieved passages, the
 * words they share ("deposit") look common and the asker's story ("hasnt",
 * "supposed") rare, so nothing passed the floor. The knowledge base's own
 * statistics say which words are specific; "protection" finds "protected"
 * (Snowball); a short question whose narrowing word the knowledge base
 * never uses ("zorblax deposit") still has no answer. */
START_TEST(test_answer_long_question_kb_statistics) {
        static const char q[] =
                "my landlord still hasnt put my deposit into one of those protection schemes "
                "and I moved in about two months ago. is there a time limit he was "
                "supposed to do it by?";
        static const char q_no_kind[] =
                "my landlord still hasnt put my deposit into one of those protection schemes "
                "and I moved in about two months ago. is there a limit he was supposed to keep to?";
        KbHit hits[] = {hit("tenancy.md", 1, 3.0, deposits)};
        ExtractOptions o = {.agent = "legal", .n_documents = 6, .has_word = has_word_df};
        /* (without "time limit": a duration would answer it, answer-type.h) */
        char *out = extract_answer(q_no_kind, hits, 1, &o);
        ck_assert_msg(strncmp(out, "The legal knowledge base", 24) == 0, "%s", out);
        free(out);

        o.word_df = tenancy_df;
        out = extract_answer(q_no_kind, hits, 1, &o);
        ck_assert_msg(strncmp(out, "In England, deposits must be protected", 38) == 0, "%s", out);
        free(out);
        out = extract_answer(q, hits, 1, &o);
        ck_assert_msg(strncmp(out, "In England, deposits must be protected", 38) == 0, "%s", out);
        ck_assert_msg(strstr(out, "Rent increases") == NULL, "%s", out);
        check_quotes(out, hits, 1);
        free(out);

        out = extract_answer("When must a landlord return the zorblax deposit?", hits, 1, &o);
        ck_assert_str_eq(out,
                         "The legal knowledge base (6 documents) has no passage about \"zorblax deposit\".");
        free(out);
}
END_TEST

/* "This page covers ..." says what the source is about: no answer. */
START_TEST(test_answer_skips_self_description) {
        static const char t[] = "Heart disease is common. This page covers chest pain, heart attacks and "
                                "statins. A heart attack happens when a coronary artery is blocked.";
        KbHit hits[] = {hit("heart.md", 0, 2.0, t)};
        char *out = answer("What happens in a heart attack?", hits, 1, 3);
        ck_assert_msg(strncmp(out, "A heart attack happens when", 27) == 0, "%s", out);
        ck_assert_msg(strstr(out, "This page") == NULL, "%s", out);
        free(out);
        /* nor does one pointing at the other notes */
        static const char u[] =
                "Beyond dismissal (covered in the employment termination notes), employment law "
                "governs pay, hours and holiday. Employment law sets a minimum wage.";
        KbHit hits_u[] = {hit("work.md", 0, 2.0, u)};
        out = answer("What does employment law say about pay, hours and holiday?", hits_u, 1, 3);
        ck_assert_msg(strncmp(out, "Employment law sets a minimum wage", 34) == 0, "%s", out);
        ck_assert_msg(strstr(out, "covered in") == NULL, "%s", out);
        free(out);
}
END_TEST

/* A sentence covering clearly less of the question than the best one is
 * padding, unless it is from a document attached to the question. */
START_TEST(test_answer_relative_cutoff_spares_attached) {
        static const char contract[] = "Late payments carry interest at 8% per year above the base rate.";
        static const char kb[] = "Businesses can charge statutory interest on late commercial payments.";
        KbHit hits[] = {hit("contract.md", 0, 2.0, contract), hit("vat.md", 2, 3.0, kb)};
        ExtractOptions o = {.max_sentences = 4};
        char *out = extract_answer("What interest is charged on late payments?", hits, 2, &o);
        ck_assert_msg(strncmp(out, "Businesses can charge", 21) == 0 && !strstr(out, "8% per year"), "%s",
                      out);
        free(out);
        o.n_attached = 1;
        out = extract_answer("What interest is charged on late payments?", hits, 2, &o);
        ck_assert_msg(strstr(out, "8% per year") != NULL, "%s", out);
        check_quotes(out, hits, 2);
        free(out);
}
END_TEST

/* "What is X?": the sentence that opens with X and says what it is leads,
 * ahead of one that covers as many words in passing. */
START_TEST(test_answer_definition_first) {
        static const char fund[] = "Index funds are available as mutual funds and as exchange-traded funds. "
                                   "An index fund is an investment fund that aims to track a market index.";
        static const char js[] = "The fetch API does not reject on HTTP error statuses such as 404 or 500.";
        static const char codes[] =
                "# HTTP status codes\n\n**404 Not Found**: the server has no resource at "
                "this URL. **500 Internal Server Error**: the server failed.";
        KbHit h1[] = {hit("funds.md", 0, 2.0, fund)};
        char *out = answer("What is an index fund?", h1, 1, 3);
        ck_assert_msg(strncmp(out, "An index fund is an investment fund", 35) == 0, "%s", out);
        free(out);
        KbHit h2[] = {hit("js.md", 0, 3.0, js), hit("codes.md", 0, 2.0, codes)};
        out = answer("What does HTTP 404 mean?", h2, 2, 3);
        ck_assert_msg(strncmp(out, "**404 Not Found**: the server", 29) == 0 ||
                              strncmp(out, "404 Not Found: the server", 25) == 0,
                      "%s", out);
        free(out);
        /* not a definition question: no such preference */
        out = answer("Are index funds available as ETFs?", h1, 1, 3);
        ck_assert_msg(strncmp(out, "Index funds are available", 25) == 0, "%s", out);
        free(out);
}
END_TEST

static Suite *extract_suite(void) {
        Suite *s = suite_create("extract");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_answer_cites_and_sources);
        tcase_add_test(tc, test_answer_best_first_and_determinism);
        tcase_add_test(tc, test_answer_floor_ambiguous_word);
        tcase_add_test(tc, test_answer_kind_of_answer);
        tcase_add_test(tc, test_answer_context_of_predecessor);
        tcase_add_test(tc, test_answer_plain_text_headings);
        tcase_add_test(tc, test_answer_word_of_two_clauses);
        tcase_add_test(tc, test_answer_retrieval_agrees);
        tcase_add_test(tc, test_answer_phrase_counts_more);
        tcase_add_test(tc, test_answer_back_reference_not_first);
        tcase_add_test(tc, test_answer_not_found);
        tcase_add_test(tc, test_answer_document_title_context);
        tcase_add_test(tc, test_answer_phrase_is_key);
        tcase_add_test(tc, test_answer_spelling_variants);
        tcase_add_test(tc, test_answer_clauses);
        tcase_add_test(tc, test_answer_modifier_known_elsewhere);
        tcase_add_test(tc, test_answer_known_head_elsewhere);
        tcase_add_test(tc, test_answer_run_in_heading);
        tcase_add_test(tc, test_answer_word_cap);
        tcase_add_test(tc, test_answer_german_french);
        tcase_add_test(tc, test_answer_abbreviations);
        tcase_add_test(tc, test_answer_hostile_input);
        tcase_add_test(tc, test_answer_long_question_kb_statistics);
        tcase_add_test(tc, test_answer_skips_self_description);
        tcase_add_test(tc, test_answer_relative_cutoff_spares_attached);
        tcase_add_test(tc, test_answer_definition_first);
        tcase_add_test(tc, test_aggregate_agreement_raises);
        tcase_add_test(tc, test_aggregate_weight_matters);
        tcase_add_test(tc, test_aggregate_no_duplicates);
        tcase_add_test(tc, test_aggregate_renumbers_citations);
        tcase_add_test(tc, test_aggregate_no_hit_and_fallbacks);
        tcase_add_test(tc, test_aggregate_chains);
        tcase_add_test(tc, test_aggregate_drops_weak_and_not_found);
        tcase_add_test(tc, test_aggregate_floor_and_word_cap);
        tcase_add_test(tc, test_aggregate_hostile);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(extract_suite());
}
