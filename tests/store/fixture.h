/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Store test fixture: a fresh temporary directory holding one store file, and helpers that
 * build key sets and keys through the public interface only.
 *
 * Every store test runs against both backends: with KEYMGR_TEST_PG_URI set (the store_pg
 * tests, run through tests/common/pg_fixture.py, which starts a PostgreSQL of their own) the
 * store is a fresh schema of that database instead of a file; fx->path is then its URI.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/store/store.h"

typedef struct {
	char dir[256];          /* $TMPDIR/keymgr-store-XXXXXX */
	char path[1024];        /* DIR/dev.db, or the URI of a fresh PostgreSQL schema */
	bool pg;                /* the store is on PostgreSQL */
	km_store_t *s;          /* open as environment "dev" */
} store_fx_t;

/* Whether this run's stores are on PostgreSQL (KEYMGR_TEST_PG_URI is set). */
bool store_fx_pg(void);

/* Another, new store location of this run: DIR/NAME.db, or a new schema named after NAME. */
void store_fx_other(const store_fx_t *fx, const char *name, char *out, size_t len);

/* Runs SQL on the store at path directly (as an outside actor would), asserting success. */
void store_fx_raw_exec(const char *path, const char *sql);

/* Runs SQL on the store directly and returns whether the store refused it as a constraint
 * violation (SQLite: SQLITE_CONSTRAINT, PostgreSQL: SQLSTATE class 23). */
bool store_fx_raw_refused(const char *path, const char *sql);

/* The first column of the first row of SQL run directly on the store (malloc'ed). */
char *store_fx_raw_text(const char *path, const char *sql);

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
