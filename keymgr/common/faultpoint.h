/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test-only crash points (issue 8's crash matrix, tests/fault/test_crash.c).
 *
 * KM_FAULT_POINT("generate.after_intent") marks a step of a multi-step change. In a normal
 * build it compiles to nothing. In a build configured with -Dtest_hooks=true (which defines
 * KM_TEST_HOOKS), the process kills itself with SIGKILL when the environment variable
 * KEYMGR_CRASH_AT names that point: "NAME" at its first hit, "NAME:N" at its N-th hit. No
 * cleanup, no atexit handler, no buffered output: exactly what a power cut or an OOM kill
 * leaves behind. docs/crash-points.md lists the points the crash matrix tests.
 */
#pragma once

#ifdef KM_TEST_HOOKS
/* Raises SIGKILL if $KEYMGR_CRASH_AT selects this hit of point name (see above). */
void km_fault_point(const char *name);
#define KM_FAULT_POINT(name) km_fault_point(name)
#else
#define KM_FAULT_POINT(name) ((void)0)
#endif
