/* SPDX-License-Identifier: MIT */
/* legal.c — the legal specialist: routes questions about law, contracts,
 * tenancy, employment, IP, privacy and courts (English, German, French,
 * Spanish); cites its passages as numbered authorities; reviews answers by
 * redacting e-mail addresses and phone numbers and appending a
 * not-legal-advice notice in the answer's language.
 *
 * Options: jurisdiction (added to the system prompt), disclaimer (yes/no),
 * plus the common max_passages, max_passage_chars, review. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <moa/plugin-util.h>

static const char default_prompt[] =
        "You are a careful legal information assistant. Explain the law in plain language, "
        "name the legal concept and the typical rule, point out what depends on the jurisdiction "
        "and on the facts, and cite the numbered authorities from the context as [n]. "
        "Never invent statutes, case names or deadlines; say when the context does not cover "
        "the question. You give general information, not legal advice, and you say when the "
        "user should consult a qualified lawyer.";

/* Routing lexicon. Weights: ~1.2 a term that alone makes a legal question,
 * ~0.6 supportive, ~0.3 weak; negative rules catch other senses. */
static const MuLex lexicon[] = {
        /* professions, institutions, procedure */
        {"lawyer*|attorney*|solicitor*|barrister*|law firm|paralegal", 1.3, NULL, "lawyer"},
        {"lawsuit*|litigation|litigat*|sue|sued|suing|plaintiff*|defendant*|class action", 1.3, NULL,
         "litigation"},
        {"court|courts|courtroom|judge|judges|jury|tribunal|magistrate|small claims", 1.0, NULL, "court"},
        {"subpoena*|warrant|affidavit|injunction|testimony|deposition|verdict|appeal the|appeal a", 1.1,
         NULL, NULL},
        {"legal|legally|illegal|illegally|unlawful|lawful|legality|law|laws|statute*|legislation", 1.0, NULL,
         "law"},
        {"rights|my rights|civil rights|human rights|entitled to", 0.5, NULL, "rights"},
        {"without consent|without my consent|without permission|need permission|permission to use|consent "
         "form|informed consent|confidentiality|confidential",
         0.8, NULL, "consent"},
        {"hipaa|comply with|compliant with|regulator*|data breach|breach notification", 0.8, NULL,
         "compliance"},
        {"jurisdiction|arbitration|mediation|settlement agreement|statute of limitations", 1.1, NULL, NULL},
        /* contracts, business */
        {"contract|contracts|contractual|breach of contract|agreement|clause|clauses", 0.9, NULL,
         "contract"},
        {"nda|non disclosure|non compete|noncompete|terms of service|terms and "
         "conditions|liability|liable|indemnif*|warranty|warranties",
         1.0, NULL, NULL},
        {"llc|incorporate|incorporation|sole proprietor*|bylaws|shareholder agreement", 0.7, NULL, NULL},
        /* tenancy */
        {"tenant*|landlord*|lease|leases|evict*|eviction|sublet*|rental agreement|security deposit", 1.2,
         NULL, "tenancy"},
        /* employment */
        {"fired|dismissal|dismissed|wrongful termination|unfair dismissal|severance|notice period|overtime "
         "pay|discriminat*|harass*",
         0.9, NULL, "employment"},
        {"employer|employee|employment", 0.3, NULL, NULL},
        /* IP, privacy */
        {"copyright*|trademark*|patent|patents|patented|infring*|fair use|intellectual property|plagiar*",
         1.2, NULL, "IP"},
        {"gdpr|data protection|privacy policy|personal data|dsgvo|rgpd|ccpa|cookie consent|cookie banner",
         1.2, NULL, "privacy"},
        {"open source licen*|gpl|lgpl|agpl|mit licen*|apache licen*|licence|license agreement|eula", 0.8,
         NULL, "licence"},
        /* family, estate, criminal, immigration, consumer */
        {"divorce|custody|alimony|child support|prenup*|prenuptial|marriage certificate", 1.1, NULL,
         "family law"},
        {"inheritance|inherit|inherited|estate planning|heir|heirs", 0.6, NULL, "inheritance"},
        {"inheritance|inherit|inherited", -1.2,
         "class|classes|subclass|object|objects|oop|method|methods|python|java|c++|interface|prototype|"
         "struct",
         "class inheritance"},
        {"last will|my will|a will|probate|executor|power of attorney|testament", 0.8, NULL, "estate"},
        {"arrest*|criminal|crime|felony|misdemeanor|misdemeanour|police|prosecut*|defamation|libel|slander|"
         "fraud charges",
         1.0, NULL, "criminal"},
        {"speeding ticket|parking ticket|traffic ticket|fine for|fined", 0.8, NULL, NULL},
        {"visa|immigration|residence permit|work permit|citizenship|asylum|deport*", 0.9, NULL,
         "immigration"},
        {"consumer rights|refund|return policy|chargeback|scam|sue them", 0.4, NULL, NULL},
        {"enforceable|unenforceable|binding|legally binding", 0.8, NULL, NULL},
        {"compliance|regulation|regulations|regulatory|permit|permitted", 0.4, NULL, NULL},

        /* German */
        {"anwalt*|rechtsanwalt*|anwaltin|gericht*|klage|klagen|verklagen|urteil|richter*|staatsanwalt*", 1.3,
         NULL, "Recht (de)"},
        {"vertrag*|mietvertrag|arbeitsvertrag|kundigung*|kundigen|mieter*|vermieter*|miete|mietminderung|"
         "kaution",
         1.1, NULL, "Vertrag/Miete (de)"},
        {"gesetz*|rechtlich*|recht|rechte|rechts|urheberrecht*|datenschutz*|abmahnung|haftung|erbe|"
         "erbschaft|scheidung|sorgerecht|strafbar|strafe|polizei|zulassig|erlaubt",
         1.0, NULL, "Recht (de)"},
        /* French */
        {"avocat*|tribunal|tribunaux|juge|proces|plainte|jurisprudence|huissier", 1.2, NULL, "droit (fr)"},
        {"contrat*|bail|locataire*|proprietaire|loyer|preavis|licenci*|prud "
         "hommes|heritage|succession|divorce|employeur",
         1.0, NULL, "contrat (fr)"},
        {"loi|lois|droit|droits|juridique*|legalement|illegal|code civil|code penal|rgpd", 0.9, NULL,
         "loi (fr)"},
        /* Spanish */
        {"abogado*|abogada*|tribunal|juez|juicio|demanda|demandar|denuncia*|notario", 1.2, NULL,
         "derecho (es)"},
        {"contrato*|arrendamiento|inquilino*|arrendador|casero|alquiler|despido*|despedir|herencia|"
         "testamento|divorcio|custodia",
         1.0, NULL, "contrato (es)"},
        {"ley|leyes|derecho|derechos|legalmente|ilegal|codigo civil|codigo penal", 0.9, NULL, "ley (es)"},

        /* other senses */
        {"legal move*|legal moves|legal position|legal in chess|legal chess", -2.5, NULL, "chess"},
        {"legal|illegal", -1.4,
         "chess|checkers|castling|en passant|pawn|rook|bishop|knight|checkmate|sudoku|poker|scrabble|board "
         "game|move in",
         "game rules"},
        {"court|courts", -1.2,
         "tennis|basketball|volleyball|badminton|squash|food court|court "
         "shoes|courtyard|pickleball|handball",
         "sports court"},
        {"food court|tennis court|basketball court|court shoes", -0.8, NULL, "sports court"},
        {"illegal instruction|illegal character|illegal argument*|illegalargumentexception|illegal "
         "state*|illegal operation|illegal hardware|illegal opcode|illegal seek|illegal memory",
         -2.2, NULL, "software error"},
        {"law|laws", -1.3,
         "murphy|moore|moores|newton|newtons|ohm|ohms|physics|thermodynamics|motion|gravity|gravitation|"
         "cosines|sines|large numbers|kepler|hooke|boyle|conservation|amdahl|zipf|benford|demeter|little "
         "s|parkinsons|parkinson",
         "scientific law"},
        {"mother in law|father in law|son in law|daughter in law|brother in law|sister in law|in laws|in "
         "law",
         -0.8, NULL, "in-laws"},
        {"contract|contracts", -1.2,
         "muscle|muscles|virus|disease|covid|infection|flu|measles|pupil|pupils|contraction",
         "contract a disease"},
        {"contract|contracts", -1.4, "smart contract*|solidity|ethereum|blockchain|evm|web3",
         "smart contract"},
        {"patent", -1.2, "leather|shoes|ductus|foramen", "patent leather"},
        {"legal tender", -1.0, NULL, "currency"},
        {"bail out|bailout|bailouts", -0.8, NULL, "finance bail-out"},
        {"recht", -1.0,
         "recht gut|recht schnell|recht viel|recht herzlich|recht haben|recht hast|du hast recht|recht "
         "einfach",
         "recht = quite"},
        {"avocat", -2.0, "recette|salade|guacamole|manger|mur|mure|tartine|toast|fruit|noyau",
         "avocat = avocado"},
        {"droit", -0.8, "tout droit|droit devant|a droite|droite", "droit = straight"},
        {"derecho", -0.8, "todo derecho|a la derecha|derecha|recto", "derecho = straight"},
        {"bar exam|bar association", 1.2, NULL, "bar"},
        {"trial", 0.4, NULL, NULL},
        {"free trial|clinical trial*|trial and error|trial period|trial version|trial run", -0.5, NULL,
         NULL},
        {"sentenced|sentencing|prison|jail|parole|probation", 1.0, NULL, "sentencing"},
        {"license|licence", -0.6,
         "driver|drivers|driving|fishing|hunting|marriage|pilot|key|product key|serial", "licence sense"},
};

