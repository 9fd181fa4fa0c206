/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-environment store: key sets, keys, their lifecycle and history.
 *
 * One store holds exactly one environment; the environment name is written into the store
 * when it is created, and opening it as another environment fails (the environment wall).
 * The interface is backend-neutral: no database types appear here. SQLite is the embedded
 * backend (store_sqlite.c); see docs/store.md for the schema, the migration policy, the
 * transaction rules and the crash-safe ordering of token work and store work.
 *
 * Every function that changes more than one row runs in one transaction. When the caller has
 * opened a transaction with km_store_begin(), the change joins it (as a savepoint, so a failed
 * call leaves nothing behind); otherwise the call runs in its own write transaction.
 *
 * Times are seconds since the Unix epoch; KM_STORE_TIME_NONE means "never".
 * Error messages are written into (err, errlen) when err is not NULL.
 * A km_store_t is used by one thread at a time and never across fork(); open one per
 * process (or per thread). Several processes may open the same store at once.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/alg.h"
#include "keymgr/common/lifecycle.h"
#include "keymgr/common/name.h"

#define KM_STORE_TIME_NONE INT64_C(-1)
#define KM_STORE_DESC_MAX 255
#define KM_STORE_TEXT_MAX 255          /* reasons */
#define KM_STORE_WHO_MAX 128
#define KM_STORE_LABELS_MAX 16
#define KM_STORE_LABEL_MAX 319         /* "k=v": 63 + 1 + 255 */
#define KM_STORE_TOKEN_LABEL_MAX 32
#define KM_STORE_TOKEN_SERIAL_MAX 16
#define KM_STORE_CKA_ID_MAX 64
#define KM_STORE_JWK_MAX 2047          /* public JWK JSON text (RSA-4096 needs ~750) */
#define KM_STORE_BUSY_TIMEOUT_MS 5000

/* Bit of a state in a km_store_key_filter_t.states mask. */
#define KM_STORE_STATE_BIT(s) (1u << (s))

typedef struct km_store km_store_t;

typedef struct {
	int64_t id;                                   /* store-assigned */
	char env[KM_ENV_NAME_MAX + 1];
	char name[KM_KEYSET_NAME_MAX + 1];
	km_alg_t alg;
	unsigned rsa_bits;                            /* RSA only, else 0 */
	char owner[KM_OWNER_MAX + 1];
	char purpose[KM_PURPOSE_MAX + 1];
	char description[KM_STORE_DESC_MAX + 1];
	char labels[KM_STORE_LABELS_MAX][KM_STORE_LABEL_MAX + 1]; /* "k=v", sorted by k */
	size_t n_labels;
	int64_t created_at;
	char created_by[KM_STORE_WHO_MAX + 1];
} km_store_keyset_t;

/* NULL members match anything. label is one "k=v" the key set must carry. */
typedef struct {
	const char *owner;
	const char *purpose;
	const char *label;
} km_store_keyset_filter_t;

/* One owner or purpose change of a key set. */
typedef struct {
	int64_t id;
	char keyset[KM_KEYSET_NAME_MAX + 1];
	char field[16];                               /* "owner" or "purpose" */
	char old_value[KM_OWNER_MAX + 1];
	char new_value[KM_OWNER_MAX + 1];
	char who[KM_STORE_WHO_MAX + 1];
	int64_t at;
	char reason[KM_STORE_TEXT_MAX + 1];
} km_store_change_t;

typedef struct {
	int64_t id;                                   /* store-assigned */
	char kid[KM_KID_MAX + 1];                     /* "" while pending (or abandoned) */
	int64_t keyset_id;
	char keyset[KM_KEYSET_NAME_MAX + 1];
	km_alg_t alg;
	unsigned rsa_bits;
	char token_label[KM_STORE_TOKEN_LABEL_MAX + 1];
	char token_serial[KM_STORE_TOKEN_SERIAL_MAX + 1];
	uint8_t cka_id[KM_STORE_CKA_ID_MAX];
	size_t cka_id_len;
	char owner[KM_OWNER_MAX + 1];                 /* at creation */
	char purpose[KM_PURPOSE_MAX + 1];             /* at creation */
	km_state_t state;
	bool pending;                                 /* intent recorded, token work unconfirmed */
	int64_t state_at[KM_STATE_COUNT];             /* when each state was entered, or NONE */
	char revoke_reason[KM_STORE_TEXT_MAX + 1];
	char jwk[KM_STORE_JWK_MAX + 1];               /* public JWK JSON, "" while pending */
	/* A requested rotation made this published key the successor: it activates at this
	 * time (km_store_key_schedule). NONE when no rotation was requested for it. */
	int64_t activate_at;
} km_store_key_t;

