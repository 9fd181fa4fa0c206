/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The planner (see planner.h for the contract, docs/timing.md for the model).
 *
 * Pass 1 reads every key once and keeps a summary: the newest active key, the two oldest
 * published keys, whether any key ever signed, and the earliest future timer of the keys the
 * rotation does not touch. The rotation logic then works on that summary only (at most one
 * activation per plan, so the two oldest published keys are all it needs). Pass 2 runs only
 * when pass 1 saw a removal or destruction due, or more than one active key.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "policy/plan_internal.h"

#define NONE SIZE_MAX

typedef struct {
	size_t idx;
	int64_t t;
} slot_t;

typedef struct {
	km_plan_t *plan;
	const km_plan_key_t *keys;
	size_t n;
	const km_policy_t *p;
	int64_t now;
	size_t revoke;             /* key revoked by km_plan_emergency(), or NONE */
	int err;                   /* sticky KM_ENOMEM */
	int64_t wake;
	bool ever_active;          /* some key has signed: not a bootstrap */
	size_t active;             /* newest active key (after the plan: the signing key) */
	int64_t t_act;
	size_t n_active;
	slot_t pub[2];             /* the two oldest published keys, by (time, index) */
	size_t n_pub;
	/* The successor of a requested rotation: the published key with the earliest
	 * activate_at, and when it is due (never before its publication + publish_lead); req2
	 * the next one (`rotate --force` asked for another), due after it. */
	slot_t req, req2;
	size_t n_cleanup;          /* removals and destructions due */
	bool rotating;             /* km_plan_rotate(): a rotation requested now */
	km_plan_rotate_mode_t mode;
	km_plan_rotation_t rot;    /* what the requested rotation did */
} ctx_t;

/* ---------------------------------------------------------------- plan object */

int km_plan_create(km_plan_t **ret)
{
	km_plan_t *plan = calloc(1, sizeof(*plan));
	if (plan == NULL)
		return KM_ENOMEM;
	plan->next_wake = INT64_MAX;
	*ret = plan;
	return KM_EOK;
}

void km_plan_free(km_plan_t *plan)
{
	if (plan == NULL)
		return;
	free(plan->actions);
	free(plan->warnings);
	free(plan);
}

void km_plan_reset(km_plan_t *plan)
{
	plan->n_actions = 0;
	plan->n_warnings = 0;
	plan->next_wake = INT64_MAX;
	plan->gap = 0;
	plan->exposure_until = 0;
	plan->n_new = 0;
}

km_plan_action_t *km_plan_push_action(km_plan_t *plan)
{
	if (plan->n_actions == plan->cap_actions) {
		size_t cap = plan->cap_actions ? plan->cap_actions * 2 : 16;
		km_plan_action_t *a = realloc(plan->actions, cap * sizeof(*a));
		if (a == NULL)
			return NULL;
		plan->actions = a;
		plan->cap_actions = cap;
	}
	/* Zeroed so that equal plans compare equal byte for byte (determinism tests). */
	memset(&plan->actions[plan->n_actions], 0, sizeof(plan->actions[0]));
	return &plan->actions[plan->n_actions++];
}

km_plan_warning_t *km_plan_push_warning(km_plan_t *plan)
{
	if (plan->n_warnings == plan->cap_warnings) {
		size_t cap = plan->cap_warnings ? plan->cap_warnings * 2 : 8;
		km_plan_warning_t *w = realloc(plan->warnings, cap * sizeof(*w));
		if (w == NULL)
			return NULL;
		plan->warnings = w;
		plan->cap_warnings = cap;
	}
	memset(&plan->warnings[plan->n_warnings], 0, sizeof(plan->warnings[0]));
	return &plan->warnings[plan->n_warnings++];
}

size_t km_plan_n_actions(const km_plan_t *plan)
{
	return plan ? plan->n_actions : 0;
}

