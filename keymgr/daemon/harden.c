/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Process hardening of keymgrd (issue 8). PINs pass through its memory at every login: no
 * core dump may capture them, and no other process of the same user may read its memory.
 * The PIN buffers themselves are locked in RAM where allowed (pkcs11/pin.c).
 */
#include "keymgr/common/no_dump.h"
#include "keymgr/daemon/harden.h"

int kd_harden(char *err, size_t errlen)
{
	return km_process_no_dump(err, errlen);
}
