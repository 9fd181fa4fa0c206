/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Lowercase hexadecimal: the one encoder for hashes, CKA_IDs and ETags (and its strict
 * inverse), so that every hex text keymgr writes or stores has the same form.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Characters of the encoding of len bytes, without the terminating NUL. */
#define KM_HEX_LEN(len) (2 * (len))

/*
 * Writes in[0..len) as 2 * len lowercase hex digits and a NUL into out. outlen must be at
 * least KM_HEX_LEN(len) + 1; if it is smaller, out is set to "" (when outlen > 0) and
 * KM_ERANGE is returned. Returns KM_EOK.
 */
int km_hex_encode(const uint8_t *in, size_t len, char *out, size_t outlen);

/*
 * Decodes exactly in_len characters of lowercase hex (the form km_hex_encode writes) into
 * out, which must hold in_len / 2 bytes (outlen). Refuses an odd length, any other character
 * (upper case included) and a too small out: KM_EMALFORMED / KM_ERANGE, out then undefined.
 */
int km_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t outlen);
