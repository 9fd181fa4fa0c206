/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JWT payload printed straight from the caller's claims (km_claims_print), byte for byte
 * what jansson 2.14's json_dumps(JSON_COMPACT | JSON_PRESERVE_ORDER) prints of the prepared
 * object, without building that object: strings, integers, true, false and null are printed
 * here (jansson's escaping: \" \\ \b \f \n \r \t, other control characters as \u00XX in
 * upper case, everything else as is, '/' and non-ASCII included); reals, arrays and objects,
 * rare in claims, are printed by jansson itself (json_dumpb). tests/signing/test_claims_print.c
 * compares the two on a corpus of claims.
 */
#include <stdlib.h>
#include <string.h>

#include "keymgr/claims/claims_int.h"
#include "keymgr/common/error.h"

#define PRINT_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY)

typedef struct {
	char *p;
	size_t len, cap;
	bool failed;
} text_t;

static bool reserve(text_t *t, size_t more)
{
	if (t->failed)
		return false;
	if (t->len + more + 1 <= t->cap)
		return true;
	size_t cap = t->cap * 2 > t->len + more + 1 ? t->cap * 2 : t->len + more + 1;
	char *grown = realloc(t->p, cap);
	if (grown == NULL) {
		t->failed = true;
		return false;
	}
	t->p = grown;
	t->cap = cap;
	return true;
}

static void put(text_t *t, const char *s, size_t n)
{
	if (!reserve(t, n))
		return;
	memcpy(t->p + t->len, s, n);
	t->len += n;
}

static void put_string(text_t *t, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	/* At most 6 bytes per input byte (\u00XX), plus the quotes. */
	if (!reserve(t, 6 * n + 2))
		return;
	char *o = t->p + t->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = (char)c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o++ = '"';
	t->len = (size_t)(o - t->p);
}

static void put_int(text_t *t, int64_t v)
{
	char buf[24], *e = buf + sizeof(buf), *b = e;
	/* Digits of |v| computed as unsigned: INT64_MIN has no positive twin. */
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do {
		*--b = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--b = '-';
	put(t, b, (size_t)(e - b));
}

static void put_value(text_t *t, const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		put_string(t, json_string_value(v), json_string_length(v));
		return;
	case JSON_INTEGER:
		put_int(t, (int64_t)json_integer_value(v));
		return;
	case JSON_TRUE:
		put(t, "true", 4);
		return;
	case JSON_FALSE:
		put(t, "false", 5);
		return;
	case JSON_NULL:
		put(t, "null", 4);
		return;
	default:
		break;
	}
	/* Reals, arrays, objects: jansson's own printer (its size first when it does not fit). */
	if (t->failed)
		return;
	size_t room = t->cap - t->len - 1;
	size_t n = json_dumpb(v, t->p + t->len, room, PRINT_FLAGS);
	if (n == 0) {
		t->failed = true;
		return;
	}
	if (n > room) {
		if (!reserve(t, n))
			return;
		if (json_dumpb(v, t->p + t->len, n, PRINT_FLAGS) != n) {
			t->failed = true;
			return;
		}
	}
	t->len += n;
}

static void put_member(text_t *t, const char *key, size_t klen)
{
	put(t, ",", 1);
	put_string(t, key, klen);
	put(t, ":", 1);
}

int km_claims_print(const char *issuer, const json_t *in, bool set_exp, int64_t exp,
                    int64_t now, const char *jti, char **out, size_t *out_len)
{
	text_t t = { .cap = 512 };
	const char *k;
	json_t *v;

	if ((t.p = malloc(t.cap)) == NULL)
		return KM_ENOMEM;
	put(&t, "{\"iss\":", 7);
	put_string(&t, issuer, strlen(issuer));
	json_object_foreach((json_t *)in, k, v) {
		if (strcmp(k, "iss") == 0)
			continue;
		put_member(&t, k, strlen(k));
		put_value(&t, v);
	}
	if (set_exp) {
		put_member(&t, "exp", 3);
		put_int(&t, exp);
	}
	put_member(&t, "iat", 3);
	put_int(&t, now);
	put_member(&t, "nbf", 3);
	put_int(&t, now);
	put_member(&t, "jti", 3);
	put_string(&t, jti, strlen(jti));
	put(&t, "}", 1);
	if (t.failed) {
		free(t.p);
		return KM_ENOMEM;
	}
	t.p[t.len] = '\0';
	*out = t.p;
	*out_len = t.len;
	return KM_EOK;
}
