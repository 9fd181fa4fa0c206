/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `keymgr audit report` answers an auditor's questions, through the keymgr executable on a
 * real SoftHSM token and store:
 *   - each key carries the owner and purpose it was made for and the key set's current ones,
 *     and who did each step (time, user, uid, host, via, pid), taken from that step's event:
 *     steps done by hand (via cli) and by `keymgr apply` (via apply) are told apart;
 *   - --at tells "in the JWKS at T" from "possibly still trusted at T by verifiers that cached
 *     an earlier JWKS" (out of the JWKS for less than jwks_max_age), with the time until which
 *     that holds: for a removed and a revoked key, before, inside and after that window, with
 *     jwks_max_age as it was in force when the key left (the policy.load events), and the
 *     current policy's only when the log does not hold it; the window of a revoked key is the
 *     exposure `keymgr revoke` reports;
 *   - the JSON (members and their order, RFC 3339 UTC times) and the CSV header, column by
 *     column, are the documented ones (docs/auditor-guide.md);
 *   - a bad --at or --format is refused by name, exit 2, with nothing printed or recorded.
 * The --at case runs its key set's life in-process on a simulated clock (km_apply_keyset, the
 * code of `keymgr apply` and keymgrd, at the planner's wake-ups), so that its windows are
 * hours apart without sleeping; the reports are the executable's.
 */
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"
#include "keymgr/core/apply.h"
#include "keymgr/core/keyops.h"
#include "tests/audit/fixture.h"

#define T0 INT64_C(1900000000)               /* 2030-03-17: after any real clock in tests */
#define DAY INT64_C(86400)
#define MAX_ARGS 24

static audit_fx_t fx;
static const char *keymgr;

static const char *const steps[] = { "generated", "published", "activated", "retired",
                                     "removed", "destroyed", "revoked", NULL };

/* The documented CSV header (docs/auditor-guide.md), in order. */
static const char *const csv_header[] = {
	"env", "keyset", "owner", "purpose", "alg", "keyset_compliant", "kid", "cka_id", "state",
	"generated", "published", "activated", "retired", "removed", "destroyed", "revoked",
	"revoke_reason", "signed_for", "rotation", "history", "state_at", "trusted_at",
	"owner_at_creation", "purpose_at_creation",
	"generated_by_user", "generated_by_uid", "generated_by_host", "generated_by_via",
	"generated_by_pid",
	"published_by_user", "published_by_uid", "published_by_host", "published_by_via",
	"published_by_pid",
	"activated_by_user", "activated_by_uid", "activated_by_host", "activated_by_via",
	"activated_by_pid",
	"retired_by_user", "retired_by_uid", "retired_by_host", "retired_by_via", "retired_by_pid",
	"removed_by_user", "removed_by_uid", "removed_by_host", "removed_by_via", "removed_by_pid",
	"destroyed_by_user", "destroyed_by_uid", "destroyed_by_host", "destroyed_by_via",
	"destroyed_by_pid",
	"revoked_by_user", "revoked_by_uid", "revoked_by_host", "revoked_by_via", "revoked_by_pid",
	"left_jwks_at", "jwks_max_age", "jwks_max_age_from", "cached_until", "trust_at", NULL,
};

/* The documented JSON members, in order. */
static const char *const top_members[] = { "version", "env", "generated_at", "at", "audit",
                                           "keysets", NULL };
static const char *const top_members_at[] = { "version", "env", "generated_at", "at", "audit",
                                              "keysets", "trusted_at", NULL };
static const char *const trusted_members[] = { "at", "jwks_serial", "kids", "cached", NULL };
static const char *const cached_members[] = { "kid", "keyset", "left_jwks_at", "cached_until",
                                              NULL };
static const char *const keyset_members[] = { "name", "alg", "owner", "purpose", "description",
                                              "created_at", "created_by", "created_by_actor",
                                              "policy", "history", "compliant", "findings",
                                              "keys", NULL };
static const char *const key_members[] = { "kid", "cka_id", "state", "pending", "owner",
                                           "purpose", "owner_at_creation",
                                           "purpose_at_creation", "times", "steps",
                                           "revoke_reason", "rotation", "signed_for",
                                           "left_jwks_at", "jwks_max_age", "jwks_max_age_from",
                                           "cached_until", "history", NULL };
static const char *const key_members_at[] = { "kid", "cka_id", "state", "pending", "owner",
                                              "purpose", "owner_at_creation",
                                              "purpose_at_creation", "times", "steps",
                                              "revoke_reason", "rotation", "signed_for",
                                              "left_jwks_at", "jwks_max_age",
                                              "jwks_max_age_from", "cached_until", "history",
                                              "state_at", "trusted_at", "trust_at", NULL };
static const char *const step_members[] = { "at", "seq", "actor", "reason", NULL };
static const char *const actor_members[] = { "user", "uid", "host", "via", "pid", NULL };
static const char *const history_members[] = { "seq", "time", "action", "from", "to", "by",
                                               "via", "actor", "reason", NULL };

