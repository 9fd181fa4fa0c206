/* SPDX-License-Identifier: Apache-2.0 */
/* Compact JWS signing (keymgr/jose/jws.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "keymgr/jose/jws.h"

/* A recording signer: remembers the signing input, returns sig_len bytes of 0xA5. */
typedef struct {
	char input[4096];
	size_t input_len;
	size_t sig_len;
	int rc;
	int calls;
} fake_t;

static int fake_sign(void *ctx, const uint8_t *data, size_t len, uint8_t *sig, size_t *sig_len)
{
	fake_t *f = ctx;
	f->calls++;
	if (f->rc != KM_EOK)
		return f->rc;
	assert_true(len < sizeof(f->input));
	memcpy(f->input, data, len);
	f->input_len = len;
	assert_true(*sig_len >= f->sig_len);
	memset(sig, 0xA5, f->sig_len);
	*sig_len = f->sig_len;
	return KM_EOK;
}

/* Splits a compact JWS into its three decoded parts (NUL-terminated for header/payload). */
static void split(const char *jws, char *hdr, char *payload, uint8_t *sig, size_t *sig_len)
{
	const char *d1 = strchr(jws, '.');
	assert_non_null(d1);
	const char *d2 = strchr(d1 + 1, '.');
	assert_non_null(d2);
	assert_null(strchr(d2 + 1, '.'));
	assert_null(strchr(jws, '='));
	size_t n = 0;
	assert_int_equal(km_b64url_decode(jws, (size_t)(d1 - jws), (uint8_t *)hdr, &n), KM_EOK);
	hdr[n] = '\0';
	assert_int_equal(km_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), (uint8_t *)payload, &n),
	                 KM_EOK);
	payload[n] = '\0';
	assert_int_equal(km_b64url_decode(d2 + 1, strlen(d2 + 1), sig, sig_len), KM_EOK);
}

static void test_jws_structure(void **state)
{
	fake_t f = { .sig_len = 64 };
	km_jws_signer_t s = { KM_ALG_ES256, "kid-1", "at+jwt", fake_sign, &f };
	char *jws = NULL, hdr[256], payload[256];
	uint8_t sig[600];
	size_t sig_len = 0;
	assert_int_equal(km_jws_sign_text(&s, "{ \"sub\" : \"alice\", \"n\": 1 }", &jws, NULL, 0),
	                 KM_EOK);
	split(jws, hdr, payload, sig, &sig_len);
	assert_string_equal(hdr, "{\"alg\":\"ES256\",\"kid\":\"kid-1\",\"typ\":\"at+jwt\"}");
	assert_string_equal(payload, "{\"sub\":\"alice\",\"n\":1}");
	assert_int_equal(sig_len, 64);
	assert_int_equal(sig[0], 0xA5);
	/* The signer saw exactly "header.payload". */
	assert_int_equal(f.input_len, (size_t)(strrchr(jws, '.') - jws));
	assert_memory_equal(f.input, jws, f.input_len);
	free(jws);
}

static void test_jws_typ_optional(void **state)
{
	fake_t f = { .sig_len = 256 };
	km_jws_signer_t s = { KM_ALG_PS256, "k", NULL, fake_sign, &f };
	json_t *claims = json_pack("{s:s, s:i}", "iss", "https://issuer.example", "exp", 1700000000);
	char *jws = NULL, hdr[256], payload[256];
	uint8_t sig[600];
	size_t sig_len = 0;
	assert_int_equal(km_jws_sign_claims(&s, claims, &jws), KM_EOK);
	split(jws, hdr, payload, sig, &sig_len);
	assert_string_equal(hdr, "{\"alg\":\"PS256\",\"kid\":\"k\"}");
	assert_string_equal(payload, "{\"iss\":\"https://issuer.example\",\"exp\":1700000000}");
	assert_int_equal(sig_len, 256);
	free(jws);
	json_decref(claims);
}

static void test_jws_malformed_claims_refused(void **state)
{
	fake_t f = { .sig_len = 64 };
	km_jws_signer_t s = { KM_ALG_ES256, "k", NULL, fake_sign, &f };
	char *jws = (char *)0x1, err[200];
	assert_int_equal(km_jws_sign_text(&s, "{\"sub\":\"a\",\n \"exp\": }", &jws, err,
	                                  sizeof(err)),
	                 KM_EMALFORMED);
	assert_non_null(strstr(err, "line 2"));
	assert_non_null(strstr(err, "column"));
	assert_int_equal(km_jws_sign_text(&s, "{\"a\":1}trailing", &jws, err, sizeof(err)),
	                 KM_EMALFORMED);
	assert_int_equal(km_jws_sign_text(&s, "{\"a\":1,\"a\":2}", &jws, err, sizeof(err)),
	                 KM_EMALFORMED);
	assert_int_equal(km_jws_sign_text(&s, "", &jws, err, sizeof(err)), KM_EMALFORMED);
	assert_int_equal(f.calls, 0);
	assert_ptr_equal(jws, (char *)0x1);
}