typedef struct LegalState {
        MuState base;
        const char *jurisdiction;
        int disclaimer;
} LegalState;

static int32_t legal_init(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                          void **ret_state) {
        LegalState *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        int r = mu_state_setup(&s->base, host, ctx, info, default_prompt);
        if (r < 0) {
                free(s);
                return r;
        }
        s->jurisdiction = mu_option(host, ctx, "jurisdiction");
        s->disclaimer = mu_option_bool(host, ctx, "disclaimer", 1);
        *ret_state = s;
        return 0;
}

static void legal_fini(void *state) {
        free(state);
}

static int32_t legal_score(void *state, const char *query, double *ret_score, char *reason,
                           uint32_t reason_size) {
        MuText t;
        if (mu_text_init(&t, query) < 0)
                return -ENOMEM;
        double ev = mu_lex_score(&t, lexicon, sizeof(lexicon) / sizeof(lexicon[0]), reason, reason_size);
        mu_text_done(&t);
        *ret_score = mu_squash_signed(ev, 1.0);
        return 0;
}

static int32_t legal_build_prompt(void *state, const char *query, const MoaKbHit *hits, uint32_t n_hits,
                                  char **ret_system, char **ret_context) {
        LegalState *s = state;
        MuBuf sys = {0}, ctx = {0};
        MoaKbHit *extra = NULL;
        uint32_t n_extra = 0;

        mu_buf_add(&sys, s->base.prompt);
        if (s->jurisdiction)
                mu_buf_printf(&sys,
                              "\nAssume the jurisdiction is %s unless the user says otherwise; say so "
                              "explicitly when you rely on it.",
                              s->jurisdiction);

        /* Nothing retrieved for the literal query: retry once with the
         * query's legal terms only, through the host's search service. */
        if (n_hits == 0 && MOA_HOST_HAS(s->base.host, kb_search) &&
            MOA_HOST_HAS(s->base.host, kb_hits_free)) {
                char terms[MOA_PLUGIN_REASON_MAX];
                MuText t;
                if (mu_text_init(&t, query) == 0) {
                        mu_lex_score(&t, lexicon, sizeof(lexicon) / sizeof(lexicon[0]), terms,
                                     sizeof(terms));
                        mu_text_done(&t);
                        if (strncmp(terms, "terms: ", 7) == 0 &&
                            s->base.host->kb_search(s->base.ctx, terms + 7, s->base.max_passages, &extra,
                                                    &n_extra) == 0) {
                                hits = extra;
                                n_hits = n_extra;
                        }
                }
        }

        if (n_hits > 0) {
                mu_buf_add(&ctx, "Authorities (cite as [n]):\n");
                for (uint32_t i = 0; i < n_hits && i < s->base.max_passages; i++) {
                        mu_buf_printf(&ctx, "\n[%u] %s", i + 1, hits[i].title);
                        if (*hits[i].source)
                                mu_buf_printf(&ctx, " (%s)", hits[i].source);
                        mu_buf_printf(&ctx, ", part %u\n", hits[i].chunk + 1);
                        mu_add_clipped(&ctx, hits[i].text, s->base.max_passage_chars);
                        mu_buf_add(&ctx, "\n");
                }
                mu_buf_add(&ctx,
                           "\nRules and deadlines vary by jurisdiction; quote the authority you rely on.\n");
        }
        if (extra)
                s->base.host->kb_hits_free(extra, n_extra);
        return mu_return_prompt(&s->base, &sys, &ctx, ret_system, ret_context);
}

