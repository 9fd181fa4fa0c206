/* SPDX-License-Identifier: Apache-2.0 */
/* /healthz and the daemon's part of /metrics (metrics.c). */
#pragma once

#include <stdint.h>

#include "keymgr/daemon/state.h"

/* Recomputes /healthz and the /metrics text. */
void kd_metrics_update(kd_daemon_t *d, int64_t now);
