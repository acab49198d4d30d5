/* provider-openai.c — the "openai" provider: POST {base_url}/chat/completions
 * on any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server,
 * Together, OpenAI), on libcurl multi driven by the daemon's sd-event loop
 * (curl-glue.c). Owns, per provider: the API key and request headers, the
 * concurrency slots with their FIFO wait queue, the circuit breaker; per
 * call: the request body, retries with backoff, response/stream parsing.
 *
 * Callbacks to the user (on_delta, on_done) only ever run from this file's
 * own sd-event sources, never from inside a libcurl callback and never from
 * inside provider_call_start(): so the user may cancel calls, start new ones
 * or free the provider from them. */
#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "curl-glue.h"
#include "log.h"
#include "provider.h"
#include "sse-parser.h"
#include "strbuf.h"
#include "json-write.h"
#include "util.h"

#define OA_MAX_RESPONSE (8U * 1024U * 1024U) /* a whole non-stream body, and streamed text */
#define OA_MAX_ERROR_BODY (64U * 1024U)      /* kept of an error status body */
#define OA_MAX_KEY 4096U
#define OA_MAX_RETRY_AFTER_S 86400U
#define OA_MAX_MESSAGE 512U

#define OA_DEFAULT_CONNECT_TIMEOUT_MS 5000U
#define OA_DEFAULT_TIMEOUT_MS 60000U
#define OA_DEFAULT_RETRY_BASE_MS 250U
#define OA_DEFAULT_RETRY_MAX_MS 8000U
#define OA_DEFAULT_MAX_CONCURRENCY 16U
#define OA_DEFAULT_MAX_QUEUE 256U
#define OA_DEFAULT_BREAKER_FAILURES 5U
#define OA_DEFAULT_BREAKER_COOLDOWN_MS 30000U

typedef enum CallState {
        CALL_QUEUED,    /* waiting for a concurrency slot */
        CALL_RUNNING,   /* an HTTP attempt is in flight */
        CALL_BACKOFF,   /* waiting before the next attempt */
        CALL_FINISHING, /* result known, on_done scheduled */
} CallState;

typedef struct OpenAIProvider OpenAIProvider;

struct ProviderCall {
        OpenAIProvider *p;
        ProviderCall *prev, *next;   /* every live call of the provider */
        ProviderCall *qprev, *qnext; /* the wait queue */
        unsigned refs;
        CallState state;
        int queued, holds_slot, is_probe, cancelled, finished;

        ProviderCallbacks cb;
        void *userdata;
        char *request_id;
        char *body;
        int stream;
        uint64_t deadline;

        CURL *easy;
        SseParser *sse;
        sd_event_source *retry_timer;
        sd_event_source *queue_timer; /* the deadline, while queued */
        sd_event_source *delta_defer;
        sd_event_source *done_defer;

        /* Per attempt. */
        long http_status;
        int status_known;
        StrBuf resp;             /* non-stream body, or the body of an error status */
        uint64_t retry_after_ms; /* from Retry-After, when has_retry_after */
        int has_retry_after;
        int saw_done;
        int json_stream;      /* asked to stream, but the reply is plain JSON */
        int deadline_limited; /* the attempt's timeout was cut short by the deadline */
        int abort_error;      /* why a libcurl callback stopped the transfer */
        int abort_retryable;
        char abort_message[OA_MAX_MESSAGE];
        char errbuf[CURL_ERROR_SIZE];

        /* Across attempts. */
        StrBuf content;   /* the answer; streamed text accumulates here */
        size_t delivered; /* bytes of content already passed to on_delta */
        int any_delta;    /* some streamed text was parsed: never retry after this */
        char *finish_reason;
        ProviderUsage usage;
        unsigned attempts;
        int error;
        char error_message[OA_MAX_MESSAGE];
};

struct OpenAIProvider {
        Provider base; /* first member: the Provider interface */
        sd_event *event;
        CurlGlue *glue;
        char *url;
        char *model;
        double temperature;
        int64_t max_tokens;
        char *api_key; /* never logged, redacted from every error message */
        struct curl_slist *headers;

        uint64_t connect_timeout_ms, timeout_ms, retry_base_ms, retry_max_ms, breaker_cooldown_ms;
        unsigned max_retries, max_concurrency, max_queue, breaker_failures;

        ProviderCall *calls;
        ProviderCall *qhead, *qtail;
        unsigned n_active, n_queued;
        int freeing;

        unsigned consecutive_failures;
        int breaker_open;
        uint64_t open_until;
        int probe_inflight;

        uint64_t rng;
};

static void call_finish(ProviderCall *c);
static void call_schedule_done(ProviderCall *c);
static int call_attempt(ProviderCall *c);
static void on_transfer_done(CurlGlue *g, CURL *easy, CURLcode cc, void *userdata);

/* ---- small helpers ---------------------------------------------------- */

static uint64_t oa_now(OpenAIProvider *p) {
        uint64_t t;

        if (sd_event_now(p->event, CLOCK_MONOTONIC, &t) < 0)
                return now_usec();
        return t;
}

/* xorshift64*: jitter only, no security role. */
static uint64_t oa_random(OpenAIProvider *p) {
        p->rng ^= p->rng >> 12;
        p->rng ^= p->rng << 25;
        p->rng ^= p->rng >> 27;
        return p->rng * 2685821657736338717ULL;
}

