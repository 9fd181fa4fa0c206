/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/faultpoint.h"
#include "keymgr/core/apply.h"
#include "keymgr/core/keyops.h"
#include "keymgr/store/change_lock.h"

int km_apply_load_keys(km_env_t *env, const char *keyset, km_plan_key_t **keys,
                       km_store_key_t **recs, size_t *n, char *err, size_t errlen)
{
	km_store_key_filter_t f = { .keyset = keyset, .pending = KM_STORE_PENDING_NONE };
	km_store_key_t *list = NULL;
	size_t count = 0;
	int r = km_store_keys_query(km_env_store(env), &f, &list, &count, err, errlen);
	if (r != KM_EOK)
		return r;
	km_plan_key_t *pk = calloc(count ? count : 1, sizeof(*pk));
	if (pk == NULL) {
		km_store_keys_free(list);
		return KM_ENOMEM;
	}
	size_t kept = 0;
	for (size_t i = 0; i < count; i++) {
		if (list[i].kid[0] == '\0')
			continue; /* an abandoned intent: the token never made the key */
		if (kept != i)
			list[kept] = list[i];
		pk[kept].id = (uint64_t)list[kept].id;
		pk[kept].state = list[kept].state;
		for (int s = 0; s < KM_STATE_COUNT; s++)
			pk[kept].at[s] = list[kept].state_at[s] == KM_STORE_TIME_NONE ? 0
			                                                              : list[kept].state_at[s];
		pk[kept].activate_at = list[kept].activate_at == KM_STORE_TIME_NONE
		                       ? 0 : list[kept].activate_at;
		kept++;
	}
	*keys = pk;
	*recs = list;
	*n = kept;
	return KM_EOK;
}

/* Does the plan activate a key at or after position i? Then a RETIRE of the active key is
 * left to km_key_activate(), which retires it in the same transaction: never zero signers. */
static bool activates_later(const km_plan_t *plan, size_t i)
{
	for (size_t j = i + 1; j < km_plan_n_actions(plan); j++)
		if (km_plan_action(plan, j)->op == KM_PLAN_ACTIVATE)
			return true;
	return false;
}

static int apply_action(km_env_t *env, const char *keyset, const km_plan_t *plan, size_t i,
                        const km_store_key_t *recs, size_t n, char (*new_kids)[KM_KID_MAX + 1],
                        int64_t now, char *kid_out, bool *delegated, char *err, size_t errlen)
{
	const km_plan_action_t *a = km_plan_action(plan, i);
	const char *kid;
	if (a->op == KM_PLAN_GENERATE) {
		km_store_key_t k;
		int r = km_key_generate(env, keyset, now, &k, err, errlen);
		if (r == KM_EOK) {
			snprintf(new_kids[a->key - n], KM_KID_MAX + 1, "%s", k.kid);
			snprintf(kid_out, KM_KID_MAX + 1, "%s", k.kid);
		}
		return r;
	}
	kid = a->key < n ? recs[a->key].kid : new_kids[a->key - n];
	snprintf(kid_out, KM_KID_MAX + 1, "%s", kid);
	if (kid[0] == '\0') {
		snprintf(err, errlen, "planner named a key that was not generated");
		return KM_EINVAL;
	}
	km_store_t *s = km_env_store(env);
	switch (a->op) {
	case KM_PLAN_PUBLISH:
		return km_store_key_transition(s, kid, KM_STATE_PUBLISHED, now, a->reason, err, errlen);
	case KM_PLAN_ACTIVATE:
		return km_key_activate(env, kid, now, err, errlen);
	case KM_PLAN_SCHEDULE:
		return km_store_key_schedule(s, kid, a->activate_at, now, a->reason, err, errlen);
	case KM_PLAN_RETIRE: {
		km_store_key_t k;
		int r = km_store_key_get(s, kid, &k, err, errlen);
		if (r != KM_EOK)
			return r;
		if (k.state == KM_STATE_ACTIVE && activates_later(plan, i)) {
			*delegated = true;
			return KM_EOK; /* done by the ACTIVATE below, atomically */
		}
		if (k.state == KM_STATE_RETIRED)
			return KM_EOK;
		return km_store_key_transition(s, kid, KM_STATE_RETIRED, now, a->reason, err, errlen);
	}
	case KM_PLAN_REMOVE:
		return km_store_key_transition(s, kid, KM_STATE_REMOVED, now, a->reason, err, errlen);
	case KM_PLAN_DESTROY:
		return km_key_destroy(env, kid, now, err, errlen);
	case KM_PLAN_REVOKE: {
		km_store_key_t k;
		int r = km_store_key_get(s, kid, &k, err, errlen);
		if (r != KM_EOK || k.state == KM_STATE_REVOKED)
			return r; /* km_apply_revoke() records it first, with the operator's reason */
		return km_store_key_transition(s, kid, KM_STATE_REVOKED, now, a->reason, err, errlen);
	}
	default:
		snprintf(err, errlen, "unknown planner action");
		return KM_EINVAL;
	}
}

