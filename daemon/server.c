/* server.c — Runtime lifecycle (config + agents + engine), reload, and the
 * upstream quick switch (OPENAI_BASE_URL / --upstream). */
#include "agents.h"
#include "log.h"
#include "server.h"
#include "util.h"

Runtime *runtime_ref(Runtime *rt) {
        if (rt)
                rt->n_ref++;
        return rt;
}

void runtime_free_now(Runtime *rt) {
        if (!rt)
                return;
        rt->destroy = sd_event_source_disable_unref(rt->destroy);
        engine_free(rt->engine);
        agents_free(rt->agents);
        if (rt->bearer_token) {
                explicit_bzero(rt->bearer_token, strlen(rt->bearer_token));
                free(rt->bearer_token);
        }
        config_free(rt->config);
        sd_event_unref(rt->event);
        free(rt);
}

static Runtime *dying; /* unreferenced, freed from a defer source */

static void dying_remove(Runtime *rt) {
        for (Runtime **p = &dying; *p; p = &(*p)->next_dying)
                if (*p == rt) {
                        *p = rt->next_dying;
                        return;
                }
}

static int on_runtime_destroy(sd_event_source *s, void *userdata) {
        Runtime *rt = userdata;

        log_debug("freeing configuration generation %llu", (unsigned long long) rt->generation);
        dying_remove(rt);
        runtime_free_now(rt);
        return 0;
}

Runtime *runtime_unref(Runtime *rt) {
        if (!rt || --rt->n_ref > 0)
                return NULL;
        /* Inside a callback of the loop: defer. Before or after the loop: now. */
        if (rt->event && sd_event_get_state(rt->event) == SD_EVENT_RUNNING &&
            sd_event_add_defer(rt->event, &rt->destroy, on_runtime_destroy, rt) >= 0) {
                (void) sd_event_source_set_description(rt->destroy, "runtime-destroy");
                rt->next_dying = dying;
                dying = rt;
                return NULL;
        }
        runtime_free_now(rt);
        return NULL;
}

void runtime_reap(void) {
        while (dying) {
                Runtime *rt = dying;
                dying = rt->next_dying;
                runtime_free_now(rt);
        }
}

static int strdup_into(char **dst, const char *src) {
        char *p = src ? strdup(src) : NULL;
        if (src && !p)
                return -ENOMEM;
        free(*dst);
        *dst = p;
        return 0;
}

/* The quick switch: one OpenAI-compatible endpoint for every agent and the
 * aggregator, without editing YAML. The key is read from OPENAI_API_KEY by
 * the provider (never stored in the config). */
static int config_apply_upstream(Config *c, const char *url) {
        const char *model = getenv("OPENAI_MODEL");
        ProviderConfig *p;

        p = realloc(c->providers, (c->n_providers + 1) * sizeof *p);
        if (!p)
                return -ENOMEM;
        c->providers = p;
        p = &c->providers[c->n_providers];
        memset(p, 0, sizeof *p);
        p->type = PROVIDER_OPENAI;
        p->temperature = -1;
        p->max_retries = 2;
        p->name = strdup("upstream");
        p->base_url = strdup(url);
        p->api_key_env = strdup("OPENAI_API_KEY");
        p->model = strdup(model ? model : "gpt-4o-mini");
        c->n_providers++;
        if (!p->name || !p->base_url || !p->api_key_env || !p->model)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_agents; i++) {
                if (strdup_into(&c->agents[i].provider, "upstream") < 0)
                        return -ENOMEM;
                if (model && strdup_into(&c->agents[i].model, model) < 0)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < c->n_pipelines; i++)
                for (size_t k = 0; k < c->pipelines[i].n_layers; k++)
                        if (c->pipelines[i].layers[k].role == LAYER_AGGREGATE &&
                            strdup_into(&c->pipelines[i].layers[k].agent, "upstream") < 0)
                                return -ENOMEM;
        log_info("upstream quick switch: every agent uses %s (model %s)", url, p->model);
        return 0;
}

/* The token file holds one line; surrounding whitespace is not part of it. */
static int read_token(const char *path, char **ret) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char buf[1024];
        size_t n;

        if (!f)
                return -errno;
        n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
                buf[--n] = 0;
        if (n < 16) {
                explicit_bzero(buf, sizeof buf);
                return -EINVAL;
        }
        *ret = strdup(buf);
        explicit_bzero(buf, sizeof buf);
        return *ret ? 0 : -ENOMEM;
}

int runtime_new(Server *s, Runtime **ret, char **ret_error) {
        Runtime *rt;
        const char *upstream = s->upstream_override ? s->upstream_override : getenv("OPENAI_BASE_URL");
        int r;

        rt = calloc(1, sizeof *rt);
        if (!rt)
                return -ENOMEM;
        rt->n_ref = 1;
        rt->event = sd_event_ref(s->event);
        r = config_load(s->config_path, s->agents_dir_override, &rt->config, ret_error);
        if (r < 0)
                goto fail;
        if (s->state_dir_override && (r = strdup_into(&rt->config->state_dir, s->state_dir_override)) < 0)
                goto fail;
        if (!isempty(upstream) && (r = config_apply_upstream(rt->config, upstream)) < 0)
                goto fail;
        if (rt->config->bearer_token_file) {
                r = read_token(rt->config->bearer_token_file, &rt->bearer_token);
                if (r < 0) {
                        if (ret_error &&
                            asprintf(ret_error, "%s: cannot read the bearer token (%s)",
                                     rt->config->bearer_token_file,
                                     r == -EINVAL ? "shorter than 16 characters" : strerror(-r)) < 0)
                                *ret_error = NULL;
                        goto fail;
                }
        }
        /* a reload keeps what did not change (learned router, term statistics) */
        r = agents_renew(rt->config, s->runtime ? s->runtime->agents : NULL, &rt->agents);
        if (r < 0) {
                if (ret_error && asprintf(ret_error, "cannot load agents: %s", strerror(-r)) < 0)
                        *ret_error = NULL;
                goto fail;
        }
        r = engine_new(s->event, rt->config, rt->agents, &rt->engine);
        if (r < 0) {
                if (ret_error && asprintf(ret_error, "cannot create providers: %s", strerror(-r)) < 0)
                        *ret_error = NULL;
                goto fail;
        }
        rt->generation = ++s->generation;
        *ret = rt;
        return 0;
fail:
        runtime_free_now(rt);
        return r;
}

int server_reload(Server *s, char **ret_error) {
        Runtime *rt = NULL;
        int r;

        log_info("reloading configuration");
        r = runtime_new(s, &rt, ret_error);
        if (r < 0) {
                log_error("reload failed, keeping the active configuration: %s",
                          ret_error && *ret_error ? *ret_error : strerror(-r));
                return r;
        }
        /* In-flight requests keep their reference to the old runtime. */
        runtime_unref(s->runtime);
        s->runtime = rt;
        const AgentRefusals *rs = agents_refused(rt->agents);
        if (rs->n == 0) {
                log_info("configuration reloaded (generation %llu, %zu agents)",
                         (unsigned long long) rt->generation, agents_count(rt->agents));
                return 0;
        }
        char names[512] = "";
        for (size_t i = 0, o = 0; i < rs->n && o < sizeof names; i++) {
                int m = snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", rs->v[i].agent);
                if (m < 0)
                        break;
                o += (size_t) m;
        }
        log_warning("configuration reloaded (generation %llu, %zu agents) without %zu refused agent(s): %s",
                    (unsigned long long) rt->generation, agents_count(rt->agents), rs->n, names);
        return 0;
}