/* Replace every occurrence of the API key in @s (in place, may shorten). */
static void oa_redact(const OpenAIProvider *p, char *s) {
        static const char mark[] = "[redacted]";
        size_t klen = p->api_key ? strlen(p->api_key) : 0;
        char *cur = s, *hit;

        if (klen == 0)
                return;
        /* Search on after each replacement, so a key that looks like the
         * mark (or like its own replacement) cannot loop. */
        while ((hit = strstr(cur, p->api_key))) {
                if (klen >= sizeof mark - 1) {
                        memcpy(hit, mark, sizeof mark - 1);
                        memmove(hit + sizeof mark - 1, hit + klen, strlen(hit + klen) + 1);
                        cur = hit + sizeof mark - 1;
                } else {
                        /* A key shorter than the mark: blank it out instead. */
                        memset(hit, '*', klen);
                        cur = hit + klen;
                }
        }
}

static void call_set_error(ProviderCall *c, int error, const char *fmt, ...) _printf_(3, 4);
static void call_set_error(ProviderCall *c, int error, const char *fmt, ...) {
        va_list ap;

        c->error = error;
        va_start(ap, fmt);
        vsnprintf(c->error_message, sizeof c->error_message, fmt, ap);
        va_end(ap);
        oa_redact(c->p, c->error_message);
}

/* The message of an error object: {"error": {"message": ...}},
 * {"error": "..."} or {"object": "error", "message": ...}; NULL if @j is
 * not one. Borrowed from @j. */
static const char *oa_error_text(json_t *j) {
        json_t *e = json_object_get(j, "error");

        if (json_is_string(e))
                return json_string_value(e);
        if (json_is_object(e)) {
                const char *m = json_string_value(json_object_get(e, "message"));
                return m ? m : "unknown error";
        }
        /* vLLM's flavour: {"object": "error", "message": ...}. */
        if (streq_ptr(json_string_value(json_object_get(j, "object")), "error")) {
                const char *m = json_string_value(json_object_get(j, "message"));
                return m ? m : "unknown error";
        }
        return NULL;
}

static void oa_parse_usage(json_t *u, ProviderUsage *usage) {
        json_t *v;

        if (!json_is_object(u))
                return;
        v = json_object_get(u, "prompt_tokens");
        if (json_is_integer(v) && json_integer_value(v) >= 0)
                usage->prompt_tokens = (uint64_t) json_integer_value(v);
        v = json_object_get(u, "completion_tokens");
        if (json_is_integer(v) && json_integer_value(v) >= 0)
                usage->completion_tokens = (uint64_t) json_integer_value(v);
}

static void call_set_finish_reason(ProviderCall *c, json_t *choice) {
        const char *fr = json_string_value(json_object_get(choice, "finish_reason"));

        if (!fr)
                return;
        free(c->finish_reason);
        c->finish_reason = strndup(fr, 64);
}

/* ---- circuit breaker -------------------------------------------------- */

/* May @c make its first attempt? Closed: yes. Open: no until the cooldown
 * passed; then exactly one call (the probe) goes through, half-open. */
static int breaker_admit(OpenAIProvider *p, ProviderCall *c) {
        if (!p->breaker_open)
                return 1;
        if (oa_now(p) < p->open_until || p->probe_inflight)
                return 0;
        p->probe_inflight = 1;
        c->is_probe = 1;
        return 1;
}

/* Upstream trouble (as opposed to a bad request, which proves the upstream
 * answers): what counts towards opening the circuit. */
static int call_failed_upstream(const ProviderCall *c) {
        switch (c->error) {
        case 0:
                return 0;
        case -EIO:
                return c->http_status == 429 || c->http_status >= 500 || c->http_status < 400;
        case -ETIMEDOUT:
                /* The caller's deadline ran out, not the provider's timeout:
                 * says more about the deadline than about the upstream. */
                return !c->deadline_limited;
        default:
                return 1;
        }
}

static void breaker_record(OpenAIProvider *p, ProviderCall *c) {
        int failed = call_failed_upstream(c);

        if (c->is_probe) {
                p->probe_inflight = 0;
                c->is_probe = 0;
        }
        if (!failed) {
                if (p->breaker_open)
                        log_info("provider %s: circuit closed", p->base.name);
                p->consecutive_failures = 0;
                p->breaker_open = 0;
                return;
        }
        p->consecutive_failures++;
        if (p->breaker_open || p->consecutive_failures >= p->breaker_failures) {
                if (!p->breaker_open)
                        log_warning("provider %s: %u consecutive failures, circuit open for %" PRIu64 " ms",
                                    p->base.name, p->consecutive_failures, p->breaker_cooldown_ms);
                p->breaker_open = 1;
                p->open_until = oa_now(p) + p->breaker_cooldown_ms * USEC_PER_MSEC;
        }
}

/* ---- call lifetime ---------------------------------------------------- */

