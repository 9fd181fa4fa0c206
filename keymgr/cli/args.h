/* SPDX-License-Identifier: Apache-2.0 */
/* Positional arguments (ENV/NAME, KID, OWNER) for commands that parse options with km_cli_getopt. */
#pragma once

#include <getopt.h>

#include "keymgr/cli/cli.h"

#define KM_CLI_MAX_POSITIONAL 8

/*
 * Moves the positional arguments of argv[1..argc) into pos (in order) and compacts argv so
 * that only argv[0] and options with their values remain; *argc is updated. An option that
 * takes a value (required_argument in opts) consumes the next word. Everything after "--" is
 * positional, and so is a 43-character kid that starts with '-'. Returns the number of
 * positionals, or -1 when there are more than max (the caller reports a usage error without
 * echoing them: a stray word could be a secret).
 */
int km_cli_take_positionals(int *argc, char **argv, const struct option *opts, char **pos,
                            int max);

/* Returned by km_cli_args_parse when the command goes on: no exit code yet. */
#define KM_CLI_CONTINUE (-1)

/* How one command reads its command line (see km_cli_args_parse). */
typedef struct {
	const char *cmd;            /* "keymgr keyset show": names the command in usage errors */
	const char *help;           /* printed to stdout for --help */
	const struct option *opts;  /* KM_CLI_OPTS_COMMON plus the command's own; NULL: common only */
	/*
	 * Called for each of the command's own options, in command-line order, with its value
	 * (NULL for a flag) and the ctx given to km_cli_args_parse. Returns 0 to go on, or an
	 * exit code (after printing its message) that the command returns at once.
	 */
	int (*option)(const char *cmd, int opt, const char *arg, void *ctx);
	int min_pos, max_pos;       /* how many positionals the command takes */
	/*
	 * Usage error when their number is outside [min_pos, max_pos] (or above
	 * KM_CLI_MAX_POSITIONAL); NULL when the command checks the number itself, later.
	 */
	const char *count_error;
} km_cli_args_t;

/*
 * The start every positional-taking command shares: takes the positionals out of argv (into
 * pos, KM_CLI_MAX_POSITIONAL entries; *npos their number, -1 for more than that), fills c
 * (km_cli_common_init, then the common options), hands the command's own options to
 * a->option, prints a->help for --help and checks the number of positionals. Returns
 * KM_CLI_CONTINUE (pos and *npos set) or the exit code to return: 0 after --help, 2 after a
 * usage error (printed), or what a->option returned. argv is reordered in place.
 */
int km_cli_args_parse(const km_cli_args_t *a, void *ctx, int argc, char **argv,
                      km_cli_common_t *c, char **pos, int *npos);

/* An a->option for a command with a single option of its own: *(const char **)ctx = arg. */
int km_cli_args_store(const char *cmd, int opt, const char *arg, void *ctx);
