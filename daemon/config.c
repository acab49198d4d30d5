/* config.c — loads moad.yaml and agents.d/ (one YAML file per agent) into an immutable Config.
 * Owns: defaults, type/range/enum checking, relative path resolution,
 * reference checks (agent -> provider, provider fallbacks), and the
 * "file:line:col: message" error format. YAML syntax is libyaml's job
 * (through yaml-tree.c); this file never looks at raw YAML text. */
#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "build-config.h"
#include "config.h"
#include "kb-pg.h"
#include "kb.h"
#include "log.h"
#include "util.h"
#include "yaml-tree.h"

#define CONFIG_MAX_FILE_SIZE (1024u * 1024u)
#define CONFIG_MAX_AGENT_FILES 1024u
#define CONFIG_MAX_PROVIDERS 256u
#define CONFIG_MAX_PIPELINES 256u
#define CONFIG_MAX_LAYERS 16u
#define CONFIG_MAX_HEADERS 64u
#define CONFIG_MAX_FALLBACKS 16u
/* Retries are the one provider number where 0 is meaningful ("never retry"). */
#define CONFIG_DEFAULT_MAX_RETRIES 2u
#define CONFIG_MAX_KNOWLEDGE 1024u
#define CONFIG_MAX_INGEST_ROOTS 64u
#define CONFIG_MAX_OPTIONS 256u
#define CONFIG_MAX_NAME 64u
#define CONFIG_MAX_EXAMPLES 10000u          /* per agent, inline and from the file together */
#define CONFIG_MAX_EXAMPLE_BYTES 1024u      /* one example question */
#define CONFIG_MAX_MS (24ULL * 3600 * 1000) /* one day */

/* Parsing context: the file being read and the first error met. */
typedef struct Ctx {
        const char *file;
        char *dir; /* absolute directory of file, for relative paths */
        char *error;
} Ctx;

static void ctx_done(Ctx *ctx) {
        free(ctx->dir);
        ctx->dir = NULL;
}

static int fail_at(Ctx *ctx, const YamlNode *n, int err, const char *fmt, ...) _printf_(4, 5);
static int fail_at(Ctx *ctx, const YamlNode *n, int err, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int r;

        if (ctx->error)
                return err;
        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (asprintf(&ctx->error, "%s:%u:%u: %s", ctx->file, n ? n->line : 1u, n ? n->column : 1u, msg) < 0)
                ctx->error = NULL;
        return err;
}

/* Errors not tied to a position (I/O): "file: message". */
static int fail_file(Ctx *ctx, const char *file, int err, const char *fmt, ...) _printf_(4, 5);
static int fail_file(Ctx *ctx, const char *file, int err, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int r;

        if (ctx->error)
                return err;
        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (asprintf(&ctx->error, "%s: %s", file, msg) < 0)
                ctx->error = NULL;
        return err;
}

/* ---- freeing ---- */

static void key_values_free(KeyValue *kv, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(kv[i].key);
                free(kv[i].value);
        }
        free(kv);
}

static void provider_config_done(ProviderConfig *p) {
        free(p->name);
        free(p->base_url);
        free(p->api_key_file);
        free(p->api_key_env);
        free(p->model);
        key_values_free(p->headers, p->n_headers);
        strv_free_n(p->fallbacks, p->n_fallbacks);
        *p = (ProviderConfig){};
}

static void pipeline_config_done(PipelineConfig *p) {
        free(p->name);
        free(p->description);
        for (size_t i = 0; i < p->n_layers; i++)
                free(p->layers[i].agent);
        free(p->layers);
        free(p->refine_template);
        free(p->aggregate_template);
        *p = (PipelineConfig){};
}

static void agent_config_done(AgentConfig *a) {
        free(a->name);
        free(a->file);
        free(a->plugin);
        free(a->provider);
        free(a->model);
        free(a->prompt);
        free(a->description);
        free(a->language);
        strv_free_n(a->examples, a->n_examples);
        strv_free_n(a->knowledge, a->n_knowledge);
        key_values_free(a->options, a->n_options);
        *a = (AgentConfig){};
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        free(c->file);
        free(c->socket_path);
        free(c->tcp_listen);
        free(c->bearer_token_file);
        free(c->admin_token_file);
        free(c->agents_dir);
        free(c->plugin_dir);
        free(c->state_dir);
        free(c->knowledge.conninfo);
        free(c->knowledge.read_conninfo);
        free(c->knowledge.password_file);
        free(c->default_pipeline);
        for (size_t i = 0; i < c->n_providers; i++)
                provider_config_done(&c->providers[i]);
        free(c->providers);
        for (size_t i = 0; i < c->n_pipelines; i++)
                pipeline_config_done(&c->pipelines[i]);
        free(c->pipelines);
        for (size_t i = 0; i < c->n_agents; i++)
                agent_config_done(&c->agents[i]);
        free(c->agents);
        free(c->router.fallback);
        strv_free_n(c->jobs.ingest_roots, c->jobs.n_ingest_roots);
        free(c->access.ask.uids);
        free(c->access.ask.gids);
        free(c->access.admin.uids);
        free(c->access.admin.gids);
        free(c);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

/* ---- look-ups ---- */

/**
 * config_find_provider() - the provider named @name, NULL if none.
 */
const ProviderConfig *config_find_provider(const Config *c, const char *name) {
        if (!c || !name)
                return NULL;
        for (size_t i = 0; i < c->n_providers; i++)
                if (streq(c->providers[i].name, name))
                        return &c->providers[i];
        return NULL;
}

/**
 * config_find_pipeline() - the pipeline named @name, NULL if none.
 */
const PipelineConfig *config_find_pipeline(const Config *c, const char *name) {
        if (!c || !name)
                return NULL;
        for (size_t i = 0; i < c->n_pipelines; i++)
                if (streq(c->pipelines[i].name, name))
                        return &c->pipelines[i];
        return NULL;
}

/**
 * config_find_agent() - the agent named @name (enabled or not), NULL if none.
 */
const AgentConfig *config_find_agent(const Config *c, const char *name) {
        if (!c || !name)
                return NULL;
        for (size_t i = 0; i < c->n_agents; i++)
                if (streq(c->agents[i].name, name))
                        return &c->agents[i];
        return NULL;
}

const char *agent_config_option(const AgentConfig *a, const char *key) {
        if (!a || !key)
                return NULL;
        for (size_t i = 0; i < a->n_options; i++)
                if (streq(a->options[i].key, key))
                        return a->options[i].value;
        return NULL;
}

/* ---- small helpers ---- */

static char *path_join_key(const char *where, const char *key) {
        char *p;

        if (isempty(where))
                return strdup(key);
        if (asprintf(&p, "%s.%s", where, key) < 0)
                return NULL;
        return p;
}

static char *path_index(const char *where, size_t i) {
        char *p;

        if (asprintf(&p, "%s[%zu]", where, i) < 0)
                return NULL;
        return p;
}

/* Join @p onto the absolute directory @base unless it is absolute already. */
static int path_make_absolute(const char *p, const char *base, char **ret) {
        char *s;

        if (p[0] == '/')
                s = strdup(p);
        else {
                while (p[0] == '.' && p[1] == '/')
                        for (p += 2; *p == '/'; p++)
                                ;
                if (!*p || streq(p, "."))
                        s = strdup(base);
                else if (asprintf(&s, "%s%s%s", base, streq(base, "/") ? "" : "/", p) < 0)
                        s = NULL;
        }
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int cwd_absolute(const char *p, char **ret) {
        _cleanup_free_ char *cwd = NULL;

        if (p[0] == '/') {
                char *s = strdup(p);
                if (!s)
                        return -ENOMEM;
                *ret = s;
                return 0;
        }
        cwd = getcwd(NULL, 0);
        if (!cwd)
                return -errno;
        return path_make_absolute(p, cwd, ret);
}

static char *dirname_of(const char *abs) {
        const char *slash = strrchr(abs, '/');

        if (!slash || slash == abs)
                return strdup("/");
        return strndup(abs, (size_t) (slash - abs));
}

static int dir_exists(const char *p) {
        struct stat st;
        return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int replace_str(char **dst, const char *s) {
        char *n = strdup(s);

        if (!n)
                return -ENOMEM;
        free(*dst);
        *dst = n;
        return 0;
}

/* Names appear in URLs, model names and metric labels: keep them plain. */
static int valid_name(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > CONFIG_MAX_NAME)
                return 0;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '-' || *p == '_' || *p == '.'))
                        return 0;
        return s[0] != '.';
}

/* Reads at most CONFIG_MAX_FILE_SIZE bytes; a bigger file is an error, not truncated. */
static int read_file_bounded(Ctx *ctx, const char *path, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t size = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return fail_file(ctx, path, -errno, "cannot open: %s", strerror(errno));
        if (fstat(fd, &st) < 0)
                return fail_file(ctx, path, -errno, "cannot stat: %s", strerror(errno));
        if (!S_ISREG(st.st_mode))
                return fail_file(ctx, path, -EINVAL, "not a regular file");
        if (st.st_size > (off_t) CONFIG_MAX_FILE_SIZE)
                return fail_file(ctx, path, -EFBIG, "file too large (%lld bytes, at most %u)",
                                 (long long) st.st_size, CONFIG_MAX_FILE_SIZE);
        buf = malloc(CONFIG_MAX_FILE_SIZE + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + size, CONFIG_MAX_FILE_SIZE + 1 - size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return fail_file(ctx, path, -errno, "cannot read: %s", strerror(errno));
                }
                if (k == 0)
                        break;
                size += (size_t) k;
                if (size > CONFIG_MAX_FILE_SIZE)
                        return fail_file(ctx, path, -EFBIG, "file too large (at most %u bytes)",
                                         CONFIG_MAX_FILE_SIZE);
        }
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

