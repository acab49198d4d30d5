/* cmd-ask.c — "moactl ask": one chat completion. Streams the answer to
 * stdout as the daemon produces it (or prints the whole JSON reply with
 * --json) and, with --trace, shows the route and every layer's agents
 * after the answer. */
#include "moactl.h"

#define ASK_DEFAULT_TIMEOUT_SEC 300L

typedef struct AskState {
        json_t *trace;            /* the last "moa" object seen in the stream */
        json_t *usage;            /* the last "usage" object seen */
        int wrote;                /* some content was printed */
        char last;                /* the last byte printed */
        char tail[16];            /* the last bytes printed, to see a heading across chunks */
        int answer_lists_sources; /* the answer has its own "Sources:" list */
} AskState;

/* Remember whether the answer itself ends in a numbered Sources list (the
 * builtin provider's do), so the citations do not print a second one. */
static void note_content(AskState *s, const char *content) {
        size_t tl = strlen(s->tail), n = strlen(content);
        char buf[sizeof s->tail + 64];

        for (size_t off = 0; off < n && !s->answer_lists_sources; off += 48) {
                size_t k = n - off < 48 ? n - off : 48;
                snprintf(buf, sizeof buf, "%s%.*s", s->tail, (int) k, content + off);
                s->answer_lists_sources = strstr(buf, "\nSources:\n") != NULL;
                tl = strlen(buf);
                snprintf(s->tail, sizeof s->tail, "%s", buf + (tl > 15 ? tl - 15 : 0));
        }
}

static void ask_state_done(AskState *s) {
        json_decref(s->trace);
        json_decref(s->usage);
}

/* The request, or NULL with *ret_code set (a file could not be attached,
 * or out of memory). */
static json_t *build_request(const Moactl *m, const char *question, int stream, int *ret_code) {
        _cleanup_(json_decrefp) json_t *req = NULL;
        json_t *moa;

        *ret_code = MOACTL_EXIT_FAILED;
        req = json_pack("{s:s, s:[{s:s, s:s}], s:b}", "model", m->model, "messages", "role", "user",
                        "content", question, "stream", stream);
        if (!req)
                return NULL;
        if (stream && json_object_set_new(req, "stream_options", json_pack("{s:b}", "include_usage", 1)) < 0)
                return NULL;

        /* Always a "moa" object: the reply then carries moa.citations. */
        moa = json_object();
        if (!moa || json_object_set_new(req, "moa", moa) < 0)
                return NULL;
        if (m->trace && json_object_set_new(moa, "trace", json_true()) < 0)
                return NULL;
        *ret_code = ask_attach(moa, m->files, m->n_files, m->docs, m->n_docs);
        if (*ret_code != MOACTL_EXIT_OK)
                return NULL;
        *ret_code = MOACTL_EXIT_FAILED;
        if (m->n_agents > 0) {
                json_t *agents = json_array();

                if (!agents || json_object_set_new(moa, "agents", agents) < 0)
                        return NULL;
                for (size_t i = 0; i < m->n_agents; i++)
                        if (json_array_append_new(agents, json_string(m->agents[i])) < 0)
                                return NULL;
        }
        return TAKE_PTR(req);
}

static int on_chunk(void *userdata, const char *data, size_t len, int done, Reply *reply) {
        AskState *s = userdata;
        _cleanup_(json_decrefp) json_t *root = NULL;
        json_t *err, *choices, *v;
        size_t i;

        if (done)
                return MOACTL_EXIT_OK;

        root = json_loadb(data, len, 0, NULL);
        if (!json_is_object(root)) {
                snprintf(reply->error, sizeof(reply->error),
                         "bad reply from moad: a stream event is not JSON");
                return MOACTL_EXIT_PROTOCOL;
        }

        err = json_object_get(root, "error");
        if (err) {
                const char *msg = json_str(err, "message", json_string_value(err));
                const char *type = json_str(err, "type", NULL);
                char id[sizeof(reply->request_id) + 16] = "", kind[80] = "";

                if (reply->request_id[0])
                        snprintf(id, sizeof(id), " [request %s]", reply->request_id);
                if (type)
                        snprintf(kind, sizeof(kind), " (%s)", type);
                snprintf(reply->error, sizeof(reply->error), "moad failed mid-stream: %s%s%s",
                         msg ? msg : "unknown error", kind, id);
                return MOACTL_EXIT_FAILED;
        }

        choices = json_object_get(root, "choices");
        json_array_foreach(choices, i, v) {
                const char *content;

                if (json_int(v, "index", 0) != 0)
                        continue;
                content = json_str(json_object_get(v, "delta"), "content", NULL);
                if (isempty(content))
                        continue;
                print_sanitized(stdout, content, strlen(content));
                fflush(stdout);
                s->wrote = 1;
                s->last = content[strlen(content) - 1];
                note_content(s, content);
        }

        v = json_object_get(root, "usage");
        if (json_is_object(v)) {
                json_decref(s->usage);
                s->usage = json_incref(v);
        }
        v = json_object_get(root, "moa");
        if (json_is_object(v)) {
                json_decref(s->trace);
                s->trace = json_incref(v);
        }
        return MOACTL_EXIT_OK;
}

