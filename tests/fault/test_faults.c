/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Token faults through keymgr-p11fault (p11fault.c), which wraps SoftHSM: the token absent at
 * start, removed in the middle of a generation, CKR_DEVICE_ERROR, CKR_SESSION_HANDLE_INVALID,
 * CKR_USER_NOT_LOGGED_IN, a locked PIN, and the process killed inside a token call. Each
 * failing command must exit 1 with a message naming the token and the error (never a PIN),
 * and leave the store as it was: the same confirmed keys in the same states, the same
 * active key and JWKS, no pending intent. A kill inside the token is repaired by reconcile.
 *
 * Usage: test_fault_faults PATH-TO-KEYMGR PATH-TO-P11FAULT-MODULE
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store.h"
#include "tests/fault/common.h"

static kmt_t kmt;
static const char *keymgr_path, *fault_module;
static char real_module_env[400];

static int group_setup(void **state)
{
	if (kmt_setup(&kmt, keymgr_path, fault_module) != 0)
		return -1;
	snprintf(real_module_env, sizeof(real_module_env), "KEYMGR_P11FAULT_MODULE=%s",
	         kmt.hsm.module);
	/* keymgr loads the fault module; the module loads SoftHSM. */
	setenv("KEYMGR_P11FAULT_MODULE", kmt.hsm.module, 1);
	return 0;
}

static int group_teardown(void **state)
{
	kmt_teardown(&kmt);
	return 0;
}

/* The confirmed keys of keyset as "kid=state;" (abandoned intents have no kid). */
static void snapshot(const char *keyset, char *out, size_t len)
{
	km_store_t *s = NULL;
	char err[256];
	assert_int_equal(km_store_open(kmt.store, KMT_ENV, &s, err, sizeof(err)), KM_EOK);
	km_store_key_filter_t f = { .keyset = keyset };
	km_store_key_t *keys = NULL;
	size_t n = 0, used = 0;
	assert_int_equal(km_store_keys_query(s, &f, &keys, &n, err, sizeof(err)), KM_EOK);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (keys[i].pending)
			fail_msg("%s: a pending intent was left behind", keyset);
		if (keys[i].kid[0] != '\0')
			used += (size_t)snprintf(out + used, len - used, "%s=%s;", keys[i].kid,
			                         km_state_name(keys[i].state));
	}
	km_store_keys_free(keys);
	km_store_free(s);
}

/* A key set with one active key, made without faults. */
static void prepare(const char *ks)
{
	km_run_t *r = calloc(1, sizeof(*r));
	char ref[64];
	snprintf(ref, sizeof(ref), KMT_ENV "/%s", ks);
	kmt_ok(&kmt, r, (const char *[]){ "keyset", "create", ref, "--no-key", "--alg", "ES256",
	                                  "--owner", "reliability", "--purpose", "access-token",
	                                  NULL });
	kmt_ok(&kmt, r, (const char *[]){ "rotate", ref, NULL });
	free(r);
}

/*
 * Runs `keymgr rotate ENV/ks` under rule; expects exit 1, a message containing want, no PIN,
 * and the key set exactly as before (keys, states, JWKS).
 */
static void rotate_refused(const char *ks, const char *rule, const char *want)
{
	km_run_t *r = calloc(1, sizeof(*r));
	char ref[64], before[4096], after[4096], fault_env[256];
	char *jwks_before = malloc(sizeof(r->out));
	snprintf(ref, sizeof(ref), KMT_ENV "/%s", ks);
	prepare(ks);
	snapshot(ks, before, sizeof(before));
	kmt_ok(&kmt, r, (const char *[]){ "jwks", ref, NULL });
	assert_non_null(jwks_before);
	memcpy(jwks_before, r->out, sizeof(r->out));

	snprintf(fault_env, sizeof(fault_env), "KEYMGR_P11FAULT=%s", rule);
	kmt_run(&kmt, r, (const char *[]){ fault_env, real_module_env, NULL },
	        (const char *[]){ "rotate", ref, NULL });
	if (r->status != 1 || strstr(r->err, want) == NULL)
		fail_msg("rotate under %s: exit %d, expected 1 and '%s'\nstderr: %s", rule, r->status,
		         want, r->err);
	if (strstr(r->err, "keymgr-crash") == NULL && strstr(r->err, "token") == NULL)
		fail_msg("the message does not name the token: %s", r->err);

	snapshot(ks, after, sizeof(after));
	assert_string_equal(before, after);
	kmt_ok(&kmt, r, (const char *[]){ "jwks", ref, NULL });
	assert_string_equal(jwks_before, r->out);
	/* Store and token still agree: nothing for reconcile to do. */
	kmt_ok(&kmt, r, (const char *[]){ "reconcile", KMT_ENV, NULL });
	assert_non_null(strstr(r->out, "nothing to repair"));
	kmt_check_invariants(&kmt, ks);
	free(jwks_before);
	free(r);
}

