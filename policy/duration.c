/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Durations as the config writes them: one or more NUMBER UNIT groups, units w, d, h, m, s,
 * each at most once and in that order ("2w", "1d12h", "90s"). No sign, no spaces, no bare
 * numbers: a YAML "3600" is rejected rather than guessed.
 */
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "policy/policy.h"

static const struct {
	char unit;
	int64_t secs;
} units[] = {
	{ 'w', 7 * 86400 }, { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
};
#define N_UNITS (sizeof(units) / sizeof(units[0]))

/* Writes why, with c appended in quotes when it is not NUL, and returns KM_EINVAL. */
static int fail(char *err, size_t errlen, const char *why, char c)
{
	if (err != NULL && errlen > 0) {
		if (c != '\0' && (c < 0x20 || c > 0x7e))
			snprintf(err, errlen, "%s byte 0x%02x", why, (unsigned)(unsigned char)c);
		else if (c != '\0')
			snprintf(err, errlen, "%s '%c'", why, c);
		else
			snprintf(err, errlen, "%s", why);
	}
	return KM_EINVAL;
}

int km_duration_parse_err(const char *s, int64_t *ret, char *err, size_t errlen)
{
	if (s == NULL || *s == '\0')
		return fail(err, errlen, "empty duration", 0);
	if (*s == '-')
		return fail(err, errlen, "negative duration", 0);

	int64_t total = 0;
	size_t next_unit = 0;           /* units must appear in table order */
	const char *p = s;
	while (*p != '\0') {
		if (*p < '0' || *p > '9')
			return fail(err, errlen, "expected a number, found", *p);
		int64_t n = 0;
		while (*p >= '0' && *p <= '9') {
			n = n * 10 + (*p - '0');
			if (n > KM_DURATION_MAX)
				return fail(err, errlen, "out of range (at most 36500d)", 0);
			p++;
		}
		if (*p == '\0')
			return fail(err, errlen, "missing unit after the number (use w, d, h, m or s)", 0);
		size_t u = 0;
		while (u < N_UNITS && units[u].unit != *p)
			u++;
		if (u == N_UNITS)
			return fail(err, errlen, "unknown unit (use w, d, h, m or s):", *p);
		if (u < next_unit)
			return fail(err, errlen, "units must appear once each, from largest to "
			            "smallest (w, d, h, m, s); out of order:", *p);
		next_unit = u + 1;
		if (n > (KM_DURATION_MAX - total) / units[u].secs)
			return fail(err, errlen, "out of range (at most 36500d)", 0);
		total += n * units[u].secs;
		p++;
	}
	*ret = total;
	return KM_EOK;
}

int km_duration_parse(const char *s, int64_t *ret)
{
	return km_duration_parse_err(s, ret, NULL, 0);
}

char *km_duration_format(int64_t secs, char *buf, size_t len)
{
	static const struct {
		char unit;
		int64_t secs;
	} fmt[] = { { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 } };
	if (buf == NULL || len == 0)
		return buf;
	buf[0] = '\0';
	size_t used = 0;
	/* INT64_MIN has no positive counterpart; it is never a real duration. */
	uint64_t v = secs < 0 ? (uint64_t)0 - (uint64_t)secs : (uint64_t)secs;
	if (secs < 0 && used + 1 < len)
		buf[used++] = '-', buf[used] = '\0';
	if (v == 0) {
		snprintf(buf + used, len - used, "0s");
		return buf;
	}
	for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]) && v > 0; i++) {
		uint64_t q = v / (uint64_t)fmt[i].secs;
		if (q == 0)
			continue;
		v -= q * (uint64_t)fmt[i].secs;
		int n = snprintf(buf + used, len - used, "%llu%c", (unsigned long long)q, fmt[i].unit);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	return buf;
}
