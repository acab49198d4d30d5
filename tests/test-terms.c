/* test-terms.c — the router's words (terms.c) and the learned classifier
 * (classifier.c): joined forms, folding, elisions, language guess,
 * stemming; training from examples, from knowledge-like text alone,
 * determinism, two-label samples, explanations, hostile input. */
#include <check.h>

#include "check-main.h"
#include "classifier.h"
#include "route-model.h"
#include "terms.h"
#include "util.h"

static Terms *terms;

static void setup(void) {
        ck_assert_int_eq(terms_new(&terms), 0);
}

static void teardown(void) {
        terms = terms_free(terms);
}

/* "word/stem" of every term, '^' after parts, '!' after function words. */
static char *show(const char *text) {
        TermList l = TERM_LIST_INIT;
        ck_assert_int_eq(terms_split(terms, text, strlen(text), 0, &l), 0);
        char *out = calloc(1, l.n * (2 * TERM_MAX_BYTES + 4) + 8);
        ck_assert_ptr_nonnull(out);
        strcat(out, term_lang_name(l.lang));
        for (size_t i = 0; i < l.n; i++) {
                strcat(out, " ");
                strcat(out, l.v[i].word);
                strcat(out, "/");
                strcat(out, l.v[i].stem);
                if (l.v[i].part)
                        strcat(out, "^");
                if (l.v[i].stop)
                        strcat(out, "!");
        }
        term_list_done(&l);
        return out;
}

#define EXPECT(text, want)                                                                                  \
        do {                                                                                                \
                char *_s = show(text);                                                                      \
                ck_assert_str_eq(_s, want);                                                                 \
                free(_s);                                                                                   \
        } while (0)

START_TEST(test_joined_forms) {
        EXPECT("GPLv3", "en gplv3/gplv3");
        EXPECT("401(k)", "en 401k/401k");
        EXPECT("COVID-19", "en covid19/covid19 covid/covid^ 19/19^");
        EXPECT("non-compete", "en noncompete/noncompet non/non^ compete/compet^");
        EXPECT("the landlord's deposits", "en the/the! landlord/landlord deposits/deposit");
        EXPECT("don't", "en dont/dont don/don^");
        /* a hyphen at the edge of a word joins nothing */
        EXPECT("-x- z", "en x/x z/z");
}
END_TEST

START_TEST(test_languages) {
        /* accents folded, ß expanded, the language's own stemmer */
        EXPECT("Kündigung des Mietvertrags", "de kundigung/kundig des/des! mietvertrags/mietvertrag");
        EXPECT("Est-ce que l'avocat peut résilier le contrat ?",
               "fr estce/estce est/est^! ce/ce^! que/que! avocat/avocat peut/peut! resilier/resili le/le! "
               "contrat/contrat");
        EXPECT("¿Cuánto tarda la hipoteca?", "es cuanto/cuant tarda/tard la/la! hipoteca/hipotec");
        EXPECT("Straße", "de strasse/strass");
        /* "die" is an article in a German question, a verb in an English one */
        EXPECT("Was ist die Frist?", "de was/was! ist/ist! die/die! frist/frist");
        EXPECT("Can a plant die of frost?", "en can/can! a/a! plant/plant die/die of/of! frost/frost");
        /* the knowledge base's query terms (terms_is_function_word) keep
         * German, French and Spanish function words that are English
         * content words: "the MIT licence", "my son" */
        ck_assert_int_eq(terms_is_function_word("mit"), 0);
        ck_assert_int_eq(terms_is_function_word("son"), 0);
        ck_assert_int_eq(terms_is_function_word("die"), 0);
        ck_assert_int_eq(terms_is_function_word("und"), 1);
        ck_assert_int_eq(terms_is_function_word("les"), 1);
        ck_assert_int_eq(terms_is_function_word("the"), 1);
}
END_TEST