/* ---- typed getters: a null value keeps the default ---- */

static int get_string(Ctx *ctx, const YamlNode *v, const char *path, int allow_empty, char **dst) {
        if (yaml_node_is_null(v))
                return 0;
        if (v->kind != YAML_TREE_SCALAR)
                return fail_at(ctx, v, -EINVAL, "expected a string for '%s', got a %s", path,
                               yaml_node_kind_name(v));
        if (!allow_empty && v->length == 0)
                return fail_at(ctx, v, -EINVAL, "'%s' must not be empty", path);
        return replace_str(dst, v->value);
}

static int get_name(Ctx *ctx, const YamlNode *v, const char *path, char **dst) {
        if (yaml_node_is_null(v))
                return 0;
        if (v->kind != YAML_TREE_SCALAR)
                return fail_at(ctx, v, -EINVAL, "expected a string for '%s', got a %s", path,
                               yaml_node_kind_name(v));
        if (!valid_name(v->value))
                return fail_at(ctx, v, -EINVAL,
                               "invalid name '%s' for '%s' (1-%u characters of A-Z a-z 0-9 . _ -, not "
                               "starting with '.')",
                               v->value, path, CONFIG_MAX_NAME);
        return replace_str(dst, v->value);
}

static int get_path(Ctx *ctx, const YamlNode *v, const char *path, const char *base, char **dst) {
        char *s;
        int r;

        if (yaml_node_is_null(v))
                return 0;
        if (v->kind != YAML_TREE_SCALAR)
                return fail_at(ctx, v, -EINVAL, "expected a path for '%s', got a %s", path,
                               yaml_node_kind_name(v));
        if (v->length == 0)
                return fail_at(ctx, v, -EINVAL, "'%s' must not be empty", path);
        r = path_make_absolute(v->value, base, &s);
        if (r < 0)
                return r;
        free(*dst);
        *dst = s;
        return 0;
}

static int get_u64(Ctx *ctx, const YamlNode *v, const char *path, uint64_t min, uint64_t max,
                   uint64_t *dst) {
        const char *s;
        uint64_t x = 0;

        if (yaml_node_is_null(v))
                return 0;
        if (v->kind != YAML_TREE_SCALAR || !v->plain)
                return fail_at(ctx, v, -EINVAL, "expected an integer for '%s'", path);
        s = v->value;
        if (s[0] == '-' && s[1] >= '0' && s[1] <= '9')
                return fail_at(ctx, v, -ERANGE, "'%s' must not be negative", path);
        if (s[0] == '+')
                s++;
        if (!*s)
                return fail_at(ctx, v, -EINVAL, "expected an integer for '%s'", path);
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return fail_at(ctx, v, -EINVAL, "expected an integer for '%s'", path);
                if (x > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return fail_at(ctx, v, -ERANGE, "'%s' is out of range (at most %llu)", path,
                                       (unsigned long long) max);
                x = x * 10 + (uint64_t) (*s - '0');
        }
        if (x < min) {
                if (min == 1)
                        return fail_at(ctx, v, -ERANGE, "'%s' must be at least 1, not 0", path);
                return fail_at(ctx, v, -ERANGE, "'%s' must be at least %llu", path,
                               (unsigned long long) min);
        }
        if (x > max)
                return fail_at(ctx, v, -ERANGE, "'%s' is out of range (at most %llu)", path,
                               (unsigned long long) max);
        *dst = x;
        return 0;
}

static int get_unsigned(Ctx *ctx, const YamlNode *v, const char *path, unsigned min, unsigned max,
                        unsigned *dst) {
        uint64_t x = *dst;
        int r = get_u64(ctx, v, path, min, max, &x);

        if (r < 0)
                return r;
        *dst = (unsigned) x;
        return 0;
}

static int get_double(Ctx *ctx, const YamlNode *v, const char *path, double min, double max, double *dst) {
        char *end;
        double x;

        if (yaml_node_is_null(v))
                return 0;
        if (v->kind != YAML_TREE_SCALAR || !v->plain || v->length == 0 || strpbrk(v->value, "xXnN") ||
            v->value[0] == ' ')
                return fail_at(ctx, v, -EINVAL, "expected a number for '%s'", path);
        errno = 0;
        x = strtod(v->value, &end);
        if (*end || !isfinite(x))
                return fail_at(ctx, v, -EINVAL, "expected a number for '%s'", path);
        if (x < min || x > max)
                return fail_at(ctx, v, -ERANGE, "'%s' must be between %g and %g", path, min, max);
        *dst = x;
        return 0;
}

static int get_bool(Ctx *ctx, const YamlNode *v, const char *path, int *dst) {
        if (yaml_node_is_null(v))
                return 0;
        if (v->kind == YAML_TREE_SCALAR && v->plain) {
                if (strcasecmp(v->value, "true") == 0 || strcasecmp(v->value, "yes") == 0) {
                        *dst = 1;
                        return 0;
                }
                if (strcasecmp(v->value, "false") == 0 || strcasecmp(v->value, "no") == 0) {
                        *dst = 0;
                        return 0;
                }
        }
        return fail_at(ctx, v, -EINVAL, "expected a boolean (true/false/yes/no) for '%s'", path);
}

static int expect_kind(Ctx *ctx, const YamlNode *v, YamlNodeKind kind, const char *path) {
        if (v->kind == kind)
                return 0;
        return fail_at(ctx, v, -EINVAL, "expected a %s for '%s', got a %s",
                       kind == YAML_TREE_MAPPING    ? "mapping"
                       : kind == YAML_TREE_SEQUENCE ? "list"
                                                    : "scalar",
                       path, yaml_node_kind_name(v));
}

static int expect_max_items(Ctx *ctx, const YamlNode *v, size_t n, size_t max, const char *path) {
        if (n <= max)
                return 0;
        return fail_at(ctx, v, -E2BIG, "too many entries in '%s' (%zu, at most %zu)", path, n, max);
}

static int unknown_key(Ctx *ctx, const YamlNode *k, const char *where) {
        if (streq(k->value, "api_key"))
                return fail_at(ctx, k, -EINVAL,
                               "secrets are not allowed in the configuration: use 'api_key_file' or "
                               "'api_key_env' instead of 'api_key'");
        if (isempty(where))
                return fail_at(ctx, k, -EINVAL, "unknown key '%s'", k->value);
        return fail_at(ctx, k, -EINVAL, "unknown key '%s' in %s", k->value, where);
}

static int missing_key(Ctx *ctx, const YamlNode *m, const char *key, const char *where) {
        if (isempty(where))
                return fail_at(ctx, m, -EINVAL, "missing required key '%s'", key);
        return fail_at(ctx, m, -EINVAL, "missing required key '%s' in %s", key, where);
}

/* Iterate a mapping's pairs: k is the key node, v the value node. */
#define FOREACH_PAIR(m, k, v)                                                                               \
        for (size_t _i_ = 0;                                                                                \
             _i_ + 1 < (m)->n_items && ((k) = (m)->items[_i_], (v) = (m)->items[_i_ + 1], 1); _i_ += 2)

static const YamlNode *mapping_get(const YamlNode *m, const char *key) {
        for (size_t i = 0; i + 1 < m->n_items; i += 2)
                if (streq(m->items[i]->value, key))
                        return m->items[i + 1];
        return NULL;
}

