/* test-router.c — pure routing: combination formula, threshold, top-k,
 * fallback, pinning, weights, ordering, decisive signals, and the
 * calibrated knowledge-base evidence. */
#include <check.h>

#include "check-main.h"
#include <math.h>

#include "router.h"
#include "util.h"

/* Lexicon and evidence only (the candidates below have no learned score),
 * steep: score = sigmoid(K * ((1 - kb_weight) * plugin + kb_weight *
 * evidence - threshold)), so a candidate is at the router's threshold 0.5
 * exactly when that mix is at @threshold. */
#define K 20.0
static RouterConfig cfg(double threshold, unsigned top_k, double kb_weight) {
        return (RouterConfig){.threshold = 0.5,
                              .top_k = top_k,
                              .lexicon_weight = K * (1 - kb_weight),
                              .learned_weight = 1,
                              .kb_weight = K * kb_weight,
                              .bias = -K * threshold,
                              .fallback = (char *) "general"};
}

static double sigmoid(double z) {
        return 1 / (1 + exp(-z));
}

#define C(n, s, kb, w)                                                                                      \
        ((RouterCandidate){.name = (n),                                                                     \
                           .plugin_score = (s),                                                             \
                           .reason = "r",                                                                   \
                           .learned = NAN,                                                                  \
                           .kb_evidence = (kb),                                                             \
                           .weight = (w)})

static const RouteChoice *find(const RouteResult *r, const char *name) {
        for (size_t i = 0; i < r->n; i++)
                if (streq(r->choices[i].name, name))
                        return &r->choices[i];
        ck_abort_msg("no choice %s", name);
        return NULL;
}

START_TEST(test_combine) {
        RouterConfig c = {.lexicon_weight = 2, .learned_weight = 1, .kb_weight = 3, .bias = -1};
        RouterCandidate x = C("a", 0.5, 0.25, 1.0);
        x.learned = 0.8;
        double z = -1 + 2 * 0.5 + log(0.8 / 0.2) + 3 * 0.25;
        ck_assert(fabs(router_combine(&c, &x) - sigmoid(z)) < 1e-12);
        /* the agent's weight scales the probability; at most 1 */
        x.weight = 0.5;
        ck_assert(fabs(router_combine(&c, &x) - 0.5 * sigmoid(z)) < 1e-12);
        x.weight = 10;
        ck_assert(router_combine(&c, &x) == 1.0);
        x.weight = NAN;
        ck_assert(router_combine(&c, &x) == 0.0);
        /* a missing signal (NaN) adds nothing, rather than counting as a no */
        x = C("a", 0.5, NAN, 1);
        ck_assert(fabs(router_combine(&c, &x) - sigmoid(-1 + 2 * 0.5)) < 1e-12);
        /* the classifier is trusted to 1:49 odds either way */
        x.learned = 1.0;
        ck_assert(fabs(router_combine(&c, &x) - sigmoid(-1 + 2 * 0.5 + log(0.98 / 0.02))) < 1e-12);
        x.learned = 0.0;
        ck_assert(fabs(router_combine(&c, &x) - sigmoid(-1 + 2 * 0.5 + log(0.02 / 0.98))) < 1e-12);
        /* out-of-range inputs are clamped; NaN plugin score is 0 */
        x = C("a", NAN, -3, 1);
        ck_assert(fabs(router_combine(&c, &x) - sigmoid(-1)) < 1e-12);
        x = C("a", 2, 2, 1);
        ck_assert(fabs(router_combine(&c, &x) - sigmoid(-1 + 2 + 3)) < 1e-12);
        ck_assert(router_combine(NULL, &x) == 0.0);
}
END_TEST

/* Nobody at the threshold: the best specialist still answers from the
 * floor when it beats the fallback agent's score; never a second one. */
