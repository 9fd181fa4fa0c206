/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "keymgr/common/error.h"
#include "policy/policy.h"

#define H 3600
#define M 60
#define DAY 86400

/* The message must name each needle (rule, fields, numbers). */
static void assert_mentions(const char *msg, const char *const *needles)
{
	for (size_t i = 0; needles[i] != NULL; i++)
		if (strstr(msg, needles[i]) == NULL)
			fail_msg("message '%s' lacks '%s'", msg, needles[i]);
}

static void expect_unsafe(const km_policy_t *p, const char *const *needles)
{
	char err[512] = "";
	assert_int_equal(km_policy_validate(p, err, sizeof(err)), KM_POLICY_EUNSAFE);
	assert_mentions(err, needles);
	/* The verdict does not depend on having a buffer. */
	assert_int_equal(km_policy_validate(p, NULL, 0), KM_POLICY_EUNSAFE);
}

static void test_defaults_are_valid(void **state)
{
	const char *envs[] = { "production", "staging", "dev", "test" };
	for (size_t i = 0; i < 4; i++) {
		km_policy_t p;
		char err[256] = "";
		km_policy_defaults(&p, envs[i]);
		if (km_policy_validate(&p, err, sizeof(err)) != KM_EOK)
			fail_msg("defaults for %s invalid: %s", envs[i], err);
		for (int f = 0; f < KM_POLICY_F_COUNT; f++)
			assert_int_equal(p.src[f], KM_POLICY_SRC_BUILTIN);
	}
}

static void test_defaults_production_is_strict(void **state)
{
	km_policy_t prod, dev;
	km_policy_defaults(&prod, "production");
	km_policy_defaults(&dev, "staging");
	assert_int_equal(prod.min_rsa_bits, 3072);
	assert_int_equal(dev.min_rsa_bits, 2048);
	assert_true(prod.standby);
	assert_true(prod.require_distinct_purpose);
	assert_int_equal(prod.rotation_period, 90 * DAY);
	assert_int_equal(prod.jwks_max_age, 1 * H);
	assert_int_equal(prod.publish_lead, 2 * H);
	assert_false(km_policy_alg_allowed(&prod, KM_ALG_RS256, 2048));
	assert_true(km_policy_alg_allowed(&prod, KM_ALG_RS256, 3072));
	assert_true(km_policy_alg_allowed(&dev, KM_ALG_RS256, 2048));
	assert_true(km_policy_alg_allowed(&prod, KM_ALG_ES256, 0));
}

static void test_validate_activation_rule(void **state)
{
	km_policy_t p;
	km_policy_defaults(&p, "production");
	p.publish_lead = 1 * H;  /* M + S = 1h5m */
	expect_unsafe(&p, (const char *[]){ "activation rule", "publish_lead (1h)",
	                                    "jwks_max_age (1h)", "clock_skew (5m)", "1h5m", NULL });
	p.publish_lead = 1 * H + 5 * M;  /* the boundary is allowed */
	assert_int_equal(km_policy_validate(&p, NULL, 0), KM_EOK);
}

static void test_validate_removal_rule(void **state)
{
	km_policy_t p;
	km_policy_defaults(&p, "production");
	p.retire_retention = 2 * H;  /* T + M + S = 2h5m */
	expect_unsafe(&p, (const char *[]){ "removal rule", "retire_retention (2h)",
	                                    "max_token_ttl (1h)", "jwks_max_age (1h)",
	                                    "clock_skew (5m)", "2h5m", NULL });
	p.retire_retention = 2 * H + 5 * M;
	assert_int_equal(km_policy_validate(&p, NULL, 0), KM_EOK);
}

static void test_validate_overlap_rule(void **state)
{
	km_policy_t p;
	km_policy_defaults(&p, "production");
	p.rotation_period = 2 * H;  /* == publish_lead */
	p.retire_retention = 3 * H;
	expect_unsafe(&p, (const char *[]){ "overlap rule", "rotation_period (2h)",
	                                    "publish_lead (2h)", NULL });
	p.rotation_period = 2 * H + 1;
	assert_int_equal(km_policy_validate(&p, NULL, 0), KM_EOK);
}

static void test_validate_positive_rule(void **state)
{
	static const struct {
		size_t off;
		const char *name;
	} f[] = {
		{ offsetof(km_policy_t, rotation_period), "rotation_period (0s)" },
		{ offsetof(km_policy_t, jwks_max_age), "jwks_max_age (0s)" },
		{ offsetof(km_policy_t, max_token_ttl), "max_token_ttl (0s)" },
		{ offsetof(km_policy_t, publish_lead), "publish_lead (0s)" },
		{ offsetof(km_policy_t, retire_retention), "retire_retention (0s)" },
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		km_policy_t p;
		km_policy_defaults(&p, "production");
		*(int64_t *)((char *)&p + f[i].off) = 0;
		expect_unsafe(&p, (const char *[]){ "positive rule", f[i].name, "> 0", NULL });
	}
	/* clock_skew and destroy_after may be zero. */
	km_policy_t p;
	km_policy_defaults(&p, "production");
	p.clock_skew = 0;
	p.destroy_after = 0;
	assert_int_equal(km_policy_validate(&p, NULL, 0), KM_EOK);
}