/* A mapping of scalar -> scalar (null values become ""). */
static int get_key_values(Ctx *ctx, const YamlNode *v, const char *path, size_t max, KeyValue **ret,
                          size_t *ret_n) {
        const YamlNode *k, *x;
        KeyValue *kv;
        size_t n = 0;
        int r;

        if (yaml_node_is_null(v))
                return 0;
        r = expect_kind(ctx, v, YAML_TREE_MAPPING, path);
        if (r < 0)
                return r;
        r = expect_max_items(ctx, v, v->n_items / 2, max, path);
        if (r < 0)
                return r;
        kv = calloc(MAX(v->n_items / 2, (size_t) 1), sizeof(KeyValue));
        if (!kv)
                return -ENOMEM;
        FOREACH_PAIR(v, k, x) {
                if (k->length == 0) {
                        r = fail_at(ctx, k, -EINVAL, "empty key in '%s'", path);
                        goto fail;
                }
                if (!yaml_node_is_null(x) && x->kind != YAML_TREE_SCALAR) {
                        r = fail_at(ctx, x, -EINVAL, "expected a scalar for '%s.%s', got a %s", path,
                                    k->value, yaml_node_kind_name(x));
                        goto fail;
                }
                kv[n].key = strdup(k->value);
                kv[n].value = strdup(yaml_node_is_null(x) ? "" : x->value);
                n++;
                if (!kv[n - 1].key || !kv[n - 1].value) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        key_values_free(*ret, *ret_n);
        *ret = kv;
        *ret_n = n;
        return 0;
fail:
        key_values_free(kv, n);
        return r;
}

/* A list of strings; @base, if given, makes each an absolute path. */
static int get_string_list(Ctx *ctx, const YamlNode *v, const char *path, size_t max, const char *base,
                           int names, char ***ret, size_t *ret_n) {
        char **l;
        size_t n = 0;
        int r;

        if (yaml_node_is_null(v))
                return 0;
        r = expect_kind(ctx, v, YAML_TREE_SEQUENCE, path);
        if (r < 0)
                return r;
        r = expect_max_items(ctx, v, v->n_items, max, path);
        if (r < 0)
                return r;
        l = calloc(MAX(v->n_items, (size_t) 1), sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < v->n_items; i++) {
                _cleanup_free_ char *p = path_index(path, i);
                const YamlNode *x = v->items[i];

                if (!p) {
                        r = -ENOMEM;
                        goto fail;
                }
                if (yaml_node_is_null(x)) {
                        r = fail_at(ctx, x, -EINVAL, "'%s' must not be empty", p);
                        goto fail;
                }
                if (base)
                        r = get_path(ctx, x, p, base, &l[n]);
                else if (names)
                        r = get_name(ctx, x, p, &l[n]);
                else
                        r = get_string(ctx, x, p, 0, &l[n]);
                if (r < 0)
                        goto fail;
                n++;
        }
        strv_free_n(*ret, *ret_n);
        *ret = l;
        *ret_n = n;
        return 0;
fail:
        strv_free_n(l, n);
        return r;
}

/* ---- moad.yaml sections ---- */

static int parse_socket_mode(Ctx *ctx, const YamlNode *v, const char *path, unsigned *dst) {
        const char *s;
        unsigned x = 0;

        if (yaml_node_is_null(v))
                return 0;
        if (v->kind != YAML_TREE_SCALAR || v->length == 0)
                return fail_at(ctx, v, -EINVAL, "expected an octal mode such as \"0660\" for '%s'", path);
        /* Always octal, like chmod: 660, 0660, "0660" and 0o660 mean the same. */
        s = v->value;
        if (s[0] == '0' && (s[1] == 'o' || s[1] == 'O'))
                s += 2;
        if (!*s || strlen(s) > 6)
                return fail_at(ctx, v, -EINVAL, "expected an octal mode such as \"0660\" for '%s'", path);
        for (; *s; s++) {
                if (*s < '0' || *s > '7')
                        return fail_at(ctx, v, -EINVAL, "expected an octal mode such as \"0660\" for '%s'",
                                       path);
                x = x * 8 + (unsigned) (*s - '0');
        }
        if (x > 0777)
                return fail_at(ctx, v, -ERANGE, "'%s' must be at most 0777", path);
        *dst = x;
        return 0;
}

static int parse_tcp(Ctx *ctx, const YamlNode *v, const char *path, char **dst) {
        const char *colon, *s;
        unsigned long port = 0;

        if (yaml_node_is_null(v))
                return 0;
        if (v->kind != YAML_TREE_SCALAR)
                return fail_at(ctx, v, -EINVAL, "expected \"host:port\" for '%s'", path);
        s = v->value;
        colon = strrchr(s, ':');
        if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5)
                return fail_at(ctx, v, -EINVAL, "expected \"host:port\" for '%s'", path);
        if ((s[0] == '[') != (colon[-1] == ']') || (s[0] != '[' && memchr(s, ':', (size_t) (colon - s))))
                return fail_at(ctx, v, -EINVAL, "expected \"host:port\" or \"[address]:port\" for '%s'",
                               path);
        for (const char *p = colon + 1; *p; p++) {
                if (*p < '0' || *p > '9')
                        return fail_at(ctx, v, -EINVAL, "invalid port in '%s'", path);
                port = port * 10 + (unsigned long) (*p - '0');
        }
        if (port < 1 || port > 65535)
                return fail_at(ctx, v, -ERANGE, "port in '%s' must be between 1 and 65535", path);
        return replace_str(dst, s);
}

