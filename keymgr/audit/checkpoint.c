/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signed checkpoints: the chain head (seq, hash, time) signed by the environment's audit key,
 * a pair in the environment's audit token (audit.token, else its own token) that belongs to no
 * key set: ES256, or PS256/RS256 (RSA 3072) on a token without EC (audit_alg()). The
 * checkpoint's signature is made with the algorithm recorded with the key, and checked with
 * OpenSSL from the stored public JWK, so verification needs no token. Each checkpoint is also
 * streamed and recorded in the token (anchor.c), against a store rolled back to an earlier
 * one.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/audit/audit.h"
#include "keymgr/audit/audit_int.h"
#include "keymgr/common/b64url.h"
#include "keymgr/common/canon_json.h"
#include "keymgr/common/error.h"
#include "keymgr/common/sigverify.h"
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

int km_audit_signature_verify(const char *jwk_text, km_alg_t alg, const char *msg,
                              size_t msg_len, const char *sig_b64url)
{
	uint8_t sig[KM_STORE_SIG_MAX];
	size_t sig_len = sizeof(sig), b64_len = strlen(sig_b64url);
	km_pubkey_t pub;
	json_t *jwk = json_loads(jwk_text, 0, NULL);
	/* The key as recorded (its kid checked against it); its algorithm is the record's. */
	int r = jwk ? km_jwk_to_pubkey(jwk, &pub, NULL, NULL, 0, NULL, 0) : KM_EMALFORMED;
	json_decref(jwk);
	if (r != KM_EOK)
		return KM_EMALFORMED;
	if (b64_len > KM_STORE_SIG_MAX ||
	    km_b64url_decode(sig_b64url, b64_len, sig, &sig_len) != KM_EOK)
		return KM_EMALFORMED;
	r = km_verify_signature(&pub, alg, (const uint8_t *)msg, msg_len, sig, sig_len);
	return r == KM_EOK ? KM_EOK : r == KM_ECRYPTO ? KM_ECRYPTO : KM_EMALFORMED;
}

/*
 * The audit key's algorithm on token t: ES256 where the token has it, else PS256, else RS256
 * (RSA 3072: a token without EC, as opencryptoki's soft token). *bits: the RSA size, 0 for EC.
 * KM_EALG with err naming what the token lacks when it has none of them.
 */
static int audit_alg(km_env_t *env, km_token_t *t, km_alg_t *ret, unsigned *bits, char *err,
                     size_t errlen)
{
	static const struct {
		km_alg_t alg;
		unsigned bits;
	} order[] = { { KM_ALG_ES256, 0 }, { KM_ALG_PS256, 3072 }, { KM_ALG_RS256, 3072 } };
	char why[512] = "";
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (km_token_alg_check(t, order[i].alg, order[i].bits, why, sizeof(why)) == KM_EOK) {
			*ret = order[i].alg;
			*bits = order[i].bits;
			return KM_EOK;
		}
	}
	snprintf(err, errlen, "environment '%s': cannot generate the audit key: the token has "
	         "none of ES256, PS256 and RS256 (3072 bits): %s", km_env_name(env), why);
	return KM_EALG;
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
	km_alg_t alg;
	unsigned bits;
	int r = audit_alg(env, t, &alg, &bits, err, errlen);
	if (r != KM_EOK)
		return r;
	/* A token that cut the id (YubiHSM 2 keeps 2 bytes) refused the first key: once more
	 * with an id of the length it keeps (km_token_new_id_for). A token that refused every
	 * template with a CKA_ID may choose the id itself (kmsp11): the pair is made without one
	 * and checked like a new key (the audit key is recorded only after it is made anyway). */
	bool assigned = km_token_assigns_ids(t), known = assigned;
	for (int attempt = 0;; attempt++) {
		size_t id_len_before = km_token_id_len(t);
		if (assigned)
			r = km_token_generate_assigned(t, alg, bits, label, k.cka_id, &k.cka_id_len);
		else if ((r = km_token_new_id_for(t, k.cka_id, &k.cka_id_len)) == KM_EOK)
			r = km_token_generate_with_id(t, alg, bits, label, k.cka_id, k.cka_id_len,
			                              &pub);
		if (r == KM_EOK && assigned &&
		    (r = km_token_check_key(t, k.cka_id, k.cka_id_len, alg, &pub)) != KM_EOK)
			km_token_destroy(t, k.cka_id, k.cka_id_len);
		if (r == KM_EOK) {
			if (assigned && !known)   /* learned: kept for the next process */
				(void)km_env_token_learned(env, t, NULL, 0);
			break;
		}
		if (attempt == 0 && km_token_id_len(t) != id_len_before) {
			/* Learned: kept for the next process. Not kept, it is only learned again. */
			(void)km_env_token_learned(env, t, NULL, 0);
			continue;
		}
		if (attempt == 0 && r == KM_EINVAL && !assigned) {
			assigned = true;
			continue;
		}
		const char *why = km_token_last_error(t);
		snprintf(err, errlen, "environment '%s': cannot generate the audit key: %s",
		         km_env_name(env), why && why[0] ? why : km_strerror(r));
		return r;
	}
	if ((r = km_jwk_from_pubkey(&pub, alg, &jwk)) != KM_EOK ||
	    (jwk_text = json_dumps(jwk, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL) {
		snprintf(err, errlen, "cannot encode the audit key");
		r = r != KM_EOK ? r : KM_ENOMEM;
		goto undo;
	}
	snprintf(k.kid, sizeof(k.kid), "%s", json_string_value(json_object_get(jwk, "kid")));
	snprintf(k.jwk, sizeof(k.jwk), "%s", jwk_text);
	snprintf(k.token_label, sizeof(k.token_label), "%s", info.label);
	snprintf(k.token_serial, sizeof(k.token_serial), "%s", info.serial);
	k.alg = alg;
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
	uint8_t sig[KM_PUBKEY_MAX_N];
	size_t sig_len = sizeof(sig);
	r = km_token_sign(t, key.cka_id, key.cka_id_len, key.alg, (const uint8_t *)payload,
	                  strlen(payload), sig, &sig_len);
	if (r != KM_EOK || sig_len == 0) {
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
