/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to pkcs11/: the token object itself (struct km_token), shared by the files that
 * work on an open token. Its functions are declared in the header of each job (internal.h
 * lists them).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pkcs11/caps.h"
#include "pkcs11/internal.h"
#include "pkcs11/quirks.h"

/* A lost session or login, and the backoff of re-opening it (failure.c marks, recover.c
 * re-opens, prepare.c and km_token_get_health read). */
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
	km_pin_gate_t gate;              /* login.c: asked before every C_Login (zero: none) */
	bool sessions_open;              /* admin and pool sessions are open handles */
	bool pool_rw;                    /* the token refused a read-only session: the pool's
	                                  * sessions are read-write (km_p11_open_pool_session) */
	bool ids_assigned;               /* keygen.c, under admin_lock: the token generated a
	                                  * pair only without a CKA_ID and chose the id itself
	                                  * (kmsp11): km_token_generate_assigned() */
	km_p11_recovery_t rec;

	/* caps.c: probed once at open, read-only afterwards (no lock). */
	km_token_caps_t caps;
	km_p11_sign_via_t via[KM_ALG_COUNT];   /* how each algorithm signs, by alg - 1 */
	const km_p11_quirk_t *quirk;           /* the module's quirk table entry, or NULL */
	unsigned long pin_min, pin_max;        /* ulMinPinLen/ulMaxPinLen (pin.c checks them) */

	/* keygen.c, under admin_lock: the CKA_ID length the token keeps (KM_TOKEN_ID_LEN, or
	 * shorter once a generation read back a cut id: YubiHSM 2 keeps 2 bytes). */
	size_t id_keep;
};

/*
 * Opens one signing-pool session on t's slot: read-only, as signing needs no more, or
 * read-write once the token refused a read-only one (AWS CloudHSM's SDK 5 library fails
 * C_OpenSession without CKF_RW_SESSION): the first refusal is answered by a read-write try,
 * and t->pool_rw keeps later opens from asking again. CKR_SESSION_COUNT is not such a
 * refusal. Returns the last C_OpenSession's CK_RV.
 */
CK_RV km_p11_open_pool_session(km_token_t *t, CK_SESSION_HANDLE *ret);
