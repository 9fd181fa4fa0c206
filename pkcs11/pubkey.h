/* SPDX-License-Identifier: Apache-2.0 */
/* Private to pkcs11/ (pubkey.c): reading a public key object. */
#pragma once

#include "pkcs11/internal.h"

/* Reads the public key object pub of the given type into *ret (JOSE raw form). */
int km_p11_read_public(km_token_t *t, CK_SESSION_HANDLE s, const km_p11_key_t *k,
                       km_pubkey_t *ret);
