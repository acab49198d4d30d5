/* SPDX-License-Identifier: MIT */
/* moa/plugin.h — the versioned ABI between moad (the host) and a specialist
 * agent plugin (a shared object loaded with dlopen(RTLD_NOW | RTLD_LOCAL)).
 *
 * A plugin exports exactly one symbol, MOA_PLUGIN_ENTRY_SYMBOL, a function
 * returning a pointer to a const, statically allocated MoaPlugin descriptor.
 * The host checks, in this order, and refuses the plugin with one log line
 * naming the reason if any check fails (the daemon keeps running with the
 * other agents):
 *
 *   1. the entry symbol exists;
 *   2. abi_major == MOA_PLUGIN_ABI_MAJOR (a minor may differ either way);
 *   3. size >= MOA_PLUGIN_MIN_SIZE (the size of a 1.0 descriptor);
 *   4. signature equals the host's MOA_PLUGIN_SIGNATURE (pointer width,
 *      byte order, double format);
 *   5. name is a non-empty string; score and build_prompt are not NULL;
 *   6. init (if not NULL) returns 0.
 *
 * Compatibility rules (how the ABI grows without breaking):
 *   - Only fixed-width types, pointers and double cross the boundary: no
 *     bool, size_t-dependent offsets, off_t or enums.
 *   - New descriptor fields are carved out of the spare[] array at the end,
 *     raising MOA_PLUGIN_ABI_MINOR; the host reads a field only if the
 *     plugin's size covers it (MOA_PLUGIN_HAS()).
 *   - New host services are appended to MoaHost; a plugin may call one only
 *     if host->size covers it (MOA_HOST_HAS()), as with redis modules.
 *   - Removing or reordering anything is a new ABI major.
 *
 * Memory and ownership:
 *   - Strings the plugin returns to the host (system prompt, context, the
 *     reviewed answer) are allocated with host->alloc (or host->strdup) and
 *     are freed by the host with host->free. A plugin never frees host
 *     memory with its own free(), and never returns static or stack memory
 *     through those out-parameters.
 *   - Pointers the host passes in (query, answer, hits, config strings) are
 *     borrowed: valid for the duration of the call only, except the
 *     MoaAgentInfo given to init and everything it points to, which stays
 *     valid until fini returns.
 *   - Per-instance state is the plugin's own (allocated however it likes in
 *     init, released in fini). One plugin .so can back several agents; each
 *     gets its own init/state/fini, so keep no mutable globals.
 *
 * Threading: the host calls one instance from one thread at a time, but not
 * always the same thread: score, build_prompt and review run on a host
 * thread with a time budget (init and fini on the daemon's loop). Keep
 * callbacks quick anyway: one over its budget is abandoned (the agent is
 * skipped for that request) and repeated overruns quarantine the agent.
 *
 * Building out of tree (--libs adds the helpers of <moa/plugin-util.h> and libm):
 *   cc -shared -fPIC $(pkg-config --cflags moa-plugin) my.c -o my.so $(pkg-config --libs moa-plugin)
 */
#ifndef MOA_PLUGIN_H
#define MOA_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** MOA_PLUGIN_ABI_MAJOR - incompatible changes; the host refuses any other. */
#define MOA_PLUGIN_ABI_MAJOR 1
/** MOA_PLUGIN_ABI_MINOR - additive changes (fields carved from spare[] or
 * wider value ranges). 1: score may be negative (other-sense penalty). */
#define MOA_PLUGIN_ABI_MINOR 1

/** MOA_PLUGIN_ENTRY_SYMBOL - the one symbol the host looks up with dlsym. */
#define MOA_PLUGIN_ENTRY_SYMBOL "moa_plugin_entry"

#define MOA_PLUGIN_STR2_(x) #x
#define MOA_PLUGIN_STR_(x) MOA_PLUGIN_STR2_(x)

/**
 * MOA_PLUGIN_SIGNATURE - a build signature, compared as a string by the host
 * (like nginx's NGX_MODULE_SIGNATURE): ABI major, pointer width, byte order,
 * and sizeof(double). A plugin built for another platform flavour is
 * refused even if its major matches.
 */
