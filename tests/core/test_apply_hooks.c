/* SPDX-License-Identifier: Apache-2.0 */
/*
 * km_apply's before/after hooks (keymgr/core/apply.h), on a real SoftHSM token and a real
 * SQLite store, with a simulated clock: every action carried out is bracketed by exactly one
 * before() and one after(), with nothing of km_apply in between (no gate, no report, no other
 * action), so that keymgrd can hold the signing service's write lock across one action's
 * store transaction and nothing else. What each hook sees in the store proves where it runs:
 * before an ACTIVATE the key is still published, after it the key is active. Deferred and
 * stopped actions and dry runs get no hooks; a failed action's after() gets its code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/common/error.h"
#include "keymgr/config/config.h"
#include "keymgr/core/apply.h"
#include "keymgr/core/env.h"
#include "keymgr/core/keyops.h"
#include "tests/common/softhsm.h"

#define ENV "development"
#define T0 INT64_C(1900000000)   /* 2030-03-17: after any real clock in tests */
#define MAX_EVENTS 64

static const char config_fmt[] =
	"# SPDX-License-Identifier: Apache-2.0\n"
	"# Written by tests/core/test_apply_hooks.c.\n"
	"version: 1\n"
	"environments:\n"
	"  development:\n"
	"    token: { module: %s, label: %s, pin: '%s' }\n"
	"    store: %s/development.db\n"
	"    policy:\n"
	"      algorithms: [ ES256 ]\n"
	"      rotation_period: 30d\n"
	"      jwks_max_age: 1h\n"
	"      max_token_ttl: 1h\n"
	"      clock_skew: 5m\n"
	"      publish_lead: 2h\n"
	"      retire_retention: 1d\n"
	"      destroy_after: 7d\n"
	"    keysets:\n"
	"      boot: { issuer: https://issuer.test, audiences: [ api.test ] }\n"
	"      rot: { issuer: https://issuer.test, audiences: [ api.test ] }\n"
	"      held: { issuer: https://issuer.test, audiences: [ api.test ] }\n"
	"      dry: { issuer: https://issuer.test, audiences: [ api.test ] }\n"
	"      fail: { issuer: https://issuer.test, audiences: [ api.test ] }\n";

typedef enum { EV_GATE = 'g', EV_BEFORE = 'b', EV_AFTER = 'a', EV_REPORT = 'r' } ev_kind_t;

/* One callback as it was called, with the state its key had in the store at that moment. */
typedef struct {
	ev_kind_t kind;
	km_plan_op_t op;
	char kid[KM_KID_MAX + 1];
	int result;               /* after, report */
	km_state_t seen;          /* the key's state in the store; KM_STATE_COUNT: no such key */
	char active[KM_KID_MAX + 1];  /* the key set's active kid in the store ("" none) */
} ev_t;

typedef struct {
	ev_t ev[MAX_EVENTS];
	size_t n;
	const char *keyset;
	km_apply_verdict_t activate_verdict;   /* the gate's answer for an ACTIVATE */
	bool stop;                             /* the gate says STOP to everything */
	bool sabotage;                         /* before() of an ACTIVATE revokes its key */
	size_t open;                           /* before() calls not yet closed by after() */
} rec_t;

static km_test_softhsm_t hsm;
static km_config_t *cfg;
static km_env_t *env;

static void note(rec_t *r, ev_kind_t kind, km_plan_op_t op, const char *kid, int result)
{
	assert_true(r->n < MAX_EVENTS);
	ev_t *e = &r->ev[r->n++];
	km_store_key_t k, act;
	char err[256];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->op = op;
	e->result = result;
	snprintf(e->kid, sizeof(e->kid), "%s", kid);
	e->seen = KM_STATE_COUNT;
	if (kid[0] != '\0' && km_store_key_get(km_env_store(env), kid, &k, err, sizeof(err)) ==
	    KM_EOK)
		e->seen = k.state;
	if (km_store_key_active(km_env_store(env), r->keyset, &act, err, sizeof(err)) == KM_EOK)
		snprintf(e->active, sizeof(e->active), "%s", act.kid);
}

static km_apply_verdict_t on_gate(void *ctx, const char *keyset, const km_plan_action_t *a,
                                  const char *kid, int64_t now, int64_t *recheck_at)
{
	rec_t *r = ctx;
	assert_string_equal(keyset, r->keyset);
	assert_int_equal(r->open, 0);   /* never asked while an action is bracketed */
	note(r, EV_GATE, a->op, kid, KM_EOK);
	if (r->stop)
		return KM_APPLY_STOP;
	if (a->op == KM_PLAN_ACTIVATE && r->activate_verdict == KM_APPLY_DEFER) {
		*recheck_at = now + 60;
		return KM_APPLY_DEFER;
	}
	return KM_APPLY_GO;
}

