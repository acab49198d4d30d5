/* test-router.c — pure routing: combination formula, threshold, top-k,
 * fallback, pinning, weights, ordering, and the knowledge-base evidence
 * measure. */
#include <check.h>

#include "check-main.h"
#include <math.h>

#include "router.h"
#include "util.h"

static RouterConfig cfg(double threshold, unsigned top_k, double kb_weight) {
        return (RouterConfig){.threshold = threshold,
                              .top_k = top_k,
                              .kb_weight = kb_weight,
                              .fallback = (char *) "general"};
}

#define C(n, s, kb, w)                                                                                      \
        ((RouterCandidate){                                                                                 \
                .name = (n), .plugin_score = (s), .reason = "r", .kb_evidence = (kb), .weight = (w)})

static const RouteChoice *find(const RouteResult *r, const char *name) {
        for (size_t i = 0; i < r->n; i++)
                if (streq(r->choices[i].name, name))
                        return &r->choices[i];
        ck_abort_msg("no choice %s", name);
        return NULL;
}

START_TEST(test_combine) {
        RouterConfig c = cfg(0.4, 3, 0.3);
        RouterCandidate x = C("a", 0.8, 0.5, 1.0);
        ck_assert(fabs(router_combine(&c, &x) - (0.7 * 0.8 + 0.3 * 0.5)) < 1e-12);
        x.weight = 0.5;
        ck_assert(fabs(router_combine(&c, &x) - 0.5 * (0.7 * 0.8 + 0.3 * 0.5)) < 1e-12);
        x.weight = 10; /* clamped to 1 */
        ck_assert(router_combine(&c, &x) == 1.0);
        x = C("a", NAN, -3, 1);
        ck_assert(router_combine(&c, &x) == 0.0);
        x = C("a", 2, 2, 1);
        ck_assert(router_combine(&c, &x) == 1.0);
        c.kb_weight = 0;
        x = C("a", 0.6, 1.0, 1);
        ck_assert(fabs(router_combine(&c, &x) - 0.6) < 1e-12);
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
        ck_assert_str_eq(r.choices[0].name, "code"); /* 0.7*0.2 + 0.3*0.9 = 0.41 is best */
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

static KbHit hit(const char *text) {
        return (KbHit){.title = (char *) "t",
                       .source = (char *) "",
                       .snippet = (char *) "",
                       .text = (char *) text,
                       .score = 1};
}

START_TEST(test_kb_evidence) {
        KbHit h[3] = {hit("A tenant may withhold rent when the landlord refuses repairs."),
                      hit("Security deposits must be returned within 30 days."), hit(NULL)};
        h[2].snippet = (char *) "eviction notices";

        ck_assert(router_kb_evidence("tenant deposit", h, 0) == 0);
        ck_assert(router_kb_evidence("tenant deposit", NULL, 3) == 0);
        ck_assert(router_kb_evidence(NULL, h, 2) == 0);
        /* only stop words / short words: no content terms */
        ck_assert(router_kb_evidence("what is the", h, 2) == 0);
        ck_assert(router_kb_evidence("", h, 2) == 0);
        /* every term found (deposit ~ deposits by prefix), 2 hits: 2/3 */
        ck_assert(fabs(router_kb_evidence("Does the landlord return my deposit?", h, 2) - 2.0 / 3.0) < 1e-9);
        /* half the terms: landlord yes, pizza no -> 0.5 * 2/3 */
        ck_assert(fabs(router_kb_evidence("landlord pizza", h, 2) - (0.5 * 2.0 / 3.0)) < 1e-9);
        /* a hit without text falls back to its snippet; case-insensitive */
        ck_assert(fabs(router_kb_evidence("EVICTION", h, 3) - 0.75) < 1e-9);
        /* repeated terms count once */
        ck_assert(fabs(router_kb_evidence("pizza pizza pizza landlord", h, 2) - (0.5 * 2.0 / 3.0)) < 1e-9);
        /* more hits means more trust, never above 1 */
        KbHit many[9];
        for (size_t i = 0; i < ELEMENTSOF(many); i++)
                many[i] = hit("landlord");
        double e = router_kb_evidence("landlord", many, 9);
        ck_assert(e > 0.89 && e <= 1.0);

        /* hostile input: long, binary, no words */
        char big[20000];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        e = router_kb_evidence(big, h, 2);
        ck_assert(e >= 0 && e <= 1);
        ck_assert(router_kb_evidence("\"*)(&^%$#@!", h, 2) == 0);
        ck_assert(router_kb_evidence("\xff\xfe\xc3", h, 2) >= 0);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("router");
        TCase *tc = tcase_create("route");
        tcase_add_test(tc, test_combine);
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
