/* http.c — libmicrohttpd in "external epoll" mode on sd-event.
 *
 * Each listener is one MHD daemon with MHD_USE_EPOLL and no thread: its
 * epoll fd is an sd-event io source that calls MHD_run(), and a one-shot
 * timer follows MHD_get_timeout(). A request whose answer is not ready is
 * suspended; replying resumes it and schedules an MHD_run() from a defer
 * source. Suspended connections do not notice disconnects in MHD 0.9.75,
 * so while suspended we watch the socket for EPOLLRDHUP ourselves.
 *
 * Hostile clients: access and the body limit are decided when the header
 * block is in (the admit hook), before any body byte is read; bodies are
 * also capped all together. MHD's timeout restarts on every byte, so each
 * connection is tracked here (HttpConn) with its peer (uid on the Unix
 * socket, address on TCP): a once-a-second sweep closes connections whose
 * header block is late or whose body is slower than min_body_rate, and a
 * new connection over its peer's cap, or arriving when the server is nearly
 * full, closes the oldest connection still waiting for a request (idle
 * keep-alive or slow headers) instead of being refused. Closing is
 * shutdown(2) on the socket: MHD sees end of file and cleans up itself. */
#include <ctype.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "http-form.h"
#include "http.h"
#include "log.h"
#include "json-write.h"
#include "util.h"

typedef struct HttpListener {
        HttpServer *server;
        struct MHD_Daemon *mhd;
        sd_event_source *io, *timer, *run;
        int is_tcp;
} HttpListener;

/* One client identity: a uid on the Unix socket, an address on TCP. */
typedef struct HttpPeer {
        struct HttpPeer *next;
        char key[64];
        unsigned n_conns;
} HttpPeer;

typedef enum ConnPhase {
        CONN_WAITING, /* for a request's header block (new or kept alive) */
        CONN_BODY,    /* reading a request body */
        CONN_BUSY,    /* the request is being answered */
} ConnPhase;

/* One connection, from MHD's NOTIFY_CONNECTION started to closed. */
typedef struct HttpConn {
        HttpServer *server;
        struct HttpConn *prev, *next;
        HttpPeer *peer;
        int fd;
        int closing;
        ConnPhase phase;
        uint64_t phase_usec; /* when the phase began */
        uint64_t body_bytes; /* received in CONN_BODY */
        /* SO_PEERCRED of a Unix socket: the credentials at connect(), fixed
         * for the connection, read once instead of once per request */
        struct ucred cred;
        int have_cred;
} HttpConn;

struct HttpServer {
        sd_event *event;
        HttpServerOptions opts;
        HttpHandler handler;
        void *userdata;
        HttpListener *listeners[4];
        size_t n_listeners;
        HttpRequest *requests; /* every live request, for shutdown */
        unsigned n_active;
        uint64_t id_counter;
        uint32_t id_salt;

        HttpConn *conns; /* every open connection, newest first */
        unsigned n_conns;
        HttpPeer *peers;
        uint64_t body_reserved; /* body bytes promised to requests (Content-Length or buffer) */
        sd_event_source *sweep;
        uint64_t n_closed_late, n_closed_evicted; /* since the last log line */
};

struct HttpRequest {
        HttpServer *server;
        HttpListener *listener;
        struct MHD_Connection *conn;
        HttpRequest *prev, *next;

        char method[16];
        char *path;
        char id[80];
        uint64_t start_usec;
        int have_peer;
        struct ucred peer;

        HttpConn *hc;
        char *body;
        size_t body_len, body_cap;
        uint64_t body_limit;    /* this request's own limit (admit hook) */
        uint64_t body_reserved; /* counted in server->body_reserved */
        uint64_t drained;       /* bytes thrown away after too_large */
        HttpForm *form;         /* a multipart/form-data body, decoded as it arrives instead */
        uint64_t form_bytes;
        int form_error;
        int too_large;
        int dispatched;
        int in_handler;
        int suspended;
        int gone;     /* client disconnected or aborted by us */
        int finished; /* the response was fully handed over (or aborted) */

        struct MHD_Response *pending;
        unsigned pending_status;
        unsigned status;

        /* streaming */
        int streaming;
        int stream_done;
        char *out;
        size_t out_len, out_off, out_cap;

        sd_event_source *watch;

        HttpAbortHandler abort_cb;
        void *abort_userdata;
        char *log_pipeline, *log_agents;
};

static void listener_schedule_run(HttpListener *l);

const char *http_status_reason(unsigned status) {
        switch (status) {
        case 200:
                return "OK";
        case 202:
                return "Accepted";
        case 204:
                return "No Content";
        case 400:
                return "Bad Request";
        case 401:
                return "Unauthorized";
        case 403:
                return "Forbidden";
        case 404:
                return "Not Found";
        case 405:
                return "Method Not Allowed";
        case 408:
                return "Request Timeout";
        case 409:
                return "Conflict";
        case 413:
                return "Payload Too Large";
        case 415:
                return "Unsupported Media Type";
        case 429:
                return "Too Many Requests";
        case 500:
                return "Internal Server Error";
        case 502:
                return "Bad Gateway";
        case 503:
                return "Service Unavailable";
        case 504:
                return "Gateway Timeout";
        default:
                return "Unknown";
        }
}

