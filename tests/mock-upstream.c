/* mock-upstream.c — a deterministic OpenAI-compatible server for tests.
 * A test tool, not part of the daemon: libmicrohttpd with a thread per
 * connection, so a "slow" answer simply sleeps in its own thread.
 *
 *   mock-upstream [--port N]     (N = 0: any free port)
 *
 * Listens on 127.0.0.1 only, prints "PORT <n>" on stdout once listening,
 * serves until SIGTERM/SIGINT. The behaviour of a chat completion is picked
 * by the model name, or by the X-Mock-Behaviour header when present:
 *
 *   echo (and any unknown name)  "[<model>] you said: <last user message>"
 *   fixed-<ms>     answer after <ms> milliseconds
 *   stream-<ms>    <ms> between streamed tokens (non-stream: like echo)
 *   gen-<ms>       a model writing one word per <ms>: streamed at that pace
 *                  (the end of the stream comes with the last word), or
 *                  answered whole after words x <ms> when not streamed
 *   status-<code>  that HTTP status with an OpenAI error object; 429 adds
 *                  "Retry-After: 1"
 *   hang           never answers (until the client goes away)
 *   garbage        200 with a body that is not JSON (stream: bad event)
 *   truncated      stream ends cleanly but before "data: [DONE]"
 *   trickle        one byte every 200 ms
 *   flaky-<n>      the first <n> calls of that model get 500, then echo
 *   midstream-error  two tokens, then data: {"error": ...} and close
 *   nostream       a plain JSON answer even when asked to stream
 *   vllm-error     400 with vLLM's error shape {"object": "error", "message"}
 *   auth           answer says "authorization: <header value|none>"
 *   leak-key       401 whose error message repeats the Authorization header
 *
 * Also: GET /v1/models, GET /mock/stats ({"calls": {model: n}, "total": n,
 * "connections": TCP connections accepted}), GET /mock/last?model=<name>
 * (the last chat request body sent for that model, as received; 404 if
 * none), POST /mock/reset. Request bodies are bounded (1 MiB). */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY (1024 * 1024)
#define MAX_MODELS 1024
#define MAX_NAME 128
#define TRICKLE_MS 200

static atomic_int stopping;

/* Calls per model name. */
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
        char name[MAX_NAME];
        unsigned long count;
        char *last; /* the last request body for this model */
} stats[MAX_MODELS];
static size_t n_stats;
static unsigned long stats_total;
static unsigned long stats_connections; /* TCP connections accepted: shows keep-alive reuse */

/* Count one call of @model and keep its request @body; return its new count. */
static unsigned long stats_bump(const char *model, const char *body, size_t len) {
        unsigned long n = 0;
        size_t i;

        pthread_mutex_lock(&stats_lock);
        stats_total++;
        for (i = 0; i < n_stats; i++)
                if (strcmp(stats[i].name, model) == 0) {
                        n = ++stats[i].count;
                        goto out;
                }
        if (n_stats < MAX_MODELS) {
                snprintf(stats[n_stats].name, MAX_NAME, "%s", model);
                n = stats[n_stats++].count = 1;
        }
out:
        if (i < n_stats) {
                free(stats[i].last);
                stats[i].last = strndup(body ? body : "", len);
        }
        pthread_mutex_unlock(&stats_lock);
        return n;
}

/* The last request body for @model, malloc'ed, NULL if none. */
static char *stats_last(const char *model) {
        char *s = NULL;

        pthread_mutex_lock(&stats_lock);
        for (size_t i = 0; model && i < n_stats; i++)
                if (strcmp(stats[i].name, model) == 0 && stats[i].last)
                        s = strdup(stats[i].last);
        pthread_mutex_unlock(&stats_lock);
        return s;
}

static char *stats_json(void) {
        json_t *calls = json_object();
        char *s;

        pthread_mutex_lock(&stats_lock);
        for (size_t i = 0; i < n_stats; i++)
                if (stats[i].count > 0)
                        json_object_set_new(calls, stats[i].name, json_integer((json_int_t) stats[i].count));
        json_t *o = json_pack("{s:o, s:I, s:I}", "calls", calls, "total", (json_int_t) stats_total,
                              "connections", (json_int_t) stats_connections);
        pthread_mutex_unlock(&stats_lock);
        s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        return s;
}