typedef enum {
	KM_STORE_PENDING_ANY = 0,
	KM_STORE_PENDING_ONLY,                        /* intents not yet confirmed */
	KM_STORE_PENDING_NONE,                        /* confirmed (and abandoned) rows */
} km_store_pending_t;

/* Zero-initialised means "every key". */
typedef struct {
	const char *keyset;                           /* key set name */
	unsigned states;                              /* KM_STORE_STATE_BIT() mask; 0 = any */
	const char *owner;
	const char *purpose;
	km_store_pending_t pending;
} km_store_key_filter_t;

/* One entry of a key's history: intent, confirm, abandon or a state transition. */
typedef struct {
	int64_t id;
	int64_t key_id;
	char kid[KM_KID_MAX + 1];
	char what[16];                                /* "intent" "confirm" "abandon" "transition" */
	km_state_t from;
	km_state_t to;
	int64_t at;
	char reason[KM_STORE_TEXT_MAX + 1];
} km_store_event_t;

/* The schema version this program writes (PRAGMA user_version for SQLite). */
int km_store_schema_version(void);

/*
 * Opens the store at path for environment env_name, creating it (mode 0600, whatever the
 * umask) and bringing its schema up to date. Refuses a store whose schema is newer than this
 * program (KM_STORE_ESCHEMA, message gives both versions, file untouched), a store of another
 * environment (KM_EWRONGENV), a file writable by group or others (KM_EACCES), a symlink or a
 * file that is not a keymgr store (KM_STORE_EOPEN). Also KM_ENAME, KM_STORE_EBUSY,
 * KM_STORE_EIO, KM_ENOMEM. *ret is owned by the caller: km_store_free().
 */
int km_store_open(const char *path, const char *env_name, km_store_t **ret, char *err,
                  size_t errlen);

/*
 * Whether a store exists at path without creating one: the SQLite file exists, or the
 * PostgreSQL schema holds a store (this connects to the database; an unreachable database
 * counts as existing, so that opening it reports why).
 */
bool km_store_exists(const char *path);

/* ---- the leader lease (docs/ha.md) ----
 *
 * Several keymgrd nodes on one PostgreSQL store elect one rotator per environment with a
 * lease row timed by the database's clock only: taken when free or expired (epoch + 1, the
 * fencing token), renewed by its holder, lost when not renewed in time. A backend without
 * one (SQLite: one node) answers KM_ENOTSUP.
 */
#define KM_STORE_LEASE_HOLDER_MAX 127

typedef struct {
	char holder[KM_STORE_LEASE_HOLDER_MAX + 1];   /* "" when nobody ever held it */
	int64_t epoch;
	bool held;                  /* by the holder asked about (acquire, renew), and not expired */
	int64_t expires_in_ms;      /* time left by the database's clock (<= 0: expired) */
	int64_t expires_at;         /* the expiry, database clock, Unix seconds (0: none) */
} km_store_lease_t;

/* Whether the store's backend has a leader lease (PostgreSQL). */
bool km_store_has_lease(const km_store_t *s);

/*
 * Takes the lease for holder for ttl_ms when it is free or expired. *ret tells the outcome:
 * held and the new epoch, or the current holder, epoch and expiry. KM_ENOTSUP, store codes.
 */
int km_store_lease_acquire(km_store_t *s, const char *holder, int ttl_ms, km_store_lease_t *ret,
                           char *err, size_t errlen);

/* Extends the lease held by holder at epoch to ttl_ms from now (database clock).
 * KM_STORE_EFENCED when it is no longer held so (expired, or taken by another). */
int km_store_lease_renew(km_store_t *s, const char *holder, int64_t epoch, int ttl_ms,
                         km_store_lease_t *ret, char *err, size_t errlen);

/* Reads the lease (held: not expired). */
int km_store_lease_read(km_store_t *s, km_store_lease_t *ret, char *err, size_t errlen);

