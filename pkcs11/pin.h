/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PIN sources: "file:PATH" (mode 0600 or stricter), "env:NAME" (secure_getenv), "prompt".
 * A PIN never appears in argv, logs or error text.
 */
#pragma once

#include <stddef.h>

#include "pkcs11/token.h"

/*
 * Reads a PIN from source. *ret is malloc'd and must be released with km_secret_free().
 * On failure writes a message about the source (path or variable name, never content) into
 * errbuf. Returns KM_EOK, KM_P11_EPINSOURCE or KM_P11_EPINPERM.
 */
int km_pin_read(const char *source, char **ret, char *errbuf, size_t errlen);

/*
 * The same, and writes what the PIN was read from into *ret_id (km_pin_id_t, token.h): for a
 * file: source the identity fstat(2) gave on the descriptor that was read. ret_id->source
 * points to source. Both are written only on success.
 */
int km_pin_read_id(const char *source, char **ret, km_pin_id_t *ret_id, char *errbuf,
                   size_t errlen);

/*
 * Checks a PIN's length against the token's ulMinPinLen/ulMaxPinLen before C_Login, so that
 * a PIN the token cannot accept never spends a try toward its lockout (opencryptoki answers
 * a PIN longer than 8 characters with CKR_PIN_INCORRECT and counts it). Limits a token
 * reports as 0, as CK_UNAVAILABLE_INFORMATION or inverted are not used. On failure writes a
 * message naming the limits and the source's kind, never the PIN, and returns
 * KM_P11_EPINSOURCE.
 */
int km_pin_check_length(size_t len, unsigned long min, unsigned long max, const char *who,
                        char *errbuf, size_t errlen);
