/* SPDX-License-Identifier: Apache-2.0 */
#include <time.h>

#include "keymgr/common/timefmt.h"

const char *km_time_rfc3339(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (gmtime_r(&tt, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900 ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		buf[0] = '\0';
	return buf;
}
