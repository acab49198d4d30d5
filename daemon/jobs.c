/* jobs.c — see jobs.h. Batches are served oldest first; a batch's input
 * file is read into memory only when the runner reaches it. A line runs
 * like a non-streamed chat completion (chat_request_parse, the same spec,
 * engine_run_start) and its output line is what POST /v1/chat/completions
 * would have answered, wrapped in the Batch API's output format.
 *
 * With a shared store (PostgreSQL) the runner owns only the batches it has
 * claimed: a lease taken with SKIP LOCKED and renewed by a heartbeat every
 * third of jobs.lease_seconds. A batch cancelled on another instance, or
 * whose lease passed to another (the database was out of reach longer than
 * the lease), is let go here as soon as a result is refused or the
 * heartbeat sees it; whoever claims a batch skips the lines with a stored
 * result. */
#include <sys/random.h>
#include <time.h>

#include "batch-input.h"
#include "chat-response.h"
#include "jobs-ingest.h"
#include "jobs.h"
#include "log.h"
#include "util.h"
#include "worker.h"

/* The largest input file (jobs.max_upload_bytes is at most this). */
#define JOBS_MAX_INPUT (1u << 30)

/* When interactive requests wait for a slot, look again after this long. */
#define JOBS_YIELD_USEC (100 * USEC_PER_MSEC)

typedef struct ActiveBatch ActiveBatch;
typedef struct LineRun LineRun;

struct ActiveBatch {
        char *id;
        int loading; /* its input is being read on the worker */
        int loaded;
        char *input;
        size_t input_len;
        BatchLine *lines;
        size_t n_lines;
        uint8_t *done; /* one per line: its result is stored */
        size_t next;   /* the next line to look at */
        unsigned inflight;
        int64_t expires_at;   /* unix seconds; its unfinished lines then fail as batch_expired */
        uint64_t lease_until; /* shared: CLOCK_MONOTONIC usec the lease lasts at least until */
        int abandon;          /* shared: a result could not be stored; let the batch go */
        ActiveBatch *next_batch;
};

struct LineRun {
        Jobs *jobs;
        ActiveBatch *batch;
        size_t index;
        Runtime *rt;
        ChatRequest *chat;
        EngineRunSpec spec;
        EngineRun *run;
        char *custom_id;
        int64_t created;
        char request_id[96];
        LineRun *prev, *next;
};

struct Jobs {
        Server *server;
        JobsStore *store;
        Worker *worker;
        IngestJobs *ingest; /* server-side ingest jobs, on the same worker */
        ActiveBatch *head;
        LineRun *runs;
        unsigned inflight;
        sd_event_source *timer;
        sd_event_source *expiry; /* CLOCK_REALTIME: the earliest expires_at */
        /* shared store only */
        int shared;
        unsigned lease_s;
        char owner[128];            /* this instance in lease_owner: host, pid, random */
        sd_event_source *heartbeat; /* renews the leases, claims work */
        int claim_idle;             /* the last claim found nothing: wait for the heartbeat or a submit */
        uint64_t heartbeat_usec;    /* a third of the lease */
};

void jobs_make_id(const char *prefix, char *buf, size_t size) {
        uint8_t bytes[12];
        size_t o;

        if (getrandom(bytes, sizeof bytes, 0) != (ssize_t) sizeof bytes) {
                uint64_t t = now_usec() ^ ((uint64_t) getpid() << 32);
                for (size_t i = 0; i < sizeof bytes; i++)
                        bytes[i] = (uint8_t) (t >> (8 * (i % 8))) ^ (uint8_t) (i * 131);
        }
        snprintf(buf, size, "%s", prefix);
        o = strlen(buf);
        for (size_t i = 0; i < sizeof bytes && o + 2 < size; i++, o += 2)
                snprintf(buf + o, size - o, "%02x", bytes[i]);
}

static ActiveBatch *batch_free(ActiveBatch *b) {
        if (!b)
                return NULL;
        free(b->id);
        free(b->input);
        free(b->lines);
        free(b->done);
        free(b);
        return NULL;
}

static void batch_unlink(Jobs *j, ActiveBatch *b) {
        for (ActiveBatch **p = &j->head; *p; p = &(*p)->next_batch)
                if (*p == b) {
                        *p = b->next_batch;
                        return;
                }
}

