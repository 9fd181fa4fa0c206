/* SPDX-License-Identifier: Apache-2.0 */
/* The scheduler's token check (token_check.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "keymgr/daemon/state.h"

/*
 * Opens e's token if needed and probes it (km_token_check); with force, first retries a
 * lost token at once (km_token_recover). KM_EOK, or the token's code with err set.
 */
int kd_env_token_check(kd_env_t *e, bool force, char *err, size_t errlen);
