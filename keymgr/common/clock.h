/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CLOCK_MONOTONIC in milliseconds: deadlines, backoffs, rate-limit buckets and ages, which
 * must not move when the wall clock is set.
 */
#pragma once

#include <stdint.h>
#include <time.h>

static inline uint64_t km_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
