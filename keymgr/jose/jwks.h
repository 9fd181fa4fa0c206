/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JWK Sets (RFC 7517 section 5): {"keys":[...]} built from public keys, rendered to a
 * compact, deterministic string, and parsed back into public keys.
 *
 * Rendering is stable: keys appear in the order they were added, members in a fixed order
 * (see km_jwk_from_pubkey), no white space. The same keys added in the same order always
 * give byte-identical output (so an HTTP ETag over it is stable).
 */
#pragma once

#include <stddef.h>

#include "keymgr/common/alg.h"
#include "keymgr/common/name.h"
#include "keymgr/common/pubkey.h"

typedef struct km_jwks km_jwks_t;

/* One key read back from a JWKS. alg is KM_ALG_NONE when the JWK had none; kid "" likewise. */
typedef struct {
	km_pubkey_t pub;
	km_alg_t alg;
	char kid[KM_KID_MAX + 1];
} km_jwks_entry_t;

/* Creates an empty set. *ret must be freed with km_jwks_free(). KM_EOK or KM_ENOMEM. */
int km_jwks_create(km_jwks_t **ret);

/* Frees a set. NULL ok. */
void km_jwks_free(km_jwks_t *jwks);

/*
 * Appends the public JWK of pub for alg (kid = RFC 7638 thumbprint). With kid_out
 * (KM_JWK_THUMBPRINT_LEN + 1 bytes), also returns the kid. Returns KM_EOK, KM_EALG,
 * KM_EINVAL, KM_ENOMEM, KM_ECRYPTO (see km_jwk_from_pubkey); the set is unchanged on error.
 */
int km_jwks_add(km_jwks_t *jwks, const km_pubkey_t *pub, km_alg_t alg, char *kid_out);

/*
 * Appends a stored public JWK (the text a store keeps for kid) for alg, rebuilt from its
 * key, so that the document holds keymgr's own rendering of it. KM_EMALFORMED when the text
 * is no JWK or its key is not the key of kid (its thumbprint differs: the store may have been
 * altered); else km_jwks_add()'s codes. The set is unchanged on error.
 */
int km_jwks_add_stored(km_jwks_t *jwks, const char *jwk_text, km_alg_t alg, const char *kid);

/* Number of keys in the set. */
size_t km_jwks_count(const km_jwks_t *jwks);

/*
 * Renders the set as compact JSON, e.g. {"keys":[{"kty":"EC",...}]}, without a trailing
 * newline. *ret is malloc'd (caller frees); *len (optional) receives strlen(*ret).
 * Returns KM_EOK or KM_ENOMEM.
 */
int km_jwks_render(const km_jwks_t *jwks, char **ret, size_t *len);

/*
 * Parses a JWKS document of len bytes. Every key must be a public JWK of a supported type:
 * a key carrying a private member (d, p, q, dp, dq, qi, k, oth) or an unknown kty rejects
 * the whole document. *ret is a malloc'd array of *count entries (caller frees; NULL when
 * the set is empty). If err is given, writes a message (with jansson's line/column for bad
 * JSON, or the index of the offending key). Returns KM_EOK, KM_EMALFORMED, KM_EALG,
 * KM_ENOMEM.
 */
int km_jwks_parse(const char *text, size_t len, km_jwks_entry_t **ret, size_t *count,
                  char *err, size_t errlen);
