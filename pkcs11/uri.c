/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 7512 URIs of key objects, formatted by p11-kit (km_token_uri in token.h). */
#include <stdlib.h>
#include <string.h>

#include <p11-kit/uri.h>

#include "keymgr/common/error.h"
#include "pkcs11/internal.h"

/* Copies s into a blank-padded CK_TOKEN_INFO field of width len. False when s is too long. */
static bool set_padded(CK_UTF8CHAR *field, size_t len, const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > len)
		return false;
	memset(field, ' ', len);
	memcpy(field, s, n);
	return true;
}

int km_token_uri(const char *label, const char *serial, const uint8_t *id, size_t id_len,
                 char **ret)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE a_id = { CKA_ID, (void *)id, (CK_ULONG)id_len };
	CK_ATTRIBUTE a_cls = { CKA_CLASS, &cls, sizeof(cls) };
	P11KitUri *uri = NULL;
	char *text = NULL;
	int r = KM_EINVAL;

	if ((label == NULL && serial == NULL) || id == NULL || id_len == 0 ||
	    id_len > KM_TOKEN_ID_MAX || ret == NULL)
		return KM_EINVAL;
	if ((uri = p11_kit_uri_new()) == NULL)
		return KM_ENOMEM;
	CK_TOKEN_INFO *ti = p11_kit_uri_get_token_info(uri);
	if ((label != NULL && !set_padded(ti->label, sizeof(ti->label), label)) ||
	    (serial != NULL && !set_padded(ti->serialNumber, sizeof(ti->serialNumber), serial)))
		goto out;
	if (p11_kit_uri_set_attribute(uri, &a_id) != P11_KIT_URI_OK ||
	    p11_kit_uri_set_attribute(uri, &a_cls) != P11_KIT_URI_OK) {
		r = KM_ENOMEM;
		goto out;
	}
	if (p11_kit_uri_format(uri, P11_KIT_URI_FOR_OBJECT_ON_TOKEN, &text) != P11_KIT_URI_OK) {
		r = KM_ENOMEM;
		goto out;
	}
	*ret = text;
	r = KM_EOK;
out:
	p11_kit_uri_free(uri);
	return r;
}
