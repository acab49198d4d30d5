/* plugin-check.c — `moad --check-plugin FILE.so [--queries FILE.tsv]`: the
 * plugin alone (descriptor, callbacks on ordinary and hostile input), then
 * its routing on labelled questions beside the configured agents, in a
 * throw-away state directory (see plugin-check.h). */
#include <ftw.h>
#include <libgen.h>
#include <sys/stat.h>

#include "agents.h"
#include "config.h"
#include "log.h"
#include "plugin-check.h"

static int name_is_valid(const char *s) {
        if (isempty(s) || strlen(s) > 64)
                return 0;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
                        return 0;
        return 1;
}

/* The file name without directory and ".so": the agent's default name. */
static char *name_from_path(const char *path) {
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        size_t n = strlen(b);
        if (n > 3 && streq(b + n - 3, ".so"))
                n -= 3;
        return strndup(b, n);
}

/* Call every callback once on ordinary and on hostile input. Returns the
 * number of failures (a failing score is only a warning: the router then
 * counts the agent as 0, which plugin.h allows). */
static unsigned exercise(PluginAgent *a, FILE *out) {
        _cleanup_free_ char *longq = malloc(65537);
        static const struct {
                const char *what, *query;
        } questions[] = {
                {"an ordinary question", "What should I know before I start?"},
                {"an empty question", ""},
                {"invalid UTF-8", "caf\xc3 \xff\xfe \xe2\x82"},
        };
        unsigned failed = 0;
        double s;
        int r;

        if (!longq)
                return 1;
        for (size_t i = 0; i < 65536; i++)
                longq[i] = "word "[i % 5];
        longq[65536] = 0;
        for (size_t i = 0; i <= ELEMENTSOF(questions); i++) {
                const char *what = i < ELEMENTSOF(questions) ? questions[i].what : "a 64 KiB question";
                const char *q = i < ELEMENTSOF(questions) ? questions[i].query : longq;
                _cleanup_free_ char *reason = NULL;
                r = plugin_agent_score(a, q, &s, &reason);
                if (r < 0)
                        fprintf(out, "warning: score() failed on %s: %s (the router counts it as 0)\n", what,
                                strerror(-r));
                else
                        fprintf(out, "ok: score() on %s: %.2f (%.80s)\n", what, s, reason ? reason : "");
        }

        KbHit hits[2] = {
                {.title = "first.md",
                 .source = "",
                 .score = 2,
                 .snippet = "a snippet",
                 .text = "A passage.",
                 .heading = ""},
                {.title = "second.md",
                 .source = "/srv/x",
                 .score = 1,
                 .snippet = "",
                 .text = "",
                 .heading = ""},
        };
        for (size_t n = 0; n <= 2; n += 2) {
                _cleanup_free_ char *sys = NULL, *ctx = NULL;
                r = plugin_agent_build_prompt(a, questions[0].query, n ? hits : NULL, n, &sys, &ctx);
                if (r < 0) {
                        fprintf(out, "FAIL: build_prompt() with %zu passages: %s\n", n, strerror(-r));
                        failed++;
                } else
                        fprintf(out,
                                "ok: build_prompt() with %zu passages: system prompt of %zu bytes, context "
                                "of %zu\n",
                                n, strlen(sys), ctx ? strlen(ctx) : 0);
        }

        /* what review gets in the daemon: the final answer, often ending in a newline */
        _cleanup_free_ char *reviewed = NULL;
        r = plugin_agent_review(a, "An answer to check.\n", &reviewed);
        if (r < 0) {
                fprintf(out, "FAIL: review(): %s\n", strerror(-r));
                failed++;
        } else
                fprintf(out, "ok: review(\"An answer to check.\\n\") = \"%.200s\"\n", reviewed);
        return failed;
}

/* ---- routing on labelled questions ---------------------------------- */

typedef struct Counts {
        unsigned tp, fp, fn;
} Counts;

static int has_label(const char *labels, const char *name) {
        size_t n = strlen(name);
        for (const char *p = labels; *p;) {
                size_t k = strcspn(p, ",");
                if (k == n && strncmp(p, name, n) == 0)
                        return 1;
                p += k;
                if (*p == ',')
                        p++;
        }
        return 0;
}

static double ratio(unsigned a, unsigned b) {
        return b ? (double) a / (double) b : 0.0;
}

