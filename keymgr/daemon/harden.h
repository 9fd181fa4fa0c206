/* SPDX-License-Identifier: Apache-2.0 */
/* keymgrd's process hardening (harden.c), before any PIN is read. */
#pragma once

#include <stddef.h>

/*
 * Makes the process unable to leak secrets through a core dump or another process of the
 * same user: RLIMIT_CORE 0, then PR_SET_DUMPABLE 0 (no core file, no ptrace attach and no
 * /proc/PID/mem for the same uid without CAP_SYS_PTRACE). Call first in main(), before any
 * PIN is read. KM_EOK, or KM_EIO with a message in err.
 */
int kd_harden(char *err, size_t errlen);

/*
 * Raises the soft descriptor limit to the hard one (systemd and most shells start a process
 * at 1024 whatever the hard limit is): the token module, the stores and the control
 * connections must never run out of descriptors. Returns the limit in force (0 if unknown).
 */
unsigned long kd_raise_nofile(void);
