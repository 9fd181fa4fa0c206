/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The canonical JSON writer (keymgr/common/canon_json.c): the audit event vector byte for
 * byte, RFC 8785's string escaping, and the same bytes as jansson's sorted compact output
 * (what the policy texts and checkpoint payloads were written with before) for every value
 * without control characters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "keymgr/common/canon_json.h"

/* The canonical event of tests/audit/test_audit_chain.c (test_canonical_is_byte_exact),
 * computed with Python: json.dumps(ev, sort_keys=True, separators=(",", ":"),
 * ensure_ascii=False). */
static void test_cjson_audit_event_vector(void **state)
{
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_kv_str(&b, "action", "config.reload");
	km_cjson_key(&b, "actor");
	km_cjson_open(&b, '{');
	km_cjson_kv_str(&b, "host", "h\xc3\xa9");
	km_cjson_kv_int(&b, "pid", 42);
	km_cjson_kv_int(&b, "uid", 1000);
	km_cjson_kv_str(&b, "user", "alice");
	km_cjson_kv_str(&b, "via", "daemon");
	km_cjson_close(&b, '}');
	km_cjson_kv_str(&b, "after", "{\"path\":\"/etc/keymgr/keymgr.yaml\"}");
	km_cjson_kv_int(&b, "at", 1800000000);
	km_cjson_kv_str(&b, "before", "");
	km_cjson_kv_str(&b, "env", "production");
	km_cjson_kv_str(&b, "keyset", "api");
	km_cjson_kv_str(&b, "kid", "");
	km_cjson_kv_str(&b, "policy_hash", "");
	km_cjson_kv_str(&b, "reason", "say \"hi\"\\ \n\t\x01 ok");
	km_cjson_kv_int(&b, "seq", 7);
	km_cjson_kv_int(&b, "v", 1);
	km_cjson_close(&b, '}');
	const char *want = "{\"action\":\"config.reload\",\"actor\":{\"host\":\"h\xc3\xa9\","
	                   "\"pid\":42,\"uid\":1000,\"user\":\"alice\",\"via\":\"daemon\"},"
	                   "\"after\":\"{\\\"path\\\":\\\"/etc/keymgr/keymgr.yaml\\\"}\","
	                   "\"at\":1800000000,\"before\":\"\",\"env\":\"production\","
	                   "\"keyset\":\"api\",\"kid\":\"\",\"policy_hash\":\"\","
	                   "\"reason\":\"say \\\"hi\\\"\\\\ \\n\\t\\u0001 ok\",\"seq\":7,\"v\":1}";
	assert_int_equal(b.len, strlen(want));
	char *text = km_cjson_take(&b);
	assert_non_null(text);
	assert_string_equal(text, want);
	free(text);
	/* take leaves the writer empty and usable */
	assert_null(b.buf);
	assert_int_equal(b.len, 0);
}

/* RFC 8785 section 3.2.2.2, byte by byte over 0x01..0x7f. */
static void test_cjson_string_escaping(void **state)
{
	for (int c = 1; c < 0x80; c++) {
		char in[2] = { (char)c, '\0' }, want[16];
		switch (c) {
		case '"': snprintf(want, sizeof(want), "\"\\\"\""); break;
		case '\\': snprintf(want, sizeof(want), "\"\\\\\""); break;
		case '\b': snprintf(want, sizeof(want), "\"\\b\""); break;
		case '\f': snprintf(want, sizeof(want), "\"\\f\""); break;
		case '\n': snprintf(want, sizeof(want), "\"\\n\""); break;
		case '\r': snprintf(want, sizeof(want), "\"\\r\""); break;
		case '\t': snprintf(want, sizeof(want), "\"\\t\""); break;
		default:
			if (c < 0x20)
				snprintf(want, sizeof(want), "\"\\u%04x\"", c); /* lower case */
			else
				snprintf(want, sizeof(want), "\"%c\"", c);     /* '/' and DEL as is */
		}
		km_cjson_t b;
		km_cjson_init(&b);
		km_cjson_str(&b, in);
		char *text = km_cjson_take(&b);
		assert_non_null(text);
		if (strcmp(text, want) != 0)
			fail_msg("byte 0x%02x: got %s, want %s", c, text, want);
		free(text);
	}
	/* control characters above 9 in lower-case hex; UTF-8 and NULL */
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '[');
	km_cjson_item_str(&b, "\x1f\x1a");
	km_cjson_item_str(&b, "\xe2\x82\xac\xf0\x9f\x94\x91");
	km_cjson_item_str(&b, NULL);
	km_cjson_close(&b, ']');
	char *text = km_cjson_take(&b);
	assert_string_equal(text, "[\"\\u001f\\u001a\",\"\xe2\x82\xac\xf0\x9f\x94\x91\",\"\"]");
	free(text);
}

static void test_cjson_structure(void **state)
{
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_key(&b, "a");
	km_cjson_open(&b, '[');
	km_cjson_close(&b, ']');
	km_cjson_key(&b, "b");
	km_cjson_open(&b, '{');
	km_cjson_close(&b, '}');
	km_cjson_key(&b, "c");
	km_cjson_open(&b, '[');
	km_cjson_item(&b);
	km_cjson_open(&b, '{');
	km_cjson_kv_bool(&b, "t", true);
	km_cjson_kv_bool(&b, "u", false);
	km_cjson_close(&b, '}');
	km_cjson_item(&b);
	km_cjson_open(&b, '{');
	km_cjson_kv_null(&b, "n");
	km_cjson_close(&b, '}');
	km_cjson_item_str(&b, "s");
	km_cjson_close(&b, ']');
	km_cjson_key(&b, "d");
	km_cjson_raw(&b, "[\"x\",1]");
	km_cjson_kv_int(&b, "max", INT64_MAX);
	km_cjson_kv_int(&b, "min", INT64_MIN);
	km_cjson_kv_int(&b, "zero", 0);
	km_cjson_close(&b, '}');
	char *text = km_cjson_take(&b);
	assert_string_equal(text, "{\"a\":[],\"b\":{},\"c\":[{\"t\":true,\"u\":false},{\"n\":null},"
	                          "\"s\"],\"d\":[\"x\",1],\"max\":9223372036854775807,"
	                          "\"min\":-9223372036854775808,\"zero\":0}");
	free(text);
}