/* The kid of action a's key as known before it runs ("" for a key not generated yet). */
static const char *action_kid(const km_plan_action_t *a, const km_store_key_t *recs, size_t n,
                              char (*new_kids)[KM_KID_MAX + 1])
{
	return a->key < n ? recs[a->key].kid : new_kids[a->key - n];
}

/* Asks the gate about action i. */
static km_apply_verdict_t ask_gate(const km_apply_opts_t *o, const char *keyset,
                                   const km_plan_t *plan, size_t i, const km_store_key_t *recs,
                                   size_t n, char (*new_kids)[KM_KID_MAX + 1], int64_t now,
                                   int64_t *recheck)
{
	if (o == NULL || o->gate == NULL || o->dry_run)
		return KM_APPLY_GO;
	const km_plan_action_t *a = km_plan_action(plan, i);
	const char *kid = action_kid(a, recs, n, new_kids);
	int64_t again = INT64_MAX;
	km_apply_verdict_t v = o->gate(o->ctx, keyset, a, kid, now, &again);
	if (v == KM_APPLY_DEFER && a->op != KM_PLAN_ACTIVATE)
		v = KM_APPLY_GO;
	if (v == KM_APPLY_DEFER && again < *recheck)
		*recheck = again > now ? again : now + 1;
	return v;
}

/*
 * Applies (or reports, in a dry run) every action of a computed plan. The kid of the plan's
 * key `want` (numbered like the actions' keys; SIZE_MAX for none) is copied into want_kid
 * (KM_KID_MAX + 1 bytes, may be NULL): "" when that key was not made.
 */
static int apply_plan(km_env_t *env, const char *keyset, const km_plan_t *plan,
                      const km_store_key_t *recs, size_t n, int64_t now,
                      const km_apply_opts_t *o, int64_t *recheck, size_t want, char *want_kid,
                      char *err, size_t errlen)
{
	size_t n_new = km_plan_n_new_keys(plan);
	char (*new_kids)[KM_KID_MAX + 1] = calloc(n_new ? n_new : 1, KM_KID_MAX + 1);
	if (new_kids == NULL)
		return KM_ENOMEM;
	int r = KM_EOK;
	/* A RETIRE left to the ACTIVATE below is reported just before that ACTIVATE, once it
	 * happened (not at all when a gate defers the ACTIVATE). */
	size_t held = SIZE_MAX;
	char held_kid[KM_KID_MAX + 1] = "";
	for (size_t i = 0; i < km_plan_n_warnings(plan); i++)
		if (o != NULL && o->warn != NULL)
			o->warn(o->ctx, keyset, km_plan_warning(plan, i));
	for (size_t i = 0; i < km_plan_n_actions(plan); i++) {
		const km_plan_action_t *a = km_plan_action(plan, i);
		char kid[KM_KID_MAX + 1] = "";
		char msg[512] = "";
		km_apply_verdict_t v = ask_gate(o, keyset, plan, i, recs, n, new_kids, now, recheck);
		if (v == KM_APPLY_STOP) {
			*recheck = now;
			break;
		}
		if (v == KM_APPLY_DEFER) {
			held = SIZE_MAX; /* the RETIRE before it was left to km_key_activate() */
			continue;
		}
		bool delegated = false;
		if (o != NULL && o->dry_run) {
			if (a->key < n)
				snprintf(kid, sizeof(kid), "%s", recs[a->key].kid);
		} else {
			if (o != NULL && o->before != NULL)
				o->before(o->ctx, keyset, a, action_kid(a, recs, n, new_kids));
			r = apply_action(env, keyset, plan, i, recs, n, new_kids, now, kid, &delegated,
			                 msg, sizeof(msg));
			if (r == KM_EOK)
				KM_FAULT_POINT("apply.after_action");
			if (o != NULL && o->after != NULL)
				o->after(o->ctx, keyset, a, kid, r);
			if (delegated) {
				held = i;
				snprintf(held_kid, sizeof(held_kid), "%s", kid);
				continue;
			}
		}
		if (o != NULL && o->report != NULL && held != SIZE_MAX && a->op == KM_PLAN_ACTIVATE &&
		    r == KM_EOK) {
			km_apply_event_t hev = { km_env_name(env), keyset, km_plan_action(plan, held),
			                         held_kid, KM_EOK, "" };
			o->report(o->ctx, &hev);
			held = SIZE_MAX;
		}
		if (o != NULL && o->report != NULL) {
			km_apply_event_t ev = { km_env_name(env), keyset, a, kid, r, msg };
			o->report(o->ctx, &ev);
		}
		if (r != KM_EOK) {
			snprintf(err, errlen, "%s/%s: %s of %s failed: %s", km_env_name(env), keyset,
			         km_plan_op_name(a->op), kid[0] ? kid : "a new key",
			         msg[0] ? msg : km_strerror(r));
			break;
		}
	}
	if (want_kid != NULL && want != SIZE_MAX)
		snprintf(want_kid, KM_KID_MAX + 1, "%s", want < n ? recs[want].kid
		         : want - n < n_new ? new_kids[want - n] : "");
	free(new_kids);
	return r;
}

