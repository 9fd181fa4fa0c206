/* SPDX-License-Identifier: Apache-2.0 */
/* Positional arguments (ENV/NAME, KID, OWNER) for commands that parse options with km_cli_getopt. */
#pragma once

#include <getopt.h>

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
