/* route-cost.c — what routing costs at scale, in process (no HTTP): the
 * shipped agents plus generic experts up to --agents, every knowledge base
 * filled to --chunks chunks of real English text (windows of the files
 * given with --corpus: licence texts, the Debian Policy Manual), then
 *   - the time agents_new() takes (term statistics + training the router),
 *   - the time agents_renew() takes for a reload that changed nothing, and
 *     for one that added an example (training again),
 *   - agents_route() per query over the queries of --queries (a routing TSV),
 *     repeated --rounds times: median, p90, p99, max.
 * A benchmark, not a test: run it by hand (docs/performance.md).
 *
 * usage: route-cost --queries FILE --corpus FILE [--corpus FILE...]
 *        [--agents 8] [--chunks 10000] [--rounds 5] [--state DIR] */
#include <getopt.h>
#include <sys/stat.h>

#include "agents.h"
#include "bench-corpus.h"
#include "build-config.h"
#include "config.h"
#include "file-read.h"
#include "kb.h"
#include "log.h"

#define MAX_CORPUS 16
#define MAX_QUERIES 4096

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
        const char *queries = NULL, *corpus[MAX_CORPUS], *state = "/tmp/moa-route-cost";
        uint64_t rng = 0x2545F4914F6CDD1DULL;
        unsigned n_corpus = 0, n_agents = 8, chunks = 10000, rounds = 5;
        static const struct option opts[] = {
                {"queries", required_argument, NULL, 'q'},
                {"corpus", required_argument, NULL, 'c'},
                {"agents", required_argument, NULL, 'a'},
                {"chunks", required_argument, NULL, 'n'},
                {"rounds", required_argument, NULL, 'r'},
                {"state", required_argument, NULL, 's'},
                {},
        };
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'q':
                        queries = optarg;
                        break;
                case 'c':
                        if (n_corpus < MAX_CORPUS)
                                corpus[n_corpus++] = optarg;
                        break;
                case 'a':
                        n_agents = (unsigned) atoi(optarg);
                        break;
                case 'n':
                        chunks = (unsigned) atoi(optarg);
                        break;
                case 'r':
                        rounds = (unsigned) atoi(optarg);
                        break;
                case 's':
                        state = optarg;
                        break;
                default:
                        return 2;
                }
        if (!queries || n_corpus == 0 || n_agents < 5) {
                fprintf(stderr, "usage: %s --queries FILE --corpus FILE... [--agents N>=5] [--chunks N]\n",
                        argv[0]);
                return 2;
        }
        /* MOA_BENCH_DEBUG=1: the daemon's own timing lines (term statistics, training) */
        log_setup(getenv("MOA_BENCH_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING, 0);

        /* the corpus: all files, one text */
        char *text = NULL;
        size_t len = 0;
        if (bench_corpus_read(corpus, n_corpus, &text, &len) < 0)
                return 1;

        Config *cfg = NULL;
        char *err = NULL;
        if (config_load(NULL, MOAD_SOURCE_DIR "/agents.d", &cfg, &err) < 0) {
                fprintf(stderr, "config: %s\n", err);
                return 1;
        }
        free(cfg->plugin_dir);
        cfg->plugin_dir = strdup(MOAD_BUILD_DIR "/plugins");
        free(cfg->state_dir);
        cfg->state_dir = strdup(state);
        /* generic experts up to n_agents, with a few examples each */
        size_t shipped = cfg->n_agents;
        cfg->agents = realloc(cfg->agents, n_agents * sizeof(AgentConfig));
        for (size_t i = shipped; i < n_agents; i++) {
                AgentConfig *a = &cfg->agents[i];
                *a = (AgentConfig){.enabled = 1, .weight = 1.0, .provider = strdup("builtin")};
                if (asprintf(&a->name, "expert%zu", i) < 0)
                        return 1;
                a->examples = calloc(2, sizeof(char *));
                a->examples[0] = strdup("What does the packaging policy say about maintainer scripts?");
                a->examples[1] = strdup("Which licence applies to the documentation?");
                a->n_examples = 2;
        }
        cfg->n_agents = n_agents;

        char dir[1024];
        snprintf(dir, sizeof(dir), "%s/kb", state);
        mkdir(state, 0755);
        mkdir(dir, 0755);
        uint64_t t0 = now_usec();
        for (size_t i = 0; i < n_agents; i++) {
                char db[1200];
                snprintf(db, sizeof(db), "%s/%s.db", dir, cfg->agents[i].name);
                if (bench_kb_fill(db, text, len, chunks, &rng) < 0) {
                        fprintf(stderr, "cannot fill %s\n", db);
                        return 1;
                }
        }
        printf("knowledge: %zu agents x %u chunks ready in %.1f s (%s)\n", (size_t) n_agents, chunks,
               (double) (now_usec() - t0) / 1e6, state);

        AgentSet *set = NULL;
        t0 = now_usec();
        if (agents_new(cfg, &set) < 0 || agents_count(set) != n_agents) {
                fprintf(stderr, "agents: %zu of %u loaded\n", agents_count(set), n_agents);
                return 1;
        }
        printf("agents_new (term statistics + training): %.1f ms\n", (double) (now_usec() - t0) / 1000.0);

        /* a reload that changed nothing, then one with an example more
         * (training again, the term statistics kept) */
        for (int changed = 0; changed < 2; changed++) {
                AgentSet *next = NULL;
                if (changed) {
                        AgentConfig *a = &cfg->agents[n_agents - 1];
                        a->examples = realloc(a->examples, (a->n_examples + 1) * sizeof(char *));
                        a->examples[a->n_examples++] = strdup("How are conffiles handled on upgrade?");
                }
                t0 = now_usec();
                if (agents_renew(cfg, set, &next) < 0 || agents_count(next) != n_agents) {
                        fprintf(stderr, "reload: %zu of %u loaded\n", agents_count(next), n_agents);
                        return 1;
                }
                printf("agents_renew, %s: %.1f ms\n",
                       changed ? "one example added (training)" : "nothing changed",
                       (double) (now_usec() - t0) / 1000.0);
                agents_free(set);
                set = next;
        }

        FILE *f = fopen(queries, "re");
        if (!f)
                return 1;
        static char *q[MAX_QUERIES];
        size_t nq = 0;
        char line[4096];
        while (nq < MAX_QUERIES && fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\r\n")] = 0;
                char *t = strrchr(line, '\t');
                if (line[0] == '#' || !t)
                        continue;
                q[nq++] = strdup(t + 1);
        }
        fclose(f);

        uint64_t *us = calloc(nq * rounds, sizeof(uint64_t));
        size_t k = 0;
        for (unsigned rd = 0; rd < rounds; rd++)
                for (size_t i = 0; i < nq; i++) {
                        RouteResult rr = ROUTE_RESULT_INIT;
                        uint64_t a = now_usec();
                        if (agents_route(set, q[i], NULL, 0, 0, &rr) < 0)
                                return 1;
                        us[k++] = now_usec() - a;
                        route_result_done(&rr);
                }
        qsort(us, k, sizeof(uint64_t), cmp_u64);
        printf("agents_route: %zu routes of %zu queries, %zu agents: median %.3f ms, p90 %.3f ms, p99 %.3f "
               "ms, "
               "max %.3f ms\n",
               k, nq, (size_t) n_agents, us[k / 2] / 1000.0, us[k * 9 / 10] / 1000.0,
               us[k * 99 / 100] / 1000.0, us[k - 1] / 1000.0);
        for (size_t i = 0; i < nq; i++)
                free(q[i]);
        free(us);
        free(text);
        agents_free(set);
        config_free(cfg);
        return 0;
}