START_TEST(test_hostile) {
        TermList l = TERM_LIST_INIT;
        /* invalid UTF-8, NULs, a huge word, only punctuation, the cap */
        static const char bad[] = "\xff\xfe abc\xc3 \x80\x80 d\0e";
        ck_assert_int_eq(terms_split(terms, bad, sizeof(bad) - 1, 0, &l), 0);
        for (size_t i = 0; i < l.n; i++)
                ck_assert_uint_lt(strlen(l.v[i].word), TERM_MAX_BYTES);
        term_list_done(&l);
        char big[5000];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        ck_assert_int_eq(terms_split(terms, big, strlen(big), 0, &l), 0);
        ck_assert_uint_eq(l.n, 1);
        ck_assert_uint_eq(strlen(l.v[0].word), TERM_MAX_BYTES - 1);
        term_list_done(&l);
        ck_assert_int_eq(terms_split(terms, "?!...", 5, 0, &l), 0);
        ck_assert_uint_eq(l.n, 0);
        ck_assert_int_eq(terms_split(terms, "a b c d e f", 11, 3, &l), 0);
        ck_assert_uint_eq(l.n, 3);
        term_list_done(&l);
        ck_assert_int_eq(terms_split(NULL, "x", 1, 0, &l), -EINVAL);
        ck_assert_int_eq(terms_split(terms, NULL, 1, 0, &l), -EINVAL);
}
END_TEST

/* Three labels: 0 legal, 1 medical, 2 everyday (the negatives' home). */
static const ClassifierSample samples[] = {
        {"Can my landlord keep the security deposit?", 1, 1, NULL},
        {"Is a verbal contract legally binding?", 1, 1, NULL},
        {"How do I contest a parking fine in court?", 1, 1, NULL},
        {"Mein Vermieter behält die Kaution", 1, 1, NULL},
        {"What are the symptoms of a urinary infection?", 2, 1, NULL},
        {"Is ibuprofen safe with blood pressure medicine?", 2, 1, NULL},
        {"My child has a fever of 39 degrees", 2, 1, NULL},
        {"How long should I boil an egg?", 4, 1, NULL},
        {"What is the capital of Australia?", 4, 1, NULL},
        {"Write a haiku about the sea", 4, 1, NULL},
        /* two labels: positive for both, negative for neither */
        {"Can I sue the hospital for a wrong diagnosis?", 1 | 2, 1, NULL},
};

START_TEST(test_classifier_learns) {
        Classifier *c = NULL;
        ClassifierScore p[3];
        ck_assert_int_eq(classifier_train(terms, samples, ELEMENTSOF(samples), 3, &c), 0);
        ck_assert_uint_eq(classifier_n_labels(c), 3);
        for (size_t l = 0; l < 3; l++)
                ck_assert(classifier_has_positives(c, l));
        ck_assert(!classifier_has_positives(c, 3));

        /* unseen paraphrases and a typo */
        ck_assert_int_eq(classifier_predict(c, terms, "my landlrod will not return the deposit", 1, p), 0);
        ck_assert_msg(p[0].p > 0.5 && p[0].p > p[1].p && p[0].p > p[2].p, "%f %f %f", p[0].p, p[1].p,
                      p[2].p);
        ck_assert_ptr_nonnull(strstr(p[0].terms, "deposit"));
        ck_assert_int_eq(classifier_predict(c, terms, "fever and infection symptoms", 0, p), 0);
        ck_assert_msg(p[1].p > p[0].p && p[1].p > p[2].p, "%f %f %f", p[0].p, p[1].p, p[2].p);
        ck_assert_str_eq(p[1].terms, ""); /* not asked to explain */

        /* deterministic: the same samples, the same numbers */
        Classifier *c2 = NULL;
        ClassifierScore q[3];
        ck_assert_int_eq(classifier_train(terms, samples, ELEMENTSOF(samples), 3, &c2), 0);
        ck_assert_int_eq(classifier_predict(c2, terms, "fever and infection symptoms", 0, q), 0);
        for (size_t l = 0; l < 3; l++)
                ck_assert(p[l].p == q[l].p);

        /* no words at all: nothing */
        ck_assert_int_eq(classifier_predict(c, terms, "?!", 1, p), 0);
        for (size_t l = 0; l < 3; l++)
                ck_assert(p[l].p == 0);
        classifier_free(c);
        classifier_free(c2);
}
END_TEST