static LineRun *line_free(LineRun *l) {
        if (!l)
                return NULL;
        engine_run_cancel(l->run);
        chat_request_free(l->chat);
        runtime_unref(l->rt);
        free(l->custom_id);
        free(l);
        return NULL;
}

/* Takes @l out of the runner's books (it is no longer in flight). */
static void line_detach(Jobs *j, LineRun *l) {
        if (l->prev)
                l->prev->next = l->next;
        else
                j->runs = l->next;
        if (l->next)
                l->next->prev = l->prev;
        l->batch->inflight--;
        j->inflight--;
}

static void arm_expiry(Jobs *j);

/* Cancels the lines of @b in flight; their results are never stored. */
static void drop_lines(Jobs *j, ActiveBatch *b) {
        for (LineRun *l = j->runs, *next; l; l = next) {
                next = l->next;
                if (l->batch != b)
                        continue;
                line_detach(j, l);
                line_free(l);
        }
}

static void schedule(Jobs *j, uint64_t delay) {
        uint64_t now;

        (void) sd_event_now(j->server->event, CLOCK_MONOTONIC, &now);
        (void) sd_event_source_set_time(j->timer, now + delay);
        (void) sd_event_source_set_enabled(j->timer, SD_EVENT_ONESHOT);
}

/* Stores the output line of request @index: @response is the HTTP answer
 * the request would have had ({status_code, request_id, body}). */
static void record(Jobs *j, ActiveBatch *b, size_t index, const char *custom_id, unsigned status,
                   const char *request_id, json_t *body) {
        _cleanup_free_ char *text = NULL;
        json_auto_t *o = NULL;
        char id[160];
        int r;

        snprintf(id, sizeof id, "batch_req_%s_%zu", b->id + strlen("batch_"), index);
        o = json_pack("{s:s,s:s,s:{s:i,s:s,s:o},s:n}", "id", id, "custom_id", custom_id, "response",
                      "status_code", (int) status, "request_id", request_id, "body",
                      body ? body
                           : json_pack("{s:{s:s,s:s}}", "error", "message", "out of memory", "type",
                                       "server_error"),
                      "error");
        text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        r = text ? jobs_store_result_add(j->store, b->id, (long) index, status == 200, text) : -ENOMEM;
        if (r == -ESTALE && !b->abandon) {
                log_info("batch %s was ended on another instance, or taken over: letting it go", b->id);
                b->abandon = 1;
        } else if (r < 0 && r != -EEXIST)
                log_error_errno(r, "batch %s: cannot store the result of line %zu", b->id, index + 1);
        if (r < 0 && r != -EEXIST && r != -ESTALE && j->shared && !b->abandon) {
                /* Going on would end the batch without this line: let it go
                 * instead; its next owner asks the lines without a result. */
                log_warning("batch %s: letting it go, another instance (or this one) resumes it", b->id);
                b->abandon = 1;
        }
        b->done[index] = 1;
}

static json_t *error_body(const char *type, const char *param, const char *code, const char *message) {
        return json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", message, "type", type, "param",
                         param, "code", code);
}

static void finish(Jobs *j, ActiveBatch *b, int cancelled) {
        char out_id[64], err_id[64];
        int64_t now = (int64_t) time(NULL);
        int r;

        jobs_make_id("file-", out_id, sizeof out_id);
        jobs_make_id("file-", err_id, sizeof err_id);
        if (!cancelled)
                (void) jobs_store_batch_set_status(j->store, b->id, "finalizing", "finalizing_at", now);
        r = jobs_store_batch_finish(j->store, b->id, cancelled ? "cancelled" : "completed",
                                    cancelled ? "cancelled_at" : "completed_at", out_id, err_id, now);
        if (r == -EALREADY)
                log_info("batch %s had been ended by another instance", b->id);
        else if (r < 0)
                log_error_errno(r, "batch %s: cannot store its end", b->id);
        else
                log_info("batch %s %s", b->id, cancelled ? "cancelled" : "completed");
        batch_unlink(j, b);
        batch_free(b);
}

/* The next line of @b that has no result yet, or n_lines. */
static size_t next_undone(ActiveBatch *b) {
        while (b->next < b->n_lines && b->done[b->next])
                b->next++;
        return b->next;
}

/* Whether @b's completion window is over with work left: lines not
 * started or in flight (a batch whose last line just ended completes). */
