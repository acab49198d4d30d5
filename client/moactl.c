/* moactl.c — the moactl command line: options, the command table, help and
 * usage errors. The work is done in cmd-*.c; talking to moad in
 * http-client.c. */
#include <getopt.h>
#include <stdarg.h>

#include "utf8.h"
#include "moactl.h"

typedef struct Command {
        const char *name;
        int (*run)(const Moactl *m, int argc, char **argv);
        int own_options; /* the options after its name are its own (batch's -j is not --json) */
} Command;

static const Command commands[] = {
        {"ask", cmd_ask, 0},
        {"models", cmd_models, 0},
        {"health", cmd_health, 0},
        {"route", cmd_route, 0},
        {"agents", cmd_agents, 0},
        {"ingest", cmd_ingest, 0},
        {"documents", cmd_documents, 0},
        {"delete", cmd_delete, 0},
        {"status", cmd_status, 0},
        {"reload", cmd_reload, 0},
        {"metrics", cmd_metrics, 0},
        {"batch", cmd_batch, 1},
        {"plugin", cmd_plugin, 1},
        {"review", cmd_review, 1},
        {"jobs", cmd_jobs, 0},
        {"docs", cmd_documents, 0}, /* the name issue 10 uses */
};

static const Command *find_command(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(name, commands[i].name))
                        return &commands[i];
        return NULL;
}

static void help(void) {
        printf("Usage: moactl [OPTIONS] COMMAND [ARGS...]\n"
               "\n"
               "Talk to moad, the Mixture-of-Agents daemon, over its Unix socket.\n"
               "\n"
               "Commands:\n"
               "  ask QUESTION|-             Ask a question (\"-\": from stdin); streams the answer\n"
               "  ask -f FILE... QUESTION    Ask about files (context for this question only, not stored)\n"
               "  review --agents A,B FILE...\n"
               "                             The agents review the files: one report of findings with\n"
               "                             severity and citations (see 'moactl review --help')\n"

               "  route QUESTION|-           Show how the router scores the agents, without asking them\n"
               "  models                     List the models (pipelines and agents) moad serves\n"
               "  agents                     List the agents\n"
               "  ingest --agent NAME FILE|DIR...\n"
               "                             Add files and directory trees to an agent's knowledge\n"
               "                             (text, Markdown, HTML, PDF, .gz; unchanged ones skipped)\n"
               "  ingest --agent NAME --sync DIR [--server]\n"
               "                             Make the agent's documents under DIR match DIR (--server:\n"
               "                             moad reads DIR itself, as a job; see 'moactl jobs')\n"
               "  documents|docs --agent NAME\n"
               "                             List an agent's documents\n"
               "  delete --agent NAME TITLE  Delete one document of an agent\n"
               "  health                     Is moad alive and ready?\n"
               "  status                     Uptime, load, agents and pipelines\n"
               "  reload                     Reload moad's configuration\n"
               "  metrics                    Print the Prometheus metrics\n"
               "  batch IN -o OUT            Ask every line of a file (JSONL or one question per line);\n"
               "                             see 'moactl batch --help'\n"
               "  plugin new NAME [--dir DIR]\n"
               "                             Write a plugin skeleton in DIR/NAME (C file, Makefile,\n"
               "                             agents.d file, knowledge folder, labelled questions)\n"
               "  batch --server IN -o OUT   The same as a job run by moad (survives moactl and restarts)\n"
               "  jobs [show ID|cancel ID]   List moad's batch and ingest jobs, show one, or cancel one\n"
               "\n"
               "Options:\n"
               "  -s, --socket PATH   moad's socket (default: $MOAD_SOCKET, else %s)\n"
               "  -m, --model NAME    pipeline or agent that answers \"ask\" (default: %s)\n"
               "  -a, --agent NAME    ask: pin this agent (repeatable); ingest/documents/delete: the agent\n"
               "  -t, --trace         ask: then show route, layers, agents, weights and latency\n"
               "  -f, --file FILE     ask: about FILE (repeatable; \"-\": stdin; text, HTML, PDF, .gz)\n"
               "      --doc TITLE     ask: search only these knowledge documents (repeatable; globs)\n"
               "  -j, --json          print the daemon's JSON reply as is\n"
               "      --timeout SEC   give up after SEC seconds (0: never; default 300 for ask,\n"
               "                      600 per file for ingest, 30 otherwise)\n"
               "\n"
               "Ingest options:\n"
               "      --base DIR      titles are paths relative to DIR (default: the one DIR\n"
               "                      argument, else the arguments' common parent directory)\n"
               "      --title TITLE   the title of the one FILE\n"
               "  -r, --recursive     walk directories (always done; accepted for clarity)\n"
               "      --include GLOB  only files whose relative path or name matches (repeatable)\n"
               "      --exclude GLOB  not files whose relative path or name matches (repeatable)\n"
               "      --sync DIR      add new, re-ingest changed, remove documents whose file is gone\n"
               "      --dry-run       print what ingest or --sync would do, change nothing\n"
               "      --server        with --sync: moad syncs DIR itself as a job (admin; DIR must be\n"
               "                      below moad's jobs.ingest_roots)\n"
               "\n"
               "  -h, --help          show this help\n"
               "      --version       show the version\n"
               "\n"
               "Exit status: 0 ok, 1 moad returned an error or an operation failed, 2 usage error,\n"
               "3 cannot connect to moad, 4 bad reply from moad, 5 timed out, 6 batch: some lines\n"
               "failed, reload: some agents refused. See moactl(1).\n",
               MOACTL_DEFAULT_SOCKET, MOACTL_DEFAULT_MODEL);
}

