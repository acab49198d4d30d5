/* routing-eval.c — measure routing quality on a labelled set such as
 * tests/data/routing-eval.tsv or the sets in tests/data/routing/ (split <TAB>
 * expected agents <TAB> query). Loads the shipped agents (agents.d via
 * config_load), seeds their knowledge bases in a temporary state directory,
 * trains the learned router, routes every query once with agents_route()
 * and reports, per split: exact-set accuracy, micro precision/recall/F1
 * over the specialist labels, the false-positive rate on queries whose
 * expected answer is "general" (any specialist selected) and the share of
 * specialist queries routed to no specialist. --grid re-applies the router
 * to the stored signals for many settings and prints the best on dev: tune
 * only on dev; the test split is held out.
 *
 * usage: routing-eval --data FILE [--agents-dir DIR] [--plugin-dir DIR]
 *        [--no-kb] [--no-examples] [--threshold X] [--top-k N]
 *        [--kb-weight X] [--learned-weight X] [--lexicon-weight X]
 *        [--bias X] [--show dev|test|all] [--grid] [--dump FILE]
 *        [--min-test-accuracy X] */
#include <ftw.h>
#include <getopt.h>
#include <sys/stat.h>

#include "agents.h"
#include "build-config.h"
#include "config.h"
#include "log.h"

#define MAX_LINE 4096
#define MAX_LABELS 8
#define MAX_AGENTS 16

typedef struct Stats {
        unsigned n, exact;
        unsigned tp, fp, fn;
        unsigned general_n, general_fp;
        unsigned specialist_n, nowhere; /* specialist queries, those routed to no specialist */
        unsigned agent_tp[MAX_AGENTS], agent_fp[MAX_AGENTS], agent_fn[MAX_AGENTS];
} Stats;

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static int in_list(const char *name, char labels[][32], unsigned n) {
        for (unsigned i = 0; i < n; i++)
                if (streq(labels[i], name))
                        return 1;
        return 0;
}

static double ratio(unsigned a, unsigned b) {
        return b ? (double) a / (double) b : 0.0;
}

static void report(const char *split, const Stats *s, AgentSet *set) {
        double p = ratio(s->tp, s->tp + s->fp), r = ratio(s->tp, s->tp + s->fn);
        double f1 = p + r > 0 ? 2 * p * r / (p + r) : 0;
        printf("%-5s n=%3u  exact-set accuracy %.3f  micro P %.3f R %.3f F1 %.3f  general FP %.3f (%u/%u)  "
               "nowhere %.3f (%u/%u)\n",
               split, s->n, ratio(s->exact, s->n), p, r, f1, ratio(s->general_fp, s->general_n),
               s->general_fp, s->general_n, ratio(s->nowhere, s->specialist_n), s->nowhere, s->specialist_n);
        for (size_t i = 0; i < agents_count(set) && i < MAX_AGENTS; i++) {
                const char *name = agent_name(agents_get(set, i));
                if (streq(name, "general"))
                        continue;
                printf("        %-8s P %.3f R %.3f (tp %u fp %u fn %u)\n", name,
                       ratio(s->agent_tp[i], s->agent_tp[i] + s->agent_fp[i]),
                       ratio(s->agent_tp[i], s->agent_tp[i] + s->agent_fn[i]), s->agent_tp[i],
                       s->agent_fp[i], s->agent_fn[i]);
        }
}

typedef struct Item {
        int split; /* 0 dev, 1 test */
        unsigned line;
        char *query;
        char *labels;
        char expected[MAX_LABELS][32];
        unsigned ne;
        RouteResult rr;
} Item;

/* Re-run the selection of @rr under @cfg (the signals stay as routed). */
static int reselect(const RouterConfig *cfg, const RouteResult *rr, RouteResult *ret) {
        RouterCandidate c[MAX_AGENTS];
        size_t n = MIN(rr->n, (size_t) MAX_AGENTS);
        for (size_t i = 0; i < n; i++)
                c[i] = (RouterCandidate){.name = rr->choices[i].name,
                                         .plugin_score = rr->choices[i].plugin_score,
                                         .learned = rr->choices[i].learned,
                                         .kb_evidence = rr->choices[i].kb_evidence,
                                         .weight = rr->choices[i].weight};
        return router_route(cfg, c, n, NULL, 0, ret);
}

