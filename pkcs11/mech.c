/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mechanism of each JWS algorithm (mech.h), as caps.c chose it for the token:
 *   RS*: CKM_SHA{256,384,512}_RSA_PKCS over the message, or CKM_RSA_PKCS over a DigestInfo
 *   PS*: CKM_SHA{256,384,512}_RSA_PKCS_PSS, or CKM_RSA_PKCS_PSS over the hash; MGF1 with the
 *        same hash, salt = hash length, either way
 *   ES*: CKM_ECDSA over the hash (sign.c hashes: SoftHSM 2.6.1 has no CKM_ECDSA_SHA*)
 *   EdDSA: CKM_EDDSA over the message
 */
#include "pkcs11/mech.h"
#include "pkcs11/token_int.h"

CK_MECHANISM_TYPE km_p11_alg_mechanism(const km_token_t *t, km_alg_t alg)
{
	if (alg <= KM_ALG_NONE || alg > KM_ALG_COUNT)
		return CKM_VENDOR_DEFINED;
	return t->via[alg - 1].mech;
}

static CK_MECHANISM_TYPE hash_mech(km_hash_t h)
{
	switch (h) {
	case KM_HASH_SHA256: return CKM_SHA256;
	case KM_HASH_SHA384: return CKM_SHA384;
	default: return CKM_SHA512;
	}
}

static CK_RSA_PKCS_MGF_TYPE hash_mgf(km_hash_t h)
{
	switch (h) {
	case KM_HASH_SHA256: return CKG_MGF1_SHA256;
	case KM_HASH_SHA384: return CKG_MGF1_SHA384;
	default: return CKG_MGF1_SHA512;
	}
}

CK_RV km_p11_sign_init(km_token_t *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                       const km_alg_info_t *ai)
{
	CK_RSA_PKCS_PSS_PARAMS pss = {
		.hashAlg = hash_mech(ai->hash),
		.mgf = hash_mgf(ai->hash),
		.sLen = km_hash_len(ai->hash),
	};
	CK_MECHANISM mech = { km_p11_alg_mechanism(t, ai->alg), NULL, 0 };

	if (ai->pss) {
		mech.pParameter = &pss;
		mech.ulParameterLen = sizeof(pss);
	}
	return t->fl->C_SignInit(s, &mech, key);
}
