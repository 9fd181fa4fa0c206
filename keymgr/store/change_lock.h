/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The change lock of an environment (docs/reconcile.md, "Concurrent changes").
 *
 * Operations that change the token and the store in several steps (generation: intent, token,
 * confirm; destruction: token, then store; rotation; apply; revoke; reconcile) hold it from
 * their decision to their last step, so that two of them never interleave on one environment
 * and reconcile never takes another process's change in flight for a crash's leftover.
 *
 * It is an advisory flock(2) on the file STORE.lock next to the store (created mode 0600,
 * never removed). flock, not a SQLite transaction: a generation must commit its intent before
 * the token acts (crash safety), so no single store transaction can span it, and a write
 * transaction held across slow token calls would stall every other writer of the store. The
 * kernel drops the lock when its holder dies, so a crash never leaves it held; the holder
 * writes "pid=N prog=NAME op=OP" into the file so that others can name it.
 *
 * The lock belongs to a store handle and is reentrant on it (a count): rotate holds it and
 * the generation inside it takes it again. Handles are used by one thread at a time; two
 * handles (threads or processes) exclude each other.
 *
 * A PostgreSQL store has no file next to it, and its writers run on several machines: there
 * the lock is a row in the store (holder "pid=N host=H prog=P op=OP", epoch, expiry by the
 * database's clock, KM_STORE_CHANGE_LOCK_TTL_S), taken and released in short transactions.
 * Every write transaction of the holding handle first checks that it still holds the lock
 * at its epoch and extends the expiry; a holder that lost it (it stalled past the expiry and
 * another process took the lock) has its next step refused, so it never writes after
 * another change began. A holder that died frees the lock at the expiry, or at once for a
 * waiter on the same host that sees its pid gone. Same waiting and messages as the flock.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keymgr/store/store.h"

/* How long a change waits for another process's change before it gives up. */
#define KM_STORE_CHANGE_WAIT_MS 10000

/* A PostgreSQL store's change lock expires this long (database clock) after the holder's
 * last step: longer than any token call between two steps (an RSA-4096 generation). */
#define KM_STORE_CHANGE_LOCK_TTL_S 120

/* How far km_store_change_lock_at() may move a change's time ahead of the caller's clock
 * (seconds): a recorded time up to this far in the future is keymgr's own, not an error. */
#define KM_STORE_CHANGE_MAX_RAISE 60

/*
 * Takes the change lock of s's environment for operation op ("rotate", "reconcile", ...),
 * waiting up to wait_ms (0: not at all) while another handle holds it. Returns KM_EOK, or
 * KM_STORE_EBUSY with "environment 'E' is being changed by another keymgr process (pid N,
 * keymgr rotate)..." in err, or KM_EIO (the lock file cannot be opened or locked). Nothing is
 * changed when it fails. Every KM_EOK is paired with km_store_change_unlock().
 */
int km_store_change_lock(km_store_t *s, const char *op, int wait_ms, char *err, size_t errlen);

/*
 * km_store_change_lock() for a change that records times: on KM_EOK, *now (seconds, the
 * caller's clock) is moved on by the time spent waiting, rounded up to whole seconds, so that
 * the change records when it really happens. A publication recorded up to 10 s early would
 * let the planner activate its key up to 10 s before verifiers could have fetched it.
 * *now is then raised, if needed, to the time of the environment's newest audit event, so
 * that the times an environment records do not go backwards: by up to 60 s (a newest time
 * further ahead is a clock that was wrong, and is not followed). KM_EOK, the codes of
 * km_store_change_lock(), or a store code (the lock is then released).
 */
int km_store_change_lock_at(km_store_t *s, const char *op, int wait_ms, int64_t *now,
                            char *err, size_t errlen);

/* Releases one hold of the change lock (the lock itself with the outermost one). */
void km_store_change_unlock(km_store_t *s);
