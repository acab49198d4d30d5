/* main.c — moad: command line, listening sockets (own or systemd's),
 * signals (SIGTERM/SIGINT drain and stop, SIGHUP reload), readiness and
 * watchdog notification, and the one sd-event loop everything runs on. */
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "agents.h"
#include "build-config.h"
#include "ingest.h"
#include "jobs.h"
#include "kb-migrate.h"
#include "log.h"
#include "plugin-call.h"
#include "metrics.h"
#include "plugin-check.h"
#include "server.h"
#include "util.h"

#define SHUTDOWN_POLL_USEC (50 * USEC_PER_MSEC)

typedef struct Args {
        const char *config;
        const char *socket;
        const char *agents_dir;
        const char *state_dir;
        const char *upstream;
        const char *log_level;
        int check_config;
        int migrate_knowledge;
        const char *check_plugin;
        const char *queries;
        const char *agent_file;
} Args;

static Server server;
static char *socket_created; /* unlinked at exit: only a socket we made */
static sd_event_source *shutdown_timer, *status_timer;
static uint64_t shutdown_deadline;

static void usage(FILE *f) {
        fprintf(f,
                "Usage: moad [OPTIONS]\n"
                "Mixture-of-Agents daemon: routes questions to specialist agents and synthesises one "
                "answer.\n\n"
                "  -c, --config FILE      configuration (default: none, built-in defaults + shipped "
                "agents.d)\n"
                "  -s, --socket PATH      Unix socket to listen on (default from config: "
                "/run/moad/moad.sock)\n"
                "      --agents-dir DIR   agent definitions directory (overrides the config)\n"
                "      --state-dir DIR    knowledge databases directory (overrides the config)\n"
                "      --upstream URL     use this OpenAI-compatible endpoint for every agent\n"
                "      --log-level LEVEL  err, warning, notice, info, debug\n"
                "      --check-config     validate the configuration, load and init every agent's plugin,\n"
                "                         and exit (0 valid, 1 invalid or an agent refused)\n"
                "      --migrate-knowledge\n"
                "                         copy every agent's knowledge from the other backend into\n"
                "                         the configured one (knowledge.backend), check it, and exit\n"
                "      --check-plugin FILE.so\n"
                "                         load one plugin alone, validate its descriptor, call each\n"
                "                         callback once, and exit (0 good, 1 refused or failing)\n"
                "      --queries FILE.tsv with --check-plugin: route these labelled questions\n"
                "                         ([split<TAB>]labels<TAB>question) with the plugin beside the\n"
                "                         configured agents; print its precision and recall\n"
                "      --agent-file FILE.yaml\n"
                "                         with --check-plugin: the plugin's agent file (options,\n"
                "                         knowledge, examples)\n"
                "  -h, --help             this help\n"
                "      --version          print the version\n");
}

