/* SPDX-License-Identifier: Apache-2.0 */
/* The URLs keymgr writes into discovery documents (keymgr/common/url.c): what passes, what is
 * refused and why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/common/error.h"
#include "keymgr/common/url.h"

static void test_url_accepted(void **state)
{
	static const struct {
		const char *in, *host, *port, *path;
		bool https;
	} v[] = {
		{ "https://keys.example.com", "keys.example.com", "", "", true },
		{ "https://keys.example.com:8443/jwks/prod", "keys.example.com", "8443", "/jwks/prod",
		  true },
		{ "https://xn--bcher-kva.example/a.b_c~d-e", "xn--bcher-kva.example", "", "/a.b_c~d-e",
		  true },
		{ "http://127.0.0.1:8080", "127.0.0.1", "8080", "", false },
		{ "http://localhost/x", "localhost", "", "/x", false },
		{ "http://[::1]:9/y", "[::1]", "9", "/y", false },
		{ "https://[2001:db8::1]", "[2001:db8::1]", "", "", true },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		km_url_t u;
		char err[160] = "";
		assert_int_equal(km_url_parse(v[i].in, &u, err, sizeof(err)), KM_EOK);
		assert_string_equal(u.host, v[i].host);
		assert_string_equal(u.port, v[i].port);
		assert_string_equal(u.path, v[i].path);
		assert_int_equal(u.https, v[i].https);
	}
}

static void test_url_refused(void **state)
{
	static const struct {
		const char *in, *why;
	} v[] = {
		{ "keys.example.com", "https://" },
		{ "ftp://keys.example.com", "https://" },
		{ "http://keys.example.com", "https" },
		{ "http://10.0.0.1", "https" },
		{ "https://keys.example.com/", "trailing" },
		{ "https://keys.example.com/a/", "trailing" },
		{ "https://keys.example.com/a?b=1", "query" },
		{ "https://keys.example.com/a#f", "fragment" },
		{ "https://user@keys.example.com", "user" },
		{ "https://Keys.Example.com", "lowercase" },
		{ "https://keys..example.com", "not a valid name" },
		{ "https://", "no host" },
		{ "https://keys.example.com:0", "port" },
		{ "https://keys.example.com:65536", "port" },
		{ "https://keys.example.com:x", "port" },
		{ "https://keys.example.com/a%2Fb", "percent" },
		{ "https://keys.example.com/a//b", "segment" },
		{ "https://keys.example.com/a/../b", "segment" },
		{ "https://[::1", "']'" },
		{ "https://[zz::1]", "IPv6" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		km_url_t u;
		char err[160] = "";
		assert_int_equal(km_url_parse(v[i].in, &u, err, sizeof(err)), KM_EINVAL);
		if (strstr(err, v[i].why) == NULL)
			fail_msg("%s: \"%s\" does not say %s", v[i].in, err, v[i].why);
	}
	km_url_t u;
	char err[160], long_url[600];
	memset(long_url, 'a', sizeof(long_url) - 1);
	long_url[sizeof(long_url) - 1] = '\0';
	memcpy(long_url, "https://", 8);
	assert_int_equal(km_url_parse(long_url, &u, err, sizeof(err)), KM_EINVAL);
	assert_int_equal(km_url_parse(NULL, &u, err, sizeof(err)), KM_EINVAL);
}

static void test_url_loopback(void **state)
{
	assert_true(km_url_host_loopback("127.0.0.1"));
	assert_true(km_url_host_loopback("127.255.0.9"));
	assert_true(km_url_host_loopback("localhost"));
	assert_true(km_url_host_loopback("[::1]"));
	assert_false(km_url_host_loopback("128.0.0.1"));
	assert_false(km_url_host_loopback("localhost.example.com"));
	assert_false(km_url_host_loopback("[::2]"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_accepted),
		cmocka_unit_test(test_url_refused),
		cmocka_unit_test(test_url_loopback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
