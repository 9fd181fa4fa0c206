/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "keymgr/common/alg.h"
#include "keymgr/common/error.h"

static const km_alg_info_t algs[] = {
	{ KM_ALG_RS256, "RS256", KM_KTY_RSA, KM_CRV_NONE, KM_HASH_SHA256, false, 0 },
	{ KM_ALG_RS384, "RS384", KM_KTY_RSA, KM_CRV_NONE, KM_HASH_SHA384, false, 0 },
	{ KM_ALG_RS512, "RS512", KM_KTY_RSA, KM_CRV_NONE, KM_HASH_SHA512, false, 0 },
	{ KM_ALG_PS256, "PS256", KM_KTY_RSA, KM_CRV_NONE, KM_HASH_SHA256, true, 0 },
	{ KM_ALG_PS384, "PS384", KM_KTY_RSA, KM_CRV_NONE, KM_HASH_SHA384, true, 0 },
	{ KM_ALG_PS512, "PS512", KM_KTY_RSA, KM_CRV_NONE, KM_HASH_SHA512, true, 0 },
	{ KM_ALG_ES256, "ES256", KM_KTY_EC, KM_CRV_P256, KM_HASH_SHA256, false, 64 },
	{ KM_ALG_ES384, "ES384", KM_KTY_EC, KM_CRV_P384, KM_HASH_SHA384, false, 96 },
	{ KM_ALG_ES512, "ES512", KM_KTY_EC, KM_CRV_P521, KM_HASH_SHA512, false, 132 },
	{ KM_ALG_EDDSA, "EdDSA", KM_KTY_OKP, KM_CRV_ED25519, KM_HASH_NONE, false, 64 },
};

const km_alg_info_t *km_alg_info(km_alg_t alg)
{
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (algs[i].alg == alg)
			return &algs[i];
	return NULL;
}

int km_alg_from_name(const char *name, km_alg_t *ret)
{
	if (name == NULL)
		return KM_EALG;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		if (strcmp(algs[i].name, name) == 0) {
			*ret = algs[i].alg;
			return KM_EOK;
		}
	}
	return KM_EALG;
}

const char *km_alg_name(km_alg_t alg)
{
	const km_alg_info_t *info = km_alg_info(alg);
	return info ? info->name : "unknown";
}

const char *km_crv_name(km_crv_t crv)
{
	switch (crv) {
	case KM_CRV_P256: return "P-256";
	case KM_CRV_P384: return "P-384";
	case KM_CRV_P521: return "P-521";
	case KM_CRV_ED25519: return "Ed25519";
	default: return NULL;
	}
}

size_t km_crv_field_len(km_crv_t crv)
{
	switch (crv) {
	case KM_CRV_P256: return 32;
	case KM_CRV_P384: return 48;
	case KM_CRV_P521: return 66;
	case KM_CRV_ED25519: return 32;
	default: return 0;
	}
}

size_t km_hash_len(km_hash_t hash)
{
	switch (hash) {
	case KM_HASH_SHA256: return 32;
	case KM_HASH_SHA384: return 48;
	case KM_HASH_SHA512: return 64;
	default: return 0;
	}
}

bool km_rsa_bits_valid(unsigned bits)
{
	return bits == 2048 || bits == 3072 || bits == 4096;
}

bool km_alg_kubernetes(km_alg_t alg)
{
	return alg == KM_ALG_RS256 || alg == KM_ALG_ES256 || alg == KM_ALG_ES384 ||
	       alg == KM_ALG_ES512;
}
