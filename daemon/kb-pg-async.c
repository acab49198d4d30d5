/* kb-pg-async.c — see kb-pg-async.h. A loop's pool: knowledge.pool_size slots,
 * each a libpq connection made with PQconnectStartParams/PQconnectPoll and
 * then set up (statement_timeout, the search prepared) with the same
 * asynchronous calls, driven by an io source on its socket and a timer
 * (connect timeout, or the answer's deadline); a FIFO of searches waiting
 * for a free slot. Connections are made when searches need them, so an
 * idle daemon does not poll a database that is down; after a failed
 * attempt the pool backs off and searches fail at once meanwhile. Nothing
 * here blocks: libpq's only blocking steps would be a host name lookup
 * (use a socket path or hostaddr; see docs/knowledge.md) and reading the
 * password file. */
#include <pthread.h>

#include "kb-pg-async.h"
#include "log.h"
#include "util.h"

#define KB_PG_STATEMENT "moa_kb_search"

typedef struct KbPgPool KbPgPool;

typedef enum SlotState {
        SLOT_DOWN,       /* no connection */
        SLOT_CONNECTING, /* PQconnectPoll() */
        SLOT_SETUP,      /* SET statement_timeout sent */
        SLOT_PREPARE,    /* the search statement being prepared */
        SLOT_SCHEMA,     /* the tables being created (they were missing when preparing) */
        SLOT_IDLE,
        SLOT_BUSY, /* a search sent; its result may be dropped (search NULL) */
} SlotState;

typedef struct Slot {
        KbPgPool *pool;
        unsigned id;
        SlotState state;
        PGconn *conn;
        int fd;
        sd_event_source *io;
        sd_event_source *timer; /* connect timeout, or the answer's deadline */
        KbSearch *search;       /* SLOT_BUSY: whose result this is, NULL: dropped */
        PGresult *res;          /* the step's result so far: the first error, else the last */
        unsigned statement_timeout_ms;
        int schema_sent; /* SLOT_SCHEMA was tried on this connection */
} Slot;

struct KbPgPool {
        KbPgPool *next; /* in the registry */
        unsigned n_ref; /* the registry's, and one per live search */
        sd_event *event;
        sd_event_source *exit; /* the loop ending closes the connections */
        int closed;
        Slot slots[KB_PG_MAX_POOL_SIZE]; /* the first knowledge.pool_size are connected */
        KbSearch *head, *tail;           /* waiting for a slot */
        size_t n_queued;
        unsigned failures; /* connection attempts failed in a row */
        uint64_t retry_at; /* no attempt before (CLOCK_MONOTONIC usec) */
        int down;          /* told the log; said again when connected */
};

struct KbSearch {
        KbPgPool *pool;
        KbSearch *next; /* in the queue */
        int queued;
        Slot *slot; /* running on it */
        KbPg *pg;   /* borrowed: the caller keeps it open; NULL for a check */
        int check;  /* not a search: "SELECT 1", for /readyz */
        KbPgSearchParams p;
        KbSearchDone done;
        void *userdata;
        sd_event_source *deadline;
};

/* One pool per loop; loops may run on threads of their own. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static KbPgPool *registry;

static void pump(KbPgPool *pool, int may_fail);

static uint64_t loop_now(KbPgPool *pool) {
        uint64_t t;
        return sd_event_now(pool->event, CLOCK_MONOTONIC, &t) >= 0 ? t : now_usec();
}

/* ---- pool lifetime -------------------------------------------------------------- */

static void slot_reset(Slot *s) {
        s->io = sd_event_source_disable_unref(s->io);
        s->timer = sd_event_source_disable_unref(s->timer);
        PQclear(s->res);
        s->res = NULL;
        if (s->conn)
                PQfinish(s->conn);
        s->conn = NULL;
        s->fd = -1;
        s->schema_sent = 0;
        if (s->search)
                s->search->slot = NULL;
        s->search = NULL;
        s->state = SLOT_DOWN;
}

static void pool_unref(KbPgPool *pool) {
        if (!pool || --pool->n_ref > 0)
                return;
        for (unsigned i = 0; i < KB_PG_MAX_POOL_SIZE; i++)
                slot_reset(&pool->slots[i]);
        sd_event_source_disable_unref(pool->exit);
        sd_event_unref(pool->event);
        free(pool);
}

