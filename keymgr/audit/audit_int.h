/* SPDX-License-Identifier: Apache-2.0 */
/* Private to keymgr/audit/: helpers shared by its files. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keymgr/core/env.h"
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

/* Sends a stored checkpoint to the environment's audit sinks (the JSON lines file, syslog),
 * as one JSON object with "type" KM_AUDIT_CHECKPOINT_TYPE. Nothing when none is attached. */
void km_audit_stream_checkpoint(km_env_t *env, const km_store_checkpoint_t *cp);

/* Writes cp's seq and hash as the token's checkpoint record (anchor.c; t is the environment's
 * audit token). KM_EOK, KM_ENOMEM or the token's code (message in err). */
int km_audit_token_record(km_env_t *env, km_token_t *t, const km_store_checkpoint_t *cp,
                          char *err, size_t errlen);
