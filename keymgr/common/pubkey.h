/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A public key as the token returns it, in the raw big-endian form JOSE needs.
 * Plain value type: no allocation, safe to copy.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/alg.h"

#define KM_PUBKEY_MAX_N 512   /* RSA-4096 */
#define KM_PUBKEY_MAX_E 16
#define KM_PUBKEY_MAX_XY 66   /* P-521 */

typedef struct {
	km_kty_t kty;
	km_crv_t crv;                   /* EC and OKP */
	unsigned rsa_bits;              /* RSA: modulus size in bits */
	uint8_t n[KM_PUBKEY_MAX_N];     /* RSA modulus, unsigned big-endian, no leading zero */
	size_t n_len;
	uint8_t e[KM_PUBKEY_MAX_E];     /* RSA exponent, no leading zero */
	size_t e_len;
	uint8_t x[KM_PUBKEY_MAX_XY];    /* EC x at full field width; OKP public key */
	size_t x_len;
	uint8_t y[KM_PUBKEY_MAX_XY];    /* EC y at full field width; unused for OKP */
	size_t y_len;
} km_pubkey_t;
