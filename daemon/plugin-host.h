/* plugin-host.h — loads one agent's plugin (dlopen RTLD_NOW|RTLD_LOCAL),
 * checks its ABI descriptor (include/moa/plugin.h), runs init with the host
 * service table bound to that agent, and wraps the plugin's callbacks in
 * daemon-style calls (negative errno, malloc'ed results the caller frees
 * with free()). The loader knows nothing about Kb handles: the knowledge
 * base search service calls back into whoever created the agent. */
#pragma once

#include <stddef.h>

#include "kb.h"

typedef struct PluginAgent PluginAgent;
typedef struct PluginCall PluginCall;

/**
 * struct PluginCallState - plugin-call.c's loop-side bookkeeping, kept with
 * the agent so that a reload (new agents) starts it afresh.
 * @running:     the call a thread is in (at most one per agent).
 * @head, @tail: calls waiting for it, in order.
 * @timeouts:    calls that went over their budget.
 * @quarantined: refused without a call until the agent is freed.
 * @stuck:       @running is past its budget.
 * @worker:      the agent's call thread, once started.
 * @release:     if set, run when the agent is freed (ends @worker).
 */
typedef struct PluginCallState {
        PluginCall *running;
        PluginCall *head, *tail;
        unsigned timeouts;
        int quarantined;
        int stuck;
        struct PluginWorker *worker;
        void (*release)(struct PluginCallState *st);
} PluginCallState;

/**
 * PluginKbSearchFunc - how the host's kb_search service reaches the agent's
 * knowledge base: same contract as kb_search() (hits freed with
 * kb_hits_free()). Returns 0 or -errno.
 */
typedef int (*PluginKbSearchFunc)(void *userdata, const char *query, unsigned limit, KbHit **ret_hits,
                                  size_t *ret_n);

/**
 * struct PluginAgentSpec - what plugin_agent_load() needs. Everything is
 * copied; the spec may be freed after the call.
 * @path:      the shared object to dlopen (absolute or relative path), or
 *             NULL for the generic expert built into the daemon.
 * @description: the agent's configured description, or NULL (plugins read
 *             it as config_get("description")).
 * @name:      the agent's name (config name, not the plugin's).
 * @prompt:    configured system prompt, or NULL for the plugin's default.
 * @weight:    the agent's weight (passed to the plugin for information).
 * @options:   the agent's plugin options (key/value strings), may be NULL.
 * @n_options: number of @options (at most PLUGIN_MAX_OPTIONS are used).
 * @kb_path:   the agent's knowledge database: the kb_search host service
 *             searches it over a read-only connection of the agent's own,
 *             opened at the first search (plugin callbacks run on threads;
 *             the loop's connections are the loop's). NULL: @kb_search.
 * @kb_search: implementation of the kb_search host service when @kb_path
 *             is NULL, or NULL (then the service returns -ENOTSUP).
 * @kb_userdata: passed to @kb_search.
 */
typedef struct PluginAgentSpec {
        const char *path;
        const char *name;
        const char *prompt;
        const char *description;
        double weight;
        const struct KeyValue *options;
        size_t n_options;
        const char *kb_path;
        PluginKbSearchFunc kb_search;
        void *kb_userdata;
} PluginAgentSpec;

#define PLUGIN_MAX_OPTIONS 256u
/* Answers/prompts from a plugin longer than this are refused (-E2BIG). */
#define PLUGIN_MAX_OUTPUT_BYTES (4u * 1024u * 1024u)

/**
 * plugin_agent_load() - load @spec->path (a private copy of it when the
 * file changed since it was last loaded, see plugin-module.h), look up
 * MOA_PLUGIN_ENTRY_SYMBOL, check ABI major, descriptor size, build
 * signature, name and required callbacks, then call the plugin's init.
 * Any refusal logs one error line naming the agent, the file and the
 * reason, sets *@ret_error (may be NULL) to that reason (malloc'ed) and
 * returns a negative errno: -ENOENT (file missing), -ENOEXEC (not loadable
 * / no entry symbol / bad descriptor), -EPROTO (ABI major or signature
 * mismatch), -EINVAL (missing required callback or name), or init's own
 * error. On success *@ret is a new agent (free with plugin_agent_free()).
 */
