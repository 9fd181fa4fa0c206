/* SPDX-License-Identifier: Apache-2.0 */
/* The planner, case by case. The time-travel properties are in test_timetravel.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "keymgr/common/error.h"
#include "policy/planner.h"

#define H 3600
#define DAY 86400
#define T0 ((int64_t)1800000000)
#define MAXK 64

typedef struct {
	km_plan_key_t k[MAXK];
	size_t n;
	km_plan_t *plan;
	km_policy_t p;
} fx_t;

static int setup(void **state)
{
	static fx_t fx;
	memset(&fx, 0, sizeof(fx));
	if (km_plan_create(&fx.plan) != KM_EOK)
		return -1;
	km_policy_defaults(&fx.p, "production");  /* R 90d, P 2h, M 1h, Ret 1d, D 30d, standby */
	fx.p.standby = false;
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	fx_t *fx = *state;
	km_plan_free(fx->plan);
	return 0;
}

static size_t add_key(fx_t *fx, km_state_t s, int64_t t_pub, int64_t t_act, int64_t t_ret)
{
	km_plan_key_t *k = &fx->k[fx->n];
	memset(k, 0, sizeof(*k));
	k->id = 100 + fx->n;
	k->state = s;
	if (t_pub)
		k->at[KM_STATE_GENERATED] = k->at[KM_STATE_PUBLISHED] = t_pub;
	k->at[KM_STATE_ACTIVE] = t_act;
	k->at[KM_STATE_RETIRED] = t_ret;
	return fx->n++;
}

static const km_plan_action_t *A(fx_t *fx, size_t i)
{
	const km_plan_action_t *a = km_plan_action(fx->plan, i);
	if (a == NULL)
		fail_msg("no action %zu (plan has %zu)", i, km_plan_n_actions(fx->plan));
	return a;
}

static void expect(fx_t *fx, size_t i, km_plan_op_t op, size_t key, int64_t at)
{
	const km_plan_action_t *a = A(fx, i);
	if (a->op != op || a->key != key || a->at != at)
		fail_msg("action %zu: got %s key %zu at %lld (%s), want %s key %zu at %lld", i,
		         km_plan_op_name(a->op), a->key, (long long)a->at, a->reason,
		         km_plan_op_name(op), key, (long long)at);
	assert_true(a->reason[0] != '\0');
}

static bool has_warning(fx_t *fx, km_plan_warn_t w)
{
	for (size_t i = 0; i < km_plan_n_warnings(fx->plan); i++)
		if (km_plan_warning(fx->plan, i)->code == w)
			return true;
	return false;
}

/* Applies the plan the way the daemon does: in order, each change recorded at now. */
static void apply(fx_t *fx, int64_t now)
{
	static const km_state_t to[KM_PLAN_OP_COUNT] = {
		KM_STATE_GENERATED, KM_STATE_PUBLISHED, KM_STATE_ACTIVE, KM_STATE_RETIRED,
		KM_STATE_REMOVED, KM_STATE_DESTROYED, KM_STATE_REVOKED, KM_STATE_PUBLISHED,
	};
	size_t n0 = fx->n;
	for (size_t i = 0; i < km_plan_n_actions(fx->plan); i++) {
		const km_plan_action_t *a = A(fx, i);
		size_t idx = a->key;
		if (a->op == KM_PLAN_GENERATE) {
			assert_int_equal(idx, fx->n);  /* new keys are numbered in creation order */
			memset(&fx->k[fx->n++], 0, sizeof(fx->k[0]));
		}
		assert_true(idx < fx->n);
		km_plan_key_t *k = &fx->k[idx];
		if (a->op == KM_PLAN_SCHEDULE) {   /* a requested rotation: the state stays */
			assert_int_equal(k->state, KM_STATE_PUBLISHED);
			k->activate_at = a->activate_at;
			continue;
		}
		assert_true(km_state_transition_ok(k->state, to[a->op]) || a->op == KM_PLAN_GENERATE);
		k->state = to[a->op];
		k->at[k->state] = now;
	}
	(void)n0;
}

/* Applies the current plan, then checks that nothing more is due at the same instant. */
static void apply_replan(fx_t *fx, int64_t now)
{
	apply(fx, now);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, now), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
}

static void plan_apply_replan(fx_t *fx, int64_t now)
{
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, now), KM_EOK);
	apply(fx, now);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, now), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
}

