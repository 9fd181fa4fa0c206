/* SPDX-License-Identifier: Apache-2.0 */
#include "tests/common/tmpconfig.h"

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keymgr/common/error.h"

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int create(km_test_config_t *c, const char *text, bool partial)
{
	char err[1024] = "";
	const char *tmp = getenv("TMPDIR");
	memset(c, 0, sizeof(*c));
	snprintf(c->dir, sizeof(c->dir), "%s/keymgr-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(c->dir) == NULL) {
		perror("tmpconfig: mkdtemp");
		return -1;
	}
	snprintf(c->path, sizeof(c->path), "%s/keymgr.yaml", c->dir);
	FILE *f = fopen(c->path, "w");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
		perror("tmpconfig: writing keymgr.yaml");
		km_test_config_destroy(c);
		return -1;
	}
	int r = partial ? km_config_load_partial(c->path, &c->cfg, err, sizeof(err)) :
	                  km_config_load(c->path, &c->cfg, err, sizeof(err));
	if (r != KM_EOK) {
		fprintf(stderr, "tmpconfig: %s\n", err);
		km_test_config_destroy(c);
		return -1;
	}
	return 0;
}

int km_test_config_create(km_test_config_t *c, const char *text)
{
	return create(c, text, false);
}

int km_test_config_create_partial(km_test_config_t *c, const char *text)
{
	return create(c, text, true);
}

void km_test_config_destroy(km_test_config_t *c)
{
	km_config_free(c->cfg);
	c->cfg = NULL;
	if (c->dir[0] != '\0')
		nftw(c->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	c->dir[0] = '\0';
}
