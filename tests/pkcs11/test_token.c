/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The token layer against a real SoftHSM2 token in a temporary directory. Every signature is
 * verified by OpenSSL from the returned public key, independently of the token code.
 * One fixture per process: SoftHSM reads SOFTHSM2_CONF once, at C_Initialize.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "keymgr/common/error.h"
#include "pkcs11/token.h"
#include "pkcs11/token_test.h"
#include "tests/common/softhsm.h"
#include "tests/pkcs11/ossl_verify.h"

#define LABEL "keymgr-test"
#define KEY_LABEL "keymgr:test/signing"
/* A PIN that is wrong for every token here; it must never show up in a message. */
#define WRONG_PIN "wrong-pin-97531"

static km_test_softhsm_t hsm;
static km_token_t *tok;
static char other_pin_source[400];  /* token "other": never logged in by a passing test */

static const uint8_t msg[] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0";

static int group_setup(void **state)
{
	char err[512];
	km_token_cfg_t cfg = { 0 };

	if (km_test_softhsm_create(&hsm, LABEL) != 0)
		return -1;
	if (km_test_softhsm_add_token(&hsm, "other", "other-pin-1234", other_pin_source,
	                              sizeof(other_pin_source)) != 0)
		return -1;
	cfg.module_path = hsm.module;
	cfg.token_label = LABEL;
	cfg.pin_source = hsm.pin_source;
	if (km_token_open(&cfg, &tok, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "km_token_open: %s\n", err);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	km_token_free(tok);
	km_test_softhsm_destroy(&hsm);
	return 0;
}

static size_t count_keys(void)
{
	km_token_key_info_t *keys = NULL;
	size_t n = 0;

	assert_int_equal(km_token_list_keys(tok, &keys, &n), KM_EOK);
	free(keys);
	return n;
}

/* Looks the key up in km_token_list_keys(); returns true and a copy when present. */
static bool find_listed(const uint8_t id[KM_TOKEN_ID_LEN], km_token_key_info_t *ret)
{
	km_token_key_info_t *keys = NULL;
	size_t n = 0;
	bool found = false;

	assert_int_equal(km_token_list_keys(tok, &keys, &n), KM_EOK);
	for (size_t i = 0; i < n; i++) {
		if (keys[i].id_len == KM_TOKEN_ID_LEN && memcmp(keys[i].id, id, KM_TOKEN_ID_LEN) == 0) {
			*ret = keys[i];
			found = true;
		}
	}
	free(keys);
	return found;
}

static void sign_and_verify(km_alg_t alg, const uint8_t id[KM_TOKEN_ID_LEN],
                            const km_pubkey_t *pub)
{
	uint8_t sig[1024];
	size_t sig_len = sizeof(sig);

	assert_int_equal(km_token_sign(tok, id, KM_TOKEN_ID_LEN, alg, msg, sizeof(msg) - 1, sig,
	                               &sig_len), KM_EOK);
	const km_alg_info_t *ai = km_alg_info(alg);
	if (ai->kty == KM_KTY_RSA)
		assert_int_equal(sig_len, pub->n_len);
	else
		assert_int_equal(sig_len, ai->sig_len);
	assert_true(test_ossl_verify(pub, alg, msg, sizeof(msg) - 1, sig, sig_len));
	/* The check is real: a changed message or signature must fail. */
	assert_false(test_ossl_verify(pub, alg, msg, sizeof(msg) - 2, sig, sig_len));
	sig[sig_len / 3] ^= 0x01;
	assert_false(test_ossl_verify(pub, alg, msg, sizeof(msg) - 1, sig, sig_len));
}

static void generate_sign_verify(km_alg_t alg, unsigned bits)
{
	uint8_t id[KM_TOKEN_ID_LEN];
	km_pubkey_t pub, again;
	const km_alg_info_t *ai = km_alg_info(alg);

	assert_int_equal(km_token_generate(tok, alg, bits, KEY_LABEL, id, &pub), KM_EOK);
	assert_memory_equal(id, KM_TOKEN_ID_MAGIC, KM_TOKEN_ID_MAGIC_LEN);
	assert_int_equal(pub.kty, ai->kty);
	if (ai->kty == KM_KTY_RSA) {
		static const uint8_t f4[] = { 0x01, 0x00, 0x01 };
		assert_int_equal(pub.rsa_bits, bits);
		assert_int_equal(pub.n_len, bits / 8);
		assert_true(pub.n[0] != 0);
		assert_int_equal(pub.e_len, 3);
		assert_memory_equal(pub.e, f4, 3);
	} else {
		assert_int_equal(pub.crv, ai->crv);
		assert_int_equal(pub.x_len, km_crv_field_len(ai->crv));
		assert_int_equal(pub.y_len, ai->kty == KM_KTY_EC ? km_crv_field_len(ai->crv) : 0);
	}
	sign_and_verify(alg, id, &pub);

	/* Reading the public key back gives the same key. */
	assert_int_equal(km_token_get_public(tok, id, KM_TOKEN_ID_LEN, &again), KM_EOK);
	assert_memory_equal(&again, &pub, sizeof(pub));
	assert_int_equal(km_token_destroy(tok, id, KM_TOKEN_ID_LEN), KM_EOK);
}

static void test_token_rs256_2048(void **state) { generate_sign_verify(KM_ALG_RS256, 2048); }
static void test_token_rs384_3072(void **state) { generate_sign_verify(KM_ALG_RS384, 3072); }
static void test_token_rs512_2048(void **state) { generate_sign_verify(KM_ALG_RS512, 2048); }
static void test_token_ps256_2048(void **state) { generate_sign_verify(KM_ALG_PS256, 2048); }
static void test_token_ps384_3072(void **state) { generate_sign_verify(KM_ALG_PS384, 3072); }
/* RSA-4096 generation is slow in SoftHSM: one is enough. */
static void test_token_ps512_4096(void **state) { generate_sign_verify(KM_ALG_PS512, 4096); }
static void test_token_es256(void **state) { generate_sign_verify(KM_ALG_ES256, 0); }
static void test_token_es384(void **state) { generate_sign_verify(KM_ALG_ES384, 0); }
static void test_token_es512(void **state) { generate_sign_verify(KM_ALG_ES512, 0); }
static void test_token_eddsa(void **state) { generate_sign_verify(KM_ALG_EDDSA, 0); }

static void test_token_private_key_attributes(void **state)
{
	static const struct { km_alg_t alg; unsigned bits; CK_MECHANISM_TYPE mech; } cases[] = {
		{ KM_ALG_ES256, 0, CKM_ECDSA },
		{ KM_ALG_EDDSA, 0, CKM_EDDSA },
		{ KM_ALG_PS256, 2048, CKM_SHA256_RSA_PKCS_PSS },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t id[KM_TOKEN_ID_LEN];
		km_pubkey_t pub;
		km_token_private_attrs_t a;

		assert_int_equal(km_token_generate(tok, cases[i].alg, cases[i].bits, KEY_LABEL, id,
		                                   &pub), KM_EOK);
		assert_int_equal(km_token_get_private_attrs(tok, id, KM_TOKEN_ID_LEN, &a), KM_EOK);
		assert_true(a.token);
		assert_true(a.private_);
		assert_true(a.sensitive);
		assert_false(a.extractable);
		assert_true(a.never_extractable);
		assert_true(a.always_sensitive);
		assert_true(a.sign);
		assert_false(a.decrypt);
		assert_false(a.unwrap);
		assert_false(a.derive);
		/* No copy can be made of it (issue 16): a copy could get other attributes. */
		assert_false(a.copyable);
		/* SoftHSM 2.6.1 keeps CKA_ALLOWED_MECHANISMS: exactly the one signing mechanism. */
		assert_int_equal(a.n_allowed_mechanisms, 1);
		assert_int_equal(a.allowed_mechanisms[0], cases[i].mech);
		assert_int_equal(km_token_destroy(tok, id, KM_TOKEN_ID_LEN), KM_EOK);
	}
}

static void test_token_open_wrong_pin_refused(void **state)
{
	char path[400], src[420], err[512] = "";
	km_token_t *t = NULL;
	km_token_cfg_t cfg = { .module_path = hsm.module, .token_label = "other" };

	snprintf(path, sizeof(path), "%s/wrong.pin", hsm.dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, WRONG_PIN "\n", sizeof(WRONG_PIN)), (ssize_t)sizeof(WRONG_PIN));
	close(fd);
	snprintf(src, sizeof(src), "file:%s", path);
	cfg.pin_source = src;

	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_P11_ELOGIN);
	assert_null(t);
	assert_non_null(strstr(err, "incorrect PIN"));
	assert_non_null(strstr(err, "token 'other'"));
	assert_non_null(strstr(err, "C_Login"));
	assert_null(strstr(err, WRONG_PIN));

	/* The right PIN still works afterwards, and the shared login is per token. */
	cfg.pin_source = other_pin_source;
	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_EOK);
	km_token_info_t info;
	km_token_get_info(t, &info);
	assert_string_equal(info.label, "other");
	assert_string_equal(info.manufacturer, "SoftHSM project");
	km_token_free(t);
}

