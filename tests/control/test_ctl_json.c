/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A control frame's JSON parse (keymgr/control/ctl_json.c) against jansson's json_loadb with
 * JSON_REJECT_DUPLICATES, the parse the protocol is defined by: on every text, the plain
 * subset either gives up or builds exactly jansson's tree (members in the same order, the
 * same types and values), and never accepts a text jansson refuses. The plain texts of the
 * corpus must be taken by the subset itself, so the comparison is not won by always giving
 * up; every text is also mutated byte by byte (replaced, dropped, cut short) and compared
 * again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/control/ctl_json.h"

/* Texts the subset takes itself. */
static const char *const plain[] = {
	"{}",
	" \t\r\n{ } \n",
	("{\"op\":\"sign\",\"keyset\":\"production/api\",\"claims\":{\"sub\":\"alice\","
	 "\"aud\":\"api.example.test\",\"client_id\":\"web\"},\"ttl\":60}"),
	"{\"op\":\"status\"}",
	"{ \"a\" : 1 , \"b\" : [ 1 , 2 , [ ] , { } ] , \"c\" : { \"d\" : null } }",
	"{\"t\":true,\"f\":false,\"n\":null,\"z\":0,\"m\":-1,\"big\":999999999999999999}",
	"{\"neg\":-999999999999999999,\"s\":\"\",\"\":\"empty key\"}",
	"{\"slash\":\"a/b\",\"del\":\"\x7f\",\"punct\":\"!#$%&'()*+,-.:;<=>?@[]^_`{|}~\"}",
	"{\"aud\":[\"a\",\"b\",\"c\"],\"exp\":1800000000,\"nested\":{\"x\":{\"y\":{\"z\":[[[1]]]}}}}",
	"{\"ok\":true,\"jwt\":\"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln\"}",
	"{\"b\":2,\"a\":1,\"c\":3}",
};

/* Texts jansson parses (or refuses) and the subset leaves to it. */
static const char *const other[] = {
	/* outside the subset, valid */
	"{\"s\":\"caf\xc3\xa9\"}",
	"{\"s\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"}",
	"{\"s\":\"\\u00e9\\ud83d\\ude00\"}",
	"{\"caf\xc3\xa9\":1}",
	"{\"k\\u0041\":1}",
	"{\"r\":1.5}",
	"{\"r\":1e3,\"q\":2E-2,\"p\":-0.0}",
	"{\"i\":1234567890123456789}",
	"{\"i\":-9223372036854775808}",
	"{\"i\":-0}",
	"{\"d\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
	/* refused by jansson */
	"",
	"   ",
	"[]",
	"[1,2]",
	"\"text\"",
	"1",
	"null",
	"{",
	"}",
	"{\"a\"}",
	"{\"a\":}",
	"{\"a\":1,}",
	"{,\"a\":1}",
	"{\"a\":1 \"b\":2}",
	"{\"a\":1}}",
	"{\"a\":1} x",
	"{\"a\":1}{}",
	"{\"a\":[1,]}",
	"{\"a\":[,1]}",
	"{\"a\":[1 2]}",
	"{\"a\":1,\"a\":2}",
	"{\"a\":{\"b\":1,\"b\":1}}",
	"{a:1}",
	"{'a':1}",
	"{\"a\":01}",
	"{\"a\":-}",
	"{\"a\":-01}",
	"{\"a\":+1}",
	"{\"a\":.5}",
	"{\"a\":1.}",
	"{\"a\":1e}",
	"{\"a\":0x10}",
	"{\"a\":99999999999999999999}",
	"{\"a\":tru}",
	"{\"a\":truex}",
	"{\"a\":True}",
	"{\"a\":nul}",
	"{\"a\":nulll}",
	"{\"a\":falsey}",
	"{\"a\":\"unterminated}",
	"{\"a\":\"tab\there\"}",
	"{\"a\":\"nl\nhere\"}",
	"{\"a\":\"\\x\"}",
	"{\"a\":\"\\u12\"}",
	"{\"a\":\"\\ud800\"}",
	"{\"a\":\"\xff\"}",
	"{\"a\":\"\xc3\"}",
	"{\"a\":\"\xed\xa0\x80\"}",
	"\xef\xbb\xbf{}",
	"{\"a\":1}\v",
	"\f{}",
	"{\"a\" :: 1}",
};