/* Gives the lease up at once (clean stop), if still held by holder at epoch. */
int km_store_lease_release(km_store_t *s, const char *holder, int64_t epoch, char *err,
                           size_t errlen);

/*
 * Fences every later write transaction of s: each first checks, under a row lock, that the
 * lease is held by holder at epoch and not expired, and fails with KM_STORE_EFENCED (writing
 * nothing) otherwise. holder NULL: no fence. No effect on backends without a lease.
 */
void km_store_set_fence(km_store_t *s, const char *holder, int64_t epoch);

/* ---- the served JWKS documents (docs/ha.md) ----
 *
 * On a store shared by several keymgrd nodes (PostgreSQL) the store holds the documents
 * every node serves, byte for byte. They are rendered and written INSIDE the transaction of
 * the change that alters them (a key entering or leaving the JWKS, by keymgrd or by the CLI),
 * under that change's JWKS serial, so that no committed change exists whose documents are
 * not in the store too. A backend without them (SQLite: one node) answers KM_ENOTSUP.
 */
typedef struct {
	char path[256];             /* the HTTP path it is served at */
	uint64_t serial;
	unsigned max_age;
	char *body;                 /* owned (km_store_docs_free) */
	size_t len;
} km_store_doc_t;

bool km_store_has_docs(const km_store_t *s);

/*
 * Renders an environment's documents from the rows of the transaction that writes them:
 * sets, every key set of the store (by name); keys, the keys a JWKS lists (published, active,
 * retired; confirmed), in the store's key order. *ret (n documents) receives each document's
 * path, body (malloc'd, km_store_docs_free) and max_age; the store sets the serial. KM_EOK,
 * or a code with err set: the store then leaves its documents as they were and the change
 * goes on (a damaged row must not block a revocation; the leader's publisher reports it).
 */
typedef int (*km_store_docs_render_fn)(void *ctx, const km_store_keyset_t *sets, size_t nsets,
                                       const km_store_key_t *keys, size_t nkeys,
                                       km_store_doc_t **ret, size_t *n, char *err,
                                       size_t errlen);

/* What renders s's documents inside its transactions (core/env.c installs the environment's
 * own: its http.path, its policies' max-age). NULL: none are written (a store opened without
 * a configuration, as `keymgr store copy` does). No effect on backends without documents. */
void km_store_set_docs_renderer(km_store_t *s, km_store_docs_render_fn fn, void *ctx);

/*
 * Renders the documents again in one transaction (fenced when a fence is set) and writes
 * those whose bytes or max-age differ from the store's, under the latest JWKS serial: what
 * a change's transaction cannot know (a new leader's first pass, a reload that changed a
 * max-age). *ret_written (may be NULL): how many were written. KM_ENOTSUP (no documents, or
 * no renderer), store codes, the renderer's.
 */
int km_store_docs_sync(km_store_t *s, size_t *ret_written, char *err, size_t errlen);

/* The documents whose serial is above newer_than (0: all). *ret: km_store_docs_free(). */
int km_store_docs_get(km_store_t *s, uint64_t newer_than, km_store_doc_t **ret, size_t *n,
                      char *err, size_t errlen);

void km_store_docs_free(km_store_doc_t *docs, size_t n);

/* Subscribes s's connection to notices of new documents; *fd (its socket) becomes readable
 * when one may have arrived. Called again after a reconnection. */
int km_store_docs_listen(km_store_t *s, int *fd, char *err, size_t errlen);

/* Consumes what arrived on s's connection: true when a notice of new documents was in it. */
bool km_store_docs_notified(km_store_t *s);

/* ---- the verifiers' pickup records (docs/ha.md) ----
 *
 * On a store shared by several keymgrd nodes (PostgreSQL) every node records the serial each
 * named verifier (Keymgr-Verifier) fetched at each path, so the leader's activation gate
 * (activate_when_seen_by) sees the fetches every node served. A backend without them
 * (SQLite: one node) answers KM_ENOTSUP.
 */
#define KM_STORE_VERIFIER_MAX 64
typedef struct {
	char path[256];                          /* the HTTP path fetched */
	char verifier[KM_STORE_VERIFIER_MAX + 1]; /* its Keymgr-Verifier name */
	int64_t serial;                          /* the newest serial it fetched there */
} km_store_pickup_t;

