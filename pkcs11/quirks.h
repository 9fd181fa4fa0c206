/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to pkcs11/ (quirks.c): the one table of what particular modules do differently
 * from what they report. Every vendor-specific branch of the token layer reads it; no other
 * file names a vendor.
 */
#pragma once

#include <stdbool.h>

#include "pkcs11/internal.h"

/* A private key attribute that a token sets TRUE whatever the template asks. */
#define KM_P11_Q_DECRYPT_ALWAYS 0x1u

typedef struct {
	const char *name;              /* short name shown by keymgr token info */
	const char *manufacturer;      /* CK_INFO manufacturerID of the module (exact) */
	unsigned flags;                /* KM_P11_Q_* */
	/* algorithms the mechanism list claims but the token cannot sign with */
	km_alg_t broken[4];
	const char *broken_why;        /* why, for messages */
	const char *source;            /* where this was seen (an issue, a manual, a test) */
} km_p11_quirk_t;

/* The table entry of the module with this CK_INFO manufacturerID, or NULL. */
const km_p11_quirk_t *km_p11_quirk_find(const char *manufacturer);

/* True when quirk q says the token cannot sign with alg although it claims to. */
bool km_p11_quirk_broken(const km_p11_quirk_t *q, km_alg_t alg);
