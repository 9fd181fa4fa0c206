/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signals of keymgrd, turned into flags plus a wake-up file descriptor (a self-pipe) that the
 * main loop polls: SIGHUP asks for a reload, SIGTERM and SIGINT for a clean stop. SIGPIPE is
 * ignored. The handlers only set flags and write one byte, so they are async-signal-safe and
 * work whichever thread (the HTTP pool's included) receives the signal.
 */
#pragma once

#include <stdbool.h>

/* Installs the handlers. Returns the read end of the pipe (>= 0), or -1 with errno set. */
int kd_signals_init(void);

/* Drains the pipe (call when poll says it is readable). */
void kd_signals_drain(void);

/* Returns whether SIGHUP arrived since the last call, and clears it. */
bool kd_signals_take_reload(void);

/* Whether SIGTERM or SIGINT arrived (sticky), or kd_signals_request_stop() was called. */
bool kd_signals_stop_requested(void);

/* Sets the stop flag and wakes the loop (for fatal conditions found by the daemon itself). */
void kd_signals_request_stop(void);