const km_plan_action_t *km_plan_action(const km_plan_t *plan, size_t i)
{
	return plan && i < plan->n_actions ? &plan->actions[i] : NULL;
}

size_t km_plan_n_warnings(const km_plan_t *plan)
{
	return plan ? plan->n_warnings : 0;
}

const km_plan_warning_t *km_plan_warning(const km_plan_t *plan, size_t i)
{
	return plan && i < plan->n_warnings ? &plan->warnings[i] : NULL;
}

int64_t km_plan_next_wake(const km_plan_t *plan)
{
	return plan ? plan->next_wake : INT64_MAX;
}

size_t km_plan_n_new_keys(const km_plan_t *plan)
{
	return plan ? plan->n_new : 0;
}

int64_t km_plan_gap(const km_plan_t *plan)
{
	return plan ? plan->gap : 0;
}

int64_t km_plan_exposure_until(const km_plan_t *plan)
{
	return plan ? plan->exposure_until : 0;
}

const char *km_plan_op_name(km_plan_op_t op)
{
	static const char *const names[KM_PLAN_OP_COUNT] = {
		"generate", "publish", "activate", "retire", "remove", "destroy", "revoke",
		"schedule",
	};
	return (unsigned)op < KM_PLAN_OP_COUNT ? names[op] : "unknown";
}

const char *km_plan_warn_name(km_plan_warn_t w)
{
	static const char *const names[KM_PLAN_W_COUNT] = {
		"overdue", "no-standby", "early-activation", "exposure", "multiple-active",
		"no-active", "bad-record",
	};
	return (unsigned)w < KM_PLAN_W_COUNT ? names[w] : "unknown";
}

/* ---------------------------------------------------------------- helpers */

#define DUR(v, buf) km_duration_format((v), (buf), sizeof(buf))

__attribute__((format(printf, 6, 7)))
static void act(ctx_t *c, km_plan_op_t op, size_t key, int64_t at, bool early, const char *fmt,
                ...)
{
	km_plan_action_t *a = km_plan_push_action(c->plan);
	if (a == NULL) {
		c->err = KM_ENOMEM;
		return;
	}
	a->op = op;
	a->key = key;
	a->at = at;
	a->early = early;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->reason, sizeof(a->reason), fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 5, 6)))
static void warn(ctx_t *c, km_plan_warn_t code, size_t key, int64_t until, const char *fmt, ...)
{
	km_plan_warning_t *w = km_plan_push_warning(c->plan);
	if (w == NULL) {
		c->err = KM_ENOMEM;
		return;
	}
	w->code = code;
	w->key = key;
	w->until = until;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
	va_end(ap);
}

/* A SCHEDULE action: key activates at `when`. */
__attribute__((format(printf, 4, 5)))
static void schedule(ctx_t *c, size_t key, int64_t when, const char *fmt, ...)
{
	km_plan_action_t *a = km_plan_push_action(c->plan);
	if (a == NULL) {
		c->err = KM_ENOMEM;
		return;
	}
	a->op = KM_PLAN_SCHEDULE;
	a->key = key;
	a->at = c->now;
	a->activate_at = when;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->reason, sizeof(a->reason), fmt, ap);
	va_end(ap);
}

static void wake_at(ctx_t *c, int64_t t)
{
	if (t > c->now && t < c->wake)
		c->wake = t;
}

/* The time key i entered state s; a missing or future one counts as now (the safe side). */
static int64_t entered(ctx_t *c, size_t i, km_state_t s, bool report)
{
	int64_t t = c->keys[i].at[s];
	if (t > 0 && t <= c->now)
		return t;
	if (report) {
		warn(c, KM_PLAN_W_BAD_RECORD, i, 0, "the key is %s but its %s time (%lld) is %s; "
		     "treated as now", km_state_name(s), km_state_name(s), (long long)t,
		     t <= 0 ? "missing" : "in the future");
	}
	return c->now;
}

static bool slot_less(size_t ai, int64_t at, const slot_t *b)
{
	return at < b->t || (at == b->t && ai < b->idx);
}

