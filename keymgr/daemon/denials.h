/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Denied sign requests, folded (denials.c). A peer that keeps asking for what it may not have
 * (a caller that is not among a key set's signers; a request for the audit key) must not fill
 * the log and the audit trail: one peer pipelining a million requests once left a million
 * log lines and thousands of audit rows.
 *
 * Per peer (uid), environment, key set and reason, a window of daemon.denial_interval seconds
 * (default 60) opens at a denial. That first denial is logged and recorded at once, as
 * before; the repeats inside the window are only counted. Once the window has passed, the
 * main thread (kd_denials_expire: at every pass and control wake-up, and when keymgrd stops)
 * logs one line and records one audit event saying how many repeats there were and from when
 * to when. A peer denied N times in an interval costs at most two log lines and two audit
 * events, whatever N.
 *
 * The table is bounded: a peer holds at most KD_DENIAL_PER_PEER windows (its denials for
 * further key sets share one more window, key set "*"), and at most KD_DENIAL_WINDOWS are open
 * at once; the denials that find no room are counted in one window of their own ("other
 * peers", uid -1). Thread-safe: one short mutex section per denial.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "keymgr/common/name.h"
#include "keymgr/daemon/authz.h"

#define KD_DENIAL_WINDOWS 256
#define KD_DENIAL_PER_PEER 8
#define KD_DENIAL_REASON_MAX 64

typedef struct kd_denials kd_denials_t;

/* The repeats a window counted, handed to kd_denials_expire's callback. */
typedef struct {
	kd_peer_t peer;                     /* the peer of the first denial (uid -1: other peers) */
	char env[KM_ENV_NAME_MAX + 1];      /* "*" for other peers */
	char keyset[KM_KEYSET_NAME_MAX + 1];/* "*" for a peer's further key sets, other peers */
	char reason[KD_DENIAL_REASON_MAX];
	uint64_t repeats;                   /* denials after the window's first */
	int64_t first, last;                /* when the first and the last repeat came */
} kd_denial_repeats_t;

/* KM_EOK or KM_ENOMEM. Windows last `interval` seconds (0: the default, 60). */
int kd_denials_create(unsigned interval, kd_denials_t **ret);
void kd_denials_free(kd_denials_t *dn);

/* Sets the window length for windows opened from now on (a reload). */
void kd_denials_set_interval(kd_denials_t *dn, unsigned interval);

/*
 * Any thread: notes a denial of peer p for env/keyset with reason at now (seconds). True when
 * it opens a window: the caller logs and records it now. False when it is a repeat, counted
 * for kd_denials_expire. A NULL dn folds nothing (always true).
 */
bool kd_denials_note(kd_denials_t *dn, const kd_peer_t *p, const char *env, const char *keyset,
                     const char *reason, int64_t now);

/*
 * Main thread: closes every window whose interval has passed at now (all of them with
 * INT64_MAX, when keymgrd stops; a wall clock set back keeps a window open until its end)
 * and hands each that counted repeats to report, outside the lock.
 */
void kd_denials_expire(kd_denials_t *dn, int64_t now,
                       void (*report)(void *ctx, const kd_denial_repeats_t *r), void *ctx);
