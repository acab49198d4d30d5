/* plugin-call.h — plugin callbacks off the event loop, each with a time
 * budget. A plugin is code we do not control: a score() that sleeps must
 * not stall every other request. Each agent's calls run on a thread of
 * that agent's (started at its first call, ended when the agent is freed);
 * the loop hears the results through an eventfd. An agent's calls run one
 * at a time, in order (plugin.h promises one thread at a time per instance),
 * so a stuck plugin holds up its own agent only.
 *
 * A call still running when its budget ends is answered -ETIMEDOUT at once
 * (the caller goes on without the agent), logged with agent, callback and
 * elapsed time, and counted (moad_plugin_timeouts_total). The thread cannot
 * be killed: it stays "stuck" until the plugin returns, its late result is
 * then freed on the loop, and the agent is refused new calls meanwhile.
 * After max_timeouts offences the agent is quarantined: refused without a
 * call until the next reload (which loads new agents). The references a
 * call holds keep its PluginAgent (and the plugin's code) alive while a
 * thread may be in it. Loop thread only, except where said. */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "kb.h"
#include "plugin-host.h"

typedef struct PluginCall PluginCall;

typedef enum PluginCallback {
        PLUGIN_CB_SCORE,
        PLUGIN_CB_BUILD_PROMPT,
        PLUGIN_CB_REVIEW,
        _PLUGIN_CB_MAX,
} PluginCallback;

/** plugin_callback_name() - "score", "build_prompt", "review". */
const char *plugin_callback_name(PluginCallback cb);

/**
 * struct PluginBudget - the limits a call runs under (limits.plugin_* in
 * the configuration; copied at submission).
 * @usec:         the budget of each callback: the time inside the plugin
 *                (a call waiting behind the agent's previous one waits at
 *                most for that one's budget, then gets -EBUSY).
 * @max_timeouts: offences after which the agent is quarantined.
 * @max_stuck:    threads over budget (all agents) past which every new call
 *                is refused.
 */
typedef struct PluginBudget {
        uint64_t usec[_PLUGIN_CB_MAX];
        unsigned max_timeouts;
        unsigned max_stuck;
} PluginBudget;

/** plugin_budget_from_limits() - the budget limits.plugin_* configure. */
PluginBudget plugin_budget_from_limits(const LimitsConfig *l);

/* A function run on the agent's call thread (instead of one callback); it
 * may call the plugin_agent_* wrappers. Returns 0 or -errno. */
typedef int (*PluginCallFn)(PluginAgent *a, void *data);

/**
 * struct PluginCallInput - what a call needs; every pointer is taken by
 * plugin_call_start() (also on failure) and freed with the call.
 * @text:   the query (score, build_prompt) or the answer (review).
 * @hits:   build_prompt's passages (@n_hits), freed with kb_hits_free().
 * @fn:     if set, run fn(agent, @data) instead of the callback; the
 *          budget and the offence are the callback's.
 * @data:   @fn's data, handed to the result; @data_free releases it
 *          unless the done callback took it.
 * @budget_usec: if not 0, this call's budget instead of the callback's
 *          (an @fn that calls the callback many times).
 */
typedef struct PluginCallInput {
        char *text;
        KbHit *hits;
        size_t n_hits;
        PluginCallFn fn;
        void *data;
        void (*data_free)(void *data);
        uint64_t budget_usec;
} PluginCallInput;

/**
 * struct PluginCallResult - what the done callback gets. It may take the
 * strings and @data (set the field to NULL); the rest is freed after it.
 * @error:   0, the plugin's -errno, -ETIMEDOUT (over budget), -EBUSY (the
 *           agent's previous call was over budget), -ENOMEM.
 * @elapsed_usec: from submission to the answer.
 */
typedef struct PluginCallResult {
        int error;
        uint64_t elapsed_usec;
        double score;
        char *reason;
        char *system, *context;
        char *text;
        void *data;
} PluginCallResult;

typedef void (*PluginCallDone)(void *userdata, PluginCallResult *res);

/**
 * plugin_call_start() - run @cb of @a (or @in->fn) on a thread, within
 * @budget; the generic expert's own callbacks (no @in->fn) run on the loop
 * instead, with no budget. @done runs on @e's loop exactly once, never from inside this
 * function, unless the call is cancelled. Returns 0 and the call in *@ret
 * (valid until @done runs or plugin_call_cancel()), or, without calling
 * anything: -EPERM (the agent is quarantined), -EBUSY (its previous call is
 * still running past its budget), -EAGAIN (max_stuck threads are), -ENOMEM.
 */
int plugin_call_start(sd_event *e, const PluginBudget *budget, PluginAgent *a, PluginCallback cb,
                      PluginCallInput *in, PluginCallDone done, void *userdata, PluginCall **ret);

/** plugin_call_cancel() - @done will not be called; NULL is a no-op. A
 * call its thread is in finishes there and its result is freed then. */
void plugin_call_cancel(PluginCall *c);

/** plugin_agent_quarantined() - whether @a is refused until the next reload. */
int plugin_agent_quarantined(PluginAgent *a);
/** plugin_agent_timeouts() - @a's calls that went over budget. */
unsigned plugin_agent_timeouts(PluginAgent *a);
/** plugin_agent_stuck() - whether a call of @a is running past its budget now. */
int plugin_agent_stuck(PluginAgent *a);

/** plugin_calls_stuck() - threads still inside a plugin past their budget. */
unsigned plugin_calls_stuck(void);

/** plugin_calls_shutdown() - release the completion source if no call is
 * left (a stuck thread's call keeps it; the process is ending anyway). */
void plugin_calls_shutdown(void);
