/* SPDX-License-Identifier: Apache-2.0 */
/* Secrets (PINs) are wiped before their memory is released. */
#pragma once

#include <stddef.h>

/* Wipes len bytes at p; the compiler may not elide it. */
void km_secret_wipe(void *p, size_t len);

/* Wipes strlen(s) bytes, unlocks its page (see pkcs11/pin.c) and frees s. Accepts NULL. */
void km_secret_free(char *s);
