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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/name.h"
#include "keymgr/config/config.h"
#include "keymgr/core/env.h"
#include "keymgr/store/store.h"

/* Longest typ: a custom purpose slug plus "+jwt". */
#define KM_CLAIMS_TYP_MAX (KM_PURPOSE_MAX + 4)

/* The token class of Kubernetes service-account tokens (claims_sa.c, docs/kubernetes.md):
 * signed only as the payload kube-apiserver built, through keymgr-k8s-signer. */
#define KM_CLAIMS_SA_PURPOSE KM_PURPOSE_SERVICE_ACCOUNT
/* Shortest max_token_ttl of such a key set (kube-apiserver's floor, seconds). */
#define KM_CLAIMS_SA_MIN_TTL 600
/* Longest payload accepted (base64url characters). */
#define KM_CLAIMS_SA_PAYLOAD_MAX 16384

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
 * km_claims_prepare() on claims already parsed (a JSON object; its duplicate members were
 * refused by whoever parsed it): same checks, result, messages and codes. in stays the
 * caller's; *out may share values with it (references).
 */
int km_claims_prepare_object(const km_claims_policy_t *pol, const json_t *in, int64_t now,
                             int64_t ttl, json_t **out, char *err, size_t errlen);

/*
 * km_claims_prepare_object() printed: the same checks, messages and codes, and *out (malloc'd,
 * NUL-terminated, *out_len bytes) is exactly what json_dumps(JSON_COMPACT |
 * JSON_PRESERVE_ORDER) prints of the object km_claims_prepare_object() builds, without
 * building it (the signing hot path). Both set only on success.
 */
int km_claims_prepare_text(const km_claims_policy_t *pol, const json_t *in, int64_t now,
                           int64_t ttl, char **out, size_t *out_len, char *err, size_t errlen);

/*
 * Fills *pol for key set keyset of env: its purpose from the store, issuer and audiences
 * from the configuration, max_token_ttl from its effective policy.
 * Returns KM_EOK, KM_ENOENT (unknown key set, err says which), the store's codes.
 */
int km_claims_policy_from_env(km_env_t *env, const char *keyset, km_claims_policy_t *pol,
                              char *err, size_t errlen);

/*
 * What km_claims_sign() reads from the store for one key set, resolved once, so that a
 * long-running signer (keymgrd) can sign many requests with no store access: the claims
 * policy (or why there is none), the active key (or why it may not sign). The refusals are
 * kept as code and message and given by km_claims_sign_resolved() in the same order and with
 * the same words as km_claims_sign(). pol's strings are borrowed from the configuration.
 */
#define KM_CLAIMS_ERR_MAX 512
#define KM_CLAIMS_HEADER_B64_MAX 256
typedef struct {
	km_claims_policy_t pol;
	int pol_r;                               /* KM_EOK, or why the key set signs nothing */
	char pol_err[KM_CLAIMS_ERR_MAX];
	int key_r;                               /* KM_EOK, KM_ENOACTIVE, KM_POLICY_EDENIED, ... */
	char key_err[KM_CLAIMS_ERR_MAX];
	bool audit_key;                          /* key_r refuses the environment's audit key */
	char kid[KM_KID_MAX + 1];
	km_alg_t alg;
	uint8_t cka_id[KM_STORE_CKA_ID_MAX];
	size_t cka_id_len;
	char token_serial[KM_STORE_TOKEN_SERIAL_MAX + 1];
	/* BASE64URL of the JWS header (alg, kid, typ), encoded once per resolved key; empty when
	 * it did not fit (then encoded per token). */
	char header_b64[KM_CLAIMS_HEADER_B64_MAX];
} km_claims_key_t;

/*
 * Resolves key set keyset of env into *ret (always written: failures are recorded in it, as
 * above). Reads the store only. Returns KM_EOK, or KM_EINVAL for NULL arguments.
 */
int km_claims_resolve(km_env_t *env, const char *keyset, km_claims_key_t *ret);

