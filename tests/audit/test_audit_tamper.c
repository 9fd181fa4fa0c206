/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `audit verify` against each kind of tampering, done to copies of a real store the way an
 * attacker with write access would (sqlite3 CLI, dropping the append-only triggers first;
 * Python to recompute hashes or forge an audit key): every kind is detected at the right
 * sequence number by the library, by `keymgr audit verify --store` (exit 1, "FAILED at seq
 * N") and, for the chain itself, by the independent Python verifier. The history is made
 * through keymgr's own operations on a real SoftHSM token, with a signed checkpoint.
 */
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

#include "keymgr/audit/audit.h"
#include "keymgr/claims/claims.h"
#include "keymgr/common/error.h"
#include "keymgr/core/apply.h"
#include "keymgr/core/keyops.h"
#include "tests/audit/fixture.h"

static audit_fx_t fx;
static const char *keymgr;            /* the executable under test (argv[1]) */
static int64_t head;                   /* last event, covered by the checkpoint */
static int64_t first_cp;               /* the seq the first checkpoint signed */
static int64_t seq_create, seq_owner, seq_audit_key, seq_jwks2;
static char successor[KM_KID_MAX + 1];
static char audit_kid[KM_KID_MAX + 1];
static int copies;

/* The seq of the last event with this action. */
static int64_t last_seq(const char *action)
{
	km_store_audit_filter_t f = { .action = action };
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	char err[256];
	assert_int_equal(km_store_audit_query(km_env_store(fx.env), &f, &ev, &n, err, sizeof(err)),
	                 KM_EOK);
	assert_true(n > 0);
	int64_t s = ev[n - 1].seq;
	km_store_audit_events_free(ev, n);
	return s;
}

static int group_setup(void **state)
{
	char err[1024] = "";
	km_store_keyset_t ks;
	km_apply_rotation_t k;
	km_store_checkpoint_t cp0;
	if (audit_fx_create(&fx) != 0)
		return -1;
	memset(&ks, 0, sizeof(ks));
	snprintf(ks.name, sizeof(ks.name), "api");
	ks.alg = KM_ALG_ES256;
	snprintf(ks.owner, sizeof(ks.owner), "team-a");
	snprintf(ks.purpose, sizeof(ks.purpose), "access-token");
	int64_t t = 1800000000;
	if (km_keyset_create(fx.env, &ks, "tester", t, err, sizeof(err)) != KM_EOK ||
	    km_apply_rotate(fx.env, "api", t + 10, KM_PLAN_ROTATE_NORMAL, NULL, &k, err,
	                    sizeof(err)) != KM_EOK ||
	    km_apply_rotate(fx.env, "api", t + 20, KM_PLAN_ROTATE_NORMAL, NULL, &k, err,
	                    sizeof(err)) != KM_EOK ||
	    km_store_keyset_set_owner(km_env_store(fx.env), "api", "team-b", "tester", t + 30,
	                              "reorganisation", err, sizeof(err)) != KM_EOK ||
	    /* the first checkpoint creates the audit key (an audit.key.create event) */
	    km_audit_checkpoint(fx.env, t + 35, true, &cp0, err, sizeof(err)) != KM_EOK ||
	    km_audit_record(fx.env, "config.reload", NULL, NULL, NULL, "SIGHUP", t + 40, err,
	                    sizeof(err)) != KM_EOK ||
	    km_audit_record(fx.env, "config.reload", NULL, NULL, NULL, "SIGHUP", t + 50, err,
	                    sizeof(err)) != KM_EOK) {
		fprintf(stderr, "history: %s\n", err);
		return -1;
	}
	snprintf(successor, sizeof(successor), "%s", k.kid);
	first_cp = cp0.seq;
	km_store_checkpoint_t cp;
	if (km_audit_checkpoint(fx.env, t + 60, true, &cp, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "checkpoint: %s\n", err);
		return -1;
	}
	snprintf(audit_kid, sizeof(audit_kid), "%s", cp.key_kid);
	char hash[KM_STORE_HASH_HEX + 1];
	km_store_audit_head(km_env_store(fx.env), &head, hash, err, sizeof(err));
	if (cp.seq != head)
		return -1;
	*state = &fx;
	return 0;
}

static int group_teardown(void **state)
{
	audit_fx_destroy(&fx);
	return 0;
}

/* A fresh copy of the store, tampered with by sql (may be NULL). Writes its path. */
static void tampered_copy(const char *sql, char *path, size_t len)
{
	snprintf(path, len, "%s/copy-%d.db", fx.hsm.dir, ++copies);
	assert_int_equal(audit_fx_copy_store(&fx, path), 0);
	if (sql != NULL)
		assert_int_equal(audit_fx_sql(path, sql), 0);
}

static void run_python(const char *script, const char *const *args, audit_run_t *r)
{
	char prog[512];
	const char *argv[8] = { "/usr/bin/python3", prog };
	size_t n = 2;
	snprintf(prog, sizeof(prog), "%s/%s", audit_fx_srcdir(), script);
	for (; args[n - 2] != NULL; n++)
		argv[n] = args[n - 2];
	argv[n] = NULL;
	assert_int_equal(audit_fx_run(&fx, argv, r), 0);
}

/* Verifies the copy with the library, the CLI and (chain_level) the Python verifier. */
static void expect_bad(const char *path, int64_t seq, const char *why, bool chain_level,
                       const char *pin)
{
	km_store_t *s = NULL;
	km_audit_verify_t v;
	km_audit_verify_opts_t o = { .pin_kid = pin };
	char err[1024] = "", want[64];
	assert_int_equal(km_store_open(path, AUDIT_FX_ENV, &s, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_audit_verify(s, &o, &v, err, sizeof(err)), KM_EOK);
	km_store_free(s);
	if (v.ok)
		fail_msg("tampering not detected (expected seq %lld: %s)", (long long)seq, why);
	if (v.first_bad_seq != seq || strstr(v.problem, why) == NULL)
		fail_msg("first bad seq %lld (%s), expected %lld (%s)", (long long)v.first_bad_seq,
		         v.problem, (long long)seq, why);

	audit_run_t r;
	const char *argv[] = { keymgr, "audit", "verify", AUDIT_FX_ENV, "--store", path,
	                       pin ? "--audit-kid" : NULL, pin, NULL };
	assert_int_equal(audit_fx_run(&fx, argv, &r), 0);
	snprintf(want, sizeof(want), "FAILED at seq %lld:", (long long)seq);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.out, want));
	audit_run_free(&r);

	if (chain_level) {
		const char *args[] = { path, pin, NULL };
		run_python("verify_chain.py", args, &r);
		assert_int_equal(r.status, 1);
		assert_non_null(strstr(r.out, want));
		audit_run_free(&r);
	}
}

