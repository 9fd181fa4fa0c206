/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading a public key object into the raw JOSE form of km_pubkey_t.
 *   RSA: CKA_MODULUS and CKA_PUBLIC_EXPONENT, leading zero bytes stripped.
 *   EC:  CKA_EC_POINT, a DER OCTET STRING around 04||X||Y (some tokens return it raw).
 *   Ed25519: CKA_EC_POINT, a DER OCTET STRING around the 32-byte key (or the raw 32 bytes).
 */
#include <string.h>

#include "keymgr/common/error.h"
#include "pkcs11/failure.h"
#include "pkcs11/pubkey.h"
#include "pkcs11/token_int.h"

static void strip_zeros(const uint8_t **p, size_t *len)
{
	while (*len > 1 && (*p)[0] == 0) {
		(*p)++;
		(*len)--;
	}
}

/*
 * Unwraps a DER OCTET STRING that spans exactly the whole buffer. Returns false when buf is
 * not such a string.
 */
static bool der_octet_string(const uint8_t *buf, size_t len, const uint8_t **content,
                             size_t *content_len)
{
	size_t hdr, clen;

	if (len < 2 || buf[0] != 0x04)
		return false;
	if (buf[1] < 0x80) {
		clen = buf[1];
		hdr = 2;
	} else if (buf[1] == 0x81 && len >= 3) {
		clen = buf[2];
		hdr = 3;
	} else if (buf[1] == 0x82 && len >= 4) {
		clen = ((size_t)buf[2] << 8) | buf[3];
		hdr = 4;
	} else {
		return false;
	}
	if (hdr + clen != len)
		return false;
	*content = buf + hdr;
	*content_len = clen;
	return true;
}

/*
 * Finds the point inside CKA_EC_POINT. want is the length of the bare point (65 for an
 * uncompressed P-256 point, 32 for Ed25519). The wrapped form is always longer than want,
 * so the two forms cannot be confused.
 */
static bool ec_point(const uint8_t *buf, size_t len, size_t want, const uint8_t **pt)
{
	const uint8_t *c;
	size_t clen;

	if (len == want) {
		*pt = buf;
		return true;
	}
	if (der_octet_string(buf, len, &c, &clen) && clen == want) {
		*pt = c;
		return true;
	}
	return false;
}

static int read_rsa(km_token_t *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, km_pubkey_t *pub)
{
	uint8_t n[KM_PUBKEY_MAX_N + 8], e[KM_PUBKEY_MAX_E + 8];
	CK_ATTRIBUTE a[] = {
		{ CKA_MODULUS, n, sizeof(n) },
		{ CKA_PUBLIC_EXPONENT, e, sizeof(e) },
	};
	CK_RV rv = t->fl->C_GetAttributeValue(s, obj, a, 2);

	if (rv == CKR_BUFFER_TOO_SMALL) {
		km_p11_set_error(t, "%s: RSA public key larger than %d bits is not supported",
		                 t->who, KM_PUBKEY_MAX_N * 8);
		return KM_EKEYSIZE;
	}
	if (rv != CKR_OK)
		return km_p11_fail(t, rv, "C_GetAttributeValue (RSA public key)");
	const uint8_t *pn = n, *pe = e;
	size_t nl = a[0].ulValueLen, el = a[1].ulValueLen;
	strip_zeros(&pn, &nl);
	strip_zeros(&pe, &el);
	if (nl == 0 || nl > KM_PUBKEY_MAX_N || el == 0 || el > KM_PUBKEY_MAX_E) {
		km_p11_set_error(t, "%s: RSA public key has an unusable modulus or exponent", t->who);
		return KM_EKEYSIZE;
	}
	memcpy(pub->n, pn, nl);
	pub->n_len = nl;
	memcpy(pub->e, pe, el);
	pub->e_len = el;
	pub->rsa_bits = (unsigned)nl * 8;
	for (uint8_t top = pn[0]; !(top & 0x80); top <<= 1)
		pub->rsa_bits--;
	return KM_EOK;
}

static int read_ec(km_token_t *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, km_crv_t crv,
                   bool okp, km_pubkey_t *pub)
{
	uint8_t buf[256];
	CK_ATTRIBUTE a = { CKA_EC_POINT, buf, sizeof(buf) };
	size_t field = km_crv_field_len(crv);
	const uint8_t *pt;
	CK_RV rv = t->fl->C_GetAttributeValue(s, obj, &a, 1);

	if (rv != CKR_OK)
		return km_p11_fail(t, rv, "C_GetAttributeValue (CKA_EC_POINT)");
	if (okp) {
		if (!ec_point(buf, a.ulValueLen, field, &pt)) {
			km_p11_set_error(t, "%s: CKA_EC_POINT of the Ed25519 key is malformed", t->who);
			return KM_EMALFORMED;
		}
		memcpy(pub->x, pt, field);
		pub->x_len = field;
		return KM_EOK;
	}
	if (!ec_point(buf, a.ulValueLen, 1 + 2 * field, &pt) || pt[0] != 0x04) {
		km_p11_set_error(t, "%s: CKA_EC_POINT is not an uncompressed point of %s", t->who,
		                 km_crv_name(crv));
		return KM_EMALFORMED;
	}
	memcpy(pub->x, pt + 1, field);
	pub->x_len = field;
	memcpy(pub->y, pt + 1 + field, field);
	pub->y_len = field;
	return KM_EOK;
}

int km_p11_read_public(km_token_t *t, CK_SESSION_HANDLE s, const km_p11_key_t *k,
                       km_pubkey_t *ret)
{
	km_pubkey_t pub = { 0 };
	int r;

	if (k->pub == CK_INVALID_HANDLE) {
		km_p11_set_error(t, "%s: the key pair has no public key object", t->who);
		return KM_P11_ENOKEY;
	}
	pub.kty = k->kty;
	pub.crv = k->crv;
	switch (k->kty) {
	case KM_KTY_RSA:
		pub.crv = KM_CRV_NONE;
		r = read_rsa(t, s, k->pub, &pub);
		break;
	case KM_KTY_EC:
	case KM_KTY_OKP:
		if (k->crv == KM_CRV_NONE || (k->kty == KM_KTY_OKP) != (k->crv == KM_CRV_ED25519)) {
			km_p11_set_error(t, "%s: the key's curve is not one keymgr supports", t->who);
			return KM_EALG;
		}
		r = read_ec(t, s, k->pub, k->crv, k->kty == KM_KTY_OKP, &pub);
		break;
	default:
		km_p11_set_error(t, "%s: the key's type is not one keymgr supports", t->who);
		return KM_EALG;
	}
	if (r == KM_EOK)
		*ret = pub;
	return r;
}
