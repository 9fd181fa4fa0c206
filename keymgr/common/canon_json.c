/* SPDX-License-Identifier: Apache-2.0 */
#include "keymgr/common/canon_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void km_cjson_init(km_cjson_t *b)
{
	memset(b, 0, sizeof(*b));
	b->first = true;
}

void km_cjson_free(km_cjson_t *b)
{
	free(b->buf);
	km_cjson_init(b);
}

static void put(km_cjson_t *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 256;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		char *p = realloc(b->buf, ncap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->buf = p;
		b->cap = ncap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

void km_cjson_raw(km_cjson_t *b, const char *text)
{
	put(b, text, strlen(text));
}

/* RFC 8785 section 3.2.2.2: the two mandatory escapes, the five short ones, \u00xx in lower
 * case for the other control characters; every other byte as is. */
void km_cjson_str(km_cjson_t *b, const char *s)
{
	put(b, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c != '\0'; c++) {
		char esc[8];
		switch (*c) {
		case '"': put(b, "\\\"", 2); break;
		case '\\': put(b, "\\\\", 2); break;
		case '\b': put(b, "\\b", 2); break;
		case '\f': put(b, "\\f", 2); break;
		case '\n': put(b, "\\n", 2); break;
		case '\r': put(b, "\\r", 2); break;
		case '\t': put(b, "\\t", 2); break;
		default:
			if (*c < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04x", *c);
				put(b, esc, 6);
			} else {
				put(b, (const char *)c, 1);
			}
		}
	}
	put(b, "\"", 1);
}

void km_cjson_open(km_cjson_t *b, char c)
{
	put(b, &c, 1);
	b->first = true;
}

void km_cjson_close(km_cjson_t *b, char c)
{
	put(b, &c, 1);
	b->first = false;
}

void km_cjson_item(km_cjson_t *b)
{
	if (!b->first)
		put(b, ",", 1);
	b->first = false;
}

void km_cjson_key(km_cjson_t *b, const char *key)
{
	km_cjson_item(b);
	km_cjson_str(b, key);
	put(b, ":", 1);
}

void km_cjson_kv_str(km_cjson_t *b, const char *key, const char *v)
{
	km_cjson_key(b, key);
	km_cjson_str(b, v);
}

void km_cjson_kv_int(km_cjson_t *b, const char *key, int64_t v)
{
	char num[32];
	snprintf(num, sizeof(num), "%lld", (long long)v);
	km_cjson_key(b, key);
	km_cjson_raw(b, num);
}

void km_cjson_kv_bool(km_cjson_t *b, const char *key, bool v)
{
	km_cjson_key(b, key);
	km_cjson_raw(b, v ? "true" : "false");
}

void km_cjson_kv_null(km_cjson_t *b, const char *key)
{
	km_cjson_key(b, key);
	km_cjson_raw(b, "null");
}

void km_cjson_item_str(km_cjson_t *b, const char *v)
{
	km_cjson_item(b);
	km_cjson_str(b, v);
}

char *km_cjson_take(km_cjson_t *b)
{
	if (b->oom || b->buf == NULL) {
		bool empty = !b->oom;
		km_cjson_free(b);
		return empty ? strdup("") : NULL;
	}
	char *p = b->buf;
	b->buf = NULL;
	km_cjson_free(b);
	return p;
}
