/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Independent signature check for the token tests: builds an OpenSSL EVP_PKEY from the
 * km_pubkey_t the token layer returned and verifies a JOSE signature with EVP only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/alg.h"
#include "keymgr/common/pubkey.h"

/* True when sig is a valid alg signature of data under pub. */
bool test_ossl_verify(const km_pubkey_t *pub, km_alg_t alg, const uint8_t *data, size_t len,
                      const uint8_t *sig, size_t sig_len);