static void test_token_open_missing_label_refused(void **state)
{
	char err[512] = "";
	km_token_t *t = NULL;
	km_token_cfg_t cfg = { .module_path = hsm.module, .token_label = "no-such-token",
	                       .pin_source = hsm.pin_source };

	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_P11_ENOTOKEN);
	assert_null(t);
	assert_non_null(strstr(err, "no-such-token"));

	cfg.token_label = NULL;
	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_EINVAL);
	assert_non_null(strstr(err, "label or serial"));

	/* Label right, serial wrong: no match. */
	cfg.token_label = LABEL;
	cfg.token_serial = "0000000000000000";
	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_P11_ENOTOKEN);
	assert_null(t);
}

static void test_token_open_by_serial(void **state)
{
	char err[512] = "";
	km_token_t *t = NULL;
	km_token_info_t info;

	km_token_get_info(tok, &info);
	assert_true(info.serial[0] != '\0');
	km_token_cfg_t cfg = { .module_path = hsm.module, .token_serial = info.serial,
	                       .pin_source = hsm.pin_source, .sessions = 2 };
	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_EOK);
	km_token_info_t info2;
	km_token_get_info(t, &info2);
	assert_string_equal(info2.label, LABEL);
	km_token_free(t);
}

static void test_token_open_bad_module_refused(void **state)
{
	char err[512] = "";
	km_token_t *t = NULL;
	km_token_cfg_t cfg = { .module_path = "/nonexistent/libnothing.so", .token_label = LABEL,
	                       .pin_source = hsm.pin_source };

	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_P11_EMODULE);
	assert_null(t);
	assert_non_null(strstr(err, "/nonexistent/libnothing.so"));

	/* A real shared object that is not a PKCS#11 module. */
	cfg.module_path = "libz.so.1";
	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_P11_EMODULE);
	assert_non_null(strstr(err, "C_GetFunctionList"));

	cfg.module_path = NULL;
	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_P11_EMODULE);
}

