/* kb-pg-async.h — knowledge searches on PostgreSQL without blocking the
 * event loop: a small pool of non-blocking libpq connections per sd-event
 * loop, each connection's socket an io source, the search a prepared
 * statement. kb.c's kb_search_start() dispatches here for a PostgreSQL
 * handle. Loop thread only (the pool of a loop is used by that loop). */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

#include "kb-pg.h"
#include "kb.h"

/* Connections per loop (knowledge.pool_size, KB_PG_DEFAULT_POOL_SIZE) and
 * searches waiting for one (knowledge.pool_queue, KB_PG_DEFAULT_POOL_QUEUE):
 * see kb-pg.h. A loop's connections go to knowledge.read_conninfo when set. */
/* After a failed connection attempt the pool waits this long before the
 * next one, doubling per failure up to the maximum; searches meanwhile
 * fail at once (-ECONNREFUSED) instead of waiting. */
#define KB_PG_BACKOFF_MIN_USEC (100ULL * 1000ULL)
#define KB_PG_BACKOFF_MAX_USEC (5ULL * 1000000ULL)
/* A search gives up this long after statement_timeout (the server's own
 * cancel normally answers first); a connection that has not answered by
 * then is closed. */
#define KB_PG_DEADLINE_GRACE_USEC (1000ULL * 1000ULL)

/**
 * kb_pg_search_start() - start kb_pg_search() on @e's pool. @pg must stay
 * open until @done ran or the search was cancelled. Returns 1 when there
 * is nothing to ask (no query terms, @limit 0: no hits, nothing called),
 * 0 when pending (*@ret valid until @done runs, which happens on the loop,
 * exactly once, never from inside this function, unless
 * kb_pg_search_cancel()), or -errno without calling anything:
 * -ECONNREFUSED (the database did not answer the last connection attempt
 * and the pool waits before the next), -EAGAIN (knowledge.pool_queue searches
 * wait already), -ENOMEM.
 */
int kb_pg_search_start(KbPg *pg, sd_event *e, const char *expr, unsigned limit, int snippets,
                       const char *const *titles, size_t n_titles, KbSearchDone done, void *userdata,
                       KbSearch **ret);

/**
 * kb_pg_check_start() - whether PostgreSQL answers, asked on @e's pool
 * ("SELECT 1" on one of its connections, connecting one if needed): for
 * /readyz, which must not make the loop wait. Same rules as
 * kb_pg_search_start(): @done gets 0 and no hits, or -errno (-ECONNREFUSED
 * at once while the pool backs off); cancelled with kb_pg_search_cancel().
 */
int kb_pg_check_start(sd_event *e, KbSearchDone done, void *userdata, KbSearch **ret);

/** kb_pg_search_cancel() - @done will not run; a result on its way is dropped. NULL is a no-op. */
void kb_pg_search_cancel(KbSearch *s);
