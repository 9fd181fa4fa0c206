/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A store rolled back to an earlier checkpoint (issue 16): an attacker with write access to
 * the store (not to the token) drops the append-only triggers with sqlite3 and deletes every
 * event and checkpoint after seq 10, a signed checkpoint. What is left is a consistent,
 * signed, shorter log, and `audit verify --audit-kid KID` said OK. Verification now fails
 * against every point recorded outside the store:
 *   - the token's record of the last checkpoint (a private data object of the audit token),
 *     compared by `keymgr audit verify ENV` whenever the token can be opened;
 *   - --expect-seq N / --expect-head HASH, a head the auditor noted;
 *   - --stream FILE, the JSON lines the audit stream wrote (events and, now, checkpoints).
 * Each is checked through the keymgr executable and the library; a point the log does hold
 * passes, and bad option values are refused by name.
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
#include "tests/audit/fixture.h"

#define CUT 10   /* the signed checkpoint the store is rolled back to */

static audit_fx_t fx;
static const char *keymgr;
static int64_t head;                              /* the last event before the rollback */
static int64_t last_cp;                           /* the last checkpoint's seq (> CUT) */
static char hash_cut[KM_STORE_HASH_HEX + 1];      /* hash of event CUT */
static char hash_last_cp[KM_STORE_HASH_HEX + 1];  /* hash of event last_cp */
static char audit_kid[KM_KID_MAX + 1];

static void reload_event(int64_t at)
{
	char err[512] = "";
	if (km_audit_record(fx.env, "config.reload", NULL, NULL, NULL, "SIGHUP", at, err,
	                    sizeof(err)) != KM_EOK)
		fail_msg("config.reload: %s", err);
}

static int64_t current_head(char hash[KM_STORE_HASH_HEX + 1])
{
	int64_t seq = 0;
	char err[256];
	assert_int_equal(km_store_audit_head(km_env_store(fx.env), &seq, hash, err, sizeof(err)),
	                 KM_EOK);
	return seq;
}

/* Runs keymgr audit verify development ARGS...; returns the exit status, output in r. */
static int verify(audit_run_t *r, const char *const *args)
{
	const char *argv[16] = { keymgr, "audit", "verify", AUDIT_FX_ENV };
	size_t n = 4;
	for (; args[n - 4] != NULL && n < 15; n++)
		argv[n] = args[n - 4];
	argv[n] = NULL;
	assert_int_equal(audit_fx_run(&fx, argv, r), 0);
	return r->status;
}

static void expect_failed(const char *const *args, int64_t seq, const char *why)
{
	audit_run_t r;
	char want[64];
	snprintf(want, sizeof(want), "FAILED at seq %lld:", (long long)seq);
	int st = verify(&r, args);
	if (st != 1 || strstr(r.out, want) == NULL || strstr(r.out, why) == NULL)
		fail_msg("audit verify %s ...: exit %d, expected 1 with '%s' and '%s':\n%s%s",
		         args[0] ? args[0] : "", st, want, why, r.out, r.err);
	audit_run_free(&r);
}

static void expect_ok(const char *const *args)
{
	audit_run_t r;
	int st = verify(&r, args);
	if (st != 0 || strstr(r.out, ": OK,") == NULL)
		fail_msg("audit verify %s ...: exit %d, expected OK:\n%s%s", args[0] ? args[0] : "",
		         st, r.out, r.err);
	audit_run_free(&r);
}

static void expect_usage(const char *const *args, int status, const char *msg)
{
	audit_run_t r;
	int st = verify(&r, args);
	if (st != status || strstr(r.err, msg) == NULL)
		fail_msg("audit verify %s: exit %d, expected %d with '%s':\n%s%s", args[0], st,
		         status, msg, r.out, r.err);
	audit_run_free(&r);
}

static int group_setup(void **state)
{
	char err[1024] = "";
	km_store_checkpoint_t cp;
	int64_t t = 1800000000;
	/* store.create, policy.load, keyset.create; the first checkpoint adds audit.key.create */
	if (audit_fx_create(&fx) != 0 || audit_fx_keyset(&fx, "api", t) != 0)
		return -1;
	if (km_audit_checkpoint(fx.env, t + 1, true, &cp, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "history: %s\n", err);
		return -1;
	}
	snprintf(audit_kid, sizeof(audit_kid), "%s", cp.key_kid);
	char h[KM_STORE_HASH_HEX + 1];
	while (current_head(h) < CUT)
		reload_event(t + 2);
	if (current_head(hash_cut) != CUT ||
	    km_audit_checkpoint(fx.env, t + 3, true, &cp, err, sizeof(err)) != KM_EOK ||
	    cp.seq != CUT)
		return -1;
	/* After the cut: events that change no table, and a checkpoint over them. */
	for (int i = 0; i < 3; i++)
		reload_event(t + 4);
	if (km_audit_checkpoint(fx.env, t + 5, true, &cp, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "checkpoint: %s\n", err);
		return -1;
	}
	last_cp = cp.seq;
	memcpy(hash_last_cp, cp.hash, sizeof(hash_last_cp));
	reload_event(t + 6);
	reload_event(t + 7);
	head = current_head(h);
	*state = &fx;
	return 0;
}

