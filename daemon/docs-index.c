/* docs-index.c — see docs-index.h. The thread and the loop share one job,
 * reference-counted: whoever drops the last reference frees it, so a
 * request cancelled mid-indexing leaves the thread nothing dangling. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "docs-index.h"
#include "log.h"
#include "util.h"

struct DocsIndex {
        atomic_int refs;
        int efd;
        sd_event_source *source;
        ChatDocument *docs; /* copies */
        size_t n;
        Kb *kb;
        int r;
        DocsIndexDone done;
        void *userdata;
};

static void job_unref(DocsIndex *x) {
        if (atomic_fetch_sub(&x->refs, 1) != 1)
                return;
        sd_event_source_disable_unref(x->source);
        if (x->efd >= 0)
                close(x->efd);
        for (size_t i = 0; i < x->n; i++) {
                free(x->docs[i].title);
                free(x->docs[i].source);
                free(x->docs[i].text);
        }
        free(x->docs);
        kb_close(x->kb);
        free(x);
}

static void *index_main(void *userdata) {
        DocsIndex *x = userdata;
        KbChunkOpts opts = KB_CHUNK_OPTS_DEFAULT;
        uint64_t one = 1;
        int r = kb_open(":memory:", 0, &x->kb);

        for (size_t i = 0; r >= 0 && i < x->n; i++)
                r = kb_ingest(x->kb, x->docs[i].title, x->docs[i].source, x->docs[i].text, x->docs[i].len,
                              &opts);
        x->r = r < 0 ? r : 0;
        if (write(x->efd, &one, sizeof one) < 0)
                log_warning_errno(-errno, "docs-index: cannot wake the loop");
        job_unref(x);
        return NULL;
}

static int on_ready(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        DocsIndex *x = userdata;
        uint64_t v;
        Kb *kb;

        (void) read(fd, &v, sizeof v);
        x->source = sd_event_source_disable_unref(x->source);
        kb = x->r >= 0 ? TAKE_PTR(x->kb) : NULL;
        x->done(x->userdata, x->r, kb);
        job_unref(x); /* the loop's reference */
        return 0;
}

int docs_index_start(sd_event *e, const ChatDocument *docs, size_t n, DocsIndexDone done, void *userdata,
                     DocsIndex **ret) {
        DocsIndex *x = calloc(1, sizeof *x);
        pthread_t t;
        int r;

        if (!x)
                return -ENOMEM;
        atomic_init(&x->refs, 1);
        x->done = done;
        x->userdata = userdata;
        x->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        x->docs = calloc(n + 1, sizeof *x->docs);
        if (x->efd < 0 || !x->docs) {
                r = x->efd < 0 ? -errno : -ENOMEM;
                goto fail;
        }
        for (; x->n < n; x->n++) {
                ChatDocument *d = &x->docs[x->n];
                d->title = strdup(docs[x->n].title);
                d->source = strdup(docs[x->n].source);
                d->text = malloc(docs[x->n].len + 1);
                if (d->text) {
                        memcpy(d->text, docs[x->n].text, docs[x->n].len);
                        d->text[docs[x->n].len] = 0;
                }
                d->len = docs[x->n].len;
                if (!d->title || !d->source || !d->text) {
                        x->n++;
                        r = -ENOMEM;
                        goto fail;
                }
        }
        r = sd_event_add_io(e, &x->source, x->efd, EPOLLIN, on_ready, x);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(x->source, "docs-index");
        atomic_fetch_add(&x->refs, 1); /* the thread's */
        r = -pthread_create(&t, NULL, index_main, x);
        if (r < 0) {
                atomic_fetch_sub(&x->refs, 1);
                goto fail;
        }
        pthread_detach(t);
        *ret = x;
        return 0;
fail:
        job_unref(x);
        return r;
}

void docs_index_cancel(DocsIndex *x) {
        if (!x)
                return;
        x->source = sd_event_source_disable_unref(x->source);
        job_unref(x);
}