int plugin_agent_load(const PluginAgentSpec *spec, PluginAgent **ret, char **ret_error);

/** plugin_generic_descriptor() - the generic expert's descriptor (plugin-generic.c). */
const struct MoaPlugin *plugin_generic_descriptor(void);

/** PLUGIN_GENERIC_PATH - what plugin_agent_path() says for the generic expert. */
#define PLUGIN_GENERIC_PATH "(built-in generic expert)"

/** plugin_agent_ref() - one more reference (loop thread only). Returns @a. */
PluginAgent *plugin_agent_ref(PluginAgent *a);

/** plugin_agent_unref() - drop a reference; the last one calls fini, drops
 * the module (dlclosed with its last user) and frees. A call running on a
 * thread holds one, so the plugin's code stays while a thread is in it.
 * NULL is a no-op. Returns NULL. */
PluginAgent *plugin_agent_unref(PluginAgent *a);

/** plugin_agent_free() - plugin_agent_unref() of the owner's reference. */
PluginAgent *plugin_agent_free(PluginAgent *a);

/** plugin_agent_call_state() - see struct PluginCallState. */
PluginCallState *plugin_agent_call_state(PluginAgent *a);

/* The callback wrappers below may run on any thread. One thread at a time
 * is inside an instance (plugin.h): a wrapper called while another thread
 * is in the plugin returns -EBUSY at once rather than wait (waiting on the
 * loop for a stuck plugin would stall the daemon). */

/**
 * plugin_agent_score() - the plugin's score for @query, clamped to [0,1],
 * or to [-1,1] for plugins built for ABI 1.1 or later (a negative score is
 * an other-sense penalty); NaN -> 0. *@ret_reason (if not NULL) receives a malloc'ed short reason.
 * Returns 0 or a negative errno (outputs untouched on failure).
 */
int plugin_agent_score(PluginAgent *a, const char *query, double *ret_score, char **ret_reason);

/**
 * plugin_agent_build_prompt() - the system prompt and formatted context for
 * @query, given the retrieved @hits (at most MOA_PLUGIN_MAX_HITS of them are
 * passed on). Both results are malloc'ed; *@ret_context may be NULL when the
 * plugin has nothing to add. Returns 0 or a negative errno.
 */
int plugin_agent_build_prompt(PluginAgent *a, const char *query, const KbHit *hits, size_t n_hits,
                              char **ret_system, char **ret_context);

/** plugin_agent_has_review() - whether the plugin has a review hook at all. */
int plugin_agent_has_review(const PluginAgent *a);

/**
 * plugin_agent_review() - post-process @answer (disclaimers, redaction,
 * code fencing). *@ret_answer is always a new malloc'ed string on success
 * (a copy of @answer when the plugin leaves it unchanged or has no review
 * step). Returns 0 or a negative errno.
 */
int plugin_agent_review(PluginAgent *a, const char *answer, char **ret_answer);

/** plugin_agent_name() - the agent's (configured) name. */
const char *plugin_agent_name(const PluginAgent *a);
/**
 * plugin_agent_is_generic() - 1 for the generic expert (the host's own
 * code, no module loaded), else 0.
 */
int plugin_agent_is_generic(const PluginAgent *a);
/** plugin_agent_plugin_name() - the name in the plugin's descriptor. */
const char *plugin_agent_plugin_name(const PluginAgent *a);
/** plugin_agent_version() - the plugin's version string, "" if none. */
const char *plugin_agent_version(const PluginAgent *a);
/** plugin_agent_description() - the plugin's description, "" if none. */
const char *plugin_agent_description(const PluginAgent *a);
/** plugin_agent_path() - the file it was loaded from. */
const char *plugin_agent_path(const PluginAgent *a);
/** plugin_agent_abi() - the ABI major/minor the plugin was built with. */
void plugin_agent_abi(const PluginAgent *a, unsigned *ret_major, unsigned *ret_minor);
