/* plugin-host.c — the plugin loader and the host side of the plugin ABI:
 * dlopen + descriptor checks (refusing with one clear line), the host
 * service table (allocator, logging, config look-up, knowledge-base search)
 * and the wrappers the daemon calls. */
#include <math.h>
#include <pthread.h>
#include <stddef.h>

#include <moa/plugin.h>

#include "config.h"
#include "kb-text.h"
#include "log.h"
#include "plugin-host.h"
#include "plugin-module.h"

struct MoaHostContext {
        PluginAgent *agent;
};

struct PluginAgent {
        MoaHostContext ctx;
        unsigned n_ref;
        pthread_mutex_t lock; /* held by the thread inside the plugin */
        PluginCallState calls;
        char *kb_path;
        Kb *kb;               /* read-only, for the kb_search service; used under @lock */
        PluginModule *module; /* NULL for the generic expert */
        const MoaPlugin *desc;
        void *state;
        int initialised;
        int fresh; /* the module was loaded for this agent (not shared) */

        char *path;
        char *name;
        char *prompt;
        char *description;
        char **keys, **values;
        MoaKeyValue *kv;
        size_t n_options;
        MoaAgentInfo info;
        char *plugin_version, *plugin_description; /* the descriptor's, as valid UTF-8 */

        PluginKbSearchFunc kb_search;
        void *kb_userdata;
};

/* ---- strings from plugins ---------------------------------------------- */

/* Every string a plugin hands over reaches JSON, prompts and logs: invalid
 * UTF-8 is repaired (each bad byte becomes U+FFFD, NUL a space) at this one
 * boundary, so /v1/models, /v1/moa/agents, the route and answers agree.
 * Returns a malloc'ed copy of at most @max bytes of @s (NULL: ""), NULL on OOM. */
static char *plugin_text(const char *s, size_t max) {
        return kb_utf8_sanitize(s ? s : "", s ? strnlen(s, max) : 0, NULL);
}

/* Replaces the plugin-allocated *@p with its repaired copy. */
static int plugin_text_repair(char **p) {
        char *t;

        if (!*p)
                return 0;
        t = plugin_text(*p, PLUGIN_MAX_OUTPUT_BYTES);
        free(*p);
        *p = t;
        return t ? 0 : -ENOMEM;
}

/* Plugin names go into logs, metrics and the API: [a-z0-9_-], 1..64. */
static int plugin_name_valid(const char *s) {
        size_t n = s ? strnlen(s, 65) : 0;

        if (n == 0 || n > 64)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
                      s[i] == '-'))
                        return 0;
        return 1;
}

/* ---- host services ---------------------------------------------------- */

static void *host_alloc(uint64_t size) {
        if (size > PLUGIN_MAX_OUTPUT_BYTES * 4ULL)
                return NULL;
        return malloc(size ? (size_t) size : 1);
}

static void host_free(void *p) {
        free(p);
}

static char *host_strdup(const char *s) {
        return s ? strdup(s) : NULL;
}

static void host_log(MoaHostContext *ctx, int32_t level, const char *msg) {
        const char *name = ctx && ctx->agent ? ctx->agent->name : "?";
        if (level < LOG_LEVEL_ERR)
                level = LOG_LEVEL_ERR;
        if (level > LOG_LEVEL_DEBUG)
                level = LOG_LEVEL_DEBUG;
        log_full(level, 0, NULL, "agent %s (plugin): %.1000s", name, msg ? msg : "");
}

static const char *host_config_get(MoaHostContext *ctx, const char *key) {
        if (!ctx || !ctx->agent || !key)
                return NULL;
        PluginAgent *a = ctx->agent;
        if (streq(key, "name"))
                return a->name;
        if (streq(key, "prompt"))
                return a->prompt;
        if (streq(key, "description"))
                return a->description;
        for (size_t i = 0; i < a->n_options; i++)
                if (streq(a->keys[i], key))
                        return a->values[i];
        return NULL;
}

/* What host_kb_search hands out: the plugin sees only view[]; the KbHit
 * array that owns the strings sits in front of it. */