static void evaluate(const RouterConfig *cfg, Item *items, size_t n_items, AgentSet *set, const char *show,
                     Stats st[2]) {
        memset(st, 0, 2 * sizeof(Stats));
        for (size_t k = 0; k < n_items; k++) {
                Item *it = &items[k];
                RouteResult rr = ROUTE_RESULT_INIT;
                char got[MAX_LABELS][32];
                unsigned ng = 0;
                if (reselect(cfg, &it->rr, &rr) < 0)
                        abort();
                for (size_t i = 0; i < rr.n && ng < MAX_LABELS; i++)
                        if (rr.choices[i].selected)
                                snprintf(got[ng++], sizeof(got[0]), "%s", rr.choices[i].name);

                Stats *s = &st[it->split];
                s->n++;
                int exact = it->ne == ng;
                for (unsigned i = 0; i < it->ne && exact; i++)
                        exact = in_list(it->expected[i], got, ng);
                s->exact += exact;
                int expect_general = it->ne == 1 && streq(it->expected[0], "general");
                int specialist = 0;
                for (unsigned i = 0; i < ng; i++)
                        specialist |= !streq(got[i], "general");
                if (expect_general) {
                        s->general_n++;
                        s->general_fp += specialist;
                } else {
                        s->specialist_n++;
                        s->nowhere += !specialist;
                }
                for (size_t a = 0; a < agents_count(set) && a < MAX_AGENTS; a++) {
                        const char *name = agent_name(agents_get(set, a));
                        if (streq(name, "general"))
                                continue;
                        int e = in_list(name, it->expected, it->ne), g = in_list(name, got, ng);
                        s->tp += e && g;
                        s->fp += !e && g;
                        s->fn += e && !g;
                        s->agent_tp[a] += e && g;
                        s->agent_fp[a] += !e && g;
                        s->agent_fn[a] += e && !g;
                }
                if (!exact && show && (streq(show, "all") || streq(show, it->split ? "test" : "dev"))) {
                        printf("MISS %s:%u [%s] expected %s got", it->split ? "test" : "dev", it->line,
                               it->query, it->labels);
                        for (unsigned i = 0; i < ng; i++)
                                printf("%s%s", i ? "," : " ", got[i]);
                        printf("  |");
                        for (size_t i = 0; i < rr.n; i++)
                                if (rr.choices[i].score > 0.1 || rr.choices[i].plugin_score > 0.1 ||
                                    rr.choices[i].learned > 0.1 || rr.choices[i].kb_evidence > 0.1)
                                        printf(" %s=%.2f(p%.2f,c%.2f,kb%.2f)", rr.choices[i].name,
                                               rr.choices[i].score, rr.choices[i].plugin_score,
                                               rr.choices[i].learned, rr.choices[i].kb_evidence);
                        printf("\n");
                }
                route_result_done(&rr);
        }
}

/* Every routed signal, one line per query and agent (split, line, expected,
 * agent, lexicon, learned, evidence, weight): for exploring selection rules
 * offline, on dev. */
static int dump_signals(const char *path, const Item *items, size_t n_items) {
        FILE *f = fopen(path, "we");
        if (!f) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -errno;
        }
        for (size_t k = 0; k < n_items; k++)
                for (size_t i = 0; i < items[k].rr.n; i++) {
                        const RouteChoice *c = &items[k].rr.choices[i];
                        fprintf(f, "%s\t%u\t%s\t%s\t%.6f\t%.6f\t%.6f\t%.3f\n",
                                items[k].split ? "test" : "dev", items[k].line, items[k].labels, c->name,
                                c->plugin_score, c->learned, c->kb_evidence, c->weight);
                }
        return fclose(f) == 0 ? 0 : -errno;
}