static int parse_args(int argc, char **argv, Args *a) {
        enum {
                ARG_AGENTS = 0x100,
                ARG_STATE,
                ARG_UPSTREAM,
                ARG_LOG,
                ARG_CHECK,
                ARG_MIGRATE,
                ARG_CHECK_PLUGIN,
                ARG_QUERIES,
                ARG_AGENT_FILE,
                ARG_VERSION
        };
        static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                             {"socket", required_argument, NULL, 's'},
                                             {"agents-dir", required_argument, NULL, ARG_AGENTS},
                                             {"state-dir", required_argument, NULL, ARG_STATE},
                                             {"upstream", required_argument, NULL, ARG_UPSTREAM},
                                             {"log-level", required_argument, NULL, ARG_LOG},
                                             {"check-config", no_argument, NULL, ARG_CHECK},
                                             {"migrate-knowledge", no_argument, NULL, ARG_MIGRATE},
                                             {"check-plugin", required_argument, NULL, ARG_CHECK_PLUGIN},
                                             {"queries", required_argument, NULL, ARG_QUERIES},
                                             {"agent-file", required_argument, NULL, ARG_AGENT_FILE},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, ARG_VERSION},
                                             {}};
        int c;

        while ((c = getopt_long(argc, argv, "c:s:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        a->config = optarg;
                        break;
                case 's':
                        a->socket = optarg;
                        break;
                case ARG_AGENTS:
                        a->agents_dir = optarg;
                        break;
                case ARG_STATE:
                        a->state_dir = optarg;
                        break;
                case ARG_UPSTREAM:
                        a->upstream = optarg;
                        break;
                case ARG_LOG:
                        a->log_level = optarg;
                        break;
                case ARG_CHECK:
                        a->check_config = 1;
                        break;
                case ARG_MIGRATE:
                        a->migrate_knowledge = 1;
                        break;
                case ARG_CHECK_PLUGIN:
                        a->check_plugin = optarg;
                        break;
                case ARG_QUERIES:
                        a->queries = optarg;
                        break;
                case ARG_AGENT_FILE:
                        a->agent_file = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                case ARG_VERSION:
                        printf("moad %s\n", MOAD_VERSION);
                        exit(0);
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "moad: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        if ((a->queries || a->agent_file) && !a->check_plugin) {
                fprintf(stderr, "moad: --queries and --agent-file go with --check-plugin\n");
                return -EINVAL;
        }
        return 0;
}

static int mkdir_parents(const char *path) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return 0;
}

/* A socket file left by a crashed daemon is removed; one a live daemon is
 * listening on is not (that is a second instance: refuse). */
static int unix_listen(const char *path, unsigned mode) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -1;
        int r;

        if (strlen(path) >= sizeof sa.sun_path)
                return log_error_errno(-ENAMETOOLONG, "socket path %s", path);
        memcpy(sa.sun_path, path, strlen(path));
        r = mkdir_parents(path);
        if (r < 0)
                return log_error_errno(r, "cannot create the directory of %s", path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0)
                return log_error_errno(-EADDRINUSE, "another moad is already listening on %s", path);
        close(fd);
        (void) unlink(path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return log_error_errno(-errno, "cannot bind %s", path);
        if (chmod(path, mode) < 0)
                return log_error_errno(-errno, "cannot chmod %s", path);
        if (listen(fd, SOMAXCONN) < 0)
                return -errno;
        socket_created = strdup(path);
        return TAKE_FD(fd);
}

static int tcp_listen(const char *hostport) {
        _cleanup_free_ char *host = strdup(hostport);
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST},
                        *res = NULL;
        char *colon;
        int fd, one = 1, r;

        if (!host)
                return -ENOMEM;
        colon = strrchr(host, ':');
        if (!colon)
                return log_error_errno(-EINVAL, "tcp listener '%s' is not host:port", hostport);
        *colon = 0;
        if (host[0] == '[') { /* [::1]:8080 */
                memmove(host, host + 1, strlen(host));
                host[strcspn(host, "]")] = 0;
        }
        r = getaddrinfo(host, colon + 1, &hints, &res);
        if (r != 0)
                return log_error_errno(-EINVAL, "tcp listener '%s': %s", hostport, gai_strerror(r));
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                if (fd >= 0)
                        close(fd);
                freeaddrinfo(res);
                return log_error_errno(r, "cannot listen on %s", hostport);
        }
        freeaddrinfo(res);
        return fd;
}

