/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every state change made through the keymgr executable leaves exactly one audit event, and
 * nothing else does: each command's events are counted by action against the operations it
 * performed, and against the store's own records of those operations (per-key history rows,
 * owner history rows, the JWKS serial). Refused commands and read-only commands add nothing.
 * The JSON lines stream carries exactly the committed events. Then the audit verbs' output
 * and their bad-input handling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"
#include "tests/audit/fixture.h"

static audit_fx_t fx;
static const char *keymgr;

#define MAX_ARGS 24

/* Runs keymgr ARGS... (NULL-terminated) with the fixture's config; the caller frees r. */
static void km(audit_run_t *r, ...)
{
	const char *argv[MAX_ARGS] = { keymgr };
	size_t n = 1;
	va_list ap;
	va_start(ap, r);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
		assert_true(n < MAX_ARGS - 1);
		argv[n++] = a;
	}
	va_end(ap);
	assert_int_equal(audit_fx_run(&fx, argv, r), 0);
	assert_null(strstr(r->err, "Sanitizer"));
}

/* Event counts by action, and the store's own records, at one moment. */
typedef struct {
	size_t total, keyset_create, keyset_owner, intent, confirm, abandon, transition, jwks,
	       policy, schedule, other;
	size_t key_history_rows;  /* km_store_key_events() summed over all keys */
	size_t owner_rows;        /* km_store_keyset_changes() summed over all key sets */
	uint64_t serial;          /* newest JWKS serial */
} counts_t;

static void count(counts_t *c)
{
	km_store_audit_event_t *ev = NULL;
	km_store_key_t *keys = NULL;
	km_store_keyset_t *sets = NULL;
	km_store_jwks_version_t *v = NULL;
	size_t n = 0, nk = 0, ns = 0, nv = 0;
	char err[256];
	audit_fx_reopen(&fx);
	km_store_t *s = km_env_store(fx.env);
	memset(c, 0, sizeof(*c));
	assert_int_equal(km_store_audit_query(s, NULL, &ev, &n, err, sizeof(err)), KM_EOK);
	c->total = n;
	for (size_t i = 0; i < n; i++) {
		const char *a = ev[i].action;
		size_t *slot = strcmp(a, "keyset.create") == 0 ? &c->keyset_create :
		               strcmp(a, "keyset.owner") == 0 ? &c->keyset_owner :
		               strcmp(a, "key.intent") == 0 ? &c->intent :
		               strcmp(a, "key.confirm") == 0 ? &c->confirm :
		               strcmp(a, "key.abandon") == 0 ? &c->abandon :
		               strcmp(a, "key.transition") == 0 ? &c->transition :
		               strcmp(a, "jwks.publish") == 0 ? &c->jwks :
		               strcmp(a, "policy.load") == 0 ? &c->policy :
		               strcmp(a, "key.schedule") == 0 ? &c->schedule : &c->other;
		(*slot)++;
	}
	km_store_audit_events_free(ev, n);
	assert_int_equal(km_store_keys_query(s, NULL, &keys, &nk, err, sizeof(err)), KM_EOK);
	for (size_t i = 0; i < nk; i++) {
		km_store_event_t *h = NULL;
		size_t nh = 0;
		if (keys[i].kid[0] == '\0')
			continue;
		assert_int_equal(km_store_key_events(s, keys[i].kid, &h, &nh, err, sizeof(err)), KM_EOK);
		c->key_history_rows += nh;
		km_store_events_free(h);
	}
	km_store_keys_free(keys);
	assert_int_equal(km_store_keyset_list(s, NULL, &sets, &ns, err, sizeof(err)), KM_EOK);
	for (size_t i = 0; i < ns; i++) {
		km_store_change_t *ch = NULL;
		size_t nc = 0;
		assert_int_equal(km_store_keyset_changes(s, sets[i].name, &ch, &nc, err, sizeof(err)),
		                 KM_EOK);
		c->owner_rows += nc;
		km_store_changes_free(ch);
	}
	km_store_keysets_free(sets);
	assert_int_equal(km_store_jwks_versions(s, &v, &nv, err, sizeof(err)), KM_EOK);
	c->serial = nv ? v[nv - 1].serial : 0;
	km_store_jwks_versions_free(v, nv);
}

