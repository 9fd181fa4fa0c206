/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test fixture: a keymgr.yaml in a fresh temporary directory, loaded by the real loader.
 * Relative paths in the text (store: ./dev.db) resolve into that directory, so a test's
 * store and audit files live and die with it.
 */
#pragma once

#include <limits.h>

#include "keymgr/config/config.h"

typedef struct {
	char dir[PATH_MAX];             /* $TMPDIR/keymgr-test-XXXXXX */
	char path[PATH_MAX + 32];       /* DIR/keymgr.yaml */
	km_config_t *cfg;
} km_test_config_t;

/* Writes text as DIR/keymgr.yaml and loads it into c->cfg. 0, or -1 with the reason on
 * stderr (the directory is removed again). */
int km_test_config_create(km_test_config_t *c, const char *text);

/* The same with km_config_load_partial(): errors confined to a part are recorded. */
int km_test_config_create_partial(km_test_config_t *c, const char *text);

/* Frees the configuration and removes the directory with everything in it. */
void km_test_config_destroy(km_test_config_t *c);
