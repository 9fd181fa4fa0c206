/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Two processes rotate the same key set at once, as the daemon and the CLI may. Each child
 * opens its own handle and, 50 times, inside one BEGIN IMMEDIATE transaction: reads the active
 * key, records and confirms a successor, publishes it, retires the active key, activates the
 * successor, and bumps the JWKS serial. At the end there must be exactly one active key and a
 * history with no lost update: every rotation retired a different key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/store/change_lock.h"
#include "keymgr/store/store.h"
#include "tests/store/fixture.h"

#define ROTATIONS 50
#define CHILDREN 2

/* One rotation in one transaction. Returns KM_EOK or the failing code (message in err). */
static int rotate(km_store_t *s, int child, int i, char *err, size_t errlen)
{
	km_store_key_t cur, k = { 0 };
	char kid[32], jwk[128];
	int64_t t = 10000 + i;
	int r = km_store_begin(s, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = km_store_key_active(s, "api", &cur, err, errlen)) != KM_EOK)
		goto out;
	snprintf(kid, sizeof(kid), "c%d-r%d", child, i);
	snprintf(k.keyset, sizeof(k.keyset), "api");
	snprintf(k.token_label, sizeof(k.token_label), "dev-token");
	store_fx_cka_id(kid, k.cka_id);
	k.cka_id_len = 20;
	k.state_at[KM_STATE_GENERATED] = t;
	if ((r = km_store_key_intent(s, &k, NULL, err, errlen)) != KM_EOK)
		goto out;
	snprintf(jwk, sizeof(jwk), "{\"kty\":\"EC\",\"kid\":\"%s\"}", kid);
	if ((r = km_store_key_confirm(s, k.cka_id, 20, kid, jwk, t, err, errlen)) != KM_EOK)
		goto out;
	if ((r = km_store_key_transition(s, kid, KM_STATE_PUBLISHED, t, NULL, err, errlen)))
		goto out;
	if ((r = km_store_key_transition(s, cur.kid, KM_STATE_RETIRED, t, NULL, err, errlen)))
		goto out;
	if ((r = km_store_key_transition(s, kid, KM_STATE_ACTIVE, t, NULL, err, errlen)))
		goto out;
	uint64_t serial;
	r = km_store_jwks_serial_next(s, &serial, err, errlen);
out:
	if (r != KM_EOK) {
		km_store_rollback(s, NULL, 0);
		return r;
	}
	return km_store_commit(s, err, errlen);
}

static int child_main(const char *path, int child, int go_fd)
{
	char err[512] = "", go;
	km_store_t *s = NULL;
	int r = km_store_open(path, "dev", &s, err, sizeof(err));
	/* start together, so that the two writers really overlap */
	if (read(go_fd, &go, 1) != 1)
		r = KM_EIO;
	for (int i = 0; r == KM_EOK && i < ROTATIONS; i++) {
		r = rotate(s, child, i, err, sizeof(err));
		/* Outside the transaction, give the other writer a chance: SQLite's busy wait
		 * polls, so a writer that loops with no pause can hold the lock for all its
		 * rotations. The daemon and the CLI never loop like that. */
		usleep(200);
	}
	if (r != KM_EOK)
		fprintf(stderr, "child %d: %s (%s)\n", child, err, km_strerror(r));
	km_store_free(s);
	return r == KM_EOK ? 0 : 1;
}

