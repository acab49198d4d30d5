/* agents.c — the agent registry: loads plugins, opens and seeds the
 * per-agent knowledge bases, and routes queries (see agents.h). */
#include <limits.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "agents.h"
#include "build-config.h"
#include "classifier.h"
#include "ingest.h"
#include "kb-pg.h"
#include "kb-vocab.h"
#include "log.h"
#include "route-model.h"
#include "terms.h"

struct Agent {
        char *name;
        char *provider;
        char *model;
        double weight;
        char *kb_path;
        Kb *kb;
        KbVocab *vocab;               /* term statistics of kb, for the evidence (the loop's reference) */
        uint64_t vocab_loaded;        /* now_usec() when a check was last started */
        struct VocabLoad *vocab_next; /* a check running on a thread, or NULL */
        Kb *vocab_kb;                 /* the checks' own connection (their thread's) */
        PluginAgent *plugin;
};

struct AgentSet {
        Agent **agents;
        size_t n;
        AgentRefusals refused; /* enabled agents that could not be loaded, and why */
        RouterConfig router;
        Terms *terms;
        Classifier *model;   /* label i = agents[i]; NULL if nothing to learn from */
        RoutePriors *priors; /* the lexicon priors it was trained on, for the next reload */
};

/* A check of an agent's knowledge on a thread of its own, through a
 * connection of that thread's: whether it changed (its change stamp), and
 * if so its term statistics (a large index takes tens of milliseconds to
 * scan) and its document count, published in its KbStats for the loop.
 * The loop never waits for the database. */
typedef struct VocabLoad {
        pthread_t thread;
        char *path;
        uint64_t stamp; /* the statistics the agent has: re-read only if the base's differs */
        int r;
        atomic_int done;
        Kb **kb; /* the agent's vocab_kb, this thread's until joined */
} VocabLoad;

static void *vocab_load_run(void *userdata) {
        VocabLoad *l = userdata;
        KbVocab *v = NULL;

        l->r = *l->kb ? 0 : kb_open(l->path, 1, l->kb);
        if (l->r >= 0) {
                KbStats *st = kb_stats(*l->kb);
                uint64_t gen = kb_stats_generation(st);
                l->r = kb_vocab_reload(*l->kb, l->stamp, &v);
                if (l->r >= 0 && v)
                        kb_stats_set_vocab(st, gen, v);
                kb_vocab_free(v);
                /* also how another instance's writes reach the count */
                if (l->r >= 0 && (v || kb_known_count(*l->kb) < 0)) {
                        int n = kb_count(*l->kb);
                        if (n < 0)
                                l->r = n;
                }
        }
        atomic_store_explicit(&l->done, 1, memory_order_release);
        return NULL;
}

/* Take a finished check (with @wait: wait for it). */
static void vocab_load_finish(Agent *a, int wait) {
        VocabLoad *l = a->vocab_next;
        if (!l || (!wait && !atomic_load_explicit(&l->done, memory_order_acquire)))
                return;
        pthread_join(l->thread, NULL);
        a->vocab_next = NULL;
        if (l->r < 0)
                log_full(kb_unavailable(l->r) ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING, l->r, NULL,
                         "agent %s: cannot read knowledge term statistics", a->name);
        free(l->path);
        free(l);
}

/* Start a check on a thread: 0 if started, or -errno. */
static int vocab_load_start(Agent *a, uint64_t stamp) {
        VocabLoad *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->path = strdup(a->kb_path);
        l->stamp = stamp;
        l->kb = &a->vocab_kb;
        if (!l->path || pthread_create(&l->thread, NULL, vocab_load_run, l) != 0) {
                free(l->path);
                free(l);
                return -EAGAIN;
        }
        a->vocab_next = l;
        return 0;
}

static Agent *agent_free(Agent *a) {
        if (!a)
                return NULL;
        /* plugin first: its fini may still hold hits it asked the KB for */
        plugin_agent_free(a->plugin);
        vocab_load_finish(a, 1);
        kb_vocab_free(a->vocab);
        kb_close(a->vocab_kb);
        kb_close(a->kb);
        free(a->name);
        free(a->provider);
        free(a->model);
        free(a->kb_path);
        free(a);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Agent *, agent_free);

