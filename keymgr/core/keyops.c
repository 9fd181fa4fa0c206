/* SPDX-License-Identifier: Apache-2.0 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/canon_json.h"
#include "keymgr/common/error.h"
#include "keymgr/common/faultpoint.h"
#include "keymgr/common/hex.h"
#include "keymgr/core/documents.h"
#include "keymgr/core/key_owner.h"
#include "keymgr/core/keyops.h"
#include "keymgr/jose/jwk.h"
#include "keymgr/jose/jwks.h"
#include "keymgr/store/change_lock.h"

int km_keyset_create(km_env_t *env, const km_store_keyset_t *ks, const char *who, int64_t now,
                     char *err, size_t errlen)
{
	km_policy_t pol;
	int r = km_env_keyset_policy(env, ks->name, &pol);
	if (r != KM_EOK) {
		snprintf(err, errlen, "invalid key set name '%s'", ks->name);
		return r;
	}
	const km_alg_info_t *info = km_alg_info(ks->alg);
	if (info == NULL) {
		snprintf(err, errlen, "unknown algorithm");
		return KM_EALG;
	}
	if (info->kty == KM_KTY_RSA && !km_rsa_bits_valid(ks->rsa_bits)) {
		snprintf(err, errlen, "RSA key size %u is not supported: use 2048, 3072 or 4096",
		         ks->rsa_bits);
		return KM_EKEYSIZE;
	}
	const char *e = km_env_name(env);
	char allowed[512], key[256];
	if (!km_policy_alg_allowed(&pol, ks->alg, ks->rsa_bits)) {
		if ((pol.algorithms & (1u << ks->alg)) && info->kty == KM_KTY_RSA) {
			snprintf(err, errlen, "policy of environment '%s' requires RSA keys of at least %u "
			         "bits, not %u (set by %s)", e, pol.min_rsa_bits, ks->rsa_bits,
			         km_policy_config_key(&pol, KM_POLICY_F_MIN_RSA_BITS, e, ks->name, key,
			                              sizeof(key)));
			return KM_EKEYSIZE;
		}
		snprintf(err, errlen, "policy of environment '%s' does not allow algorithm %s: allowed "
		         "are %s (set by %s)", e, info->name,
		         km_policy_allowed_text(&pol, KM_POLICY_F_ALGORITHMS, allowed, sizeof(allowed)),
		         km_policy_config_key(&pol, KM_POLICY_F_ALGORITHMS, e, ks->name, key,
		                              sizeof(key)));
		return KM_EALG;
	}
	if (ks->owner[0] == '\0') {
		snprintf(err, errlen, "an owner is required (--owner TEAM)");
		return KM_EOWNER;
	}
	if (!km_name_owner_valid(ks->owner)) {
		snprintf(err, errlen, "invalid owner '%.64s': use letters, digits and . _ @ + : -",
		         ks->owner);
		return KM_EOWNER;
	}
	if (!km_policy_owner_allowed(&pol, ks->owner)) {
		snprintf(err, errlen, "owner '%s' is not allowed by the policy of environment '%s': "
		         "allowed are %s (set by %s)", ks->owner, e,
		         km_policy_allowed_text(&pol, KM_POLICY_F_OWNERS, allowed, sizeof(allowed)),
		         km_policy_config_key(&pol, KM_POLICY_F_OWNERS, e, ks->name, key, sizeof(key)));
		return KM_EOWNER;
	}
	if (!km_name_purpose_valid(ks->purpose)) {
		snprintf(err, errlen, "unknown purpose '%.64s': use one of %s, or a custom lowercase "
		         "slug listed in %s", ks->purpose, km_purpose_builtin_list(),
		         km_policy_config_key(&pol, KM_POLICY_F_PURPOSES, e, ks->name, key,
		                              sizeof(key)));
		return KM_EPURPOSE;
	}
	if (!km_policy_purpose_allowed(&pol, ks->purpose)) {
		snprintf(err, errlen, "purpose '%s' is not allowed by the policy of environment '%s': "
		         "allowed are %s (set by %s)", ks->purpose, e,
		         km_policy_allowed_text(&pol, KM_POLICY_F_PURPOSES, allowed, sizeof(allowed)),
		         km_policy_config_key(&pol, KM_POLICY_F_PURPOSES, e, ks->name, key,
		                              sizeof(key)));
		return KM_EPURPOSE;
	}
	/* Kubernetes service-account tokens (docs/kubernetes.md): kube-apiserver accepts these
	 * algorithms only (the claims layer refuses any other at signing, too). */
	if (km_purpose_is_service_account(ks->purpose) && !km_alg_kubernetes(ks->alg)) {
		snprintf(err, errlen, "purpose service-account-token needs RS256, ES256, ES384 or "
		         "ES512 (what kube-apiserver accepts), not %s", info->name);
		return KM_EALG;
	}
	/* A key set its token cannot serve is refused before anything is written: the message
	 * names the module, the missing mechanism and what the token can do. A token that cannot
	 * be opened now does not stop the key set (keymgr(1): its key is made later). */
	km_token_t *t = NULL;
	char terr[256];
	if (km_env_token(env, &t, terr, sizeof(terr)) == KM_EOK &&
	    (r = km_token_alg_check(t, ks->alg, ks->rsa_bits, err, errlen)) != KM_EOK)
		return r;

	/* Every recorded change holds the change lock from here, for its time rule too: never
	 * recorded before the newest change (km_store_change_lock_at, docs/reconcile.md). */
	km_store_t *s = km_env_store(env);
	if ((r = km_store_change_lock_at(s, "keyset create", KM_STORE_CHANGE_WAIT_MS, &now, err,
	                                 errlen)) != KM_EOK)
		return r;
	if ((r = km_store_begin(s, err, errlen)) != KM_EOK)
		goto unlock;
	/* A duplicate is reported as such, not as a clash of purposes with itself. */
	km_store_keyset_t existing;
	if (km_store_keyset_get(s, ks->name, &existing, NULL, 0) == KM_EOK) {
		snprintf(err, errlen, "key set %s/%s already exists", km_env_name(env), ks->name);
		r = KM_EEXIST;
		goto fail;
	}
	if (pol.require_distinct_purpose) {
		km_store_keyset_filter_t f = { .purpose = ks->purpose };
		km_store_keyset_t *same = NULL;
		size_t n = 0;
		r = km_store_keyset_list(s, &f, &same, &n, err, errlen);
		if (r == KM_EOK && n > 0) {
			snprintf(err, errlen, "key set %s/%s already has purpose '%s' and the policy "
			         "requires a distinct purpose per key set", km_env_name(env),
			         same[0].name, ks->purpose);
			r = KM_POLICY_EDENIED;
		}
		km_store_keysets_free(same);
		if (r != KM_EOK)
			goto fail;
	}
	km_store_keyset_t rec = *ks;
	snprintf(rec.env, sizeof(rec.env), "%s", km_env_name(env));
	snprintf(rec.created_by, sizeof(rec.created_by), "%s", who);
	rec.created_at = now;
	if ((r = km_store_keyset_create(s, &rec, NULL, err, errlen)) != KM_EOK)
		goto fail;
	r = km_store_commit(s, err, errlen);
	goto unlock;