static int group_teardown(void **state)
{
	audit_fx_destroy(&fx);
	return 0;
}

/* Before the rollback: every anchor holds, and the stream carries the checkpoints. */
static void test_untouched_log_holds_every_anchor(void **state)
{
	char seq[24];
	snprintf(seq, sizeof(seq), "%lld", (long long)last_cp);
	expect_ok((const char *[]){ "--audit-kid", audit_kid, NULL });
	expect_ok((const char *[]){ "--expect-seq", seq, "--expect-head", hash_last_cp, NULL });
	expect_ok((const char *[]){ "--no-token", "--stream", fx.jsonl, NULL });

	audit_run_t r;
	assert_int_equal(verify(&r, (const char *[]){ "--json", NULL }), 0);
	json_t *j = json_loads(r.out, 0, NULL);
	json_t *e = json_array_get(j, 0);
	assert_string_equal(json_string_value(json_object_get(e, "token_record")), "compared");
	assert_int_equal(json_integer_value(json_object_get(e, "anchor_seq")), last_cp);
	json_decref(j);
	audit_run_free(&r);

	/* The JSON lines file holds each checkpoint as it was signed. */
	FILE *f = fopen(fx.jsonl, "r");
	assert_non_null(f);
	char line[4096];
	size_t checkpoints = 0;
	bool last = false;
	while (fgets(line, sizeof(line), f) != NULL) {
		json_t *l = json_loads(line, 0, NULL);
		if (json_is_string(json_object_get(l, "type"))) {
			assert_string_equal(json_string_value(json_object_get(l, "type")),
			                    KM_AUDIT_CHECKPOINT_TYPE);
			checkpoints++;
			last = json_integer_value(json_object_get(l, "seq")) == last_cp &&
			       strcmp(json_string_value(json_object_get(l, "hash")), hash_last_cp) == 0 &&
			       strcmp(json_string_value(json_object_get(l, "kid")), audit_kid) == 0 &&
			       strlen(json_string_value(json_object_get(l, "signature"))) == 86;
		}
		json_decref(l);
	}
	fclose(f);
	assert_int_equal(checkpoints, 3);
	assert_true(last);
}

/* The attack: triggers dropped, every event and checkpoint after seq CUT deleted. */
static void test_rollback_to_an_earlier_checkpoint(void **state)
{
	char sql[512], err[1024] = "";
	snprintf(sql, sizeof(sql), "DROP TRIGGER audit_events_never_deleted;"
	         "DROP TRIGGER audit_checkpoints_never_deleted;"
	         "DELETE FROM audit_events WHERE seq > %d;"
	         "DELETE FROM audit_checkpoints WHERE seq > %d;", CUT, CUT);
	km_env_close_token(fx.env);
	assert_int_equal(audit_fx_sql(fx.store, sql), 0);
	audit_fx_reopen(&fx);
	char h[KM_STORE_HASH_HEX + 1];
	assert_int_equal(current_head(h), CUT);

	/* What the store alone says: a consistent, signed log (the attack of the issue). */
	km_audit_verify_t v;
	km_audit_verify_opts_t o = { .pin_kid = audit_kid };
	assert_int_equal(km_audit_verify(km_env_store(fx.env), &o, &v, err, sizeof(err)), KM_EOK);
	assert_true(v.ok);
	assert_int_equal(v.checkpoint_seq, CUT);
	expect_ok((const char *[]){ "--no-token", "--audit-kid", audit_kid, NULL });

	/* The token's record of the last checkpoint, through the library... */
	km_audit_anchor_t tok;
	bool found = false;
	assert_int_equal(km_audit_token_anchor(fx.env, &tok, &found, err, sizeof(err)), KM_EOK);
	assert_true(found);
	assert_int_equal(tok.seq, last_cp);
	assert_string_equal(tok.hash, hash_last_cp);
	o.anchors = &tok;
	o.n_anchors = 1;
	assert_int_equal(km_audit_verify(km_env_store(fx.env), &o, &v, err, sizeof(err)), KM_EOK);
	assert_false(v.ok);
	assert_int_equal(v.first_bad_seq, CUT + 1);
	assert_non_null(strstr(v.problem, "rolled back"));
	km_env_close_token(fx.env);
}