static void pub_add(ctx_t *c, size_t idx, int64_t t)
{
	if (c->n_pub == 0 || slot_less(idx, t, &c->pub[0])) {
		c->pub[1] = c->pub[0];
		c->pub[0] = (slot_t){ idx, t };
	} else if (c->n_pub == 1 || slot_less(idx, t, &c->pub[1])) {
		c->pub[1] = (slot_t){ idx, t };
	}
	c->n_pub++;
}

/* Removes the oldest published key (it is being activated). pub[1] is not needed after. */
static void pub_pop(ctx_t *c)
{
	c->pub[0] = c->pub[1];
	c->pub[1] = (slot_t){ NONE, INT64_MAX };
	c->n_pub--;
}

/* Removes published key idx (it is being activated), wherever it stands in the order. */
static void pub_remove(ctx_t *c, size_t idx)
{
	if (c->pub[0].idx == idx) {
		pub_pop(c);
		return;
	}
	if (c->pub[1].idx == idx)
		c->pub[1] = (slot_t){ NONE, INT64_MAX };
	c->n_pub--;
}

/* Keeps the two earliest requested successors: by due time, then index. */
static void req_add(ctx_t *c, size_t idx, int64_t due)
{
	if (c->req.idx == NONE || slot_less(idx, due, &c->req)) {
		c->req2 = c->req;
		c->req = (slot_t){ idx, due };
	} else if (c->req2.idx == NONE || slot_less(idx, due, &c->req2)) {
		c->req2 = (slot_t){ idx, due };
	}
}

/* The earliest request is being served (its key activates now): the next one moves up. */
static void req_pop(ctx_t *c)
{
	c->req = c->req2;
	c->req2 = (slot_t){ NONE, INT64_MAX };
}

static size_t new_key(ctx_t *c)
{
	return c->n + c->plan->n_new++;
}

/* ---------------------------------------------------------------- pass 1 */

static int scan(ctx_t *c)
{
	const km_policy_t *p = c->p;
	for (size_t i = 0; i < c->n; i++) {
		const km_plan_key_t *k = &c->keys[i];
		if ((unsigned)k->state >= KM_STATE_COUNT)
			return KM_EINVAL;
		if (k->at[KM_STATE_ACTIVE] != 0 || k->state == KM_STATE_ACTIVE ||
		    k->state == KM_STATE_RETIRED)
			c->ever_active = true;
		if (i == c->revoke)
			continue;
		int64_t t;
		switch (k->state) {
		case KM_STATE_GENERATED:
			/* Left over from an interrupted GENERATE/PUBLISH pair. */
			t = k->at[KM_STATE_GENERATED];
			act(c, KM_PLAN_PUBLISH, i, t > 0 && t <= c->now ? t : c->now, false,
			    "the key was generated but never published");
			pub_add(c, i, c->now);
			break;
		case KM_STATE_PUBLISHED:
			t = entered(c, i, KM_STATE_PUBLISHED, true);
			pub_add(c, i, t);
			if (k->activate_at > 0)
				req_add(c, i, k->activate_at > t + p->publish_lead ? k->activate_at
				                                                      : t + p->publish_lead);
			break;
		case KM_STATE_ACTIVE:
			t = entered(c, i, KM_STATE_ACTIVE, true);
			c->n_active++;
			if (c->active == NONE || t > c->t_act || (t == c->t_act && i > c->active)) {
				c->active = i;
				c->t_act = t;
			}
			break;
		case KM_STATE_RETIRED:
			t = entered(c, i, KM_STATE_RETIRED, true) + p->retire_retention;
			if (t <= c->now)
				c->n_cleanup++;
			wake_at(c, t);
			break;
		case KM_STATE_REMOVED:
		case KM_STATE_REVOKED:
			t = entered(c, i, k->state, true) + p->destroy_after;
			if (t <= c->now)
				c->n_cleanup++;
			wake_at(c, t);
			break;
		default:
			break;
		}
	}
	return KM_EOK;
}