/* Route every question of @path and report on agent @name. */
static int route_questions(AgentSet *set, const char *name, const char *path, FILE *out) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        _cleanup_free_ char *line = NULL;
        Counts mine = {}, all = {};
        unsigned n = 0, exact = 0, lineno = 0, shown = 0, unknown = 0;
        size_t cap = 0;
        ssize_t len;

        if (!f) {
                fprintf(out, "cannot open %s: %s\n", path, strerror(errno));
                return 2;
        }
        while ((len = getline(&line, &cap, f)) >= 0) {
                RouteResult rr = ROUTE_RESULT_INIT;
                char *fields[3];
                unsigned nf = 0;

                lineno++;
                if ((size_t) len > PLUGIN_CHECK_MAX_LINE) {
                        fprintf(out, "%s:%u: line longer than %u bytes, skipped\n", path, lineno,
                                PLUGIN_CHECK_MAX_LINE);
                        continue;
                }
                line[strcspn(line, "\r\n")] = 0;
                if (!*line || *line == '#')
                        continue;
                if (n >= PLUGIN_CHECK_MAX_QUESTIONS) {
                        fprintf(out, "%s: only the first %u questions are routed\n", path,
                                PLUGIN_CHECK_MAX_QUESTIONS);
                        break;
                }
                for (char *p = line; p && nf < 3; nf++) {
                        fields[nf] = p;
                        p = strchr(p, '\t');
                        if (p)
                                *p++ = 0;
                }
                if (nf < 2) {
                        fprintf(out,
                                "%s:%u: expected 'labels<TAB>question' or "
                                "'split<TAB>labels<TAB>question', skipped\n",
                                path, lineno);
                        continue;
                }
                const char *labels = fields[nf - 2], *q = fields[nf - 1];
                for (const char *p = labels; *p;) {
                        size_t k = strcspn(p, ",");
                        int known = 0;
                        for (size_t i = 0; i < agents_count(set) && !known; i++) {
                                const char *an = agent_name(agents_get(set, i));
                                known = strlen(an) == k && strncmp(an, p, k) == 0;
                        }
                        if (!known && unknown++ < 5)
                                fprintf(out, "%s:%u: label '%.*s' is not an agent here\n", path, lineno,
                                        (int) MIN(k, (size_t) 64), p);
                        p += k + (p[k] == ',');
                }
                int r = agents_route(set, q, NULL, 0, 0, &rr);
                if (r < 0) {
                        fprintf(out, "%s:%u: cannot route: %s\n", path, lineno, strerror(-r));
                        return 1;
                }
                n++;
                char got[256] = "";
                unsigned ok = 1, n_got = 0;
                int e_mine = 0, g_mine = 0;
                for (size_t i = 0; i < rr.n; i++) {
                        const char *an = rr.choices[i].name;
                        int e = has_label(labels, an), g = rr.choices[i].selected;
                        all.tp += e && g;
                        all.fp += !e && g;
                        all.fn += e && !g;
                        ok &= e == g;
                        if (g) {
                                size_t o = strlen(got);
                                snprintf(got + o, sizeof got - o, "%s%s", n_got++ ? "," : "", an);
                        }
                        if (streq(an, name)) {
                                e_mine = e;
                                g_mine = g;
                        }
                }
                mine.tp += e_mine && g_mine;
                mine.fp += !e_mine && g_mine;
                mine.fn += e_mine && !g_mine;
                if (e_mine != g_mine && shown++ < PLUGIN_CHECK_MAX_SHOWN)
                        fprintf(out, "  %s:%u: %s: \"%.100s\" (labelled %s, routed to %s)\n", path, lineno,
                                e_mine ? "missed" : "wrongly routed here", q, labels, *got ? got : "nobody");
                exact += ok;
                route_result_done(&rr);
        }
        if (shown > PLUGIN_CHECK_MAX_SHOWN)
                fprintf(out, "  ... and %u more\n", shown - PLUGIN_CHECK_MAX_SHOWN);
        if (n == 0) {
                fprintf(out, "%s: no labelled questions\n", path);
                return 1;
        }
        fprintf(out, "%s: precision %.3f (%u of %u routed to it), recall %.3f (%u of %u labelled %s)\n",
                name, ratio(mine.tp, mine.tp + mine.fp), mine.tp, mine.tp + mine.fp,
                ratio(mine.tp, mine.tp + mine.fn), mine.tp, mine.tp + mine.fn, name);
        fprintf(out,
                "all agents: micro precision %.3f, recall %.3f; exact routing %.3f (%u of %u questions)\n",
                ratio(all.tp, all.tp + all.fp), ratio(all.tp, all.tp + all.fn), ratio(exact, n), exact, n);
        return 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

/* The agent to add for the plugin: the one @agent_file defines (loaded
 * with its directory's other files, then taken out), or a bare one. */
static int plugin_agent_config(const PluginCheckOptions *o, const char *abs_plugin, const char *name,
                               AgentConfig *ret, FILE *out) {
        _cleanup_free_ char *dir = NULL, *want = NULL;
        Config *c = NULL;
        char *err = NULL;
        int r;

        *ret = (AgentConfig){.weight = 1, .enabled = 1};
        if (!o->agent_file) {
                ret->name = strdup(name);
                ret->plugin = strdup(abs_plugin);
                ret->file = strdup("(--check-plugin)");
                return ret->name && ret->plugin && ret->file ? 0 : -ENOMEM;
        }
        want = realpath(o->agent_file, NULL);
        dir = want ? strdup(want) : NULL;
        if (!want || !dir) {
                int e = want ? ENOMEM : errno;
                fprintf(out, "%s: %s\n", o->agent_file, strerror(e));
                return -e;
        }
        r = config_load(NULL, dirname(dir), &c, &err);
        if (r < 0) {
                fprintf(out, "%s\n", err ? err : strerror(-r));
                free(err);
                return r;
        }
        r = -ENOENT;
        for (size_t i = 0; i < c->n_agents; i++) {
                _cleanup_free_ char *f = c->agents[i].file ? realpath(c->agents[i].file, NULL) : NULL;
                if (f && streq(f, want)) {
                        *ret = c->agents[i];
                        c->agents[i] = (AgentConfig){};
                        free(ret->plugin);
                        ret->plugin = strdup(abs_plugin); /* the file under test, whatever it says */
                        ret->enabled = 1;
                        r = ret->plugin ? 0 : -ENOMEM;
                        break;
                }
        }
        if (r == -ENOENT)
                fprintf(out, "%s defines no agent\n", o->agent_file);
        config_free(c);
        return r;
}

