/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Process hardening of keymgrd (issue 8). PINs pass through its memory at every login: no
 * core dump may capture them, and no other process of the same user may read its memory.
 * The PIN buffers themselves are locked in RAM where allowed (pkcs11/pin.c).
 */
#include <sys/resource.h>

#include "keymgr/common/no_dump.h"
#include "keymgr/daemon/harden.h"

int kd_harden(char *err, size_t errlen)
{
	return km_process_no_dump(err, errlen);
}

unsigned long kd_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = { rl.rlim_max, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	return rl.rlim_cur == RLIM_INFINITY ? (unsigned long)-1 : (unsigned long)rl.rlim_cur;
}