static double f1_of(const Stats *s) {
        double p = ratio(s->tp, s->tp + s->fp), r = ratio(s->tp, s->tp + s->fn);
        return p + r > 0 ? 2 * p * r / (p + r) : 0;
}

/* Try settings on dev; print the ten best by exact-set accuracy (then F1).
 * The threshold stays: the bias moves the decision instead. */
static void grid(const RouterConfig *base, Item *items, size_t n_items, AgentSet *set) {
        typedef struct Row {
                RouterConfig c;
                double acc, f1, gfp, nowhere;
        } Row;
        static const double lexicon[] = {1, 2, 3, 4, 5, 6};
        static const double learned[] = {0, 0.5, 0.75, 1, 1.5, 2};
        static const double kb[] = {0, 1, 2, 3, 4, 5};
        static const double bias[] = {-2, -1.5, -1, -0.5, 0, 0.5, 1};
        static const double floors[] = {0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45};
        Row best[40] = {};
        for (size_t a = 0; a < ELEMENTSOF(lexicon); a++)
                for (size_t l = 0; l < ELEMENTSOF(learned); l++)
                        for (size_t k = 0; k < ELEMENTSOF(kb); k++)
                                for (size_t b = 0; b < ELEMENTSOF(bias) * ELEMENTSOF(floors); b++) {
                                        RouterConfig c = *base;
                                        c.floor = floors[b % ELEMENTSOF(floors)];
                                        c.lexicon_weight = lexicon[a];
                                        c.learned_weight = learned[l];
                                        c.kb_weight = kb[k];
                                        c.bias = bias[b / ELEMENTSOF(floors)];
                                        Stats st[2];
                                        evaluate(&c, items, n_items, set, NULL, st);
                                        Row row = {c, ratio(st[0].exact, st[0].n), f1_of(&st[0]),
                                                   ratio(st[0].general_fp, st[0].general_n),
                                                   ratio(st[0].nowhere, st[0].specialist_n)};
                                        for (size_t i = 0; i < ELEMENTSOF(best); i++)
                                                if (row.acc > best[i].acc ||
                                                    (row.acc == best[i].acc && row.f1 > best[i].f1)) {
                                                        memmove(&best[i + 1], &best[i],
                                                                (ELEMENTSOF(best) - i - 1) * sizeof(Row));
                                                        best[i] = row;
                                                        break;
                                                }
                                }
        printf("grid (dev only): lexicon learned kb bias floor -> exact F1 generalFP nowhere\n");
        for (size_t i = 0; i < ELEMENTSOF(best); i++)
                printf("  %.2f %.2f %.2f %.2f %.2f -> %.3f %.3f %.3f %.3f\n", best[i].c.lexicon_weight,
                       best[i].c.learned_weight, best[i].c.kb_weight, best[i].c.bias, best[i].c.floor,
                       best[i].acc, best[i].f1, best[i].gfp, best[i].nowhere);
}