static int batch_expired(ActiveBatch *b) {
        if (b->expires_at <= 0 || (int64_t) time(NULL) < b->expires_at)
                return 0;
        return !b->loaded || b->inflight > 0 || next_undone(b) < b->n_lines;
}

/* The window is over: the lines in flight are cancelled, every line
 * without a result gets an error line "batch_expired" (as OpenAI writes
 * it), and the batch ends "expired" with the lines answered so far in its
 * output file. @b must be loaded; it is freed. */
static void expire(Jobs *j, ActiveBatch *b) {
        static const char message[] =
                "This request could not be executed before the completion window expired.";
        char out_id[64], err_id[64], **outputs = NULL;
        int64_t now = (int64_t) time(NULL);
        long *lines = NULL;
        size_t n = 0;
        int r = 0;

        drop_lines(j, b);
        outputs = calloc(MAX(b->n_lines, 1u), sizeof *outputs);
        lines = calloc(MAX(b->n_lines, 1u), sizeof *lines);
        if (!outputs || !lines)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < b->n_lines; i++) {
                _cleanup_free_ char *custom_id = NULL;
                json_auto_t *body = NULL, *o = NULL;
                char id[160];

                if (b->done[i])
                        continue;
                (void) batch_line_parse(&b->lines[i], &custom_id, &body);
                snprintf(id, sizeof id, "batch_req_%s_%zu", b->id + strlen("batch_"), i);
                o = json_pack("{s:s,s:s,s:n,s:{s:s,s:s}}", "id", id, "custom_id", custom_id ?: "",
                              "response", "error", "code", "batch_expired", "message", message);
                outputs[n] = o ? json_dumps(o, JSON_COMPACT) : NULL;
                if (!outputs[n]) {
                        r = -ENOMEM;
                        break;
                }
                lines[n++] = (long) i;
        }
        jobs_make_id("file-", out_id, sizeof out_id);
        jobs_make_id("file-", err_id, sizeof err_id);
        if (r >= 0)
                r = jobs_store_batch_expire(j->store, b->id, lines, outputs, n, out_id, err_id, now);
        /* On failure the batch stays unfinished in jobs.db: the next start
         * finds it expired and tries again. */
        if (r < 0)
                log_error_errno(r, "batch %s: cannot store its expiry", b->id);
        else
                log_info("batch %s expired: %zu of %zu lines unfinished", b->id, n, b->n_lines);
        for (size_t i = 0; outputs && i < n; i++)
                free(outputs[i]);
        free(outputs);
        free(lines);
        batch_unlink(j, b);
        batch_free(b);
}

/* Reading a batch's input file and finding its lines, on the jobs worker. */
typedef struct LoadTask {
        Jobs *jobs;
        JobsStore *store; /* only its worker-safe jobs_store_file_read() */
        char *batch_id;
        char *input_id;
        char *input;
        size_t input_len;
        BatchLine *lines;
        size_t n_lines;
} LoadTask;

static void load_task_free(LoadTask *t) {
        free(t->batch_id);
        free(t->input_id);
        free(t->input);
        free(t->lines);
        free(t);
}

static int add_line(void *userdata, const BatchLine *line) {
        LoadTask *t = userdata;

        t->lines[t->n_lines++] = *line;
        return 0;
}

static int count_line(void *userdata, const BatchLine *line) {
        (*(size_t *) userdata)++;
        return 0;
}

static int load_work(void *userdata) {
        LoadTask *t = userdata;
        size_t n = 0;
        int r = jobs_store_file_read(t->store, t->input_id, JOBS_MAX_INPUT, &t->input, &t->input_len);

        if (r < 0)
                return r;
        (void) batch_input_walk(t->input, t->input_len, count_line, &n);
        t->lines = calloc(MAX(n, 1u), sizeof *t->lines);
        if (!t->lines)
                return -ENOMEM;
        (void) batch_input_walk(t->input, t->input_len, add_line, t);
        return 0;
}

static ActiveBatch *batch_find(Jobs *j, const char *id) {
        for (ActiveBatch *b = j->head; b; b = b->next_batch)
                if (streq(b->id, id))
                        return b;
        return NULL;
}

static void batch_drop(Jobs *j, ActiveBatch *b) {
        batch_unlink(j, b);
        batch_free(b);
}