static void call_free(ProviderCall *c) {
        sd_event_source_disable_unref(c->retry_timer);
        sd_event_source_disable_unref(c->queue_timer);
        sd_event_source_disable_unref(c->delta_defer);
        sd_event_source_disable_unref(c->done_defer);
        if (c->easy)
                curl_easy_cleanup(c->easy);
        sse_parser_free(c->sse);
        strbuf_done(&c->resp);
        strbuf_done(&c->content);
        free(c->finish_reason);
        free(c->request_id);
        free(c->body);
        free(c);
}

static void call_unref(ProviderCall *c) {
        if (c && --c->refs == 0)
                call_free(c);
}

static void queue_remove(OpenAIProvider *p, ProviderCall *c) {
        if (!c->queued)
                return;
        if (c->qprev)
                c->qprev->qnext = c->qnext;
        else
                p->qhead = c->qnext;
        if (c->qnext)
                c->qnext->qprev = c->qprev;
        else
                p->qtail = c->qprev;
        c->qprev = c->qnext = NULL;
        c->queued = 0;
        p->n_queued--;
}

static void queue_push(OpenAIProvider *p, ProviderCall *c) {
        c->qprev = p->qtail;
        c->qnext = NULL;
        if (p->qtail)
                p->qtail->qnext = c;
        else
                p->qhead = c;
        p->qtail = c;
        c->queued = 1;
        p->n_queued++;
}

/* Take a slot (if the breaker admits) and make the first attempt. Any
 * failure is reported later through on_done. */
static void call_run(ProviderCall *c) {
        OpenAIProvider *p = c->p;
        int r;

        if (!breaker_admit(p, c)) {
                call_set_error(c, -EBUSY, "circuit open");
                call_schedule_done(c);
                return;
        }
        c->holds_slot = 1;
        p->n_active++;
        r = call_attempt(c);
        if (r < 0) {
                if (c->error == 0)
                        call_set_error(c, r, "cannot start request: %s", strerror(-r));
                call_schedule_done(c);
        }
}

static void provider_dequeue(OpenAIProvider *p) {
        while (!p->freeing && p->qhead && p->n_active < p->max_concurrency) {
                ProviderCall *c = p->qhead;
                queue_remove(p, c);
                (void) sd_event_source_set_enabled(c->queue_timer, SD_EVENT_OFF);
                call_run(c);
        }
}

/* Unhook @c from the provider: transfer, timers, slot, queue, list. Frees
 * the slot for the next queued call. @c itself stays (see call_unref). */
static void call_detach(ProviderCall *c) {
        OpenAIProvider *p = c->p;

        if (!p)
                return;
        if (c->easy) {
                curl_glue_remove(p->glue, c->easy);
                curl_easy_cleanup(c->easy);
                c->easy = NULL;
        }
        (void) sd_event_source_set_enabled(c->retry_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->queue_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->delta_defer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->done_defer, SD_EVENT_OFF);
        queue_remove(p, c);
        if (c->is_probe) {
                p->probe_inflight = 0;
                c->is_probe = 0;
        }
        if (c->prev)
                c->prev->next = c->next;
        else
                p->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        c->p = NULL;
        if (c->holds_slot) {
                c->holds_slot = 0;
                p->n_active--;
                provider_dequeue(p);
        }
}

/* Hand streamed text not yet delivered to on_delta. Returns -ECANCELED if
 * the user cancelled @c from on_delta (then @c is gone). */
static int call_flush(ProviderCall *c) {
        size_t from = MIN(c->delivered, c->content.len), n = c->content.len - from;

        c->delivered = c->content.len;
        if (n == 0 || !c->cb.on_delta)
                return 0;
        c->refs++;
        c->cb.on_delta(c->userdata, c->content.p + from, n);
        if (c->cancelled) {
                call_unref(c);
                return -ECANCELED;
        }
        c->refs--;
        return 0;
}

static int on_delta_defer(sd_event_source *s, void *userdata) {
        (void) call_flush(userdata);
        return 0;
}

static int on_done_defer(sd_event_source *s, void *userdata) {
        call_finish(userdata);
        return 0;
}

static int call_enable_defer(ProviderCall *c, sd_event_source **s, sd_event_handler_t h, const char *desc) {
        int r;

        if (!*s) {
                r = sd_event_add_defer(c->p->event, s, h, c);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(*s, desc);
        }
        return sd_event_source_set_enabled(*s, SD_EVENT_ONESHOT);
}

static void call_schedule_done(ProviderCall *c) {
        int r;

        c->state = CALL_FINISHING;
        r = call_enable_defer(c, &c->done_defer, on_done_defer, "openai-call-done");
        if (r < 0) /* cannot even schedule: nothing sane left but logging it */
                log_error_errno(r, "provider %s: cannot schedule completion", c->p->base.name);
}

/* Deliver the result: remaining deltas, bookkeeping, then on_done, last. */
static void call_finish(ProviderCall *c) {
        OpenAIProvider *p = c->p;

        if (call_flush(c) < 0)
                return;
        if (c->attempts > 0)
                breaker_record(p, c);

        if (c->error < 0)
                log_full(LOG_LEVEL_DEBUG, 0, c->request_id,
                         "provider %s: call failed after %u attempt(s): %s", p->base.name, c->attempts,
                         c->error_message);

        ProviderResult res = {
                .error = c->error,
                .http_status = c->http_status > 0 ? (unsigned) c->http_status : 0,
                .content = c->content.p ? c->content.p : "",
                .finish_reason = c->finish_reason,
                .error_message = c->error < 0 ? c->error_message : NULL,
                .usage = c->usage,
                .attempts = c->attempts,
        };

        /* Unhook first: on_done may start calls or free the provider. */
        call_detach(c);
        c->finished = 1;
        c->cb.on_done(c->userdata, &res);
        call_unref(c);
}

