/* kb-text.h — text helpers shared by the knowledge base and the extractive
 * algorithms: UTF-8 validation and repair, word characters, English
 * stop-words. Internal to the daemon (kb.c, extract.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/**
 * kb_utf8_valid_len() - length (1..4) of the valid UTF-8 sequence at @s, or
 * 0 if the @n bytes at @s do not start one (overlong forms, surrogates and
 * code points over U+10FFFF are invalid).
 */
size_t kb_utf8_valid_len(const unsigned char *s, size_t n);

/**
 * kb_utf8_decode() - the code point of the valid sequence of length @l at @s.
 */
uint32_t kb_utf8_decode(const unsigned char *s, size_t l);

/**
 * kb_utf8_sanitize() - copy @len bytes of @text replacing every invalid byte
 * with U+FFFD and NUL with a space. Returns a NUL-terminated malloc'ed
 * string (its length in *ret_len if non-NULL), NULL on OOM.
 */
char *kb_utf8_sanitize(const char *text, size_t len, size_t *ret_len);

/**
 * kb_is_word_cp() - whether @c is part of a word: ASCII letters and digits
 * and non-ASCII code points other than common punctuation, symbols, spaces
 * and emoji.
 */
int kb_is_word_cp(uint32_t c);

/**
 * kb_versioned_name() - whether the lower-case ASCII word @w (@n bytes) is
 * a name with its version joined on ("gplv3", "gpl3", "ipv6": at least two
 * letters, then only digits), the two words a text writes apart ("GPL-3").
 * Returns the number of letters (where the digits start), 0 if it is not
 * one; *@name_len is the name's length ("gpl" of "gplv3": a "v" before the
 * digits is dropped after two letters or more).
 */
size_t kb_versioned_name(const char *w, size_t n, size_t *name_len);

/** kb_is_stop_word() - whether the lower-case ASCII word @w (@n bytes) is an
 * English stop-word. */
int kb_is_stop_word(const char *w, size_t n);
