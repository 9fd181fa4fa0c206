/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JOSE signature verification with OpenSSL EVP from a public key (km_verify_signature):
 * keymgr verify, and the token layer's test signature of every new key (pkcs11/confirm.c).
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/sigverify.h"

static EVP_PKEY *pkey_from(const km_pubkey_t *pub)
{
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	BIGNUM *n = NULL, *e = NULL;
	uint8_t point[1 + 2 * KM_PUBKEY_MAX_XY];
	const char *type = "EC";

	if (pub->kty == KM_KTY_OKP)
		return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub->x, pub->x_len);
	if ((bld = OSSL_PARAM_BLD_new()) == NULL)
		goto out;
	if (pub->kty == KM_KTY_RSA) {
		type = "RSA";
		n = BN_bin2bn(pub->n, (int)pub->n_len, NULL);
		e = BN_bin2bn(pub->e, (int)pub->e_len, NULL);
		if (n == NULL || e == NULL || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
			goto out;
	} else {
		const char *group = pub->crv == KM_CRV_P256 ? "prime256v1" :
		                    pub->crv == KM_CRV_P384 ? "secp384r1" : "secp521r1";
		size_t w = km_crv_field_len(pub->crv);
		if (pub->x_len != w || pub->y_len != w)
			goto out;
		point[0] = 0x04;
		memcpy(point + 1, pub->x, w);
		memcpy(point + 1 + w, pub->y, w);
		if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * w))
			goto out;
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return pkey;
}

int km_pubkey_pem(const km_pubkey_t *pub, char **ret)
{
	EVP_PKEY *pkey = pub != NULL ? pkey_from(pub) : NULL;
	BIO *bio = NULL;
	char *data = NULL, *out = NULL;
	long len;
	int r = KM_EINVAL;

	if (pkey == NULL || ret == NULL)
		goto out;
	r = KM_ENOMEM;
	if ((bio = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_PUBKEY(bio, pkey) != 1 ||
	    (len = BIO_get_mem_data(bio, &data)) <= 0 || (out = malloc((size_t)len + 1)) == NULL)
		goto out;
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	*ret = out;
	r = KM_EOK;
out:
	if (r != KM_EOK)
		ERR_clear_error();
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return r;
}

/* JOSE r||s (two halves of the field width) -> DER ECDSA-Sig-Value. Length, or 0. */
static int ecdsa_der(const uint8_t *sig, size_t sig_len, uint8_t **der)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)(sig_len / 2), NULL);
	BIGNUM *s = BN_bin2bn(sig + sig_len / 2, (int)(sig_len / 2), NULL);
	int len = 0;

	if (es != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(es, r, s) == 1) {
		r = s = NULL;
		len = i2d_ECDSA_SIG(es, der);
		if (len < 0)
			len = 0;
	}
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return len;
}

static const EVP_MD *md_of(km_hash_t h)
{
	switch (h) {
	case KM_HASH_SHA256: return EVP_sha256();
	case KM_HASH_SHA384: return EVP_sha384();
	case KM_HASH_SHA512: return EVP_sha512();
	default: return NULL;   /* EdDSA hashes internally */
	}
}

int km_verify_signature(const km_pubkey_t *pub, km_alg_t alg, const uint8_t *data,
                        size_t len, const uint8_t *sig, size_t sig_len)
{
	const km_alg_info_t *ai = km_alg_info(alg);
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *der = NULL;
	int r = KM_EALG;

	if (ai == NULL || pub == NULL || ai->kty != pub->kty ||
	    (ai->kty != KM_KTY_RSA && ai->crv != pub->crv))
		return KM_EALG;
	if (ai->kty == KM_KTY_RSA && pub->rsa_bits < KM_RSA_MIN_BITS)
		return KM_EKEYSIZE;   /* RFC 7518 section 3.3: 2048 bits or more */
	/* Fixed lengths: r||s at field width, Ed25519 64 bytes, RSA the modulus length. */
	if ((ai->kty == KM_KTY_RSA && sig_len != pub->n_len) ||
	    (ai->kty != KM_KTY_RSA && sig_len != ai->sig_len))
		return KM_ECRYPTO;
	r = KM_ECRYPTO;
	const EVP_MD *hash = md_of(ai->hash);
	if ((pkey = pkey_from(pub)) == NULL || (md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, &pctx, hash, NULL, pkey) != 1)
		goto out;
	if (ai->pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
	                EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, hash) != 1))
		goto out;
	if (ai->kty == KM_KTY_EC) {
		int dlen = ecdsa_der(sig, sig_len, &der);
		if (dlen > 0 && EVP_DigestVerify(md, der, (size_t)dlen, data, len) == 1)
			r = KM_EOK;
	} else if (EVP_DigestVerify(md, sig, sig_len, data, len) == 1) {
		r = KM_EOK;
	}
out:
	if (r != KM_EOK)
		ERR_clear_error();   /* a refused signature is an answer, not an OpenSSL error */
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	return r;
}