typedef struct HitBlock {
        KbHit *hits;
        size_t n;
        MoaKbHit view[];
} HitBlock;

static void fill_view(MoaKbHit *v, const KbHit *h) {
        *v = (MoaKbHit){
                .title = h->title ? h->title : "",
                .source = h->source ? h->source : "",
                .snippet = h->snippet ? h->snippet : "",
                .text = h->text ? h->text : "",
                .score = h->score,
                .chunk = h->chunk,
        };
}

static int32_t host_kb_search(MoaHostContext *ctx, const char *query, uint32_t limit, MoaKbHit **ret_hits,
                              uint32_t *ret_n) {
        if (!ctx || !ctx->agent || !query || !ret_hits || !ret_n)
                return -EINVAL;
        PluginAgent *a = ctx->agent;
        if (!a->kb_search && !a->kb_path)
                return -ENOTSUP;
        limit = MIN(limit, MOA_PLUGIN_MAX_HITS);
        if (limit == 0) {
                *ret_hits = NULL;
                *ret_n = 0;
                return 0;
        }
        KbHit *hits = NULL;
        size_t n = 0;
        int r = 0;
        if (a->kb_path && !a->kb)
                r = kb_open(a->kb_path, 1, &a->kb);
        if (r >= 0)
                r = a->kb ? kb_search(a->kb, query, limit, &hits, &n)
                          : a->kb_search(a->kb_userdata, query, limit, &hits, &n);
        if (r < 0)
                return r;
        if (n == 0) {
                kb_hits_free(hits, n);
                *ret_hits = NULL;
                *ret_n = 0;
                return 0;
        }
        size_t n_all = n;
        n = MIN(n, (size_t) limit);
        HitBlock *b = malloc(sizeof(HitBlock) + n * sizeof(MoaKbHit));
        if (!b) {
                kb_hits_free(hits, n_all);
                return -ENOMEM;
        }
        b->hits = hits;
        b->n = n_all;
        for (size_t i = 0; i < n; i++)
                fill_view(&b->view[i], &hits[i]);
        *ret_hits = b->view;
        *ret_n = (uint32_t) n;
        return 0;
}

static void host_kb_hits_free(MoaKbHit *hits, uint32_t n) {
        if (!hits)
                return;
        HitBlock *b = (HitBlock *) ((char *) hits - offsetof(HitBlock, view));
        kb_hits_free(b->hits, b->n);
        free(b);
}

static const MoaHost host_table = {
        .size = sizeof(MoaHost),
        .abi_major = MOA_PLUGIN_ABI_MAJOR,
        .abi_minor = MOA_PLUGIN_ABI_MINOR,
        .alloc = host_alloc,
        .free = host_free,
        .strdup = host_strdup,
        .log = host_log,
        .config_get = host_config_get,
        .kb_search = host_kb_search,
        .kb_hits_free = host_kb_hits_free,
};

/* ---- loading ---------------------------------------------------------- */

PluginAgent *plugin_agent_ref(PluginAgent *a) {
        if (a)
                a->n_ref++;
        return a;
}

PluginAgent *plugin_agent_unref(PluginAgent *a) {
        if (!a || --a->n_ref > 0)
                return NULL;
        if (a->calls.release)
                a->calls.release(&a->calls); /* its call thread is idle: ended before fini */
        if (a->initialised && a->desc && a->desc->fini)
                a->desc->fini(a->state);
        plugin_module_unref(a->module);
        kb_close(a->kb);
        free(a->kb_path);
        pthread_mutex_destroy(&a->lock);
        for (size_t i = 0; i < a->n_options; i++) {
                free(a->keys[i]);
                free(a->values[i]);
        }
        free(a->keys);
        free(a->values);
        free(a->kv);
        free(a->path);
        free(a->name);
        free(a->prompt);
        free(a->description);
        free(a->plugin_version);
        free(a->plugin_description);
        free(a);
        return NULL;
}

PluginAgent *plugin_agent_free(PluginAgent *a) {
        return plugin_agent_unref(a);
}

