/* SPDX-License-Identifier: Apache-2.0 */
/* Reloading keymgrd's configuration (reload.c). */
#pragma once

#include <stddef.h>

#include "keymgr/daemon/authz.h"
#include "keymgr/daemon/state.h"

/*
 * Reload and log it (SIGHUP: peer NULL; the control socket: the peer, who acts in the stores
 * and is named by the config.reload audit event). A refused configuration changes nothing.
 * KM_EOK, or kd_state_reload()'s code with err set.
 */
int kd_reload(kd_daemon_t *d, const char *who, const kd_peer_t *peer, char *err, size_t errlen);