static void print_route(const json_t *route) {
        static const char *const headers[] = {"AGENT", "SCORE", "PLUGIN", "KB", "SELECTED", "REASON"};
        _cleanup_(table_freep) Table *t = NULL;
        json_t *v;
        size_t i;

        t = table_new(ELEMENTSOF(headers), headers);
        if (!t)
                return;
        json_array_foreach(route, i, v) {
                char score[32], plugin[32], kb[32];

                if (json_is_string(v)) { /* a plain list of selected agents */
                        const char *cells[] = {json_string_value(v), "-", "-", "-", "yes", ""};

                        (void) table_add(t, cells);
                        continue;
                }
                json_fmt_num(score, sizeof(score), v, "score", 2, NULL);
                json_fmt_num(plugin, sizeof(plugin), v, "plugin_score", 2, NULL);
                json_fmt_num(kb, sizeof(kb), v, "kb_score", 2, NULL);
                const char *cells[] = {json_str(v, "name", json_str(v, "agent", "?")),
                                       score,
                                       plugin,
                                       kb,
                                       json_yes_no(v, "selected"),
                                       json_str(v, "reason", "")};
                (void) table_add(t, cells);
        }
        puts("Route:");
        table_print(t, stdout, 60);
}

/* One agent's call inside a layer. */
static void add_layer_entry(Table *t, size_t layer, const json_t *e) {
        char name[48], weight[32], latency[32], tokens[32], tries[32], result[600];
        json_t *usage = json_object_get(e, "usage"), *err = json_object_get(e, "error");
        const char *status = json_str(e, "status", NULL), *msg = NULL;

        snprintf(name, sizeof(name), "%zu %s", layer, json_str(e, "role", ""));
        json_fmt_num(weight, sizeof(weight), e, "weight", 2, NULL);
        json_fmt_num(latency, sizeof(latency), e, "latency_ms", 0, " ms");
        json_fmt_num(tokens, sizeof(tokens), usage, "total_tokens", 0, NULL);
        json_fmt_num(tries, sizeof(tries), e, "attempts", 0, NULL);

        if (json_is_string(err))
                msg = json_string_value(err);
        else if (json_is_object(err))
                msg = json_str(err, "message", "error");
        if (!status)
                status = msg ? "error" : "ok";
        if (msg)
                snprintf(result, sizeof(result), "%s: %s", status, msg);
        else
                snprintf(result, sizeof(result), "%s", status);

        const char *cells[] = {name,
                               json_str(e, "agent", json_str(e, "name", "?")),
                               json_str(e, "provider", "-"),
                               weight,
                               latency,
                               tokens,
                               tries,
                               result};
        (void) table_add(t, cells);
}

static void print_layers(const json_t *layers) {
        static const char *const headers[] = {"LAYER",   "AGENT",  "PROVIDER", "WEIGHT",
                                              "LATENCY", "TOKENS", "TRIES",    "RESULT"};
        _cleanup_(table_freep) Table *t = NULL;
        json_t *layer, *e;
        size_t i, j;

        t = table_new(ELEMENTSOF(headers), headers);
        if (!t)
                return;
        json_array_foreach(layers, i, layer) {
                /* [[{call}, ...], ...], or [{"agents": [{call}, ...]}, ...]. */
                const json_t *calls = json_is_object(layer) ? json_object_get(layer, "agents") : layer;

                json_array_foreach(calls, j, e) if (json_is_object(e)) add_layer_entry(t, i + 1, e);
        }
        puts("Layers:");
        table_print(t, stdout, 60);
}

/* Warnings come with or without --trace: e.g. every refinement failed and
 * the best proposal was returned instead. */
static void print_warnings(const json_t *moa) {
        json_t *v = json_object_get(moa, "warnings"), *w;
        size_t i;

        if (json_is_string(v)) {
                fputs("moactl: warning from moad: ", stderr);
                print_sanitized(stderr, json_string_value(v), strlen(json_string_value(v)));
                fputc('\n', stderr);
        }
        json_array_foreach(v, i, w) {
                const char *s = json_is_string(w) ? json_string_value(w) : json_str(w, "message", NULL);

                if (!s)
                        continue;
                fputs("moactl: warning from moad: ", stderr);
                print_sanitized(stderr, s, strlen(s));
                fputc('\n', stderr);
        }
}

/* The numbered sources of moa.citations, once per number and agent (a
 * passage quoted twice is listed once), with the file each came from.
 * When the answer listed its sources itself, only the files are added. */