/* On the loop: the input is read; mark the lines already answered. */
static void load_done(void *userdata, int result) {
        LoadTask *t = userdata;
        Jobs *j = t->jobs;
        ActiveBatch *b = batch_find(j, t->batch_id);
        json_auto_t *row = NULL;
        const char *status;
        long done;

        /* Cancelled meanwhile, or moad is stopping (the batch stays unfinished in jobs.db). */
        if (!b || result == -ECANCELED) {
                load_task_free(t);
                return;
        }
        b->loading = 0;
        if (result < 0 && j->shared && jobs_store_unavailable(result)) {
                /* the database, not the file: the lease lapses and the batch is tried again */
                log_warning("batch %s: its input cannot be read now: %s", b->id, strerror(-result));
                batch_drop(j, b);
                load_task_free(t);
                return;
        }
        if (result < 0) {
                (void) jobs_store_batch_fail(j->store, b->id, "input_file_missing",
                                             "the input file cannot be read", (int64_t) time(NULL));
                log_warning("batch %s failed: input %s: %s", b->id, t->input_id, strerror(-result));
                batch_drop(j, b);
                load_task_free(t);
                return;
        }
        b->input = TAKE_PTR(t->input);
        b->input_len = t->input_len;
        b->lines = TAKE_PTR(t->lines);
        b->n_lines = t->n_lines;
        load_task_free(t);
        b->done = calloc(MAX(b->n_lines, 1u), 1);
        done = b->done ? jobs_store_results_done(j->store, b->id, b->done, b->n_lines) : -ENOMEM;
        if (done < 0) {
                log_error_errno((int) done, "batch %s cannot be loaded", b->id);
                batch_drop(j, b);
                return;
        }
        if (jobs_store_batch_get(j->store, b->id, &row) >= 0 &&
            (status = json_string_value(json_object_get(row, "status"))) && streq(status, "validating"))
                (void) jobs_store_batch_set_status(j->store, b->id, "in_progress", "in_progress_at",
                                                   (int64_t) time(NULL));
        if (done > 0)
                log_info("batch %s: resuming, %ld of %zu lines already answered", b->id, done, b->n_lines);
        b->loaded = 1;
        if (batch_expired(b))
                expire(j, b); /* e.g. moad was down when its window ended */
        arm_expiry(j);
        schedule(j, 0);
}

/* Starts reading the batch's input on the worker. A batch that cannot
 * run is ended here (it was being cancelled, or is gone); returns 0 while
 * @b is loading, else < 0 (and @b is freed). */
static int batch_load(Jobs *j, ActiveBatch *b) {
        json_auto_t *row = NULL;
        const char *status, *input_id;
        LoadTask *t = NULL;
        int r;

        r = jobs_store_batch_get(j->store, b->id, &row);
        if (r < 0)
                goto gone;
        status = json_string_value(json_object_get(row, "status"));
        input_id = json_string_value(json_object_get(row, "input_file_id"));
        if (!status || !input_id) {
                r = -EBADMSG;
                goto gone;
        }
        if (streq(status, "cancelling")) {
                finish(j, b, 1);
                return -ECANCELED;
        }
        t = calloc(1, sizeof *t);
        if (!t || !(t->batch_id = strdup(b->id)) || !(t->input_id = strdup(input_id))) {
                r = -ENOMEM;
                goto gone;
        }
        t->jobs = j;
        t->store = j->store;
        r = worker_submit(j->worker, load_work, load_done, t, NULL);
        if (r < 0)
                goto gone;
        b->loading = 1;
        return 0;
gone:
        if (t)
                load_task_free(t);
        if (r != -ENOENT)
                log_error_errno(r, "batch %s cannot be loaded", b->id);
        batch_drop(j, b);
        return r;
}

static void on_line_done(void *userdata, const EngineResult *res) {
        LineRun *l = userdata;
        Jobs *j = l->jobs;
        ActiveBatch *b = l->batch;
        json_t *body;

        l->run = NULL;
        line_detach(j, l);
        if (res->error)
                record(j, b, l->index, l->custom_id, res->http_status ? res->http_status : 500,
                       l->request_id,
                       error_body(res->error_type ? res->error_type : "server_error", NULL, res->error_code,
                                  res->error_message ? res->error_message : "pipeline failed"));
        else {
                json_t *moa = chat_moa_extension(l->chat, res);
                char id[128];

                snprintf(id, sizeof id, "chatcmpl-%s", l->request_id);
                body = chat_completion_new(id, l->chat->model, l->created, res->content, res->finish_reason,
                                           &res->usage);
                if (body && moa)
                        json_object_set_new(body, "moa", moa);
                else
                        json_decref(moa);
                record(j, b, l->index, l->custom_id, 200, l->request_id, body);
        }
        line_free(l);
        schedule(j, 0);
}

