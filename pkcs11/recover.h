/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to pkcs11/ (recover.c): re-opening the sessions of a token that lost them
 * (failure.c marks the loss), and borrowing a pool session once they are usable.
 */
#pragma once

#include "pkcs11/internal.h"

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
