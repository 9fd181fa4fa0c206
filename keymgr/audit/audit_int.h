/* SPDX-License-Identifier: Apache-2.0 */
/* Private to keymgr/audit/: helpers shared by its files. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keymgr/store/store.h"

typedef struct km_audit_stream km_audit_stream_t;

/* SHA-256 of data as lowercase hex. KM_EOK or KM_ECRYPTO. */
int km_audit_sha256_hex(const void *data, size_t len, char out[KM_STORE_HASH_HEX + 1]);

/*
 * Verifies an ES256 signature (base64url r||s) over msg with the public key of a JWK text.
 * KM_EOK when valid, KM_ECRYPTO when not, KM_EMALFORMED for an unusable JWK or signature.
 */
int km_audit_es256_verify(const char *jwk_text, const char *msg, size_t msg_len,
                          const char *sig_b64url);