/* Starts request @index of @b, or records at once why it cannot run. */
static void line_start(Jobs *j, ActiveBatch *b, size_t index) {
        static const EngineCallbacks callbacks = {.on_done = on_line_done};
        Runtime *rt = j->server->runtime;
        _cleanup_free_ char *text = NULL, *custom_id = NULL;
        json_auto_t *body = NULL;
        ChatRequestError err = {};
        char request_id[96];
        LineRun *l;
        int r;

        snprintf(request_id, sizeof request_id, "%.40s-%zu", b->id, index + 1);
        r = batch_line_parse(&b->lines[index], &custom_id, &body);
        if (r == -EINVAL) {
                record(j, b, index, "", 400, request_id,
                       error_body("invalid_request_error", NULL, "invalid_line",
                                  "not a batch request line"));
                return;
        }
        text = r >= 0 ? json_dumps(body, JSON_COMPACT) : NULL;
        l = text ? calloc(1, sizeof *l) : NULL;
        if (!l) {
                log_error("batch %s: out of memory starting line %zu", b->id, index + 1);
                return; /* not recorded: asked again after a restart */
        }
        r = chat_request_parse(text, strlen(text), &rt->config->limits, &l->chat, &err);
        if (r >= 0 && !l->chat->model && !(l->chat->model = strdup(rt->config->default_pipeline)))
                r = -ENOMEM;
        if (r >= 0)
                r = chat_resolve_spec(rt->config, l->chat, &l->spec, &err);
        if (r < 0) {
                if (r == -ENOMEM)
                        err = (ChatRequestError){.status = 500, .message = "out of memory"};
                record(j, b, index, custom_id, err.status ? err.status : 400, request_id,
                       error_body(r == -ENOMEM ? "server_error" : "invalid_request_error", err.param,
                                  err.code, err.message));
                line_free(l);
                return;
        }
        l->jobs = j;
        l->batch = b;
        l->index = index;
        l->rt = runtime_ref(rt);
        l->custom_id = TAKE_PTR(custom_id);
        l->created = (int64_t) time(NULL);
        snprintf(l->request_id, sizeof l->request_id, "%s", request_id);
        l->spec.request_id = l->request_id;
        l->spec.stream = 0;
        r = engine_run_start(rt->engine, &l->spec, &callbacks, l, &l->run);
        if (r < 0) {
                record(j, b, index, l->custom_id, 500, request_id,
                       error_body("server_error", NULL, NULL, "cannot start the pipeline"));
                line_free(l);
                return;
        }
        l->next = j->runs;
        if (j->runs)
                j->runs->prev = l;
        j->runs = l;
        b->inflight++;
        j->inflight++;
}

static int status_final(const char *s) {
        return streq(s, "completed") || streq(s, "failed") || streq(s, "cancelled") || streq(s, "expired");
}

/* Shared: lets @b go without ending it (its lease is released, or lapses
 * if the database is out of reach), the lines in flight cancelled. */
static void batch_let_go(Jobs *j, ActiveBatch *b) {
        drop_lines(j, b);
        (void) jobs_store_batch_release(j->store, j->owner, b->id);
        batch_drop(j, b);
}

static int batch_adopt(Jobs *j, const char *batch_id);

/* Shared: whether the runner could use another batch: a line slot is
 * free and no batch it holds has a line left to start. */
static int hungry(Jobs *j, unsigned max) {
        if (j->inflight >= max)
                return 0;
        for (ActiveBatch *b = j->head; b; b = b->next_batch)
                if (!b->abandon && (b->loading || !b->loaded || next_undone(b) < b->n_lines))
                        return 0;
        return 1;
}

