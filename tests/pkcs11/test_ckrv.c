/* SPDX-License-Identifier: Apache-2.0 */
/* CK_RV translation and the handle cache's race guard (internal to pkcs11/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "keymgr/common/error.h"
#include "pkcs11/internal.h"

static void test_ckrv_maps_codes(void **state)
{
	assert_int_equal(km_p11_rv_code(CKR_OK), KM_EOK);
	assert_int_equal(km_p11_rv_code(CKR_PIN_INCORRECT), KM_P11_ELOGIN);
	assert_int_equal(km_p11_rv_code(CKR_PIN_LOCKED), KM_P11_EPINLOCKED);
	assert_int_equal(km_p11_rv_code(CKR_SESSION_HANDLE_INVALID), KM_P11_ESESSION);
	assert_int_equal(km_p11_rv_code(CKR_USER_NOT_LOGGED_IN), KM_P11_ENOTLOGGEDIN);
	assert_int_equal(km_p11_rv_code(CKR_KEY_HANDLE_INVALID), KM_P11_ENOKEY);
	assert_int_equal(km_p11_rv_code(CKR_OBJECT_HANDLE_INVALID), KM_P11_ENOKEY);
	assert_int_equal(km_p11_rv_code(CKR_MECHANISM_INVALID), KM_P11_EMECHANISM);
	assert_int_equal(km_p11_rv_code(CKR_DEVICE_REMOVED), KM_P11_EDEVICE);
	assert_int_equal(km_p11_rv_code(CKR_KEY_SIZE_RANGE), KM_EKEYSIZE);
	assert_int_equal(km_p11_rv_code(CKR_HOST_MEMORY), KM_ENOMEM);
	assert_int_equal(km_p11_rv_code(0x7ffffff0UL), KM_P11_EFAIL);
}

static void test_ckrv_message_names_token_and_operation(void **state)
{
	char buf[256];

	assert_int_equal(km_p11_format_rv(buf, sizeof(buf), CKR_PIN_INCORRECT, "token 'dev'",
	                                  "C_Login as user"), KM_P11_ELOGIN);
	assert_string_equal(buf, "token 'dev': C_Login as user failed: CKR_PIN_INCORRECT: "
	                         "incorrect PIN");
	km_p11_format_rv(buf, sizeof(buf), 0x7ffffff0UL, "token 'dev'", "C_Sign (ES256)");
	assert_non_null(strstr(buf, "C_Sign (ES256) failed: CKR_0x7ffffff0"));
	assert_string_equal(km_p11_rv_name(CKR_SESSION_HANDLE_INVALID),
	                    "CKR_SESSION_HANDLE_INVALID");
	/* No buffer: still translates. */
	assert_int_equal(km_p11_format_rv(NULL, 0, CKR_PIN_LOCKED, "x", "y"), KM_P11_EPINLOCKED);
}

static void test_cache_put_get_drop(void **state)
{
	km_p11_cache_t c;
	km_p11_key_t k = { .id = "KMGR-abc", .id_len = 8, .priv = 7, .pub = 8,
	                   .kty = KM_KTY_EC, .crv = KM_CRV_P256 }, got;

	assert_int_equal(km_p11_cache_init(&c), KM_EOK);
	assert_false(km_p11_cache_get(&c, k.id, k.id_len, &got));
	assert_int_equal(km_p11_cache_put(&c, &k, km_p11_cache_generation(&c)), KM_EOK);
	assert_true(km_p11_cache_get(&c, k.id, k.id_len, &got));
	assert_int_equal(got.priv, 7);
	assert_int_equal(got.crv, KM_CRV_P256);
	/* Same prefix, other length: another key. */
	assert_false(km_p11_cache_get(&c, k.id, 7, &got));
	km_p11_cache_drop(&c, k.id, k.id_len);
	assert_false(km_p11_cache_get(&c, k.id, k.id_len, &got));
	km_p11_key_t bad = k;
	bad.id_len = 0;
	assert_int_equal(km_p11_cache_put(&c, &bad, km_p11_cache_generation(&c)), KM_EINVAL);
	km_p11_cache_destroy(&c);
}

static void test_cache_put_after_drop_is_ignored(void **state)
{
	km_p11_cache_t c;
	km_p11_key_t k = { .id = "KMGR-xyz", .id_len = 8, .priv = 3 }, got;

	assert_int_equal(km_p11_cache_init(&c), KM_EOK);
	uint64_t gen = km_p11_cache_generation(&c);
	/* A destroy ran between the lookup and the insert: the stale handle must not stick. */
	km_p11_cache_drop(&c, k.id, k.id_len);
	assert_int_equal(km_p11_cache_put(&c, &k, gen), KM_EOK);
	assert_false(km_p11_cache_get(&c, k.id, k.id_len, &got));
	km_p11_cache_destroy(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ckrv_maps_codes),
		cmocka_unit_test(test_ckrv_message_names_token_and_operation),
		cmocka_unit_test(test_cache_put_get_drop),
		cmocka_unit_test(test_cache_put_after_drop_is_ignored),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
