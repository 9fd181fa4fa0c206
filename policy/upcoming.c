/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The planner run forward in time on a private copy of the keys: what `keymgr plan
 * --horizon` prints, and what docs/timing.md's timeline is drawn from. Still pure: the only
 * clock is the wake-up times the planner itself returns.
 */
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "policy/plan_internal.h"

#define MAX_EVENTS 100000

static const km_state_t op_state[KM_PLAN_OP_COUNT] = {
	[KM_PLAN_GENERATE] = KM_STATE_GENERATED,
	[KM_PLAN_PUBLISH] = KM_STATE_PUBLISHED,
	[KM_PLAN_ACTIVATE] = KM_STATE_ACTIVE,
	[KM_PLAN_RETIRE] = KM_STATE_RETIRED,
	[KM_PLAN_REMOVE] = KM_STATE_REMOVED,
	[KM_PLAN_DESTROY] = KM_STATE_DESTROYED,
	[KM_PLAN_REVOKE] = KM_STATE_REVOKED,
	[KM_PLAN_SCHEDULE] = KM_STATE_PUBLISHED,   /* not used: a SCHEDULE changes no state */
};

typedef struct {
	km_plan_key_t *keys;
	size_t *orig;          /* the number each simulated key is reported under */
	size_t n, cap;
} sim_t;

static int sim_reserve(sim_t *s, size_t more)
{
	if (s->n + more <= s->cap)
		return KM_EOK;
	size_t cap = (s->n + more) * 2;
	km_plan_key_t *k = realloc(s->keys, cap * sizeof(*k));
	if (k == NULL)
		return KM_ENOMEM;
	s->keys = k;
	size_t *o = realloc(s->orig, cap * sizeof(*o));
	if (o == NULL)
		return KM_ENOMEM;
	s->orig = o;
	s->cap = cap;
	return KM_EOK;
}

/* Applies one step's plan to the copy at time t and appends its actions to out. */
static int apply_step(sim_t *s, const km_plan_t *step, int64_t t, size_t n_user,
                      size_t *n_made, km_plan_t *out)
{
	if (sim_reserve(s, step->n_new) != KM_EOK)
		return KM_ENOMEM;
	for (size_t i = 0; i < step->n_actions; i++) {
		const km_plan_action_t *a = &step->actions[i];
		size_t idx = a->key;
		if (a->op == KM_PLAN_GENERATE) {
			/* The step numbers its j-th new key m + j: the next free slot. */
			if (idx != s->n)
				return KM_ERROR;
			s->n++;
			memset(&s->keys[idx], 0, sizeof(s->keys[idx]));
			s->orig[idx] = n_user + (*n_made)++;
		}
		if (idx >= s->n || (unsigned)a->op >= KM_PLAN_OP_COUNT)
			return KM_ERROR;
		km_plan_key_t *k = &s->keys[idx];
		if (a->op == KM_PLAN_SCHEDULE) {
			k->activate_at = a->activate_at;   /* a request: the state stays */
		} else {
			k->state = op_state[a->op];
			k->at[k->state] = t;
		}

		if (out->n_actions >= MAX_EVENTS)
			return KM_ERANGE;
		km_plan_action_t *e = km_plan_push_action(out);
		if (e == NULL)
			return KM_ENOMEM;
		*e = *a;
		e->key = s->orig[idx];
	}
	return KM_EOK;
}

int km_plan_upcoming(km_plan_t *plan, const km_plan_key_t *keys, size_t n,
                     const km_policy_t *p, int64_t now, int64_t horizon)
{
	int r = KM_EINVAL;
	sim_t s = { 0 };
	km_plan_t *step = NULL;
	size_t n_made = 0;
	int64_t first_wake = INT64_MAX;
	if (plan == NULL)
		return KM_EINVAL;
	km_plan_reset(plan);
	if ((keys == NULL && n > 0) || horizon < 0 || horizon > KM_DURATION_MAX || now <= 0 ||
	    now > INT64_MAX / 4)
		goto out;
	if ((r = km_plan_create(&step)) != KM_EOK)
		goto out;
	if ((r = sim_reserve(&s, n + 8)) != KM_EOK)
		goto out;
	/* Destroyed keys never produce an event: leave them out of the copy. */
	for (size_t i = 0; i < n; i++) {
		if (keys[i].state == KM_STATE_DESTROYED)
			continue;
		s.keys[s.n] = keys[i];
		s.orig[s.n++] = i;
	}

	int64_t t = now;
	for (bool first = true; t <= now + horizon; first = false) {
		if ((r = km_plan_compute(step, s.keys, s.n, p, t)) != KM_EOK)
			goto out;
		if (first) {
			first_wake = step->next_wake;
			plan->gap = step->gap;
			for (size_t i = 0; i < step->n_warnings; i++) {
				km_plan_warning_t *w = km_plan_push_warning(plan);
				r = KM_ENOMEM;
				if (w == NULL)
					goto out;
				*w = step->warnings[i];
				if (w->key != SIZE_MAX)
					w->key = w->key < s.n ? s.orig[w->key] : n + (w->key - s.n);
			}
		}
		if ((r = apply_step(&s, step, t, n, &n_made, plan)) != KM_EOK)
			goto out;
		if (step->next_wake == INT64_MAX)
			break;
		t = step->next_wake;
	}
	plan->next_wake = first_wake;
	plan->n_new = n_made;
	r = KM_EOK;
out:
	if (r != KM_EOK)
		km_plan_reset(plan);
	km_plan_free(step);
	free(s.keys);
	free(s.orig);
	return r;
}