static void on_before(void *ctx, const char *keyset, const km_plan_action_t *a, const char *kid)
{
	rec_t *r = ctx;
	char err[256];
	assert_string_equal(keyset, r->keyset);
	assert_int_equal(r->open, 0);   /* pairs never nest or overlap */
	r->open++;
	note(r, EV_BEFORE, a->op, kid, KM_EOK);
	if (r->sabotage && a->op == KM_PLAN_ACTIVATE)
		assert_int_equal(km_store_key_transition(km_env_store(env), kid, KM_STATE_REVOKED, T0,
		                                         "test: revoked under the action", err,
		                                         sizeof(err)), KM_EOK);
}

static void on_after(void *ctx, const char *keyset, const km_plan_action_t *a, const char *kid,
                     int result)
{
	rec_t *r = ctx;
	assert_string_equal(keyset, r->keyset);
	assert_int_equal(r->open, 1);
	r->open--;
	note(r, EV_AFTER, a->op, kid, result);
}

static void on_report(void *ctx, const km_apply_event_t *ev)
{
	rec_t *r = ctx;
	assert_int_equal(r->open, 0);   /* reported once its bracket is closed */
	note(r, EV_REPORT, ev->action->op, ev->kid, ev->result);
}

static km_apply_opts_t opts(rec_t *r, const char *keyset)
{
	memset(r, 0, sizeof(*r));
	r->keyset = keyset;
	r->activate_verdict = KM_APPLY_GO;
	km_apply_opts_t o = { .report = on_report, .ctx = r, .gate = on_gate,
	                      .before = on_before, .after = on_after };
	return o;
}

static size_t count(const rec_t *r, ev_kind_t kind, km_plan_op_t op)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += r->ev[i].kind == kind && r->ev[i].op == op;
	return n;
}

static size_t count_kind(const rec_t *r, ev_kind_t kind)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += r->ev[i].kind == kind;
	return n;
}

/* Index of the first event of this kind and op at or after from, or SIZE_MAX. */
static size_t find(const rec_t *r, size_t from, ev_kind_t kind, km_plan_op_t op)
{
	for (size_t i = from; i < r->n; i++)
		if (r->ev[i].kind == kind && r->ev[i].op == op)
			return i;
	return SIZE_MAX;
}

/* Every before() is followed at once by the after() of the same action. */
static void assert_paired(const rec_t *r)
{
	for (size_t i = 0; i < r->n; i++) {
		if (r->ev[i].kind != EV_BEFORE)
			continue;
		assert_true(i + 1 < r->n);
		assert_int_equal(r->ev[i + 1].kind, EV_AFTER);
		assert_int_equal(r->ev[i + 1].op, r->ev[i].op);
		if (r->ev[i].op != KM_PLAN_GENERATE)
			assert_string_equal(r->ev[i + 1].kid, r->ev[i].kid);
	}
	assert_int_equal(count_kind(r, EV_BEFORE), count_kind(r, EV_AFTER));
	assert_int_equal(r->open, 0);
}

static void create_keyset(const char *name)
{
	km_store_keyset_t ks;
	char err[1024] = "";
	memset(&ks, 0, sizeof(ks));
	snprintf(ks.name, sizeof(ks.name), "%s", name);
	ks.alg = KM_ALG_ES256;
	snprintf(ks.owner, sizeof(ks.owner), "team-a");
	snprintf(ks.purpose, sizeof(ks.purpose), "access-token");
	if (km_keyset_create(env, &ks, "tester", T0, err, sizeof(err)) != KM_EOK)
		fail_msg("keyset create %s: %s", name, err);
}

