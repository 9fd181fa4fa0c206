/* SPDX-License-Identifier: Apache-2.0 */
/* Private to keymgr/claims/: the token classes and their per-class rules (class.c). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/claims/claims.h"

/* One bit per token class; custom purposes share CLAIMS_CUSTOM. */
enum {
	CLAIMS_ACCESS = 1u << 0,     /* access-token, RFC 9068 */
	CLAIMS_ID = 1u << 1,         /* id-token, OIDC Core */
	CLAIMS_LOGOUT = 1u << 2,     /* logout-token, OIDC Back-Channel Logout */
	CLAIMS_SET = 1u << 3,        /* security-event-token, RFC 8417 */
	CLAIMS_REFRESH = 1u << 4,    /* refresh-token (keymgr's own typ) */
	CLAIMS_CUSTOM = 1u << 5,     /* any other purpose */
	CLAIMS_SA = 1u << 6,         /* service-account-token, Kubernetes (claims_sa.c) */
};

/* The key set's issuer and audiences are configured: KM_EOK, or KM_POLICY_EDENIED naming the
 * configuration key to set. */
int km_claims_check_configured(const km_claims_policy_t *pol, char *err, size_t errlen);
/* iss, when present, is the key set's issuer. KM_EOK or KM_POLICY_EDENIED. */
int km_claims_check_iss(const km_claims_policy_t *pol, const json_t *iss, char *err,
                        size_t errlen);
/* aud is present, a non-empty string or array of them, every value an allowed audience. */
int km_claims_check_aud(const km_claims_policy_t *pol, const json_t *aud, char *err,
                        size_t errlen);

/* The class bit of a purpose. */
unsigned km_claims_class_of(const char *purpose);

/*
 * Refuses a claim reserved for other classes and checks the class's required claims and
 * their shape. Writes one line into err. KM_EOK or KM_POLICY_EDENIED.
 */
int km_claims_check_class(const km_claims_policy_t *pol, const json_t *claims, char *err,
                          size_t errlen);

/*
 * Parses claims_json (duplicate members refused) into *ret (new reference). On failure writes
 * "claims are not valid JSON: ... (line L, column C)" into err and returns KM_EMALFORMED.
 */
int km_claims_parse(const char *claims_json, json_t **ret, char *err, size_t errlen);

/*
 * Prints the prepared claims as json_dumps(JSON_COMPACT | JSON_PRESERVE_ORDER) prints the
 * object km_claims_prepare_object() builds: {"iss":issuer, the members of in but iss in their
 * order, "exp":exp when set_exp, "iat":now, "nbf":now, "jti":jti}. *out is malloc'd and
 * NUL-terminated. KM_EOK or KM_ENOMEM.
 */
int km_claims_print(const char *issuer, const json_t *in, bool set_exp, int64_t exp,
                    int64_t now, const char *jti, char **out, size_t *out_len);

/* The JWS signer's callback of both signing paths (claims_sign.c, claims_probe.c): the
 * signature by key in token, through the token layer. */
typedef struct {
	km_token_t *token;
	const km_claims_key_t *key;
} km_claims__sign_ctx_t;
int km_claims__sign_with_token(void *ctx, const uint8_t *data, size_t len, uint8_t *sig,
                               size_t *sig_len);
