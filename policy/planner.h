/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rotation planner: a pure function of (keys, policy, now). No I/O, no clock, no globals;
 * the same input always gives the same plan. After Knot DNS's knot_dnssec_key_rollover(): it
 * looks at the key timers and says what is due and when to run next. docs/timing.md explains
 * the model and shows a timeline printed from this planner's own output.
 *
 * How a caller uses it (the daemon tick, `keymgr rotate`):
 *   1. km_plan_compute(plan, keys, n, policy, now).
 *   2. Apply km_plan_action(plan, 0 .. n-1) IN ORDER, recording each state change at `now`
 *      (the instant it really happens, not the action's `at`, which says since when it was
 *      due). A GENERATE makes a new key; later actions name it as key n + j (see below).
 *      Apply a RETIRE/ACTIVATE pair in one store transaction when you can.
 *   3. Sleep until km_plan_next_wake(plan) (or less; ticking early or late is safe).
 * One pass returns EVERYTHING due at `now`: planning again at the same `now` after applying
 * all actions returns none (the tests check this at every simulated tick). If applying stops
 * halfway (a token error, a crash), plan again: every intermediate state is planned correctly.
 *
 * Cost: two passes over the keys at most, O(n); no allocation once the plan's arrays have
 * grown to the largest plan seen (a plan object is meant to be reused).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/lifecycle.h"
#include "policy/policy.h"

#define KM_PLAN_TEXT_MAX 200

/* One key of a key set as the planner sees it. */
typedef struct {
	uint64_t id;                   /* the caller's own reference (store row id); not read */
	km_state_t state;
	/* Unix seconds at which the key entered each state, 0 = never. A zero or future time for
	 * the current state is treated as `now` (always the safe direction: it delays the next
	 * step) and reported as a KM_PLAN_W_BAD_RECORD warning. */
	int64_t at[KM_STATE_COUNT];
	/* A published key that a requested rotation (km_plan_rotate) made the successor: it
	 * activates at this time (unix seconds; never earlier than its publication plus
	 * publish_lead), retiring the active key. 0 = no request. Read for published keys only. */
	int64_t activate_at;
} km_plan_key_t;

typedef enum {
	KM_PLAN_GENERATE = 0,  /* make a new key pair in the token (state generated) */
	KM_PLAN_PUBLISH,       /* add it to the JWKS */
	KM_PLAN_ACTIVATE,      /* make it the signing key */
	KM_PLAN_RETIRE,        /* stop signing; stays in the JWKS */
	KM_PLAN_REMOVE,        /* take it out of the JWKS; the token keeps it */
	KM_PLAN_DESTROY,       /* destroy the token objects; the record stays */
	KM_PLAN_REVOKE,        /* emergency: out of the JWKS at once (km_plan_emergency only) */
	KM_PLAN_SCHEDULE,      /* record a requested rotation: the published key activates at
	                        * `activate_at` (km_plan_rotate only); its state does not change */
	KM_PLAN_OP_COUNT
} km_plan_op_t;

typedef struct {
	km_plan_op_t op;
	/* Which key: key < n is an index into the caller's keys[]; key >= n is the new key number
	 * key - n made by this plan's GENERATE actions (the GENERATE carries that same number). */
	size_t key;
	int64_t at;            /* when it became due (<= now for km_plan_compute) */
	bool early;            /* ACTIVATE of a key published less than publish_lead ago:
	                        * only at bootstrap, in an emergency or a forced rotation */
	int64_t activate_at;   /* SCHEDULE: when the key activates; 0 for every other op */
	char reason[KM_PLAN_TEXT_MAX];
} km_plan_action_t;

typedef enum {
	KM_PLAN_W_OVERDUE = 0,   /* active key past rotation_period: successor not ready */
	KM_PLAN_W_NO_STANDBY,    /* standby policy, but no standby published >= publish_lead */
	KM_PLAN_W_EARLY,         /* a key signs before publish_lead: verification gap */
	KM_PLAN_W_EXPOSURE,      /* a revoked key is still in verifiers' caches until `until` */
	KM_PLAN_W_MULTI_ACTIVE,  /* more than one active key found; the extra ones are retired */
	KM_PLAN_W_NO_ACTIVE,     /* no active key after bootstrap (outside an emergency) */
	KM_PLAN_W_BAD_RECORD,    /* missing or future timestamp, treated as now */
	KM_PLAN_W_COUNT
} km_plan_warn_t;

typedef struct {
	km_plan_warn_t code;
	size_t key;            /* numbered like km_plan_action_t.key; SIZE_MAX if none */
	int64_t until;         /* earliest time the condition ends, 0 if unknown */
	char msg[KM_PLAN_TEXT_MAX];
} km_plan_warning_t;

typedef struct km_plan km_plan_t;

/* Makes an empty plan; free it with km_plan_free(). KM_EOK or KM_ENOMEM. */
int km_plan_create(km_plan_t **ret);

/* Frees a plan. NULL is fine. */
void km_plan_free(km_plan_t *plan);

/*
 * Plans one key set at `now` (unix seconds > 0): fills plan with every action due at now, the
 * warnings, and the next wake-up time. The policy must pass km_policy_validate().
 * Returns KM_EOK, KM_EINVAL (bad argument or key state), KM_POLICY_EUNSAFE (invalid policy)
 * or KM_ENOMEM. On error the plan is empty.
 */
int km_plan_compute(km_plan_t *plan, const km_plan_key_t *keys, size_t n, const km_policy_t *p,
                    int64_t now);

