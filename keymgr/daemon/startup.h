/* SPDX-License-Identifier: Apache-2.0 */
/* Reconciliation of every environment before keymgrd's first pass (startup.c). */
#pragma once

#include "keymgr/daemon/state.h"

/*
 * Runs km_reconcile_env() on every served environment (docs/reconcile.md), logging each
 * finding as a "reconcile" line (env, action, keyset, kid, cka_id, state, result, detail) and
 * a summary per environment. Call once at start, before the first pass. An environment whose
 * token or store cannot be reached is reconciled later by kd_startup_reconcile_retry().
 */
void kd_startup_reconcile(kd_daemon_t *d);

/* Reconciles e, logging as above; true when the comparison could be made (repairs may still
 * have failed). */
bool kd_reconcile_env(kd_daemon_t *d, kd_env_t *e);

/*
 * After a pass: reconciles the environments whose start-up reconciliation could not run,
 * once their token is reachable again (e->token_ok). Cheap when there are none.
 */
void kd_startup_reconcile_retry(kd_daemon_t *d);
