/* engine.h — the Mixture-of-Agents pipeline: route, then layers of
 * proposers and refiners run in parallel on the loop, then one aggregator
 * whose tokens stream to the caller. One EngineRun per request. */
#pragma once

#include <jansson.h>
#include <systemd/sd-event.h>

#include "chat-request.h"
#include "config.h"
#include "provider.h"

typedef struct AgentSet AgentSet;
typedef struct Engine Engine;
typedef struct EngineRun EngineRun;

typedef struct EngineRunSpec {
        const char *request_id;
        const PipelineConfig *pipeline; /* NULL: single agent, see @agent */
        const char *agent;              /* model named one agent: it answers alone */
        const ChatRequest *chat;        /* messages, pins, sampling, trace flags */
        int stream;                     /* deliver the final answer via on_delta */
} EngineRunSpec;

typedef struct EngineResult {
        int error;              /* 0 ok, else -errno */
        unsigned http_status;   /* for errors: 502, 503, 504, 500 */
        const char *error_type; /* OpenAI error type */
        const char *error_code;
        const char *error_message; /* names the agents and causes */
        const char *content;       /* the final answer (whole, also when streamed) */
        const char *finish_reason;
        ProviderUsage usage;  /* sum over every call of the request */
        json_t *trace;        /* borrowed, NULL unless the request asked */
        json_t *warnings;     /* borrowed array of strings, may be empty */
        json_t *citations;    /* borrowed array (citations.h), NULL on error */
        const char *agents;   /* selected agents, comma-separated, for logs */
        int streamed;         /* on_delta was called at least once */
        uint64_t layers_usec; /* time spent inside layers, waiting on providers */
} EngineResult;

typedef struct EngineCallbacks {
        void (*on_delta)(void *userdata, const char *text, size_t len);
        /* Optional, when the request asked for moa.progress: one event per
         * finished call ({"object":"moa.progress", ...}, borrowed). */
        void (*on_progress)(void *userdata, json_t *event);
        /* Exactly once, never from inside engine_run_start(), never after
         * engine_run_cancel(). */
        void (*on_done)(void *userdata, const EngineResult *result);
} EngineCallbacks;

/**
 * engine_new() - create the providers of @cfg and an engine over @agents
 * (borrowed; must outlive the engine). Returns 0 or -errno.
 */
int engine_new(sd_event *e, const Config *cfg, AgentSet *agents, Engine **ret);

/** engine_free() - no runs may be in flight. NULL ok; returns NULL. */
Engine *engine_free(Engine *e);

/**
 * engine_run_start() - start answering @spec. @spec and what it points to
 * must stay valid until on_done ran or the run was cancelled.
 */
int engine_run_start(Engine *e, const EngineRunSpec *spec, const EngineCallbacks *cb, void *userdata,
                     EngineRun **ret);

/** engine_run_cancel() - cancel every upstream call of the run; on_done is
 * not called. NULL ok. */
void engine_run_cancel(EngineRun *run);

/** engine_runs_active() - runs in flight. */
unsigned engine_runs_active(Engine *e);
