/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PIN sources: "file:PATH" (mode 0600 or stricter), "env:NAME" (secure_getenv), "prompt".
 * A PIN never appears in argv, logs or error text.
 */
#pragma once

#include <stddef.h>

/*
 * Reads a PIN from source. *ret is malloc'd and must be released with km_secret_free().
 * On failure writes a message about the source (path or variable name, never content) into
 * errbuf. Returns KM_EOK, KM_P11_EPINSOURCE or KM_P11_EPINPERM.
 */
int km_pin_read(const char *source, char **ret, char *errbuf, size_t errlen);