static void test_concurrency_two_processes_rotate_without_lost_updates(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	pid_t pids[CHILDREN];
	int go[2];
	km_store_key_t *list = NULL;
	size_t n = 0;

	store_fx_keyset(fx->s, "api");
	store_fx_key(fx->s, "api", "first", 9000);
	assert_int_equal(km_store_key_transition(fx->s, "first", KM_STATE_PUBLISHED, 9001, NULL,
	                 err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_key_transition(fx->s, "first", KM_STATE_ACTIVE, 9002, NULL,
	                 err, sizeof(err)), KM_EOK);
	/* No SQLite connection may cross a fork: close ours, let each child open its own. */
	km_store_free(fx->s);
	fx->s = NULL;
	assert_int_equal(pipe(go), 0);
	for (int c = 0; c < CHILDREN; c++) {
		fflush(NULL);
		pids[c] = fork();
		assert_true(pids[c] >= 0);
		if (pids[c] == 0) {
			close(go[1]);
			_exit(child_main(fx->path, c, go[0]));
		}
	}
	close(go[0]);
	assert_int_equal(write(go[1], "gg", CHILDREN), CHILDREN);
	close(go[1]);
	for (int c = 0; c < CHILDREN; c++) {
		int status = 0;
		assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}

	assert_int_equal(km_store_open(fx->path, "dev", &fx->s, err, sizeof(err)), KM_EOK);
	km_store_key_filter_t f = { .keyset = "api" };
	assert_int_equal(km_store_keys_query(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1 + CHILDREN * ROTATIONS);
	size_t active = 0, retired = 0;
	for (size_t i = 0; i < n; i++) {
		if (list[i].state == KM_STATE_ACTIVE)
			active++;
		if (list[i].state == KM_STATE_RETIRED) {
			retired++;
			/* each retired key was active once, and retired after it activated */
			assert_true(list[i].state_at[KM_STATE_ACTIVE] != KM_STORE_TIME_NONE);
		}
		assert_false(list[i].pending);
	}
	assert_int_equal(active, 1);
	assert_int_equal(retired, CHILDREN * ROTATIONS);
	/* informational: how often the writer changed hands (0 would mean no overlap) */
	size_t switches = 0;
	for (size_t i = 2; i < n; i++)
		switches += list[i].kid[1] != list[i - 1].kid[1];
	print_message("writer changed hands %zu times in %d rotations\n", switches,
	              CHILDREN * ROTATIONS);
	km_store_keys_free(list);

	/* the serial counted every rotation: no increment was lost either */
	uint64_t serial = 0;
	assert_int_equal(km_store_jwks_serial_next(fx->s, &serial, err, sizeof(err)), KM_EOK);
	/* each rotation bumps it twice: publishing the successor changes the published kid set
	 * (schema v2 records that as a JWKS version), then the explicit increment; plus the
	 * first key's publication and the increment above */
	assert_int_equal(serial, 2 * CHILDREN * ROTATIONS + 2);

	/* and every key's history has exactly one activation and at most one retirement */
	assert_int_equal(km_store_keys_query(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	for (size_t i = 0; i < n; i++) {
		km_store_event_t *ev = NULL;
		size_t ne = 0, act = 0, ret = 0;
		assert_int_equal(km_store_key_events(fx->s, list[i].kid, &ev, &ne, err, sizeof(err)),
		                 KM_EOK);
		for (size_t j = 0; j < ne; j++) {
			act += ev[j].to == KM_STATE_ACTIVE && strcmp(ev[j].what, "transition") == 0;
			ret += ev[j].to == KM_STATE_RETIRED;
		}
		assert_int_equal(act, 1);
		assert_int_equal(ret, list[i].state == KM_STATE_RETIRED ? 1 : 0);
		km_store_events_free(ev);
	}
	km_store_keys_free(list);
}

/*
 * A change whose caller read its clock before another process's change (or after that change
 * rounded its wait up to whole seconds) records no time before the newest one recorded: CI
 * once saw a forced rotation retire a key 1 s before the time its activation was recorded.
 */
static void test_change_lock_at_never_records_before_the_newest_change(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	int64_t t = (int64_t)time(NULL) + 1000;   /* later than anything the store recorded */
	int64_t now = t;
	assert_int_equal(km_store_change_lock_at(fx->s, "rotate", 0, &now, err, sizeof(err)),
	                 KM_EOK);
	/* A clock ahead of the store stays as it is, but for the lock's wait rounded up to a
	 * second (a busy machine can take a millisecond to lock). */
	assert_true(now == t || now == t + 1);
	km_store_change_unlock(fx->s);

	assert_int_equal(km_store_audit_append(fx->s, "test.change", "api", NULL, NULL, NULL,
	                                       NULL, t + 1000, NULL, err, sizeof(err)),
	                 KM_EOK);
	now = t + 999;
	assert_int_equal(km_store_change_lock_at(fx->s, "rotate", 0, &now, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(now, t + 1000);
	/* Reentrant holds (the daemon's pass, then km_apply_keyset) are raised the same way. */
	int64_t inner = t + 990;
	assert_int_equal(km_store_change_lock_at(fx->s, "apply", 0, &inner, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(inner, t + 1000);
	km_store_change_unlock(fx->s);
	km_store_change_unlock(fx->s);

	/* A newest time more than 60 s ahead is a clock that was wrong: not followed (62 s: a
	 * wait rounded up to a second still leaves it more than 60 s ahead). */
	now = t + 1000 - 62;
	assert_int_equal(km_store_change_lock_at(fx->s, "rotate", 0, &now, err, sizeof(err)),
	                 KM_EOK);
	assert_true(now == t + 1000 - 62 || now == t + 1000 - 61);
	km_store_change_unlock(fx->s);
	now = t + 1000 - 60;
	assert_int_equal(km_store_change_lock_at(fx->s, "rotate", 0, &now, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(now, t + 1000);
	km_store_change_unlock(fx->s);
}

/* The key set a deposed writer tries to create ("late"). */
static km_store_keyset_t late_keyset(void)
{
	km_store_keyset_t ks = { .alg = KM_ALG_ES256, .created_at = 1000 };
	snprintf(ks.name, sizeof(ks.name), "late");
	snprintf(ks.owner, sizeof(ks.owner), "team-a");
	snprintf(ks.purpose, sizeof(ks.purpose), "access-token");
	snprintf(ks.created_by, sizeof(ks.created_by), "alice");
	return ks;
}

/*
 * The change lock: a second handle (another process, another node) waits, then is refused
 * with a message naming the environment and the holder; once released it is taken. On
 * PostgreSQL the lock is a row of the store, on SQLite a flock on STORE.lock.
 */
static void test_change_lock_second_handle_waits_then_refused(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "", pid[32];
	km_store_t *other = NULL;
	assert_int_equal(km_store_open(fx->path, "dev", &other, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_change_lock(fx->s, "rotate", 0, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_change_lock(other, "reconcile", 200, err, sizeof(err)),
	                 KM_STORE_EBUSY);
	assert_non_null(strstr(err, "environment 'dev' is being changed by another keymgr "
	                       "process"));
	snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
	assert_non_null(strstr(err, pid));
	assert_non_null(strstr(err, " rotate)"));
	assert_non_null(strstr(err, "nothing was changed"));
	km_store_change_unlock(fx->s);
	assert_int_equal(km_store_change_lock(other, "reconcile", 0, err, sizeof(err)), KM_EOK);
	/* reentrant on its handle, refused to the other */
	assert_int_equal(km_store_change_lock(other, "generate", 0, err, sizeof(err)), KM_EOK);
	km_store_change_unlock(other);
	assert_int_equal(km_store_change_lock(fx->s, "rotate", 0, err, sizeof(err)),
	                 KM_STORE_EBUSY);
	km_store_change_unlock(other);
	km_store_free(other);
	/* freeing a handle releases what it held */
	assert_int_equal(km_store_change_lock(fx->s, "rotate", 0, err, sizeof(err)), KM_EOK);
	km_store_change_unlock(fx->s);
}

/*
 * PostgreSQL: a holder that stalled past its lock's expiry (timed by the database's clock)
 * while another process took the lock is fenced: its next step's transaction is refused and
 * writes nothing; its late release does not free the new holder's lock.
 */
static void test_change_lock_lost_fences_the_next_step(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_t *b = NULL, *c = NULL;
	km_store_keyset_t ks;
	if (!fx->pg)
		skip();         /* a flock cannot expire while its holder lives */
	assert_int_equal(km_store_open(fx->path, "dev", &b, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_change_lock(fx->s, "rotate", 0, err, sizeof(err)), KM_EOK);
	char *e1 = store_fx_raw_text(fx->path, "SELECT epoch FROM change_lock");
	/* the stall: the lock's time runs out */
	store_fx_raw_exec(fx->path, "UPDATE change_lock SET expires_at = now() - interval '1 s'");
	assert_int_equal(km_store_change_lock(b, "reconcile", 0, err, sizeof(err)), KM_EOK);
	char *e2 = store_fx_raw_text(fx->path, "SELECT epoch FROM change_lock");
	assert_int_equal(atoll(e2), atoll(e1) + 1);

	km_store_keyset_t want = late_keyset();
	assert_int_equal(km_store_keyset_create(fx->s, &want, NULL, err, sizeof(err)),
	                 KM_STORE_EBUSY);
	assert_non_null(strstr(err, "no longer holds the change lock"));
	assert_int_equal(km_store_keyset_get(b, "late", &ks, err, sizeof(err)), KM_ENOENT);
	/* the new holder works */
	store_fx_keyset(b, "api");
	/* the deposed holder's release leaves the new holder's lock in place */
	km_store_change_unlock(fx->s);
	assert_int_equal(km_store_open(fx->path, "dev", &c, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_change_lock(c, "rotate", 0, err, sizeof(err)), KM_STORE_EBUSY);
	km_store_change_unlock(b);
	assert_int_equal(km_store_change_lock(c, "rotate", 0, err, sizeof(err)), KM_EOK);
	km_store_change_unlock(c);
	km_store_free(c);
	km_store_free(b);
	free(e1);
	free(e2);
}

/* PostgreSQL: a holder on this host whose process is gone does not hold the lock until its
 * expiry; the next change takes it at once. */
static void test_change_lock_dead_holder_taken_over(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "", host[65] = "", sql[400];
	if (!fx->pg)
		skip();         /* the kernel drops a dead process's flock */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	snprintf(sql, sizeof(sql), "UPDATE change_lock SET holder = 'pid=%ld host=%s prog=keymgr "
	         "op=rotate', epoch = epoch + 1, expires_at = now() + interval '1 hour'",
	         (long)pid, host);
	store_fx_raw_exec(fx->path, sql);
	assert_int_equal(km_store_change_lock(fx->s, "reconcile", 0, err, sizeof(err)), KM_EOK);
	km_store_change_unlock(fx->s);
	/* a live holder elsewhere is waited for, then named */
	store_fx_raw_exec(fx->path, "UPDATE change_lock SET holder = 'pid=1 host=node-b "
	                  "prog=keymgrd op=apply', epoch = epoch + 1,"
	                  " expires_at = now() + interval '1 hour'");
	assert_int_equal(km_store_change_lock(fx->s, "reconcile", 100, err, sizeof(err)),
	                 KM_STORE_EBUSY);
	assert_non_null(strstr(err, "pid 1 on node-b, keymgrd apply"));
}

/*
 * The leader lease (PostgreSQL): one holder at a time, timed by the database's clock; the
 * next holder's epoch is one more; a deposed holder's renewal fails and, fenced, its writes
 * are refused and write nothing, while the new leader's go through. SQLite has no lease.
 */
static void test_lease_one_leader_and_the_deposed_is_fenced(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_t *b = NULL;
	km_store_lease_t la, lb;
	km_store_keyset_t ks;
	if (!fx->pg) {
		assert_false(km_store_has_lease(fx->s));
		assert_int_equal(km_store_lease_acquire(fx->s, "node-a", 5000, &la, err, sizeof(err)),
		                 KM_ENOTSUP);
		return;
	}
	assert_true(km_store_has_lease(fx->s));
	assert_int_equal(km_store_open(fx->path, "dev", &b, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_lease_acquire(fx->s, "node-a", 60000, &la, err, sizeof(err)),
	                 KM_EOK);
	assert_true(la.held);
	assert_string_equal(la.holder, "node-a");
	assert_true(la.expires_in_ms > 50000 && la.expires_in_ms <= 60000);
	/* taken: the other node learns by whom, at which epoch */
	assert_int_equal(km_store_lease_acquire(b, "node-b", 60000, &lb, err, sizeof(err)), KM_EOK);
	assert_false(lb.held);
	assert_string_equal(lb.holder, "node-a");
	assert_int_equal(lb.epoch, la.epoch);
	assert_int_equal(km_store_lease_renew(fx->s, "node-a", la.epoch, 60000, &la, err,
	                                      sizeof(err)), KM_EOK);
	/* the lease runs out (the database's clock), node-b takes it at the next epoch */
	store_fx_raw_exec(fx->path, "UPDATE leader_lease SET expires_at = now() - interval '1 s'");
	assert_int_equal(km_store_lease_read(b, &lb, err, sizeof(err)), KM_EOK);
	assert_false(lb.held);
	assert_int_equal(km_store_lease_acquire(b, "node-b", 60000, &lb, err, sizeof(err)), KM_EOK);
	assert_true(lb.held);
	assert_int_equal(lb.epoch, la.epoch + 1);
	assert_int_equal(km_store_lease_renew(fx->s, "node-a", la.epoch, 60000, &la, err,
	                                      sizeof(err)), KM_STORE_EFENCED);
	/* fenced writes */
	km_store_set_fence(fx->s, "node-a", la.epoch);
	km_store_set_fence(b, "node-b", lb.epoch);
	km_store_keyset_t want = late_keyset();
	assert_int_equal(km_store_keyset_create(fx->s, &want, NULL, err, sizeof(err)),
	                 KM_STORE_EFENCED);
	assert_non_null(strstr(err, "no longer holds the leader lease"));
	assert_int_equal(km_store_keyset_get(b, "late", &ks, err, sizeof(err)), KM_ENOENT);
	store_fx_keyset(b, "api");
	/* a release by the deposed node leaves the new leader's lease alone */
	assert_int_equal(km_store_lease_release(fx->s, "node-a", la.epoch, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(km_store_lease_read(fx->s, &la, err, sizeof(err)), KM_EOK);
	assert_true(la.held);
	assert_string_equal(la.holder, "node-b");
	/* its own release ends it at once */
	assert_int_equal(km_store_lease_release(b, "node-b", lb.epoch, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_lease_read(fx->s, &la, err, sizeof(err)), KM_EOK);
	assert_false(la.held);
	km_store_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_concurrency_two_processes_rotate_without_lost_updates,
			store_fx_setup, store_fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_change_lock_at_never_records_before_the_newest_change, store_fx_setup,
			store_fx_teardown),
		cmocka_unit_test_setup_teardown(test_change_lock_second_handle_waits_then_refused,
		                                store_fx_setup, store_fx_teardown),
		cmocka_unit_test_setup_teardown(test_change_lock_lost_fences_the_next_step,
		                                store_fx_setup, store_fx_teardown),
		cmocka_unit_test_setup_teardown(test_change_lock_dead_holder_taken_over,
		                                store_fx_setup, store_fx_teardown),
		cmocka_unit_test_setup_teardown(test_lease_one_leader_and_the_deposed_is_fenced,
		                                store_fx_setup, store_fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
