/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keeping a process's memory (PINs pass through it at every login) out of core files and
 * away from other processes of the same user. keymgrd calls it first thing, and so does the
 * keymgr command line: any of its verbs may log in to a token.
 */
#pragma once

#include <stddef.h>

/*
 * RLIMIT_CORE 0, then PR_SET_DUMPABLE 0 (no core file, no ptrace attach and no /proc/PID/mem
 * for the same uid without CAP_SYS_PTRACE). KM_EOK, or KM_EIO with a message in err.
 */
int km_process_no_dump(char *err, size_t errlen);
