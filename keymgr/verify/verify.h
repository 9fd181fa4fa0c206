/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The strict reference verifier (keymgr verify, docs/verify.md).
 *
 * Nothing in a token's header chooses how the token is verified: the caller pins the
 * algorithm, the issuer, the audience and the typ, and gives the keys. In order:
 *   1. format: three base64url segments (strict: no padding, canonical), bounded sizes;
 *   2. header: JSON object without duplicate members; alg equal to the pinned one ("none"
 *      and HMAC refused outright); jku, x5u, x5c and jwk refused (never followed); crit
 *      refused (no extension is understood); typ equal to the expected one; kid required
 *      and an opaque short string (km_name_kid_valid) before it is looked up;
 *   3. key: exactly one key of the set with that kid, fitting the pinned algorithm;
 *   4. signature: OpenSSL EVP from the JWK (ES: r||s -> DER, PS: salt = hash length,
 *      EdDSA: Ed25519);
 *   5. claims: JSON object without duplicate members; iss, aud (string or array), exp
 *      (required), nbf and iat (when present), with leeway; with max_ttl, iat required and
 *      exp - iat at most max_ttl.
 * The first failed check ends verification with one line naming it ("exp: expired at ...").
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/alg.h"
#include "keymgr/common/pubkey.h"
#include "keymgr/jose/jwks.h"

#define KM_VERIFY_TOKEN_MAX (64 * 1024)        /* longest compact JWS accepted */
#define KM_VERIFY_JWKS_MAX (1024 * 1024)       /* largest JWKS document accepted */
#define KM_VERIFY_FETCH_TIMEOUT_MS 5000        /* whole JWKS transfer */
#define KM_VERIFY_LEEWAY_MAX 600               /* seconds */

typedef struct {
	km_alg_t alg;        /* pinned; must not be KM_ALG_NONE */
	const char *iss;     /* expected iss (exact match) */
	const char *aud;     /* an audience the token must name */
	const char *typ;     /* expected header typ (media type rules: case-insensitive,
	                      * "application/" prefix optional) */
	int64_t leeway;      /* seconds, 0..KM_VERIFY_LEEWAY_MAX */
	int64_t now;         /* the time to verify at */
	bool low_s;          /* ECDSA: refuse s > n/2 (one encoding per token; ecdsa_s.h) */
	int64_t max_ttl;     /* > 0: iat required and exp - iat at most this (the issuer's
	                      * max_token_ttl); 0: the lifetime is not checked */
} km_verify_opts_t;

/*
 * Verifies the compact JWS token[0..len) against keys[0..n) with opts (see above).
 * On success *claims (optional) receives the payload (json_decref it). On failure writes
 * "CHECK: why" into err and returns KM_EMALFORMED (format, JSON), KM_EALG (alg), KM_ENOENT
 * (unknown kid), KM_ECRYPTO (signature), KM_POLICY_EDENIED (header rules, typ, claims),
 * KM_EINVAL (bad opts) or KM_ENOMEM.
 */
int km_verify_jwt(const km_verify_opts_t *opts, const char *token, size_t len,
                  const km_jwks_entry_t *keys, size_t n, json_t **claims, char *err,
                  size_t errlen);

/*
 * Fetches a JWKS document from an http:// or https:// url with libcurl: the whole transfer
 * within KM_VERIFY_FETCH_TIMEOUT_MS, at most KM_VERIFY_JWKS_MAX bytes, status 200 only,
 * redirects never followed, no other scheme ever used. *ret is malloc'd and NUL-terminated
 * (caller frees), *len its length. On failure writes why into err and returns KM_EINVAL
 * (not an http(s) url), KM_ETIMEDOUT, KM_ERANGE (too large), KM_EIO (transfer or status),
 * KM_ENOMEM. Calls curl_global_init()/curl_global_cleanup() itself, so it is meant for
 * single-threaded callers (the CLI); a threaded caller must own libcurl's global state.
 */
int km_verify_fetch(const char *url, char **ret, size_t *len, char *err, size_t errlen);
