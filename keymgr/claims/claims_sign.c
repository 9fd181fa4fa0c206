/* SPDX-License-Identifier: Apache-2.0 */
/* The claims policy of a key set from its environment, and the one signing path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/claims/claims_int.h"
#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "keymgr/core/keyops.h"
#include "keymgr/jose/jws.h"

int km_claims_policy_from_env(km_env_t *env, const char *keyset, km_claims_policy_t *pol,
                              char *err, size_t errlen)
{
	km_store_keyset_t ks;
	km_policy_t p;
	int r = km_store_keyset_get(km_env_store(env), keyset, &ks, err, errlen);
	if (r == KM_ENOENT)
		snprintf(err, errlen, "unknown key set %s/%s", km_env_name(env), keyset);
	if (r != KM_EOK)
		return r;
	if ((r = km_env_keyset_policy(env, keyset, &p)) != KM_EOK) {
		snprintf(err, errlen, "key set %s/%s: no effective policy", km_env_name(env), keyset);
		return r;
	}
	const km_keyset_cfg_t *kcfg = km_config_keyset(km_env_config(env), km_env_name(env),
	                                               keyset);
	r = km_claims_policy_init(pol, km_env_name(env), keyset, ks.purpose, kcfg,
	                          p.max_token_ttl);
	if (r != KM_EOK)
		snprintf(err, errlen, "key set %s/%s: cannot build its claims policy",
		         km_env_name(env), keyset);
	return r;
}

int km_claims_resolve(km_env_t *env, const char *keyset, km_claims_key_t *ret)
{
	km_store_key_t k;
	km_claims_key_t *c = ret;
	if (env == NULL || keyset == NULL || ret == NULL)
		return KM_EINVAL;
	memset(c, 0, sizeof(*c));
	c->pol_r = km_claims_policy_from_env(env, keyset, &c->pol, c->pol_err, sizeof(c->pol_err));
	if (c->pol_r != KM_EOK)
		return KM_EOK;
	/* A key signs the class it was made for (RFC 8725 3.12): after a purpose change the key
	 * set must rotate before it signs the new class. */
	c->key_r = km_store_key_active(km_env_store(env), keyset, &k, c->key_err,
	                               sizeof(c->key_err));
	if (c->key_r == KM_ENOACTIVE) {
		snprintf(c->key_err, sizeof(c->key_err), "key set %s/%s has no active key (rotate "
		         "it first)", km_env_name(env), keyset);
		return KM_EOK;
	}
	if (c->key_r != KM_EOK)
		return KM_EOK;
	if (strcmp(k.purpose, c->pol.purpose) != 0) {
		snprintf(c->key_err, sizeof(c->key_err), "the active key %s of %s/%s was made for "
		         "%s tokens, and the key set now signs %s tokens: rotate it first", k.kid,
		         c->pol.env, c->pol.keyset, k.purpose, c->pol.purpose);
		c->key_r = KM_POLICY_EDENIED;
		return KM_EOK;
	}
	/* Defence in depth: the audit key signs checkpoints only, never a JWT, even if a
	 * tampered store listed its CKA_ID as a key set's key. */
	bool audit_key = false;
	c->key_r = km_store_audit_key_is(km_env_store(env), k.cka_id, k.cka_id_len, &audit_key,
	                                 c->key_err, sizeof(c->key_err));
	if (c->key_r != KM_EOK)
		return KM_EOK;
	snprintf(c->kid, sizeof(c->kid), "%s", k.kid);
	if (audit_key) {
		c->audit_key = true;
		c->key_r = KM_POLICY_EDENIED;
		snprintf(c->key_err, sizeof(c->key_err), "key %s of %s/%s is the environment's audit "
		         "key: it never signs a JWT (refused and recorded)", k.kid, km_env_name(env),
		         keyset);
		return KM_EOK;
	}
	c->alg = k.alg;
	memcpy(c->cka_id, k.cka_id, k.cka_id_len);
	c->cka_id_len = k.cka_id_len;
	snprintf(c->token_serial, sizeof(c->token_serial), "%s", k.token_serial);
	/* The header never changes for this key: encode it once (sign_prepared falls back to
	 * encoding it per token when it does not fit). */
	char typ[KM_CLAIMS_TYP_MAX + 1], *header = NULL;
	km_jws_signer_t signer = { .alg = c->alg, .kid = c->kid,
	                           .typ = km_claims_typ(c->pol.purpose, typ) };
	if (km_jws_header_b64(&signer, &header) == KM_EOK && strlen(header) < sizeof(c->header_b64))
		memcpy(c->header_b64, header, strlen(header) + 1);
	free(header);
	return KM_EOK;
}

