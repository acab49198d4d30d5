/* stream-review.c — see stream-review.h. */
#include "stream-review.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "util.h"

struct StreamReview {
        StreamReviewFn fn;
        void *userdata;
        StrBuf raw;      /* the unreviewed answer so far */
        size_t checked;  /* raw bytes already looked at for a sentence end */
        size_t reviewed; /* raw bytes the last review covered */
        StrBuf sent;     /* reviewed text released so far */
        char *pending;   /* the previous review's text after `sent`, not yet confirmed */
        int broken;      /* a review changed released text: release nothing more */
};

int stream_review_new(StreamReviewFn fn, void *userdata, StreamReview **ret) {
        StreamReview *s;

        if (!fn || !ret)
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->fn = fn;
        s->userdata = userdata;
        *ret = s;
        return 0;
}

StreamReview *stream_review_free(StreamReview *s) {
        if (!s)
                return NULL;
        strbuf_done(&s->raw);
        strbuf_done(&s->sent);
        free(s->pending);
        free(s);
        return NULL;
}

const char *stream_review_sent(const StreamReview *s) {
        return s && s->sent.p ? s->sent.p : "";
}

/* Where the last sentence that ends in raw[from..] ends (after its
 * newline, or after the space that follows . ! ?); 0 when none does. */
static size_t last_sentence_end(const StreamReview *s, size_t from) {
        size_t end = 0;
        for (size_t i = from; i < s->raw.len; i++) {
                char c = s->raw.p[i];
                if (c == '\n')
                        end = i + 1;
                else if ((c == '.' || c == '!' || c == '?') && i + 1 < s->raw.len &&
                         (s->raw.p[i + 1] == ' ' || s->raw.p[i + 1] == '\n'))
                        end = i + 2;
        }
        return end;
}

static size_t common_prefix(const char *a, const char *b) {
        size_t n = 0;
        while (a[n] && a[n] == b[n])
                n++;
        /* never split a UTF-8 sequence */
        while (n > 0 && ((unsigned char) b[n] & 0xC0) == 0x80)
                n--;
        return n;
}

/* Where `sent` starts in the review @r: 0 normally, later when the review
 * put something (a notice) before it; -1 when it is not there whole. */
static long sent_offset(const StreamReview *s, const char *r) {
        const char *p;

        if (s->sent.len == 0 || strncmp(r, s->sent.p, s->sent.len) == 0)
                return 0;
        p = strstr(r, s->sent.p);
        return p ? (long) (p - r) : -1;
}

/* Release what the review @r of the first `reviewed` bytes and the
 * previous review agree on after `sent`. */
int stream_review_apply(StreamReview *s, const char *r, char **ret_emit) {
        long off;

        if (!s || !r || !ret_emit)
                return -EINVAL;
        *ret_emit = NULL;
        if (s->broken)
                return 0;
        off = sent_offset(s, r);
        if (off < 0) {
                s->broken = 1;
                return 0;
        }
        const char *tail = r + off + s->sent.len;
        if (s->pending) {
                size_t n = common_prefix(s->pending, tail);
                if (n > 0) {
                        *ret_emit = strndup(tail, n);
                        if (!*ret_emit || strbuf_append(&s->sent, tail, n, STREAM_REVIEW_MAX_BYTES) < 0)
                                return -ENOMEM;
                        tail += n;
                }
        }
        free(s->pending);
        s->pending = strdup(tail);
        return s->pending ? 0 : -ENOMEM;
}

int stream_review_append(StreamReview *s, const char *text, size_t len) {
        if (!s || (!text && len))
                return -EINVAL;
        return strbuf_append(&s->raw, text ? text : "", len, STREAM_REVIEW_MAX_BYTES);
}

int stream_review_next(StreamReview *s, char **ret_upto) {
        size_t from, end;

        if (!s || !ret_upto)
                return -EINVAL;
        *ret_upto = NULL;
        if (s->broken || !s->raw.p)
                return 0;
        /* a sentence end may straddle two deltas: look one byte back */
        from = s->checked > 0 ? s->checked - 1 : 0;
        s->checked = s->raw.len;
        end = last_sentence_end(s, from);
        if (end <= s->reviewed) /* the same text reviewed twice would confirm its suffix */
                return 0;
        s->reviewed = end;
        *ret_upto = strndup(s->raw.p, end);
        return *ret_upto ? 1 : -ENOMEM;
}