static void test_faults_token_absent_at_start(void **state)
{
	rotate_refused("fa", "C_GetTokenInfo:CKR_TOKEN_NOT_PRESENT", "keymgr-crash");
}

static void test_faults_token_removed_mid_generation(void **state)
{
	rotate_refused("fb", "C_GenerateKeyPair:CKR_DEVICE_REMOVED", "CKR_DEVICE_REMOVED");
}

static void test_faults_token_gone_after_login(void **state)
{
	/* Every call after the first few fails: the token vanished once keymgr was in. */
	rotate_refused("fc", "*:CKR_DEVICE_REMOVED:after=8", "CKR_DEVICE_REMOVED");
}

static void test_faults_device_error(void **state)
{
	rotate_refused("fd", "C_GenerateKeyPair:CKR_DEVICE_ERROR", "CKR_DEVICE_ERROR");
}

static void test_faults_session_handle_invalid(void **state)
{
	rotate_refused("fe", "C_GenerateKeyPair:CKR_SESSION_HANDLE_INVALID",
	               "CKR_SESSION_HANDLE_INVALID");
}

static void test_faults_user_not_logged_in(void **state)
{
	rotate_refused("ff", "C_GenerateKeyPair:CKR_USER_NOT_LOGGED_IN", "CKR_USER_NOT_LOGGED_IN");
}

static void test_faults_pin_locked(void **state)
{
	rotate_refused("fg", "C_Login:CKR_PIN_LOCKED", "CKR_PIN_LOCKED");
}

/* Signing through the raw token verbs: a failing C_Sign is a clear error, nothing signed. */
static void test_faults_sign_device_error(void **state)
{
	km_run_t *r = calloc(1, sizeof(*r));
	/* A token of its own: raw keys are unknown to the store (reconcile would quarantine). */
	static char raw_pin[400];
	assert_int_equal(km_test_softhsm_add_token(&kmt.hsm, "keymgr-raw", "raw-pin-48213",
	                                           raw_pin, sizeof(raw_pin)), 0);
	const char *common[] = { "--module", fault_module, "--token", "keymgr-raw",
	                         "--pin-source", raw_pin };
	kmt_run(&kmt, r, (const char *[]){ real_module_env, NULL },
	        (const char *[]){ "token", "keygen", "--alg", "ES256", common[0], common[1],
	                          common[2], common[3], common[4], common[5], "--json", NULL });
	if (r->status != 0)
		fail_msg("token keygen: %s", r->err);
	char *kid = strstr(r->out, "\"kid\":\"");
	assert_non_null(kid);
	kid += 7;
	*strchr(kid, '"') = '\0';
	char kidbuf[64];
	snprintf(kidbuf, sizeof(kidbuf), "%s", kid);
	const char *rules[] = { "KEYMGR_P11FAULT=C_Sign:CKR_DEVICE_ERROR",
	                        "KEYMGR_P11FAULT=C_SignInit:CKR_SESSION_HANDLE_INVALID",
	                        "KEYMGR_P11FAULT=C_Sign:CKR_USER_NOT_LOGGED_IN",
	                        "KEYMGR_P11FAULT=*:CKR_DEVICE_REMOVED:after=6" };
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		kmt_run(&kmt, r, (const char *[]){ rules[i], real_module_env, NULL },
		        (const char *[]){ "token", "sign", "--kid", kidbuf, "--claims",
		                          "{\"sub\":\"x\"}", common[0], common[1], common[2],
		                          common[3], common[4], common[5], NULL });
		if (r->status != 1 || r->out[0] != '\0' || strstr(r->err, "CKR_") == NULL)
			fail_msg("%s: exit %d, expected 1, no JWT and the CKR named\nstdout: %s\n"
			         "stderr: %s", rules[i], r->status, r->out, r->err);
	}
	/* Without a fault the same key still signs. */
	kmt_run(&kmt, r, (const char *[]){ real_module_env, NULL },
	        (const char *[]){ "token", "sign", "--kid", kidbuf, "--claims", "{\"sub\":\"x\"}",
	                          common[0], common[1], common[2], common[3], common[4],
	                          common[5], NULL });
	assert_int_equal(r->status, 0);
	free(r);
}