static void test_verify_untampered_copy_passes(void **state)
{
	char path[400];
	km_store_t *s = NULL;
	km_audit_verify_t v;
	char err[1024] = "";
	tampered_copy(NULL, path, sizeof(path));
	assert_int_equal(km_store_open(path, AUDIT_FX_ENV, &s, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_audit_verify(s, NULL, &v, err, sizeof(err)), KM_EOK);
	km_store_free(s);
	if (!v.ok)
		fail_msg("clean copy failed at %lld: %s", (long long)v.first_bad_seq, v.problem);
	assert_int_equal(v.events, head);
	assert_int_equal(v.checkpoint_seq, head);
	assert_string_equal(v.checkpoint_kid, audit_kid);

	audit_run_t r;
	const char *argv[] = { keymgr, "audit", "verify", AUDIT_FX_ENV, "--store", path,
	                       "--audit-kid", audit_kid, NULL };
	assert_int_equal(audit_fx_run(&fx, argv, &r), 0);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, ": OK,"));
	audit_run_free(&r);
	const char *args[] = { path, audit_kid, NULL };
	run_python("verify_chain.py", args, &r);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "OK "));
	audit_run_free(&r);
	/* verification wrote nothing: the copy still has exactly the events it had */
	assert_int_equal(audit_fx_sql(path, "SELECT 1 WHERE (SELECT count(*) FROM audit_events) "
	                              "!= (SELECT max(seq) FROM audit_events)"), 0);
}