int usage_error(const char *fmt, ...) {
        va_list ap;

        fputs("moactl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\nTry 'moactl --help' for more information.\n", stderr);
        return MOACTL_EXIT_USAGE;
}

int parse_timeout(const char *s, long *ret) {
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 7L * 24 * 3600)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Returns -1 to go on with the command, else the exit code. @in_order
 * stops at the command word instead of taking options after it too. */
static int parse_argv(int argc, char **argv, int in_order, Moactl *m) {
        enum {
                ARG_VERSION = 0x100,
                ARG_TIMEOUT,
                ARG_BASE,
                ARG_TITLE,
                ARG_INCLUDE,
                ARG_EXCLUDE,
                ARG_SYNC,
                ARG_DRY_RUN,
                ARG_SERVER,
                ARG_DOC,
        };
        static const struct option options[] = {
                {"socket", required_argument, NULL, 's'},
                {"model", required_argument, NULL, 'm'},
                {"agent", required_argument, NULL, 'a'},
                {"trace", no_argument, NULL, 't'},
                {"json", no_argument, NULL, 'j'},
                {"timeout", required_argument, NULL, ARG_TIMEOUT},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, ARG_VERSION},
                {"base", required_argument, NULL, ARG_BASE},
                {"title", required_argument, NULL, ARG_TITLE},
                {"recursive", no_argument, NULL, 'r'},
                {"include", required_argument, NULL, ARG_INCLUDE},
                {"exclude", required_argument, NULL, ARG_EXCLUDE},
                {"sync", required_argument, NULL, ARG_SYNC},
                {"dry-run", no_argument, NULL, ARG_DRY_RUN},
                {"server", no_argument, NULL, ARG_SERVER},
                {"file", required_argument, NULL, 'f'},
                {"doc", required_argument, NULL, ARG_DOC},
                {},
        };
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, in_order ? "+:s:m:a:f:tjhr" : ":s:m:a:f:tjhr", options, NULL)) >=
               0) {
                if (c == 'r' || (c >= ARG_BASE && c <= ARG_SERVER)) {
                        int r = ingest_option(&m->ingest, c == 'r' ? 'r' : c - ARG_BASE, optarg);
                        if (r >= 0)
                                continue;
                        return r == -E2BIG ? usage_error("at most %d --include/--exclude options",
                                                         MOACTL_MAX_GLOBS)
                                           : usage_error("%s needs a non-empty argument", argv[optind - 1]);
                }
                switch (c) {
                case 's':
                        if (isempty(optarg))
                                return usage_error("--socket needs a path");
                        m->socket_path = optarg;
                        break;
                case 'm':
                        if (isempty(optarg) || !utf8_valid(optarg, strlen(optarg)))
                                return usage_error("--model needs a name (UTF-8)");
                        m->model = optarg;
                        break;
                case 'a':
                        if (m->n_agents >= MOACTL_MAX_AGENTS)
                                return usage_error("at most %d --agent options", MOACTL_MAX_AGENTS);
                        if (!utf8_valid(optarg, strlen(optarg)))
                                return usage_error("--agent needs a name (UTF-8)");
                        m->agents[m->n_agents++] = optarg;
                        break;
                case 'f':
                        if (m->n_files >= MOACTL_MAX_ASK_FILES)
                                return usage_error("at most %d files (-f)", MOACTL_MAX_ASK_FILES);
                        if (isempty(optarg))
                                return usage_error("-f needs a file name (or - for standard input)");
                        m->files[m->n_files++] = optarg;
                        break;
                case ARG_DOC:
                        if (m->n_docs >= MOACTL_MAX_DOC_FILTERS)
                                return usage_error("at most %d --doc options", MOACTL_MAX_DOC_FILTERS);
                        if (isempty(optarg))
                                return usage_error("--doc needs a document title or pattern");
                        m->docs[m->n_docs++] = optarg;
                        break;
                case 't':
                        m->trace = 1;
                        break;
                case 'j':
                        m->json = 1;
                        break;
                case ARG_TIMEOUT:
                        if (parse_timeout(optarg, &m->timeout_sec) < 0)
                                return usage_error("--timeout needs a number of seconds (0 to 604800): %s",
                                                   optarg);
                        break;
                case 'h':
                        help();
                        return MOACTL_EXIT_OK;
                case ARG_VERSION:
                        printf("moactl %s\n", MOACTL_VERSION);
                        return MOACTL_EXIT_OK;
                case ':':
                        return usage_error("option %s needs an argument", argv[optind - 1]);
                default:
                        if (optopt)
                                return usage_error("unknown option -%c", optopt);
                        return usage_error("unknown option %s", argv[optind - 1]);
                }
        }
        return -1;
}