static int apply_keyset(km_env_t *env, const char *keyset, int64_t now,
                        const km_apply_opts_t *o, int64_t *next_wake, char *err, size_t errlen)
{
	km_policy_t pol;
	km_plan_key_t *keys = NULL;
	km_store_key_t *recs = NULL;
	km_plan_t *plan = NULL;
	size_t n = 0;
	int r = km_env_keyset_policy(env, keyset, &pol);
	if (r != KM_EOK) {
		snprintf(err, errlen, "no policy for key set %s/%s", km_env_name(env), keyset);
		return r;
	}
	if ((r = km_apply_load_keys(env, keyset, &keys, &recs, &n, err, errlen)) != KM_EOK)
		return r;
	if ((r = km_plan_create(&plan)) != KM_EOK)
		goto out;
	if ((r = km_plan_compute(plan, keys, n, &pol, now)) != KM_EOK) {
		snprintf(err, errlen, "%s/%s: planning failed: %s", km_env_name(env), keyset,
		         km_strerror(r));
		goto out;
	}
	int64_t recheck = INT64_MAX;
	r = apply_plan(env, keyset, plan, recs, n, now, o, &recheck, SIZE_MAX, NULL, err, errlen);
	if (o != NULL && o->next_event != NULL)
		*o->next_event = km_plan_next_wake(plan);
	if (next_wake != NULL) {
		int64_t w = km_plan_next_wake(plan);
		*next_wake = r != KM_EOK ? now : recheck < w ? recheck : w;
	}
out:
	km_plan_free(plan);
	km_store_keys_free(recs);
	free(keys);
	return r;
}

/* Plan and actions under the environment's change lock (keymgr/store/change_lock.h): the
 * plan is made from rows no other change is moving. A dry run changes nothing: no lock. */
int km_apply_keyset(km_env_t *env, const char *keyset, int64_t now, const km_apply_opts_t *o,
                    int64_t *next_wake, char *err, size_t errlen)
{
	km_store_t *s = km_env_store(env);
	bool lock = o == NULL || !o->dry_run;
	int r = lock ? km_store_change_lock_at(s, "apply", KM_STORE_CHANGE_WAIT_MS, &now, err,
	                                       errlen)
	             : KM_EOK;
	if (r != KM_EOK)
		return r;
	r = apply_keyset(env, keyset, now, o, next_wake, err, errlen);
	if (lock)
		km_store_change_unlock(s);
	return r;
}

