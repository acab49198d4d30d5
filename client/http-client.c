/* http-client.c — moactl's only door to the daemon: HTTP/1.1 over the Unix
 * socket with the libcurl easy interface. Owns the transfer (bounded
 * buffering, incremental SSE decoding of streamed answers) and turns every
 * way a call can fail into one message and one documented exit code. */
#include <curl/curl.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "moactl.h"
#include "sse-parser.h"

#define CONNECT_TIMEOUT_SEC 10L
/* One SSE line / event of the daemon's stream; a chat chunk is far smaller. */
#define STREAM_MAX_LINE (1024U * 1024U)
#define STREAM_MAX_EVENT (4U * 1024U * 1024U)

typedef struct Transfer {
        CURL *curl;
        curl_mime *mime; /* a multipart/form-data upload instead of a JSON body */
        Reply *reply;
        size_t cap;   /* allocated size of reply->body */
        int overflow; /* the reply passed MOACTL_MAX_RESPONSE */

        /* Streaming (fn != NULL). */
        StreamEventFn fn;
        void *userdata;
        SseParser *sse;
        int checked; /* decided from status and Content-Type whether this is a stream */
        int is_stream;
        int done;        /* saw "data: [DONE]" */
        int stop_code;   /* != OK: the event callback or the parser stopped the transfer */
        size_t streamed; /* stream bytes received */
} Transfer;

static void set_error(Reply *r, const char *fmt, ...) _printf_(2, 3);
static void set_error(Reply *r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(r->error, sizeof(r->error), fmt, ap);
        va_end(ap);
}

int ctl_global_init(void) {
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -ENOMEM;
}

void ctl_global_done(void) {
        curl_global_cleanup();
}

void reply_done(Reply *r) {
        if (!r)
                return;
        free(r->body);
        free(r->content_type);
        *r = (Reply){};
}

static int buffer_append(Transfer *t, const char *p, size_t n) {
        Reply *r = t->reply;

        if (n > MOACTL_MAX_RESPONSE - r->size) {
                t->overflow = 1;
                return -E2BIG;
        }
        if (r->size + n + 1 > t->cap) {
                size_t cap = MAX(t->cap * 2, (size_t) 4096);
                char *b;

                while (cap < r->size + n + 1)
                        cap *= 2;
                cap = MIN(cap, (size_t) MOACTL_MAX_RESPONSE + 1);
                b = realloc(r->body, cap);
                if (!b)
                        return -ENOMEM;
                r->body = b;
                t->cap = cap;
        }
        memcpy(r->body + r->size, p, n);
        r->size += n;
        r->body[r->size] = '\0';
        return 0;
}

static int on_sse_event(void *userdata, const SseEvent *ev) {
        Transfer *t = userdata;
        int r;

        if (t->done) /* nothing may follow the end marker; ignore it rather than guess */
                return 0;
        if (ev->done)
                t->done = 1;
        r = t->fn(t->userdata, ev->data, ev->data_len, ev->done, t->reply);
        if (r != MOACTL_EXIT_OK) {
                t->stop_code = r;
                return -ECANCELED;
        }
        return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        Transfer *t = userdata;
        size_t n = size * nmemb;
        int r;

        if (t->fn && !t->checked) {
                long status = 0;
                char *ct = NULL;

                (void) curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
                (void) curl_easy_getinfo(t->curl, CURLINFO_CONTENT_TYPE, &ct);
                t->is_stream = status == 200 && ct && strncasecmp(ct, "text/event-stream", 17) == 0;
                t->checked = 1;
        }

        if (!t->is_stream)
                return buffer_append(t, ptr, n) < 0 ? 0 : n;

        if (n > MOACTL_MAX_RESPONSE - t->streamed) {
                t->overflow = 1;
                return 0;
        }
        t->streamed += n;
        r = sse_parser_feed(t->sse, ptr, n);
        if (r < 0) {
                if (t->stop_code == MOACTL_EXIT_OK) {
                        t->stop_code = MOACTL_EXIT_PROTOCOL;
                        if (r == -E2BIG)
                                set_error(t->reply, "bad reply from moad: an event stream line over %u KiB",
                                          STREAM_MAX_LINE >> 10);
                        else
                                set_error(t->reply, "bad reply from moad: malformed event stream (%s)",
                                          strerror(-r));
                }
                return 0;
        }
        return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata) {
        Reply *r = userdata;
        size_t n = size * nitems;
        static const char name[] = "x-request-id:";
        size_t k = sizeof(name) - 1;

        if (n > k && strncasecmp(buf, name, k) == 0) {
                const char *v = buf + k;
                size_t len = n - k, i, o = 0;

                while (len > 0 && (*v == ' ' || *v == '\t'))
                        v++, len--;
                /* Keep it printable: it is echoed in error messages. */
                for (i = 0; i < len && o + 1 < sizeof(r->request_id); i++)
                        if (v[i] > 0x20 && v[i] < 0x7f)
                                r->request_id[o++] = v[i];
                r->request_id[o] = '\0';
        }
        return n;
}

