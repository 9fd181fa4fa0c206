/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which key of a key set is its standby: the published key kept ready so that an emergency
 * (the active key revoked) activates a key verifiers already know, with no verification gap.
 */
#pragma once

#include "keymgr/common/name.h"
#include "keymgr/core/env.h"

/*
 * Finds the standby of keyset. With the policy's standby: true it is the key the planner
 * keeps for that: the oldest published (confirmed) key that is not the successor of a
 * requested rotation (no activate_at: `keymgr rotate` scheduled that one to activate).
 * Without standby, or with no such key, there is none and kid is set to "". Writes kid only
 * on success.
 * Returns KM_EOK or the store's codes (message in err).
 */
int km_keyset_standby(km_env_t *env, const char *keyset, char kid[KM_KID_MAX + 1], char *err,
                      size_t errlen);