PluginCallState *plugin_agent_call_state(PluginAgent *a) {
        return &a->calls;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(PluginAgent *, plugin_agent_free);

static int copy_spec(PluginAgent *a, const PluginAgentSpec *spec) {
        a->path = strdup(spec->path ? spec->path : PLUGIN_GENERIC_PATH);
        a->name = strdup(spec->name);
        if (!a->path || !a->name)
                return -ENOMEM;
        if (spec->prompt && !(a->prompt = strdup(spec->prompt)))
                return -ENOMEM;
        if (spec->description && !(a->description = strdup(spec->description)))
                return -ENOMEM;
        size_t n = spec->options ? MIN(spec->n_options, (size_t) PLUGIN_MAX_OPTIONS) : 0;
        if (n > 0) {
                a->keys = calloc(n, sizeof(char *));
                a->values = calloc(n, sizeof(char *));
                a->kv = calloc(n, sizeof(MoaKeyValue));
                if (!a->keys || !a->values || !a->kv)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        const KeyValue *o = &spec->options[i];
                        a->keys[i] = strdup(o->key ? o->key : "");
                        a->values[i] = strdup(o->value ? o->value : "");
                        a->n_options = i + 1;
                        if (!a->keys[i] || !a->values[i])
                                return -ENOMEM;
                        a->kv[i] = (MoaKeyValue){.key = a->keys[i], .value = a->values[i]};
                }
        }
        a->info = (MoaAgentInfo){
                .size = sizeof(MoaAgentInfo),
                .name = a->name,
                .prompt = a->prompt,
                .options = a->kv,
                .n_options = (uint32_t) a->n_options,
                .weight = spec->weight,
        };
        if (spec->kb_path && !(a->kb_path = strdup(spec->kb_path)))
                return -ENOMEM;
        a->kb_search = spec->kb_search;
        a->kb_userdata = spec->kb_userdata;
        return 0;
}

/* Set *ret_error (may be NULL) to a malloc'ed reason; returns @r. */
static _printf_(3, 4) int refuse(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return r;
}

/* The descriptor checks, in the order plugin.h documents. */
static int check_descriptor(const MoaPlugin *d, char **ret_error) {
        if (d->abi_major != MOA_PLUGIN_ABI_MAJOR)
                return refuse(ret_error, -EPROTO,
                              "built for plugin ABI %u.%u, this host speaks %u.%u (major must match)",
                              (unsigned) d->abi_major, (unsigned) d->abi_minor, MOA_PLUGIN_ABI_MAJOR,
                              MOA_PLUGIN_ABI_MINOR);
        if (d->size < MOA_PLUGIN_MIN_SIZE)
                return refuse(ret_error, -ENOEXEC, "descriptor is %u bytes, ABI %u needs at least %u",
                              (unsigned) d->size, MOA_PLUGIN_ABI_MAJOR, (unsigned) MOA_PLUGIN_MIN_SIZE);
        if (!d->signature || !streq(d->signature, MOA_PLUGIN_SIGNATURE))
                return refuse(ret_error, -EPROTO,
                              "build signature \"%.64s\" does not match the host's \"%s\"",
                              d->signature ? d->signature : "(null)", MOA_PLUGIN_SIGNATURE);
        if (!plugin_name_valid(d->name))
                return refuse(ret_error, -EINVAL, "descriptor has no valid name (1 to 64 of a-z 0-9 _ -)");
        if (!d->score || !d->build_prompt)
                return refuse(ret_error, -EINVAL, "required callback %s is NULL",
                              !d->score ? "score" : "build_prompt");
        return 0;
}

/* Load a->path (a private copy of it, see plugin-module.h) and check its
 * descriptor; sets a->module and a->desc. */
