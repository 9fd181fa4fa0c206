/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signed checkpoints: the chain head (seq, hash, time) signed by the environment's audit key,
 * an ES256 pair in the environment's audit token (audit.token, else its own token) that
 * belongs to no key set. The signature is checked with OpenSSL from the stored public JWK, so
 * verification needs no token. Each checkpoint is also streamed and recorded in the token
 * (anchor.c), against a store rolled back to an earlier one.
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/audit/audit.h"
#include "keymgr/audit/audit_int.h"
#include "keymgr/common/b64url.h"
#include "keymgr/common/canon_json.h"
#include "keymgr/common/error.h"
#include "keymgr/jose/jwk.h"

int km_audit_checkpoint_payload(const char *env, const km_store_checkpoint_t *c, char **ret)
{
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_kv_int(&b, "at", c->at);
	km_cjson_kv_str(&b, "env", env);
	km_cjson_kv_str(&b, "hash", c->hash);
	km_cjson_kv_str(&b, "kid", c->key_kid);
	km_cjson_kv_int(&b, "seq", c->seq);
	km_cjson_kv_str(&b, "type", KM_AUDIT_CHECKPOINT_TYPE);
	km_cjson_kv_int(&b, "v", 1);
	km_cjson_close(&b, '}');
	char *text = km_cjson_take(&b);
	if (text == NULL)
		return KM_ENOMEM;
	*ret = text;
	return KM_EOK;
}

/* EVP_PKEY of an EC P-256 public key given as a JWK text (kid checked against the key). */
static int p256_from_jwk(const char *jwk_text, EVP_PKEY **ret)
{
	km_pubkey_t pub;
	km_alg_t alg = KM_ALG_NONE;
	json_t *jwk = json_loads(jwk_text, 0, NULL);
	int r = jwk ? km_jwk_to_pubkey(jwk, &pub, &alg, NULL, 0, NULL, 0) : KM_EMALFORMED;
	json_decref(jwk);
	if (r != KM_EOK || pub.kty != KM_KTY_EC || pub.crv != KM_CRV_P256 || pub.x_len != 32 ||
	    pub.y_len != 32)
		return KM_EMALFORMED;
	uint8_t point[65];
	point[0] = 0x04;
	memcpy(point + 1, pub.x, 32);
	memcpy(point + 33, pub.y, 32);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
		OSSL_PARAM_construct_end(),
	};
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pkey = NULL;
	if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1 ||
	    EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		r = KM_EMALFORMED;
	EVP_PKEY_CTX_free(pctx);
	if (r != KM_EOK)
		return r;
	*ret = pkey;
	return KM_EOK;
}

int km_audit_es256_verify(const char *jwk_text, const char *msg, size_t msg_len,
                          const char *sig_b64url)
{
	uint8_t sig[128], *der = NULL;
	size_t sig_len = sizeof(sig);
	EVP_PKEY *pkey = NULL;
	ECDSA_SIG *es = NULL;
	EVP_MD_CTX *md = NULL;
	int r = KM_EMALFORMED;
	/* r||s of P-256: 64 bytes, 86 base64url characters (checked first: sig holds 128). */
	if (strlen(sig_b64url) != 86 ||
	    km_b64url_decode(sig_b64url, 86, sig, &sig_len) != KM_EOK || sig_len != 64)
		return KM_EMALFORMED;
	if ((r = p256_from_jwk(jwk_text, &pkey)) != KM_EOK)
		return r;
	BIGNUM *br = BN_bin2bn(sig, 32, NULL), *bs = BN_bin2bn(sig + 32, 32, NULL);
	es = ECDSA_SIG_new();
	if (br == NULL || bs == NULL || es == NULL || ECDSA_SIG_set0(es, br, bs) != 1) {
		BN_free(br);
		BN_free(bs);
		r = KM_ENOMEM;
		goto out;
	}
	int der_len = i2d_ECDSA_SIG(es, &der);
	md = EVP_MD_CTX_new();
	if (der_len <= 0 || md == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1) {
		r = KM_ECRYPTO;
		goto out;
	}
	r = EVP_DigestVerify(md, der, (size_t)der_len, (const uint8_t *)msg, msg_len) == 1
	            ? KM_EOK : KM_ECRYPTO;
out:
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_PKEY_free(pkey);
	return r;
}

