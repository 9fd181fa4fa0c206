/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to pkcs11/: the definition of struct km_token and the helpers the files of this
 * folder share. This is the only header in keymgr that includes <p11-kit/pkcs11.h>; nothing
 * outside pkcs11/ (except tests and the benchmark) may include it.
 */
#pragma once

#include <pthread.h>
#include <stdarg.h>
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
 * Loads (or re-uses) the module at path and makes sure it is initialised. Every successful
 * call must be paired with km_p11_module_put(). Returns KM_EOK or KM_P11_EMODULE.
 */
int km_p11_module_get(const char *path, km_p11_module_t **ret, CK_FUNCTION_LIST **fl_ret,
                      char *errbuf, size_t errlen);

/* Drops one reference; the last one finalizes the module if this process initialised it. */
void km_p11_module_put(km_p11_module_t *m);

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
	unsigned n;                    /* capacity */
	unsigned n_open;               /* sessions[0..n_open) are open */
	unsigned n_free;
	bool initialised;
} km_p11_pool_t;

int km_p11_pool_init(km_p11_pool_t *p, unsigned n);
/* Adds an opened session to the pool (during km_token_open only). */
void km_p11_pool_add(km_p11_pool_t *p, CK_SESSION_HANDLE s);
/* Blocks until a session is free; returns its index, preferring a session READY for key/alg
 * (none with CK_INVALID_HANDLE), then one with nothing prepared. */
unsigned km_p11_pool_acquire_for(km_p11_pool_t *p, CK_OBJECT_HANDLE key, km_alg_t alg);
/* Borrows a free PENDING session without waiting; false when there is none. */
bool km_p11_pool_take_pending(km_p11_pool_t *p, unsigned *idx);
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

/* --- recover.c: re-opening lost sessions ------------------------------------------ */

#define KM_P11_BACKOFF_MIN_MS 100u      /* first wait after a failed or repeated re-open */
#define KM_P11_BACKOFF_MAX_MS 30000u    /* the wait never grows beyond this */

typedef struct {
	pthread_mutex_t lock;            /* short sections only: never held across a token call */
	int lost;                        /* read without the lock (__atomic) on every operation */
	CK_RV lost_rv;                   /* what the failing call returned */
	int code;                        /* KM code reported while lost */
	char why[KM_P11_ERR_MAX];        /* message reported while lost */
	uint64_t next_attempt_ms;        /* CLOCK_MONOTONIC ms before which nothing is tried */
	unsigned delay_ms;               /* current backoff (0: retry on the next call) */
	unsigned long recoveries;        /* successful re-opens */
	unsigned long failed_attempts;
	uint64_t epoch;                  /* bumped by each successful re-open */
} km_p11_recovery_t;

/* --- the token itself ---------------------------------------------------------------- */

struct km_token {
	km_p11_module_t *mod;
	CK_FUNCTION_LIST *fl;
	CK_SLOT_ID slot;
	km_token_info_t info;
	char who[64];                    /* "token 'LABEL'" for messages */
	bool logged_in;

	/* Generation, destruction and listing run one at a time on this RW session. */
	pthread_mutex_t admin_lock;
	CK_SESSION_HANDLE admin;
	bool admin_open;

	km_p11_pool_t pool;
	km_p11_cache_t cache;

	pthread_mutex_t err_lock;
	char last_error[KM_P11_ERR_MAX];

	/* recover.c: what a re-open needs (copies of the caller's configuration). */
	char *module_path;
	char *pin_source;                /* NULL: opened without login */
	bool sessions_open;              /* admin and pool sessions are open handles */
	km_p11_recovery_t rec;
};

