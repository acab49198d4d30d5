/* http.h — HTTP/1.1 server on libmicrohttpd, driven by the daemon's
 * sd-event loop (no MHD threads). Owns connections, request bodies, limits,
 * request ids and response delivery (whole or streamed); knows nothing of
 * the API: a single handler receives each complete request. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include <jansson.h>

typedef struct HttpServer HttpServer;
typedef struct HttpRequest HttpRequest;

/* Called once per request, on the loop, when the whole body has arrived
 * (bounded by the request's body limit; an oversized body is answered 413
 * before the handler is called). The handler replies now or later; until it
 * replies the connection is suspended. */
typedef void (*HttpHandler)(HttpRequest *req, void *userdata);

/* Called once per request as soon as its header block is in, before any
 * byte of the body is read: decides access and the body limit. It either
 * replies (a refusal; the body is then never read and the connection closes
 * after the answer) or may set the limit with http_request_set_body_limit(). */
typedef void (*HttpAdmitHandler)(HttpRequest *req, void *userdata);

/* Called when the request ends before the handler replied/finished
 * streaming (client disconnected, server stopping): cancel the work tied
 * to @req. After it returns @req is freed; do not touch it again. */
typedef void (*HttpAbortHandler)(HttpRequest *req, void *userdata);

typedef struct HttpServerOptions {
        uint64_t max_body_bytes; /* one body, unless the admit hook sets a request's own limit */
        uint64_t max_body_total; /* bodies buffered at once, all requests (0: 4 x max_body_bytes) */
        unsigned max_connections;
        unsigned max_connections_per_peer; /* per uid (Unix socket) or address (TCP); 0: a quarter */
        unsigned idle_timeout_sec;
        uint64_t header_timeout_usec; /* a whole header block, from connect or the previous answer */
        uint64_t min_body_rate;       /* bytes/s a body must average after header_timeout of grace */
        uint64_t max_stream_buffer;   /* bytes queued for a slow streaming client */
        HttpAdmitHandler admit;       /* may be NULL: everything admitted, max_body_bytes */
        /* Called for every finished request (metrics), may be NULL. */
        void (*on_complete)(const char *path, unsigned status, uint64_t duration_usec);
} HttpServerOptions;

/** http_server_new() - create a server with no listeners yet. */
int http_server_new(sd_event *e, const HttpServerOptions *opts, HttpHandler handler, void *userdata,
                    HttpServer **ret);

/**
 * http_server_add_listener() - serve connections on the listening socket
 * @fd (unix or TCP; already bound and listening). The server takes
 * ownership of @fd (libmicrohttpd closes it when stopped or quiesced).
 */
int http_server_add_listener(HttpServer *s, int fd, int is_tcp);

/** http_server_quiesce() - stop accepting new connections; keep serving. */
void http_server_quiesce(HttpServer *s);

/** http_server_active() - requests not yet finished. */
unsigned http_server_active(HttpServer *s);

/**
 * http_server_abort_all() - abort every unfinished request (their abort
 * handlers run) and let MHD close their connections. For shutdown after
 * the grace period.
 */
void http_server_abort_all(HttpServer *s);

/** http_server_free() - abort everything, stop MHD; NULL ok; returns NULL. */
HttpServer *http_server_free(HttpServer *s);

/* Request accessors: valid for the request's lifetime. */
const char *http_request_method(HttpRequest *r);
const char *http_request_path(HttpRequest *r);
const char *http_request_id(HttpRequest *r);
/** http_request_header() - a request header (case-insensitive), or NULL. */
const char *http_request_header(HttpRequest *r, const char *name);
const char *http_request_body(HttpRequest *r, size_t *ret_len);
/** http_request_query() - a query-string argument (decoded), or NULL. */
const char *http_request_query(HttpRequest *r, const char *name);

typedef struct HttpForm HttpForm;
/**
 * http_request_form() - the decoded multipart/form-data body (see
 * http-form.h; valid for the request's lifetime; fields may be taken over).
 * -EMEDIUMTYPE when the body is not one, or the decoding error (-EBADMSG a
 * malformed body, -E2BIG too many fields, -ENOMEM).
 */
int http_request_form(HttpRequest *r, HttpForm **ret);

/** http_request_peer() - SO_PEERCRED of a unix-socket peer; -ENODATA on TCP. */
int http_request_peer(HttpRequest *r, uid_t *ret_uid, gid_t *ret_gid, pid_t *ret_pid);
/**
 * http_request_peer_groups() - the unix-socket peer's supplementary groups
 * (SO_PEERGROUPS: the kernel's view at connect time, no /proc or NSS look-up).
 * Fills at most @max entries of @gids; returns the count or -errno.
 */
int http_request_peer_groups(HttpRequest *r, gid_t *gids, size_t max);
int http_request_is_tcp(HttpRequest *r);
uint64_t http_request_start_usec(HttpRequest *r);

/**
 * http_request_set_body_limit() - the most body bytes @r may send (from
 * the admit hook; at most the server's max_body_bytes). A larger declared
 * Content-Length is answered 413 before the body is read.
 */
void http_request_set_body_limit(HttpRequest *r, uint64_t max);

/** http_server_stats() - connections open and body bytes buffered now. */
void http_server_stats(HttpServer *s, unsigned *ret_connections, uint64_t *ret_body_bytes);

/** http_request_set_abort() - see HttpAbortHandler; NULL clears. */
void http_request_set_abort(HttpRequest *r, HttpAbortHandler cb, void *userdata);

/** http_request_set_log() - pipeline and agents for the request's log line. */
void http_request_set_log(HttpRequest *r, const char *pipeline, const char *agents);

/**
 * http_reply() - answer with @status and a body (copied). @content_type
 * NULL means application/json. Adds x-request-id. Once per request.
 * @extra_header/@extra_value: one optional extra header (e.g. Retry-After).
 */
int http_reply(HttpRequest *r, unsigned status, const char *content_type, const char *body, size_t len,
               const char *extra_header, const char *extra_value);

/** http_reply_json() - answer with @json serialised compactly; steals @json. */
int http_reply_json(HttpRequest *r, unsigned status, json_t *json);

/**
 * http_reply_error() - an OpenAI-style error object
 * {"error":{"message","type","param","code"}}. @param/@code may be NULL.
 */
int http_reply_error(HttpRequest *r, unsigned status, const char *type, const char *param, const char *code,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/**
 * http_stream_begin() - start a streamed (chunked) response with
 * @content_type; then http_stream_write() pieces and http_stream_end().
 */
int http_stream_begin(HttpRequest *r, unsigned status, const char *content_type);
/** http_stream_write() - queue bytes for the client; -EPIPE if it is gone,
 * -ENOBUFS if it reads too slowly (more than max_stream_buffer unread): the
 * connection is then closed and the abort handler runs from the loop. */
int http_stream_write(HttpRequest *r, const char *data, size_t len);
/** http_stream_end() - finish the stream (terminating chunk). */
int http_stream_end(HttpRequest *r);

/** http_status_reason() - "Not Found" etc. */
const char *http_status_reason(unsigned status);
