/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mechanism of each JWS algorithm (mech.h):
 *   RS*: CKM_SHA{256,384,512}_RSA_PKCS over the message
 *   PS*: CKM_SHA{256,384,512}_RSA_PKCS_PSS, MGF1 with the same hash, salt = hash length
 *   ES*: CKM_ECDSA over the hash (sign.c hashes: SoftHSM 2.6.1 has no CKM_ECDSA_SHA*)
 *   EdDSA: CKM_EDDSA over the message
 */
#include "pkcs11/mech.h"
#include "pkcs11/token_int.h"

CK_MECHANISM_TYPE km_p11_alg_mechanism(km_alg_t alg)
{
	switch (alg) {
	case KM_ALG_RS256: return CKM_SHA256_RSA_PKCS;
	case KM_ALG_RS384: return CKM_SHA384_RSA_PKCS;
	case KM_ALG_RS512: return CKM_SHA512_RSA_PKCS;
	case KM_ALG_PS256: return CKM_SHA256_RSA_PKCS_PSS;
	case KM_ALG_PS384: return CKM_SHA384_RSA_PKCS_PSS;
	case KM_ALG_PS512: return CKM_SHA512_RSA_PKCS_PSS;
	case KM_ALG_ES256:
	case KM_ALG_ES384:
	case KM_ALG_ES512: return CKM_ECDSA;
	case KM_ALG_EDDSA: return CKM_EDDSA;
	default: return CKM_VENDOR_DEFINED;
	}
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
	CK_MECHANISM mech = { km_p11_alg_mechanism(ai->alg), NULL, 0 };

	if (ai->pss) {
		mech.pParameter = &pss;
		mech.ulParameterLen = sizeof(pss);
	}
	return t->fl->C_SignInit(s, &mech, key);
}
