/* utf8.h — strict UTF-8 validation (common/, moactl and moad). */
#pragma once

#include <stddef.h>

/**
 * utf8_valid() - whether @n bytes at @s are strict UTF-8 (no overlong
 * forms, surrogates or code points above U+10FFFF), as JSON requires.
 */
int utf8_valid(const char *s, size_t n);