AgentSet *agents_free(AgentSet *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                agent_free(s->agents[i]);
        free(s->agents);
        agent_refusals_done(&s->refused);
        free(s->router.fallback);
        classifier_free(s->model);
        route_priors_free(s->priors);
        terms_free(s->terms);
        free(s);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentSet *, agents_free);

void agent_refusals_done(AgentRefusals *r) {
        for (size_t i = 0; r && i < r->n; i++) {
                free(r->v[i].agent);
                free(r->v[i].file);
                free(r->v[i].reason);
        }
        if (r) {
                free(r->v);
                *r = (AgentRefusals){};
        }
}

/* Record that @agent (defined in @file, may be NULL) was refused for
 * @reason (taken over; NULL: strerror(-@error)), and log it. */
static int refusals_add(AgentRefusals *rs, const char *agent, const char *file, char *reason, int error) {
        _cleanup_free_ char *why = reason;
        AgentRefusal *v;

        if (!why && asprintf(&why, "%s", strerror(error < 0 ? -error : EINVAL)) < 0)
                return -ENOMEM;
        log_error("agent %s: not available: %s; the daemon continues with the other agents", agent, why);
        v = realloc(rs->v, (rs->n + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        rs->v = v;
        v[rs->n] = (AgentRefusal){.agent = strdup(agent), .file = file ? strdup(file) : NULL, .reason = why};
        if (!v[rs->n].agent || (file && !v[rs->n].file)) {
                free(v[rs->n].agent);
                free(v[rs->n].file);
                return -ENOMEM;
        }
        why = NULL;
        rs->n++;
        return 0;
}

/* mkdir -p with mode 0750 for the directories it creates. */
static int mkdir_p(const char *path) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1;; s++) {
                if (*s != '/' && *s != 0)
                        continue;
                char c = *s;
                *s = 0;
                if (mkdir(p, 0750) < 0 && errno != EEXIST)
                        return -errno;
                *s = c;
                if (!c)
                        break;
        }
        return 0;
}

/* NULL in *ret: no plugin, the generic expert. */
static int plugin_path(const Config *cfg, const AgentConfig *ac, char **ret) {
        const char *plugin = ac->plugin;
        char *p;

        if (isempty(plugin)) {
                *ret = NULL;
                return 0;
        }
        if (strchr(plugin, '/'))
                p = strdup(plugin);
        else if (asprintf(&p, "%s/%s.so", isempty(cfg->plugin_dir) ? MOAD_PLUGIN_DIR : cfg->plugin_dir,
                          plugin) < 0)
                p = NULL;
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static int seed_into(Kb *kb, const Agent *a, const AgentConfig *ac) {
        KbChunkOpts opts = KB_CHUNK_OPTS_DEFAULT;
        int total = 0;

        for (size_t i = 0; i < ac->n_knowledge; i++) {
                int docs = 0;
                int r = kb_ingest_path(kb, ac->knowledge[i], &opts, &docs);
                if (r < 0)
                        log_warning_errno(r, "agent %s: cannot ingest knowledge %s", a->name,
                                          ac->knowledge[i]);
                total += docs;
        }
        return total;
}

/* Removes an SQLite database and its side files; missing ones are fine. */
static void unlink_db(const char *path) {
        static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};

        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s%s", path, suffixes[i]) >= 0)
                        (void) unlink(p);
        }
}

/* First start: the sample knowledge goes into PATH.seeding, which is renamed
 * to PATH only once complete. Seeding runs only on an empty base, so a crash
 * half-way through must never leave a half-seeded base at PATH: it leaves
 * the temporary file, which the next start throws away and seeds again. */
static int seed_new_kb(Agent *a, const AgentConfig *ac, const char *dir) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int dfd = -1;
        Kb *kb = NULL;
        int total, r;

        if (asprintf(&tmp, "%s.seeding", a->kb_path) < 0)
                return -ENOMEM;
        unlink_db(tmp);
        r = kb_open(tmp, 0, &kb);
        if (r < 0)
                return r;
        total = seed_into(kb, a, ac);
        kb_close(kb); /* the last connection: SQLite checkpoints and removes the WAL */
        if (access(tmp, F_OK) < 0 || rename(tmp, a->kb_path) < 0) {
                r = -errno;
                unlink_db(tmp);
                return r;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd); /* the rename itself survives a power cut */
        log_info("agent %s: seeded knowledge base %s with %d document(s)", a->name, a->kb_path, total);
        return 0;
}

