/* SPDX-License-Identifier: Apache-2.0 */
/* Escaped text for the SVG and HTML that keymgr/report writes (report_int.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "keymgr/common/timefmt.h"
#include "keymgr/report/report_int.h"

#define REPLACEMENT "\xEF\xBF\xBD"   /* U+FFFD */

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when it is not one. */
static size_t u8_seq(const unsigned char *p)
{
	unsigned c = p[0];
	size_t n;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		min = 0x10000;
	} else {
		return 0;
	}
	unsigned cp = c & (0x7F >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

void km_report_esc(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	while (*p != '\0') {
		size_t n = u8_seq(p);
		if (n == 0) {
			fputs(REPLACEMENT, out);
			p++;
			continue;
		}
		switch (*p) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&#39;", out); break;
		case '\t':
		case '\n': fputc(*p, out); break;
		default:
			if (*p < 0x20 || *p == 0x7F)
				fputs(REPLACEMENT, out);
			else
				fwrite(p, 1, n, out);
		}
		p += n;
	}
}

void km_report_escf(FILE *out, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	km_report_esc(out, buf);
}

const char *km_report_time(int64_t t, char *buf, size_t len)
{
	if (t < 0)
		buf[0] = '\0';
	else
		km_time_rfc3339(t, buf, len);
	return buf;
}