/* ---- request ids ---- */

static int request_id_valid(const char *s) {
        size_t n = 0;

        if (!s || !*s)
                return 0;
        for (; s[n]; n++) {
                unsigned char c = (unsigned char) s[n];
                if (n >= 64 || !(isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':'))
                        return 0;
        }
        return 1;
}

/* ---- suspension and the disconnect watch ---- */

static int on_watch(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void request_unwatch(HttpRequest *r) {
        /* Must run before MHD may close the fd again (i.e. before resume),
         * or a reused fd number could be removed from the wrong source. */
        r->watch = sd_event_source_disable_unref(r->watch);
}

static void request_suspend(HttpRequest *r) {
        const union MHD_ConnectionInfo *ci;

        if (r->suspended)
                return;
        MHD_suspend_connection(r->conn);
        r->suspended = 1;

        ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci && ci->connect_fd >= 0 &&
            sd_event_add_io(r->server->event, &r->watch, ci->connect_fd, EPOLLRDHUP, on_watch, r) >= 0)
                (void) sd_event_source_set_description(r->watch, "http-disconnect-watch");
}

static void request_resume(HttpRequest *r) {
        if (!r->suspended)
                return;
        request_unwatch(r);
        r->suspended = 0;
        MHD_resume_connection(r->conn);
        listener_schedule_run(r->listener);
}

static void request_run_abort(HttpRequest *r) {
        HttpAbortHandler cb = r->abort_cb;

        r->abort_cb = NULL;
        if (cb)
                cb(r, r->abort_userdata);
}

/* The client went away while we were working: cancel the work and let MHD
 * notice the dead socket (resume, then it fails reading/writing). */
static int on_watch(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HttpRequest *r = userdata;

        log_full(LOG_LEVEL_INFO, 0, r->id, "client disconnected, cancelling");
        r->gone = 1;
        request_run_abort(r);
        request_resume(r);
        return 0;
}

/* ---- responses ---- */

static int set_pending(HttpRequest *r, unsigned status, struct MHD_Response *resp) {
        if (r->pending || r->status) {
                MHD_destroy_response(resp);
                return -EALREADY;
        }
        MHD_add_response_header(resp, "x-request-id", r->id);
        r->pending = resp;
        r->pending_status = status;
        if (!r->in_handler)
                request_resume(r);
        return 0;
}

int http_reply(HttpRequest *r, unsigned status, const char *content_type, const char *body, size_t len,
               const char *extra_header, const char *extra_value) {
        struct MHD_Response *resp;

        if (r->gone)
                return -EPIPE;
        resp = MHD_create_response_from_buffer(len, (void *) body, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return -ENOMEM;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type ? content_type : "application/json");
        if (extra_header && extra_value)
                MHD_add_response_header(resp, extra_header, extra_value);
        r->abort_cb = NULL;
        return set_pending(r, status, resp);
}

int http_reply_json(HttpRequest *r, unsigned status, json_t *json) {
        _cleanup_free_ char *s = NULL;
        int ret;

        if (!json)
                return http_reply_error(r, 500, "server_error", NULL, NULL, "out of memory");
        size_t len = 0;
        s = json_write_compact(json, &len);
        json_decref(json);
        if (!s)
                return http_reply_error(r, 500, "server_error", NULL, NULL, "out of memory");
        ret = http_reply(r, status, NULL, s, len, NULL, NULL);
        return ret;
}

int http_reply_error(HttpRequest *r, unsigned status, const char *type, const char *param, const char *code,
                     const char *fmt, ...) {
        char msg[1024];
        va_list ap;
        json_t *j;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);

        j = json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", msg, "type", type, "param", param,
                      "code", code);
        if (!j) /* message not UTF-8 or OOM: still answer */
                j = json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", "request failed", "type", type,
                              "param", "code");
        log_full(status >= 500 ? LOG_LEVEL_WARNING : LOG_LEVEL_INFO, 0, r->id, "%u: %s", status, msg);
        return http_reply_json(r, status, j);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
        HttpRequest *r = cls;
        size_t avail = r->out_len - r->out_off;

        if (r->gone)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        if (avail > 0) {
                size_t n = MIN(avail, max);
                memcpy(buf, r->out + r->out_off, n);
                r->out_off += n;
                if (r->out_off == r->out_len)
                        r->out_off = r->out_len = 0;
                return (ssize_t) n;
        }
        if (r->stream_done) {
                r->finished = 1;
                return MHD_CONTENT_READER_END_OF_STREAM;
        }
        /* Nothing to send yet: park the connection until the producer writes. */
        request_suspend(r);
        return 0;
}