/* A disclaimer already in the answer, in any language (MU_LANG_* order). */
static const char *const disclaimer_markers[] = {"not legal advice", "keine Rechtsberatung",
                                                 "pas un conseil juridique", "no asesoramiento legal"};

static const char *const disclaimers[] = {
        [MU_LANG_EN] = "This is general legal information, not legal advice. Laws differ between "
                       "jurisdictions; for your situation, consult a qualified lawyer.",
        [MU_LANG_DE] = "Dies ist eine allgemeine rechtliche Information, keine Rechtsberatung. Das Recht "
                       "unterscheidet sich je nach Land; lassen Sie sich von einer Anwältin oder einem "
                       "Anwalt beraten.",
        [MU_LANG_FR] = "Ceci est une information juridique générale, pas un conseil juridique. Le droit "
                       "varie selon les pays ; consultez un avocat pour votre situation.",
        [MU_LANG_ES] = "Esta es información jurídica general, no asesoramiento legal. Las leyes varían "
                       "según el país; consulte a un abogado para su caso.",
};

static int32_t legal_review(void *state, const char *answer, char **ret_answer) {
        LegalState *s = state;
        MuBuf out = {0};

        if (!s->base.review) {
                *ret_answer = NULL;
                return 0;
        }
        mu_redact(answer, MU_REDACT_EMAIL | MU_REDACT_PHONE, &out);
        if (s->disclaimer)
                mu_append_notice(&out, answer, disclaimer_markers, disclaimers);
        return mu_buf_finish(s->base.host, &out, ret_answer);
}

static const MoaPlugin descriptor = {
        MOA_PLUGIN_HEADER,
        .name = "legal",
        .version = "1.0.0",
        .description = "Legal information: contracts, tenancy, employment, IP, privacy, courts; "
                       "redacts contact data and adds a not-legal-advice notice",
        .init = legal_init,
        .score = legal_score,
        .build_prompt = legal_build_prompt,
        .review = legal_review,
        .fini = legal_fini,
};

MOA_PLUGIN_DEFINE(descriptor)
