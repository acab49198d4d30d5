/* SPDX-License-Identifier: MIT */
/* finance.c — the finance specialist: routes questions about saving,
 * investing, banking, loans, mortgages, taxes, insurance, accounting and
 * crypto (English, German, French, Spanish); gives its passages with their
 * date-sensitivity flagged; reviews answers by redacting card numbers
 * (Luhn), IBANs (mod-97), e-mail and phone numbers, warning about promised
 * returns, and appending a not-financial-advice notice in the answer's
 * language.
 *
 * Options: currency (e.g. "EUR": answers use it), region, disclaimer
 * (yes/no), plus the common max_passages, max_passage_chars, review. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <moa/plugin-util.h>

static const char default_prompt[] =
        "You are a prudent personal-finance and accounting information assistant. Explain concepts, "
        "trade-offs, costs and risks with simple worked numbers, state assumptions (rates, fees, "
        "time horizon, tax residence) explicitly, and cite the numbered sources from the context as "
        "[n]. Never promise returns, never recommend a specific security, and flag figures that may "
        "be out of date (rates, tax thresholds).";

static const MuLex lexicon[] = {
        /* investing */
        {"invest|invested|investing|investment*|investor*|portfolio|diversif*|asset allocation|rebalanc*",
         1.2, NULL, "investing"},
        {"stock market|stocks|equities|shares in|buy shares|sell shares|etf|etfs|index fund*|mutual "
         "fund*|hedge fund*|dividend*|bond|bonds|treasur*|securities|brokerage|stock option*|call "
         "option*|put option*|options trading|day trading|short selling|ipo",
         1.2, NULL, "markets"},
        {"stock|shares|trading|trader|market|markets|broker", 0.4, NULL, NULL},
        {"crypto*|bitcoin|btc|ethereum|stablecoin*|defi|crypto wallet|altcoin*", 1.1, NULL, "crypto"},
        /* banking, credit */
        {"bank account|savings account|checking account|current account|bank transfer|wire "
         "transfer|overdraft|atm|debit card|bank fees|online banking|banking",
         1.2, NULL, "banking"},
        {"bank|banks", 0.7, NULL, "bank"},
        {"loan|loans|mortgage*|refinanc*|interest rate*|apr|apy|compound interest|interest on|credit "
         "card*|credit score|credit report|credit limit|debt|debts|lender|borrowing money|borrow "
         "money|installment*|down payment|amortiz*|amortis*|payday",
         1.2, NULL, "credit"},
        {"credit", 0.5, NULL, NULL},
        {"saving|savings|save money|emergency fund|budget|budgeting|spending|expenses|frugal|net "
         "worth|personal finance",
         0.9, NULL, "saving"},
        {"retirement|retire|pension*|401k|401 k|ira|roth|annuit*|social security benefits", 1.1, NULL,
         "retirement"},
        /* tax, accounting, business */
        {"tax|taxes|taxed|taxation|taxable|tax return|irs|hmrc|vat|sales tax|income tax|capital "
         "gains|deduct*|write off|tax bracket|withholding",
         1.2, NULL, "tax"},
        {"accounting|bookkeeping|balance sheet|income statement|cash "
         "flow|revenue|profit|profits|margin|ebitda|valuation|depreciation|invoice*|payroll|audit|gaap|ifrs|"
         "accounts payable|accounts receivable",
         1.0, NULL, "accounting"},
        {"inflation|recession|interest|central bank|federal reserve|ecb|exchange "
         "rate*|currency|currencies|forex|fx rate|gdp",
         0.8, NULL, "macro"},
        {"money|salary|income|wage|wages|paycheck|pay "
         "rise|raise|financial*|finance|finances|fund|funds|fees|cost|costs|price|worth "
         "it|afford|cheap|expensive",
         0.35, NULL, NULL},
        {"financial|financially|finance|finances|fiscal|monetary|financial crisis|economy|economic", 0.6,
         NULL, "finance"},
        {"buy a house|buying a house|buy a home|buying a home|rent or buy|homeowner*|property ladder|escrow",
         0.9, NULL, "housing"},
        {"payment|payments|pay off|paid", 0.3, NULL, NULL},
        {"insurance|insurer|premium|premiums|deductible|life insurance|health insurance|car insurance|home "
         "insurance|policyholder",
         0.9, NULL, "insurance"},
        {"euro|euros|dollar|dollars|usd|eur|gbp|pounds sterling|yen|francs", 0.4, NULL, NULL},

        /* German */
        {"geld|bank|konto|girokonto|sparkonto|tagesgeld|festgeld|kredit|darlehen|zins|zinsen|zinssatz|aktie*"
         "|anleihe*|fonds|etf|sparplan|steuer*|steuererklarung|einkommensteuer|rente|altersvorsorge|"
         "hypothek|baufinanzierung|schulden|inflation|sparen|investieren|geldanlage|anlegen|borse|"
         "versicherung*|gehalt|finanz*|rendite|dividende*|kapitalertrag*|depot",
         1.2, NULL, "Finanzen (de)"},
        /* French */
        {"argent|banque|compte bancaire|compte courant|livret a|credit immobilier|pret "
         "immobilier|emprunt*|taux d "
         "interet|taux|interets|action|actions|obligation|obligations|bourse|impot*|impots|fiscal*|retraite|"
         "epargne*|epargner|assurance*|hypotheque|dette*|investir|investissement*|placement*|budget|salaire|"
         "inflation|dividende*|finances",
         1.2, NULL, "finances (fr)"},
        /* Spanish */
        {"dinero|banco|cuenta bancaria|cuenta de ahorro*|prestamo*|credito*|tasa de "
         "interes|interes|intereses|acciones|bonos|bolsa de valores|impuesto*|declaracion de la "
         "renta|hacienda|jubilacion|pension*|ahorro*|ahorrar|hipoteca*|deuda*|invertir|inversion*|seguro de "
         "vida|seguro de salud|presupuesto|sueldo|salario|inflacion|dividendo*|finanzas",
         1.2, NULL, "finanzas (es)"},

        /* other senses */
        {"bank|banks|banco", -2.0,
         "river|riverbank|river s|bank of the "
         "river|stream|creek|canal|lake|fishing|canoe|kayak|erosion|flood|sandbank|snow bank|memory "
         "bank|blood bank|food bank|piggy|bank shot|left bank|west "
         "bank|seine|rive|ufer|parque|sentarse|madera|banco de peces|banco de arena",
         "bank (river/other)"},
        {"bond|bonds", -2.0,
         "james bond|007|chemical|covalent|ionic|hydrogen|molecule*|atoms|bonding|bond with|bonded "
         "with|bond between|emotional|bail bond|dog|dogs|humans|friendship|mother|family bond",
         "bond (other)"},
        {"stock|stocks", -1.6,
         "chicken stock|beef stock|vegetable stock|fish stock|soup|broth|recipe|in stock|out of stock|stock "
         "photo*|stock image*|rolling stock|stock footage|livestock",
         "stock (other)"},
        {"credit|credits", -1.2,
         "movie credits|end credits|film credits|course credits|college credits|credits for|credit for the "
         "idea|photo credit|image credit|give credit|credit where|ects",
         "credit (other)"},
        {"broker|brokers", -1.2, "kafka|rabbitmq|mqtt|message broker|message queue|amqp|pubsub|activemq",
         "message broker"},
        {"margin", -1.5, "css|padding|html|div|flexbox|layout|border|page margin|margins in word|latex",
         "CSS margin"},
        {"interest|interested|interests", -1.2,
         "interested in|interest in|of interest|my interests|hobbies|interesting|lost interest|conflict of "
         "interest",
         "interest (attention)"},
        {"yield|yields", 0.6, NULL, NULL},
        {"yield|yields", -1.4,
         "python|generator|keyword|yield return|yield from|coroutine|crop|harvest|farm|recipe|servings",
         "yield (other)"},
        {"options", -0.3, "command line|cli|compiler|flags|settings|menu", NULL},
        {"borrow*|borrowing|lend|lending", -1.5,
         "rust|borrow checker|lifetime|lifetimes|ownership|mutable reference|book from|library|lend me a "
         "hand|lend a hand",
         "borrow (other)"},
        {"market", -0.4,
         "farmers market|flea market|job market|christmas market|market square|fish market|supermarket",
         NULL},
        {"shell company|shell companies", 1.0, NULL, "shell company"},
        {"account balance|bank balance|balance transfer", 1.0, NULL, "balance"},
        {"return on investment|roi|returns on|annual return*|rate of return", 1.1, NULL, "returns"},
        {"cost|costs|price|cheap|expensive|afford", -0.2,
         "recipe|restaurant|flight|hotel|ticket|tickets|compute|complexity|latency|memory|time "
         "complexity|big o",
         NULL},
        {"tax|taxes", -0.8, "syntax|taxonomy|taxi|taxidermy", NULL},
        {"action|actions", -1.2,
         "github actions|action movie*|action film*|call to action|take action|action item*|action "
         "plan|actions workflow|class action|in action|action figure*|legal action",
         "action (other)"},
        /* a French bond, not an English duty ("the obligation to publish") */
        {"obligation|obligations", -0.8,
         "contractual|legal|moral|contrat|juridique|obligation to|obligations to|the obligation|an "
         "obligation|any obligation|obligation of|obligations of|our obligations|my obligations",
         "duty"},
        {"taux", -0.6, "taux de reussite|taux de chomage|taux de natalite|taux de mortalite", NULL},
        {"premium", -0.9,
         "premium account|premium plan|premium subscription|premium version|spotify|youtube premium|premium "
         "membership|premium features",
         "premium plan"},
        {"fund|funds|funding", -0.3, "crowdfund*|kickstarter|fundraiser|charity", NULL},
        {"invest", -0.6, "invest time|invest my time|invest in yourself|invest effort|invest energy",
         "invest time"},
        {"savings", -0.5, "daylight savings|daylight saving|energy savings|time savings", NULL},
        {"saving", -0.9, "saving a file|saving files|saving the file|autosave|saving to disk|saving throw",
         NULL},
        {"debt", -0.9, "technical debt|tech debt", "technical debt"},
        {"raise", -0.4,
         "raise an exception|raise exception|raise valueerror|raise error|raise a child|raise "
         "children|raise my hand|raise awareness|raise chickens",
         NULL},
        {"exchange rate|exchange rates", 0.4, NULL, NULL},
        {"bail out|bailout", 0.8, NULL, NULL},
};