static void stats_reset(void) {
        pthread_mutex_lock(&stats_lock);
        for (size_t i = 0; i < n_stats; i++) {
                free(stats[i].last);
                stats[i].last = NULL;
        }
        n_stats = 0;
        stats_total = 0;
        stats_connections = 0;
        pthread_mutex_unlock(&stats_lock);
}

/* Words of @s as the stream sends them (each with the space before it). */
static size_t count_tokens(const char *s) {
        size_t n = 0;

        for (const char *p = s; *p;) {
                const char *q = p + 1;
                while (*q && *q != ' ')
                        q++;
                p = q;
                n++;
        }
        return n;
}

/* Sleep @ms, in small steps; -1 when the client went away or we stop. */
static int mock_sleep(int fd, unsigned ms) {
        struct timespec start, now;

        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                if (atomic_load(&stopping))
                        return -1;
                clock_gettime(CLOCK_MONOTONIC, &now);
                long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
                if (elapsed >= (long) ms)
                        return 0;
                long step = ms - elapsed < 20 ? ms - elapsed : 20;
                if (fd < 0) {
                        struct timespec ts = {.tv_nsec = step * 1000000};
                        nanosleep(&ts, NULL);
                        continue;
                }
                struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
                if (poll(&p, 1, (int) step) > 0) {
                        char c;
                        if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
                                return -1;
                        if ((p.revents & POLLIN) && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
                                return -1;
                        /* Bytes of a next request: nothing to do until we answer. */
                        struct timespec ts = {.tv_nsec = step * 1000000};
                        nanosleep(&ts, NULL);
                }
        }
}

typedef struct Upload {
        char *buf;
        size_t len;
        int too_big;
} Upload;

/* The body of a callback response: prebuilt pieces with optional delays. */
typedef struct Body {
        char **pieces;
        size_t n, i, off;
        unsigned piece_delay_ms; /* before every piece but the first */
        unsigned byte_delay_ms;  /* trickle: one byte per delay */
        int fd;
} Body;

static void body_free(void *cls) {
        Body *b = cls;
        for (size_t i = 0; i < b->n; i++)
                free(b->pieces[i]);
        free(b->pieces);
        free(b);
}

static void body_add(Body *b, char *piece) {
        char **q = realloc(b->pieces, (b->n + 1) * sizeof *q);
        if (!q || !piece)
                abort();
        b->pieces = q;
        b->pieces[b->n++] = piece;
}

static ssize_t body_reader(void *cls, uint64_t pos, char *buf, size_t max) {
        Body *b = cls;

        if (b->i >= b->n)
                return MHD_CONTENT_READER_END_OF_STREAM;
        if (b->off == 0 && b->i > 0 && b->piece_delay_ms > 0 && mock_sleep(b->fd, b->piece_delay_ms) < 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        if (b->byte_delay_ms > 0 && (b->i > 0 || b->off > 0) && mock_sleep(b->fd, b->byte_delay_ms) < 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;

        const char *p = b->pieces[b->i];
        size_t len = strlen(p) - b->off;
        size_t n = len < max ? len : max;
        if (b->byte_delay_ms > 0)
                n = 1;
        memcpy(buf, p + b->off, n);
        b->off += n;
        if (b->off == strlen(p)) {
                b->i++;
                b->off = 0;
        }
        return (ssize_t) n;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
        va_list ap;
        char *s;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                abort();
        va_end(ap);
        return s;
}

static char *dump(json_t *o) {
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!s)
                abort();
        return s;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, char *body_owned) {
        struct MHD_Response *r =
                MHD_create_response_from_buffer(strlen(body_owned), body_owned, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(r, "Content-Type", type);
        enum MHD_Result ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *message) {
        json_t *o = json_pack("{s:{s:s, s:s, s:n, s:i}}", "error", "message", message, "type",
                              status == 429   ? "rate_limit_error"
                              : status >= 500 ? "server_error"
                                              : "invalid_request_error",
                              "param", "code", (int) status);
        struct MHD_Response *r;
        char *s = dump(o);

        r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(r, "Content-Type", "application/json");
        if (status == 429)
                MHD_add_response_header(r, "Retry-After", "1");
        enum MHD_Result ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

static size_t count_words(const char *s) {
        size_t n = 0;
        int in = 0;
        for (; s && *s; s++) {
                int space = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
                if (!space && !in)
                        n++;
                in = !space;
        }
        return n;
}

static json_t *usage_of(json_t *messages, const char *answer) {
        size_t prompt = 0, i;
        json_t *m;

        json_array_foreach(messages, i, m) prompt +=
                count_words(json_string_value(json_object_get(m, "content")));
        size_t completion = count_words(answer);
        return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t) prompt, "completion_tokens",
                         (json_int_t) completion, "total_tokens", (json_int_t) (prompt + completion));
}

static char *sse_chunk(const char *model, const char *content, const char *finish) {
        json_t *delta = content ? json_pack("{s:s}", "content", content) : json_object();
        json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:o, s:s?}]}", "id", "mock", "object",
                              "chat.completion.chunk", "created", 0, "model", model, "choices", "index", 0,
                              "delta", delta, "finish_reason", finish);
        char *j = dump(o), *s = xasprintf("data: %s\n\n", j);
        free(j);
        return s;
}