/* The PostgreSQL backend: one shared database, no files to seed into
 * first; an empty agent is seeded in place (each document is its own
 * transaction, and a second instance seeding at once replaces the same
 * titles). */
static int agent_open_kb_pg(Agent *a, const AgentConfig *ac, char **ret_why) {
        int r;

        a->kb_path = kb_pg_locator(a->name, ac->language);
        if (!a->kb_path)
                return -ENOMEM;
        r = kb_open(a->kb_path, 0, &a->kb);
        if (r < 0)
                return asprintf(ret_why, "cannot open knowledge base %s: %s", a->kb_path, strerror(-r)) < 0
                               ? -ENOMEM
                               : r;
        int n = kb_count(a->kb);
        if (kb_unavailable(n)) {
                /* loaded all the same: its handle connects again on every
                 * call, and /readyz says "not ready" until it answers */
                log_error("agent %s: knowledge database unavailable (%s); the agent's knowledge answers 503 "
                          "until it is back%s",
                          a->name, strerror(-n),
                          ac->n_knowledge > 0
                                  ? ", and its sample knowledge is seeded at the next start or reload"
                                  : "");
                return 0;
        }
        if (n < 0)
                return asprintf(ret_why, "cannot read knowledge base %s: %s", a->kb_path, strerror(-n)) < 0
                               ? -ENOMEM
                               : n;
        if (n == 0 && ac->n_knowledge > 0)
                log_info("agent %s: seeded knowledge base %s with %d document(s)", a->name, a->kb_path,
                         seed_into(a->kb, a, ac));
        return 0;
}

static int agent_open_kb(const Config *cfg, Agent *a, const AgentConfig *ac, char **ret_why) {
        _cleanup_free_ char *dir = NULL;
        int r;

        if (cfg->knowledge.backend == KNOWLEDGE_POSTGRESQL)
                return agent_open_kb_pg(a, ac, ret_why);
        if (asprintf(&dir, "%s/kb", isempty(cfg->state_dir) ? MOAD_STATE_DIR : cfg->state_dir) < 0)
                return -ENOMEM;
        r = mkdir_p(dir);
        if (r < 0)
                return asprintf(ret_why, "cannot create knowledge directory %s: %s", dir, strerror(-r)) < 0
                               ? -ENOMEM
                               : r;
        if (asprintf(&a->kb_path, "%s/%s.db", dir, a->name) < 0) {
                a->kb_path = NULL;
                return -ENOMEM;
        }
        if (ac->n_knowledge > 0 && access(a->kb_path, F_OK) < 0 && errno == ENOENT) {
                r = seed_new_kb(a, ac, dir);
                if (r < 0)
                        log_warning_errno(r, "agent %s: cannot seed knowledge base %s", a->name, a->kb_path);
        }
        r = kb_open(a->kb_path, 0, &a->kb);
        if (r < 0)
                return asprintf(ret_why, "cannot open knowledge base %s: %s", a->kb_path, strerror(-r)) < 0
                               ? -ENOMEM
                               : r;

        int n = kb_count(a->kb);
        if (n < 0)
                return asprintf(ret_why, "cannot read knowledge base %s: %s", a->kb_path, strerror(-n)) < 0
                               ? -ENOMEM
                               : n;
        if (n > 0 || ac->n_knowledge == 0)
                return 0;

        /* An existing base that was emptied: seeded in place, as before. */
        int total = seed_into(a->kb, a, ac);
        log_info("agent %s: seeded knowledge base %s with %d document(s)", a->name, a->kb_path, total);
        return 0;
}

