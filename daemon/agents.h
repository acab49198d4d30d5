/* agents.h — the daemon's agent registry: one Agent per enabled agents.d
 * entry, each with its loaded plugin (plugin-host.h) and its own knowledge
 * base (kb.h, one SQLite file per agent under <state_dir>/kb/). Built once
 * from a Config and immutable afterwards except for the knowledge bases'
 * contents; routing a query (agents_route) scores every agent with its
 * plugin and its knowledge-base evidence and applies the router.
 *
 * Used from the event loop only (each Kb handle is one connection). */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "kb-stats.h"
#include "kb-vocab.h"
#include "kb.h"
#include "plugin-host.h"
#include "router.h"

typedef struct Agent Agent;
typedef struct AgentSet AgentSet;

/**
 * struct AgentRefusal - an enabled agent that could not be loaded.
 * @agent:  its name.
 * @file:   the agents.d file defining it, or NULL.
 * @reason: why, one line (e.g. "init failed: Invalid argument").
 */
typedef struct AgentRefusal {
        char *agent;
        char *file;
        char *reason;
} AgentRefusal;

/** struct AgentRefusals - a list of refusals (@n entries in @v). */
typedef struct AgentRefusals {
        AgentRefusal *v;
        size_t n;
} AgentRefusals;

/** agent_refusals_done() - free the entries and empty @r. NULL ok. */
void agent_refusals_done(AgentRefusals *r);

/* Query terms agents_route() weighs for the knowledge evidence. */
#define AGENTS_EVIDENCE_TERMS 32u
/* How often an agent's thread checks whether its knowledge changed (and
 * then re-reads its term statistics and document count), while questions come. */
#define AGENTS_VOCAB_REFRESH_USEC (2ULL * 1000000ULL)
/* Up to this many chunks a write re-reads the statistics itself (kb-stats.h). */
#define AGENTS_VOCAB_SYNC_CHUNKS KB_STATS_SYNC_CHUNKS
/* Hard bound on agent_search()'s limit. */
#define AGENTS_MAX_SEARCH_HITS 64u

/**
 * agents_new() - build the registry for @cfg: for every enabled agent load
 * its plugin (<cfg->plugin_dir>/<plugin>.so, or the plugin value itself if
 * it contains a '/'), open its knowledge base <cfg->state_dir>/kb/<name>.db
 * (creating directories as needed) and, if the base holds no documents,
 * ingest the agent's knowledge paths. An agent whose plugin or database
 * fails is skipped with one error line; a failing knowledge path only logs
 * a warning. The router settings are copied from @cfg->router.
 * Returns 0 and the set in *@ret (possibly with no agents: the caller
 * decides whether that is fatal), or -ENOMEM / -EINVAL.
 */
int agents_new(const Config *cfg, AgentSet **ret);

/**
 * agents_renew() - agents_new() for a reload: what the new set would
 * compute the same as @prev (may be NULL) is taken from @prev instead,
 * i.e. the learned router when its training samples are unchanged, and
 * the term statistics of a knowledge base whose content is unchanged.
 * @prev stays valid and must outlive nothing: shared parts are counted.
 */
int agents_renew(const Config *cfg, const AgentSet *prev, AgentSet **ret);

/**
 * agents_knowledge_check_start() - ask whether the agents' knowledge store
 * answers, for /readyz, without waiting on the loop @e: kb_check_start() of
 * the first agent whose knowledge is in PostgreSQL (all of them are in the
 * same database). Returns 1 when there is nothing to ask (SQLite files),
 * else as kb_check_start().
 */
int agents_knowledge_check_start(AgentSet *s, sd_event *e, KbSearchDone done, void *userdata,
                                 KbSearch **ret);

/**
 * agents_refused() - the enabled agents of the configuration that the set
 * could not load, each with its reason (each was also logged as an
 * error). Borrowed from @s; never NULL for a non-NULL @s.
 */
const AgentRefusals *agents_refused(const AgentSet *s);

/**
 * agents_check_plugins() - what `moad --check-config` does with agents:
 * for every enabled agent of @cfg, load its plugin, check its ABI and run
 * its init on the agent's real configuration, then unload it again. No
 * knowledge base is opened (a plugin's kb_search answers -ENOTSUP, as
 * plugin.h documents for init). Fills the empty *@ret with the refused
 * agents and sets *@ret_loaded to the number that loaded. Returns 0 or
 * -ENOMEM.
 */
int agents_check_plugins(const Config *cfg, AgentRefusals *ret, size_t *ret_loaded);

/** agents_free() - unload every plugin, close every database. NULL ok; returns NULL. */
AgentSet *agents_free(AgentSet *s);

/** agents_count() - number of loaded agents. */
size_t agents_count(const AgentSet *s);