static int setup_listeners(const Config *cfg, const char *socket_override) {
        int n = sd_listen_fds(1), r;

        if (n > 0) {
                /* Socket activation: serve exactly what systemd passed. */
                for (int i = 0; i < n; i++) {
                        int fd = SD_LISTEN_FDS_START + i;
                        int is_tcp = sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) > 0;
                        if (!is_tcp && sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0)
                                return log_error_errno(-EINVAL,
                                                       "passed fd %d is not a listening stream socket", fd);
                        r = http_server_add_listener(server.http, fd, is_tcp);
                        if (r < 0)
                                return r;
                }
                log_info("serving %d socket(s) passed by systemd", n);
                return 0;
        }

        const char *path = socket_override ? socket_override : cfg->socket_path;
        int fd = unix_listen(path, cfg->socket_mode);
        if (fd < 0)
                return fd;
        r = http_server_add_listener(server.http, fd, 0);
        if (r < 0)
                return r;
        log_info("listening on %s (mode %04o)", path, cfg->socket_mode);

        if (cfg->tcp_listen) {
                fd = tcp_listen(cfg->tcp_listen);
                if (fd < 0)
                        return fd;
                r = http_server_add_listener(server.http, fd, 1);
                if (r < 0)
                        return r;
                log_info("listening on tcp %s", cfg->tcp_listen);
        }
        return 0;
}

static void notify_status(void) {
        (void) sd_notifyf(0, "STATUS=%s: %u in flight, %u queued",
                          server.state == SERVER_READY      ? "ready"
                          : server.state == SERVER_DRAINING ? "draining"
                                                            : "starting",
                          server.inflight, server.queued);
}

/* STATUS= for systemctl status: refreshed every few seconds, only under systemd. */
static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        notify_status();
        (void) sd_event_source_set_time(s, usec + 5 * USEC_PER_SEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

static int on_shutdown_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        unsigned active = http_server_active(server.http);

        if (active == 0) {
                sd_event_exit(server.event, 0);
                return 0;
        }
        if (usec >= shutdown_deadline) {
                log_warning("shutdown grace period over: aborting %u unfinished request(s)", active);
                http_server_abort_all(server.http);
                sd_event_exit(server.event, 0);
                return 0;
        }
        notify_status();
        (void) sd_event_source_set_time(s, usec + SHUTDOWN_POLL_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        uint64_t now;

        if (server.state == SERVER_DRAINING) {
                log_notice("second signal: stopping now");
                http_server_abort_all(server.http);
                sd_event_exit(server.event, 0);
                return 0;
        }
        log_notice("received %s: no new connections, finishing %u request(s)",
                   strsignal((int) si->ssi_signo), http_server_active(server.http));
        server.state = SERVER_DRAINING;
        (void) sd_notify(0, "STOPPING=1");
        http_server_quiesce(server.http);
        if (socket_created) {
                (void) unlink(socket_created);
                socket_created = mfree(socket_created);
        }
        (void) sd_event_now(server.event, CLOCK_MONOTONIC, &now);
        shutdown_deadline = now + server.runtime->config->limits.shutdown_timeout_ms * USEC_PER_MSEC;
        if (sd_event_add_time(server.event, &shutdown_timer, CLOCK_MONOTONIC, now, 1, on_shutdown_poll,
                              NULL) >= 0)
                (void) sd_event_source_set_description(shutdown_timer, "shutdown-poll");
        else
                sd_event_exit(server.event, 0);
        return 0;
}

static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        _cleanup_free_ char *err = NULL;

        if (server.state == SERVER_DRAINING) {
                log_notice("ignoring reload request: stopping");
                return 0;
        }
        (void) sd_notify(0, "RELOADING=1");
        (void) server_reload(&server, &err);
        (void) sd_notify(0, "READY=1");
        notify_status();
        return 0;
}

/* --check-config: parse the configuration, then load every enabled agent's
 * plugin and run its init on the agent's real options (and unload it), as
 * a start would, without opening knowledge bases or serving. The log says
 * why each refused agent was refused; stdout lists them once more. */
