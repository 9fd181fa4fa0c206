/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Store test fixture: a fresh temporary directory holding one store file, and helpers that
 * build key sets and keys through the public interface only.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keymgr/store/store.h"

typedef struct {
	char dir[256];          /* $TMPDIR/keymgr-store-XXXXXX */
	char path[300];         /* DIR/dev.db */
	km_store_t *s;          /* open as environment "dev" */
} store_fx_t;

/* cmocka group-less setup/teardown: *state becomes a store_fx_t with an open store. */
int store_fx_setup(void **state);
int store_fx_teardown(void **state);

/* Creates key set `name` (ES256, owner team-a, purpose access-token) and asserts success. */
void store_fx_keyset(km_store_t *s, const char *name);

/* Records and confirms a key in `keyset` with this kid (CKA_ID derived from the kid). */
void store_fx_key(km_store_t *s, const char *keyset, const char *kid, int64_t at);

/* The CKA_ID store_fx_key() uses for a kid: "KMGR" || the kid zero-padded (kids <= 16). */
void store_fx_cka_id(const char *kid, uint8_t id[20]);

/* Reads the whole file into a malloc'ed buffer (NULL if it cannot). */
unsigned char *store_fx_slurp(const char *path, size_t *len);