typedef struct FinanceState {
        MuState base;
        const char *currency;
        const char *region;
        int disclaimer;
} FinanceState;

static int32_t finance_init(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                            void **ret_state) {
        FinanceState *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        int r = mu_state_setup(&s->base, host, ctx, info, default_prompt);
        if (r < 0) {
                free(s);
                return r;
        }
        s->currency = mu_option(host, ctx, "currency");
        s->region = mu_option(host, ctx, "region");
        s->disclaimer = mu_option_bool(host, ctx, "disclaimer", 1);
        if (s->currency && strlen(s->currency) > 8) {
                mu_log(host, ctx, MOA_LOG_ERR, "option currency=\"%.16s...\" is not a currency code",
                       s->currency);
                free(s);
                return -EINVAL;
        }
        *ret_state = s;
        return 0;
}

static void finance_fini(void *state) {
        free(state);
}

static int32_t finance_score(void *state, const char *query, double *ret_score, char *reason,
                             uint32_t reason_size) {
        MuText t;
        if (mu_text_init(&t, query) < 0)
                return -ENOMEM;
        double ev = mu_lex_score(&t, lexicon, sizeof(lexicon) / sizeof(lexicon[0]), reason, reason_size);
        mu_text_done(&t);
        *ret_score = mu_squash_signed(ev, 1.0);
        return 0;
}