/* On a refusal returns -errno and the reason in *ret_why (may stay NULL). */
static int agent_new(const Config *cfg, const AgentConfig *ac, Agent **ret, char **ret_why) {
        _cleanup_(agent_freep) Agent *a = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->name = strdup(ac->name);
        a->provider = strdup(isempty(ac->provider) ? "builtin" : ac->provider);
        if (!a->name || !a->provider)
                return -ENOMEM;
        if (ac->model && !(a->model = strdup(ac->model)))
                return -ENOMEM;
        a->weight = isnan(ac->weight) || ac->weight < 0 ? 0 : ac->weight;

        r = plugin_path(cfg, ac, &path);
        if (r < 0)
                return r;

        /* Knowledge first, so a plugin may search from its first callback. */
        r = agent_open_kb(cfg, a, ac, ret_why);
        if (r < 0)
                return r;

        PluginAgentSpec spec = {
                .path = path,
                .name = ac->name,
                .prompt = ac->prompt,
                .description = ac->description,
                .weight = a->weight,
                .options = ac->options,
                .n_options = ac->n_options,
                .kb_path = a->kb_path,
        };
        r = plugin_agent_load(&spec, &a->plugin, ret_why);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(a);
        return 0;
}

/* Take the term statistics last published for the agent's base (kb-stats.h). */
static void agent_take_vocab(Agent *a) {
        KbVocab *v = kb_stats_vocab(kb_stats(a->kb));
        if (v && v != a->vocab) {
                kb_vocab_free(a->vocab);
                a->vocab = TAKE_PTR(v);
        }
        kb_vocab_free(v);
}

/* The agent's term statistics as last published (kb-stats.h): by a write
 * of this process (a small base is re-read by the writer), or by the
 * agent's own thread, which at most every AGENTS_VOCAB_REFRESH_USEC while
 * questions come checks whether the knowledge changed (its change stamp),
 * and if so re-reads the statistics and the document count. The old table
 * serves until then: another process's change (PostgreSQL) or a large
 * base's is seen up to AGENTS_VOCAB_REFRESH_USEC plus one re-read later.
 * With @wait, a running check is waited for. Nothing here asks the
 * database: this runs on the loop for every routed question. */
static void agent_refresh_vocab(Agent *a, uint64_t now, int wait) {
        if (!a->kb)
                return;
        vocab_load_finish(a, wait);
        agent_take_vocab(a);
        if (a->vocab_next || (a->vocab && now - a->vocab_loaded < AGENTS_VOCAB_REFRESH_USEC))
                return;
        a->vocab_loaded = now;
        if (vocab_load_start(a, a->vocab ? kb_vocab_stamp(a->vocab) : 0) < 0 || !wait)
                return;
        vocab_load_finish(a, 1);
        agent_take_vocab(a);
}

static uint64_t hash_add(uint64_t h, const void *p, size_t n) {
        const unsigned char *b = p;
        for (size_t i = 0; i < n; i++)
                h = (h ^ b[i]) * 1099511628211ULL;
        return h;
}

static uint64_t hash_str(uint64_t h, const char *s) {
        return hash_add(h, s ? s : "", strlen(s ? s : "") + 1);
}

/* What the agents' lexicon scores depend on: which plugin file (path,
 * identity, size, modification time) each agent runs with which options,
 * and the weight. The same key: a text scored before scores the same. */
static uint64_t priors_key(const AgentSet *s, const Config *cfg) {
        uint64_t h = hash_add(14695981039346656037ULL, &s->router.lexicon_weight, sizeof(double));
        for (size_t i = 0; i < s->n; i++) {
                const AgentConfig *ac = config_find_agent(cfg, s->agents[i]->name);
                _cleanup_free_ char *path = NULL;
                struct stat st = {};
                h = hash_str(h, s->agents[i]->name);
                if (!ac || plugin_path(cfg, ac, &path) < 0 || !path)
                        continue;
                h = hash_str(h, path);
                if (stat(path, &st) == 0) {
                        h = hash_add(h, &st.st_dev, sizeof(st.st_dev));
                        h = hash_add(h, &st.st_ino, sizeof(st.st_ino));
                        h = hash_add(h, &st.st_size, sizeof(st.st_size));
                        h = hash_add(h, &st.st_mtim, sizeof(st.st_mtim));
                }
                for (size_t k = 0; k < ac->n_options; k++) {
                        h = hash_str(h, ac->options[k].key);
                        h = hash_str(h, ac->options[k].value);
                }
        }
        return h;
}

/* Train the router's classifier from every loaded agent's examples and
 * knowledge. Without it routing still works on lexicons and evidence. */
