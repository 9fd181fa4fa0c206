/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The private key template of km_token_generate() on tokens that refuse part of it
 * (pkcs11/keygen.c), through keymgr-p11fault wrapping a real SoftHSM token: the key is made
 * with CKA_COPYABLE false where the token takes it (issue 16: no copy with other attributes
 * can be made of it); a token that refuses the template once (CKR_ATTRIBUTE_TYPE_INVALID or
 * CKR_ATTRIBUTE_VALUE_INVALID, as one that does not know CKA_COPYABLE does) is asked again
 * without CKA_COPYABLE only, so the key keeps CKA_ALLOWED_MECHANISMS; one that refuses twice
 * gets neither. Every key stays sensitive, never extractable and sign-only, and signs.
 * A token that assigns CKA_IDs itself (p11fault's ASSIGNID, as kmsp11): every template with
 * a CKA_ID is refused, km_token_generate_assigned() makes the pair without one and returns
 * the token's id, which km_token_check_key() then accepts; an id that another object holds
 * already, or no id at all, gets the pair destroyed and the generation refused.
 *
 * Usage: test_fault_keygen PATH-TO-P11FAULT-MODULE
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "pkcs11/token.h"
#include "pkcs11/token_test.h"
#include "tests/common/softhsm.h"
#include "tests/fault/p11calls.h"
#include "tests/pkcs11/ossl_verify.h"

#define LABEL "keymgr-keygen"

static km_test_softhsm_t hsm;
static const char *fault_module;
static km_token_t *tok;

static int group_setup(void **state)
{
	char err[512];
	(void)state;
	if (km_test_softhsm_create(&hsm, LABEL) != 0)
		return -1;
	p11calls_init(hsm.dir, hsm.module);
	km_token_cfg_t cfg = { .module_path = fault_module, .token_label = LABEL,
	                       .pin_source = hsm.pin_source, .sessions = 1 };
	if (km_token_open(&cfg, &tok, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "km_token_open: %s\n", err);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	km_token_free(tok);
	km_test_softhsm_destroy(&hsm);
	return 0;
}

/*
 * Generates an ES256 pair under the fault rules, checks how many C_GenerateKeyPair calls
 * reached the token and that the key is safe and signs; returns its attributes.
 */
static km_token_private_attrs_t generate(const char *rules, size_t calls)
{
	static const uint8_t msg[] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJrZXlnZW4ifQ";
	uint8_t id[KM_TOKEN_ID_LEN], sig[64];
	size_t len = sizeof(sig);
	km_pubkey_t pub;
	km_token_private_attrs_t a;
	p11calls_rules(rules);
	p11calls_reset();
	int r = km_token_generate(tok, KM_ALG_ES256, 0, "keymgr:test/keygen", id, &pub);
	p11calls_rules("");
	if (r != KM_EOK)
		fail_msg("generate: %s: %s", km_strerror(r), km_token_last_error(tok));
	char *log = p11calls_read();
	size_t n = p11calls_count(log, "C_GenerateKeyPair ");
	if (n != calls)
		fail_msg("%zu C_GenerateKeyPair calls, expected %zu:\n%s", n, calls, log);
	free(log);
	assert_int_equal(km_token_get_private_attrs(tok, id, sizeof(id), &a), KM_EOK);
	assert_true(a.sensitive);
	assert_false(a.extractable);
	assert_true(a.never_extractable);
	assert_true(a.sign);
	assert_false(a.decrypt);
	assert_false(a.unwrap);
	assert_false(a.derive);
	assert_int_equal(km_token_sign(tok, id, sizeof(id), KM_ALG_ES256, msg, sizeof(msg) - 1, sig,
	                               &len), KM_EOK);
	assert_true(test_ossl_verify(&pub, KM_ALG_ES256, msg, sizeof(msg) - 1, sig, len));
	assert_int_equal(km_token_destroy(tok, id, sizeof(id)), KM_EOK);
	return a;
}

static void test_keygen_not_copyable(void **state)
{
	(void)state;
	km_token_private_attrs_t a = generate("", 1);
	assert_false(a.copyable);
	assert_int_equal(a.n_allowed_mechanisms, 1);
}

/* CKR_ATTRIBUTE_TYPE_INVALID = 0x12, CKR_ATTRIBUTE_VALUE_INVALID = 0x13. */
static void test_keygen_copyable_refused_keeps_allowed_mechanisms(void **state)
{
	(void)state;
	const char *rules[] = { "C_GenerateKeyPair:0x12:count=1", "C_GenerateKeyPair:0x13:count=1" };
	for (size_t i = 0; i < 2; i++) {
		km_token_private_attrs_t a = generate(rules[i], 2);
		assert_true(a.copyable);                     /* SoftHSM's default */
		assert_int_equal(a.n_allowed_mechanisms, 1);  /* still limited to CKM_ECDSA */
	}
}

static void test_keygen_both_refused(void **state)
{
	(void)state;
	km_token_private_attrs_t a = generate("C_GenerateKeyPair:0x12:count=2", 3);
	assert_true(a.copyable);
	assert_int_equal(a.n_allowed_mechanisms, 0);
}

static void test_keygen_other_refusal_not_retried(void **state)
{
	(void)state;
	uint8_t id[KM_TOKEN_ID_LEN];
	km_pubkey_t pub;
	p11calls_rules("C_GenerateKeyPair:CKR_DEVICE_ERROR:count=1");
	p11calls_reset();
	assert_int_not_equal(km_token_generate(tok, KM_ALG_ES256, 0, "keymgr:test/keygen", id,
	                                       &pub), KM_EOK);
	p11calls_rules("");
	char *log = p11calls_read();
	assert_int_equal(p11calls_count(log, "C_GenerateKeyPair "), 1);
	free(log);
}

/* The private keys the token holds. */
static size_t private_keys(void)
{
	km_token_privkey_t *keys = NULL;
	size_t n = 0;
	assert_int_equal(km_token_list_private_keys(tok, &keys, &n), KM_EOK);
	free(keys);
	return n;
}

static void test_keygen_assigned_id(void **state)
{
	(void)state;
	uint8_t id[KM_TOKEN_ID_MAX], kmgr[KM_TOKEN_ID_LEN];
	size_t len = 0;
	km_pubkey_t pub;
	p11calls_rules("C_GenerateKeyPair:ASSIGNID=16");
	/* a CKA_ID of keymgr's is refused on every rung */
	assert_int_equal(km_token_generate(tok, KM_ALG_ES256, 0, "keymgr:test/keygen", kmgr, &pub),
	                 KM_EINVAL);
	assert_false(km_token_assigns_ids(tok));
	assert_int_equal(km_token_generate_assigned(tok, KM_ALG_ES256, 0, "keymgr:test/keygen", id,
	                                            &len), KM_EOK);
	p11calls_rules("");
	assert_true(km_token_assigns_ids(tok));
	assert_int_equal(len, 16);
	assert_memory_not_equal(id, KM_TOKEN_ID_MAGIC, KM_TOKEN_ID_MAGIC_LEN);
	assert_int_equal(km_token_check_key(tok, id, len, KM_ALG_ES256, &pub), KM_EOK);
	assert_int_equal(km_token_destroy(tok, id, len), KM_EOK);
}

static void test_keygen_assigned_id_taken_or_missing(void **state)
{
	(void)state;
	uint8_t id[KM_TOKEN_ID_MAX];
	size_t len = 0, before;
	/* the token gives the same id twice: the second pair is not unique */
	p11calls_rules("C_GenerateKeyPair:ASSIGNID=0x6b6d7331316964");
	assert_int_equal(km_token_generate_assigned(tok, KM_ALG_ES256, 0, "keymgr:test/keygen", id,
	                                            &len), KM_EOK);
	before = private_keys();
	assert_int_equal(km_token_generate_assigned(tok, KM_ALG_ES256, 0, "keymgr:test/keygen", id,
	                                            &len), KM_P11_EKEYREFUSED);
	assert_non_null(strstr(km_token_last_error(tok), "is not unique"));
	assert_int_equal(private_keys(), before);
	assert_int_equal(km_token_destroy(tok, (const uint8_t *)"kms11id", 7), KM_EOK);
	/* a token that gives no id (SoftHSM without the rule) */
	p11calls_rules("");
	before = private_keys();
	assert_int_equal(km_token_generate_assigned(tok, KM_ALG_ES256, 0, "keymgr:test/keygen", id,
	                                            &len), KM_P11_EKEYREFUSED);
	assert_non_null(strstr(km_token_last_error(tok), "no CKA_ID"));
	assert_int_equal(private_keys(), before);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH-TO-P11FAULT-MODULE\n", argv[0]);
		return 2;
	}
	fault_module = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keygen_not_copyable),
		cmocka_unit_test(test_keygen_copyable_refused_keeps_allowed_mechanisms),
		cmocka_unit_test(test_keygen_both_refused),
		cmocka_unit_test(test_keygen_other_refusal_not_retried),
		cmocka_unit_test(test_keygen_assigned_id),
		cmocka_unit_test(test_keygen_assigned_id_taken_or_missing),
	};
	return cmocka_run_group_tests_name("keygen", tests, group_setup, group_teardown);
}
