/* router.c — pure agent selection and the knowledge-base evidence measure
 * (see router.h and docs/routing.md). */
#include <ctype.h>
#include <math.h>

#include "router.h"
#include "util.h"

void route_result_done(RouteResult *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n; i++) {
                free(r->choices[i].name);
                free(r->choices[i].reason);
        }
        free(r->choices);
        *r = ROUTE_RESULT_INIT;
}

static double clamp01(double x) {
        if (isnan(x) || x < 0)
                return 0;
        return x > 1 ? 1 : x;
}

double router_combine(const RouterConfig *cfg, const RouterCandidate *c) {
        double kw = cfg ? clamp01(cfg->kb_weight) : 0;
        double w = c->weight;
        if (isnan(w) || w < 0)
                w = 0;
        return clamp01(w * ((1 - kw) * clamp01(c->plugin_score) + kw * clamp01(c->kb_evidence)));
}

static int choice_cmp(const void *x, const void *y) {
        const RouteChoice *a = x, *b = y;
        if (a->score > b->score)
                return -1;
        if (a->score < b->score)
                return 1;
        return strcmp(a->name, b->name);
}

int router_route(const RouterConfig *cfg, const RouterCandidate *cands, size_t n, const char *const *pinned,
                 size_t n_pinned, RouteResult *ret) {
        RouteResult r = ROUTE_RESULT_INIT;

        if (!cfg || !ret || (n && !cands) || (n_pinned && !pinned))
                return -EINVAL;
        if (n > ROUTER_MAX_CANDIDATES || n_pinned > ROUTER_MAX_CANDIDATES)
                return -E2BIG;
        for (size_t i = 0; i < n; i++)
                if (isempty(cands[i].name))
                        return -EINVAL;
        for (size_t p = 0; p < n_pinned; p++) {
                size_t i;
                if (isempty(pinned[p]))
                        return -EINVAL;
                for (i = 0; i < n; i++)
                        if (streq(cands[i].name, pinned[p]))
                                break;
                if (i == n)
                        return -ENOENT;
        }

        if (n > 0) {
                r.choices = calloc(n, sizeof(RouteChoice));
                if (!r.choices)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                RouteChoice *c = &r.choices[i];
                r.n = i + 1;
                c->name = strdup(cands[i].name);
                c->reason = strdup(cands[i].reason ? cands[i].reason : "");
                if (!c->name || !c->reason) {
                        route_result_done(&r);
                        return -ENOMEM;
                }
                c->plugin_score = clamp01(cands[i].plugin_score);
                c->kb_evidence = clamp01(cands[i].kb_evidence);
                c->weight = isnan(cands[i].weight) || cands[i].weight < 0 ? 0 : cands[i].weight;
                c->score = router_combine(cfg, &cands[i]);
        }
        if (r.n > 1)
                qsort(r.choices, r.n, sizeof(RouteChoice), choice_cmp);

        if (n_pinned > 0) {
                for (size_t i = 0; i < r.n; i++)
                        for (size_t p = 0; p < n_pinned; p++)
                                if (streq(r.choices[i].name, pinned[p]) && !r.choices[i].selected) {
                                        r.choices[i].selected = r.choices[i].pinned = 1;
                                        r.n_selected++;
                                }
        } else {
                double threshold = clamp01(cfg->threshold);
                for (size_t i = 0; i < r.n; i++) {
                        if (cfg->top_k > 0 && r.n_selected >= cfg->top_k)
                                break;
                        if (r.choices[i].score < threshold)
                                break; /* sorted: nothing further qualifies */
                        if (r.choices[i].weight <= 0)
                                continue; /* disabled by weight even at threshold 0 */
                        /* the fallback is not a specialist: it is chosen only by fallback */
                        if (cfg->fallback && streq(r.choices[i].name, cfg->fallback))
                                continue;
                        r.choices[i].selected = 1;
                        r.n_selected++;
                }
                if (r.n_selected == 0 && r.n > 0) {
                        size_t pick = 0;
                        const char *fb = isempty(cfg->fallback) ? "general" : cfg->fallback;
                        for (size_t i = 0; i < r.n; i++)
                                if (streq(r.choices[i].name, fb)) {
                                        pick = i;
                                        break;
                                }
                        r.choices[pick].selected = r.choices[pick].fallback = 1;
                        r.n_selected = 1;
                }
        }

        *ret = r;
        return 0;
}

/* ---- knowledge-base evidence ------------------------------------------ */

#define EVIDENCE_MAX_TERMS 32u
#define EVIDENCE_TERM_MAX 48u
#define EVIDENCE_PREFIX 5u
#define EVIDENCE_MAX_TEXT (64u * 1024u)

/* English, German, French, Spanish function words and question fillers:
 * they say nothing about the domain. Sorted is not required (tiny list). */
