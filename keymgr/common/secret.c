/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "keymgr/common/secret.h"

void km_secret_wipe(void *p, size_t len)
{
	if (p != NULL)
		explicit_bzero(p, len);
}

void km_secret_free(char *s)
{
	if (s == NULL)
		return;
	size_t len = strlen(s);
	km_secret_wipe(s, len);
	/* PINs are locked in RAM (pkcs11/pin.c); unlocking a page never locked is harmless. */
	(void)munlock(s, len + 1);
	free(s);
}
