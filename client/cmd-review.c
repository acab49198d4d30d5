/* cmd-review.c — "moactl review": the agents named review the given files
 * and moad merges their findings into one report (docs/api.md, moa.review).
 * A review is an ask with the files attached (ask-files.c), a review
 * instruction and moa.review set; this prints the report as Markdown,
 * grouped by severity, with its sources, or as JSON (--format json). */
#include <getopt.h>

#include "moactl.h"

#define REVIEW_DEFAULT_TIMEOUT_SEC 300L
#define REVIEW_INSTRUCTION                                                                                  \
        "Review the attached documents from your field: list the findings that matter, each with its "      \
        "severity and the passages it rests on."

typedef struct ReviewOpts {
        const char *agents[MOACTL_MAX_AGENTS];
        size_t n_agents;
        const char *model;
        const char *question;
        int json;
        long timeout_sec;
} ReviewOpts;

static void review_help(void) {
        printf("Usage: moactl [OPTIONS] review --agents NAME[,NAME...] [REVIEW-OPTIONS] FILE...\n"
               "\n"
               "Each agent reviews FILE... (text, Markdown, HTML, PDF, .gz; \"-\": stdin) from its\n"
               "field; moad merges the findings into one report with a severity, the agents and\n"
               "citations into the files and the agents' knowledge. The files are not stored.\n"
               "\n"
               "Review options:\n"
               "  -a, --agents LIST   the reviewing agents, comma-separated (repeatable; required)\n"
               "  -m, --model NAME    the pipeline that merges (default: moa)\n"
               "  -q, --question TEXT the review instruction (default: a general review)\n"
               "      --format FMT    markdown (default) or json\n"
               "      --timeout SEC   give up after SEC seconds (default 300)\n"
               "  -h, --help          show this help\n"
               "\n"
               "With the builtin provider a review is extractive: a finding is a sentence of the\n"
               "files holding the agent's lexicon terms, and its severity only says how many\n"
               "(high: 3 or more, medium: 2, low: 1), not how much it matters. See moactl(1).\n");
}

static int add_agents(ReviewOpts *o, const char *list) {
        _cleanup_free_ char *copy = strdup(list);
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                while (*t == ' ')
                        t++;
                if (!*t)
                        continue;
                if (o->n_agents >= MOACTL_MAX_AGENTS)
                        return -E2BIG;
                /* list points into argv; keep the pieces for the request */
                o->agents[o->n_agents] = strdup(t);
                if (!o->agents[o->n_agents])
                        return -ENOMEM;
                o->n_agents++;
        }
        return 0;
}

/* Returns -1 to go on, else the exit code. */
static int parse_options(const Moactl *m, int argc, char **argv, ReviewOpts *o) {
        enum { ARG_FORMAT = 0x100, ARG_TIMEOUT };
        static const struct option options[] = {{"agents", required_argument, NULL, 'a'},
                                                {"agent", required_argument, NULL, 'a'},
                                                {"model", required_argument, NULL, 'm'},
                                                {"question", required_argument, NULL, 'q'},
                                                {"format", required_argument, NULL, ARG_FORMAT},
                                                {"timeout", required_argument, NULL, ARG_TIMEOUT},
                                                {"help", no_argument, NULL, 'h'},
                                                {}};
        int c;

        for (size_t i = 0; i < m->n_agents; i++)
                if (add_agents(o, m->agents[i]) < 0)
                        return usage_error("too many agents");
        optind = 0;
        opterr = 0;
        /* argv[-1] is the word "review", which getopt takes for the program name. */
        while ((c = getopt_long(argc + 1, argv - 1, ":a:m:q:h", options, NULL)) >= 0) {
                switch (c) {
                case 'a':
                        if (add_agents(o, optarg) < 0)
                                return usage_error("at most %d agents", MOACTL_MAX_AGENTS);
                        break;
                case 'm':
                        if (isempty(optarg))
                                return usage_error("--model needs a name");
                        o->model = optarg;
                        break;
                case 'q':
                        if (isempty(optarg))
                                return usage_error("--question needs a text");
                        o->question = optarg;
                        break;
                case ARG_FORMAT:
                        if (streq(optarg, "json"))
                                o->json = 1;
                        else if (streq(optarg, "markdown") || streq(optarg, "md"))
                                o->json = 0;
                        else
                                return usage_error("--format is markdown or json, not %s", optarg);
                        break;
                case ARG_TIMEOUT:
                        if (parse_timeout(optarg, &o->timeout_sec) < 0)
                                return usage_error("--timeout needs a number of seconds (0 to 604800): %s",
                                                   optarg);
                        break;
                case 'h':
                        review_help();
                        return MOACTL_EXIT_OK;
                case ':':
                        return usage_error("option %s needs an argument", argv[optind - 2]);
                default:
                        if (optopt)
                                return usage_error("unknown option -%c", optopt);
                        return usage_error("unknown option %s", argv[optind - 2]);
                }
        }
        if (o->n_agents == 0)
                return usage_error("review needs the reviewing agents: --agents legal,finance");
        if (optind > argc)
                return usage_error("review needs the files to review");
        return -1;
}

static void print_md(const char *s) {
        print_sanitized(stdout, s, strlen(s));
}

/* The report as Markdown: findings by severity, then the numbered sources
 * (each once) and the agents' notices that followed the report. */
