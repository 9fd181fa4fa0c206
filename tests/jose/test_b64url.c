/* SPDX-License-Identifier: Apache-2.0 */
/* base64url without padding (keymgr/common/b64url.c): RFC 4648 vectors and refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"

/* RFC 4648 section 10 vectors, unpadded: covers the empty input and 1/2/3-byte tails. */
static const struct {
	const char *raw;
	const char *enc;
} vectors[] = {
	{ "", "" },       { "f", "Zg" },        { "fo", "Zm8" },       { "foo", "Zm9v" },
	{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
};

static void test_b64url_rfc4648_vectors(void **state)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		char enc[16];
		uint8_t dec[16];
		size_t dlen = 99, rlen = strlen(vectors[i].raw);
		assert_int_equal(km_b64url_encoded_len(rlen), strlen(vectors[i].enc));
		assert_int_equal(km_b64url_encode((const uint8_t *)vectors[i].raw, rlen, enc),
		                 strlen(vectors[i].enc));
		assert_string_equal(enc, vectors[i].enc);
		assert_int_equal(km_b64url_decode(enc, strlen(enc), dec, &dlen), KM_EOK);
		assert_int_equal(dlen, rlen);
		assert_memory_equal(dec, vectors[i].raw, rlen);
	}
}

static void test_b64url_url_safe_alphabet(void **state)
{
	/* These bytes use both URL-safe characters ('-' and '_' where base64 has '+' and '/'). */
	const uint8_t raw[] = { 0xfb, 0xef, 0xbe, 0xfb, 0xff, 0xbf };
	char enc[16];
	uint8_t dec[16];
	size_t dlen = 0;
	km_b64url_encode(raw, sizeof(raw), enc);
	assert_string_equal(enc, "-----_-_");
	assert_null(strchr(enc, '+'));
	assert_int_equal(km_b64url_decode(enc, strlen(enc), dec, &dlen), KM_EOK);
	assert_int_equal(dlen, sizeof(raw));
	assert_memory_equal(dec, raw, sizeof(raw));
}

static void assert_refused(const char *in)
{
	uint8_t dec[64];
	size_t dlen = 12345;
	assert_int_equal(km_b64url_decode(in, strlen(in), dec, &dlen), KM_EMALFORMED);
	assert_int_equal(dlen, 12345); /* output untouched on failure */
}

static void test_b64url_padding_refused(void **state)
{
	assert_refused("Zg==");
	assert_refused("Zm8=");
	assert_refused("Zg=");
}

static void test_b64url_invalid_chars_refused(void **state)
{
	assert_refused("Zm9+");   /* standard alphabet */
	assert_refused("Zm9/");
	assert_refused("Zm 9v");
	assert_refused("Zm9v\n");
	assert_refused("Zm.v");
	assert_refused("Z\x80gh");
}

static void test_b64url_impossible_length_refused(void **state)
{
	assert_refused("Z");
	assert_refused("Zm9vY");
}

static void test_b64url_nonzero_trailing_bits_refused(void **state)
{
	assert_refused("Zh");     /* canonical "Zg" */
	assert_refused("Zm9");    /* canonical "Zm8" */
	assert_refused("Zm9vYh"); /* canonical "Zm9vYg" */
}

static void test_b64url_embedded_nul_refused(void **state)
{
	uint8_t dec[8];
	size_t dlen = 0;
	assert_int_equal(km_b64url_decode("Zm\0v", 4, dec, &dlen), KM_EMALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url_rfc4648_vectors),
		cmocka_unit_test(test_b64url_url_safe_alphabet),
		cmocka_unit_test(test_b64url_padding_refused),
		cmocka_unit_test(test_b64url_invalid_chars_refused),
		cmocka_unit_test(test_b64url_impossible_length_refused),
		cmocka_unit_test(test_b64url_nonzero_trailing_bits_refused),
		cmocka_unit_test(test_b64url_embedded_nul_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
