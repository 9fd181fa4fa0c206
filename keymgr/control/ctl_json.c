/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A frame's JSON body, parsed on every request keymgrd answers (ctl_json.h). jansson's
 * json_loadb reads a text one byte at a time through a callback, copies every string twice
 * and checks UTF-8 on the way: for a sign request, about three quarters of its time goes to
 * reading, not to building the tree. Here the plain subset is read directly from the buffer
 * and built with the same constructors jansson's parser calls; everything else is handed to
 * jansson whole. Nothing is accepted here that jansson refuses: tests/control/test_ctl_json.c
 * compares the two on a corpus of valid and invalid texts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "keymgr/control/ctl_json.h"

/* Deeper texts are jansson's (its own limit is JSON_PARSER_MAX_DEPTH). */
#define DEPTH_MAX 16
/* Longer integers are jansson's: 18 decimal digits always fit in a json_int_t. */
#define DIGITS_MAX 18

typedef struct {
	const unsigned char *p, *end;
} cursor_t;

static json_t *value(cursor_t *c, unsigned depth);

static void skip_ws(cursor_t *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
		c->p++;
}

/* A string of ASCII from 0x20 up, without escapes: its bytes [*s, *s + *n). At a quote. */
static bool string(cursor_t *c, const char **s, size_t *n)
{
	const unsigned char *q = ++c->p;
	while (q < c->end && *q != '"') {
		if (*q < 0x20 || *q >= 0x80 || *q == '\\')
			return false;
		q++;
	}
	if (q == c->end)
		return false;
	*s = (const char *)c->p;
	*n = (size_t)(q - c->p);
	c->p = q + 1;
	return true;
}

/* An integer as jansson reads one: -?(0|[1-9][0-9]*), not followed by '.', 'e' or 'E'. */
static json_t *integer(cursor_t *c)
{
	bool neg = *c->p == '-';
	const unsigned char *d = c->p + (neg ? 1 : 0), *q = d;
	json_int_t v = 0;
	while (q < c->end && *q >= '0' && *q <= '9' && q - d < DIGITS_MAX) {
		v = v * 10 + (*q - '0');
		q++;
	}
	size_t digits = (size_t)(q - d);
	if (digits == 0 || (*d == '0' && digits > 1) || (neg && v == 0))   /* "-0": jansson's */
		return NULL;
	if (q < c->end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E'))
		return NULL;   /* a longer integer, or a real */
	c->p = q;
	return json_integer(neg ? -v : v);
}

static json_t *literal(cursor_t *c, const char *word, size_t n, json_t *v)
{
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return NULL;
	c->p += n;
	return v;
}

static json_t *object(cursor_t *c, unsigned depth)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	c->p++;
	skip_ws(c);
	if (c->p < c->end && *c->p == '}') {
		c->p++;
		return o;
	}
	for (;;) {
		const char *k;
		size_t kn;
		json_t *v;
		if (c->p == c->end || *c->p != '"' || !string(c, &k, &kn))
			break;
		skip_ws(c);
		if (c->p == c->end || *c->p != ':')
			break;
		c->p++;
		skip_ws(c);
		/* A duplicate member is refused by jansson (JSON_REJECT_DUPLICATES). */
		if (json_object_getn(o, k, kn) != NULL || (v = value(c, depth + 1)) == NULL)
			break;
		if (json_object_setn_new_nocheck(o, k, kn, v) != 0)
			break;
		skip_ws(c);
		if (c->p < c->end && *c->p == '}') {
			c->p++;
			return o;
		}
		if (c->p == c->end || *c->p != ',')
			break;
		c->p++;
		skip_ws(c);
	}
	json_decref(o);
	return NULL;
}

static json_t *array(cursor_t *c, unsigned depth)
{
	json_t *a = json_array();
	if (a == NULL)
		return NULL;
	c->p++;
	skip_ws(c);
	if (c->p < c->end && *c->p == ']') {
		c->p++;
		return a;
	}
	for (;;) {
		json_t *v = value(c, depth + 1);
		if (v == NULL || json_array_append_new(a, v) != 0)
			break;
		skip_ws(c);
		if (c->p < c->end && *c->p == ']') {
			c->p++;
			return a;
		}
		if (c->p == c->end || *c->p != ',')
			break;
		c->p++;
		skip_ws(c);
	}
	json_decref(a);
	return NULL;
}

/* The value at c (no blank before it), or NULL: outside the subset, or out of memory. */
static json_t *value(cursor_t *c, unsigned depth)
{
	const char *s;
	size_t n;
	if (c->p == c->end || depth > DEPTH_MAX)
		return NULL;
	switch (*c->p) {
	case '{':
		return object(c, depth);
	case '[':
		return array(c, depth);
	case '"':
		return string(c, &s, &n) ? json_stringn_nocheck(s, n) : NULL;
	case 't':
		return literal(c, "true", 4, json_true());
	case 'f':
		return literal(c, "false", 5, json_false());
	case 'n':
		return literal(c, "null", 4, json_null());
	default:
		return *c->p == '-' || (*c->p >= '0' && *c->p <= '9') ? integer(c) : NULL;
	}
}

json_t *km_ctl_json_parse_plain(const char *buf, size_t len)
{
	cursor_t c = { (const unsigned char *)buf, (const unsigned char *)buf + len };
	json_t *j;
	skip_ws(&c);
	if (c.p == c.end || *c.p != '{' || (j = object(&c, 1)) == NULL)
		return NULL;
	skip_ws(&c);
	if (c.p == c.end)
		return j;
	json_decref(j);
	return NULL;
}

json_t *km_ctl_json_parse(const char *buf, size_t len)
{
	json_t *j = km_ctl_json_parse_plain(buf, len);
	if (j != NULL)
		return j;
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}
