/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A scripted year of rotations: km_apply_keyset() (the code path of `keymgr apply` and
 * keymgrd) driven at the planner's own wake-up times from a simulated clock, on a real
 * SoftHSM token, with a 30-day rotation (about a dozen ES256 keys). After each tick the test
 * records the JWKS the environment serves. Then, for every tick and moments between ticks:
 *   - `audit report --at T` (replayed from the audit log) lists as trusted exactly the kids
 *     of the JWKS history's version in force at T,
 *   - `jwks show --at T` returns exactly the keys that were published at T (as recorded by
 *     the test itself while the year ran),
 * in-process for every moment and through the keymgr executable for a sample.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"
#include "keymgr/core/apply.h"
#include "keymgr/core/keyops.h"
#include "tests/audit/fixture.h"

#define T0 INT64_C(1900000000)               /* 2030-03-17: after any real clock in tests */
#define YEAR (INT64_C(365) * 86400)
#define MAX_TICKS 512

typedef struct {
	int64_t at;
	char *kids;                               /* JSON array text of the served JWKS's kids */
} tick_t;

static audit_fx_t fx;
static const char *keymgr;
static tick_t ticks[MAX_TICKS];
static size_t n_ticks;

/* The kids of a JWKS document as a compact JSON array text (malloc'd). */
static char *kids_of_jwks(const char *doc)
{
	json_t *j = json_loads(doc, 0, NULL), *kids = json_array();
	size_t i;
	json_t *k;
	assert_non_null(j);
	json_array_foreach(json_object_get(j, "keys"), i, k)
		json_array_append(kids, json_object_get(k, "kid"));
	char *text = json_dumps(kids, JSON_COMPACT);
	json_decref(kids);
	json_decref(j);
	return text;
}