/* A reload with the same examples keeps the model it has (the same
 * object, no training); one changed example trains a new one. */
START_TEST(test_route_model_reuse) {
        char *legal[] = {"Can my landlord keep the deposit?", "Is this contract clause enforceable?"};
        char *med[] = {"Is ibuprofen safe with my blood pressure pills?", "What are the symptoms of flu?"};
        RouteModelAgent agents[] = {{"legal", legal, 2, NULL, NULL}, {"medical", med, 2, NULL, NULL}};
        Classifier *a = NULL, *b = NULL, *c = NULL;
        size_t n = 0;
        int reused = -1;

        ck_assert_int_eq(route_model_train(terms, agents, 2, NULL, NULL, &a, &n, &reused), 0);
        ck_assert_uint_eq(n, 4);
        ck_assert_int_eq(reused, 0);
        ck_assert_uint_ne(classifier_trained_from(a), 0);

        ck_assert_int_eq(route_model_train(terms, agents, 2, NULL, a, &b, &n, &reused), 0);
        ck_assert_int_eq(reused, 1);
        ck_assert_ptr_eq(a, b);

        med[1] = "What are the symptoms of measles?";
        ck_assert_int_eq(route_model_train(terms, agents, 2, NULL, a, &c, &n, &reused), 0);
        ck_assert_int_eq(reused, 0);
        ck_assert_ptr_ne(a, c);
        ck_assert_uint_ne(classifier_trained_from(a), classifier_trained_from(c));

        /* the same samples under other labels are other inputs */
        ClassifierSample s1[] = {{"deposit", 1, 1.0f, NULL}, {"fever", 2, 1.0f, NULL}};
        ClassifierSample s2[] = {{"deposit", 2, 1.0f, NULL}, {"fever", 1, 1.0f, NULL}};
        ck_assert_uint_ne(classifier_inputs_hash(s1, 2, 2), classifier_inputs_hash(s2, 2, 2));
        ck_assert_uint_ne(classifier_inputs_hash(s1, 2, 2), classifier_inputs_hash(s1, 2, 3));
        /* and so are the same samples with another prior */
        static const float prior[2] = {2.0f, 0.0f};
        ClassifierSample s3[] = {{"deposit", 1, 1.0f, prior}, {"fever", 2, 1.0f, NULL}};
        ck_assert_uint_ne(classifier_inputs_hash(s1, 2, 2), classifier_inputs_hash(s3, 2, 2));

        /* shared by reference: each free drops one */
        classifier_free(b);
        ClassifierScore p[2];
        ck_assert_int_eq(classifier_predict(a, terms, "deposit", 0, p), 0);
        classifier_free(a);
        classifier_free(c);
}
END_TEST

/* Trained on top of a prior: an everyday question that the lexicon counts
 * as legal (prior +3 log-odds) teaches the model to push its other words
 * down, further than without the prior, which it need not fight. */
