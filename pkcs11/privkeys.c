/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every private key object of a token with the attributes that make it safe or not, and the
 * removal of one that is not (issue 16). A generation cut off inside the token (a kill inside
 * SoftHSM's C_GenerateKeyPair, between creating the objects and applying the template) can
 * leave private keys with the token's defaults: no CKA_ID, no label, not sensitive, usable to
 * decrypt and unwrap. No key keymgr made looks like that (keygen.c), so reconciliation reports
 * them, by handle, and removes them when the operator asks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "pkcs11/failure.h"
#include "pkcs11/internal.h"
#include "pkcs11/keys.h"
#include "pkcs11/recover.h"
#include "pkcs11/token_int.h"

#define N_BOOLS 8

static km_token_attr_t attr_of(const CK_ATTRIBUTE *a, CK_BBOOL v)
{
	if (a->ulValueLen != sizeof(CK_BBOOL))
		return KM_TOKEN_ATTR_UNKNOWN;
	return v ? KM_TOKEN_ATTR_TRUE : KM_TOKEN_ATTR_FALSE;
}

/*
 * Reads object h's CKA_ID, label, key type and the boolean attributes into *k. Returns the
 * CK_RV of the read (CKR_OK also when single attributes were not reported).
 */
static CK_RV read_privkey(km_token_t *t, CK_OBJECT_HANDLE h, km_token_privkey_t *k)
{
	CK_BBOOL v[N_BOOLS] = { 0 };
	CK_KEY_TYPE kt = (CK_KEY_TYPE)-1;
	km_token_privkey_t out;
	memset(&out, 0, sizeof(out));
	CK_ATTRIBUTE a[] = {
		{ CKA_ID, out.id, sizeof(out.id) },
		{ CKA_LABEL, out.label, sizeof(out.label) - 1 },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_SENSITIVE, &v[0], 1 }, { CKA_EXTRACTABLE, &v[1], 1 },
		{ CKA_NEVER_EXTRACTABLE, &v[2], 1 }, { CKA_ALWAYS_SENSITIVE, &v[3], 1 },
		{ CKA_SIGN, &v[4], 1 }, { CKA_DECRYPT, &v[5], 1 }, { CKA_UNWRAP, &v[6], 1 },
		{ CKA_DERIVE, &v[7], 1 },
	};
	CK_RV rv = t->fl->C_GetAttributeValue(t->admin, h, a, sizeof(a) / sizeof(a[0]));
	/* These mark single attributes as not reported; the others are filled. */
	if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL && rv != CKR_ATTRIBUTE_TYPE_INVALID &&
	    rv != CKR_ATTRIBUTE_SENSITIVE)
		return rv;
	out.handle = h;
	out.id_len = a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION ? 0 : a[0].ulValueLen;
	size_t label_len = a[1].ulValueLen == CK_UNAVAILABLE_INFORMATION ? 0 : a[1].ulValueLen;
	out.label[label_len] = '\0';
	out.kty = a[2].ulValueLen == sizeof(kt) ? km_p11_kty(kt) : (km_kty_t)0;
	km_token_attr_t *dst[N_BOOLS] = { &out.sensitive, &out.extractable, &out.never_extractable,
	                                  &out.always_sensitive, &out.sign, &out.decrypt,
	                                  &out.unwrap, &out.derive };
	for (size_t i = 0; i < N_BOOLS; i++)
		*dst[i] = attr_of(&a[3 + i], v[i]);
	/* Every key of such a token can decrypt, keymgr's own too (check_private in keygen.c
	 * accepts it on the same grounds): that alone does not make one unsafe. */
	out.decrypt_excused = t->quirk != NULL && (t->quirk->flags & KM_P11_Q_DECRYPT_ALWAYS);
	*k = out;
	return CKR_OK;
}

int km_token_list_private_keys(km_token_t *t, km_token_privkey_t **ret, size_t *count)
{
	CK_OBJECT_HANDLE *objs = NULL;
	km_token_privkey_t *keys = NULL;
	size_t n_obj = 0, cap = 0, n = 0;
	CK_RV rv;
	int r;

	pthread_mutex_lock(&t->admin_lock);
	if ((r = km_p11_ready_locked(t)) != KM_EOK)
		goto out;
	if ((rv = km_p11_collect(t, CKO_PRIVATE_KEY, &objs, &n_obj, &cap)) != CKR_OK) {
		r = km_p11_fail(t, rv, "C_FindObjects (list private keys)");
		goto out;
	}
	if ((keys = calloc(n_obj + 1, sizeof(*keys))) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n_obj; i++) {
		rv = read_privkey(t, objs[i], &keys[n]);
		if (km_p11_rv_is_stale_handle(rv))
			continue;       /* destroyed by someone else while we listed */
		if (rv != CKR_OK) {
			r = km_p11_fail(t, rv, "C_GetAttributeValue (list private keys)");
			goto out;
		}
		n++;
	}
	r = KM_EOK;
out:
	pthread_mutex_unlock(&t->admin_lock);
	free(objs);
	if (r != KM_EOK) {
		free(keys);
		return r;
	}
	*ret = keys;
	*count = n;
	return KM_EOK;
}

