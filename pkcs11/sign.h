/* SPDX-License-Identifier: Apache-2.0 */
/* Private to pkcs11/ (sign.c): one JOSE signature on a session the caller holds. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "pkcs11/internal.h"

/*
 * Signs data as ai with key k on session s (the caller holds it, e.g. the admin session
 * during a generation), exactly as km_token_sign() does: the token's mechanism, the input
 * hashed in software where it needs that, the output as JOSE (r||s from DER or r||s). *sig_len
 * holds the size of sig and receives the length written. KM codes; message stored.
 */
int km_p11_sign_on(km_token_t *t, CK_SESSION_HANDLE s, const km_p11_key_t *k,
                   const km_alg_info_t *ai, const uint8_t *data, size_t len, uint8_t *sig,
                   size_t *sig_len);
