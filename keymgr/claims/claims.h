/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The claims policy: what a key set may sign (docs/claims.md).
 *
 * Every key set signs exactly one token class, given by its purpose. Before anything is
 * signed, km_claims_prepare() checks the caller's claims against the class and the key
 * set's configuration and adds the claims keymgr owns:
 *   - the header typ follows from the purpose (km_claims_typ); the caller cannot choose it;
 *   - iss must equal the configured issuer (keymgr fills it in when absent); a key set with
 *     no issuer configured signs nothing;
 *   - aud (a string or an array of strings) is required, and every value must be in the
 *     key set's configured audiences;
 *   - exp is required, and exp - iat may not exceed the policy's max_token_ttl: a longer
 *     lifetime is refused, never shortened;
 *   - iat, nbf (both "now") and jti (128 random bits, base64url) are set by keymgr; a caller
 *     that supplies them is refused;
 *   - claims reserved for other classes are refused (events outside security-event and
 *     logout tokens, nonce outside ID tokens, ...), and each class's required claims are
 *     checked (RFC 9068, OIDC Core, OIDC Back-Channel Logout, RFC 8417).
 * Refusals are KM_POLICY_EDENIED with one line naming the claim and the rule.
 *
 * keymgr sign (the CLI) and keymgrd's signing socket both go through km_claims_sign(), so
 * the two paths cannot disagree.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/name.h"
#include "keymgr/config/config.h"
#include "keymgr/core/env.h"

/* Longest typ: a custom purpose slug plus "+jwt". */
#define KM_CLAIMS_TYP_MAX (KM_PURPOSE_MAX + 4)

/* keymgr's jti: 16 random bytes, base64url without padding. */
#define KM_CLAIMS_JTI_BYTES 16

/* The event a logout token must carry (OIDC Back-Channel Logout 1.0, section 2.4). */
#define KM_CLAIMS_BCL_EVENT "http://schemas.openid.net/event/backchannel-logout"

/* What km_claims_prepare() checks for one key set. Strings are borrowed (see the init). */
typedef struct {
	char env[KM_ENV_NAME_MAX + 1];
	char keyset[KM_KEYSET_NAME_MAX + 1];
	char purpose[KM_PURPOSE_MAX + 1];
	const char *issuer;                  /* NULL: not configured, every request refused */
	const char *const *audiences;        /* allowed aud values */
	size_t n_audiences;
	int64_t max_token_ttl;               /* seconds, > 0 */
} km_claims_policy_t;

/*
 * Writes the header typ of a purpose into typ: at+jwt (access-token, RFC 9068), JWT
 * (id-token), logout+jwt (logout-token), secevent+jwt (security-event-token, RFC 8417),
 * rt+jwt (refresh-token), and PURPOSE+jwt for a custom purpose. Returns typ.
 */
const char *km_claims_typ(const char *purpose, char typ[KM_CLAIMS_TYP_MAX + 1]);

/*
 * Fills *pol for key set env/keyset of this purpose from its configuration entry kcfg
 * (NULL when the config does not mention the key set: nothing can be signed) and its
 * effective max_token_ttl. The issuer and audience strings stay owned by the configuration.
 * Returns KM_EOK or KM_EINVAL (bad names or ttl).
 */
int km_claims_policy_init(km_claims_policy_t *pol, const char *env, const char *keyset,
                          const char *purpose, const km_keyset_cfg_t *kcfg,
                          int64_t max_token_ttl);

/*
 * Checks claims_json (a JSON object, duplicate member names refused) against pol at time
 * now and builds the claims to sign: iss first, then the caller's claims in their order,
 * then iat, nbf and jti. With ttl > 0 keymgr also sets exp = now + ttl (the caller must then
 * not give exp); with ttl == 0 the claims must carry exp.
 * *out is a new jansson reference (json_decref it), set only on success. On refusal writes
 * one line into err. Returns KM_EOK, KM_EMALFORMED (not a JSON object), KM_POLICY_EDENIED
 * (a rule refused the claims), KM_EINVAL (bad arguments), KM_ENOMEM, KM_ECRYPTO (no random
 * bytes for the jti).
 */
int km_claims_prepare(const km_claims_policy_t *pol, const char *claims_json, int64_t now,
                      int64_t ttl, json_t **out, char *err, size_t errlen);

/*
 * Fills *pol for key set keyset of env: its purpose from the store, issuer and audiences
 * from the configuration, max_token_ttl from its effective policy.
 * Returns KM_EOK, KM_ENOENT (unknown key set, err says which), the store's codes.
 */
int km_claims_policy_from_env(km_env_t *env, const char *keyset, km_claims_policy_t *pol,
                              char *err, size_t errlen);

/*
 * The one signing path of the CLI and the daemon: builds the key set's claims policy,
 * prepares the claims (km_claims_prepare with now and ttl) and signs them with the key set's
 * active key, with the class's typ in the header. *ret (the compact JWT) is malloc'd, set
 * only on success. Returns KM_EOK, the codes of km_claims_policy_from_env(),
 * km_claims_prepare() and km_keyset_sign() (KM_ENOACTIVE, token codes).
 */
int km_claims_sign(km_env_t *env, const char *keyset, const char *claims_json, int64_t now,
                   int64_t ttl, char **ret, char *err, size_t errlen);