int main(int argc, char **argv) {
        Moactl m = {
                .model = MOACTL_DEFAULT_MODEL,
                .timeout_sec = -1,
        };
        const Command *cmd;
        const char *env;
        int code;

        code = parse_argv(argc, argv, 1, &m);
        if (code >= 0)
                return code;
        if (optind >= argc)
                return usage_error("no command given");
        cmd = find_command(argv[optind]);
        if (cmd && !cmd->own_options) {
                /* Again, taking the options after the command word as well. */
                m = (Moactl){.model = MOACTL_DEFAULT_MODEL, .timeout_sec = -1};
                optind = 0;
                code = parse_argv(argc, argv, 0, &m);
                if (code >= 0)
                        return code;
        }

        env = getenv("MOAD_SOCKET");
        if (!m.socket_path)
                m.socket_path = !isempty(env) ? env : MOACTL_DEFAULT_SOCKET;

        if (!cmd)
                return usage_error("unknown command \"%s\"", argv[optind]);
        if (m.ingest.given && cmd->run != cmd_ingest)
                return usage_error("%s is an option of ingest only", m.ingest.given);
        if ((m.n_files > 0 || m.n_docs > 0) && cmd->run != cmd_ask)
                return usage_error("%s is an option of ask only", m.n_files > 0 ? "-f" : "--doc");
        if (ctl_global_init() < 0) {
                fputs("moactl: cannot initialise libcurl\n", stderr);
                return MOACTL_EXIT_FAILED;
        }
        code = cmd->run(&m, argc - optind - 1, argv + optind + 1);
        ctl_global_done();
        if (fflush(stdout) != 0 && code == MOACTL_EXIT_OK) {
                fprintf(stderr, "moactl: cannot write the output: %s\n", strerror(errno));
                code = MOACTL_EXIT_FAILED;
        }
        return code;
}
