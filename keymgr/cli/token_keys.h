/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keys made by the raw `keymgr token` verbs, and how they are found again.
 *
 * A token does not record which JOSE algorithm a key is for, and an RSA key fits six. The raw
 * verbs therefore record it in CKA_LABEL (on both objects of the pair):
 *
 *     keymgr:<ALG>            e.g. keymgr:ES256
 *     keymgr:<ALG>:<TEXT>     e.g. keymgr:PS384:ci-signing
 *
 * <ALG> is a JOSE name (RS256 ... EdDSA). Store-managed keys use "keymgr:<env>/<keyset>"
 * instead; an environment name is a lower-case slug and can never equal an algorithm name
 * (which all contain upper-case letters), so the two schemes cannot be confused. The raw verbs
 * ignore keys whose label does not follow this scheme.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/alg.h"
#include "keymgr/common/pubkey.h"
#include "keymgr/jose/jwk.h"
#include "pkcs11/token.h"

#define KM_RAW_LABEL_PREFIX "keymgr:"
#define KM_RAW_TEXT_MAX 64

/* A key pair created by `keymgr token keygen`. */
typedef struct {
	uint8_t id[KM_TOKEN_ID_MAX];
	size_t id_len;
	km_alg_t alg;
	km_pubkey_t pub;
	char kid[KM_JWK_THUMBPRINT_LEN + 1];
	char label[129];
} km_raw_key_t;

/* True for a --label text: 1..KM_RAW_TEXT_MAX printable ASCII characters. */
bool km_raw_label_text_valid(const char *text);

/* Writes the CKA_LABEL for alg and optional text into out. Returns KM_EOK or KM_ERANGE. */
int km_raw_label_make(km_alg_t alg, const char *text, char *out, size_t outlen);

/* Reads the algorithm of a raw-scheme label. KM_EOK, or KM_EALG for any other label. */
int km_raw_label_alg(const char *label, km_alg_t *ret);

/*
 * Lists the token's raw-scheme key pairs whose public key fits their label's algorithm,
 * sorted by kid. *skipped (optional) receives how many other keymgr key pairs (CKA_ID with
 * keymgr's prefix) were left out. *ret is malloc'd (free it); NULL when there are none.
 * Returns KM_EOK or the token layer's code (see km_token_last_error()).
 */
int km_raw_keys_list(km_token_t *t, km_raw_key_t **ret, size_t *count, size_t *skipped);
