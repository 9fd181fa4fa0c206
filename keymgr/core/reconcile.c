/* SPDX-License-Identifier: Apache-2.0 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"
#include "keymgr/core/key_owner.h"
#include "keymgr/core/keyops.h"
#include "keymgr/core/reconcile.h"
#include "keymgr/jose/jwk.h"
#include "keymgr/store/change_lock.h"

static const char *const kind_names[] = {
	[KM_RECON_ADOPT] = "adopt",
	[KM_RECON_ABANDON] = "abandon",
	[KM_RECON_DESTROYED] = "destroyed",
	[KM_RECON_PURGE] = "purge",
	[KM_RECON_REVOKE_MISSING] = "revoke-missing",
	[KM_RECON_MISSING] = "missing",
	[KM_RECON_QUARANTINE] = "quarantine",
	[KM_RECON_UNSAFE] = "unsafe",
};

const char *km_recon_kind_name(km_recon_kind_t kind)
{
	if ((unsigned)kind >= sizeof(kind_names) / sizeof(kind_names[0]))
		return "unknown";
	return kind_names[kind];
}

#define REASON_MISSING "missing from token (reconcile)"

/* Everything one run needs. */
typedef struct {
	km_env_t *env;
	km_store_t *store;
	km_token_t *token;
	int64_t now;
	const km_recon_opts_t *o;
	km_recon_summary_t sum;
	km_token_privkey_t *priv;      /* every private key object of the token */
	size_t n_priv;
} recon_t;

static bool remove_unsafe(const recon_t *c)
{
	return c->o != NULL && c->o->remove_unsafe;
}

/* Reports one finding and counts it. obj: the UNSAFE private key object, else NULL. */
static void report(recon_t *c, km_recon_kind_t kind, const km_store_key_t *k,
                   const uint8_t *id, size_t id_len, const km_token_privkey_t *obj, bool applied,
                   int result, const char *detail)
{
	char idhex[2 * KM_TOKEN_ID_MAX + 1] = "";
	km_hex_encode(id, id_len, idhex, sizeof(idhex));
	/* An unsafe key a record holds is the operator's to revoke; one no record holds is
	 * removed only when the operator asked. */
	bool attention = kind == KM_RECON_MISSING || kind == KM_RECON_QUARANTINE ||
	                 (kind == KM_RECON_UNSAFE && (k != NULL || !remove_unsafe(c)));
	km_recon_event_t ev = {
		.env = km_env_name(c->env),
		.kind = kind,
		.keyset = k ? k->keyset : "",
		.kid = k ? k->kid : "",
		.cka_id = idhex,
		.state = k && k->keyset[0] ? km_state_name(k->state) : "",
		.detail = detail,
		.object = obj,
		.repair = !attention,
		.attention = attention,
		.applied = applied,
		.result = result,
	};
	if (attention)
		c->sum.attention++;
	else if (result != KM_EOK)
		c->sum.failed++;
	else
		c->sum.repaired++;
	if (c->o != NULL && c->o->report != NULL)
		c->o->report(c->o->ctx, &ev);
}

static const km_token_key_info_t *find_obj(const km_token_key_info_t *objs, size_t n,
                                           const uint8_t *id, size_t id_len)
{
	for (size_t i = 0; i < n; i++)
		if (objs[i].id_len == id_len && memcmp(objs[i].id, id, id_len) == 0)
			return &objs[i];
	return NULL;
}

static bool dry(const recon_t *c)
{
	return c->o != NULL && c->o->dry_run;
}

static void refuse_pending(recon_t *c, const km_store_key_t *k, const char *why);

/*
 * A pending intent whose pair exists: checked as a new key is (km_token_check_key: attributes
 * read back, test signature), then kid and JWK computed from the token's public key. A pair
 * that fails the checks is destroyed and its intent abandoned, as its generation would have.
 */
