/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The verifier table: per (verifier, path), the last serial the verifier is known to hold.
 * Bounded; when full, the least recently seen row of an address is evicted, else of a name
 * that is not listed. Rows of listed verifiers (the names policies wait for,
 * activate_when_seen_by: km_http_vtab_set_listed) are never evicted: a flood of made-up
 * Keymgr-Verifier names churns only among the others, and a record that finds the table full
 * of listed rows is dropped (counted). O(1) per record. Internally locked.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "keymgr/http/http_server.h"

typedef struct km_http_vtab km_http_vtab_t;

/* Creates an empty table of cap rows (cap >= 1). Free with km_http_vtab_free(). KM_EOK,
 * KM_EINVAL or KM_ENOMEM. */
int km_http_vtab_create(size_t cap, km_http_vtab_t **ret);

/* Accepts NULL. */
void km_http_vtab_free(km_http_vtab_t *t);

/*
 * Records that verifier id (named or an address) holds serial at path, proven at now by a
 * 200 or (by_304) a 304. id is cut to KM_HTTP_VERIFIER_ID_MAX bytes, path to
 * KM_HTTP_PATH_MAX.
 */
void km_http_vtab_record(km_http_vtab_t *t, const char *id, bool named, const char *path,
                         int64_t serial, time_t now, bool by_304);

/* Copies the rows (for path, or all when NULL), sorted by id, named first, then path.
 * *ret is malloc'd (NULL when empty). KM_EOK or KM_ENOMEM. */
int km_http_vtab_snapshot(km_http_vtab_t *t, const char *path, km_http_verifier_t **ret,
                          size_t *count);

/* Number of rows in use. */
size_t km_http_vtab_size(km_http_vtab_t *t);

/*
 * Sets the listed verifier names (copied; replaces the previous list). Rows of names that
 * join the list are pinned from now on, rows of names that leave it become evictable.
 * KM_EOK or KM_ENOMEM (the previous list is kept).
 */
int km_http_vtab_set_listed(km_http_vtab_t *t, const char *const *names, size_t n);

typedef struct {
	size_t rows;            /* in use */
	size_t listed_rows;     /* of listed verifiers (never evicted) */
	uint64_t evicted;       /* rows evicted to make room, since creation */
	uint64_t dropped;       /* records not kept: the table was full of listed rows */
} km_http_vtab_counts_t;

void km_http_vtab_counts(km_http_vtab_t *t, km_http_vtab_counts_t *ret);

/*
 * Copies the rows recorded since the previous call into *ret (malloc'd, NULL when *count is
 * 0) and forgets that they changed. KM_EOK or KM_ENOMEM (nothing forgotten).
 */
int km_http_vtab_take_changes(km_http_vtab_t *t, km_http_verifier_t **ret, size_t *count);

/*
 * fd (an eventfd; -1: none) gets one write when a row is recorded after the previous
 * km_http_vtab_take_changes() (not one per record): whoever takes the changes can wait for it
 * instead of polling. The caller reads (resets) it and keeps it open.
 */
void km_http_vtab_set_notify(km_http_vtab_t *t, int fd);

/*
 * Records a row as another table reported it (km_http_vtab_take_changes() of a listener):
 * its serial, last_seen, by_304 and fetch count replace this table's, subject to the same
 * bounds and pinning as km_http_vtab_record().
 */
void km_http_vtab_merge(km_http_vtab_t *t, const km_http_verifier_t *v);
