/* curl-glue.c — owns one CURLM and the sd-event sources that drive it:
 * one io source per socket curl watches (stored with curl_multi_assign),
 * one time source for curl's timeout, and one defer source that drains
 * curl_multi_info_read() and calls the per-transfer completion callbacks. */
#include "curl-glue.h"

#include <sys/epoll.h>

#include "log.h"
#include "util.h"

typedef struct CurlGlueIo CurlGlueIo;
typedef struct CurlGlueXfer CurlGlueXfer;

/* A watched socket. Kept in a list so curl_glue_free() can drop sources
 * curl never asked us to remove. */
struct CurlGlueIo {
        sd_event_source *source;
        curl_socket_t fd;
        CurlGlueIo *prev, *next;
};

/* Per-transfer bookkeeping, reachable from the easy via CURLOPT_PRIVATE. */
struct CurlGlueXfer {
        CURL *easy;
        CurlGlueDone done;
        void *userdata;
        CurlGlueXfer *prev, *next;
};

struct CurlGlue {
        sd_event *event;
        CURLM *multi;
        char *description;
        sd_event_source *timer;
        sd_event_source *kick; /* curl's 0 ms timeouts: a defer, no timerfd re-arm */
        sd_event_source *drain;
        CurlGlueIo *ios;
        CurlGlueXfer *xfers;
        unsigned n_xfers;
};

static void glue_set_description(CurlGlue *g, sd_event_source *s, const char *what) {
        char buf[128];

        snprintf(buf, sizeof buf, "%s-%s", g->description, what);
        (void) sd_event_source_set_description(s, buf);
}

/* After curl did work, finished transfers may be waiting: drain them from
 * the defer source, outside any curl call. */
static void glue_schedule_drain(CurlGlue *g) {
        (void) sd_event_source_set_enabled(g->drain, SD_EVENT_ONESHOT);
}

static void glue_xfer_unlink(CurlGlue *g, CurlGlueXfer *x) {
        if (x->prev)
                x->prev->next = x->next;
        else
                g->xfers = x->next;
        if (x->next)
                x->next->prev = x->prev;
        g->n_xfers--;
        free(x);
}

static int glue_on_drain(sd_event_source *s, void *userdata) {
        CurlGlue *g = userdata;
        CURLMsg *msg;
        int left;

        /* Removing handles (ours below, or the callback's) while reading
         * messages is allowed by libcurl; removal drops their messages. */
        while ((msg = curl_multi_info_read(g->multi, &left))) {
                CurlGlueXfer *x = NULL;
                CURL *easy = msg->easy_handle;
                CURLcode result = msg->data.result;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &x) != CURLE_OK || !x)
                        continue;

                CurlGlueDone done = x->done;
                void *ud = x->userdata;

                curl_multi_remove_handle(g->multi, easy);
                (void) curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
                glue_xfer_unlink(g, x);
                done(g, easy, result, ud);
        }
        return 0;
}

static int glue_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        CurlGlue *g = userdata;
        int action = 0, running;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & EPOLLERR)
                action |= CURL_CSELECT_ERR;

        if (curl_multi_socket_action(g->multi, fd, action, &running) != CURLM_OK)
                log_debug("curl: failed to propagate I/O event on fd %d", fd);
        glue_schedule_drain(g);
        return 0;
}

static int glue_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        CurlGlue *g = userdata;
        int running;

        if (curl_multi_socket_action(g->multi, CURL_SOCKET_TIMEOUT, 0, &running) != CURLM_OK)
                log_debug("curl: failed to propagate timeout");
        glue_schedule_drain(g);
        return 0;
}

static int glue_on_kick(sd_event_source *s, void *userdata) {
        return glue_on_timer(s, 0, userdata);
}

static void glue_io_free(CurlGlue *g, CurlGlueIo *io) {
        if (io->prev)
                io->prev->next = io->next;
        else
                g->ios = io->next;
        if (io->next)
                io->next->prev = io->prev;
        sd_event_source_disable_unref(io->source);
        free(io);
}

static int glue_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userdata, void *socketp) {
        CurlGlue *g = userdata;
        CurlGlueIo *io = socketp;
        uint32_t events = 0;

        if (what == CURL_POLL_REMOVE) {
                if (io) {
                        curl_multi_assign(g->multi, fd, NULL);
                        glue_io_free(g, io);
                }
                return 0;
        }

        if (what == CURL_POLL_IN)
                events = EPOLLIN;
        else if (what == CURL_POLL_OUT)
                events = EPOLLOUT;
        else if (what == CURL_POLL_INOUT)
                events = EPOLLIN | EPOLLOUT;

        if (io) {
                if (sd_event_source_set_io_events(io->source, events) < 0 ||
                    sd_event_source_set_enabled(io->source, SD_EVENT_ON) < 0)
                        return -1;
                return 0;
        }

        io = calloc(1, sizeof *io);
        if (!io)
                return -1;
        io->fd = fd;
        if (sd_event_add_io(g->event, &io->source, fd, events, glue_on_io, g) < 0) {
                free(io);
                return -1;
        }
        glue_set_description(g, io->source, "io");
        if (curl_multi_assign(g->multi, fd, io) != CURLM_OK) {
                sd_event_source_disable_unref(io->source);
                free(io);
                return -1;
        }
        io->next = g->ios;
        if (g->ios)
                g->ios->prev = io;
        g->ios = io;
        return 0;
}