static void test_tamper_owner_in_log_row(void **state)
{
	char path[400];
	seq_create = last_seq("keyset.create");
	tampered_copy("DROP TRIGGER audit_events_never_updated;"
	              "UPDATE audit_events SET after = replace(after, '\"owner\":\"team-a\"',"
	              " '\"owner\":\"mallory\"') WHERE action = 'keyset.create';", path,
	              sizeof(path));
	expect_bad(path, seq_create, "does not match its hash", true, NULL);
}

static void test_tamper_owner_in_keysets_table(void **state)
{
	char path[400];
	seq_owner = last_seq("keyset.owner");
	/* The log is intact, but the row no longer says what the log says. */
	tampered_copy("UPDATE keysets SET owner = 'mallory' WHERE name = 'api';", path,
	              sizeof(path));
	expect_bad(path, seq_owner, "owner 'mallory'", false, NULL);
}

static void test_tamper_row_deleted_from_middle(void **state)
{
	char path[400];
	tampered_copy("DROP TRIGGER audit_events_never_deleted;"
	              "DELETE FROM audit_events WHERE seq = 5;", path, sizeof(path));
	expect_bad(path, 5, "event 5 is missing", true, NULL);
}

static void test_tamper_rows_reordered(void **state)
{
	char path[400];
	tampered_copy("DROP TRIGGER audit_events_never_updated;"
	              "UPDATE audit_events SET seq = -6 WHERE seq = 6;"
	              "UPDATE audit_events SET seq = 6 WHERE seq = 7;"
	              "UPDATE audit_events SET seq = 7 WHERE seq = -6;", path, sizeof(path));
	expect_bad(path, 6, "prev_hash does not match", true, NULL);
}

static void test_tamper_tail_truncated_caught_by_checkpoint(void **state)
{
	char path[400], sql[256];
	/* The last two events (config reloads) change no table: only the signed checkpoint
	 * can tell that they existed. */
	snprintf(sql, sizeof(sql), "DROP TRIGGER audit_events_never_deleted;"
	         "DELETE FROM audit_events WHERE seq > %lld;", (long long)head - 2);
	tampered_copy(sql, path, sizeof(path));
	expect_bad(path, head - 1, "removed from the end", true, NULL);
}

static void test_tamper_chain_rewritten_caught_by_checkpoint(void **state)
{
	char path[400], seq[16];
	audit_run_t r;
	tampered_copy(NULL, path, sizeof(path));
	snprintf(seq, sizeof(seq), "%d", 4);
	const char *args[] = { path, "rewrite", seq, NULL };
	run_python("tamper.py", args, &r);
	assert_int_equal(r.status, 0);
	audit_run_free(&r);
	/* The chain itself is consistent again; the signed heads are not: the earliest
	 * checkpoint that disagrees bounds where the rewrite starts. */
	expect_bad(path, first_cp, "differs from the one checkpoint", true, NULL);
}

static void test_tamper_rewritten_chain_and_checkpoint_hash(void **state)
{
	char path[400];
	audit_run_t r;
	tampered_copy(NULL, path, sizeof(path));
	const char *args[] = { path, "rewrite", "4", NULL };
	run_python("tamper.py", args, &r);
	assert_int_equal(r.status, 0);
	audit_run_free(&r);
	/* Making the checkpoints say the new hashes breaks their signatures. */
	assert_int_equal(audit_fx_sql(path, "UPDATE audit_checkpoints SET hash = (SELECT hash FROM "
	                              "audit_events WHERE audit_events.seq = "
	                              "audit_checkpoints.seq);"), 0);
	expect_bad(path, first_cp, "invalid signature", true, NULL);
}

static void test_tamper_forged_audit_key(void **state)
{
	char path[400];
	audit_run_t r;
	seq_audit_key = last_seq("audit.key.create");
	tampered_copy(NULL, path, sizeof(path));
	const char *args[] = { path, "forge-key", NULL };
	run_python("tamper.py", args, &r);
	assert_int_equal(r.status, 0);
	audit_run_free(&r);
	/* Re-signed checkpoints verify under the forged key, but the log recorded another. */
	expect_bad(path, seq_audit_key, "differs from the one the log recorded", false, NULL);
}

