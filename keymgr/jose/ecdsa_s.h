/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ECDSA signature malleability. For a valid JOSE ECDSA signature r||s, r||(n - s) is valid
 * too (n the curve's order): anyone can turn one token into a second, byte-different token
 * with the same claims. JOSE (RFC 7518 section 3.4) allows both. keymgr signs with the "low"
 * one (s <= n/2) only, so relying parties that need one encoding per token (a token's bytes
 * used as a cache or replay key) can refuse the other (`keymgr verify --low-s`,
 * docs/verify.md).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/alg.h"

/*
 * True when sig (r||s of alg's length) has s <= n/2. Other algorithms, and a signature of
 * the wrong length: true (nothing to judge).
 */
bool km_ecdsa_is_low_s(km_alg_t alg, const uint8_t *sig, size_t sig_len);

/* Replaces s by n - s in sig when s > n/2 (the same signature, in its low form). Other
 * algorithms and lengths: unchanged. Returns true if it changed sig. */
bool km_ecdsa_normalize_s(km_alg_t alg, uint8_t *sig, size_t sig_len);