static void test_jws_claims_must_be_object(void **state)
{
	fake_t f = { .sig_len = 64 };
	km_jws_signer_t s = { KM_ALG_ES256, "k", NULL, fake_sign, &f };
	char *jws = NULL, err[200];
	assert_int_equal(km_jws_sign_text(&s, "[1,2]", &jws, err, sizeof(err)), KM_EMALFORMED);
	assert_non_null(strstr(err, "JSON object"));
	assert_int_equal(km_jws_sign_text(&s, "\"sub\"", &jws, err, sizeof(err)), KM_EMALFORMED);
	assert_int_equal(km_jws_sign_text(&s, "42", &jws, err, sizeof(err)), KM_EMALFORMED);
	json_t *arr = json_array();
	assert_int_equal(km_jws_sign_claims(&s, arr, &jws), KM_EINVAL);
	json_decref(arr);
	assert_int_equal(f.calls, 0);
	assert_null(jws);
}

static void test_jws_signer_errors_propagate(void **state)
{
	fake_t f = { .sig_len = 64, .rc = KM_P11_ENOKEY };
	km_jws_signer_t s = { KM_ALG_ES256, "k", NULL, fake_sign, &f };
	char *jws = NULL;
	assert_int_equal(km_jws_sign_text(&s, "{}", &jws, NULL, 0), KM_P11_ENOKEY);
	/* A signature of the wrong length for the algorithm is refused. */
	f.rc = KM_EOK;
	f.sig_len = 63;
	assert_int_equal(km_jws_sign_text(&s, "{}", &jws, NULL, 0), KM_ECRYPTO);
	s.alg = KM_ALG_NONE;
	assert_int_equal(km_jws_sign_text(&s, "{}", &jws, NULL, 0), KM_EALG);
	s.alg = KM_ALG_ES256;
	s.kid = "";
	assert_int_equal(km_jws_sign_text(&s, "{}", &jws, NULL, 0), KM_EINVAL);
	assert_null(jws);
}

/* A real Ed25519 signer through OpenSSL, to check the output verifies. */
static int ossl_sign(void *ctx, const uint8_t *data, size_t len, uint8_t *sig, size_t *sig_len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md != NULL && EVP_DigestSignInit(md, NULL, NULL, NULL, ctx) == 1 &&
	         EVP_DigestSign(md, sig, sig_len, data, len) == 1;
	EVP_MD_CTX_free(md);
	return ok ? KM_EOK : KM_ECRYPTO;
}

static void test_jws_eddsa_signature_verifies(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(key);
	km_jws_signer_t s = { KM_ALG_EDDSA, "ed", "JWT", ossl_sign, key };
	char *jws = NULL, hdr[256], payload[256];
	uint8_t sig[600];
	size_t sig_len = 0;
	assert_int_equal(km_jws_sign_text(&s, "{\"sub\":\"bob\"}", &jws, NULL, 0), KM_EOK);
	split(jws, hdr, payload, sig, &sig_len);
	assert_int_equal(sig_len, 64);
	size_t input_len = (size_t)(strrchr(jws, '.') - jws);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, NULL, NULL, key), 1);
	assert_int_equal(EVP_DigestVerify(md, sig, sig_len, (uint8_t *)jws, input_len), 1);
	/* Tampered input fails. */
	jws[input_len - 1] ^= 1;
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, NULL, NULL, key), 1);
	assert_int_not_equal(EVP_DigestVerify(md, sig, sig_len, (uint8_t *)jws, input_len), 1);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	free(jws);
}

/* km_jws_peek reads back what km_jws_sign_claims wrote, and refuses what is not a JWS. */
static void test_jws_peek(void **state)
{
	fake_t f = { .sig_len = 64 };
	km_jws_signer_t s = { KM_ALG_ES256, "kid-1", "at+jwt", fake_sign, &f };
	char *jws = NULL;
	json_t *h = NULL, *c = NULL;
	assert_int_equal(km_jws_sign_text(&s, "{\"sub\":\"alice\",\"exp\":1800000000}", &jws,
	                                  NULL, 0), KM_EOK);
	assert_int_equal(km_jws_peek(jws, &h, &c), KM_EOK);
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "kid-1");
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
	assert_int_equal(json_integer_value(json_object_get(c, "exp")), 1800000000);
	json_decref(h);
	json_decref(c);
	assert_int_equal(km_jws_peek(jws, NULL, NULL), KM_EOK);
	static const char *const bad[] = {
		"", "abc", "a.b", "a.b.c.d", "e30.e30", "W10.e30.AA", /* [] is not an object */
		"e30.!!!.AA",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h = c = NULL;
		assert_int_equal(km_jws_peek(bad[i], &h, &c), KM_EMALFORMED);
		assert_null(h);
		assert_null(c);
	}
	assert_int_equal(km_jws_peek("e30.e30.", &h, &c), KM_EOK); /* {} and {}: objects */
	json_decref(h);
	json_decref(c);
	free(jws);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jws_structure),
		cmocka_unit_test(test_jws_peek),
		cmocka_unit_test(test_jws_typ_optional),
		cmocka_unit_test(test_jws_malformed_claims_refused),
		cmocka_unit_test(test_jws_claims_must_be_object),
		cmocka_unit_test(test_jws_signer_errors_propagate),
		cmocka_unit_test(test_jws_eddsa_signature_verifies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
