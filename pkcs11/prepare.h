/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to pkcs11/ (prepare.c): signing operations initialised ahead on idle pool sessions
 * (km_token_prepare), and their bookkeeping around every use of a session.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pkcs11/internal.h"

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