/* ---- libcurl callbacks (no user code runs in here) --------------------- */

static void call_abort(ProviderCall *c, int error, int retryable, const char *fmt, ...) _printf_(4, 5);
static void call_abort(ProviderCall *c, int error, int retryable, const char *fmt, ...) {
        va_list ap;

        if (c->abort_error < 0)
                return;
        c->abort_error = error;
        c->abort_retryable = retryable;
        va_start(ap, fmt);
        vsnprintf(c->abort_message, sizeof c->abort_message, fmt, ap);
        va_end(ap);
}

static int on_sse_event(void *userdata, const SseEvent *ev) {
        ProviderCall *c = userdata;
        json_error_t jerr;
        json_t *j, *choice;
        const char *text, *etext;
        int r;

        if (c->saw_done)
                return 0;
        if (ev->done) {
                c->saw_done = 1;
                return 0;
        }
        j = json_loadb(ev->data, ev->data_len, 0, &jerr);
        if (!j || !json_is_object(j)) {
                json_decref(j);
                call_abort(c, -EPROTO, 0, "invalid JSON in event stream");
                return -EPROTO;
        }
        etext = oa_error_text(j);
        if (etext) {
                /* Retried like a 5xx, but only if nothing was streamed yet. */
                call_abort(c, -EIO, 1, "upstream error in stream: %.300s", etext);
                json_decref(j);
                return -EIO;
        }
        choice = json_array_get(json_object_get(j, "choices"), 0);
        text = json_string_value(json_object_get(json_object_get(choice, "delta"), "content"));
        if (text && *text) {
                size_t n = json_string_length(json_object_get(json_object_get(choice, "delta"), "content"));
                r = strbuf_append(&c->content, text, n, OA_MAX_RESPONSE);
                if (r < 0) {
                        json_decref(j);
                        call_abort(c, -EPROTO, 0, "streamed answer larger than %u bytes", OA_MAX_RESPONSE);
                        return r;
                }
                c->any_delta = 1;
                if (c->cb.on_delta)
                        (void) call_enable_defer(c, &c->delta_defer, on_delta_defer, "openai-call-delta");
        }
        call_set_finish_reason(c, choice);
        oa_parse_usage(json_object_get(j, "usage"), &c->usage);
        json_decref(j);
        return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        ProviderCall *c = userdata;
        size_t n = size * nmemb;
        int r;

        if (!c->status_known) {
                const char *type = NULL;
                (void) curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->http_status);
                (void) curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &type);
                /* Some servers and proxies ignore "stream": read their JSON as is. */
                c->json_stream = c->stream && type && strncasecmp(type, "application/json", 16) == 0;
                c->status_known = 1;
        }
        if (c->http_status < 200 || c->http_status >= 300) {
                /* Keep the start of an error body for its message. */
                size_t room = OA_MAX_ERROR_BODY - MIN(c->resp.len, (size_t) OA_MAX_ERROR_BODY);
                if (room > 0 && strbuf_append(&c->resp, ptr, MIN(n, room), OA_MAX_ERROR_BODY) < 0)
                        return 0;
                return n;
        }
        if (c->stream && !c->json_stream) {
                r = sse_parser_feed(c->sse, ptr, n);
                if (r < 0) {
                        call_abort(c, -EPROTO, 0, "bad event stream: %s", strerror(-r));
                        return 0;
                }
                return n;
        }
        if (strbuf_append(&c->resp, ptr, n, OA_MAX_RESPONSE) < 0) {
                call_abort(c, -EPROTO, 0, "response larger than %u bytes", OA_MAX_RESPONSE);
                return 0;
        }
        return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata) {
        ProviderCall *c = userdata;
        size_t n = size * nitems;

        if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
                /* A new response (e.g. after "100 Continue"): forget the last one's. */
                c->has_retry_after = 0;
                c->status_known = 0;
        } else if (n > 12 && strncasecmp(buf, "Retry-After:", 12) == 0) {
                /* Seconds only; an HTTP-date is ignored (backoff applies). */
                unsigned long v = 0;
                size_t i = 12, digits = 0;
                while (i < n && (buf[i] == ' ' || buf[i] == '\t'))
                        i++;
                while (i < n && buf[i] >= '0' && buf[i] <= '9' && digits < 9) {
                        v = v * 10 + (unsigned long) (buf[i++] - '0');
                        digits++;
                }
                if (digits > 0) {
                        c->retry_after_ms = MIN(v, (unsigned long) OA_MAX_RETRY_AFTER_S) * 1000ULL;
                        c->has_retry_after = 1;
                }
        }
        return n;
}

/* ---- attempts and retries --------------------------------------------- */