int http_stream_begin(HttpRequest *r, unsigned status, const char *content_type) {
        struct MHD_Response *resp;

        if (r->gone)
                return -EPIPE;
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, r, NULL);
        if (!resp)
                return -ENOMEM;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        r->streaming = 1;
        return set_pending(r, status, resp);
}

int http_stream_write(HttpRequest *r, const char *data, size_t len) {
        if (r->gone)
                return -EPIPE;
        if (!r->streaming || r->stream_done)
                return -EINVAL;
        if (len == 0) /* nothing to queue; r->out may still be NULL (found by fuzz-http-head) */
                return 0;
        /* The bound is on what the client has not read yet, not on the
         * total: a long stream to a reader that keeps up never hits it. */
        if (r->out_len - r->out_off + len > r->server->opts.max_stream_buffer) {
                /* A client this far behind is cut off rather than sent a stream
                 * with a hole in it; the abort handler runs when MHD closes it. */
                log_full(LOG_LEVEL_WARNING, 0, r->id, "client reads too slowly (%zu bytes queued), closing",
                         r->out_len - r->out_off);
                r->gone = 1;
                if (!r->in_handler)
                        request_resume(r);
                return -ENOBUFS;
        }
        if (r->out_off > 0 && r->out_len + len > r->out_cap) {
                memmove(r->out, r->out + r->out_off, r->out_len - r->out_off);
                r->out_len -= r->out_off;
                r->out_off = 0;
        }
        if (r->out_len + len > r->out_cap) {
                size_t cap = MAX(r->out_cap * 2, r->out_len + len + 1024);
                char *p = realloc(r->out, cap);
                if (!p)
                        return -ENOMEM;
                r->out = p;
                r->out_cap = cap;
        }
        memcpy(r->out + r->out_len, data, len);
        r->out_len += len;
        if (!r->in_handler)
                request_resume(r);
        return 0;
}

int http_stream_end(HttpRequest *r) {
        if (!r->streaming)
                return -EINVAL;
        r->stream_done = 1;
        r->abort_cb = NULL;
        if (!r->gone && !r->in_handler)
                request_resume(r);
        return 0;
}

/* ---- accessors ---- */

const char *http_request_method(HttpRequest *r) {
        return r->method;
}
const char *http_request_path(HttpRequest *r) {
        return r->path;
}
const char *http_request_id(HttpRequest *r) {
        return r->id;
}
uint64_t http_request_start_usec(HttpRequest *r) {
        return r->start_usec;
}
int http_request_is_tcp(HttpRequest *r) {
        return r->listener->is_tcp;
}

const char *http_request_header(HttpRequest *r, const char *name) {
        return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_request_query(HttpRequest *r, const char *name) {
        return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

int http_request_form(HttpRequest *r, HttpForm **ret) {
        if (!r->form)
                return -EMEDIUMTYPE;
        if (r->form_error < 0)
                return r->form_error;
        *ret = r->form;
        return 0;
}

const char *http_request_body(HttpRequest *r, size_t *ret_len) {
        if (ret_len)
                *ret_len = r->body_len;
        return r->body ? r->body : "";
}

int http_request_peer(HttpRequest *r, uid_t *ret_uid, gid_t *ret_gid, pid_t *ret_pid) {
        if (!r->have_peer)
                return -ENODATA;
        if (ret_uid)
                *ret_uid = r->peer.uid;
        if (ret_gid)
                *ret_gid = r->peer.gid;
        if (ret_pid)
                *ret_pid = r->peer.pid;
        return 0;
}

int http_request_peer_groups(HttpRequest *r, gid_t *gids, size_t max) {
        const union MHD_ConnectionInfo *ci;
        socklen_t len = (socklen_t) (max * sizeof(gid_t));

        if (r->listener->is_tcp)
                return -ENODATA;
        ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci)
                return -EBADF;
        if (getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERGROUPS, gids, &len) < 0)
                return -errno;
        return (int) (len / sizeof(gid_t));
}

void http_request_set_abort(HttpRequest *r, HttpAbortHandler cb, void *userdata) {
        r->abort_cb = cb;
        r->abort_userdata = userdata;
}

void http_request_set_log(HttpRequest *r, const char *pipeline, const char *agents) {
        free(r->log_pipeline);
        free(r->log_agents);
        r->log_pipeline = pipeline ? strdup(pipeline) : NULL;
        r->log_agents = agents ? strdup(agents) : NULL;
}

/* ---- connections: peers, deadlines, eviction ---- */

/* A body over its limit is read and thrown away up to this much more (so
 * a chunked client can read the 413), then the connection is closed. */
#define HTTP_DRAIN_MAX (1024u * 1024u)

static void conn_close(HttpConn *c) {
        if (c->closing)
                return;
        c->closing = 1;
        /* MHD reads end of file and closes the connection on its next run. */
        (void) shutdown(c->fd, SHUT_RDWR);
}

