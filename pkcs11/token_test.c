/* SPDX-License-Identifier: Apache-2.0 */
/* Test-only accessors (see token_test.h). */
#include <string.h>

#include "keymgr/common/error.h"
#include "pkcs11/failure.h"
#include "pkcs11/keys.h"
#include "pkcs11/recover.h"
#include "pkcs11/token_int.h"
#include "pkcs11/token_test.h"

int km_token_get_private_attrs(km_token_t *t, const uint8_t *id, size_t id_len,
                               km_token_private_attrs_t *ret)
{
	km_token_private_attrs_t a = { 0 };
	km_p11_key_t k;
	CK_BBOOL v[10] = { 0 };
	CK_MECHANISM_TYPE mechs[8];
	int r;

	pthread_mutex_lock(&t->admin_lock);
	if ((r = km_p11_ready_locked(t)) != KM_EOK)
		goto out;
	if ((r = km_p11_key_lookup(t, t->admin, id, id_len, &k)) != KM_EOK)
		goto out;
	if (k.priv == CK_INVALID_HANDLE) {
		r = KM_P11_ENOKEY;
		goto out;
	}
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_TOKEN, &v[0], 1 }, { CKA_PRIVATE, &v[1], 1 }, { CKA_SENSITIVE, &v[2], 1 },
		{ CKA_EXTRACTABLE, &v[3], 1 }, { CKA_NEVER_EXTRACTABLE, &v[4], 1 },
		{ CKA_ALWAYS_SENSITIVE, &v[5], 1 }, { CKA_SIGN, &v[6], 1 }, { CKA_DECRYPT, &v[7], 1 },
		{ CKA_UNWRAP, &v[8], 1 }, { CKA_DERIVE, &v[9], 1 },
	};
	CK_RV rv = t->fl->C_GetAttributeValue(t->admin, k.priv, tmpl, 10);
	if (rv != CKR_OK) {
		r = km_p11_fail(t, rv, "C_GetAttributeValue (test attributes)");
		goto out;
	}
	a.token = v[0]; a.private_ = v[1]; a.sensitive = v[2]; a.extractable = v[3];
	a.never_extractable = v[4]; a.always_sensitive = v[5]; a.sign = v[6]; a.decrypt = v[7];
	a.unwrap = v[8]; a.derive = v[9];

	CK_BBOOL copyable = CK_TRUE;
	CK_ATTRIBUTE cp = { CKA_COPYABLE, &copyable, 1 };
	a.copyable = t->fl->C_GetAttributeValue(t->admin, k.priv, &cp, 1) != CKR_OK ||
	             cp.ulValueLen == CK_UNAVAILABLE_INFORMATION || copyable != CK_FALSE;
	CK_ATTRIBUTE am = { CKA_ALLOWED_MECHANISMS, mechs, sizeof(mechs) };
	if (t->fl->C_GetAttributeValue(t->admin, k.priv, &am, 1) == CKR_OK &&
	    am.ulValueLen != CK_UNAVAILABLE_INFORMATION) {
		a.n_allowed_mechanisms = am.ulValueLen / sizeof(CK_MECHANISM_TYPE);
		for (size_t i = 0; i < a.n_allowed_mechanisms; i++)
			a.allowed_mechanisms[i] = mechs[i];
	}
	*ret = a;
	r = KM_EOK;
out:
	pthread_mutex_unlock(&t->admin_lock);
	return r;
}
