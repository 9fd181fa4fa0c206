/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "keymgr/common/error.h"
#include "keymgr/common/no_dump.h"

int km_process_no_dump(char *err, size_t errlen)
{
	struct rlimit none = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &none) != 0) {
		snprintf(err, errlen, "cannot disable core dumps (setrlimit RLIMIT_CORE): %s",
		         strerror(errno));
		return KM_EIO;
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		snprintf(err, errlen, "cannot make the process non-dumpable (prctl): %s",
		         strerror(errno));
		return KM_EIO;
	}
	return KM_EOK;
}