/* a and b are the same tree: types, values, and members in the same order. */
static bool same(const json_t *a, const json_t *b)
{
	if (json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a)) {
	case JSON_OBJECT: {
		if (json_object_size(a) != json_object_size(b))
			return false;
		void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
		for (; ia != NULL && ib != NULL;
		     ia = json_object_iter_next((json_t *)a, ia),
		     ib = json_object_iter_next((json_t *)b, ib)) {
			if (json_object_iter_key_len(ia) != json_object_iter_key_len(ib) ||
			    memcmp(json_object_iter_key(ia), json_object_iter_key(ib),
			           json_object_iter_key_len(ia)) != 0 ||
			    !same(json_object_iter_value(ia), json_object_iter_value(ib)))
				return false;
		}
		return ia == NULL && ib == NULL;
	}
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!same(json_array_get(a, i), json_array_get(b, i)))
				return false;
		return true;
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
	case JSON_INTEGER:
		return json_integer_value(a) == json_integer_value(b);
	case JSON_REAL:
		return json_real_value(a) == json_real_value(b);
	default:
		return true;   /* true, false, null */
	}
}

/* jansson's verdict on buf: its tree when it is an object, NULL otherwise. */
static json_t *reference(const char *buf, size_t len)
{
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The invariant on one text; returns whether the subset took it. */
static bool check_text(const char *buf, size_t len)
{
	json_t *want = reference(buf, len);
	json_t *fast = km_ctl_json_parse_plain(buf, len);
	json_t *got = km_ctl_json_parse(buf, len);
	bool took = fast != NULL;
	if (fast != NULL && (want == NULL || !same(fast, want)))
		fail_msg("the plain parse built %s on the %zu bytes \"%.*s\"",
		         want == NULL ? "a tree that jansson refuses" : "another tree than jansson's",
		         len, (int)len, buf);
	if ((got == NULL) != (want == NULL) || (got != NULL && !same(got, want)))
		fail_msg("km_ctl_json_parse differs from jansson on the %zu bytes \"%.*s\"", len,
		         (int)len, buf);
	json_decref(want);
	json_decref(fast);
	json_decref(got);
	return took;
}

static void test_ctl_json_plain_texts_taken_as_jansson_builds_them(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if (!check_text(plain[i], strlen(plain[i])))
			fail_msg("the plain parse gave up on a plain text: %s", plain[i]);
}

static void test_ctl_json_other_texts_left_to_jansson(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		if (check_text(other[i], strlen(other[i])))
			fail_msg("the plain parse took a text outside its subset: %s", other[i]);
}

/* Every text with each byte replaced by each of these, dropped, or the text cut there. */
static void test_ctl_json_mutations_agree_with_jansson(void **state)
{
	static const char subst[] = "{}[]:,\" \t\n\\-+.0129eEtfnulrsx/\x7f\x80\xc3\x01";
	const char *const *sets[2] = { plain, other };
	size_t sizes[2] = { sizeof(plain) / sizeof(plain[0]), sizeof(other) / sizeof(other[0]) };
	size_t texts = 0;
	(void)state;
	for (size_t s = 0; s < 2; s++) {
		for (size_t i = 0; i < sizes[s]; i++) {
			const char *t = sets[s][i];
			size_t len = strlen(t);
			char *buf = malloc(len + 1);
			assert_non_null(buf);
			for (size_t at = 0; at < len; at++) {
				for (size_t k = 0; k < sizeof(subst) - 1; k++) {
					memcpy(buf, t, len);
					buf[at] = subst[k];
					check_text(buf, len);
					texts++;
				}
				memcpy(buf, t, at);                       /* dropped */
				memcpy(buf + at, t + at + 1, len - at - 1);
				check_text(buf, len - 1);
				check_text(t, at);                        /* cut short */
				texts += 2;
			}
			free(buf);
		}
	}
	assert_true(texts > 10000);
}

/* A NUL inside the length is the frame reader's to refuse; the parse itself agrees with
 * jansson on it too (a string cannot hold one). */
static void test_ctl_json_nul_byte(void **state)
{
	static const char t[] = "{\"a\":\"x\0y\"}";
	(void)state;
	assert_false(check_text(t, sizeof(t) - 1));
	assert_null(km_ctl_json_parse(t, sizeof(t) - 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctl_json_plain_texts_taken_as_jansson_builds_them),
		cmocka_unit_test(test_ctl_json_other_texts_left_to_jansson),
		cmocka_unit_test(test_ctl_json_mutations_agree_with_jansson),
		cmocka_unit_test(test_ctl_json_nul_byte),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
