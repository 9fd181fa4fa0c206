/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key set and key operations of one environment: the thin glue between the store, the
 * token, JOSE and the policy. The CLI, `keymgr apply` and keymgrd all change keys through
 * these functions and nothing else.
 *
 * Ordering of token work and store work (docs/store.md): a new key is recorded as a pending
 * 'generated' row with its CKA_ID before the token creates it, and confirmed with its kid and
 * public JWK afterwards; a key is destroyed in the token before its row becomes 'destroyed'.
 * A crash between the two steps leaves a pending row or a removed/revoked row whose objects
 * are gone, both detectable by reconciliation.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "keymgr/core/env.h"
#include "keymgr/store/store.h"

/*
 * Creates key set ks->name after checking it against the environment's policy: algorithm
 * and RSA size allowed, owner given and allowed, purpose known and allowed, and, with
 * require_distinct_purpose, no other key set with the same purpose.
 * KM_EALG, KM_EKEYSIZE, KM_EOWNER, KM_EPURPOSE, KM_POLICY_EDENIED, and the store's codes.
 */
int km_keyset_create(km_env_t *env, const km_store_keyset_t *ks, const char *who, int64_t now,
                     char *err, size_t errlen);

/* What a key set's owner or purpose change left to say (km_keyset_set_owner/_purpose). */
typedef struct {
	bool changed;                         /* false: it already had that value */
	/* set-purpose only: the active key was made for another purpose and will not sign the
	 * new class (one key per token class): rotate. "" otherwise. */
	char stale_kid[KM_KID_MAX + 1];
	char stale_purpose[KM_PURPOSE_MAX + 1];
} km_keyset_change_t;

/*
 * Changes key set keyset's owner (or purpose) to value, recording who, when, the old and new
 * value and the reason (required) in the store and the audit log. The policy must allow the
 * new value: a refusal names the allowed values and the configuration key that sets them.
 * *ret (may be NULL) says whether it changed and, for a purpose, whether the active key was
 * made for another one. KM_EOWNER / KM_EPURPOSE (invalid or not allowed), KM_EINVAL (no
 * reason), KM_ENOENT (unknown key set, named in err), store codes.
 */
int km_keyset_set_owner(km_env_t *env, const char *keyset, const char *owner, const char *who,
                        int64_t now, const char *reason, km_keyset_change_t *ret, char *err,
                        size_t errlen);
int km_keyset_set_purpose(km_env_t *env, const char *keyset, const char *purpose,
                          const char *who, int64_t now, const char *reason,
                          km_keyset_change_t *ret, char *err, size_t errlen);

/*
 * Generates a key for keyset in the environment's token (intent, token, confirm) and leaves
 * it 'generated'. Copies the stored record into *ret (may be NULL). If the token fails, the
 * intent is abandoned (recorded as revoked with the token's error) and the code returned.
 */
int km_key_generate(km_env_t *env, const char *keyset, int64_t now, km_store_key_t *ret,
                    char *err, size_t errlen);

/*
 * Confirms the pending key k (found by its CKA_ID) as kid with the public JWK text jwk
 * (km_store_key_confirm) and, in the same store transaction, records token t's recorded
 * exception with it when t has one (km_token_caps_t.exception, e.g. tpm2-pkcs11's
 * CKA_DECRYPT=TRUE): audit action "token.exception", with the key set, the kid and after
 * {"cka_id","exception","quirk","token_label","token_serial"}. Such a key is accepted, never
 * silently: keymgr only signs with it, and `keyset show` and `policy check` warn about it
 * (compliance.h). Used by key generation and by reconcile's adoption. The store's codes.
 */
int km_key_confirm(km_env_t *env, km_token_t *t, const km_store_key_t *k, const char *kid,
                   const char *jwk, int64_t now, char *err, size_t errlen);

/*
 * Reads a key of this environment. An unknown kid is explained: KM_EWRONGENV when it belongs
 * to another environment, KM_ENOENT otherwise, KM_EINVAL for a malformed kid.
 */
int km_key_lookup(km_env_t *env, const char *kid, km_store_key_t *ret, char *err,
                  size_t errlen);

/*
 * Moves key kid to state to (published, retired, removed, revoked). Activation goes through
 * km_key_activate() and destruction through km_key_destroy(). reason is required for revoked.
 */
int km_key_set_state(km_env_t *env, const char *kid, km_state_t to, int64_t now,
                     const char *reason, char *err, size_t errlen);

/*
 * Activates published key kid and, in the same transaction, retires the key set's current
 * active key (if any), so that exactly one key signs at every instant.
 */
int km_key_activate(km_env_t *env, const char *kid, int64_t now, char *err, size_t errlen);

/*
 * Destroys a removed or revoked key: deletes its token objects, then records 'destroyed'
 * (the record stays). Refuses any other state with the lifecycle's message, and a key whose
 * token serial differs from the environment's token (KM_EWRONGENV). A key whose objects are
 * already gone from the token is recorded as destroyed.
 */
int km_key_destroy(km_env_t *env, const char *kid, int64_t now, char *err, size_t errlen);

/*
 * Renders the JWKS of the environment (keyset NULL) or of one key set: every published,
 * active and retired key, from the public JWKs in the store (each checked against its kid).
 * *ret is malloc'd (caller frees), *len optional.
 */
int km_env_jwks(km_env_t *env, const char *keyset, char **ret, size_t *len, char *err,
                size_t errlen);
