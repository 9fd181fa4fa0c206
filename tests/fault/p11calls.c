/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fault/p11calls.h"

static char rules_path[400], calls_path[400], clock_path[400];

void p11calls_init(const char *dir, const char *real_module)
{
	snprintf(rules_path, sizeof(rules_path), "%s/fault.rules", dir);
	snprintf(calls_path, sizeof(calls_path), "%s/fault.calls", dir);
	snprintf(clock_path, sizeof(clock_path), "%s/fault.clock", dir);
	setenv("KEYMGR_P11FAULT_CLOCK", clock_path, 1);
	setenv("KEYMGR_P11FAULT_MODULE", real_module, 1);
	setenv("KEYMGR_P11FAULT_FILE", rules_path, 1);
	setenv("KEYMGR_P11FAULT_CALLS", calls_path, 1);
	p11calls_rules("");
}

void p11calls_rules(const char *text)
{
	FILE *f = fopen(rules_path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

void p11calls_clock(unsigned long long ms)
{
	FILE *f = fopen(clock_path, "w");
	assert_non_null(f);
	fprintf(f, "%llu\n", ms);
	fclose(f);
}

void p11calls_reset(void)
{
	FILE *f = fopen(calls_path, "w");
	assert_non_null(f);
	fclose(f);
}

char *p11calls_read(void)
{
	FILE *f = fopen(calls_path, "r");
	assert_non_null(f);
	char *buf = calloc(1, 1 << 20);
	assert_non_null(buf);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

size_t p11calls_count(const char *log, const char *prefix)
{
	size_t n = 0;
	for (const char *p = log; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
	return n;
}