/* The loop ends: connections close now (searches still held are only
 * freed by their owners' cancel, later, and never complete). */
static int on_pool_exit(sd_event_source *src, void *userdata) {
        KbPgPool *pool = userdata;

        pool->closed = 1;
        for (unsigned i = 0; i < KB_PG_MAX_POOL_SIZE; i++)
                slot_reset(&pool->slots[i]);
        for (KbSearch *s = pool->head; s; s = s->next)
                s->deadline = sd_event_source_disable_unref(s->deadline);
        pthread_mutex_lock(&registry_lock);
        for (KbPgPool **p = &registry; *p; p = &(*p)->next)
                if (*p == pool) {
                        *p = pool->next;
                        break;
                }
        pthread_mutex_unlock(&registry_lock);
        pool->exit = sd_event_source_disable_unref(pool->exit);
        pool_unref(pool);
        return 0;
}

/* @e's pool, made at its first search; the caller gets a reference. */
static int pool_get(sd_event *e, KbPgPool **ret) {
        KbPgPool *pool;
        int r = 0;

        pthread_mutex_lock(&registry_lock);
        for (pool = registry; pool && pool->event != e; pool = pool->next)
                ;
        if (!pool) {
                pool = calloc(1, sizeof *pool);
                if (!pool) {
                        r = -ENOMEM;
                        goto out;
                }
                pool->event = sd_event_ref(e);
                pool->n_ref = 1;
                for (unsigned i = 0; i < KB_PG_MAX_POOL_SIZE; i++)
                        pool->slots[i] = (Slot){.pool = pool, .id = i, .fd = -1};
                r = sd_event_add_exit(e, &pool->exit, on_pool_exit, pool);
                if (r < 0) {
                        pool->n_ref = 1;
                        pool_unref(pool);
                        goto out;
                }
                (void) sd_event_source_set_description(pool->exit, "kb-pg-pool-exit");
                pool->next = registry;
                registry = pool;
        }
        pool->n_ref++;
        *ret = pool;
out:
        pthread_mutex_unlock(&registry_lock);
        return r;
}

/* ---- searches ------------------------------------------------------------------- */

static void queue_remove(KbSearch *s) {
        KbPgPool *pool = s->pool;

        if (!s->queued)
                return;
        for (KbSearch **p = &pool->head, *prev = NULL; *p; prev = *p, p = &(*p)->next)
                if (*p == s) {
                        *p = s->next;
                        if (pool->tail == s)
                                pool->tail = prev;
                        break;
                }
        s->next = NULL;
        s->queued = 0;
        pool->n_queued--;
}

static void queue_push(KbSearch *s, int front) {
        KbPgPool *pool = s->pool;

        if (front) {
                s->next = pool->head;
                pool->head = s;
                if (!pool->tail)
                        pool->tail = s;
        } else {
                s->next = NULL;
                if (pool->tail)
                        pool->tail->next = s;
                else
                        pool->head = s;
                pool->tail = s;
        }
        s->queued = 1;
        pool->n_queued++;
}

static void search_free(KbSearch *s) {
        queue_remove(s);
        if (s->slot) /* running: its result is dropped when it comes */
                s->slot->search = NULL;
        sd_event_source_disable_unref(s->deadline);
        kb_pg_search_params_done(&s->p);
        pool_unref(s->pool);
        free(s);
}

void kb_pg_search_cancel(KbSearch *s) {
        if (s)
                search_free(s);
}

/* Ends @s: frees it, then tells its owner (who may start or cancel others). */
static void search_complete(KbSearch *s, int r, KbHit *hits, size_t n) {
        KbSearchDone done = s->done;
        void *userdata = s->userdata;

        search_free(s);
        done(userdata, r, hits, n);
}

static int on_deadline(sd_event_source *src, uint64_t usec, void *userdata) {
        KbSearch *s = userdata;

        log_warning("kb: %s: a knowledge %s got no answer from PostgreSQL in time (%s)",
                    s->pg ? kb_pg_locator_of(s->pg) : "postgresql", s->check ? "check" : "search",
                    s->slot ? "running" : "waiting for a connection");
        search_complete(s, -ETIMEDOUT, NULL, 0);
        return 0;
}