static int parse_listen(Ctx *ctx, const YamlNode *m, Config *c) {
        const YamlNode *k, *v;
        int r;

        if (yaml_node_is_null(m))
                return 0;
        r = expect_kind(ctx, m, YAML_TREE_MAPPING, "listen");
        if (r < 0)
                return r;
        FOREACH_PAIR(m, k, v) {
                if (streq(k->value, "socket")) {
                        r = get_path(ctx, v, "listen.socket", ctx->dir, &c->socket_path);
                        /* sockaddr_un.sun_path holds 108 bytes including the NUL. */
                        if (r >= 0 &&
                            strlen(c->socket_path) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                                r = fail_at(ctx, v, -ENAMETOOLONG,
                                            "'listen.socket' is too long for a Unix socket (%zu bytes, at "
                                            "most %zu)",
                                            strlen(c->socket_path),
                                            sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1);
                } else if (streq(k->value, "socket_mode"))
                        r = parse_socket_mode(ctx, v, "listen.socket_mode", &c->socket_mode);
                else if (streq(k->value, "tcp"))
                        r = parse_tcp(ctx, v, "listen.tcp", &c->tcp_listen);
                else if (streq(k->value, "bearer_token_file"))
                        r = get_path(ctx, v, "listen.bearer_token_file", ctx->dir, &c->bearer_token_file);
                else if (streq(k->value, "admin_token_file"))
                        r = get_path(ctx, v, "listen.admin_token_file", ctx->dir, &c->admin_token_file);
                else
                        r = unknown_key(ctx, k, "listen");
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A user or group: a name resolved now (NSS), or a numeric id. */
static int resolve_id(Ctx *ctx, const YamlNode *x, const char *path, int group, unsigned *ret) {
        char *end;
        unsigned long n;

        if (x->kind != YAML_TREE_SCALAR || x->length == 0 || x->length > 64)
                return fail_at(ctx, x, -EINVAL, "expected a %s name or id in '%s'", group ? "group" : "user",
                               path);
        errno = 0;
        n = strtoul(x->value, &end, 10);
        if (!errno && !*end && n < UINT_MAX) {
                *ret = (unsigned) n;
                return 0;
        }
        if (group) {
                struct group *g = getgrnam(x->value);
                if (g) {
                        *ret = g->gr_gid;
                        return 0;
                }
        } else {
                struct passwd *pw = getpwnam(x->value);
                if (pw) {
                        *ret = pw->pw_uid;
                        return 0;
                }
        }
        return fail_at(ctx, x, -ENOENT, "unknown %s '%s' in '%s'", group ? "group" : "user", x->value, path);
}

static int parse_id_list(Ctx *ctx, const YamlNode *v, const char *path, int group, unsigned **ret,
                         size_t *ret_n) {
        unsigned *ids;
        int r;

        if (yaml_node_is_null(v))
                return 0;
        r = expect_kind(ctx, v, YAML_TREE_SEQUENCE, path);
        if (r < 0)
                return r;
        r = expect_max_items(ctx, v, v->n_items, 256, path);
        if (r < 0)
                return r;
        ids = calloc(MAX(v->n_items, (size_t) 1), sizeof *ids);
        if (!ids)
                return -ENOMEM;
        for (size_t i = 0; i < v->n_items; i++) {
                r = resolve_id(ctx, v->items[i], path, group, &ids[i]);
                if (r < 0) {
                        free(ids);
                        return r;
                }
        }
        free(*ret);
        *ret = ids;
        *ret_n = v->n_items;
        return 0;
}

static int parse_access_rule(Ctx *ctx, const YamlNode *m, const char *path, AccessRule *rule) {
        const YamlNode *k, *v;
        int r;

        if (yaml_node_is_null(m))
                return 0;
        r = expect_kind(ctx, m, YAML_TREE_MAPPING, path);
        if (r < 0)
                return r;
        FOREACH_PAIR(m, k, v) {
                _cleanup_free_ char *p = path_join_key(path, k->value);
                if (!p)
                        return -ENOMEM;
                if (streq(k->value, "users"))
                        r = parse_id_list(ctx, v, p, 0, (unsigned **) &rule->uids, &rule->n_uids);
                else if (streq(k->value, "groups"))
                        r = parse_id_list(ctx, v, p, 1, (unsigned **) &rule->gids, &rule->n_gids);
                else
                        r = unknown_key(ctx, k, path);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_access(Ctx *ctx, const YamlNode *m, AccessConfig *a) {
        const YamlNode *k, *v;
        int r;

        if (yaml_node_is_null(m))
                return 0;
        r = expect_kind(ctx, m, YAML_TREE_MAPPING, "access");
        if (r < 0)
                return r;
        FOREACH_PAIR(m, k, v) {
                if (streq(k->value, "ask"))
                        r = parse_access_rule(ctx, v, "access.ask", &a->ask);
                else if (streq(k->value, "admin"))
                        r = parse_access_rule(ctx, v, "access.admin", &a->admin);
                else
                        r = unknown_key(ctx, k, "access");
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_router(Ctx *ctx, const YamlNode *m, RouterConfig *rc) {
        const YamlNode *k, *v;
        int r;

        if (yaml_node_is_null(m))
                return 0;
        r = expect_kind(ctx, m, YAML_TREE_MAPPING, "router");
        if (r < 0)
                return r;
        FOREACH_PAIR(m, k, v) {
                if (streq(k->value, "threshold"))
                        r = get_double(ctx, v, "router.threshold", 0, 1, &rc->threshold);
                else if (streq(k->value, "top_k"))
                        r = get_unsigned(ctx, v, "router.top_k", 1, 64, &rc->top_k);
                else if (streq(k->value, "kb_weight"))
                        r = get_double(ctx, v, "router.kb_weight", 0, 10, &rc->kb_weight);
                else if (streq(k->value, "lexicon_weight"))
                        r = get_double(ctx, v, "router.lexicon_weight", 0, 10, &rc->lexicon_weight);
                else if (streq(k->value, "learned_weight"))
                        r = get_double(ctx, v, "router.learned_weight", 0, 10, &rc->learned_weight);
                else if (streq(k->value, "floor"))
                        r = get_double(ctx, v, "router.floor", 0, 1, &rc->floor);
                else if (streq(k->value, "fallback_margin"))
                        r = get_double(ctx, v, "router.fallback_margin", 0, 1, &rc->fallback_margin);
                else if (streq(k->value, "bias"))
                        r = get_double(ctx, v, "router.bias", -10, 10, &rc->bias);
                else if (streq(k->value, "fallback"))
                        r = get_name(ctx, v, "router.fallback", &rc->fallback);
                else
                        r = unknown_key(ctx, k, "router");
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_limits(Ctx *ctx, const YamlNode *m, LimitsConfig *l) {
        const YamlNode *k, *v;
        int r;

        if (yaml_node_is_null(m))
                return 0;
        r = expect_kind(ctx, m, YAML_TREE_MAPPING, "limits");
        if (r < 0)
                return r;
        FOREACH_PAIR(m, k, v) {
                _cleanup_free_ char *p = path_join_key("limits", k->value);
                const char *key = k->value;

                if (!p)
                        return -ENOMEM;
                if (streq(key, "max_body_bytes"))
                        r = get_u64(ctx, v, p, 1, 1ULL << 30, &l->max_body_bytes);
                else if (streq(key, "max_messages"))
                        r = get_unsigned(ctx, v, p, 1, 100000, &l->max_messages);
                else if (streq(key, "max_message_bytes"))
                        r = get_u64(ctx, v, p, 1, 1ULL << 30, &l->max_message_bytes);
                else if (streq(key, "max_connections"))
                        r = get_unsigned(ctx, v, p, 1, 1000000, &l->max_connections);
                else if (streq(key, "max_inflight"))
                        r = get_unsigned(ctx, v, p, 1, 1000000, &l->max_inflight);
                else if (streq(key, "max_queue"))
                        r = get_unsigned(ctx, v, p, 1, 1000000, &l->max_queue);
                else if (streq(key, "request_timeout_ms"))
                        r = get_u64(ctx, v, p, 1, CONFIG_MAX_MS, &l->request_timeout_ms);
                else if (streq(key, "idle_timeout_ms"))
                        r = get_u64(ctx, v, p, 1, CONFIG_MAX_MS, &l->idle_timeout_ms);
                else if (streq(key, "shutdown_timeout_ms"))
                        r = get_u64(ctx, v, p, 1, CONFIG_MAX_MS, &l->shutdown_timeout_ms);
                else if (streq(key, "max_ingest_bytes"))
                        r = get_u64(ctx, v, p, 1, 1ULL << 34, &l->max_ingest_bytes);
                else if (streq(key, "max_body_total_bytes"))
                        r = get_u64(ctx, v, p, 1, 1ULL << 36, &l->max_body_total_bytes);
                else if (streq(key, "max_connections_per_peer"))
                        r = get_unsigned(ctx, v, p, 1, 1000000, &l->max_connections_per_peer);
                else if (streq(key, "header_timeout_ms"))
                        r = get_u64(ctx, v, p, 100, CONFIG_MAX_MS, &l->header_timeout_ms);
                else if (streq(key, "min_body_rate"))
                        r = get_u64(ctx, v, p, 1, 1ULL << 30, &l->min_body_rate);
                else if (streq(key, "max_ask_documents"))
                        r = get_unsigned(ctx, v, p, 1, 256, &l->max_ask_documents);
                else if (streq(key, "max_ask_document_bytes"))
                        r = get_u64(ctx, v, p, 1, KB_MAX_DOCUMENT_BYTES, &l->max_ask_document_bytes);
                else if (streq(key, "max_ask_bytes"))
                        r = get_u64(ctx, v, p, 1, 1ULL << 30, &l->max_ask_bytes);
                else if (streq(key, "plugin_score_ms"))
                        r = get_u64(ctx, v, p, 1, 60000, &l->plugin_score_ms);
                else if (streq(key, "plugin_call_ms"))
                        r = get_u64(ctx, v, p, 1, 60000, &l->plugin_call_ms);
                else if (streq(key, "plugin_max_timeouts"))
                        r = get_unsigned(ctx, v, p, 1, 1000000, &l->plugin_max_timeouts);
                else if (streq(key, "plugin_max_stuck"))
                        r = get_unsigned(ctx, v, p, 1, 1024, &l->plugin_max_stuck);
                else
                        r = unknown_key(ctx, k, "limits");
                if (r < 0)
                        return r;
        }
        return 0;
}

/* One row per key of the jobs: section. */
typedef struct JobsKey {
        const char *name;
        uint64_t min, max;
        size_t offset;
        int is_u64; /* else unsigned */
} JobsKey;

static const JobsKey jobs_keys[] = {
        {"concurrency", 1, 64, offsetof(JobsConfig, concurrency), 0},
        {"max_upload_bytes", 1, 1ULL << 30, offsetof(JobsConfig, max_upload_bytes), 1},
        {"max_lines", 1, 1000000, offsetof(JobsConfig, max_lines), 0},
        {"max_line_bytes", 64, 1ULL << 30, offsetof(JobsConfig, max_line_bytes), 1},
        {"max_files", 1, 1000000, offsetof(JobsConfig, max_files), 0},
        {"batch_window_seconds", 1, 86400, offsetof(JobsConfig, batch_window_seconds), 0},
        {"lease_seconds", 2, 3600, offsetof(JobsConfig, lease_seconds), 0},
        {"db_timeout_ms", 100, 60000, offsetof(JobsConfig, db_timeout_ms), 0},
};

static int parse_jobs(Ctx *ctx, const YamlNode *m, JobsConfig *jc) {
        const YamlNode *k, *v;
        int r;

        if (yaml_node_is_null(m))
                return 0;
        r = expect_kind(ctx, m, YAML_TREE_MAPPING, "jobs");
        if (r < 0)
                return r;
        FOREACH_PAIR(m, k, v) {
                _cleanup_free_ char *p = path_join_key("jobs", k->value);
                const JobsKey *key = NULL;

                if (!p)
                        return -ENOMEM;
                for (size_t i = 0; i < ELEMENTSOF(jobs_keys); i++)
                        if (streq(k->value, jobs_keys[i].name))
                                key = &jobs_keys[i];
                if (streq(k->value, "ingest_roots")) {
                        strv_free_n(jc->ingest_roots, jc->n_ingest_roots);
                        jc->ingest_roots = NULL;
                        jc->n_ingest_roots = 0;
                        r = get_string_list(ctx, v, p, CONFIG_MAX_INGEST_ROOTS, ctx->dir, 0,
                                            &jc->ingest_roots, &jc->n_ingest_roots);
                } else if (!key)
                        r = unknown_key(ctx, k, "jobs");
                else if (key->is_u64)
                        r = get_u64(ctx, v, p, key->min, key->max, (uint64_t *) ((char *) jc + key->offset));
                else
                        r = get_unsigned(ctx, v, p, (unsigned) key->min, (unsigned) key->max,
                                         (unsigned *) ((char *) jc + key->offset));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A knowledge.conninfo (or read_conninfo, @key) libpq can parse and that
 * holds no password: the password comes from password_file or PGPASSFILE,
 * so it is never in the configuration or a log line. */
static int check_conninfo(Ctx *ctx, const YamlNode *v, const char *key, const char *conninfo) {
        char *err = NULL;
        PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
        int r = 0;

        if (!opts) {
                size_t n = err ? strcspn(err, "\n") : 0;
                r = fail_at(ctx, v, -EINVAL, "invalid '%s': %.*s", key, (int) n,
                            err ? err : "out of memory");
                PQfreemem(err);
                return r;
        }
        for (PQconninfoOption *o = opts; o->keyword; o++)
                if (streq(o->keyword, "password") && !isempty(o->val))
                        r = fail_at(ctx, v, -EINVAL,
                                    "secrets are not allowed in the configuration: put the password in "
                                    "'knowledge.password_file' (or PGPASSFILE), not in '%s'",
                                    key);
        PQconninfoFree(opts);
        return r;
}

static int parse_knowledge(Ctx *ctx, const YamlNode *m, KnowledgeConfig *kc) {
        const YamlNode *k, *v, *conninfo_node = NULL;
        int r;

        if (yaml_node_is_null(m))
                return 0;
        r = expect_kind(ctx, m, YAML_TREE_MAPPING, "knowledge");
        if (r < 0)
                return r;
        FOREACH_PAIR(m, k, v) {
                _cleanup_free_ char *p = path_join_key("knowledge", k->value);
                const char *key = k->value;

                if (!p)
                        return -ENOMEM;
                if (streq(key, "backend")) {
                        if (yaml_node_is_null(v))
                                r = 0;
                        else if (v->kind == YAML_TREE_SCALAR && streq(v->value, "sqlite"))
                                kc->backend = KNOWLEDGE_SQLITE;
                        else if (v->kind == YAML_TREE_SCALAR && streq(v->value, "postgresql"))
                                kc->backend = KNOWLEDGE_POSTGRESQL;
                        else
                                r = fail_at(ctx, v, -EINVAL,
                                            "invalid value%s%s%s for '%s' (expected sqlite or postgresql)",
                                            v->kind == YAML_TREE_SCALAR ? " '" : "",
                                            v->kind == YAML_TREE_SCALAR ? v->value : "",
                                            v->kind == YAML_TREE_SCALAR ? "'" : "", p);
                } else if (streq(key, "conninfo")) {
                        conninfo_node = v;
                        r = get_string(ctx, v, p, 0, &kc->conninfo);
                        if (r >= 0 && kc->conninfo && strlen(kc->conninfo) > KB_PG_MAX_CONNINFO)
                                r = fail_at(ctx, v, -EINVAL, "'%s' is longer than %u bytes", p,
                                            KB_PG_MAX_CONNINFO);
                        if (r >= 0 && kc->conninfo)
                                r = check_conninfo(ctx, v, p, kc->conninfo);
                } else if (streq(key, "read_conninfo")) {
                        r = get_string(ctx, v, p, 0, &kc->read_conninfo);
                        if (r >= 0 && kc->read_conninfo && strlen(kc->read_conninfo) > KB_PG_MAX_CONNINFO)
                                r = fail_at(ctx, v, -EINVAL, "'%s' is longer than %u bytes", p,
                                            KB_PG_MAX_CONNINFO);
                        if (r >= 0 && kc->read_conninfo)
                                r = check_conninfo(ctx, v, p, kc->read_conninfo);
                } else if (streq(key, "pool_size"))
                        r = get_unsigned(ctx, v, p, 1, KB_PG_MAX_POOL_SIZE, &kc->pool_size);
                else if (streq(key, "pool_queue"))
                        r = get_unsigned(ctx, v, p, 1, KB_PG_MAX_POOL_QUEUE, &kc->pool_queue);
                else if (streq(key, "search_prune_chunks"))
                        r = get_unsigned(ctx, v, p, 0, 1000000000, &kc->search_prune_chunks);
                else if (streq(key, "password_file"))
                        r = get_path(ctx, v, p, ctx->dir, &kc->password_file);
                else if (streq(key, "connect_timeout_s"))
                        r = get_unsigned(ctx, v, p, 1, 300, &kc->connect_timeout_s);
                else if (streq(key, "statement_timeout_ms"))
                        r = get_unsigned(ctx, v, p, 100, 3600000, &kc->statement_timeout_ms);
                else
                        r = unknown_key(ctx, k, "knowledge");
                if (r < 0)
                        return r;
        }
        if (kc->backend == KNOWLEDGE_POSTGRESQL && !kc->conninfo)
                return fail_at(ctx, conninfo_node ? conninfo_node : m, -EINVAL,
                               "'knowledge.backend: postgresql' needs 'knowledge.conninfo' (a libpq "
                               "connection string such as \"host=/run/postgresql dbname=moad\" or "
                               "\"service=moad\")");
        return 0;
}

static void provider_config_init(ProviderConfig *p) {
        *p = (ProviderConfig){
                .type = PROVIDER_BUILTIN, .temperature = -1, .max_retries = CONFIG_DEFAULT_MAX_RETRIES};
}

static int parse_headers(Ctx *ctx, const YamlNode *v, const char *path, ProviderConfig *p) {
        int r = get_key_values(ctx, v, path, CONFIG_MAX_HEADERS, &p->headers, &p->n_headers);

        if (r < 0)
                return r;
        for (size_t i = 0; i < p->n_headers; i++) {
                const YamlNode *k = v->items[2 * i];
                for (const char *s = p->headers[i].key; *s; s++)
                        if (*s <= ' ' || *s >= 127 || *s == ':')
                                return fail_at(ctx, k, -EINVAL, "invalid HTTP header name '%s' in '%s'",
                                               p->headers[i].key, path);
                if (strpbrk(p->headers[i].value, "\r\n"))
                        return fail_at(ctx, v->items[2 * i + 1], -EINVAL,
                                       "line breaks are not allowed in header '%s'", p->headers[i].key);
                if (strcasecmp(p->headers[i].key, "Authorization") == 0)
                        return fail_at(ctx, k, -EINVAL,
                                       "secrets are not allowed in the configuration: use 'api_key_file' or "
                                       "'api_key_env' instead of an Authorization header");
        }
        return 0;
}

static int parse_provider(Ctx *ctx, const YamlNode *m, const char *where, ProviderConfig *p) {
        const YamlNode *k, *v, *type_node = NULL;
        int r;

        r = expect_kind(ctx, m, YAML_TREE_MAPPING, where);
        if (r < 0)
                return r;
        FOREACH_PAIR(m, k, v) {
                _cleanup_free_ char *path = path_join_key(where, k->value);
                const char *key = k->value;

                if (!path)
                        return -ENOMEM;
                if (streq(key, "name"))
                        r = get_name(ctx, v, path, &p->name);
                else if (streq(key, "type")) {
                        type_node = v;
                        if (yaml_node_is_null(v))
                                r = 0;
                        else if (v->kind == YAML_TREE_SCALAR && streq(v->value, "builtin"))
                                p->type = PROVIDER_BUILTIN;
                        else if (v->kind == YAML_TREE_SCALAR && streq(v->value, "openai"))
                                p->type = PROVIDER_OPENAI;
                        else
                                r = fail_at(ctx, v, -EINVAL,
                                            "invalid value%s%s%s for '%s' (expected builtin or openai)",
                                            v->kind == YAML_TREE_SCALAR ? " '" : "",
                                            v->kind == YAML_TREE_SCALAR ? v->value : "",
                                            v->kind == YAML_TREE_SCALAR ? "'" : "", path);
                } else if (streq(key, "base_url")) {
                        r = get_string(ctx, v, path, 0, &p->base_url);
                        if (r >= 0 && p->base_url && strncmp(p->base_url, "http://", 7) != 0 &&
                            strncmp(p->base_url, "https://", 8) != 0)
                                r = fail_at(ctx, v, -EINVAL, "'%s' must start with http:// or https://",
                                            path);
                } else if (streq(key, "api_key_file"))
                        r = get_path(ctx, v, path, ctx->dir, &p->api_key_file);
                else if (streq(key, "api_key_env"))
                        r = get_string(ctx, v, path, 0, &p->api_key_env);
                else if (streq(key, "model"))
                        r = get_string(ctx, v, path, 0, &p->model);
                else if (streq(key, "temperature"))
                        r = get_double(ctx, v, path, 0, 2, &p->temperature);
                else if (streq(key, "max_tokens")) {
                        uint64_t x = 0;
                        r = get_u64(ctx, v, path, 0, 10000000, &x);
                        if (r >= 0 && !yaml_node_is_null(v))
                                p->max_tokens = (int64_t) x;
                } else if (streq(key, "connect_timeout_ms"))
                        r = get_u64(ctx, v, path, 0, CONFIG_MAX_MS, &p->connect_timeout_ms);
                else if (streq(key, "timeout_ms"))
                        r = get_u64(ctx, v, path, 0, CONFIG_MAX_MS, &p->timeout_ms);
                else if (streq(key, "max_retries"))
                        r = get_unsigned(ctx, v, path, 0, 100, &p->max_retries);
                else if (streq(key, "retry_base_ms"))
                        r = get_u64(ctx, v, path, 0, CONFIG_MAX_MS, &p->retry_base_ms);
                else if (streq(key, "retry_max_ms"))
                        r = get_u64(ctx, v, path, 0, CONFIG_MAX_MS, &p->retry_max_ms);
                else if (streq(key, "max_concurrency"))
                        r = get_unsigned(ctx, v, path, 0, 100000, &p->max_concurrency);
                else if (streq(key, "max_queue"))
                        r = get_unsigned(ctx, v, path, 0, 1000000, &p->max_queue);
                else if (streq(key, "breaker_failures"))
                        r = get_unsigned(ctx, v, path, 0, 100000, &p->breaker_failures);
                else if (streq(key, "breaker_cooldown_ms"))
                        r = get_u64(ctx, v, path, 0, CONFIG_MAX_MS, &p->breaker_cooldown_ms);
                else if (streq(key, "headers"))
                        r = parse_headers(ctx, v, path, p);
                else if (streq(key, "fallbacks"))
                        r = get_string_list(ctx, v, path, CONFIG_MAX_FALLBACKS, NULL, 1, &p->fallbacks,
                                            &p->n_fallbacks);
                else
                        r = unknown_key(ctx, k, where);
                if (r < 0)
                        return r;
        }
        if (!p->name)
                return missing_key(ctx, m, "name", where);
        if (!type_node || yaml_node_is_null(type_node))
                return missing_key(ctx, m, "type", where);
        if (p->type == PROVIDER_OPENAI && !p->base_url)
                return fail_at(ctx, m, -EINVAL, "missing required key 'base_url' for openai provider in %s",
                               where);
        if (streq(p->name, "builtin") && p->type != PROVIDER_BUILTIN)
                return fail_at(ctx, type_node, -EINVAL,
                               "the provider name 'builtin' is reserved for a provider of type builtin");
        if (p->api_key_file && p->api_key_env)
                return fail_at(ctx, m, -EINVAL, "set only one of 'api_key_file' and 'api_key_env' in %s",
                               where);
        return 0;
}

static int parse_providers(Ctx *ctx, const YamlNode *s, Config *c) {
        int r;

        if (yaml_node_is_null(s))
                return 0;
        r = expect_kind(ctx, s, YAML_TREE_SEQUENCE, "providers");
        if (r < 0)
                return r;
        r = expect_max_items(ctx, s, s->n_items, CONFIG_MAX_PROVIDERS, "providers");
        if (r < 0)
                return r;
        c->providers = calloc(s->n_items + 1, sizeof(ProviderConfig)); /* +1: the implicit builtin */
        if (!c->providers)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_items; i++) {
                _cleanup_free_ char *where = path_index("providers", i);
                ProviderConfig *p = &c->providers[c->n_providers];

                if (!where)
                        return -ENOMEM;
                provider_config_init(p);
                c->n_providers++; /* counted before parsing so it is freed on error */
                r = parse_provider(ctx, s->items[i], where, p);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (streq(c->providers[j].name, p->name))
                                return fail_at(ctx, mapping_get(s->items[i], "name"), -EEXIST,
                                               "duplicate provider name '%s'", p->name);
        }
        /* Fallbacks may name providers defined further down: check once all are known. */
        for (size_t i = 0; i < s->n_items; i++) {
                const YamlNode *f = mapping_get(s->items[i], "fallbacks");
                const ProviderConfig *p = &c->providers[i];

                for (size_t j = 0; j < p->n_fallbacks; j++) {
                        if (streq(p->fallbacks[j], p->name))
                                return fail_at(ctx, f->items[j], -EINVAL,
                                               "provider '%s' cannot be its own fallback", p->name);
                        if (!config_find_provider(c, p->fallbacks[j]) && !streq(p->fallbacks[j], "builtin"))
                                return fail_at(ctx, f->items[j], -ENOENT,
                                               "unknown provider '%s' in 'providers[%zu].fallbacks'",
                                               p->fallbacks[j], i);
                }
        }
        return 0;
}

static int parse_layer(Ctx *ctx, const YamlNode *m, const char *where, LayerConfig *l) {
        const YamlNode *k, *v, *role = NULL;
        int r;

        r = expect_kind(ctx, m, YAML_TREE_MAPPING, where);
        if (r < 0)
                return r;
        FOREACH_PAIR(m, k, v) {
                _cleanup_free_ char *path = path_join_key(where, k->value);
                const char *key = k->value;

                if (!path)
                        return -ENOMEM;
                if (streq(key, "role")) {
                        role = v;
                        if (yaml_node_is_null(v))
                                r = 0;
                        else if (v->kind == YAML_TREE_SCALAR && streq(v->value, "propose"))
                                l->role = LAYER_PROPOSE;
                        else if (v->kind == YAML_TREE_SCALAR && streq(v->value, "refine"))
                                l->role = LAYER_REFINE;
                        else if (v->kind == YAML_TREE_SCALAR && streq(v->value, "aggregate"))
                                l->role = LAYER_AGGREGATE;
                        else
                                r = fail_at(ctx, v, -EINVAL,
                                            "invalid value%s%s%s for '%s' (expected propose, refine or "
                                            "aggregate)",
                                            v->kind == YAML_TREE_SCALAR ? " '" : "",
                                            v->kind == YAML_TREE_SCALAR ? v->value : "",
                                            v->kind == YAML_TREE_SCALAR ? "'" : "", path);
                } else if (streq(key, "weight"))
                        r = get_double(ctx, v, path, 0, 100, &l->weight);
                else if (streq(key, "agent"))
                        r = get_name(ctx, v, path, &l->agent);
                else if (streq(key, "quorum"))
                        r = get_double(ctx, v, path, 0, 1, &l->quorum);
                else if (streq(key, "timeout_ms"))
                        r = get_u64(ctx, v, path, 0, CONFIG_MAX_MS, &l->timeout_ms);
                else
                        r = unknown_key(ctx, k, where);
                if (r < 0)
                        return r;
        }
        if (!role || yaml_node_is_null(role))
                return missing_key(ctx, m, "role", where);
        if (l->role == LAYER_AGGREGATE && !l->agent) {
                l->agent = strdup("aggregator");
                if (!l->agent)
                        return -ENOMEM;
        }
        return 0;
}

static int parse_pipeline(Ctx *ctx, const YamlNode *m, const char *where, PipelineConfig *p) {
        const YamlNode *k, *v, *layers = NULL, *staircase_tuned = NULL;
        int r;

        r = expect_kind(ctx, m, YAML_TREE_MAPPING, where);
        if (r < 0)
                return r;
        FOREACH_PAIR(m, k, v) {
                _cleanup_free_ char *path = path_join_key(where, k->value);
                const char *key = k->value;

                if (!path)
                        return -ENOMEM;
                if (streq(key, "name"))
                        r = get_name(ctx, v, path, &p->name);
                else if (streq(key, "description"))
                        r = get_string(ctx, v, path, 1, &p->description);
                else if (streq(key, "deadline_ms"))
                        r = get_u64(ctx, v, path, 1, CONFIG_MAX_MS, &p->deadline_ms);
                else if (streq(key, "self_moa_samples"))
                        r = get_unsigned(ctx, v, path, 0, 64, &p->self_moa_samples);
                else if (streq(key, "early_aggregation"))
                        r = get_bool(ctx, v, path, &p->early_aggregation);
                else if (streq(key, "staircase"))
                        r = get_bool(ctx, v, path, &p->staircase);
                else if (streq(key, "staircase_quorum")) {
                        r = get_double(ctx, v, path, 0, 1, &p->staircase_quorum);
                        staircase_tuned = k;
                } else if (streq(key, "staircase_min_chars")) {
                        r = get_unsigned(ctx, v, path, 1, CONFIG_STAIRCASE_MAX_CHARS,
                                         &p->staircase_min_chars);
                        staircase_tuned = k;
                } else if (streq(key, "refine_template"))
                        r = get_string(ctx, v, path, 0, &p->refine_template);
                else if (streq(key, "aggregate_template"))
                        r = get_string(ctx, v, path, 0, &p->aggregate_template);
                else if (streq(key, "layers")) {
                        layers = v;
                        if (yaml_node_is_null(v))
                                r = 0;
                        else
                                r = expect_kind(ctx, v, YAML_TREE_SEQUENCE, path);
                        if (r >= 0)
                                r = expect_max_items(ctx, v, v->n_items, CONFIG_MAX_LAYERS, path);
                } else
                        r = unknown_key(ctx, k, where);
                if (r < 0)
                        return r;
        }
        if (!p->name)
                return missing_key(ctx, m, "name", where);
        /* Tuning a staircase that is off is a mistake worth naming. */
        if (staircase_tuned && !p->staircase)
                return fail_at(ctx, staircase_tuned, -EINVAL,
                               "'%s' of pipeline '%s' has no effect without 'staircase: true'",
                               staircase_tuned->value, p->name);
        if (!layers || yaml_node_is_null(layers) || layers->n_items == 0)
                return fail_at(ctx, layers && !yaml_node_is_null(layers) ? layers : m, -EINVAL,
                               "pipeline '%s' needs at least one layer", p->name);
        p->layers = calloc(layers->n_items, sizeof(LayerConfig));
        if (!p->layers)
                return -ENOMEM;
        for (size_t i = 0; i < layers->n_items; i++) {
                _cleanup_free_ char *lp = NULL;
                LayerConfig *l = &p->layers[i];

                if (asprintf(&lp, "%s.layers[%zu]", where, i) < 0)
                        return -ENOMEM;
                *l = (LayerConfig){.weight = 1.0, .quorum = 0.5};
                p->n_layers++;
                r = parse_layer(ctx, layers->items[i], lp, l);
                if (r < 0)
                        return r;
                /* The aggregator produces the answer: nothing can come after it. */
                if (i > 0 && p->layers[i - 1].role == LAYER_AGGREGATE)
                        return fail_at(ctx, layers->items[i], -EINVAL,
                                       "an aggregate layer must be the last layer of pipeline '%s'",
                                       p->name);
        }
        return 0;
}

static int parse_pipelines(Ctx *ctx, const YamlNode *s, Config *c) {
        int r;

        if (yaml_node_is_null(s))
                return 0;
        r = expect_kind(ctx, s, YAML_TREE_SEQUENCE, "pipelines");
        if (r < 0)
                return r;
        r = expect_max_items(ctx, s, s->n_items, CONFIG_MAX_PIPELINES, "pipelines");
        if (r < 0)
                return r;
        c->pipelines = calloc(s->n_items + 2, sizeof(PipelineConfig)); /* +2: moa, moa-lite */
        if (!c->pipelines)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_items; i++) {
                _cleanup_free_ char *where = path_index("pipelines", i);
                PipelineConfig *p = &c->pipelines[c->n_pipelines];

                if (!where)
                        return -ENOMEM;
                *p = (PipelineConfig){.deadline_ms = 120000,
                                      .staircase_quorum = CONFIG_STAIRCASE_QUORUM,
                                      .staircase_min_chars = CONFIG_STAIRCASE_MIN_CHARS};
                c->n_pipelines++;
                r = parse_pipeline(ctx, s->items[i], where, p);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (streq(c->pipelines[j].name, p->name))
                                return fail_at(ctx, mapping_get(s->items[i], "name"), -EEXIST,
                                               "duplicate pipeline name '%s'", p->name);
        }
        return 0;
}

/* ---- defaults ---- */

static int add_builtin_pipeline(Config *c, const char *name, const char *description, const LayerRole *roles,
                                size_t n_roles) {
        PipelineConfig *p;

        if (config_find_pipeline(c, name))
                return 0; /* the user's definition wins */
        if (!c->pipelines) {
                c->pipelines = calloc(2, sizeof(PipelineConfig));
                if (!c->pipelines)
                        return -ENOMEM;
        }
        /* Room was reserved by parse_pipelines() (n + 2) or just above. */
        p = &c->pipelines[c->n_pipelines++];
        *p = (PipelineConfig){.deadline_ms = 120000,
                              .staircase_quorum = CONFIG_STAIRCASE_QUORUM,
                              .staircase_min_chars = CONFIG_STAIRCASE_MIN_CHARS};
        p->name = strdup(name);
        p->description = strdup(description);
        p->layers = calloc(n_roles, sizeof(LayerConfig));
        if (!p->name || !p->description || !p->layers)
                return -ENOMEM;
        for (size_t i = 0; i < n_roles; i++) {
                p->layers[i] = (LayerConfig){.role = roles[i], .weight = 1.0, .quorum = 0.5};
                p->n_layers++;
                if (roles[i] == LAYER_AGGREGATE) {
                        p->layers[i].agent = strdup("aggregator");
                        if (!p->layers[i].agent)
                                return -ENOMEM;
                }
        }
        return 0;
}

static int add_builtin_provider(Config *c) {
        ProviderConfig *p;

        if (config_find_provider(c, "builtin"))
                return 0; /* a user-defined one (type builtin, checked) wins */
        if (!c->providers) {
                c->providers = calloc(1, sizeof(ProviderConfig));
                if (!c->providers)
                        return -ENOMEM;
        }
        /* parse_providers() reserved one extra slot; keep the builtin first. */
        memmove(c->providers + 1, c->providers, c->n_providers * sizeof(ProviderConfig));
        p = &c->providers[0];
        provider_config_init(p);
        c->n_providers++;
        p->name = strdup("builtin");
        return p->name ? 0 : -ENOMEM;
}

static int config_set_defaults(Config *c) {
        const char *e;
        int r;

        c->socket_mode = 0660;
        c->log_level = LOG_LEVEL_INFO;
        c->router = ROUTER_CONFIG_DEFAULT;
        c->limits = (LimitsConfig){
                .max_body_bytes = 1048576,
                .max_messages = 256,
                .max_message_bytes = 262144,
                .max_connections = 1024,
                .max_inflight = 256,
                .max_queue = 1024,
                .request_timeout_ms = 120000,
                .idle_timeout_ms = 30000,
                .shutdown_timeout_ms = 10000,
                .max_ingest_bytes = 16777216,
                .max_body_total_bytes = 67108864,
                .max_connections_per_peer = 256,
                .header_timeout_ms = 10000,
                .min_body_rate = 1024,
                .max_ask_documents = 16,
                .max_ask_document_bytes = 1048576,
                .max_ask_bytes = 4194304,
                .plugin_score_ms = 250,
                .plugin_call_ms = 1000,
                .plugin_max_timeouts = 3,
                .plugin_max_stuck = 16,
        };
        c->knowledge = (KnowledgeConfig){
                .backend = KNOWLEDGE_SQLITE,
                .connect_timeout_s = KB_PG_DEFAULT_CONNECT_TIMEOUT_S,
                .statement_timeout_ms = KB_PG_DEFAULT_STATEMENT_TIMEOUT_MS,
                .pool_size = KB_PG_DEFAULT_POOL_SIZE,
                .pool_queue = KB_PG_DEFAULT_POOL_QUEUE,
                .search_prune_chunks = KB_PG_DEFAULT_PRUNE_CHUNKS,
        };
        c->jobs = (JobsConfig){
                .concurrency = 2,
                .max_upload_bytes = 16777216,
                .max_lines = 10000,
                .max_line_bytes = 1048576,
                .max_files = 1000,
                .batch_window_seconds = 86400,
                .lease_seconds = 30,
                .db_timeout_ms = 2000,
        };
        if ((r = replace_str(&c->socket_path, "/run/moad/moad.sock")) < 0 ||
            (r = replace_str(&c->default_pipeline, "moa")) < 0 ||
            (r = replace_str(&c->router.fallback, "general")) < 0)
                return r;

        if (dir_exists(MOAD_CONF_DIR "/agents.d") || !dir_exists(MOAD_SOURCE_DIR "/agents.d"))
                r = replace_str(&c->agents_dir, MOAD_CONF_DIR "/agents.d");
        else
                r = replace_str(&c->agents_dir, MOAD_SOURCE_DIR "/agents.d");
        if (r < 0)
                return r;

        e = getenv("MOAD_PLUGIN_DIR");
        if (!isempty(e))
                r = cwd_absolute(e, &c->plugin_dir);
        else if (dir_exists(MOAD_PLUGIN_DIR))
                r = replace_str(&c->plugin_dir, MOAD_PLUGIN_DIR);
        else
                r = replace_str(&c->plugin_dir, MOAD_BUILD_DIR "/plugins");
        if (r < 0)
                return r;

        /* systemd's StateDirectory= may list several, ':'-separated: take the first. */
        e = getenv("STATE_DIRECTORY");
        if (!isempty(e) && e[0] != ':') {
                _cleanup_free_ char *first = strndup(e, strcspn(e, ":"));
                if (!first)
                        return -ENOMEM;
                free(c->state_dir);
                c->state_dir = NULL;
                r = cwd_absolute(first, &c->state_dir);
        } else
                r = replace_str(&c->state_dir, MOAD_STATE_DIR);
        return r;
}

/* ---- moad.yaml ---- */

typedef struct Marks {
        unsigned default_pipeline_line, default_pipeline_column;
        int agents_dir_configured;
} Marks;

static int parse_main(Ctx *ctx, const YamlNode *root, Config *c, Marks *marks) {
        const YamlNode *k, *v;
        int r;

        if (!root)
                return 0;
        if (root->kind != YAML_TREE_MAPPING)
                return fail_at(ctx, root, -EINVAL, "expected a mapping at the top level, got a %s",
                               yaml_node_kind_name(root));
        FOREACH_PAIR(root, k, v) {
                const char *key = k->value;

                if (streq(key, "listen"))
                        r = parse_listen(ctx, v, c);
                else if (streq(key, "agents_dir")) {
                        r = get_path(ctx, v, key, ctx->dir, &c->agents_dir);
                        marks->agents_dir_configured = !yaml_node_is_null(v);
                } else if (streq(key, "plugin_dir"))
                        r = get_path(ctx, v, key, ctx->dir, &c->plugin_dir);
                else if (streq(key, "state_dir"))
                        r = get_path(ctx, v, key, ctx->dir, &c->state_dir);
                else if (streq(key, "log_level")) {
                        if (yaml_node_is_null(v))
                                r = 0;
                        else if (v->kind == YAML_TREE_SCALAR && (r = log_level_from_string(v->value)) >= 0)
                                c->log_level = r;
                        else
                                r = fail_at(ctx, v, -EINVAL,
                                            "invalid value%s%s%s for 'log_level' (expected err, warning, "
                                            "notice, info or debug)",
                                            v->kind == YAML_TREE_SCALAR ? " '" : "",
                                            v->kind == YAML_TREE_SCALAR ? v->value : "",
                                            v->kind == YAML_TREE_SCALAR ? "'" : "");
                } else if (streq(key, "default_pipeline")) {
                        r = get_name(ctx, v, key, &c->default_pipeline);
                        marks->default_pipeline_line = v->line;
                        marks->default_pipeline_column = v->column;
                } else if (streq(key, "router"))
                        r = parse_router(ctx, v, &c->router);
                else if (streq(key, "limits"))
                        r = parse_limits(ctx, v, &c->limits);
                else if (streq(key, "jobs"))
                        r = parse_jobs(ctx, v, &c->jobs);
                else if (streq(key, "knowledge"))
                        r = parse_knowledge(ctx, v, &c->knowledge);
                else if (streq(key, "access"))
                        r = parse_access(ctx, v, &c->access);
                else if (streq(key, "providers"))
                        r = parse_providers(ctx, v, c);
                else if (streq(key, "pipelines"))
                        r = parse_pipelines(ctx, v, c);
                else
                        r = unknown_key(ctx, k, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- agents.d ---- */

/* Appends the example questions of @path (one per line; blank lines and
 * lines starting with '#' skipped) to @a's examples. */
static int read_examples_file(Ctx *ctx, const char *path, AgentConfig *a) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        unsigned line = 0;
        int r;

        r = read_file_bounded(ctx, path, &buf, &size);
        if (r < 0)
                return r;
        if (memchr(buf, 0, size))
                return fail_file(ctx, path, -EINVAL, "not a text file (NUL byte)");
        for (char *p = buf, *nl; p && *p; p = nl ? nl + 1 : NULL) {
                nl = strchr(p, '\n');
                if (nl)
                        *nl = 0;
                line++;
                size_t n = strlen(p);
                while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
                        p[--n] = 0;
                while (*p == ' ' || *p == '\t')
                        p++, n--;
                if (n == 0 || *p == '#')
                        continue;
                if (n > CONFIG_MAX_EXAMPLE_BYTES)
                        return fail_file(ctx, path, -EINVAL, "line %u: example longer than %u bytes", line,
                                         CONFIG_MAX_EXAMPLE_BYTES);
                if (a->n_examples >= CONFIG_MAX_EXAMPLES)
                        return fail_file(ctx, path, -E2BIG, "line %u: more than %u examples for agent '%s'",
                                         line, CONFIG_MAX_EXAMPLES, a->name ? a->name : "?");
                char **v = reallocarray(a->examples, a->n_examples + 1, sizeof(char *));
                if (!v)
                        return -ENOMEM;
                a->examples = v;
                if (!(v[a->n_examples] = strdup(p)))
                        return -ENOMEM;
                a->n_examples++;
        }
        return 0;
}

static int parse_agent(Ctx *ctx, const YamlNode *root, Config *c, AgentConfig *a) {
        const YamlNode *k, *v, *provider_node = NULL, *name_node = NULL;
        _cleanup_free_ char *examples_file = NULL;
        int r;

        if (!root)
                return fail_at(ctx, NULL, -EINVAL, "empty agent file: 'name' is required");
        if (root->kind != YAML_TREE_MAPPING)
                return fail_at(ctx, root, -EINVAL, "expected a mapping at the top level, got a %s",
                               yaml_node_kind_name(root));
        FOREACH_PAIR(root, k, v) {
                const char *key = k->value;

                if (streq(key, "name")) {
                        name_node = v;
                        r = get_name(ctx, v, key, &a->name);
                        /* an agent's name is also a model id, a path segment
                         * and a metric label: the plugins' rule */
                        if (r >= 0 && a->name &&
                            a->name[strspn(a->name, "abcdefghijklmnopqrstuvwxyz0123456789_-")])
                                r = fail_at(ctx, v, -EINVAL,
                                            "invalid agent name '%s' (1-%u characters of a-z 0-9 _ -)",
                                            a->name, CONFIG_MAX_NAME);
                } else if (streq(key, "plugin")) {
                        r = get_string(ctx, v, key, 0, &a->plugin);
                        /* A path (not a bare name) is relative to the agent file. */
                        if (r >= 0 && a->plugin && strchr(a->plugin, '/') && a->plugin[0] != '/') {
                                char *s;
                                r = path_make_absolute(a->plugin, ctx->dir, &s);
                                if (r >= 0) {
                                        free(a->plugin);
                                        a->plugin = s;
                                }
                        }
                } else if (streq(key, "weight"))
                        r = get_double(ctx, v, key, 0, 100, &a->weight);
                else if (streq(key, "provider")) {
                        provider_node = v;
                        r = get_name(ctx, v, key, &a->provider);
                } else if (streq(key, "model"))
                        r = get_string(ctx, v, key, 0, &a->model);
                else if (streq(key, "prompt"))
                        r = get_string(ctx, v, key, 0, &a->prompt);
                else if (streq(key, "description"))
                        r = get_string(ctx, v, key, 0, &a->description);
                else if (streq(key, "examples")) {
                        r = get_string_list(ctx, v, key, CONFIG_MAX_EXAMPLES, NULL, 0, &a->examples,
                                            &a->n_examples);
                        for (size_t i = 0; r >= 0 && i < a->n_examples; i++)
                                if (strlen(a->examples[i]) > CONFIG_MAX_EXAMPLE_BYTES)
                                        r = fail_at(ctx, v->items[i], -EINVAL,
                                                    "examples[%zu] is longer than %u bytes", i,
                                                    CONFIG_MAX_EXAMPLE_BYTES);
                } else if (streq(key, "examples_file"))
                        r = get_path(ctx, v, key, ctx->dir, &examples_file);
                else if (streq(key, "knowledge"))
                        r = get_string_list(ctx, v, key, CONFIG_MAX_KNOWLEDGE, ctx->dir, 0, &a->knowledge,
                                            &a->n_knowledge);
                else if (streq(key, "enabled"))
                        r = get_bool(ctx, v, key, &a->enabled);
                else if (streq(key, "language")) {
                        r = get_string(ctx, v, key, 0, &a->language);
                        if (r >= 0 && a->language && !kb_pg_language_valid(a->language))
                                r = fail_at(ctx, v, -EINVAL,
                                            "invalid value '%s' for 'language' (expected english, german, "
                                            "french, spanish or simple)",
                                            a->language);
                } else if (streq(key, "options"))
                        r = get_key_values(ctx, v, key, CONFIG_MAX_OPTIONS, &a->options, &a->n_options);
                else
                        r = unknown_key(ctx, k, NULL);
                if (r < 0)
                        return r;
        }
        if (!a->name)
                return missing_key(ctx, root, "name", NULL);
        if (examples_file) {
                r = read_examples_file(ctx, examples_file, a);
                if (r < 0)
                        return r;
        }
        if (!config_find_provider(c, a->provider))
                return fail_at(ctx, provider_node, -ENOENT, "unknown provider '%s' for agent '%s'",
                               a->provider, a->name);
        for (size_t i = 0; i < c->n_agents; i++)
                if (&c->agents[i] != a && streq(c->agents[i].name, a->name))
                        return fail_at(ctx, name_node, -EEXIST, "duplicate agent name '%s' (also in %s)",
                                       a->name, c->agents[i].file);
        return 0;
}

static int has_yaml_suffix(const char *n) {
        size_t l = strlen(n);

        return (l > 5 && streq(n + l - 5, ".yaml")) || (l > 4 && streq(n + l - 4, ".yml"));
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static inline void closedirp_local(DIR **d) {
        if (*d)
                closedir(*d);
}

static int load_agent_file(Ctx *dir_ctx, Config *c, const char *file) {
        _cleanup_(yaml_tree_freep) YamlNode *root = NULL;
        _cleanup_free_ char *data = NULL;
        Ctx ctx = {.file = file};
        AgentConfig *a;
        size_t size;
        int r;

        ctx.dir = dirname_of(file);
        if (!ctx.dir)
                return -ENOMEM;
        r = read_file_bounded(&ctx, file, &data, &size);
        if (r >= 0)
                r = yaml_tree_parse(file, data, size, &root, &ctx.error);
        if (r >= 0) {
                a = &c->agents[c->n_agents++];
                *a = (AgentConfig){.weight = 1.0, .enabled = 1};
                a->file = strdup(file);
                a->provider = strdup("builtin");
                if (!a->file || !a->provider)
                        r = -ENOMEM;
                else
                        r = parse_agent(&ctx, root, c, a);
        }
        ctx_done(&ctx);
        dir_ctx->error = TAKE_PTR(ctx.error);
        return r;
}

static int load_agents(Ctx *ctx, Config *c) {
        _cleanup_(closedirp_local) DIR *d = NULL;
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        int r = 0;

        d = opendir(c->agents_dir);
        if (!d)
                return fail_file(ctx, c->agents_dir, -errno, "cannot open agents directory: %s",
                                 strerror(errno));
        while ((errno = 0, de = readdir(d))) {
                _cleanup_free_ char *full = NULL;
                struct stat st;

                if (de->d_name[0] == '.' || !has_yaml_suffix(de->d_name))
                        continue;
                if (asprintf(&full, "%s/%s", c->agents_dir, de->d_name) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
                if (stat(full, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (n >= CONFIG_MAX_AGENT_FILES) {
                        r = fail_file(ctx, c->agents_dir, -E2BIG, "too many agent files (at most %u)",
                                      CONFIG_MAX_AGENT_FILES);
                        goto out;
                }
                char **nn = reallocarray(names, n + 1, sizeof(char *));
                if (!nn) {
                        r = -ENOMEM;
                        goto out;
                }
                names = nn;
                names[n++] = TAKE_PTR(full);
        }
        if (errno != 0) {
                r = fail_file(ctx, c->agents_dir, -errno, "cannot read agents directory: %s",
                              strerror(errno));
                goto out;
        }
        if (n == 0)
                goto out;
        qsort(names, n, sizeof(char *), cmp_str);
        c->agents = calloc(n, sizeof(AgentConfig));
        if (!c->agents) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                r = load_agent_file(ctx, c, names[i]);
                if (r < 0)
                        goto out;
        }
out:
        strv_free_n(names, n);
        return r;
}

/* ---- entry point ---- */

static int config_load_internal(Ctx *ctx, const char *path, const char *agents_dir_override, Config **ret) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(yaml_tree_freep) YamlNode *root = NULL;
        _cleanup_free_ char *data = NULL;
        Marks marks = {};
        int r;

        c = calloc(1, sizeof(Config));
        if (!c)
                return -ENOMEM;
        r = config_set_defaults(c);
        if (r < 0)
                return r;

        if (path) {
                size_t size;

                r = cwd_absolute(path, &c->file);
                if (r < 0)
                        return r;
                ctx->file = c->file;
                ctx->dir = dirname_of(c->file);
                if (!ctx->dir)
                        return -ENOMEM;
                r = read_file_bounded(ctx, c->file, &data, &size);
                if (r < 0)
                        return r;
                r = yaml_tree_parse(c->file, data, size, &root, &ctx->error);
                if (r < 0)
                        return r;
                r = parse_main(ctx, root, c, &marks);
                if (r < 0)
                        return r;
        }

        r = add_builtin_provider(c);
        if (r < 0)
                return r;
        static const LayerRole moa[] = {LAYER_PROPOSE, LAYER_REFINE, LAYER_AGGREGATE};
        static const LayerRole lite[] = {LAYER_PROPOSE, LAYER_AGGREGATE};
        r = add_builtin_pipeline(c, "moa", "Mixture of agents: propose, refine, aggregate", moa,
                                 ELEMENTSOF(moa));
        if (r < 0)
                return r;
        r = add_builtin_pipeline(c, "moa-lite", "Two layers: propose, aggregate", lite, ELEMENTSOF(lite));
        if (r < 0)
                return r;

        if (agents_dir_override) {
                free(c->agents_dir);
                c->agents_dir = NULL;
                r = cwd_absolute(agents_dir_override, &c->agents_dir);
                if (r < 0)
                        return r;
        }
        /* Only a directory someone asked for must exist; a missing default means no agents. */
        if (agents_dir_override || marks.agents_dir_configured || dir_exists(c->agents_dir)) {
                r = load_agents(ctx, c);
                if (r < 0)
                        return r;
        }

        /* default_pipeline may name a pipeline or a single agent (like "model"). */
        if (!config_find_pipeline(c, c->default_pipeline) && !config_find_agent(c, c->default_pipeline)) {
                YamlNode where = {.line = marks.default_pipeline_line ?: 1,
                                  .column = marks.default_pipeline_column ?: 1};
                return fail_at(ctx, &where, -ENOENT, "unknown pipeline or agent '%s' for 'default_pipeline'",
                               c->default_pipeline);
        }

        *ret = TAKE_PTR(c);
        return 0;
}

int config_load(const char *path, const char *agents_dir_override, Config **ret, char **ret_error) {
        Ctx ctx = {.file = path ?: "<defaults>"};
        int r;

        r = config_load_internal(&ctx, path, agents_dir_override, ret);
        ctx_done(&ctx);
        if (r < 0 && ret_error) {
                if (!ctx.error && asprintf(&ctx.error, "%s: %s", path ?: "<defaults>", strerror(-r)) < 0)
                        ctx.error = NULL;
                *ret_error = TAKE_PTR(ctx.error);
        }
        free(ctx.error);
        return r;
}
