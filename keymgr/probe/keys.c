/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keys made for one probe run, in memory, with OpenSSL: the forgeries' signers. They never
 * touch a token or a store, and they are freed when the run ends. No environment's key is
 * ever used for a forgery: only the probed key set's own key signs, and only through
 * km_claims_sign_probe().
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/pubkey.h"
#include "keymgr/jose/jwk.h"
#include "keymgr/jose/jws.h"
#include "keymgr/probe/probe_int.h"

struct probe_key {
	EVP_PKEY *pkey;
	km_kty_t kty;
	km_crv_t crv;
};

static const char *group_of(km_crv_t crv)
{
	switch (crv) {
	case KM_CRV_P256: return "P-256";
	case KM_CRV_P384: return "P-384";
	default: return "P-521";
	}
}

int probe_key_new(km_alg_t alg, probe_key_t **ret)
{
	const km_alg_info_t *ai = km_alg_info(alg);
	probe_key_t *k;
	if (ai == NULL)
		return KM_EALG;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return KM_ENOMEM;
	k->kty = ai->kty;
	k->crv = ai->crv;
	if (ai->kty == KM_KTY_RSA)
		k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	else if (ai->kty == KM_KTY_EC)
		k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group_of(ai->crv));
	else
		k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (k->pkey == NULL) {
		ERR_clear_error();
		free(k);
		return KM_ECRYPTO;
	}
	*ret = k;
	return KM_EOK;
}

void probe_key_free(probe_key_t *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

static const EVP_MD *md_of(km_hash_t h)
{
	switch (h) {
	case KM_HASH_SHA256: return EVP_sha256();
	case KM_HASH_SHA384: return EVP_sha384();
	case KM_HASH_SHA512: return EVP_sha512();
	default: return NULL;
	}
}

/* DER ECDSA-Sig-Value -> JOSE r||s at field width w. */
static int ecdsa_raw(const uint8_t *der, size_t der_len, size_t w, uint8_t *sig,
                     size_t *sig_len)
{
	const uint8_t *p = der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	const BIGNUM *r = NULL, *s = NULL;
	int rc = KM_ECRYPTO;
	if (es == NULL)
		return KM_ECRYPTO;
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, sig, (int)w) == (int)w && BN_bn2binpad(s, sig + w, (int)w) == (int)w) {
		*sig_len = 2 * w;
		rc = KM_EOK;
	}
	ECDSA_SIG_free(es);
	return rc;
}

int probe_key_sign(const probe_key_t *k, km_alg_t alg, const uint8_t *data, size_t len,
                   uint8_t *sig, size_t *sig_len)
{
	const km_alg_info_t *ai = km_alg_info(alg);
	uint8_t der[KM_JWS_SIG_MAX + 16];
	size_t n = sizeof(der);
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	int r = KM_ECRYPTO;

	if (ai == NULL || ai->kty != k->kty || (ai->kty != KM_KTY_RSA && ai->crv != k->crv))
		return KM_EALG;
	const EVP_MD *hash = md_of(ai->hash);
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(md, &pctx, hash, NULL, k->pkey) != 1)
		goto out;
	if (ai->pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
	                EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, hash) != 1))
		goto out;
	if (EVP_DigestSign(md, der, &n, data, len) != 1)
		goto out;
	if (ai->kty == KM_KTY_EC) {
		r = ecdsa_raw(der, n, km_crv_field_len(ai->crv), sig, sig_len);
	} else if (n <= KM_JWS_SIG_MAX) {
		memcpy(sig, der, n);
		*sig_len = n;
		r = KM_EOK;
	}
out:
	if (r != KM_EOK)
		ERR_clear_error();
	EVP_MD_CTX_free(md);
	return r;
}

/* The public half as keymgr's km_pubkey_t, for km_jwk_from_pubkey(). */
static int to_pubkey(const probe_key_t *k, km_pubkey_t *pub)
{
	BIGNUM *n = NULL, *e = NULL;
	uint8_t point[1 + 2 * KM_PUBKEY_MAX_XY];
	size_t len = 0;
	int r = KM_ECRYPTO;

	memset(pub, 0, sizeof(*pub));
	pub->kty = k->kty;
	pub->crv = k->crv;
	if (k->kty == KM_KTY_OKP) {
		pub->crv = KM_CRV_ED25519;
		pub->x_len = sizeof(pub->x);
		if (EVP_PKEY_get_raw_public_key(k->pkey, pub->x, &pub->x_len) == 1)
			r = KM_EOK;
	} else if (k->kty == KM_KTY_RSA) {
		if (EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
		    EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1 &&
		    BN_num_bytes(n) <= KM_PUBKEY_MAX_N && BN_num_bytes(e) <= KM_PUBKEY_MAX_E) {
			pub->n_len = (size_t)BN_bn2bin(n, pub->n);
			pub->e_len = (size_t)BN_bn2bin(e, pub->e);
			pub->rsa_bits = (unsigned)BN_num_bits(n);
			r = KM_EOK;
		}
	} else {
		size_t w = km_crv_field_len(k->crv);
		if (EVP_PKEY_get_octet_string_param(k->pkey, OSSL_PKEY_PARAM_PUB_KEY, point,
		                                    sizeof(point), &len) == 1 &&
		    len == 1 + 2 * w && point[0] == 0x04) {
			memcpy(pub->x, point + 1, w);
			memcpy(pub->y, point + 1 + w, w);
			pub->x_len = pub->y_len = w;
			r = KM_EOK;
		}
	}
	if (r != KM_EOK)
		ERR_clear_error();
	BN_free(n);
	BN_free(e);
	return r;
}

int probe_key_jwk(const probe_key_t *k, km_alg_t alg, json_t **ret)
{
	km_pubkey_t pub;
	int r = to_pubkey(k, &pub);
	return r == KM_EOK ? km_jwk_from_pubkey(&pub, alg, ret) : r;
}

int probe_key_cert_pem(const probe_key_t *k, int64_t now, char **ret)
{
	X509 *x = X509_new();
	X509_NAME *name = NULL;
	BIO *bio = NULL;
	char *data = NULL;
	time_t t = (time_t)now;
	long len;
	int r = KM_ECRYPTO;

	if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
	    X509_time_adj_ex(X509_getm_notBefore(x), 0, -60, &t) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), 0, 3600, &t) == NULL ||
	    (name = X509_get_subject_name(x)) == NULL ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                               (const unsigned char *)"keymgr-probe", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, k->pkey) != 1 ||
	    X509_sign(x, k->pkey, k->kty == KM_KTY_OKP ? NULL : EVP_sha256()) <= 0)
		goto out;
	r = KM_ENOMEM;
	if ((bio = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509(bio, x) != 1 ||
	    (len = BIO_get_mem_data(bio, &data)) <= 0 || (*ret = malloc((size_t)len + 1)) == NULL)
		goto out;
	memcpy(*ret, data, (size_t)len);
	(*ret)[len] = '\0';
	r = KM_EOK;
out:
	if (r != KM_EOK)
		ERR_clear_error();
	BIO_free(bio);
	X509_free(x);
	return r;
}

int probe_hs256(const void *key, size_t key_len, const uint8_t *data, size_t len,
                uint8_t mac[32])
{
	unsigned int n = 32;
	static const uint8_t empty[1];
	/* HMAC() reads key_len bytes: an empty key still needs a pointer. */
	return HMAC(EVP_sha256(), key_len > 0 ? key : empty, (int)key_len, data, len, mac, &n) !=
	       NULL && n == 32 ? KM_EOK : KM_ECRYPTO;
}