START_TEST(test_floor) {
        RouterConfig c = cfg(0.5, 3, 0);
        c.floor = 0.1; /* legal sigmoid(-2) = 0.12, code 0.05, general 0.002 */
        RouterCandidate in[] = {C("legal", 0.4, 0, 1), C("code", 0.35, 0, 1), C("general", 0.2, 0, 1)};
        RouteResult r = ROUTE_RESULT_INIT;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert_uint_eq(r.n_selected, 1);
        ck_assert(find(&r, "legal")->selected && !find(&r, "legal")->fallback);
        route_result_done(&r);
        /* the fallback scores higher: it answers */
        in[2].plugin_score = 0.45;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert(find(&r, "general")->selected && find(&r, "general")->fallback);
        ck_assert(!find(&r, "legal")->selected);
        route_result_done(&r);
        /* below the floor, or the floor off: the fallback */
        in[2].plugin_score = 0.2;
        c.floor = 0.45;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert(find(&r, "general")->fallback);
        route_result_done(&r);
        c.floor = 0;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert(find(&r, "general")->fallback);
        route_result_done(&r);
}
END_TEST

/* A specialist at the threshold still loses to everyday talk: it must
 * score at least the fallback agent's own (unweighted) score plus
 * fallback_margin ("a budget airline" is no finance question). */
START_TEST(test_fallback_margin) {
        RouterConfig c = cfg(0.5, 3, 0); /* plugin 0.55 -> 0.73, 0.6 -> 0.88, 0.8 -> 1.00 */
        RouterCandidate in[] = {C("finance", 0.55, 0, 1), C("general", 0.6, 0, 0.6)};
        RouteResult r = ROUTE_RESULT_INIT;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert(find(&r, "general")->selected && find(&r, "general")->fallback);
        ck_assert(!find(&r, "finance")->selected);
        route_result_done(&r);
        /* clearly above the fallback: selected */
        in[0].plugin_score = 0.8;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert(find(&r, "finance")->selected && !find(&r, "general")->selected);
        route_result_done(&r);
        /* above it, but within the margin: not */
        in[0].plugin_score = 0.6;
        in[1].plugin_score = 0.55;
        c.fallback_margin = 0.05;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert(find(&r, "finance")->selected);
        route_result_done(&r);
        c.fallback_margin = 0.2;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert(!find(&r, "finance")->selected && find(&r, "general")->fallback);
        route_result_done(&r);
}
END_TEST

START_TEST(test_threshold_and_order) {
        RouterConfig c = cfg(0.5, 0, 0);
        RouterCandidate in[] = {C("legal", 0.9, 0, 1), C("finance", 0.5, 0, 1), C("code", 0.49, 0, 1),
                                C("general", 0.05, 0, 1), C("medical", 0.9, 0, 1)};
        RouteResult r = ROUTE_RESULT_INIT;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert_uint_eq(r.n, 5);
        ck_assert_uint_eq(r.n_selected, 3);
        /* sorted by score, ties by name */
        ck_assert_str_eq(r.choices[0].name, "legal");
        ck_assert_str_eq(r.choices[1].name, "medical");
        ck_assert_str_eq(r.choices[2].name, "finance");
        ck_assert(find(&r, "finance")->selected); /* at the threshold counts */
        ck_assert(!find(&r, "code")->selected);
        ck_assert(!find(&r, "general")->selected);
        ck_assert(!find(&r, "legal")->fallback);
        ck_assert_str_eq(find(&r, "legal")->reason, "r");
        route_result_done(&r);
        ck_assert_ptr_null(r.choices);
        route_result_done(&r);
        route_result_done(NULL);
}
END_TEST

START_TEST(test_top_k) {
        RouterConfig c = cfg(0.3, 2, 0);
        RouterCandidate in[] = {C("a", 0.4, 0, 1), C("b", 0.9, 0, 1), C("c", 0.7, 0, 1),
                                C("general", 0.1, 0, 1)};
        RouteResult r = ROUTE_RESULT_INIT;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert_uint_eq(r.n_selected, 2);
        ck_assert(find(&r, "b")->selected);
        ck_assert(find(&r, "c")->selected);
        ck_assert(!find(&r, "a")->selected);
        route_result_done(&r);

        c.top_k = 1;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert_uint_eq(r.n_selected, 1);
        ck_assert(find(&r, "b")->selected);
        route_result_done(&r);
}
END_TEST

