/* stream-review.h — plugin review on a streamed answer.
 *
 * A plugin's review hook sees a whole answer: it may prepend a notice,
 * append a disclaimer or redact text. A streamed answer is sent while it is
 * written, and what was sent cannot be taken back. The reviewer keeps the
 * unreviewed text, reviews what has arrived at every sentence end, and
 * releases only text that two consecutive reviews agree on (so a suffix
 * the review adds at "the end so far" is never sent early, and a redaction
 * applies before its sentence leaves). No unreviewed byte is ever emitted.
 * A notice that the review puts before text already sent is appended at
 * the end of the stream instead. */
#pragma once

#include <stddef.h>

/* The review of a whole text: 0 and a malloc'd result, or -errno. */
typedef int (*StreamReviewFn)(void *userdata, const char *text, char **ret);

typedef struct StreamReview StreamReview;

/** stream_review_new() - a reviewer calling @fn(@userdata, ...). */
int stream_review_new(StreamReviewFn fn, void *userdata, StreamReview **ret);

/**
 * stream_review_feed() - @len more bytes of the unreviewed answer. Sets
 * *@ret_emit to reviewed text that may be sent now (malloc'd; NULL when
 * nothing is ready). Returns 0, -E2BIG past STREAM_REVIEW_MAX_BYTES or
 * -ENOMEM.
 */
int stream_review_feed(StreamReview *s, const char *text, size_t len, char **ret_emit);

/**
 * stream_review_finish() - the answer is complete and @answer is all of it.
 * Sets *@ret_emit to what is left to send (may be empty) and *@ret_full to
 * all the client will have seen (both malloc'd). Returns 0; 1 when the
 * final review changed text already sent (the stream then ends with what
 * was sent, every byte of it reviewed); -ENOMEM.
 */
int stream_review_finish(StreamReview *s, const char *answer, char **ret_emit, char **ret_full);

/* The same in steps, for a review that runs elsewhere (on a plugin thread):
 * append what arrived; stream_review_next() says what to review now (1 and
 * a malloc'd text, or 0 and NULL); stream_review_apply() takes the review
 * of that text and gives what may be sent. At the end, when
 * stream_review_wants_final(), review the whole answer and pass it to
 * stream_review_finish_apply() (NULL when no review is wanted; the
 * answer itself when the review failed). With stream_review_next() the
 * results are feed/finish's. */
int stream_review_append(StreamReview *s, const char *text, size_t len);
int stream_review_next(StreamReview *s, char **ret_upto);
/* stream_review_next() up to the first sentence end not yet reviewed rather
 * than the last: text that arrived during a review is still released a
 * sentence at a time. */
int stream_review_next_sentence(StreamReview *s, char **ret_upto);
int stream_review_apply(StreamReview *s, const char *reviewed, char **ret_emit);
int stream_review_wants_final(const StreamReview *s);
int stream_review_finish_apply(StreamReview *s, const char *reviewed, char **ret_emit, char **ret_full);

/** stream_review_sent() - the reviewed text sent so far (owned by @s). */
const char *stream_review_sent(const StreamReview *s);

/** stream_review_free() - NULL-safe; returns NULL. */
StreamReview *stream_review_free(StreamReview *s);

#define STREAM_REVIEW_MAX_BYTES (4u << 20)