/*
 * Emergency: key `revoke` (an index into keys[]) is compromised at `now`. The plan starts with
 * REVOKE of that key (out of the JWKS at once), then, if it was the active key, activates the
 * oldest published key (a standby published >= publish_lead ago: no verifier fails), or, with
 * none, generates, publishes and activates a new key at once. km_plan_gap() then says how long
 * verifiers that do not refetch on an unknown kid may reject the new key's tokens (at most
 * jwks_max_age), and km_plan_exposure_until() until when verifiers' caches still hold the
 * revoked key. The rest of the plan is what km_plan_compute() would add (e.g. a new standby).
 * Returns as km_plan_compute(), and KM_ETRANSITION if that key cannot be revoked.
 */
int km_plan_emergency(km_plan_t *plan, const km_plan_key_t *keys, size_t n,
                      const km_policy_t *p, int64_t now, size_t revoke);

/* How a requested rotation (km_plan_rotate) is carried out. */
typedef enum {
	KM_PLAN_ROTATE_NORMAL = 0,  /* the successor activates once published for publish_lead */
	KM_PLAN_ROTATE_ANOTHER,     /* a rotation is pending already: request one more after it */
	KM_PLAN_ROTATE_NOW,         /* activate a successor now, skipping the publish lead */
} km_plan_rotate_mode_t;

/* What a requested rotation does, for the caller to report. */
typedef enum {
	KM_PLAN_ROTATED_PROMOTED = 0, /* a key published >= publish_lead ago activated now */
	KM_PLAN_ROTATED_SCHEDULED,    /* a waiting published key activates at `at` */
	KM_PLAN_ROTATED_NEW,          /* a new key is published now and activates at `at` */
	KM_PLAN_ROTATED_PENDING,      /* a rotation was pending already: nothing was added */
	KM_PLAN_ROTATED_FIRST,        /* no active key: the successor activated at once */
	KM_PLAN_ROTATED_EARLY,        /* ROTATE_NOW: activated before publish_lead (see the gap) */
} km_plan_rotated_t;

typedef struct {
	km_plan_rotated_t outcome;
	size_t key;            /* the successor, numbered like km_plan_action_t.key */
	int64_t at;            /* when it activates (now for PROMOTED, FIRST and EARLY) */
} km_plan_rotation_t;

/*
 * A rotation requested by hand at `now` (`keymgr rotate`). The successor is chosen by rule,
 * in this order:
 *   - no active key: the oldest published key, or a new one, activates at once (FIRST);
 *   - ROTATE_NOW: the pending successor, else the oldest published key, else a new key,
 *     activates at once (EARLY when published less than publish_lead ago);
 *   - a rotation already pending (a published key with activate_at): nothing is added
 *     (PENDING, naming that key and its time); with ROTATE_ANOTHER a new key is published
 *     and scheduled publish_lead from now, after the pending one (NEW);
 *   - the oldest published key (a standby, or a successor published by the schedule):
 *     promoted at once if published >= publish_lead ago (PROMOTED), otherwise scheduled at
 *     its publication + publish_lead (SCHEDULED);
 *   - otherwise a new key is published and scheduled publish_lead from now (NEW).
 * A scheduled key gets a SCHEDULE action with its activate_at; km_plan_compute() activates it
 * then. The plan also holds what km_plan_compute() would add after the rotation (a new
 * standby), so applying it and planning again at `now` gives nothing more to do.
 * *ret (may be NULL) says what happened. Returns as km_plan_compute().
 */
int km_plan_rotate(km_plan_t *plan, const km_plan_key_t *keys, size_t n, const km_policy_t *p,
                   int64_t now, km_plan_rotate_mode_t mode, km_plan_rotation_t *ret);

/*
 * The future, for `keymgr plan --horizon`: simulates a daemon that ticks exactly at every
 * wake-up from now to now + horizon and applies each plan, and fills plan with every action in
 * that window, in time order (the ones due now first). Keys made in the simulation are
 * numbered n, n + 1, ... in order of creation. Warnings and the next wake-up are those of the
 * plan at now. Allocates a working copy of the keys (freed before return).
 * Returns as km_plan_compute(), and KM_ERANGE if the window holds more than 100000 actions.
 */
int km_plan_upcoming(km_plan_t *plan, const km_plan_key_t *keys, size_t n,
                     const km_policy_t *p, int64_t now, int64_t horizon);

size_t km_plan_n_actions(const km_plan_t *plan);

/* Action i (0 <= i < km_plan_n_actions()); owned by the plan, valid until its next use. */
const km_plan_action_t *km_plan_action(const km_plan_t *plan, size_t i);

size_t km_plan_n_warnings(const km_plan_t *plan);

/* Warning i; owned by the plan, valid until its next use. */
const km_plan_warning_t *km_plan_warning(const km_plan_t *plan, size_t i);

/* When to plan again (unix seconds, > now); INT64_MAX if nothing will ever be due. */
int64_t km_plan_next_wake(const km_plan_t *plan);

/* Number of new keys the plan's GENERATE actions make. */
size_t km_plan_n_new_keys(const km_plan_t *plan);

/* Seconds during which verifiers that do not refetch on an unknown kid may reject tokens of a
 * key activated early by this plan (0 if none was). */
int64_t km_plan_gap(const km_plan_t *plan);

/* Until when verifiers' caches may still hold a key this plan revoked (0 if none). */
int64_t km_plan_exposure_until(const km_plan_t *plan);

/* "generate", "publish", ... ; "unknown" for a bad value. */
const char *km_plan_op_name(km_plan_op_t op);

/* "overdue", "no-standby", ... ; "unknown" for a bad value. */
const char *km_plan_warn_name(km_plan_warn_t w);
