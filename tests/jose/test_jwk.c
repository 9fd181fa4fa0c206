/* SPDX-License-Identifier: Apache-2.0 */
/* JWK export/import and RFC 7638 thumbprints (keymgr/jose/jwk.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/jose/jwk.h"
#include "tests/jose/jose_vectors.h"

static void test_thumbprint_rfc7638_rsa(void **state)
{
	km_pubkey_t k = vec_rsa();
	char kid[KM_JWK_THUMBPRINT_LEN + 1];
	assert_int_equal(k.n_len, 256);
	assert_int_equal(km_jwk_thumbprint(&k, kid), KM_EOK);
	assert_string_equal(kid, RFC7638_KID);
	assert_int_equal(strlen(kid), 43);
}

static void test_thumbprint_rfc8037_ed25519(void **state)
{
	km_pubkey_t k = vec_ed25519();
	char kid[KM_JWK_THUMBPRINT_LEN + 1];
	assert_int_equal(km_jwk_thumbprint(&k, kid), KM_EOK);
	assert_string_equal(kid, RFC8037_KID);
}

static void test_thumbprint_ec_vectors(void **state)
{
	km_pubkey_t p256 = vec_p256(), p521 = vec_p521();
	char kid[KM_JWK_THUMBPRINT_LEN + 1];
	assert_int_equal(km_jwk_thumbprint(&p256, kid), KM_EOK);
	assert_string_equal(kid, RFC7517_EC_KID);
	assert_int_equal(p521.x_len, 66);
	assert_int_equal(km_jwk_thumbprint(&p521, kid), KM_EOK);
	assert_string_equal(kid, RFC7520_P521_KID);
}

static void test_canonical_member_order(void **state)
{
	km_pubkey_t rsa = vec_rsa(), ec = vec_p256(), okp = vec_ed25519();
	char *s = NULL;
	assert_int_equal(km_jwk_canonical(&rsa, &s), KM_EOK);
	assert_string_equal(s, "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\"}");
	free(s);
	assert_int_equal(km_jwk_canonical(&ec, &s), KM_EOK);
	assert_string_equal(s, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" RFC7517_EC_X
	                       "\",\"y\":\"" RFC7517_EC_Y "\"}");
	free(s);
	assert_int_equal(km_jwk_canonical(&okp, &s), KM_EOK);
	assert_string_equal(s, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"" RFC8037_X "\"}");
	free(s);
}

static void test_thumbprint_rsa_leading_zero_ignored(void **state)
{
	/* A modulus handed over with a leading zero byte has the same thumbprint. */
	km_pubkey_t k = vec_rsa(), z = vec_rsa();
	char a[KM_JWK_THUMBPRINT_LEN + 1], b[KM_JWK_THUMBPRINT_LEN + 1];
	memmove(z.n + 1, z.n, z.n_len);
	z.n[0] = 0;
	z.n_len++;
	assert_int_equal(km_jwk_thumbprint(&k, a), KM_EOK);
	assert_int_equal(km_jwk_thumbprint(&z, b), KM_EOK);
	assert_string_equal(a, b);
}

static void test_thumbprint_inconsistent_key_refused(void **state)
{
	char kid[KM_JWK_THUMBPRINT_LEN + 1] = "untouched";
	km_pubkey_t k = vec_p256();
	k.y_len = 31; /* not full field width */
	assert_int_equal(km_jwk_thumbprint(&k, kid), KM_EINVAL);
	k = vec_ed25519();
	k.crv = KM_CRV_P256;
	assert_int_equal(km_jwk_thumbprint(&k, kid), KM_EINVAL);
	k = vec_rsa();
	k.e_len = 0;
	assert_int_equal(km_jwk_thumbprint(&k, kid), KM_EINVAL);
	assert_string_equal(kid, "untouched");
}

static void assert_members(const json_t *jwk, const char *const *want)
{
	size_t n = 0;
	for (; want[n] != NULL; n++)
		assert_non_null(json_object_get(jwk, want[n]));
	assert_int_equal(json_object_size(jwk), n);
	for (size_t i = 0; km_jwk_private_members[i] != NULL; i++)
		assert_null(json_object_get(jwk, km_jwk_private_members[i]));
}

static const char *str(const json_t *jwk, const char *name)
{
	return json_string_value(json_object_get(jwk, name));
}