static void test_plan_bootstrap_activates_at_once(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(km_plan_compute(fx->plan, fx->k, 0, &fx->p, T0), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 3);
	expect(fx, 0, KM_PLAN_GENERATE, 0, T0);
	expect(fx, 1, KM_PLAN_PUBLISH, 0, T0);
	expect(fx, 2, KM_PLAN_ACTIVATE, 0, T0);
	assert_true(A(fx, 2)->early);
	assert_int_equal(km_plan_n_new_keys(fx->plan), 1);
	assert_int_equal(km_plan_gap(fx->plan), fx->p.jwks_max_age);
	assert_true(has_warning(fx, KM_PLAN_W_EARLY));
	assert_int_equal(km_plan_next_wake(fx->plan), T0 + 90 * DAY - 2 * H);
	plan_apply_replan(fx, T0);
	assert_int_equal(fx->k[0].state, KM_STATE_ACTIVE);
}

static void test_plan_bootstrap_with_standby(void **state)
{
	fx_t *fx = *state;
	fx->p.standby = true;
	assert_int_equal(km_plan_compute(fx->plan, fx->k, 0, &fx->p, T0), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 5);
	expect(fx, 2, KM_PLAN_ACTIVATE, 0, T0);
	expect(fx, 3, KM_PLAN_GENERATE, 1, T0);
	expect(fx, 4, KM_PLAN_PUBLISH, 1, T0);
	assert_true(has_warning(fx, KM_PLAN_W_NO_STANDBY));
	plan_apply_replan(fx, T0);
	/* Once the standby has been published publish_lead, the warning is gone. */
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, T0 + 2 * H), KM_EOK);
	assert_false(has_warning(fx, KM_PLAN_W_NO_STANDBY));
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
}

static void test_plan_steady_state_has_nothing_due(void **state)
{
	fx_t *fx = *state;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, T0 + 10 * DAY), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
	assert_int_equal(km_plan_n_warnings(fx->plan), 0);
	assert_int_equal(km_plan_next_wake(fx->plan), T0 + 90 * DAY - 2 * H);
}

static void test_plan_successor_published_rotation_lead_before(void **state)
{
	fx_t *fx = *state;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	int64_t t = T0 + 90 * DAY - 2 * H;
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, t - 1), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, t), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 2);
	expect(fx, 0, KM_PLAN_GENERATE, 1, t);
	expect(fx, 1, KM_PLAN_PUBLISH, 1, t);
	assert_int_equal(km_plan_next_wake(fx->plan), T0 + 90 * DAY);
	plan_apply_replan(fx, t);
}

static void test_plan_rotation_retires_and_activates_together(void **state)
{
	fx_t *fx = *state;
	int64_t t_rot = T0 + 90 * DAY;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	add_key(fx, KM_STATE_PUBLISHED, t_rot - 2 * H, 0, 0);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, t_rot - 1), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
	assert_int_equal(km_plan_next_wake(fx->plan), t_rot);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, t_rot), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 2);
	expect(fx, 0, KM_PLAN_RETIRE, 0, t_rot);
	expect(fx, 1, KM_PLAN_ACTIVATE, 1, t_rot);
	assert_false(A(fx, 1)->early);
	assert_int_equal(km_plan_next_wake(fx->plan), t_rot + DAY);  /* removal of key 0 */
	plan_apply_replan(fx, t_rot);
}

static void test_plan_removal_then_destruction(void **state)
{
	fx_t *fx = *state;
	add_key(fx, KM_STATE_ACTIVE, T0 - 3 * H, T0, 0);
	size_t old = add_key(fx, KM_STATE_RETIRED, T0 - 100 * DAY, T0 - 90 * DAY, T0);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, T0 + DAY - 1), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
	assert_int_equal(km_plan_next_wake(fx->plan), T0 + DAY);
	/* A late tick removes late: safe. */
	int64_t late = T0 + DAY + 5 * H;
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, late), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 1);
	expect(fx, 0, KM_PLAN_REMOVE, old, T0 + DAY);
	assert_int_equal(km_plan_next_wake(fx->plan), late + 30 * DAY);
	plan_apply_replan(fx, late);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, late + 30 * DAY), KM_EOK);
	expect(fx, 0, KM_PLAN_DESTROY, old, late + 30 * DAY);
	plan_apply_replan(fx, late + 30 * DAY);
	assert_int_equal(fx->k[old].state, KM_STATE_DESTROYED);
}

