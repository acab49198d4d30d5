/* retrieval-eval.c — measure knowledge-base retrieval on paraphrased
 * questions: tests/data/retrieval/policy-questions.tsv
 * (split <TAB> answer phrase <TAB> question, '#' comments).
 * Ingests the Debian Policy Manual (policy.txt.gz, decompressed with
 * gzip -dc) as one document titled by its path, plus distractor documents
 * from agents.d/knowledge/, into a temporary knowledge base, runs every
 * question through kb_search() and reports recall@K per split: a question
 * counts as found when its answer phrase, whitespace-collapsed, occurs in
 * the whitespace-collapsed text of one of the top K hits. Also reports the
 * mean time of one kb_search() on this index.
 *
 * Tune only on the dev split; misses can be listed for dev only, so the
 * test split stays held out.
 *
 * The ranking parameters (kb-rank.h) can be overridden for tuning; with
 * --dev-only the test split is neither searched nor reported.
 *
 * usage: retrieval-eval --data FILE [--manual PATH] [--knowledge-dir DIR]
 *        [--k N] [--show-dev-misses] [--dev-only] [--min-test-recall X]
 *        [--w-body X] [--w-heading X] [--candidates N] [--coverage X]
 *        [--proximity X] [--window N] [--texts] */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "build-config.h"
#include "kb-pg.h"
#include "kb-rank.h"
#include "kb.h"
#include "log.h"
#include "util.h"

#define MAX_LINE 4096
#define DEFAULT_MANUAL "/usr/share/doc/debian-policy/policy.txt.gz"
#define TIMING_ROUNDS 5
static unsigned rounds = TIMING_ROUNDS;

/* Distractors: the shipped notes closest to the manual's subjects
 * (licences, copyright, packaging-like tooling). */
static const char *const distractors[] = {
        "legal/open-source-licences.md", "legal/intellectual-property.md",
        "legal/contract-basics.md",      "code/systemd-units.md",
        "code/git-workflows.md",         "code/c-memory-safety-and-sanitizers.md",
};

typedef struct Stats {
        unsigned n, found;
} Stats;

static double ratio(unsigned a, unsigned b) {
        return b ? (double) a / (double) b : 0.0;
}

