/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The private table of store backend functions (after Knot DNS keystore/internal.h).
 *
 * store.c validates every argument, runs the lifecycle rules and wraps each public call in a
 * transaction; a backend only moves rows. Backends receive validated input and return KM_*
 * codes with a message in (err, errlen). Conventions every backend follows:
 *   - a violated UNIQUE constraint returns KM_EEXIST, any other constraint
 *     KM_STORE_ECONSTRAINT; a lock wait that timed out KM_STORE_EBUSY;
 *   - query results are arrays allocated with malloc (NULL when empty);
 *   - key_update is a compare-and-set on (state, pending) of `old` and returns KM_ERROR when
 *     the row no longer matches.
 */
#pragma once

#include "keymgr/store/store.h"

typedef enum {
	KM_STORE_TX_BEGIN = 0,     /* write transaction, write lock taken at once */
	KM_STORE_TX_COMMIT,
	KM_STORE_TX_ROLLBACK,
	KM_STORE_TX_SAVEPOINT,     /* nested scope inside an open transaction */
	KM_STORE_TX_RELEASE,
	KM_STORE_TX_ROLLBACK_TO,
} km_store_tx_t;

typedef enum {
	KM_STORE_LEASE_ACQUIRE = 0,
	KM_STORE_LEASE_RENEW,
	KM_STORE_LEASE_READ,
	KM_STORE_LEASE_RELEASE,
} km_store_lease_op_t;

/* A key lookup: the public filter plus exact kid / CKA_ID matches (NULL: any). */
typedef struct {
	km_store_key_filter_t f;
	const char *kid;
	const uint8_t *cka_id;
	size_t cka_id_len;
} km_store_key_query_t;