#define MOA_PLUGIN_SIGNATURE                                                                                \
        "moa-plugin/" MOA_PLUGIN_STR_(MOA_PLUGIN_ABI_MAJOR) "/p" MOA_PLUGIN_STR_(                           \
                __SIZEOF_POINTER__) "/o" MOA_PLUGIN_STR_(__BYTE_ORDER__) "/d" MOA_PLUGIN_STR_(__SIZEOF_DOUBLE__)

/* Log levels for MoaHost.log (syslog numbering). */
#define MOA_LOG_ERR 3
#define MOA_LOG_WARNING 4
#define MOA_LOG_NOTICE 5
#define MOA_LOG_INFO 6
#define MOA_LOG_DEBUG 7

/** MOA_PLUGIN_REASON_MAX - size of the buffer score() writes its reason to. */
#define MOA_PLUGIN_REASON_MAX 160

/** MOA_PLUGIN_MAX_HITS - the host never passes more hits than this. */
#define MOA_PLUGIN_MAX_HITS 64

/**
 * struct MoaKbHit - one retrieved passage of the agent's knowledge base.
 * @title:   document title, for citations (never NULL).
 * @source:  where the document came from, may be "" (never NULL).
 * @snippet: a short excerpt around the matched terms (never NULL).
 * @text:    the whole chunk (never NULL).
 * @score:   relevance, > 0, larger is better; only comparable within one
 *           search.
 * @chunk:   the chunk's index in its document, 0-based.
 * @reserved: zero.
 *
 * All strings are UTF-8, NUL-terminated and borrowed from the host.
 */
typedef struct MoaKbHit {
        const char *title;
        const char *source;
        const char *snippet;
        const char *text;
        double score;
        uint32_t chunk;
        uint32_t reserved;
} MoaKbHit;

/**
 * struct MoaKeyValue - one plugin option from the agent's configuration
 * (the `options:` map of its agents.d file). Both strings non-NULL.
 */
typedef struct MoaKeyValue {
        const char *key;
        const char *value;
} MoaKeyValue;

/**
 * struct MoaAgentInfo - the agent a plugin instance serves, given to init.
 * Valid (with everything it points to) until fini returns.
 * @size:      sizeof(MoaAgentInfo) as the host knows it; read a field only
 *             if @size covers it.
 * @reserved0: zero.
 * @name:      the agent's name (e.g. "legal"); never NULL.
 * @prompt:    the configured system prompt, or NULL: then the plugin uses
 *             its own default prompt.
 * @options:   the agent's options, @n_options entries (may be NULL if 0).
 * @n_options: number of options.
 * @reserved1: zero.
 * @weight:    the agent's configured weight (informational).
 * @spare:     zero; room for later fields.
 */
typedef struct MoaAgentInfo {
        uint32_t size;
        uint32_t reserved0;
        const char *name;
        const char *prompt;
        const MoaKeyValue *options;
        uint32_t n_options;
        uint32_t reserved1;
        double weight;
        void *spare[4];
} MoaAgentInfo;

/* Opaque: identifies the agent instance to the host in service calls. */
typedef struct MoaHostContext MoaHostContext;

