/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Carrying out the planner's decisions: the one code path shared by `keymgr apply`,
 * `keymgr revoke` and keymgrd's ticks. Reads the key set's keys from the store, asks the pure
 * planner (policy/planner.h) what is due at `now`, and applies each action through keyops.h.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "keymgr/core/env.h"
#include "policy/planner.h"

/* One applied (or, in a dry run, planned) action, for reporting and logging. */
typedef struct {
	const char *env;
	const char *keyset;
	const km_plan_action_t *action;
	const char *kid;        /* "" for a GENERATE in a dry run */
	int result;             /* KM_EOK, or the code the action failed with */
	const char *error;      /* message when result != KM_EOK */
} km_apply_event_t;

typedef void (*km_apply_report_fn)(void *ctx, const km_apply_event_t *ev);

/* A warning the planner raised for a key set (overdue rotation, missing standby, ...). */
typedef void (*km_apply_warn_fn)(void *ctx, const char *keyset, const km_plan_warning_t *w);

/* What a gate says about the next action (see km_apply_gate_fn). */
typedef enum {
	KM_APPLY_GO = 0,   /* apply it */
	KM_APPLY_DEFER,    /* ACTIVATE only: skip it for now (the current key keeps signing) */
	KM_APPLY_STOP,     /* apply nothing more in this run (e.g. the daemon is stopping) */
} km_apply_verdict_t;

/*
 * Asked before each action that is not a dry run (kid is "" for a key not generated yet).
 * DEFER on an ACTIVATE leaves the key published and the active key active; the gate sets
 * *recheck_at (unix seconds) to when it wants to be asked again, and km_apply_keyset() folds
 * it into *next_wake. DEFER on any other action counts as GO. The planner stays pure: the
 * gate is the caller's policy (keymgrd's propagation gating), applied on top of the plan.
 */
typedef km_apply_verdict_t (*km_apply_gate_fn)(void *ctx, const char *keyset,
                                               const km_plan_action_t *a, const char *kid,
                                               int64_t now, int64_t *recheck_at);

/*
 * A pair of hooks around each action that is carried out (not in a dry run, and not for an
 * action a gate deferred or stopped): before() just before it, after() just after it, with
 * its result, before it is reported. Every before() is followed by its after(), with nothing
 * of km_apply in between but the action itself, so that the caller can hold something (a
 * lock) across exactly one action's store transaction and token work. kid is "" in before()
 * for a GENERATE (the key does not exist yet); after() gets the kid made, "" when it failed.
 * A RETIRE of the active key that the plan's later ACTIVATE carries out (km_key_activate()
 * retires it in the same transaction) changes nothing by itself, and is bracketed as well.
 */
typedef void (*km_apply_before_fn)(void *ctx, const char *keyset, const km_plan_action_t *a,
                                   const char *kid);
typedef void (*km_apply_after_fn)(void *ctx, const char *keyset, const km_plan_action_t *a,
                                  const char *kid, int result);

typedef struct {
	bool dry_run;               /* plan only; change nothing */
	km_apply_report_fn report;  /* may be NULL */
	km_apply_warn_fn warn;      /* may be NULL */
	void *ctx;
	km_apply_gate_fn gate;      /* may be NULL (always GO) */
	km_apply_before_fn before;  /* may be NULL */
	km_apply_after_fn after;    /* may be NULL */
	int64_t *next_event;        /* may be NULL: receives the time of the key set's next
	                             * lifecycle event, the planner's own wake-up without any
	                             * gate's recheck (INT64_MAX: none planned) */
} km_apply_opts_t;

/*
 * Plans key set keyset at now and applies every due action in order. Stops at the first
 * failed action (the next run plans again from the state reached), and at a gate's STOP
 * (KM_EOK, *next_wake = now). *next_wake (may be NULL) receives the planner's next wake-up
 * time, or a deferring gate's recheck time when that is earlier. Returns KM_EOK or the failing action's code, with
 * its message in err.
 */
int km_apply_keyset(km_env_t *env, const char *keyset, int64_t now, const km_apply_opts_t *o,
                    int64_t *next_wake, char *err, size_t errlen);

/*
 * Applies every key set of the environment (keyset NULL) or one key set. Continues with the
 * other key sets after a failure and returns the first failure's code. *next_wake receives
 * the earliest wake-up of all key sets.
 */
