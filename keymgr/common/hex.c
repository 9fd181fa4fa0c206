/* SPDX-License-Identifier: Apache-2.0 */
#include "keymgr/common/hex.h"

#include "keymgr/common/error.h"

static const char digits[] = "0123456789abcdef";

int km_hex_encode(const uint8_t *in, size_t len, char *out, size_t outlen)
{
	if (outlen < KM_HEX_LEN(len) + 1) {
		if (outlen > 0)
			out[0] = '\0';
		return KM_ERANGE;
	}
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[KM_HEX_LEN(len)] = '\0';
	return KM_EOK;
}

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int km_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t outlen)
{
	if (in_len % 2 != 0)
		return KM_EMALFORMED;
	if (outlen < in_len / 2)
		return KM_ERANGE;
	for (size_t i = 0; i < in_len / 2; i++) {
		int hi = digit_value(in[2 * i]), lo = digit_value(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return KM_EMALFORMED;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return KM_EOK;
}
