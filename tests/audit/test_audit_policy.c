/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The canonical texts keymgr/audit hashes and signs, against the bytes earlier versions wrote
 * (suite unit: a real configuration file, no token, no store). A store records the hash of
 * the policy in force in every event and logs a policy.load whenever it changes: a text that
 * changed for the same configuration would make every existing store log a policy change
 * that did not happen, and a changed checkpoint payload would break every signed checkpoint.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"
#include "tests/common/tmpconfig.h"

/* Key sets out of name order, every list field set, and an environment on the defaults. */
static const char config_text[] =
	"version: 1\n"
	"environments:\n"
	"  production:\n"
	"    token: { module: /usr/lib/softhsm/libsofthsm2.so, label: p, pin: file:./p.pin }\n"
	"    store: ./production.db\n"
	"    policy:\n"
	"      rotation_period: 90d\n"
	"      jwks_max_age: 1h\n"
	"      max_token_ttl: 1h\n"
	"      publish_lead: 2h\n"
	"      retire_retention: 1d\n"
	"      destroy_after: 30d\n"
	"      standby: true\n"
	"      algorithms: [ ES256, PS256, EdDSA, RS512 ]\n"
	"      min_rsa_bits: 3072\n"
	"      owners: [ \"team-*\", \"platform-security\", \"x?[ab]\" ]\n"
	"      purposes: [ id-token, access-token ]\n"
	"      activate_when_seen_by: [ gw.Z-1, edge_a, Alpha ]\n"
	"    keysets:\n"
	"      zeta: { issuer: https://auth.example.com, audiences: [ api.example.com ] }\n"
	"      api:\n"
	"        issuer: https://auth.example.com\n"
	"        audiences: [ api.example.com ]\n"
	"        policy: { rotation_period: 30d, purposes: [ access-token ] }\n"
	"      apib: { issuer: https://auth.example.com, audiences: [ api.example.com ] }\n"
	"      api-b:\n"
	"        issuer: https://auth.example.com\n"
	"        audiences: [ api.example.com ]\n"
	"        policy: { owners: [ \"b*\" ] }\n"
	"      a1: { issuer: https://auth.example.com, audiences: [ api.example.com ] }\n"
	"  dev:\n"
	"    token: { module: /usr/lib/softhsm/libsofthsm2.so, label: d, pin: file:./d.pin }\n"
	"    store: ./dev.db\n";

static int setup(void **state)
{
	km_test_config_t *c = calloc(1, sizeof(*c));
	if (c == NULL || km_test_config_create(c, config_text) != 0) {
		free(c);
		return -1;
	}
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	km_test_config_destroy(*state);
	free(*state);
	return 0;
}

/* The text is jansson's compact serialization with sorted members of itself: canonical. */
static void assert_canonical(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	assert_non_null(j);
	char *again = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	assert_non_null(again);
	assert_string_equal(again, text);
	free(again);
}

static void policy_is(km_test_config_t *fx, const char *env, const char *want_hash, const char *want_start)
{
	const km_env_cfg_t *e = km_config_env(fx->cfg, env);
	char *text = NULL, hash[KM_STORE_HASH_HEX + 1];
	assert_non_null(e);
	assert_int_equal(km_audit_policy_canonical(fx->cfg, e, &text, hash), KM_EOK);
	assert_canonical(text);
	if (strncmp(text, want_start, strlen(want_start)) != 0)
		fail_msg("%s: the text starts\n%.*s\nnot\n%s", env, (int)strlen(want_start), text,
		         want_start);
	assert_string_equal(hash, want_hash);
	free(text);
}