static void test_token_open_pin_file_mode_refused(void **state)
{
	char path[400], src[420], err[512] = "";
	km_token_t *t = NULL;

	snprintf(path, sizeof(path), "%s/wide.pin", hsm.dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "user-1234\n", 10), 10);
	assert_int_equal(fchmod(fd, 0644), 0);
	close(fd);
	snprintf(src, sizeof(src), "file:%s", path);
	km_token_cfg_t cfg = { .module_path = hsm.module, .token_label = "other",
	                       .pin_source = src };
	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_P11_EPINPERM);
	assert_null(t);
	assert_non_null(strstr(err, path));
	assert_null(strstr(err, "user-1234"));
}

static void test_token_open_env_pin_missing_refused(void **state)
{
	char err[512] = "";
	km_token_t *t = NULL;
	km_token_cfg_t cfg = { .module_path = hsm.module, .token_label = "other",
	                       .pin_source = "env:KEYMGR_TEST_UNSET_PIN" };

	unsetenv("KEYMGR_TEST_UNSET_PIN");
	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_P11_EPINSOURCE);
	assert_null(t);
	assert_non_null(strstr(err, "KEYMGR_TEST_UNSET_PIN"));

	/* The same token opens with the PIN in a set variable. */
	setenv("KEYMGR_TEST_SET_PIN", "other-pin-1234", 1);
	cfg.pin_source = "env:KEYMGR_TEST_SET_PIN";
	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_EOK);
	unsetenv("KEYMGR_TEST_SET_PIN");
	km_token_free(t);
}