static unsigned suffix_num(const char *behaviour, const char *prefix, unsigned def) {
        size_t l = strlen(prefix);
        if (strncmp(behaviour, prefix, l) != 0 || !behaviour[l])
                return def;
        unsigned long v = strtoul(behaviour + l, NULL, 10);
        return v > 600000 ? 600000 : (unsigned) v;
}

static enum MHD_Result chat(struct MHD_Connection *c, Upload *up) {
        json_error_t err;
        json_t *req = json_loadb(up->buf ? up->buf : "", up->len, 0, &err);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        int fd = ci ? ci->connect_fd : -1;
        const char *model, *behaviour, *auth;
        char answer[4096], *last_user = NULL;
        json_t *messages, *m;
        size_t i;
        int stream, include_usage;
        enum MHD_Result ret;

        if (!req || !json_is_object(req)) {
                json_decref(req);
                return reply_error(c, 400, "request body is not a JSON object");
        }
        messages = json_object_get(req, "messages");
        if (!json_is_array(messages)) {
                json_decref(req);
                return reply_error(c, 400, "messages must be an array");
        }
        model = json_string_value(json_object_get(req, "model"));
        if (!model)
                model = "echo";
        behaviour = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Mock-Behaviour");
        if (!behaviour)
                behaviour = model;
        auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        stream = json_is_true(json_object_get(req, "stream"));
        include_usage =
                json_is_true(json_object_get(json_object_get(req, "stream_options"), "include_usage"));
        unsigned long n_call = stats_bump(model, up->buf, up->len);
        if (strcmp(behaviour, "nostream") == 0) /* a server that ignores "stream" */
                stream = 0;

        json_array_foreach(messages, i, m) {
                const char *role = json_string_value(json_object_get(m, "role"));
                const char *content = json_string_value(json_object_get(m, "content"));
                if (role && content && strcmp(role, "user") == 0)
                        last_user = (char *) content;
        }
        snprintf(answer, sizeof answer, "[%s] you said: %s", model, last_user ? last_user : "");

        /* Behaviours that do not answer normally. */
        if (strncmp(behaviour, "status-", 7) == 0) {
                unsigned code = suffix_num(behaviour, "status-", 500);
                if (code < 100 || code > 599)
                        code = 500;
                char msg[256];
                snprintf(msg, sizeof msg, "mock status %u for %s", code, model);
                ret = reply_error(c, code, msg);
                goto out;
        }
        if (strncmp(behaviour, "flaky-", 6) == 0 && n_call <= suffix_num(behaviour, "flaky-", 1)) {
                char msg[256];
                snprintf(msg, sizeof msg, "mock flaky failure %lu for %s", n_call, model);
                ret = reply_error(c, 500, msg);
                goto out;
        }
        if (strcmp(behaviour, "leak-key") == 0) {
                char msg[1024];
                snprintf(msg, sizeof msg, "invalid credentials: %s", auth ? auth : "none");
                ret = reply_error(c, 401, msg);
                goto out;
        }
        if (strcmp(behaviour, "vllm-error") == 0) {
                ret = reply(c, 400, "application/json",
                            strdup("{\"object\":\"error\",\"message\":\"vllm says no\","
                                   "\"type\":\"BadRequestError\",\"param\":null,\"code\":400}"));
                goto out;
        }
        if (strcmp(behaviour, "hang") == 0) {
                while (mock_sleep(fd, 1000) == 0)
                        ;
                ret = MHD_NO;
                goto out;
        }
        if (strcmp(behaviour, "garbage") == 0) {
                ret = reply(
                        c, 200, stream ? "text/event-stream" : "application/json",
                        strdup(stream ? "data: {this is not json\n\n" : "{\"choices\": [ this is not json"));
                goto out;
        }
        if (strcmp(behaviour, "auth") == 0)
                snprintf(answer, sizeof answer, "[%s] authorization: %s", model, auth ? auth : "none");
        if (strncmp(behaviour, "fixed-", 6) == 0) {
                unsigned ms = suffix_num(behaviour, "fixed-", 0);
                if (mock_sleep(fd, ms) < 0) {
                        ret = MHD_NO;
                        goto out;
                }
                snprintf(answer, sizeof answer, "[%s] fixed answer after %u ms", model, ms);
        }
        unsigned gen_ms = suffix_num(behaviour, "gen-", 0);
        if (gen_ms > 0 && !stream) {
                size_t words = count_tokens(answer);
                if (mock_sleep(fd, (unsigned) (words * gen_ms > 600000 ? 600000 : words * gen_ms)) < 0) {
                        ret = MHD_NO;
                        goto out;
                }
        }

