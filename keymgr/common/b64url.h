/* SPDX-License-Identifier: Apache-2.0 */
/* base64url without padding (RFC 7515 section 2). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Length of the encoding of len bytes, without the terminating NUL. */
size_t km_b64url_encoded_len(size_t len);

/*
 * Encodes in[0..len) into out, which must hold km_b64url_encoded_len(len) + 1 bytes.
 * NUL-terminates. Returns the encoded length.
 */
size_t km_b64url_encode(const uint8_t *in, size_t len, char *out);

/*
 * Decodes exactly in_len characters. Refuses padding, characters outside the URL-safe
 * alphabet, an impossible length (len % 4 == 1) and non-zero trailing bits.
 * out must hold in_len * 3 / 4 + 1 bytes. Returns KM_EOK or KM_EMALFORMED.
 */
int km_b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t *out_len);