int km_claims__sign_with_token(void *ctx, const uint8_t *data, size_t len, uint8_t *sig,
                               size_t *sig_len)
{
	km_claims__sign_ctx_t *c = ctx;
	return km_token_sign(c->token, c->key->cka_id, c->key->cka_id_len, c->key->alg, data, len,
	                     sig, sig_len);
}

/* The rest of km_claims_sign_resolved() once the claims passed km_claims_prepare_text(): the
 * key refusal, the token, its serial, the signature over the printed claims under the key's
 * header, encoded once when the key was resolved. */
static int sign_prepared(const km_claims_key_t *k, km_claims_token_fn token, void *token_ctx,
                         const char *payload, size_t payload_len, char **ret,
                         bool *audit_denied, char *err, size_t errlen)
{
	char typ[KM_CLAIMS_TYP_MAX + 1], *header = NULL;
	km_token_t *t = NULL;
	km_token_info_t info;
	int r;

	if (k->key_r != KM_EOK) {
		snprintf(err, errlen, "%s", k->key_err);
		if (audit_denied != NULL)
			*audit_denied = k->audit_key;
		return k->key_r;
	}
	if ((r = token(token_ctx, &t, err, errlen)) != KM_EOK)
		return r;
	km_token_get_info(t, &info);
	if (k->token_serial[0] != '\0' && strcmp(k->token_serial, info.serial) != 0) {
		snprintf(err, errlen, "key %s was made in token serial %s, but environment '%s' "
		         "uses token serial %s: refused", k->kid, k->token_serial, k->pol.env,
		         info.serial);
		return KM_EWRONGENV;
	}
	km_claims__sign_ctx_t ctx = { t, k };
	km_jws_signer_t signer = {
		.alg = k->alg, .kid = k->kid, .sign = km_claims__sign_with_token, .sign_ctx = &ctx,
	};
	if (k->header_b64[0] == '\0')
		signer.typ = km_claims_typ(k->pol.purpose, typ);   /* the header is encoded here */
	if (k->header_b64[0] != '\0' || (r = km_jws_header_b64(&signer, &header)) == KM_EOK)
		r = km_jws_sign_encoded(&signer, header != NULL ? header : k->header_b64, payload,
		                        payload_len, ret);
	free(header);
	if (r != KM_EOK) {
		const char *why = km_token_last_error(t);
		snprintf(err, errlen, "environment '%s': signing with %s failed: %s", k->pol.env,
		         k->kid, why && why[0] ? why : km_strerror(r));
	}
	return r;
}

/* What every resolved signing path starts with: no audit denial yet, and the key set's policy
 * refusal (why it signs nothing), if any. */
static int policy_refusal(const km_claims_key_t *k, bool *audit_denied, char *err,
                          size_t errlen)
{
	if (audit_denied != NULL)
		*audit_denied = false;
	if (k->pol_r != KM_EOK)
		snprintf(err, errlen, "%s", k->pol_err);
	return k->pol_r;
}

int km_claims_sign_resolved(const km_claims_key_t *k, km_claims_token_fn token, void *token_ctx,
                            const char *claims_json, int64_t now, int64_t ttl, char **ret,
                            bool *audit_denied, char *err, size_t errlen)
{
	json_t *claims = NULL;
	char dummy[1];
	int r;

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (k == NULL || token == NULL || ret == NULL)
		return KM_EINVAL;
	if ((r = policy_refusal(k, audit_denied, err, errlen)) != KM_EOK)
		return r;
	if (claims_json == NULL || ttl < 0 || now < 0)
		return KM_EINVAL;
	if ((r = km_claims_parse(claims_json, &claims, err, errlen)) != KM_EOK)
		return r;
	r = km_claims_sign_resolved_object(k, token, token_ctx, claims, now, ttl, ret, audit_denied,
	                                   err, errlen);
	json_decref(claims);
	return r;
}

