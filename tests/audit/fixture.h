/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixture of the audit tests: a real SoftHSM token in a temp directory, a keymgr.yaml with
 * one environment ("development", store DIR/development.db, audit JSON lines DIR/audit.jsonl)
 * and a short policy (rotation 30d, so a year is about a dozen keys; jwks_max_age 1h and
 * destroy_after 7d unless audit_fx_configure() changes them), the loaded config and
 * the open environment. Helpers run the keymgr executable with unbounded output capture,
 * run sqlite3 / python on copies of the store, and count audit events.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keymgr/config/config.h"
#include "keymgr/core/env.h"
#include "tests/common/softhsm.h"

#define AUDIT_FX_ENV "development"

typedef struct {
	km_test_softhsm_t hsm;
	char config[320];          /* DIR/keymgr.yaml */
	char store[320];           /* DIR/development.db */
	char jsonl[320];           /* DIR/audit.jsonl */
	char audit_token[1024];    /* the audit.token lines of the config ("": none) */
	km_config_t *cfg;
	km_env_t *env;
} audit_fx_t;

/* Output of one child process (malloc'd, NUL-terminated). */
typedef struct {
	int status;                /* exit code, or 128 + signal */
	char *out;
	char *err;
} audit_run_t;

/* Creates everything and opens the environment. 0 or -1 (reason on stderr). */
int audit_fx_create(audit_fx_t *fx);

/* Creates key set name (ES256, owner team-a, purpose access-token, no key) at at through
 * keymgr's own operation. 0 or -1 (reason on stderr). */
int audit_fx_keyset(audit_fx_t *fx, const char *name, int64_t at);

/* Closes the environment and removes the directory. */
void audit_fx_destroy(audit_fx_t *fx);

/* Closes and reopens the environment (after a child process changed the store). */
void audit_fx_reopen(audit_fx_t *fx);

/* Rewrites the configuration with these policy values (the fixture's: "1h", "7d") and
 * reopens the environment. Aborts on failure. */
void audit_fx_configure(audit_fx_t *fx, const char *jwks_max_age, const char *destroy_after);

/* Rewrites the configuration with audit.token naming a token of the fixture's SoftHSM by
 * selector ("label: NAME" or "serial: S"), with this pin source, or without audit.token
 * (selector NULL), and reopens the environment. Aborts on failure. */
void audit_fx_set_audit_token(audit_fx_t *fx, const char *selector, const char *pin_source);

/* Runs argv (NULL-terminated; argv[0] is the program) with KEYMGR_CONFIG set to the fixture's
 * config. 0 or -1. Free with audit_run_free(). */
int audit_fx_run(audit_fx_t *fx, const char *const *argv, audit_run_t *r);

void audit_run_free(audit_run_t *r);

/* Runs an SQL script on a database file with the sqlite3 CLI; returns its exit status. */
int audit_fx_sql(const char *db, const char *sql);

/* Copies the store (closed or not: the WAL is checkpointed first) to path, mode 0600. */
int audit_fx_copy_store(audit_fx_t *fx, const char *path);

/* Number of audit events with this action (NULL: all) in the open environment's store. */
size_t audit_fx_count(audit_fx_t *fx, const char *action);

/* The source directory of tests/audit (for the Python helpers): argv[2] of each test. */
void audit_fx_set_srcdir(const char *dir);
const char *audit_fx_srcdir(void);

/* Reads a test's arguments, PATH-TO-KEYMGR TESTS-AUDIT-SRCDIR (sets the source directory):
 * the keymgr path, or NULL after printing the usage. */
const char *audit_fx_args(int argc, char **argv);