static void test_plan_destroy_after_zero_destroys_with_removal(void **state)
{
	fx_t *fx = *state;
	fx->p.destroy_after = 0;
	add_key(fx, KM_STATE_ACTIVE, T0 - 3 * H, T0, 0);
	size_t old = add_key(fx, KM_STATE_RETIRED, T0 - 100 * DAY, T0 - 90 * DAY, T0);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, T0 + DAY), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 2);
	expect(fx, 0, KM_PLAN_REMOVE, old, T0 + DAY);
	expect(fx, 1, KM_PLAN_DESTROY, old, T0 + DAY);
	plan_apply_replan(fx, T0 + DAY);
}

static void test_plan_catch_up_never_activates_early(void **state)
{
	fx_t *fx = *state;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	/* The daemon was down across both the publication and the rotation time. */
	int64_t now = T0 + 90 * DAY + 21 * DAY;
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, now), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 2);
	expect(fx, 0, KM_PLAN_GENERATE, 1, T0 + 90 * DAY - 2 * H);
	expect(fx, 1, KM_PLAN_PUBLISH, 1, T0 + 90 * DAY - 2 * H);
	assert_true(has_warning(fx, KM_PLAN_W_OVERDUE));
	assert_int_equal(km_plan_next_wake(fx->plan), now + 2 * H);
	plan_apply_replan(fx, now);
	/* One second short of publish_lead: still nothing. */
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, now + 2 * H - 1), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
	assert_true(has_warning(fx, KM_PLAN_W_OVERDUE));
	assert_int_equal(km_plan_warning(fx->plan, 0)->until, now + 2 * H);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, now + 2 * H), KM_EOK);
	expect(fx, 0, KM_PLAN_RETIRE, 0, now + 2 * H);
	expect(fx, 1, KM_PLAN_ACTIVATE, 1, now + 2 * H);
	assert_false(has_warning(fx, KM_PLAN_W_OVERDUE));
}

static void test_plan_catch_up_rotates_late_with_ready_successor(void **state)
{
	fx_t *fx = *state;
	int64_t t_rot = T0 + 90 * DAY;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	add_key(fx, KM_STATE_PUBLISHED, t_rot - 2 * H, 0, 0);
	int64_t now = t_rot + 14 * DAY;
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, now), KM_EOK);
	expect(fx, 0, KM_PLAN_RETIRE, 0, t_rot);
	expect(fx, 1, KM_PLAN_ACTIVATE, 1, t_rot);
	plan_apply_replan(fx, now);
	/* Removal counts from the real retirement (now), not the scheduled one. */
	assert_int_equal(km_plan_next_wake(fx->plan), now + DAY);
}

static void test_plan_emergency_with_standby_has_no_gap(void **state)
{
	fx_t *fx = *state;
	fx->p.standby = true;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	add_key(fx, KM_STATE_PUBLISHED, T0, 0, 0);
	int64_t now = T0 + 10 * DAY;
	assert_int_equal(km_plan_emergency(fx->plan, fx->k, fx->n, &fx->p, now, 0), KM_EOK);
	expect(fx, 0, KM_PLAN_REVOKE, 0, now);
	expect(fx, 1, KM_PLAN_ACTIVATE, 1, now);
	assert_false(A(fx, 1)->early);
	expect(fx, 2, KM_PLAN_GENERATE, 2, now);  /* a new standby */
	expect(fx, 3, KM_PLAN_PUBLISH, 2, now);
	assert_int_equal(km_plan_gap(fx->plan), 0);
	assert_int_equal(km_plan_exposure_until(fx->plan), now + H);
	assert_true(has_warning(fx, KM_PLAN_W_EXPOSURE));
	assert_false(has_warning(fx, KM_PLAN_W_EARLY));
	apply_replan(fx, now);
	assert_int_equal(fx->k[0].state, KM_STATE_REVOKED);
}

static void test_plan_emergency_without_standby_reports_gap(void **state)
{
	fx_t *fx = *state;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	int64_t now = T0 + 10 * DAY;
	assert_int_equal(km_plan_emergency(fx->plan, fx->k, fx->n, &fx->p, now, 0), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 4);
	expect(fx, 0, KM_PLAN_REVOKE, 0, now);
	expect(fx, 1, KM_PLAN_GENERATE, 1, now);
	expect(fx, 2, KM_PLAN_PUBLISH, 1, now);
	expect(fx, 3, KM_PLAN_ACTIVATE, 1, now);
	assert_true(A(fx, 3)->early);
	assert_int_equal(km_plan_gap(fx->plan), fx->p.jwks_max_age);
	assert_true(has_warning(fx, KM_PLAN_W_EARLY));
	apply_replan(fx, now);
}

