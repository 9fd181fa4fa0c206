/* SPDX-License-Identifier: Apache-2.0 */
/* Private to keymgr/control/: the parse of a frame's JSON body (ctl_json.c). */
#pragma once

#include <jansson.h>
#include <stddef.h>

/*
 * Parses buf[0..len) (no NUL needed) as json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL)
 * does and keeps the result only when it is an object: the same tree (the same members in
 * the same order, the same types and values), or NULL for everything jansson refuses and for
 * a valid text that is not an object. A new reference.
 *
 * Most frames are plain: ASCII strings without escapes, integers, true, false, null, shallow
 * objects and arrays. Those are built here in one pass over the bytes, with jansson's own
 * constructors; at the first byte outside that subset (an escape, a byte of 0x80 or more, a
 * fraction or exponent, a long integer, deep nesting, a duplicate member, anything jansson
 * would refuse), the partial tree is dropped and jansson parses the whole text, so its rules
 * and its refusals stay the protocol's.
 */
json_t *km_ctl_json_parse(const char *buf, size_t len);

/*
 * The subset alone: the tree km_ctl_json_parse() returns when the text is plain, NULL when
 * it is not (jansson's then). Never a tree jansson would not build (the test's invariant).
 */
json_t *km_ctl_json_parse_plain(const char *buf, size_t len);