/**
 * struct MoaHost - services the host offers to plugins. The table is const
 * and owned by the host, valid until the plugin is unloaded. New functions
 * are appended: check MOA_HOST_HAS(host, field) before calling any function
 * added after ABI 1.0 (all functions below are present in 1.0).
 *
 * @size:      sizeof(MoaHost) as the host was built; the first field,
 *             always readable.
 * @abi_major: the host's MOA_PLUGIN_ABI_MAJOR.
 * @abi_minor: the host's MOA_PLUGIN_ABI_MINOR.
 * @reserved0: zero.
 *
 * @alloc:  allocate @size bytes (uninitialised); NULL on failure. Use it for
 *          every string returned to the host.
 * @free:   release memory from @alloc/@strdup or from @kb_search; NULL is a
 *          no-op.
 * @strdup: duplicate a NUL-terminated string with @alloc; NULL on failure.
 *
 * @log:    log one line @msg at @level (MOA_LOG_*), attributed to the
 *          agent identified by @ctx. No trailing newline needed.
 *
 * @config_get: the value of option @key of the agent identified by @ctx, or
 *          NULL if unset. The returned string is borrowed and stays valid
 *          until fini returns. The keys "name" and "prompt" cannot be
 *          options: they return the agent's name and configured prompt.
 *
 * @kb_search: search the agent's own knowledge base for @query, at most
 *          @limit (<= MOA_PLUGIN_MAX_HITS) passages, best first. On success
 *          returns 0 and sets *@ret_hits (an array the plugin releases with
 *          @kb_hits_free, NULL if none) and *@ret_n. Returns a negative
 *          errno on failure (-ENOTSUP when the agent has no knowledge base).
 *          The daemon already gives build_prompt the hits for its query;
 *          use this for extra look-ups (e.g. a rewritten query). Do not
 *          call it from init (the knowledge base may not be ready yet);
 *          call it from score, build_prompt or review only.
 * @kb_hits_free: release what @kb_search returned; (NULL, 0) is a no-op.
 */
typedef struct MoaHost {
        uint32_t size;
        uint32_t abi_major;
        uint32_t abi_minor;
        uint32_t reserved0;

        void *(*alloc)(uint64_t size);
        void (*free)(void *p);
        char *(*strdup)(const char *s);

        void (*log)(MoaHostContext *ctx, int32_t level, const char *msg);

        const char *(*config_get)(MoaHostContext *ctx, const char *key);

        int32_t (*kb_search)(MoaHostContext *ctx, const char *query, uint32_t limit, MoaKbHit **ret_hits,
                             uint32_t *ret_n);
        void (*kb_hits_free)(MoaKbHit *hits, uint32_t n);
} MoaHost;

/**
 * MOA_HOST_HAS() - true if the host table @h is large enough to hold
 * member @field (so reading it is safe).
 */
#define MOA_HOST_HAS(h, field)                                                                              \
        ((h) &&                                                                                             \
         (uint64_t) (h)->size >= (uint64_t) __builtin_offsetof(MoaHost, field) + sizeof((h)->field) &&      \
         (h)->field != 0)

/**
 * struct MoaPlugin - the descriptor the entry function returns. Const and
 * static in the plugin; the host never writes to it.
 *
 * @abi_major: MOA_PLUGIN_ABI_MAJOR the plugin was built with.
 * @abi_minor: MOA_PLUGIN_ABI_MINOR the plugin was built with.
 * @size:      sizeof(MoaPlugin) the plugin was built with.
 * @flags:     zero (reserved for capability bits).
 * @signature: MOA_PLUGIN_SIGNATURE.
 * @name:        short identifier, [a-z0-9_-], e.g. "legal". Required.
 * @version:     the plugin's own version string, e.g. "1.2.0". May be NULL.
 * @description: one line for `GET /v1/moa/agents`. May be NULL.
 *
 * @init: optional. Called once per agent instance after the checks above,
 *        with the host table (keep the pointer), the instance's context
 *        (pass it to host services) and its configuration. Set *@ret_state
 *        to the instance's state (may stay NULL). Return 0, or a negative
 *        errno to refuse: then fini is not called, and the plugin must have
 *        released anything it allocated.
 *
 * @score: required. How well the agent fits @query (UTF-8, may be long, may
 *        be in any language): write a value in [0, 1] to *@ret_score, or
 *        since ABI 1.1 a value in [-1, 0) when the query uses the domain's
 *        words in another sense ("legal move" in chess, a pet python): the
 *        router takes it as evidence against the agent. (Values outside are
 *        clamped, NaN counts as 0; a plugin built for ABI 1.0 is clamped to
 *        [0, 1], and a 1.0 host clamps negative scores to 0.) And a short
 *        human-readable reason, NUL-terminated, into @reason (a host buffer
 *        of @reason_size >= 1 bytes; truncate to fit). Return 0 or a
 *        negative errno (the agent then counts as 0 for this query).
 *        Deterministic, cheap: it runs for every agent on every request.
 *
 * @build_prompt: required. Build the messages the agent sends upstream for
 *        @query: *@ret_system, the system prompt (the configured one from
 *        MoaAgentInfo.prompt if set, else the plugin's default) and
 *        *@ret_context, the retrieved context formatted the plugin's way
 *        from @hits (@n_hits <= MOA_PLUGIN_MAX_HITS entries, best first;
 *        may be 0: then *@ret_context may be set to NULL). Both strings
 *        come from host->alloc; the host frees them. On failure return a
 *        negative errno and leave both out-parameters untouched (free what
 *        you allocated).
 *
 * @review: optional (NULL: answers pass unchanged). Post-process the
 *        final @answer before it is shown (it may end in a newline, as the
 *        builtin provider's answers do: trim trailing blanks before
 *        appending anything): disclaimers,
 *        redaction of personal data the plugin recognises, code fencing.
 *        Set *@ret_answer to a new string from host->alloc, or to NULL to
 *        keep @answer unchanged. Return 0 or a negative errno (the host
 *        then keeps @answer and logs the error).
 *
 * @fini: optional. Release the instance's state. Called once, after the
 *        last other callback, only if init succeeded (or was NULL).
 *
 * @spare: NULL; room for later callbacks (each raises ABI minor).
 */
