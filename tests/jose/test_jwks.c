/* SPDX-License-Identifier: Apache-2.0 */
/* JWKS rendering and parsing (keymgr/jose/jwks.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "keymgr/jose/jwk.h"
#include "keymgr/jose/jwks.h"
#include "tests/jose/jose_vectors.h"

/* A set of every key type: RSA (two algorithms), P-256, P-521, Ed25519. */
static km_jwks_t *make_set(void)
{
	km_jwks_t *j = NULL;
	km_pubkey_t rsa = vec_rsa(), p256 = vec_p256(), p521 = vec_p521(), ed = vec_ed25519();
	char kid[KM_JWK_THUMBPRINT_LEN + 1];
	assert_int_equal(km_jwks_create(&j), KM_EOK);
	assert_int_equal(km_jwks_add(j, &rsa, KM_ALG_RS256, kid), KM_EOK);
	assert_string_equal(kid, RFC7638_KID);
	assert_int_equal(km_jwks_add(j, &p256, KM_ALG_ES256, NULL), KM_EOK);
	assert_int_equal(km_jwks_add(j, &p521, KM_ALG_ES512, NULL), KM_EOK);
	assert_int_equal(km_jwks_add(j, &ed, KM_ALG_EDDSA, kid), KM_EOK);
	assert_string_equal(kid, RFC8037_KID);
	return j;
}

static void test_jwks_empty(void **state)
{
	km_jwks_t *j = NULL;
	char *s = NULL;
	km_jwks_entry_t *e = NULL;
	size_t n = 99, len = 0;
	assert_int_equal(km_jwks_create(&j), KM_EOK);
	assert_int_equal(km_jwks_count(j), 0);
	assert_int_equal(km_jwks_render(j, &s, &len), KM_EOK);
	assert_string_equal(s, "{\"keys\":[]}");
	assert_int_equal(len, strlen(s));
	assert_int_equal(km_jwks_parse(s, len, &e, &n, NULL, 0), KM_EOK);
	assert_int_equal(n, 0);
	assert_null(e);
	free(s);
	km_jwks_free(j);
	km_jwks_free(NULL);
}

static void test_jwks_several_keys_no_private_members(void **state)
{
	km_jwks_t *j = make_set();
	char *s = NULL;
	json_error_t jerr;
	assert_int_equal(km_jwks_count(j), 4);
	assert_int_equal(km_jwks_render(j, &s, NULL), KM_EOK);
	json_t *doc = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
	assert_non_null(doc);
	json_t *keys = json_object_get(doc, "keys");
	assert_int_equal(json_array_size(keys), 4);
	assert_int_equal(json_object_size(doc), 1);
	for (size_t i = 0; i < json_array_size(keys); i++) {
		json_t *k = json_array_get(keys, i);
		for (size_t m = 0; km_jwk_private_members[m] != NULL; m++) {
			char quoted[16];
			assert_null(json_object_get(k, km_jwk_private_members[m]));
			/* And not anywhere in the text as a member name either. */
			snprintf(quoted, sizeof(quoted), "\"%s\":", km_jwk_private_members[m]);
			assert_null(strstr(s, quoted));
		}
		assert_string_equal(json_string_value(json_object_get(k, "use")), "sig");
	}
	json_decref(doc);
	free(s);
	km_jwks_free(j);
}

static void test_jwks_render_compact_and_stable(void **state)
{
	km_jwks_t *a = make_set(), *b = make_set();
	char *sa = NULL, *sa2 = NULL, *sb = NULL;
	assert_int_equal(km_jwks_render(a, &sa, NULL), KM_EOK);
	assert_int_equal(km_jwks_render(a, &sa2, NULL), KM_EOK);
	assert_int_equal(km_jwks_render(b, &sb, NULL), KM_EOK);
	assert_string_equal(sa, sa2);
	assert_string_equal(sa, sb);
	assert_null(strchr(sa, ' '));
	assert_null(strchr(sa, '\n'));
	/* Member order is fixed: key members, then kid, alg, use. */
	assert_non_null(strstr(sa, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\""));
	assert_non_null(strstr(sa, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC8037_X
	                           "\",\"kid\":\"" RFC8037_KID "\",\"alg\":\"EdDSA\",\"use\":"
	                           "\"sig\"}]}"));
	free(sa);
	free(sa2);
	free(sb);
	km_jwks_free(a);
	km_jwks_free(b);
}

static void test_jwks_add_bad_key_leaves_set_unchanged(void **state)
{
	km_jwks_t *j = make_set();
	km_pubkey_t ed = vec_ed25519();
	char *before = NULL, *after = NULL;
	assert_int_equal(km_jwks_render(j, &before, NULL), KM_EOK);
	assert_int_equal(km_jwks_add(j, &ed, KM_ALG_RS256, NULL), KM_EALG);
	ed.x_len = 31;
	assert_int_equal(km_jwks_add(j, &ed, KM_ALG_EDDSA, NULL), KM_EINVAL);
	assert_int_equal(km_jwks_count(j), 4);
	assert_int_equal(km_jwks_render(j, &after, NULL), KM_EOK);
	assert_string_equal(before, after);
	free(before);
	free(after);
	km_jwks_free(j);
}

/* A stored JWK is added when it is the key of its kid, refused (the set unchanged) when it
 * is another key's, not a JWK, or of another algorithm's key type. */
