/* SPDX-License-Identifier: Apache-2.0 */
#include "keymgr/http/http_verifiers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/common/fnv.h"

#define NIL UINT32_MAX

/* Recency lists: rows evicted first (addresses), then other names; listed names never. */
enum { LIST_UNNAMED = 0, LIST_NAMED = 1, LIST_LISTED = 2, N_LISTS };

struct row {
	km_http_verifier_t v;
	uint64_t hash;
	uint32_t hnext;         /* next row in the same hash bucket */
	uint32_t prev, next;    /* recency list (head = least recently seen) */
	bool used;
	bool listed;            /* its name is a listed verifier: never evicted */
	bool changed;           /* recorded since the last km_http_vtab_take_changes() */
};

struct lru {
	uint32_t head, tail;
};

struct km_http_vtab {
	pthread_mutex_t lock;
	struct row *rows;
	uint32_t cap, used;
	uint32_t *buckets;
	uint32_t nbuckets;      /* power of two */
	uint32_t free_head;     /* unused rows, chained through next */
	struct lru lists[N_LISTS];
	uint32_t n_listed_rows;
	uint64_t evicted, dropped;
	char (*listed)[KM_HTTP_VERIFIER_ID_MAX + 1];   /* sorted names */
	size_t n_listed;
	int notify_fd;          /* written once when a row changes after a take; -1: none */
	bool notified;
};

static int list_of(const struct row *rw)
{
	return rw->listed ? LIST_LISTED : rw->v.named ? LIST_NAMED : LIST_UNNAMED;
}

static uint64_t row_hash(const char *id, bool named, const char *path)
{
	const unsigned char tag = named ? 1u : 0u, sep = 0xffu;
	uint64_t hsh = km_fnv(KM_FNV_INIT, &tag, 1);

	hsh = km_fnv(km_fnv_str(hsh, id), &sep, 1);
	return km_fnv_str(hsh, path);
}

int km_http_vtab_create(size_t cap, km_http_vtab_t **ret)
{
	km_http_vtab_t *t = NULL;
	uint32_t i;
	int r = KM_ENOMEM;

	if (cap == 0 || cap > (1u << 24))
		return KM_EINVAL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		goto out;
	t->cap = (uint32_t)cap;
	t->nbuckets = 16;
	while (t->nbuckets < 2 * t->cap)
		t->nbuckets <<= 1;
	t->rows = calloc(t->cap, sizeof(*t->rows));
	t->buckets = malloc(t->nbuckets * sizeof(*t->buckets));
	if (t->rows == NULL || t->buckets == NULL)
		goto out;
	for (i = 0; i < t->nbuckets; i++)
		t->buckets[i] = NIL;
	for (i = 0; i < t->cap; i++)
		t->rows[i].next = (i + 1 < t->cap) ? i + 1 : NIL;
	t->free_head = 0;
	t->notify_fd = -1;
	for (i = 0; i < N_LISTS; i++)
		t->lists[i].head = t->lists[i].tail = NIL;
	if (pthread_mutex_init(&t->lock, NULL) != 0)
		goto out;
	*ret = t;
	t = NULL;
	r = KM_EOK;
out:
	if (t != NULL) {
		free(t->rows);
		free(t->buckets);
		free(t);
	}
	return r;
}

void km_http_vtab_free(km_http_vtab_t *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->rows);
	free(t->buckets);
	free(t->listed);
	free(t);
}

static void lru_unlink(km_http_vtab_t *t, uint32_t i)
{
	struct row *rw = &t->rows[i];
	struct lru *l = &t->lists[list_of(rw)];

	if (rw->prev != NIL)
		t->rows[rw->prev].next = rw->next;
	else
		l->head = rw->next;
	if (rw->next != NIL)
		t->rows[rw->next].prev = rw->prev;
	else
		l->tail = rw->prev;
	rw->prev = rw->next = NIL;
}

static void lru_append(km_http_vtab_t *t, uint32_t i)
{
	struct row *rw = &t->rows[i];
	struct lru *l = &t->lists[list_of(rw)];

	rw->prev = l->tail;
	rw->next = NIL;
	if (l->tail != NIL)
		t->rows[l->tail].next = i;
	else
		l->head = i;
	l->tail = i;
}

