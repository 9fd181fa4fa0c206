/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to keymgr/store/: the store handle, shared by store.c (key sets, keys, lifecycle)
 * and store_audit.c (the audit chain, JWKS versions, audit keys, checkpoints).
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
	unsigned lock_depth;        /* holds through this handle */
};

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

/* Transaction bookkeeping of queued events (called by store.c around every tx operation). */
void km_store__pending_tx(km_store_t *s, km_store_tx_t op, int result);

/* Appends the genesis event of a new store, or a baseline snapshot of a store that held
 * rows before it had an audit chain (a store migrated from schema v1). */
int km_store__audit_bootstrap(km_store_t *s, char *err, size_t errlen);

/* The via of new handles (km_store_set_default_via). */
const char *km_store__default_via(void);

/* Frees queued events. */
void km_store__pending_free(km_store_t *s);

/* ---- canonical JSON (RFC 8785 subset: objects written with sorted members) ---- */
typedef struct {
	char *buf;
	size_t len, cap;
	bool oom;
	bool first;                 /* no member written yet in the innermost object/array */
} km_jb_t;

void km_jb_init(km_jb_t *b);
void km_jb_free(km_jb_t *b);
/* Raw text, no separator handling. */
void km_jb_raw(km_jb_t *b, const char *s);
/* A JSON string with the canonical escaping. */
void km_jb_str(km_jb_t *b, const char *s);
/* "{" / "}" / "[" / "]". */
void km_jb_open(km_jb_t *b, char c);
void km_jb_close(km_jb_t *b, char c);
/* A member "key": value (with the comma when needed). Callers write keys in sorted order. */
void km_jb_kv_str(km_jb_t *b, const char *key, const char *v);
void km_jb_kv_int(km_jb_t *b, const char *key, int64_t v);
void km_jb_kv_bool(km_jb_t *b, const char *key, bool v);
void km_jb_kv_null(km_jb_t *b, const char *key);
/* Writes "key": and leaves the value to the caller (km_jb_open, ...). */
void km_jb_key(km_jb_t *b, const char *key);
/* An array element separator + string. */
void km_jb_item_str(km_jb_t *b, const char *v);
/* Detaches the text (NUL-terminated); NULL when out of memory. */
char *km_jb_take(km_jb_t *b);
