/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The canonical JSON writer: every text keymgr hashes or signs (audit events and their
 * before/after objects, the policy in force, checkpoint payloads) is written here, in the
 * RFC 8785 (JCS) form for the values keymgr has: no white space; strings with '"', '\\',
 * \b \f \n \r \t escaped and every other control character as \u00xx (lower case), all other
 * bytes (UTF-8 included) as they are; integers in decimal, no floats.
 *
 * The writer does not sort: callers write the members of an object in byte order of their
 * names (which is RFC 8785's order for the ASCII names keymgr uses). A writer that ran out of
 * memory stays failed: every later call does nothing and km_cjson_take() returns NULL, so a
 * caller checks once, at the end.
 *
 *   km_cjson_t b;
 *   km_cjson_init(&b);
 *   km_cjson_open(&b, '{');
 *   km_cjson_kv_str(&b, "alg", "ES256");
 *   km_cjson_kv_int(&b, "serial", 3);
 *   km_cjson_close(&b, '}');
 *   char *text = km_cjson_take(&b);       -> {"alg":"ES256","serial":3}, or NULL
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	char *buf;
	size_t len, cap;            /* len: bytes written so far (buf[len] is a NUL) */
	bool oom;
	bool first;                 /* no member written yet in the innermost object/array */
} km_cjson_t;

void km_cjson_init(km_cjson_t *b);
/* Frees the text and leaves b initialised (empty). */
void km_cjson_free(km_cjson_t *b);

/* Raw text, as is: a value that is already canonical JSON (no separator handling). */
void km_cjson_raw(km_cjson_t *b, const char *text);
/* A JSON string with the canonical escaping; NULL is written as "". */
void km_cjson_str(km_cjson_t *b, const char *s);
/* '{' or '[' / '}' or ']'. */
void km_cjson_open(km_cjson_t *b, char c);
void km_cjson_close(km_cjson_t *b, char c);

/* A member's name and ':' (with the ',' before it when needed); the caller writes the value
 * (km_cjson_open, km_cjson_raw, ...). */
void km_cjson_key(km_cjson_t *b, const char *key);
/* A whole member "key":value. */
void km_cjson_kv_str(km_cjson_t *b, const char *key, const char *v);
void km_cjson_kv_int(km_cjson_t *b, const char *key, int64_t v);
void km_cjson_kv_bool(km_cjson_t *b, const char *key, bool v);
void km_cjson_kv_null(km_cjson_t *b, const char *key);

/* The ',' before an array element when needed; the caller writes the element. */
void km_cjson_item(km_cjson_t *b);
/* A whole string element. */
void km_cjson_item_str(km_cjson_t *b, const char *v);

/*
 * Detaches the text (NUL-terminated, malloc'd: the caller frees it) and leaves b empty.
 * "" when nothing was written; NULL when the writer ran out of memory.
 */
char *km_cjson_take(km_cjson_t *b);
