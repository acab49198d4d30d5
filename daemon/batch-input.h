/* batch-input.h — the OpenAI Batch API input file: one JSON request per
 * line ({"custom_id", "method": "POST", "url", "body"}). Splits a file into
 * its request lines and validates them, for the upload (refused whole with
 * the first bad line named) and for the runner (which re-reads the file). */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define BATCH_ENDPOINT "/v1/chat/completions"
#define BATCH_MAX_CUSTOM_ID 512u

/* One request line: its place in the file and its bytes (no newline). */
typedef struct BatchLine {
        size_t index;   /* 0-based among request lines (blank lines skipped) */
        size_t line_no; /* 1-based physical line, for messages */
        const char *p;
        size_t len;
} BatchLine;

/* Called for every request line in order; a negative return stops the walk
 * and is returned by batch_input_walk(). */
typedef int (*BatchLineFn)(void *userdata, const BatchLine *line);

/**
 * batch_input_walk() - call @fn for each non-blank line of @data (@len
 * bytes; a UTF-8 byte order mark and "\r\n" endings are accepted). Returns
 * the number of request lines or @fn's negative return.
 */
long batch_input_walk(const char *data, size_t len, BatchLineFn fn, void *userdata);

/**
 * batch_input_check() - validate a whole input file: at most @max_lines
 * request lines, each at most @max_line_bytes, a JSON object with a unique
 * non-empty "custom_id" (at most BATCH_MAX_CUSTOM_ID bytes), "method"
 * "POST", "url" BATCH_ENDPOINT and an object "body". Returns the number of
 * lines (> 0), or -EINVAL (empty or a bad line), -E2BIG (too many lines or
 * a line too long) with a message naming the line in @err.
 */
long batch_input_check(const char *data, size_t len, unsigned max_lines, uint64_t max_line_bytes, char *err,
                       size_t err_size);

/**
 * batch_line_parse() - the custom_id and the request body of a line that
 * passed batch_input_check(): *@ret_custom_id (malloc'ed) and *@ret_body (a
 * new reference, "stream" removed: a batch line is answered whole).
 * Returns 0, -EINVAL or -ENOMEM.
 */
int batch_line_parse(const BatchLine *line, char **ret_custom_id, json_t **ret_body);