START_TEST(test_fallback) {
        RouterConfig c = cfg(0.5, 3, 0.3);
        RouterCandidate in[] = {C("legal", 0.3, 0.2, 1), C("general", 0.05, 0, 0.6), C("code", 0.2, 0.9, 1)};
        RouteResult r = ROUTE_RESULT_INIT;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert_uint_eq(r.n_selected, 1);
        const RouteChoice *g = find(&r, "general");
        ck_assert(g->selected && g->fallback && !g->pinned);
        route_result_done(&r);

        /* the fallback never qualifies on its own score, even when high */
        in[1].plugin_score = 1.0;
        in[1].weight = 1.0;
        in[0].plugin_score = 0.95;
        in[0].kb_evidence = 0.95;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert_uint_eq(r.n_selected, 1);
        ck_assert(find(&r, "legal")->selected);
        ck_assert(!find(&r, "general")->selected);
        route_result_done(&r);

        /* configured fallback missing: the best candidate is used */
        c.fallback = (char *) "nobody";
        in[0] = C("legal", 0.3, 0, 1);
        in[1] = C("general", 0.05, 0, 0.6);
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert_uint_eq(r.n_selected, 1);
        ck_assert(r.choices[0].selected && r.choices[0].fallback);
        ck_assert_str_eq(r.choices[0].name, "code"); /* 0.7*0.2 + 0.3*0.9 = 0.41 is the best mix */
        route_result_done(&r);

        /* no candidates at all: empty result, no error */
        ck_assert_int_eq(router_route(&c, NULL, 0, NULL, 0, &r), 0);
        ck_assert_uint_eq(r.n, 0);
        ck_assert_uint_eq(r.n_selected, 0);
        route_result_done(&r);
}
END_TEST

START_TEST(test_pinning) {
        RouterConfig c = cfg(0.5, 1, 0);
        RouterCandidate in[] = {C("legal", 0.9, 0, 1), C("medical", 0.1, 0, 1), C("code", 0.0, 0, 1),
                                C("general", 0.05, 0, 1)};
        const char *pins[] = {"code", "medical", "code"};
        RouteResult r = ROUTE_RESULT_INIT;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), pins, 3, &r), 0);
        /* exactly the pinned agents, regardless of score and top_k */
        ck_assert_uint_eq(r.n_selected, 2);
        ck_assert(find(&r, "code")->selected && find(&r, "code")->pinned);
        ck_assert(find(&r, "medical")->selected);
        ck_assert(!find(&r, "legal")->selected);
        ck_assert(!find(&r, "general")->selected);
        route_result_done(&r);

        const char *unknown[] = {"astrology"};
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), unknown, 1, &r), -ENOENT);
        ck_assert_ptr_null(r.choices);
        const char *empty[] = {""};
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), empty, 1, &r), -EINVAL);
}
END_TEST

START_TEST(test_weights_and_kb) {
        RouterConfig c = cfg(0.5, 3, 0.3);
        /* plugin 0.6 alone: 0.42 < 0.5; with full KB evidence 0.72 */
        RouterCandidate in[] = {C("legal", 0.6, 0.0, 1), C("finance", 0.6, 1.0, 1), C("code", 1.0, 1.0, 0),
                                C("general", 0.05, 0, 1)};
        RouteResult r = ROUTE_RESULT_INIT;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert(!find(&r, "legal")->selected);
        ck_assert(find(&r, "finance")->selected);
        ck_assert(!find(&r, "code")->selected); /* weight 0 disables */
        ck_assert(find(&r, "code")->score == 0);
        route_result_done(&r);

        c.threshold = 0;
        ck_assert_int_eq(router_route(&c, in, ELEMENTSOF(in), NULL, 0, &r), 0);
        ck_assert(!find(&r, "code")->selected); /* even at threshold 0 */
        ck_assert(find(&r, "legal")->selected);
        route_result_done(&r);
}
END_TEST