static void test_jwks_add_stored_checks_the_kid(void **state)
{
	(void)state;
	km_jwks_t *j = NULL, *ref = NULL;
	km_pubkey_t ed = vec_ed25519();
	json_t *jwk = NULL;
	char *text = NULL, *got = NULL, *want = NULL;
	assert_int_equal(km_jwk_from_pubkey(&ed, KM_ALG_EDDSA, &jwk), KM_EOK);
	assert_non_null(text = json_dumps(jwk, JSON_COMPACT));
	assert_int_equal(km_jwks_create(&j), KM_EOK);
	assert_int_equal(km_jwks_add_stored(j, text, KM_ALG_EDDSA, RFC7638_KID), KM_EMALFORMED);
	assert_int_equal(km_jwks_add_stored(j, "{\"kty\":", KM_ALG_EDDSA, RFC8037_KID),
	                 KM_EMALFORMED);
	assert_int_equal(km_jwks_add_stored(j, text, KM_ALG_RS256, RFC8037_KID), KM_EALG);
	assert_int_equal(km_jwks_count(j), 0);
	assert_int_equal(km_jwks_add_stored(j, text, KM_ALG_EDDSA, RFC8037_KID), KM_EOK);
	/* the same bytes as the key added directly */
	assert_int_equal(km_jwks_create(&ref), KM_EOK);
	assert_int_equal(km_jwks_add(ref, &ed, KM_ALG_EDDSA, NULL), KM_EOK);
	assert_int_equal(km_jwks_render(j, &got, NULL), KM_EOK);
	assert_int_equal(km_jwks_render(ref, &want, NULL), KM_EOK);
	assert_string_equal(got, want);
	free(got);
	free(want);
	free(text);
	json_decref(jwk);
	km_jwks_free(j);
	km_jwks_free(ref);
}

static void test_jwks_parse_roundtrip(void **state)
{
	km_jwks_t *j = make_set();
	char *s = NULL;
	km_jwks_entry_t *e = NULL;
	size_t n = 0, len = 0;
	km_pubkey_t p521 = vec_p521();
	assert_int_equal(km_jwks_render(j, &s, &len), KM_EOK);
	assert_int_equal(km_jwks_parse(s, len, &e, &n, NULL, 0), KM_EOK);
	assert_int_equal(n, 4);
	assert_int_equal(e[0].alg, KM_ALG_RS256);
	assert_string_equal(e[0].kid, RFC7638_KID);
	assert_int_equal(e[0].pub.rsa_bits, 2048);
	assert_int_equal(e[1].alg, KM_ALG_ES256);
	assert_string_equal(e[1].kid, RFC7517_EC_KID);
	assert_int_equal(e[2].alg, KM_ALG_ES512);
	assert_int_equal(e[2].pub.crv, KM_CRV_P521);
	assert_memory_equal(e[2].pub.x, p521.x, 66);
	assert_memory_equal(e[2].pub.y, p521.y, 66);
	assert_int_equal(e[3].alg, KM_ALG_EDDSA);
	assert_string_equal(e[3].kid, RFC8037_KID);
	/* The kids we read back are the thumbprints of the keys we read back. */
	for (size_t i = 0; i < n; i++) {
		char kid[KM_JWK_THUMBPRINT_LEN + 1];
		assert_int_equal(km_jwk_thumbprint(&e[i].pub, kid), KM_EOK);
		assert_string_equal(kid, e[i].kid);
	}
	free(e);
	free(s);
	km_jwks_free(j);
}

static void test_jwks_parse_private_key_rejects_document(void **state)
{
	/* One good key, then a private Ed25519 key (RFC 8037 A.1 "d"): all refused. */
	const char *doc = "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC8037_X
	                  "\"},{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC8037_X
	                  "\",\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\"}]}";
	km_jwks_entry_t *e = (km_jwks_entry_t *)0x1;
	size_t n = 77;
	char err[200];
	assert_int_equal(km_jwks_parse(doc, strlen(doc), &e, &n, err, sizeof(err)), KM_EMALFORMED);
	assert_non_null(strstr(err, "key 1"));
	assert_non_null(strstr(err, "\"d\""));
	assert_ptr_equal(e, (km_jwks_entry_t *)0x1);
	assert_int_equal(n, 77);
}

static void test_jwks_parse_malformed_refused(void **state)
{
	km_jwks_entry_t *e = NULL;
	size_t n = 0;
	char err[200];
	const char *bad_json = "{\"keys\":[\n{\"kty\":}]}";
	assert_int_equal(km_jwks_parse(bad_json, strlen(bad_json), &e, &n, err, sizeof(err)),
	                 KM_EMALFORMED);
	assert_non_null(strstr(err, "line 2"));
	assert_non_null(strstr(err, "column"));
	assert_int_equal(km_jwks_parse("[]", 2, &e, &n, err, sizeof(err)), KM_EMALFORMED);
	assert_non_null(strstr(err, "\"keys\""));
	assert_int_equal(km_jwks_parse("{\"keys\":{}}", 11, &e, &n, err, sizeof(err)),
	                 KM_EMALFORMED);
	const char *dup = "{\"keys\":[],\"keys\":[]}";
	assert_int_equal(km_jwks_parse(dup, strlen(dup), &e, &n, err, sizeof(err)), KM_EMALFORMED);
	const char *oct = "{\"keys\":[{\"kty\":\"oct\"}]}";
	assert_int_equal(km_jwks_parse(oct, strlen(oct), &e, &n, err, sizeof(err)), KM_EALG);
	assert_null(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jwks_empty),
		cmocka_unit_test(test_jwks_several_keys_no_private_members),
		cmocka_unit_test(test_jwks_render_compact_and_stable),
		cmocka_unit_test(test_jwks_add_bad_key_leaves_set_unchanged),
		cmocka_unit_test(test_jwks_add_stored_checks_the_kid),
		cmocka_unit_test(test_jwks_parse_roundtrip),
		cmocka_unit_test(test_jwks_parse_private_key_rejects_document),
		cmocka_unit_test(test_jwks_parse_malformed_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
