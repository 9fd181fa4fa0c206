/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Entry points of the top-level command groups, one per file (cmd_<group>.c). Each takes
 * argv[0] = its own name and returns an exit code (see cli.h). To add a group: declare it
 * here, add one line to the table in main.c, add the file to keymgr/cli/meson.build.
 */
#pragma once

int km_cmd_token(int argc, char **argv);
int km_cmd_env(int argc, char **argv);
int km_cmd_keyset(int argc, char **argv);
int km_cmd_key(int argc, char **argv);
int km_cmd_rotate(int argc, char **argv);
int km_cmd_revoke(int argc, char **argv);
int km_cmd_destroy(int argc, char **argv);
int km_cmd_jwks(int argc, char **argv);
int km_cmd_sign(int argc, char **argv);
int km_cmd_publish(int argc, char **argv);
int km_cmd_plan(int argc, char **argv);
int km_cmd_apply(int argc, char **argv);
int km_cmd_policy(int argc, char **argv);
int km_cmd_reconcile(int argc, char **argv);
int km_cmd_audit(int argc, char **argv);
int km_cmd_verify(int argc, char **argv);
int km_cmd_probe(int argc, char **argv);
/* keymgr key current: its own file, listed in cmd_key.c's table. */
int km_cmd_key_current(int argc, char **argv);
int km_cmd_status(int argc, char **argv);
int km_cmd_reload(int argc, char **argv);
int km_cmd_tick(int argc, char **argv);
int km_cmd_store(int argc, char **argv);