/* Reads all of @fd into a malloc'ed buffer. Returns 0 or -errno. */
static int read_all(int fd, char **ret, size_t *ret_len) {
        size_t len = 0, cap = 1 << 20;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (len == cap) {
                        char *nb = realloc(buf, cap * 2);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        cap *= 2;
                }
                ssize_t k = read(fd, buf + len, cap - len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                len += (size_t) k;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/* Decompresses @path with "gzip -dc" (no shell involved). Returns 0 or -errno. */
static int read_gzip(const char *path, char **ret, size_t *ret_len) {
        int p[2];
        if (pipe(p) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(p[0]);
                close(p[1]);
                return r;
        }
        if (pid == 0) {
                dup2(p[1], STDOUT_FILENO);
                close(p[0]);
                close(p[1]);
                execlp("gzip", "gzip", "-dc", "--", path, (char *) NULL);
                _exit(127);
        }
        close(p[1]);
        int r = read_all(p[0], ret, ret_len);
        close(p[0]);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (r >= 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
                free(*ret);
                *ret = NULL;
                r = -EIO;
        }
        return r;
}

static int read_file(const char *path, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return read_all(fd, ret, ret_len);
}

/* Collapses every run of whitespace in @s to one space and trims it, in place. */
static char *collapse_ws(char *s) {
        char *o = s;
        int space = 1;
        for (const char *p = s; *p; p++) {
                if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v') {
                        if (!space)
                                *o++ = ' ';
                        space = 1;
                } else {
                        *o++ = *p;
                        space = 0;
                }
        }
        if (o > s && o[-1] == ' ')
                o--;
        *o = 0;
        return s;
}

/* CPU time of this process: steadier than wall time on a busy machine. */
static uint64_t cpu_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static int hit_has(const KbHit *h, const char *phrase) {
        _cleanup_free_ char *t = strdup(h->text);
        return t && strstr(collapse_ws(t), phrase) != NULL;
}

static int rm_dir(const char *dir, const char *db) {
        char p[PATH_MAX];
        static const char *const sfx[] = {"", "-wal", "-shm"};
        for (size_t i = 0; i < ELEMENTSOF(sfx); i++) {
                snprintf(p, sizeof p, "%s%s", db, sfx[i]);
                (void) unlink(p);
        }
        return rmdir(dir);
}

int main(int argc, char **argv) {
        const char *data = NULL, *manual = DEFAULT_MANUAL, *kdir = MOAD_SOURCE_DIR "/agents.d/knowledge";
        double min_test = -1;
        unsigned k = 5;
        int show = 0, dev_only = 0, texts = 0;
        KbRankParams *rp = &kb_rank_params;
        static const struct option opts[] = {
                {"data", required_argument, NULL, 'd'},
                {"manual", required_argument, NULL, 'm'},
                {"knowledge-dir", required_argument, NULL, 'K'},
                {"k", required_argument, NULL, 'k'},
                {"show-dev-misses", no_argument, NULL, 's'},
                {"min-test-recall", required_argument, NULL, 't'},
                {"rounds", required_argument, NULL, 'R'},
                {"dev-only", no_argument, NULL, 'D'},
                {"texts", no_argument, NULL, 'T'},
                {"w-body", required_argument, NULL, 'b'},
                {"w-heading", required_argument, NULL, 'h'},
                {"candidates", required_argument, NULL, 'c'},
                {"coverage", required_argument, NULL, 'C'},
                {"proximity", required_argument, NULL, 'P'},
                {"window", required_argument, NULL, 'W'},
                {"pg-conninfo", required_argument, NULL, 'G'},
                {"pg-password-file", required_argument, NULL, 'g'},
                {},
        };
        const char *pg_conninfo = NULL, *pg_password_file = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'G':
                        pg_conninfo = optarg;
                        break;
                case 'g':
                        pg_password_file = optarg;
                        break;
                case 'd':
                        data = optarg;
                        break;
                case 'm':
                        manual = optarg;
                        break;
                case 'K':
                        kdir = optarg;
                        break;
                case 'k':
                        k = (unsigned) atoi(optarg);
                        break;
                case 's':
                        show = 1;
                        break;
                case 't':
                        min_test = atof(optarg);
                        break;
                case 'R':
                        rounds = (unsigned) atoi(optarg);
                        break;
                case 'D':
                        dev_only = 1;
                        break;
                case 'T':
                        texts = 1;
                        break;
                case 'b':
                        rp->w_body = atof(optarg);
                        break;
                case 'h':
                        rp->w_heading = atof(optarg);
                        break;
                case 'c':
                        rp->candidates = (unsigned) atoi(optarg);
                        break;
                case 'C':
                        rp->coverage = atof(optarg);
                        break;
                case 'P':
                        rp->proximity = atof(optarg);
                        break;
                case 'W':
                        rp->window = (unsigned) atoi(optarg);
                        break;
                default:
                        return 2;
                }
        if (!data || k == 0 || k > 100) {
                fprintf(stderr,
                        "usage: %s --data FILE [--manual PATH] [--knowledge-dir DIR] [--k N] "
                        "[--show-dev-misses] [--min-test-recall X]\n",
                        argv[0]);
                return 2;
        }
        log_setup(LOG_LEVEL_WARNING, 0);

        /* No silent skip: CI installs the manual (package debian-policy). */
        if (access(manual, R_OK) < 0) {
                fprintf(stderr,
                        "retrieval-eval: FAIL: the Debian Policy Manual is not readable at %s (%s); install "
                        "the 'debian-policy' package (.ci/run does) or pass --manual\n",
                        manual, strerror(errno));
                return 1;
        }
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        size_t ml = strlen(manual);
        int r = ml > 3 && streq(manual + ml - 3, ".gz") ? read_gzip(manual, &text, &len)
                                                        : read_file(manual, &text, &len);
        if (r < 0 || len == 0) {
                fprintf(stderr, "retrieval-eval: FAIL: cannot read %s: %s\n", manual,
                        r < 0 ? strerror(-r) : "empty");
                return 1;
        }

        _cleanup_free_ char *flat = strndup(text, len);
        if (!flat) {
                fprintf(stderr, "out of memory\n");
                return 1;
        }
        collapse_ws(flat);

        char dir[] = "/tmp/moa-retrieval-eval-XXXXXX", db[PATH_MAX];
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 1;
        }
        snprintf(db, sizeof db, "%s/kb.db", dir);
        if (pg_conninfo) {
                /* the PostgreSQL backend: an agent of its own, removed at the end */
                KbPgConfig pc = {.conninfo = pg_conninfo, .password_file = pg_password_file};
                if (kb_pg_configure(&pc) < 0)
                        return 1;
                snprintf(db, sizeof db, KB_PG_PREFIX "reval-%ld:english", (long) getpid());
        }
        Kb *kb = NULL;
        r = kb_open(db, 0, &kb);
        if (r < 0) {
                fprintf(stderr, "kb_open: %s\n", strerror(-r));
                return 1;
        }
        uint64_t t0 = now_usec();
        int manual_chunks = kb_ingest(kb, manual, manual, text, len, NULL);
        if (manual_chunks < 0) {
                fprintf(stderr, "ingest %s: %s\n", manual, strerror(-manual_chunks));
                return 1;
        }
        uint64_t ingest_us = now_usec() - t0;
        unsigned other_chunks = 0;
        for (size_t i = 0; i < ELEMENTSOF(distractors); i++) {
                char p[PATH_MAX];
                _cleanup_free_ char *t = NULL;
                size_t tl = 0;
                snprintf(p, sizeof p, "%s/%s", kdir, distractors[i]);
                r = read_file(p, &t, &tl);
                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", p, strerror(-r));
                        return 1;
                }
                r = kb_ingest(kb, strrchr(distractors[i], '/') + 1, p, t, tl, NULL);
                if (r < 0) {
                        fprintf(stderr, "ingest %s: %s\n", p, strerror(-r));
                        return 1;
                }
                other_chunks += (unsigned) r;
        }
        printf("retrieval-eval: %s: %zu bytes, %d chunks (ingest %.0f ms); %zu distractors, %u chunks; "
               "recall@%u\n",
               manual, len, manual_chunks, (double) ingest_us / 1000.0, ELEMENTSOF(distractors),
               other_chunks, k);

        FILE *f = fopen(data, "re");
        if (!f) {
                fprintf(stderr, "%s: %s\n", data, strerror(errno));
                return 1;
        }
        Stats st[2] = {};
        double dev_rr = 0;
        char line[MAX_LINE];
        unsigned lineno = 0, bad = 0, n_queries = 0;
        char **queries = NULL;
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
                const char *split = line, *question = t2 + 1;
                char *answer = collapse_ws(t1 + 1);
                int si = streq(split, "dev") ? 0 : streq(split, "test") ? 1 : -1;
                if (si < 0 || !*answer || !*question) {
                        fprintf(stderr, "%s:%u: split must be dev or test, answer and question non-empty\n",
                                data, lineno);
                        bad++;
                        continue;
                }
                if (dev_only && si == 1)
                        continue;
                /* An answer the manual does not contain can never be found. */
                if (!strstr(flat, answer)) {
                        fprintf(stderr, "%s:%u: answer phrase not in the manual: %s\n", data, lineno,
                                answer);
                        bad++;
                }

                KbHit *hits = NULL;
                size_t n = 0;
                r = (texts ? kb_search_texts : kb_search)(kb, question, k, &hits, &n);
                if (r < 0) {
                        fprintf(stderr, "%s:%u: search failed: %s\n", data, lineno, strerror(-r));
                        return 1;
                }
                int found = 0;
                for (size_t i = 0; i < n && !found; i++)
                        found = hit_has(&hits[i], answer);
                st[si].n++;
                st[si].found += found;
                if (si == 0 && (show || dev_only)) {
                        /* dev only: where the answer ranks among 50, for tuning */
                        KbHit *deep = NULL;
                        size_t nd = 0, rank = 0;
                        if (kb_search_texts(kb, question, 50, &deep, &nd) >= 0)
                                for (size_t i = 0; i < nd && !rank; i++)
                                        rank = hit_has(&deep[i], answer) ? i + 1 : 0;
                        kb_hits_free(deep, nd);
                        dev_rr += rank ? 1.0 / (double) rank : 0;
                        if (!found && show) {
                                printf("MISS dev:%u [%s] answer [%s] at rank %zu of 50\n", lineno, question,
                                       answer, rank);
                                for (size_t i = 0; i < n; i++)
                                        printf("     %zu. %.3f %s #%u [%s]\n", i + 1, hits[i].score,
                                               hits[i].title, hits[i].chunk, hits[i].heading);
                        }
                }
                kb_hits_free(hits, n);

                char **nq = realloc(queries, (n_queries + 1) * sizeof(char *));
                if (!nq || !(nq[n_queries] = strdup(question))) {
                        fprintf(stderr, "out of memory\n");
                        return 1;
                }
                queries = nq;
                n_queries++;
        }
        fclose(f);

        /* Timing: every question again, a few rounds, on a warm index. */
        uint64_t ts = now_usec(), cs = cpu_usec();
        for (unsigned round = 0; round < rounds; round++)
                for (unsigned i = 0; i < n_queries; i++) {
                        KbHit *hits = NULL;
                        size_t n = 0;
                        if ((texts ? kb_search_texts : kb_search)(kb, queries[i], k, &hits, &n) >= 0)
                                kb_hits_free(hits, n);
                }
        uint64_t te = now_usec() - ts, ce = cpu_usec() - cs;
        for (unsigned i = 0; i < n_queries; i++)
                free(queries[i]);
        free(queries);

        printf("dev   n=%3u  recall@%u %.3f (%u/%u)\n", st[0].n, k, ratio(st[0].found, st[0].n), st[0].found,
               st[0].n);
        if (dev_only || show)
                printf("dev   MRR@50 %.3f\n", st[0].n ? dev_rr / st[0].n : 0);
        if (!dev_only)
                printf("test  n=%3u  recall@%u %.3f (%u/%u)\n", st[1].n, k, ratio(st[1].found, st[1].n),
                       st[1].found, st[1].n);
        if (n_queries && rounds)
                printf("search: %.1f us per kb_search%s (%.1f us CPU; mean of %u)\n",
                       (double) te / (double) (n_queries * MAX(rounds, 1u)), texts ? "_texts" : "",
                       (double) ce / (double) (n_queries * MAX(rounds, 1u)), n_queries * rounds);

        if (pg_conninfo) {
                (void) kb_delete(kb, manual);
                for (size_t i = 0; i < ELEMENTSOF(distractors); i++)
                        (void) kb_delete(kb, strrchr(distractors[i], '/') + 1);
        }
        kb_close(kb);
        if (pg_conninfo)
                (void) rmdir(dir);
        else
                rm_dir(dir, db);

        if (bad) {
                fprintf(stderr, "%u malformed line(s)\n", bad);
                return 1;
        }
        if (st[0].n == 0 || (st[1].n == 0 && !dev_only)) {
                fprintf(stderr, "both splits must be non-empty\n");
                return 1;
        }
        double rec = ratio(st[1].found, st[1].n);
        if (min_test >= 0 && rec < min_test) {
                fprintf(stderr, "held-out recall@%u %.3f is below the floor %.3f\n", k, rec, min_test);
                return 1;
        }
        return 0;
}
