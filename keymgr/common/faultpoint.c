/* SPDX-License-Identifier: Apache-2.0 */
#include "keymgr/common/faultpoint.h"

#ifdef KM_TEST_HOOKS
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Hits per point name, for "NAME:N" (a handful of distinct points per process). */
#define MAX_POINTS 64
static struct {
	const char *name;
	unsigned long hits;
} points[MAX_POINTS];

static unsigned long count_hit(const char *name)
{
	for (size_t i = 0; i < MAX_POINTS; i++) {
		if (points[i].name == NULL)
			points[i].name = name;
		if (points[i].name == name || strcmp(points[i].name, name) == 0)
			return ++points[i].hits;
	}
	return 0;
}

void km_fault_point(const char *name)
{
	const char *want = secure_getenv("KEYMGR_CRASH_AT");
	if (want == NULL || want[0] == '\0')
		return;
	unsigned long hit = count_hit(name);
	size_t n = strlen(name);
	if (strncmp(want, name, n) != 0)
		return;
	unsigned long at = 1;
	if (want[n] == ':')
		at = strtoul(want + n + 1, NULL, 10);
	else if (want[n] != '\0')
		return;
	if (hit == at) {
		/* Say where, unbuffered, so the test can tell a crash point from a plain failure. */
		static const char msg[] = "keymgr: KEYMGR_CRASH_AT: killed at ";
		ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
		ignored = write(STDERR_FILENO, name, n);
		ignored = write(STDERR_FILENO, "\n", 1);
		(void)ignored;
		raise(SIGKILL);
	}
}
#else
/* Without KM_TEST_HOOKS this file holds nothing (an ISO C unit must declare something). */
typedef int km_faultpoint_unused_t;
#endif