        Body *b = calloc(1, sizeof *b);
        if (!b)
                abort();
        b->fd = fd;
        if (strcmp(behaviour, "trickle") == 0)
                b->byte_delay_ms = TRICKLE_MS;

        if (!stream) {
                json_t *o;
                if (strcmp(behaviour, "midstream-error") == 0)
                        o = json_pack("{s:{s:s, s:s}}", "error", "message", "mock failure in the answer",
                                      "type", "server_error");
                else
                        o = json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:{s:s, s:s}, s:s}], s:o}", "id",
                                      "mock", "object", "chat.completion", "created", 0, "model", model,
                                      "choices", "index", 0, "message", "role", "assistant", "content",
                                      answer, "finish_reason", "stop", "usage", usage_of(messages, answer));
                body_add(b, dump(o));
                if (strcmp(behaviour, "truncated") == 0) /* cut the JSON in half */
                        b->pieces[0][strlen(b->pieces[0]) / 2] = 0;
        } else {
                /* Token by token: each word with the space before it. */
                b->piece_delay_ms = gen_ms > 0 ? gen_ms : suffix_num(behaviour, "stream-", 0);
                char *first = sse_chunk(model, "", NULL);
                body_add(b, first);
                size_t n_tokens = 0;
                for (const char *p = answer; *p;) {
                        const char *q = p + 1;
                        while (*q && *q != ' ')
                                q++;
                        char *tok = strndup(p, (size_t) (q - p));
                        body_add(b, sse_chunk(model, tok, NULL));
                        free(tok);
                        p = q;
                        n_tokens++;
                        if (strcmp(behaviour, "midstream-error") == 0 && n_tokens == 2) {
                                body_add(b, strdup("data: {\"error\":{\"message\":\"mock failure in the "
                                                   "middle\","
                                                   "\"type\":\"server_error\"}}\n\n"));
                                break;
                        }
                        if (strcmp(behaviour, "truncated") == 0 && n_tokens == 3)
                                break;
                }
                if (strcmp(behaviour, "midstream-error") != 0 && strcmp(behaviour, "truncated") != 0) {
                        body_add(b, sse_chunk(model, NULL, "stop"));
                        if (include_usage) {
                                json_t *o =
                                        json_pack("{s:s, s:s, s:i, s:s, s:[], s:o}", "id", "mock", "object",
                                                  "chat.completion.chunk", "created", 0, "model", model,
                                                  "choices", "usage", usage_of(messages, answer));
                                char *j = dump(o);
                                body_add(b, xasprintf("data: %s\n\n", j));
                                free(j);
                        }
                        /* A keep-alive comment, as real servers send, then the end marker. */
                        body_add(b, strdup(": keep-alive\n\n"));
                        body_add(b, strdup("data: [DONE]\n\n"));
                }
                /* gen-: the end of the stream comes with the last word, not one delay per piece. */
                if (gen_ms > 0 && b->n > n_tokens + 2) {
                        size_t last = n_tokens; /* pieces[0] is the empty first chunk */
                        for (size_t k = last + 1; k < b->n; k++) {
                                char *joined = xasprintf("%s%s", b->pieces[last], b->pieces[k]);
                                free(b->pieces[last]);
                                free(b->pieces[k]);
                                b->pieces[last] = joined;
                        }
                        b->n = last + 1;
                }
        }

        struct MHD_Response *r =
                MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, body_reader, b, body_free);
        MHD_add_response_header(r, "Content-Type", stream ? "text/event-stream" : "application/json");
        ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
