/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to pkcs11/: Cryptoki and the layer below the token object, which knows nothing of
 * struct km_token: the module registry, CK_RV translation, finding tokens, the session pool
 * and the handle cache. This is the only header in keymgr that includes <p11-kit/pkcs11.h>
 * (every other private header of this folder includes it through this one); nothing outside
 * pkcs11/ (except tests and the benchmark) may include it.
 *
 * The headers above it, one per job (each includes only this one):
 *   token_int.h  struct km_token and its recovery state
 *   failure.h    failure.c: the last error, a lost session noted, a success noted
 *   mech.h       mech.c: the mechanism of each algorithm, C_SignInit with it
 *   keys.h       keys.c: finding key objects, curves
 *   pubkey.h     pubkey.c: reading a public key object
 *   prepare.h    prepare.c: signing operations initialised ahead
 *   recover.h    recover.c: re-opening lost sessions, borrowing a session
 *   login.h      login.c: the user login through the PIN gate
 * A file includes the headers of the jobs it calls, and no job calls one that calls it back
 * (docs/token-layer.md lists the layers).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#include "pkcs11/token.h"

#define KM_P11_ID_MAX 64            /* longest CKA_ID we handle (foreign keys included) */
#define KM_P11_ERR_MAX 512
#define KM_P11_DEFAULT_SESSIONS 4
#define KM_P11_MAX_ALLOWED_MECHS 8

/* --- module.c: process-wide registry of loaded modules ------------------------------- */

typedef struct km_p11_module km_p11_module_t;

/*
 * Loads (or re-uses) the module at path and makes sure it is initialised, with init_args
 * (NULL or a string) as pReserved of C_Initialize. A module already loaded with other
 * init_args is refused. Every successful call must be paired with km_p11_module_put().
 * Returns KM_EOK, KM_ENOMEM or KM_P11_EMODULE.
 */
int km_p11_module_get(const char *path, const char *init_args, km_p11_module_t **ret,
                      CK_FUNCTION_LIST **fl_ret, char *errbuf, size_t errlen);

/* Drops one reference; the last one finalizes the module if this process initialised it. */
void km_p11_module_put(km_p11_module_t *m);

/*
 * km_p11_find_token() on module m (loaded from path), which also keeps the module's count of
 * failed searches in a row: a failed module call (C_GetSlotList's error), or a token that is
 * no longer listed, with seen (it was found before: a re-open) or while the count is not 0.
 * After KM_P11_REINIT_AFTER of them, this search first runs C_Finalize + C_Initialize (with the
 * module's init_args; only a module this process initialised), each time until one search
 * succeeds: some modules find their token again only then (p11-kit's client after its server
 * restarted). The caller's backoff paces the attempts. Returns what km_p11_find_token()
 * returns, or the failed C_Initialize's code.
 */
int km_p11_module_find_token(km_p11_module_t *m, const char *path, const char *label,
                             const char *serial, bool seen, CK_SLOT_ID *slot,
                             CK_TOKEN_INFO *info, char *errbuf, size_t errlen);

/*
 * Counts the km_token_t objects logged in to one slot of a module, so that only the last
 * one logs out (the login state is shared by every session of the process).
 * login_ref returns the count before the increment; login_unref the count after.
 */
unsigned km_p11_module_login_ref(km_p11_module_t *m, CK_SLOT_ID slot);
unsigned km_p11_module_login_unref(km_p11_module_t *m, CK_SLOT_ID slot);

/* --- ckrv.c: the one place where CK_RV becomes a KM code ----------------------------- */

/* KM code for a Cryptoki return value (CKR_OK -> KM_EOK). */
int km_p11_rv_code(CK_RV rv);

/* Symbolic name ("CKR_PIN_INCORRECT"), or "CKR_0x..." in a static per-thread buffer. */
const char *km_p11_rv_name(CK_RV rv);

/*
 * Writes "<who>: <op> failed: <CKR_NAME>: <explanation>" into buf (if given) and returns
 * km_p11_rv_code(rv). who names the token or module, op the operation.
 */
int km_p11_format_rv(char *buf, size_t len, CK_RV rv, const char *who, const char *op);

/* --- slot.c: finding tokens -------------------------------------------------------- */

/* Copies a blank-padded Cryptoki string into a C string without the trailing blanks. */
void km_p11_unpad(char *dst, size_t dstlen, const unsigned char *src, size_t srclen);

/* Writes src into a blank-padded field of len bytes (truncates silently; check first). */
void km_p11_pad(unsigned char *dst, size_t len, const char *src);

/*
 * Finds the one initialised token whose label (and/or serial) matches. Returns KM_EOK,
 * KM_P11_ENOTOKEN, KM_P11_EAMBIGUOUS, KM_EINVAL or a translated CK_RV; writes a message.
 */
int km_p11_find_token(CK_FUNCTION_LIST *fl, const char *module_path, const char *label,
                      const char *serial, CK_SLOT_ID *slot_ret, CK_TOKEN_INFO *info_ret,
                      char *errbuf, size_t errlen);

/* --- pool.c: long-lived signing sessions -------------------------------------------- */

/*
 * What a pool session holds between two signatures (prepare.c). PENDING: the last signature
 * on it used an EC or EdDSA key, so km_token_prepare() may run the next C_SignInit for that
 * key ahead. READY: it did; the session holds an active signing operation for key/alg,
 * which only a signature with that key and alg may consume, and which any other use of the
 * session first finishes (prepare.c).
 */