static void test_plan_emergency_promotes_young_successor_with_shorter_gap(void **state)
{
	fx_t *fx = *state;
	int64_t now = T0 + 90 * DAY - H;  /* successor published an hour ago (publish_lead 2h) */
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	add_key(fx, KM_STATE_PUBLISHED, now - 40 * 60, 0, 0);
	assert_int_equal(km_plan_emergency(fx->plan, fx->k, fx->n, &fx->p, now, 0), KM_EOK);
	expect(fx, 1, KM_PLAN_ACTIVATE, 1, now);
	assert_true(A(fx, 1)->early);
	assert_int_equal(km_plan_gap(fx->plan), 20 * 60);  /* jwks_max_age - 40 min */
}

static void test_plan_emergency_rejects_bad_key(void **state)
{
	fx_t *fx = *state;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	size_t gone = add_key(fx, KM_STATE_DESTROYED, T0 - 200 * DAY, T0 - 190 * DAY, T0 - 100 * DAY);
	assert_int_equal(km_plan_emergency(fx->plan, fx->k, fx->n, &fx->p, T0, gone),
	                 KM_ETRANSITION);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
	assert_int_equal(km_plan_emergency(fx->plan, fx->k, fx->n, &fx->p, T0, 7), KM_EINVAL);
	assert_int_equal(km_plan_emergency(fx->plan, fx->k, fx->n, &fx->p, T0, SIZE_MAX),
	                 KM_EINVAL);
}

static void test_plan_emergency_on_standby_replaces_it(void **state)
{
	fx_t *fx = *state;
	fx->p.standby = true;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	size_t sb = add_key(fx, KM_STATE_PUBLISHED, T0, 0, 0);
	assert_int_equal(km_plan_emergency(fx->plan, fx->k, fx->n, &fx->p, T0 + DAY, sb), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 3);
	expect(fx, 0, KM_PLAN_REVOKE, sb, T0 + DAY);
	expect(fx, 1, KM_PLAN_GENERATE, 2, T0 + DAY);
	expect(fx, 2, KM_PLAN_PUBLISH, 2, T0 + DAY);
	assert_int_equal(km_plan_gap(fx->plan), 0);
}

static void test_plan_multiple_active_keeps_newest(void **state)
{
	fx_t *fx = *state;
	add_key(fx, KM_STATE_ACTIVE, T0 - 3 * DAY, T0 - 2 * DAY, 0);
	add_key(fx, KM_STATE_ACTIVE, T0 - 3 * DAY, T0, 0);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, T0 + H), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 1);
	expect(fx, 0, KM_PLAN_RETIRE, 0, T0 + H);
	assert_true(has_warning(fx, KM_PLAN_W_MULTI_ACTIVE));
	plan_apply_replan(fx, T0 + H);
}

static void test_plan_interrupted_rotation_resumes_without_gap(void **state)
{
	fx_t *fx = *state;
	int64_t t_rot = T0 + 90 * DAY;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	add_key(fx, KM_STATE_PUBLISHED, t_rot - 2 * H, 0, 0);
	/* The RETIRE was applied, then the process died before the ACTIVATE. */
	fx->k[0].state = KM_STATE_RETIRED;
	fx->k[0].at[KM_STATE_RETIRED] = t_rot;
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, t_rot + 60), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 1);
	expect(fx, 0, KM_PLAN_ACTIVATE, 1, t_rot + 60);
	assert_false(A(fx, 0)->early);
	assert_true(has_warning(fx, KM_PLAN_W_NO_ACTIVE));
	plan_apply_replan(fx, t_rot + 60);
}

static void test_plan_leftover_generated_key_is_published(void **state)
{
	fx_t *fx = *state;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	size_t g = add_key(fx, KM_STATE_GENERATED, 0, 0, 0);
	fx->k[g].at[KM_STATE_GENERATED] = T0 + 89 * DAY;
	int64_t now = T0 + 90 * DAY - H;
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, now), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 1);  /* it is the successor: no new key */
	expect(fx, 0, KM_PLAN_PUBLISH, g, T0 + 89 * DAY);
	plan_apply_replan(fx, now);
	/* Its publish_lead counts from the real publication. */
	assert_int_equal(km_plan_next_wake(fx->plan), now + 2 * H);
}

static void test_plan_bad_records_are_treated_as_now(void **state)
{
	fx_t *fx = *state;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, 0, 0);  /* active, no activation time */
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, T0 + 365 * DAY), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
	assert_true(has_warning(fx, KM_PLAN_W_BAD_RECORD));
	assert_int_equal(km_plan_next_wake(fx->plan), T0 + 365 * DAY + 90 * DAY - 2 * H);
}

