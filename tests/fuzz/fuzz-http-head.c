/* fuzz-http-head.c — fuzz target for moad's HTTP layer as a client sees it:
 * the raw bytes of the input are written to a real connection of a real
 * HttpServer (daemon/http.c on libmicrohttpd, driven by an sd-event loop as
 * in moad), on a Unix socket or on loopback TCP. So every path a hostile
 * client reaches runs for real: MHD's request-line and header parsing and
 * its header limits, our framing checks (duplicate Content-Length, chunked
 * with a length), the admit hook — the daemon's own api_admit() with
 * access.c, on a small configuration, refusing the uid-65534 peer admin
 * endpoints and TCP peers without the bearer token — the per-endpoint 413
 * from Content-Length, the daemon-wide body budget (503), chunked bodies
 * over the limit, multipart decoding (http-form.c), keep-alive and
 * pipelined requests, suspend/resume and streamed answers. Factoring the
 * parsing out of http.c would have left out MHD and the state machine
 * around it, which is where the findings were.
 *
 * The first input byte picks the listener (bit 0: TCP), the peer (bit 1:
 * uid 65534 when run as root), when the client half-closes (bit 2: at
 * once, else when the server has gone idle) and whether another client
 * holds most of the daemon-wide body budget meanwhile (bit 3); the rest is
 * sent verbatim.
 * The request handler answers at once, later from a defer source (a path
 * containing "later"), or streamed ("stream"). Beyond "no crash, no leak"
 * it checks that every answer starts with an HTTP/1.x status line, that a
 * handler never sees more body than the server's bound, and that once the
 * client is gone the server holds no connection and no body bytes. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "http-form.h"
#include "http.h"
#include "log.h"
#include "server.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits, so that inputs reach every refusal. */
static const char config_yaml[] = "limits:\n"
                                  "  max_body_bytes: 2048\n"
                                  "  max_ask_bytes: 1024\n"
                                  "  max_ingest_bytes: 8192\n"
                                  "  max_body_total_bytes: 12288\n"
                                  "jobs:\n"
                                  "  max_upload_bytes: 4096\n";

#define FUZZ_BEARER "fuzz-bearer-token-0123456789"
#define FUZZ_ADMIN "fuzz-admin-token-0123456789"
#define FUZZ_UNPRIVILEGED 65534 /* nobody */
#define FUZZ_MAX_INPUT (256u * 1024u)
#define FUZZ_DEADLINE_USEC (10 * USEC_PER_SEC) /* far beyond any honest run */

static struct {
        char dir[48], agents_dir[64], socket_path[96]; /* fits sun_path */
        struct sockaddr_in tcp;
        sd_event *event;
        Runtime runtime;
        Server server;
        HttpServerOptions opts;
} fz;

static void check(int ok, const char *what) {
        if (!ok) {
                fprintf(stderr, "invariant violated: %s\n", what);
                abort();
        }
}

/* ---- the request handler ---- */

typedef struct Later {
        HttpRequest *req;
        sd_event_source *source;
} Later;

static void later_abort(HttpRequest *req, void *userdata) {
        Later *l = userdata;

        sd_event_source_disable_unref(l->source);
        free(l);
}

static int later_reply(sd_event_source *s, void *userdata) {
        Later *l = userdata;
        size_t len;
        const char *body = http_request_body(l->req, &len);

        http_request_set_abort(l->req, NULL, NULL);
        (void) http_reply(l->req, 202, "text/plain", body, len, "Retry-After", "1");
        sd_event_source_disable_unref(l->source);
        free(l);
        return 0;
}

static void on_request(HttpRequest *req, void *userdata) {
        const char *path = http_request_path(req), *id = http_request_id(req);
        HttpForm *form = NULL;
        size_t len;
        const char *body = http_request_body(req, &len);

        check(len <= fz.opts.max_body_bytes, "body within the server's bound");
        check(body[len] == 0, "body NUL-terminated");
        check(*id && strlen(id) < 80, "request id set and bounded");
        for (const char *p = id; *p; p++)
                check((unsigned char) *p > 0x20 && (unsigned char) *p < 0x7f, "request id printable");
        (void) http_request_header(req, "Content-Type");
        (void) http_request_query(req, "q");
        if (http_request_form(req, &form) == 0) {
                HttpFormField *f = http_form_get(form, "file");
                if (f && f->data)
                        check(f->data[f->len] == 0, "form field NUL-terminated");
        }

        if (strstr(path, "later")) {
                Later *l = calloc(1, sizeof *l);
                if (!l || sd_event_add_defer(fz.event, &l->source, later_reply, l) < 0) {
                        free(l);
                        (void) http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
                        return;
                }
                l->req = req;
                http_request_set_abort(req, later_abort, l);
        } else if (strstr(path, "stream")) {
                if (http_stream_begin(req, 200, "text/event-stream") == 0) {
                        (void) http_stream_write(req, body, len / 2);
                        (void) http_stream_write(req, body + len / 2, len - len / 2);
                        (void) http_stream_end(req);
                }
        } else
                (void) http_reply(req, 200, "text/plain", body, len, NULL, NULL);
}

