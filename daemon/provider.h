/* provider.h — the asynchronous interface every model backend implements
 * (builtin extractive, OpenAI-compatible HTTP). Calls run on the daemon's
 * sd-event loop; nothing here blocks. */
#pragma once

#include <errno.h> /* the -E... codes of ProviderResult.error */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "extract.h"
#include "kb-vocab.h"
#include "kb.h"

typedef struct Provider Provider;
typedef struct ProviderCall ProviderCall;

typedef struct ProviderUsage {
        uint64_t prompt_tokens;
        uint64_t completion_tokens;
} ProviderUsage;

typedef enum ProviderTask {
        PROVIDER_TASK_PROPOSE,   /* answer the question from own context */
        PROVIDER_TASK_REFINE,    /* answer again, seeing earlier answers */
        PROVIDER_TASK_AGGREGATE, /* synthesise the references into one answer */
} ProviderTask;

typedef struct ProviderRequest {
        const char *request_id; /* for logs, may be NULL */
        const char *agent;      /* calling agent, for logs/metrics */
        const char *model;      /* NULL: the provider's default */
        json_t *messages;       /* borrowed: [{role, content}, ...] as sent upstream */
        double temperature;     /* < 0: provider default */
        int64_t max_tokens;     /* <= 0: provider default */
        int stream;             /* deliver text via on_delta as it arrives */
        uint64_t deadline_usec; /* absolute CLOCK_MONOTONIC, 0 = none */

        /* The structured inputs @messages was rendered from; the builtin
         * provider works on these, HTTP providers ignore them. */
        ProviderTask task;
        const char *query;
        const KbHit *hits;
        size_t n_hits;
        const char *knowledge; /* whose knowledge base @hits come from (agent name), may be NULL */
        Kb *kb;                /* that knowledge base, asked whether it has a word at all; may be NULL */
        const KbVocab *vocab;  /* its term statistics (how specific a word is there); may be NULL */
        const ExtractProposal *refs;
        size_t n_refs;
        /* moa.review: propose = review the first @n_attached hits (the
         * attached documents) for @focus, aggregate = merge the reviews. */
        int review;
        const char *focus;
        size_t n_attached;
} ProviderRequest;

typedef struct ProviderResult {
        int error;                 /* 0, or -ETIMEDOUT, -ECONNREFUSED, -EPROTO (bad reply),
                                    * -EIO (HTTP error status), -EBUSY (queue full /
                                    * circuit open), -ECANCELED */
        unsigned http_status;      /* last upstream status, 0 if none */
        const char *content;       /* the whole answer (also when streamed) */
        const char *finish_reason; /* "stop", "length", ... may be NULL */
        const char *error_message; /* human-readable cause (no secrets), NULL if ok */
        ProviderUsage usage;
        unsigned attempts; /* HTTP attempts made; 0 when the call failed before any
                            * (circuit open, deadline passed in the queue) */
} ProviderResult;

typedef struct ProviderCallbacks {
        /* A piece of the answer, only when req->stream. May be NULL. */
        void (*on_delta)(void *userdata, const char *text, size_t len);
        /* Exactly once per started call, never from inside
         * provider_call_start() and never after provider_call_cancel().
         * @result and its strings are valid only during the callback. */
        void (*on_done)(void *userdata, const ProviderResult *result);
} ProviderCallbacks;

typedef struct ProviderOps {
        const char *type;
        int (*call_start)(Provider *p, const ProviderRequest *req, const ProviderCallbacks *cb,
                          void *userdata, ProviderCall **ret);
        void (*call_cancel)(ProviderCall *call);
        void (*free)(Provider *p);
} ProviderOps;

/* Every provider embeds this as its first member. */
struct Provider {
        const ProviderOps *ops;
        char *name;
};

/**
 * provider_call_start() - start one call. The request and everything it
 * points to need only live until this returns (providers copy what they
 * keep). Returns 0 and a call handle (owned by the provider; valid until
 * on_done ran or the call was cancelled), or -errno without calling on_done.
 */
int provider_call_start(Provider *p, const ProviderRequest *req, const ProviderCallbacks *cb, void *userdata,
                        ProviderCall **ret);

/** provider_call_cancel() - abort a call; on_done is not called. NULL ok. */
void provider_call_cancel(Provider *p, ProviderCall *call);

/** provider_free() - free a provider with no calls in flight. NULL ok. */
Provider *provider_free(Provider *p);

/** provider_builtin_new() - the offline extractive provider. */
int provider_builtin_new(sd_event *e, const ProviderConfig *cfg, Provider **ret);

/**
 * provider_openai_new() - an OpenAI-compatible HTTP provider on libcurl
 * multi, driven by @e. Reads the API key (file or env) now; a missing key is
 * fine (local servers need none). Returns -errno on bad config.
 */
int provider_openai_new(sd_event *e, const ProviderConfig *cfg, Provider **ret);