static int agents_learn(AgentSet *s, const Config *cfg, const AgentSet *prev) {
        _cleanup_free_ RouteModelAgent *in = NULL;
        size_t n_samples = 0;
        uint64_t t0 = now_usec();
        int r, reused = 0;

        r = terms_new(&s->terms);
        if (r < 0)
                return log_error_errno(r, "router: cannot create the stemmers");
        /* every agent's index checked at once, each on a thread; a reload
         * keeps what the previous set published while it is current */
        for (size_t i = 0; i < s->n; i++)
                agent_refresh_vocab(s->agents[i], t0, 0);
        for (size_t i = 0; i < s->n; i++) {
                vocab_load_finish(s->agents[i], 1);
                agent_take_vocab(s->agents[i]);
        }
        log_debug("router: term statistics of %zu agents read in %.1f ms", s->n,
                  (double) (now_usec() - t0) / 1000.0);
        if (s->n == 0)
                return 0;
        if (s->n > CLASSIFIER_MAX_LABELS) {
                log_warning("router: %zu agents, the learned router handles %u: routing without it", s->n,
                            CLASSIFIER_MAX_LABELS);
                return 0;
        }
        in = calloc(s->n, sizeof(*in));
        if (!in)
                return -ENOMEM;
        for (size_t i = 0; i < s->n; i++) {
                const AgentConfig *ac = config_find_agent(cfg, s->agents[i]->name);
                in[i] = (RouteModelAgent){
                        .name = s->agents[i]->name,
                        .examples = ac ? ac->examples : NULL,
                        .n_examples = ac ? ac->n_examples : 0,
                        .kb = s->agents[i]->kb,
                        .plugin = s->agents[i]->plugin,
                };
        }
        RouteModelPrior prior = {.weight = s->router.lexicon_weight,
                                 .key = priors_key(s, cfg),
                                 .prev = prev ? prev->priors : NULL,
                                 .call_usec = cfg->limits.plugin_score_ms * 1000,
                                 .ret_kept = &s->priors};
        t0 = now_usec();
        r = route_model_train(s->terms, in, s->n, &prior, prev ? prev->model : NULL, &s->model, &n_samples,
                              &reused);
        if (r < 0)
                return log_error_errno(r, "router: cannot train the learned router");
        log_info("router: %s %zu samples of %zu agents in %.1f ms",
                 reused ? "kept the model learned from the same" : "learned from", n_samples, s->n,
                 (double) (now_usec() - t0) / 1000.0);
        return 0;
}

int agents_new(const Config *cfg, AgentSet **ret) {
        return agents_renew(cfg, NULL, ret);
}

