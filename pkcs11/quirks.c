/* SPDX-License-Identifier: Apache-2.0 */
/* The quirk table (quirks.h). Entries cite what they were seen on. */
#include <string.h>

#include "pkcs11/quirks.h"

static const km_p11_quirk_t table[] = {
	{
		/* tpm2-pkcs11 1.9 (Debian 12) on swtpm: a template with CKA_DECRYPT=FALSE fails
		 * with CKR_GENERAL_ERROR and every key reads back CKA_DECRYPT=TRUE; P-521 keys
		 * generate although C_SignInit then fails (its mechanism list claims 192..638
		 * bits). Seen by the hsm suite (tests/hsm), docs/hsm-compat.md. */
		.name = "tpm2-pkcs11",
		.manufacturer = "tpm2-software.github.io",
		.flags = KM_P11_Q_DECRYPT_ALWAYS,
		.broken = { KM_ALG_ES512 },
		.broken_why = "the module generates P-521 keys but cannot sign with them",
		.source = "tests/hsm on tpm2-pkcs11 1.9",
	},
};

const km_p11_quirk_t *km_p11_quirk_find(const char *manufacturer)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(table[i].manufacturer, manufacturer) == 0)
			return &table[i];
	return NULL;
}

bool km_p11_quirk_broken(const km_p11_quirk_t *q, km_alg_t alg)
{
	if (q == NULL)
		return false;
	for (size_t i = 0; i < sizeof(q->broken) / sizeof(q->broken[0]); i++)
		if (q->broken[i] == alg && alg != KM_ALG_NONE)
			return true;
	return false;
}