bool km_store_has_pickups(const km_store_t *s);

/* Records rows in one transaction, each keeping the larger of its stored and its new serial. */
int km_store_pickups_put(km_store_t *s, const km_store_pickup_t *rows, size_t n, char *err,
                         size_t errlen);

/* The rows recorded for path (any node). *ret: free(). */
int km_store_pickups_get(km_store_t *s, const char *path, km_store_pickup_t **ret, size_t *n,
                         char *err, size_t errlen);

/* What km_store_copy() copied. */
typedef struct {
	char env[KM_ENV_NAME_MAX + 1];
	size_t keysets, keys, key_events, audit_events, jwks_versions, audit_keys, checkpoints;
	int64_t head_seq;                             /* the audit chain's head, as in the source */
	char head_hash[64 + 1];
} km_store_copy_stats_t;

/*
 * Copies the whole store at `from` (a file or a postgresql:// URI, of any environment) into a
 * new store at `to`, of either backend: key sets and their history, keys and their history,
 * counters, and the audit chain event for event (sequence numbers, actors, hashes), JWKS
 * versions, audit keys and checkpoints, so that `keymgr audit verify` passes on the copy.
 * The source's change lock is held and its rows read in one transaction; the destination is
 * written in one transaction, so a failed copy leaves it empty. Refuses a destination that
 * holds anything (KM_EEXIST), a source that is no store (KM_STORE_EOPEN, KM_ENOENT), and a
 * destination of another environment (KM_EWRONGENV). *ret (may be NULL) says what was copied.
 */
int km_store_copy(const char *from, const char *to, km_store_copy_stats_t *ret, char *err,
                  size_t errlen);

/* Closes the store (rolling back an open transaction). Accepts NULL. */
void km_store_free(km_store_t *s);

/* The environment the store belongs to. Owned by s. */
const char *km_store_env(const km_store_t *s);

/*
 * Starts a write transaction (BEGIN IMMEDIATE: the write lock is taken now, so a
 * read-modify-write inside it cannot lose an update). Waits up to KM_STORE_BUSY_TIMEOUT_MS for
 * another writer, then KM_STORE_EBUSY. KM_EINVAL if a transaction is already open.
 */
int km_store_begin(km_store_t *s, char *err, size_t errlen);

/* Commits the open transaction; on failure it is rolled back. KM_EINVAL if none is open. */
int km_store_commit(km_store_t *s, char *err, size_t errlen);

/* Rolls back the open transaction. KM_EINVAL if none is open. */
int km_store_rollback(km_store_t *s, char *err, size_t errlen);

/*
 * Creates a key set from ks (id is ignored; env must be the store's or empty). Validates every
 * field. Writes the new id into *id_out (may be NULL). KM_EEXIST for a duplicate name,
 * KM_EWRONGENV, KM_ENAME, KM_EALG, KM_EKEYSIZE, KM_EOWNER, KM_EPURPOSE, KM_EINVAL, store codes.
 */
int km_store_keyset_create(km_store_t *s, const km_store_keyset_t *ks, int64_t *id_out,
                           char *err, size_t errlen);

/* Reads a key set by name into *ret. KM_ENOENT if there is none. */
int km_store_keyset_get(km_store_t *s, const char *name, km_store_keyset_t *ret, char *err,
                        size_t errlen);

/*
 * Lists key sets matching f (NULL: all), ordered by name. *ret (may be NULL when *count is 0)
 * is owned by the caller: km_store_keysets_free().
 */
int km_store_keyset_list(km_store_t *s, const km_store_keyset_filter_t *f,
                         km_store_keyset_t **ret, size_t *count, char *err, size_t errlen);

void km_store_keysets_free(km_store_keyset_t *list);

/*
 * Changes a key set's owner (or purpose) and records a history row (who, at, old, new,
 * reason; reason may be NULL) in the same transaction. Setting the current value changes
 * nothing and returns KM_EOK. KM_ENOENT, KM_EOWNER / KM_EPURPOSE, KM_EINVAL, store codes.
 */
int km_store_keyset_set_owner(km_store_t *s, const char *name, const char *owner,
                              const char *who, int64_t at, const char *reason, char *err,
                              size_t errlen);