static int call_attempt(ProviderCall *c) {
        OpenAIProvider *p = c->p;
        uint64_t now = oa_now(p), timeout_ms = p->timeout_ms;
        CURL *e;
        int r;

        if (c->deadline > 0) {
                if (now >= c->deadline) {
                        c->deadline_limited = 1;
                        call_set_error(c, -ETIMEDOUT, "deadline passed before the request could be sent");
                        return -ETIMEDOUT;
                }
                timeout_ms = MIN(timeout_ms, (c->deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC);
        }
        c->deadline_limited = timeout_ms < p->timeout_ms;

        c->http_status = 0;
        c->status_known = 0;
        c->resp.len = 0;
        c->has_retry_after = 0;
        c->saw_done = 0;
        c->json_stream = 0;
        c->abort_error = 0;
        c->abort_message[0] = 0;
        c->errbuf[0] = 0;
        if (c->stream) {
                if (!c->sse) {
                        r = sse_parser_new(0, OA_MAX_RESPONSE, on_sse_event, c, &c->sse);
                        if (r < 0)
                                return r;
                } else
                        sse_parser_reset(c->sse);
        }

        /* A fresh easy handle per attempt; connections are reused through
         * the multi handle's connection cache. */
        e = curl_easy_init();
        if (!e)
                return -ENOMEM;
        if (curl_easy_setopt(e, CURLOPT_URL, p->url) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->headers) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(c->body)) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEDATA, c) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HEADERDATA, c) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) MIN(p->connect_timeout_ms, timeout_ms)) !=
                    CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) timeout_ms) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_USERAGENT,
                             "moad/"
                             "0.1") != CURLE_OK) {
                curl_easy_cleanup(e);
                return -EIO;
        }
        c->easy = e;
        r = curl_glue_add(p->glue, e, on_transfer_done, c);
        if (r < 0) {
                c->easy = NULL;
                curl_easy_cleanup(e);
                return r;
        }
        c->attempts++;
        c->state = CALL_RUNNING;
        return 0;
}

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ProviderCall *c = userdata;
        int r;

        r = call_attempt(c);
        if (r < 0) {
                if (c->error == 0)
                        call_set_error(c, r, "cannot start request: %s", strerror(-r));
                call_finish(c);
        }
        return 0;
}

/* Exponential backoff with full jitter: uniform in [0, min(max, base*2^k)],
 * but at least Retry-After (itself capped by retry_max_ms). */
static uint64_t call_backoff_ms(OpenAIProvider *p, ProviderCall *c) {
        unsigned k = MIN(c->attempts > 0 ? c->attempts - 1 : 0, 20U);
        uint64_t ceiling = MIN(p->retry_max_ms, p->retry_base_ms << k);
        uint64_t d = oa_random(p) % (ceiling + 1);

        if (c->has_retry_after)
                d = MAX(d, MIN(c->retry_after_ms, p->retry_max_ms));
        return d;
}

/* Classify the finished attempt into c->error (+ message). Returns whether
 * the failure is worth another attempt. */
static int call_classify(ProviderCall *c, CURLcode cc) {
        long st = c->http_status;
        json_error_t jerr;
        json_t *j;

        if (cc == CURLE_WRITE_ERROR && c->abort_error < 0) {
                call_set_error(c, c->abort_error, "%s", c->abort_message);
                return c->abort_retryable;
        }
        if (cc != CURLE_OK) {
                const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
                int streamed = c->stream && st >= 200 && st < 300 && c->sse && sse_parser_events(c->sse) > 0;

                switch (cc) {
                case CURLE_OPERATION_TIMEDOUT:
                        call_set_error(c, -ETIMEDOUT, "upstream timed out: %s", why);
                        return 1;
                case CURLE_COULDNT_CONNECT:
                        call_set_error(c, -ECONNREFUSED, "cannot connect to upstream: %s", why);
                        return 1;
                case CURLE_COULDNT_RESOLVE_HOST:
                case CURLE_COULDNT_RESOLVE_PROXY:
                        call_set_error(c, -EHOSTUNREACH, "cannot resolve upstream: %s", why);
                        return 1;
                case CURLE_GOT_NOTHING:
                case CURLE_SEND_ERROR:
                case CURLE_RECV_ERROR:
                case CURLE_PARTIAL_FILE:
                        if (streamed) {
                                call_set_error(c, -EPROTO, "stream truncated: %s", why);
                                return 1;
                        }
                        call_set_error(c, -ECONNRESET, "upstream connection failed: %s", why);
                        return 1;
                default:
                        call_set_error(c, -EIO, "upstream request failed: %s", why);
                        return 0;
                }
        }

        if (st < 200 || st >= 300) {
                const char *m = NULL;
                j = c->resp.len > 0 ? json_loadb(c->resp.p, c->resp.len, 0, &jerr) : NULL;
                if (j)
                        m = oa_error_text(j);
                call_set_error(c, -EIO, "upstream HTTP %ld%s%.300s", st, m ? ": " : "", m ? m : "");
                json_decref(j);
                return st == 429 || st >= 500;
        }

        if (c->stream && !c->json_stream) {
                int r = sse_parser_finish(c->sse);
                if (r < 0 && c->abort_error < 0) {
                        call_set_error(c, c->abort_error, "%s", c->abort_message);
                        return c->abort_retryable;
                }
                if (!c->saw_done) {
                        call_set_error(c, -EPROTO, "stream ended before [DONE]");
                        return 1;
                }
                return 0;
        }

        j = json_loadb(c->resp.p ? c->resp.p : "", c->resp.len, 0, &jerr);
        if (!j || !json_is_object(j)) {
                json_decref(j);
                call_set_error(c, -EPROTO, "upstream reply is not a JSON object");
                return 0;
        }
        const char *etext = oa_error_text(j);
        if (etext) {
                call_set_error(c, -EIO, "upstream error: %.300s", etext);
                json_decref(j);
                return 1;
        }
        json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
        json_t *content = json_object_get(json_object_get(choice, "message"), "content");
        if (!json_is_object(choice) || !(json_is_string(content) || json_is_null(content))) {
                json_decref(j);
                call_set_error(c, -EPROTO, "upstream reply has no choices[0].message.content");
                return 0;
        }
        c->content.len = 0;
        if (json_is_string(content) && strbuf_append(&c->content, json_string_value(content),
                                                     json_string_length(content), OA_MAX_RESPONSE) < 0) {
                json_decref(j);
                call_set_error(c, -ENOMEM, "out of memory");
                return 0;
        }
        /* Not streamed: a JSON reply to a stream request is delivered
         * through on_delta in one piece, otherwise nothing to deliver. */
        c->delivered = c->json_stream ? 0 : c->content.len;
        call_set_finish_reason(c, choice);
        oa_parse_usage(json_object_get(j, "usage"), &c->usage);
        json_decref(j);
        return 0;
}