static void test_jwk_rsa_members(void **state)
{
	static const char *const want[] = { "kty", "n", "e", "kid", "alg", "use", NULL };
	km_pubkey_t k = vec_rsa();
	json_t *jwk = NULL;
	/* Fields that do not belong to RSA are set: they must not leak into the JWK. */
	k.x_len = 32;
	k.y_len = 32;
	assert_int_equal(km_jwk_from_pubkey(&k, KM_ALG_PS384, &jwk), KM_EOK);
	assert_members(jwk, want);
	assert_string_equal(str(jwk, "kty"), "RSA");
	assert_string_equal(str(jwk, "n"), RFC7638_N);
	assert_string_equal(str(jwk, "e"), "AQAB");
	assert_string_equal(str(jwk, "kid"), RFC7638_KID);
	assert_string_equal(str(jwk, "alg"), "PS384");
	assert_string_equal(str(jwk, "use"), "sig");
	json_decref(jwk);
}

static void test_jwk_ec_members(void **state)
{
	static const char *const want[] = { "kty", "crv", "x", "y", "kid", "alg", "use", NULL };
	km_pubkey_t k = vec_p521();
	json_t *jwk = NULL;
	k.n_len = 256; /* must not leak */
	assert_int_equal(km_jwk_from_pubkey(&k, KM_ALG_ES512, &jwk), KM_EOK);
	assert_members(jwk, want);
	assert_string_equal(str(jwk, "kty"), "EC");
	assert_string_equal(str(jwk, "crv"), "P-521");
	/* Full width: 66 bytes are 88 base64url characters, leading zero byte kept. */
	assert_int_equal(strlen(str(jwk, "x")), 88);
	assert_string_equal(str(jwk, "x"), RFC7520_P521_X);
	assert_string_equal(str(jwk, "y"), RFC7520_P521_Y);
	assert_string_equal(str(jwk, "alg"), "ES512");
	assert_string_equal(str(jwk, "kid"), RFC7520_P521_KID);
	json_decref(jwk);
}

static void test_jwk_ec_short_coordinate_kept_full_width(void **state)
{
	/* A P-256 x with leading zero bytes stays 32 bytes (43 characters) wide. */
	km_pubkey_t k = vec_p256();
	json_t *jwk = NULL;
	memset(k.x, 0, 2);
	assert_int_equal(km_jwk_from_pubkey(&k, KM_ALG_ES256, &jwk), KM_EOK);
	assert_int_equal(strlen(str(jwk, "x")), 43);
	assert_memory_equal(str(jwk, "x"), "AA", 2); /* 16 zero bits */
	json_decref(jwk);
}

static void test_jwk_okp_members(void **state)
{
	static const char *const want[] = { "kty", "crv", "x", "kid", "alg", "use", NULL };
	km_pubkey_t k = vec_ed25519();
	json_t *jwk = NULL;
	k.y_len = 32; /* must not leak */
	assert_int_equal(km_jwk_from_pubkey(&k, KM_ALG_EDDSA, &jwk), KM_EOK);
	assert_members(jwk, want);
	assert_string_equal(str(jwk, "kty"), "OKP");
	assert_string_equal(str(jwk, "crv"), "Ed25519");
	assert_string_equal(str(jwk, "x"), RFC8037_X);
	assert_string_equal(str(jwk, "alg"), "EdDSA");
	assert_string_equal(str(jwk, "kid"), RFC8037_KID);
	json_decref(jwk);
}

static void test_jwk_alg_mismatch_refused(void **state)
{
	km_pubkey_t rsa = vec_rsa(), p256 = vec_p256(), ed = vec_ed25519();
	json_t *jwk = NULL;
	assert_int_equal(km_jwk_from_pubkey(&rsa, KM_ALG_ES256, &jwk), KM_EALG);
	assert_int_equal(km_jwk_from_pubkey(&p256, KM_ALG_ES384, &jwk), KM_EALG);
	assert_int_equal(km_jwk_from_pubkey(&p256, KM_ALG_RS256, &jwk), KM_EALG);
	assert_int_equal(km_jwk_from_pubkey(&ed, KM_ALG_ES256, &jwk), KM_EALG);
	assert_int_equal(km_jwk_from_pubkey(&ed, KM_ALG_NONE, &jwk), KM_EALG);
	assert_null(jwk);
}