static void describe_connect_error(const char *path, long os_errno, Reply *r) {
        int e = (int) os_errno;
        struct stat st;

        /* libcurl normally reports connect()'s errno; if it does not, look.
         * connect() says ECONNREFUSED for a file that is no socket too. */
        if (e == 0 || e == ECONNREFUSED) {
                if (stat(path, &st) < 0)
                        e = e ? e : errno;
                else if (!S_ISSOCK(st.st_mode))
                        e = ENOTSOCK;
                else
                        e = ECONNREFUSED;
        }

        switch (e) {
        case ENOENT:
                set_error(r, "moad is not running (no socket at %s)", path);
                break;
        case ECONNREFUSED:
                set_error(r, "moad is not running: connection refused on %s (stale socket?)", path);
                break;
        case EACCES:
        case EPERM:
                set_error(r, "permission denied on %s: are you in the moad group?", path);
                break;
        case EAGAIN:
                set_error(r, "moad is overloaded: the listen queue of %s is full", path);
                break;
        case ENOTSOCK:
                set_error(r, "cannot connect to %s: not a socket", path);
                break;
        default:
                set_error(r, "cannot connect to %s: %s", path, strerror(e));
        }
}

/* Turn an error status into the daemon's own message. */
static void describe_http_error(Reply *r) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        const char *msg = NULL, *type = NULL;
        int by_rules = 0;
        char id[sizeof(r->request_id) + 16] = "";

        if (r->request_id[0])
                snprintf(id, sizeof(id), " [request %s]", r->request_id);

        if (r->body)
                root = json_loadb(r->body, r->size, 0, NULL);
        if (json_is_object(root)) {
                json_t *err = json_object_get(root, "error");

                msg = json_str(err, "message", NULL);
                type = json_str(err, "type", NULL);
                /* Only the access rules' refusal gets the hint below, not
                 * e.g. a path outside jobs.ingest_roots. */
                by_rules = streq_ptr(json_str(err, "code", NULL), "forbidden");
        }
        if (msg)
                set_error(r, "moad returned HTTP %ld: %s%s%s%s%s%s", r->status, msg, type ? " (" : "",
                          type ? type : "", type ? ")" : "", id,
                          r->status == 403 && by_rules
                                  ? "\n(moad's access rules refused this user: ingest, delete and "
                                    "reload need root or access.admin, see moad.yaml(5))"
                                  : "");
        else
                set_error(r, "moad returned HTTP %ld without an error message%s", r->status, id);
}

