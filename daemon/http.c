/* http.c — libmicrohttpd in "external epoll" mode on sd-event.
 *
 * Each listener is one MHD daemon with MHD_USE_EPOLL and no thread: its
 * epoll fd is an sd-event io source that calls MHD_run(), and a one-shot
 * timer follows MHD_get_timeout(). A request whose answer is not ready is
 * suspended; replying resumes it and schedules an MHD_run() from a defer
 * source. Suspended connections do not notice disconnects in MHD 0.9.75,
 * so while suspended we watch the socket for EPOLLRDHUP ourselves. */
#include <ctype.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "http-form.h"
#include "http.h"
#include "log.h"
#include "util.h"

typedef struct HttpListener {
        HttpServer *server;
        struct MHD_Daemon *mhd;
        sd_event_source *io, *timer, *run;
        int is_tcp;
} HttpListener;

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

        char *body;
        size_t body_len, body_cap;
        HttpForm *form; /* a multipart/form-data body, decoded as it arrives instead */
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
        s = json_dumps(json, JSON_COMPACT);
        json_decref(json);
        if (!s)
                return http_reply_error(r, 500, "server_error", NULL, NULL, "out of memory");
        ret = http_reply(r, status, NULL, s, strlen(s), NULL, NULL);
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

        if (!l->is_tcp) {
                const union MHD_ConnectionInfo *ci =
                        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
                socklen_t sl = sizeof r->peer;
                if (ci && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &r->peer, &sl) == 0)
                        r->have_peer = 1;
        }

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

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls) {
        HttpListener *l = cls;
        HttpServer *s = l->server;
        HttpRequest *r = *con_cls;

        if (!r) {
                const char *cl;

                r = request_new(l, conn, url, method);
                if (!r)
                        return MHD_NO;
                *con_cls = r;

                /* Refuse a declared oversized body before reading it. */
                cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl) {
                        char *end;
                        errno = 0;
                        unsigned long long n = strtoull(cl, &end, 10);
                        if (errno || *end || n > s->opts.max_body_bytes)
                                r->too_large = 1;
                }
                if (!r->too_large)
                        r->form = http_form_new(conn);
                if (r->too_large) {
                        r->in_handler = 1;
                        http_reply_error(r, 413, "invalid_request_error", NULL, "body_too_large",
                                         "request body exceeds the limit of %llu bytes",
                                         (unsigned long long) s->opts.max_body_bytes);
                        r->in_handler = 0;
                        r->dispatched = 1;
                        return queue_pending(r);
                }
                return MHD_YES;
        }

        if (r->gone)
                return MHD_NO;

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;

                *upload_data_size = 0;
                if (r->too_large || r->dispatched)
                        return MHD_YES;
                if (r->form) {
                        r->form_bytes += n;
                        if (r->form_bytes > s->opts.max_body_bytes) {
                                r->too_large = 1;
                                r->form = http_form_free(r->form);
                        } else
                                (void) http_form_feed(r->form, upload_data,
                                                      n); /* an error stays in the form */
                        return MHD_YES;
                }
                if (r->body_len + n > s->opts.max_body_bytes) {
                        r->too_large = 1; /* chunked upload without length: keep draining */
                        free(r->body);
                        r->body = NULL;
                        r->body_len = r->body_cap = 0;
                        return MHD_YES;
                }
                if (r->body_len + n + 1 > r->body_cap) {
                        size_t cap = MAX(r->body_cap * 2, r->body_len + n + 1);
                        cap = MIN(cap, s->opts.max_body_bytes + 1);
                        char *p = realloc(r->body, cap);
                        if (!p)
                                return MHD_NO;
                        r->body = p;
                        r->body_cap = cap;
                }
                memcpy(r->body + r->body_len, upload_data, n);
                r->body_len += n;
                r->body[r->body_len] = 0;
                return MHD_YES;
        }

        if (!r->dispatched) {
                r->dispatched = 1;
                r->in_handler = 1;
                if (r->too_large)
                        http_reply_error(r, 413, "invalid_request_error", NULL, "body_too_large",
                                         "request body exceeds the limit of %llu bytes",
                                         (unsigned long long) s->opts.max_body_bytes);
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
        request_free(r);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
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

        l->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL,
                                  NULL, on_access, l, MHD_OPTION_LISTEN_SOCKET, fd,
                                  MHD_OPTION_CONNECTION_LIMIT, (unsigned) s->opts.max_connections,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) s->opts.idle_timeout_sec,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, l, MHD_OPTION_EXTERNAL_LOGGER,
                                  on_mhd_log, NULL, MHD_OPTION_END);
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
        sd_event_unref(s->event);
        free(s);
        return NULL;
}