/* ---- connections ---------------------------------------------------------------- */

static int on_slot_io(sd_event_source *src, int fd, uint32_t revents, void *userdata);
static int on_slot_timer(sd_event_source *src, uint64_t usec, void *userdata);

static int slot_watch(Slot *s, uint32_t events) {
        int fd = PQsocket(s->conn);

        if (fd < 0)
                return -EBADF;
        /* the socket changes when libpq tries the next host or address */
        if (s->io && fd == s->fd)
                return sd_event_source_set_io_events(s->io, events);
        s->io = sd_event_source_disable_unref(s->io);
        s->fd = fd;
        int r = sd_event_add_io(s->pool->event, &s->io, fd, events, on_slot_io, s);
        if (r >= 0)
                (void) sd_event_source_set_description(s->io, "kb-pg-connection");
        return r;
}

static int slot_arm(Slot *s, uint64_t usec) {
        uint64_t at = loop_now(s->pool) + usec;

        if (s->timer) {
                int r = sd_event_source_set_time(s->timer, at);
                return r < 0 ? r : sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
        }
        int r = sd_event_add_time(s->pool->event, &s->timer, CLOCK_MONOTONIC, at, 0, on_slot_timer, s);
        if (r >= 0)
                (void) sd_event_source_set_description(s->timer, "kb-pg-connection-timer");
        return r;
}