static void on_transfer_done(CurlGlue *g, CURL *easy, CURLcode cc, void *userdata) {
        ProviderCall *c = userdata;
        OpenAIProvider *p = c->p;
        int retryable;

        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &c->http_status);
        c->error = 0;
        c->error_message[0] = 0;
        retryable = call_classify(c, cc);
        curl_easy_cleanup(easy);
        c->easy = NULL;

        /* A retry is never made once streamed text was handed out (or is
         * about to be): the caller already forwarded it, and a second answer
         * would be appended to the first. The partial answer stays in
         * content with the error. */
        if (c->error < 0 && retryable && !c->any_delta && c->attempts <= p->max_retries) {
                uint64_t delay = call_backoff_ms(p, c), now = oa_now(p);
                uint64_t at = now + delay * USEC_PER_MSEC;

                if (c->deadline == 0 || at < c->deadline) {
                        log_full(LOG_LEVEL_DEBUG, 0, c->request_id,
                                 "provider %s: attempt %u failed (%s), retrying in %" PRIu64 " ms",
                                 p->base.name, c->attempts, c->error_message, delay);
                        if (!c->retry_timer) {
                                if (sd_event_add_time(p->event, &c->retry_timer, CLOCK_MONOTONIC, at, 1,
                                                      on_retry_timer, c) < 0)
                                        goto finish;
                                (void) sd_event_source_set_description(c->retry_timer, "openai-call-retry");
                        } else if (sd_event_source_set_time(c->retry_timer, at) < 0)
                                goto finish;
                        if (sd_event_source_set_enabled(c->retry_timer, SD_EVENT_ONESHOT) < 0)
                                goto finish;
                        c->error = 0;
                        c->error_message[0] = 0;
                        c->state = CALL_BACKOFF;
                        return;
                }
        }
finish:
        /* Deferred, so on_done runs outside the glue's drain loop (it may
         * free the provider and with it the glue). */
        call_schedule_done(c);
}

/* ---- the Provider interface ------------------------------------------- */

static char *oa_build_body(OpenAIProvider *p, const ProviderRequest *req) {
        const char *model = req->model ? req->model : p->model;
        double temperature = req->temperature >= 0 ? req->temperature : p->temperature;
        int64_t max_tokens = req->max_tokens > 0 ? req->max_tokens : p->max_tokens;
        json_t *o = json_object();
        char *s = NULL;

        if (!o)
                return NULL;
        if ((model && json_object_set_new(o, "model", json_string(model)) < 0) ||
            json_object_set(o, "messages", req->messages) < 0 ||
            json_object_set_new(o, "stream", json_boolean(req->stream)) < 0 ||
            (req->stream &&
             json_object_set_new(o, "stream_options", json_pack("{s:b}", "include_usage", 1)) < 0) ||
            (temperature >= 0 && json_object_set_new(o, "temperature", json_real(temperature)) < 0) ||
            (max_tokens > 0 && json_object_set_new(o, "max_tokens", json_integer(max_tokens)) < 0))
                goto out;
        /* the same text as json_dumps(), without its per-character copy of
         * the prompt (13% of a proxied request's instructions) */
        s = json_write_compact(o, NULL);
out:
        json_decref(o);
        return s;
}

static int on_queue_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ProviderCall *c = userdata;

        queue_remove(c->p, c);
        c->deadline_limited = 1;
        call_set_error(c, -ETIMEDOUT, "deadline passed while waiting for a free upstream slot");
        call_finish(c);
        return 0;
}

