/* SPDX-License-Identifier: Apache-2.0 */
#include "keymgr/http/http_util.h"

#include <string.h>

#include "keymgr/common/error.h"

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* etagc = %x21 / %x23-7E / obs-text */
static bool is_etagc(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c != 0x7f);
}

bool km_http_etag_none_match(const char *field, const char *etag)
{
	const char *p = field;
	size_t etag_len = strlen(etag);
	bool matched = false;
	bool any = false;

	if (field == NULL)
		return false;
	/* If-None-Match = "*" / 1#entity-tag; empty list elements are tolerated. */
	for (;;) {
		while (is_ows(*p) || *p == ',')
			p++;
		if (*p == '\0')
			break;
		if (*p == '*') {
			p++;
			while (is_ows(*p))
				p++;
			if (*p != '\0' || any)
				return false;   /* "*" must stand alone */
			return true;
		}
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		if (*p != '"')
			return false;
		const char *open = p++;
		while (*p != '\0' && *p != '"') {
			if (!is_etagc((unsigned char)*p))
				return false;
			p++;
		}
		if (*p != '"')
			return false;
		p++;
		if ((size_t)(p - open) == etag_len && memcmp(open, etag, etag_len) == 0)
			matched = true;
		any = true;
		while (is_ows(*p))
			p++;
		if (*p != ',' && *p != '\0')
			return false;
	}
	return matched;
}

int km_http_date_format(time_t t, char out[KM_HTTP_DATE_SIZE])
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	char buf[64];
	struct tm tm;
	int n;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return KM_ERANGE;
	n = snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
		     tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		     tm.tm_sec);
	if (n != KM_HTTP_DATE_SIZE - 1)
		return KM_ERANGE;
	memcpy(out, buf, KM_HTTP_DATE_SIZE);
	return KM_EOK;
}

void km_http_prom_label(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}