START_TEST(test_bad_input) {
        RouterConfig c = cfg(0.5, 3, 0.3);
        RouterCandidate in[] = {C("a", 0.6, 0, 1), C(NULL, 0.6, 0, 1)};
        RouteResult r = ROUTE_RESULT_INIT;
        ck_assert_int_eq(router_route(NULL, in, 1, NULL, 0, &r), -EINVAL);
        ck_assert_int_eq(router_route(&c, in, 2, NULL, 0, &r), -EINVAL);
        ck_assert_int_eq(router_route(&c, NULL, 2, NULL, 0, &r), -EINVAL);
        ck_assert_int_eq(router_route(&c, in, ROUTER_MAX_CANDIDATES + 1, NULL, 0, &r), -E2BIG);
}
END_TEST

/* Three agents; row a of df = chunk counts of each query term in agent a. */
START_TEST(test_kb_evidence) {
        double ev[3];
        int best[3];
        /* terms: 0 "gplv3" only legal's, 1 "the" everywhere alike, 2 unknown */
        uint32_t df[3 * 3] = {
                8, 100, 0, /* legal: 100 chunks */
                0, 100, 0, /* code: 100 chunks */
                0, 100, 0, /* general: 100 chunks */
        };
        uint32_t n[3] = {100, 100, 100};
        router_kb_evidence(df, n, 3, 3, ev, best);
        ck_assert(ev[0] > 0.3 && ev[0] < 1.0);
        ck_assert_int_eq(best[0], 0);
        ck_assert(ev[1] == 0 && ev[2] == 0);
        ck_assert_int_eq(best[1], -1);

        /* a word common everywhere is no evidence for anyone */
        uint32_t common[3] = {90, 90, 90};
        router_kb_evidence(common, n, 3, 1, ev, NULL);
        ck_assert(ev[0] == 0 && ev[1] == 0 && ev[2] == 0);

        /* rate, not size: legal ten times larger with the same rate of a term
         * as everyone gains nothing; a term frequent in a small base beats
         * the same count in a large one */
        uint32_t big_n[3] = {1000, 100, 100};
        uint32_t same_rate[3] = {50, 5, 5};
        router_kb_evidence(same_rate, big_n, 3, 1, ev, NULL);
        ck_assert(ev[0] < 0.01 && ev[1] < 0.01 && ev[2] < 0.01);
        uint32_t same_count[3] = {5, 5, 0};
        router_kb_evidence(same_count, big_n, 3, 1, ev, NULL);
        ck_assert(ev[1] > ev[0]);

        /* one chunk with the term is weaker evidence than many */
        uint32_t once[3] = {1, 0, 0}, often[3] = {30, 0, 0};
        double e_once;
        router_kb_evidence(once, n, 3, 1, ev, NULL);
        e_once = ev[0];
        router_kb_evidence(often, n, 3, 1, ev, NULL);
        ck_assert(ev[0] > e_once && e_once > 0);

        /* terms nobody knows do not dilute a specific one */
        uint32_t one[3] = {8, 0, 0}, one_plus_unknown[3 * 4] = {8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        double e1;
        router_kb_evidence(one, n, 3, 1, ev, NULL);
        e1 = ev[0];
        router_kb_evidence(one_plus_unknown, n, 3, 4, ev, NULL);
        ck_assert(fabs(ev[0] - e1) < 1e-12);

        /* no knowledge: NaN; nothing at all: no crash */
        uint32_t none_n[3] = {0, 100, 100};
        router_kb_evidence(df, none_n, 3, 3, ev, best);
        ck_assert(isnan(ev[0]));
        ck_assert(!isnan(ev[1]));
        router_kb_evidence(NULL, NULL, 3, 0, ev, NULL);
        ck_assert(isnan(ev[0]) && isnan(ev[2]));
        router_kb_evidence(df, n, 3, 0, ev, NULL);
        ck_assert(ev[0] == 0);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("router");
        TCase *tc = tcase_create("route");
        tcase_add_test(tc, test_combine);
        tcase_add_test(tc, test_floor);
        tcase_add_test(tc, test_fallback_margin);
        tcase_add_test(tc, test_threshold_and_order);
        tcase_add_test(tc, test_top_k);
        tcase_add_test(tc, test_fallback);
        tcase_add_test(tc, test_pinning);
        tcase_add_test(tc, test_weights_and_kb);
        tcase_add_test(tc, test_bad_input);
        tcase_add_test(tc, test_kb_evidence);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
