/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which key pairs of a token are keymgr's: the one rule for telling keymgr's pairs from
 * foreign ones (reconcile's strays), and the label keymgr gives its pairs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "keymgr/core/env.h"
#include "pkcs11/token.h"

/* The CKA_LABEL keymgr gives the key pairs of env/keyset: "keymgr:ENV/KEYSET", into out. */
void km_key_label(const char *env, const char *keyset, char *out, size_t len);

/*
 * Sets *ret to whether o, a key pair that km_token_list_keys() found on t (env's token), is
 * keymgr's. It is when
 *   - its CKA_ID is a 20-byte "KMGR…" id (km_token_new_id()), of any environment;
 *   - or env's store records its CKA_ID (a key, or the audit key), whatever its length
 *     (the short ids of a token that cuts them, ids a token assigned);
 *   - or its CKA_ID is one of the short ids keymgr makes on a token that cuts them (the
 *     length t keeps, km_token_id_len(), or the cut of a "KMGR…" id: what such a token makes
 *     of the first id keymgr gives it, before keymgr knows that it cuts) and its label is
 *     one keymgr gives a key of env (km_key_label(), or that label fitted for strict
 *     tokens, km_token_fit_label()).
 * KM_EOK, or the store's code (message in err).
 */
int km_env_key_is_keymgrs(km_env_t *env, km_token_t *t, const km_token_key_info_t *o,
                          bool *ret, char *err, size_t errlen);