static void conn_set_phase(HttpConn *c, ConnPhase phase) {
        if (!c)
                return;
        c->phase = phase;
        c->phase_usec = now_usec();
        c->body_bytes = 0;
}

static HttpPeer *peer_get(HttpServer *s, const char *key) {
        HttpPeer *p;

        for (p = s->peers; p; p = p->next)
                if (streq(p->key, key))
                        return p;
        p = calloc(1, sizeof *p);
        if (!p)
                return NULL;
        snprintf(p->key, sizeof p->key, "%s", key);
        p->next = s->peers;
        s->peers = p;
        return p;
}

static void peer_put(HttpServer *s, HttpPeer *peer) {
        if (!peer || --peer->n_conns > 0)
                return;
        for (HttpPeer **pp = &s->peers; *pp; pp = &(*pp)->next)
                if (*pp == peer) {
                        *pp = peer->next;
                        free(peer);
                        return;
                }
}

/* "uid:N" from SO_PEERCRED on the Unix socket (kept in @c), "tcp:ADDRESS"
 * on TCP. */
static void conn_peer_key(HttpListener *l, HttpConn *c, struct MHD_Connection *mc, int fd, char *buf,
                          size_t size) {
        char addr[INET6_ADDRSTRLEN] = "?";
        const union MHD_ConnectionInfo *ci;

        if (!l->is_tcp) {
                socklen_t sl = sizeof c->cred;
                c->have_cred = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &sl) == 0;
                if (c->have_cred)
                        snprintf(buf, size, "uid:%u", (unsigned) c->cred.uid);
                else
                        snprintf(buf, size, "uid:?");
                return;
        }
        ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *) (const void *) ci->client_addr)->sin_addr,
                          addr, sizeof addr);
        else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
                inet_ntop(AF_INET6,
                          &((const struct sockaddr_in6 *) (const void *) ci->client_addr)->sin6_addr, addr,
                          sizeof addr);
        snprintf(buf, size, "tcp:%s", addr);
}

/* The connection waiting longest for a request, of @peer (NULL: any). */
static HttpConn *oldest_waiting(HttpServer *s, HttpPeer *peer, HttpConn *except) {
        HttpConn *best = NULL;

        for (HttpConn *c = s->conns; c; c = c->next)
                if (c != except && !c->closing && c->phase == CONN_WAITING && (!peer || c->peer == peer) &&
                    (!best || c->phase_usec <= best->phase_usec))
                        best = c;
        return best;
}

static HttpPeer *biggest_peer(HttpServer *s) {
        HttpPeer *best = NULL;

        for (HttpPeer *p = s->peers; p; p = p->next)
                if (!best || p->n_conns > best->n_conns)
                        best = p;
        return best;
}

/* A new connection @c: over its peer's cap it takes the place of that
 * peer's oldest waiting connection (or is closed if there is none); when
 * the server is nearly full (the last sixteenth is the reserve) the oldest
 * waiting connection of the biggest peer makes room. Waiting connections
 * are idle keep-alives or slow header blocks: nothing in progress is lost. */
static void conn_admit(HttpServer *s, HttpConn *c) {
        unsigned high = s->opts.max_connections - s->opts.max_connections / 16;
        HttpConn *victim = NULL;

        if (c->peer->n_conns > s->opts.max_connections_per_peer) {
                victim = oldest_waiting(s, c->peer, c);
                if (!victim) {
                        log_debug("connection from %s refused: %u connections, all busy", c->peer->key,
                                  c->peer->n_conns - 1);
                        s->n_closed_evicted++;
                        conn_close(c);
                        return;
                }
        } else if (s->n_conns > high) {
                victim = oldest_waiting(s, biggest_peer(s), c);
                if (!victim)
                        victim = oldest_waiting(s, NULL, c);
        }
        if (victim) {
                s->n_closed_evicted++;
                conn_close(victim);
        }
}

static void sweep_arm(HttpServer *s) {
        int enabled = SD_EVENT_OFF;

        if (!s->sweep)
                return;
        (void) sd_event_source_get_enabled(s->sweep, &enabled);
        if (enabled != SD_EVENT_OFF)
                return;
        (void) sd_event_source_set_time_relative(s->sweep, USEC_PER_SEC);
        (void) sd_event_source_set_enabled(s->sweep, SD_EVENT_ONESHOT);
}

/* Once a second while connections are open: close those whose header block
 * is later than header_timeout, or whose body has averaged less than
 * min_body_rate after that much grace (MHD's timeout restarts on every
 * byte, so a byte a second would keep a connection forever). */