/* Shared: claims one more batch when the runner is hungry. */
static void claim(Jobs *j, unsigned max) {
        _cleanup_free_ char *id = NULL;
        int r;

        if (j->claim_idle || !hungry(j, max))
                return;
        r = jobs_store_batch_claim(j->store, j->owner, j->lease_s, NULL, &id);
        if (r < 0) {
                if (r != -ENOENT && !jobs_store_unavailable(r))
                        log_error_errno(r, "jobs: cannot claim a batch");
                j->claim_idle = 1;
                return;
        }
        if (batch_find(j, id))
                return; /* ours already (its lease had lapsed): renewed */
        log_info("batch %s claimed", id);
        if (batch_adopt(j, id) < 0)
                (void) jobs_store_batch_release(j->store, j->owner, id);
}

static void run(Jobs *j) {
        Server *s = j->server;
        unsigned max = s->runtime->config->jobs.concurrency;
        ActiveBatch *b, *nb;

        if (s->state == SERVER_DRAINING)
                return;
        if (j->shared)
                claim(j, max);
        for (b = j->head; b && j->inflight < max; b = nb) {
                nb = b->next_batch;
                if (b->abandon)
                        continue;
                if (b->loading || (!b->loaded && batch_load(j, b) < 0))
                        continue;
                if (!b->loaded)
                        continue;
                if (batch_expired(b)) {
                        expire(j, b);
                        continue;
                }
                while (j->inflight < max && next_undone(b) < b->n_lines) {
                        /* Interactive requests first: wait while any is queued. */
                        if (s->queued > 0) {
                                schedule(j, JOBS_YIELD_USEC);
                                return;
                        }
                        line_start(j, b, b->next++);
                }
        }
        for (b = j->head; b; b = nb) {
                nb = b->next_batch;
                /* an abandoned batch's lines in flight are cancelled: none could be stored */
                if (b->abandon)
                        batch_let_go(j, b);
                else if (b->loaded && b->inflight == 0 && next_undone(b) >= b->n_lines) {
                        finish(j, b, 0);
                        if (j->shared)
                                schedule(j, 0); /* room for the next batch */
                }
        }
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        run(userdata);
        return 0;
}

/* Arms the expiry timer for the earliest window end of the batches not
 * being loaded (load_done() looks at those itself). */
