/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compact JWS / JWT signing (RFC 7515 section 7.1, RFC 7519).
 *
 *   BASE64URL(header) "." BASE64URL(claims) "." BASE64URL(signature)
 *
 * The header is {"alg":...,"kid":...,"typ":...} (typ optional) in that order. The signature
 * comes from a callback, so this code never sees Cryptoki: the CLI and the daemon pass a
 * wrapper around km_token_sign().
 */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/alg.h"

/* Largest JOSE signature keymgr produces: RSA-4096. */
#define KM_JWS_SIG_MAX 512

/*
 * Signs data[0..len) (the JWS signing input) and writes the JOSE signature into sig, which
 * holds *sig_len bytes; sets *sig_len to the length written. Returns a KM_* code.
 */
typedef int (*km_jws_sign_fn)(void *ctx, const uint8_t *data, size_t len, uint8_t *sig,
                              size_t *sig_len);

typedef struct {
	km_alg_t alg;           /* header "alg" */
	const char *kid;        /* header "kid", required */
	const char *typ;        /* header "typ", or NULL to leave it out */
	km_jws_sign_fn sign;
	void *sign_ctx;
} km_jws_signer_t;

/*
 * Signs claims (must be a JSON object) and returns the compact JWS in *ret (malloc'd,
 * caller frees). The payload is the claims serialised compactly in their insertion order.
 * Returns KM_EOK, KM_EINVAL (claims not an object, missing kid or callback), KM_EALG,
 * KM_ECRYPTO (signature of the wrong length), KM_ENOMEM, or the callback's code.
 */
int km_jws_sign_claims(const km_jws_signer_t *signer, const json_t *claims, char **ret);

/*
 * BASE64URL of signer's header, exactly as km_jws_sign_claims() encodes it, so that a
 * caller signing many tokens with one key encodes it once. *ret is malloc'd (caller frees),
 * set only on success. Returns KM_EOK, KM_EALG, KM_EINVAL (missing kid) or KM_ENOMEM.
 */
int km_jws_header_b64(const km_jws_signer_t *signer, char **ret);

/*
 * km_jws_sign_claims() with the header already encoded (header_b64, from
 * km_jws_header_b64() for the same signer) and the payload already printed (payload[0..len),
 * the claims as compact JSON text: the caller vouches for it). *ret as km_jws_sign_claims();
 * same codes.
 */
int km_jws_sign_encoded(const km_jws_signer_t *signer, const char *header_b64,
                        const char *payload, size_t len, char **ret);

/*
 * Parses claims_json (a JSON object, duplicate names refused) and signs it as above.
 * On malformed JSON, writes jansson's message with line and column into err and returns
 * KM_EMALFORMED; a JSON value that is not an object gives KM_EMALFORMED too.
 */
int km_jws_sign_text(const km_jws_signer_t *signer, const char *claims_json, char **ret,
                     char *err, size_t errlen);

/*
 * Reads the header and the claims of a compact JWS this process just made or received
 * (keymgr sign --json prints its kid, alg and expiry), WITHOUT verifying its signature: never
 * use it to trust a token (keymgr/verify/ does that). Either output may be NULL; each is a
 * new reference, set only on success. Returns KM_EOK, KM_EMALFORMED (not three base64url
 * parts of JSON objects) or KM_ENOMEM.
 */
int km_jws_peek(const char *compact, json_t **header, json_t **claims);