static int group_setup(void **state)
{
	char path[400], err[1024] = "";
	(void)state;
	if (km_test_softhsm_create(&hsm, "hooks-dev") != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/keymgr.yaml", hsm.dir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fprintf(f, config_fmt, hsm.module, hsm.label, hsm.pin_source, hsm.dir);
	if (fclose(f) != 0)
		return -1;
	if (km_config_load(path, &cfg, err, sizeof(err)) != KM_EOK ||
	    km_env_open(cfg, ENV, &env, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "test_apply_hooks: %s\n", err);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	km_env_free(env);
	km_config_free(cfg);
	km_test_softhsm_destroy(&hsm);
	return 0;
}

/* A first run (GENERATE, PUBLISH, ACTIVATE): each action bracketed, in the store's order. */
static void test_apply_hooks_bracket_each_action(void **state)
{
	rec_t r;
	char err[1024] = "";
	(void)state;
	create_keyset("boot");
	km_apply_opts_t o = opts(&r, "boot");
	assert_int_equal(km_apply_keyset(env, "boot", T0, &o, NULL, err, sizeof(err)), KM_EOK);
	assert_paired(&r);
	assert_true(count(&r, EV_BEFORE, KM_PLAN_GENERATE) >= 1);
	assert_int_equal(count(&r, EV_BEFORE, KM_PLAN_ACTIVATE), 1);
	/* One bracket per action carried out, each one reported after its after(). */
	assert_int_equal(count_kind(&r, EV_BEFORE), count_kind(&r, EV_REPORT));
	for (size_t i = 0; i < r.n; i++) {
		if (r.ev[i].kind != EV_AFTER)
			continue;
		assert_true(i + 1 < r.n);
		assert_int_equal(r.ev[i + 1].kind, EV_REPORT);
		assert_int_equal(r.ev[i + 1].op, r.ev[i].op);
		assert_string_equal(r.ev[i + 1].kid, r.ev[i].kid);
		assert_int_equal(r.ev[i].result, KM_EOK);
	}
	/* A GENERATE: no kid before (no key yet), the new key's kid after, in the store. */
	size_t b = find(&r, 0, EV_BEFORE, KM_PLAN_GENERATE);
	assert_string_equal(r.ev[b].kid, "");
	assert_true(r.ev[b + 1].kid[0] != '\0');
	assert_int_equal(r.ev[b + 1].seen, KM_STATE_GENERATED);
	/* The ACTIVATE: published before, active after, and the only active key then. */
	b = find(&r, 0, EV_BEFORE, KM_PLAN_ACTIVATE);
	assert_int_equal(r.ev[b].seen, KM_STATE_PUBLISHED);
	assert_string_equal(r.ev[b].active, "");
	assert_int_equal(r.ev[b + 1].seen, KM_STATE_ACTIVE);
	assert_string_equal(r.ev[b + 1].active, r.ev[b].kid);
}

/*
 * A rotation: the RETIRE of the active key is carried out by the ACTIVATE that follows it
 * (one transaction). The RETIRE is bracketed on its own and changes nothing; the ACTIVATE's
 * bracket holds the switch from the old key to the new one.
 */
static void test_apply_hooks_rotation_switch_inside_activate(void **state)
{
	rec_t r;
	char err[1024] = "", first[KM_KID_MAX + 1];
	int64_t now = T0, next = 0;
	(void)state;
	create_keyset("rot");
	km_apply_opts_t o = opts(&r, "rot");
	assert_int_equal(km_apply_keyset(env, "rot", now, &o, &next, err, sizeof(err)), KM_EOK);
	size_t b = find(&r, 0, EV_AFTER, KM_PLAN_ACTIVATE);
	assert_true(b != SIZE_MAX);
	snprintf(first, sizeof(first), "%s", r.ev[b].kid);
	/* Run at the planner's wake-up times until the next ACTIVATE (about 30 days on). */
	for (int i = 0; i < 50; i++) {
		now = next;
		o = opts(&r, "rot");
		assert_int_equal(km_apply_keyset(env, "rot", now, &o, &next, err, sizeof(err)),
		                 KM_EOK);
		assert_paired(&r);
		if (count(&r, EV_BEFORE, KM_PLAN_ACTIVATE) > 0)
			break;
	}
	assert_int_equal(count(&r, EV_BEFORE, KM_PLAN_ACTIVATE), 1);
	assert_true(now > T0 + 20 * 86400);
	size_t ret_b = find(&r, 0, EV_BEFORE, KM_PLAN_RETIRE);
	size_t act_b = find(&r, 0, EV_BEFORE, KM_PLAN_ACTIVATE);
	assert_true(ret_b != SIZE_MAX);
	assert_true(ret_b < act_b);
	/* The RETIRE's bracket: the first key is active on both sides of it. */
	assert_string_equal(r.ev[ret_b].kid, first);
	assert_int_equal(r.ev[ret_b + 1].seen, KM_STATE_ACTIVE);
	assert_string_equal(r.ev[ret_b + 1].active, first);
	/* The ACTIVATE's bracket: the first key active before, retired after, the new one active. */
	assert_string_equal(r.ev[act_b].active, first);
	assert_int_equal(r.ev[act_b].seen, KM_STATE_PUBLISHED);
	assert_int_equal(r.ev[act_b + 1].seen, KM_STATE_ACTIVE);
	assert_string_equal(r.ev[act_b + 1].active, r.ev[act_b].kid);
	assert_string_not_equal(r.ev[act_b].kid, first);
	/* Both reported after the switch, the RETIRE first (as before the hooks existed). */
	size_t ret_r = find(&r, 0, EV_REPORT, KM_PLAN_RETIRE);
	size_t act_r = find(&r, 0, EV_REPORT, KM_PLAN_ACTIVATE);
	assert_true(act_b + 1 < ret_r);
	assert_true(ret_r < act_r);
	km_store_key_t k;
	assert_int_equal(km_store_key_get(km_env_store(env), first, &k, err, sizeof(err)), KM_EOK);
	assert_int_equal(k.state, KM_STATE_RETIRED);
}

/* An ACTIVATE the gate defers, a STOP, and a dry run: nothing carried out, no hooks. */
static void test_apply_hooks_none_when_not_carried_out(void **state)
{
	rec_t r;
	char err[1024] = "";
	int64_t next = 0;
	(void)state;
	create_keyset("held");
	km_apply_opts_t o = opts(&r, "held");
	r.activate_verdict = KM_APPLY_DEFER;
	assert_int_equal(km_apply_keyset(env, "held", T0, &o, &next, err, sizeof(err)), KM_EOK);
	assert_paired(&r);
	assert_int_equal(count(&r, EV_GATE, KM_PLAN_ACTIVATE), 1);
	assert_int_equal(count(&r, EV_BEFORE, KM_PLAN_ACTIVATE), 0);
	assert_int_equal(count(&r, EV_REPORT, KM_PLAN_ACTIVATE), 0);
	assert_true(count(&r, EV_BEFORE, KM_PLAN_PUBLISH) >= 1);
	assert_int_equal(next, T0 + 60);   /* the gate's recheck time, as apply.h documents */

	o = opts(&r, "held");
	r.stop = true;
	assert_int_equal(km_apply_keyset(env, "held", T0 + 1, &o, &next, err, sizeof(err)),
	                 KM_EOK);
	assert_true(count_kind(&r, EV_GATE) >= 1);
	assert_int_equal(count_kind(&r, EV_BEFORE), 0);
	assert_int_equal(count_kind(&r, EV_AFTER), 0);
	assert_int_equal(count_kind(&r, EV_REPORT), 0);
	assert_int_equal(next, T0 + 1);

	create_keyset("dry");
	o = opts(&r, "dry");
	o.dry_run = true;
	assert_int_equal(km_apply_keyset(env, "dry", T0, &o, NULL, err, sizeof(err)), KM_EOK);
	assert_true(count(&r, EV_REPORT, KM_PLAN_GENERATE) >= 1);
	assert_int_equal(count_kind(&r, EV_BEFORE), 0);
	assert_int_equal(count_kind(&r, EV_AFTER), 0);
	assert_int_equal(count_kind(&r, EV_GATE), 0);
}

/* An action that fails: its after() gets the failure, then it is reported, and the run stops. */
static void test_apply_hooks_after_gets_failure(void **state)
{
	rec_t r;
	char err[1024] = "";
	(void)state;
	create_keyset("fail");
	km_apply_opts_t o = opts(&r, "fail");
	r.sabotage = true;
	int rc = km_apply_keyset(env, "fail", T0, &o, NULL, err, sizeof(err));
	assert_int_not_equal(rc, KM_EOK);
	assert_paired(&r);
	size_t b = find(&r, 0, EV_BEFORE, KM_PLAN_ACTIVATE);
	assert_true(b != SIZE_MAX);
	assert_int_equal(r.ev[b + 1].result, rc);
	assert_int_equal(r.ev[b + 1].seen, KM_STATE_REVOKED);
	assert_int_equal(r.ev[b + 2].kind, EV_REPORT);
	assert_int_equal(r.ev[b + 2].result, rc);
	assert_int_equal(b + 3, r.n);   /* nothing after the failed action */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply_hooks_bracket_each_action),
		cmocka_unit_test(test_apply_hooks_rotation_switch_inside_activate),
		cmocka_unit_test(test_apply_hooks_none_when_not_carried_out),
		cmocka_unit_test(test_apply_hooks_after_gets_failure),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
