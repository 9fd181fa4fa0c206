/* SPDX-License-Identifier: Apache-2.0 */
/* Reading public keys, destroying key pairs, and listing the keys of a token. */
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "pkcs11/failure.h"
#include "pkcs11/internal.h"
#include "pkcs11/keys.h"
#include "pkcs11/pubkey.h"
#include "pkcs11/recover.h"
#include "pkcs11/token_int.h"

int km_token_get_public(km_token_t *t, const uint8_t *id, size_t id_len, km_pubkey_t *pub)
{
	km_p11_key_t k;
	km_pubkey_t p;
	int r;
	unsigned idx;

	if (pub == NULL) {
		km_p11_set_error(t, "%s: get public key: no output given", t->who);
		return KM_EINVAL;
	}
	if ((r = km_p11_session_get(t, &idx)) != KM_EOK)
		return r;
	CK_SESSION_HANDLE s = t->pool.sessions[idx];
	for (int attempt = 0; attempt < 2; attempt++) {
		if ((r = km_p11_key_resolve(t, s, id, id_len, &k)) != KM_EOK)
			goto out;
		r = km_p11_read_public(t, s, &k, &p);
		if (r != KM_P11_ENOKEY)
			break;
		/* The cached handle may be stale (destroyed elsewhere): search once more. */
		km_p11_cache_drop(&t->cache, id, id_len);
	}
	if (r == KM_EOK)
		*pub = p;
out:
	km_p11_pool_release(&t->pool, idx);
	return r;
}

int km_token_destroy(km_token_t *t, const uint8_t *id, size_t id_len)
{
	static const CK_OBJECT_CLASS classes[] = { CKO_PRIVATE_KEY, CKO_PUBLIC_KEY };
	int r = KM_EOK;
	size_t destroyed = 0;

	if (id == NULL || id_len == 0 || id_len > KM_P11_ID_MAX) {
		km_p11_set_error(t, "%s: destroy: CKA_ID of %zu bytes is not valid", t->who, id_len);
		return KM_EINVAL;
	}
	pthread_mutex_lock(&t->admin_lock);
	if ((r = km_p11_ready_locked(t)) != KM_EOK) {
		pthread_mutex_unlock(&t->admin_lock);
		return r;
	}
	/* Drop first: a signer that races us then fails cleanly instead of re-caching. */
	km_p11_cache_drop(&t->cache, id, id_len);
	for (size_t c = 0; c < 2; c++) {
		CK_OBJECT_CLASS cls = classes[c];
		CK_ATTRIBUTE tmpl[] = {
			{ CKA_CLASS, &cls, sizeof(cls) },
			{ CKA_ID, (void *)id, id_len },
		};
		CK_OBJECT_HANDLE objs[8];
		CK_ULONG n = 0;
		CK_RV rv = km_p11_find(t, t->admin, tmpl, 2, objs, 8, &n);
		if (rv != CKR_OK) {
			r = km_p11_fail(t, rv, "C_FindObjects (destroy)");
			goto out;
		}
		for (CK_ULONG i = 0; i < n; i++) {
			rv = t->fl->C_DestroyObject(t->admin, objs[i]);
			if (rv != CKR_OK) {
				r = km_p11_fail(t, rv, "C_DestroyObject");
				goto out;
			}
			destroyed++;
		}
	}
	if (destroyed == 0) {
		km_p11_set_error(t, "%s: destroy: no key with this CKA_ID", t->who);
		r = KM_P11_ENOKEY;
	}
out:
	/* Again after the objects are gone, in case a signer cached them meanwhile. */
	km_p11_cache_drop(&t->cache, id, id_len);
	pthread_mutex_unlock(&t->admin_lock);
	return r;
}

int km_token_list_keys(km_token_t *t, km_token_key_info_t **ret, size_t *count)
{
	int r = KM_ERROR;
	CK_OBJECT_HANDLE *objs = NULL;
	size_t n_obj = 0, cap = 0, n_priv = 0, n_keys = 0;
	km_token_key_info_t *keys = NULL;
	CK_RV rv;

	pthread_mutex_lock(&t->admin_lock);
	if ((r = km_p11_ready_locked(t)) != KM_EOK)
		goto out;
	if ((rv = km_p11_collect(t, CKO_PRIVATE_KEY, &objs, &n_obj, &cap)) != CKR_OK) {
		r = km_p11_fail(t, rv, "C_FindObjects (list private keys)");
		goto out;
	}
	n_priv = n_obj;
	if ((rv = km_p11_collect(t, CKO_PUBLIC_KEY, &objs, &n_obj, &cap)) != CKR_OK) {
		r = km_p11_fail(t, rv, "C_FindObjects (list public keys)");
		goto out;
	}
	keys = calloc(n_obj + 1, sizeof(*keys));
	if (keys == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n_obj; i++) {
		uint8_t id[KM_TOKEN_ID_MAX];
		char label[sizeof(keys[0].label)];
		CK_KEY_TYPE kt = (CK_KEY_TYPE)-1;
		CK_ATTRIBUTE a[] = {
			{ CKA_ID, id, sizeof(id) },
			{ CKA_LABEL, label, sizeof(label) - 1 },
			{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		};
		rv = t->fl->C_GetAttributeValue(t->admin, objs[i], a, 3);
		/*
		 * BUFFER_TOO_SMALL / ATTRIBUTE_TYPE_INVALID mark single attributes as unavailable:
		 * an over-long label is dropped, an ID longer than KM_TOKEN_ID_MAX skips the object.
		 */
		if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL && rv != CKR_ATTRIBUTE_TYPE_INVALID &&
		    rv != CKR_ATTRIBUTE_SENSITIVE) {
			if (km_p11_rv_is_stale_handle(rv))
				continue;       /* destroyed by someone else while we listed */
			r = km_p11_fail(t, rv, "C_GetAttributeValue (list keys)");
			goto out;
		}
		if (a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION)
			continue;
		size_t id_len = a[0].ulValueLen;
		size_t label_len = a[1].ulValueLen == CK_UNAVAILABLE_INFORMATION ? 0 : a[1].ulValueLen;
		label[label_len] = '\0';

		km_token_key_info_t *k = NULL;
		for (size_t j = 0; j < n_keys; j++) {
			if (keys[j].id_len == id_len && memcmp(keys[j].id, id, id_len) == 0) {
				k = &keys[j];
				break;
			}
		}
		if (k == NULL) {
			k = &keys[n_keys++];
			memcpy(k->id, id, id_len);
			k->id_len = id_len;
			k->keymgr_id = id_len == KM_TOKEN_ID_LEN &&
			               memcmp(id, KM_TOKEN_ID_MAGIC, KM_TOKEN_ID_MAGIC_LEN) == 0;
		}
		bool is_priv = i < n_priv;
		/* The private object's label and type win; the public one fills gaps. */
		if (is_priv || k->label[0] == '\0')
			memcpy(k->label, label, label_len + 1);
		if (a[2].ulValueLen != CK_UNAVAILABLE_INFORMATION && (is_priv || k->kty == 0))
			k->kty = km_p11_kty(kt);
		if (is_priv)
			k->has_private = true;
		else
			k->has_public = true;
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
	*count = n_keys;
	return KM_EOK;
}
