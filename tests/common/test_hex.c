/* SPDX-License-Identifier: Apache-2.0 */
/* Lowercase hex (keymgr/common/hex.c): the encoder every hash, CKA_ID and ETag goes through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"

static void test_hex_encode_vectors(void **state)
{
	/* RFC 4648 section 10 (base16), in lower case. */
	static const struct {
		const char *raw, *hex;
	} v[] = {
		{ "", "" }, { "f", "66" }, { "fo", "666f" }, { "foo", "666f6f" },
		{ "foob", "666f6f62" }, { "fooba", "666f6f6261" }, { "foobar", "666f6f626172" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char out[16];
		memset(out, 'X', sizeof(out));
		assert_int_equal(km_hex_encode((const uint8_t *)v[i].raw, strlen(v[i].raw), out,
		                               sizeof(out)), KM_EOK);
		assert_string_equal(out, v[i].hex);
	}
}

/* Every byte value comes out as the hand-written encoders it replaces wrote it: "%02x". */
static void test_hex_encode_is_printf_02x(void **state)
{
	uint8_t all[256];
	char got[KM_HEX_LEN(256) + 1], want[KM_HEX_LEN(256) + 1];
	for (size_t i = 0; i < 256; i++) {
		all[i] = (uint8_t)i;
		snprintf(want + 2 * i, 3, "%02x", all[i]);
	}
	assert_int_equal(km_hex_encode(all, sizeof(all), got, sizeof(got)), KM_EOK);
	assert_string_equal(got, want);
	assert_int_equal(strlen(got), KM_HEX_LEN(256));
	assert_int_equal(strspn(got, "0123456789abcdef"), KM_HEX_LEN(256));
}

static void test_hex_encode_refuses_short_buffer(void **state)
{
	const uint8_t in[] = { 0xde, 0xad, 0xbe, 0xef };
	char out[9];
	memset(out, 'X', sizeof(out));
	/* One byte short of "deadbeef" + NUL: nothing half-written. */
	assert_int_equal(km_hex_encode(in, sizeof(in), out, 8), KM_ERANGE);
	assert_string_equal(out, "");
	assert_int_equal(km_hex_encode(in, sizeof(in), out, 0), KM_ERANGE);
	/* Exactly enough. */
	assert_int_equal(km_hex_encode(in, sizeof(in), out, 9), KM_EOK);
	assert_string_equal(out, "deadbeef");
}

static void test_hex_decode_round_trip(void **state)
{
	uint8_t all[256], back[256];
	char hex[KM_HEX_LEN(256) + 1];
	for (size_t i = 0; i < 256; i++)
		all[i] = (uint8_t)(255 - i);
	assert_int_equal(km_hex_encode(all, sizeof(all), hex, sizeof(hex)), KM_EOK);
	memset(back, 0, sizeof(back));
	assert_int_equal(km_hex_decode(hex, strlen(hex), back, sizeof(back)), KM_EOK);
	assert_memory_equal(back, all, sizeof(all));
	assert_int_equal(km_hex_decode("", 0, back, 0), KM_EOK);
}

static void test_hex_decode_refusals(void **state)
{
	uint8_t out[8];
	/* Only the form the encoder writes: upper case is refused, as the audit chain's
	 * prev_hash check always did. */
	assert_int_equal(km_hex_decode("ABCD", 4, out, sizeof(out)), KM_EMALFORMED);
	assert_int_equal(km_hex_decode("abc", 3, out, sizeof(out)), KM_EMALFORMED);
	assert_int_equal(km_hex_decode("0g", 2, out, sizeof(out)), KM_EMALFORMED);
	assert_int_equal(km_hex_decode("0 ", 2, out, sizeof(out)), KM_EMALFORMED);
	assert_int_equal(km_hex_decode("0011", 4, out, 1), KM_ERANGE);
	assert_int_equal(km_hex_decode("0a1f", 4, out, 2), KM_EOK);
	assert_int_equal(out[0], 0x0a);
	assert_int_equal(out[1], 0x1f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_encode_vectors),
		cmocka_unit_test(test_hex_encode_is_printf_02x),
		cmocka_unit_test(test_hex_encode_refuses_short_buffer),
		cmocka_unit_test(test_hex_decode_round_trip),
		cmocka_unit_test(test_hex_decode_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