static int on_sweep(sd_event_source *es, uint64_t usec, void *userdata) {
        HttpServer *s = userdata;
        uint64_t now = now_usec(), grace = s->opts.header_timeout_usec;

        for (HttpConn *c = s->conns; c; c = c->next) {
                uint64_t age = now - c->phase_usec;
                int late = 0;

                if (c->closing)
                        continue;
                if (c->phase == CONN_WAITING)
                        late = age > grace;
                else if (c->phase == CONN_BODY)
                        late = age > grace + c->body_bytes * USEC_PER_SEC / s->opts.min_body_rate;
                if (late) {
                        s->n_closed_late++;
                        conn_close(c);
                }
        }
        if (s->n_closed_late || s->n_closed_evicted)
                log_info("closed %llu connection(s) past the header deadline or below the body rate, "
                         "%llu to make room (%u open)",
                         (unsigned long long) s->n_closed_late, (unsigned long long) s->n_closed_evicted,
                         s->n_conns);
        s->n_closed_late = s->n_closed_evicted = 0;
        if (s->n_conns > 0)
                sweep_arm(s);
        return 0;
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
        HttpListener *l = cls;
        HttpServer *s = l->server;
        HttpConn *c = *socket_context;
        const union MHD_ConnectionInfo *ci;
        char key[64];

        if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
                if (!c)
                        return;
                *socket_context = NULL;
                if (c->prev)
                        c->prev->next = c->next;
                else
                        s->conns = c->next;
                if (c->next)
                        c->next->prev = c->prev;
                s->n_conns--;
                peer_put(s, c->peer);
                free(c);
                return;
        }

        ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci)
                return;
        c = calloc(1, sizeof *c);
        if (c) {
                conn_peer_key(l, c, mc, ci->connect_fd, key, sizeof key);
                c->peer = peer_get(s, key);
        }
        if (!c || !c->peer) {
                /* Untracked connections would escape every bound: refuse. */
                free(c);
                (void) shutdown(ci->connect_fd, SHUT_RDWR);
                return;
        }
        c->server = s;
        c->fd = ci->connect_fd;
        c->peer->n_conns++;
        conn_set_phase(c, CONN_WAITING);
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        *socket_context = c;
        sweep_arm(s);
        conn_admit(s, c);
}

void http_server_stats(HttpServer *s, unsigned *ret_connections, uint64_t *ret_body_bytes) {
        if (ret_connections)
                *ret_connections = s ? s->n_conns : 0;
        if (ret_body_bytes)
                *ret_body_bytes = s ? s->body_reserved : 0;
}

/* ---- MHD callbacks ---- */

static HttpRequest *request_new(HttpListener *l, struct MHD_Connection *conn, const char *url,
                                const char *method) {
        HttpServer *s = l->server;
        HttpRequest *r = calloc(1, sizeof *r);
        const char *cid;

        if (!r)
                return NULL;
        r->server = s;
        r->listener = l;
        r->conn = conn;
        r->start_usec = now_usec();
        snprintf(r->method, sizeof r->method, "%s", method);
        r->path = strdup(url);
        if (!r->path) {
                free(r);
                return NULL;
        }

        cid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-request-id");
        if (request_id_valid(cid))
                snprintf(r->id, sizeof r->id, "%s", cid);
        else
                snprintf(r->id, sizeof r->id, "req-%08x%08llx", s->id_salt,
                         (unsigned long long) ++s->id_counter);

        {
                const union MHD_ConnectionInfo *ci =
                        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
                r->hc = ci ? ci->socket_context : NULL;
        }
        if (!l->is_tcp && r->hc && r->hc->have_cred) {
                r->peer = r->hc->cred;
                r->have_peer = 1;
        } else if (!l->is_tcp) {
                const union MHD_ConnectionInfo *ci =
                        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
                socklen_t sl = sizeof r->peer;
                if (ci && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &r->peer, &sl) == 0)
                        r->have_peer = 1;
        }
        r->body_limit = s->opts.max_body_bytes;

        r->next = s->requests;
        if (s->requests)
                s->requests->prev = r;
        s->requests = r;
        s->n_active++;
        return r;
}

static void request_free(HttpRequest *r) {
        HttpServer *s = r->server;

        request_unwatch(r);
        if (r->prev)
                r->prev->next = r->next;
        else
                s->requests = r->next;
        if (r->next)
                r->next->prev = r->prev;
        s->n_active--;
        s->body_reserved -= r->body_reserved;
        if (r->pending)
                MHD_destroy_response(r->pending);
        free(r->path);
        free(r->body);
        http_form_free(r->form);
        free(r->out);
        free(r->log_pipeline);
        free(r->log_agents);
        free(r);
}

static enum MHD_Result queue_pending(HttpRequest *r) {
        enum MHD_Result ret = MHD_queue_response(r->conn, r->pending_status, r->pending);

        r->status = r->pending_status;
        MHD_destroy_response(r->pending);
        r->pending = NULL;
        if (!r->streaming)
                r->finished = 1;
        return ret;
}

void http_request_set_body_limit(HttpRequest *r, uint64_t max) {
        r->body_limit = MIN(max, r->server->opts.max_body_bytes);
}

