/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the reliability tests (crash matrix, token faults, secrets): a keymgr
 * installation in a SoftHSM fixture's temp directory, the keymgr executable run as a user
 * runs it, and the invariants every test checks on the store and the token.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "tests/cli/run.h"
#include "tests/common/softhsm.h"

#define KMT_ENV "crash"

typedef struct {
	km_test_softhsm_t hsm;
	const char *keymgr;          /* path of the executable */
	char config[400];            /* DIR/keymgr.yaml */
	char store[400];             /* DIR/crash.db */
	const char *module;          /* module keymgr.yaml names (SoftHSM or the fault module) */
} kmt_t;

/*
 * Creates the token, and writes keymgr.yaml for environment KMT_ENV using module (NULL:
 * SoftHSM). Returns 0 or -1 with a message on stderr.
 */
int kmt_setup(kmt_t *t, const char *keymgr, const char *module);
void kmt_teardown(kmt_t *t);

/*
 * Runs `keymgr -c CONFIG args...` (args NULL-terminated) with extra environment variables
 * "NAME=VALUE" (NULL-terminated list, may be NULL) set only for the child.
 */
void kmt_run(kmt_t *t, km_run_t *out, const char *const *extra_env, const char *const *args);

/* Runs keymgr and fails the test unless it exits 0. */
void kmt_ok(kmt_t *t, km_run_t *out, const char *const *args);

/* The kid of the active key of keyset ("" when none), read from the store. */
void kmt_active_kid(kmt_t *t, const char *keyset, char *kid, size_t len);

/*
 * The invariants of issue 8, checked directly on the store and the token: the key set has
 * exactly one active key; `keymgr jwks` contains it; the store has no pending row; every
 * keymgr object in the token belongs to a row that is neither destroyed nor abandoned; the
 * audit chain verifies (when this keymgr has `audit verify`). Fails the test otherwise.
 * Returns true when `audit verify` ran.
 */
bool kmt_check_invariants(kmt_t *t, const char *keyset);