fail:
	km_store_rollback(s, NULL, 0);
unlock:
	km_store_change_unlock(s);
	return r;
}

static int keyset_set(km_env_t *env, const char *keyset, km_policy_field_t field,
                      const char *value, const char *who, int64_t now, const char *reason,
                      km_keyset_change_t *ret, char *err, size_t errlen)
{
	bool owner = field == KM_POLICY_F_OWNERS;
	const char *what = owner ? "owner" : "purpose";
	int refused = owner ? KM_EOWNER : KM_EPURPOSE;
	const char *e = km_env_name(env);
	char allowed[512], key[256];
	km_keyset_change_t res;
	memset(&res, 0, sizeof(res));
	if (reason == NULL || reason[0] == '\0') {
		snprintf(err, errlen, "%s changes are recorded with a reason (--reason TEXT)", what);
		return KM_EINVAL;
	}
	if (owner ? !km_name_owner_valid(value) : !km_name_purpose_valid(value)) {
		if (owner)
			snprintf(err, errlen, "invalid owner '%.64s': use 1 to %d of letters, digits and "
			         ". _ @ + : -", value, KM_OWNER_MAX);
		else
			snprintf(err, errlen, "unknown purpose '%.64s': use one of %s, or a custom "
			         "lowercase slug the policy lists", value, km_purpose_builtin_list());
		return refused;
	}
	km_store_t *s = km_env_store(env);
	km_store_keyset_t ks;
	int r = km_store_keyset_get(s, keyset, &ks, err, errlen);
	if (r == KM_ENOENT)
		snprintf(err, errlen, "unknown key set %s/%s", e, keyset);
	if (r != KM_EOK)
		return r;
	km_policy_t pol;
	if ((r = km_env_keyset_policy(env, keyset, &pol)) != KM_EOK)
		return r;
	if (owner ? !km_policy_owner_allowed(&pol, value) : !km_policy_purpose_allowed(&pol, value)) {
		snprintf(err, errlen, "%s '%s' is not allowed by the policy of environment '%s': "
		         "allowed are %s (set by %s)", what, value, e,
		         km_policy_allowed_text(&pol, field, allowed, sizeof(allowed)),
		         km_policy_config_key(&pol, field, e, keyset, key, sizeof(key)));
		return refused;
	}
	res.changed = strcmp(owner ? ks.owner : ks.purpose, value) != 0;
	if ((r = km_store_change_lock_at(s, owner ? "keyset set-owner" : "keyset set-purpose",
	                                 KM_STORE_CHANGE_WAIT_MS, &now, err, errlen)) != KM_EOK)
		return r;
	r = owner ? km_store_keyset_set_owner(s, keyset, value, who, now, reason, err, errlen)
	          : km_store_keyset_set_purpose(s, keyset, value, who, now, reason, err, errlen);
	km_store_change_unlock(s);
	if (r != KM_EOK)
		return r;
	km_store_key_t active;
	if (!owner && km_store_key_active(s, keyset, &active, NULL, 0) == KM_EOK &&
	    strcmp(active.purpose, value) != 0) {
		snprintf(res.stale_kid, sizeof(res.stale_kid), "%s", active.kid);
		snprintf(res.stale_purpose, sizeof(res.stale_purpose), "%s", active.purpose);
	}
	if (ret != NULL)
		*ret = res;
	return KM_EOK;
}