static int oa_call_start(Provider *base, const ProviderRequest *req, const ProviderCallbacks *cb,
                         void *userdata, ProviderCall **ret) {
        OpenAIProvider *p = (OpenAIProvider *) base;
        ProviderCall *c;

        if (!req || !cb || !cb->on_done || !ret || !json_is_array(req->messages))
                return -EINVAL;
        if (p->n_active >= p->max_concurrency && p->n_queued >= p->max_queue)
                return -EBUSY;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->refs = 1;
        c->p = p;
        c->cb = *cb;
        c->userdata = userdata;
        c->stream = !!req->stream;
        c->deadline = req->deadline_usec;
        c->body = oa_build_body(p, req);
        if (req->request_id)
                c->request_id = strndup(req->request_id, 128);
        if (!c->body || (req->request_id && !c->request_id)) {
                call_free(c);
                return -ENOMEM;
        }

        c->next = p->calls;
        if (p->calls)
                p->calls->prev = c;
        p->calls = c;

        if (p->n_active < p->max_concurrency)
                call_run(c);
        else {
                if (c->deadline > 0) {
                        int r = sd_event_add_time(p->event, &c->queue_timer, CLOCK_MONOTONIC, c->deadline, 1,
                                                  on_queue_timer, c);
                        if (r < 0) {
                                call_detach(c);
                                call_free(c);
                                return r;
                        }
                        (void) sd_event_source_set_description(c->queue_timer, "openai-call-queued");
                }
                c->state = CALL_QUEUED;
                queue_push(p, c);
        }
        *ret = c;
        return 0;
}

static void oa_call_cancel(ProviderCall *c) {
        if (!c || c->finished || c->cancelled)
                return;
        c->cancelled = 1;
        call_detach(c);
        call_unref(c);
}

static void oa_free(Provider *base) {
        OpenAIProvider *p = (OpenAIProvider *) base;

        if (!p)
                return;
        p->freeing = 1;
        while (p->calls)
                oa_call_cancel(p->calls);
        curl_glue_free(p->glue);
        for (struct curl_slist *l = p->headers; l; l = l->next)
                explicit_bzero(l->data, strlen(l->data));
        curl_slist_free_all(p->headers);
        if (p->api_key) {
                explicit_bzero(p->api_key, strlen(p->api_key));
                free(p->api_key);
        }
        sd_event_unref(p->event);
        free(p->url);
        free(p->model);
        free(p->base.name);
        free(p);
}

static const ProviderOps openai_ops = {
        .type = "openai",
        .call_start = oa_call_start,
        .call_cancel = oa_call_cancel,
        .free = oa_free,
};

/* The key, trimmed; control characters would let it inject headers. */
static int oa_key_check(char *k) {
        size_t n = strlen(k);

        while (n > 0 && (k[n - 1] == '\n' || k[n - 1] == '\r' || k[n - 1] == ' ' || k[n - 1] == '\t'))
                k[--n] = 0;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) k[i] < 0x20 || k[i] == 0x7f)
                        return -EINVAL;
        return 0;
}

static int oa_read_key(const ProviderConfig *cfg, char **ret) {
        char *k = NULL;
        int r;

        if (!isempty(cfg->api_key_file)) {
                _cleanup_close_ int fd = open(cfg->api_key_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                struct stat st;
                ssize_t n;

                if (fd < 0)
                        return log_error_errno(-errno, "provider %s: cannot open api_key_file %s", cfg->name,
                                               cfg->api_key_file);
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t) OA_MAX_KEY)
                        return log_error_errno(
                                -EINVAL,
                                "provider %s: api_key_file %s is not a regular file of at most %u bytes",
                                cfg->name, cfg->api_key_file, OA_MAX_KEY);
                k = calloc(1, OA_MAX_KEY + 1);
                if (!k)
                        return -ENOMEM;
                n = read(fd, k, OA_MAX_KEY);
                if (n < 0) {
                        r = -errno;
                        free(k);
                        return log_error_errno(r, "provider %s: cannot read api_key_file %s", cfg->name,
                                               cfg->api_key_file);
                }
        } else if (!isempty(cfg->api_key_env)) {
                const char *v = getenv(cfg->api_key_env);
                if (!v) {
                        *ret = NULL;
                        log_warning("provider %s: environment variable %s is not set, sending no API key",
                                    cfg->name, cfg->api_key_env);
                        return 0;
                }
                if (strlen(v) > OA_MAX_KEY)
                        return log_error_errno(-EINVAL, "provider %s: API key in %s is too long", cfg->name,
                                               cfg->api_key_env);
                k = strdup(v);
                if (!k)
                        return -ENOMEM;
        } else {
                *ret = NULL;
                return 0;
        }

        if (oa_key_check(k) < 0) {
                explicit_bzero(k, strlen(k));
                free(k);
                return log_error_errno(-EINVAL, "provider %s: API key contains control characters",
                                       cfg->name);
        }
        if (!*k) {
                free(k);
                k = NULL;
        }
        *ret = k;
        return 0;
}

static int oa_header_ok(const char *s) {
        for (; *s; s++)
                if (*s == '\r' || *s == '\n')
                        return 0;
        return 1;
}