/* Killed inside C_GenerateKeyPair / between the two C_DestroyObject calls: reconcile repairs. */
static void test_faults_kill_inside_token_calls(void **state)
{
	km_run_t *r = calloc(1, sizeof(*r));
	prepare("fk");
	kmt_run(&kmt, r, (const char *[]){ "KEYMGR_P11FAULT=C_GenerateKeyPair:KILL",
	                                   real_module_env, NULL },
	        (const char *[]){ "rotate", KMT_ENV "/fk", NULL });
	assert_int_equal(r->status, 128 + 9);
	kmt_ok(&kmt, r, (const char *[]){ "reconcile", KMT_ENV, NULL });
	assert_non_null(strstr(r->out, "abandon"));
	kmt_check_invariants(&kmt, "fk");

	/* A removed key whose private object is destroyed, then the process dies. */
	char old[128];
	kmt_active_kid(&kmt, "fk", old, sizeof(old));
	kmt_ok(&kmt, r, (const char *[]){ "rotate", KMT_ENV "/fk", "--now", "--force", NULL });
	kmt_ok(&kmt, r, (const char *[]){ "key", "remove", old, "--env", KMT_ENV, "--force", NULL });
	kmt_run(&kmt, r, (const char *[]){ "KEYMGR_P11FAULT=C_DestroyObject:KILL:after=1",
	                                   real_module_env, NULL },
	        (const char *[]){ "destroy", old, "--env", KMT_ENV, NULL });
	assert_int_equal(r->status, 128 + 9);
	kmt_ok(&kmt, r, (const char *[]){ "reconcile", KMT_ENV, NULL });
	if (strstr(r->out, "destroyed") == NULL || strstr(r->out, "leftover") == NULL)
		fail_msg("reconcile after a kill between the two destroys:\n%s%s", r->out, r->err);
	kmt_check_invariants(&kmt, "fk");
	free(r);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s PATH-TO-KEYMGR PATH-TO-P11FAULT\n", argv[0]);
		return 2;
	}
	/* meson passes build-relative paths; keymgr.yaml wants an absolute module path. */
	static char keymgr_abs[4096], module_abs[4096];
	if (realpath(argv[1], keymgr_abs) == NULL || realpath(argv[2], module_abs) == NULL) {
		perror("realpath");
		return 2;
	}
	keymgr_path = keymgr_abs;
	fault_module = module_abs;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_faults_token_absent_at_start),
		cmocka_unit_test(test_faults_token_removed_mid_generation),
		cmocka_unit_test(test_faults_token_gone_after_login),
		cmocka_unit_test(test_faults_device_error),
		cmocka_unit_test(test_faults_session_handle_invalid),
		cmocka_unit_test(test_faults_user_not_logged_in),
		cmocka_unit_test(test_faults_pin_locked),
		cmocka_unit_test(test_faults_sign_device_error),
		cmocka_unit_test(test_faults_kill_inside_token_calls),
	};
	return cmocka_run_group_tests_name("faults", tests, group_setup, group_teardown);
}
