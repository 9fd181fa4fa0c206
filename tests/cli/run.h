/* SPDX-License-Identifier: Apache-2.0 */
/* Runs the keymgr executable in a child process and captures its output (tests only). */
#pragma once

#include <stddef.h>

typedef struct {
	int status;        /* exit code, or 128 + signal */
	char out[65536];   /* stdout, NUL-terminated (truncated if longer) */
	char err[16384];   /* stderr, NUL-terminated */
} km_run_t;

/*
 * Runs exe with argv (NULL-terminated, argv[0] included), stdin from stdin_text (NULL: empty).
 * Returns 0, or -1 if the child could not be started.
 */
int km_run(const char *exe, const char *const *argv, const char *stdin_text, km_run_t *r);