int km_store_keyset_set_purpose(km_store_t *s, const char *name, const char *purpose,
                                const char *who, int64_t at, const char *reason, char *err,
                                size_t errlen);

/* The owner/purpose history of a key set, oldest first. Free with km_store_changes_free(). */
int km_store_keyset_changes(km_store_t *s, const char *name, km_store_change_t **ret,
                            size_t *count, char *err, size_t errlen);

void km_store_changes_free(km_store_change_t *list);

/*
 * Step 1 of key creation: records the intent to create a key BEFORE the token creates it.
 * From k, reads: keyset, cka_id/cka_id_len, token_label, token_serial, alg (KM_ALG_NONE: the
 * key set's; anything else must equal it), rsa_bits (0: the key set's), owner and purpose
 * ("": the key set's), state_at[KM_STATE_GENERATED] (required). The row is 'generated' and
 * pending, with no kid. Writes the row id into *id_out (may be NULL).
 * KM_ENOENT (no such key set), KM_EEXIST (CKA_ID already recorded), KM_EALG, KM_EKEYSIZE,
 * KM_EINVAL, store codes.
 */
int km_store_key_intent(km_store_t *s, const km_store_key_t *k, int64_t *id_out, char *err,
                        size_t errlen);

/*
 * Step 2: the token created the key. Sets kid and the public JWK JSON on the pending row with
 * this CKA_ID and clears pending. KM_ENOENT (no such row), KM_EINVAL (row not pending, bad kid
 * or JWK), KM_EEXIST (kid already used in this store), store codes.
 */
int km_store_key_confirm(km_store_t *s, const uint8_t *cka_id, size_t cka_id_len,
                         const char *kid, const char *jwk, int64_t at, char *err,
                         size_t errlen);

/*
 * The token failed to create the key: the pending row becomes 'revoked' with the reason, is
 * no longer pending and is kept. (Reconciliation may still find and destroy a token object
 * with this CKA_ID.) KM_ENOENT, KM_EINVAL (not pending, no reason), store codes.
 */
int km_store_key_abandon(km_store_t *s, const uint8_t *cka_id, size_t cka_id_len, int64_t at,
                         const char *reason, char *err, size_t errlen);

/*
 * The one way a key changes state. Validates from -> to with the lifecycle table
 * (KM_ETRANSITION, with its message), keeps at most one active key per key set (KM_EACTIVE),
 * requires a reason for 'revoked' (KM_EINVAL), refuses pending keys (KM_EINVAL), and records
 * the time the state was entered plus a history event. A refused transition changes nothing.
 * KM_ENOENT for an unknown kid, store codes.
 */
int km_store_key_transition(km_store_t *s, const char *kid, km_state_t to, int64_t at,
                            const char *reason, char *err, size_t errlen);

/*
 * Records a requested rotation: published key kid becomes the successor and activates at
 * activate_at (> 0), when `keymgr apply` or keymgrd runs at or after that time. Appends a
 * key.schedule audit event (before/after: the key's activate_at) with reason (may be NULL),
 * at time `at`. KM_ENOENT, KM_EINVAL (not published, pending, bad time), store codes.
 */
int km_store_key_schedule(km_store_t *s, const char *kid, int64_t activate_at, int64_t at,
                          const char *reason, char *err, size_t errlen);

/* Reads the key with this kid into *ret. KM_ENOENT if there is none. */
int km_store_key_get(km_store_t *s, const char *kid, km_store_key_t *ret, char *err,
                     size_t errlen);

/* Reads the key with this CKA_ID into *ret (pending rows included). KM_ENOENT. */
int km_store_key_get_by_cka_id(km_store_t *s, const uint8_t *cka_id, size_t cka_id_len,
                               km_store_key_t *ret, char *err, size_t errlen);

/* Reads the active key of a key set into *ret. KM_ENOACTIVE if it has none, KM_ENOENT. */
int km_store_key_active(km_store_t *s, const char *keyset, km_store_key_t *ret, char *err,
                        size_t errlen);

/* The filter of the keys a JWKS lists (states km_state_in_jwks(), confirmed), of keyset
 * (NULL: of every key set). */
km_store_key_filter_t km_store_jwks_filter(const char *keyset);

/*
 * Lists keys matching f (NULL: all), oldest first. *ret (may be NULL when *count is 0) is
 * owned by the caller: km_store_keys_free().
 */