int km_apply_env(km_env_t *env, const char *keyset, int64_t now, const km_apply_opts_t *o,
                 int64_t *next_wake, char *err, size_t errlen)
{
	if (keyset != NULL)
		return km_apply_keyset(env, keyset, now, o, next_wake, err, errlen);
	km_store_keyset_t *list = NULL;
	size_t n = 0;
	int r = km_store_keyset_list(km_env_store(env), NULL, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	int first = KM_EOK;
	int64_t wake = INT64_MAX;
	for (size_t i = 0; i < n; i++) {
		int64_t w = INT64_MAX;
		char msg[1024] = "";
		r = km_apply_keyset(env, list[i].name, now, o, &w, msg, sizeof(msg));
		if (r != KM_EOK && first == KM_EOK) {
			first = r;
			snprintf(err, errlen, "%s", msg);
		}
		if (w < wake)
			wake = w;
	}
	km_store_keysets_free(list);
	if (next_wake != NULL)
		*next_wake = wake;
	return first;
}

static int apply_revoke(km_env_t *env, const char *kid, const char *reason, int64_t now,
                        const km_apply_opts_t *o, km_apply_revoke_result_t *res, char *err,
                        size_t errlen)
{
	km_store_key_t k;
	km_policy_t pol;
	km_plan_key_t *keys = NULL;
	km_store_key_t *recs = NULL;
	km_plan_t *plan = NULL;
	size_t n = 0, idx;
	int r = km_key_lookup(env, kid, &k, err, errlen);
	if (r != KM_EOK)
		return r;
	r = km_env_keyset_policy(env, k.keyset, &pol);
	res->policy_broken = r == KM_CONFIG_EBROKEN;
	if (r != KM_EOK && !res->policy_broken)
		return r;
	if ((r = km_apply_load_keys(env, k.keyset, &keys, &recs, &n, err, errlen)) != KM_EOK)
		return r;
	for (idx = 0; idx < n && strcmp(recs[idx].kid, kid) != 0; idx++)
		;
	if (idx == n) {
		snprintf(err, errlen, "key %s is not a confirmed key of %s/%s", kid, km_env_name(env),
		         k.keyset);
		r = KM_ENOENT;
		goto out;
	}
	if (res->policy_broken) {
		/* Out of service, and nothing made or promoted under an unvalidated policy. */
		if (km_state_check_transition(k.state, KM_STATE_REVOKED, err, (unsigned)errlen) !=
		    KM_EOK) {
			r = KM_ETRANSITION;
			goto out;
		}
		r = km_store_key_transition(km_env_store(env), kid, KM_STATE_REVOKED, now, reason,
		                            err, errlen);
		goto out;
	}
	if ((r = km_plan_create(&plan)) != KM_EOK)
		goto out;
	r = km_plan_emergency(plan, keys, n, &pol, now, idx);
	if (r == KM_ETRANSITION) {
		km_state_check_transition(k.state, KM_STATE_REVOKED, err, (unsigned)errlen);
		goto out;
	}
	if (r != KM_EOK) {
		snprintf(err, errlen, "planning the revocation failed: %s", km_strerror(r));
		goto out;
	}
	/* The revocation itself carries the operator's reason. */
	if ((r = km_store_key_transition(km_env_store(env), kid, KM_STATE_REVOKED, now, reason, err,
	                                 errlen)) != KM_EOK)
		goto out;
	recs[idx].state = KM_STATE_REVOKED;
	KM_FAULT_POINT("revoke.after_record");
	/* The rest of the emergency plan (its REVOKE is already done, with the reason). */
	int64_t recheck = INT64_MAX;
	r = apply_plan(env, k.keyset, plan, recs, n, now, o, &recheck, SIZE_MAX, NULL, err,
	               errlen);
	if (r == KM_EOK) {
		res->gap = km_plan_gap(plan);
		res->exposure_until = km_plan_exposure_until(plan);
	}
out:
	km_plan_free(plan);
	km_store_keys_free(recs);
	free(keys);
	return r;
}

int km_apply_revoke(km_env_t *env, const char *kid, const char *reason, int64_t now,
                    const km_apply_opts_t *o, km_apply_revoke_result_t *ret, char *err,
                    size_t errlen)
{
	km_store_t *s = km_env_store(env);
	km_apply_revoke_result_t res = { 0, 0, false };
	int r = km_store_change_lock_at(s, "revoke", KM_STORE_CHANGE_WAIT_MS, &now, err,
	                                 errlen);
	if (r != KM_EOK)
		return r;
	r = apply_revoke(env, kid, reason, now, o, &res, err, errlen);
	km_store_change_unlock(s);
	if (r == KM_EOK && ret != NULL)
		*ret = res;
	return r;
}

static int apply_rotate(km_env_t *env, const char *keyset, int64_t now,
                        km_plan_rotate_mode_t mode, const km_apply_opts_t *o,
                        km_apply_rotation_t *ret, char *err, size_t errlen)
{
	km_policy_t pol;
	km_plan_key_t *keys = NULL;
	km_store_key_t *recs = NULL;
	km_plan_t *plan = NULL;
	km_store_keyset_t ks;
	km_plan_rotation_t rot;
	size_t n = 0;
	int r = km_store_keyset_get(km_env_store(env), keyset, &ks, err, errlen);
	if (r == KM_ENOENT)
		snprintf(err, errlen, "unknown key set %s/%s", km_env_name(env), keyset);
	if (r != KM_EOK)
		return r;
	if ((r = km_env_keyset_policy(env, keyset, &pol)) != KM_EOK) {
		snprintf(err, errlen, "no policy for key set %s/%s", km_env_name(env), keyset);
		return r;
	}
	if ((r = km_apply_load_keys(env, keyset, &keys, &recs, &n, err, errlen)) != KM_EOK)
		return r;
	if ((r = km_plan_create(&plan)) != KM_EOK)
		goto out;
	if ((r = km_plan_rotate(plan, keys, n, &pol, now, mode, &rot)) != KM_EOK) {
		snprintf(err, errlen, "%s/%s: planning the rotation failed: %s", km_env_name(env),
		         keyset, km_strerror(r));
		goto out;
	}
	/* All or nothing for a command run by hand: a rotation that needs the token (a new key)
	 * opens it before recording anything, so a wrong PIN or a missing token changes
	 * nothing (a SCHEDULE alone needs no token). */
	bool dry = o != NULL && o->dry_run;
	for (size_t i = 0; i < km_plan_n_actions(plan) && !dry; i++) {
		km_plan_op_t op = km_plan_action(plan, i)->op;
		if (op == KM_PLAN_GENERATE || op == KM_PLAN_DESTROY) {
			km_token_t *t = NULL;
			if ((r = km_env_token(env, &t, err, errlen)) != KM_EOK)
				goto out;
			break;
		}
	}
	int64_t recheck = INT64_MAX;
	km_apply_rotation_t res = { .outcome = rot.outcome, .activates_at = rot.at,
	                            .gap = km_plan_gap(plan) };
	for (size_t i = 0; i < n; i++)
		if (recs[i].state == KM_STATE_ACTIVE)
			snprintf(res.previous_kid, sizeof(res.previous_kid), "%s", recs[i].kid);
	r = apply_plan(env, keyset, plan, recs, n, now, o, &recheck, rot.key, res.kid, err,
	               errlen);
	if (r == KM_EOK && ret != NULL)
		*ret = res;
out:
	km_plan_free(plan);
	km_store_keys_free(recs);
	free(keys);
	return r;
}

int km_apply_rotate(km_env_t *env, const char *keyset, int64_t now, km_plan_rotate_mode_t mode,
                    const km_apply_opts_t *o, km_apply_rotation_t *ret, char *err,
                    size_t errlen)
{
	km_store_t *s = km_env_store(env);
	int r = km_store_change_lock_at(s, "rotate", KM_STORE_CHANGE_WAIT_MS, &now, err,
	                                 errlen);
	if (r != KM_EOK)
		return r;
	r = apply_rotate(env, keyset, now, mode, o, ret, err, errlen);
	km_store_change_unlock(s);
	return r;
}

int km_apply_keyset_create(km_env_t *env, const km_store_keyset_t *ks, const char *who,
                           int64_t now, bool first_key, km_apply_created_t *ret, char *err,
                           size_t errlen)
{
	km_apply_created_t res;
	memset(&res, 0, sizeof(res));
	int r = km_keyset_create(env, ks, who, now, err, errlen);
	if (r != KM_EOK)
		return r;
	if (first_key) {
		km_token_t *t = NULL;
		if (km_env_token(env, &t, res.why_not, sizeof(res.why_not)) == KM_EOK) {
			r = km_apply_rotate(env, ks->name, now, KM_PLAN_ROTATE_NORMAL, NULL, &res.rotation,
			                    err, errlen);
			if (r != KM_EOK) {
				char why[768];
				snprintf(why, sizeof(why), "%s", err);
				snprintf(err, errlen, "key set %s/%s was created, but its first key could not "
				         "be made: %s", km_env_name(env), ks->name, why);
				return r;
			}
			res.made = true;
		} else if (res.why_not[0] == '\0') {
			snprintf(res.why_not, sizeof(res.why_not), "the token could not be opened");
		}
	}
	if (ret != NULL)
		*ret = res;
	return KM_EOK;
}
