/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JWK (RFC 7517/7518/8037) export and import of public keys, and RFC 7638 thumbprints.
 *
 * Only public members are ever constructed: a JWK made here cannot carry d, p, q, dp, dq, qi,
 * k or oth, whatever the input. The parser refuses any JWK that carries one of them.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "keymgr/common/alg.h"
#include "keymgr/common/pubkey.h"

/* A thumbprint is SHA-256 in base64url without padding: 43 characters. */
#define KM_JWK_THUMBPRINT_LEN 43

/* Every member name that carries private key material in some JWK type. NULL-terminated. */
extern const char *const km_jwk_private_members[];

/*
 * Writes the RFC 7638 canonical form of pub's required members (lexicographic order, no
 * white space) into a malloc'd string *ret (caller frees). Returns KM_EOK, KM_EINVAL for an
 * inconsistent key (e.g. EC coordinates not at full field width), KM_ENOMEM.
 */
int km_jwk_canonical(const km_pubkey_t *pub, char **ret);

/*
 * Computes the RFC 7638 SHA-256 thumbprint of pub, base64url, into kid (NUL-terminated).
 * Returns KM_EOK, KM_EINVAL, KM_ENOMEM or KM_ECRYPTO.
 */
int km_jwk_thumbprint(const km_pubkey_t *pub, char kid[KM_JWK_THUMBPRINT_LEN + 1]);

/*
 * True when pub can sign with alg: same key type, same curve (EC/OKP).
 */
bool km_jwk_alg_fits(const km_pubkey_t *pub, km_alg_t alg);

/*
 * Builds the public JWK of pub for alg: the key members (RSA n, e; EC crv, x, y; OKP crv, x),
 * then kid (the RFC 7638 thumbprint), alg and use "sig", in that order.
 * *ret is a new jansson reference (json_decref it). Returns KM_EOK, KM_EALG when alg does not
 * fit the key, KM_EINVAL for an inconsistent key, KM_ENOMEM, KM_ECRYPTO.
 */
int km_jwk_from_pubkey(const km_pubkey_t *pub, km_alg_t alg, json_t **ret);

/*
 * Reads one public JWK back into *pub. Refuses private members and symmetric keys.
 * alg_out (optional) receives the JWK's "alg" or KM_ALG_NONE when absent; kid_out (optional,
 * kid_len bytes) receives "kid" or "" when absent. If err is given, writes a message naming
 * the offending member. Returns KM_EOK, KM_EMALFORMED (bad member or encoding, private
 * member present), KM_EALG (unknown kty/crv/alg, or an alg that does not fit the key).
 */
int km_jwk_to_pubkey(const json_t *jwk, km_pubkey_t *pub, km_alg_t *alg_out, char *kid_out,
                     size_t kid_len, char *err, size_t errlen);