/* After a PQsend*(): the rest of the request goes out as the socket takes it. */
static int slot_flush(Slot *s) {
        int f = PQflush(s->conn);
        if (f < 0)
                return -ECONNRESET;
        return slot_watch(s, f > 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* A connection attempt failed: the pool backs off, and with nothing left
 * that could answer, the waiting searches fail (when @may_fail). */
static void slot_connect_failed(Slot *s, const char *why) {
        KbPgPool *pool = s->pool;

        log_full(pool->down ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR, 0, NULL,
                 "kb: postgresql: a search connection failed: %.*s", (int) strcspn(why, "\n"), why);
        pool->down = 1;
        pool->failures++;
        uint64_t wait = KB_PG_BACKOFF_MIN_USEC << MIN(pool->failures - 1, 16u);
        pool->retry_at = loop_now(pool) + MIN(wait, KB_PG_BACKOFF_MAX_USEC);
        slot_reset(s);
}

static void slot_connect(Slot *s) {
        _cleanup_(kb_pg_settings_done) KbPgSettings set = {0};
        int r = kb_pg_pool_settings(&set);

        if (r < 0) {
                slot_connect_failed(s, strerror(-r));
                return;
        }
        s->statement_timeout_ms = set.statement_timeout_ms;
        s->conn = PQconnectStartParams(set.keys, set.values, 1);
        if (!s->conn || PQstatus(s->conn) == CONNECTION_BAD) {
                slot_connect_failed(s, s->conn ? PQerrorMessage(s->conn) : "out of memory");
                return;
        }
        s->state = SLOT_CONNECTING;
        /* libpq: begin as if PQconnectPoll() had answered PGRES_POLLING_WRITING */
        r = slot_watch(s, EPOLLOUT);
        if (r >= 0)
                r = slot_arm(s, (uint64_t) set.connect_timeout_s * USEC_PER_SEC);
        if (r < 0)
                slot_connect_failed(s, strerror(-r));
}

/* The connection was lost (or its answer never came): a running search
 * fails with @r; the next search connects again at once. */
static void slot_lost(Slot *s, int r) {
        KbSearch *search = s->search;

        log_info("kb: postgresql: a search connection was lost (%s), reconnecting when needed",
                 strerror(-r));
        slot_reset(s);
        if (search)
                search_complete(search, r, NULL, 0);
}

static void slot_connected(Slot *s) {
        char sql[128];

        PQsetNoticeProcessor(s->conn, kb_pg_notice, NULL);
        if (PQsetnonblocking(s->conn, 1) < 0) {
                slot_connect_failed(s, PQerrorMessage(s->conn));
                return;
        }
        /* The statement is prepared to skip parsing it each time; its plan
         * is made for each search's values: the generic plan PostgreSQL
         * would switch to after five searches ignores the agent and the
         * title filter, and doubled a chat's time here (25 -> 50 ms). */
        snprintf(sql, sizeof sql, "SET statement_timeout = %u; SET plan_cache_mode = force_custom_plan",
                 s->statement_timeout_ms);
        if (!PQsendQuery(s->conn, sql) || slot_flush(s) < 0) {
                slot_connect_failed(s, PQerrorMessage(s->conn));
                return;
        }
        s->state = SLOT_SETUP;
}

/* The current step's result @res (NULL: none) is in. */
static void slot_step_done(Slot *s, PGresult *res) {
        KbPgPool *pool = s->pool;
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

        if (s->state == SLOT_PREPARE && st != PGRES_COMMAND_OK && !s->schema_sent && res &&
            streq_ptr(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42P01")) {
                /* undefined_table: the database was down when moad started,
                 * so no handle has made the tables yet; made here, as the
                 * loop's own connection used to when /readyz asked */
                _cleanup_free_ char *sql = NULL;
                if (asprintf(&sql, "BEGIN; %s COMMIT;", kb_pg_schema_sql) < 0 ||
                    !PQsendQuery(s->conn, sql) || slot_flush(s) < 0) {
                        slot_connect_failed(s, PQerrorMessage(s->conn));
                        return;
                }
                s->schema_sent = 1;
                s->state = SLOT_SCHEMA;
                return;
        }
        if (s->state == SLOT_SCHEMA) {
                if (st != PGRES_COMMAND_OK) {
                        log_error("kb: postgresql: cannot create the knowledge schema: %s",
                                  res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn));
                        slot_connect_failed(s, "no knowledge schema");
                        return;
                }
                s->state = SLOT_SETUP; /* and prepare again, below */
        }
        if (s->state == SLOT_SETUP || s->state == SLOT_PREPARE) {
                if (st != PGRES_COMMAND_OK && kb_pg_error(res, s->conn) == -ETIMEDOUT) {
                        /* preparing waits for a lock on the tables like a
                         * search: the server is up, so no backoff; the
                         * next search connects again */
                        log_info("kb: postgresql: preparing the search timed out (a table is locked?)");
                        slot_reset(s);
                        return;
                }
                if (st != PGRES_COMMAND_OK) {
                        slot_connect_failed(s, res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn));
                        return;
                }
                if (s->state == SLOT_SETUP) {
                        if (!PQsendPrepare(s->conn, KB_PG_STATEMENT, kb_pg_search_sql, KB_PG_SEARCH_PARAMS,
                                           NULL) ||
                            slot_flush(s) < 0) {
                                slot_connect_failed(s, PQerrorMessage(s->conn));
                                return;
                        }
                        s->state = SLOT_PREPARE;
                        return;
                }
                s->state = SLOT_IDLE;
                s->timer = sd_event_source_disable_unref(s->timer);
                if (pool->down)
                        log_info("kb: postgresql: search connections work again");
                pool->down = 0;
                pool->failures = 0;
                pool->retry_at = 0;
                log_debug("kb: postgresql: search connection %u ready", s->id);
                return;
        }

        /* SLOT_BUSY: a search's answer */
        KbSearch *search = s->search;
        KbHit *hits = NULL;
        size_t n = 0;
        int r = st == PGRES_TUPLES_OK ? 0 : kb_pg_error(res, s->conn);

        if (r < 0)
                log_debug("kb: postgresql: a search failed: %s",
                          res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn));
        s->search = NULL;
        s->timer = sd_event_source_disable_unref(s->timer);
        if (search)
                search->slot = NULL;
        if (r == -ECONNRESET || PQstatus(s->conn) != CONNECTION_OK)
                slot_reset(s);
        else
                s->state = SLOT_IDLE;
        if (!search)
                return; /* dropped: its owner is gone */
        if (r >= 0 && !search->check)
                r = kb_pg_search_result(search->pg, res, &search->p, &hits, &n);
        search_complete(search, r, hits, n);
}

