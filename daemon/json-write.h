/* json-write.h — compact JSON text of a jansson value, byte for byte what
 * json_dumps(v, JSON_COMPACT) writes, at a fraction of its cost. */
#pragma once

#include <jansson.h>
#include <stddef.h>

/**
 * json_write_compact() - the text json_dumps(@v, JSON_COMPACT) gives
 * (keys in insertion order, non-ASCII UTF-8 as is, control characters,
 * '"' and '\\' escaped, reals formatted by jansson itself), malloc'ed and
 * NUL-terminated, its length in *@ret_len (may be NULL). jansson copies a
 * string one character at a time through a callback; this copies the runs
 * between characters that need escaping in one go (a proxied request's
 * body is mostly one long prompt string). NULL on OOM, or where json_dumps
 * would fail (@v NULL, nested too deep, a string that is not UTF-8).
 */
char *json_write_compact(const json_t *v, size_t *ret_len);
