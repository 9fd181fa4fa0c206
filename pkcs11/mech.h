/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to pkcs11/ (mech.c): the one PKCS#11 mechanism of each JWS algorithm, as key
 * generation allows it (CKA_ALLOWED_MECHANISMS) and as a signature initialises it (sign.c,
 * and prepare.c ahead of time).
 */
#pragma once

#include "pkcs11/internal.h"

/* The signing mechanism of alg on token t (CKM_SHA256_RSA_PKCS, or CKM_RSA_PKCS where the
 * token lacks it, ..., CKM_ECDSA, CKM_EDDSA; caps.c chose it). */
CK_MECHANISM_TYPE km_p11_alg_mechanism(const km_token_t *t, km_alg_t alg);

/* C_SignInit on session s with alg's mechanism (and its PSS parameters). */
CK_RV km_p11_sign_init(km_token_t *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                       const km_alg_info_t *ai);