int agents_renew(const Config *cfg, const AgentSet *prev, AgentSet **ret) {
        _cleanup_(agents_freep) AgentSet *s = NULL;

        if (!cfg || !ret)
                return -EINVAL;
        if (cfg->knowledge.backend == KNOWLEDGE_POSTGRESQL) {
                /* for every handle opened from now on, on any thread */
                KbPgConfig pc = {.conninfo = cfg->knowledge.conninfo,
                                 .read_conninfo = cfg->knowledge.read_conninfo,
                                 .password_file = cfg->knowledge.password_file,
                                 .connect_timeout_s = cfg->knowledge.connect_timeout_s,
                                 .statement_timeout_ms = cfg->knowledge.statement_timeout_ms,
                                 .pool_size = cfg->knowledge.pool_size,
                                 .pool_queue = cfg->knowledge.pool_queue,
                                 .prune_chunks = cfg->knowledge.search_prune_chunks
                                                         ? cfg->knowledge.search_prune_chunks
                                                         : UINT_MAX};
                if (kb_pg_configure(&pc) < 0)
                        return -ENOMEM;
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->router = cfg->router;
        s->router.fallback = strdup(isempty(cfg->router.fallback) ? "general" : cfg->router.fallback);
        if (!s->router.fallback)
                return -ENOMEM;
        if (cfg->n_agents > 0) {
                s->agents = calloc(cfg->n_agents, sizeof(Agent *));
                if (!s->agents)
                        return -ENOMEM;
        }

        for (size_t i = 0; i < cfg->n_agents; i++) {
                const AgentConfig *ac = &cfg->agents[i];
                Agent *a = NULL;

                if (!ac->enabled || isempty(ac->name))
                        continue;
                if (agents_find(s, ac->name)) {
                        char *why = strdup("defined twice");
                        if (!why || refusals_add(&s->refused, ac->name, ac->file, why, 0) < 0)
                                return -ENOMEM;
                        continue;
                }
                char *why = NULL;
                int r = agent_new(cfg, ac, &a, &why);
                if (r == -ENOMEM) {
                        free(why);
                        return r;
                }
                if (r < 0) {
                        if (refusals_add(&s->refused, ac->name, ac->file, why, r) < 0)
                                return -ENOMEM;
                        continue;
                }
                s->agents[s->n++] = a;
        }

        int r = agents_learn(s, cfg, prev);
        if (r == -ENOMEM)
                return r;

        if (s->n == 0)
                log_warning("no agent could be loaded");
        else if (!agents_find(s, s->router.fallback))
                log_warning(
                        "router fallback agent '%s' is not loaded; the best-scoring agent is used instead",
                        s->router.fallback);
        *ret = TAKE_PTR(s);
        return 0;
}

int agents_knowledge_check_start(AgentSet *s, sd_event *e, KbSearchDone done, void *userdata,
                                 KbSearch **ret) {
        for (size_t i = 0; s && i < s->n; i++)
                if (kb_pg(s->agents[i]->kb))
                        return kb_check_start(s->agents[i]->kb, e, done, userdata, ret);
        return 1;
}

const AgentRefusals *agents_refused(const AgentSet *s) {
        return s ? &s->refused : NULL;
}

int agents_check_plugins(const Config *cfg, AgentRefusals *ret, size_t *ret_loaded) {
        size_t loaded = 0;

        if (!cfg || !ret || !ret_loaded)
                return -EINVAL;
        for (size_t i = 0; i < cfg->n_agents; i++) {
                const AgentConfig *ac = &cfg->agents[i];
                _cleanup_free_ char *path = NULL;
                PluginAgent *p = NULL;
                char *why = NULL;
                int dup = 0, r;

                if (!ac->enabled || isempty(ac->name))
                        continue;
                for (size_t k = 0; k < i; k++)
                        dup = dup || (cfg->agents[k].enabled && streq_ptr(cfg->agents[k].name, ac->name));
                if (dup) {
                        why = strdup("defined twice");
                        if (!why || refusals_add(ret, ac->name, ac->file, why, 0) < 0)
                                return -ENOMEM;
                        continue;
                }
                r = plugin_path(cfg, ac, &path);
                if (r < 0)
                        return r;
                PluginAgentSpec spec = {
                        .path = path,
                        .name = ac->name,
                        .prompt = ac->prompt,
                        .description = ac->description,
                        .weight = isnan(ac->weight) || ac->weight < 0 ? 0 : ac->weight,
                        .options = ac->options,
                        .n_options = ac->n_options,
                };
                r = plugin_agent_load(&spec, &p, &why);
                if (r == -ENOMEM && !why)
                        return r;
                if (r < 0) {
                        if (refusals_add(ret, ac->name, ac->file, why, r) < 0)
                                return -ENOMEM;
                        continue;
                }
                plugin_agent_free(p);
                loaded++;
        }
        *ret_loaded = loaded;
        return 0;
}

size_t agents_count(const AgentSet *s) {
        return s ? s->n : 0;
}

Agent *agents_get(AgentSet *s, size_t i) {
        return s && i < s->n ? s->agents[i] : NULL;
}

Agent *agents_find(AgentSet *s, const char *name) {
        if (!s || !name)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->agents[i]->name, name))
                        return s->agents[i];
        return NULL;
}

const RouterConfig *agents_router_config(const AgentSet *s) {
        return s ? &s->router : NULL;
}

char *agents_titles(const KbHit *hits, size_t n, char *buf, size_t size) {
        if (size == 0)
                return buf;
        buf[0] = 0;
        for (size_t h = 0, o = 0; h < n && o < size; h++) {
                int m = snprintf(buf + o, size - o, "%s%s", h ? "; " : "", hits[h].title);
                if (m < 0)
                        break;
                o += (size_t) m;
        }
        return buf;
}

/* Evidence of every agent (NaN without knowledge) and, with @explain, what
 * it rests on: the strongest term and the best documents (from @given when
 * searched beforehand; else an SQLite base is searched here, a short FTS5
 * look-up, and a PostgreSQL one names none). */
