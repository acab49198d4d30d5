/* routing-eval.c — measure routing quality on the labelled set
 * tests/data/routing-eval.tsv (split <TAB> expected agents <TAB> query).
 * Loads the shipped agents (agents.d via config_load), seeds their
 * knowledge bases in a temporary state directory, routes every query with
 * agents_route() and reports, per split: exact-set accuracy, micro
 * precision/recall/F1 over the specialist labels, and the false-positive
 * rate on queries whose expected answer is "general" (any specialist
 * selected). Tune only on the dev split; the test split is held out.
 *
 * usage: routing-eval --data FILE [--agents-dir DIR] [--plugin-dir DIR]
 *        [--no-kb] [--threshold X] [--top-k N] [--kb-weight X]
 *        [--show dev|test|all] [--min-test-accuracy X] */
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
        printf("%-5s n=%3u  exact-set accuracy %.3f  micro P %.3f R %.3f F1 %.3f  general FP %.3f (%u/%u)\n",
               split, s->n, ratio(s->exact, s->n), p, r, f1, ratio(s->general_fp, s->general_n),
               s->general_fp, s->general_n);
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

int main(int argc, char **argv) {
        const char *data = NULL, *agents_dir = MOAD_SOURCE_DIR "/agents.d",
                   *plugin_dir = MOAD_BUILD_DIR "/plugins";
        const char *show = NULL;
        double min_test = -1, threshold = -1, kb_weight = -1;
        int top_k = -1, no_kb = 0;
        static const struct option opts[] = {
                {"data", required_argument, NULL, 'd'},
                {"agents-dir", required_argument, NULL, 'a'},
                {"plugin-dir", required_argument, NULL, 'p'},
                {"no-kb", no_argument, NULL, 'n'},
                {"threshold", required_argument, NULL, 't'},
                {"top-k", required_argument, NULL, 'k'},
                {"kb-weight", required_argument, NULL, 'w'},
                {"show", required_argument, NULL, 's'},
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
                case 't':
                        threshold = atof(optarg);
                        break;
                case 'k':
                        top_k = atoi(optarg);
                        break;
                case 'w':
                        kb_weight = atof(optarg);
                        break;
                case 's':
                        show = optarg;
                        break;
                case 'm':
                        min_test = atof(optarg);
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
        if (no_kb)
                for (size_t i = 0; i < cfg->n_agents; i++)
                        cfg->agents[i].n_knowledge = 0; /* empty KBs: plugin scores only */
        if (threshold >= 0)
                cfg->router.threshold = threshold;
        if (top_k >= 0)
                cfg->router.top_k = (unsigned) top_k;
        if (kb_weight >= 0)
                cfg->router.kb_weight = kb_weight;

        AgentSet *set = NULL;
        r = agents_new(cfg, &set);
        if (r < 0 || agents_count(set) == 0) {
                fprintf(stderr, "no agents: %s\n", strerror(r < 0 ? -r : ENOENT));
                return 1;
        }
        unsigned docs = 0;
        for (size_t i = 0; i < agents_count(set); i++) {
                int d = agent_doc_count(agents_get(set, i));
                docs += d > 0 ? (unsigned) d : 0;
        }
        const RouterConfig *rc = agents_router_config(set);
        printf("routing-eval: %zu agents, %u knowledge documents%s; threshold %.2f top_k %u kb_weight %.2f "
               "fallback %s\n",
               agents_count(set), docs, docs ? "" : " (plugin scores only)", rc->threshold, rc->top_k,
               rc->kb_weight, rc->fallback);

        FILE *f = fopen(data, "re");
        if (!f) {
                fprintf(stderr, "%s: %s\n", data, strerror(errno));
                return 1;
        }
        Stats st[2] = {};
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
                char expected[MAX_LABELS][32], got[MAX_LABELS][32], labels_copy[256];
                unsigned ne = 0, ng = 0;
                snprintf(labels_copy, sizeof(labels_copy), "%s", labels);
                for (char *tok = strtok((char *) labels, ","); tok && ne < MAX_LABELS;
                     tok = strtok(NULL, ",")) {
                        snprintf(expected[ne], sizeof(expected[ne]), "%s", tok);
                        if (!agents_find(set, expected[ne])) {
                                fprintf(stderr, "%s:%u: unknown agent %s\n", data, lineno, tok);
                                bad++;
                        }
                        ne++;
                }

                RouteResult rr = ROUTE_RESULT_INIT;
                r = agents_route(set, query, NULL, 0, &rr);
                if (r < 0) {
                        fprintf(stderr, "%s:%u: route failed: %s\n", data, lineno, strerror(-r));
                        return 1;
                }
                for (size_t i = 0; i < rr.n && ng < MAX_LABELS; i++)
                        if (rr.choices[i].selected)
                                snprintf(got[ng++], sizeof(got[0]), "%s", rr.choices[i].name);

                Stats *s = &st[si];
                s->n++;
                int exact = ne == ng;
                for (unsigned i = 0; i < ne && exact; i++)
                        exact = in_list(expected[i], got, ng);
                s->exact += exact;
                int expect_general = ne == 1 && streq(expected[0], "general");
                if (expect_general) {
                        s->general_n++;
                        int specialist = 0;
                        for (unsigned i = 0; i < ng; i++)
                                specialist |= !streq(got[i], "general");
                        s->general_fp += specialist;
                }
                for (size_t a = 0; a < agents_count(set) && a < MAX_AGENTS; a++) {
                        const char *name = agent_name(agents_get(set, a));
                        if (streq(name, "general"))
                                continue;
                        int e = in_list(name, expected, ne), g = in_list(name, got, ng);
                        s->tp += e && g;
                        s->fp += !e && g;
                        s->fn += e && !g;
                        s->agent_tp[a] += e && g;
                        s->agent_fp[a] += !e && g;
                        s->agent_fn[a] += e && !g;
                }
                if (!exact && show && (streq(show, "all") || streq(show, split))) {
                        printf("MISS %s:%u [%s] expected %s got", split, lineno, query, labels_copy);
                        for (unsigned i = 0; i < ng; i++)
                                printf("%s%s", i ? "," : " ", got[i]);
                        printf("  |");
                        for (size_t i = 0; i < rr.n; i++)
                                if (rr.choices[i].score > 0.1 || rr.choices[i].plugin_score > 0.1)
                                        printf(" %s=%.2f(p%.2f,kb%.2f: %s)", rr.choices[i].name,
                                               rr.choices[i].score, rr.choices[i].plugin_score,
                                               rr.choices[i].kb_evidence, rr.choices[i].reason);
                        printf("\n");
                }
                route_result_done(&rr);
        }
        fclose(f);

        report("dev", &st[0], set);
        report("test", &st[1], set);
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
