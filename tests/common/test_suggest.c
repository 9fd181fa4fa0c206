/* SPDX-License-Identifier: Apache-2.0 */
/* "Did you mean" (keymgr/common/suggest.c) and the one time format (keymgr/common/timefmt.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/common/suggest.h"
#include "keymgr/common/timefmt.h"

static void test_suggest_edit_distance(void **state)
{
	assert_int_equal(km_edit_distance("", ""), 0);
	assert_int_equal(km_edit_distance("show", "show"), 0);
	assert_int_equal(km_edit_distance("shwo", "show"), 1);    /* transposition */
	assert_int_equal(km_edit_distance("activ", "active"), 1); /* insertion */
	assert_int_equal(km_edit_distance("rotate", "rotat"), 1); /* deletion */
	assert_int_equal(km_edit_distance("kye", "key"), 1);
	assert_int_equal(km_edit_distance("plan", "plna"), 1);
	assert_int_equal(km_edit_distance("kitten", "sitting"), 3);
	assert_int_equal(km_edit_distance("", "abc"), 3);
}

static const char *best(const char *typed, const char *const *words, size_t n)
{
	km_suggest_t s;
	km_suggest_init(&s, typed);
	for (size_t i = 0; i < n; i++)
		km_suggest_add(&s, words[i]);
	return km_suggest_best(&s);
}

static void test_suggest_closest_plausible_word(void **state)
{
	static const char *const verbs[] = { "env", "keyset", "key", "rotate", "revoke",
	                                     "destroy", "plan", "apply", "policy", "jwks", "sign",
	                                     "verify", "status", "reload", "tick", "audit" };
	size_t n = sizeof(verbs) / sizeof(verbs[0]);
	assert_string_equal(best("rotat", verbs, n), "rotate");
	assert_string_equal(best("revok", verbs, n), "revoke");
	assert_string_equal(best("jwk", verbs, n), "jwks");
	assert_string_equal(best("stauts", verbs, n), "status");
	assert_string_equal(best("kye", verbs, n), "key");
	assert_string_equal(best("ROTATE", verbs, n), "rotate");  /* case: one mistake */
	/* Nothing plausible: no suggestion rather than a wild guess. */
	assert_null(best("x", verbs, n));
	assert_null(best("frobnicate", verbs, n));
	assert_null(best("", verbs, n));
	/* An exact word is not a suggestion (the caller would have found it). */
	assert_null(best("plan", (const char *const[]){ "plan" }, 1));
	/* The first of equally close candidates wins, whatever comes later. */
	assert_string_equal(best("ab", (const char *const[]){ "abc", "abd" }, 2), "abc");
}

static void test_suggest_option_messages(void **state)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 1 },
		{ "socket", required_argument, NULL, 2 },
		{ "since", required_argument, NULL, 3 },
		{ "dry-run", no_argument, NULL, 4 },
		{ "pin", optional_argument, NULL, 99 },
		{ NULL, 0, NULL, 0 },
	};
	char msg[256];
	km_suggest_option("--stte", opts, 99, msg, sizeof(msg));
	assert_string_equal(msg, "unknown option '--stte'; did you mean '--state'?");
	km_suggest_option("--s", opts, 99, msg, sizeof(msg));
	assert_string_equal(msg, "ambiguous option '--s': --state, --socket, --since");
	km_suggest_option("--dry-run=yes", opts, 99, msg, sizeof(msg));
	assert_string_equal(msg, "option '--dry-run' takes no value");
	/* The value is never copied: it could be a secret. */
	km_suggest_option("--password=hunter2", opts, 99, msg, sizeof(msg));
	assert_string_equal(msg, "unknown option '--password'");
	/* A hidden option is neither suggested nor listed. */
	km_suggest_option("--pim", opts, 99, msg, sizeof(msg));
	assert_string_equal(msg, "unknown option '--pim'");
}

static void test_timefmt_rfc3339(void **state)
{
	char buf[KM_TIME_TEXT_MAX];
	assert_string_equal(km_time_rfc3339(0, buf, sizeof(buf)), "1970-01-01T00:00:00Z");
	assert_string_equal(km_time_rfc3339(1796619801, buf, sizeof(buf)),
	                    "2026-12-07T05:03:21Z");
	assert_string_equal(km_time_rfc3339(253402300799, buf, sizeof(buf)),
	                    "9999-12-31T23:59:59Z");
	/* Past year 9999 RFC 3339 has no form: nothing rather than a wrong one. */
	assert_string_equal(km_time_rfc3339(253402300800, buf, sizeof(buf)), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suggest_edit_distance),
		cmocka_unit_test(test_suggest_closest_plausible_word),
		cmocka_unit_test(test_suggest_option_messages),
		cmocka_unit_test(test_timefmt_rfc3339),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