/* Hashes written by keymgr before the canonical writer moved to keymgr/common/. */
static void test_policy_text_and_hash_unchanged(void **state)
{
	km_test_config_t *fx = *state;
	policy_is(fx, "production",
	          "407e41fdede521025c9827c83bb5528833f446b0e6428750001b0982b975d299",
	          "{\"env\":\"production\",\"keysets\":{\"a1\":{\"activate_when_seen_by\":"
	          "[\"gw.Z-1\",\"edge_a\",\"Alpha\"],\"activate_when_seen_ceiling\":3600,"
	          "\"algorithms\":[\"RS512\",\"PS256\",\"ES256\",\"EdDSA\"],\"clock_skew\":300,"
	          "\"destroy_after\":2592000,\"jwks_max_age\":3600,\"max_token_ttl\":3600,"
	          "\"min_rsa_bits\":3072,\"owners\":[\"team-*\",\"platform-security\",\"x?[ab]\"],"
	          "\"publish_lead\":7200,\"purposes\":[\"id-token\",\"access-token\"],"
	          "\"require_distinct_purpose\":true,\"retire_retention\":86400,"
	          "\"rotation_period\":7776000,\"standby\":true},\"api\":{");
	policy_is(fx, "dev", "1ad7e012584cd83ed505ee1e732714ede5af4b5490a4da4bb4a0022504df8287",
	          "{\"env\":\"dev\",\"keysets\":{},\"policy\":{\"activate_when_seen_by\":[],");
}

/* A partial load (keymgr(1), A BROKEN CONFIGURATION): the errors first, no policy for what
 * they touch; the bytes jansson's sorted compact output gave before. */
static const char broken_text[] =
	"version: 1\n"
	"environments:\n"
	"  production:\n"
	"    token: { module: /usr/lib/softhsm/libsofthsm2.so, label: p, pin: file:./p.pin }\n"
	"    store: ./production.db\n"
	"    policy:\n"
	"      rotation_period: 90d\n"
	"      \"bog\xc3\xbcs \\\"key\\\"\\t\": 1\n"
	"    keysets:\n"
	"      api: { issuer: https://auth.example.com, audiences: [ api.example.com ] }\n";

static void test_policy_text_with_config_errors(void **state)
{
	km_test_config_t c;
	char *text = NULL, hash[KM_STORE_HASH_HEX + 1], want[PATH_MAX + 1024];
	char want_hash[KM_STORE_HASH_HEX + 1];
	uint8_t md[32];
	unsigned mdlen = 0;
	assert_int_equal(km_test_config_create_partial(&c, broken_text), 0);
	assert_int_equal(km_audit_policy_canonical(c.cfg, km_config_env(c.cfg, "production"), &text,
	                                           hash), KM_EOK);
	snprintf(want, sizeof(want), "{\"config_errors\":\"%s:8:8: unknown key 'bog\xc3\xbcs "
	         "\\\"key\\\"?' in environments.production.policy (expected one of: algorithms, "
	         "min_rsa_bits, rotation_period, jwks_max_age, max_token_ttl, clock_skew, "
	         "publish_lead, retire_retention, destroy_after, standby, owners, purposes, "
	         "require_distinct_purpose, activate_when_seen_by, activate_when_seen_ceiling)\","
	         "\"env\":\"production\",\"keysets\":{},\"policy\":null}", c.path);
	km_test_config_destroy(&c);
	assert_string_equal(text, want);
	assert_canonical(text);
	assert_int_equal(EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL), 1);
	assert_int_equal(km_hex_encode(md, sizeof(md), want_hash, sizeof(want_hash)), KM_EOK);
	assert_string_equal(hash, want_hash);
	free(text);
}

static void test_checkpoint_payload_unchanged(void **state)
{
	km_store_checkpoint_t c = { .seq = 12, .at = 1800000000 };
	char *text = NULL;
	memset(c.hash, 'a', KM_STORE_HASH_HEX);
	snprintf(c.key_kid, sizeof(c.key_kid), "abcDEF_-123");
	assert_int_equal(km_audit_checkpoint_payload("production", &c, &text), KM_EOK);
	assert_string_equal(text, "{\"at\":1800000000,\"env\":\"production\",\"hash\":\"aaaaaaaaaaaa"
	                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
	                          "\"kid\":\"abcDEF_-123\",\"seq\":12,"
	                          "\"type\":\"keymgr-audit-checkpoint\",\"v\":1}");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_text_and_hash_unchanged),
		cmocka_unit_test(test_policy_text_with_config_errors),
		cmocka_unit_test(test_checkpoint_payload_unchanged),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