typedef enum { KM_P11_PREP_NONE, KM_P11_PREP_PENDING, KM_P11_PREP_READY } km_p11_prep_state_t;

typedef struct {
	km_p11_prep_state_t state;
	CK_OBJECT_HANDLE key;
	km_alg_t alg;
	uint64_t cache_gen;            /* the handle cache's generation the key was found in */
	uint64_t ready_ms;             /* CLOCK_MONOTONIC ms of the C_SignInit (READY) */
} km_p11_prep_t;

typedef struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	CK_SESSION_HANDLE *sessions;   /* all sessions, opened once after login */
	km_p11_prep_t *prep;           /* per session; the pool's while free, the borrower's else */
	unsigned *free_idx;            /* stack of indexes into sessions[] */
	uint64_t *used_ms;             /* per session: CLOCK_MONOTONIC ms it was last given back */
	unsigned n;                    /* capacity */
	unsigned n_open;               /* sessions[0..n_open) are open */
	unsigned n_free;
	bool initialised;
} km_p11_pool_t;

int km_p11_pool_init(km_p11_pool_t *p, unsigned n);
/* Adds an opened session to the pool (at km_token_open, or growing it back: n_open < n). */
void km_p11_pool_add(km_p11_pool_t *p, CK_SESSION_HANDLE s);
/* Sets how many of sessions[] are open, on a drained pool (a re-open that could open fewer
 * or more than before, up to n; km_p11_pool_refill() then gives them out). */
void km_p11_pool_set_open(km_p11_pool_t *p, unsigned n_open);
/* Sessions open now. */
unsigned km_p11_pool_open_count(km_p11_pool_t *p);
/* Blocks until a session is free; returns its index, preferring a session READY for key/alg
 * (none with CK_INVALID_HANDLE), then one with nothing prepared. */
unsigned km_p11_pool_acquire_for(km_p11_pool_t *p, CK_OBJECT_HANDLE key, km_alg_t alg);
/* Borrows a free PENDING session without waiting; false when there is none. */
bool km_p11_pool_take_pending(km_p11_pool_t *p, unsigned *idx);
/* Takes a free session last given back at before_ms or earlier (idle since), if any. */
bool km_p11_pool_take_idle(km_p11_pool_t *p, uint64_t before_ms, unsigned *idx);
void km_p11_pool_release(km_p11_pool_t *p, unsigned idx);
/* Takes every open session (waits for borrowers to give theirs back): nobody can sign. */
void km_p11_pool_drain(km_p11_pool_t *p);
/* Gives every session back after km_p11_pool_drain(), with nothing prepared (the sessions
 * were re-opened). */
void km_p11_pool_refill(km_p11_pool_t *p);
/* Frees the pool's memory; the caller has closed the sessions. */
void km_p11_pool_destroy(km_p11_pool_t *p);

/* --- cache.c: object handles per CKA_ID --------------------------------------------- */

typedef struct km_p11_key {
	uint8_t id[KM_P11_ID_MAX];
	size_t id_len;
	CK_OBJECT_HANDLE priv;           /* CK_INVALID_HANDLE when the token has none */
	CK_OBJECT_HANDLE pub;
	km_kty_t kty;                    /* 0 for key types keymgr does not know */
	km_crv_t crv;
	unsigned rsa_bits;
	CK_MECHANISM_TYPE allowed[KM_P11_MAX_ALLOWED_MECHS];
	size_t n_allowed;
	bool allowed_known;              /* the token reported CKA_ALLOWED_MECHANISMS */
	struct km_p11_key *next;
} km_p11_key_t;

#define KM_P11_CACHE_BUCKETS 256

typedef struct {
	pthread_rwlock_t lock;
	km_p11_key_t *buckets[KM_P11_CACHE_BUCKETS];
	uint64_t generation;             /* bumped by every drop; guards racing inserts */
	bool initialised;
} km_p11_cache_t;

int km_p11_cache_init(km_p11_cache_t *c);
void km_p11_cache_destroy(km_p11_cache_t *c);
/* Copies the entry for id into *ret (next = NULL). Returns true when found. */
bool km_p11_cache_get(km_p11_cache_t *c, const uint8_t *id, size_t id_len, km_p11_key_t *ret);
/* Current generation, to pass to km_p11_cache_put after a lookup outside the lock. */
uint64_t km_p11_cache_generation(km_p11_cache_t *c);
/*
 * Inserts or replaces a copy of *k, unless an entry was dropped since generation was read
 * (then the lookup may have raced a destroy, and the entry is not stored). KM_EOK/KM_ENOMEM.
 */
int km_p11_cache_put(km_p11_cache_t *c, const km_p11_key_t *k, uint64_t generation);
void km_p11_cache_drop(km_p11_cache_t *c, const uint8_t *id, size_t id_len);
/*
 * Drops every entry and bumps the generation (after the sessions were re-opened, every
 * handle is stale; a lookup that raced the re-open cannot insert its result).
 */
void km_p11_cache_clear(km_p11_cache_t *c);

/* Whether C_CreateObject's rv says the token keeps no such object (NSS softoken refuses token
 * data objects with CKR_ATTRIBUTE_VALUE_INVALID). dataobj.c, marker.c. */
bool km_p11_refuses_data(CK_RV rv);
