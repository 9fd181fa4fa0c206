/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How long keymgrd waits before retrying what failed (backoff.c): a key set's pass, a token
 * check, the signing token's opening. Never a hot loop; never longer than KD_BACKOFF_MAX.
 */
#pragma once

#include <stdint.h>

#define KD_BACKOFF_MIN 1     /* seconds before the first retry */
#define KD_BACKOFF_MAX 300   /* cap of the exponential backoff */

/* Seconds to wait after the n-th consecutive failure (n >= 1): 1, 2, 4, ... up to 300. */
int64_t kd_backoff(unsigned n);
