/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by cmd_audit.c and cmd_audit_report.c: the audit and JWKS-history verbs. */
#pragma once

#include <stdio.h>

#include "keymgr/config/config.h"
#include "keymgr/core/env.h"

/*
 * Opens environment name for reading the audit trail: refuses (without creating anything) an
 * environment whose store file does not exist yet. Prints errors; returns an exit code.
 */
int km_cli_audit_open(const km_config_t *cfg, const char *name, km_env_t **env);

/* Writes s to out with control characters shown as '?' (the log may hold tampered text). */
void km_cli_audit_puts(FILE *out, const char *s);

/* keymgr audit report (cmd_audit_report.c). */
int km_cmd_audit_report(int argc, char **argv);

/* keymgr jwks history | show (cmd_audit_report.c), dispatched from cmd_publish.c. */
int km_cmd_jwks_history(int argc, char **argv);
int km_cmd_jwks_show(int argc, char **argv);
