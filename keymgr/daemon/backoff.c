/* SPDX-License-Identifier: Apache-2.0 */
#include "keymgr/daemon/backoff.h"

int64_t kd_backoff(unsigned n)
{
	int64_t s = KD_BACKOFF_MIN;
	for (unsigned i = 1; i < n && s < KD_BACKOFF_MAX; i++)
		s *= 2;
	return s < KD_BACKOFF_MAX ? s : KD_BACKOFF_MAX;
}
