/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to pkcs11/ (caps.c): what the token can do, probed once when it is opened, and
 * how each algorithm signs on it (the mechanism, and what keymgr hashes in software).
 */
#pragma once

#include "pkcs11/internal.h"

/* What C_Sign is given for an algorithm's signature. */
typedef enum {
	KM_P11_IN_MESSAGE = 0,   /* the message (CKM_SHA256_RSA_PKCS, ..., CKM_EDDSA) */
	KM_P11_IN_HASH,          /* its hash (CKM_ECDSA, CKM_RSA_PKCS_PSS) */
	KM_P11_IN_DIGESTINFO,    /* the DER DigestInfo of its hash (CKM_RSA_PKCS) */
} km_p11_input_t;

typedef struct {
	CK_MECHANISM_TYPE mech;  /* the mechanism C_SignInit is given */
	km_p11_input_t input;
} km_p11_sign_via_t;

/* "CKM_ECDSA", or "CKM_0x..." (per-thread buffer) for others. */
const char *km_p11_mech_name(CK_MECHANISM_TYPE m);

/* Probes the mechanisms of t's slot into t->caps and t->via (km_token_open). Never fails:
 * a module without a usable list keeps the standard mechanisms, caps.probed false. */
void km_p11_caps_probe(km_token_t *t);
