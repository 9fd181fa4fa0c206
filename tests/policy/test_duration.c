/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "keymgr/common/error.h"
#include "policy/policy.h"

static void test_duration_parse_units(void **state)
{
	static const struct {
		const char *s;
		int64_t v;
	} good[] = {
		{ "90s", 90 }, { "15m", 900 }, { "12h", 43200 }, { "30d", 2592000 },
		{ "2w", 1209600 }, { "1d12h", 129600 }, { "0s", 0 }, { "1w2d3h4m5s", 788645 },
		{ "36500d", KM_DURATION_MAX }, { "007m", 420 },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int64_t v = -1;
		assert_int_equal(km_duration_parse(good[i].s, &v), KM_EOK);
		assert_int_equal(v, good[i].v);
	}
}

static void test_duration_parse_rejects_bad_input(void **state)
{
	static const struct {
		const char *s;
		const char *why;
	} bad[] = {
		{ "", "empty" }, { "-1h", "negative" }, { "+1h", "expected a number" },
		{ "3600", "missing unit" }, { "1y", "unknown unit" }, { "1h1h", "out of order" },
		{ "12h1d", "out of order" }, { "1 h", "unknown unit" }, { " 1h", "expected a number" },
		{ "1h ", "expected a number" }, { "h", "expected a number" }, { "1.5h", "unknown unit" },
		{ "36500d1s", "out of range" }, { "99999999999999999999999s", "out of range" },
		{ "5300w", "out of range" }, { "1H", "unknown unit" }, { "1h\n", "byte 0x0a" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = 1234;
		char err[128] = "";
		assert_int_equal(km_duration_parse_err(bad[i].s, &v, err, sizeof(err)), KM_EINVAL);
		assert_int_equal(v, 1234);  /* output untouched on error */
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].s, err, bad[i].why);
		assert_int_equal(km_duration_parse(bad[i].s, &v), KM_EINVAL);
	}
	int64_t v;
	assert_int_equal(km_duration_parse(NULL, &v), KM_EINVAL);
}

static void test_duration_format_round_trips(void **state)
{
	static const struct {
		int64_t v;
		const char *s;
	} cases[] = {
		{ 0, "0s" }, { 90, "1m30s" }, { 3600, "1h" }, { 129600, "1d12h" },
		{ 3900, "1h5m" }, { 90 * 86400, "90d" }, { -300, "-5m" }, { 86401, "1d1s" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[32];
		assert_string_equal(km_duration_format(cases[i].v, buf, sizeof(buf)), cases[i].s);
		int64_t back;
		if (cases[i].v >= 0) {
			assert_int_equal(km_duration_parse(buf, &back), KM_EOK);
			assert_int_equal(back, cases[i].v);
		}
	}
	/* Truncation never overruns. */
	char small[4];
	km_duration_format(129661, small, sizeof(small));
	assert_true(strlen(small) < sizeof(small));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_parse_units),
		cmocka_unit_test(test_duration_parse_rejects_bad_input),
		cmocka_unit_test(test_duration_format_round_trips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