static void print_markdown(const json_t *root, char *const *files, size_t n_files, const ReviewOpts *o) {
        static const char *const sev[] = {"high", "medium", "low"};
        json_t *moa = json_object_get(root, "moa");
        json_t *findings = json_object_get(moa, "findings"), *cites = json_object_get(moa, "citations"), *f;
        const char *content =
                json_str(json_object_get(json_array_get(json_object_get(root, "choices"), 0), "message"),
                         "content", "");
        const char *notes = strstr(content, "\nSources:\n");
        size_t i, j;

        fputs("# Review of ", stdout);
        for (i = 0; i < n_files; i++) {
                fputs(i ? ", " : "", stdout);
                print_md(files[i]);
        }
        fputs("\n\nReviewed by: ", stdout);
        for (i = 0; i < o->n_agents; i++) {
                fputs(i ? ", " : "", stdout);
                print_md(o->agents[i]);
        }
        fputc('\n', stdout);
        if (json_array_size(findings) == 0) {
                fputs("\nNo findings.\n\n", stdout);
                print_md(content);
                fputc('\n', stdout);
                return;
        }
        for (size_t s = 0; s < ELEMENTSOF(sev); s++) {
                int head = 0;
                json_array_foreach(findings, i, f) {
                        json_t *a;
                        if (!streq(json_str(f, "severity", ""), sev[s]))
                                continue;
                        if (!head++)
                                printf("\n## %c%s\n\n", sev[s][0] - 'a' + 'A', sev[s] + 1);
                        fputs("- **", stdout);
                        json_array_foreach(json_object_get(f, "agents"), j, a) {
                                fputs(j ? ", " : "", stdout);
                                print_md(json_string_value(a) ?: "?");
                        }
                        fputs("**: ", stdout);
                        print_md(json_str(f, "text", ""));
                        fputc('\n', stdout);
                }
        }
        fputs("\n## Sources\n\n", stdout);
        json_array_foreach(cites, i, f) {
                long long n = json_int(f, "number", 0);
                int seen = 0;
                char line[2048];
                for (j = 0; j < i && !seen; j++)
                        seen = json_int(json_array_get(cites, j), "number", 0) == n;
                if (seen)
                        continue;
                snprintf(line, sizeof line, "[%lld] %s, chunk %lld (%s)%s%s\n", n,
                         json_str(f, "document", "?"), json_int(f, "chunk", 0), json_str(f, "agent", "?"),
                         json_is_true(json_object_get(f, "attached")) ? " - reviewed file"
                                                                      : " - knowledge: ",
                         json_is_true(json_object_get(f, "attached")) ? "" : json_str(f, "source", ""));
                print_md(line);
        }
        /* the plugins' notices (not legal advice, ...) after the list */
        if (notes && (notes = strstr(notes + 1, "\n\n"))) {
                fputc('\n', stdout);
                print_md(notes + 2);
                fputc('\n', stdout);
        }
}

int cmd_review(const Moactl *m, int argc, char **argv) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *req = NULL, *root = NULL;
        _cleanup_free_ char *body = NULL;
        ReviewOpts o = {.model = m->model, .question = REVIEW_INSTRUCTION, .timeout_sec = -1};
        json_t *moa, *agents;
        int code;

        code = parse_options(m, argc, argv, &o);
        if (code >= 0)
                goto out;
        char **files = argv + optind - 1;
        size_t n_files = (size_t) (argc - (optind - 1));
        if (n_files > MOACTL_MAX_ASK_FILES) {
                code = usage_error("at most %d files", MOACTL_MAX_ASK_FILES);
                goto out;
        }
        code = MOACTL_EXIT_FAILED;
        req = json_pack("{s:s,s:[{s:s,s:s}],s:b,s:{s:b}}", "model", o.model, "messages", "role", "user",
                        "content", o.question, "stream", 0, "moa", "review", 1);
        moa = json_object_get(req, "moa");
        agents = json_array();
        if (!req || !agents || json_object_set_new(moa, "agents", agents) < 0)
                goto oom;
        for (size_t i = 0; i < o.n_agents; i++)
                if (json_array_append_new(agents, json_string(o.agents[i])) < 0)
                        goto oom;
        code = ask_attach(moa, (const char *const *) files, n_files, NULL, 0);
        if (code != MOACTL_EXIT_OK)
                goto out;
        body = json_dumps(req, JSON_COMPACT);
        if (!body)
                goto oom;
        code = ctl_call_json(m, "POST", "/v1/chat/completions", body,
                             o.timeout_sec >= 0    ? o.timeout_sec
                             : m->timeout_sec >= 0 ? m->timeout_sec
                                                   : REVIEW_DEFAULT_TIMEOUT_SEC,
                             &reply, &root);
        if (code != MOACTL_EXIT_OK) {
                code = ctl_fail(&reply, code);
                goto out;
        }
        if (!json_is_array(json_object_get(json_object_get(root, "moa"), "findings"))) {
                fputs("moactl: bad reply from moad: no moa.findings (is moad older than this moactl?)\n",
                      stderr);
                code = MOACTL_EXIT_PROTOCOL;
                goto out;
        }
        if (o.json) {
                _cleanup_(json_decrefp) json_t *out = json_pack(
                        "{s:O,s:O,s:s?}", "findings",
                        json_object_get(json_object_get(root, "moa"), "findings"), "citations",
                        json_object_get(json_object_get(root, "moa"), "citations"), "report",
                        json_str(json_object_get(json_array_get(json_object_get(root, "choices"), 0),
                                                 "message"),
                                 "content", NULL));
                _cleanup_free_ char *s = out ? json_dumps(out, JSON_INDENT(2)) : NULL;
                if (!s)
                        goto oom;
                puts(s);
        } else
                print_markdown(root, files, n_files, &o);
        code = MOACTL_EXIT_OK;
        goto out;
oom:
        fputs("moactl: out of memory\n", stderr);
        code = MOACTL_EXIT_FAILED;
out:
        for (size_t i = 0; i < o.n_agents; i++)
                free((char *) o.agents[i]);
        return code;
}