static const char *const stop_words[] = {
        "the",   "and",   "for",  "are",     "but",    "not",    "you",     "your",   "all",   "any",
        "can",   "her",   "was",  "one",     "our",    "out",    "has",     "have",   "had",   "his",
        "how",   "its",   "may",  "new",     "now",    "who",    "why",     "what",   "when",  "where",
        "which", "while", "with", "this",    "that",   "these",  "those",   "there",  "their", "them",
        "then",  "than",  "they", "from",    "into",   "about",  "does",    "did",    "doing", "should",
        "would", "could", "will", "shall",   "must",   "been",   "being",   "were",   "some",  "such",
        "also",  "just",  "very", "more",    "most",   "much",   "many",    "need",   "want",  "like",
        "get",   "got",   "use",  "using",   "make",   "tell",   "explain", "please", "know",  "way",
        "best",  "good",  "help", "need",    "there",  "here",   "der",     "die",    "das",   "und",
        "ist",   "ein",   "eine", "einen",   "einem",  "einer",  "wie",     "was",    "wer",   "ich",
        "mir",   "mich",  "mein", "meine",   "sie",    "ihr",    "wir",     "uns",    "bei",   "mit",
        "von",   "für",   "fur",  "auf",     "aus",    "nach",   "oder",    "aber",   "nicht", "kann",
        "muss",  "soll",  "darf", "sind",    "wird",   "werden", "habe",    "hat",    "den",   "dem",
        "des",   "zum",   "zur",  "gibt",    "welche", "warum",  "les",     "des",    "une",   "est",
        "que",   "qui",   "quoi", "pour",    "dans",   "par",    "sur",     "avec",   "pas",   "mon",
        "mes",   "son",   "ses",  "comment", "quel",   "quelle", "quels",   "est-ce", "faire", "peut",
        "puis",  "dois",  "suis", "vous",    "nous",   "elle",   "ils",     "aux",    "cette", "ces",
        "los",   "las",   "del",  "una",     "uno",    "por",    "para",    "con",    "que",   "qué",
        "cómo",  "como",  "cuál", "mis",     "sus",    "hay",    "puedo",   "debo",   "tengo", "está",
        "esta",  "este",  "son",  "pero",    "sin",
};

static int is_stop_word(const char *w) {
        for (size_t i = 0; i < ELEMENTSOF(stop_words); i++)
                if (streq(stop_words[i], w))
                        return 1;
        return 0;
}

static int word_byte(unsigned char c) {
        return isalnum(c) || c >= 0x80;
}

/* Next lower-cased word of *p into @buf (truncated to @size-1); returns its
 * length (0 at end) and advances *p. */
static size_t next_word(const char **p, const char *end, char *buf, size_t size) {
        const char *s = *p;
        while (s < end && !word_byte((unsigned char) *s))
                s++;
        size_t n = 0;
        while (s < end && word_byte((unsigned char) *s)) {
                if (n + 1 < size)
                        buf[n++] = (char) tolower((unsigned char) *s);
                s++;
        }
        buf[n] = 0;
        *p = s;
        return n;
}

static int term_matches(const char *term, size_t tlen, const char *word, size_t wlen) {
        if (tlen == wlen && memcmp(term, word, tlen) == 0)
                return 1;
        return tlen >= EVIDENCE_PREFIX && wlen >= EVIDENCE_PREFIX &&
               memcmp(term, word, EVIDENCE_PREFIX) == 0;
}

double router_kb_evidence(const char *query, const KbHit *hits, size_t n) {
        char terms[EVIDENCE_MAX_TERMS][EVIDENCE_TERM_MAX];
        size_t tlen[EVIDENCE_MAX_TERMS];
        int found[EVIDENCE_MAX_TERMS] = {0};
        size_t nt = 0, nfound = 0;
        char w[EVIDENCE_TERM_MAX];

        if (!query || !hits || n == 0)
                return 0;

        const char *p = query, *end = query + strnlen(query, KB_MAX_QUERY_BYTES);
        size_t l;
        while (nt < EVIDENCE_MAX_TERMS && (l = next_word(&p, end, w, sizeof(w))) > 0) {
                if (l < 3 || is_stop_word(w))
                        continue;
                int dup = 0;
                for (size_t i = 0; i < nt && !dup; i++)
                        dup = streq(terms[i], w);
                if (dup)
                        continue;
                memcpy(terms[nt], w, l + 1);
                tlen[nt] = strlen(w);
                nt++;
        }
        if (nt == 0)
                return 0;

        for (size_t h = 0; h < n && nfound < nt; h++) {
                const char *t = hits[h].text ? hits[h].text : hits[h].snippet;
                if (!t)
                        continue;
                const char *q = t, *tend = t + strnlen(t, EVIDENCE_MAX_TEXT);
                while (nfound < nt && (l = next_word(&q, tend, w, sizeof(w))) > 0) {
                        size_t wl = strlen(w);
                        for (size_t i = 0; i < nt; i++)
                                if (!found[i] && term_matches(terms[i], tlen[i], w, wl)) {
                                        found[i] = 1;
                                        nfound++;
                                }
                }
        }

        double coverage = (double) nfound / (double) nt;
        double damp = (double) n / ((double) n + 1.0);
        return CLAMP(coverage * damp, 0.0, 1.0);
}
