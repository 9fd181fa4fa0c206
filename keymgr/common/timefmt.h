/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one time format of keymgr's output: RFC 3339 in UTC with a "Z" and whole seconds
 * ("2026-12-07T05:03:21Z"), in every JSON document (the CLI's --json, keymgrd's control
 * socket) and in text.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Room for any formatted time, NUL included. */
#define KM_TIME_TEXT_MAX 32

/*
 * Formats t (seconds since the epoch) into buf (len >= KM_TIME_TEXT_MAX) and returns buf.
 * A time that cannot be shown (before year 0 or past year 9999) gives "".
 */
const char *km_time_rfc3339(int64_t t, char *buf, size_t len);