/* Gives the token to sign with (opened on demand): KM_EOK or a token code with err set. */
typedef int (*km_claims_token_fn)(void *ctx, km_token_t **ret, char *err, size_t errlen);

/*
 * km_claims_sign() on a resolved key set: the policy refusal, the claims check
 * (km_claims_prepare with now and ttl), the key refusal, the token (asked for only when
 * everything else passed), its serial against the key's, and the signature. Thread-safe
 * when the token callback is. *audit_denied (may be NULL) is set true when the refusal is the
 * audit key's, which the caller records as a sign.denied audit event. *ret (the compact JWT)
 * is malloc'd, set only on success. Codes of km_claims_sign().
 */
int km_claims_sign_resolved(const km_claims_key_t *k, km_claims_token_fn token, void *token_ctx,
                            const char *claims_json, int64_t now, int64_t ttl, char **ret,
                            bool *audit_denied, char *err, size_t errlen);

/*
 * km_claims_sign_resolved() on claims already parsed (a JSON object, borrowed): the same
 * checks, order, messages and codes, and the same JWT as for its compact text, without
 * printing and parsing the claims again (keymgrd's signing socket).
 */
int km_claims_sign_resolved_object(const km_claims_key_t *k, km_claims_token_fn token,
                                   void *token_ctx, const json_t *claims, int64_t now,
                                   int64_t ttl, char **ret, bool *audit_denied, char *err,
                                   size_t errlen);

/* Whether purpose is the service-account token class (km_purpose_is_service_account). The
 * algorithms such a key set may use: km_alg_kubernetes (keymgr/common/alg.h). */
bool km_claims_is_sa(const char *purpose);

/*
 * The service-account class's check of a payload kube-apiserver built (payload: the JSON
 * text, len bytes): a JSON object (duplicate members refused) whose iss is the key set's
 * issuer, whose aud values are all allowed audiences, whose sub names a service account
 * (system:serviceaccount:NS:NAME), with integer iat and exp, iat <= now + 60 (its clock may
 * run a little ahead), iat < exp, exp - iat <= max_token_ttl and exp - now <= max_token_ttl,
 * nbf (when present) an integer not after exp; no claim reserved for another class. Adds
 * nothing. KM_EOK, KM_EMALFORMED (not a JSON object), KM_POLICY_EDENIED (a rule; err names
 * it).
 */
int km_claims_check_sa(const km_claims_policy_t *pol, const char *payload, size_t len,
                       int64_t now, char *err, size_t errlen);

/*
 * Signs a payload kube-apiserver built (payload_b64: the JWT's second segment, base64url)
 * with a resolved service-account-token key set: the policy refusal, the class and the key's
 * algorithm, km_claims_check_sa(), then sign_prepared's refusals, token and signature under
 * the header {alg, kid, typ: "JWT"}. *ret: the compact JWT, whose second segment is
 * payload_b64 unchanged. Codes of km_claims_sign_resolved(); KM_EMALFORMED for a payload that
 * is not base64url.
 */
int km_claims_sign_payload_resolved(const km_claims_key_t *k, km_claims_token_fn token,
                                    void *token_ctx, const char *payload_b64, int64_t now,
                                    char **ret, bool *audit_denied, char *err, size_t errlen);

/*
 * The one signing path of the CLI and the daemon: builds the key set's claims policy,
 * prepares the claims (km_claims_prepare with now and ttl) and signs them with the key set's
 * active key, with the class's typ in the header (km_claims_resolve, then
 * km_claims_sign_resolved with the environment's token; a refused audit key is recorded).
 * *ret (the compact JWT) is malloc'd, set only on success. Returns KM_EOK, the codes of
 * km_claims_policy_from_env() and km_claims_prepare(), KM_ENOACTIVE (no active key),
 * KM_POLICY_EDENIED (the audit key), and the token's codes.
 */
int km_claims_sign(km_env_t *env, const char *keyset, const char *claims_json, int64_t now,
                   int64_t ttl, char **ret, char *err, size_t errlen);
