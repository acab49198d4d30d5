/* config.h — the daemon's configuration: moad.yaml (listeners, providers,
 * pipelines, router, limits) plus agents.d/ (one YAML file per agent).
 * Parsed with libyaml; every error names file:line:column. A Config is
 * immutable once loaded: reload builds a new one and swaps it. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct KeyValue {
        char *key;
        char *value;
} KeyValue;

typedef enum ProviderType {
        PROVIDER_BUILTIN,
        PROVIDER_OPENAI,
} ProviderType;

typedef struct ProviderConfig {
        char *name;
        ProviderType type;
        char *base_url;     /* openai: e.g. http://127.0.0.1:8000/v1 */
        char *api_key_file; /* openai: read the key from this file ... */
        char *api_key_env;  /* ... or from this environment variable */
        char *model;        /* default model for agents using this provider */
        double temperature; /* < 0: not sent */
        int64_t max_tokens; /* <= 0: not sent */
        uint64_t connect_timeout_ms;
        uint64_t timeout_ms;    /* total per attempt */
        unsigned max_retries;   /* 0 = no retries (the loader's default is 2) */
        uint64_t retry_base_ms; /* first backoff; doubles, with jitter */
        uint64_t retry_max_ms;
        unsigned max_concurrency;  /* in-flight calls to this provider */
        unsigned max_queue;        /* calls waiting for a slot */
        unsigned breaker_failures; /* consecutive failures that open the circuit */
        uint64_t breaker_cooldown_ms;
        KeyValue *headers; /* extra HTTP headers */
        size_t n_headers;
        char **fallbacks; /* provider names tried when this one fails */
        size_t n_fallbacks;
} ProviderConfig;

typedef enum LayerRole {
        LAYER_PROPOSE,
        LAYER_REFINE,
        LAYER_AGGREGATE,
} LayerRole;

typedef struct LayerConfig {
        LayerRole role;
        double weight;       /* per-layer weight multiplier, default 1 */
        char *agent;         /* aggregate: which agent/provider synthesises (default "aggregator") */
        double quorum;       /* fraction of the layer that must answer, default 0.5 */
        uint64_t timeout_ms; /* layer deadline, 0 = pipeline deadline only */
} LayerConfig;

/* Defaults of a pipeline's staircase keys. */
#define CONFIG_STAIRCASE_QUORUM 1.0
#define CONFIG_STAIRCASE_MIN_CHARS 200u
#define CONFIG_STAIRCASE_MAX_CHARS 65536u

typedef struct PipelineConfig {
        char *name;
        char *description;
        LayerConfig *layers;
        size_t n_layers;
        char *refine_template;     /* NULL: built-in default */
        char *aggregate_template;  /* NULL: built-in default */
        unsigned self_moa_samples; /* > 0: one agent sampled n times */
        int early_aggregation;     /* the layer before the aggregator ends at its quorum */
        /* Staircase streaming: a layer starts on the previous layer's partial
         * text once staircase_quorum of its calls have staircase_min_chars
         * characters (or finished); see docs/engine.md. */
        int staircase;
        double staircase_quorum;
        unsigned staircase_min_chars;
        uint64_t deadline_ms;
} PipelineConfig;

typedef struct AgentConfig {
        char *name;
        char *file;        /* the agents.d file it came from */
        char *plugin;      /* plugin name: <plugin_dir>/<plugin>.so, or a path; NULL: a generic expert */
        char *description; /* what the agent knows, for people and the generic expert's prompt */
        char **examples;   /* example questions: inline 'examples:' then 'examples_file:' lines */
        size_t n_examples;
        double weight;
        char *provider;   /* provider name; default "builtin" */
        char *model;      /* overrides the provider's model */
        char *prompt;     /* overrides the plugin's default system prompt */
        char **knowledge; /* files/directories ingested when the KB is empty */
        size_t n_knowledge;
        char *language; /* text-search configuration (PostgreSQL backend); NULL: english */
        int enabled;
        KeyValue *options; /* free-form plugin options (config look-up) */
        size_t n_options;
} AgentConfig;

/* An agent's score is weight * sigmoid(z) with
 *   z = learned_weight * logit(learned) + lexicon_weight * lexicon
 *     + kb_weight * evidence + bias
 * (log-odds: each signal adds its evidence; see docs/routing.md). */
typedef struct RouterConfig {
        double threshold;       /* select agents scoring at least this */
        unsigned top_k;         /* at most this many */
        double lexicon_weight;  /* log-odds per unit of the plugin's lexicon score (a prior) */
        double learned_weight;  /* multiplies the learned classifier's log-odds */
        double kb_weight;       /* log-odds per unit of calibrated knowledge evidence */
        double bias;            /* log-odds every agent starts from */
        double floor;           /* below threshold: the best specialist still answers from here if it
                                   beats the fallback agent (0 = off) */
        double fallback_margin; /* a specialist must beat the fallback agent's own score by this */
        char *fallback;         /* agent used when none qualifies, default "general" */
} RouterConfig;

/* The defaults, chosen on the dev splits of the routing sets (docs/routing.md). */
#define ROUTER_CONFIG_DEFAULT                                                                               \
        ((RouterConfig){.threshold = 0.5,                                                                   \
                        .top_k = 3,                                                                         \
                        .lexicon_weight = 4.0,                                                              \
                        .learned_weight = 1.0,                                                              \
                        .kb_weight = 3.0,                                                                   \
                        .bias = -0.5,                                                                       \
                        .floor = 0.2,                                                                       \
                        .fallback_margin = 0.05})