/* curl asks to be called back after @timeout_ms (-1: never); each call
 * replaces the previous one. We only arm a source here: calling curl from
 * inside this callback is forbidden.
 *
 * Every change of the earliest timer costs sd-event a timerfd_settime, and
 * curl moves its timer several times per transfer. So a 0 ms timeout (the
 * kick of a new transfer) runs from a defer source, and a timeout of a
 * second or more (connect and transfer timeouts) gets 250 ms of slack, which
 * lets sd-event put it on a 250 ms grid shared with the other long timers. */
static int glue_timer_cb(CURLM *multi, long timeout_ms, void *userdata) {
        CurlGlue *g = userdata;
        uint64_t now, usec;

        if (timeout_ms <= 0) {
                if (sd_event_source_set_enabled(g->timer, SD_EVENT_OFF) < 0)
                        return -1;
                return sd_event_source_set_enabled(g->kick,
                                                   timeout_ms == 0 ? SD_EVENT_ONESHOT : SD_EVENT_OFF) < 0
                               ? -1
                               : 0;
        }
        if (sd_event_source_set_enabled(g->kick, SD_EVENT_OFF) < 0 ||
            sd_event_now(g->event, CLOCK_MONOTONIC, &now) < 0)
                return -1;
        /* Round up so we never wake before curl's deadline and spin. */
        usec = now + (uint64_t) timeout_ms * USEC_PER_MSEC + USEC_PER_MSEC - 1;
        if (sd_event_source_set_time_accuracy(g->timer, timeout_ms >= 1000 ? 250 * USEC_PER_MSEC : 1) < 0 ||
            sd_event_source_set_time(g->timer, usec) < 0 ||
            sd_event_source_set_enabled(g->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

int curl_glue_new(sd_event *e, const char *description, CurlGlue **ret) {
        CurlGlue *g;

        if (!e || !ret)
                return -EINVAL;
        g = calloc(1, sizeof *g);
        if (!g)
                return -ENOMEM;
        g->event = sd_event_ref(e);
        g->description = strdup(description ? description : "curl");
        g->multi = curl_multi_init();
        if (!g->description || !g->multi)
                goto fail_nomem;

        /* Accuracy 1 us: the default (0 = 250 ms of coalescing slack) would
         * delay curl's short timeouts, e.g. the 0 ms kick of a new transfer. */
        if (sd_event_add_time(e, &g->timer, CLOCK_MONOTONIC, UINT64_MAX, 1, glue_on_timer, g) < 0 ||
            sd_event_add_defer(e, &g->kick, glue_on_kick, g) < 0 ||
            sd_event_add_defer(e, &g->drain, glue_on_drain, g) < 0)
                goto fail_nomem;
        (void) sd_event_source_set_enabled(g->timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(g->kick, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(g->drain, SD_EVENT_OFF);
        glue_set_description(g, g->timer, "timer");
        glue_set_description(g, g->kick, "kick");
        glue_set_description(g, g->drain, "drain");

        if (curl_multi_setopt(g->multi, CURLMOPT_SOCKETFUNCTION, glue_socket_cb) != CURLM_OK ||
            curl_multi_setopt(g->multi, CURLMOPT_SOCKETDATA, g) != CURLM_OK ||
            curl_multi_setopt(g->multi, CURLMOPT_TIMERFUNCTION, glue_timer_cb) != CURLM_OK ||
            curl_multi_setopt(g->multi, CURLMOPT_TIMERDATA, g) != CURLM_OK) {
                curl_glue_free(g);
                return -EIO;
        }
        *ret = g;
        return 0;

fail_nomem:
        curl_glue_free(g);
        return -ENOMEM;
}

CurlGlue *curl_glue_free(CurlGlue *g) {
        if (!g)
                return NULL;
        while (g->xfers) {
                CURL *easy = g->xfers->easy;
                if (g->multi)
                        curl_multi_remove_handle(g->multi, easy);
                (void) curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
                glue_xfer_unlink(g, g->xfers);
        }
        if (g->multi)
                curl_multi_cleanup(g->multi);
        while (g->ios)
                glue_io_free(g, g->ios);
        sd_event_source_disable_unref(g->timer);
        sd_event_source_disable_unref(g->kick);
        sd_event_source_disable_unref(g->drain);
        sd_event_unref(g->event);
        free(g->description);
        free(g);
        return NULL;
}

int curl_glue_add(CurlGlue *g, CURL *easy, CurlGlueDone done, void *userdata) {
        CurlGlueXfer *x;

        if (!g || !easy || !done)
                return -EINVAL;
        x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        *x = (CurlGlueXfer){.easy = easy, .done = done, .userdata = userdata, .next = g->xfers};
        if (curl_easy_setopt(easy, CURLOPT_PRIVATE, x) != CURLE_OK) {
                free(x);
                return -EIO;
        }
        if (g->xfers)
                g->xfers->prev = x;
        g->xfers = x;
        g->n_xfers++;

        /* This calls our timer callback (timeout 0), which kicks the transfer
         * off from the loop. */
        if (curl_multi_add_handle(g->multi, easy) != CURLM_OK) {
                (void) curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
                glue_xfer_unlink(g, x);
                return -EIO;
        }
        return 0;
}

void curl_glue_remove(CurlGlue *g, CURL *easy) {
        CurlGlueXfer *x = NULL;

        if (!g || !easy)
                return;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &x) != CURLE_OK || !x)
                return;
        for (CurlGlueXfer *i = g->xfers; i; i = i->next)
                if (i == x) {
                        curl_multi_remove_handle(g->multi, easy);
                        (void) curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
                        glue_xfer_unlink(g, x);
                        return;
                }
}

CURLM *curl_glue_multi(CurlGlue *g) {
        return g ? g->multi : NULL;
}

unsigned curl_glue_n_transfers(const CurlGlue *g) {
        return g ? g->n_xfers : 0;
}