/* The delta of one command: exact numbers per action, and the cross-checks. */
static void expect_delta(const counts_t *a, const counts_t *b, size_t keyset_create,
                         size_t owner, size_t intent, size_t confirm, size_t transition,
                         size_t jwks)
{
	assert_int_equal(b->keyset_create - a->keyset_create, keyset_create);
	assert_int_equal(b->keyset_owner - a->keyset_owner, owner);
	assert_int_equal(b->intent - a->intent, intent);
	assert_int_equal(b->confirm - a->confirm, confirm);
	assert_int_equal(b->transition - a->transition, transition);
	assert_int_equal(b->jwks - a->jwks, jwks);
	assert_int_equal(b->other - a->other, 0);
	/* one event per row of the store's own history, one per JWKS serial */
	assert_int_equal(b->intent + b->confirm + b->abandon + b->transition, b->key_history_rows);
	assert_int_equal(b->keyset_owner, b->owner_rows);
	assert_int_equal(b->jwks, b->serial);
}

static int group_setup(void **state)
{
	return audit_fx_create(&fx);
}

static int group_teardown(void **state)
{
	audit_fx_destroy(&fx);
	return 0;
}

static void kid_of(const char *out, char *kid)
{
	json_t *j = json_loads(out, 0, NULL);
	assert_non_null(j);
	snprintf(kid, KM_KID_MAX + 1, "%s", json_string_value(json_object_get(j, "kid")));
	json_decref(j);
	assert_true(kid[0] != '\0');
}

static char k1[KM_KID_MAX + 1], k2[KM_KID_MAX + 1], k3[KM_KID_MAX + 1];

static void test_cli_every_change_one_event(void **state)
{
	counts_t a, b;
	audit_run_t r;
	count(&a);
	assert_int_equal(a.total, 1);                   /* store.create */

	km(&r, "keyset", "create", "development/api", "--no-key", "--alg", "ES256", "--owner",
	   "team-a", "--purpose", "access-token", NULL);
	assert_int_equal(r.status, 0);
	audit_run_free(&r);
	count(&b);
	expect_delta(&a, &b, 1, 0, 0, 0, 0, 0);
	assert_int_equal(b.policy - a.policy, 1);       /* first change under this policy */
	assert_int_equal(b.total - a.total, 2);

	/* first key: intent, confirm, published, active, and the JWKS gains it */
	a = b;
	km(&r, "rotate", "development/api", "--json", NULL);
	assert_int_equal(r.status, 0);
	kid_of(r.out, k1);
	audit_run_free(&r);
	count(&b);
	expect_delta(&a, &b, 0, 0, 1, 1, 2, 1);
	assert_int_equal(b.total - a.total, 5);

	a = b;
	km(&r, "keyset", "set-owner", "development/api", "team-b", "--reason", "reorg", NULL);
	assert_int_equal(r.status, 0);
	audit_run_free(&r);
	count(&b);
	expect_delta(&a, &b, 0, 1, 0, 0, 0, 0);
	assert_int_equal(b.total - a.total, 1);

	/* the same owner again changes nothing and records nothing */
	a = b;
	km(&r, "keyset", "set-owner", "development/api", "team-b", "--reason", "again", NULL);
	audit_run_free(&r);
	count(&b);
	assert_int_equal(b.total, a.total);

	/* successor: intent, confirm, published, the requested activation; JWKS gains it */
	a = b;
	km(&r, "rotate", "development/api", "--json", NULL);
	assert_int_equal(r.status, 0);
	kid_of(r.out, k3);
	audit_run_free(&r);
	count(&b);
	expect_delta(&a, &b, 0, 0, 1, 1, 1, 1);
	assert_int_equal(b.schedule - a.schedule, 1);
	assert_int_equal(b.total - a.total, 5);

	/* a rotation is pending: the same successor, nothing recorded */
	a = b;
	char again[KM_KID_MAX + 1];
	km(&r, "rotate", "development/api", "--json", NULL);
	assert_int_equal(r.status, 0);
	kid_of(r.out, again);
	assert_string_equal(again, k3);
	audit_run_free(&r);
	count(&b);
	assert_int_equal(b.total, a.total);

	/* forced: the pending successor k3 active, k1 retired; the JWKS already holds both */
	a = b;
	km(&r, "rotate", "development/api", "--now", "--force", "--json", NULL);
	assert_int_equal(r.status, 0);
	kid_of(r.out, again);
	assert_string_equal(again, k3);
	audit_run_free(&r);
	count(&b);
	expect_delta(&a, &b, 0, 0, 0, 0, 2, 0);
	assert_int_equal(b.total - a.total, 2);

	/* the next successor k2: intent, confirm, published, scheduled; JWKS gains it */
	a = b;
	km(&r, "rotate", "development/api", "--json", NULL);
	assert_int_equal(r.status, 0);
	kid_of(r.out, k2);
	audit_run_free(&r);
	count(&b);
	expect_delta(&a, &b, 0, 0, 1, 1, 1, 1);
	assert_int_equal(b.schedule - a.schedule, 1);
	assert_int_equal(b.total - a.total, 5);

	/* k1 out of the JWKS: one transition, one JWKS version */
	a = b;
	km(&r, "key", "remove", k1, "--env", AUDIT_FX_ENV, "--force", NULL);
	assert_int_equal(r.status, 0);
	audit_run_free(&r);
	count(&b);
	expect_delta(&a, &b, 0, 0, 0, 0, 1, 1);
	assert_int_equal(b.total - a.total, 2);

	a = b;
	km(&r, "destroy", k1, "--env", AUDIT_FX_ENV, NULL);
	assert_int_equal(r.status, 0);
	audit_run_free(&r);
	count(&b);
	expect_delta(&a, &b, 0, 0, 0, 0, 1, 0);
	assert_int_equal(b.total - a.total, 1);

	/* revoking the published standby k2: one transition, the JWKS loses it */
	a = b;
	km(&r, "revoke", k2, "--env", AUDIT_FX_ENV, "--reason", "compromised", NULL);
	assert_int_equal(r.status, 0);
	audit_run_free(&r);
	count(&b);
	assert_int_equal(b.transition - a.transition, b.key_history_rows - a.key_history_rows -
	                 (b.intent - a.intent) - (b.confirm - a.confirm));
	assert_true(b.transition - a.transition >= 1);
	assert_int_equal(b.jwks, b.serial);
	assert_int_equal(b.intent + b.confirm + b.abandon + b.transition, b.key_history_rows);
}