/* ---- the server, once ---- */

static void cleanup(void) {
        fz.server.http = http_server_free(fz.server.http);
        fz.runtime.config = config_free(fz.runtime.config);
        fz.event = sd_event_unref(fz.event);
        unlink(fz.socket_path);
        rmdir(fz.agents_dir);
        rmdir(fz.dir);
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        check(f && fputs(text, f) >= 0 && fclose(f) == 0, "write the configuration");
}

static void setup_once(void) {
        char path[128], *err = NULL;
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        socklen_t sl = sizeof fz.tcp;
        const LimitsConfig *lim;
        int fd;

        if (fz.event)
                return;
        log_setup(LOG_LEVEL_ERR, 0); /* every refusal logs a warning */
        signal(SIGPIPE, SIG_IGN);
        strcpy(fz.dir, "/tmp/moad-fuzz-http-XXXXXX");
        check(mkdtemp(fz.dir) != NULL, "mkdtemp");
        check(chmod(fz.dir, 0755) == 0, "chmod"); /* the unprivileged peer connects too */
        snprintf(path, sizeof path, "%s/moad.yaml", fz.dir);
        write_file(path, config_yaml);
        snprintf(fz.agents_dir, sizeof fz.agents_dir, "%s/agents.d", fz.dir);
        check(mkdir(fz.agents_dir, 0755) == 0, "mkdir agents.d"); /* no agents: admit needs none */
        if (config_load(path, fz.agents_dir, &fz.runtime.config, &err) < 0) {
                fprintf(stderr, "fuzz-http-head: %s\n", err ? err : "config_load failed");
                abort();
        }
        unlink(path);
        fz.runtime.bearer_token = (char *) FUZZ_BEARER;
        fz.runtime.config->access.tcp_admin_token = FUZZ_ADMIN;
        fz.runtime.n_ref = 1;
        fz.server.runtime = &fz.runtime;
        check(sd_event_new(&fz.event) >= 0, "sd_event_new");
        fz.server.event = fz.event;

        /* The HTTP server's bounds as main.c derives them. */
        lim = &fz.runtime.config->limits;
        fz.opts = (HttpServerOptions){
                .max_body_bytes = MAX(MAX(lim->max_body_bytes + lim->max_ask_bytes, lim->max_ingest_bytes),
                                      fz.runtime.config->jobs.max_upload_bytes + 64 * 1024),
                .max_body_total = lim->max_body_total_bytes,
                .max_connections = lim->max_connections,
                .max_connections_per_peer = MIN(lim->max_connections_per_peer, lim->max_connections),
                .idle_timeout_sec = (unsigned) MAX(lim->idle_timeout_ms / 1000, 1),
                .header_timeout_usec = lim->header_timeout_ms * USEC_PER_MSEC,
                .min_body_rate = lim->min_body_rate,
                .admit = api_admit,
        };
        check(http_server_new(fz.event, &fz.opts, on_request, &fz.server, &fz.server.http) == 0,
              "http_server_new");

        snprintf(fz.socket_path, sizeof fz.socket_path, "%s/http.sock", fz.dir);
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", fz.socket_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        check(fd >= 0 && bind(fd, (struct sockaddr *) &sun, sizeof sun) == 0 && listen(fd, 64) == 0,
              "unix listener");
        check(chmod(fz.socket_path, 0666) == 0, "chmod socket");
        check(http_server_add_listener(fz.server.http, fd, 0) == 0, "add unix listener");

        fz.tcp = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        check(fd >= 0 && bind(fd, (struct sockaddr *) &fz.tcp, sizeof fz.tcp) == 0 && listen(fd, 64) == 0 &&
                      getsockname(fd, (struct sockaddr *) &fz.tcp, &sl) == 0,
              "tcp listener");
        check(http_server_add_listener(fz.server.http, fd, 1) == 0, "add tcp listener");
        atexit(cleanup); /* libFuzzer never returns to a main() of ours */
}

/* ---- one client ---- */

