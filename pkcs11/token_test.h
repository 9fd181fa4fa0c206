/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test-only accessors of the token layer. Production code must not call these; they exist
 * so that tests can check what the token really stored without including Cryptoki headers.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pkcs11/token.h"

typedef struct {
	bool token, private_, sensitive, extractable, never_extractable, always_sensitive;
	bool sign, decrypt, unwrap, derive;
	bool copyable;                          /* true when the token does not report it */
	size_t n_allowed_mechanisms;            /* 0 when the token does not keep the list */
	unsigned long allowed_mechanisms[8];    /* CKM_* values */
} km_token_private_attrs_t;

/*
 * Reads the boolean attributes and CKA_ALLOWED_MECHANISMS of the private key with this
 * CKA_ID (searching, not using the cache). KM_P11_ENOKEY when absent.
 */
int km_token_get_private_attrs(km_token_t *t, const uint8_t *id, size_t id_len,
                               km_token_private_attrs_t *ret);
