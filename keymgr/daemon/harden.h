/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgrd's start-up safety (harden.c, startup.c): process hardening before any PIN is read,
 * and reconciliation of every environment before its first pass.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "keymgr/daemon/daemon.h"

/*
 * Makes the process unable to leak secrets through a core dump or another process of the
 * same user: RLIMIT_CORE 0, then PR_SET_DUMPABLE 0 (no core file, no ptrace attach and no
 * /proc/PID/mem for the same uid without CAP_SYS_PTRACE). Call first in main(), before any
 * PIN is read. KM_EOK, or KM_EIO with a message in err.
 */
int kd_harden(char *err, size_t errlen);

/*
 * Runs km_reconcile_env() on every served environment (docs/reconcile.md), logging each
 * finding as a "reconcile" line (env, action, keyset, kid, cka_id, state, result, detail) and
 * a summary per environment. Call once at start, before the first pass. An environment whose
 * token or store cannot be reached is reconciled later by kd_startup_reconcile_retry().
 */
void kd_startup_reconcile(kd_daemon_t *d);

/*
 * After a pass: reconciles the environments whose start-up reconciliation could not run,
 * once their token is reachable again (e->token_ok). Cheap when there are none.
 */
void kd_startup_reconcile_retry(kd_daemon_t *d);