static void hash_unlink(km_http_vtab_t *t, uint32_t i)
{
	uint32_t *link = &t->buckets[t->rows[i].hash & (t->nbuckets - 1)];

	while (*link != NIL && *link != i)
		link = &t->rows[*link].hnext;
	if (*link == i)
		*link = t->rows[i].hnext;
	t->rows[i].hnext = NIL;
}

/* Returns a free row index, evicting the least recently seen row of an address, else of an
 * unlisted name, if the table is full; NIL when every row is a listed verifier's. */
static uint32_t take_row(km_http_vtab_t *t)
{
	uint32_t i;

	if (t->free_head != NIL) {
		i = t->free_head;
		t->free_head = t->rows[i].next;
		t->used++;
		return i;
	}
	i = t->lists[LIST_UNNAMED].head;
	if (i == NIL)
		i = t->lists[LIST_NAMED].head;
	if (i == NIL)
		return NIL;
	lru_unlink(t, i);
	hash_unlink(t, i);
	t->evicted++;
	return i;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

static bool is_listed(const km_http_vtab_t *t, const char *id, bool named)
{
	return named && t->n_listed > 0 &&
	       bsearch(id, t->listed, t->n_listed, sizeof(t->listed[0]), cmp_name) != NULL;
}

static void copy_cut(char *dst, const char *src, size_t max)
{
	size_t n = strnlen(src, max);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The row of (id, named, path), found or made (NULL: not kept); the lock is held. */
static struct row *row_for(km_http_vtab_t *t, const char *id, bool named, const char *path)
{
	char idc[KM_HTTP_VERIFIER_ID_MAX + 1];
	char pathc[KM_HTTP_PATH_MAX + 1];
	uint64_t hsh;
	uint32_t i;
	struct row *rw;

	copy_cut(idc, id, KM_HTTP_VERIFIER_ID_MAX);
	copy_cut(pathc, path, KM_HTTP_PATH_MAX);
	hsh = row_hash(idc, named, pathc);
	for (i = t->buckets[hsh & (t->nbuckets - 1)]; i != NIL; i = t->rows[i].hnext) {
		rw = &t->rows[i];
		if (rw->hash == hsh && rw->v.named == named && strcmp(rw->v.id, idc) == 0 &&
		    strcmp(rw->v.path, pathc) == 0) {
			lru_unlink(t, i);
			lru_append(t, i);
			return rw;
		}
	}
	i = take_row(t);
	if (i == NIL) {
		t->dropped++;   /* full of listed verifiers' rows: this one is not tracked */
		return NULL;
	}
	rw = &t->rows[i];
	memset(&rw->v, 0, sizeof(rw->v));
	memcpy(rw->v.id, idc, sizeof(idc));
	memcpy(rw->v.path, pathc, sizeof(pathc));
	rw->v.named = named;
	rw->hash = hsh;
	rw->used = true;
	rw->listed = is_listed(t, idc, named);
	t->n_listed_rows += rw->listed;
	rw->hnext = t->buckets[hsh & (t->nbuckets - 1)];
	t->buckets[hsh & (t->nbuckets - 1)] = i;
	lru_append(t, i);
	return rw;
}

void km_http_vtab_merge(km_http_vtab_t *t, const km_http_verifier_t *v)
{
	pthread_mutex_lock(&t->lock);
	struct row *rw = row_for(t, v->id, v->named, v->path);
	if (rw != NULL) {
		rw->v.serial = v->serial;
		rw->v.last_seen = v->last_seen;
		rw->v.by_304 = v->by_304;
		rw->v.fetches = v->fetches;
		rw->changed = true;
	}
	pthread_mutex_unlock(&t->lock);
}

int km_http_vtab_take_changes(km_http_vtab_t *t, km_http_verifier_t **ret, size_t *count)
{
	km_http_verifier_t *out = NULL;
	size_t n = 0;
	pthread_mutex_lock(&t->lock);
	for (uint32_t i = 0; i < t->cap; i++)
		n += t->rows[i].used && t->rows[i].changed;
	if (n > 0 && (out = malloc(n * sizeof(*out))) == NULL) {
		pthread_mutex_unlock(&t->lock);
		return KM_ENOMEM;
	}
	n = 0;
	for (uint32_t i = 0; i < t->cap; i++) {
		if (!t->rows[i].used || !t->rows[i].changed)
			continue;
		out[n++] = t->rows[i].v;
		t->rows[i].changed = false;
	}
	t->notified = false;
	pthread_mutex_unlock(&t->lock);
	*ret = out;
	*count = n;
	return KM_EOK;
}

void km_http_vtab_record(km_http_vtab_t *t, const char *id, bool named, const char *path,
                         int64_t serial, time_t now, bool by_304)
{
	pthread_mutex_lock(&t->lock);
	struct row *rw = row_for(t, id, named, path);
	if (rw != NULL) {
		rw->v.serial = serial;
		rw->v.last_seen = now;
		rw->v.by_304 = by_304;
		rw->v.fetches++;
		rw->changed = true;
		if (!t->notified && t->notify_fd >= 0) {
			uint64_t one = 1;
			ssize_t w = write(t->notify_fd, &one, sizeof(one));
			t->notified = w == (ssize_t)sizeof(one);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

void km_http_vtab_set_notify(km_http_vtab_t *t, int fd)
{
	pthread_mutex_lock(&t->lock);
	t->notify_fd = fd;
	t->notified = false;
	pthread_mutex_unlock(&t->lock);
}

static int cmp_rows(const void *a, const void *b)
{
	const km_http_verifier_t *x = a, *y = b;
	int c;

	if (x->named != y->named)
		return x->named ? -1 : 1;
	if ((c = strcmp(x->id, y->id)) != 0)
		return c;
	return strcmp(x->path, y->path);
}

int km_http_vtab_snapshot(km_http_vtab_t *t, const char *path, km_http_verifier_t **ret,
                          size_t *count)
{
	km_http_verifier_t *out = NULL;
	size_t n = 0;
	uint32_t i;
	int r = KM_ENOMEM;

	pthread_mutex_lock(&t->lock);
	if (t->used > 0 && (out = malloc(t->used * sizeof(*out))) == NULL)
		goto out;
	for (i = 0; i < t->cap; i++) {
		if (!t->rows[i].used)
			continue;
		if (path != NULL && strcmp(t->rows[i].v.path, path) != 0)
			continue;
		out[n++] = t->rows[i].v;
	}
	r = KM_EOK;
out:
	pthread_mutex_unlock(&t->lock);
	if (r != KM_EOK)
		return r;
	if (n == 0) {
		free(out);
		out = NULL;
	} else {
		qsort(out, n, sizeof(*out), cmp_rows);
	}
	*ret = out;
	*count = n;
	return KM_EOK;
}

size_t km_http_vtab_size(km_http_vtab_t *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->used;
	pthread_mutex_unlock(&t->lock);
	return n;
}

int km_http_vtab_set_listed(km_http_vtab_t *t, const char *const *names, size_t n)
{
	char (*copy)[KM_HTTP_VERIFIER_ID_MAX + 1] = NULL;
	size_t k = 0;
	if (n > 0 && (copy = calloc(n, sizeof(*copy))) == NULL)
		return KM_ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (names[i] != NULL && names[i][0] != '\0')
			copy_cut(copy[k++], names[i], KM_HTTP_VERIFIER_ID_MAX);
	if (k > 1)   /* qsort() takes no NULL, even for 0 elements */
		qsort(copy, k, sizeof(*copy), cmp_name);
	pthread_mutex_lock(&t->lock);
	free(t->listed);
	t->listed = copy;
	t->n_listed = k;
	/* Rows of names that joined or left the list change lists (their recency is kept
	 * within the new list: appended as the most recent). */
	t->n_listed_rows = 0;
	for (uint32_t i = 0; i < t->cap; i++) {
		struct row *rw = &t->rows[i];
		if (!rw->used)
			continue;
		bool listed = is_listed(t, rw->v.id, rw->v.named);
		if (listed != rw->listed) {
			lru_unlink(t, i);
			rw->listed = listed;
			lru_append(t, i);
		}
		t->n_listed_rows += listed;
	}
	pthread_mutex_unlock(&t->lock);
	return KM_EOK;
}

void km_http_vtab_counts(km_http_vtab_t *t, km_http_vtab_counts_t *ret)
{
	pthread_mutex_lock(&t->lock);
	ret->rows = t->used;
	ret->listed_rows = t->n_listed_rows;
	ret->evicted = t->evicted;
	ret->dropped = t->dropped;
	pthread_mutex_unlock(&t->lock);
}