static void test_token_generate_unknown_alg_refused(void **state)
{
	uint8_t id[KM_TOKEN_ID_LEN];
	km_pubkey_t pub;
	size_t before = count_keys();

	assert_int_equal(km_token_generate(tok, KM_ALG_NONE, 0, KEY_LABEL, id, &pub), KM_EALG);
	assert_int_equal(km_token_generate(tok, (km_alg_t)999, 2048, KEY_LABEL, id, &pub),
	                 KM_EALG);
	assert_non_null(strstr(km_token_last_error(tok), "unknown algorithm"));
	assert_non_null(strstr(km_token_last_error(tok), "token '" LABEL "'"));
	assert_int_equal(count_keys(), before);
}

static void test_token_generate_rsa_bad_size_refused(void **state)
{
	static const unsigned bad[] = { 1024, 2047, 0, 8192 };
	uint8_t id[KM_TOKEN_ID_LEN];
	km_pubkey_t pub;
	size_t before = count_keys();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(km_token_generate(tok, KM_ALG_RS256, bad[i], KEY_LABEL, id, &pub),
		                 KM_EKEYSIZE);
		assert_non_null(strstr(km_token_last_error(tok), "RSA key size"));
	}
	assert_int_equal(count_keys(), before);
}

static void test_token_generate_with_id_checks_id(void **state)
{
	uint8_t id[KM_TOKEN_ID_LEN], bad[KM_TOKEN_ID_LEN] = { 'N', 'O', 'P', 'E' };
	km_pubkey_t pub;

	assert_int_equal(km_token_new_id(id), KM_EOK);
	assert_int_equal(km_token_generate_with_id(tok, KM_ALG_ES256, 0, KEY_LABEL, bad, sizeof(bad),
	                                           &pub),
	                 KM_EINVAL);
	assert_int_equal(km_token_generate_with_id(tok, KM_ALG_ES256, 0, "", id, sizeof(id), &pub),
	                 KM_EINVAL);
	assert_int_equal(km_token_generate_with_id(tok, KM_ALG_ES256, 0, KEY_LABEL, id, sizeof(id),
	                                           &pub),
	                 KM_EOK);
	size_t before = count_keys();
	/* The same ID twice would make lookups ambiguous. */
	assert_int_equal(km_token_generate_with_id(tok, KM_ALG_EDDSA, 0, KEY_LABEL, id, sizeof(id),
	                                           &pub),
	                 KM_EEXIST);
	assert_int_equal(count_keys(), before);
	assert_int_equal(km_token_destroy(tok, id, KM_TOKEN_ID_LEN), KM_EOK);
}

static void test_token_destroy_removes_objects(void **state)
{
	uint8_t id[KM_TOKEN_ID_LEN];
	km_pubkey_t pub;
	km_token_key_info_t info;

	assert_int_equal(km_token_generate(tok, KM_ALG_EDDSA, 0, "keymgr:test/destroy", id, &pub),
	                 KM_EOK);
	assert_true(find_listed(id, &info));
	assert_true(info.has_private);
	assert_true(info.has_public);
	assert_true(info.keymgr_id);
	assert_int_equal(info.kty, KM_KTY_OKP);
	assert_string_equal(info.label, "keymgr:test/destroy");

	assert_int_equal(km_token_destroy(tok, id, KM_TOKEN_ID_LEN), KM_EOK);
	assert_false(find_listed(id, &info));
	assert_int_equal(km_token_get_public(tok, id, KM_TOKEN_ID_LEN, &pub), KM_P11_ENOKEY);
	/* Destroying again: nothing there. */
	assert_int_equal(km_token_destroy(tok, id, KM_TOKEN_ID_LEN), KM_P11_ENOKEY);
	assert_int_equal(km_token_destroy(tok, id, 0), KM_EINVAL);
}