static void test_plan_rejects_bad_input(void **state)
{
	fx_t *fx = *state;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	km_policy_t bad = fx->p;
	bad.publish_lead = 60;
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &bad, T0), KM_POLICY_EUNSAFE);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
	assert_int_equal(km_plan_compute(fx->plan, NULL, 1, &fx->p, T0), KM_EINVAL);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, NULL, T0), KM_EINVAL);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, 0), KM_EINVAL);
	assert_int_equal(km_plan_compute(NULL, fx->k, fx->n, &fx->p, T0), KM_EINVAL);
	fx->k[0].state = (km_state_t)42;
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, T0), KM_EINVAL);
	km_plan_free(NULL);
}

static void test_plan_is_deterministic(void **state)
{
	fx_t *fx = *state;
	km_plan_t *other;
	assert_int_equal(km_plan_create(&other), KM_EOK);
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	add_key(fx, KM_STATE_RETIRED, T0 - 100 * DAY, T0 - 90 * DAY, T0);
	int64_t now = T0 + 120 * DAY;
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, now), KM_EOK);
	assert_int_equal(km_plan_compute(other, fx->k, fx->n, &fx->p, now), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), km_plan_n_actions(other));
	assert_true(km_plan_n_actions(other) > 0);
	for (size_t i = 0; i < km_plan_n_actions(other); i++)
		assert_memory_equal(km_plan_action(fx->plan, i), km_plan_action(other, i),
		                    sizeof(km_plan_action_t));
	assert_int_equal(km_plan_next_wake(fx->plan), km_plan_next_wake(other));
	km_plan_free(other);
}

static void test_plan_upcoming_follows_one_key_through_its_life(void **state)
{
	fx_t *fx = *state;
	int64_t R = 90 * DAY, P = 2 * H, Ret = DAY, D = 30 * DAY;
	assert_int_equal(km_plan_upcoming(fx->plan, fx->k, 0, &fx->p, T0, 200 * DAY), KM_EOK);
	const struct {
		km_plan_op_t op;
		size_t key;
		int64_t at;
	} want[] = {
		{ KM_PLAN_GENERATE, 0, T0 }, { KM_PLAN_PUBLISH, 0, T0 }, { KM_PLAN_ACTIVATE, 0, T0 },
		{ KM_PLAN_GENERATE, 1, T0 + R - P }, { KM_PLAN_PUBLISH, 1, T0 + R - P },
		{ KM_PLAN_RETIRE, 0, T0 + R }, { KM_PLAN_ACTIVATE, 1, T0 + R },
		{ KM_PLAN_REMOVE, 0, T0 + R + Ret },
		{ KM_PLAN_DESTROY, 0, T0 + R + Ret + D },
		{ KM_PLAN_GENERATE, 2, T0 + 2 * R - P }, { KM_PLAN_PUBLISH, 2, T0 + 2 * R - P },
		{ KM_PLAN_RETIRE, 1, T0 + 2 * R }, { KM_PLAN_ACTIVATE, 2, T0 + 2 * R },
		{ KM_PLAN_REMOVE, 1, T0 + 2 * R + Ret },
	};
	size_t n = sizeof(want) / sizeof(want[0]);
	assert_int_equal(km_plan_n_actions(fx->plan), n);
	for (size_t i = 0; i < n; i++)
		expect(fx, i, want[i].op, want[i].key, want[i].at);
	assert_int_equal(km_plan_n_new_keys(fx->plan), 3);
	assert_int_equal(km_plan_next_wake(fx->plan), T0 + R - P);
	assert_true(has_warning(fx, KM_PLAN_W_EARLY));
	assert_int_equal(km_plan_upcoming(fx->plan, fx->k, 0, &fx->p, T0, -1), KM_EINVAL);
}