int km_apply_env(km_env_t *env, const char *keyset, int64_t now, const km_apply_opts_t *o,
                 int64_t *next_wake, char *err, size_t errlen);

/* What km_apply_revoke() did besides taking the key out of service. */
typedef struct {
	int64_t gap;             /* how long verifiers that do not refetch on an unknown kid may
	                          * reject the new key's tokens (0 with a standby, or no new key) */
	int64_t exposure_until;  /* until when verifiers' caches may still hold the revoked key;
	                          * 0 when unknown (policy_broken) */
	bool policy_broken;      /* the key set's policy has errors (a partial configuration,
	                          * km_config_load_partial()): revoked, nothing else done */
} km_apply_revoke_result_t;

/*
 * Emergency revocation of kid at now: the key leaves the JWKS at once; if it was the active
 * key, the planner promotes a standby published >= publish_lead ago or generates and
 * activates a new key immediately.
 *
 * When the key set's policy cannot be used (KM_CONFIG_EBROKEN from km_env_keyset_policy(): a
 * configuration loaded with errors), the key is still revoked, with the reason, but nothing is
 * promoted or generated: that would follow a policy that was not validated. The key set may
 * be left without an active key (its owner fixes the configuration and rotates), and the
 * exposure window, which comes from jwks_max_age, is unknown (ret->exposure_until 0).
 *
 * *ret (may be NULL) is written on success. Returns KM_EOK, or the code of the step that
 * failed with its message in err (an illegal transition, an unknown kid, the store, the
 * token).
 */
int km_apply_revoke(km_env_t *env, const char *kid, const char *reason, int64_t now,
                    const km_apply_opts_t *o, km_apply_revoke_result_t *ret, char *err,
                    size_t errlen);

/* What a requested rotation did (km_apply_rotate). */
typedef struct {
	km_plan_rotated_t outcome;
	char kid[KM_KID_MAX + 1];           /* the successor */
	char previous_kid[KM_KID_MAX + 1];  /* the key that was active before, "" if none */
	int64_t activates_at;               /* when the successor activates (or did) */
	int64_t gap;                        /* EARLY: see km_plan_gap() */
} km_apply_rotation_t;

/*
 * A rotation requested by hand at now (`keymgr rotate`), under the environment's change
 * lock: the planner chooses the successor and its time (km_plan_rotate() has the rules and
 * the outcomes), and every action is applied, including a new standby where the policy asks
 * for one. A scheduled successor then activates through km_apply_keyset() (`keymgr apply`,
 * keymgrd) at its recorded time. *ret (may be NULL) says what happened.
 * KM_ENOENT (unknown key set, named in err), the planner's and the actions' codes.
 */
int km_apply_rotate(km_env_t *env, const char *keyset, int64_t now, km_plan_rotate_mode_t mode,
                    const km_apply_opts_t *o, km_apply_rotation_t *ret, char *err,
                    size_t errlen);

/* What km_apply_keyset_create() did about the first key. */
typedef struct {
	bool made;                        /* the first key (and a standby) was made: rotation */
	km_apply_rotation_t rotation;
	char why_not[512];                /* not made: why (the token could not be opened) */
} km_apply_created_t;

/*
 * Creates key set ks (km_keyset_create(): every policy rule) and, with first_key, makes it
 * able to work in the same run: when the environment's token can be opened, its first key
 * is generated and activated, with a standby where the policy asks for one
 * (km_apply_rotate()). When the token cannot be opened the key set is still created, and
 * ret->why_not says why (keymgrd or `keymgr apply` make the key once it can be).
 * Returns km_keyset_create()'s codes (nothing created), or the code of a failed first key
 * (the key set exists; err says both).
 */
int km_apply_keyset_create(km_env_t *env, const km_store_keyset_t *ks, const char *who,
                           int64_t now, bool first_key, km_apply_created_t *ret, char *err,
                           size_t errlen);

/*
 * Loads the keys of keyset in planner form. *keys (malloc'd, caller frees) and *recs
 * (km_store_keys_free) are parallel arrays of *n entries; pending intents and abandoned
 * intents (no kid: nothing was created in the token) are left out.
 */
int km_apply_load_keys(km_env_t *env, const char *keyset, km_plan_key_t **keys,
                       km_store_key_t **recs, size_t *n, char *err, size_t errlen);