static int group_setup(void **state)
{
	char err[1024] = "";
	km_store_keyset_t ks;
	if (audit_fx_create(&fx) != 0)
		return -1;
	memset(&ks, 0, sizeof(ks));
	snprintf(ks.name, sizeof(ks.name), "api");
	ks.alg = KM_ALG_ES256;
	snprintf(ks.owner, sizeof(ks.owner), "team-a");
	snprintf(ks.purpose, sizeof(ks.purpose), "access-token");
	if (km_keyset_create(fx.env, &ks, "tester", T0, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	/* The year: tick exactly when the planner says, as a punctual daemon would. */
	int64_t now = T0;
	while (now <= T0 + YEAR && n_ticks < MAX_TICKS) {
		int64_t next = INT64_MAX;
		char *doc = NULL;
		size_t len = 0;
		if (km_apply_keyset(fx.env, "api", now, NULL, &next, err, sizeof(err)) != KM_EOK ||
		    km_env_jwks(fx.env, NULL, &doc, &len, err, sizeof(err)) != KM_EOK) {
			fprintf(stderr, "tick at %lld: %s\n", (long long)now, err);
			return -1;
		}
		ticks[n_ticks].at = now;
		ticks[n_ticks++].kids = kids_of_jwks(doc);
		free(doc);
		if (next == INT64_MAX || next <= now)
			break;
		now = next;
	}
	*state = &fx;
	return 0;
}

static int group_teardown(void **state)
{
	for (size_t i = 0; i < n_ticks; i++)
		free(ticks[i].kids);
	audit_fx_destroy(&fx);
	return 0;
}

/* What the test saw served at T: the JWKS after the last tick at or before T. */
static const char *served_at(int64_t t)
{
	const char *kids = NULL;
	for (size_t i = 0; i < n_ticks && ticks[i].at <= t; i++)
		kids = ticks[i].kids;
	return kids;
}

/* The moments checked: every tick, one second before and after it, and mid-way. */
static size_t moments(int64_t *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < n_ticks && n + 4 <= max; i++) {
		out[n++] = ticks[i].at;
		out[n++] = ticks[i].at + 1;
		if (i > 0)
			out[n++] = ticks[i].at - 1;
		if (i + 1 < n_ticks)
			out[n++] = ticks[i].at + (ticks[i + 1].at - ticks[i].at) / 2;
	}
	return n;
}

static char *trusted_kids(json_t *report)
{
	json_t *kids = json_object_get(json_object_get(report, "trusted_at"), "kids");
	return json_dumps(kids, JSON_COMPACT);
}

static void test_year_had_a_dozen_rotations(void **state)
{
	km_store_key_t *keys = NULL;
	size_t n = 0;
	char err[256];
	km_store_key_filter_t f = { .keyset = "api" };
	assert_int_equal(km_store_keys_query(km_env_store(fx.env), &f, &keys, &n, err, sizeof(err)),
	                 KM_EOK);
	size_t activated = 0;
	for (size_t i = 0; i < n; i++)
		activated += keys[i].state_at[KM_STATE_ACTIVE] != KM_STORE_TIME_NONE;
	km_store_keys_free(keys);
	print_message("%zu ticks, %zu keys, %zu activated\n", n_ticks, n, activated);
	assert_in_range(activated, 12, 14);
	/* the whole history verifies, also with the independent verifier */
	km_audit_verify_t v;
	assert_int_equal(km_audit_verify(km_env_store(fx.env), NULL, &v, err, sizeof(err)), KM_EOK);
	if (!v.ok)
		fail_msg("verify: seq %lld: %s", (long long)v.first_bad_seq, v.problem);
}

static void test_year_report_at_matches_jwks_history(void **state)
{
	static int64_t ts[4 * MAX_TICKS];
	size_t n = moments(ts, sizeof(ts) / sizeof(ts[0]));
	char err[1024] = "";
	for (size_t i = 0; i < n; i++) {
		km_audit_report_opts_t o = { .now = ts[i], .has_at = true, .at = ts[i] };
		json_t *rep = NULL;
		km_store_jwks_version_t v;
		assert_int_equal(km_audit_report(fx.env, &o, &rep, err, sizeof(err)), KM_EOK);
		assert_int_equal(km_audit_jwks_version(km_env_store(fx.env), 0, ts[i], &v, err,
		                                       sizeof(err)), KM_EOK);
		char *trusted = trusted_kids(rep);
		json_t *serial = json_object_get(json_object_get(rep, "trusted_at"), "jwks_serial");
		if (strcmp(trusted, v.kids) != 0 || strcmp(v.kids, served_at(ts[i])) != 0)
			fail_msg("at %lld: report %s, JWKS history %s, served %s", (long long)ts[i],
			         trusted, v.kids, served_at(ts[i]));
		assert_int_equal(json_integer_value(serial), (json_int_t)v.serial);
		/* a punctual daemon rotates on time: compliant all year */
		json_t *ks = json_array_get(json_object_get(rep, "keysets"), 0);
		if (!json_is_true(json_object_get(ks, "compliant")))
			fail_msg("at %lld: %s", (long long)ts[i],
			         json_dumps(json_object_get(ks, "findings"), 0));
		free(trusted);
		free(v.kids);
		json_decref(rep);
	}
	print_message("%zu moments checked in-process\n", n);
}

static void run_keymgr(audit_run_t *r, const char *a, const char *b, const char *c,
                       const char *d, const char *e, const char *f, const char *g)
{
	const char *argv[] = { keymgr, a, b, c, d, e, f, g, NULL };
	assert_int_equal(audit_fx_run(&fx, argv, r), 0);
	if (r->status != 0)
		fail_msg("keymgr %s %s: exit %d: %s", a, b, r->status, r->err);
}

static void test_year_cli_report_and_jwks_show_at(void **state)
{
	static int64_t ts[4 * MAX_TICKS];
	size_t n = moments(ts, sizeof(ts) / sizeof(ts[0]));
	size_t step = n / 9 ? n / 9 : 1, checked = 0;
	for (size_t i = 1; i < n; i += step) {
		char at[32];
		audit_run_t r;
		snprintf(at, sizeof(at), "@%lld", (long long)ts[i]);
		run_keymgr(&r, "audit", "report", AUDIT_FX_ENV, "--format", "json", "--at", at);
		json_t *rep = json_loads(r.out, 0, NULL);
		audit_run_free(&r);
		assert_non_null(rep);
		char *trusted = trusted_kids(rep);
		json_decref(rep);

		run_keymgr(&r, "jwks", "show", AUDIT_FX_ENV, "--at", at, NULL, NULL);
		char *shown = kids_of_jwks(r.out);
		audit_run_free(&r);
		if (strcmp(trusted, served_at(ts[i])) != 0 || strcmp(shown, served_at(ts[i])) != 0)
			fail_msg("at %s: report %s, jwks show %s, served %s", at, trusted, shown,
			         served_at(ts[i]));
		free(trusted);
		free(shown);
		checked++;
	}
	assert_true(checked >= 9);
	/* jwks history: the serials count up, each version's time is a tick's */
	audit_run_t r;
	run_keymgr(&r, "jwks", "history", AUDIT_FX_ENV, "--json", NULL, NULL, NULL);
	json_t *h = json_loads(r.out, 0, NULL);
	audit_run_free(&r);
	size_t i;
	json_t *v;
	json_array_foreach(h, i, v) {
		assert_int_equal(json_integer_value(json_object_get(v, "serial")), (json_int_t)i + 1);
		bool at_tick = false;
		for (size_t t = 0; t < n_ticks; t++)
			at_tick |= ticks[t].at == json_integer_value(json_object_get(v, "at"));
		assert_true(at_tick);
	}
	assert_true(json_array_size(h) >= 24);          /* each key enters and leaves */
	json_decref(h);
}

int main(int argc, char **argv)
{
	if ((keymgr = audit_fx_args(argc, argv)) == NULL)
		return 2;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_year_had_a_dozen_rotations),
		cmocka_unit_test(test_year_report_at_matches_jwks_history),
		cmocka_unit_test(test_year_cli_report_and_jwks_show_at),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
