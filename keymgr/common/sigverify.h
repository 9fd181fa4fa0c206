/* SPDX-License-Identifier: Apache-2.0 */
/* Checking a JOSE signature with a public key, in software (OpenSSL EVP); the key as PEM. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/alg.h"
#include "keymgr/common/pubkey.h"

/*
 * Checks the JOSE signature sig over data with pub under alg, with OpenSSL EVP. Refuses keys
 * that do not fit alg and RSA keys under 2048 bits. Returns KM_EOK (valid), KM_ECRYPTO
 * (invalid signature or OpenSSL failure), KM_EALG (key does not fit alg), KM_EKEYSIZE.
 */
int km_verify_signature(const km_pubkey_t *pub, km_alg_t alg, const uint8_t *data,
                        size_t len, const uint8_t *sig, size_t sig_len);

/*
 * The SubjectPublicKeyInfo PEM text of pub (what `openssl pkey -pubout` prints), made with
 * OpenSSL. *ret is malloc'd, NUL-terminated. KM_EOK, KM_EINVAL (inconsistent key),
 * KM_ENOMEM.
 */
int km_pubkey_pem(const km_pubkey_t *pub, char **ret);
