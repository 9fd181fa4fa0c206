/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Finding key objects by CKA_ID and reading what the rest of pkcs11/ needs to know about
 * them. This is the only place that searches for a single key; it runs once per ID, after
 * which the handle cache answers.
 */
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "pkcs11/failure.h"
#include "pkcs11/internal.h"
#include "pkcs11/keys.h"
#include "pkcs11/token_int.h"

static const uint8_t oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const uint8_t oid_p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
static const uint8_t oid_p521[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23 };
static const uint8_t oid_ed25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
/* PrintableString "edwards25519": the pre-OID form some tokens still accept and return. */
static const uint8_t name_ed25519[] = { 0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5',
                                        '5', '1', '9' };
/* Thales Luna's own OID for Ed25519, 1.3.6.1.4.1.11591.15.1. */
static const uint8_t luna_ed25519[] = { 0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47,
                                        0x0f, 0x01 };

const uint8_t *km_p11_ed25519_params(unsigned i, size_t *len)
{
	switch (i) {
	case 0: *len = sizeof(oid_ed25519); return oid_ed25519;
	case 1: *len = sizeof(name_ed25519); return name_ed25519;
	case 2: *len = sizeof(luna_ed25519); return luna_ed25519;
	default: *len = 0; return NULL;
	}
}

const uint8_t *km_p11_curve_params(km_crv_t crv, size_t *len)
{
	switch (crv) {
	case KM_CRV_P256: *len = sizeof(oid_p256); return oid_p256;
	case KM_CRV_P384: *len = sizeof(oid_p384); return oid_p384;
	case KM_CRV_P521: *len = sizeof(oid_p521); return oid_p521;
	case KM_CRV_ED25519: *len = sizeof(oid_ed25519); return oid_ed25519;
	default: *len = 0; return NULL;
	}
}

km_crv_t km_p11_curve_from_params(const uint8_t *der, size_t len)
{
#define IS(a) (len == sizeof(a) && memcmp(der, a, len) == 0)
	if (IS(oid_p256))
		return KM_CRV_P256;
	if (IS(oid_p384))
		return KM_CRV_P384;
	if (IS(oid_p521))
		return KM_CRV_P521;
	if (IS(oid_ed25519) || IS(name_ed25519) || IS(luna_ed25519))
		return KM_CRV_ED25519;
	return KM_CRV_NONE;
#undef IS
}

bool km_p11_rv_is_stale_handle(CK_RV rv)
{
	return rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID;
}

CK_RV km_p11_find(km_token_t *t, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
                  CK_OBJECT_HANDLE *objs, CK_ULONG max, CK_ULONG *count)
{
	CK_ULONG got = 0;
	CK_RV rv = t->fl->C_FindObjectsInit(s, tmpl, n);

	if (rv != CKR_OK)
		return rv;
	rv = t->fl->C_FindObjects(s, objs, max, &got);
	CK_RV rv2 = t->fl->C_FindObjectsFinal(s);
	if (rv == CKR_OK)
		rv = rv2;
	if (rv == CKR_OK)
		*count = got;
	return rv;
}

CK_RV km_p11_collect(km_token_t *t, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE **objs, size_t *n,
                     size_t *cap)
{
	CK_ATTRIBUTE tmpl = { CKA_CLASS, &cls, sizeof(cls) };
	CK_RV rv = t->fl->C_FindObjectsInit(t->admin, &tmpl, 1);

	if (rv != CKR_OK)
		return rv;
	for (;;) {
		if (*n + 64 > *cap) {
			size_t ncap = *cap ? *cap * 2 : 128;
			CK_OBJECT_HANDLE *p = realloc(*objs, ncap * sizeof(*p));
			if (p == NULL) {
				rv = CKR_HOST_MEMORY;
				break;
			}
			*objs = p;
			*cap = ncap;
		}
		CK_ULONG got = 0;
		rv = t->fl->C_FindObjects(t->admin, *objs + *n, 64, &got);
		if (rv != CKR_OK || got == 0)
			break;
		*n += got;
	}
	CK_RV rv2 = t->fl->C_FindObjectsFinal(t->admin);
	return rv != CKR_OK ? rv : rv2;
}

km_kty_t km_p11_kty(CK_KEY_TYPE kt)
{
	switch (kt) {
	case CKK_RSA: return KM_KTY_RSA;
	case CKK_EC: return KM_KTY_EC;
	case CKK_EC_EDWARDS: return KM_KTY_OKP;
	default: return (km_kty_t)0;
	}
}

static unsigned bits_of(const uint8_t *n, size_t len)
{
	while (len > 0 && n[0] == 0) {
		n++;
		len--;
	}
	if (len == 0)
		return 0;
	unsigned bits = (unsigned)(len - 1) * 8;
	for (uint8_t top = n[0]; top != 0; top >>= 1)
		bits++;
	return bits;
}