int km_store_keys_query(km_store_t *s, const km_store_key_filter_t *f, km_store_key_t **ret,
                        size_t *count, char *err, size_t errlen);

void km_store_keys_free(km_store_key_t *list);

/*
 * Sets *ret to whether any key in this store (any state) has this kid. Callers enforce
 * uniqueness across environments by asking every other environment's store too.
 */
int km_store_kid_exists(km_store_t *s, const char *kid, bool *ret, char *err, size_t errlen);

/* A key's history, oldest first. Free with km_store_events_free(). KM_ENOENT. */
int km_store_key_events(km_store_t *s, const char *kid, km_store_event_t **ret, size_t *count,
                        char *err, size_t errlen);

void km_store_events_free(km_store_event_t *list);

/*
 * Increments the store's JWKS serial and writes the new value (1, 2, ...) into *ret, recording
 * the currently published kid set as a new JWKS version (with its jwks.publish event). The
 * serial also advances by itself whenever a transition changes the published kid set.
 */
int km_store_jwks_serial_next(km_store_t *s, uint64_t *ret, char *err, size_t errlen);

/* ---- audit trail (docs/auditor-guide.md) ----
 *
 * Every function above that changes something appends exactly one event to the store's
 * append-only audit chain, in the same transaction as the change:
 *   keyset.create, keyset.owner, keyset.purpose,
 *   key.intent, key.confirm, key.abandon, key.transition, key.schedule,
 *   jwks.publish (whenever the set of published kids changes, and on km_store_jwks_serial_next),
 *   audit.key.create (km_store_audit_key_add), store.create / store.baseline (first open),
 *   policy.load (before the first change under a new policy, see km_store_set_policy),
 * plus the events callers add with km_store_audit_append() (sign.denied, config.reload, ...). Each event is hashed into the chain:
 *   hash = SHA-256(prev_hash (32 bytes) || canonical event), prev_hash of seq 1 = 32 zero bytes,
 * where the canonical event is the RFC 8785 (JCS) serialization of
 *   {"action","actor":{"host","pid","uid","user","via"},"after","at","before","env","keyset",
 *    "kid","policy_hash","reason","seq","v":1}
 * (before/after are strings holding canonical JSON text, "" for none).
 */
#define KM_STORE_HASH_HEX 64
#define KM_STORE_ACTOR_USER_MAX 64
#define KM_STORE_ACTOR_HOST_MAX 64
#define KM_STORE_ACTOR_VIA_MAX 16
#define KM_STORE_ACTION_MAX 32
#define KM_STORE_SIG_MAX 1024          /* base64url signature text */

/* Who changes the store through a handle. */
typedef struct {
	char user[KM_STORE_ACTOR_USER_MAX + 1];       /* Unix user name ("" unknown) */
	int64_t uid;                                  /* Unix uid (SO_PEERCRED for daemon requests) */
	char host[KM_STORE_ACTOR_HOST_MAX + 1];
	char via[KM_STORE_ACTOR_VIA_MAX + 1];         /* cli apply daemon signing process */
	int64_t pid;                                  /* acting process (peer pid for the daemon) */
} km_store_actor_t;

/* One event of the audit chain. */
typedef struct {
	int64_t seq;                                  /* 1, 2, ... */
	int64_t at;
	km_store_actor_t actor;
	char action[KM_STORE_ACTION_MAX + 1];
	char keyset[KM_KEYSET_NAME_MAX + 1];          /* "" when none */
	char kid[KM_KID_MAX + 1];                     /* "" when none */
	char *before;                                 /* canonical JSON text or ""; owned by the list */
	char *after;
	char reason[KM_STORE_TEXT_MAX + 1];
	char policy_hash[KM_STORE_HASH_HEX + 1];      /* hex, "" when unknown */
	char prev_hash[KM_STORE_HASH_HEX + 1];        /* hex */
	char hash[KM_STORE_HASH_HEX + 1];             /* hex */
} km_store_audit_event_t;

/* Zero-initialised means "every event". */
typedef struct {
	int64_t from_seq;                             /* 0: from the first */
	int64_t to_seq;                               /* 0: to the last */
	int64_t since;                                /* at >= since (0: unbounded) */
	int64_t until;                                /* at <= until (0: unbounded) */
	const char *keyset;
	const char *kid;
	const char *action;
} km_store_audit_filter_t;

