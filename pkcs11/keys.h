/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to pkcs11/ (keys.c): finding key objects by CKA_ID (through the handle cache) and
 * reading their properties; the DER parameters of the curves.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pkcs11/internal.h"

/* True for CK_RVs meaning the cached object handle no longer exists. */
bool km_p11_rv_is_stale_handle(CK_RV rv);

/*
 * Searches the token for the private and public key objects with this CKA_ID and fills
 * *ret with their handles and key properties. KM_P11_ENOKEY when neither exists.
 */
int km_p11_key_lookup(km_token_t *t, CK_SESSION_HANDLE s, const uint8_t *id, size_t id_len,
                      km_p11_key_t *ret);

/* Returns the cached entry, or searches with session s and caches the result. */
int km_p11_key_resolve(km_token_t *t, CK_SESSION_HANDLE s, const uint8_t *id, size_t id_len,
                       km_p11_key_t *ret);

/* Finds up to max objects matching the template. Writes the count. */
CK_RV km_p11_find(km_token_t *t, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
                  CK_OBJECT_HANDLE *objs, CK_ULONG max, CK_ULONG *count);

/*
 * Appends the handle of every object of class cls to *objs (grown with realloc; *n used,
 * *cap allocated), searching on the admin session. The caller holds admin_lock.
 */
CK_RV km_p11_collect(km_token_t *t, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE **objs, size_t *n,
                     size_t *cap);

/* The key type keymgr calls kt (0 for key types it does not know). */
km_kty_t km_p11_kty(CK_KEY_TYPE kt);

/* Maps CKA_EC_PARAMS to a curve; KM_CRV_NONE if unknown. */
km_crv_t km_p11_curve_from_params(const uint8_t *der, size_t len);

/* DER of the named-curve OID for a curve (static), or NULL. */
const uint8_t *km_p11_curve_params(km_crv_t crv, size_t *len);

/* The i-th encoding of the Ed25519 parameters (0: the RFC 8410 OID, 1: the PrintableString
 * "edwards25519", 2: Thales Luna's OID), or NULL past the last. All three are accepted on
 * read-back (km_p11_curve_from_params). */
const uint8_t *km_p11_ed25519_params(unsigned i, size_t *len);