int km_keyset_set_owner(km_env_t *env, const char *keyset, const char *owner, const char *who,
                        int64_t now, const char *reason, km_keyset_change_t *ret, char *err,
                        size_t errlen)
{
	return keyset_set(env, keyset, KM_POLICY_F_OWNERS, owner, who, now, reason, ret, err,
	                  errlen);
}

int km_keyset_set_purpose(km_env_t *env, const char *keyset, const char *purpose,
                          const char *who, int64_t now, const char *reason,
                          km_keyset_change_t *ret, char *err, size_t errlen)
{
	return keyset_set(env, keyset, KM_POLICY_F_PURPOSES, purpose, who, now, reason, ret, err,
	                  errlen);
}

int km_key_lookup(km_env_t *env, const char *kid, km_store_key_t *ret, char *err,
                  size_t errlen)
{
	if (!km_name_kid_valid(kid))
		return km_env_explain_unknown_kid(env, kid, err, errlen);
	int r = km_store_key_get(km_env_store(env), kid, ret, err, errlen);
	if (r == KM_ENOENT)
		return km_env_explain_unknown_kid(env, kid, err, errlen);
	return r;
}

/* The token of env, and a check that a key recorded in env lives in that very token. */
static int key_token(km_env_t *env, const km_store_key_t *k, km_token_t **ret, char *err,
                     size_t errlen)
{
	km_token_t *t = NULL;
	int r = km_env_token(env, &t, err, errlen);
	if (r != KM_EOK)
		return r;
	km_token_info_t info;
	km_token_get_info(t, &info);
	if (k != NULL && k->token_serial[0] != '\0' && strcmp(k->token_serial, info.serial) != 0) {
		snprintf(err, errlen, "key %s was made in token serial %s, but environment '%s' "
		         "uses token serial %s: refused", k->kid, k->token_serial, km_env_name(env),
		         info.serial);
		return KM_EWRONGENV;
	}
	*ret = t;
	return KM_EOK;
}

/* The "token.exception" event of key k (canonical JSON after), or NULL when out of memory. */
static char *exception_event(const km_store_key_t *k, const km_token_info_t *info,
                             const km_token_caps_t *caps)
{
	char hex[2 * KM_STORE_CKA_ID_MAX + 1];
	km_cjson_t b;
	km_hex_encode(k->cka_id, k->cka_id_len, hex, sizeof(hex));
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_kv_str(&b, "cka_id", hex);
	km_cjson_kv_str(&b, "exception", caps->exception);
	km_cjson_kv_str(&b, "quirk", caps->quirk);
	km_cjson_kv_str(&b, "token_label", info->label);
	km_cjson_kv_str(&b, "token_serial", info->serial);
	km_cjson_close(&b, '}');
	return km_cjson_take(&b);
}

