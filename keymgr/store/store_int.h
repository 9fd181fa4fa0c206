/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to keymgr/store/: the store handle and the helpers its files share.
 *   store.c                  opening, transactions, key sets, keys, lifecycle
 *   store_lock.c             the environment's change lock (change_lock.h): a flock, or a
 *                            row of the store (backends with lock_take)
 *   store_audit_context.c    who acts through a handle, under which policy
 *   store_audit_queue.c      events of the open transaction, handed to the sink at COMMIT
 *   store_audit_chain.c      the chain's links: canonical event, hash, append, read back
 *   store_audit_records.c    JWKS versions, audit keys, checkpoints
 *   store_audit_genesis.c    the chain's first link (store.create / store.baseline)
 *   store_copy.c             a whole store into a new one, another backend's (store copy)
 *   store_lease.c            the leader lease and the fence of a handle (PostgreSQL)
 *   store_docs.c             the served JWKS documents of a shared store (PostgreSQL)
 *   store_token.c            facts learned about a token (rows of the meta table)
 * and behind store_backend.h the backends (store_sqlite.c), which never see the handle.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/store/store.h"
#include "keymgr/store/store_backend.h"

struct km_store {
	const km_store_backend_t *be;
	void *ctx;
	char env[KM_ENV_NAME_MAX + 1];
	bool in_tx;                 /* the caller opened a transaction with km_store_begin() */

	/* Audit context: who acts through this handle, under which policy. */
	km_store_actor_t actor;
	char policy_hash[KM_STORE_HASH_HEX + 1];
	char *policy_text;          /* canonical JSON object, or NULL */
	/* Events appended in the open transaction, handed to the sink after COMMIT. */
	km_store_audit_event_t *pending;
	size_t n_pending, cap_pending;
	size_t savepoint_mark;      /* n_pending when the current savepoint was opened */
	km_store_audit_sink_fn sink;
	void *sink_ctx;

	/* The environment's change lock (change_lock.h, store_lock.c). */
	char *lock_path;            /* STORE.lock */
	int lock_fd;                /* open (and flock'ed) while held, else -1 */
	int64_t lock_epoch;         /* the lock row's epoch while held (lock_take backends) */
	unsigned lock_depth;        /* holds through this handle */

	/* What renders the served documents inside a change's transaction (store_docs.c). */
	km_store_docs_render_fn docs_render;
	void *docs_render_ctx;
};

/* The backend of a store location: PostgreSQL for a postgresql:// URI, else SQLite. */
const km_store_backend_t *km_store__backend_for(const char *path);

/* km_store_open(), with the new store's first audit event only when bootstrap (a store
 * copy's destination receives the source's chain instead). */
int km_store__open(const char *path, const char *env_name, bool bootstrap, km_store_t **ret,
                   char *err, size_t errlen);

/* Releases the change lock however often it is held (km_store_free). */
void km_store__change_lock_close(km_store_t *s);

/* Opens the scope of one public call: a savepoint inside the caller's transaction, or a write
 * transaction of its own. */
int km_store__op_enter(km_store_t *s, char *err, size_t errlen);

/* Closes it: keeps the work when r is KM_EOK, undoes it otherwise. Returns r or the commit
 * failure. */
int km_store__op_leave(km_store_t *s, int r, char *err, size_t errlen);

/*
 * Appends one audit event inside the current transaction scope (the caller has called
 * op_enter()): reads the chain head, computes the hash, inserts the row and queues the event
 * for the sink. before/after are canonical JSON texts or NULL/"" for none. Store codes.
 */
int km_store__audit_emit(km_store_t *s, const char *action, const char *keyset,
                         const char *kid, const char *before, const char *after,
                         const char *reason, int64_t at, char *err, size_t errlen);

/*
 * Records a new JWKS version when the environment's published kid set differs from the last
 * recorded one (force: always), with its audit event. Inside a transaction scope.
 * *serial (may be NULL) receives the current serial.
 */
int km_store__jwks_track(km_store_t *s, int64_t at, bool force, uint64_t *serial, char *err,
                         size_t errlen);

/* The keys the environment's JWKS lists now (km_store_jwks_filter(NULL)), in key order.
 * *ret: free(). Store codes. */
int km_store__jwks_keys(km_store_t *s, km_store_key_t **ret, size_t *n, char *err,
                        size_t errlen);

/*
 * Inside a transaction scope: renders the served documents from the scope's rows (keys: the
 * JWKS keys the caller read in it, km_store__jwks_keys) and writes those whose bytes or
 * max-age differ from the store's under serial (store_docs.c). Nothing (KM_EOK) when the
 * backend has no documents, no renderer is set, or serial is 0; a renderer's failure leaves
 * the documents as they were (KM_EOK too). *written (may be NULL): how many were written.
 * Store codes.
 */
int km_store__docs_write(km_store_t *s, uint64_t serial, const km_store_key_t *keys,
                         size_t nkeys, size_t *written, char *err, size_t errlen);

/* Transaction bookkeeping of queued events (called by store.c around every tx operation). */
void km_store__pending_tx(km_store_t *s, km_store_tx_t op, int result);

/* Appends the genesis event of a new store, or a baseline snapshot of a store that held
 * rows before it had an audit chain (a store migrated from schema v1). */
int km_store__audit_bootstrap(km_store_t *s, char *err, size_t errlen);

/* The via of new handles (km_store_set_default_via). */
const char *km_store__default_via(void);

/* Frees queued events. */
void km_store__pending_free(km_store_t *s);

/* Queues a copy of e (appended in the open transaction) for the sink; nothing when the handle
 * has no sink. KM_EOK or KM_ENOMEM. */
int km_store__pending_push(km_store_t *s, const km_store_audit_event_t *e);

/* Frees an event's before/after texts (and sets them to NULL). */
void km_store__event_clear(km_store_audit_event_t *e);

/* Frees the policy text set by km_store_set_policy() (km_store_free). */
void km_store__audit_context_free(km_store_t *s);

/* Writes the message into err (when given) and returns code. */
__attribute__((format(printf, 4, 5)))
int km_store__fail(char *err, size_t errlen, int code, const char *fmt, ...);

/* Free text (descriptions, reasons, who, token fields): no control characters, at most max
 * bytes; NULL and "" only when allow_empty. */
bool km_store__text_ok(const char *s, size_t max, bool allow_empty);

/* The lowercase hex of a CKA_ID (of its first KM_STORE_CKA_ID_MAX bytes at most), as events
 * record it. */
void km_store__cka_hex(const uint8_t *id, size_t len, char out[2 * KM_STORE_CKA_ID_MAX + 1]);