bool km_token_privkey_unsafe(const km_token_privkey_t *k)
{
	return k->sensitive == KM_TOKEN_ATTR_FALSE || k->extractable == KM_TOKEN_ATTR_TRUE ||
	       k->never_extractable == KM_TOKEN_ATTR_FALSE ||
	       (k->decrypt == KM_TOKEN_ATTR_TRUE && !k->decrypt_excused) ||
	       k->unwrap == KM_TOKEN_ATTR_TRUE || k->derive == KM_TOKEN_ATTR_TRUE;
}

static const char *attr_text(km_token_attr_t a)
{
	return a == KM_TOKEN_ATTR_TRUE ? "true" : a == KM_TOKEN_ATTR_FALSE ? "false" : "?";
}

const char *km_token_privkey_describe(const km_token_privkey_t *k, char *buf, size_t len)
{
	static const char *const kty_names[] = { [KM_KTY_RSA] = "RSA", [KM_KTY_EC] = "EC",
	                                         [KM_KTY_OKP] = "EdDSA" };
	char id[2 * KM_TOKEN_ID_MAX + 16] = "no CKA_ID", label[160] = "no label", usage[96] = "";
	if (k->id_len > 0) {
		strcpy(id, "CKA_ID ");
		for (size_t i = 0; i < k->id_len && i < KM_TOKEN_ID_MAX; i++)
			snprintf(id + 7 + 2 * i, 3, "%02x", k->id[i]);
	}
	if (k->label[0] != '\0')
		snprintf(label, sizeof(label), "label '%.128s'", k->label);
	const struct { km_token_attr_t a; const char *name; } uses[] = {
		{ k->sign, "sign" },
		{ k->decrypt, k->decrypt_excused ? "decrypt (the token's recorded exception)"
		                                 : "decrypt" },
		{ k->unwrap, "unwrap" }, { k->derive, "derive" },
	};
	for (size_t i = 0; i < sizeof(uses) / sizeof(uses[0]); i++)
		if (uses[i].a == KM_TOKEN_ATTR_TRUE)
			snprintf(usage + strlen(usage), sizeof(usage) - strlen(usage), " %s",
			         uses[i].name);
	unsigned kty = (unsigned)k->kty;
	snprintf(buf, len, "handle %lu, %s, %s, %s key: CKA_SENSITIVE %s, CKA_EXTRACTABLE %s, "
	         "CKA_NEVER_EXTRACTABLE %s, CKA_ALWAYS_SENSITIVE %s, usage%s", k->handle, id, label,
	         kty < sizeof(kty_names) / sizeof(kty_names[0]) && kty_names[kty] ? kty_names[kty]
	         : "unknown", attr_text(k->sensitive), attr_text(k->extractable),
	         attr_text(k->never_extractable), attr_text(k->always_sensitive),
	         usage[0] ? usage : " none");
	return buf;
}

int km_token_destroy_private_key(km_token_t *t, const km_token_privkey_t *k)
{
	km_token_privkey_t now;
	int r;

	pthread_mutex_lock(&t->admin_lock);
	if ((r = km_p11_ready_locked(t)) != KM_EOK)
		goto out;
	/* Handles are numbered anew when the sessions are re-opened: the object must still be
	 * the one that was reported, and still unsafe. */
	CK_RV rv = read_privkey(t, (CK_OBJECT_HANDLE)k->handle, &now);
	if (rv == CKR_OK && (now.id_len != k->id_len || memcmp(now.id, k->id, k->id_len) != 0 ||
	                     strcmp(now.label, k->label) != 0 || !km_token_privkey_unsafe(&now)))
		rv = CKR_OBJECT_HANDLE_INVALID;
	if (km_p11_rv_is_stale_handle(rv)) {
		km_p11_set_error(t, "%s: destroy: private key handle %lu is gone or is no longer the "
		                 "unsafe key that was reported", t->who, k->handle);
		r = KM_P11_ENOKEY;
		goto out;
	}
	/* The handle cache may hold it (a keymgr CKA_ID): a signer must not use it meanwhile. */
	if (k->id_len > 0)
		km_p11_cache_drop(&t->cache, k->id, k->id_len);
	if (rv == CKR_OK)
		rv = t->fl->C_DestroyObject(t->admin, (CK_OBJECT_HANDLE)k->handle);
	r = rv == CKR_OK ? KM_EOK : km_p11_fail(t, rv, "C_DestroyObject (unsafe private key)");
	if (k->id_len > 0)
		km_p11_cache_drop(&t->cache, k->id, k->id_len);
out:
	pthread_mutex_unlock(&t->admin_lock);
	return r;
}