static void test_plan_upcoming_numbers_keys_after_the_callers(void **state)
{
	fx_t *fx = *state;
	add_key(fx, KM_STATE_DESTROYED, T0 - 300 * DAY, T0 - 290 * DAY, T0 - 200 * DAY);
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	assert_int_equal(km_plan_upcoming(fx->plan, fx->k, fx->n, &fx->p, T0 + DAY, 90 * DAY),
	                 KM_EOK);
	expect(fx, 0, KM_PLAN_GENERATE, 2, T0 + 90 * DAY - 2 * H);
	expect(fx, 2, KM_PLAN_RETIRE, 1, T0 + 90 * DAY);
	expect(fx, 3, KM_PLAN_ACTIVATE, 2, T0 + 90 * DAY);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* ---- rotations requested by hand (km_plan_rotate) ---- */

static km_plan_rotation_t rotate_at(fx_t *fx, int64_t now, km_plan_rotate_mode_t mode)
{
	km_plan_rotation_t rot;
	memset(&rot, 0xff, sizeof(rot));
	assert_int_equal(km_plan_rotate(fx->plan, fx->k, fx->n, &fx->p, now, mode, &rot), KM_EOK);
	return rot;
}

static void expect_schedule(fx_t *fx, size_t i, size_t key, int64_t when)
{
	const km_plan_action_t *a = A(fx, i);
	if (a->op != KM_PLAN_SCHEDULE || a->key != key || a->activate_at != when)
		fail_msg("action %zu: got %s key %zu activate_at %lld, want schedule key %zu at %lld",
		         i, km_plan_op_name(a->op), a->key, (long long)a->activate_at, key,
		         (long long)when);
}

/* A standby published >= publish_lead ago is promoted at once; a new standby is made. */
static void test_rotate_promotes_ready_standby(void **state)
{
	fx_t *fx = *state;
	fx->p.standby = true;
	int64_t now = T0 + 10 * DAY;
	size_t cur = add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	size_t sb = add_key(fx, KM_STATE_PUBLISHED, T0, 0, 0);
	km_plan_rotation_t rot = rotate_at(fx, now, KM_PLAN_ROTATE_NORMAL);
	assert_int_equal(rot.outcome, KM_PLAN_ROTATED_PROMOTED);
	assert_int_equal(rot.key, sb);
	assert_int_equal(rot.at, now);
	assert_int_equal(km_plan_n_actions(fx->plan), 4);
	expect(fx, 0, KM_PLAN_RETIRE, cur, now);
	expect(fx, 1, KM_PLAN_ACTIVATE, sb, now);
	assert_false(A(fx, 1)->early);
	expect(fx, 2, KM_PLAN_GENERATE, 2, now);
	expect(fx, 3, KM_PLAN_PUBLISH, 2, now);
	assert_int_equal(km_plan_gap(fx->plan), 0);
	apply_replan(fx, now);
	assert_int_equal(fx->k[sb].state, KM_STATE_ACTIVE);
	assert_int_equal(fx->k[cur].state, KM_STATE_RETIRED);
}

/* A younger standby becomes the successor at its publish time + publish_lead; the next
 * standby is made at once, so that one is ready when the successor signs. */
static void test_rotate_schedules_young_standby(void **state)
{
	fx_t *fx = *state;
	fx->p.standby = true;
	int64_t now = T0 + 10 * DAY, pub = now - H, when = pub + 2 * H;
	size_t cur = add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	size_t sb = add_key(fx, KM_STATE_PUBLISHED, pub, 0, 0);
	km_plan_rotation_t rot = rotate_at(fx, now, KM_PLAN_ROTATE_NORMAL);
	assert_int_equal(rot.outcome, KM_PLAN_ROTATED_SCHEDULED);
	assert_int_equal(rot.key, sb);
	assert_int_equal(rot.at, when);
	assert_int_equal(km_plan_n_actions(fx->plan), 3);
	expect_schedule(fx, 0, sb, when);
	expect(fx, 1, KM_PLAN_GENERATE, 2, now);
	expect(fx, 2, KM_PLAN_PUBLISH, 2, now);
	assert_int_equal(km_plan_next_wake(fx->plan), when);
	apply_replan(fx, now);
	assert_int_equal(fx->k[sb].activate_at, when);
	/* Nothing earlier, the activation at the promised second, and nothing more after. */
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, when - 1), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
	assert_int_equal(km_plan_next_wake(fx->plan), when);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, when), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 2);
	expect(fx, 0, KM_PLAN_RETIRE, cur, when);
	expect(fx, 1, KM_PLAN_ACTIVATE, sb, when);
	assert_false(A(fx, 1)->early);
	apply_replan(fx, when);
	assert_int_equal(fx->k[2].state, KM_STATE_PUBLISHED);   /* the standby that remains */
}

/* Without a standby: a new key, activating publish_lead from now; `apply` running late
 * activates it at its first run after that time, recording the time it was due. */