int km_key_confirm(km_env_t *env, km_token_t *t, const km_store_key_t *k, const char *kid,
                   const char *jwk, int64_t now, char *err, size_t errlen)
{
	km_store_t *s = km_env_store(env);
	km_token_caps_t caps;
	km_token_info_t info;
	km_token_get_caps(t, &caps);
	if (caps.exception[0] == '\0')
		return km_store_key_confirm(s, k->cka_id, k->cka_id_len, kid, jwk, now, err, errlen);
	km_token_get_info(t, &info);
	char *after = exception_event(k, &info, &caps);
	if (after == NULL) {
		snprintf(err, errlen, "out of memory");
		return KM_ENOMEM;
	}
	/* One transaction: a key of such a token is never confirmed without its record. */
	int r = km_store_begin(s, err, errlen);
	if (r == KM_EOK)
		r = km_store_key_confirm(s, k->cka_id, k->cka_id_len, kid, jwk, now, err, errlen);
	if (r == KM_EOK)
		r = km_store_audit_append(s, "token.exception", k->keyset, kid, NULL, after,
		                          "recorded exception of the token: accepted, signs only",
		                          now, NULL, err, errlen);
	if (r == KM_EOK)
		r = km_store_commit(s, err, errlen);
	else
		km_store_rollback(s, NULL, 0);
	free(after);
	return r;
}

/*
 * A failed generation whose intent could not be abandoned either (the store became unwritable
 * in between, e.g. its disk filled up): the row stays pending, which reconcile recognises.
 */
static void note_left_pending(km_env_t *env, char *err, size_t errlen)
{
	size_t used = strlen(err);
	if (used < errlen)
		snprintf(err + used, errlen - used, " (its intent stays pending in the store: "
		         "`keymgr reconcile %s` abandons it once the store is writable)",
		         km_env_name(env));
}

/*
 * A new CKA_ID for k: 20 bytes, or the shorter length token t keeps, then drawn again while
 * the store already has a row with it (2-byte ids repeat; abandoned rows keep theirs).
 */
static int new_cka_id(km_store_t *s, km_token_t *t, km_store_key_t *k, char *err,
                      size_t errlen)
{
	for (int tries = 0; tries < 32; tries++) {
		km_store_key_t row;
		int r = km_token_new_id_for(t, k->cka_id, &k->cka_id_len);
		if (r != KM_EOK) {
			const char *why = km_token_last_error(t);
			snprintf(err, errlen, "cannot draw a new key ID: %s",
			         why && why[0] ? why : km_strerror(r));
			return r;
		}
		r = km_store_key_get_by_cka_id(s, k->cka_id, k->cka_id_len, &row, err, errlen);
		if (r == KM_ENOENT)
			return KM_EOK;
		if (r != KM_EOK)
			return r;
	}
	snprintf(err, errlen, "no key ID of %zu bytes free in the store after 32 draws",
	         k->cka_id_len);
	return KM_EEXIST;
}

/* A new key row of keyset for the intent: the token it goes into, generated at now. */
static void key_row_init(km_store_key_t *k, const char *keyset, const km_token_info_t *info,
                         int64_t now)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->keyset, sizeof(k->keyset), "%s", keyset);
	snprintf(k->token_label, sizeof(k->token_label), "%s", info->label);
	snprintf(k->token_serial, sizeof(k->token_serial), "%s", info->serial);
	for (int i = 0; i < KM_STATE_COUNT; i++)
		k->state_at[i] = KM_STORE_TIME_NONE;
	k->state_at[KM_STATE_GENERATED] = now;
}

/*
 * Steps 1 and 2 on a token that assigns CKA_IDs itself (kmsp11 refuses a CKA_ID in a keygen
 * template): the id exists only once the token made the pair, so the pair comes first, its id
 * is recorded as the intent at once (the store's UNIQUE CKA_ID refuses one it already has),
 * and only then is the pair checked and test-signed, as reconcile would check it. A crash
 * between the generation and the intent leaves a pair the store does not name (not ours to
 * reconcile: docs/hsm-compat.md). k holds the row (key_row_init); writes the id into it and
 * the public key into *pub.
 */