static int plugin_open(PluginAgent *a, char **ret_error) {
        int r, fresh = 0;

        r = plugin_module_open(a->path, &a->module, &fresh, ret_error);
        if (r < 0)
                return r;
        void *sym = plugin_module_sym(a->module, MOA_PLUGIN_ENTRY_SYMBOL);
        if (!sym)
                return refuse(ret_error, -ENOEXEC, "no entry symbol %s", MOA_PLUGIN_ENTRY_SYMBOL);
        MoaPluginEntryFunc entry;
        memcpy(&entry, &sym, sizeof(entry)); /* object pointer to function pointer, POSIX-sanctioned */
        const MoaPlugin *d = entry();
        if (!d)
                return refuse(ret_error, -ENOEXEC, "%s returned NULL", MOA_PLUGIN_ENTRY_SYMBOL);
        r = check_descriptor(d, ret_error);
        if (r < 0)
                return r;
        a->desc = d;
        a->fresh = fresh;
        return 0;
}

int plugin_agent_load(const PluginAgentSpec *spec, PluginAgent **ret, char **ret_error) {
        _cleanup_(plugin_agent_freep) PluginAgent *a = NULL;
        _cleanup_free_ char *why = NULL;
        int r;

        if (!spec || (spec->path && !*spec->path) || isempty(spec->name) || !ret)
                return -EINVAL;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->n_ref = 1;
        pthread_mutex_init(&a->lock, NULL);
        a->ctx.agent = a;
        r = copy_spec(a, spec);
        if (r < 0)
                return r;

        if (spec->path) {
                r = plugin_open(a, &why);
                if (r < 0)
                        goto refused;
        } else
                a->desc = plugin_generic_descriptor();

        const MoaPlugin *d = a->desc;
        a->plugin_version = plugin_text(d->version, 64);
        a->plugin_description = plugin_text(d->description, 1024);
        if (!a->plugin_version || !a->plugin_description)
                return -ENOMEM;
        if (d->init) {
                r = d->init(&host_table, &a->ctx, &a->info, &a->state);
                if (r < 0) {
                        if (r < -4095)
                                r = -EIO;
                        refuse(&why, r, "%s init failed: %s", d->name, strerror(-r));
                        goto refused;
                }
                if (r > 0)
                        log_warning("agent %s: plugin %s init returned %d, treating as success", a->name,
                                    d->name, r);
        }
        a->initialised = 1;

        log_info("agent %s: loaded plugin %s %s (ABI %u.%u) from %s%s", a->name, d->name, a->plugin_version,
                 (unsigned) d->abi_major, (unsigned) d->abi_minor, a->path,
                 spec->path && a->fresh ? " (a private copy)" : "");
        *ret = TAKE_PTR(a);
        return 0;

refused:
        if (r == -ENOMEM && !why)
                return r;
        if (why) /* the reason already says what the errno would */
                log_error("agent %s: refusing plugin %s: %s", a->name, a->path, why);
        else
                log_error_errno(r, "agent %s: refusing plugin %s", a->name, a->path);
        if (ret_error && asprintf(ret_error, "plugin %s: %s", a->path, why ? why : strerror(-r)) < 0)
                *ret_error = NULL;
        return r;
}

/* ---- calls ------------------------------------------------------------ */

static int plugin_error(int32_t r) {
        if (r >= 0)
                return -EBADMSG;
        return r < -4095 ? -EIO : r;
}

/* Enter the instance, or -EBUSY if another thread is in it. */
static int enter(PluginAgent *a) {
        return pthread_mutex_trylock(&a->lock) == 0 ? 0 : -EBUSY;
}

static void leave(PluginAgent *a) {
        pthread_mutex_unlock(&a->lock);
}

int plugin_agent_score(PluginAgent *a, const char *query, double *ret_score, char **ret_reason) {
        char reason[MOA_PLUGIN_REASON_MAX];
        double s = 0;

        if (!a || !query || !ret_score)
                return -EINVAL;
        if (enter(a) < 0)
                return -EBUSY;
        reason[0] = 0;
        int32_t r = a->desc->score(a->state, query, &s, reason, sizeof(reason));
        leave(a);
        if (r < 0)
                return plugin_error(r);
        reason[sizeof(reason) - 1] = 0;
        /* other-sense penalties (negative scores) exist since ABI 1.1 */
        double lo = a->desc->abi_minor >= 1 ? -1 : 0;
        if (isnan(s))
                s = 0;
        s = CLAMP(s, lo, 1.0);
        if (ret_reason) {
                char *t = plugin_text(reason, sizeof(reason));
                if (!t)
                        return -ENOMEM;
                *ret_reason = t;
        }
        *ret_score = s;
        return 0;
}

