/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The publisher (publisher.c): an environment's documents from its store into km_http and
 * its snapshot files, and the refresh of what the daemon knows of its key sets.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/daemon/state.h"

/*
 * Reads e's key sets and keys, publishes every document whose bytes changed under a new
 * serial, writes the snapshot files, and marks key sets changed from outside as due.
 */
int kd_publish_env(kd_daemon_t *d, kd_env_t *e, int64_t now);
/*
 * *ret: the fingerprint of key set keyset's keys in e's store now, computed as a refresh
 * computes kd_keyset_t.fp. KM_EOK, or the store's code with err set.
 */
int kd_keyset_fp(kd_env_t *e, const char *keyset, uint64_t *ret, char *err, size_t errlen);
/* Stops serving the listed paths (a reload's, kd_state_reload). */
void kd_unpublish_paths(kd_daemon_t *d, const kd_paths_t *paths);

/* Tells the HTTP server the verifier names the configuration's policies wait for
 * (activate_when_seen_by): their rows of the verifier table are never evicted. At start and
 * after each reload. */
void kd_publish_listed_verifiers(kd_daemon_t *d);

/*
 * Moves every environment's static-tree hook on (hook.h, kd_hook_step) at now: reaps, kills
 * at the timeout, starts queued runs. Returns the earliest time one wants to be called again
 * (INT64_MAX: none); *ret_changed: whether a run started or ended (the metrics changed).
 */
int64_t kd_static_hooks_step(kd_daemon_t *d, int64_t now, bool *ret_changed);
/* The descriptors (at most max) that become readable when a running hook exits. */
size_t kd_static_hooks_fds(const kd_daemon_t *d, int *fds, size_t max);