static int oa_add_header(struct curl_slist **l, const char *fmt, ...) _printf_(2, 3);
static int oa_add_header(struct curl_slist **l, const char *fmt, ...) {
        struct curl_slist *n;
        char *s = NULL;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        n = curl_slist_append(*l, s);
        explicit_bzero(s, (size_t) k);
        free(s);
        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

int provider_openai_new(sd_event *e, const ProviderConfig *cfg, Provider **ret) {
        static int curl_initialized;
        OpenAIProvider *p;
        const char *name;
        size_t blen;
        int r;

        if (!e || !cfg || !ret)
                return -EINVAL;
        name = cfg->name ? cfg->name : "openai";
        if (isempty(cfg->base_url) ||
            (strncmp(cfg->base_url, "http://", 7) != 0 && strncmp(cfg->base_url, "https://", 8) != 0))
                return log_error_errno(-EINVAL, "provider %s: base_url must be an http:// or https:// URL",
                                       name);
        for (size_t i = 0; i < cfg->n_headers; i++)
                if (isempty(cfg->headers[i].key) || !oa_header_ok(cfg->headers[i].key) ||
                    !cfg->headers[i].value || !oa_header_ok(cfg->headers[i].value) ||
                    strchr(cfg->headers[i].key, ':'))
                        return log_error_errno(-EINVAL, "provider %s: invalid extra header", name);

        if (!curl_initialized) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -EIO;
                curl_initialized = 1;
        }

        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->base.ops = &openai_ops;
        p->event = sd_event_ref(e);
        p->base.name = strdup(name);
        blen = strlen(cfg->base_url);
        while (blen > 0 && cfg->base_url[blen - 1] == '/')
                blen--;
        if (asprintf(&p->url, "%.*s/chat/completions", (int) blen, cfg->base_url) < 0)
                p->url = NULL;
        p->model = cfg->model ? strdup(cfg->model) : NULL;
        if (!p->base.name || !p->url || (cfg->model && !p->model)) {
                r = -ENOMEM;
                goto fail;
        }
        p->temperature = cfg->temperature;
        p->max_tokens = cfg->max_tokens;
        p->connect_timeout_ms = cfg->connect_timeout_ms ?: OA_DEFAULT_CONNECT_TIMEOUT_MS;
        p->timeout_ms = cfg->timeout_ms ?: OA_DEFAULT_TIMEOUT_MS;
        p->max_retries = cfg->max_retries; /* 0 = never retry; config.c supplies the default */
        p->retry_base_ms = cfg->retry_base_ms ?: OA_DEFAULT_RETRY_BASE_MS;
        p->retry_max_ms = cfg->retry_max_ms ?: OA_DEFAULT_RETRY_MAX_MS;
        p->max_concurrency = cfg->max_concurrency ?: OA_DEFAULT_MAX_CONCURRENCY;
        p->max_queue = cfg->max_queue ?: OA_DEFAULT_MAX_QUEUE;
        p->breaker_failures = cfg->breaker_failures ?: OA_DEFAULT_BREAKER_FAILURES;
        p->breaker_cooldown_ms = cfg->breaker_cooldown_ms ?: OA_DEFAULT_BREAKER_COOLDOWN_MS;
        /* Bounds on what a config may ask for: no absurd waits. */
        p->timeout_ms = MIN(p->timeout_ms, 3600ULL * 1000);
        p->connect_timeout_ms = MIN(p->connect_timeout_ms, p->timeout_ms);
        p->retry_max_ms = MIN(p->retry_max_ms, 600ULL * 1000);
        p->retry_base_ms = MIN(p->retry_base_ms, p->retry_max_ms);
        p->max_retries = MIN(p->max_retries, 20U);

        if (getrandom(&p->rng, sizeof p->rng, GRND_NONBLOCK) != sizeof p->rng)
                p->rng = now_usec() ^ ((uint64_t) getpid() << 32);
        p->rng |= 1;

        r = oa_read_key(cfg, &p->api_key);
        if (r < 0)
                goto fail;

        r = oa_add_header(&p->headers, "Content-Type: application/json");
        if (r >= 0)
                r = oa_add_header(&p->headers, "Accept: application/json, text/event-stream");
        if (r >= 0) /* no "100 Continue" round trip before the body */
                r = oa_add_header(&p->headers, "Expect:");
        if (r >= 0 && p->api_key)
                r = oa_add_header(&p->headers, "Authorization: Bearer %s", p->api_key);
        for (size_t i = 0; r >= 0 && i < cfg->n_headers; i++)
                r = oa_add_header(&p->headers, "%s: %s", cfg->headers[i].key, cfg->headers[i].value);
        if (r < 0)
                goto fail;

        char desc[64];
        snprintf(desc, sizeof desc, "openai-%s", name);
        r = curl_glue_new(e, desc, &p->glue);
        if (r < 0)
                goto fail;
        /* Keep enough idle connections cached for every slot to reuse one. */
        (void) curl_multi_setopt(curl_glue_multi(p->glue), CURLMOPT_MAXCONNECTS,
                                 (long) MAX(p->max_concurrency, 4U));

        log_debug("provider %s: %s (key %s), timeout %" PRIu64 " ms, %u retries, concurrency %u", name,
                  p->url, p->api_key ? "set" : "none", p->timeout_ms, p->max_retries, p->max_concurrency);
        *ret = &p->base;
        return 0;

fail:
        oa_free(&p->base);
        return r;
}