out:
        json_decref(req);
        return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls) {
        Upload *up = *con_cls;

        if (!up) {
                up = calloc(1, sizeof *up);
                if (!up)
                        return MHD_NO;
                *con_cls = up;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                if (!up->too_big) {
                        if (up->len + *upload_data_size > MAX_BODY) {
                                up->too_big = 1;
                        } else {
                                char *q = realloc(up->buf, up->len + *upload_data_size + 1);
                                if (!q)
                                        return MHD_NO;
                                up->buf = q;
                                memcpy(up->buf + up->len, upload_data, *upload_data_size);
                                up->len += *upload_data_size;
                                up->buf[up->len] = 0;
                        }
                }
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (up->too_big)
                return reply_error(c, 413, "request body too large");

        if (strcmp(method, "POST") == 0 &&
            (strcmp(url, "/v1/chat/completions") == 0 || strcmp(url, "/chat/completions") == 0))
                return chat(c, up);
        if (strcmp(method, "GET") == 0 && strcmp(url, "/mock/stats") == 0)
                return reply(c, 200, "application/json", stats_json());
        if (strcmp(method, "GET") == 0 && strcmp(url, "/mock/last") == 0) {
                char *last = stats_last(MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model"));
                if (!last)
                        return reply_error(c, 404, "no request for that model");
                return reply(c, 200, "application/json", last);
        }
        if (strcmp(method, "POST") == 0 && strcmp(url, "/mock/reset") == 0) {
                stats_reset();
                return reply(c, 200, "application/json", strdup("{\"ok\":true}"));
        }
        if (strcmp(method, "GET") == 0 && (strcmp(url, "/v1/models") == 0 || strcmp(url, "/models") == 0)) {
                static const char *const names[] = {
                        "echo", "fixed-100", "stream-10", "status-429", "status-500", "status-400",
                        "hang", "garbage",   "truncated", "trickle",    "flaky-2",    "midstream-error",
                        "auth", "leak-key",  "nostream",  "gen-50"};
                json_t *data = json_array();
                for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
                        json_array_append_new(data, json_pack("{s:s, s:s, s:s}", "id", names[i], "object",
                                                              "model", "owned_by", "mock"));
                return reply(c, 200, "application/json",
                             dump(json_pack("{s:s, s:o}", "object", "list", "data", data)));
        }
        return reply_error(c, 404, "no such endpoint");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
        Upload *up = *con_cls;
        if (up) {
                free(up->buf);
                free(up);
                *con_cls = NULL;
        }
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
        if (toe != MHD_CONNECTION_NOTIFY_STARTED)
                return;
        pthread_mutex_lock(&stats_lock);
        stats_connections++;
        pthread_mutex_unlock(&stats_lock);
}

int main(int argc, char **argv) {
        unsigned long port = 0;
        struct sockaddr_in sa = {.sin_family = AF_INET};
        struct MHD_Daemon *d;
        sigset_t ss;
        int sig;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
                        port = strtoul(argv[++i], NULL, 10);
                        if (port > 65535) {
                                fprintf(stderr, "bad port\n");
                                return 2;
                        }
                } else {
                        fprintf(stderr, "usage: %s [--port N]\n", argv[0]);
                        return 2;
                }
        }

        /* Block the signals before threads exist, so only sigwait() sees them. */
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        pthread_sigmask(SIG_BLOCK, &ss, NULL);
        signal(SIGPIPE, SIG_IGN);

        sa.sin_port = htons((uint16_t) port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC,
                             0, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
                             MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
                             on_connection, NULL, MHD_OPTION_CONNECTION_LIMIT, 512, MHD_OPTION_END);
        if (!d) {
                fprintf(stderr, "mock-upstream: cannot start server\n");
                return 1;
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        printf("PORT %u\n", info ? (unsigned) info->port : 0);
        fflush(stdout);

        while (sigwait(&ss, &sig) != 0)
                ;
        atomic_store(&stopping, 1);
        MHD_stop_daemon(d);
        return 0;
}