/* One recorded version of the environment's JWKS. */
typedef struct {
	uint64_t serial;
	int64_t at;
	int64_t event_seq;                            /* its jwks.publish audit event */
	char *kids;                                   /* JSON array of kids in JWKS order; owned */
} km_store_jwks_version_t;

/* A dedicated audit (checkpoint-signing) key; never part of a key set or a JWKS. */
typedef struct {
	int64_t id;
	char kid[KM_KID_MAX + 1];                     /* RFC 7638 thumbprint of jwk */
	km_alg_t alg;
	char token_label[KM_STORE_TOKEN_LABEL_MAX + 1];
	char token_serial[KM_STORE_TOKEN_SERIAL_MAX + 1];
	uint8_t cka_id[KM_STORE_CKA_ID_MAX];
	size_t cka_id_len;
	char jwk[KM_STORE_JWK_MAX + 1];               /* public JWK JSON */
	int64_t created_at;
	bool active;
} km_store_audit_key_t;

/* A signed chain head. */
typedef struct {
	int64_t id;
	int64_t seq;
	char hash[KM_STORE_HASH_HEX + 1];
	int64_t at;
	char key_kid[KM_KID_MAX + 1];                 /* the audit key that signed */
	char signature[KM_STORE_SIG_MAX + 1];         /* base64url */
} km_store_checkpoint_t;

/* Called after COMMIT for every event the transaction appended (streaming to a SIEM). */
typedef void (*km_store_audit_sink_fn)(void *ctx, const char *env,
                                       const km_store_audit_event_t *e);

/* Fills a with the calling process's identity (getuid, user name, host name, pid). */
void km_store_actor_self(km_store_actor_t *a, const char *via);

/*
 * Sets who acts through s from now on (copied; text fields are truncated to their limits and
 * control characters replaced by '?'). A new handle acts as km_store_actor_self("process").
 */
void km_store_set_actor(km_store_t *s, const km_store_actor_t *a);

/* The actor currently set on s. */
const km_store_actor_t *km_store_actor(const km_store_t *s);

/*
 * Sets the policy in force for changes made through s: its hash (hex SHA-256, recorded in
 * every later event) and its canonical JSON text (an object). The first change made under a
 * policy whose hash differs from the chain head's is preceded, in the same transaction, by a
 * policy.load event carrying {"policy": text, "policy_hash": hex}. NULL/"" clears it.
 * KM_EINVAL (hash not 64 hex digits, text not an object), KM_ENOMEM.
 */
int km_store_set_policy(km_store_t *s, const char *hex, const char *text);

/* Makes every handle opened later in this process act with this "via" by default
 * ("cli" for the command line, "daemon" for keymgrd). */
void km_store_set_default_via(const char *via);

/* Installs the streaming sink (NULL: none). */
void km_store_set_audit_sink(km_store_t *s, km_store_audit_sink_fn fn, void *ctx);

/*
 * Appends an event that has no other row (policy.load, sign.denied, config.reload, ...).
 * action: 1 to KM_STORE_ACTION_MAX characters of [a-z0-9.-]; the store's own actions
 * (keyset.*, key.*, jwks.*, audit.key.*, store.*) are refused (KM_EINVAL). keyset, kid and
 * reason may be NULL; before/after are JSON texts (objects) or NULL. *seq (may be NULL) gets
 * the event's sequence number. KM_EINVAL, store codes.
 */
int km_store_audit_append(km_store_t *s, const char *action, const char *keyset,
                          const char *kid, const char *before, const char *after,
                          const char *reason, int64_t at, int64_t *seq, char *err,
                          size_t errlen);

/*
 * Events matching f (NULL: all), in sequence order, read as stored (no checking: that is
 * keymgr/audit's job). Free with km_store_audit_events_free(list, count).
 */
int km_store_audit_query(km_store_t *s, const km_store_audit_filter_t *f,
                         km_store_audit_event_t **ret, size_t *count, char *err,
                         size_t errlen);

void km_store_audit_events_free(km_store_audit_event_t *list, size_t count);

/* The chain head: last sequence number (0 when empty) and its hash ("" when empty). */
int km_store_audit_head(km_store_t *s, int64_t *seq, char hash[KM_STORE_HASH_HEX + 1],
                        char *err, size_t errlen);