static int check_config(const Args *args) {
        _cleanup_free_ char *err = NULL;
        AgentRefusals refused = {};
        Config *c = NULL;
        size_t loaded = 0, enabled = 0;
        int r;

        /* by default not every "loaded plugin" line, only what is wrong */
        int level = args->log_level ? log_level_from_string(args->log_level) : LOG_LEVEL_WARNING;
        if (level < 0) {
                fprintf(stderr, "moad: unknown log level '%s'\n", args->log_level);
                return 2;
        }
        log_set_max_level(level);
        r = config_load(args->config, args->agents_dir, &c, &err);
        if (r < 0) {
                fprintf(stderr, "%s\n", err ? err : strerror(-r));
                return 1;
        }
        r = agents_check_plugins(c, &refused, &loaded);
        if (r < 0) {
                fprintf(stderr, "moad: cannot check the agents: %s\n", strerror(-r));
                config_free(c);
                return 1;
        }
        for (size_t i = 0; i < c->n_agents; i++)
                enabled += c->agents[i].enabled && !isempty(c->agents[i].name);
        for (size_t i = 0; i < refused.n; i++)
                printf("%s: agent %s refused: %s\n", refused.v[i].file ? refused.v[i].file : "(agents)",
                       refused.v[i].agent, refused.v[i].reason);
        if (refused.n > 0)
                printf("%s: configuration has errors: %zu of %zu enabled agents refused\n",
                       args->config ? args->config : "(defaults)", refused.n, enabled);
        else
                printf("%s: configuration OK (%zu agents, %zu pipelines, %zu providers; %zu agents loaded "
                       "and initialised)\n",
                       args->config ? args->config : "(defaults)", c->n_agents, c->n_pipelines,
                       c->n_providers, loaded);
        r = refused.n > 0 ? 1 : 0;
        agent_refusals_done(&refused);
        config_free(c);
        return r;
}

/* --migrate-knowledge: see kb_migrate(); 0 when everything was copied
 * and checked, 1 otherwise. */
static int migrate_knowledge(const Args *args) {
        _cleanup_free_ char *err = NULL;
        Config *c = NULL;
        int r;

        log_set_max_level(LOG_LEVEL_WARNING);
        r = config_load(args->config, args->agents_dir, &c, &err);
        if (r < 0) {
                fprintf(stderr, "%s\n", err ? err : strerror(-r));
                return 1;
        }
        if (args->state_dir) {
                free(c->state_dir);
                if (!(c->state_dir = strdup(args->state_dir))) {
                        config_free(c);
                        return 1;
                }
        }
        r = kb_migrate(c, stdout);
        config_free(c);
        return r < 0 ? 1 : 0;
}