typedef struct km_store_backend {
	const char *name;
	int (*schema_version)(void);    /* the version this program writes */
	/* Opens or creates the store, migrates it, and checks/records the environment. env NULL:
	 * an existing store of any environment (env_read tells which). */
	int (*open)(const char *path, const char *env, void **ctx, char *err, size_t errlen);
	int (*env_read)(void *ctx, char *out, size_t len, char *err, size_t errlen);
	void (*close)(void *ctx);
	int (*tx)(void *ctx, km_store_tx_t op, char *err, size_t errlen);

	int (*keyset_insert)(void *ctx, const km_store_keyset_t *ks, int64_t *id, char *err,
	                     size_t errlen);
	/* name != NULL: that key set only; otherwise every key set matching f (may be NULL). */
	int (*keyset_query)(void *ctx, const char *name, const km_store_keyset_filter_t *f,
	                    km_store_keyset_t **ret, size_t *count, char *err, size_t errlen);
	/* field is "owner" or "purpose". */
	int (*keyset_update)(void *ctx, int64_t id, const char *field, const char *value,
	                     char *err, size_t errlen);
	int (*change_insert)(void *ctx, int64_t keyset_id, const km_store_change_t *c, char *err,
	                     size_t errlen);
	int (*change_query)(void *ctx, int64_t keyset_id, km_store_change_t **ret, size_t *count,
	                    char *err, size_t errlen);

	/* Inserts k (keyset_id set, kid "" while pending). */
	int (*key_insert)(void *ctx, const km_store_key_t *k, int64_t *id, char *err,
	                  size_t errlen);
	int (*key_query)(void *ctx, const km_store_key_query_t *q, km_store_key_t **ret,
	                 size_t *count, char *err, size_t errlen);
	/* Writes kid, jwk, pending, state, state_at[] and revoke_reason of nk over old. */
	int (*key_update)(void *ctx, const km_store_key_t *old, const km_store_key_t *nk,
	                  char *err, size_t errlen);
	int (*event_insert)(void *ctx, const km_store_event_t *e, char *err, size_t errlen);
	int (*event_query)(void *ctx, int64_t key_id, km_store_event_t **ret, size_t *count,
	                   char *err, size_t errlen);

	/* Increments a named counter and returns its new value. */
	int (*counter_next)(void *ctx, const char *name, uint64_t *ret, char *err, size_t errlen);

	/* A row of the meta table: meta_get writes "" into out when there is none; meta_put
	 * inserts or replaces it. */
	int (*meta_get)(void *ctx, const char *key, char *out, size_t len, char *err,
	                size_t errlen);
	int (*meta_put)(void *ctx, const char *key, const char *value, char *err, size_t errlen);

	/* Schema version the file had when open() found it (0: new file). */
	int (*found_version)(void *ctx);

	/* The audit chain (schema v2). audit_head: *seq 0 and hash "" when empty. */
	int (*audit_insert)(void *ctx, const km_store_audit_event_t *e, char *err, size_t errlen);
	int (*audit_head)(void *ctx, int64_t *seq, char hash[KM_STORE_HASH_HEX + 1], char *err,
	                  size_t errlen);
	int (*audit_query)(void *ctx, const km_store_audit_filter_t *f,
	                   km_store_audit_event_t **ret, size_t *count, char *err, size_t errlen);
	/* latest_only: at most the newest version. */
	int (*jwks_version_insert)(void *ctx, const km_store_jwks_version_t *v, char *err,
	                           size_t errlen);
	int (*jwks_version_query)(void *ctx, bool latest_only, km_store_jwks_version_t **ret,
	                          size_t *count, char *err, size_t errlen);
	/* Inserts k as the active audit key and marks every other one inactive. */
	int (*audit_key_insert)(void *ctx, const km_store_audit_key_t *k, int64_t *id, char *err,
	                        size_t errlen);
	int (*audit_key_query)(void *ctx, km_store_audit_key_t **ret, size_t *count, char *err,
	                       size_t errlen);
	int (*checkpoint_insert)(void *ctx, const km_store_checkpoint_t *c, char *err,
	                         size_t errlen);
	int (*checkpoint_query)(void *ctx, km_store_checkpoint_t **ret, size_t *count, char *err,
	                        size_t errlen);

	/*
	 * The change lock as a row in the store, for backends without a lock file (NULL when the
	 * backend has none: store_lock.c then uses flock). lock_take takes the lock when it is
	 * free, expired, or held by `stale` at epoch stale_epoch (a holder found dead; NULL:
	 * none), for ttl_s seconds of the database's clock, recording holder; *epoch gets the
	 * new epoch, or 0 with the current holder and its epoch in cur / *cur_epoch. While held,
	 * every write transaction of the handle first checks holder and epoch and extends the
	 * expiry, and fails with KM_STORE_EBUSY when the lock was lost. lock_release frees it
	 * (when still held at epoch).
	 */
	int (*lock_take)(void *ctx, const char *holder, const char *stale, int64_t stale_epoch,
	                 int ttl_s, int64_t *epoch, char *cur, size_t curlen, int64_t *cur_epoch,
	                 char *err, size_t errlen);
	int (*lock_release)(void *ctx, int64_t epoch, char *err, size_t errlen);

	/* The leader lease (store.h; NULL when the backend has none). op: acquire, renew, read,
	 * release. fence: holder NULL clears it. */
	int (*lease)(void *ctx, km_store_lease_op_t op, const char *holder, int64_t epoch,
	             int ttl_ms, km_store_lease_t *ret, char *err, size_t errlen);
	void (*fence)(void *ctx, const char *holder, int64_t epoch);

	/* The served documents (store.h; NULL when the backend has none). docs_put runs inside
	 * the caller's transaction scope. */
	int (*docs_put)(void *ctx, const km_store_doc_t *d, char *err, size_t errlen);
	int (*docs_get)(void *ctx, uint64_t newer_than, km_store_doc_t **ret, size_t *n,
	                char *err, size_t errlen);
	int (*docs_listen)(void *ctx, int *fd, char *err, size_t errlen);
	bool (*docs_notified)(void *ctx);

	/* The verifiers' pickup records (store.h; NULL when the backend has none). pickup_put
	 * runs inside the caller's transaction scope. */
	int (*pickup_put)(void *ctx, const km_store_pickup_t *p, char *err, size_t errlen);
	int (*pickup_get)(void *ctx, const char *path, km_store_pickup_t **ret, size_t *n,
	                  char *err, size_t errlen);
} km_store_backend_t;

extern const km_store_backend_t km_store_backend_sqlite;
extern const km_store_backend_t km_store_backend_pg;       /* store_pg.c */

/* Whether the schema named by uri holds a keymgr store (true when it cannot be asked). */
bool km_store_pg_exists(const char *uri);
