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
 * result.
 *
 * The store is reached only through jobs_call(): each step that needs it
 * (storing a line, loading, ending, claiming, renewing) is a task whose
 * completion comes back to the loop, where the batch is found again by
 * its serial number (it may have been let go or cancelled meanwhile).
 * A batch ends only once its results are stored (no write in flight). */
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

#define JOBS_LANES 2

typedef struct ActiveBatch ActiveBatch;
typedef struct LineRun LineRun;

struct ActiveBatch {
        char *id;
        uint64_t serial; /* this adoption of the batch: what a store call's completion finds it by */
        int loading;     /* its input is being read, or its row looked at */
        int loaded;
        char *input;
        size_t input_len;
        BatchLine *lines;
        size_t n_lines;
        uint8_t *done; /* one per line: its result is stored (or being stored) */
        size_t next;   /* the next line to look at */
        unsigned inflight;
        unsigned writing;     /* results on their way to the store */
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
        Worker *worker;            /* slow work: uploads, reading inputs */
        Worker *lanes[JOBS_LANES]; /* store calls (jobs_call()): threads when shared, inline for SQLite */
        unsigned db_timeout_ms;    /* a shared store call's whole budget */
        IngestJobs *ingest;        /* server-side ingest jobs, on the same worker */
        ActiveBatch *head;
        uint64_t next_serial;
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
        int claiming;               /* a claim is on its way */
        int renewing;               /* a renewal is on its way */
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

/* ---- store calls ---- */

typedef struct StoreCall {
        Jobs *jobs;
        unsigned lane;
        uint64_t deadline_ms;
        WorkerWorkFn work;
        WorkerDoneFn done;
        void *data;
} StoreCall;

static int call_work(void *userdata) {
        StoreCall *c = userdata;
        int r;

        jobs_store_enter(c->jobs->store, c->lane, c->deadline_ms);
        r = c->work(c->data);
        jobs_store_leave(c->jobs->store);
        return r;
}

static void call_done(void *userdata, int result) {
        StoreCall *c = userdata;
        WorkerDoneFn done = c->done;
        void *data = c->data;

        free(c);
        done(data, result);
}

int jobs_call(Jobs *j, unsigned lane, WorkerWorkFn work, WorkerDoneFn done, void *data) {
        StoreCall *c;
        int r;

        if (lane >= JOBS_LANES || !work || !done)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (StoreCall){.jobs = j,
                         .lane = lane,
                         .deadline_ms = now_usec() / USEC_PER_MSEC + j->db_timeout_ms,
                         .work = work,
                         .done = done,
                         .data = data};
        r = worker_submit(j->lanes[lane], call_work, call_done, c, NULL);
        if (r < 0)
                free(c);
        return r;
}

/* ---- batches in memory ---- */

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

static ActiveBatch *batch_find(Jobs *j, const char *id) {
        for (ActiveBatch *b = j->head; b; b = b->next_batch)
                if (streq(b->id, id))
                        return b;
        return NULL;
}

/* The batch a store call was made for, if this runner still holds it. */
static ActiveBatch *batch_by_serial(Jobs *j, uint64_t serial) {
        for (ActiveBatch *b = j->head; b; b = b->next_batch)
                if (b->serial == serial)
                        return b;
        return NULL;
}

static void batch_drop(Jobs *j, ActiveBatch *b) {
        batch_unlink(j, b);
        batch_free(b);
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

/* ---- small store calls whose outcome is only logged ---- */

enum { NOTE_RELEASE, NOTE_FAIL_INPUT, NOTE_SWEEP };

typedef struct NoteTask {
        Jobs *jobs;
        int kind;
        char *id;
        int64_t at;
} NoteTask;

static int note_work(void *userdata) {
        NoteTask *t = userdata;
        JobsStore *st = t->jobs->store;

        switch (t->kind) {
        case NOTE_RELEASE:
                return jobs_store_batch_release(st, t->jobs->owner, t->id);
        case NOTE_FAIL_INPUT:
                return jobs_store_batch_fail(st, t->id, "input_file_missing",
                                             "the input file cannot be read", t->at);
        default:
                return jobs_store_sweep_files(st);
        }
}

static void note_done(void *userdata, int r) {
        NoteTask *t = userdata;

        if (t->kind == NOTE_SWEEP && r > 0)
                log_info("jobs: removed %d file(s) of interrupted uploads", r);
        else if (r < 0 && r != -ECANCELED && !jobs_store_unavailable(r))
                log_warning_errno(r, "jobs: %s%s",
                                  t->kind == NOTE_SWEEP ? "cannot sweep the uploads" : "batch ",
                                  t->id ? t->id : "");
        free(t->id);
        free(t);
}

static void note(Jobs *j, int kind, const char *id) {
        NoteTask *t = calloc(1, sizeof *t);

        if (!t || (id && !(t->id = strdup(id)))) {
                free(t);
                return;
        }
        t->jobs = j;
        t->kind = kind;
        t->at = (int64_t) time(NULL);
        if (jobs_call(j, JOBS_STORE_RUNNER, note_work, note_done, t) < 0) {
                free(t->id);
                free(t);
        }
}

/* ---- results ---- */

typedef struct ResultTask {
        Jobs *jobs;
        uint64_t serial;
        char *batch_id;
        long line;
        int ok;
        char *text;
} ResultTask;

static void result_task_free(ResultTask *t) {
        free(t->batch_id);
        free(t->text);
        free(t);
}

static int result_work(void *userdata) {
        ResultTask *t = userdata;

        return jobs_store_result_add(t->jobs->store, t->batch_id, t->line, t->ok, t->text);
}

/* What storing line @index of @b gave: @r. */
static void result_stored(Jobs *j, ActiveBatch *b, size_t index, int r) {
        if (r == -ESTALE && !b->abandon) {
                log_info("batch %s was ended on another instance, or taken over: letting it go", b->id);
                b->abandon = 1;
        } else if (r < 0 && r != -EEXIST && r != -ESTALE)
                log_error_errno(r, "batch %s: cannot store the result of line %zu", b->id, index + 1);
        if (r < 0 && r != -EEXIST && r != -ESTALE && j->shared && !b->abandon) {
                /* Going on would end the batch without this line: let it go
                 * instead; its next owner asks the lines without a result. */
                log_warning("batch %s: letting it go, another instance (or this one) resumes it", b->id);
                b->abandon = 1;
        }
}

static void result_done(void *userdata, int r) {
        ResultTask *t = userdata;
        Jobs *j = t->jobs;
        ActiveBatch *b = batch_by_serial(j, t->serial);

        if (b) {
                b->writing--;
                if (r != -ECANCELED) {
                        result_stored(j, b, (size_t) t->line, r);
                        schedule(j, 0);
                }
        }
        result_task_free(t);
}

/* Stores the output line of request @index: @response is the HTTP answer
 * the request would have had ({status_code, request_id, body}). */
static void record(Jobs *j, ActiveBatch *b, size_t index, const char *custom_id, unsigned status,
                   const char *request_id, json_t *body) {
        json_auto_t *o = NULL;
        ResultTask *t = NULL;
        char id[160];
        int r = -ENOMEM;

        snprintf(id, sizeof id, "batch_req_%s_%zu", b->id + strlen("batch_"), index);
        o = json_pack("{s:s,s:s,s:{s:i,s:s,s:o},s:n}", "id", id, "custom_id", custom_id, "response",
                      "status_code", (int) status, "request_id", request_id, "body",
                      body ? body
                           : json_pack("{s:{s:s,s:s}}", "error", "message", "out of memory", "type",
                                       "server_error"),
                      "error");
        b->done[index] = 1;
        if (o && (t = calloc(1, sizeof *t)) && (t->batch_id = strdup(b->id)) &&
            (t->text = json_dumps(o, JSON_COMPACT))) {
                t->jobs = j;
                t->serial = b->serial;
                t->line = (long) index;
                t->ok = status == 200;
                r = jobs_call(j, JOBS_STORE_RUNNER, result_work, result_done, t);
                if (r >= 0) {
                        b->writing++;
                        return;
                }
        }
        if (t)
                result_task_free(t);
        result_stored(j, b, index, r);
}

static json_t *error_body(const char *type, const char *param, const char *code, const char *message) {
        return json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", message, "type", type, "param",
                         param, "code", code);
}

/* ---- the end of a batch ---- */

typedef enum EndKind {
        END_COMPLETED, /* every line answered */
        END_CANCELLED, /* found "cancelling" (a cancel that stopped half-way) */
        END_CANCEL,    /* cancelled here, now */
        END_ELSEWHERE, /* shared: cancelled here, run by another instance (or none) */
        END_EXPIRED,   /* its window is over */
} EndKind;

typedef struct EndTask {
        Jobs *jobs;
        EndKind kind;
        char *batch_id;
        char out_id[64], err_id[64];
        int64_t at;
        long *lines; /* END_EXPIRED: the error lines of the unfinished lines */
        char **outputs;
        size_t n, n_lines;
        JobsCancelDone cancel_done; /* END_CANCEL, END_ELSEWHERE: the row after, to it */
        void *userdata;
        json_t *row;
} EndTask;

static void end_task_free(EndTask *t) {
        for (size_t i = 0; t->outputs && i < t->n; i++)
                free(t->outputs[i]);
        free(t->outputs);
        free(t->lines);
        free(t->batch_id);
        json_decref(t->row);
        free(t);
}

static int end_work(void *userdata) {
        EndTask *t = userdata;
        JobsStore *st = t->jobs->store;
        int r;

        switch (t->kind) {
        case END_COMPLETED:
                (void) jobs_store_batch_set_status(st, t->batch_id, "finalizing", "finalizing_at", t->at);
                r = jobs_store_batch_finish(st, t->batch_id, "completed", "completed_at", t->out_id,
                                            t->err_id, t->at);
                break;
        case END_CANCEL:
                (void) jobs_store_batch_set_status(st, t->batch_id, "cancelling", "cancelling_at", t->at);
                /* fall through */
        case END_CANCELLED:
                r = jobs_store_batch_finish(st, t->batch_id, "cancelled", "cancelled_at", t->out_id,
                                            t->err_id, t->at);
                break;
        case END_ELSEWHERE:
                r = jobs_store_batch_cancel(st, t->batch_id, t->out_id, t->err_id, t->at);
                break;
        default:
                r = jobs_store_batch_expire(st, t->batch_id, t->lines, t->outputs, t->n, t->out_id,
                                            t->err_id, t->at);
        }
        if (r >= 0 && t->cancel_done)
                r = jobs_store_batch_get(st, t->batch_id, &t->row);
        return r;
}

static void end_done(void *userdata, int r) {
        EndTask *t = userdata;
        Jobs *j = t->jobs;
        int cancel = t->kind == END_CANCEL || t->kind == END_CANCELLED || t->kind == END_ELSEWHERE;

        if (r == -EALREADY && t->kind != END_ELSEWHERE)
                log_info("batch %s had been ended by another instance", t->batch_id);
        else if (r < 0 && r != -EALREADY && r != -ENOENT && r != -ECANCELED)
                /* expired: it stays unfinished in the store, and the next
                 * start (or claim) finds it expired and tries again */
                log_error_errno(r, "batch %s: cannot store its end", t->batch_id);
        else if (r >= 0 && t->kind == END_EXPIRED)
                log_info("batch %s expired: %zu of %zu lines unfinished", t->batch_id, t->n, t->n_lines);
        else if (r >= 0)
                log_info("batch %s %s", t->batch_id, cancel ? "cancelled" : "completed");
        if (t->cancel_done)
                t->cancel_done(t->userdata, r, TAKE_PTR(t->row));
        if (r != -ECANCELED)
                schedule(j, 0); /* (shared) room for the next batch */
        end_task_free(t);
}

static EndTask *end_task_new(Jobs *j, EndKind kind, const char *batch_id) {
        EndTask *t = calloc(1, sizeof *t);

        if (!t || !(t->batch_id = strdup(batch_id))) {
                free(t);
                return NULL;
        }
        t->jobs = j;
        t->kind = kind;
        t->at = (int64_t) time(NULL);
        jobs_make_id("file-", t->out_id, sizeof t->out_id);
        jobs_make_id("file-", t->err_id, sizeof t->err_id);
        return t;
}

/* Sends @t on its way (its callback then frees it), or frees it. */
static int end_submit(Jobs *j, EndTask *t) {
        int r = t ? jobs_call(j, JOBS_STORE_RUNNER, end_work, end_done, t) : -ENOMEM;

        if (r < 0 && t) {
                log_error_errno(r, "batch %s: cannot store its end", t->batch_id);
                t->cancel_done = NULL;
                end_task_free(t);
        }
        return r;
}

/* Ends @b (its lines in flight cancelled first when @kind is a cancel)
 * and frees it; the store learns it on the runner's lane, after the
 * results sent before. */
static void finish(Jobs *j, ActiveBatch *b, EndKind kind) {
        drop_lines(j, b);
        (void) end_submit(j, end_task_new(j, kind, b->id));
        batch_drop(j, b);
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
        EndTask *t = end_task_new(j, END_EXPIRED, b->id);
        int r = 0;

        drop_lines(j, b);
        if (t) {
                t->outputs = calloc(MAX(b->n_lines, 1u), sizeof *t->outputs);
                t->lines = calloc(MAX(b->n_lines, 1u), sizeof *t->lines);
                t->n_lines = b->n_lines;
        }
        if (!t || !t->outputs || !t->lines)
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
                t->outputs[t->n] = o ? json_dumps(o, JSON_COMPACT) : NULL;
                if (!t->outputs[t->n]) {
                        r = -ENOMEM;
                        break;
                }
                t->lines[t->n++] = (long) i;
        }
        if (r < 0) {
                /* it stays unfinished in the store: the next start finds it expired and tries again */
                log_error_errno(r, "batch %s: cannot store its expiry", b->id);
                if (t)
                        end_task_free(t);
        } else
                (void) end_submit(j, t);
        batch_drop(j, b);
}