int main(int argc, char **argv) {
        Args args = {};
        _cleanup_free_ char *err = NULL;
        const Config *cfg;
        sigset_t mask;
        int r, level;

        log_setup(LOG_LEVEL_INFO, 0);
        if (parse_args(argc, argv, &args) < 0)
                return 2;
        /* Every connection has one user thread (NOMUTEX); without memory
         * statistics SQLite also skips its global allocator mutex. */
        (void) sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);

        server.config_path = args.config ? strdup(args.config) : NULL;
        server.agents_dir_override = args.agents_dir ? strdup(args.agents_dir) : NULL;
        server.state_dir_override = args.state_dir ? strdup(args.state_dir) : NULL;
        server.upstream_override = args.upstream ? strdup(args.upstream) : NULL;
        server.start_usec = now_usec();

        if (args.check_config)
                return check_config(&args);
        if (args.migrate_knowledge)
                return migrate_knowledge(&args);
        if (args.check_plugin) {
                PluginCheckOptions o = {
                        .plugin = args.check_plugin,
                        .queries = args.queries,
                        .agent_file = args.agent_file,
                        .config = args.config,
                        .agents_dir = args.agents_dir,
                };
                int l = args.log_level ? log_level_from_string(args.log_level) : LOG_LEVEL_WARNING;
                log_set_max_level(l < 0 ? LOG_LEVEL_WARNING : l);
                return plugin_check(&o, stdout);
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        /* Not sd_event_default(): for the default loop sd-event checks the
         * calling thread with a gettid() system call on every iteration
         * (about 10 per proxied request). Nothing here needs the default. */
        r = sd_event_new(&server.event);
        if (r < 0)
                return log_error_errno(r, "cannot create the event loop"), 1;

        r = runtime_new(&server, &server.runtime, &err);
        if (r < 0) {
                log_error("cannot start: %s", err ? err : strerror(-r));
                return 1;
        }
        cfg = server.runtime->config;
        level = args.log_level ? log_level_from_string(args.log_level) : cfg->log_level;
        if (level < 0) {
                log_error("unknown log level '%s'", args.log_level);
                return 2;
        }
        log_set_max_level(level);

        HttpServerOptions hopts = {
                /* an upload's multipart framing comes on top of the file; a
                 * chat request may carry attached documents (max_ask_bytes) */
                .max_body_bytes = MAX(MAX(cfg->limits.max_body_bytes + cfg->limits.max_ask_bytes,
                                          cfg->limits.max_ingest_bytes),
                                      cfg->jobs.max_upload_bytes + 64 * 1024),
                .max_body_total = cfg->limits.max_body_total_bytes,
                .max_connections = cfg->limits.max_connections,
                .max_connections_per_peer =
                        MIN(cfg->limits.max_connections_per_peer, cfg->limits.max_connections),
                .idle_timeout_sec = (unsigned) MAX(cfg->limits.idle_timeout_ms / 1000, 1),
                .header_timeout_usec = cfg->limits.header_timeout_ms * USEC_PER_MSEC,
                .min_body_rate = cfg->limits.min_body_rate,
                .admit = api_admit,
                .on_complete = metrics_observe_request,
        };
        r = http_server_new(server.event, &hopts, api_handle, &server, &server.http);
        if (r < 0)
                return log_error_errno(r, "cannot create the HTTP server"), 1;
        r = setup_listeners(cfg, args.socket);
        if (r < 0)
                goto out;
        r = ingest_worker_new(server.event, &server.ingest);
        if (r < 0) {
                log_error_errno(r, "cannot start the ingest worker");
                goto out;
        }

        r = jobs_new(&server, &server.jobs);
        if (r < 0) {
                log_error_errno(r, "cannot open the jobs database in %s", cfg->state_dir);
                goto out;
        }

        (void) sd_event_add_signal(server.event, NULL, SIGTERM, on_terminate, NULL);
        (void) sd_event_add_signal(server.event, NULL, SIGINT, on_terminate, NULL);
        (void) sd_event_add_signal(server.event, NULL, SIGHUP, on_reload, NULL);
        (void) sd_event_set_watchdog(server.event, 1);
        if (getenv("NOTIFY_SOCKET")) {
                uint64_t now;
                (void) sd_event_now(server.event, CLOCK_MONOTONIC, &now);
                if (sd_event_add_time(server.event, &status_timer, CLOCK_MONOTONIC, now + 5 * USEC_PER_SEC,
                                      USEC_PER_SEC, on_status_timer, NULL) >= 0)
                        (void) sd_event_source_set_description(status_timer, "status-notify");
        }

        server.state = SERVER_READY;
        log_info("moad %s ready: %zu agents, %zu pipelines", MOAD_VERSION,
                 agents_count(server.runtime->agents), cfg->n_pipelines);
        (void) sd_notify(0, "READY=1");
        notify_status();

        r = sd_event_loop(server.event);
        if (r < 0)
                log_error_errno(r, "event loop failed");
out:
        server.http = http_server_free(server.http);
        server.jobs = jobs_free(server.jobs);
        server.ingest = ingest_worker_free(server.ingest);
        shutdown_timer = sd_event_source_disable_unref(shutdown_timer);
        status_timer = sd_event_source_disable_unref(status_timer);
        server.runtime = runtime_unref(server.runtime);
        runtime_reap();
        plugin_calls_shutdown(); /* a thread stuck in a plugin keeps its agent to the end */
        if (socket_created)
                (void) unlink(socket_created);
        free(socket_created);
        free(server.config_path);
        free(server.agents_dir_override);
        free(server.state_dir_override);
        free(server.upstream_override);
        server.event = sd_event_unref(server.event);
        log_info("stopped");
        return r < 0 ? 1 : 0;
}