/* ---------------------------------------------------------------- rotation */

static void retire_extra_actives(ctx_t *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->keys[i].state != KM_STATE_ACTIVE || i == c->active || i == c->revoke)
			continue;
		warn(c, KM_PLAN_W_MULTI_ACTIVE, i, 0, "the key is active next to a newer active key; "
		     "retiring it");
		act(c, KM_PLAN_RETIRE, i, c->now, false, "more than one active key: keep the newest, "
		    "retire the others");
		wake_at(c, c->now + c->p->retire_retention);
	}
}

/* No signing key: bootstrap, emergency, or a store edited by hand. Activate at once. */
static void activate_now(ctx_t *c, bool emergency)
{
	const km_policy_t *p = c->p;
	char a[32], b[32], d[32];
	const char *why = !c->ever_active ? "bootstrap" : emergency ? "emergency" : "no active key";
	size_t k;
	int64_t published;
	if (c->n_pub > 0) {
		k = c->pub[0].idx;
		published = c->pub[0].t;
		pub_pop(c);
		if (k == c->req.idx)
			req_pop(c);
		else if (k == c->req2.idx)
			c->req2 = (slot_t){ NONE, INT64_MAX };
	} else {
		k = new_key(c);
		published = c->now;
		act(c, KM_PLAN_GENERATE, k, c->now, false, "%s: no key to sign with", why);
		act(c, KM_PLAN_PUBLISH, k, c->now, false, "%s: publish the new key", why);
	}
	int64_t age = c->now - published;
	bool early = age < p->publish_lead;
	if (early) {
		act(c, KM_PLAN_ACTIVATE, k, c->now, true, "%s: activate at once, published %s ago "
		    "(publish_lead %s)", why, DUR(age, a), DUR(p->publish_lead, b));
		int64_t gap = published + p->jwks_max_age - c->now;
		if (gap < 0)
			gap = 0;
		c->plan->gap = gap;
		warn(c, KM_PLAN_W_EARLY, k, c->now + gap, "%s: the new signing key was published %s "
		     "ago, less than publish_lead (%s): verifiers that do not refetch on an unknown "
		     "kid may reject its tokens for up to %s", why, DUR(age, a),
		     DUR(p->publish_lead, b), DUR(gap, d));
	} else {
		act(c, KM_PLAN_ACTIVATE, k, c->now, false, "%s: activate the oldest published key, "
		    "published %s ago (publish_lead %s)", why, DUR(age, a), DUR(p->publish_lead, b));
	}
	if (c->ever_active && !emergency)
		warn(c, KM_PLAN_W_NO_ACTIVE, k, 0, "the key set had no active key; activating the "
		     "oldest published one");
	c->active = k;
	c->t_act = c->now;
}

/* The requested successor's time has come: it activates, the active key retires. */
static void activate_requested(ctx_t *c)
{
	const km_policy_t *p = c->p;
	char a[32], b[32];
	size_t next = c->req.idx;
	int64_t at = c->req.t;
	int64_t published = entered(c, next, KM_STATE_PUBLISHED, false);
	act(c, KM_PLAN_RETIRE, c->active, at, false, "requested rotation: the successor's "
	    "activation time has come");
	act(c, KM_PLAN_ACTIVATE, next, at, false, "requested rotation: the successor was "
	    "published %s ago (publish_lead %s)", DUR(c->now - published, a),
	    DUR(p->publish_lead, b));
	wake_at(c, c->now + p->retire_retention);
	pub_remove(c, next);
	req_pop(c);
	c->active = next;
	c->t_act = c->now;
}