static int generate_assigned(km_env_t *env, km_token_t *t, const km_store_keyset_t *ks,
                             const char *label, km_store_key_t *k, km_pubkey_t *pub, char *err,
                             size_t errlen)
{
	km_store_t *s = km_env_store(env);
	int r = km_token_generate_assigned(t, ks->alg, ks->rsa_bits, label, k->cka_id,
	                                   &k->cka_id_len);
	if (r == KM_EOK && (r = km_store_key_intent(s, k, NULL, err, errlen)) != KM_EOK) {
		km_token_destroy(t, k->cka_id, k->cka_id_len);
		return r;
	}
	if (r == KM_EOK) {
		KM_FAULT_POINT("generate.after_intent");
		if ((r = km_token_check_key(t, k->cka_id, k->cka_id_len, ks->alg, pub)) == KM_EOK)
			return KM_EOK;
	}
	const char *why = km_token_last_error(t);
	snprintf(err, errlen, "environment '%s': key generation without a CKA_ID (for a token "
	         "that assigns it) failed: %s", km_env_name(env), why && why[0] ? why :
	         km_strerror(r));
	if (k->cka_id_len == 0)
		return r;
	km_token_destroy(t, k->cka_id, k->cka_id_len);
	if (km_store_key_abandon(s, k->cka_id, k->cka_id_len, k->state_at[KM_STATE_GENERATED],
	                         "token failed to generate the key", NULL, 0) != KM_EOK)
		note_left_pending(env, err, errlen);
	return r;
}

