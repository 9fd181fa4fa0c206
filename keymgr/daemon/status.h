/* SPDX-License-Identifier: Apache-2.0 */
/* The reply to a status request (status.c). */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "keymgr/daemon/state.h"

/* The status reply {"ok":true,...}, for env (NULL: all) and keyset (NULL: all). New
 * reference. */
json_t *kd_status_json(kd_daemon_t *d, const char *env, const char *keyset, int64_t now);
