/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/daemon/log.h"

#define LINE_MAX_ 4096

static kd_log_level_t min_level = KD_LOG_INFO;

void kd_log_set_level(kd_log_level_t min)
{
	min_level = min;
}

bool kd_log_enabled(kd_log_level_t lvl)
{
	return lvl >= min_level;
}

typedef struct {
	char buf[LINE_MAX_];
	size_t len;
	bool cut;
} line_t;

static void put(line_t *l, const char *s, size_t n)
{
	if (l->len + n > sizeof(l->buf) - 5) {
		n = sizeof(l->buf) - 5 > l->len ? sizeof(l->buf) - 5 - l->len : 0;
		l->cut = true;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static bool needs_quotes(const char *v)
{
	if (*v == '\0')
		return true;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
			return true;
	return false;
}

static void put_value(line_t *l, const char *v)
{
	if (!needs_quotes(v)) {
		put(l, v, strlen(v));
		return;
	}
	put(l, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		char esc[8];
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			put(l, esc, 2);
		} else if (*p == '\n') {
			put(l, "\\n", 2);
		} else if (*p < ' ' || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
			put(l, esc, 4);
		} else {
			put(l, (const char *)p, 1);
		}
	}
	put(l, "\"", 1);
}

static void put_pair(line_t *l, const char *k, const char *v)
{
	put(l, " ", 1);
	put(l, k, strlen(k));
	put(l, "=", 1);
	put_value(l, v);
}

void kd_log(kd_log_level_t lvl, const char *event, ...)
{
	static const char *const names[] = { "debug", "info", "warning", "error" };
	if (!kd_log_enabled(lvl))
		return;
	line_t l = { .len = 0 };
	struct timespec ts;
	struct tm tm;
	char t[48];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(t + n, sizeof(t) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	put(&l, "ts=", 3);
	put(&l, t, strlen(t));
	put_pair(&l, "level", names[lvl]);
	put_pair(&l, "event", event);
	va_list ap;
	va_start(ap, event);
	const char *k;
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);
		if (v != NULL)
			put_pair(&l, k, v);
	}
	va_end(ap);
	if (l.cut) {
		memcpy(l.buf + l.len, "...", 3);
		l.len += 3;
	}
	l.buf[l.len++] = '\n';
	ssize_t w = write(STDERR_FILENO, l.buf, l.len);
	(void)w;
}