static int check_routing(const PluginCheckOptions *o, const char *abs_plugin, const char *name, FILE *out) {
        char state[] = "/tmp/moad-check-plugin-XXXXXX";
        AgentSet *set = NULL;
        Config *c = NULL;
        char *err = NULL;
        int r, status = 1;

        r = config_load(o->config, o->agents_dir, &c, &err);
        if (r < 0) {
                fprintf(out, "%s\n", err ? err : strerror(-r));
                free(err);
                return 2;
        }
        /* a slot first, so that config_free() owns the agent from the start */
        AgentConfig *v = realloc(c->agents, (c->n_agents + 1) * sizeof *v);
        if (!v) {
                config_free(c);
                return 1;
        }
        c->agents = v;
        r = plugin_agent_config(o, abs_plugin, name, &c->agents[c->n_agents], out);
        c->n_agents++;
        if (r < 0) {
                config_free(c);
                return r == -ENOMEM ? 1 : 2;
        }
        /* it replaces a configured agent of the same name */
        const char *agent = c->agents[c->n_agents - 1].name;
        for (size_t i = 0; i + 1 < c->n_agents; i++)
                if (streq_ptr(c->agents[i].name, agent))
                        c->agents[i].enabled = 0;
        if (!mkdtemp(state)) {
                fprintf(out, "cannot create a temporary directory: %s\n", strerror(errno));
                config_free(c);
                return 1;
        }
        free(c->state_dir);
        c->state_dir = strdup(state);
        if (!c->state_dir)
                goto out;

        fprintf(out, "routing %s against the configured agents (knowledge indexed in %s) ...\n", o->queries,
                state);
        fflush(out);
        r = agents_new(c, &set);
        if (r < 0) {
                fprintf(out, "cannot load the agents: %s\n", strerror(-r));
                goto out;
        }
        if (!agents_find(set, agent)) {
                const AgentRefusals *rs = agents_refused(set);
                for (size_t i = 0; i < rs->n; i++)
                        if (streq(rs->v[i].agent, agent))
                                fprintf(out, "agent %s refused: %s\n", agent, rs->v[i].reason);
                goto out;
        }
        fprintf(out, "%zu agents:", agents_count(set));
        for (size_t i = 0; i < agents_count(set); i++)
                fprintf(out, " %s", agent_name(agents_get(set, i)));
        fputc('\n', out);
        status = route_questions(set, agent, o->queries, out);
out:
        agents_free(set);
        nftw(state, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        config_free(c);
        return status;
}

int plugin_check(const PluginCheckOptions *o, FILE *out) {
        _cleanup_free_ char *abs_plugin = NULL, *name = NULL, *why = NULL;
        PluginAgent *a = NULL;
        unsigned major = 0, minor = 0;
        int r;

        if (!o || isempty(o->plugin) || !out)
                return 2;
        abs_plugin = realpath(o->plugin, NULL);
        if (!abs_plugin) {
                fprintf(out, "%s: %s\n", o->plugin, strerror(errno));
                return 2;
        }
        name = name_from_path(abs_plugin);
        if (!name)
                return 1;
        PluginAgentSpec spec = {.path = abs_plugin, .name = name, .weight = 1};
        r = plugin_agent_load(&spec, &a, &why);
        if (r < 0) {
                fprintf(out, "%s: refused: %s\n", o->plugin, why ? why : strerror(-r));
                return 1;
        }
        plugin_agent_abi(a, &major, &minor);
        fprintf(out, "%s: plugin %s %s (ABI %u.%u): descriptor OK\n", o->plugin, plugin_agent_plugin_name(a),
                plugin_agent_version(a), major, minor);
        if (!name_is_valid(plugin_agent_plugin_name(a)))
                fprintf(out, "warning: the name \"%s\" is not [a-z0-9_-]\n", plugin_agent_plugin_name(a));
        if (!*plugin_agent_version(a))
                fprintf(out, "warning: no version: set .version, GET /v1/moa/agents shows it\n");
        if (!*plugin_agent_description(a))
                fprintf(out, "warning: no description: set .description, GET /v1/moa/agents shows it\n");
        unsigned failed = exercise(a, out);
        plugin_agent_free(a);
        if (failed)
                return 1;
        if (!o->queries)
                return 0;
        return check_routing(o, abs_plugin, name, out);
}
