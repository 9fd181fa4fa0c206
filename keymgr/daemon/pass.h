/* SPDX-License-Identifier: Apache-2.0 */
/* One pass of keymgrd's work (pass.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "keymgr/daemon/state.h"

/*
 * One pass of the loop's work, as after a wake-up (used by tick and reload requests too):
 * publishes what the stores hold, applies what is due (everything with force), publishes
 * what that changed, then updates the metrics, the signing service and the audit
 * checkpoints. env and keyset (NULL: all) narrow it. Returns the number of key sets planned;
 * *failed (may be NULL) is increased by the failures.
 */
size_t kd_run_once(kd_daemon_t *d, bool force, const char *env, const char *keyset,
                   size_t *failed);