static void test_cjson_take_empty_and_failed(void **state)
{
	km_cjson_t b;
	km_cjson_init(&b);
	char *text = km_cjson_take(&b);
	assert_non_null(text);
	assert_string_equal(text, "");
	free(text);
	/* A writer that ran out of memory stays failed and gives no text. */
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	b.oom = true;
	km_cjson_kv_str(&b, "a", "b");
	km_cjson_close(&b, '}');
	assert_int_equal(b.len, 1);
	assert_null(km_cjson_take(&b));
	assert_null(b.buf);
	/* free leaves it initialised */
	km_cjson_open(&b, '[');
	km_cjson_free(&b);
	assert_null(b.buf);
	assert_int_equal(b.len, 0);
	assert_true(b.first);
}

/* ---- against jansson's JSON_COMPACT | JSON_SORT_KEYS ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Printable ASCII, the two characters that need escapes, the short escapes, '/', DEL and
 * UTF-8; no other control characters (jansson writes those as \u00XX in upper case, RFC 8785
 * in lower case: test_cjson_string_escaping). */
static void random_string(char *out, size_t max)
{
	static const char *const pieces[] = { "a", "Z", "0", "-", "_", ".", " ", "/", "\"", "\\",
	                                      "\n", "\t", "\r", "\b", "\f", "\x7f", "\xc3\xa9",
	                                      "\xe2\x82\xac", "\xf0\x9f\x94\x91", "*", "[", "}" };
	size_t n = next() % 8, len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const char *p = pieces[next() % (sizeof(pieces) / sizeof(pieces[0]))];
		if (len + strlen(p) + 1 > max)
			break;
		memcpy(out + len, p, strlen(p) + 1);
		len += strlen(p);
	}
}

static json_t *random_value(int depth)
{
	char s[64];
	switch (next() % (depth > 0 ? 7 : 4)) {
	case 0:
		random_string(s, sizeof(s));
		return json_string(s);
	case 1:
		return json_integer((json_int_t)next());
	case 2:
		return json_boolean(next() & 1);
	case 3:
		return json_null();
	case 4: {
		json_t *a = json_array();
		for (size_t i = next() % 4; i > 0; i--)
			json_array_append_new(a, random_value(depth - 1));
		return a;
	}
	default: {
		json_t *o = json_object();
		for (size_t i = next() % 5; i > 0; i--) {
			random_string(s, sizeof(s));
			json_object_set_new(o, s, random_value(depth - 1));
		}
		return o;
	}
	}
}

static int by_bytes(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Writes j with the writer, members in byte order. */
static void write_value(km_cjson_t *b, const json_t *j)
{
	char num[32];
	switch (json_typeof(j)) {
	case JSON_STRING:
		km_cjson_str(b, json_string_value(j));
		break;
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(j));
		km_cjson_raw(b, num);
		break;
	case JSON_TRUE:
		km_cjson_raw(b, "true");
		break;
	case JSON_FALSE:
		km_cjson_raw(b, "false");
		break;
	case JSON_NULL:
		km_cjson_raw(b, "null");
		break;
	case JSON_ARRAY:
		km_cjson_open(b, '[');
		for (size_t i = 0; i < json_array_size(j); i++) {
			km_cjson_item(b);
			write_value(b, json_array_get(j, i));
		}
		km_cjson_close(b, ']');
		break;
	case JSON_OBJECT: {
		size_t n = json_object_size(j), i = 0;
		const char **keys = calloc(n ? n : 1, sizeof(*keys));
		const char *k;
		json_t *v;
		assert_non_null(keys);
		json_object_foreach((json_t *)j, k, v)
			keys[i++] = k;
		qsort(keys, n, sizeof(*keys), by_bytes);
		km_cjson_open(b, '{');
		for (i = 0; i < n; i++) {
			km_cjson_key(b, keys[i]);
			write_value(b, json_object_get(j, keys[i]));
		}
		km_cjson_close(b, '}');
		free(keys);
		break;
	}
	default:
		fail_msg("no reals in keymgr's canonical texts");
	}
}

static void test_cjson_matches_jansson_sorted_compact(void **state)
{
	for (int round = 0; round < 2000; round++) {
		json_t *j = random_value(4);
		char *want = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		km_cjson_t b;
		km_cjson_init(&b);
		write_value(&b, j);
		char *got = km_cjson_take(&b);
		assert_non_null(want);
		assert_non_null(got);
		if (strcmp(got, want) != 0)
			fail_msg("round %d:\n got  %s\n want %s", round, got, want);
		free(got);
		free(want);
		json_decref(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cjson_audit_event_vector),
		cmocka_unit_test(test_cjson_string_escaping),
		cmocka_unit_test(test_cjson_structure),
		cmocka_unit_test(test_cjson_take_empty_and_failed),
		cmocka_unit_test(test_cjson_matches_jansson_sorted_compact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
