/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Driving keymgr-p11fault (p11fault.c) from a C test in this process: its rules file and its
 * call log, which shows every Cryptoki call with its session and object handles.
 */
#pragma once

#include <stddef.h>

/* Points the fault module at real_module, with its rules file, call log and clock file in
 * dir (the environment variables the module reads on load). Call before loading it. */
void p11calls_init(const char *dir, const char *real_module);

/* Replaces the fault rules (the module re-reads the file on its next call). */
void p11calls_rules(const char *text);

/* Sets the fault module's clock (KEYMGR_P11FAULT_CLOCK, which IDLECLOSE reads) to ms. */
void p11calls_clock(unsigned long long ms);

/* Empties the call log. */
void p11calls_reset(void);

/* The call log as one string (malloc'd). */
char *p11calls_read(void);

/* The number of lines of log starting with prefix. */
size_t p11calls_count(const char *log, const char *prefix);