/* Returns true when the active key is past its period and no successor is ready. */
static bool rotate(ctx_t *c)
{
	const km_policy_t *p = c->p;
	char a[32], b[32];
	/* A requested rotation supersedes the period's: its successor activates at its own
	 * time (at most publish_lead away), and the active key signs until then. */
	if (c->req.idx != NONE) {
		if (c->req.t <= c->now)
			activate_requested(c);
		return false;
	}
	int64_t t_rot = c->t_act + p->rotation_period;
	if (c->now < t_rot)
		return false;
	if (c->n_pub == 0 || c->pub[0].t + p->publish_lead > c->now)
		return true;
	int64_t at = t_rot > c->pub[0].t + p->publish_lead ? t_rot : c->pub[0].t + p->publish_lead;
	size_t next = c->pub[0].idx;
	act(c, KM_PLAN_RETIRE, c->active, at, false, "rotation: the active key has signed for "
	    "rotation_period (%s)", DUR(p->rotation_period, a));
	act(c, KM_PLAN_ACTIVATE, next, at, false, "rotation: the successor was published %s ago "
	    "(publish_lead %s)", DUR(c->now - c->pub[0].t, a), DUR(p->publish_lead, b));
	wake_at(c, c->now + p->retire_retention);
	pub_pop(c);
	c->active = next;
	c->t_act = c->now;
	return false;
}

/* Keeps the waiting keys the policy asks for: a standby, plus a successor in the last
 * publish_lead of the active key's period. */
static void refill(ctx_t *c)
{
	const km_policy_t *p = c->p;
	char a[32];
	int64_t t_succ = c->t_act + p->rotation_period - p->publish_lead;
	size_t standby = p->standby ? 1 : 0;
	bool requested = c->req.idx != NONE;   /* a successor waits for its requested time */
	size_t need = standby + (c->now >= t_succ || requested ? 1 : 0);
	while (c->n_pub < need && c->err == KM_EOK) {
		size_t k = new_key(c);
		if (c->n_pub < standby) {
			act(c, KM_PLAN_GENERATE, k, c->now, false, "standby: keep one key published "
			    "ahead");
			act(c, KM_PLAN_PUBLISH, k, c->now, false, "standby: in the JWKS at least "
			    "publish_lead before an emergency may need it");
		} else if (p->standby && requested) {
			act(c, KM_PLAN_GENERATE, k, c->now, false, "next standby: a requested rotation "
			    "takes the current one");
			act(c, KM_PLAN_PUBLISH, k, c->now, false, "next standby: ready when the "
			    "requested successor activates, so a ready standby always remains");
		} else if (p->standby) {
			act(c, KM_PLAN_GENERATE, k, t_succ, false, "next standby: the active key's period "
			    "ends in publish_lead (%s) or less", DUR(p->publish_lead, a));
			act(c, KM_PLAN_PUBLISH, k, t_succ, false, "next standby: ready when the standby "
			    "activates, so a ready standby always remains");
		} else {
			act(c, KM_PLAN_GENERATE, k, t_succ, false, "successor: the active key's period "
			    "ends in publish_lead (%s) or less", DUR(p->publish_lead, a));
			act(c, KM_PLAN_PUBLISH, k, t_succ, false, "successor: in the JWKS publish_lead "
			    "(%s) before it signs", DUR(p->publish_lead, a));
		}
		pub_add(c, k, c->now);
	}
}

/* ---------------------------------------------------------------- requested rotation */

/* Generates and publishes a new key now for a requested rotation; returns its number. */
static size_t rotation_new_key(ctx_t *c)
{
	size_t k = new_key(c);
	act(c, KM_PLAN_GENERATE, k, c->now, false, "requested rotation: a new successor");
	act(c, KM_PLAN_PUBLISH, k, c->now, false, "requested rotation: in the JWKS publish_lead "
	    "before it signs");
	return k;
}