static void test_jwk_roundtrip(void **state)
{
	const km_pubkey_t keys[] = { vec_rsa(), vec_p256(), vec_p521(), vec_ed25519() };
	const km_alg_t algs[] = { KM_ALG_RS256, KM_ALG_ES256, KM_ALG_ES512, KM_ALG_EDDSA };
	for (size_t i = 0; i < 4; i++) {
		json_t *jwk = NULL;
		km_pubkey_t back;
		km_alg_t alg = KM_ALG_NONE;
		char kid[64], want[KM_JWK_THUMBPRINT_LEN + 1];
		assert_int_equal(km_jwk_from_pubkey(&keys[i], algs[i], &jwk), KM_EOK);
		assert_int_equal(km_jwk_to_pubkey(jwk, &back, &alg, kid, sizeof(kid), NULL, 0),
		                 KM_EOK);
		assert_int_equal(alg, algs[i]);
		assert_int_equal(km_jwk_thumbprint(&keys[i], want), KM_EOK);
		assert_string_equal(kid, want);
		assert_int_equal(back.kty, keys[i].kty);
		assert_int_equal(back.crv, keys[i].crv);
		assert_int_equal(back.n_len, keys[i].n_len);
		assert_memory_equal(back.n, keys[i].n, back.n_len);
		assert_int_equal(back.x_len, keys[i].x_len);
		assert_memory_equal(back.x, keys[i].x, back.x_len);
		assert_int_equal(back.y_len, keys[i].y_len);
		assert_memory_equal(back.y, keys[i].y, back.y_len);
		json_decref(jwk);
	}
}

/* Parses text as one JWK and returns km_jwk_to_pubkey's code; err receives the message. */
static int parse(const char *text, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *jwk = json_loads(text, 0, &jerr);
	km_pubkey_t k;
	assert_non_null(jwk);
	int r = km_jwk_to_pubkey(jwk, &k, NULL, NULL, 0, err, errlen);
	json_decref(jwk);
	return r;
}

static void test_jwk_parse_private_members_refused(void **state)
{
	char err[160], text[1024];
	for (size_t i = 0; km_jwk_private_members[i] != NULL; i++) {
		snprintf(text, sizeof(text),
		         "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC8037_X "\",\"%s\":\"AA\"}",
		         km_jwk_private_members[i]);
		assert_int_equal(parse(text, err, sizeof(err)), KM_EMALFORMED);
		assert_non_null(strstr(err, "private member"));
		assert_non_null(strstr(err, km_jwk_private_members[i]));
	}
}

static void test_jwk_parse_bad_keys_refused(void **state)
{
	char err[160];
	/* Symmetric key. */
	assert_int_equal(parse("{\"kty\":\"oct\",\"alg\":\"HS256\"}", err, sizeof(err)), KM_EALG);
	/* EC coordinate not at full width (31 bytes). */
	assert_int_equal(parse("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":"
	                       "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"y\":\"" RFC7517_EC_Y
	                       "\"}", err, sizeof(err)),
	                 KM_EMALFORMED);
	assert_non_null(strstr(err, "\"x\""));
	/* Unknown curve, OKP with an EC curve. */
	assert_int_equal(parse("{\"kty\":\"EC\",\"crv\":\"P-192\",\"x\":\"AA\",\"y\":\"AA\"}", err,
	                       sizeof(err)),
	                 KM_EALG);
	assert_int_equal(parse("{\"kty\":\"OKP\",\"crv\":\"P-256\",\"x\":\"" RFC8037_X "\"}", err,
	                       sizeof(err)),
	                 KM_EALG);
	/* alg that does not fit the key. */
	assert_int_equal(parse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC8037_X
	                       "\",\"alg\":\"ES256\"}", err, sizeof(err)),
	                 KM_EALG);
	/* Padding in a member, "use":"enc", missing n. */
	assert_int_equal(parse("{\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\",\"e\":\"AQAB=\"}", err,
	                       sizeof(err)),
	                 KM_EMALFORMED);
	assert_int_equal(parse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC8037_X
	                       "\",\"use\":\"enc\"}", err, sizeof(err)),
	                 KM_EMALFORMED);
	assert_int_equal(parse("{\"kty\":\"RSA\",\"e\":\"AQAB\"}", err, sizeof(err)), KM_EMALFORMED);
	assert_non_null(strstr(err, "\"n\""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thumbprint_rfc7638_rsa),
		cmocka_unit_test(test_thumbprint_rfc8037_ed25519),
		cmocka_unit_test(test_thumbprint_ec_vectors),
		cmocka_unit_test(test_canonical_member_order),
		cmocka_unit_test(test_thumbprint_rsa_leading_zero_ignored),
		cmocka_unit_test(test_thumbprint_inconsistent_key_refused),
		cmocka_unit_test(test_jwk_rsa_members),
		cmocka_unit_test(test_jwk_ec_members),
		cmocka_unit_test(test_jwk_ec_short_coordinate_kept_full_width),
		cmocka_unit_test(test_jwk_okp_members),
		cmocka_unit_test(test_jwk_alg_mismatch_refused),
		cmocka_unit_test(test_jwk_roundtrip),
		cmocka_unit_test(test_jwk_parse_private_members_refused),
		cmocka_unit_test(test_jwk_parse_bad_keys_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
