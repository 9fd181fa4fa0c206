/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Can a key set sign? The configuration a key set needs before any token it signs is valid:
 * an issuer and audiences (the claims policy, docs/claims.md: without them nothing is
 * signed) and signers (who may sign through keymgrd, docs/keymgrd.8). A gap is a warning,
 * not a violation: a key set may be created before the team that uses it is configured.
 */
#pragma once

#include <stddef.h>

#include "keymgr/core/env.h"

typedef enum {
	KM_SIGN_GAP_ISSUER = 1u << 0,     /* environments.ENV.keysets.NAME.issuer */
	KM_SIGN_GAP_AUDIENCES = 1u << 1,  /* environments.ENV.keysets.NAME.audiences */
	KM_SIGN_GAP_SIGNERS = 1u << 2,    /* environments.ENV.keysets.NAME.signers */
} km_sign_gap_t;

/*
 * The gaps of key set keyset (a KM_SIGN_GAP_* mask; 0 when it can sign through both
 * `keymgr sign` and keymgrd). When msg is not NULL, writes one sentence naming each missing
 * configuration key and what its absence prevents ("" when there is none).
 */
unsigned km_keyset_signing_gaps(const km_env_t *env, const char *keyset, char *msg,
                                size_t len);

/* The configuration key of one gap ("issuer", "audiences", "signers"). */
const char *km_sign_gap_name(km_sign_gap_t gap);