static void adopt(recon_t *c, const km_store_key_t *k)
{
	char msg[512] = "", detail[1536];
	km_pubkey_t pub;
	json_t *jwk = NULL;
	char *text = NULL;
	const char *kid = NULL;
	int r = km_token_check_key(c->token, k->cka_id, k->cka_id_len, k->alg, &pub);
	if (r == KM_P11_EKEYREFUSED) {
		refuse_pending(c, k, km_token_last_error(c->token));
		return;
	}
	if (r != KM_EOK) {
		const char *why = km_token_last_error(c->token);
		snprintf(msg, sizeof(msg), "cannot check its key pair: %s",
		         why && why[0] ? why : km_strerror(r));
		goto out;
	}
	if ((r = km_jwk_from_pubkey(&pub, k->alg, &jwk)) != KM_EOK) {
		snprintf(msg, sizeof(msg), "the token's key does not fit algorithm %s: %s",
		         km_alg_name(k->alg), km_strerror(r));
		goto out;
	}
	kid = json_string_value(json_object_get(jwk, "kid"));
	text = json_dumps(jwk, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (kid == NULL || text == NULL) {
		r = KM_ENOMEM;
		snprintf(msg, sizeof(msg), "out of memory");
		goto out;
	}
	if ((r = km_env_kid_unique(c->env, kid, msg, sizeof(msg))) != KM_EOK)
		goto out;
	if (!dry(c))
		r = km_key_confirm(c->env, c->token, k, kid, text, c->now, msg, sizeof(msg));
out:;
	km_store_key_t shown = *k;
	if (kid != NULL)
		snprintf(shown.kid, sizeof(shown.kid), "%s", kid);
	if (r == KM_EOK)
		snprintf(detail, sizeof(detail), "pending intent of %s: the token holds the key "
		         "pair, %s as kid %s (state generated)", k->keyset,
		         dry(c) ? "would confirm it" : "confirmed it", kid);
	else
		snprintf(detail, sizeof(detail), "pending intent of %s: the token holds the key "
		         "pair, but it cannot be adopted: %s", k->keyset, msg);
	report(c, KM_RECON_ADOPT, &shown, k->cka_id, k->cka_id_len, NULL, r == KM_EOK && !dry(c),
	       r, detail);
	json_decref(jwk);
	free(text);
}

/*
 * A pending intent the token never acted on, or (unsafe not NULL) one whose private key the
 * token made unsafe: never adopted; its objects are purged like any abandoned intent's.
 */
static void abandon(recon_t *c, const km_store_key_t *k, const km_token_privkey_t *unsafe)
{
	char msg[512] = "", detail[1536], what[600] = "the token has no object with its CKA_ID";
	int r = KM_EOK;
	if (unsafe != NULL)
		snprintf(what, sizeof(what), "the token's private key with its CKA_ID is not safe "
		         "(%s)", km_token_privkey_describe(unsafe, msg, sizeof(msg)));
	if (!dry(c))
		r = km_store_key_abandon(c->store, k->cka_id, k->cka_id_len, c->now, unsafe
		                         ? "reconcile: the token's private key is not safe"
		                         : "reconcile: the token has no object with this CKA_ID",
		                         msg, sizeof(msg));
	if (r == KM_EOK)
		snprintf(detail, sizeof(detail), "pending intent of %s: %s, %s", k->keyset, what,
		         dry(c) ? "would abandon it" : "abandoned it");
	else
		snprintf(detail, sizeof(detail), "pending intent of %s: cannot abandon it: %s",
		         k->keyset, msg);
	report(c, KM_RECON_ABANDON, k, k->cka_id, k->cka_id_len, NULL, r == KM_EOK && !dry(c), r,
	       detail);
}

/*
 * A pending intent whose pair fails keymgr's checks (an unsafe key a crash left before its
 * generation confirmed it): the pair is destroyed and the intent abandoned, with why.
 */
static void refuse_pending(recon_t *c, const km_store_key_t *k, const char *why)
{
	char msg[512] = "", reason[KM_STORE_TEXT_MAX + 1], detail[1536];
	int r = KM_EOK;
	snprintf(reason, sizeof(reason), "reconcile: the key pair failed keymgr's checks: %s",
	         why);
	if (!dry(c)) {
		r = km_token_destroy(c->token, k->cka_id, k->cka_id_len);
		if (r == KM_P11_ENOKEY)
			r = KM_EOK;
		if (r != KM_EOK)
			snprintf(msg, sizeof(msg), "cannot destroy it: %s",
			         km_token_last_error(c->token));
		else
			r = km_store_key_abandon(c->store, k->cka_id, k->cka_id_len, c->now, reason, msg,
			                         sizeof(msg));
	}
	if (r == KM_EOK)
		snprintf(detail, sizeof(detail), "pending intent of %s: the token holds the key "
		         "pair, but it fails keymgr's checks (%s): %s", k->keyset, why,
		         dry(c) ? "would destroy it and abandon the intent" :
		                  "destroyed it and abandoned the intent");
	else
		snprintf(detail, sizeof(detail), "pending intent of %s: the token holds the key "
		         "pair, but it fails keymgr's checks (%s), and the repair failed: %s",
		         k->keyset, why, msg);
	report(c, KM_RECON_ABANDON, k, k->cka_id, k->cka_id_len, NULL, r == KM_EOK && !dry(c), r,
	       detail);
}

/*
 * Records 'destroyed' for a row whose private key is gone (revoking first when needed).
 * Leftovers (a public key whose private key was destroyed by a crash between the two
 * C_DestroyObject calls) are destroyed first.
 */
static void record_gone(recon_t *c, const km_store_key_t *k, km_recon_kind_t kind,
                        bool leftovers)
{
	char msg[512] = "", detail[1536];
	int r = KM_EOK;
	if (!dry(c) && leftovers) {
		r = km_token_destroy(c->token, k->cka_id, k->cka_id_len);
		if (r == KM_P11_ENOKEY)
			r = KM_EOK;
		if (r != KM_EOK)
			snprintf(msg, sizeof(msg), "cannot destroy its leftover objects: %s",
			         km_token_last_error(c->token));
	}
	if (!dry(c) && r == KM_EOK && kind == KM_RECON_REVOKE_MISSING)
		r = km_store_key_transition(c->store, k->kid, KM_STATE_REVOKED, c->now, REASON_MISSING,
		                            msg, sizeof(msg));
	if (!dry(c) && r == KM_EOK)
		r = km_store_key_transition(c->store, k->kid, KM_STATE_DESTROYED, c->now,
		                            "token objects were already gone (reconcile)", msg,
		                            sizeof(msg));
	const char *done = kind == KM_RECON_REVOKE_MISSING
	                   ? (dry(c) ? "would revoke it (never to be activated) and record it "
	                               "destroyed" : "revoked it (never to be activated) and "
	                               "recorded it destroyed")
	                   : (dry(c) ? "would record it destroyed" : "recorded it destroyed");
	if (r == KM_EOK)
		snprintf(detail, sizeof(detail), "%s key %s of %s: its private key is gone from the "
		         "token%s, %s", km_state_name(k->state), k->kid, k->keyset,
		         leftovers ? " (leftover public key destroyed)" : "", done);
	else
		snprintf(detail, sizeof(detail), "%s key %s of %s: its private key is gone from the "
		         "token, but the repair failed: %s", km_state_name(k->state), k->kid,
		         k->keyset, msg);
	report(c, kind, k, k->cka_id, k->cka_id_len, NULL, r == KM_EOK && !dry(c), r, detail);
}

/* Destroys objects that a destroyed or abandoned row says must not exist. */
static void purge(recon_t *c, const km_store_key_t *k)
{
	char detail[1536];
	int r = KM_EOK;
	if (!dry(c)) {
		r = km_token_destroy(c->token, k->cka_id, k->cka_id_len);
		if (r == KM_P11_ENOKEY)
			r = KM_EOK;
	}
	const char *what = k->kid[0] ? "destroyed key" : "abandoned intent";
	if (r == KM_EOK)
		snprintf(detail, sizeof(detail), "%s %s of %s still has token objects: %s", what,
		         k->kid[0] ? k->kid : "(no kid)", k->keyset,
		         dry(c) ? "would destroy them" : "destroyed them");
	else
		snprintf(detail, sizeof(detail), "%s %s of %s still has token objects that cannot "
		         "be destroyed: %s", what, k->kid[0] ? k->kid : "(no kid)", k->keyset,
		         km_token_last_error(c->token));
	report(c, KM_RECON_PURGE, k, k->cka_id, k->cka_id_len, NULL, r == KM_EOK && !dry(c), r,
	       detail);
}

static void missing(recon_t *c, const km_store_key_t *k)
{
	char detail[1536];
	if (k->state == KM_STATE_ACTIVE)
		snprintf(detail, sizeof(detail), "ACTIVE key %s of %s is missing from the token: "
		         "signing with %s fails until it is replaced; run `keymgr rotate %s/%s "
		         "--now --force` (it retires the key, which keeps verifying, and activates a "
		         "new one)", k->kid, k->keyset, k->keyset, km_env_name(c->env), k->keyset);
	else
		snprintf(detail, sizeof(detail), "retired key %s of %s is missing from the token: "
		         "it signs nothing and its public key (kept in the store) still verifies; "
		         "left as it is", k->kid, k->keyset);
	report(c, KM_RECON_MISSING, k, k->cka_id, k->cka_id_len, NULL, false, KM_EOK, detail);
}

/* The first unsafe private key object with this CKA_ID, or NULL. */
static const km_token_privkey_t *unsafe_with_id(const recon_t *c, const uint8_t *id,
                                                size_t id_len)
{
	for (size_t i = 0; i < c->n_priv; i++)
		if (c->priv[i].id_len == id_len && id_len > 0 &&
		    memcmp(c->priv[i].id, id, id_len) == 0 && km_token_privkey_unsafe(&c->priv[i]))
			return &c->priv[i];
	return NULL;
}

/* Decides what one row needs, given whether the token holds its objects. */
static void check_row(recon_t *c, const km_store_key_t *k, const km_token_key_info_t *obj)
{
	bool present = obj != NULL && (obj->has_private || obj->has_public);
	bool signable = obj != NULL && obj->has_private;
	if (k->pending) {
		const km_token_privkey_t *unsafe = unsafe_with_id(c, k->cka_id, k->cka_id_len);
		if (present && unsafe == NULL)
			adopt(c, k);
		else
			abandon(c, k, unsafe);
		return;
	}
	if (k->kid[0] == '\0' || k->state == KM_STATE_DESTROYED) {
		if (present)
			purge(c, k);
		return;
	}
	if (signable)
		return;
	switch (k->state) {
	case KM_STATE_REMOVED:
	case KM_STATE_REVOKED:
		record_gone(c, k, KM_RECON_DESTROYED, present);
		break;
	case KM_STATE_GENERATED:
	case KM_STATE_PUBLISHED:
		record_gone(c, k, KM_RECON_REVOKE_MISSING, present);
		break;
	default:
		missing(c, k);
		break;
	}
}

/* The kid of the audit key with p's CKA_ID ("" when not found). */
static void audit_kid_of(recon_t *c, const km_token_privkey_t *p, char *kid, size_t len)
{
	km_store_audit_key_t *keys = NULL;
	size_t n = 0;
	if (km_store_audit_keys(c->store, &keys, &n, NULL, 0) != KM_EOK)
		return;
	for (size_t i = 0; i < n; i++)
		if (keys[i].cka_id_len == p->id_len && memcmp(keys[i].cka_id, p->id, p->id_len) == 0)
			snprintf(kid, len, "%s", keys[i].kid);
	free(keys);
}

/*
 * An unsafe private key that a key's record holds (row) or the audit key (audit_kid): the
 * operator revokes and replaces it; reconcile never destroys a key a record holds.
 */
static void unsafe_held(recon_t *c, const km_token_privkey_t *p, const km_store_key_t *row,
                        const char *audit_kid)
{
	char what[600], detail[1536];
	km_token_privkey_describe(p, what, sizeof(what));
	bool out = row != NULL && (row->state == KM_STATE_REMOVED || row->state == KM_STATE_REVOKED);
	bool readable = p->sensitive == KM_TOKEN_ATTR_FALSE || p->extractable == KM_TOKEN_ATTR_TRUE ||
	                p->never_extractable == KM_TOKEN_ATTR_FALSE;
	if (row != NULL)
		snprintf(detail, sizeof(detail), "%s key %s of %s is not safe in the token (%s): %s; "
		         "%s %s --env %s%s; reconcile does not destroy a key a record holds",
		         km_state_name(row->state), row->kid, row->keyset, what, readable
		         ? "its private value may have been read" : "it can do more than sign",
		         out ? "destroy it now: keymgr destroy" : "revoke it: keymgr revoke", row->kid,
		         km_env_name(c->env), out ? "" : " --reason ...");
	else
		snprintf(detail, sizeof(detail), "the audit key %s is not safe in the token (%s): "
		         "checkpoints may be forged with it; give the audit key a token of its own "
		         "(environments.%s.audit.token: the next checkpoint makes a new audit key "
		         "there)", audit_kid, what, km_env_name(c->env));
	km_store_key_t shown;
	memset(&shown, 0, sizeof(shown));
	if (row != NULL)
		shown = *row;
	else
		snprintf(shown.kid, sizeof(shown.kid), "%s", audit_kid);
	report(c, KM_RECON_UNSAFE, &shown, p->id, p->id_len, p, false, KM_EOK, detail);
}

/* An unsafe private key no record holds: destroyed when the operator asked. */
static void unsafe_orphan(recon_t *c, const km_token_privkey_t *p)
{
	char what[600], detail[1536];
	int r = KM_EOK;
	bool removing = remove_unsafe(c);
	km_token_privkey_describe(p, what, sizeof(what));
	if (removing && !dry(c)) {
		r = km_token_destroy_private_key(c->token, p);
		/* A keymgr CKA_ID: its public half goes too (it would be quarantined). */
		if (r == KM_EOK && p->id_len == KM_TOKEN_ID_LEN &&
		    memcmp(p->id, KM_TOKEN_ID_MAGIC, KM_TOKEN_ID_MAGIC_LEN) == 0 &&
		    km_token_destroy(c->token, p->id, p->id_len) == KM_P11_ENOKEY)
			r = KM_EOK;
	}
	if (r != KM_EOK)
		snprintf(detail, sizeof(detail), "a private key that is not safe (%s) cannot be "
		         "destroyed: %s", what, km_token_last_error(c->token));
	else if (removing)
		snprintf(detail, sizeof(detail), "a private key that is not safe and that no record "
		         "knows (%s): %s", what, dry(c) ? "would destroy it" : "destroyed it");
	else
		snprintf(detail, sizeof(detail), "a private key that is not safe and that no record "
		         "knows (%s): anyone with the PIN may read or use it; run `keymgr reconcile "
		         "%s --remove-unsafe` to destroy it", what, km_env_name(c->env));
	report(c, KM_RECON_UNSAFE, NULL, p->id, p->id_len, p, removing && !dry(c) && r == KM_EOK,
	       r, detail);
}

/* Judges every unsafe private key of the token (pending intents: check_row()). */
static void check_unsafe(recon_t *c)
{
	for (size_t i = 0; i < c->n_priv; i++) {
		const km_token_privkey_t *p = &c->priv[i];
		if (!km_token_privkey_unsafe(p))
			continue;
		km_store_key_t row;
		bool audit = false;
		if (p->id_len > 0 && km_store_key_get_by_cka_id(c->store, p->id, p->id_len, &row, NULL,
		                                                0) == KM_EOK) {
			/* A pending intent is abandoned (check_row), and the objects of an abandoned
			 * or destroyed record are purged: nothing else to say. */
			if (!row.pending && row.kid[0] != '\0' && row.state != KM_STATE_DESTROYED)
				unsafe_held(c, p, &row, NULL);
			continue;
		}
		if (p->id_len > 0 && km_store_audit_key_is(c->store, p->id, p->id_len, &audit, NULL,
		                                           0) == KM_EOK && audit) {
			char kid[KM_KID_MAX + 1] = "";
			audit_kid_of(c, p, kid, sizeof(kid));
			unsafe_held(c, p, NULL, kid);
			continue;
		}
		unsafe_orphan(c, p);
	}
}

int km_reconcile_env(km_env_t *env, int64_t now, const km_recon_opts_t *o,
                     km_recon_summary_t *sum, char *err, size_t errlen)
{
	recon_t c = { .env = env, .store = km_env_store(env), .now = now, .o = o };
	km_store_key_t *rows = NULL;
	km_token_key_info_t *objs = NULL;
	size_t n_rows = 0, n_objs = 0;
	/* Under the change lock, a pending intent is a crash's leftover, never a generation in
	 * progress in another process; and two reconciles never repair the same thing twice. */
	int r = km_store_change_lock_at(c.store, dry(&c) ? "reconcile --dry-run" : "reconcile",
	                                KM_STORE_CHANGE_WAIT_MS, &c.now, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = km_env_token(env, &c.token, err, errlen)) != KM_EOK)
		goto out;
	km_token_info_t info;
	km_token_get_info(c.token, &info);
	if ((r = km_store_keys_query(c.store, NULL, &rows, &n_rows, err, errlen)) != KM_EOK)
		goto out;
	if ((r = km_token_list_keys(c.token, &objs, &n_objs)) != KM_EOK) {
		const char *why = km_token_last_error(c.token);
		snprintf(err, errlen, "environment '%s': cannot list the token's keys: %s",
		         km_env_name(env), why && why[0] ? why : km_strerror(r));
		goto out;
	}
	if ((r = km_token_list_private_keys(c.token, &c.priv, &c.n_priv)) != KM_EOK) {
		const char *why = km_token_last_error(c.token);
		snprintf(err, errlen, "environment '%s': cannot read the token's private keys: %s",
		         km_env_name(env), why && why[0] ? why : km_strerror(r));
		goto out;
	}
	for (size_t i = 0; i < n_rows; i++) {
		const km_store_key_t *k = &rows[i];
		if (k->token_serial[0] != '\0' && strcmp(k->token_serial, info.serial) != 0)
			continue; /* another token's key: not ours to judge */
		check_row(&c, k, find_obj(objs, n_objs, k->cka_id, k->cka_id_len));
	}
	check_unsafe(&c);
	for (size_t i = 0; i < n_objs; i++) {
		bool ours = false;
		if ((r = km_env_key_is_keymgrs(env, c.token, &objs[i], &ours, err, errlen)) != KM_EOK)
			goto out;
		if (!ours)
			continue; /* foreign objects are none of keymgr's business */
		if (unsafe_with_id(&c, objs[i].id, objs[i].id_len) != NULL)
			continue; /* reported (and with --remove-unsafe destroyed) as unsafe */
		km_store_key_t k;
		if (km_store_key_get_by_cka_id(c.store, objs[i].id, objs[i].id_len, &k, NULL, 0) ==
		    KM_EOK)
			continue;
		bool audit_key = false;
		if (km_store_audit_key_is(c.store, objs[i].id, objs[i].id_len, &audit_key, NULL, 0) ==
		    KM_EOK && audit_key)
			continue; /* the environment's audit (checkpoint) key, tracked by the audit log */
		char detail[1024];
		snprintf(detail, sizeof(detail), "the token holds a keymgr key pair (label '%s') "
		         "that no record of environment '%s' knows: quarantined (kept, reported on "
		         "every run); inspect it and destroy it by hand if it is not needed",
		         objs[i].label, km_env_name(env));
		report(&c, KM_RECON_QUARANTINE, NULL, objs[i].id, objs[i].id_len, NULL, false, KM_EOK,
		       detail);
	}
	r = KM_EOK;
	if (sum != NULL)
		*sum = c.sum;
out:
	free(c.priv);
	free(objs);
	km_store_keys_free(rows);
	km_store_change_unlock(c.store);
	return r;
}
