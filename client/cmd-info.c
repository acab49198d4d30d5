/* cmd-info.c — the read-mostly commands: models, health, route, agents,
 * status, reload and metrics. Each makes one or two calls and turns the
 * JSON into something a person reads; --json prints the body instead. */
#include "moactl.h"

#define INFO_DEFAULT_TIMEOUT_SEC 30L

static long info_timeout(const Moactl *m) {
        return m->timeout_sec >= 0 ? m->timeout_sec : INFO_DEFAULT_TIMEOUT_SEC;
}

static int no_operands(const char *cmd, int argc) {
        if (argc != 0)
                return usage_error("%s takes no operands", cmd);
        return MOACTL_EXIT_OK;
}

int cmd_models(const Moactl *m, int argc, char **argv) {
        static const char *const headers[] = {"MODEL", "OWNED BY"};
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        json_t *v;
        size_t i;
        int code;

        code = no_operands("models", argc);
        if (code != MOACTL_EXIT_OK)
                return code;
        code = ctl_call_json(m, "GET", "/v1/models", NULL, info_timeout(m), &reply, &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        if (m->json) {
                print_raw(&reply);
                return MOACTL_EXIT_OK;
        }

        t = table_new(ELEMENTSOF(headers), headers);
        if (!t)
                return MOACTL_EXIT_FAILED;
        json_array_foreach(json_object_get(root, "data"), i, v) {
                const char *cells[] = {json_str(v, "id", "?"), json_str(v, "owned_by", "-")};

                if (table_add(t, cells) < 0)
                        return MOACTL_EXIT_FAILED;
        }
        table_print(t, stdout, 0);
        return MOACTL_EXIT_OK;
}

int cmd_health(const Moactl *m, int argc, char **argv) {
        _cleanup_(reply_done) Reply health = {}, ready = {};
        _cleanup_(json_decrefp) json_t *root = NULL, *rroot = NULL;
        const char *state;
        int code;

        code = no_operands("health", argc);
        if (code != MOACTL_EXIT_OK)
                return code;
        code = ctl_call_json(m, "GET", "/healthz", NULL, info_timeout(m), &health, &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&health, code);

        /* /readyz answers 503 while starting or draining: that is a state, not a failure to report. */
        code = ctl_call(m, "GET", "/readyz", NULL, info_timeout(m), &ready);
        if (code == MOACTL_EXIT_FAILED && ready.status == 503)
                code = MOACTL_EXIT_OK;
        if (code == MOACTL_EXIT_OK)
                code = reply_json(&ready, &rroot);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&ready, code);

        if (m->json) {
                print_raw(&health);
                print_raw(&ready);
        } else {
                fputs("moad: ", stdout);
                state = json_str(root, "status", "?");
                print_sanitized(stdout, state, strlen(state));
                state = json_str(rroot, "status", "?");
                fputs(", ", stdout);
                print_sanitized(stdout, state, strlen(state));
                fputc('\n', stdout);
        }
        return ready.status == 200 ? MOACTL_EXIT_OK : MOACTL_EXIT_FAILED;
}