static enum MHD_Result count_content_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                            const char *value) {
        if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
                (*(unsigned *) cls)++;
        return MHD_YES;
}

/* Answer on the first call, before any body byte: MHD then never reads the
 * body and closes the connection after the answer. Used for bad framing and
 * for refusals of bodies too large to drain (or of unknown length); a
 * refusal of a smaller body is held while the body is read and thrown away,
 * so that a client which sends before it reads still gets the answer and
 * the connection stays usable. */
static enum MHD_Result reply_early(HttpRequest *r) {
        r->dispatched = 1;
        conn_set_phase(r->hc, CONN_BUSY);
        return queue_pending(r);
}

/* The first call, with the header block complete: framing, access, limits. */
static enum MHD_Result request_begin(HttpRequest *r) {
        HttpServer *s = r->server;
        const char *cl, *te;
        unsigned n_cl = 0;
        uint64_t declared = 0;

        cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        (void) MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_content_length, &n_cl);

        /* MHD has checked that it is a number that fits in 64 bits. */
        if (cl)
                declared = strtoull(cl, NULL, 10);
        r->in_handler = 1;
        /* Two lengths, or a length and chunked framing, are the request
         * smuggling patterns: refuse rather than pick one (RFC 9112 6.3). */
        if (n_cl > 1 || (cl && te))
                http_reply_error(r, 400, "invalid_request_error", NULL, "bad_framing",
                                 "conflicting message framing: %s",
                                 n_cl > 1 ? "more than one Content-Length header"
                                          : "both Content-Length and Transfer-Encoding");
        else if (te && strcasecmp(te, "chunked") != 0)
                http_reply_error(r, 400, "invalid_request_error", NULL, "bad_framing",
                                 "unsupported Transfer-Encoding '%.40s' (only chunked)", te);
        if (r->pending) { /* framing we cannot trust: answer and close */
                r->in_handler = 0;
                return reply_early(r);
        }
        if (s->opts.admit)
                s->opts.admit(r, s->userdata);
        if (!r->pending && cl) {
                if (declared > r->body_limit)
                        http_reply_error(r, 413, "invalid_request_error", NULL, "body_too_large",
                                         "request body of %llu bytes exceeds this endpoint's limit of %llu "
                                         "bytes",
                                         (unsigned long long) declared, (unsigned long long) r->body_limit);
                else if (s->body_reserved + declared > s->opts.max_body_total) {
                        http_reply_error(r, 503, "server_error", NULL, "busy",
                                         "too many request bodies in flight; retry shortly");
                        if (r->pending)
                                MHD_add_response_header(r->pending, "Retry-After", "1");
                } else if (declared > 0) {
                        r->body_reserved = declared + 1;
                        s->body_reserved += r->body_reserved;
                }
        }
        r->in_handler = 0;
        if (r->pending && (te || declared > HTTP_DRAIN_MAX))
                return reply_early(r);
        conn_set_phase(r->hc, declared > 0 || te ? CONN_BODY : CONN_BUSY);
        return MHD_YES;
}

/* A piece of the body: buffered up to the request's limit; the buffer is
 * counted in the server-wide total before it grows. */
static enum MHD_Result request_body(HttpRequest *r, const char *data, size_t n) {
        HttpServer *s = r->server;