/* Passages quoting rates, thresholds or years go stale: mark them. */
static int time_sensitive(const char *text) {
        static const char *const marks[] = {"%",         "per cent",  "percent", "rate",
                                            "threshold", "allowance", "limit",   "20"};
        unsigned n = 0;
        for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
                if (mu_contains_ci(text, marks[i]))
                        n++;
        return n >= 2;
}

static int32_t finance_build_prompt(void *state, const char *query, const MoaKbHit *hits, uint32_t n_hits,
                                    char **ret_system, char **ret_context) {
        FinanceState *s = state;
        MuBuf sys = {0}, ctx = {0};

        mu_buf_add(&sys, s->base.prompt);
        if (s->currency)
                mu_buf_printf(&sys, "\nExpress amounts in %s unless the user uses another currency.",
                              s->currency);
        if (s->region)
                mu_buf_printf(&sys, "\nAssume tax and banking rules of %s unless the user says otherwise.",
                              s->region);

        if (n_hits > 0) {
                mu_buf_add(&ctx, "Reference material (cite as [n]):\n");
                for (uint32_t i = 0; i < n_hits && i < s->base.max_passages; i++) {
                        mu_buf_printf(&ctx, "\nSource [%u]: %s%s\n", i + 1, hits[i].title,
                                      time_sensitive(hits[i].text)
                                              ? " [figures may be out of date: check current values]"
                                              : "");
                        mu_add_clipped(&ctx, hits[i].text, s->base.max_passage_chars);
                        mu_buf_add(&ctx, "\n");
                }
        }
        return mu_return_prompt(&s->base, &sys, &ctx, ret_system, ret_context);
}

