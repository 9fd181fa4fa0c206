/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit chain at the store level, on real SQLite files (no token): the canonical
 * serialization byte for byte (against a vector computed by Python's json + hashlib), events
 * that live and die with their transaction, the streaming sink seeing committed events only,
 * policy.load before the first change under a new policy, km_store_audit_append()'s input
 * checks, the actor, a v1 store migrated starting its chain with a baseline, and a v2 store
 * migrated to v3 (requested rotations) keeping its chain, with key.schedule replayed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"
#include "tests/audit/fixture.h"

typedef struct {
	char dir[128];
	char path[200];
	km_store_t *s;
	size_t sunk;                  /* events the sink received */
	char last_sunk[KM_STORE_ACTION_MAX + 1];
} chain_fx_t;

static void sink(void *ctx, const char *env, const km_store_audit_event_t *e)
{
	chain_fx_t *fx = ctx;
	fx->sunk++;
	snprintf(fx->last_sunk, sizeof(fx->last_sunk), "%s", e->action);
}

static int setup(void **state)
{
	chain_fx_t *fx = calloc(1, sizeof(*fx));
	char err[512];
	snprintf(fx->dir, sizeof(fx->dir), "%s/keymgr-audit-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (fx == NULL || mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/dev.db", fx->dir);
	if (km_store_open(fx->path, "dev", &fx->s, err, sizeof(err)) != KM_EOK)
		return -1;
	km_store_set_audit_sink(fx->s, sink, fx);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	chain_fx_t *fx = *state;
	char p[300];
	km_store_free(fx->s);
	const char *files[] = { "dev.db", "dev.db-wal", "dev.db-shm", NULL };
	for (int i = 0; files[i]; i++) {
		snprintf(p, sizeof(p), "%s/%s", fx->dir, files[i]);
		unlink(p);
	}
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static size_t n_events(km_store_t *s)
{
	int64_t seq = 0;
	char hash[KM_STORE_HASH_HEX + 1], err[256];
	assert_int_equal(km_store_audit_head(s, &seq, hash, err, sizeof(err)), KM_EOK);
	return (size_t)seq;
}

static void keyset(km_store_t *s, const char *name, int64_t at)
{
	km_store_keyset_t ks;
	char err[512] = "";
	memset(&ks, 0, sizeof(ks));
	snprintf(ks.name, sizeof(ks.name), "%s", name);
	ks.alg = KM_ALG_ES256;
	snprintf(ks.owner, sizeof(ks.owner), "team-a");
	snprintf(ks.purpose, sizeof(ks.purpose), "access-token");
	snprintf(ks.created_by, sizeof(ks.created_by), "tester");
	ks.created_at = at;
	assert_int_equal(km_store_keyset_create(s, &ks, NULL, err, sizeof(err)), KM_EOK);
}

/* A confirmed key named kid (a fake kid and JWK: the store checks only their shape). */
static void key(km_store_t *s, const char *ks, const char *kid, uint8_t id, int64_t at)
{
	km_store_key_t k;
	char err[512] = "";
	memset(&k, 0, sizeof(k));
	snprintf(k.keyset, sizeof(k.keyset), "%s", ks);
	snprintf(k.token_label, sizeof(k.token_label), "tok");
	memcpy(k.cka_id, "KMGR", 4);
	memset(k.cka_id + 4, id, 16);
	k.cka_id_len = 20;
	for (int i = 0; i < KM_STATE_COUNT; i++)
		k.state_at[i] = KM_STORE_TIME_NONE;
	k.state_at[KM_STATE_GENERATED] = at;
	assert_int_equal(km_store_key_intent(s, &k, NULL, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_key_confirm(s, k.cka_id, 20, kid, "{\"kty\":\"EC\"}", at, err,
	                                      sizeof(err)), KM_EOK);
}

static void expect_verified(km_store_t *s)
{
	km_audit_verify_t v;
	char err[512];
	assert_int_equal(km_audit_verify(s, NULL, &v, err, sizeof(err)), KM_EOK);
	if (!v.ok)
		fail_msg("verify: seq %lld: %s", (long long)v.first_bad_seq, v.problem);
}

static void test_canonical_is_byte_exact(void **state)
{
	km_store_audit_event_t e;
	char *text = NULL, hash[KM_STORE_HASH_HEX + 1];
	memset(&e, 0, sizeof(e));
	e.seq = 7;
	e.at = 1800000000;
	snprintf(e.actor.user, sizeof(e.actor.user), "alice");
	e.actor.uid = 1000;
	snprintf(e.actor.host, sizeof(e.actor.host), "h\xc3\xa9");
	snprintf(e.actor.via, sizeof(e.actor.via), "daemon");
	e.actor.pid = 42;
	snprintf(e.action, sizeof(e.action), "config.reload");
	snprintf(e.keyset, sizeof(e.keyset), "api");
	e.before = (char *)"";
	e.after = (char *)"{\"path\":\"/etc/keymgr/keymgr.yaml\"}";
	snprintf(e.reason, sizeof(e.reason), "say \"hi\"\\ \n\t\x01 ok");
	/* computed with Python: json.dumps(ev, sort_keys=True, separators=(",", ":"),
	 * ensure_ascii=False) and hashlib.sha256(prev + canonical) */
	const char *want = "{\"action\":\"config.reload\",\"actor\":{\"host\":\"h\xc3\xa9\","
	                   "\"pid\":42,\"uid\":1000,\"user\":\"alice\",\"via\":\"daemon\"},"
	                   "\"after\":\"{\\\"path\\\":\\\"/etc/keymgr/keymgr.yaml\\\"}\","
	                   "\"at\":1800000000,\"before\":\"\",\"env\":\"production\","
	                   "\"keyset\":\"api\",\"kid\":\"\",\"policy_hash\":\"\","
	                   "\"reason\":\"say \\\"hi\\\"\\\\ \\n\\t\\u0001 ok\",\"seq\":7,\"v\":1}";
	assert_int_equal(km_store_audit_canonical("production", &e, &text, NULL), KM_EOK);
	assert_string_equal(text, want);
	free(text);
	memset(e.prev_hash, '0', KM_STORE_HASH_HEX);
	assert_int_equal(km_store_audit_hash("production", &e, hash), KM_EOK);
	assert_string_equal(hash, "325a3efe540593a621e139e9adafc0857dcb63bd66a320afb70a373d45906833");
	memset(e.prev_hash, 'a', KM_STORE_HASH_HEX);
	for (int i = 1; i < KM_STORE_HASH_HEX; i += 2)
		e.prev_hash[i] = 'b';
	assert_int_equal(km_store_audit_hash("production", &e, hash), KM_EOK);
	assert_string_equal(hash, "6c87a9cd874719f0c88a85061ca486a492c960d3724ed36b36f6637d30103b92");
	/* a malformed prev_hash is refused, not hashed */
	e.prev_hash[3] = 'x';
	assert_int_equal(km_store_audit_hash("production", &e, hash), KM_EINVAL);
}

static void test_new_store_starts_its_chain(void **state)
{
	chain_fx_t *fx = *state;
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	char err[256];
	assert_int_equal(km_store_audit_query(fx->s, NULL, &ev, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].action, "store.create");
	assert_int_equal(ev[0].seq, 1);
	assert_string_equal(ev[0].prev_hash, "000000000000000000000000000000000000000000000000"
	                    "0000000000000000");
	km_store_audit_events_free(ev, n);
	km_store_jwks_version_t v;
	assert_int_equal(km_store_jwks_latest(fx->s, &v, err, sizeof(err)), KM_ENOENT);
	/* reopening does not add another */
	km_store_free(fx->s);
	assert_int_equal(km_store_open(fx->path, "dev", &fx->s, err, sizeof(err)), KM_EOK);
	assert_int_equal(n_events(fx->s), 1);
}

static void test_events_live_and_die_with_their_transaction(void **state)
{
	chain_fx_t *fx = *state;
	char err[512] = "";
	/* a rolled-back transaction leaves no event, and the sink sees nothing */
	assert_int_equal(km_store_begin(fx->s, err, sizeof(err)), KM_EOK);
	keyset(fx->s, "api", 100);
	assert_int_equal(n_events(fx->s), 2);
	assert_int_equal(km_store_rollback(fx->s, err, sizeof(err)), KM_EOK);
	assert_int_equal(n_events(fx->s), 1);
	assert_int_equal(fx->sunk, 0);
	/* committed: the sink gets it once, after the commit */
	assert_int_equal(km_store_begin(fx->s, err, sizeof(err)), KM_EOK);
	keyset(fx->s, "api", 100);
	assert_int_equal(fx->sunk, 0);
	assert_int_equal(km_store_commit(fx->s, err, sizeof(err)), KM_EOK);
	assert_int_equal(fx->sunk, 1);
	assert_string_equal(fx->last_sunk, "keyset.create");
	/* a refused step inside a transaction undoes its own event only */
	key(fx->s, "api", "k1", 1, 110);
	size_t before = n_events(fx->s), sunk = fx->sunk;
	assert_int_equal(km_store_begin(fx->s, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_key_transition(fx->s, "k1", KM_STATE_PUBLISHED, 120, NULL, err,
	                                         sizeof(err)), KM_EOK);
	assert_int_equal(km_store_key_transition(fx->s, "k1", KM_STATE_DESTROYED, 121, NULL, err,
	                                         sizeof(err)), KM_ETRANSITION);
	assert_int_equal(km_store_commit(fx->s, err, sizeof(err)), KM_EOK);
	/* published + its JWKS version */
	assert_int_equal(n_events(fx->s), before + 2);
	assert_int_equal(fx->sunk, sunk + 2);
	assert_string_equal(fx->last_sunk, "jwks.publish");
	expect_verified(fx->s);
}

static void test_jwks_versions_follow_the_published_set(void **state)
{
	chain_fx_t *fx = *state;
	char err[512] = "";
	km_store_jwks_version_t *v = NULL;
	size_t n = 0;
	uint64_t serial = 0;
	keyset(fx->s, "api", 100);
	key(fx->s, "api", "k1", 1, 100);
	key(fx->s, "api", "k2", 2, 100);
	km_store_t *s = fx->s;
	assert_int_equal(km_store_key_transition(s, "k1", KM_STATE_PUBLISHED, 101, NULL, err,
	                                         sizeof(err)), KM_EOK);     /* [k1] */
	assert_int_equal(km_store_key_transition(s, "k1", KM_STATE_ACTIVE, 102, NULL, err,
	                                         sizeof(err)), KM_EOK);     /* no change */
	assert_int_equal(km_store_key_transition(s, "k2", KM_STATE_PUBLISHED, 103, NULL, err,
	                                         sizeof(err)), KM_EOK);     /* [k1,k2] */
	assert_int_equal(km_store_key_transition(s, "k1", KM_STATE_RETIRED, 104, NULL, err,
	                                         sizeof(err)), KM_EOK);     /* no change */
	assert_int_equal(km_store_key_transition(s, "k1", KM_STATE_REMOVED, 105, NULL, err,
	                                         sizeof(err)), KM_EOK);     /* [k2] */
	assert_int_equal(km_store_jwks_serial_next(s, &serial, err, sizeof(err)), KM_EOK);
	assert_int_equal(serial, 4);                                        /* [k2] again */
	assert_int_equal(km_store_jwks_versions(s, &v, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 4);
	assert_string_equal(v[0].kids, "[\"k1\"]");
	assert_int_equal(v[0].at, 101);
	assert_string_equal(v[1].kids, "[\"k1\",\"k2\"]");
	assert_string_equal(v[2].kids, "[\"k2\"]");
	assert_int_equal(v[2].at, 105);
	assert_string_equal(v[3].kids, "[\"k2\"]");
	km_store_jwks_versions_free(v, n);
	km_store_jwks_version_t last;
	assert_int_equal(km_store_jwks_latest(s, &last, err, sizeof(err)), KM_EOK);
	assert_int_equal(last.serial, 4);
	assert_string_equal(last.kids, "[\"k2\"]");
	free(last.kids);
	expect_verified(s);
}

static void test_policy_load_before_first_change_under_a_policy(void **state)
{
	chain_fx_t *fx = *state;
	char h1[65], h2[65];
	memset(h1, '1', 64);
	memset(h2, '2', 64);
	h1[64] = h2[64] = '\0';
	assert_int_equal(km_store_set_policy(fx->s, "xyz", "{}"), KM_EINVAL);
	assert_int_equal(km_store_set_policy(fx->s, h1, "not json"), KM_EINVAL);
	assert_int_equal(km_store_set_policy(fx->s, h1, "{\"rotation_period\":86400}"), KM_EOK);
	assert_int_equal(n_events(fx->s), 1);           /* setting it records nothing */
	keyset(fx->s, "a", 100);                        /* policy.load, keyset.create */
	keyset(fx->s, "b", 101);                        /* keyset.create */
	assert_int_equal(n_events(fx->s), 4);
	assert_int_equal(km_store_set_policy(fx->s, h2, "{\"rotation_period\":172800}"), KM_EOK);
	keyset(fx->s, "c", 102);                        /* policy.load, keyset.create */
	km_store_audit_filter_t f = { .action = "policy.load" };
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	char err[256];
	assert_int_equal(km_store_audit_query(fx->s, &f, &ev, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 2);
	assert_string_equal(ev[1].policy_hash, h2);
	assert_non_null(strstr(ev[1].after, "{\"policy\":{\"rotation_period\":172800}"));
	km_store_audit_events_free(ev, n);
	/* every event records the policy it was made under */
	f.action = "keyset.create";
	assert_int_equal(km_store_audit_query(fx->s, &f, &ev, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 3);
	assert_string_equal(ev[0].policy_hash, h1);
	assert_string_equal(ev[2].policy_hash, h2);
	km_store_audit_events_free(ev, n);
	expect_verified(fx->s);
}

static void test_append_checks_its_input(void **state)
{
	chain_fx_t *fx = *state;
	char err[512] = "", long_reason[300];
	int64_t seq = 0;
	memset(long_reason, 'x', sizeof(long_reason) - 1);
	long_reason[sizeof(long_reason) - 1] = '\0';
	const struct {
		const char *action, *keyset, *kid, *after, *reason;
		int64_t at;
	} bad[] = {
		{ "key.transition", NULL, NULL, NULL, NULL, 1 },    /* the store's own */
		{ "keyset.owner", NULL, NULL, NULL, NULL, 1 },
		{ "policy.load", NULL, NULL, NULL, NULL, 1 },
		{ "store.create", NULL, NULL, NULL, NULL, 1 },
		{ "jwks.publish", NULL, NULL, NULL, NULL, 1 },
		{ "Sign Denied", NULL, NULL, NULL, NULL, 1 },
		{ "", NULL, NULL, NULL, NULL, 1 },
		{ "sign.denied", "Bad Name", NULL, NULL, NULL, 1 },
		{ "sign.denied", NULL, "not a kid!", NULL, NULL, 1 },
		{ "sign.denied", NULL, NULL, "[1,2]", NULL, 1 },
		{ "sign.denied", NULL, NULL, "{\"a\":\n1}", NULL, 1 },
		{ "sign.denied", NULL, NULL, NULL, "line\nbreak", 1 },
		{ "sign.denied", NULL, NULL, NULL, long_reason, 1 },
		{ "sign.denied", NULL, NULL, NULL, NULL, -1 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		int r = km_store_audit_append(fx->s, bad[i].action, bad[i].keyset, bad[i].kid, NULL,
		                              bad[i].after, bad[i].reason, bad[i].at, &seq, err,
		                              sizeof(err));
		if (r != KM_EINVAL || err[0] == '\0')
			fail_msg("case %zu accepted (%d)", i, r);
	}
	assert_int_equal(n_events(fx->s), 1);
	assert_int_equal(km_store_audit_append(fx->s, "sign.denied", "api", "k1", NULL,
	                                       "{\"caller\":\"svc\"}", "not authorised", 50, &seq,
	                                       err, sizeof(err)), KM_EOK);
	assert_int_equal(seq, 2);
	expect_verified(fx->s);
}

static void test_actor_is_recorded_and_sanitised(void **state)
{
	chain_fx_t *fx = *state;
	km_store_actor_t a = { .uid = 4242, .pid = 77 };
	snprintf(a.user, sizeof(a.user), "bob\x1b[31m");
	snprintf(a.host, sizeof(a.host), "build-7");
	snprintf(a.via, sizeof(a.via), "daemon");
	km_store_set_actor(fx->s, &a);
	keyset(fx->s, "api", 100);
	km_store_audit_filter_t f = { .action = "keyset.create" };
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	char err[256];
	assert_int_equal(km_store_audit_query(fx->s, &f, &ev, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].actor.user, "bob?[31m");
	assert_int_equal(ev[0].actor.uid, 4242);
	assert_string_equal(ev[0].actor.host, "build-7");
	assert_string_equal(ev[0].actor.via, "daemon");
	assert_int_equal(ev[0].actor.pid, 77);
	km_store_audit_events_free(ev, n);
	/* the default actor of a handle is the process itself */
	km_store_actor_t self;
	km_store_actor_self(&self, "process");
	assert_int_equal(self.uid, (int64_t)getuid());
	assert_int_equal(self.pid, (int64_t)getpid());
}

static void test_v1_store_migrates_with_a_baseline(void **state)
{
	chain_fx_t *fx = *state;
	char err[512] = "";
	keyset(fx->s, "api", 100);
	key(fx->s, "api", "k1", 1, 100);
	key(fx->s, "api", "k2", 2, 100);
	assert_int_equal(km_store_key_transition(fx->s, "k1", KM_STATE_PUBLISHED, 101, NULL, err,
	                                         sizeof(err)), KM_EOK);
	assert_int_equal(km_store_key_transition(fx->s, "k1", KM_STATE_ACTIVE, 102, NULL, err,
	                                         sizeof(err)), KM_EOK);
	assert_int_equal(km_store_keyset_set_owner(fx->s, "api", "team-b", "t", 103, NULL, err,
	                                           sizeof(err)), KM_EOK);
	km_store_free(fx->s);
	fx->s = NULL;
	/* Turn it into the v1 store an older keymgr wrote. */
	assert_int_equal(audit_fx_sql(fx->path,
	                 "DROP TABLE verifier_pickups;"
	                 " DROP TABLE audit_checkpoints; DROP TABLE audit_keys;"
	                 " DROP TABLE jwks_versions; DROP TABLE audit_events;"
	                 " ALTER TABLE keys DROP COLUMN activate_at;"
	                 " UPDATE counters SET value = 0; PRAGMA user_version = 1;"), 0);
	assert_int_equal(km_store_open(fx->path, "dev", &fx->s, err, sizeof(err)), KM_EOK);
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	assert_int_equal(km_store_audit_query(fx->s, NULL, &ev, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 2);
	assert_string_equal(ev[0].action, "store.baseline");
	assert_non_null(strstr(ev[0].after, "\"owner\":\"team-b\""));
	assert_string_equal(ev[1].action, "jwks.publish");
	assert_non_null(strstr(ev[1].after, "{\"kids\":[\"k1\"],\"serial\":1}"));
	km_store_audit_events_free(ev, n);
	expect_verified(fx->s);
	/* the history goes on from the baseline */
	assert_int_equal(km_store_key_transition(fx->s, "k2", KM_STATE_PUBLISHED, 104, NULL, err,
	                                         sizeof(err)), KM_EOK);
	assert_int_equal(km_store_key_transition(fx->s, "k2", KM_STATE_REVOKED, 105, "test", err,
	                                         sizeof(err)), KM_EOK);
	expect_verified(fx->s);
}

/* A v2 store (before requested rotations) opens as v3: nothing recorded, nothing lost, the
 * chain verifies, and a requested activation is recorded, replayed and checked. */
static void test_v2_store_migrates_to_v3(void **state)
{
	chain_fx_t *fx = *state;
	char err[512] = "";
	keyset(fx->s, "api", 100);
	key(fx->s, "api", "k1", 1, 100);
	assert_int_equal(km_store_key_transition(fx->s, "k1", KM_STATE_PUBLISHED, 101, NULL, err,
	                                         sizeof(err)), KM_EOK);
	km_store_free(fx->s);
	fx->s = NULL;
	assert_int_equal(audit_fx_sql(fx->path, "ALTER TABLE keys DROP COLUMN activate_at;"
	                              " DROP TABLE verifier_pickups;"
	                              " PRAGMA user_version = 2;"), 0);
	assert_int_equal(km_store_open(fx->path, "dev", &fx->s, err, sizeof(err)), KM_EOK);
	km_store_key_t k;
	assert_int_equal(km_store_key_get(fx->s, "k1", &k, err, sizeof(err)), KM_EOK);
	assert_int_equal(k.state, KM_STATE_PUBLISHED);
	assert_int_equal(k.activate_at, KM_STORE_TIME_NONE);
	km_store_audit_filter_t f = { .action = "store.baseline" };
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	assert_int_equal(km_store_audit_query(fx->s, &f, &ev, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 0);   /* the chain goes on: no new baseline */
	km_store_audit_events_free(ev, n);
	expect_verified(fx->s);

	/* Only a published key can be scheduled; the request is one audited event. */
	assert_int_equal(km_store_key_schedule(fx->s, "k1", 0, 102, NULL, err, sizeof(err)),
	                 KM_EINVAL);
	assert_int_equal(km_store_key_schedule(fx->s, "k1", 2000, 102, "requested rotation", err,
	                                       sizeof(err)), KM_EOK);
	assert_int_equal(km_store_key_get(fx->s, "k1", &k, err, sizeof(err)), KM_EOK);
	assert_int_equal(k.activate_at, 2000);
	f.action = "key.schedule";
	assert_int_equal(km_store_audit_query(fx->s, &f, &ev, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].kid, "k1");
	assert_non_null(strstr(ev[0].before, "\"activate_at\":null"));
	assert_non_null(strstr(ev[0].after, "\"activate_at\":2000"));
	km_store_audit_events_free(ev, n);
	expect_verified(fx->s);
	assert_int_equal(km_store_key_transition(fx->s, "k1", KM_STATE_ACTIVE, 103, NULL, err,
	                                         sizeof(err)), KM_EOK);
	assert_int_equal(km_store_key_schedule(fx->s, "k1", 3000, 104, NULL, err, sizeof(err)),
	                 KM_EINVAL);
	assert_non_null(strstr(err, "only a published key"));
	expect_verified(fx->s);

	/* An activation time edited in the table, outside keymgr, is caught. */
	km_store_free(fx->s);
	fx->s = NULL;
	assert_int_equal(audit_fx_sql(fx->path, "UPDATE keys SET activate_at = 1 WHERE kid = 'k1';"),
	                 0);
	assert_int_equal(km_store_open(fx->path, "dev", &fx->s, err, sizeof(err)), KM_EOK);
	km_audit_verify_t v;
	assert_int_equal(km_audit_verify(fx->s, NULL, &v, err, sizeof(err)), KM_EOK);
	assert_false(v.ok);
}

static void test_python_verifier_agrees(void **state)
{
	chain_fx_t *fx = *state;
	char err[512] = "", prog[400];
	keyset(fx->s, "api", 100);
	key(fx->s, "api", "k1", 1, 100);
	assert_int_equal(km_store_key_transition(fx->s, "k1", KM_STATE_PUBLISHED, 101, "r\xc3\xa9",
	                                         err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_audit_append(fx->s, "config.reload", NULL, NULL, NULL, NULL,
	                                       "SIGHUP \"now\"", 102, NULL, err, sizeof(err)),
	                 KM_EOK);
	snprintf(prog, sizeof(prog), "%s/verify_chain.py", audit_fx_srcdir());
	audit_fx_t dummy;
	memset(&dummy, 0, sizeof(dummy));
	snprintf(dummy.hsm.dir, sizeof(dummy.hsm.dir), "%s", fx->dir);
	const char *argv[] = { "/usr/bin/python3", prog, fx->path, NULL };
	audit_run_t r;
	assert_int_equal(audit_fx_run(&dummy, argv, &r), 0);
	if (r.status != 0)
		fail_msg("python: %s %s", r.out, r.err);
	assert_non_null(strstr(r.out, "OK 7 events"));
	audit_run_free(&r);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
	if (argc >= 3)
		audit_fx_set_srcdir(argv[2]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical_is_byte_exact),
		T(test_new_store_starts_its_chain),
		T(test_events_live_and_die_with_their_transaction),
		T(test_jwks_versions_follow_the_published_set),
		T(test_policy_load_before_first_change_under_a_policy),
		T(test_append_checks_its_input),
		T(test_actor_is_recorded_and_sanitised),
		T(test_v1_store_migrates_with_a_baseline),
		T(test_v2_store_migrates_to_v3),
		T(test_python_verifier_agrees),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