/** agents_get() - the @i-th agent (config order), NULL if out of range. */
Agent *agents_get(AgentSet *s, size_t i);

/** agents_find() - the agent called @name, or NULL. */
Agent *agents_find(AgentSet *s, const char *name);

/** agents_router_config() - the router settings the set routes with. */
const RouterConfig *agents_router_config(const AgentSet *s);

/**
 * agents_route() - route @query: every agent's plugin score (an error
 * counts as 0, with the error as reason), the learned classifier's
 * probability (trained when the set was built) and the calibrated
 * knowledge evidence (router_kb_evidence over the agents' term
 * statistics), then router_route() with @pinned (names; -ENOENT if one is
 * unknown). With @explain each choice also says which words and documents
 * its learned score and evidence rest on (one extra search per agent).
 * On success fills the empty *@ret (release with route_result_done()).
 */
int agents_route(AgentSet *s, const char *query, const char *const *pinned, size_t n_pinned, int explain,
                 RouteResult *ret);

/**
 * struct AgentScore - an agent's plugin score computed elsewhere (on the
 * plugin's thread, plugin-call.h), for agents_route_scored().
 * @score:  the plugin's score (0 when it failed or ran over its budget).
 * @reason: shown in the route, borrowed; may be NULL.
 * @skip:   leave the agent out (quarantined): routed with weight 0, so it is
 *          selected only when pinned.
 * @documents: for an explained route, the titles a search for the query
 *          finds first ("a.md; b.md"), searched beforehand off the loop
 *          (route-job.c), borrowed; NULL: not searched, and then an agent
 *          whose knowledge is in PostgreSQL names none (searching it here
 *          would make the loop wait).
 */
typedef struct AgentScore {
        double score;
        const char *reason;
        int skip;
        const char *documents;
} AgentScore;

/**
 * agents_titles() - the titles of @hits as "a.md; b.md" in @buf (@size
 * bytes, cut there), for the route's explanation. Returns @buf.
 */
char *agents_titles(const KbHit *hits, size_t n, char *buf, size_t size);

/** agents_route_wanted() - whether agents_route() asks agent @i's plugin to
 * score (every agent, or only the pinned ones). */
int agents_route_wanted(AgentSet *s, size_t i, const char *const *pinned, size_t n_pinned);

/**
 * agents_route_scored() - agents_route() with the plugin scores given in
 * @given (one per agent, set order; read for the wanted agents only)
 * instead of calling the plugins here. @given NULL: agents_route().
 */
int agents_route_scored(AgentSet *s, const char *query, const char *const *pinned, size_t n_pinned,
                        int explain, const AgentScore *given, RouteResult *ret);

/**
 * agent_search() - the best @limit (<= AGENTS_MAX_SEARCH_HITS) chunks of the
 * agent's knowledge base for @query; free with kb_hits_free(). Returns 0 or
 * -errno.
 */
int agent_search(Agent *a, const char *query, unsigned limit, KbHit **ret_hits, size_t *ret_n);
/** agent_search_in() - agent_search() in the documents matching @titles (kb_search_in()). */
int agent_search_in(Agent *a, const char *query, unsigned limit, const char *const *titles, size_t n_titles,
                    KbHit **ret_hits, size_t *ret_n);

/**
 * agent_search_start() - agent_search_in() for the event loop @e
 * (kb_search_start()): 1 with the hits now (SQLite), 0 pending (@done runs
 * on the loop later; cancel with kb_search_cancel()), or -errno.
 */
int agent_search_start(Agent *a, sd_event *e, const char *query, unsigned limit, int snippets,
                       const char *const *titles, size_t n_titles, KbSearchDone done, void *userdata,
                       KbSearch **ret, KbHit **ret_hits, size_t *ret_n);

/** agent_name() - the agent's configured name. */
const char *agent_name(const Agent *a);
/** agent_plugin() - its loaded plugin (for build_prompt/review and descriptor accessors). */
PluginAgent *agent_plugin(Agent *a);
/** agent_weight() - its configured weight. */
double agent_weight(const Agent *a);
/** agent_provider() - the provider name it uses ("builtin" by default). */
const char *agent_provider(const Agent *a);
/** agent_model() - its model override, or NULL for the provider's model. */
const char *agent_model(const Agent *a);
/** agent_kb() - its knowledge base handle (never NULL for a loaded agent). */
Kb *agent_kb(Agent *a);
/** agent_vocab() - its knowledge base's term statistics as last read (they
 * may lag the database by a few seconds), or NULL if not read yet; valid
 * until the loop next runs. */
const KbVocab *agent_vocab(const Agent *a);
/** agent_kb_path() - the path of its knowledge database (for ingest workers). */
const char *agent_kb_path(const Agent *a);
/** agent_doc_count() - documents in its knowledge base now, or -errno. */
int agent_doc_count(Agent *a);