static void arm_expiry(Jobs *j) {
        int64_t first = INT64_MAX;

        for (ActiveBatch *b = j->head; b; b = b->next_batch)
                if (!b->loading && b->expires_at > 0 && b->expires_at < first)
                        first = b->expires_at;
        if (first == INT64_MAX) {
                (void) sd_event_source_set_enabled(j->expiry, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(j->expiry, (uint64_t) first * USEC_PER_SEC);
        (void) sd_event_source_set_enabled(j->expiry, SD_EVENT_ONESHOT);
}

/* A window ended: expire the batches whose window it was, reading the
 * input of one that never started first (to name its lines). */
static int on_expiry(sd_event_source *src, uint64_t usec, void *userdata) {
        Jobs *j = userdata;

        for (ActiveBatch *b = j->head, *nb; b; b = nb) {
                nb = b->next_batch;
                if (b->loading || !batch_expired(b))
                        continue;
                if (b->loaded)
                        expire(j, b);
                else
                        (void) batch_load(j, b);
        }
        arm_expiry(j);
        schedule(j, 0);
        return 0;
}

/* Queues @batch_id on this runner (shared: its lease was just taken). */
static int batch_adopt(Jobs *j, const char *batch_id) {
        ActiveBatch *b = calloc(1, sizeof *b), **p;
        json_auto_t *row = NULL;
        uint64_t now;

        if (!b || !(b->id = strdup(batch_id))) {
                free(b);
                return -ENOMEM;
        }
        (void) sd_event_now(j->server->event, CLOCK_MONOTONIC, &now);
        b->lease_until = now + (uint64_t) j->lease_s * USEC_PER_SEC;
        if (jobs_store_batch_get(j->store, batch_id, &row) >= 0)
                b->expires_at = json_integer_value(json_object_get(row, "expires_at"));
        for (p = &j->head; *p; p = &(*p)->next_batch)
                ;
        *p = b;
        arm_expiry(j);
        schedule(j, 0);
        return 0;
}

int jobs_submit(Jobs *j, const char *batch_id) {
        if (!j->shared)
                return batch_adopt(j, batch_id);
        /* claimed like any other: by this runner if it has room, else by another instance */
        j->claim_idle = 0;
        schedule(j, 0);
        return 0;
}

/* Shared: cancels a batch this runner does not hold, at once: its owner
 * (if any) lets it go when its next result is refused or at its next
 * heartbeat, whichever comes first. */
static int cancel_elsewhere(Jobs *j, const char *batch_id) {
        char out_id[64], err_id[64];
        int r;

        jobs_make_id("file-", out_id, sizeof out_id);
        jobs_make_id("file-", err_id, sizeof err_id);
        r = jobs_store_batch_cancel(j->store, batch_id, out_id, err_id, (int64_t) time(NULL));
        if (r >= 0)
                log_info("batch %s cancelled", batch_id);
        return r;
}

int jobs_cancel(Jobs *j, const char *batch_id) {
        json_auto_t *row = NULL;
        ActiveBatch *b;
        int r;

        for (b = j->head; b; b = b->next_batch)
                if (streq(b->id, batch_id))
                        break;
        if (!b && j->shared)
                return cancel_elsewhere(j, batch_id);
        if (!b) {
                r = jobs_store_batch_get(j->store, batch_id, &row);
                return r < 0 ? r : -EALREADY;
        }
        (void) jobs_store_batch_set_status(j->store, b->id, "cancelling", "cancelling_at",
                                           (int64_t) time(NULL));
        drop_lines(j, b);
        finish(j, b, 1);
        schedule(j, 0);
        return 0;
}

/* The status of @id among the rows {id, status} @rows, or NULL. */
static const char *renewed_status(const json_t *rows, const char *id) {
        size_t i;
        json_t *v;

        json_array_foreach(rows, i, v) {
                if (streq_ptr(json_string_value(json_object_get(v, "id")), id))
                        return json_string_value(json_object_get(v, "status"));
        }
        return NULL;
}

/* Shared: the heartbeat. Renews the leases of the batches held here; one
 * that has ended elsewhere (cancelled on another instance) or whose lease
 * is gone is let go; then looks for work (a batch created elsewhere, or
 * one whose owner died and whose lease ran out). */
static int on_heartbeat(sd_event_source *src, uint64_t usec, void *userdata) {
        Jobs *j = userdata;
        json_auto_t *rows = NULL;
        const char **ids = NULL;
        size_t n = 0, i;
        uint64_t now;
        int r = 0;

        (void) sd_event_source_set_time_relative(src, j->heartbeat_usec);
        (void) sd_event_now(j->server->event, CLOCK_MONOTONIC, &now);
        for (ActiveBatch *b = j->head; b; b = b->next_batch)
                n++;
        if (n > 0) {
                ids = calloc(n, sizeof *ids);
                if (!ids)
                        goto next;
                i = 0;
                for (ActiveBatch *b = j->head; b; b = b->next_batch)
                        ids[i++] = b->id;
                r = jobs_store_batch_renew(j->store, j->owner, j->lease_s, ids, n, &rows);
                free(ids);
                for (ActiveBatch *b = j->head, *nb; b; b = nb) {
                        const char *status = renewed_status(rows, b->id);
                        nb = b->next_batch;
                        if (status && status_final(status)) {
                                log_info("batch %s was ended on another instance (%s): letting it go", b->id,
                                         status);
                                batch_let_go(j, b);
                        } else if (status) {
                                b->lease_until = now + (uint64_t) j->lease_s * USEC_PER_SEC;
                                if (streq(status, "cancelling")) {
                                        /* a cancel that stopped half-way (moad died): end it */
                                        drop_lines(j, b);
                                        finish(j, b, 1);
                                }
                        } else if (r >= 0 || now >= b->lease_until) {
                                /* taken over, or ended elsewhere, or the lease ran out while
                                 * the database was out of reach */
                                log_warning("batch %s: no longer held here (lease %s), letting it go", b->id,
                                            r >= 0 ? "lost" : "ran out");
                                batch_let_go(j, b);
                        }
                }
        }
next:
        j->claim_idle = 0;
        schedule(j, 0);
        return 0;
}

/* Shared: this instance's name in lease_owner, unique over restarts. */
static void make_owner(Jobs *j) {
        char host[64] = "", rnd[32];

        (void) gethostname(host, sizeof host - 1);
        jobs_make_id("", rnd, sizeof rnd);
        snprintf(j->owner, sizeof j->owner, "%.63s:%d:%.12s", host, (int) getpid(), rnd);
}

int jobs_new(Server *s, Jobs **ret) {
        json_auto_t *ids = NULL;
        json_t *v;
        size_t i;
        Jobs *j;
        int r;

        j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        j->server = s;
        j->shared = s->runtime->config->knowledge.backend == KNOWLEDGE_POSTGRESQL;
        j->lease_s = s->runtime->config->jobs.lease_seconds;
        if (j->shared) {
                make_owner(j);
                r = jobs_store_open_shared(s->runtime->config->state_dir,
                                           s->runtime->config->jobs.db_timeout_ms, &j->store);
                if (r >= 0)
                        r = jobs_store_set_owner(j->store, j->owner);
        } else
                r = jobs_store_open(s->runtime->config->state_dir, &j->store);
        if (r < 0)
                goto fail;
        r = worker_new(s->event, "jobs-worker-done", 0, &j->worker);
        if (r < 0)
                goto fail;
        r = ingest_jobs_new(s, j->store, j->worker, &j->ingest);
        if (r < 0)
                goto fail;
        r = jobs_store_sweep_files(j->store);
        if (r > 0)
                log_info("jobs: removed %d file(s) of interrupted uploads", r);
        r = sd_event_add_time(s->event, &j->timer, CLOCK_MONOTONIC, UINT64_MAX, 1, on_timer, j);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(j->timer, "jobs-runner");
        (void) sd_event_source_set_enabled(j->timer, SD_EVENT_OFF);
        r = sd_event_add_time(s->event, &j->expiry, CLOCK_REALTIME, UINT64_MAX, USEC_PER_SEC, on_expiry, j);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(j->expiry, "jobs-expiry");
        (void) sd_event_source_set_enabled(j->expiry, SD_EVENT_OFF);
        if (j->shared) {
                uint64_t every = MAX((uint64_t) j->lease_s * USEC_PER_SEC / 3, 500 * USEC_PER_MSEC);
                r = sd_event_add_time_relative(s->event, &j->heartbeat, CLOCK_MONOTONIC, 0, 0, on_heartbeat,
                                               j);
                if (r < 0)
                        goto fail;
                (void) sd_event_source_set_description(j->heartbeat, "jobs-heartbeat");
                /* a repeating timer: fires every @every from now on */
                (void) sd_event_source_set_enabled(j->heartbeat, SD_EVENT_ON);
                j->heartbeat_usec = every;
                log_info("jobs: shared in PostgreSQL as %s (lease %u s)", j->owner, j->lease_s);
                *ret = j;
                return 0;
        }
        r = jobs_store_batch_unfinished(j->store, &ids);
        if (r < 0)
                goto fail;
        json_array_foreach(ids, i, v) {
                r = jobs_submit(j, json_string_value(v));
                if (r < 0)
                        goto fail;
        }
        if (json_array_size(ids) > 0)
                log_info("jobs: %zu unfinished batch(es) queued again", json_array_size(ids));
        *ret = j;
        return 0;
fail:
        jobs_free(j);
        return r;
}

Jobs *jobs_free(Jobs *j) {
        if (!j)
                return NULL;
        while (j->runs) {
                LineRun *l = j->runs;
                line_detach(j, l);
                line_free(l);
        }
        while (j->head) {
                ActiveBatch *b = j->head;
                j->head = b->next_batch;
                /* another instance may take it at once rather than after the lease */
                if (j->shared)
                        (void) jobs_store_batch_release(j->store, j->owner, b->id);
                batch_free(b);
        }
        j->heartbeat = sd_event_source_disable_unref(j->heartbeat);
        j->timer = sd_event_source_disable_unref(j->timer);
        j->expiry = sd_event_source_disable_unref(j->expiry);
        /* a running pdftotext would keep worker_free() waiting up to its wall clock */
        ingest_jobs_stop(j->ingest);
        /* before the store: cancelled tasks' callbacks may look at it */
        j->worker = worker_free(j->worker);
        j->ingest = ingest_jobs_free(j->ingest); /* after the worker: its tasks point into it */
        jobs_store_close(j->store);
        free(j);
        return NULL;
}

JobsStore *jobs_store(Jobs *j) {
        return j->store;
}

Worker *jobs_worker(Jobs *j) {
        return j->worker;
}

unsigned jobs_inflight(Jobs *j) {
        return j ? j->inflight : 0;
}

IngestJobs *jobs_ingest(Jobs *j) {
        return j->ingest;
}