/* Creates the environment's audit key in its token and records it (audit.key.create). */
static int create_audit_key(km_env_t *env, km_token_t *t, int64_t now, km_store_audit_key_t *ret,
                            char *err, size_t errlen)
{
	km_store_audit_key_t k;
	km_token_info_t info;
	km_pubkey_t pub;
	json_t *jwk = NULL;
	char *jwk_text = NULL;
	char label[96];
	memset(&k, 0, sizeof(k));
	km_token_get_info(t, &info);
	snprintf(label, sizeof(label), KM_AUDIT_KEY_LABEL_PREFIX "%s", km_env_name(env));
	int r = km_token_new_id(k.cka_id);
	if (r != KM_EOK) {
		snprintf(err, errlen, "cannot draw a random key ID");
		return r;
	}
	k.cka_id_len = KM_TOKEN_ID_LEN;
	if ((r = km_token_generate_with_id(t, KM_ALG_ES256, 0, label, k.cka_id, &pub)) != KM_EOK) {
		const char *why = km_token_last_error(t);
		snprintf(err, errlen, "environment '%s': cannot generate the audit key: %s",
		         km_env_name(env), why && why[0] ? why : km_strerror(r));
		return r;
	}
	if ((r = km_jwk_from_pubkey(&pub, KM_ALG_ES256, &jwk)) != KM_EOK ||
	    (jwk_text = json_dumps(jwk, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL) {
		snprintf(err, errlen, "cannot encode the audit key");
		r = r != KM_EOK ? r : KM_ENOMEM;
		goto undo;
	}
	snprintf(k.kid, sizeof(k.kid), "%s", json_string_value(json_object_get(jwk, "kid")));
	snprintf(k.jwk, sizeof(k.jwk), "%s", jwk_text);
	snprintf(k.token_label, sizeof(k.token_label), "%s", info.label);
	snprintf(k.token_serial, sizeof(k.token_serial), "%s", info.serial);
	k.alg = KM_ALG_ES256;
	k.created_at = now;
	k.active = true;
	if ((r = km_store_audit_key_add(km_env_store(env), &k, err, errlen)) != KM_EOK)
		goto undo;
	*ret = k;
	json_decref(jwk);
	free(jwk_text);
	return KM_EOK;
undo:
	km_token_destroy(t, k.cka_id, k.cka_id_len);
	json_decref(jwk);
	free(jwk_text);
	return r;
}

/* The active audit key, if any (*found false when none). */
static int active_key(km_store_t *s, km_store_audit_key_t *ret, bool *found, char *err,
                      size_t errlen)
{
	km_store_audit_key_t *keys = NULL;
	size_t n = 0;
	int r = km_store_audit_keys(s, &keys, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	*found = false;
	for (size_t i = 0; i < n; i++) {
		if (keys[i].active) {
			*ret = keys[i];
			*found = true;
		}
	}
	free(keys);
	return KM_EOK;
}

/* Whether the configured audit.token is not the token the key was made in (by the label or
 * serial the configuration names): the next checkpoint moves the key, whether the head moved
 * or not. */
static bool moving(km_env_t *env, const km_store_audit_key_t *key)
{
	const km_env_cfg_t *e = km_env_cfg(env);
	if (!e->has_audit_token)
		return false;
	if (e->audit_token.token_serial != NULL)
		return strcmp(e->audit_token.token_serial, key->token_serial) != 0;
	return strcmp(e->audit_token.token_label, key->token_label) != 0;
}

int km_audit_checkpoint(km_env_t *env, int64_t now, bool force, km_store_checkpoint_t *ret,
                        char *err, size_t errlen)
{
	km_store_t *s = km_env_store(env);
	km_store_checkpoint_t *cps = NULL, cp;
	km_store_audit_key_t key;
	km_token_t *t = NULL;
	size_t n_cps = 0;
	bool have_key = false;
	char *payload = NULL;
	memset(&cp, 0, sizeof(cp));
	int r = km_store_audit_head(s, &cp.seq, cp.hash, err, errlen);
	if (r != KM_EOK)
		return r;
	if (cp.seq == 0) {
		snprintf(err, errlen, "the audit log of environment '%s' is empty", km_env_name(env));
		return KM_ENOENT;
	}
	if ((r = km_store_checkpoints(s, &cps, &n_cps, err, errlen)) != KM_EOK)
		return r;
	if ((r = active_key(s, &key, &have_key, err, errlen)) != KM_EOK)
		goto out;
	if (!force && have_key && n_cps > 0 && cps[n_cps - 1].seq == cp.seq &&
	    strcmp(cps[n_cps - 1].key_kid, key.kid) == 0 && !moving(env, &key)) {
		if (ret != NULL)
			*ret = cps[n_cps - 1];
		goto out;
	}
	if ((r = km_env_audit_token(env, &t, err, errlen)) != KM_EOK)
		goto out;
	km_token_info_t info;
	km_token_get_info(t, &info);
	bool elsewhere = have_key && key.token_serial[0] != '\0' &&
	                 strcmp(key.token_serial, info.serial) != 0;
	if (elsewhere && !km_env_cfg(env)->has_audit_token) {
		snprintf(err, errlen, "the audit key of environment '%s' lives in token serial %s, "
		         "but the environment uses token serial %s", km_env_name(env),
		         key.token_serial, info.serial);
		r = KM_EWRONGENV;
		goto out;
	}
	/* First use, or audit.token now names another token than the key's: a new audit key
	 * there (the store retires the old one; both are in the log). */
	if (!have_key || elsewhere) {
		if ((r = create_audit_key(env, t, now, &key, err, errlen)) != KM_EOK)
			goto out;
		/* Recording the key appended an event: sign the new head. */
		if ((r = km_store_audit_head(s, &cp.seq, cp.hash, err, errlen)) != KM_EOK)
			goto out;
	}
	cp.at = now;
	snprintf(cp.key_kid, sizeof(cp.key_kid), "%s", key.kid);
	if ((r = km_audit_checkpoint_payload(km_env_name(env), &cp, &payload)) != KM_EOK)
		goto out;
	uint8_t sig[64];
	size_t sig_len = sizeof(sig);
	r = km_token_sign(t, key.cka_id, key.cka_id_len, KM_ALG_ES256, (const uint8_t *)payload,
	                  strlen(payload), sig, &sig_len);
	if (r != KM_EOK || sig_len != 64) {
		const char *why = km_token_last_error(t);
		snprintf(err, errlen, "environment '%s': the audit key %s cannot sign: %s",
		         km_env_name(env), key.kid, why && why[0] ? why : km_strerror(r));
		r = r != KM_EOK ? r : KM_ECRYPTO;
		goto out;
	}
	km_b64url_encode(sig, sig_len, cp.signature);
	if ((r = km_store_checkpoint_add(s, &cp, err, errlen)) != KM_EOK)
		goto out;
	/* Outside the store, where a rollback of the store cannot reach: the sinks, then the
	 * token's record (km_audit_token_anchor()). */
	km_audit_stream_checkpoint(env, &cp);
	r = km_audit_token_record(env, t, &cp, err, errlen);
	if (r == KM_ENOTSUP) {
		/* A token that keeps no private data objects has no record: the checkpoint stands
		 * (the stream and --expect-seq remain; `audit checkpoint` warns). */
		if (errlen > 0)
			err[0] = '\0';
		r = KM_EOK;
	}
	if (r != KM_EOK)
		goto out;
	if (ret != NULL)
		*ret = cp;
out:
	free(payload);
	free(cps);
	return r;
}