static int key_generate(km_env_t *env, const char *keyset, int64_t now, km_store_key_t *ret,
                        char *err, size_t errlen)
{
	km_store_t *s = km_env_store(env);
	km_store_keyset_t ks;
	int r = km_store_keyset_get(s, keyset, &ks, err, errlen);
	if (r != KM_EOK)
		return r;
	km_policy_t pol;
	if ((r = km_env_keyset_policy(env, keyset, &pol)) != KM_EOK)
		return r;
	if (!km_policy_alg_allowed(&pol, ks.alg, ks.rsa_bits)) {
		snprintf(err, errlen, "the policy of %s/%s no longer allows %s%s: refusing to "
		         "generate a key", km_env_name(env), keyset, km_alg_name(ks.alg),
		         km_alg_info(ks.alg)->kty == KM_KTY_RSA ? " at this size" : "");
		return KM_POLICY_EDENIED;
	}

	km_token_t *t = NULL;
	if ((r = key_token(env, NULL, &t, err, errlen)) != KM_EOK)
		return r;
	if ((r = km_token_alg_check(t, ks.alg, ks.rsa_bits, err, errlen)) != KM_EOK)
		return r;
	km_token_info_t info;
	km_token_get_info(t, &info);

	/* 1. intent: the CKA_ID is on record before the token holds anything. A token that cut
	 * the id (YubiHSM 2 keeps 2 bytes) refused the first key; once more with an id of the
	 * length it keeps. A token that refused every template with a CKA_ID may choose the id
	 * itself (kmsp11): generate_assigned. */
	km_store_key_t k;
	char label[128];
	km_pubkey_t pub;
	km_key_label(km_env_name(env), keyset, label, sizeof(label));
	bool assigned = km_token_assigns_ids(t), known = assigned;
	for (int attempt = 0; !assigned; attempt++) {
		size_t id_len_before = km_token_id_len(t);
		key_row_init(&k, keyset, &info, now);
		if ((r = new_cka_id(s, t, &k, err, errlen)) != KM_EOK)
			return r;
		if ((r = km_store_key_intent(s, &k, NULL, err, errlen)) != KM_EOK)
			return r;
		KM_FAULT_POINT("generate.after_intent");

		/* 2. the token creates the pair. */
		r = km_token_generate_with_id(t, ks.alg, ks.rsa_bits, label, k.cka_id, k.cka_id_len,
		                              &pub);
		if (r == KM_EOK)
			break;
		const char *why = km_token_last_error(t);
		snprintf(err, errlen, "environment '%s': key generation failed: %s",
		         km_env_name(env), why && why[0] ? why : km_strerror(r));
		if (km_store_key_abandon(s, k.cka_id, k.cka_id_len, now,
		                         "token failed to generate the key", NULL, 0) != KM_EOK) {
			note_left_pending(env, err, errlen);
			return r;
		}
		if (attempt > 0 || km_token_id_len(t) == id_len_before) {
			/* Only a template refusal (KM_EINVAL) may be a token that sets ids itself. */
			if (r != KM_EINVAL)
				return r;
			assigned = true;
			continue;
		}
		/* Learned: kept for the next process. Not kept, it is only learned again. */
		(void)km_env_token_learned(env, t, NULL, 0);
	}
	if (assigned) {
		/* After refusals with an id: say both, the token may have refused for another
		 * reason (km_token_assigns_ids() is still false then). */
		char first[512] = "";
		if (!km_token_assigns_ids(t))
			snprintf(first, sizeof(first), "%s", err);
		key_row_init(&k, keyset, &info, now);
		if ((r = generate_assigned(env, t, &ks, label, &k, &pub, err, errlen)) != KM_EOK) {
			if (first[0] != '\0') {
				char second[512];
				snprintf(second, sizeof(second), "%s", err);
				snprintf(err, errlen, "%s; %s", first, second);
			}
			return r;
		}
		if (!known)   /* learned: the next process generates without an id at once */
			(void)km_env_token_learned(env, t, NULL, 0);
	}

	KM_FAULT_POINT("generate.after_token");
	/* 3. kid and public JWK, then confirmation. */
	json_t *jwk = NULL;
	char *jwk_text = NULL;
	if ((r = km_jwk_from_pubkey(&pub, ks.alg, &jwk)) != KM_EOK) {
		snprintf(err, errlen, "the token returned a public key keymgr cannot encode");
		goto undo;
	}
	const char *kid = json_string_value(json_object_get(jwk, "kid"));
	jwk_text = json_dumps(jwk, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (kid == NULL || jwk_text == NULL) {
		r = KM_ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto undo;
	}
	if ((r = km_env_kid_unique(env, kid, err, errlen)) != KM_EOK)
		goto undo;
	if ((r = km_key_confirm(env, t, &k, kid, jwk_text, now, err, errlen)) != KM_EOK)
		goto undo;
	KM_FAULT_POINT("generate.after_confirm");
	if (ret != NULL)
		r = km_store_key_get(s, kid, ret, err, errlen);
	json_decref(jwk);
	free(jwk_text);
	return r;
undo:
	km_token_destroy(t, k.cka_id, k.cka_id_len);
	if (km_store_key_abandon(s, k.cka_id, k.cka_id_len, now,
	                         "generated key could not be recorded", NULL, 0) != KM_EOK)
		note_left_pending(env, err, errlen);
	json_decref(jwk);
	free(jwk_text);
	return r;
}

int km_key_set_state(km_env_t *env, const char *kid, km_state_t to, int64_t now,
                     const char *reason, char *err, size_t errlen)
{
	km_store_key_t k;
	int r = km_key_lookup(env, kid, &k, err, errlen);
	if (r != KM_EOK)
		return r;
	if (to == KM_STATE_ACTIVE)
		return km_key_activate(env, kid, now, err, errlen);
	if (to == KM_STATE_DESTROYED)
		return km_key_destroy(env, kid, now, err, errlen);
	km_store_t *s = km_env_store(env);
	if ((r = km_store_change_lock_at(s, "key state", KM_STORE_CHANGE_WAIT_MS, &now, err,
	                                 errlen)) != KM_EOK)
		return r;
	r = km_store_key_transition(s, kid, to, now, reason, err, errlen);
	km_store_change_unlock(s);
	return r;
}

static int key_activate(km_env_t *env, const char *kid, int64_t now, char *err,
                        size_t errlen);

int km_key_activate(km_env_t *env, const char *kid, int64_t now, char *err, size_t errlen)
{
	km_store_t *s = km_env_store(env);
	km_store_key_t k;
	int r = km_key_lookup(env, kid, &k, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = km_store_change_lock_at(s, "activate", KM_STORE_CHANGE_WAIT_MS, &now, err,
	                                 errlen)) != KM_EOK)
		return r;
	r = key_activate(env, kid, now, err, errlen);
	km_store_change_unlock(s);
	return r;
}

