/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Keymgr-Verifier pickup records shared through a PostgreSQL store (docs/ha.md): every
 * node writes the named fetches its listener served into the store, and the activation gate
 * and status read the store's rows beside this node's own, so activate_when_seen_by sees the
 * verifiers of every node. A store without them (SQLite, one node): this node's rows only.
 * Main thread only (the environments' store connections are the main thread's).
 */
#pragma once

#include <stddef.h>

#include "keymgr/daemon/state.h"
#include "keymgr/http/http_server.h"

/* Writes the named rows the listener reported since the last call into the store of the
 * environment serving each row's path (a failure is logged; the rows are reported again at
 * the verifier's next fetch). */
void kd_pickups_share(kd_daemon_t *d);

/* This node's verifier rows for path (kd_front_verifiers), followed by the store's rows of
 * every node for it when e's store keeps them. *ret: free(). KM_EOK or KM_ENOMEM; a store
 * that cannot be read leaves this node's rows only (logged). */
int kd_pickups_rows(kd_daemon_t *d, kd_env_t *e, const char *path, km_http_verifier_t **ret,
                    size_t *n);
