/* sse-parser.c — incremental text/event-stream parser. Owns only its line
 * and event buffers; every buffer is bounded by the limits given at
 * creation, so a hostile upstream cannot make it grow without end. */
#include "sse-parser.h"

#include "strbuf.h"
#include "util.h"

struct SseParser {
        size_t max_line;
        size_t max_event;
        SseEventCallback cb;
        void *userdata;

        StrBuf line;  /* the line being assembled */
        StrBuf data;  /* data lines of the pending event, joined with '\n' */
        StrBuf event; /* event: of the pending event */
        StrBuf id;    /* last id: seen (persists across events, as the spec says) */
        int has_data; /* at least one data: line in the pending event */

        int after_cr;    /* the last byte was a '\r' ending a line: a following '\n' belongs to it */
        int at_start;    /* nothing consumed yet (for the optional UTF-8 BOM) */
        size_t bom_seen; /* bytes of a BOM prefix consumed so far */
        int error;       /* sticky error, < 0 */
        size_t n_events;
};

static const unsigned char utf8_bom[3] = {0xEF, 0xBB, 0xBF};

int sse_parser_new(size_t max_line, size_t max_event, SseEventCallback cb, void *userdata, SseParser **ret) {
        SseParser *p;

        if (!cb || !ret)
                return -EINVAL;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->max_line = max_line > 0 ? max_line : SSE_DEFAULT_MAX_LINE;
        p->max_event = max_event > 0 ? max_event : SSE_DEFAULT_MAX_EVENT;
        p->cb = cb;
        p->userdata = userdata;
        p->at_start = 1;
        *ret = p;
        return 0;
}

SseParser *sse_parser_free(SseParser *p) {
        if (!p)
                return NULL;
        strbuf_done(&p->line);
        strbuf_done(&p->data);
        strbuf_done(&p->event);
        strbuf_done(&p->id);
        free(p);
        return NULL;
}

void sse_parser_reset(SseParser *p) {
        if (!p)
                return;
        p->line.len = p->data.len = p->event.len = p->id.len = 0;
        p->has_data = 0;
        p->after_cr = 0;
        p->at_start = 1;
        p->bom_seen = 0;
        p->error = 0;
        p->n_events = 0;
}

size_t sse_parser_events(const SseParser *p) {
        return p ? p->n_events : 0;
}

static int sse_dispatch(SseParser *p) {
        int r = 0;

        /* The spec: an event without any data line is not dispatched; the
         * event name is reset either way, the last id is kept. */
        if (p->has_data) {
                SseEvent ev = {
                        .event = p->event.len > 0 ? p->event.p : "",
                        .id = p->id.len > 0 ? p->id.p : "",
                        .data = p->data.len > 0 ? p->data.p : "",
                        .data_len = p->data.len,
                };
                ev.done = ev.data_len == 6 && memcmp(ev.data, "[DONE]", 6) == 0;
                p->n_events++;
                r = p->cb(p->userdata, &ev);
        }
        p->data.len = 0;
        p->event.len = 0;
        p->has_data = 0;
        return r < 0 ? r : 0;
}

static int sse_process_line(SseParser *p) {
        const char *line = p->line.len > 0 ? p->line.p : "";
        size_t len = p->line.len, nlen, vlen;
        const char *colon, *value;
        int r;

        p->line.len = 0;
        if (len == 0)
                return sse_dispatch(p);
        if (line[0] == ':') /* comment, typically a keep-alive */
                return 0;

        colon = memchr(line, ':', len);
        if (colon) {
                nlen = (size_t) (colon - line);
                value = colon + 1;
                vlen = len - nlen - 1;
                if (vlen > 0 && value[0] == ' ') {
                        value++;
                        vlen--;
                }
        } else {
                nlen = len;
                value = "";
                vlen = 0;
        }

        if (nlen == 4 && memcmp(line, "data", 4) == 0) {
                if (p->has_data) {
                        r = strbuf_append(&p->data, "\n", 1, p->max_event);
                        if (r < 0)
                                return r;
                }
                r = strbuf_append(&p->data, value, vlen, p->max_event);
                if (r < 0)
                        return r;
                p->has_data = 1;
        } else if (nlen == 5 && memcmp(line, "event", 5) == 0) {
                r = strbuf_set(&p->event, value, vlen, p->max_line);
                if (r < 0)
                        return r;
        } else if (nlen == 2 && memcmp(line, "id", 2) == 0) {
                if (!memchr(value, 0, vlen)) { /* the spec ignores ids containing NUL */
                        r = strbuf_set(&p->id, value, vlen, p->max_line);
                        if (r < 0)
                                return r;
                }
        }
        /* "retry:" and unknown fields are ignored: we never reconnect. */
        return 0;
}

int sse_parser_feed(SseParser *p, const void *buf, size_t len) {
        const char *s = buf, *end;
        int r;

        if (!p || (!buf && len > 0))
                return -EINVAL;
        if (p->error < 0)
                return p->error;
        end = s + len;

        /* An optional UTF-8 byte order mark at the very start, possibly split. */
        while (p->at_start && s < end) {
                if ((unsigned char) *s == utf8_bom[p->bom_seen]) {
                        s++;
                        if (++p->bom_seen == sizeof utf8_bom)
                                p->at_start = 0;
                        continue;
                }
                /* Not a BOM after all: replay what we swallowed as line bytes. */
                p->at_start = 0;
                if (p->bom_seen > 0) {
                        r = strbuf_append(&p->line, (const char *) utf8_bom, p->bom_seen, p->max_line);
                        if (r < 0)
                                return (p->error = r);
                }
        }

        while (s < end) {
                if (p->after_cr) {
                        p->after_cr = 0;
                        if (*s == '\n') {
                                s++;
                                continue;
                        }
                }

                const char *nl = s;
                while (nl < end && *nl != '\n' && *nl != '\r')
                        nl++;

                r = strbuf_append(&p->line, s, (size_t) (nl - s), p->max_line);
                if (r < 0)
                        return (p->error = r);
                if (nl == end)
                        break;

                p->after_cr = *nl == '\r';
                s = nl + 1;
                r = sse_process_line(p);
                if (r < 0)
                        return (p->error = r);
        }
        return 0;
}

int sse_parser_finish(SseParser *p) {
        int r;

        if (!p)
                return -EINVAL;
        if (p->error < 0)
                return p->error;
        if (p->at_start && p->bom_seen > 0) {
                /* A lone partial BOM: keep it as data, as we would have. */
                p->at_start = 0;
                r = strbuf_append(&p->line, (const char *) utf8_bom, p->bom_seen, p->max_line);
                if (r < 0)
                        return (p->error = r);
        }
        if (p->line.len > 0) {
                r = sse_process_line(p);
                if (r < 0)
                        return (p->error = r);
        }
        r = sse_dispatch(p);
        if (r < 0)
                return (p->error = r);
        p->after_cr = 0;
        return 0;
}