static void test_rotate_without_standby_publishes_new_key(void **state)
{
	fx_t *fx = *state;
	int64_t now = T0 + 10 * DAY, when = now + 2 * H;
	size_t cur = add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	km_plan_rotation_t rot = rotate_at(fx, now, KM_PLAN_ROTATE_NORMAL);
	assert_int_equal(rot.outcome, KM_PLAN_ROTATED_NEW);
	assert_int_equal(rot.key, 1);
	assert_int_equal(rot.at, when);
	assert_int_equal(km_plan_n_actions(fx->plan), 3);
	expect(fx, 0, KM_PLAN_GENERATE, 1, now);
	expect(fx, 1, KM_PLAN_PUBLISH, 1, now);
	expect_schedule(fx, 2, 1, when);
	apply_replan(fx, now);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, when + 5 * H), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 2);
	expect(fx, 0, KM_PLAN_RETIRE, cur, when);
	expect(fx, 1, KM_PLAN_ACTIVATE, 1, when);
	apply_replan(fx, when + 5 * H);
}

/* A successor the schedule already published (the last publish_lead of the period) is the
 * one a request activates: at its own publish time + publish_lead. */
static void test_rotate_takes_scheduled_successor(void **state)
{
	fx_t *fx = *state;
	int64_t t_succ = T0 + 90 * DAY - 2 * H, now = t_succ + 30 * 60;
	add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	size_t succ = add_key(fx, KM_STATE_PUBLISHED, t_succ, 0, 0);
	km_plan_rotation_t rot = rotate_at(fx, now, KM_PLAN_ROTATE_NORMAL);
	assert_int_equal(rot.outcome, KM_PLAN_ROTATED_SCHEDULED);
	assert_int_equal(rot.key, succ);
	assert_int_equal(rot.at, t_succ + 2 * H);
	assert_int_equal(km_plan_n_actions(fx->plan), 1);
	expect_schedule(fx, 0, succ, t_succ + 2 * H);
	apply_replan(fx, now);
}

/* A pending rotation: nothing is added and the pending key and time are said; ANOTHER
 * asks for one more, whose new key follows at its own time. */
static void test_rotate_pending_adds_nothing_unless_another(void **state)
{
	fx_t *fx = *state;
	int64_t now = T0 + 10 * DAY, t1 = now + 2 * H, later = now + H, t2 = later + 2 * H;
	size_t cur = add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	rotate_at(fx, now, KM_PLAN_ROTATE_NORMAL);
	apply_replan(fx, now);
	km_plan_rotation_t rot = rotate_at(fx, later, KM_PLAN_ROTATE_NORMAL);
	assert_int_equal(rot.outcome, KM_PLAN_ROTATED_PENDING);
	assert_int_equal(rot.key, 1);
	assert_int_equal(rot.at, t1);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
	rot = rotate_at(fx, later, KM_PLAN_ROTATE_ANOTHER);
	assert_int_equal(rot.outcome, KM_PLAN_ROTATED_NEW);
	assert_int_equal(rot.key, 2);
	assert_int_equal(rot.at, t2);
	assert_int_equal(km_plan_n_actions(fx->plan), 3);
	expect_schedule(fx, 2, 2, t2);
	apply_replan(fx, later);
	/* The first successor at its time, the second at its own. */
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, t1), KM_EOK);
	assert_int_equal(km_plan_next_wake(fx->plan), t2);
	expect(fx, 0, KM_PLAN_RETIRE, cur, t1);
	expect(fx, 1, KM_PLAN_ACTIVATE, 1, t1);
	apply_replan(fx, t1);
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, t2), KM_EOK);
	expect(fx, 0, KM_PLAN_RETIRE, 1, t2);
	expect(fx, 1, KM_PLAN_ACTIVATE, 2, t2);
	apply_replan(fx, t2);
}

/* --now --force: the pending successor signs at once (early: the gap is reported), nothing
 * new is made for it; without any waiting key a new one is made and activated. */
static void test_rotate_now_takes_pending_successor(void **state)
{
	fx_t *fx = *state;
	int64_t now = T0 + 10 * DAY, later = now + 30 * 60;
	size_t cur = add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	rotate_at(fx, now, KM_PLAN_ROTATE_NORMAL);
	apply_replan(fx, now);
	km_plan_rotation_t rot = rotate_at(fx, later, KM_PLAN_ROTATE_NOW);
	assert_int_equal(rot.outcome, KM_PLAN_ROTATED_EARLY);
	assert_int_equal(rot.key, 1);
	assert_int_equal(km_plan_n_actions(fx->plan), 2);
	expect(fx, 0, KM_PLAN_RETIRE, cur, later);
	expect(fx, 1, KM_PLAN_ACTIVATE, 1, later);
	assert_true(A(fx, 1)->early);
	assert_int_equal(km_plan_gap(fx->plan), now + fx->p.jwks_max_age - later);
	assert_true(has_warning(fx, KM_PLAN_W_EARLY));
	apply_replan(fx, later);
	/* No waiting key now: a new one, at once. */
	rot = rotate_at(fx, later + 60, KM_PLAN_ROTATE_NOW);
	assert_int_equal(rot.outcome, KM_PLAN_ROTATED_EARLY);
	assert_int_equal(rot.key, 2);
	assert_int_equal(km_plan_n_actions(fx->plan), 4);
	expect(fx, 0, KM_PLAN_GENERATE, 2, later + 60);
	expect(fx, 3, KM_PLAN_ACTIVATE, 2, later + 60);
	assert_int_equal(km_plan_gap(fx->plan), fx->p.jwks_max_age);
	apply_replan(fx, later + 60);
}

