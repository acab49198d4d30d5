/* docs-index.h — the documents attached to one chat request (moa.documents)
 * chunked and indexed into an in-memory knowledge base on a thread of their
 * own, so a few MiB of text (about 150 ms per MiB) never stall the event
 * loop. The result comes back to the loop through an eventfd source. */
#pragma once

#include <systemd/sd-event.h>

#include "chat-request.h"
#include "kb.h"

typedef struct DocsIndex DocsIndex;

/* Called once on the loop: 0 and the index (the callee owns it, kb_close()),
 * or -errno and NULL. */
typedef void (*DocsIndexDone)(void *userdata, int r, Kb *kb);

/**
 * docs_index_start() - index copies of @docs (@n of them) with the
 * knowledge base's section-aware chunker into a new ":memory:" Kb on a
 * detached thread; @done runs on @e's loop when it is ready, never from
 * inside this call. Returns 0 and a handle, or -errno (no callback).
 */
int docs_index_start(sd_event *e, const ChatDocument *docs, size_t n, DocsIndexDone done, void *userdata,
                     DocsIndex **ret);

/** docs_index_cancel() - @done will not run; the thread finishes on its own and frees everything. NULL ok.
 */
void docs_index_cancel(DocsIndex *x);
