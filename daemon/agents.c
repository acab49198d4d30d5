/* agents.c — the agent registry: loads plugins, opens and seeds the
 * per-agent knowledge bases, and routes queries (see agents.h). */
#include <math.h>
#include <sys/stat.h>

#include "agents.h"
#include "build-config.h"
#include "ingest.h"
#include "log.h"

struct Agent {
        char *name;
        char *provider;
        char *model;
        double weight;
        char *kb_path;
        Kb *kb;
        PluginAgent *plugin;
};

struct AgentSet {
        Agent **agents;
        size_t n;
        RouterConfig router;
};

static Agent *agent_free(Agent *a) {
        if (!a)
                return NULL;
        /* plugin first: its fini may still hold hits it asked the KB for */
        plugin_agent_free(a->plugin);
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
        free(s->router.fallback);
        free(s);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentSet *, agents_free);

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

static int kb_search_cb(void *userdata, const char *query, unsigned limit, KbHit **ret_hits, size_t *ret_n) {
        Agent *a = userdata;
        return agent_search(a, query, limit, ret_hits, ret_n);
}

static int plugin_path(const Config *cfg, const AgentConfig *ac, char **ret) {
        const char *plugin = isempty(ac->plugin) ? ac->name : ac->plugin;
        char *p;
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

static int agent_open_kb(const Config *cfg, Agent *a, const AgentConfig *ac) {
        _cleanup_free_ char *dir = NULL;
        int r;

        if (asprintf(&dir, "%s/kb", isempty(cfg->state_dir) ? MOAD_STATE_DIR : cfg->state_dir) < 0)
                return -ENOMEM;
        r = mkdir_p(dir);
        if (r < 0)
                return log_error_errno(r, "agent %s: skipped: cannot create knowledge directory %s", a->name,
                                       dir);
        if (asprintf(&a->kb_path, "%s/%s.db", dir, a->name) < 0) {
                a->kb_path = NULL;
                return -ENOMEM;
        }
        r = kb_open(a->kb_path, 0, &a->kb);
        if (r < 0)
                return log_error_errno(r, "agent %s: skipped: cannot open knowledge base %s", a->name,
                                       a->kb_path);

        int n = kb_count(a->kb);
        if (n < 0)
                return log_error_errno(n, "agent %s: skipped: cannot read knowledge base %s", a->name,
                                       a->kb_path);
        if (n > 0 || ac->n_knowledge == 0)
                return 0;

        KbChunkOpts opts = KB_CHUNK_OPTS_DEFAULT;
        int total = 0;
        for (size_t i = 0; i < ac->n_knowledge; i++) {
                int docs = 0;
                r = kb_ingest_path(a->kb, ac->knowledge[i], &opts, &docs);
                if (r < 0)
                        log_warning_errno(r, "agent %s: cannot ingest knowledge %s", a->name,
                                          ac->knowledge[i]);
                total += docs;
        }
        log_info("agent %s: seeded knowledge base %s with %d document(s)", a->name, a->kb_path, total);
        return 0;
}

static int agent_new(const Config *cfg, const AgentConfig *ac, Agent **ret) {
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
        r = agent_open_kb(cfg, a, ac);
        if (r < 0)
                return r;

        PluginAgentSpec spec = {
                .path = path,
                .name = ac->name,
                .prompt = ac->prompt,
                .weight = a->weight,
                .options = ac->options,
                .n_options = ac->n_options,
                .kb_search = kb_search_cb,
                .kb_userdata = a,
        };
        r = plugin_agent_load(&spec, &a->plugin);
        if (r < 0)
                return r; /* plugin_agent_load logged why */

        *ret = TAKE_PTR(a);
        return 0;
}

int agents_new(const Config *cfg, AgentSet **ret) {
        _cleanup_(agents_freep) AgentSet *s = NULL;

        if (!cfg || !ret)
                return -EINVAL;
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
                        log_error("agent %s: skipped: defined twice (%s)", ac->name,
                                  ac->file ? ac->file : "?");
                        continue;
                }
                int r = agent_new(cfg, ac, &a);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        log_error("agent %s: not available; the daemon continues with the other agents",
                                  ac->name);
                        continue;
                }
                s->agents[s->n++] = a;
        }

        if (s->n == 0)
                log_warning("no agent could be loaded");
        else if (!agents_find(s, s->router.fallback))
                log_warning(
                        "router fallback agent '%s' is not loaded; the best-scoring agent is used instead",
                        s->router.fallback);
        *ret = TAKE_PTR(s);
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

int agents_route(AgentSet *s, const char *query, const char *const *pinned, size_t n_pinned,
                 RouteResult *ret) {
        _cleanup_free_ RouterCandidate *cands = NULL;
        _cleanup_free_ char **reasons = NULL;
        int r;

        if (!s || !query || !ret)
                return -EINVAL;
        if (s->n > 0) {
                cands = calloc(s->n, sizeof(RouterCandidate));
                reasons = calloc(s->n, sizeof(char *));
                if (!cands || !reasons)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < s->n; i++) {
                Agent *a = s->agents[i];
                double score = 0;
                KbHit *hits = NULL;
                size_t n_hits = 0;
                int wanted = n_pinned == 0;

                /* With pinned agents only their scores matter (for the weights):
                 * scoring and searching the others is wasted work on the hot path. */
                for (size_t k = 0; !wanted && k < n_pinned; k++)
                        wanted = pinned[k] && streq(pinned[k], a->name);
                if (!wanted) {
                        cands[i] = (RouterCandidate){
                                .name = a->name, .reason = "not scored: agents pinned", .weight = a->weight};
                        continue;
                }

                r = plugin_agent_score(a->plugin, query, &score, &reasons[i]);
                if (r < 0) {
                        log_warning_errno(r, "agent %s: score failed", a->name);
                        score = 0;
                        if (asprintf(&reasons[i], "score failed: %s", strerror(-r)) < 0)
                                reasons[i] = NULL;
                }
                double evidence = 0;
                if (a->kb && kb_search_texts(a->kb, query, AGENTS_ROUTE_HITS, &hits, &n_hits) >= 0) {
                        evidence = router_kb_evidence(query, hits, n_hits);
                        kb_hits_free(hits, n_hits);
                }
                cands[i] = (RouterCandidate){
                        .name = a->name,
                        .plugin_score = score,
                        .reason = reasons[i],
                        .kb_evidence = evidence,
                        .weight = a->weight,
                };
        }
        r = router_route(&s->router, cands, s->n, pinned, n_pinned, ret);
        for (size_t i = 0; i < s->n; i++)
                free(reasons[i]);
        return r;
}

int agent_search(Agent *a, const char *query, unsigned limit, KbHit **ret_hits, size_t *ret_n) {
        if (!a || !query || !ret_hits || !ret_n)
                return -EINVAL;
        if (!a->kb)
                return -ENOTSUP;
        return kb_search(a->kb, query, MIN(limit, AGENTS_MAX_SEARCH_HITS), ret_hits, ret_n);
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

const char *agent_kb_path(const Agent *a) {
        return a ? a->kb_path : NULL;
}

int agent_doc_count(Agent *a) {
        if (!a || !a->kb)
                return -EINVAL;
        return kb_count(a->kb);
}
