/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reconciliation: compares an environment's store with its token and completes or rolls back
 * the changes a crash left half done (docs/reconcile.md). Used by `keymgr reconcile` and at
 * keymgrd's start. Every finding is reported through a callback, applied or (dry run) not.
 *
 * What it finds and does, by the CKA_ID that ties a row to its token objects:
 *   pending intent, token holds the pair      ADOPT: read the public key, confirm kid + JWK
 *   pending intent, token holds nothing        ABANDON: the intent becomes an abandoned row
 *   removed/revoked row, objects already gone  DESTROYED: record 'destroyed' (crash between
 *                                              the token destroy and the store update)
 *   destroyed or abandoned row, objects exist  PURGE: destroy the objects (the record says
 *                                              they must not exist; they never signed since)
 *   generated/published row, objects missing   REVOKE_MISSING: revoke ("missing from token")
 *                                              and record destroyed, so it is never activated
 *   active row, objects missing                MISSING (attention): signing fails; nothing
 *                                              is changed, the operator replaces the key with
 *                                              `keymgr rotate ENV/KS --now --force`
 *   retired row, objects missing               MISSING (attention): it signs nothing and its
 *                                              public JWK (in the store) still verifies;
 *                                              nothing is changed
 *   keymgr CKA_ID in the token, no row at all  QUARANTINE (attention): reported on every run,
 *                                              never deleted, nothing recorded
 *   a private key that is not safe (not         UNSAFE: reported with its handle's attributes
 *   sensitive, extractable, not never-          (km_token_privkey_describe()); one that no
 *   extractable, or able to decrypt, unwrap     record holds is destroyed when the caller asks
 *   or derive: km_token_privkey_unsafe()),      (remove_unsafe; else attention); one a key's
 *   whoever made it                             or the audit key's record holds is attention
 *                                              only: the operator revokes and replaces it
 * A pending intent whose private key is not safe is abandoned, never adopted (its objects are
 * then purged like any abandoned intent's).
 * Rows of another token (serial differs) are left alone, and so are the environment's audit
 * (checkpoint-signing) keys, which the audit log tracks. It runs under the environment's
 * change lock (keymgr/store/change_lock.h), which every generation holds from its intent to
 * its confirmation: a pending intent it sees is a crash's leftover, never a generation in
 * progress in another process, and two reconciles never repair one thing twice.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/core/env.h"

typedef enum {
	KM_RECON_ADOPT = 0,
	KM_RECON_ABANDON,
	KM_RECON_DESTROYED,
	KM_RECON_PURGE,
	KM_RECON_REVOKE_MISSING,
	KM_RECON_MISSING,
	KM_RECON_QUARANTINE,
	KM_RECON_UNSAFE,
} km_recon_kind_t;

/* One finding. Strings are owned by the reconciler and valid during the callback only. */
typedef struct {
	const char *env;
	km_recon_kind_t kind;
	const char *keyset;       /* "" when unknown (QUARANTINE, UNSAFE without a record) */
	const char *kid;          /* "" when none (pending, abandoned, QUARANTINE) */
	const char *cka_id;       /* lowercase hex ("" for an object without a CKA_ID) */
	const char *state;        /* the row's state before the repair, "" without a row */
	const char *detail;       /* one sentence: what was found and what was done */
	const km_token_privkey_t *object; /* UNSAFE: the private key object; NULL otherwise */
	bool repair;              /* a repair (applied, or planned in a dry run) */
	bool attention;           /* needs an operator: MISSING, QUARANTINE, UNSAFE not removed */
	bool applied;             /* the repair was carried out */
	int result;               /* KM_EOK, or the code the repair failed with */
} km_recon_event_t;

typedef void (*km_recon_report_fn)(void *ctx, const km_recon_event_t *ev);

typedef struct {
	bool dry_run;             /* report only; change neither store nor token */
	bool remove_unsafe;       /* destroy UNSAFE private keys that no record holds (the
	                           * operator confirmed: `reconcile --remove-unsafe`, keymgrd's
	                           * daemon.remove_unsafe_keys) */
	km_recon_report_fn report; /* may be NULL */
	void *ctx;
} km_recon_opts_t;

typedef struct {
	size_t repaired;          /* repairs applied (or planned, in a dry run) */
	size_t attention;         /* findings that need an operator */
	size_t failed;            /* repairs that failed */
} km_recon_summary_t;

/* Stable lowercase name of a kind ("adopt", "abandon", ...). */
const char *km_recon_kind_name(km_recon_kind_t kind);

/*
 * Reconciles environment env at now (see above). Takes the change lock (waiting up to
 * KM_STORE_CHANGE_WAIT_MS), opens the token, reads every row of the store and every key of
 * the token (and the attributes of every private key) once. *sum (may be NULL) receives the counts.
 * Returns KM_EOK when the comparison could be made (even if repairs failed or findings need
 * attention: see *sum), KM_STORE_EBUSY when another process kept the lock (nothing done), or
 * the token's / the store's code, with its message in err.
 */
int km_reconcile_env(km_env_t *env, int64_t now, const km_recon_opts_t *o,
                     km_recon_summary_t *sum, char *err, size_t errlen);