/* Stores a formatted message as the token's last error. */
void km_p11_set_error(km_token_t *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Stores "<token>: <op> failed: <CKR>..." as the last error; returns the KM code. */
int km_p11_fail(km_token_t *t, CK_RV rv, const char *op);

/* True for the CK_RVs after which the sessions are re-opened and the login repeated. */
bool km_p11_rv_is_session_lost(CK_RV rv);

/*
 * Notes that a session or the login was lost (rv is one of km_p11_rv_is_session_lost()).
 * The caller still fails; a later operation re-opens the sessions (km_p11_ready).
 */
void km_p11_note_session_lost(km_token_t *t, CK_RV rv);

/* An operation succeeded on the current sessions: the re-open backoff starts over. */
void km_p11_note_ok(km_token_t *t);

/*
 * Makes sure the token's sessions are usable before an operation: when they were lost,
 * re-opens them (taking admin_lock and every pool session) if the backoff allows, else
 * returns at once. KM_EOK, or the code of the loss / of the failed re-open (message stored
 * as the last error). km_p11_ready_locked() is for callers already holding admin_lock.
 */
int km_p11_ready(km_token_t *t);
int km_p11_ready_locked(km_token_t *t);

/*
 * Borrows a pool session for one operation, after km_p11_ready(); fails (nothing borrowed)
 * when the sessions are lost. Release with km_p11_pool_release(). The session has no
 * operation prepared (prepare.c): any use is allowed.
 */
int km_p11_session_get(km_token_t *t, unsigned *idx);
/* The same for a signature with key/alg: the session may hold an operation prepared for
 * it, or for another key; the caller passes it through km_p11_prep_take() before use. */
int km_p11_session_get_for(km_token_t *t, CK_OBJECT_HANDLE key, km_alg_t alg, unsigned *idx);

/* Initialises/destroys t->rec (km_token_open / km_token_free). */
void km_p11_recovery_init(km_token_t *t);
void km_p11_recovery_destroy(km_token_t *t);

/* --- keys.c: finding objects and reading attributes --------------------------------- */

/* True for CK_RVs meaning the cached object handle no longer exists. */
bool km_p11_rv_is_stale_handle(CK_RV rv);

/*
 * Searches the token for the private and public key objects with this CKA_ID and fills
 * *ret with their handles and key properties. KM_P11_ENOKEY when neither exists.
 */
int km_p11_key_lookup(km_token_t *t, CK_SESSION_HANDLE s, const uint8_t *id, size_t id_len,
                      km_p11_key_t *ret);

/* Returns the cached entry, or searches with session s and caches the result. */
int km_p11_key_resolve(km_token_t *t, CK_SESSION_HANDLE s, const uint8_t *id, size_t id_len,
                       km_p11_key_t *ret);

/* Finds up to max objects matching the template. Writes the count. */
CK_RV km_p11_find(km_token_t *t, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
                  CK_OBJECT_HANDLE *objs, CK_ULONG max, CK_ULONG *count);

/* Maps CKA_EC_PARAMS to a curve; KM_CRV_NONE if unknown. */
km_crv_t km_p11_curve_from_params(const uint8_t *der, size_t len);

/* DER of the named-curve OID for a curve (static), or NULL. */
const uint8_t *km_p11_curve_params(km_crv_t crv, size_t *len);

/* --- pubkey.c ------------------------------------------------------------------------ */

/* Reads the public key object pub of the given type into *ret (JOSE raw form). */
int km_p11_read_public(km_token_t *t, CK_SESSION_HANDLE s, const km_p11_key_t *k,
                       km_pubkey_t *ret);

/* The signing mechanism for alg (CKM_SHA256_RSA_PKCS, ..., CKM_ECDSA, CKM_EDDSA). */
CK_MECHANISM_TYPE km_p11_alg_mechanism(km_alg_t alg);

/* --- sign.c / prepare.c: signing operations ------------------------------------------ */

/* C_SignInit on session s with alg's mechanism (and its PSS parameters). */
CK_RV km_p11_sign_init(km_token_t *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                       const km_alg_info_t *ai);

/* After a signature with key (found in cache generation gen) on borrowed session idx:
 * PENDING for EC and EdDSA keys (km_token_prepare may initialise the next one), else NONE. */
void km_p11_prep_mark(km_token_t *t, unsigned idx, CK_OBJECT_HANDLE key,
                      const km_alg_info_t *ai, uint64_t gen);

/*
 * Before a signature with key/alg (key found in cache generation gen) on borrowed session
 * idx. True when the session holds an operation prepared for exactly that key and alg, in
 * that generation, less than KM_TOKEN_PREPARED_MAX_AGE_MS ago: the caller's C_Sign consumes it.
 * Otherwise finishes whatever the session held (km_p11_prep_settle) and returns false: the
 * caller runs C_SignInit itself.
 */
bool km_p11_prep_take(km_token_t *t, unsigned idx, CK_OBJECT_HANDLE key, km_alg_t alg,
                      uint64_t gen);

/* Ends the operation prepared on borrowed session idx, if any, so the session can be used
 * for anything (C_FindObjects, another key). */
void km_p11_prep_settle(km_token_t *t, unsigned idx);

/* Ends the signing operation active on session s, if any, without a signature where the
 * token follows PKCS#11 (prepare.c). */
void km_p11_prep_finish(km_token_t *t, CK_SESSION_HANDLE s, const km_alg_info_t *ai);