static void test_cli_refused_and_read_only_commands_add_nothing(void **state)
{
	counts_t a, b;
	audit_run_t r;
	count(&a);
	const char *const cmds[][8] = {
		{ "keyset", "create", "development/api", "--alg", "ES256", "--owner", "x", NULL },
		{ "rotate", "development/nope", NULL },
		{ "destroy", k3, "--env", AUDIT_FX_ENV, NULL },         /* active: refused */
		{ "revoke", k3, "--env", AUDIT_FX_ENV, NULL },          /* no reason: refused */
		{ "jwks", AUDIT_FX_ENV, NULL },
		{ "jwks", "history", AUDIT_FX_ENV, NULL },
		{ "audit", "log", NULL },
		{ "audit", "verify", NULL },
		{ "audit", "report", NULL },
		{ "keyset", "show", "development/api", NULL },
		{ "key", "list", AUDIT_FX_ENV, NULL },
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *argv[MAX_ARGS] = { keymgr };
		size_t n = 1;
		for (size_t j = 0; cmds[i][j] != NULL; j++)
			argv[n++] = cmds[i][j];
		argv[n] = NULL;
		assert_int_equal(audit_fx_run(&fx, argv, &r), 0);
		audit_run_free(&r);
	}
	count(&b);
	assert_int_equal(b.total, a.total);
}

