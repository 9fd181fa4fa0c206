/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to pkcs11/ (failure.c): what a call leaves on the token. A failure stores its
 * message as the token's last error (km_token_last_error); one that lost the sessions or the
 * login also marks the token lost, so that a later call re-opens it (recover.c); a success
 * resets the re-open backoff. Every file that calls Cryptoki on an open token reports here.
 */
#pragma once

#include <stdbool.h>

#include "pkcs11/internal.h"

/* Stores a formatted message as the token's last error. */
void km_p11_set_error(km_token_t *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Stores "<token>: <op> failed: <CKR>..." as the last error and, for a CK_RV that lost the
 * sessions, notes the loss (km_p11_note_session_lost). Returns the KM code of rv.
 */
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

/* Initialises/destroys t->rec (km_token_open / km_token_free). */
void km_p11_recovery_init(km_token_t *t);
void km_p11_recovery_destroy(km_token_t *t);
