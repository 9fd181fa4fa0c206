/* SPDX-License-Identifier: Apache-2.0 */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <pthread.h>
#include <string.h>

#include "keymgr/jose/ecdsa_s.h"

#define ORDER_MAX 66   /* P-521 */

/* The order n and n/2 of a curve, big-endian at field width, read once from OpenSSL. */
typedef struct {
	km_crv_t crv;
	int nid;
	uint8_t n[ORDER_MAX], half[ORDER_MAX];
	bool ok;
} curve_t;

static curve_t curves[] = {
	{ KM_CRV_P256, NID_X9_62_prime256v1, { 0 }, { 0 }, false },
	{ KM_CRV_P384, NID_secp384r1, { 0 }, { 0 }, false },
	{ KM_CRV_P521, NID_secp521r1, { 0 }, { 0 }, false },
};
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load_orders(void)
{
	for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
		size_t len = km_crv_field_len(curves[i].crv);
		EC_GROUP *g = EC_GROUP_new_by_curve_name(curves[i].nid);
		BIGNUM *h = BN_new();
		const BIGNUM *n = g != NULL ? EC_GROUP_get0_order(g) : NULL;
		curves[i].ok = n != NULL && h != NULL && len <= ORDER_MAX &&
		               BN_rshift1(h, n) == 1 &&
		               BN_bn2binpad(n, curves[i].n, (int)len) == (int)len &&
		               BN_bn2binpad(h, curves[i].half, (int)len) == (int)len;
		BN_free(h);
		EC_GROUP_free(g);
	}
}

/* The curve of alg when sig is r||s of its length; NULL otherwise. */
static const curve_t *curve_of(km_alg_t alg, size_t sig_len)
{
	const km_alg_info_t *ai = km_alg_info(alg);
	if (ai == NULL || ai->kty != KM_KTY_EC || sig_len != ai->sig_len)
		return NULL;
	pthread_once(&once, load_orders);
	for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
		if (curves[i].crv == ai->crv && curves[i].ok)
			return &curves[i];
	return NULL;
}

static bool low_s(const curve_t *c, const uint8_t *sig, size_t sig_len)
{
	size_t half = sig_len / 2;
	return memcmp(sig + half, c->half, half) <= 0;
}

bool km_ecdsa_is_low_s(km_alg_t alg, const uint8_t *sig, size_t sig_len)
{
	const curve_t *c = curve_of(alg, sig_len);
	return c == NULL || low_s(c, sig, sig_len);
}

bool km_ecdsa_normalize_s(km_alg_t alg, uint8_t *sig, size_t sig_len)
{
	const curve_t *c = curve_of(alg, sig_len);
	if (c == NULL || low_s(c, sig, sig_len))
		return false;
	/* s := n - s, big-endian, at field width (s < n, so no borrow out). */
	size_t half = sig_len / 2;
	uint8_t *s = sig + half;
	int borrow = 0;
	for (size_t i = half; i-- > 0;) {
		int d = (int)c->n[i] - (int)s[i] - borrow;
		borrow = d < 0;
		s[i] = (uint8_t)(d + (borrow ? 256 : 0));
	}
	return true;
}