static void test_cli_stream_carries_committed_events(void **state)
{
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	char err[256];
	audit_fx_reopen(&fx);
	assert_int_equal(km_store_audit_query(km_env_store(fx.env), NULL, &ev, &n, err,
	                                      sizeof(err)), KM_EOK);
	FILE *f = fopen(fx.jsonl, "r");
	assert_non_null(f);
	struct stat st;
	assert_int_equal(fstat(fileno(f), &st), 0);
	assert_int_equal(st.st_mode & 077, 0);
	char line[65536];
	size_t lines = 0;
	/* store.create happened while the environment was first opened, before streaming */
	while (fgets(line, sizeof(line), f) != NULL) {
		json_t *j = json_loads(line, 0, NULL);
		assert_non_null(j);
		json_int_t seq = json_integer_value(json_object_get(j, "seq"));
		assert_true(seq >= 2 && (size_t)seq <= n);
		assert_int_equal(seq, (json_int_t)lines + 2);
		assert_string_equal(json_string_value(json_object_get(j, "hash")), ev[seq - 1].hash);
		assert_string_equal(json_string_value(json_object_get(j, "action")),
		                    ev[seq - 1].action);
		const char *via = json_string_value(json_object_get(json_object_get(j, "actor"), "via"));
		assert_string_equal(via, "cli");
		json_decref(j);
		lines++;
	}
	fclose(f);
	/* the tests' own in-process work happened through the fixture's env, none yet */
	assert_int_equal(lines, n - 1);
	km_store_audit_events_free(ev, n);
}

static void test_cli_log_filters(void **state)
{
	audit_run_t r;
	km(&r, "audit", "log", AUDIT_FX_ENV, "--kid", k1, "--json", NULL);
	assert_int_equal(r.status, 0);
	json_t *arr = json_loads(r.out, 0, NULL);
	audit_run_free(&r);
	assert_true(json_is_array(arr));
	/* intent (recorded before k1 had its kid), confirm, published, active, retired,
	 * removed, destroyed */
	assert_int_equal(json_array_size(arr), 7);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "action")),
	                    "key.intent");
	json_decref(arr);

	km(&r, "audit", "log", "--keyset", "api", "--json", NULL);
	assert_int_equal(r.status, 0);
	arr = json_loads(r.out, 0, NULL);
	audit_run_free(&r);
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
		assert_string_equal(json_string_value(json_object_get(e, "keyset")), "api");
	assert_true(json_array_size(arr) > 10);
	json_decref(arr);

	km(&r, "audit", "log", "--until", "@1", NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "SEQ"));
	assert_null(strstr(r.out, "key.intent"));
	audit_run_free(&r);
}

static void test_cli_checkpoint_verify_and_report(void **state)
{
	audit_run_t r;
	km(&r, "audit", "checkpoint", "--json", NULL);
	assert_int_equal(r.status, 0);
	json_t *cps = json_loads(r.out, 0, NULL);
	json_t *cp = json_array_get(cps, 0);
	assert_non_null(cp);
	assert_int_equal(strlen(json_string_value(json_object_get(cp, "signature"))), 86);
	json_decref(cps);
	audit_run_free(&r);
	km(&r, "audit", "verify", AUDIT_FX_ENV, NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "OK"));
	assert_non_null(strstr(r.out, "signed up to seq"));
	audit_run_free(&r);

	/* CSV: one header row, RFC 4180, read back by Python's csv module */
	km(&r, "audit", "report", AUDIT_FX_ENV, "--format", "csv", "--at", "now", NULL);
	assert_int_equal(r.status, 0);
	char csv_path[400], script[4096];
	snprintf(csv_path, sizeof(csv_path), "%s/report.csv", fx.hsm.dir);
	FILE *f = fopen(csv_path, "w");
	assert_non_null(f);
	fputs(r.out, f);
	fclose(f);
	audit_run_free(&r);
	snprintf(script, sizeof(script),
	         "import csv, re, sys\n"
	         "rows = list(csv.reader(open('%s', newline='')))\n"
	         "h = rows[0]\n"
	         "assert h[:3] == ['env', 'keyset', 'owner'], h\n"
	         "assert len(rows) == 4, len(rows)\n"                      /* k1, k2, k3 */
	         "assert all(len(r) == len(h) for r in rows)\n"
	         "d = re.compile(r'^$|^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$')\n"
	         "for r in rows[1:]:\n"
	         "    for c in ('generated', 'published', 'activated', 'retired', 'revoked'):\n"
	         "        assert d.match(r[h.index(c)]), r[h.index(c)]\n"
	         "    assert r[h.index('owner')] == 'team-b'\n"
	         "t = {r[h.index('kid')]: r[h.index('trusted_at')] for r in rows[1:]}\n"
	         "assert t['%s'] == 'no' and t['%s'] == 'no' and t['%s'] == 'yes', t\n"
	         "assert 'compromised' in [r[h.index('revoke_reason')] for r in rows[1:]]\n",
	         csv_path, k1, k2, k3);
	const char *argv[] = { "/usr/bin/python3", "-c", script, NULL };
	assert_int_equal(audit_fx_run(&fx, argv, &r), 0);
	if (r.status != 0)
		fail_msg("csv check: %s", r.err);
	audit_run_free(&r);

	km(&r, "audit", "report", "--format", "json", NULL);
	assert_int_equal(r.status, 0);
	json_t *rep = json_loads(r.out, 0, NULL);
	audit_run_free(&r);
	json_t *ks = json_array_get(json_object_get(rep, "keysets"), 0);
	assert_string_equal(json_string_value(json_object_get(ks, "owner")), "team-b");
	json_t *hist = json_object_get(ks, "history");
	assert_int_equal(json_array_size(hist), 2);           /* created, owner change */
	json_t *change = json_array_get(hist, 1);
	assert_string_equal(json_string_value(json_object_get(change, "from")), "team-a");
	assert_string_equal(json_string_value(json_object_get(change, "to")), "team-b");
	assert_string_equal(json_string_value(json_object_get(change, "reason")), "reorg");
	assert_string_equal(json_string_value(json_object_get(change, "via")), "cli");
	assert_true(json_is_true(json_object_get(json_object_get(rep, "audit"), "verified")));
	json_decref(rep);
}