/* A connected non-blocking client socket, or -1 (loopback out of ports). */
static int client_connect(int tcp, int unprivileged) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        int fd, r, dropped = 0;

        fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        check(fd >= 0, "client socket");
        if (tcp) {
                /* Reset, not FIN, at close: no TIME_WAIT pile-up over millions of runs. */
                struct linger lg = {.l_onoff = 1, .l_linger = 0};
                (void) setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                r = connect(fd, (struct sockaddr *) &fz.tcp, sizeof fz.tcp);
        } else {
                snprintf(sun.sun_path, sizeof sun.sun_path, "%s", fz.socket_path);
                /* SO_PEERCRED records the effective uid at connect time. */
                if (unprivileged && geteuid() == 0)
                        dropped = seteuid(FUZZ_UNPRIVILEGED) == 0;
                r = connect(fd, (struct sockaddr *) &sun, sizeof sun);
                if (dropped)
                        check(seteuid(0) == 0, "seteuid back to root");
        }
        if (r < 0 && errno != EINPROGRESS) {
                check(errno == EAGAIN || errno == EADDRNOTAVAIL, "connect");
                close(fd);
                return -1;
        }
        return fd;
}

/* Runs the loop once (waiting at most @usec); 0 if nothing was dispatched. */
static int loop_once(uint64_t usec) {
        int r = sd_event_run(fz.event, usec);
        check(r >= 0, "sd_event_run");
        return r;
}

/* A second client holding most of the body bytes the server may buffer at
 * once (an upload it never finishes): the ceiling is one upload, 69632, so
 * 65000 of the 69633 leave room for small bodies only and the input's
 * request meets the daemon-wide budget (503). Returns its fd, or -1. */
static int hold_body_budget(void) {
        static const char head[] = "POST /v1/files HTTP/1.1\r\nHost: moad\r\n"
                                   "Content-Length: 65000\r\n\r\npartial";
        int fd = client_connect(0, 0);

        if (fd < 0)
                return -1;
        check(send(fd, head, sizeof head - 1, MSG_NOSIGNAL) == (ssize_t) (sizeof head - 1), "send the hold");
        while (loop_once(0) > 0)
                ;
        return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char reply[4096];
        size_t reply_len = 0, sent = 0;
        int fd, hold, half_closed = 0, early, idle = 0;
        uint64_t deadline;

        if (size < 1 || size > FUZZ_MAX_INPUT)
                return 0;
        setup_once();
        early = data[0] & 4;
        hold = data[0] & 8 ? hold_body_budget() : -1;
        fd = client_connect(data[0] & 1, data[0] & 2);
        if (fd < 0) {
                if (hold >= 0)
                        close(hold);
                return 0;
        }
        data++;
        size--;

        deadline = now_usec() + FUZZ_DEADLINE_USEC;
        for (;;) {
                char buf[4096];
                ssize_t n;
                int moved = 0;

                check(now_usec() < deadline, "the server answers once the client is done");
                if (sent < size) {
                        n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
                        if (n > 0) {
                                sent += (size_t) n;
                                moved = 1;
                        } else if (n < 0 && errno != EAGAIN && errno != ENOTCONN)
                                sent = size; /* the server closed: the rest is never read */
                }
                moved |= loop_once(0);
                n = recv(fd, buf, sizeof buf, 0);
                if (n > 0) {
                        size_t k = MIN((size_t) n, sizeof reply - reply_len);
                        memcpy(reply + reply_len, buf, k);
                        reply_len += k;
                        idle = 0;
                        continue;
                }
                if (n == 0 || (n < 0 && errno != EAGAIN))
                        break; /* closed (or reset) by the server */
                idle = moved ? 0 : idle + 1;
                /* Half-close at once, or once the server has nothing left to do
                 * (so that pipelined requests and late answers are seen). */
                if (sent == size && !half_closed && (early || idle > 0)) {
                        (void) shutdown(fd, SHUT_WR);
                        half_closed = 1;
                        idle = 0;
                        continue;
                }
                /* Nothing moves: MHD (edge-triggered) may not notice a FIN that
                 * came with the last bytes, and waits for the header deadline
                 * (the sweep, 10 s); a client that closes for good is seen. */
                if (idle > 3)
                        break;
                if (idle > 0)
                        (void) loop_once(USEC_PER_MSEC);
        }
        close(fd);
        if (hold >= 0)
                close(hold);

        if (reply_len > 0)
                check(reply_len >= 12 && memcmp(reply, "HTTP/1.", 7) == 0 && reply[8] == ' ',
                      "an answer starts with a status line");

        /* With the client gone, nothing may stay behind. */
        for (;;) {
                unsigned conns;
                uint64_t body;

                http_server_stats(fz.server.http, &conns, &body);
                if (conns == 0) {
                        check(body == 0, "no body bytes reserved without connections");
                        check(http_server_active(fz.server.http) == 0, "no request without connections");
                        break;
                }
                check(now_usec() < deadline, "the server closes its side once the client is gone");
                if (!loop_once(0))
                        (void) loop_once(USEC_PER_MSEC);
        }
        return 0;
}
