/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which URLs keymgr probe may be aimed at (km_probe_target_check): loopback, and the hosts of
 * probe.allowed_hosts, nothing else; http and https only, no credentials in the URL. Nothing
 * is resolved or sent here: the check is on the URL as libcurl parses it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/common/error.h"
#include "keymgr/probe/probe.h"
#include "tests/common/tmpconfig.h"

#define ENVS                                                                                   \
	"version: 1\nenvironments:\n  staging:\n"                                              \
	"    token: { module: /usr/lib/softhsm/libsofthsm2.so, label: t, pin: env:P }\n"       \
	"    store: ./staging.db\n"

static void check(const km_config_t *cfg, const char *url, int want, const char *words)
{
	char err[1024] = "";
	int r = km_probe_target_check(cfg, url, err, sizeof(err));
	if (r != want)
		fail_msg("%s: %d (%s), expected %d", url, r, err, want);
	if (words != NULL && strstr(err, words) == NULL)
		fail_msg("%s: '%s' does not say '%s'", url, err, words);
}

static void test_target_loopback_only_without_allowed_hosts(void **state)
{
	km_test_config_t c;
	assert_int_equal(km_test_config_create(&c, ENVS), 0);
	static const char *const ok[] = {
		"http://127.0.0.1/", "http://127.255.0.3:8080/x?y=1", "http://[::1]:9/",
		"http://localhost/api", "http://LOCALHOST:80/", "https://127.0.0.1/",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		check(c.cfg, ok[i], KM_EOK, NULL);
	static const char *const refused[] = {
		"http://example.com/", "http://10.0.0.7/", "http://0.0.0.0/", "http://128.0.0.1/",
		"http://127.0.0.1.example.com/", "http://[::ffff:10.0.0.1]/", "http://localhost.evil/",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		check(c.cfg, refused[i], KM_POLICY_EDENIED, "probe.allowed_hosts");
	km_test_config_destroy(&c);
}

static void test_target_allowed_hosts(void **state)
{
	km_test_config_t c;
	assert_int_equal(km_test_config_create(&c, ENVS "probe:\n  environments: [ staging ]\n"
	                                       "  allowed_hosts: [ API.staging.example.com, "
	                                       "10.0.0.7, '2001:db8::1' ]\n"), 0);
	check(c.cfg, "https://api.staging.example.com/v1/me", KM_EOK, NULL);
	check(c.cfg, "http://API.STAGING.EXAMPLE.COM:8443/", KM_EOK, NULL);
	check(c.cfg, "http://10.0.0.7:8080/", KM_EOK, NULL);
	check(c.cfg, "http://[2001:db8::1]/", KM_EOK, NULL);
	check(c.cfg, "http://127.0.0.1/", KM_EOK, NULL);
	check(c.cfg, "http://staging.example.com/", KM_POLICY_EDENIED, "host 'staging.example.com'");
	check(c.cfg, "http://api.staging.example.com.evil.test/", KM_POLICY_EDENIED,
	      "neither loopback nor listed");
	check(c.cfg, "http://10.0.0.8/", KM_POLICY_EDENIED, "nothing was sent");
	km_test_config_destroy(&c);
}

static void test_target_not_a_probe_url(void **state)
{
	km_test_config_t c;
	assert_int_equal(km_test_config_create(&c, ENVS), 0);
	check(c.cfg, "ftp://127.0.0.1/", KM_EINVAL, "only http:// and https://");
	check(c.cfg, "file:///etc/passwd", KM_EINVAL, NULL);
	check(c.cfg, "127.0.0.1:8080/api", KM_EINVAL, "is not a URL");
	check(c.cfg, "http://user:secret@127.0.0.1/", KM_EINVAL, "no user name or password");
	check(c.cfg, "", KM_EINVAL, "--url is required");
	char err[1024] = "";
	assert_int_equal(km_probe_target_check(c.cfg, "http://user:secret@127.0.0.1/", err,
	                                       sizeof(err)), KM_EINVAL);
	assert_null(strstr(err, "secret"));
	km_test_config_destroy(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_target_loopback_only_without_allowed_hosts),
		cmocka_unit_test(test_target_allowed_hosts),
		cmocka_unit_test(test_target_not_a_probe_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