static int setup(void **state)
{
	return audit_fx_create(&fx);
}

static int teardown(void **state)
{
	audit_fx_destroy(&fx);
	return 0;
}

/*
 * Runs keymgr ARGS... (up to the first NULL) with the fixture's config, which must succeed;
 * returns its output (freed by the caller).
 */
static char *km_ok(const char *first, ...)
{
	const char *argv[MAX_ARGS] = { keymgr };
	size_t n = 1;
	va_list ap;
	va_start(ap, first);
	for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
		assert_true(n < MAX_ARGS - 1);
		argv[n++] = a;
	}
	va_end(ap);
	audit_run_t r;
	assert_int_equal(audit_fx_run(&fx, argv, &r), 0);
	if (r.status != 0 || strstr(r.err, "Sanitizer") != NULL)
		fail_msg("keymgr %s %s: exit %d: %s", argv[1], n > 2 ? argv[2] : "", r.status, r.err);
	free(r.err);
	return r.out;
}

static json_t *json_of(char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	if (j == NULL)
		fail_msg("not JSON (%s): %s", e.text, text);
	free(text);
	return j;
}

/* `keymgr audit report --json [--at @T]` (at < 0: without --at). */
static json_t *report(int64_t at)
{
	char t[32];
	snprintf(t, sizeof(t), "@%lld", (long long)at);
	return json_of(km_ok("audit", "report", AUDIT_FX_ENV, "--json", at < 0 ? NULL : "--at", t,
	                     NULL));
}

/* The members of o are exactly names, in this order. */
static void expect_members(json_t *o, const char *what, const char *const *names)
{
	size_t i = 0;
	if (!json_is_object(o))
		fail_msg("%s: not an object", what);
	for (void *it = json_object_iter(o); it != NULL; it = json_object_iter_next(o, it), i++)
		if (names[i] == NULL || strcmp(names[i], json_object_iter_key(it)) != 0)
			fail_msg("%s: member %zu is '%s', expected '%s'", what, i,
			         json_object_iter_key(it), names[i] ? names[i] : "(none)");
	if (names[i] != NULL)
		fail_msg("%s: member '%s' is missing", what, names[i]);
}

/* An RFC 3339 UTC time with seconds ("2026-12-07T05:03:21Z"); returns it in seconds. */
static int64_t rfc3339(json_t *v, const char *what)
{
	const char *s = json_string_value(v);
	static const char pattern[] = "dddd-dd-ddTdd:dd:ddZ";
	struct tm tm;
	if (s == NULL || strlen(s) != strlen(pattern))
		fail_msg("%s: not an RFC 3339 UTC time: %s", what, s ? s : "(not a string)");
	for (size_t i = 0; pattern[i] != '\0'; i++)
		if (pattern[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != pattern[i])
			fail_msg("%s: not an RFC 3339 UTC time: %s", what, s);
	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm));
	return (int64_t)timegm(&tm);
}

/* The time of a member that may be null (-1). */
static int64_t time_or_none(json_t *o, const char *member)
{
	json_t *v = json_object_get(o, member);
	return json_is_null(v) ? -1 : rfc3339(v, member);
}

static json_t *key_of(json_t *rep, const char *kid)
{
	size_t i, j;
	json_t *ks, *k;
	json_array_foreach(json_object_get(rep, "keysets"), i, ks)
		json_array_foreach(json_object_get(ks, "keys"), j, k)
			if (strcmp(json_string_value(json_object_get(k, "kid")), kid) == 0)
				return k;
	fail_msg("kid %s is not in the report", kid);
	return NULL;
}

static const char *str(json_t *o, const char *member)
{
	const char *v = json_string_value(json_object_get(o, member));
	if (v == NULL)
		fail_msg("member %s is not a string", member);
	return v != NULL ? v : ""; /* (fail_msg does not return; -O3 cannot tell) */
}

static void kid_of(char *out, char kid[KM_KID_MAX + 1])
{
	json_t *j = json_of(out);
	snprintf(kid, KM_KID_MAX + 1, "%s", str(j, "kid"));
	json_decref(j);
}