/* No active key: the first key activates at once, whatever the mode. */
static void test_rotate_first_key(void **state)
{
	fx_t *fx = *state;
	km_plan_rotation_t rot = rotate_at(fx, T0, KM_PLAN_ROTATE_NORMAL);
	assert_int_equal(rot.outcome, KM_PLAN_ROTATED_FIRST);
	assert_int_equal(rot.key, 0);
	assert_int_equal(rot.at, T0);
	expect(fx, 2, KM_PLAN_ACTIVATE, 0, T0);
	apply_replan(fx, T0);
}

/* A recorded time earlier than publication + publish_lead (a store edited by hand) never
 * activates the key early; `plan` shows the requested activation, not the period's. */
static void test_rotate_request_never_early_and_upcoming_shows_it(void **state)
{
	fx_t *fx = *state;
	int64_t now = T0 + 10 * DAY;
	size_t cur = add_key(fx, KM_STATE_ACTIVE, T0 - DAY, T0, 0);
	size_t k = add_key(fx, KM_STATE_PUBLISHED, now, 0, 0);
	fx->k[k].activate_at = now + 1;
	assert_int_equal(km_plan_compute(fx->plan, fx->k, fx->n, &fx->p, now + 1), KM_EOK);
	assert_int_equal(km_plan_n_actions(fx->plan), 0);
	assert_int_equal(km_plan_next_wake(fx->plan), now + 2 * H);
	assert_int_equal(km_plan_upcoming(fx->plan, fx->k, fx->n, &fx->p, now + 1, DAY), KM_EOK);
	assert_true(km_plan_n_actions(fx->plan) >= 2);
	expect(fx, 0, KM_PLAN_RETIRE, cur, now + 2 * H);
	expect(fx, 1, KM_PLAN_ACTIVATE, k, now + 2 * H);
	assert_int_equal(km_plan_rotate(fx->plan, fx->k, fx->n, &fx->p, now, (km_plan_rotate_mode_t)7,
	                                NULL), KM_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_plan_bootstrap_activates_at_once),
		T(test_plan_bootstrap_with_standby),
		T(test_plan_steady_state_has_nothing_due),
		T(test_plan_successor_published_rotation_lead_before),
		T(test_plan_rotation_retires_and_activates_together),
		T(test_plan_removal_then_destruction),
		T(test_plan_destroy_after_zero_destroys_with_removal),
		T(test_plan_catch_up_never_activates_early),
		T(test_plan_catch_up_rotates_late_with_ready_successor),
		T(test_plan_emergency_with_standby_has_no_gap),
		T(test_plan_emergency_without_standby_reports_gap),
		T(test_plan_emergency_promotes_young_successor_with_shorter_gap),
		T(test_plan_emergency_rejects_bad_key),
		T(test_plan_emergency_on_standby_replaces_it),
		T(test_plan_multiple_active_keeps_newest),
		T(test_plan_interrupted_rotation_resumes_without_gap),
		T(test_plan_leftover_generated_key_is_published),
		T(test_plan_bad_records_are_treated_as_now),
		T(test_plan_rejects_bad_input),
		T(test_plan_is_deterministic),
		T(test_plan_upcoming_follows_one_key_through_its_life),
		T(test_plan_upcoming_numbers_keys_after_the_callers),
		T(test_rotate_promotes_ready_standby),
		T(test_rotate_schedules_young_standby),
		T(test_rotate_without_standby_publishes_new_key),
		T(test_rotate_takes_scheduled_successor),
		T(test_rotate_pending_adds_nothing_unless_another),
		T(test_rotate_now_takes_pending_successor),
		T(test_rotate_first_key),
		T(test_rotate_request_never_early_and_upcoming_shows_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