static int key_activate(km_env_t *env, const char *kid, int64_t now, char *err, size_t errlen)
{
	km_store_t *s = km_env_store(env);
	km_store_key_t k, cur;
	int r = km_key_lookup(env, kid, &k, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = km_store_begin(s, err, errlen)) != KM_EOK)
		return r;
	/* Re-read inside the write transaction: another process may have moved it. */
	if ((r = km_store_key_get(s, kid, &k, err, errlen)) != KM_EOK)
		goto fail;
	if (k.state != KM_STATE_PUBLISHED) {
		r = km_state_check_transition(k.state, KM_STATE_ACTIVE, err, (unsigned)errlen);
		if (r == KM_EOK) {
			snprintf(err, errlen, "key %s is %s, not published", kid, km_state_name(k.state));
			r = KM_ETRANSITION;
		}
		goto fail;
	}
	r = km_store_key_active(s, k.keyset, &cur, err, errlen);
	if (r == KM_EOK) {
		r = km_store_key_transition(s, cur.kid, KM_STATE_RETIRED, now,
		                            "superseded by a new active key", err, errlen);
		if (r != KM_EOK)
			goto fail;
	} else if (r != KM_ENOACTIVE) {
		goto fail;
	}
	if ((r = km_store_key_transition(s, kid, KM_STATE_ACTIVE, now, NULL, err, errlen)) != KM_EOK)
		goto fail;
	KM_FAULT_POINT("activate.before_commit");
	if ((r = km_store_commit(s, err, errlen)) != KM_EOK)
		return r;
	KM_FAULT_POINT("activate.after_commit");
	return KM_EOK;
fail:
	km_store_rollback(s, NULL, 0);
	return r;
}

static int key_destroy(km_env_t *env, const char *kid, int64_t now, char *err, size_t errlen)
{
	km_store_key_t k;
	int r = km_key_lookup(env, kid, &k, err, errlen);
	if (r != KM_EOK)
		return r;
	if (!km_state_transition_ok(k.state, KM_STATE_DESTROYED)) {
		km_state_check_transition(k.state, KM_STATE_DESTROYED, err, (unsigned)errlen);
		return KM_ETRANSITION;
	}
	km_token_t *t = NULL;
	if ((r = key_token(env, &k, &t, err, errlen)) != KM_EOK)
		return r;
	r = km_token_destroy(t, k.cka_id, k.cka_id_len);
	if (r != KM_EOK && r != KM_P11_ENOKEY) {
		const char *why = km_token_last_error(t);
		snprintf(err, errlen, "environment '%s': cannot destroy key %s in the token: %s",
		         km_env_name(env), kid, why && why[0] ? why : km_strerror(r));
		return r;
	}
	KM_FAULT_POINT("destroy.after_token");
	return km_store_key_transition(km_env_store(env), kid, KM_STATE_DESTROYED, now,
	                               r == KM_P11_ENOKEY ? "token objects were already gone" : NULL,
	                               err, errlen);
}

/*
 * The multi-step changes run under the environment's change lock (keymgr/store/change_lock.h):
 * a generation's intent is never judged by a concurrent reconcile, two destroys never race.
 */
int km_key_generate(km_env_t *env, const char *keyset, int64_t now, km_store_key_t *ret,
                    char *err, size_t errlen)
{
	km_store_t *s = km_env_store(env);
	int r = km_store_change_lock_at(s, "generate", KM_STORE_CHANGE_WAIT_MS, &now, err,
	                                 errlen);
	if (r != KM_EOK)
		return r;
	r = key_generate(env, keyset, now, ret, err, errlen);
	km_store_change_unlock(s);
	return r;
}

int km_key_destroy(km_env_t *env, const char *kid, int64_t now, char *err, size_t errlen)
{
	km_store_t *s = km_env_store(env);
	int r = km_store_change_lock_at(s, "destroy", KM_STORE_CHANGE_WAIT_MS, &now, err,
	                                 errlen);
	if (r != KM_EOK)
		return r;
	r = key_destroy(env, kid, now, err, errlen);
	km_store_change_unlock(s);
	return r;
}

int km_env_jwks(km_env_t *env, const char *keyset, char **ret, size_t *len, char *err,
                size_t errlen)
{
	km_store_key_filter_t f = km_store_jwks_filter(keyset);
	km_store_key_t *keys = NULL;
	size_t n = 0;
	int r = km_store_keys_query(km_env_store(env), &f, &keys, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	r = km_doc_jwks(keys, n, NULL, ret, len, err, errlen);
	km_store_keys_free(keys);
	return r;
}
