/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-peer request rate limits: a token bucket per peer (a client address for HTTP, a uid
 * for the control socket), refilled at `rate` requests per second up to `burst`. The table
 * has a fixed size: when it is full, the peer seen longest ago gives up its entry (its bucket
 * was full again anyway, or it gets a fresh full one: a limiter never refuses because it
 * ran out of room). Thread-safe; one short mutex section per request.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KM_RATELIMIT_KEY_MAX 16     /* an IPv6 address */

typedef struct km_ratelimit km_ratelimit_t;

/*
 * A limiter of rate requests per second per peer with bursts of up to burst (0: 2 * rate),
 * tracking at most peers peers (0: 4096). *ret is freed with km_ratelimit_free().
 * KM_EOK, KM_EINVAL (rate 0) or KM_ENOMEM.
 */
int km_ratelimit_create(unsigned rate, unsigned burst, size_t peers, km_ratelimit_t **ret);
void km_ratelimit_free(km_ratelimit_t *rl);

/*
 * Takes one request from the bucket of peer key (1..KM_RATELIMIT_KEY_MAX bytes) at now_ms
 * (km_monotonic_ms(), keymgr/common/clock.h). True when allowed; false when the peer is over
 * its rate, then *retry_ms (may be NULL) says when the next request would be allowed.
 */
bool km_ratelimit_take(km_ratelimit_t *rl, const void *key, size_t key_len, uint64_t now_ms,
                       unsigned *retry_ms);
