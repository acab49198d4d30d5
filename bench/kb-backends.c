/* kb-backends.c — the two knowledge backends side by side, in process (no
 * HTTP): one knowledge base of --chunks chunks of real English text
 * (bench-corpus.h: the same documents on both) in SQLite and, with
 * --conninfo, in PostgreSQL; then every question of --queries (a
 * retrieval TSV: split, answer phrase, question) through kb_search() with
 * 5 hits, --rounds times:
 *   - time per search: median, p90, p99, max (PostgreSQL over its Unix
 *     socket, so a round trip is in it);
 *   - how often the answer phrase is in a hit (the corpus holds windows of
 *     the texts, so not every answer is there: the same questions, the same
 *     documents, the two backends' rankings compared);
 *   - agreement of the two rankings: the share of questions whose first
 *     hit is the same chunk, and the mean overlap of the two top-5 sets.
 * A benchmark, not a test: bench/kb-backends.py runs it against a private
 * PostgreSQL server (docs/performance.md, "Knowledge backends").
 *
 * usage: kb-backends --queries FILE --corpus FILE [--corpus FILE...]
 *        [--chunks 10000] [--rounds 3] [--state DIR] [--conninfo STR
 *        [--password-file FILE] [--pg-exact]]
 * --pg-exact: also search PostgreSQL without pruning (every chunk holding
 * a term scored, knowledge.search_prune_chunks 0), and compare. */
#include <getopt.h>
#include <limits.h>
#include <sys/stat.h>

#include "bench-corpus.h"
#include "kb-pg.h"
#include "kb-stats.h"
#include "kb-vocab.h"
#include "kb.h"
#include "log.h"
#include "util.h"

#define MAX_CORPUS 16
#define MAX_QUERIES 1024
#define HITS 5

typedef struct Question {
        char *answer;
        char *text;
} Question;