/* Reads what arrived; each step ends when PQgetResult() says NULL. */
static void slot_read(Slot *s) {
        if (!PQconsumeInput(s->conn)) {
                if (s->state == SLOT_BUSY || s->state == SLOT_IDLE)
                        slot_lost(s, -ECONNRESET);
                else
                        slot_connect_failed(s, PQerrorMessage(s->conn));
                return;
        }
        if (s->state == SLOT_IDLE) {
                /* nothing is expected: drain notifications, notice a closed connection */
                PGnotify *nf;
                while ((nf = PQnotifies(s->conn)))
                        PQfreemem(nf);
                if (PQstatus(s->conn) != CONNECTION_OK)
                        slot_lost(s, -ECONNRESET);
                return;
        }
        while (!PQisBusy(s->conn)) {
                PGresult *res = PQgetResult(s->conn);
                if (!res) {
                        PGresult *done = s->res;
                        s->res = NULL;
                        slot_step_done(s, done);
                        PQclear(done);
                        return;
                }
                /* keep the first error, else the last result */
                if (!s->res || PQresultStatus(s->res) == PGRES_COMMAND_OK ||
                    PQresultStatus(s->res) == PGRES_TUPLES_OK) {
                        PQclear(s->res);
                        s->res = res;
                } else
                        PQclear(res);
        }
}

static int on_slot_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Slot *s = userdata;
        KbPgPool *pool = s->pool;

        pool->n_ref++; /* a search's owner may drop the last other reference */
        if (s->state == SLOT_CONNECTING) {
                PostgresPollingStatusType st = PQconnectPoll(s->conn);
                /* libpq may have closed the socket for the next address, and
                 * the new one may have the same number: watch it afresh */
                s->io = sd_event_source_disable_unref(s->io);
                switch (st) {
                case PGRES_POLLING_READING:
                        if (slot_watch(s, EPOLLIN) < 0)
                                slot_connect_failed(s, "cannot watch the socket");
                        break;
                case PGRES_POLLING_WRITING:
                        if (slot_watch(s, EPOLLOUT) < 0)
                                slot_connect_failed(s, "cannot watch the socket");
                        break;
                case PGRES_POLLING_OK:
                        slot_connected(s);
                        break;
                default:
                        slot_connect_failed(s, PQerrorMessage(s->conn));
                        break;
                }
        } else {
                if (revents & EPOLLOUT) {
                        int r = slot_flush(s);
                        if (r < 0 && (s->state == SLOT_BUSY || s->state == SLOT_IDLE))
                                slot_lost(s, -ECONNRESET);
                        else if (r < 0)
                                slot_connect_failed(s, PQerrorMessage(s->conn));
                }
                if (s->conn && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                        slot_read(s);
        }
        pump(pool, 1);
        pool_unref(pool);
        return 0;
}

static int on_slot_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        Slot *s = userdata;
        KbPgPool *pool = s->pool;

        pool->n_ref++;
        if (s->state == SLOT_BUSY) {
                log_warning("kb: postgresql: no answer %u ms past statement_timeout: closing the connection",
                            (unsigned) (KB_PG_DEADLINE_GRACE_USEC / USEC_PER_MSEC));
                slot_lost(s, -ETIMEDOUT);
        } else
                slot_connect_failed(s, "timeout expired");
        pump(pool, 1);
        pool_unref(pool);
        return 0;
}

/* Sends @search on the idle @s. Returns 0, or -ECONNRESET (@s is reset). */
static int slot_send(Slot *s, KbSearch *search) {
        if (!(search->check ? PQsendQuery(s->conn, "SELECT 1")
                            : PQsendQueryPrepared(s->conn, KB_PG_STATEMENT, KB_PG_SEARCH_PARAMS,
                                                  search->p.values, NULL, NULL, 0)) ||
            slot_flush(s) < 0 ||
            slot_arm(s, (uint64_t) s->statement_timeout_ms * USEC_PER_MSEC + KB_PG_DEADLINE_GRACE_USEC) <
                    0) {
                log_debug("kb: postgresql: cannot send a search: %s", PQerrorMessage(s->conn));
                slot_reset(s);
                return -ECONNRESET;
        }
        s->state = SLOT_BUSY;
        s->search = search;
        search->slot = s;
        return 0;
}

/* ---- the queue ------------------------------------------------------------------ */

static int slot_alive(const Slot *s) {
        return s->state != SLOT_DOWN;
}

static int pool_alive(KbPgPool *pool) {
        for (unsigned i = 0; i < KB_PG_MAX_POOL_SIZE; i++)
                if (slot_alive(&pool->slots[i]))
                        return 1;
        return 0;
}