static int agents_evidence(AgentSet *s, const char *query, int explain, const AgentScore *given, double *ev,
                           char **why) {
        _cleanup_free_ uint32_t *df = NULL, *n_chunks = NULL;
        _cleanup_free_ int *best = NULL;
        char **terms = NULL;
        size_t n_terms = 0;
        Kb *tok_kb = NULL;
        uint64_t now = now_usec();
        int r = 0;

        for (size_t i = 0; i < s->n; i++) {
                ev[i] = NAN;
                agent_refresh_vocab(s->agents[i], now, 0);
                if (!tok_kb && s->agents[i]->vocab)
                        tok_kb = s->agents[i]->kb;
        }
        /* Every knowledge base has the same schema, so one tokenizes for all. */
        if (!tok_kb || kb_query_terms(tok_kb, query, AGENTS_EVIDENCE_TERMS, &terms, &n_terms) < 0)
                return 0;
        df = calloc(MAX(s->n * n_terms, (size_t) 1), sizeof(uint32_t));
        n_chunks = calloc(s->n, sizeof(uint32_t));
        best = calloc(s->n, sizeof(int));
        if (!df || !n_chunks || !best) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < s->n; i++) {
                const KbVocab *v = s->agents[i]->vocab;
                n_chunks[i] = kb_vocab_chunks(v);
                for (size_t t = 0; t < n_terms; t++)
                        df[i * n_terms + t] = kb_vocab_df(v, terms[t]);
        }
        router_kb_evidence(df, n_chunks, s->n, n_terms, ev, best);

        for (size_t i = 0; explain && i < s->n; i++) {
                KbHit *hits = NULL;
                size_t n_hits = 0;
                if (isnan(ev[i]) || best[i] < 0)
                        continue;
                /* the documents a search for the query finds first */
                char titles[256] = "";
                if (given && given[i].documents)
                        snprintf(titles, sizeof(titles), "%s", given[i].documents);
                else if (!kb_pg(s->agents[i]->kb) &&
                         kb_search_texts(s->agents[i]->kb, query, 2, &hits, &n_hits) >= 0)
                        agents_titles(hits, n_hits, titles, sizeof(titles));
                kb_hits_free(hits, n_hits);
                if (asprintf(&why[i], "%s (in %u of %u chunks)%s%s", terms[best[i]],
                             df[i * n_terms + (size_t) best[i]], n_chunks[i], *titles ? "; documents: " : "",
                             titles) < 0) {
                        why[i] = NULL;
                        r = -ENOMEM;
                        goto out;
                }
        }
out:
        strv_free_n(terms, n_terms);
        return r;
}

int agents_route_wanted(AgentSet *s, size_t i, const char *const *pinned, size_t n_pinned) {
        if (!s || i >= s->n)
                return 0;
        for (size_t k = 0; k < n_pinned; k++)
                if (pinned[k] && streq(pinned[k], s->agents[i]->name))
                        return 1;
        return n_pinned == 0;
}

int agents_route(AgentSet *s, const char *query, const char *const *pinned, size_t n_pinned, int explain,
                 RouteResult *ret) {
        return agents_route_scored(s, query, pinned, n_pinned, explain, NULL, ret);
}