/* Runs one transfer described by @t and returns a MOACTL_EXIT_* code. */
static int transfer_run(const Moactl *m, const char *method, const char *path, const char *body,
                        long timeout_sec, Transfer *t) {
        Reply *r = t->reply;
        _cleanup_free_ char *url = NULL;
        struct curl_slist *headers = NULL, *h;
        char errbuf[CURL_ERROR_SIZE] = "";
        long os_errno = 0;
        char *ct = NULL;
        CURLcode cc;
        int code = MOACTL_EXIT_OK;

        if (strlen(m->socket_path) >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
                set_error(r, "socket path too long: %s", m->socket_path);
                return MOACTL_EXIT_USAGE;
        }
        if (asprintf(&url, "http://localhost%s", path) < 0) {
                url = NULL;
                set_error(r, "out of memory");
                return MOACTL_EXIT_FAILED;
        }

        t->curl = curl_easy_init();
        if (!t->curl) {
                set_error(r, "cannot initialise libcurl");
                return MOACTL_EXIT_FAILED;
        }

        h = curl_slist_append(headers, t->fn ? "Accept: text/event-stream" : "Accept: application/json");
        if (h)
                headers = h;
        if (h && body) {
                h = curl_slist_append(headers, "Content-Type: application/json");
                if (h)
                        headers = h;
        }
        if (h) {
                /* No "Expect: 100-continue" dance for large ingest bodies. */
                h = curl_slist_append(headers, "Expect:");
                if (h)
                        headers = h;
        }
        if (!h) {
                curl_slist_free_all(headers);
                curl_easy_cleanup(t->curl);
                t->curl = NULL;
                set_error(r, "out of memory");
                return MOACTL_EXIT_FAILED;
        }

        (void) curl_easy_setopt(t->curl, CURLOPT_URL, url);
        (void) curl_easy_setopt(t->curl, CURLOPT_UNIX_SOCKET_PATH, m->socket_path);
        (void) curl_easy_setopt(t->curl, CURLOPT_PROTOCOLS_STR, "http");
        (void) curl_easy_setopt(t->curl, CURLOPT_NOSIGNAL, 1L);
        (void) curl_easy_setopt(t->curl, CURLOPT_ERRORBUFFER, errbuf);
        (void) curl_easy_setopt(t->curl, CURLOPT_USERAGENT, "moactl/" MOACTL_VERSION);
        (void) curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, headers);
        (void) curl_easy_setopt(t->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_SEC);
        (void) curl_easy_setopt(t->curl, CURLOPT_TIMEOUT, timeout_sec > 0 ? timeout_sec : 0L);
        (void) curl_easy_setopt(t->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) MOACTL_MAX_RESPONSE);
        (void) curl_easy_setopt(t->curl, CURLOPT_WRITEFUNCTION, on_write);
        (void) curl_easy_setopt(t->curl, CURLOPT_WRITEDATA, t);
        (void) curl_easy_setopt(t->curl, CURLOPT_HEADERFUNCTION, on_header);
        (void) curl_easy_setopt(t->curl, CURLOPT_HEADERDATA, r);
        if (t->mime)
                (void) curl_easy_setopt(t->curl, CURLOPT_MIMEPOST, t->mime);
        if (body) {
                (void) curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, body);
                (void) curl_easy_setopt(t->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(body));
        }
        if (!streq(method, body || t->mime ? "POST" : "GET"))
                (void) curl_easy_setopt(t->curl, CURLOPT_CUSTOMREQUEST, method);

        cc = curl_easy_perform(t->curl);

        (void) curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &r->status);
        (void) curl_easy_getinfo(t->curl, CURLINFO_OS_ERRNO, &os_errno);
        if (curl_easy_getinfo(t->curl, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
                r->content_type = strdup(ct);

        switch (cc) {
        case CURLE_OK:
                break;
        case CURLE_WRITE_ERROR:
                if (t->stop_code != MOACTL_EXIT_OK)
                        code = t->stop_code; /* the reason is in r->error already */
                else if (t->overflow) {
                        set_error(r, "bad reply from moad: larger than %u MiB", MOACTL_MAX_RESPONSE >> 20);
                        code = MOACTL_EXIT_PROTOCOL;
                } else {
                        set_error(r, "out of memory");
                        code = MOACTL_EXIT_FAILED;
                }
                break;
        case CURLE_FILESIZE_EXCEEDED:
                set_error(r, "bad reply from moad: larger than %u MiB", MOACTL_MAX_RESPONSE >> 20);
                code = MOACTL_EXIT_PROTOCOL;
                break;
        case CURLE_COULDNT_CONNECT:
                describe_connect_error(m->socket_path, os_errno, r);
                code = MOACTL_EXIT_CONNECT;
                break;
        case CURLE_OPERATION_TIMEDOUT:
                set_error(r, "timed out after %ld s waiting for moad (see --timeout)", timeout_sec);
                code = MOACTL_EXIT_TIMEOUT;
                break;
        case CURLE_GOT_NOTHING:
                set_error(r, "bad reply from moad: connection closed without a reply");
                code = MOACTL_EXIT_PROTOCOL;
                break;
        case CURLE_OUT_OF_MEMORY:
                set_error(r, "out of memory");
                code = MOACTL_EXIT_FAILED;
                break;
        default:
                set_error(r, "bad reply from moad: %s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
                code = MOACTL_EXIT_PROTOCOL;
        }

        curl_easy_cleanup(t->curl);
        t->curl = NULL;
        curl_slist_free_all(headers);
        return code;
}

/* The common verdict on a finished transfer's HTTP status. */
static int check_status(Reply *r) {
        if (r->status >= 200 && r->status < 300)
                return MOACTL_EXIT_OK;
        if (r->status >= 400 && r->status < 600) {
                describe_http_error(r);
                return MOACTL_EXIT_FAILED;
        }
        set_error(r, "bad reply from moad: unexpected HTTP status %ld", r->status);
        return MOACTL_EXIT_PROTOCOL;
}

int ctl_call(const Moactl *m, const char *method, const char *path, const char *body, long timeout_sec,
             Reply *reply) {
        Transfer t = {.reply = reply};
        int code;

        *reply = (Reply){};
        code = transfer_run(m, method, path, body, timeout_sec, &t);
        if (code != MOACTL_EXIT_OK)
                return code;
        return check_status(reply);
}

int ctl_upload(const Moactl *m, const char *path, const char *purpose, const char *filename,
               const char *data, size_t len, long timeout_sec, Reply *reply) {
        Transfer t = {.reply = reply};
        curl_mimepart *part;
        int code = MOACTL_EXIT_OK;

        *reply = (Reply){};
        t.mime = curl_mime_init(NULL);
        /* The easy handle is made later: parts are bound to it only at perform. */
        part = t.mime ? curl_mime_addpart(t.mime) : NULL;
        if (!part || curl_mime_name(part, "purpose") != CURLE_OK ||
            curl_mime_data(part, purpose, CURL_ZERO_TERMINATED) != CURLE_OK ||
            !(part = curl_mime_addpart(t.mime)) || curl_mime_name(part, "file") != CURLE_OK ||
            curl_mime_filename(part, filename) != CURLE_OK || curl_mime_data(part, data, len) != CURLE_OK ||
            curl_mime_type(part, "application/jsonl") != CURLE_OK) {
                set_error(reply, "out of memory");
                code = MOACTL_EXIT_FAILED;
        }
        if (code == MOACTL_EXIT_OK)
                code = transfer_run(m, "POST", path, NULL, timeout_sec, &t);
        curl_mime_free(t.mime);
        if (code != MOACTL_EXIT_OK)
                return code;
        return check_status(reply);
}

int ctl_stream(const Moactl *m, const char *path, const char *body, long timeout_sec, StreamEventFn fn,
               void *userdata, Reply *reply) {
        Transfer t = {.reply = reply, .fn = fn, .userdata = userdata};
        int code, r;

        *reply = (Reply){};
        r = sse_parser_new(STREAM_MAX_LINE, STREAM_MAX_EVENT, on_sse_event, &t, &t.sse);
        if (r < 0) {
                set_error(reply, "out of memory");
                return MOACTL_EXIT_FAILED;
        }

        code = transfer_run(m, "POST", path, body, timeout_sec, &t);
        if (code == MOACTL_EXIT_OK && t.is_stream) {
                r = sse_parser_finish(t.sse);
                if (t.stop_code != MOACTL_EXIT_OK)
                        code = t.stop_code;
                else if (r < 0) {
                        set_error(reply, "bad reply from moad: malformed event stream (%s)", strerror(-r));
                        code = MOACTL_EXIT_PROTOCOL;
                } else if (!t.done) {
                        set_error(reply, "bad reply from moad: the stream ended before [DONE]");
                        code = MOACTL_EXIT_PROTOCOL;
                }
        } else if (code == MOACTL_EXIT_OK) {
                code = check_status(reply);
                if (code == MOACTL_EXIT_OK) {
                        set_error(reply, "bad reply from moad: expected an event stream, got %s",
                                  reply->content_type ? reply->content_type : "no Content-Type");
                        code = MOACTL_EXIT_PROTOCOL;
                }
        }
        sse_parser_free(t.sse);
        return code;
}

int reply_json(Reply *reply, json_t **ret) {
        json_error_t err;
        json_t *root;

        root = reply->body ? json_loadb(reply->body, reply->size, 0, &err) : NULL;
        if (!root) {
                set_error(reply, "bad reply from moad: not JSON (%s)",
                          reply->body ? err.text : "empty body");
                return MOACTL_EXIT_PROTOCOL;
        }
        if (!json_is_object(root)) {
                json_decref(root);
                set_error(reply, "bad reply from moad: not a JSON object");
                return MOACTL_EXIT_PROTOCOL;
        }
        *ret = root;
        return MOACTL_EXIT_OK;
}

int ctl_call_json(const Moactl *m, const char *method, const char *path, const char *body, long timeout_sec,
                  Reply *reply, json_t **ret) {
        int code;

        code = ctl_call(m, method, path, body, timeout_sec, reply);
        if (code != MOACTL_EXIT_OK)
                return code;
        return reply_json(reply, ret);
}

int ctl_escape(const char *s, char **ret) {
        char *e, *d;

        if (strlen(s) > 4096)
                return -ENAMETOOLONG;
        e = curl_easy_escape(NULL, s, (int) strlen(s));
        if (!e)
                return -ENOMEM;
        /* Hand out malloc() memory, not curl's allocator's. */
        d = strdup(e);
        curl_free(e);
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

int ctl_fail(const Reply *reply, int code) {
        fputs("moactl: ", stderr);
        print_sanitized(stderr, reply->error, strlen(reply->error));
        fputc('\n', stderr);
        return code;
}