typedef struct Run {
        const char *name;
        uint64_t *us;
        size_t n_us;
        unsigned found; /* questions with the answer phrase in a hit */
        uint8_t found_q[MAX_QUERIES];
        char *hit_q[MAX_QUERIES]; /* the first hit holding the answer */
        char *first[MAX_QUERIES];
        char *top[MAX_QUERIES][HITS];
} Run;

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* Whitespace runs as one space, ASCII lower case, into @out (@size). */
static void collapse(const char *s, char *out, size_t size) {
        size_t o = 0;
        int space = 0;
        for (; *s && o + 1 < size; s++) {
                if (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') {
                        space = o > 0;
                        continue;
                }
                if (space && o + 2 < size)
                        out[o++] = ' ';
                space = 0;
                out[o++] = (char) (*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
        }
        out[o] = 0;
}

static size_t load_questions(const char *path, Question *q) {
        FILE *f = fopen(path, "re");
        char line[4096];
        size_t n = 0;
        if (!f)
                return 0;
        while (n < MAX_QUERIES && fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\r\n")] = 0;
                char *a = strchr(line, '\t'), *t = a ? strchr(a + 1, '\t') : NULL;
                if (line[0] == '#' || !t)
                        continue;
                *t = 0;
                q[n].answer = strdup(a + 1);
                q[n].text = strdup(t + 1);
                n++;
        }
        fclose(f);
        return n;
}

static int run_searches(const char *locator, const Question *q, size_t nq, unsigned rounds, Run *run) {
        Kb *kb = NULL;
        int r = kb_open(locator, 1, &kb);
        if (r < 0)
                return r;
        /* the term statistics, as an agent's thread publishes them: what
         * a pruned PostgreSQL search starts from (kb-pg.c) */
        KbStats *st = kb_stats(kb);
        KbVocab *v = NULL;
        uint64_t gen = kb_stats_generation(st);
        if (kb_vocab_load(kb, &v) >= 0)
                kb_stats_set_vocab(st, gen, v);
        kb_vocab_free(v);
        run->us = calloc(nq * rounds, sizeof(uint64_t));
        if (!run->us) {
                kb_close(kb);
                return -ENOMEM;
        }
        static char hay[1 << 14], needle[1024];
        for (unsigned rd = 0; rd < rounds; rd++)
                for (size_t i = 0; i < nq; i++) {
                        KbHit *hits = NULL;
                        size_t n = 0;
                        uint64_t t0 = now_usec();
                        r = kb_search(kb, q[i].text, HITS, &hits, &n);
                        run->us[run->n_us++] = now_usec() - t0;
                        if (r < 0) {
                                kb_close(kb);
                                return r;
                        }
                        if (rd == 0) {
                                int found = 0;
                                collapse(q[i].answer, needle, sizeof(needle));
                                for (size_t h = 0; h < n; h++) {
                                        collapse(hits[h].text, hay, sizeof(hay));
                                        if (!found && strstr(hay, needle) &&
                                            asprintf(&run->hit_q[i], "%s#%u (rank %zu)", hits[h].title,
                                                     hits[h].chunk, h + 1) < 0)
                                                run->hit_q[i] = NULL;
                                        found |= strstr(hay, needle) != NULL;
                                        if (asprintf(&run->top[i][h], "%s#%u", hits[h].title,
                                                     hits[h].chunk) < 0)
                                                run->top[i][h] = NULL;
                                }
                                run->found += found;
                                run->found_q[i] = (uint8_t) found;
                                run->first[i] = n > 0 && run->top[i][0] ? strdup(run->top[i][0]) : NULL;
                        }
                        kb_hits_free(hits, n);
                }
        kb_close(kb);
        return 0;
}

static void report(const Run *run, size_t nq) {
        uint64_t *us = run->us;
        size_t k = run->n_us;
        qsort(us, k, sizeof(uint64_t), cmp_u64);
        printf("%-10s  kb_search x %zu: median %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms; "
               "answer in top %d: %u of %zu\n",
               run->name, k, us[k / 2] / 1000.0, us[k * 9 / 10] / 1000.0, us[k * 99 / 100] / 1000.0,
               us[k - 1] / 1000.0, HITS, run->found, nq);
}

static void agreement(const Run *a, const Run *b, size_t nq) {
        printf("%s vs %s: ", a->name, b->name);
        unsigned same_first = 0;
        double overlap = 0;
        for (size_t i = 0; i < nq; i++) {
                same_first += a->first[i] && b->first[i] && streq(a->first[i], b->first[i]);
                unsigned common = 0;
                for (int x = 0; x < HITS; x++)
                        for (int y = 0; y < HITS && a->top[i][x]; y++)
                                common += b->top[i][y] && streq(a->top[i][x], b->top[i][y]);
                overlap += common / (double) HITS;
        }
        printf("same first hit %u of %zu (%.2f), mean top-%d overlap %.2f\n", same_first, nq,
               nq ? same_first / (double) nq : 0, HITS, nq ? overlap / (double) nq : 0);
}

/* The questions @a answers and @b does not (pruning's losses, when @a
 * searches exactly and @b pruned), with where @a found the answer. */
static void losses(const Run *a, const Run *b, const Question *q, size_t nq) {
        unsigned lost = 0, won = 0;
        for (size_t i = 0; i < nq; i++) {
                lost += a->found_q[i] && !b->found_q[i];
                won += !a->found_q[i] && b->found_q[i];
        }
        printf("%s finds %u answers %s misses, and misses %u it finds\n", a->name, lost, b->name, won);
        for (size_t i = 0; i < nq; i++)
                if (a->found_q[i] != b->found_q[i])
                        printf("  %s only: \"%s\" (answer \"%.60s\", at %s)\n",
                               a->found_q[i] ? a->name : b->name, q[i].text, q[i].answer,
                               (a->found_q[i] ? a->hit_q[i] : b->hit_q[i]) ?: "?");
}

static void run_free(Run *run, size_t nq) {
        free(run->us);
        for (size_t i = 0; i < nq; i++) {
                free(run->hit_q[i]);
                free(run->first[i]);
                for (int h = 0; h < HITS; h++)
                        free(run->top[i][h]);
        }
}

int main(int argc, char **argv) {
        const char *queries = NULL, *corpus[MAX_CORPUS], *state = "/tmp/moa-kb-backends", *conninfo = NULL,
                   *password_file = NULL;
        unsigned n_corpus = 0, chunks = 10000, rounds = 3;
        int pg_exact = 0;
        static const struct option opts[] = {
                {"queries", required_argument, NULL, 'q'},
                {"corpus", required_argument, NULL, 'c'},
                {"chunks", required_argument, NULL, 'n'},
                {"rounds", required_argument, NULL, 'r'},
                {"state", required_argument, NULL, 's'},
                {"conninfo", required_argument, NULL, 'p'},
                {"password-file", required_argument, NULL, 'w'},
                {"pg-exact", no_argument, NULL, 'x'},
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
                case 'n':
                        chunks = (unsigned) atoi(optarg);
                        break;
                case 'r':
                        rounds = (unsigned) MAX(atoi(optarg), 1);
                        break;
                case 's':
                        state = optarg;
                        break;
                case 'p':
                        conninfo = optarg;
                        break;
                case 'w':
                        password_file = optarg;
                        break;
                case 'x':
                        pg_exact = 1;
                        break;
                default:
                        return 2;
                }
        if (!queries || n_corpus == 0 || chunks == 0) {
                fprintf(stderr,
                        "usage: %s --queries FILE --corpus FILE... [--chunks N] [--rounds N] [--state DIR] "
                        "[--conninfo STR [--password-file FILE]]\n",
                        argv[0]);
                return 2;
        }
        log_setup(LOG_LEVEL_WARNING, 0);

        char *text = NULL;
        size_t len = 0;
        if (bench_corpus_read(corpus, n_corpus, &text, &len) < 0)
                return 1;
        static Question q[MAX_QUERIES];
        size_t nq = load_questions(queries, q);
        if (nq == 0) {
                fprintf(stderr, "no questions in %s\n", queries);
                return 1;
        }

        mkdir(state, 0755);
        char db[1024];
        snprintf(db, sizeof(db), "%s/bench-%u.db", state, chunks);
        static Run runs[3];
        size_t n_runs = 0;
        const char *locators[3] = {db, NULL, NULL};
        static const char *const names[3] = {"sqlite", "postgresql", "pg-exact"};
        _cleanup_free_ char *pg = NULL;
        if (conninfo) {
                KbPgConfig pc = {.conninfo = conninfo, .password_file = password_file};
                pg = kb_pg_locator("bench", "english");
                if (!pg || kb_pg_configure(&pc) < 0)
                        return 1;
                locators[1] = pg;
                locators[2] = pg_exact ? pg : NULL;
        }
        for (int b = 0; b < 3; b++) {
                if (!locators[b])
                        continue;
                if (b == 2) { /* the same base, every search exact */
                        KbPgConfig pc = {.conninfo = conninfo,
                                         .password_file = password_file,
                                         .prune_chunks = UINT_MAX};
                        if (kb_pg_configure(&pc) < 0)
                                return 1;
                }
                uint64_t rng = 0x2545F4914F6CDD1DULL, t0 = now_usec();
                int r = bench_kb_fill(locators[b], text, len, chunks, &rng);
                if (r < 0) {
                        fprintf(stderr, "cannot fill %s: %s\n", locators[b], strerror(-r));
                        return 1;
                }
                printf("%-10s  %u chunks ready in %.1f s\n", names[b], chunks,
                       (double) (now_usec() - t0) / 1e6);
                runs[n_runs].name = names[b];
                r = run_searches(locators[b], q, nq, rounds, &runs[n_runs]);
                if (r < 0) {
                        fprintf(stderr, "search failed on %s: %s\n", locators[b], strerror(-r));
                        return 1;
                }
                report(&runs[n_runs], nq);
                n_runs++;
        }
        for (size_t i = 1; i < n_runs; i++)
                agreement(&runs[0], &runs[i], nq);
        if (n_runs == 3) {
                agreement(&runs[2], &runs[1], nq);
                losses(&runs[2], &runs[1], q, nq);
        }
        for (size_t i = 0; i < n_runs; i++)
                run_free(&runs[i], nq);
        for (size_t i = 0; i < nq; i++) {
                free(q[i].answer);
                free(q[i].text);
        }
        free(text);
        kb_pg_configure(NULL);
        return 0;
}