int agents_route_scored(AgentSet *s, const char *query, const char *const *pinned, size_t n_pinned,
                        int explain, const AgentScore *given, RouteResult *ret) {
        _cleanup_free_ RouterCandidate *cands = NULL;
        _cleanup_free_ char **reasons = NULL, **why = NULL;
        _cleanup_free_ ClassifierScore *learned = NULL;
        _cleanup_free_ double *ev = NULL;
        int r;

        if (!s || !query || !ret)
                return -EINVAL;
        if (s->n > 0) {
                cands = calloc(s->n, sizeof(RouterCandidate));
                reasons = calloc(s->n, sizeof(char *));
                why = calloc(s->n, sizeof(char *));
                ev = calloc(s->n, sizeof(double));
                if (!cands || !reasons || !why || !ev)
                        return -ENOMEM;
        }
        if (s->model) {
                learned = calloc(s->n, sizeof(ClassifierScore));
                if (!learned)
                        return -ENOMEM;
                r = classifier_predict(s->model, s->terms, query, explain, learned);
                if (r < 0)
                        return r;
        }
        r = agents_evidence(s, query, explain, given, ev, why);
        if (r < 0)
                goto out;

        for (size_t i = 0; i < s->n; i++) {
                Agent *a = s->agents[i];
                const char *reason;
                double score = 0, weight = a->weight;

                /* With pinned agents only their scores matter (for the weights):
                 * the others' plugins are not asked. */
                if (!agents_route_wanted(s, i, pinned, n_pinned)) {
                        cands[i] = (RouterCandidate){.name = a->name,
                                                     .reason = "not scored: agents pinned",
                                                     .learned = NAN,
                                                     .kb_evidence = NAN,
                                                     .weight = a->weight};
                        continue;
                }

                if (given) {
                        /* scored on the plugin's thread; an agent left out gets weight 0 */
                        score = given[i].score;
                        reason = given[i].reason;
                        if (given[i].skip)
                                weight = 0;
                } else {
                        r = plugin_agent_score(a->plugin, query, &score, &reasons[i]);
                        if (r < 0) {
                                log_warning_errno(r, "agent %s: score failed", a->name);
                                score = 0;
                                if (asprintf(&reasons[i], "score failed: %s", strerror(-r)) < 0)
                                        reasons[i] = NULL;
                        }
                        reason = reasons[i];
                }
                int has_model = learned && classifier_has_positives(s->model, i);
                cands[i] = (RouterCandidate){
                        .name = a->name,
                        .plugin_score = score,
                        .reason = reason,
                        .learned = has_model ? learned[i].p : NAN,
                        .learned_terms = has_model ? learned[i].terms : NULL,
                        .kb_evidence = ev[i],
                        .kb_terms = why[i],
                        .weight = weight,
                };
        }
        r = router_route(&s->router, cands, s->n, pinned, n_pinned, ret);
out:
        for (size_t i = 0; i < s->n; i++) {
                free(reasons[i]);
                free(why[i]);
        }
        return r;
}

int agent_search(Agent *a, const char *query, unsigned limit, KbHit **ret_hits, size_t *ret_n) {
        if (!a || !query || !ret_hits || !ret_n)
                return -EINVAL;
        if (!a->kb)
                return -ENOTSUP;
        return kb_search(a->kb, query, MIN(limit, AGENTS_MAX_SEARCH_HITS), ret_hits, ret_n);
}

int agent_search_in(Agent *a, const char *query, unsigned limit, const char *const *titles, size_t n_titles,
                    KbHit **ret_hits, size_t *ret_n) {
        if (!a || !query || !ret_hits || !ret_n)
                return -EINVAL;
        if (!a->kb)
                return -ENOTSUP;
        return kb_search_in(a->kb, query, MIN(limit, AGENTS_MAX_SEARCH_HITS), titles, n_titles, ret_hits,
                            ret_n);
}

int agent_search_start(Agent *a, sd_event *e, const char *query, unsigned limit, int snippets,
                       const char *const *titles, size_t n_titles, KbSearchDone done, void *userdata,
                       KbSearch **ret, KbHit **ret_hits, size_t *ret_n) {
        if (!a || !query || !ret || !ret_hits || !ret_n)
                return -EINVAL;
        if (!a->kb)
                return -ENOTSUP;
        return kb_search_start(a->kb, e, query, MIN(limit, AGENTS_MAX_SEARCH_HITS), snippets, titles,
                               n_titles, done, userdata, ret, ret_hits, ret_n);
}

const char *agent_name(const Agent *a) {
        return a ? a->name : NULL;
}

PluginAgent *agent_plugin(Agent *a) {
        return a ? a->plugin : NULL;
}

double agent_weight(const Agent *a) {
        return a ? a->weight : 0;
}

const char *agent_provider(const Agent *a) {
        return a ? a->provider : NULL;
}

const char *agent_model(const Agent *a) {
        return a ? a->model : NULL;
}

Kb *agent_kb(Agent *a) {
        return a ? a->kb : NULL;
}

const KbVocab *agent_vocab(const Agent *a) {
        return a ? a->vocab : NULL;
}

const char *agent_kb_path(const Agent *a) {
        return a ? a->kb_path : NULL;
}

int agent_doc_count(Agent *a) {
        if (!a || !a->kb)
                return -EINVAL;
        return kb_known_count(a->kb);
}