/* A disclaimer already in the answer, in any language (MU_LANG_* order). */
static const char *const disclaimer_markers[] = {"not financial advice", "keine Anlageberatung",
                                                 "pas un conseil en investissement",
                                                 "no asesoramiento financiero"};

static const char *const disclaimers[] = {
        [MU_LANG_EN] = "This is general financial information, not financial advice. Investments can lose "
                       "value; consider a licensed adviser for decisions about your money.",
        [MU_LANG_DE] =
                "Dies ist eine allgemeine Finanzinformation, keine Anlageberatung. Geldanlagen können "
                "an Wert verlieren; lassen Sie sich für Ihre Entscheidungen beraten.",
        [MU_LANG_FR] = "Ceci est une information financière générale, pas un conseil en investissement. Un "
                       "placement peut perdre de la valeur ; consultez un conseiller agréé.",
        [MU_LANG_ES] =
                "Esta es información financiera general, no asesoramiento financiero. Las inversiones "
                "pueden perder valor; consulte a un asesor autorizado.",
};

static int32_t finance_review(void *state, const char *answer, char **ret_answer) {
        FinanceState *s = state;
        MuBuf out = {0};
        MuText t;
        int promise = 0;

        if (!s->base.review) {
                *ret_answer = NULL;
                return 0;
        }
        mu_redact(answer, MU_REDACT_CARD | MU_REDACT_IBAN | MU_REDACT_EMAIL | MU_REDACT_PHONE, &out);
        if (mu_text_init(&t, answer) == 0) {
                promise = mu_match(
                        &t, "guaranteed return*|guaranteed profit*|risk free return*|cannot lose|can t lose|"
                            "sure thing|double your money|rendite garantiert|garantierte rendite|rendement "
                            "garanti|"
                            "rentabilidad garantizada");
                mu_text_done(&t);
        }
        mu_buf_rtrim(&out);
        if (promise)
                mu_buf_add(&out, "\n\nWarning: no investment return is guaranteed; treat any promise of "
                                 "certain or risk-free returns with suspicion.");
        if (s->disclaimer)
                mu_append_notice(&out, answer, disclaimer_markers, disclaimers);
        return mu_buf_finish(s->base.host, &out, ret_answer);
}

static const MoaPlugin descriptor = {
        MOA_PLUGIN_HEADER,
        .name = "finance",
        .version = "1.0.0",
        .description = "Personal finance, investing, banking, credit, tax and accounting; redacts card "
                       "numbers and IBANs, warns about promised returns, adds a not-financial-advice notice",
        .init = finance_init,
        .score = finance_score,
        .build_prompt = finance_build_prompt,
        .review = finance_review,
        .fini = finance_fini,
};

MOA_PLUGIN_DEFINE(descriptor)
