/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The leader lease of one environment on a PostgreSQL store (docs/ha.md): which keymgrd node
 * rotates. Its own thread with its own store connection acquires the lease when it is free
 * or expired and renews it every third of its length; the expiry is kept by the database's
 * clock only. This node believes it leads only until its local deadline: the time it sent
 * its last successful renewal (monotonic clock) plus the lease minus a margin, which is
 * never later than the expiry the database recorded. A failed renewal, a passed deadline, or
 * a write refused by the fence (kd_lease_fenced) steps it down at once.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "keymgr/store/store.h"

typedef struct kd_lease kd_lease_t;

/* What status and metrics show. */
typedef struct {
	bool leader;                                  /* this node believes it leads now */
	char node[KM_STORE_LEASE_HOLDER_MAX + 1];     /* this node's holder name */
	char holder[KM_STORE_LEASE_HOLDER_MAX + 1];   /* the lease's holder, last seen */
	int64_t epoch;                                /* the lease's epoch, last seen */
	int64_t expires_at;                           /* its expiry, database clock (Unix s) */
	uint64_t acquired, lost, fenced;              /* counts since the start */
} kd_lease_view_t;

/*
 * Starts the lease thread of environment env, whose store is at store (a URI with a lease),
 * for leases of lease_s seconds. The thread also listens for the leader's new documents
 * (LISTEN) and then writes 1 to the eventfd wake_fd (-1: none). KM_EOK, KM_ENOMEM, store
 * codes (the thread's connection). *ret is freed by kd_lease_stop().
 */
int kd_lease_start(const char *store, const char *env, unsigned lease_s, int wake_fd,
                   kd_lease_t **ret, char *err, size_t errlen);

/* Stops the thread and gives the lease up if this node holds it. Accepts NULL. */
void kd_lease_stop(kd_lease_t *l);

/* Whether this node leads now; then *holder (KM_STORE_LEASE_HOLDER_MAX + 1 bytes) and *epoch
 * are what its writes are fenced with. */
bool kd_lease_leading(kd_lease_t *l, char *holder, int64_t *epoch);

/* A write of this node was refused by the fence: step down at once (and count it). */
void kd_lease_fenced(kd_lease_t *l);

void kd_lease_view(kd_lease_t *l, kd_lease_view_t *ret);