typedef struct MoaPlugin {
        uint32_t abi_major;
        uint32_t abi_minor;
        uint32_t size;
        uint32_t flags;
        const char *signature;

        const char *name;
        const char *version;
        const char *description;

        int32_t (*init)(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                        void **ret_state);
        int32_t (*score)(void *state, const char *query, double *ret_score, char *reason,
                         uint32_t reason_size);
        int32_t (*build_prompt)(void *state, const char *query, const MoaKbHit *hits, uint32_t n_hits,
                                char **ret_system, char **ret_context);
        int32_t (*review)(void *state, const char *answer, char **ret_answer);
        void (*fini)(void *state);

        void *spare[8];
} MoaPlugin;

/** MOA_PLUGIN_MIN_SIZE - smallest descriptor the host accepts (ABI 1.0). */
#define MOA_PLUGIN_MIN_SIZE ((uint32_t) sizeof(MoaPlugin))

/**
 * MOA_PLUGIN_HAS() - true if descriptor @p is large enough to hold member
 * @field; for fields added in later minors.
 */
#define MOA_PLUGIN_HAS(p, field)                                                                            \
        ((uint64_t) (p)->size >= (uint64_t) __builtin_offsetof(MoaPlugin, field) + sizeof((p)->field))

/**
 * MOA_PLUGIN_HEADER - initialiser for the first five fields of a MoaPlugin:
 *   static const MoaPlugin desc = { MOA_PLUGIN_HEADER, .name = "x", ... };
 */
#define MOA_PLUGIN_HEADER                                                                                   \
        .abi_major = MOA_PLUGIN_ABI_MAJOR, .abi_minor = MOA_PLUGIN_ABI_MINOR,                               \
        .size = (uint32_t) sizeof(MoaPlugin), .flags = 0, .signature = MOA_PLUGIN_SIGNATURE

/** MOA_PLUGIN_EXPORT - default visibility even under -fvisibility=hidden. */
#define MOA_PLUGIN_EXPORT __attribute__((visibility("default")))

/**
 * moa_plugin_entry() - the plugin's one exported symbol: return the address
 * of its static const descriptor. Called once per load, before anything
 * else; must not allocate or have side effects.
 */
typedef const MoaPlugin *(*MoaPluginEntryFunc)(void);

/**
 * MOA_PLUGIN_DEFINE() - define the entry symbol returning @desc:
 *   MOA_PLUGIN_DEFINE(my_descriptor)
 */
#define MOA_PLUGIN_DEFINE(desc)                                                                             \
        MOA_PLUGIN_EXPORT const MoaPlugin *moa_plugin_entry(void);                                          \
        MOA_PLUGIN_EXPORT const MoaPlugin *moa_plugin_entry(void) {                                         \
                return &(desc);                                                                             \
        }

#ifdef __cplusplus
}
#endif

#endif /* MOA_PLUGIN_H */