/* Waiting searches go to idle connections; more connections are made
 * while searches wait (one attempt per waiting search at a time, unless
 * the pool backs off). With @may_fail (not inside kb_pg_search_start()),
 * when nothing could answer them the waiting searches fail. */
static void pump(KbPgPool *pool, int may_fail) {
        if (pool->closed)
                return;
        for (;;) {
                Slot *idle = NULL;
                for (unsigned i = 0; i < KB_PG_MAX_POOL_SIZE && !idle; i++)
                        if (pool->slots[i].state == SLOT_IDLE)
                                idle = &pool->slots[i];
                KbSearch *s = pool->head;
                if (!s || !idle)
                        break;
                queue_remove(s);
                if (slot_send(idle, s) < 0)
                        queue_push(s, 1); /* that connection broke: the next one, or a new one */
        }
        size_t connecting = 0;
        for (unsigned i = 0; i < KB_PG_MAX_POOL_SIZE; i++) {
                SlotState st = pool->slots[i].state;
                connecting +=
                        st == SLOT_CONNECTING || st == SLOT_SETUP || st == SLOT_PREPARE || st == SLOT_SCHEMA;
        }
        /* a reload that lowers pool_size lets the connections above it finish */
        unsigned size = kb_pg_pool_size();
        for (unsigned i = 0; i < size && pool->n_queued > connecting; i++) {
                Slot *s = &pool->slots[i];
                if (s->state != SLOT_DOWN || loop_now(pool) < pool->retry_at)
                        continue;
                slot_connect(s);
                connecting += slot_alive(s);
        }
        /* one at a time: each owner may cancel or start other searches */
        while (may_fail && pool->head && !pool_alive(pool))
                search_complete(pool->head, -ECONNREFUSED, NULL, 0);
}

static int request_start(KbSearch *s, sd_event *e, KbSearchDone done, void *userdata, KbSearch **ret);

int kb_pg_search_start(KbPg *pg, sd_event *e, const char *expr, unsigned limit, int snippets,
                       const char *const *titles, size_t n_titles, KbSearchDone done, void *userdata,
                       KbSearch **ret) {
        KbSearch *s;
        int r;

        if (!pg || !e || !expr || !done || !ret)
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        r = kb_pg_search_params(pg, expr, limit, snippets, titles, n_titles, &s->p);
        if (r < 0) {
                free(s);
                return r;
        }
        if (s->p.n_terms == 0 || s->p.limit == 0) {
                kb_pg_search_params_done(&s->p);
                free(s);
                return 1;
        }
        s->pg = pg;
        return request_start(s, e, done, userdata, ret);
}

int kb_pg_check_start(sd_event *e, KbSearchDone done, void *userdata, KbSearch **ret) {
        if (!e || !done || !ret)
                return -EINVAL;
        KbSearch *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->check = 1;
        return request_start(s, e, done, userdata, ret);
}

/* Queue @s (a search or a check; taken, freed on failure) on @e's pool. */
static int request_start(KbSearch *s, sd_event *e, KbSearchDone done, void *userdata, KbSearch **ret) {
        int r = pool_get(e, &s->pool);
        if (r < 0) {
                kb_pg_search_params_done(&s->p);
                free(s);
                return r;
        }
        s->done = done;
        s->userdata = userdata;
        if (s->pool->n_queued >= kb_pg_pool_queue()) {
                search_free(s);
                return -EAGAIN;
        }
        uint64_t wait = (uint64_t) kb_pg_statement_timeout_ms() * USEC_PER_MSEC + KB_PG_DEADLINE_GRACE_USEC;
        r = sd_event_add_time(e, &s->deadline, CLOCK_MONOTONIC, loop_now(s->pool) + wait, 0, on_deadline, s);
        if (r < 0) {
                search_free(s);
                return r;
        }
        (void) sd_event_source_set_description(s->deadline, "kb-pg-search-deadline");
        queue_push(s, 0);
        pump(s->pool, 0);
        if (s->queued && !pool_alive(s->pool)) {
                /* down, and the pool waits before trying again */
                search_free(s);
                return -ECONNREFUSED;
        }
        *ret = s;
        return 0;
}