int plugin_agent_build_prompt(PluginAgent *a, const char *query, const KbHit *hits, size_t n_hits,
                              char **ret_system, char **ret_context) {
        _cleanup_free_ MoaKbHit *view = NULL;
        char *sys = NULL, *ctx = NULL;

        if (!a || !query || !ret_system || !ret_context || (n_hits && !hits))
                return -EINVAL;
        n_hits = MIN(n_hits, (size_t) MOA_PLUGIN_MAX_HITS);
        if (n_hits) {
                view = calloc(n_hits, sizeof(MoaKbHit));
                if (!view)
                        return -ENOMEM;
                for (size_t i = 0; i < n_hits; i++)
                        fill_view(&view[i], &hits[i]);
        }
        if (enter(a) < 0)
                return -EBUSY;
        int32_t r = a->desc->build_prompt(a->state, query, view, (uint32_t) n_hits, &sys, &ctx);
        leave(a);
        if (r < 0)
                return plugin_error(r);
        if (!sys) {
                free(ctx);
                log_error("agent %s: plugin %s build_prompt returned no system prompt", a->name,
                          a->desc->name);
                return -EBADMSG;
        }
        if (strnlen(sys, PLUGIN_MAX_OUTPUT_BYTES + 1) > PLUGIN_MAX_OUTPUT_BYTES ||
            (ctx && strnlen(ctx, PLUGIN_MAX_OUTPUT_BYTES + 1) > PLUGIN_MAX_OUTPUT_BYTES)) {
                free(sys);
                free(ctx);
                return -E2BIG;
        }
        if (plugin_text_repair(&sys) < 0 || plugin_text_repair(&ctx) < 0) {
                free(sys);
                free(ctx);
                return -ENOMEM;
        }
        *ret_system = sys;
        *ret_context = ctx;
        return 0;
}

int plugin_agent_has_review(const PluginAgent *a) {
        return a && a->desc->review;
}

int plugin_agent_review(PluginAgent *a, const char *answer, char **ret_answer) {
        char *out = NULL;

        if (!a || !answer || !ret_answer)
                return -EINVAL;
        if (a->desc->review) {
                if (enter(a) < 0)
                        return -EBUSY;
                int32_t r = a->desc->review(a->state, answer, &out);
                leave(a);
                if (r < 0)
                        return plugin_error(r);
                if (out && strnlen(out, PLUGIN_MAX_OUTPUT_BYTES + 1) > PLUGIN_MAX_OUTPUT_BYTES) {
                        free(out);
                        return -E2BIG;
                }
                if (plugin_text_repair(&out) < 0)
                        return -ENOMEM;
        }
        if (!out) {
                out = strdup(answer);
                if (!out)
                        return -ENOMEM;
        }
        *ret_answer = out;
        return 0;
}

const char *plugin_agent_name(const PluginAgent *a) {
        return a ? a->name : NULL;
}

int plugin_agent_is_generic(const PluginAgent *a) {
        return a && a->desc == plugin_generic_descriptor();
}

const char *plugin_agent_plugin_name(const PluginAgent *a) {
        return a ? a->desc->name : NULL;
}

const char *plugin_agent_version(const PluginAgent *a) {
        return a && a->plugin_version ? a->plugin_version : "";
}

const char *plugin_agent_description(const PluginAgent *a) {
        return a && a->plugin_description ? a->plugin_description : "";
}

const char *plugin_agent_path(const PluginAgent *a) {
        return a ? a->path : NULL;
}

void plugin_agent_abi(const PluginAgent *a, unsigned *ret_major, unsigned *ret_minor) {
        if (ret_major)
                *ret_major = a ? a->desc->abi_major : 0;
        if (ret_minor)
                *ret_minor = a ? a->desc->abi_minor : 0;
}