        if (r->hc)
                r->hc->body_bytes += n;
        if (r->dispatched)
                return MHD_YES;
        if (r->pending) /* refused from the headers: thrown away, never buffered */
                return MHD_YES;
        if (r->too_large) {
                r->drained += n;
                return r->drained > HTTP_DRAIN_MAX ? MHD_NO : MHD_YES;
        }
        if (r->form) { /* decoded, not buffered here */
                r->form_bytes += n;
                if (r->form_bytes > r->body_limit) {
                        r->too_large = 1;
                        r->drained = n;
                        r->form = http_form_free(r->form);
                } else
                        (void) http_form_feed(r->form, data, n); /* an error stays in the form */
                return MHD_YES;
        }
        if (r->body_len + n > r->body_limit) {
                r->too_large = 1; /* chunked upload without length: drain a little, then 413 */
                r->drained = n;
                r->body = mfree(r->body);
                r->body_len = r->body_cap = 0;
                s->body_reserved -= r->body_reserved;
                r->body_reserved = 0;
                return MHD_YES;
        }
        if (r->body_len + n + 1 > r->body_cap) {
                size_t cap = MAX(r->body_cap * 2, r->body_len + n + 1);
                char *p;

                cap = MIN(cap, r->body_limit + 1);
                cap = MAX(cap, r->body_reserved); /* a declared length: one allocation */
                if (cap > r->body_reserved) {
                        if (s->body_reserved + (cap - r->body_reserved) > s->opts.max_body_total) {
                                log_full(LOG_LEVEL_WARNING, 0, r->id,
                                         "request bodies over max_body_total, closing the connection");
                                return MHD_NO;
                        }
                        s->body_reserved += cap - r->body_reserved;
                        r->body_reserved = cap;
                }
                p = realloc(r->body, cap);
                if (!p)
                        return MHD_NO;
                r->body = p;
                r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, data, n);
        r->body_len += n;
        r->body[r->body_len] = 0;
        return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls) {
        HttpListener *l = cls;
        HttpServer *s = l->server;
        HttpRequest *r = *con_cls;

        if (!r) {
                r = request_new(l, conn, url, method);
                if (!r)
                        return MHD_NO;
                *con_cls = r;
                enum MHD_Result res = request_begin(r);
                /* an upload (multipart/form-data) is decoded as it arrives */
                if (!r->pending && !r->dispatched)
                        r->form = http_form_new(conn);
                return res;
        }

        if (r->gone)
                return MHD_NO;

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;

                *upload_data_size = 0;
                return request_body(r, upload_data, n);
        }

        if (!r->dispatched) {
                r->dispatched = 1;
                r->in_handler = 1;
                conn_set_phase(r->hc, CONN_BUSY);
                if (r->pending)
                        ; /* refused from the headers, body drained */
                else if (r->too_large)
                        http_reply_error(r, 413, "invalid_request_error", NULL, "body_too_large",
                                         "request body exceeds this endpoint's limit of %llu bytes",
                                         (unsigned long long) r->body_limit);
                else {
                        if (r->form)
                                r->form_error = http_form_finish(r->form);
                        s->handler(r, s->userdata);
                }
                r->in_handler = 0;
        }

        if (r->pending)
                return queue_pending(r);
        if (!r->status)
                request_suspend(r); /* the handler answers later */
        return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        HttpRequest *r = *con_cls;

        if (!r)
                return;
        *con_cls = NULL;
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK || !r->finished) {
                r->gone = 1;
                request_run_abort(r);
        }
        /* 499: the client closed the connection before the answer was complete. */
        unsigned status = r->status && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status : 499;
        uint64_t duration = now_usec() - r->start_usec;
        log_request(r->id, r->method, r->path, status, duration, r->log_pipeline, r->log_agents);
        if (r->server->opts.on_complete)
                r->server->opts.on_complete(r->path, status, duration);
        /* A kept-alive connection now waits for its next request. */
        conn_set_phase(r->hc, CONN_WAITING);
        request_free(r);
}

/* _printf_: the format comes from MHD; tells clang's -Wformat=2 so. */
_printf_(2, 0) static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        char buf[512];

        vsnprintf(buf, sizeof buf, fmt, ap);
        buf[strcspn(buf, "\n")] = 0;
        log_debug("libmicrohttpd: %s", buf);
}

/* ---- driving MHD from sd-event ---- */

static void listener_schedule_run(HttpListener *l) {
        (void) sd_event_source_set_enabled(l->run, SD_EVENT_ONESHOT);
}

static void listener_arm_timer(HttpListener *l) {
        MHD_UNSIGNED_LONG_LONG timeout_ms;
        uint64_t now;

        if (MHD_get_timeout(l->mhd, &timeout_ms) != MHD_YES) {
                (void) sd_event_source_set_enabled(l->timer, SD_EVENT_OFF);
                return;
        }
        /* 0: MHD has work now (e.g. after a response): a defer source runs
         * it without the timerfd re-arm, wake-up and read of a timer. */
        if (timeout_ms == 0) {
                listener_schedule_run(l);
                return;
        }
        (void) sd_event_now(l->server->event, CLOCK_MONOTONIC, &now);
        uint64_t at = now + (uint64_t) timeout_ms * USEC_PER_MSEC;
        int enabled = SD_EVENT_OFF;
        uint64_t armed = UINT64_MAX;
        /* MHD's timeout is mostly the idle timeout, pushed back by every
         * request: moving the timer later each time would cost a
         * timerfd_settime per run. An armed timer that fires early only
         * causes one idle MHD_run, which re-arms it. */
        (void) sd_event_source_get_enabled(l->timer, &enabled);
        (void) sd_event_source_get_time(l->timer, &armed);
        if (enabled != SD_EVENT_OFF && armed <= at)
                return;
        (void) sd_event_source_set_time(l->timer, at);
        (void) sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
}

static void listener_run(HttpListener *l) {
        if (MHD_run(l->mhd) != MHD_YES)
                log_debug("MHD_run failed");
        listener_arm_timer(l);
}

static int on_mhd_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        listener_run(userdata);
        return 0;
}

static int on_mhd_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        listener_run(userdata);
        return 0;
}

static int on_mhd_defer(sd_event_source *s, void *userdata) {
        listener_run(userdata);
        return 0;
}