static void test_rollback_caught_by_the_token_record(void **state)
{
	/* keymgr audit verify ENV opens the audit token and compares its record. */
	expect_failed((const char *[]){ NULL }, CUT + 1, "the token's checkpoint record");
	expect_failed((const char *[]){ "--audit-kid", audit_kid, NULL }, CUT + 1, "rolled back");
}

static void test_rollback_caught_by_expect_seq_and_head(void **state)
{
	char seq[24], cut[24];
	snprintf(seq, sizeof(seq), "%lld", (long long)head);
	snprintf(cut, sizeof(cut), "%d", CUT);
	expect_failed((const char *[]){ "--no-token", "--expect-seq", seq, NULL }, CUT + 1,
	              "rolled back");
	expect_failed((const char *[]){ "--no-token", "--expect-head", hash_last_cp, NULL },
	              CUT + 1, "no event of the log has the hash");
	/* A point the log does hold passes; the right seq with another hash does not. */
	expect_ok((const char *[]){ "--no-token", "--expect-seq", cut, "--expect-head", hash_cut,
	                            NULL });
	expect_failed((const char *[]){ "--no-token", "--expect-seq", cut, "--expect-head",
	                                hash_last_cp, NULL }, CUT, "was rewritten");
}

static void test_rollback_caught_by_the_stream(void **state)
{
	char copy[400];
	expect_failed((const char *[]){ "--no-token", "--stream", fx.jsonl, NULL }, CUT + 1,
	              "audit.jsonl:");
	/* Offline, on a copy of the store, against the SIEM's copy of the stream. */
	snprintf(copy, sizeof(copy), "%s/rolled-back.db", fx.hsm.dir);
	assert_int_equal(audit_fx_copy_store(&fx, copy), 0);
	expect_failed((const char *[]){ "--store", copy, "--stream", fx.jsonl, NULL }, CUT + 1,
	              "rolled back");
	/* The library: every line of this environment is an anchor. */
	km_audit_anchor_t *a = NULL;
	size_t n = 0;
	char err[512] = "";
	assert_int_equal(km_audit_stream_anchors(fx.jsonl, AUDIT_FX_ENV, &a, &n, err, sizeof(err)),
	                 KM_EOK);
	assert_true(n > 0);
	assert_int_equal(a[n - 1].seq, head);
	free(a);
	/* Another environment's lines are not this one's anchors. */
	assert_int_equal(km_audit_stream_anchors(fx.jsonl, "production", &a, &n, err,
	                                         sizeof(err)), KM_EOK);
	assert_int_equal(n, 0);
	free(a);
}

static void test_bad_anchor_options_refused(void **state)
{
	char bad[400];
	expect_usage((const char *[]){ "--expect-seq", "0", NULL }, 2, "invalid --expect-seq");
	expect_usage((const char *[]){ "--expect-seq", "12x", NULL }, 2, "invalid --expect-seq");
	expect_usage((const char *[]){ "--expect-seq", "-3", NULL }, 2, "invalid --expect-seq");
	expect_usage((const char *[]){ "--expect-head", "abc", NULL }, 2, "invalid --expect-head");
	snprintf(bad, sizeof(bad), "%s/missing.jsonl", fx.hsm.dir);
	expect_usage((const char *[]){ "--no-token", "--stream", bad, NULL }, 1, "missing.jsonl");
	snprintf(bad, sizeof(bad), "%s/bad.jsonl", fx.hsm.dir);
	FILE *f = fopen(bad, "w");
	assert_non_null(f);
	fputs("{\"env\":\"development\",\"seq\":1,\"hash\":\"00\",\"action\":\"x\"}\n", f);
	fclose(f);
	expect_usage((const char *[]){ "--no-token", "--stream", bad, NULL }, 1, "bad.jsonl:1:");
	/* Without ENV the point has no log to be in. */
	const char *argv[] = { keymgr, "audit", "verify", "--expect-seq", "3", NULL };
	audit_run_t r;
	assert_int_equal(audit_fx_run(&fx, argv, &r), 0);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "give ENV"));
	audit_run_free(&r);
}

int main(int argc, char **argv)
{
	if ((keymgr = audit_fx_args(argc, argv)) == NULL)
		return 2;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_untouched_log_holds_every_anchor),
		cmocka_unit_test(test_rollback_to_an_earlier_checkpoint),
		cmocka_unit_test(test_rollback_caught_by_the_token_record),
		cmocka_unit_test(test_rollback_caught_by_expect_seq_and_head),
		cmocka_unit_test(test_rollback_caught_by_the_stream),
		cmocka_unit_test(test_bad_anchor_options_refused),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