int cmd_route(const Moactl *m, int argc, char **argv) {
        static const char *const headers[] = {"AGENT", "SCORE", "LEXICON", "LEARNED", "KB", "SELECTED"};
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL, *req = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *question = NULL, *body = NULL;
        json_t *v;
        size_t i;
        int r, code;

        if (argc != 1)
                return usage_error("route needs exactly one question (or \"-\" to read it from stdin)");
        r = read_question(argv[0], &question);
        if (r == -EILSEQ)
                return usage_error("the question is not UTF-8 text");
        if (r < 0) {
                fprintf(stderr, "moactl: cannot read the question: %s\n", strerror(-r));
                return MOACTL_EXIT_FAILED;
        }
        if (isempty(question))
                return usage_error("the question is empty");

        req = json_pack("{s:s}", "query", question);
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        if (!body)
                return MOACTL_EXIT_FAILED;
        code = ctl_call_json(m, "POST", "/v1/moa/route", body, info_timeout(m), &reply, &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        if (m->json) {
                print_raw(&reply);
                return MOACTL_EXIT_OK;
        }

        t = table_new(ELEMENTSOF(headers), headers);
        if (!t)
                return MOACTL_EXIT_FAILED;
        json_array_foreach(json_object_get(root, "agents"), i, v) {
                char score[32], plugin[32], learned[32], kb[32];

                json_fmt_num(score, sizeof(score), v, "score", 3, NULL);
                json_fmt_num(plugin, sizeof(plugin), v, "plugin_score", 3, NULL);
                json_fmt_num(learned, sizeof(learned), v, "learned_score", 3, NULL);
                json_fmt_num(kb, sizeof(kb), v, "kb_score", 3, NULL);
                const char *cells[] = {json_str(v, "name", "?"),  score, plugin, learned, kb,
                                       json_yes_no(v, "selected")};
                if (table_add(t, cells) < 0)
                        return MOACTL_EXIT_FAILED;
        }
        table_print(t, stdout, 72);

        /* What each score rests on: the lexicon's reason, the words the
         * classifier weighed, the knowledge terms and documents. */
        fputs("Why:\n", stdout);
        json_array_foreach(json_object_get(root, "agents"), i, v) {
                static const struct {
                        const char *key, *label;
                } parts[] = {{"reason", "lexicon"}, {"learned_terms", "learned"}, {"kb_terms", "knowledge"}};
                const char *name = json_str(v, "name", "?");
                int any = 0;
                for (size_t k = 0; k < ELEMENTSOF(parts); k++) {
                        const char *x = json_str(v, parts[k].key, "");
                        if (isempty(x))
                                continue;
                        fputs(any ? "; " : "  ", stdout);
                        if (!any) {
                                print_sanitized(stdout, name, strlen(name));
                                fputs(": ", stdout);
                        }
                        printf("%s: ", parts[k].label);
                        print_sanitized(stdout, x, strlen(x));
                        any = 1;
                }
                if (any)
                        fputc('\n', stdout);
        }

        fputs("Selected:", stdout);
        json_array_foreach(json_object_get(root, "selected"), i, v) {
                if (!json_is_string(v))
                        continue;
                fputs(i == 0 ? " " : ", ", stdout);
                print_sanitized(stdout, json_string_value(v), strlen(json_string_value(v)));
        }
        fputc('\n', stdout);
        return MOACTL_EXIT_OK;
}

int cmd_agents(const Moactl *m, int argc, char **argv) {
        static const char *const headers[] = {"AGENT",    "PLUGIN", "VERSION",   "WEIGHT",
                                              "PROVIDER", "MODEL",  "DOCUMENTS", "DESCRIPTION"};
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        json_t *v;
        size_t i;
        int code;

        code = no_operands("agents", argc);
        if (code != MOACTL_EXIT_OK)
                return code;
        code = ctl_call_json(m, "GET", "/v1/moa/agents", NULL, info_timeout(m), &reply, &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        if (m->json) {
                print_raw(&reply);
                return MOACTL_EXIT_OK;
        }

        t = table_new(ELEMENTSOF(headers), headers);
        if (!t)
                return MOACTL_EXIT_FAILED;
        json_array_foreach(json_object_get(root, "agents"), i, v) {
                char weight[32], docs[32];

                json_fmt_num(weight, sizeof(weight), v, "weight", 2, NULL);
                json_fmt_num(docs, sizeof(docs), v, "documents", 0, NULL);
                const char *cells[] = {json_str(v, "name", "?"),
                                       json_str(v, "plugin", "-"),
                                       json_str(v, "version", "-"),
                                       weight,
                                       json_str(v, "provider", "-"),
                                       json_str(v, "model", "-"),
                                       docs,
                                       json_str(v, "description", "")};
                if (table_add(t, cells) < 0)
                        return MOACTL_EXIT_FAILED;
        }
        table_print(t, stdout, 60);
        return MOACTL_EXIT_OK;
}

static void print_uptime(long long s) {
        if (s < 0)
                s = 0;
        if (s >= 86400)
                printf("%lldd %02lldh %02lldm %02llds\n", s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
        else if (s >= 3600)
                printf("%lldh %02lldm %02llds\n", s / 3600, s / 60 % 60, s % 60);
        else
                printf("%lldm %02llds\n", s / 60, s % 60);
}

static void print_field(const char *label, const char *value) {
        printf("%-11s ", label);
        print_sanitized(stdout, value, strlen(value));
        fputc('\n', stdout);
}

int cmd_status(const Moactl *m, int argc, char **argv) {
        static const char *const known[] = {"state",    "version", "uptime_s", "requests_total",
                                            "inflight", "queued",  "agents",   "pipelines"};
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL;
        const char *key;
        json_t *v;
        size_t i;
        int code;

        code = no_operands("status", argc);
        if (code != MOACTL_EXIT_OK)
                return code;
        code = ctl_call_json(m, "GET", "/v1/moa/status", NULL, info_timeout(m), &reply, &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        if (m->json) {
                print_raw(&reply);
                return MOACTL_EXIT_OK;
        }

        print_field("State:", json_str(root, "state", "?"));
        print_field("Version:", json_str(root, "version", "?"));
        printf("%-11s ", "Uptime:");
        print_uptime(json_int(root, "uptime_s", 0));
        printf("%-11s %lld total, %lld in flight, %lld queued\n",
               "Requests:", json_int(root, "requests_total", 0), json_int(root, "inflight", 0),
               json_int(root, "queued", 0));
        v = json_object_get(root, "agents");
        if (json_is_array(v))
                printf("%-11s %zu\n", "Agents:", json_array_size(v));
        else
                printf("%-11s %lld\n", "Agents:", json_int(root, "agents", 0));
        printf("%-11s", "Pipelines:");
        json_array_foreach(json_object_get(root, "pipelines"), i, v) {
                const char *name = json_is_string(v) ? json_string_value(v) : json_str(v, "name", "?");

                fputs(i == 0 ? " " : ", ", stdout);
                print_sanitized(stdout, name, strlen(name));
        }
        fputc('\n', stdout);

        /* Newer daemons may report more; show plain values rather than hide them. */
        json_object_foreach(root, key, v) {
                char label[64], num[64];
                size_t k;

                for (k = 0; k < ELEMENTSOF(known); k++)
                        if (streq(key, known[k]))
                                break;
                if (k < ELEMENTSOF(known))
                        continue;
                snprintf(label, sizeof(label), "%s:", key);
                if (json_is_string(v))
                        print_field(label, json_string_value(v));
                else if (json_is_number(v)) {
                        snprintf(num, sizeof(num), "%g", json_number_value(v));
                        print_field(label, num);
                } else if (json_is_boolean(v))
                        print_field(label, json_is_true(v) ? "yes" : "no");
        }
        return MOACTL_EXIT_OK;
}

int cmd_reload(const Moactl *m, int argc, char **argv) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL;
        int code;

        code = no_operands("reload", argc);
        if (code != MOACTL_EXIT_OK)
                return code;
        code = ctl_call_json(m, "POST", "/v1/moa/reload", "{}", info_timeout(m), &reply, &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        /* 207: the new configuration is active, but without the agents listed */
        json_t *refused = json_object_get(root, "refused");
        size_t n = json_is_array(refused) ? json_array_size(refused) : 0;
        if (m->json)
                print_raw(&reply);
        else if (n == 0)
                puts("moad: configuration reloaded");
        else
                printf("moad: configuration reloaded without %zu refused agent(s)\n", n);
        for (size_t i = 0; i < n; i++) {
                json_t *r = json_array_get(refused, i);
                const char *agent = json_string_value(json_object_get(r, "agent"));
                const char *file = json_string_value(json_object_get(r, "file"));
                const char *why = json_string_value(json_object_get(r, "reason"));
                fputs("moactl: agent ", stderr);
                print_sanitized(stderr, agent ? agent : "?", strlen(agent ? agent : "?"));
                if (file) {
                        fputs(" (", stderr);
                        print_sanitized(stderr, file, strlen(file));
                        fputc(')', stderr);
                }
                fputs(" refused: ", stderr);
                print_sanitized(stderr, why ? why : "?", strlen(why ? why : "?"));
                fputc('\n', stderr);
        }
        return n || reply.status == 207 ? MOACTL_EXIT_PARTIAL : MOACTL_EXIT_OK;
}

int cmd_metrics(const Moactl *m, int argc, char **argv) {
        _cleanup_(reply_done) Reply reply = {};
        int code;

        code = no_operands("metrics", argc);
        if (code != MOACTL_EXIT_OK)
                return code;
        code = ctl_call(m, "GET", "/metrics", NULL, info_timeout(m), &reply);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        if (reply.size > 0)
                fwrite(reply.body, 1, reply.size, stdout);
        return MOACTL_EXIT_OK;
}
