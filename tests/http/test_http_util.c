/* SPDX-License-Identifier: Apache-2.0 */
/* Entity tags, If-None-Match evaluation, IMF-fixdate, path and verifier name validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/common/error.h"
#include "keymgr/http/http_server.h"
#include "keymgr/http/http_util.h"

static void test_etag_compute_is_quoted_sha256_prefix(void **state)
{
	char tag[KM_ETAG_SIZE];

	/* SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223 b00361a3... */
	assert_int_equal(km_etag_compute("abc", 3, tag), KM_EOK);
	assert_string_equal(tag, "\"ba7816bf8f01cfea414140de5dae2223\"");
	/* SHA-256("") = e3b0c44298fc1c149afbf4c8996fb924 ... */
	assert_int_equal(km_etag_compute("", 0, tag), KM_EOK);
	assert_string_equal(tag, "\"e3b0c44298fc1c149afbf4c8996fb924\"");
}

static void test_etag_compute_changes_with_one_byte(void **state)
{
	char a[KM_ETAG_SIZE], b[KM_ETAG_SIZE];

	assert_int_equal(km_etag_compute("{\"keys\":[]}", 11, a), KM_EOK);
	assert_int_equal(km_etag_compute("{\"keys\":[ ]", 11, b), KM_EOK);
	assert_string_not_equal(a, b);
}

static void test_none_match_strong_weak_and_lists(void **state)
{
	const char *e = "\"abc\"";

	assert_true(km_http_etag_none_match("\"abc\"", e));
	assert_true(km_http_etag_none_match("W/\"abc\"", e));           /* weak comparison */
	assert_true(km_http_etag_none_match("\"x\", \"abc\"", e));
	assert_true(km_http_etag_none_match("\"x\",W/\"abc\" ,\"y\"", e));
	assert_true(km_http_etag_none_match(" ,, \"abc\" ,", e));       /* empty elements */
	assert_true(km_http_etag_none_match("*", e));
	assert_true(km_http_etag_none_match(" * ", e));
	assert_false(km_http_etag_none_match("\"abd\"", e));
	assert_false(km_http_etag_none_match("\"ab\"", e));
	assert_false(km_http_etag_none_match("\"abcd\"", e));
	assert_false(km_http_etag_none_match("\"x\", \"y\"", e));
	assert_false(km_http_etag_none_match("", e));
	assert_false(km_http_etag_none_match(NULL, e));
}

static void test_none_match_malformed_is_ignored(void **state)
{
	const char *e = "\"abc\"";

	assert_false(km_http_etag_none_match("abc", e));                /* unquoted */
	assert_false(km_http_etag_none_match("w/\"abc\"", e));          /* W is case-sensitive */
	assert_false(km_http_etag_none_match("\"abc", e));              /* unterminated */
	assert_false(km_http_etag_none_match("\"abc\" \"abc\"", e));    /* missing comma */
	assert_false(km_http_etag_none_match("\"abc\", *", e));         /* '*' not alone */
	assert_false(km_http_etag_none_match("\"abc\"junk", e));
	assert_false(km_http_etag_none_match("\"a\tc\"", "\"a\tc\""));  /* control char */
}

static void test_date_format_imf_fixdate(void **state)
{
	char d[KM_HTTP_DATE_SIZE];

	assert_int_equal(km_http_date_format(784111777, d), KM_EOK);
	assert_string_equal(d, "Sun, 06 Nov 1994 08:49:37 GMT");
	assert_int_equal(km_http_date_format(1700000000, d), KM_EOK);
	assert_string_equal(d, "Tue, 14 Nov 2023 22:13:20 GMT");
	assert_int_equal(km_http_date_format(0, d), KM_EOK);
	assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 GMT");
}

static void test_date_format_out_of_range(void **state)
{
	char d[KM_HTTP_DATE_SIZE] = "unchanged";

	/* year 10000: not representable in four digits */
	assert_int_equal(km_http_date_format((time_t)253402300800LL, d), KM_ERANGE);
	assert_string_equal(d, "unchanged");
}

static void test_path_valid_accepts_and_refuses(void **state)
{
	char longp[KM_HTTP_PATH_MAX + 2];

	assert_true(km_http_path_valid("/production/.well-known/jwks.json"));
	assert_true(km_http_path_valid("/production/api/jwks.json"));
	assert_true(km_http_path_valid("/a_b~c-d.e"));
	assert_false(km_http_path_valid(NULL));
	assert_false(km_http_path_valid(""));
	assert_false(km_http_path_valid("/"));
	assert_false(km_http_path_valid("production/jwks.json"));
	assert_false(km_http_path_valid("/production//jwks.json"));
	assert_false(km_http_path_valid("/production/"));
	assert_false(km_http_path_valid("/production/../staging/jwks.json"));
	assert_false(km_http_path_valid("/production/./jwks.json"));
	assert_false(km_http_path_valid("/.."));
	assert_false(km_http_path_valid("/production/jwks.json?x=1"));
	assert_false(km_http_path_valid("/production/jwks%2ejson"));
	assert_false(km_http_path_valid("/production/jw ks.json"));
	assert_false(km_http_path_valid("/healthz"));
	assert_false(km_http_path_valid("/metrics"));
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';        /* KM_HTTP_PATH_MAX + 1 bytes */
	assert_false(km_http_path_valid(longp));
	longp[KM_HTTP_PATH_MAX] = '\0';         /* exactly KM_HTTP_PATH_MAX */
	assert_true(km_http_path_valid(longp));
}

static void test_verifier_name_valid(void **state)
{
	char n[KM_HTTP_VERIFIER_NAME_MAX + 2];

	assert_true(km_http_verifier_name_valid("api-gw-1"));
	assert_true(km_http_verifier_name_valid("billing.svc_2"));
	assert_false(km_http_verifier_name_valid(NULL));
	assert_false(km_http_verifier_name_valid(""));
	assert_false(km_http_verifier_name_valid("api gw"));
	assert_false(km_http_verifier_name_valid("api/gw"));
	assert_false(km_http_verifier_name_valid("x\r\ninjected"));
	assert_false(km_http_verifier_name_valid("caf\xc3\xa9"));
	memset(n, 'a', sizeof(n) - 1);
	n[sizeof(n) - 1] = '\0';                /* 65 characters */
	assert_false(km_http_verifier_name_valid(n));
	n[KM_HTTP_VERIFIER_NAME_MAX] = '\0';    /* 64 */
	assert_true(km_http_verifier_name_valid(n));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_etag_compute_is_quoted_sha256_prefix),
		cmocka_unit_test(test_etag_compute_changes_with_one_byte),
		cmocka_unit_test(test_none_match_strong_weak_and_lists),
		cmocka_unit_test(test_none_match_malformed_is_ignored),
		cmocka_unit_test(test_date_format_imf_fixdate),
		cmocka_unit_test(test_date_format_out_of_range),
		cmocka_unit_test(test_path_valid_accepts_and_refuses),
		cmocka_unit_test(test_verifier_name_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