int stream_review_next_sentence(StreamReview *s, char **ret_upto) {
        if (!s || !ret_upto)
                return -EINVAL;
        *ret_upto = NULL;
        if (s->broken || !s->raw.p)
                return 0;
        int words = 0; /* a step of blanks alone would review the same text twice */
        for (size_t i = s->reviewed; i < s->raw.len; i++) {
                char c = s->raw.p[i];
                size_t end = 0;
                if (!strchr(" \t\r\n", c))
                        words = 1;
                if (!words)
                        continue;
                if (c == '\n')
                        end = i + 1;
                else if ((c == '.' || c == '!' || c == '?') && i + 1 < s->raw.len &&
                         (s->raw.p[i + 1] == ' ' || s->raw.p[i + 1] == '\n'))
                        end = i + 2;
                if (end) {
                        s->reviewed = s->checked = end;
                        *ret_upto = strndup(s->raw.p, end);
                        return *ret_upto ? 1 : -ENOMEM;
                }
        }
        return 0;
}

int stream_review_feed(StreamReview *s, const char *text, size_t len, char **ret_emit) {
        _cleanup_free_ char *upto = NULL, *r = NULL;
        int k;

        if (!s || (!text && len) || !ret_emit)
                return -EINVAL;
        *ret_emit = NULL;
        k = stream_review_append(s, text, len);
        if (k >= 0)
                k = stream_review_next(s, &upto);
        if (k <= 0)
                return k;
        k = s->fn(s->userdata, upto, &r);
        if (k < 0)
                return k;
        return stream_review_apply(s, r, ret_emit);
}

int stream_review_wants_final(const StreamReview *s) {
        return s && !s->broken;
}

/* @p without the white space around it (a new string). */
static char *trimmed(const char *p, size_t n) {
        while (n > 0 && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
                p++, n--;
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\t' || p[n - 1] == '\r'))
                n--;
        return strndup(p, n);
}

int stream_review_finish(StreamReview *s, const char *answer, char **ret_emit, char **ret_full) {
        _cleanup_free_ char *r = NULL;
        int k;

        if (!s || !answer || !ret_emit || !ret_full)
                return -EINVAL;
        if (!s->broken) {
                k = s->fn(s->userdata, answer, &r);
                if (k < 0)
                        r = strdup(answer); /* as the unstreamed path: a failed review changes nothing */
                if (!r)
                        return -ENOMEM;
        }
        return stream_review_finish_apply(s, r, ret_emit, ret_full);
}

int stream_review_finish_apply(StreamReview *s, const char *r, char **ret_emit, char **ret_full) {
        _cleanup_free_ char *notice = NULL;
        StrBuf emit = {}, full = {};
        long off = -1;
        int changed = 0;

        if (!s || !ret_emit || !ret_full || (!r && !s->broken))
                return -EINVAL;
        if (!s->broken)
                off = sent_offset(s, r);
        if (off < 0)
                changed = 1;
        else {
                const char *tail = r + off + s->sent.len;
                if (strbuf_append(&emit, tail, strlen(tail), STREAM_REVIEW_MAX_BYTES) < 0)
                        goto nomem;
                if (off > 0) { /* a notice the review put first: it comes last */
                        notice = trimmed(r, (size_t) off);
                        if (!notice)
                                goto nomem;
                        if (*notice &&
                            (strbuf_append(&emit, "\n\n", 2, STREAM_REVIEW_MAX_BYTES) < 0 ||
                             strbuf_append(&emit, notice, strlen(notice), STREAM_REVIEW_MAX_BYTES) < 0))
                                goto nomem;
                }
        }
        if (strbuf_append(&full, stream_review_sent(s), s->sent.len, STREAM_REVIEW_MAX_BYTES) < 0 ||
            strbuf_append(&full, emit.p ? emit.p : "", emit.len, STREAM_REVIEW_MAX_BYTES) < 0)
                goto nomem;
        *ret_emit = emit.p ? emit.p : strdup("");
        *ret_full = full.p ? full.p : strdup("");
        if (!*ret_emit || !*ret_full) {
                free(*ret_emit);
                free(*ret_full);
                return -ENOMEM;
        }
        return changed;
nomem:
        strbuf_done(&emit);
        strbuf_done(&full);
        return -ENOMEM;
}