/*
 * The canonical serialization of e in environment env (see above); *ret is malloc'd and
 * NUL-terminated, *len its length (may be NULL). KM_ENOMEM.
 */
int km_store_audit_canonical(const char *env, const km_store_audit_event_t *e, char **ret,
                             size_t *len);

/* hash = SHA-256(prev_hash || canonical(e)) as lowercase hex, from e->prev_hash.
 * KM_EINVAL when e->prev_hash is not 64 hex digits, KM_ENOMEM, KM_ECRYPTO. */
int km_store_audit_hash(const char *env, const km_store_audit_event_t *e,
                        char out[KM_STORE_HASH_HEX + 1]);

/* Every recorded JWKS version, oldest first. Free with km_store_jwks_versions_free(). */
int km_store_jwks_versions(km_store_t *s, km_store_jwks_version_t **ret, size_t *count,
                           char *err, size_t errlen);

void km_store_jwks_versions_free(km_store_jwks_version_t *list, size_t count);

/*
 * The newest recorded JWKS version (its kids are owned by the caller: free()). A publisher
 * serves this serial when the published kid set changed (the store already recorded it) and
 * calls km_store_jwks_serial_next() only for changes the store cannot see. KM_ENOENT when
 * nothing was ever published.
 */
int km_store_jwks_latest(km_store_t *s, km_store_jwks_version_t *ret, char *err, size_t errlen);

/*
 * Records a new audit key (public JWK, token location, CKA_ID) as the active one, retires the
 * previous one, and appends an audit.key.create event. KM_EEXIST (CKA_ID or kid known),
 * KM_EINVAL, store codes.
 */
int km_store_audit_key_add(km_store_t *s, const km_store_audit_key_t *k, char *err,
                           size_t errlen);

/* Every audit key, oldest first (malloc'd array; free()). */
int km_store_audit_keys(km_store_t *s, km_store_audit_key_t **ret, size_t *count, char *err,
                        size_t errlen);

/* Sets *ret to whether cka_id is the CKA_ID of an audit key (which must never sign JWTs). */
int km_store_audit_key_is(km_store_t *s, const uint8_t *cka_id, size_t cka_id_len, bool *ret,
                          char *err, size_t errlen);

/* Stores a signed checkpoint (id ignored). KM_EINVAL, store codes. */
int km_store_checkpoint_add(km_store_t *s, const km_store_checkpoint_t *c, char *err,
                            size_t errlen);

/* Every checkpoint, oldest first (malloc'd array; free()). */
int km_store_checkpoints(km_store_t *s, km_store_checkpoint_t **ret, size_t *count, char *err,
                         size_t errlen);

/* ---- facts learned about a token ----
 *
 * What keymgr learned about the token holding the environment's keys, kept so that the next
 * process does not learn it again. A row of the meta table per token (by serial and label,
 * as key rows name their token): no schema change, and no audit event (nothing about a key
 * changes).
 */

/*
 * The CKA_ID length the token keeps, as recorded by km_store_token_id_len_record(), into
 * *ret; 0 when nothing is recorded. KM_EOK, store codes.
 */
int km_store_token_id_len(km_store_t *s, const char *serial, const char *label, size_t *ret,
                          char *err, size_t errlen);

/*
 * Records that the token (serial, label) keeps only len bytes of a CKA_ID (1 to
 * KM_STORE_CKA_ID_MAX). KM_EOK, KM_EINVAL, store codes.
 */
int km_store_token_id_len_record(km_store_t *s, const char *serial, const char *label,
                                 size_t len, char *err, size_t errlen);

/*
 * Whether the token (serial, label) was recorded as one that assigns CKA_IDs itself (Google's
 * kmsp11 refuses a CKA_ID in a keygen template), into *ret; false when nothing is recorded.
 * KM_EOK, store codes.
 */
int km_store_token_assigns_ids(km_store_t *s, const char *serial, const char *label, bool *ret,
                               char *err, size_t errlen);

/* Records that the token (serial, label) assigns CKA_IDs itself. KM_EOK, KM_EINVAL, store
 * codes. */
int km_store_token_assigns_ids_record(km_store_t *s, const char *serial, const char *label,
                                      char *err, size_t errlen);
