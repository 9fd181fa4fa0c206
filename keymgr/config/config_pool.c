/* SPDX-License-Identifier: Apache-2.0 */
/* The allocation pool of a km_config_t, and the "FILE:LINE:COL: message" formatter. */
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/config/config_int.h"

struct cfg_pool_item {
	struct cfg_pool_item *next;
	alignas(max_align_t) unsigned char data[];
};

void *cfg_alloc(km_config_t *cfg, size_t size)
{
	if (size > SIZE_MAX - sizeof(struct cfg_pool_item))
		return NULL;
	struct cfg_pool_item *it = calloc(1, sizeof(*it) + size);
	if (it == NULL)
		return NULL;
	it->next = cfg->pool;
	cfg->pool = it;
	return it->data;
}

const char *cfg_strdup(km_config_t *cfg, const char *s)
{
	size_t len = strlen(s);
	char *d = cfg_alloc(cfg, len + 1);
	if (d != NULL)
		memcpy(d, s, len + 1);
	return d;
}

void cfg_pool_free(km_config_t *cfg)
{
	struct cfg_pool_item *it = cfg->pool;
	while (it != NULL) {
		struct cfg_pool_item *next = it->next;
		free(it);
		it = next;
	}
	cfg->pool = NULL;
}

void cfg_errorf(cfg_err_t *e, cfg_loc_t loc, const char *fmt, ...)
{
	if (e->set || e->buf == NULL || e->len == 0)
		return;
	e->set = true;
	int n;
	const char *file = loc.file ? loc.file : "(config)";
	if (loc.line > 0)
		n = snprintf(e->buf, e->len, "%s:%d:%d: ", file, loc.line, loc.col);
	else
		n = snprintf(e->buf, e->len, "%s: ", file);
	if (n < 0 || (size_t)n >= e->len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->buf + n, e->len - (size_t)n, fmt, ap);
	va_end(ap);
}