static HttpListener *listener_free(HttpListener *l) {
        if (!l)
                return NULL;
        l->io = sd_event_source_disable_unref(l->io);
        l->timer = sd_event_source_disable_unref(l->timer);
        l->run = sd_event_source_disable_unref(l->run);
        if (l->mhd)
                MHD_stop_daemon(l->mhd);
        free(l);
        return NULL;
}

int http_server_add_listener(HttpServer *s, int fd, int is_tcp) {
        HttpListener *l;
        const union MHD_DaemonInfo *info;
        int r;

        if (s->n_listeners >= ELEMENTSOF(s->listeners))
                return -E2BIG;
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->server = s;
        l->is_tcp = is_tcp;

        l->mhd =
                MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                 on_access, l, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned) s->opts.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned) s->opts.idle_timeout_sec, MHD_OPTION_NOTIFY_COMPLETED,
                                 on_completed, l, MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_END);
        if (!l->mhd) {
                free(l);
                return log_error_errno(-EIO, "cannot start libmicrohttpd on fd %d", fd);
        }
        info = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info) {
                r = -EIO;
                goto fail;
        }
        r = sd_event_add_io(s->event, &l->io, info->epoll_fd, EPOLLIN, on_mhd_io, l);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(l->io, "http-mhd-epoll");
        r = sd_event_add_time(s->event, &l->timer, CLOCK_MONOTONIC, UINT64_MAX, 1, on_mhd_timer, l);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(l->timer, "http-mhd-timer");
        r = sd_event_add_defer(s->event, &l->run, on_mhd_defer, l);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(l->run, "http-mhd-run");
        (void) sd_event_source_set_enabled(l->run, SD_EVENT_OFF);

        s->listeners[s->n_listeners++] = l;
        listener_arm_timer(l);
        return 0;
fail:
        listener_free(l);
        return r;
}

int http_server_new(sd_event *e, const HttpServerOptions *opts, HttpHandler handler, void *userdata,
                    HttpServer **ret) {
        HttpServer *s = calloc(1, sizeof *s);

        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(e);
        s->opts = *opts;
        if (s->opts.max_stream_buffer == 0)
                s->opts.max_stream_buffer = 16u * 1024u * 1024u;
        if (s->opts.idle_timeout_sec == 0)
                s->opts.idle_timeout_sec = 30;
        if (s->opts.max_connections == 0)
                s->opts.max_connections = 1024;
        if (s->opts.max_connections_per_peer == 0)
                s->opts.max_connections_per_peer = MAX(s->opts.max_connections / 4, 1u);
        if (s->opts.max_body_total == 0)
                s->opts.max_body_total = 4 * s->opts.max_body_bytes;
        /* The largest body alone must always fit (+1: its NUL). */
        s->opts.max_body_total = MAX(s->opts.max_body_total, s->opts.max_body_bytes + 1);
        if (s->opts.header_timeout_usec == 0)
                s->opts.header_timeout_usec = 10 * USEC_PER_SEC;
        if (s->opts.min_body_rate == 0)
                s->opts.min_body_rate = 1024;
        if (sd_event_add_time_relative(e, &s->sweep, CLOCK_MONOTONIC, USEC_PER_SEC, USEC_PER_SEC / 10,
                                       on_sweep, s) < 0) {
                sd_event_unref(s->event);
                free(s);
                return -ENOMEM;
        }
        (void) sd_event_source_set_description(s->sweep, "http-connection-sweep");
        (void) sd_event_source_set_enabled(s->sweep, SD_EVENT_OFF);
        s->handler = handler;
        s->userdata = userdata;
        s->id_salt = (uint32_t) getpid() ^ (uint32_t) now_usec();
        *ret = s;
        return 0;
}

void http_server_quiesce(HttpServer *s) {
        for (size_t i = 0; i < s->n_listeners; i++) {
                /* MHD hands the listening fd back; closing our copy stops
                 * accepting (a socket-activated fd stays open in systemd). */
                MHD_socket fd = MHD_quiesce_daemon(s->listeners[i]->mhd);
                if (fd != MHD_INVALID_SOCKET)
                        close(fd);
        }
}

unsigned http_server_active(HttpServer *s) {
        return s ? s->n_active : 0;
}

void http_server_abort_all(HttpServer *s) {
        for (HttpRequest *r = s->requests; r; r = r->next) {
                if (r->gone)
                        continue;
                r->gone = 1;
                request_run_abort(r);
                request_resume(r);
        }
}

HttpServer *http_server_free(HttpServer *s) {
        if (!s)
                return NULL;
        /* MHD requires every suspended connection resumed before stopping. */
        http_server_abort_all(s);
        for (size_t i = 0; i < s->n_listeners; i++) {
                MHD_run(s->listeners[i]->mhd);
                listener_free(s->listeners[i]);
        }
        s->sweep = sd_event_source_disable_unref(s->sweep);
        while (s->peers) {
                HttpPeer *p = s->peers;
                s->peers = p->next;
                free(p);
        }
        sd_event_unref(s->event);
        free(s);
        return NULL;
}