static void test_token_sign_after_destroy_enokey(void **state)
{
	uint8_t id[KM_TOKEN_ID_LEN], sig[128];
	size_t sig_len = sizeof(sig);
	km_pubkey_t pub;

	assert_int_equal(km_token_generate(tok, KM_ALG_ES256, 0, KEY_LABEL, id, &pub), KM_EOK);
	assert_int_equal(km_token_sign(tok, id, KM_TOKEN_ID_LEN, KM_ALG_ES256, msg, sizeof(msg),
	                               sig, &sig_len), KM_EOK);
	assert_int_equal(km_token_destroy(tok, id, KM_TOKEN_ID_LEN), KM_EOK);
	sig_len = sizeof(sig);
	assert_int_equal(km_token_sign(tok, id, KM_TOKEN_ID_LEN, KM_ALG_ES256, msg, sizeof(msg),
	                               sig, &sig_len), KM_P11_ENOKEY);
	assert_int_equal(sig_len, sizeof(sig));  /* outputs untouched on failure */
	assert_non_null(strstr(km_token_last_error(tok), "no key with this CKA_ID"));
}

static void test_token_sign_stale_handle_from_other_handle(void **state)
{
	/* Destroyed through another km_token_t: our cached handle is stale, not fatal. */
	char err[512];
	km_token_t *t2 = NULL;
	km_token_cfg_t cfg = { .module_path = hsm.module, .token_label = LABEL,
	                       .pin_source = hsm.pin_source };
	uint8_t id[KM_TOKEN_ID_LEN], sig[128];
	size_t sig_len = sizeof(sig);
	km_pubkey_t pub;

	assert_int_equal(km_token_open(&cfg, &t2, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_token_generate(tok, KM_ALG_ES256, 0, KEY_LABEL, id, &pub), KM_EOK);
	assert_int_equal(km_token_sign(tok, id, KM_TOKEN_ID_LEN, KM_ALG_ES256, msg, sizeof(msg),
	                               sig, &sig_len), KM_EOK);
	/* The second handle finds the key by searching, and signs with it too. */
	sig_len = sizeof(sig);
	assert_int_equal(km_token_sign(t2, id, KM_TOKEN_ID_LEN, KM_ALG_ES256, msg, sizeof(msg),
	                               sig, &sig_len), KM_EOK);
	assert_true(test_ossl_verify(&pub, KM_ALG_ES256, msg, sizeof(msg), sig, sig_len));
	assert_int_equal(km_token_destroy(t2, id, KM_TOKEN_ID_LEN), KM_EOK);
	km_token_free(t2);   /* must not log out the first handle */
	sig_len = sizeof(sig);
	assert_int_equal(km_token_sign(tok, id, KM_TOKEN_ID_LEN, KM_ALG_ES256, msg, sizeof(msg),
	                               sig, &sig_len), KM_P11_ENOKEY);
	/* And the first handle is still logged in. */
	generate_sign_verify(KM_ALG_ES256, 0);
}

static void test_token_sign_wrong_alg_refused(void **state)
{
	uint8_t ec[KM_TOKEN_ID_LEN], rsa[KM_TOKEN_ID_LEN], sig[512];
	km_pubkey_t pub;
	size_t sig_len;

	assert_int_equal(km_token_generate(tok, KM_ALG_ES256, 0, KEY_LABEL, ec, &pub), KM_EOK);
	assert_int_equal(km_token_generate(tok, KM_ALG_RS256, 2048, KEY_LABEL, rsa, &pub), KM_EOK);

	static const struct { int which; km_alg_t alg; } cases[] = {
		{ 0, KM_ALG_ES384 }, { 0, KM_ALG_ES512 }, { 0, KM_ALG_RS256 }, { 0, KM_ALG_EDDSA },
		{ 1, KM_ALG_ES256 }, { 1, KM_ALG_EDDSA },
		{ 1, KM_ALG_PS256 },  /* same key type, but CKA_ALLOWED_MECHANISMS says RS256 only */
		{ 1, KM_ALG_RS384 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sig_len = sizeof(sig);
		assert_int_equal(km_token_sign(tok, cases[i].which ? rsa : ec, KM_TOKEN_ID_LEN,
		                               cases[i].alg, msg, sizeof(msg), sig, &sig_len),
		                 KM_EALG);
		assert_int_equal(sig_len, sizeof(sig));
		assert_non_null(strstr(km_token_last_error(tok), km_alg_name(cases[i].alg)));
	}
	sig_len = sizeof(sig);
	assert_int_equal(km_token_sign(tok, ec, KM_TOKEN_ID_LEN, (km_alg_t)77, msg, sizeof(msg),
	                               sig, &sig_len), KM_EALG);
	/* The right algorithm still works. */
	sig_len = sizeof(sig);
	assert_int_equal(km_token_sign(tok, rsa, KM_TOKEN_ID_LEN, KM_ALG_RS256, msg, sizeof(msg),
	                               sig, &sig_len), KM_EOK);
	assert_int_equal(km_token_destroy(tok, ec, KM_TOKEN_ID_LEN), KM_EOK);
	assert_int_equal(km_token_destroy(tok, rsa, KM_TOKEN_ID_LEN), KM_EOK);
}

static void test_token_sign_small_buffer_refused(void **state)
{
	uint8_t id[KM_TOKEN_ID_LEN], sig[64];
	km_pubkey_t pub;
	size_t sig_len = 63;

	assert_int_equal(km_token_generate(tok, KM_ALG_ES256, 0, KEY_LABEL, id, &pub), KM_EOK);
	assert_int_equal(km_token_sign(tok, id, KM_TOKEN_ID_LEN, KM_ALG_ES256, msg, sizeof(msg),
	                               sig, &sig_len), KM_ERANGE);
	assert_int_equal(sig_len, 63);
	/* The session is not left with an operation active. */
	for (int i = 0; i < 8; i++) {
		sig_len = sizeof(sig);
		assert_int_equal(km_token_sign(tok, id, KM_TOKEN_ID_LEN, KM_ALG_ES256, msg,
		                               sizeof(msg), sig, &sig_len), KM_EOK);
	}
	assert_int_equal(km_token_destroy(tok, id, KM_TOKEN_ID_LEN), KM_EOK);
}

typedef struct {
	const uint8_t *id;
	const km_pubkey_t *pub;
	km_alg_t alg;
	int ok;
} sign_job_t;

static void *sign_thread(void *arg)
{
	sign_job_t *job = arg;
	uint8_t data[32] = { 0 }, sig[132];

	for (int i = 0; i < 100; i++) {
		size_t sig_len = sizeof(sig);
		snprintf((char *)data, sizeof(data), "message %d", i);
		if (km_token_sign(tok, job->id, KM_TOKEN_ID_LEN, job->alg, data, sizeof(data), sig,
		                  &sig_len) == KM_EOK &&
		    test_ossl_verify(job->pub, job->alg, data, sizeof(data), sig, sig_len))
			job->ok++;
		/* Every other time, run a C_SignInit ahead (pkcs11/prepare.c) as keymgrd does: it
		 * may prepare a session another thread, with the other key, takes next. */
		if (i % 2 == 1)
			km_token_prepare(tok, 1);
	}
	return NULL;
}

static void test_token_sign_concurrent_threads(void **state)
{
	uint8_t es[KM_TOKEN_ID_LEN], ed[KM_TOKEN_ID_LEN];
	km_pubkey_t es_pub, ed_pub;
	pthread_t th[4];
	sign_job_t jobs[4];

	assert_int_equal(km_token_generate(tok, KM_ALG_ES256, 0, KEY_LABEL, es, &es_pub), KM_EOK);
	assert_int_equal(km_token_generate(tok, KM_ALG_EDDSA, 0, KEY_LABEL, ed, &ed_pub), KM_EOK);
	for (int i = 0; i < 4; i++) {
		/* Two threads per key; the first signatures race to fill the handle cache, and
		 * prepared operations are taken by their own key only. */
		jobs[i] = (sign_job_t){ i % 2 ? ed : es, i % 2 ? &ed_pub : &es_pub,
		                        i % 2 ? KM_ALG_EDDSA : KM_ALG_ES256, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, sign_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(jobs[i].ok, 100);
	}
	assert_int_equal(km_token_destroy(tok, es, KM_TOKEN_ID_LEN), KM_EOK);
	assert_int_equal(km_token_destroy(tok, ed, KM_TOKEN_ID_LEN), KM_EOK);
}

static void test_token_init_dev_existing_label_refused(void **state)
{
	char err[512] = "";
	size_t before = count_keys();

	assert_int_equal(km_token_init_dev(hsm.module, LABEL, hsm.so_pin_source, hsm.pin_source,
	                                   err, sizeof(err)), KM_EEXIST);
	assert_non_null(strstr(err, "already exists"));
	/* Bad sources for a new token change nothing: no half-initialised token is left. */
	assert_int_equal(km_token_init_dev(hsm.module, "fresh", hsm.so_pin_source,
	                                   "env:KEYMGR_TEST_UNSET_PIN", err, sizeof(err)),
	                 KM_P11_EPINSOURCE);
	km_token_cfg_t cfg = { .module_path = hsm.module, .token_label = "fresh" };
	km_token_t *t = NULL;
	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_P11_ENOTOKEN);
	assert_int_equal(km_token_init_dev(hsm.module, "a-label-longer-than-thirty-two-bytes",
	                                   hsm.so_pin_source, hsm.pin_source, err, sizeof(err)),
	                 KM_EINVAL);
	assert_int_equal(count_keys(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_rs256_2048),
		cmocka_unit_test(test_token_rs384_3072),
		cmocka_unit_test(test_token_rs512_2048),
		cmocka_unit_test(test_token_ps256_2048),
		cmocka_unit_test(test_token_ps384_3072),
		cmocka_unit_test(test_token_ps512_4096),
		cmocka_unit_test(test_token_es256),
		cmocka_unit_test(test_token_es384),
		cmocka_unit_test(test_token_es512),
		cmocka_unit_test(test_token_eddsa),
		cmocka_unit_test(test_token_private_key_attributes),
		cmocka_unit_test(test_token_open_wrong_pin_refused),
		cmocka_unit_test(test_token_open_missing_label_refused),
		cmocka_unit_test(test_token_open_by_serial),
		cmocka_unit_test(test_token_open_bad_module_refused),
		cmocka_unit_test(test_token_open_pin_file_mode_refused),
		cmocka_unit_test(test_token_open_env_pin_missing_refused),
		cmocka_unit_test(test_token_generate_unknown_alg_refused),
		cmocka_unit_test(test_token_generate_rsa_bad_size_refused),
		cmocka_unit_test(test_token_generate_with_id_checks_id),
		cmocka_unit_test(test_token_destroy_removes_objects),
		cmocka_unit_test(test_token_sign_after_destroy_enokey),
		cmocka_unit_test(test_token_sign_stale_handle_from_other_handle),
		cmocka_unit_test(test_token_sign_wrong_alg_refused),
		cmocka_unit_test(test_token_sign_small_buffer_refused),
		cmocka_unit_test(test_token_sign_concurrent_threads),
		cmocka_unit_test(test_token_init_dev_existing_label_refused),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