/* ---- loading a batch: its row, its input (on the worker), its stored lines ---- */

typedef struct LoadTask {
        Jobs *jobs;
        uint64_t serial;
        char *batch_id;
        char *input_id;
        char *status;
        int64_t expires_at;
        char *input;
        size_t input_len;
        BatchLine *lines;
        size_t n_lines;
        uint8_t *done;
        long n_done;
} LoadTask;

static void load_task_free(LoadTask *t) {
        free(t->batch_id);
        free(t->input_id);
        free(t->status);
        free(t->input);
        free(t->lines);
        free(t->done);
        free(t);
}

/* The batch @t is for, if it is still here and moad is not stopping. */
static ActiveBatch *load_batch(LoadTask *t, int result) {
        return result == -ECANCELED ? NULL : batch_by_serial(t->jobs, t->serial);
}

/* @b cannot be loaded now: forgotten (shared: its lease lapses, and it is
 * claimed again; SQLite: the next start tries again). */
static void load_fail(Jobs *j, ActiveBatch *b, int r) {
        if (r != -ENOENT)
                log_error_errno(r, "batch %s cannot be loaded", b->id);
        batch_drop(j, b);
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

/* On the store thread: the lines that have a result, and the batch in progress. */
static int load_mark_work(void *userdata) {
        LoadTask *t = userdata;
        json_auto_t *row = NULL;
        const char *status;

        t->n_done = jobs_store_results_done(t->jobs->store, t->batch_id, t->done, t->n_lines);
        if (t->n_done < 0)
                return (int) t->n_done;
        if (jobs_store_batch_get(t->jobs->store, t->batch_id, &row) >= 0 &&
            (status = json_string_value(json_object_get(row, "status"))) && streq(status, "validating"))
                (void) jobs_store_batch_set_status(t->jobs->store, t->batch_id, "in_progress",
                                                   "in_progress_at", (int64_t) time(NULL));
        return 0;
}

static void load_mark_done(void *userdata, int result) {
        LoadTask *t = userdata;
        Jobs *j = t->jobs;
        ActiveBatch *b = load_batch(t, result);

        if (!b) {
                load_task_free(t);
                return;
        }
        if (result < 0) {
                load_fail(j, b, result);
                load_task_free(t);
                return;
        }
        b->input = TAKE_PTR(t->input);
        b->input_len = t->input_len;
        b->lines = TAKE_PTR(t->lines);
        b->n_lines = t->n_lines;
        b->done = TAKE_PTR(t->done);
        if (t->n_done > 0)
                log_info("batch %s: resuming, %ld of %zu lines already answered", b->id, t->n_done,
                         b->n_lines);
        load_task_free(t);
        b->loading = 0;
        b->loaded = 1;
        if (batch_expired(b))
                expire(j, b); /* e.g. moad was down when its window ended */
        arm_expiry(j);
        schedule(j, 0);
}

/* On the jobs worker: the input read, and its lines found. */
static int load_work(void *userdata) {
        LoadTask *t = userdata;
        size_t n = 0;
        int r = jobs_store_file_read(t->jobs->store, t->input_id, JOBS_MAX_INPUT, &t->input, &t->input_len);

        if (r < 0)
                return r;
        (void) batch_input_walk(t->input, t->input_len, count_line, &n);
        t->lines = calloc(MAX(n, 1u), sizeof *t->lines);
        t->done = calloc(MAX(n, 1u), 1);
        if (!t->lines || !t->done)
                return -ENOMEM;
        (void) batch_input_walk(t->input, t->input_len, add_line, t);
        return 0;
}

/* On the loop: the input is read; now which lines are answered. */
static void load_done(void *userdata, int result) {
        LoadTask *t = userdata;
        Jobs *j = t->jobs;
        ActiveBatch *b = load_batch(t, result);
        int r;

        /* Cancelled meanwhile, or moad is stopping (the batch stays unfinished in the store). */
        if (!b) {
                load_task_free(t);
                return;
        }
        if (result < 0 && j->shared && jobs_store_unavailable(result)) {
                /* the database, not the file: the lease lapses and the batch is tried again */
                log_warning("batch %s: its input cannot be read now: %s", b->id, strerror(-result));
                batch_drop(j, b);
                load_task_free(t);
                return;
        }
        if (result < 0) {
                note(j, NOTE_FAIL_INPUT, b->id);
                log_warning("batch %s failed: input %s: %s", b->id, t->input_id, strerror(-result));
                batch_drop(j, b);
                load_task_free(t);
                return;
        }
        r = jobs_call(j, JOBS_STORE_RUNNER, load_mark_work, load_mark_done, t);
        if (r < 0) {
                load_fail(j, b, r);
                load_task_free(t);
        }
}

/* On the store thread: the batch's row. */
static int load_row_work(void *userdata) {
        LoadTask *t = userdata;
        json_auto_t *row = NULL;
        const char *status, *input_id;
        int r = jobs_store_batch_get(t->jobs->store, t->batch_id, &row);

        if (r < 0)
                return r;
        status = json_string_value(json_object_get(row, "status"));
        input_id = json_string_value(json_object_get(row, "input_file_id"));
        if (!status || !input_id)
                return -EBADMSG;
        t->expires_at = json_integer_value(json_object_get(row, "expires_at"));
        if (!(t->status = strdup(status)) || !(t->input_id = strdup(input_id)))
                return -ENOMEM;
        return 0;
}

static void load_row_done(void *userdata, int result) {
        LoadTask *t = userdata;
        Jobs *j = t->jobs;
        ActiveBatch *b = load_batch(t, result);
        int r = result;

        if (!b) {
                load_task_free(t);
                return;
        }
        if (r >= 0 && streq(t->status, "cancelling")) {
                finish(j, b, END_CANCELLED);
                load_task_free(t);
                return;
        }
        if (r >= 0) {
                if (t->expires_at > 0)
                        b->expires_at = t->expires_at;
                r = worker_submit(j->worker, load_work, load_done, t, NULL);
        }
        if (r < 0) {
                load_fail(j, b, r);
                load_task_free(t);
        }
}

/* Starts loading @b: its row (a batch being cancelled is ended then), its
 * input on the worker, its lines already answered. Returns 0 while @b is
 * loading, else < 0 (and @b is freed). */
static int batch_load(Jobs *j, ActiveBatch *b) {
        LoadTask *t = calloc(1, sizeof *t);
        int r = -ENOMEM;

        if (t && (t->batch_id = strdup(b->id))) {
                t->jobs = j;
                t->serial = b->serial;
                r = jobs_call(j, JOBS_STORE_RUNNER, load_row_work, load_row_done, t);
        }
        if (r < 0) {
                if (t)
                        load_task_free(t);
                load_fail(j, b, r);
                return r;
        }
        b->loading = 1;
        return 0;
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
        note(j, NOTE_RELEASE, b->id);
        batch_drop(j, b);
}

static int batch_adopt(Jobs *j, const char *batch_id, int64_t expires_at);

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

typedef struct ClaimTask {
        Jobs *jobs;
        char *id;
        int64_t expires_at;
} ClaimTask;

static int claim_work(void *userdata) {
        ClaimTask *t = userdata;
        Jobs *j = t->jobs;
        json_auto_t *row = NULL;
        int r = jobs_store_batch_claim(j->store, j->owner, j->lease_s, NULL, &t->id);

        if (r >= 0 && jobs_store_batch_get(j->store, t->id, &row) >= 0)
                t->expires_at = json_integer_value(json_object_get(row, "expires_at"));
        return r;
}

static void claim_done(void *userdata, int r) {
        ClaimTask *t = userdata;
        Jobs *j = t->jobs;

        j->claiming = 0;
        if (r == -ECANCELED)
                goto out;
        if (r < 0) {
                if (r != -ENOENT && !jobs_store_unavailable(r))
                        log_error_errno(r, "jobs: cannot claim a batch");
                j->claim_idle = 1;
                goto out;
        }
        if (batch_find(j, t->id))
                goto out; /* ours already (its lease had lapsed): renewed */
        log_info("batch %s claimed", t->id);
        if (batch_adopt(j, t->id, t->expires_at) < 0)
                note(j, NOTE_RELEASE, t->id);
out:
        free(t->id);
        free(t);
}

/* Shared: claims one more batch when the runner is hungry. */
static void claim(Jobs *j, unsigned max) {
        ClaimTask *t;

        if (j->claiming || j->claim_idle || !hungry(j, max))
                return;
        t = calloc(1, sizeof *t);
        if (!t)
                return;
        t->jobs = j;
        if (jobs_call(j, JOBS_STORE_RUNNER, claim_work, claim_done, t) < 0) {
                free(t);
                j->claim_idle = 1;
                return;
        }
        j->claiming = 1;
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
                else if (b->loaded && b->inflight == 0 && b->writing == 0 && next_undone(b) >= b->n_lines)
                        finish(j, b, END_COMPLETED);
        }
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        run(userdata);
        return 0;
}