static void test_cli_bad_input(void **state)
{
	audit_run_t r;
	char missing[400];
	struct stat st;
	snprintf(missing, sizeof(missing), "%s/missing.db", fx.hsm.dir);
	const struct {
		const char *argv[8];
		int status;
		const char *msg;
	} cases[] = {
		{ { "audit", "log", "--since", "yesterday", NULL }, 2, "--since" },
		{ { "audit", "log", "Bad_Env", NULL }, 2, "invalid environment name" },
		{ { "audit", "log", "staging", NULL }, 1, "unknown environment" },
		{ { "audit", "report", "--format", "xml", NULL }, 2, "--format" },
		{ { "audit", "report", "--at", "soon", NULL }, 2, "--at" },
		{ { "audit", "verify", AUDIT_FX_ENV, "--store", missing, NULL }, 1, "does not exist" },
		{ { "audit", "verify", "--store", missing, NULL }, 2, "needs the ENV" },
		{ { "audit", "verify", "--audit-kid", "not a kid", NULL }, 2, "--audit-kid" },
		{ { "audit", "frobnicate", NULL }, 2, "unknown command" },
		{ { "jwks", "show", AUDIT_FX_ENV, NULL }, 2, "exactly one of" },
		{ { "jwks", "show", AUDIT_FX_ENV, "--serial", "0", NULL }, 2, "positive integer" },
		{ { "jwks", "show", AUDIT_FX_ENV, "--serial", "99", NULL }, 1, "no JWKS serial 99" },
		{ { "jwks", "show", AUDIT_FX_ENV, "--at", "@1", NULL }, 1, "no JWKS at or before" },
		{ { "jwks", "history", NULL }, 2, "exactly one ENV" },
	};
	counts_t a, b;
	count(&a);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *argv[MAX_ARGS] = { keymgr };
		size_t n = 1;
		for (size_t j = 0; cases[i].argv[j] != NULL; j++)
			argv[n++] = cases[i].argv[j];
		argv[n] = NULL;
		assert_int_equal(audit_fx_run(&fx, argv, &r), 0);
		if (r.status != cases[i].status || strstr(r.err, cases[i].msg) == NULL)
			fail_msg("case %zu: status %d, stderr '%s'", i, r.status, r.err);
		audit_run_free(&r);
	}
	/* nothing was created or recorded */
	assert_int_not_equal(stat(missing, &st), 0);
	count(&b);
	assert_int_equal(b.total, a.total);
}

int main(int argc, char **argv)
{
	if ((keymgr = audit_fx_args(argc, argv)) == NULL)
		return 2;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_every_change_one_event),
		cmocka_unit_test(test_cli_refused_and_read_only_commands_add_nothing),
		cmocka_unit_test(test_cli_stream_carries_committed_events),
		cmocka_unit_test(test_cli_log_filters),
		cmocka_unit_test(test_cli_checkpoint_verify_and_report),
		cmocka_unit_test(test_cli_bad_input),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
