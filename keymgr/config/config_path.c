/* SPDX-License-Identifier: Apache-2.0 */
/* Path handling for the config: resolution against the config directory, and sameness. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/config/config_int.h"

/* Appends the normalised form of path to out (which holds an absolute prefix). */
static bool normalise_into(char *out, size_t len, const char *path)
{
	size_t n = strlen(out);
	const char *p = path;
	while (*p != '\0') {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		const char *end = strchr(p, '/');
		size_t seg = end ? (size_t)(end - p) : strlen(p);
		if (seg == 1 && p[0] == '.') {
			/* nothing */
		} else if (seg == 2 && p[0] == '.' && p[1] == '.') {
			while (n > 0 && out[n - 1] != '/')
				n--;
			if (n > 1)
				n--;        /* drop the separator, except the root's */
			out[n] = '\0';
		} else {
			bool need_sep = !(n == 1 && out[0] == '/');
			if (n + (need_sep ? 1 : 0) + seg + 1 > len)
				return false;
			if (need_sep)
				out[n++] = '/';
			memcpy(out + n, p, seg);
			n += seg;
			out[n] = '\0';
		}
		p += seg;
	}
	return true;
}

const char *cfg_path_resolve(km_config_t *cfg, const char *base_dir, const char *path)
{
	char buf[PATH_MAX];
	buf[0] = '/';
	buf[1] = '\0';
	if (path[0] != '/' && !normalise_into(buf, sizeof(buf), base_dir))
		return NULL;
	if (!normalise_into(buf, sizeof(buf), path))
		return NULL;
	return cfg_strdup(cfg, buf);
}

const char *cfg_path_dirname(km_config_t *cfg, const char *abs)
{
	char buf[PATH_MAX];
	const char *slash = strrchr(abs, '/');
	size_t n = slash == NULL || slash == abs ? 1 : (size_t)(slash - abs);
	if (n >= sizeof(buf))
		return NULL;
	if (slash == NULL)
		buf[0] = '/';
	else
		memcpy(buf, abs, n);
	buf[n] = '\0';
	return cfg_strdup(cfg, buf);
}

/* realpath() of the file, else of its parent plus the base name, else the literal. */
static void canonical(const char *abs, char out[PATH_MAX])
{
	if (realpath(abs, out) != NULL)
		return;
	const char *slash = strrchr(abs, '/');
	char parent[PATH_MAX];
	size_t n = slash == NULL || slash == abs ? 1 : (size_t)(slash - abs);
	if (slash != NULL && n < sizeof(parent)) {
		memcpy(parent, abs, n);
		parent[n] = '\0';
		char rp[PATH_MAX];
		if (realpath(parent, rp) != NULL) {
			size_t rl = strlen(rp);
			size_t bl = strlen(slash + 1);
			bool root = rl == 1;
			if (rl + 1 + bl + 1 <= PATH_MAX) {
				memcpy(out, rp, rl);
				if (!root)
					out[rl++] = '/';
				memcpy(out + rl, slash + 1, bl + 1);
				return;
			}
		}
	}
	size_t l = strlen(abs);
	if (l >= PATH_MAX)
		l = PATH_MAX - 1;
	memcpy(out, abs, l);
	out[l] = '\0';
}

bool cfg_path_same(const char *a, const char *b)
{
	if (strcmp(a, b) == 0)
		return true;
	char ca[PATH_MAX], cb[PATH_MAX];
	canonical(a, ca);
	canonical(b, cb);
	return strcmp(ca, cb) == 0;
}