typedef struct LimitsConfig {
        uint64_t max_body_bytes;
        unsigned max_messages;
        uint64_t max_message_bytes;
        unsigned max_connections;
        unsigned max_inflight; /* requests being processed */
        unsigned max_queue;    /* requests waiting; beyond: 429 */
        uint64_t request_timeout_ms;
        uint64_t idle_timeout_ms; /* HTTP connection idle timeout */
        uint64_t shutdown_timeout_ms;
        uint64_t max_ingest_bytes;
        uint64_t max_body_total_bytes;     /* every request body buffered at once */
        unsigned max_connections_per_peer; /* per uid (Unix socket) or address (TCP) */
        uint64_t header_timeout_ms;        /* a request's whole header block */
        uint64_t min_body_rate;            /* bytes/s, averaged after header_timeout_ms of grace */
        /* documents attached to one chat request (moa.documents) */
        unsigned max_ask_documents;
        uint64_t max_ask_document_bytes;
        uint64_t max_ask_bytes; /* all of them; the chat body may exceed max_body_bytes by this */
        /* plugin callbacks (plugin-call.h) */
        uint64_t plugin_score_ms;     /* score() budget */
        uint64_t plugin_call_ms;      /* build_prompt() and review() budget */
        unsigned plugin_max_timeouts; /* offences before quarantine */
        unsigned plugin_max_stuck;    /* threads past their budget before every call is refused */
} LimitsConfig;

/* Batch jobs (the Files and Batches API, daemon/jobs.c). */
typedef struct JobsConfig {
        unsigned concurrency;          /* batch lines in flight at once, over all batches */
        uint64_t max_upload_bytes;     /* one uploaded file */
        unsigned max_lines;            /* requests in one batch input file */
        uint64_t max_line_bytes;       /* one line of a batch input file */
        unsigned max_files;            /* uploaded files kept at once */
        unsigned batch_window_seconds; /* a batch's completion window ("24h"), then it expires */
        /* Shared jobs (knowledge.backend: postgresql): how long a batch's
         * owner holds it without a heartbeat before another instance may
         * take it over, and how long a jobs call on the loop may wait for
         * the database. */
        unsigned lease_seconds;
        unsigned db_timeout_ms;
        /* Directories below which an admin may have moad ingest/sync a
         * directory itself (server-side ingest jobs); none: that is off. */
        char **ingest_roots;
        size_t n_ingest_roots;
} JobsConfig;

/* Who may use an endpoint class, by peer credentials (SO_PEERCRED) on the
 * Unix socket. Names are resolved when the config is loaded. A rule with no
 * users and no groups is "unset": ask is then open to every peer that can
 * connect (the socket's mode and group are the gate), admin to root and the
 * daemon's own user. Root is always allowed. */
typedef struct AccessRule {
        uid_t *uids;
        size_t n_uids;
        gid_t *gids;
        size_t n_gids;
} AccessRule;

typedef struct AccessConfig {
        AccessRule ask;   /* chat, route, models, agents and documents read */
        AccessRule admin; /* ingest, delete documents, reload */
        /* The TCP listener's admin token (from listen.admin_token_file),
         * owned by the Runtime that loaded it; NULL: no admin over TCP. */
        const char *tcp_admin_token;
} AccessConfig;

typedef enum KnowledgeBackend {
        KNOWLEDGE_SQLITE,     /* one database file per agent under state_dir/kb */
        KNOWLEDGE_POSTGRESQL, /* one shared database (kb-pg.c) */
} KnowledgeBackend;

/* Where the knowledge bases live (moad.yaml knowledge:). */
typedef struct KnowledgeConfig {
        KnowledgeBackend backend;
        char *conninfo;      /* libpq connection string or URI ("service=NAME"); never a password */
        char *read_conninfo; /* the search pool's (a standby), or NULL: conninfo */
        char *password_file; /* the password alone, or NULL: PGPASSFILE / ~/.pgpass */
        unsigned connect_timeout_s;
        unsigned statement_timeout_ms;
        unsigned pool_size;           /* search connections per event loop */
        unsigned pool_queue;          /* searches waiting for one, per event loop */
        unsigned search_prune_chunks; /* from this many chunks searches start from rare terms; 0: never */
} KnowledgeConfig;

typedef struct Config {
        char *file; /* moad.yaml path, NULL if defaults only */
        char *socket_path;
        unsigned socket_mode;
        char *tcp_listen; /* "host:port", NULL = none */
        char *bearer_token_file;
        char *admin_token_file;
        char *agents_dir;
        char *plugin_dir;
        char *state_dir; /* knowledge databases */
        int log_level;
        char *default_pipeline;
        ProviderConfig *providers;
        size_t n_providers;
        PipelineConfig *pipelines;
        size_t n_pipelines;
        AgentConfig *agents;
        size_t n_agents;
        RouterConfig router;
        LimitsConfig limits;
        JobsConfig jobs;
        AccessConfig access;
        KnowledgeConfig knowledge;
} Config;

/**
 * config_load() - read @path (NULL: defaults only, no file) and the agents
 * directory it names (or @agents_dir_override if not NULL). On error returns
 * a negative errno and, if @ret_error is given, a malloc'ed message
 * "file:line:col: what is wrong". On success *ret holds a new Config.
 */
int config_load(const char *path, const char *agents_dir_override, Config **ret, char **ret_error);

/** config_free() - free a Config; NULL is a no-op. Returns NULL. */
Config *config_free(Config *c);

const ProviderConfig *config_find_provider(const Config *c, const char *name);
const PipelineConfig *config_find_pipeline(const Config *c, const char *name);
const AgentConfig *config_find_agent(const Config *c, const char *name);
/** agent_config_option() - a plugin option's value, NULL if unset. */
const char *agent_config_option(const AgentConfig *a, const char *key);
