/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

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
	km_secret_wipe(s, strlen(s));
	free(s);
}