static void test_validate_range_rule(void **state)
{
	km_policy_t p;
	km_policy_defaults(&p, "production");
	p.destroy_after = -1;
	expect_unsafe(&p, (const char *[]){ "range rule", "destroy_after (-1s)", "36500d", NULL });
	km_policy_defaults(&p, "production");
	p.clock_skew = KM_DURATION_MAX + 1;
	expect_unsafe(&p, (const char *[]){ "range rule", "clock_skew (36500d1s)", NULL });
}

static void test_validate_jwks_size_rule(void **state)
{
	km_policy_t p;
	km_policy_defaults(&p, "production");
	p.rotation_period = 3 * H;
	p.retire_retention = 1 * DAY;  /* 8 retired + active + standby + successor = 11 */
	expect_unsafe(&p, (const char *[]){ "jwks_size rule", "11 keys", "retire_retention (1d)",
	                                    "rotation_period (3h)", "10", NULL });
	p.standby = false;                 /* 10 keys: allowed */
	assert_int_equal(km_policy_validate(&p, NULL, 0), KM_EOK);
	assert_int_equal(km_policy_jwks_keys(&p), 10);
}

static void test_validate_key_rules(void **state)
{
	km_policy_t p;
	km_policy_defaults(&p, "production");
	p.min_rsa_bits = 1024;
	expect_unsafe(&p, (const char *[]){ "rsa rule", "min_rsa_bits (1024)", "2048, 3072 or 4096",
	                                    NULL });
	km_policy_defaults(&p, "production");
	p.algorithms = 0;
	expect_unsafe(&p, (const char *[]){ "algorithms rule", "empty", NULL });
	p.algorithms = (1u << KM_ALG_ES256) | (1u << 30);
	expect_unsafe(&p, (const char *[]){ "algorithms rule", "unknown", NULL });
	assert_int_equal(km_policy_validate(NULL, NULL, 0), KM_EINVAL);
}

static void test_set_scalars(void **state)
{
	km_policy_t p;
	char err[256];
	km_policy_defaults(&p, "production");
	assert_int_equal(km_policy_set(&p, "rotation_period", "30d", KM_POLICY_SRC_ENV, err,
	                               sizeof(err)), KM_EOK);
	assert_int_equal(p.rotation_period, 30 * DAY);
	assert_int_equal(p.src[KM_POLICY_F_ROTATION_PERIOD], KM_POLICY_SRC_ENV);
	assert_int_equal(km_policy_set(&p, "clock_skew", "1d12h", KM_POLICY_SRC_KEYSET, err,
	                               sizeof(err)), KM_EOK);
	assert_int_equal(p.clock_skew, 129600);
	assert_int_equal(km_policy_set(&p, "standby", "false", KM_POLICY_SRC_ENV, err,
	                               sizeof(err)), KM_EOK);
	assert_false(p.standby);
	assert_int_equal(km_policy_set(&p, "require_distinct_purpose", "FALSE", KM_POLICY_SRC_ENV,
	                               err, sizeof(err)), KM_EOK);
	assert_false(p.require_distinct_purpose);
	assert_int_equal(km_policy_set(&p, "min_rsa_bits", "4096", KM_POLICY_SRC_ENV, err,
	                               sizeof(err)), KM_EOK);
	assert_int_equal(p.min_rsa_bits, 4096);
	for (int f = 0; f < KM_POLICY_F_COUNT; f++)
		assert_non_null(km_policy_field_name((km_policy_field_t)f));
	assert_null(km_policy_field_name(KM_POLICY_F_COUNT));
}