/* ROTATE_NOW: a successor signs at once; the pending or oldest published one if any. */
static void rotate_now(ctx_t *c)
{
	const km_policy_t *p = c->p;
	char a[32], b[32], d[32];
	size_t k;
	int64_t published;
	if (c->req.idx != NONE) {
		k = c->req.idx;
		published = entered(c, k, KM_STATE_PUBLISHED, false);
		pub_remove(c, k);
		req_pop(c);
	} else if (c->n_pub > 0) {
		k = c->pub[0].idx;
		published = c->pub[0].t;
		pub_pop(c);
	} else {
		k = rotation_new_key(c);
		published = c->now;
	}
	int64_t age = c->now - published;
	bool early = age < p->publish_lead;
	act(c, KM_PLAN_RETIRE, c->active, c->now, false, "rotation by hand, at once");
	act(c, KM_PLAN_ACTIVATE, k, c->now, early, "rotation by hand, at once: the successor was "
	    "published %s ago (publish_lead %s)", DUR(age, a), DUR(p->publish_lead, b));
	if (early) {
		int64_t gap = published + p->jwks_max_age - c->now;
		c->plan->gap = gap > 0 ? gap : 0;
		warn(c, KM_PLAN_W_EARLY, k, c->now + c->plan->gap, "rotation at once: the new "
		     "signing key was published %s ago, less than publish_lead (%s): verifiers that "
		     "do not refetch on an unknown kid may reject its tokens for up to %s",
		     DUR(age, a), DUR(p->publish_lead, b), DUR(c->plan->gap, d));
	}
	wake_at(c, c->now + p->retire_retention);
	c->active = k;
	c->t_act = c->now;
	c->rot = (km_plan_rotation_t){ early ? KM_PLAN_ROTATED_EARLY : KM_PLAN_ROTATED_PROMOTED,
	                               k, c->now };
}

/* Promotes published key k (pub[0], ready) now: the active key retires. */
static void promote_now(ctx_t *c)
{
	const km_policy_t *p = c->p;
	char a[32], b[32];
	size_t k = c->pub[0].idx;
	act(c, KM_PLAN_RETIRE, c->active, c->now, false, "requested rotation");
	act(c, KM_PLAN_ACTIVATE, k, c->now, false, "requested rotation: the successor was "
	    "published %s ago (publish_lead %s)", DUR(c->now - c->pub[0].t, a),
	    DUR(p->publish_lead, b));
	wake_at(c, c->now + p->retire_retention);
	pub_pop(c);
	c->active = k;
	c->t_act = c->now;
	c->rot = (km_plan_rotation_t){ KM_PLAN_ROTATED_PROMOTED, k, c->now };
}

/* km_plan_rotate(): the successor of a rotation requested now (planner.h has the rules). */
static void request_rotation(ctx_t *c)
{
	const km_policy_t *p = c->p;
	char a[32];
	if (c->mode == KM_PLAN_ROTATE_NOW) {
		rotate_now(c);
		return;
	}
	if (c->req.idx != NONE) {
		if (c->req.t <= c->now) {   /* due anyway: as km_plan_compute() would */
			c->rot = (km_plan_rotation_t){ KM_PLAN_ROTATED_PROMOTED, c->req.idx, c->now };
			activate_requested(c);
			return;
		}
		if (c->mode != KM_PLAN_ROTATE_ANOTHER) {
			c->rot = (km_plan_rotation_t){ KM_PLAN_ROTATED_PENDING, c->req.idx, c->req.t };
			return;
		}
		/* One more rotation after the pending one: its successor follows at its own time. */
		size_t k = rotation_new_key(c);
		int64_t when = c->now + p->publish_lead;
		schedule(c, k, when, "requested rotation after the pending one: activates once "
		         "published for publish_lead (%s)", DUR(p->publish_lead, a));
		pub_add(c, k, c->now);
		c->rot = (km_plan_rotation_t){ KM_PLAN_ROTATED_NEW, k, when };
		return;
	}
	if (c->n_pub > 0 && c->pub[0].t + p->publish_lead <= c->now) {
		promote_now(c);
		return;
	}
	size_t k;
	int64_t when;
	km_plan_rotated_t outcome;
	if (c->n_pub > 0) {
		k = c->pub[0].idx;
		when = c->pub[0].t + p->publish_lead;
		outcome = KM_PLAN_ROTATED_SCHEDULED;
	} else {
		k = rotation_new_key(c);
		when = c->now + p->publish_lead;
		outcome = KM_PLAN_ROTATED_NEW;
		pub_add(c, k, c->now);
	}
	schedule(c, k, when, "requested rotation: activates once published for publish_lead (%s)",
	         DUR(p->publish_lead, a));
	c->req = (slot_t){ k, when };
	c->rot = (km_plan_rotation_t){ outcome, k, when };
}