/* Arms the expiry timer for the earliest window end of the batches not
 * being loaded (load_mark_done() looks at those itself). */
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
static int batch_adopt(Jobs *j, const char *batch_id, int64_t expires_at) {
        ActiveBatch *b = calloc(1, sizeof *b), **p;
        uint64_t now;

        if (!b || !(b->id = strdup(batch_id))) {
                free(b);
                return -ENOMEM;
        }
        b->serial = ++j->next_serial;
        (void) sd_event_now(j->server->event, CLOCK_MONOTONIC, &now);
        b->lease_until = now + (uint64_t) j->lease_s * USEC_PER_SEC;
        b->expires_at = expires_at;
        for (p = &j->head; *p; p = &(*p)->next_batch)
                ;
        *p = b;
        arm_expiry(j);
        schedule(j, 0);
        return 0;
}

int jobs_submit(Jobs *j, const char *batch_id, int64_t expires_at) {
        if (!j->shared)
                return batch_adopt(j, batch_id, expires_at);
        /* claimed like any other: by this runner if it has room, else by another instance */
        j->claim_idle = 0;
        schedule(j, 0);
        return 0;
}

int jobs_cancel(Jobs *j, const char *batch_id, JobsCancelDone done, void *userdata) {
        ActiveBatch *b = batch_find(j, batch_id);
        EndTask *t;
        int r;

        /* SQLite: every batch not ended is held here */
        if (!b && !j->shared)
                return -EALREADY;
        /* shared and not held here: ended at once in the store; its owner
         * (if any) lets it go when its next result is refused or at its
         * next heartbeat, whichever comes first */
        t = end_task_new(j, b ? END_CANCEL : END_ELSEWHERE, batch_id);
        if (!t)
                return -ENOMEM;
        t->cancel_done = done;
        t->userdata = userdata;
        r = jobs_call(j, JOBS_STORE_RUNNER, end_work, end_done, t);
        if (r < 0) {
                t->cancel_done = NULL;
                end_task_free(t);
                return r;
        }
        if (b) {
                drop_lines(j, b);
                batch_drop(j, b);
        }
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

/* A renewal of the leases of the batches held when it was sent. */
typedef struct RenewTask {
        Jobs *jobs;
        size_t n;
        char **ids;
        uint64_t *serials;
        uint64_t sent; /* CLOCK_MONOTONIC usec: the leases last at least a lease from then */
        json_t *rows;
} RenewTask;

static void renew_task_free(RenewTask *t) {
        for (size_t i = 0; t->ids && i < t->n; i++)
                free(t->ids[i]);
        free(t->ids);
        free(t->serials);
        json_decref(t->rows);
        free(t);
}

static int renew_work(void *userdata) {
        RenewTask *t = userdata;
        Jobs *j = t->jobs;

        return jobs_store_batch_renew(j->store, j->owner, j->lease_s, (const char *const *) t->ids, t->n,
                                      &t->rows);
}

/* Shared: the heartbeat's answer. A batch held here that has ended
 * elsewhere (cancelled on another instance) or whose lease is gone is let
 * go; the others' leases are extended. */
static void renew_done(void *userdata, int r) {
        RenewTask *t = userdata;
        Jobs *j = t->jobs;
        uint64_t now;

        j->renewing = 0;
        if (r == -ECANCELED) {
                renew_task_free(t);
                return;
        }
        (void) sd_event_now(j->server->event, CLOCK_MONOTONIC, &now);
        for (size_t i = 0; i < t->n; i++) {
                ActiveBatch *b = batch_by_serial(j, t->serials[i]);
                const char *status = r >= 0 ? renewed_status(t->rows, t->ids[i]) : NULL;

                if (!b)
                        continue; /* ended or let go meanwhile */
                if (status && status_final(status)) {
                        log_info("batch %s was ended on another instance (%s): letting it go", b->id,
                                 status);
                        batch_let_go(j, b);
                } else if (status) {
                        b->lease_until = t->sent + (uint64_t) j->lease_s * USEC_PER_SEC;
                        if (streq(status, "cancelling"))
                                /* a cancel that stopped half-way (moad died): end it */
                                finish(j, b, END_CANCELLED);
                } else if (r >= 0 || now >= b->lease_until) {
                        /* taken over, or ended elsewhere, or the lease ran out while
                         * the database was out of reach */
                        log_warning("batch %s: no longer held here (lease %s), letting it go", b->id,
                                    r >= 0 ? "lost" : "ran out");
                        batch_let_go(j, b);
                }
        }
        renew_task_free(t);
        schedule(j, 0);
}

/* Shared: the heartbeat. Renews the leases of the batches held here
 * (unless the last renewal is still on its way), then looks for work (a
 * batch created elsewhere, or one whose owner died and whose lease ran
 * out). */
static int on_heartbeat(sd_event_source *src, uint64_t usec, void *userdata) {
        Jobs *j = userdata;
        RenewTask *t = NULL;
        size_t n = 0, i = 0;

        (void) sd_event_source_set_time_relative(src, j->heartbeat_usec);
        for (ActiveBatch *b = j->head; b; b = b->next_batch)
                n++;
        if (n == 0 || j->renewing)
                goto next;
        t = calloc(1, sizeof *t);
        if (!t || !(t->ids = calloc(n, sizeof *t->ids)) || !(t->serials = calloc(n, sizeof *t->serials)))
                goto fail;
        t->jobs = j;
        (void) sd_event_now(j->server->event, CLOCK_MONOTONIC, &t->sent);
        for (ActiveBatch *b = j->head; b; b = b->next_batch, i++) {
                t->n = i + 1;
                if (!(t->ids[i] = strdup(b->id)))
                        goto fail;
                t->serials[i] = b->serial;
        }
        if (jobs_call(j, JOBS_STORE_RUNNER, renew_work, renew_done, t) < 0)
                goto fail;
        j->renewing = 1;
        goto next;
fail:
        if (t)
                renew_task_free(t);
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

/* SQLite, at start: the batches a previous run left unfinished, queued
 * again (on the loop: nothing is served yet, and SQLite is local). */
static int requeue_unfinished(Jobs *j) {
        json_auto_t *ids = NULL;
        json_t *v;
        size_t i;
        int r = jobs_store_batch_unfinished(j->store, &ids);

        if (r < 0)
                return r;
        json_array_foreach(ids, i, v) {
                json_auto_t *row = NULL;
                int64_t expires_at = 0;

                if (jobs_store_batch_get(j->store, json_string_value(v), &row) >= 0)
                        expires_at = json_integer_value(json_object_get(row, "expires_at"));
                r = batch_adopt(j, json_string_value(v), expires_at);
                if (r < 0)
                        return r;
        }
        if (json_array_size(ids) > 0)
                log_info("jobs: %zu unfinished batch(es) queued again", json_array_size(ids));
        return 0;
}

int jobs_new(Server *s, Jobs **ret) {
        const Config *cfg = s->runtime->config;
        Jobs *j;
        int r;

        j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        j->server = s;
        j->shared = cfg->knowledge.backend == KNOWLEDGE_POSTGRESQL;
        j->lease_s = cfg->jobs.lease_seconds;
        j->db_timeout_ms = cfg->jobs.db_timeout_ms;
        if (j->shared) {
                make_owner(j);
                r = jobs_store_open_shared(cfg->state_dir, cfg->jobs.db_timeout_ms, &j->store);
                if (r >= 0)
                        r = jobs_store_set_owner(j->store, j->owner);
        } else
                r = jobs_store_open(cfg->state_dir, &j->store);
        if (r < 0)
                goto fail;
        r = worker_new(s->event, "jobs-worker-done", 0, &j->worker);
        if (r < 0)
                goto fail;
        for (unsigned i = 0; i < JOBS_LANES; i++) {
                static const char *const names[JOBS_LANES] = {"jobs-store-runner-done",
                                                              "jobs-store-api-done"};
                /* PostgreSQL off the loop, each lane on its connection; SQLite on the loop as before */
                r = j->shared ? worker_new(s->event, names[i], 0, &j->lanes[i])
                              : worker_new_inline(s->event, names[i], &j->lanes[i]);
                if (r < 0)
                        goto fail;
        }
        r = ingest_jobs_new(s, j->store, j->worker, &j->ingest);
        if (r < 0)
                goto fail;
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
        note(j, NOTE_SWEEP, NULL);
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
        r = requeue_unfinished(j);
        if (r < 0)
                goto fail;
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
        /* a running pdftotext would keep worker_free() waiting up to its wall clock */
        ingest_jobs_stop(j->ingest);
        /* before the store: cancelled tasks' callbacks may look at it (and at the batches) */
        j->worker = worker_free(j->worker);
        for (unsigned i = 0; i < JOBS_LANES; i++)
                j->lanes[i] = worker_free(j->lanes[i]);
        while (j->head) {
                ActiveBatch *b = j->head;
                j->head = b->next_batch;
                /* another instance may take it at once rather than after the lease
                 * (the store threads are gone: on the loop, bounded, as moad stops) */
                if (j->shared)
                        (void) jobs_store_batch_release(j->store, j->owner, b->id);
                batch_free(b);
        }
        j->heartbeat = sd_event_source_disable_unref(j->heartbeat);
        j->timer = sd_event_source_disable_unref(j->timer);
        j->expiry = sd_event_source_disable_unref(j->expiry);
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
