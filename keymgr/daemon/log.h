/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgrd's log: one line per event on stderr (the journal under systemd), made of key=value
 * fields in a fixed order: ts, level, event, then the caller's fields (env, keyset, kid,
 * action, result, error, ...). Values that are empty or hold spaces, quotes, '=' or control
 * characters are written in double quotes with C escapes, so every line splits unambiguously.
 * A line is written with one write(2), so lines from different threads never interleave.
 */
#pragma once

#include <stdbool.h>

typedef enum {
	KD_LOG_DEBUG = 0,
	KD_LOG_INFO,
	KD_LOG_WARNING,
	KD_LOG_ERROR,
} kd_log_level_t;

/* Lines below min are dropped (default KD_LOG_INFO). */
void kd_log_set_level(kd_log_level_t min);

/* Whether a line of level lvl would be written. */
bool kd_log_enabled(kd_log_level_t lvl);

/*
 * Writes one line: event, then key/value pairs given as (const char *key, const char *value)
 * and ended by a NULL key. A NULL value skips its pair. Never fails (a line that does not fit
 * 4 KiB is cut and ends in "...").
 */
void kd_log(kd_log_level_t lvl, const char *event, ...) __attribute__((sentinel));