/* ---------------------------------------------------------------- pass 2 */

static void cleanup(ctx_t *c)
{
	const km_policy_t *p = c->p;
	char a[32];
	for (size_t i = 0; i < c->n && c->n_cleanup > 0; i++) {
		const km_plan_key_t *k = &c->keys[i];
		if (i == c->revoke)
			continue;
		if (k->state == KM_STATE_RETIRED) {
			int64_t due = entered(c, i, KM_STATE_RETIRED, false) + p->retire_retention;
			if (due > c->now)
				continue;
			c->n_cleanup--;
			act(c, KM_PLAN_REMOVE, i, due, false, "retired retire_retention (%s) ago: no "
			    "token it signed is valid any more", DUR(p->retire_retention, a));
			if (p->destroy_after == 0)
				act(c, KM_PLAN_DESTROY, i, c->now, false, "destroy_after is 0s");
			else
				wake_at(c, c->now + p->destroy_after);
		} else if (k->state == KM_STATE_REMOVED || k->state == KM_STATE_REVOKED) {
			int64_t due = entered(c, i, k->state, false) + p->destroy_after;
			if (due > c->now)
				continue;
			c->n_cleanup--;
			act(c, KM_PLAN_DESTROY, i, due, false, "%s destroy_after (%s) ago",
			    km_state_name(k->state), DUR(p->destroy_after, a));
		}
	}
}

/* ---------------------------------------------------------------- the plan */

static void revoke_first(ctx_t *c)
{
	const km_policy_t *p = c->p;
	char a[32];
	size_t k = c->revoke;
	km_state_t s = c->keys[k].state;
	act(c, KM_PLAN_REVOKE, k, c->now, false, "emergency: the %s key is compromised; out of "
	    "the JWKS now", km_state_name(s));
	if (km_state_in_jwks(s)) {
		c->plan->exposure_until = c->now + p->jwks_max_age;
		warn(c, KM_PLAN_W_EXPOSURE, k, c->plan->exposure_until, "revoked: verifiers that "
		     "cached the JWKS may accept tokens forged with this key for up to jwks_max_age "
		     "(%s)", DUR(p->jwks_max_age, a));
	}
}