int km_claims_sign_resolved_object(const km_claims_key_t *k, km_claims_token_fn token,
                                   void *token_ctx, const json_t *claims, int64_t now,
                                   int64_t ttl, char **ret, bool *audit_denied, char *err,
                                   size_t errlen)
{
	char *payload = NULL;
	size_t len = 0;
	int r;

	if (k == NULL || token == NULL || claims == NULL || ret == NULL)
		return KM_EINVAL;
	if ((r = policy_refusal(k, audit_denied, err, errlen)) != KM_EOK)
		return r;
	if ((r = km_claims_prepare_text(&k->pol, claims, now, ttl, &payload, &len, err, errlen))
	    != KM_EOK)
		return r;
	r = sign_prepared(k, token, token_ctx, payload, len, ret, audit_denied, err, errlen);
	free(payload);
	return r;
}

int km_claims_sign_payload_resolved(const km_claims_key_t *k, km_claims_token_fn token,
                                    void *token_ctx, const char *payload_b64, int64_t now,
                                    char **ret, bool *audit_denied, char *err, size_t errlen)
{
	if (k == NULL || token == NULL || payload_b64 == NULL || ret == NULL)
		return KM_EINVAL;
	int r = policy_refusal(k, audit_denied, err, errlen);
	if (r != KM_EOK)
		return r;
	size_t n = strlen(payload_b64), len = 0;
	if (n == 0 || n > KM_CLAIMS_SA_PAYLOAD_MAX) {
		snprintf(err, errlen, "the payload is %s (at most %d base64url characters)",
		         n == 0 ? "empty" : "too long", KM_CLAIMS_SA_PAYLOAD_MAX);
		return KM_EMALFORMED;
	}
	uint8_t *payload = malloc(n * 3 / 4 + 1);
	if (payload == NULL)
		return KM_ENOMEM;
	r = km_b64url_decode(payload_b64, n, payload, &len);
	if (r != KM_EOK) {
		snprintf(err, errlen, "the payload is not base64url (unpadded, canonical)");
	} else if ((r = km_claims_check_sa(&k->pol, (const char *)payload, len, now, err,
	                                   errlen)) == KM_EOK) {
		if (k->key_r == KM_EOK && !km_alg_kubernetes(k->alg)) {
			snprintf(err, errlen, "key set %s/%s signs with %s: kube-apiserver accepts only "
			         "RS256, ES256, ES384 and ES512", k->pol.env, k->pol.keyset,
			         km_alg_name(k->alg));
			r = KM_POLICY_EDENIED;
		} else {
			/* re-encoded by km_jws_sign_encoded: the decoding refused every non-canonical
			 * form, so the second segment is payload_b64 as given */
			r = sign_prepared(k, token, token_ctx, (const char *)payload, len, ret,
			                  audit_denied, err, errlen);
		}
	}
	free(payload);
	return r;
}

static int env_token(void *ctx, km_token_t **ret, char *err, size_t errlen)
{
	return km_env_token(ctx, ret, err, errlen);
}

int km_claims_sign(km_env_t *env, const char *keyset, const char *claims_json, int64_t now,
                   int64_t ttl, char **ret, char *err, size_t errlen)
{
	km_claims_key_t *k = malloc(sizeof(*k));
	bool audit_denied = false;
	int r;

	if (k == NULL)
		return KM_ENOMEM;
	if ((r = km_claims_resolve(env, keyset, k)) == KM_EOK)
		r = km_claims_sign_resolved(k, env_token, env, claims_json, now, ttl, ret,
		                            &audit_denied, err, errlen);
	if (audit_denied)
		km_store_audit_append(km_env_store(env), "sign.denied", keyset, k->kid, NULL, NULL,
		                      "the audit key never signs JWTs", now, NULL, NULL, 0);
	free(k);
	return r;
}
