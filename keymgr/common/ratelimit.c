/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Token buckets in an open-addressed table (linear probing over a window of PROBE slots).
 * Tokens are kept in thousandths so that integer arithmetic refills smoothly.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/fnv.h"
#include "keymgr/common/ratelimit.h"

#define PROBE 16

typedef struct {
	uint8_t key[KM_RATELIMIT_KEY_MAX];
	uint8_t key_len;             /* 0: free slot */
	uint64_t milli;              /* tokens * 1000 */
	uint64_t last_ms;            /* last refill */
} bucket_t;

struct km_ratelimit {
	pthread_mutex_t lock;
	uint64_t rate;               /* tokens per second */
	uint64_t cap_milli;          /* burst * 1000 */
	bucket_t *slots;
	size_t n;                    /* a power of two */
};

int km_ratelimit_create(unsigned rate, unsigned burst, size_t peers, km_ratelimit_t **ret)
{
	km_ratelimit_t *rl;
	size_t n = 64;

	if (rate == 0)
		return KM_EINVAL;
	if (peers == 0)
		peers = 4096;
	while (n < peers && n < ((size_t)1 << 24))
		n *= 2;
	if ((rl = calloc(1, sizeof(*rl))) == NULL || (rl->slots = calloc(n, sizeof(bucket_t))) == NULL) {
		free(rl);
		return KM_ENOMEM;
	}
	pthread_mutex_init(&rl->lock, NULL);
	rl->rate = rate;
	rl->cap_milli = (uint64_t)(burst != 0 ? burst : 2 * (uint64_t)rate) * 1000u;
	rl->n = n;
	*ret = rl;
	return KM_EOK;
}

void km_ratelimit_free(km_ratelimit_t *rl)
{
	if (rl == NULL)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl->slots);
	free(rl);
}

static size_t hash(const uint8_t *k, size_t len)
{
	uint64_t h = km_fnv(KM_FNV_INIT, k, len);
	return (size_t)(h ^ (h >> 29));
}

/* The peer's bucket, or the slot to give it (free, else the one idle longest). */
static bucket_t *find(km_ratelimit_t *rl, const uint8_t *key, size_t len, bool *found)
{
	size_t start = hash(key, len) & (rl->n - 1);
	bucket_t *victim = NULL;

	for (size_t i = 0; i < PROBE; i++) {
		bucket_t *b = &rl->slots[(start + i) & (rl->n - 1)];
		if (b->key_len == len && memcmp(b->key, key, len) == 0) {
			*found = true;
			return b;
		}
		if (b->key_len == 0) {
			if (victim == NULL || victim->key_len != 0)
				victim = b;
		} else if (victim == NULL || (victim->key_len != 0 && b->last_ms < victim->last_ms)) {
			victim = b;
		}
	}
	*found = false;
	return victim;
}

bool km_ratelimit_take(km_ratelimit_t *rl, const void *key, size_t key_len, uint64_t now_ms,
                       unsigned *retry_ms)
{
	bool found, ok;

	if (key_len == 0 || key_len > KM_RATELIMIT_KEY_MAX)
		return true;
	pthread_mutex_lock(&rl->lock);
	bucket_t *b = find(rl, key, key_len, &found);
	if (!found) {
		memset(b, 0, sizeof(*b));
		memcpy(b->key, key, key_len);
		b->key_len = (uint8_t)key_len;
		b->milli = rl->cap_milli;
		b->last_ms = now_ms;
	}
	if (now_ms > b->last_ms) {
		uint64_t add = (now_ms - b->last_ms) * rl->rate;   /* ms * tokens/s = milli-tokens */
		b->milli = add >= rl->cap_milli - b->milli ? rl->cap_milli : b->milli + add;
		b->last_ms = now_ms;
	}
	ok = b->milli >= 1000u;
	if (ok)
		b->milli -= 1000u;
	else if (retry_ms != NULL)
		*retry_ms = (unsigned)((1000u - b->milli + rl->rate - 1) / rl->rate);
	pthread_mutex_unlock(&rl->lock);
	return ok;
}