/* Reads key type, curve/modulus and allowed mechanisms from obj (either class). */
static CK_RV read_properties(km_token_t *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj,
                             km_p11_key_t *k)
{
	CK_KEY_TYPE kt = 0;
	CK_ATTRIBUTE a = { CKA_KEY_TYPE, &kt, sizeof(kt) };
	CK_RV rv = t->fl->C_GetAttributeValue(s, obj, &a, 1);

	if (rv != CKR_OK)
		return rv;
	k->kty = km_p11_kty(kt);

	if (k->kty == KM_KTY_EC || k->kty == KM_KTY_OKP) {
		uint8_t params[64];
		CK_ATTRIBUTE p = { CKA_EC_PARAMS, params, sizeof(params) };
		if (t->fl->C_GetAttributeValue(s, obj, &p, 1) == CKR_OK)
			k->crv = km_p11_curve_from_params(params, p.ulValueLen);
	} else if (k->kty == KM_KTY_RSA) {
		/* CKA_MODULUS is public on both objects; the private key has no MODULUS_BITS. */
		uint8_t mod[1024];
		CK_ATTRIBUTE m = { CKA_MODULUS, mod, sizeof(mod) };
		if (t->fl->C_GetAttributeValue(s, obj, &m, 1) == CKR_OK)
			k->rsa_bits = bits_of(mod, m.ulValueLen);
	}

	CK_MECHANISM_TYPE mechs[KM_P11_MAX_ALLOWED_MECHS];
	CK_ATTRIBUTE am = { CKA_ALLOWED_MECHANISMS, mechs, sizeof(mechs) };
	rv = t->fl->C_GetAttributeValue(s, obj, &am, 1);
	k->allowed_known = false;
	k->n_allowed = 0;
	/* An empty list means "no restriction" (PKCS#11 2.40 section 4.4). */
	if (rv == CKR_OK && am.ulValueLen != CK_UNAVAILABLE_INFORMATION &&
	    am.ulValueLen >= sizeof(CK_MECHANISM_TYPE)) {
		k->n_allowed = am.ulValueLen / sizeof(CK_MECHANISM_TYPE);
		memcpy(k->allowed, mechs, k->n_allowed * sizeof(CK_MECHANISM_TYPE));
		k->allowed_known = true;
	}
	return CKR_OK;
}

int km_p11_key_lookup(km_token_t *t, CK_SESSION_HANDLE s, const uint8_t *id, size_t id_len,
                      km_p11_key_t *ret)
{
	km_p11_key_t k = { 0 };
	CK_OBJECT_CLASS cls;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_ID, (void *)id, id_len },
	};
	CK_OBJECT_HANDLE objs[2];
	CK_ULONG n = 0;
	CK_RV rv;

	if (id == NULL || id_len == 0 || id_len > KM_P11_ID_MAX) {
		km_p11_set_error(t, "%s: key lookup: CKA_ID of %zu bytes is not valid", t->who,
		                 id_len);
		return KM_EINVAL;
	}
	memcpy(k.id, id, id_len);
	k.id_len = id_len;
	k.priv = CK_INVALID_HANDLE;
	k.pub = CK_INVALID_HANDLE;

	cls = CKO_PRIVATE_KEY;
	rv = km_p11_find(t, s, tmpl, 2, objs, 2, &n);
	if (rv != CKR_OK)
		return km_p11_fail(t, rv, "C_FindObjects (private key)");
	if (n > 1) {
		km_p11_set_error(t, "%s: more than one private key has this CKA_ID", t->who);
		return KM_P11_EFAIL;
	}
	if (n == 1)
		k.priv = objs[0];

	cls = CKO_PUBLIC_KEY;
	n = 0;
	rv = km_p11_find(t, s, tmpl, 2, objs, 2, &n);
	if (rv != CKR_OK)
		return km_p11_fail(t, rv, "C_FindObjects (public key)");
	if (n > 1) {
		km_p11_set_error(t, "%s: more than one public key has this CKA_ID", t->who);
		return KM_P11_EFAIL;
	}
	if (n == 1)
		k.pub = objs[0];

	if (k.priv == CK_INVALID_HANDLE && k.pub == CK_INVALID_HANDLE) {
		km_p11_set_error(t, "%s: no key with this CKA_ID (destroyed, or never created on "
		                 "this token)", t->who);
		return KM_P11_ENOKEY;
	}
	rv = read_properties(t, s, k.priv != CK_INVALID_HANDLE ? k.priv : k.pub, &k);
	if (rv != CKR_OK)
		return km_p11_fail(t, rv, "C_GetAttributeValue (key type)");
	*ret = k;
	return KM_EOK;
}

int km_p11_key_resolve(km_token_t *t, CK_SESSION_HANDLE s, const uint8_t *id, size_t id_len,
                       km_p11_key_t *ret)
{
	km_p11_key_t k;
	int r;

	if (id == NULL || id_len == 0 || id_len > KM_P11_ID_MAX) {
		km_p11_set_error(t, "%s: CKA_ID of %zu bytes is not valid", t->who, id_len);
		return KM_EINVAL;
	}
	if (km_p11_cache_get(&t->cache, id, id_len, ret))
		return KM_EOK;
	uint64_t gen = km_p11_cache_generation(&t->cache);
	r = km_p11_key_lookup(t, s, id, id_len, &k);
	if (r != KM_EOK)
		return r;
	/* A failed insert only costs a search next time. */
	(void)km_p11_cache_put(&t->cache, &k, gen);
	*ret = k;
	return KM_EOK;
}