static void test_tamper_forged_key_and_log_needs_pinned_kid(void **state)
{
	char path[400];
	audit_run_t r;
	km_store_t *s = NULL;
	km_audit_verify_t v;
	char err[1024] = "";
	tampered_copy(NULL, path, sizeof(path));
	const char *args[] = { path, "forge-key", "rewrite-log", NULL };
	run_python("tamper.py", args, &r);
	assert_int_equal(r.status, 0);
	audit_run_free(&r);
	/* An attacker who rewrites everything and signs with a key of their own is consistent:
	 * only the audit kid recorded out of band tells (docs/auditor-guide.md). */
	assert_int_equal(km_store_open(path, AUDIT_FX_ENV, &s, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_audit_verify(s, NULL, &v, err, sizeof(err)), KM_EOK);
	km_store_free(s);
	assert_true(v.ok);
	assert_string_not_equal(v.checkpoint_kid, audit_kid);
	expect_bad(path, first_cp, "not by the expected", true, audit_kid);
}

static void test_tamper_key_state_in_keys_table(void **state)
{
	char path[400], sql[512];
	km_store_audit_filter_t f = { .kid = successor };
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	char err[256];
	assert_int_equal(km_store_audit_query(km_env_store(fx.env), &f, &ev, &n, err, sizeof(err)),
	                 KM_EOK);
	int64_t last = ev[n - 1].seq;
	km_store_audit_events_free(ev, n);
	snprintf(sql, sizeof(sql), "UPDATE keys SET state = 'revoked', revoked_at = 1800000099,"
	         " revoke_reason = 'x' WHERE kid = '%s';", successor);
	tampered_copy(sql, path, sizeof(path));
	expect_bad(path, last, "the log says published", false, NULL);
}

static void test_tamper_jwks_history_edited(void **state)
{
	char path[400];
	seq_jwks2 = last_seq("jwks.publish");
	tampered_copy("DROP TRIGGER jwks_versions_never_deleted;"
	              "UPDATE jwks_versions SET kids = '[]' WHERE serial = 2;", path, sizeof(path));
	expect_bad(path, seq_jwks2, "JWKS version 2 differs", false, NULL);
}

static void test_tamper_log_emptied_not_restarted(void **state)
{
	char path[400];
	/* Deleting the whole log: opening the store must not start a new chain over it. */
	tampered_copy("DROP TRIGGER audit_events_never_deleted; DELETE FROM audit_events;", path,
	              sizeof(path));
	expect_bad(path, 1, "the log is empty", true, NULL);
}

static void test_checkpoint_not_repeated_without_change(void **state)
{
	km_store_checkpoint_t a, b;
	km_store_checkpoint_t *list = NULL;
	size_t n0 = 0, n1 = 0;
	char err[1024] = "";
	assert_int_equal(km_store_checkpoints(km_env_store(fx.env), &list, &n0, err, sizeof(err)),
	                 KM_EOK);
	free(list);
	/* keymgrd's call: nothing new since the last checkpoint, nothing signed */
	assert_int_equal(km_audit_checkpoint(fx.env, 1800000100, false, &a, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(km_store_checkpoints(km_env_store(fx.env), &list, &n1, err, sizeof(err)),
	                 KM_EOK);
	free(list);
	assert_int_equal(n1, n0);
	assert_int_equal(a.seq, head);
	/* keymgr audit checkpoint: signs again on request */
	assert_int_equal(km_audit_checkpoint(fx.env, 1800000101, true, &b, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(b.seq, head);
	assert_int_equal(b.at, 1800000101);
	assert_string_equal(b.key_kid, audit_kid);
}

static void test_audit_key_never_signs_jwts(void **state)
{
	km_store_audit_key_t *keys = NULL;
	km_store_key_t k;
	size_t n = 0;
	char err[1024] = "", sql[1024], hex[41];
	km_store_t *s = km_env_store(fx.env);
	assert_int_equal(km_store_audit_keys(s, &keys, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	for (size_t i = 0; i < keys[0].cka_id_len; i++)
		snprintf(hex + 2 * i, 3, "%02x", keys[0].cka_id[i]);

	/* Through keymgr: the audit key's CKA_ID can never be recorded as a key set's key. */
	memset(&k, 0, sizeof(k));
	snprintf(k.keyset, sizeof(k.keyset), "api");
	snprintf(k.token_label, sizeof(k.token_label), "audit-dev");
	memcpy(k.cka_id, keys[0].cka_id, keys[0].cka_id_len);
	k.cka_id_len = keys[0].cka_id_len;
	for (int i = 0; i < KM_STATE_COUNT; i++)
		k.state_at[i] = KM_STORE_TIME_NONE;
	k.state_at[KM_STATE_GENERATED] = 1800000200;
	size_t before = audit_fx_count(&fx, NULL);
	assert_int_equal(km_store_key_intent(s, &k, NULL, err, sizeof(err)), KM_EEXIST);
	assert_non_null(strstr(err, "audit key"));
	assert_int_equal(audit_fx_count(&fx, NULL), before);

	/* Behind keymgr's back (sqlite3): the signing path still refuses, and records it. */
	km_store_key_t active;
	assert_int_equal(km_store_key_active(s, "api", &active, err, sizeof(err)), KM_EOK);
	snprintf(sql, sizeof(sql), "UPDATE keys SET state = 'retired' WHERE kid = '%s';"
	         "INSERT INTO keys(kid, keyset_id, alg, token_label, cka_id, owner, purpose, state,"
	         " pending, public_jwk, generated_at, activated_at) SELECT '%s', keyset_id, alg,"
	         " token_label, X'%s', owner, purpose, 'active', 0, public_jwk, 1800000200,"
	         " 1800000200 FROM keys WHERE kid = '%s';", active.kid, keys[0].kid, hex,
	         active.kid);
	free(keys);
	audit_fx_reopen(&fx);
	assert_int_equal(audit_fx_sql(fx.store, sql), 0);
	char *jwt = NULL;
	size_t denied = audit_fx_count(&fx, "sign.denied");
	assert_int_equal(km_claims_sign(fx.env, "api", "{\"sub\":\"x\",\"client_id\":\"c\","
	                                "\"aud\":\"api.test\"}", (int64_t)time(NULL), 600, &jwt,
	                                err, sizeof(err)), KM_POLICY_EDENIED);
	assert_null(jwt);
	assert_non_null(strstr(err, "audit key"));
	assert_int_equal(audit_fx_count(&fx, "sign.denied"), denied + 1);
	/* and verification reports the row keymgr never wrote */
	km_audit_verify_t v;
	assert_int_equal(km_audit_verify(km_env_store(fx.env), NULL, &v, err, sizeof(err)), KM_EOK);
	assert_false(v.ok);
}

int main(int argc, char **argv)
{
	if ((keymgr = audit_fx_args(argc, argv)) == NULL)
		return 2;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_untampered_copy_passes),
		cmocka_unit_test(test_tamper_owner_in_log_row),
		cmocka_unit_test(test_tamper_owner_in_keysets_table),
		cmocka_unit_test(test_tamper_row_deleted_from_middle),
		cmocka_unit_test(test_tamper_rows_reordered),
		cmocka_unit_test(test_tamper_tail_truncated_caught_by_checkpoint),
		cmocka_unit_test(test_tamper_chain_rewritten_caught_by_checkpoint),
		cmocka_unit_test(test_tamper_rewritten_chain_and_checkpoint_hash),
		cmocka_unit_test(test_tamper_forged_audit_key),
		cmocka_unit_test(test_tamper_forged_key_and_log_needs_pinned_kid),
		cmocka_unit_test(test_tamper_key_state_in_keys_table),
		cmocka_unit_test(test_tamper_jwks_history_edited),
		cmocka_unit_test(test_tamper_log_emptied_not_restarted),
		cmocka_unit_test(test_checkpoint_not_repeated_without_change),
		/* last: it tampers with the fixture's own store */
		cmocka_unit_test(test_audit_key_never_signs_jwts),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