/* The audit event with this sequence number, from the store itself. */
static void event_at(int64_t seq, km_store_audit_event_t **ev)
{
	km_store_audit_filter_t f = { .from_seq = seq, .to_seq = seq };
	size_t n = 0;
	char err[256];
	assert_int_equal(km_store_audit_query(km_env_store(fx.env), &f, ev, &n, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(n, 1);
}

/* Every step of key k: its time is the key's date for it, and its actor and reason are those
 * of the event with its seq (the right action, about this key). Checks the JSON schema of
 * each step and actor. */
static void expect_steps_from_the_log(json_t *k)
{
	json_t *st = json_object_get(k, "steps"), *times = json_object_get(k, "times");
	expect_members(st, "steps", steps);
	expect_members(times, "times", steps);
	for (size_t i = 0; steps[i] != NULL; i++) {
		json_t *s = json_object_get(st, steps[i]);
		if (json_is_null(s)) {
			assert_true(json_is_null(json_object_get(times, steps[i])));
			continue;
		}
		expect_members(s, steps[i], step_members);
		expect_members(json_object_get(s, "actor"), "actor", actor_members);
		assert_int_equal(rfc3339(json_object_get(s, "at"), steps[i]),
		                 rfc3339(json_object_get(times, steps[i]), steps[i]));
		km_store_audit_event_t *e = NULL;
		event_at(json_integer_value(json_object_get(s, "seq")), &e);
		assert_string_equal(e->action, i == 0 ? "key.intent" : "key.transition");
		if (i > 0)
			assert_string_equal(e->kid, str(k, "kid"));
		json_t *a = json_object_get(s, "actor");
		assert_string_equal(str(a, "user"), e->actor.user);
		assert_int_equal(json_integer_value(json_object_get(a, "uid")), e->actor.uid);
		assert_string_equal(str(a, "host"), e->actor.host);
		assert_string_equal(str(a, "via"), e->actor.via);
		assert_int_equal(json_integer_value(json_object_get(a, "pid")), e->actor.pid);
		assert_string_equal(str(s, "reason"), e->reason);
		assert_int_equal(rfc3339(json_object_get(s, "at"), steps[i]), e->at);
		km_store_audit_events_free(e, 1);
	}
}

static json_t *step_actor(json_t *k, const char *step)
{
	json_t *a = json_object_get(json_object_get(json_object_get(k, "steps"), step), "actor");
	if (a == NULL)
		fail_msg("no actor for %s", step);
	return a;
}

/* Every time member anywhere in a report is RFC 3339 UTC (or null where allowed). */
static void expect_times(json_t *rep)
{
	size_t i, j, h;
	json_t *ks, *k, *e;
	rfc3339(json_object_get(rep, "generated_at"), "generated_at");
	json_array_foreach(json_object_get(rep, "keysets"), i, ks) {
		rfc3339(json_object_get(ks, "created_at"), "created_at");
		json_array_foreach(json_object_get(ks, "history"), h, e) {
			expect_members(e, "key set history", history_members);
			rfc3339(json_object_get(e, "time"), "history time");
		}
		json_array_foreach(json_object_get(ks, "keys"), j, k) {
			json_array_foreach(json_object_get(k, "history"), h, e) {
				expect_members(e, "key history", history_members);
				expect_members(json_object_get(e, "actor"), "history actor", actor_members);
				rfc3339(json_object_get(e, "time"), "history time");
			}
			for (size_t s = 0; steps[s] != NULL; s++)
				time_or_none(json_object_get(k, "times"), steps[s]);
			time_or_none(k, "left_jwks_at");
			time_or_none(k, "cached_until");
		}
	}
}

/* The CSV report (freed here) read back by Python's csv module, as a JSON array of rows. */
static json_t *csv_rows(char *csv)
{
	char path[400];
	audit_run_t r;
	snprintf(path, sizeof(path), "%s/report.csv", fx.hsm.dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(csv, f);
	fclose(f);
	assert_non_null(strstr(csv, "\r\n"));            /* RFC 4180 line ends */
	free(csv);
	const char *argv[] = { "/usr/bin/python3", "-c",
	                       "import csv, json, sys\n"
	                       "print(json.dumps(list(csv.reader(open(sys.argv[1], newline='')))))",
	                       path, NULL };
	assert_int_equal(audit_fx_run(&fx, argv, &r), 0);
	if (r.status != 0)
		fail_msg("python csv: %s", r.err);
	free(r.err);
	return json_of(r.out);
}

static void expect_header(json_t *rows)
{
	json_t *h = json_array_get(rows, 0);
	size_t i = 0;
	for (; csv_header[i] != NULL; i++)
		if (i >= json_array_size(h) ||
		    strcmp(json_string_value(json_array_get(h, i)), csv_header[i]) != 0)
			fail_msg("CSV column %zu is '%s', expected '%s'", i,
			         i < json_array_size(h) ? json_string_value(json_array_get(h, i)) : "",
			         csv_header[i]);
	assert_int_equal(json_array_size(h), i);
	size_t r;
	json_t *row;
	json_array_foreach(rows, r, row)
		assert_int_equal(json_array_size(row), i);
}

static const char *cell(json_t *rows, json_t *row, const char *column)
{
	json_t *h = json_array_get(rows, 0);
	for (size_t i = 0; i < json_array_size(h); i++)
		if (strcmp(json_string_value(json_array_get(h, i)), column) == 0)
			return json_string_value(json_array_get(row, i));
	fail_msg("no CSV column %s", column);
	return NULL;
}

static json_t *csv_row_of(json_t *rows, const char *kid)
{
	for (size_t i = 1; i < json_array_size(rows); i++)
		if (strcmp(cell(rows, json_array_get(rows, i), "kid"), kid) == 0)
			return json_array_get(rows, i);
	fail_msg("kid %s is not in the CSV", kid);
	return NULL;
}

/* A JSON value as its CSV cell: strings as they are, integers in decimal, null empty. */
static void expect_cell(json_t *rows, json_t *row, const char *column, json_t *v)
{
	char buf[32] = "";
	const char *want = buf;
	if (json_is_string(v))
		want = json_string_value(v);
	else if (json_is_integer(v))
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
	else if (!json_is_null(v) && v != NULL)
		fail_msg("column %s: unexpected JSON type", column);
	if (strcmp(cell(rows, row, column), want) != 0)
		fail_msg("column %s: '%s' in the CSV, '%s' in the JSON", column,
		         cell(rows, row, column), want);
}

/* The CSV row of key k says what the JSON says, column by column. */
static void expect_row_matches(json_t *rows, json_t *k)
{
	json_t *row = csv_row_of(rows, str(k, "kid"));
	static const char *const same[] = { "cka_id", "state", "revoke_reason", "rotation",
	                                    "owner_at_creation", "purpose_at_creation",
	                                    "left_jwks_at", "jwks_max_age", "jwks_max_age_from",
	                                    "cached_until", NULL };
	for (size_t i = 0; same[i] != NULL; i++)
		expect_cell(rows, row, same[i], json_object_get(k, same[i]));
	/* An active key signs until now (or --at): two reports a second apart may differ. */
	if (strcmp(str(k, "state"), "active") != 0 || json_object_get(k, "trust_at") != NULL)
		expect_cell(rows, row, "signed_for", json_object_get(k, "signed_for"));
	assert_string_equal(cell(rows, row, "owner"), str(k, "owner"));
	assert_string_equal(cell(rows, row, "purpose"), str(k, "purpose"));
	for (size_t s = 0; steps[s] != NULL; s++) {
		json_t *a = json_object_get(json_object_get(json_object_get(k, "steps"), steps[s]),
		                            "actor");
		char col[48];
		expect_cell(rows, row, steps[s], json_object_get(json_object_get(k, "times"), steps[s]));
		for (size_t f = 0; actor_members[f] != NULL; f++) {
			snprintf(col, sizeof(col), "%s_by_%s", steps[s], actor_members[f]);
			expect_cell(rows, row, col, json_object_get(a, actor_members[f]));
		}
	}
	if (json_object_get(k, "trust_at") != NULL) {
		expect_cell(rows, row, "state_at", json_object_get(k, "state_at"));
		expect_cell(rows, row, "trust_at", json_object_get(k, "trust_at"));
		assert_string_equal(cell(rows, row, "trusted_at"),
		                    json_is_true(json_object_get(k, "trusted_at")) ? "yes" : "no");
	} else {
		assert_string_equal(cell(rows, row, "state_at"), "");
		assert_string_equal(cell(rows, row, "trusted_at"), "");
		assert_string_equal(cell(rows, row, "trust_at"), "");
	}
}

/*
 * A key set's life through the executable: made for team-a / access-token, owner and purpose
 * changed after its first key, a second key, the first removed by hand and destroyed by
 * `keymgr apply`. Each key shows both owners and purposes; each step its actor.
 */
static void test_report_owner_purpose_and_actors(void **state)
{
	char k1[KM_KID_MAX + 1], k2[KM_KID_MAX + 1], host[256] = "";
	free(km_ok("keyset", "create", "development/api", "--no-key", "--alg", "ES256", "--owner",
	           "team-a", "--purpose", "access-token", NULL));
	kid_of(km_ok("rotate", "development/api", "--json", NULL), k1);
	free(km_ok("keyset", "set-owner", "development/api", "team-b", "--reason", "reorg", NULL));
	free(km_ok("keyset", "set-purpose", "development/api", "id-token", "--reason", "new use",
	           NULL));
	kid_of(km_ok("rotate", "development/api", "--now", "--force", "--json", NULL), k2);
	free(km_ok("key", "remove", "--env", AUDIT_FX_ENV, "--force", "--", k1, NULL));
	/* destroy_after 0s: the removed key is due for destruction at once, by the planner */
	audit_fx_configure(&fx, "1h", "0s");
	free(km_ok("apply", AUDIT_FX_ENV, NULL));
	audit_fx_reopen(&fx);

	json_t *rep = report(-1);
	expect_members(rep, "report", top_members);
	assert_int_equal(json_integer_value(json_object_get(rep, "version")), 2);
	assert_true(json_is_null(json_object_get(rep, "at")));
	assert_true(json_is_true(json_object_get(json_object_get(rep, "audit"), "verified")));
	expect_times(rep);
	json_t *ks = json_array_get(json_object_get(rep, "keysets"), 0);
	expect_members(ks, "key set", keyset_members);
	assert_string_equal(str(ks, "owner"), "team-b");
	assert_string_equal(str(ks, "purpose"), "id-token");

	json_t *a = key_of(rep, k1), *b = key_of(rep, k2);
	expect_members(a, "key", key_members);
	expect_members(b, "key", key_members);
	/* made for team-a / access-token, now team-b / id-token; the second key made for the new */
	assert_string_equal(str(a, "owner_at_creation"), "team-a");
	assert_string_equal(str(a, "purpose_at_creation"), "access-token");
	assert_string_equal(str(a, "owner"), "team-b");
	assert_string_equal(str(a, "purpose"), "id-token");
	assert_string_equal(str(b, "owner_at_creation"), "team-b");
	assert_string_equal(str(b, "purpose_at_creation"), "id-token");
	assert_string_equal(str(b, "owner"), "team-b");

	/* every step of the first key, with the actor of its own event */
	assert_string_equal(str(a, "state"), "destroyed");
	expect_steps_from_the_log(a);
	expect_steps_from_the_log(b);
	const struct passwd *pw = getpwuid(getuid());
	assert_non_null(pw);
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	for (size_t i = 0; i < 6; i++) {
		json_t *act = step_actor(a, steps[i]);
		assert_string_equal(str(act, "user"), pw->pw_name);
		assert_int_equal(json_integer_value(json_object_get(act, "uid")), (json_int_t)getuid());
		assert_string_equal(str(act, "host"), host);
		assert_true(json_integer_value(json_object_get(act, "pid")) > 0);
		/* by hand, but the destruction: keymgr apply did that */
		assert_string_equal(str(act, "via"), i == 5 ? "apply" : "cli");
	}
	assert_true(json_is_null(json_object_get(json_object_get(a, "steps"), "revoked")));
	/* one process per command: generated, published and activated by the first rotate,
	 * retired by the second, removed and destroyed by two more */
	json_int_t pid[6];
	for (size_t i = 0; i < 6; i++)
		pid[i] = json_integer_value(json_object_get(step_actor(a, steps[i]), "pid"));
	assert_true(pid[0] == pid[1] && pid[1] == pid[2]);
	assert_true(pid[2] != pid[3] && pid[3] != pid[4] && pid[4] != pid[5]);
	assert_int_equal(json_integer_value(json_object_get(step_actor(b, "generated"), "pid")),
	                 pid[3]);

	/* it left the JWKS when it was removed: cached copies may hold it jwks_max_age longer,
	 * as the policy in force then said (the log's) */
	int64_t left = time_or_none(a, "left_jwks_at");
	assert_int_equal(left, time_or_none(json_object_get(a, "times"), "removed"));
	assert_int_equal(time_or_none(a, "cached_until"), left + 3600);
	assert_string_equal(str(a, "jwks_max_age"), "1h");
	assert_string_equal(str(a, "jwks_max_age_from"), "log");
	assert_true(json_is_null(json_object_get(b, "left_jwks_at")));
	assert_true(json_is_null(json_object_get(b, "cached_until")));
	assert_true(json_is_null(json_object_get(b, "jwks_max_age")));
	assert_true(json_is_null(json_object_get(b, "jwks_max_age_from")));

	/* --format json is --json (at a fixed --at: an active key's signed_for counts to now) */
	char at[32];
	snprintf(at, sizeof(at), "@%lld", (long long)left);
	json_t *again = json_of(km_ok("audit", "report", "--format", "json", "--at", at, NULL));
	json_t *same = report(left);
	json_object_del(again, "generated_at");
	json_object_del(same, "generated_at");
	assert_true(json_equal(again, same));
	json_decref(again);
	json_decref(same);

	/* the CSV: the documented header, and each key's row says what the JSON says */
	json_t *rows = csv_rows(km_ok("audit", "report", "--format", "csv", NULL));
	expect_header(rows);
	assert_int_equal(json_array_size(rows), 3);
	expect_row_matches(rows, a);
	expect_row_matches(rows, b);
	assert_string_equal(cell(rows, csv_row_of(rows, k1), "destroyed_by_via"), "apply");
	assert_string_equal(cell(rows, csv_row_of(rows, k1), "removed_by_via"), "cli");
	json_decref(rows);

	/* the table names both owners */
	char *table = km_ok("audit", "report", NULL);
	assert_non_null(strstr(table, "made for owner team-a, purpose access-token (now team-b, "
	                       "id-token)"));
	assert_non_null(strstr(table, "verifiers' cached JWKS may hold it until"));
	free(table);
	json_decref(rep);
}

/* ---- --at and the cache window ---- */

static void tick_until(int64_t from, int64_t until)
{
	char err[1024] = "";
	for (int64_t now = from; now <= until;) {
		int64_t next = INT64_MAX;
		if (km_apply_keyset(fx.env, "api", now, NULL, &next, err, sizeof(err)) != KM_EOK)
			fail_msg("tick at %lld: %s", (long long)now, err);
		if (next == INT64_MAX || next <= now)
			break;
		now = next;
	}
}

/* The kid of the key set's key in state s (exactly one). */
static void kid_in_state(km_state_t s, char kid[KM_KID_MAX + 1], int64_t *at)
{
	km_store_key_t *keys = NULL;
	size_t n = 0, found = 0;
	char err[256];
	km_store_key_filter_t f = { .keyset = "api" };
	assert_int_equal(km_store_keys_query(km_env_store(fx.env), &f, &keys, &n, err, sizeof(err)),
	                 KM_EOK);
	for (size_t i = 0; i < n; i++)
		if (keys[i].state == s) {
			snprintf(kid, KM_KID_MAX + 1, "%s", keys[i].kid);
			*at = keys[i].state_at[s];
			found++;
		}
	km_store_keys_free(keys);
	assert_int_equal(found, 1);
}

/*
 * A change recorded ahead of the clock (a rotation whose wait for the change lock was rounded
 * up to a second), then the other changes with clocks a second behind it: owner, purpose,
 * removal by hand, a new key set. None is recorded before the newest change, so the log never
 * goes back in time and the report replays it (CI once saw `audit report` refuse a log whose
 * owner change came 1 s before the rotation it followed: "key.transition ... does not follow
 * the key's history").
 */
static void test_changes_never_recorded_before_the_newest(void **state)
{
	char err[1024] = "";
	km_store_keyset_t ks;
	memset(&ks, 0, sizeof(ks));
	snprintf(ks.name, sizeof(ks.name), "api");
	ks.alg = KM_ALG_ES256;
	snprintf(ks.owner, sizeof(ks.owner), "team-a");
	snprintf(ks.purpose, sizeof(ks.purpose), "access-token");
	assert_int_equal(km_keyset_create(fx.env, &ks, "tester", T0, err, sizeof(err)), KM_EOK);
	km_apply_rotation_t rot;
	if (km_apply_rotate(fx.env, "api", T0 + 1, KM_PLAN_ROTATE_NORMAL, NULL, &rot, err,
	                    sizeof(err)) != KM_EOK)
		fail_msg("rotate: %s", err);
	if (km_apply_rotate(fx.env, "api", T0 + 1, KM_PLAN_ROTATE_NOW, NULL, &rot, err,
	                    sizeof(err)) != KM_EOK)
		fail_msg("rotate --now: %s", err);
	char old_kid[KM_KID_MAX + 1];
	int64_t retired_at;
	kid_in_state(KM_STATE_RETIRED, old_kid, &retired_at);
	assert_true(retired_at >= T0 + 1);
	const int64_t behind = retired_at - 1;
	km_keyset_change_t ch;
	assert_int_equal(km_keyset_set_owner(fx.env, "api", "team-b", "tester", behind, "reorg",
	                                     &ch, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_keyset_set_purpose(fx.env, "api", "id-token", "tester", behind,
	                                       "new use", &ch, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_key_set_state(fx.env, old_kid, KM_STATE_REMOVED, behind, NULL, err,
	                                  sizeof(err)), KM_EOK);
	snprintf(ks.name, sizeof(ks.name), "other");
	assert_int_equal(km_keyset_create(fx.env, &ks, "tester", behind, err, sizeof(err)),
	                 KM_EOK);

	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	km_store_audit_filter_t f = { 0 };
	assert_int_equal(km_store_audit_query(km_env_store(fx.env), &f, &ev, &n, err,
	                                      sizeof(err)), KM_EOK);
	assert_true(n > 8);
	for (size_t i = 1; i < n; i++)
		if (ev[i].at < ev[i - 1].at)
			fail_msg("seq %lld (%s) at %lld is before seq %lld (%s) at %lld",
			         (long long)ev[i].seq, ev[i].action, (long long)ev[i].at,
			         (long long)ev[i - 1].seq, ev[i - 1].action, (long long)ev[i - 1].at);
	assert_int_equal(ev[n - 1].at, retired_at);   /* raised to the newest, not the clock */
	km_audit_replay_t rp;
	int64_t bad = 0;
	if (km_audit_replay(ev, n, retired_at, &rp, &bad, err, sizeof(err)) != KM_EOK)
		fail_msg("replay up to %lld refused at seq %lld: %s", (long long)retired_at,
		         (long long)bad, err);
	km_audit_replay_free(&rp);
	km_store_audit_events_free(ev, n);
}

typedef struct {
	const char *kid;
	const char *trust;          /* "jwks", "cache" or "none" */
	int64_t until;              /* cached_until when "cache" */
} expect_t;

/* Report at `at`: each listed key's trust; trusted_at.kids and .cached agree with them. */
static void expect_at(int64_t at, const expect_t *want, size_t n)
{
	json_t *rep = report(at);
	json_t *trusted = json_object_get(rep, "trusted_at");
	expect_members(rep, "report --at", top_members_at);
	expect_members(trusted, "trusted_at", trusted_members);
	assert_int_equal(rfc3339(json_object_get(rep, "at"), "at"), at);
	expect_times(rep);
	for (size_t i = 0; i < n; i++) {
		json_t *k = key_of(rep, want[i].kid), *v;
		size_t j;
		bool listed = false, cached = false;
		expect_members(k, "key --at", key_members_at);
		if (strcmp(str(k, "trust_at"), want[i].trust) != 0)
			fail_msg("at %lld: key %s is '%s', expected '%s'", (long long)at, want[i].kid,
			         str(k, "trust_at"), want[i].trust);
		assert_int_equal(json_is_true(json_object_get(k, "trusted_at")),
		                 strcmp(want[i].trust, "jwks") == 0);
		json_array_foreach(json_object_get(trusted, "kids"), j, v)
			listed |= strcmp(json_string_value(v), want[i].kid) == 0;
		assert_int_equal(listed, strcmp(want[i].trust, "jwks") == 0);
		json_array_foreach(json_object_get(trusted, "cached"), j, v) {
			expect_members(v, "cached", cached_members);
			if (strcmp(str(v, "kid"), want[i].kid) != 0)
				continue;
			cached = true;
			assert_string_equal(str(v, "keyset"), "api");
			assert_int_equal(time_or_none(v, "cached_until"), want[i].until);
			assert_int_equal(time_or_none(v, "left_jwks_at"), time_or_none(k, "left_jwks_at"));
		}
		assert_int_equal(cached, strcmp(want[i].trust, "cache") == 0);
		if (cached)
			assert_int_equal(time_or_none(k, "cached_until"), want[i].until);
	}
	json_decref(rep);
}

/*
 * A removed key and two revoked ones, on a simulated clock: before, at, inside and at the end
 * of each one's cache window. The first two left under jwks_max_age 1h (recorded in the log);
 * the third's revocation carries no policy hash (as events of stores older than policy
 * tracking), so the report takes the current policy's 30m, and says so.
 */
static void test_report_at_cache_window(void **state)
{
	char err[1024] = "", k1[KM_KID_MAX + 1], k2[KM_KID_MAX + 1], k3[KM_KID_MAX + 1];
	km_store_keyset_t ks;
	int64_t removed, active_since, exposure = 0, exposure3 = 0;
	memset(&ks, 0, sizeof(ks));
	snprintf(ks.name, sizeof(ks.name), "api");
	ks.alg = KM_ALG_ES256;
	snprintf(ks.owner, sizeof(ks.owner), "team-a");
	snprintf(ks.purpose, sizeof(ks.purpose), "access-token");
	assert_int_equal(km_keyset_create(fx.env, &ks, "tester", T0, err, sizeof(err)), KM_EOK);
	/* first key active at T0, its successor at T0 + 30d; the first removed a day later */
	tick_until(T0, T0 + 32 * DAY);
	kid_in_state(KM_STATE_REMOVED, k1, &removed);
	kid_in_state(KM_STATE_ACTIVE, k2, &active_since);
	assert_true(removed > T0 && removed < T0 + 32 * DAY);

	/* the active key compromised: revoked, a new one activated at once */
	const int64_t rv = T0 + 32 * DAY + 3600;
	km_apply_revoke_result_t res;
	if (km_apply_revoke(fx.env, k2, "compromised", rv, NULL, &res, err, sizeof(err)) != KM_EOK)
		fail_msg("revoke: %s", err);
	exposure = res.exposure_until;
	assert_int_equal(exposure, rv + 3600);           /* what `keymgr revoke` prints */
	int64_t since3;
	kid_in_state(KM_STATE_ACTIVE, k3, &since3);
	assert_int_equal(since3, rv);

	/* revoked with no policy recorded, then the configuration lowers jwks_max_age */
	const int64_t rv3 = rv + 7200;
	km_store_set_policy(km_env_store(fx.env), NULL, NULL);
	if (km_apply_revoke(fx.env, k3, "compromised too", rv3, NULL, &res, err,
	                    sizeof(err)) != KM_EOK)
		fail_msg("revoke: %s", err);
	exposure3 = res.exposure_until;
	assert_int_equal(exposure3, rv3 + 3600);         /* printed under the policy then */
	audit_fx_configure(&fx, "30m", "7d");

	json_t *rep = report(-1), *a = key_of(rep, k1), *b = key_of(rep, k2), *c = key_of(rep, k3);
	assert_int_equal(time_or_none(a, "left_jwks_at"), removed);
	assert_int_equal(time_or_none(a, "cached_until"), removed + 3600);
	assert_string_equal(str(a, "jwks_max_age_from"), "log");
	assert_int_equal(time_or_none(b, "left_jwks_at"), rv);
	assert_int_equal(time_or_none(b, "cached_until"), exposure);
	assert_string_equal(str(b, "jwks_max_age"), "1h");
	assert_string_equal(str(b, "jwks_max_age_from"), "log");
	assert_int_equal(time_or_none(c, "left_jwks_at"), rv3);
	assert_int_equal(time_or_none(c, "cached_until"), rv3 + 1800);
	assert_string_equal(str(c, "jwks_max_age"), "30m");
	assert_string_equal(str(c, "jwks_max_age_from"), "config");
	assert_string_equal(str(b, "revoke_reason"), "compromised");
	json_decref(rep);

	const expect_t before_removal[] = { { k1, "jwks", 0 }, { k2, "jwks", 0 } };
	const expect_t at_removal[] = { { k1, "cache", removed + 3600 }, { k2, "jwks", 0 } };
	const expect_t removal_end[] = { { k1, "none", 0 }, { k2, "jwks", 0 } };
	const expect_t before_revoke[] = { { k1, "none", 0 }, { k2, "jwks", 0 } };
	const expect_t at_revoke[] = { { k2, "cache", exposure }, { k3, "jwks", 0 } };
	const expect_t revoke_end[] = { { k2, "none", 0 }, { k3, "jwks", 0 } };
	const expect_t at_revoke3[] = { { k3, "cache", rv3 + 1800 } };
	const expect_t revoke3_end[] = { { k3, "none", 0 } };
	expect_at(removed - 1, before_removal, 2);
	expect_at(removed, at_removal, 2);
	expect_at(removed + 1800, at_removal, 2);
	expect_at(removed + 3599, at_removal, 2);
	expect_at(removed + 3600, removal_end, 2);
	expect_at(rv - 1, before_revoke, 2);
	expect_at(rv, at_revoke, 2);
	expect_at(rv + 3599, at_revoke, 2);
	expect_at(rv + 3600, revoke_end, 2);
	expect_at(rv3, at_revoke3, 1);
	expect_at(rv3 + 1799, at_revoke3, 1);
	expect_at(rv3 + 1800, revoke3_end, 1);

	/* the state at T is what the log says: retired just before the removal */
	rep = report(removed - 1);
	assert_string_equal(str(key_of(rep, k1), "state_at"), "retired");
	json_decref(rep);

	/* CSV with --at: the same answers, column by column */
	char at[32];
	snprintf(at, sizeof(at), "@%lld", (long long)(rv + 60));
	rep = report(rv + 60);
	json_t *rows = csv_rows(km_ok("audit", "report", "--format", "csv", "--at", at, NULL));
	expect_header(rows);
	expect_row_matches(rows, key_of(rep, k1));
	expect_row_matches(rows, key_of(rep, k2));
	expect_row_matches(rows, key_of(rep, k3));
	assert_string_equal(cell(rows, csv_row_of(rows, k2), "trust_at"), "cache");
	json_decref(rows);
	json_decref(rep);

	/* the table says which keys cached JWKS may still hold, and until when */
	char *table = km_ok("audit", "report", "--at", at, NULL);
	assert_non_null(strstr(table, "Possibly still trusted at"));
	assert_non_null(strstr(table, k2));
	assert_non_null(strstr(table, "possibly trusted from a cached JWKS until"));
	free(table);
}

/* Bad --at and --format values: named, exit 2, nothing printed on stdout, nothing recorded. */
static void test_report_bad_input(void **state)
{
	const struct {
		const char *argv[6];
		const char *msg;
	} cases[] = {
		{ { "audit", "report", "--at", "soon", NULL }, "--at 'soon': expected RFC 3339 UTC" },
		{ { "audit", "report", "--at", "2026-02-30T00:00:00Z", NULL }, "--at '2026-02-30" },
		{ { "audit", "report", "--at", "2026-13-01", NULL }, "--at '2026-13-01'" },
		{ { "audit", "report", "--at", "2026-11-28T17:00:00+02:00", NULL }, "RFC 3339 UTC" },
		{ { "audit", "report", "--at", "@-5", NULL }, "--at '@-5'" },
		{ { "audit", "report", "--at", "", NULL }, "--at ''" },
		{ { "audit", "report", "--format", "xml", NULL }, "--format 'xml': must be table, csv" },
		{ { "audit", "report", "--format", "CSV", NULL }, "must be table, csv, json or html" },
		{ { "audit", "report", "--format", "csv", "--json", NULL }, "two formats" },
		{ { "audit", "report", "--json", "--format", "table", NULL }, "two formats" },
	};
	size_t before = audit_fx_count(&fx, NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *argv[MAX_ARGS] = { keymgr };
		size_t n = 1;
		audit_run_t r;
		for (size_t j = 0; cases[i].argv[j] != NULL; j++)
			argv[n++] = cases[i].argv[j];
		assert_int_equal(audit_fx_run(&fx, argv, &r), 0);
		if (r.status != 2 || strstr(r.err, cases[i].msg) == NULL || r.out[0] != '\0')
			fail_msg("case %zu: status %d, stdout '%s', stderr '%s'", i, r.status, r.out,
			         r.err);
		audit_run_free(&r);
	}
	audit_fx_reopen(&fx);
	assert_int_equal(audit_fx_count(&fx, NULL), before);
}

int main(int argc, char **argv)
{
	if ((keymgr = audit_fx_args(argc, argv)) == NULL)
		return 2;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_report_owner_purpose_and_actors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_at_cache_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changes_never_recorded_before_the_newest, setup,
		                                teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
