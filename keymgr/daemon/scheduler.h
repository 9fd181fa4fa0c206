/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler (scheduler.c): plans and applies the due key sets of an environment through
 * km_apply_keyset(), with backoff, stopping and the propagation gate of a rotation's ACTIVATE.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/daemon/state.h"

/*
 * Plans and applies every due key set of e (all with force; only only_keyset when not NULL).
 * Returns the number of key sets planned; *failed (may be NULL) counts the failures.
 */
size_t kd_tick_env(kd_daemon_t *d, kd_env_t *e, int64_t now, bool force, const char *only_keyset,
                   size_t *failed);
/* Earliest time something of e is due. */
int64_t kd_env_next_wake(const kd_env_t *e);

/*
 * On a store with a leader lease: starts the environment's lease thread the first time, and
 * says whether this node leads now, with the holder (KM_STORE_LEASE_HOLDER_MAX + 1 bytes) and
 * epoch its writes are fenced with. On other stores the one node always leads.
 */
bool kd_env_leading(kd_daemon_t *d, kd_env_t *e, char *holder, int64_t *epoch);
