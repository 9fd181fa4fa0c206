/* SPDX-License-Identifier: Apache-2.0 */
/*
 * FNV-1a, 64 bits: the hash of keymgr's in-memory tables (documents, verifiers, rate-limit
 * buckets, the token layer's handle cache) and of the daemon's change fingerprints. Not for
 * anything an attacker could exploit by collision beyond a longer bucket chain, and never
 * stored.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define KM_FNV_INIT UINT64_C(14695981039346656037)

/* h (KM_FNV_INIT to start) extended with len bytes of data. */
static inline uint64_t km_fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * UINT64_C(1099511628211);
	return h;
}

/* h extended with the bytes of the string s (without its terminating NUL). */
static inline uint64_t km_fnv_str(uint64_t h, const char *s)
{
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
	return h;
}
