/* route-job.c — see route-job.h. */
#include "log.h"
#include "route-job.h"
#include "util.h"

typedef struct RouteSlot {
        RouteJob *job;
        PluginCall *call;
        char *reason;
        KbSearch *search; /* explained: the documents of a PostgreSQL base, searched on the pool */
        char *documents;
} RouteSlot;

struct RouteJob {
        AgentSet *set;
        char *query;
        char **pinned;
        size_t n_pinned;
        int explain;
        size_t n, n_pending;
        AgentScore *scores;
        RouteSlot *slots;
        sd_event_source *defer; /* finishes a job that needed no call */
        RouteJobDone done;
        void *userdata;
};

void route_job_cancel(RouteJob *j) {
        if (!j)
                return;
        for (size_t i = 0; j->slots && i < j->n; i++) {
                plugin_call_cancel(j->slots[i].call);
                kb_search_cancel(j->slots[i].search);
                free(j->slots[i].reason);
                free(j->slots[i].documents);
        }
        sd_event_source_disable_unref(j->defer);
        strv_free_n(j->pinned, j->n_pinned);
        free(j->slots);
        free(j->scores);
        free(j->query);
        free(j);
}

static void job_finish(RouteJob *j) {
        RouteResult rr = ROUTE_RESULT_INIT;
        int r = agents_route_scored(j->set, j->query, (const char *const *) j->pinned, j->n_pinned,
                                    j->explain, j->scores, &rr);
        RouteJobDone done = j->done;
        void *userdata = j->userdata;

        /* free first: the callback may end whatever owns the job */
        route_job_cancel(j);
        done(userdata, r, &rr);
        route_result_done(&rr);
}

static int on_defer(sd_event_source *s, void *userdata) {
        job_finish(userdata);
        return 0;
}

/* The reason shown for an agent whose score is not the plugin's own. */
static void slot_reason(RouteSlot *s, AgentScore *sc, const char *what, const char *why) {
        free(s->reason);
        if (asprintf(&s->reason, "%s%s", what, why) < 0)
                s->reason = NULL;
        sc->reason = s->reason;
}

static void on_score(void *userdata, PluginCallResult *res) {
        RouteSlot *s = userdata;
        RouteJob *j = s->job;
        size_t i = (size_t) (s - j->slots);
        AgentScore *sc = &j->scores[i];

        s->call = NULL;
        if (res->error == 0) {
                sc->score = res->score;
                s->reason = TAKE_PTR(res->reason);
                sc->reason = s->reason;
        } else if (res->error == -ETIMEDOUT)
                slot_reason(s, sc, "score over its time budget: counted as 0", "");
        else
                slot_reason(s, sc, "score failed: ", strerror(-res->error));
        if (--j->n_pending == 0)
                job_finish(j);
}

/* An explained route's documents of one agent (set as given to it). */
static void slot_documents(RouteSlot *s, KbHit *hits, size_t n) {
        char titles[256];
        free(s->documents);
        s->documents = strdup(agents_titles(hits, n, titles, sizeof(titles)));
        s->job->scores[s - s->job->slots].documents = s->documents;
}

static void on_documents(void *userdata, int r, KbHit *hits, size_t n) {
        RouteSlot *s = userdata;
        RouteJob *j = s->job;

        s->search = NULL;
        if (r >= 0)
                slot_documents(s, hits, n);
        kb_hits_free(hits, n);
        if (--j->n_pending == 0)
                job_finish(j);
}

int route_job_start(sd_event *e, const PluginBudget *budget, AgentSet *set, const char *query,
                    const char *const *pinned, size_t n_pinned, int explain, RouteJobDone done,
                    void *userdata, RouteJob **ret) {
        RouteJob *j;
        int r;

        if (!e || !budget || !set || !query || !done || !ret)
                return -EINVAL;
        j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        j->set = set;
        j->explain = explain;
        j->done = done;
        j->userdata = userdata;
        j->n = agents_count(set);
        j->query = strdup(query);
        j->scores = calloc(MAX(j->n, (size_t) 1), sizeof *j->scores);
        j->slots = calloc(MAX(j->n, (size_t) 1), sizeof *j->slots);
        if (!j->query || !j->scores || !j->slots)
                goto oom;
        if (n_pinned > 0) {
                j->pinned = calloc(n_pinned, sizeof(char *));
                if (!j->pinned)
                        goto oom;
                for (; j->n_pinned < n_pinned; j->n_pinned++)
                        if (!(j->pinned[j->n_pinned] =
                                      strdup(pinned[j->n_pinned] ? pinned[j->n_pinned] : "")))
                                goto oom;
        }

        for (size_t i = 0; i < j->n; i++) {
                PluginAgent *p = agent_plugin(agents_get(set, i));
                RouteSlot *s = &j->slots[i];
                PluginCallInput in = {};

                s->job = j;
                if (!agents_route_wanted(set, i, (const char *const *) j->pinned, j->n_pinned))
                        continue;
                in.text = strdup(query);
                if (!in.text)
                        goto oom;
                r = plugin_call_start(e, budget, p, PLUGIN_CB_SCORE, &in, on_score, s, &s->call);
                if (r == -EPERM) {
                        j->scores[i].skip = 1;
                        slot_reason(s, &j->scores[i], "quarantined after repeated plugin timeouts", "");
                } else if (r < 0)
                        slot_reason(s, &j->scores[i], "score not asked: ",
                                    r == -EBUSY    ? "the plugin is stuck in an earlier call"
                                    : r == -EAGAIN ? "too many plugin threads are stuck"
                                                   : strerror(-r));
                else
                        j->n_pending++;

                /* An explanation names the documents a search finds first:
                 * for PostgreSQL searched here, on the loop's pool, rather
                 * than by agents_route_scored(), which would wait. */
                Kb *kb = agent_kb(agents_get(set, i));
                if (explain && kb_pg(kb)) {
                        KbHit *hits = NULL;
                        size_t n_hits = 0;
                        r = kb_search_start(kb, e, query, 2, 1, NULL, 0, on_documents, s, &s->search, &hits,
                                            &n_hits);
                        if (r == 0)
                                j->n_pending++;
                        else if (r > 0)
                                slot_documents(s, hits, n_hits);
                        kb_hits_free(hits, n_hits);
                }
        }
        if (j->n_pending == 0) {
                r = sd_event_add_defer(e, &j->defer, on_defer, j);
                if (r < 0) {
                        route_job_cancel(j);
                        return r;
                }
                (void) sd_event_source_set_description(j->defer, "route-job-finish");
        }
        *ret = j;
        return 0;
oom:
        route_job_cancel(j);
        return -ENOMEM;
}