static int run(km_plan_t *plan, const km_plan_key_t *keys, size_t n, const km_policy_t *p,
               int64_t now, size_t revoke, const km_plan_rotate_mode_t *rotate_mode,
               km_plan_rotation_t *rot)
{
	int r = KM_EINVAL;
	if (plan == NULL)
		return KM_EINVAL;
	km_plan_reset(plan);
	if ((keys == NULL && n > 0) || p == NULL || now <= 0 || now > INT64_MAX / 2)
		goto out;
	if ((r = km_policy_validate(p, NULL, 0)) != KM_EOK)
		goto out;

	ctx_t c = {
		.plan = plan, .keys = keys, .n = n, .p = p, .now = now, .revoke = revoke,
		.err = KM_EOK, .wake = INT64_MAX, .active = NONE,
		.pub = { { NONE, INT64_MAX }, { NONE, INT64_MAX } }, .req = { NONE, INT64_MAX },
		.req2 = { NONE, INT64_MAX },
		.rotating = rotate_mode != NULL,
		.mode = rotate_mode != NULL ? *rotate_mode : KM_PLAN_ROTATE_NORMAL,
	};
	if (revoke != NONE) {
		r = KM_EINVAL;
		if (revoke >= n || (unsigned)keys[revoke].state >= KM_STATE_COUNT)
			goto out;
		r = KM_ETRANSITION;
		if (!km_state_transition_ok(keys[revoke].state, KM_STATE_REVOKED))
			goto out;
		revoke_first(&c);
	}
	if ((r = scan(&c)) != KM_EOK)
		goto out;

	if (c.n_active > 1)
		retire_extra_actives(&c);
	bool overdue = false;
	if (c.active == NONE) {
		activate_now(&c, revoke != NONE);
		c.rot = (km_plan_rotation_t){ KM_PLAN_ROTATED_FIRST, c.active, now };
	} else if (c.rotating) {
		request_rotation(&c);
	} else {
		overdue = rotate(&c);
	}
	refill(&c);

	/* What the key set looks like once the plan is applied. */
	char a[32], b[32], d[32];
	const km_policy_t *pp = p;
	int64_t t_rot = c.t_act + pp->rotation_period;
	int64_t ready = c.n_pub > 0 ? c.pub[0].t + pp->publish_lead : 0;
	if (overdue)
		warn(&c, KM_PLAN_W_OVERDUE, c.active, ready, "the active key is past rotation_period "
		     "(%s) by %s: its successor is not ready (publish_lead %s)",
		     DUR(pp->rotation_period, a), DUR(now - t_rot, b), DUR(pp->publish_lead, d));
	if (pp->standby && (c.n_pub == 0 || ready > now))
		warn(&c, KM_PLAN_W_NO_STANDBY, c.n_pub ? c.pub[0].idx : NONE, ready, "no standby "
		     "key published for publish_lead (%s) yet: an emergency now would leave a "
		     "verification gap", DUR(pp->publish_lead, a));
	size_t waiting = (pp->standby ? 1 : 0) + 1;
	if (c.n_pub < waiting)
		wake_at(&c, t_rot - pp->publish_lead);
	if (c.n_pub > 0)
		wake_at(&c, t_rot > ready ? t_rot : ready);
	if (c.req.idx != NONE)
		wake_at(&c, c.req.t);

	if (revoke != NONE) {
		if (pp->destroy_after == 0)
			act(&c, KM_PLAN_DESTROY, revoke, now, false, "destroy_after is 0s");
		else
			wake_at(&c, now + pp->destroy_after);
	}
	cleanup(&c);

	if ((r = c.err) != KM_EOK)
		goto out;
	plan->next_wake = c.wake;
	if (rot != NULL)
		*rot = c.rot;
	r = KM_EOK;
out:
	if (r != KM_EOK)
		km_plan_reset(plan);
	return r;
}

int km_plan_compute(km_plan_t *plan, const km_plan_key_t *keys, size_t n, const km_policy_t *p,
                    int64_t now)
{
	return run(plan, keys, n, p, now, NONE, NULL, NULL);
}

int km_plan_emergency(km_plan_t *plan, const km_plan_key_t *keys, size_t n,
                      const km_policy_t *p, int64_t now, size_t revoke)
{
	if (revoke == NONE)
		return KM_EINVAL;
	return run(plan, keys, n, p, now, revoke, NULL, NULL);
}

int km_plan_rotate(km_plan_t *plan, const km_plan_key_t *keys, size_t n, const km_policy_t *p,
                   int64_t now, km_plan_rotate_mode_t mode, km_plan_rotation_t *ret)
{
	km_plan_rotation_t rot;
	if ((unsigned)mode > KM_PLAN_ROTATE_NOW) {
		if (plan != NULL)
			km_plan_reset(plan);
		return KM_EINVAL;
	}
	int r = run(plan, keys, n, p, now, NONE, &mode, &rot);
	if (r == KM_EOK && ret != NULL)
		*ret = rot;
	return r;
}