static void print_citations(const json_t *moa, int answer_lists_sources) {
        json_t *cites = json_object_get(moa, "citations"), *c;
        size_t i, n = 0;

        json_array_foreach(cites, i, c) {
                long long num = json_int(c, "number", 0);
                const char *agent = json_str(c, "agent", "?"), *src = json_str(c, "source", "");
                int seen = 0;
                char line[2048];

                for (size_t k = 0; k < i && !seen; k++) {
                        json_t *o = json_array_get(cites, k);
                        seen = json_int(o, "number", 0) == num && streq(json_str(o, "agent", "?"), agent);
                }
                if (seen)
                        continue;
                if (n++ == 0)
                        fputs(answer_lists_sources ? "\nFiles:\n" : "\nSources:\n", stdout);
                if (answer_lists_sources) {
                        int attached = json_is_true(json_object_get(c, "attached"));
                        snprintf(line, sizeof line, "[%lld] %s%s\n", num,
                                 attached || !*src ? json_str(c, "document", "?") : src,
                                 attached ? " (attached)" : "");
                        print_sanitized(stdout, line, strlen(line));
                        continue;
                }
                snprintf(line, sizeof line, "[%lld] %s: %s, chunk %lld%s%s%s\n", num, agent,
                         json_str(c, "document", "?"), json_int(c, "chunk", 0),
                         json_is_true(json_object_get(c, "attached")) ? " (attached)"
                         : *src                                       ? " - "
                                                                      : "",
                         json_is_true(json_object_get(c, "attached")) ? "" : src, "");
                print_sanitized(stdout, line, strlen(line));
        }
}

static void print_trace(const json_t *trace, const json_t *usage) {
        json_t *v;

        fputc('\n', stdout);
        if (!trace || !(json_object_get(trace, "route") || json_object_get(trace, "layers")))
                puts("(moad sent no trace)");
        else {
                v = json_object_get(trace, "pipeline");
                if (json_is_string(v)) {
                        fputs("Pipeline: ", stdout);
                        print_sanitized(stdout, json_string_value(v), strlen(json_string_value(v)));
                        fputc('\n', stdout);
                }
                v = json_object_get(trace, "route");
                if (json_is_array(v))
                        print_route(v);
                v = json_object_get(trace, "layers");
                if (json_is_array(v))
                        print_layers(v);
                v = json_object_get(trace, "latency_ms");
                if (json_is_number(v))
                        printf("Total latency: %.0f ms\n", json_number_value(v));
        }
        if (json_is_object(usage))
                printf("Usage: %lld prompt + %lld completion = %lld tokens\n",
                       json_int(usage, "prompt_tokens", 0), json_int(usage, "completion_tokens", 0),
                       json_int(usage, "total_tokens", 0));
}

static int ask_json(const Moactl *m, const char *body, long timeout) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL;
        int code;

        code = ctl_call(m, "POST", "/v1/chat/completions", body, timeout, &reply);
        if (code == MOACTL_EXIT_OK)
                code = reply_json(&reply, &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        fwrite(reply.body, 1, reply.size, stdout);
        if (reply.size == 0 || reply.body[reply.size - 1] != '\n')
                fputc('\n', stdout);
        return MOACTL_EXIT_OK;
}

int cmd_ask(const Moactl *m, int argc, char **argv) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(ask_state_done) AskState st = {};
        _cleanup_(json_decrefp) json_t *req = NULL;
        _cleanup_free_ char *question = NULL, *body = NULL;
        long timeout = m->timeout_sec >= 0 ? m->timeout_sec : ASK_DEFAULT_TIMEOUT_SEC;
        int r, code;

        if (argc != 1)
                return usage_error("ask needs exactly one question (or \"-\" to read it from stdin)");
        for (size_t i = 0; i < m->n_files; i++)
                if (streq(argv[0], "-") && streq(m->files[i], "-"))
                        return usage_error("the question and a file cannot both come from standard input");
        r = read_question(argv[0], &question);
        if (r == -EILSEQ)
                return usage_error("the question is not UTF-8 text");
        if (r < 0) {
                fprintf(stderr, "moactl: cannot read the question: %s\n", strerror(-r));
                return MOACTL_EXIT_FAILED;
        }
        if (isempty(question))
                return usage_error("the question is empty");

        req = build_request(m, question, !m->json, &code);
        if (!req && code != MOACTL_EXIT_FAILED)
                return code;
        if (!req && (m->n_files > 0 || m->n_docs > 0))
                return code; /* the reason is printed */
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        if (!body) {
                fputs("moactl: out of memory\n", stderr);
                return MOACTL_EXIT_FAILED;
        }

        if (m->json)
                return ask_json(m, body, timeout);

        code = ctl_stream(m, "/v1/chat/completions", body, timeout, on_chunk, &st, &reply);
        if (st.wrote && st.last != '\n')
                fputc('\n', stdout);
        fflush(stdout);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        print_warnings(st.trace);
        print_citations(st.trace, st.answer_lists_sources);
        if (m->trace)
                print_trace(st.trace, st.usage);
        return MOACTL_EXIT_OK;
}
