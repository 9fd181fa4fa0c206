/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The object handle cache: CKA_ID -> private/public handles plus what signing must check
 * (key type, curve, allowed mechanisms). Filled on the first lookup of an ID, so that
 * km_token_sign() never runs C_FindObjects afterwards (a search reads every object file
 * of a SoftHSM token, softhsm/SoftHSMv2#711).
 *
 * A chained hash table behind a rwlock: signers take the read lock; inserts and drops the
 * write lock. Readers get a copy of the entry, so nothing they hold can be freed under them.
 */
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/fnv.h"
#include "pkcs11/internal.h"

static unsigned bucket_of(const uint8_t *id, size_t len)
{
	return (unsigned)(km_fnv(KM_FNV_INIT, id, len) % KM_P11_CACHE_BUCKETS);
}

int km_p11_cache_init(km_p11_cache_t *c)
{
	*c = (km_p11_cache_t){ 0 };
	if (pthread_rwlock_init(&c->lock, NULL) != 0)
		return KM_ENOMEM;
	c->initialised = true;
	return KM_EOK;
}

/* Frees every cached entry and empties the buckets (caller holds the write lock, or owns c). */
static void free_entries(km_p11_cache_t *c)
{
	for (unsigned b = 0; b < KM_P11_CACHE_BUCKETS; b++) {
		km_p11_key_t *k = c->buckets[b];
		while (k != NULL) {
			km_p11_key_t *next = k->next;
			free(k);
			k = next;
		}
		c->buckets[b] = NULL;
	}
}

void km_p11_cache_destroy(km_p11_cache_t *c)
{
	if (!c->initialised)
		return;
	free_entries(c);
	pthread_rwlock_destroy(&c->lock);
	*c = (km_p11_cache_t){ 0 };
}

static km_p11_key_t **find_slot(km_p11_cache_t *c, const uint8_t *id, size_t id_len)
{
	km_p11_key_t **pp = &c->buckets[bucket_of(id, id_len)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->id_len == id_len && memcmp((*pp)->id, id, id_len) == 0)
			break;
	return pp;
}

bool km_p11_cache_get(km_p11_cache_t *c, const uint8_t *id, size_t id_len, km_p11_key_t *ret)
{
	bool found = false;

	pthread_rwlock_rdlock(&c->lock);
	km_p11_key_t *k = *find_slot(c, id, id_len);
	if (k != NULL) {
		*ret = *k;
		ret->next = NULL;
		found = true;
	}
	pthread_rwlock_unlock(&c->lock);
	return found;
}

uint64_t km_p11_cache_generation(km_p11_cache_t *c)
{
	uint64_t g;

	pthread_rwlock_rdlock(&c->lock);
	g = c->generation;
	pthread_rwlock_unlock(&c->lock);
	return g;
}

int km_p11_cache_put(km_p11_cache_t *c, const km_p11_key_t *k, uint64_t generation)
{
	int r = KM_EOK;

	if (k->id_len == 0 || k->id_len > KM_P11_ID_MAX)
		return KM_EINVAL;
	pthread_rwlock_wrlock(&c->lock);
	if (c->generation != generation)
		goto out;               /* a destroy ran meanwhile: the lookup may be stale */
	km_p11_key_t **pp = find_slot(c, k->id, k->id_len);
	if (*pp != NULL) {
		km_p11_key_t *next = (*pp)->next;
		**pp = *k;
		(*pp)->next = next;
		goto out;
	}
	km_p11_key_t *n = malloc(sizeof(*n));
	if (n == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	*n = *k;
	n->next = NULL;
	*pp = n;
out:
	pthread_rwlock_unlock(&c->lock);
	return r;
}

void km_p11_cache_clear(km_p11_cache_t *c)
{
	pthread_rwlock_wrlock(&c->lock);
	c->generation++;
	free_entries(c);
	pthread_rwlock_unlock(&c->lock);
}

void km_p11_cache_drop(km_p11_cache_t *c, const uint8_t *id, size_t id_len)
{
	pthread_rwlock_wrlock(&c->lock);
	c->generation++;
	km_p11_key_t **pp = find_slot(c, id, id_len);
	if (*pp != NULL) {
		km_p11_key_t *k = *pp;
		*pp = k->next;
		free(k);
	}
	pthread_rwlock_unlock(&c->lock);
}