int main(int argc, char **argv) {
        const char *data = NULL, *agents_dir = MOAD_SOURCE_DIR "/agents.d",
                   *plugin_dir = MOAD_BUILD_DIR "/plugins";
        const char *show = NULL, *pg_conninfo = NULL, *pg_password_file = NULL, *dump = NULL;
        double min_test = -1, threshold = -1, kb_weight = -1, learned_weight = -1, lexicon_weight = -1,
               bias = -100, floor_ = -1;
        int top_k = -1, no_kb = 0, no_examples = 0, do_grid = 0;
        static const struct option opts[] = {
                {"pg-conninfo", required_argument, NULL, 'G'},
                {"pg-password-file", required_argument, NULL, 'P'},
                {"data", required_argument, NULL, 'd'},
                {"agents-dir", required_argument, NULL, 'a'},
                {"plugin-dir", required_argument, NULL, 'p'},
                {"no-kb", no_argument, NULL, 'n'},
                {"no-examples", no_argument, NULL, 'x'},
                {"threshold", required_argument, NULL, 't'},
                {"top-k", required_argument, NULL, 'k'},
                {"kb-weight", required_argument, NULL, 'w'},
                {"learned-weight", required_argument, NULL, 'l'},
                {"lexicon-weight", required_argument, NULL, 'L'},
                {"bias", required_argument, NULL, 'B'},
                {"floor", required_argument, NULL, 'F'},
                {"show", required_argument, NULL, 's'},
                {"grid", no_argument, NULL, 'g'},
                {"dump", required_argument, NULL, 'D'},
                {"min-test-accuracy", required_argument, NULL, 'm'},
                {},
        };
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        data = optarg;
                        break;
                case 'a':
                        agents_dir = optarg;
                        break;
                case 'p':
                        plugin_dir = optarg;
                        break;
                case 'n':
                        no_kb = 1;
                        break;
                case 'x':
                        no_examples = 1;
                        break;
                case 't':
                        threshold = atof(optarg);
                        break;
                case 'k':
                        top_k = atoi(optarg);
                        break;
                case 'w':
                        kb_weight = atof(optarg);
                        break;
                case 'l':
                        learned_weight = atof(optarg);
                        break;
                case 'L':
                        lexicon_weight = atof(optarg);
                        break;
                case 'B':
                        bias = atof(optarg);
                        break;
                case 'F':
                        floor_ = atof(optarg);
                        break;
                case 's':
                        show = optarg;
                        break;
                case 'g':
                        do_grid = 1;
                        break;
                case 'D':
                        dump = optarg;
                        break;
                case 'm':
                        min_test = atof(optarg);
                        break;
                case 'G':
                        pg_conninfo = optarg;
                        break;
                case 'P':
                        pg_password_file = optarg;
                        break;
                default:
                        return 2;
                }
        if (!data) {
                fprintf(stderr, "usage: %s --data FILE [options]\n", argv[0]);
                return 2;
        }
        log_setup(LOG_LEVEL_WARNING, 0);

        Config *cfg = NULL;
        char *err = NULL;
        int r = config_load(NULL, agents_dir, &cfg, &err);
        if (r < 0) {
                fprintf(stderr, "config: %s\n", err ? err : strerror(-r));
                free(err);
                return 1;
        }
        char state[] = "/tmp/moa-routing-eval-XXXXXX";
        if (!mkdtemp(state)) {
                perror("mkdtemp");
                return 1;
        }
        free(cfg->plugin_dir);
        cfg->plugin_dir = strdup(plugin_dir);
        free(cfg->state_dir);
        cfg->state_dir = strdup(state);
        if (pg_conninfo) {
                /* the PostgreSQL backend, on a database whose agents are empty (seeded here) */
                cfg->knowledge.backend = KNOWLEDGE_POSTGRESQL;
                cfg->knowledge.conninfo = strdup(pg_conninfo);
                cfg->knowledge.password_file = pg_password_file ? strdup(pg_password_file) : NULL;
                if (!cfg->knowledge.conninfo || (pg_password_file && !cfg->knowledge.password_file))
                        return 1;
        }
        for (size_t i = 0; i < cfg->n_agents; i++) {
                if (no_kb)
                        cfg->agents[i].n_knowledge = 0; /* empty KBs */
                if (no_examples)
                        cfg->agents[i].n_examples = 0; /* learned from knowledge only */
        }
        if (threshold >= 0)
                cfg->router.threshold = threshold;
        if (top_k >= 0)
                cfg->router.top_k = (unsigned) top_k;
        if (kb_weight >= 0)
                cfg->router.kb_weight = kb_weight;
        if (learned_weight >= 0)
                cfg->router.learned_weight = learned_weight;
        if (lexicon_weight >= 0)
                cfg->router.lexicon_weight = lexicon_weight;
        if (bias > -100)
                cfg->router.bias = bias;
        if (floor_ >= 0)
                cfg->router.floor = floor_;

        AgentSet *set = NULL;
        r = agents_new(cfg, &set);
        if (r < 0 || agents_count(set) == 0) {
                fprintf(stderr, "no agents: %s\n", strerror(r < 0 ? -r : ENOENT));
                return 1;
        }
        unsigned docs = 0, examples = 0;
        for (size_t i = 0; i < agents_count(set); i++) {
                int d = agent_doc_count(agents_get(set, i));
                docs += d > 0 ? (unsigned) d : 0;
                examples += cfg->agents[i].n_examples;
        }
        const RouterConfig *rc = agents_router_config(set);
        printf("routing-eval: %s: %zu agents, %u knowledge documents, %u examples; threshold %.2f top_k %u "
               "lexicon %.2f learned %.2f kb %.2f bias %.2f fallback %s\n",
               data, agents_count(set), docs, examples, rc->threshold, rc->top_k, rc->lexicon_weight,
               rc->learned_weight, rc->kb_weight, rc->bias, rc->fallback);

        FILE *f = fopen(data, "re");
        if (!f) {
                fprintf(stderr, "%s: %s\n", data, strerror(errno));
                return 1;
        }
        Item *items = NULL;
        size_t n_items = 0;
        char line[MAX_LINE];
        unsigned lineno = 0, bad = 0;
        while (fgets(line, sizeof(line), f)) {
                lineno++;
                line[strcspn(line, "\r\n")] = 0;
                if (!line[0] || line[0] == '#')
                        continue;
                char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
                if (!t1 || !t2) {
                        fprintf(stderr, "%s:%u: expected three tab-separated columns\n", data, lineno);
                        bad++;
                        continue;
                }
                *t1 = *t2 = 0;
                const char *split = line, *labels = t1 + 1, *query = t2 + 1;
                int si = streq(split, "dev") ? 0 : streq(split, "test") ? 1 : -1;
                if (si < 0) {
                        fprintf(stderr, "%s:%u: split must be dev or test\n", data, lineno);
                        bad++;
                        continue;
                }
                Item *v = realloc(items, (n_items + 1) * sizeof(Item));
                if (!v)
                        return 1;
                items = v;
                Item *it = &items[n_items++];
                *it = (Item){.split = si, .line = lineno, .query = strdup(query), .labels = strdup(labels)};
                char copy[256];
                snprintf(copy, sizeof(copy), "%s", labels);
                for (char *tok = strtok(copy, ","); tok && it->ne < MAX_LABELS; tok = strtok(NULL, ",")) {
                        snprintf(it->expected[it->ne], sizeof(it->expected[0]), "%s", tok);
                        if (!agents_find(set, tok)) {
                                fprintf(stderr, "%s:%u: unknown agent %s\n", data, lineno, tok);
                                bad++;
                        }
                        it->ne++;
                }
                r = agents_route(set, query, NULL, 0, 0, &it->rr);
                if (r < 0) {
                        fprintf(stderr, "%s:%u: route failed: %s\n", data, lineno, strerror(-r));
                        return 1;
                }
        }
        fclose(f);

        if (dump && dump_signals(dump, items, n_items) < 0)
                return 1;
        Stats st[2];
        evaluate(rc, items, n_items, set, show, st);
        report("dev", &st[0], set);
        report("test", &st[1], set);
        if (do_grid)
                grid(rc, items, n_items, set);

        for (size_t k = 0; k < n_items; k++) {
                route_result_done(&items[k].rr);
                free(items[k].query);
                free(items[k].labels);
        }
        free(items);
        agents_free(set);
        config_free(cfg);
        nftw(state, rm_cb, 16, FTW_DEPTH | FTW_PHYS);

        if (bad) {
                fprintf(stderr, "%u malformed line(s)\n", bad);
                return 1;
        }
        if (st[1].n == 0 || st[0].n == 0) {
                fprintf(stderr, "both splits must be non-empty\n");
                return 1;
        }
        double acc = ratio(st[1].exact, st[1].n);
        if (min_test >= 0 && acc < min_test) {
                fprintf(stderr, "held-out exact-set accuracy %.3f is below the floor %.3f\n", acc, min_test);
                return 1;
        }
        return 0;
}