START_TEST(test_classifier_prior) {
        static const float lexicon_says_legal[3] = {3.0f, 0, 0};
        ClassifierSample with[ELEMENTSOF(samples) + 2], without[ELEMENTSOF(samples) + 2];
        size_t n = 0;
        for (size_t i = 0; i < ELEMENTSOF(samples); i++, n++)
                with[n] = without[n] = samples[i];
        with[n] = without[n] = (ClassifierSample){"crossword clue: legal document left behind", 4, 1, NULL};
        with[n++].offset = lexicon_says_legal;
        with[n] = without[n] =
                (ClassifierSample){"crossword clue for a Monopoly card, legal tender", 4, 1, NULL};
        with[n++].offset = lexicon_says_legal;

        Classifier *a = NULL, *b = NULL;
        ClassifierScore pa[3], pb[3];
        ck_assert_int_eq(classifier_train(terms, with, n, 3, &a), 0);
        ck_assert_int_eq(classifier_train(terms, without, n, 3, &b), 0);
        ck_assert_int_eq(classifier_predict(a, terms, "crossword clue", 0, pa), 0);
        ck_assert_int_eq(classifier_predict(b, terms, "crossword clue", 0, pb), 0);
        ck_assert_double_lt(pa[0].p, pb[0].p);
        /* a question with no prior still learns as before */
        ck_assert_int_eq(classifier_predict(a, terms, "Can the landlord keep my deposit?", 0, pa), 0);
        ck_assert_double_gt(pa[0].p, 0.5);
        classifier_free(a);
        classifier_free(b);
}
END_TEST

/* Knowledge alone: document-like passages, no questions, still route. */
START_TEST(test_classifier_from_knowledge) {
        static const ClassifierSample docs[] = {
                {"tenancy.md\nA landlord must return the tenant's deposit within 30 days of the end of the "
                 "lease.",
                 1, 0.4f, NULL},
                {"contracts.md\nA contract needs offer, acceptance and consideration to be enforceable.", 1,
                 0.4f, NULL},
                {"fever.md\nA fever above 39 degrees in adults calls for rest, fluids and paracetamol.", 2,
                 0.4f, NULL},
                {"diabetes.md\nType 2 diabetes is managed with diet, exercise and metformin.", 2, 0.4f,
                 NULL},
        };
        Classifier *c = NULL;
        ClassifierScore p[2];
        ck_assert_int_eq(classifier_train(terms, docs, ELEMENTSOF(docs), 2, &c), 0);
        ck_assert_int_eq(
                classifier_predict(c, terms, "When does the landlord have to return my deposit?", 0, p), 0);
        ck_assert_msg(p[0].p > p[1].p, "%f %f", p[0].p, p[1].p);
        ck_assert_int_eq(classifier_predict(c, terms, "is metformin used for diabetes", 0, p), 0);
        ck_assert_msg(p[1].p > p[0].p, "%f %f", p[0].p, p[1].p);
        classifier_free(c);
}
END_TEST

START_TEST(test_classifier_bad_input) {
        Classifier *c = NULL;
        ck_assert_int_eq(classifier_train(terms, samples, 1, 0, &c), -EINVAL);
        ck_assert_int_eq(classifier_train(terms, samples, 1, CLASSIFIER_MAX_LABELS + 1, &c), -EINVAL);
        ck_assert_int_eq(classifier_train(NULL, samples, 1, 2, &c), -EINVAL);
        ck_assert_ptr_null(c);
        /* a label without negatives is not learned */
        static const ClassifierSample only[] = {{"a question", 1, 1, NULL}, {"another one", 1, 1, NULL}};
        ClassifierScore p[1];
        ck_assert_int_eq(classifier_train(terms, only, 2, 1, &c), 0);
        ck_assert(!classifier_has_positives(c, 0));
        ck_assert_int_eq(classifier_predict(c, terms, "a question", 0, p), 0);
        ck_assert(p[0].p == 0);
        ck_assert_int_eq(classifier_predict(c, terms, NULL, 0, p), -EINVAL);
        classifier_free(c);
        ck_assert_ptr_null(classifier_free(NULL));
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("terms");
        TCase *tc = tcase_create("terms");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_joined_forms);
        tcase_add_test(tc, test_languages);
        tcase_add_test(tc, test_hostile);
        tcase_add_test(tc, test_classifier_learns);
        tcase_add_test(tc, test_route_model_reuse);
        tcase_add_test(tc, test_classifier_from_knowledge);
        tcase_add_test(tc, test_classifier_prior);
        tcase_add_test(tc, test_classifier_bad_input);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(suite());
}