static void test_set_rejects_bad_values_and_changes_nothing(void **state)
{
	static const struct {
		const char *field, *value, *needle;
	} bad[] = {
		{ "rotation_period", "", "rotation_period: '' is not a duration: empty" },
		{ "rotation_period", "-5d", "negative" },
		{ "publish_lead", "2 hours", "unknown unit" },
		{ "jwks_max_age", "3600", "missing unit" },
		{ "destroy_after", "99999999999d", "out of range" },
		{ "min_rsa_bits", "1024", "min_rsa_bits: '1024' is not one of 2048, 3072, 4096" },
		{ "min_rsa_bits", "3072x", "not one of" },
		{ "standby", "yes", "standby: 'yes' is not a boolean" },
		{ "no_such_field", "1d", "no_such_field: unknown policy field" },
		{ "algorithms", "ES256", "algorithms: expected a list" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		km_policy_t p, before;
		char err[256] = "";
		km_policy_defaults(&p, "production");
		before = p;
		assert_int_equal(km_policy_set(&p, bad[i].field, bad[i].value, KM_POLICY_SRC_ENV,
		                               err, sizeof(err)), KM_CONFIG_EINVAL);
		if (strstr(err, bad[i].needle) == NULL)
			fail_msg("%s=%s: '%s' lacks '%s'", bad[i].field, bad[i].value, err, bad[i].needle);
		assert_memory_equal(&p, &before, sizeof(p));
	}
}

static void test_set_lists(void **state)
{
	km_policy_t p;
	char err[256];
	km_policy_defaults(&p, "production");
	const char *algs[] = { "ES256", "EdDSA" };
	assert_int_equal(km_policy_set_list(&p, "algorithms", algs, 2, KM_POLICY_SRC_ENV, err,
	                                    sizeof(err)), KM_EOK);
	assert_true(km_policy_alg_allowed(&p, KM_ALG_ES256, 0));
	assert_true(km_policy_alg_allowed(&p, KM_ALG_EDDSA, 0));
	assert_false(km_policy_alg_allowed(&p, KM_ALG_RS256, 4096));
	assert_int_equal(p.src[KM_POLICY_F_ALGORITHMS], KM_POLICY_SRC_ENV);

	const char *owners[] = { "team-auth@example.org", "svc-*" };
	assert_int_equal(km_policy_set_list(&p, "owners", owners, 2, KM_POLICY_SRC_KEYSET, err,
	                                    sizeof(err)), KM_EOK);
	assert_true(km_policy_owner_allowed(&p, "team-auth@example.org"));
	assert_true(km_policy_owner_allowed(&p, "svc-billing"));
	assert_false(km_policy_owner_allowed(&p, "mallory"));
	assert_false(km_policy_owner_allowed(&p, ""));
	assert_false(km_policy_owner_allowed(&p, NULL));

	const char *purposes[] = { "access-token", "webhook-signing" };
	assert_int_equal(km_policy_set_list(&p, "purposes", purposes, 2, KM_POLICY_SRC_ENV, err,
	                                    sizeof(err)), KM_EOK);
	assert_true(km_policy_purpose_allowed(&p, "webhook-signing"));
	assert_false(km_policy_purpose_allowed(&p, "id-token"));

	/* Empty lists: any valid owner; the built-in purposes. */
	km_policy_defaults(&p, "staging");
	assert_true(km_policy_owner_allowed(&p, "anyone"));
	assert_false(km_policy_owner_allowed(&p, "-bad"));
	assert_true(km_policy_purpose_allowed(&p, "id-token"));
	assert_false(km_policy_purpose_allowed(&p, "webhook-signing"));
}

static void test_set_list_rejects_bad_items_and_changes_nothing(void **state)
{
	static const struct {
		const char *field;
		const char *items[3];
		size_t n;
		const char *needle;
	} bad[] = {
		{ "algorithms", { 0 }, 0, "algorithms: the list is empty" },
		{ "algorithms", { "ES256", "none" }, 2, "unknown algorithm 'none'" },
		{ "algorithms", { "HS256" }, 1, "unknown algorithm 'HS256'" },
		{ "algorithms", { "ES256", "ES256" }, 2, "'ES256' is listed twice" },
		{ "owners", { "ok", "bad owner" }, 2, "'bad owner' is not a valid owner" },
		{ "owners", { "" }, 1, "is not a valid owner" },
		{ "purposes", { "Access_Token" }, 1, "'Access_Token' is not a valid purpose" },
		{ "purposes", { "id-token", "id-token" }, 2, "listed twice" },
		{ "rotation_period", { "1d" }, 1, "rotation_period: expected a single value" },
		{ "bogus", { "x" }, 1, "bogus: unknown policy field" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		km_policy_t p, before;
		char err[256] = "";
		km_policy_defaults(&p, "production");
		before = p;
		assert_int_equal(km_policy_set_list(&p, bad[i].field, bad[i].items, bad[i].n,
		                                    KM_POLICY_SRC_ENV, err, sizeof(err)),
		                 KM_CONFIG_EINVAL);
		if (strstr(err, bad[i].needle) == NULL)
			fail_msg("%s: '%s' lacks '%s'", bad[i].field, err, bad[i].needle);
		assert_memory_equal(&p, &before, sizeof(p));
	}
	const char *many[KM_POLICY_MAX_LIST + 1];
	for (size_t i = 0; i <= KM_POLICY_MAX_LIST; i++)
		many[i] = "x";
	km_policy_t p;
	char err[256] = "";
	km_policy_defaults(&p, "production");
	assert_int_equal(km_policy_set_list(&p, "owners", many, KM_POLICY_MAX_LIST + 1,
	                                    KM_POLICY_SRC_ENV, err, sizeof(err)), KM_CONFIG_EINVAL);
	assert_non_null(strstr(err, "at most 32"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_are_valid),
		cmocka_unit_test(test_defaults_production_is_strict),
		cmocka_unit_test(test_validate_activation_rule),
		cmocka_unit_test(test_validate_removal_rule),
		cmocka_unit_test(test_validate_overlap_rule),
		cmocka_unit_test(test_validate_positive_rule),
		cmocka_unit_test(test_validate_range_rule),
		cmocka_unit_test(test_validate_jwks_size_rule),
		cmocka_unit_test(test_validate_key_rules),
		cmocka_unit_test(test_set_scalars),
		cmocka_unit_test(test_set_rejects_bad_values_and_changes_nothing),
		cmocka_unit_test(test_set_lists),
		cmocka_unit_test(test_set_list_rejects_bad_items_and_changes_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
