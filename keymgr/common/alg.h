/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ten JOSE signing algorithms keymgr supports, and what each needs from a key.
 * One key signs with exactly one algorithm (RFC 8725).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef enum {
	KM_ALG_NONE = 0,
	KM_ALG_RS256, KM_ALG_RS384, KM_ALG_RS512,
	KM_ALG_PS256, KM_ALG_PS384, KM_ALG_PS512,
	KM_ALG_ES256, KM_ALG_ES384, KM_ALG_ES512,
	KM_ALG_EDDSA,
	KM_ALG_COUNT_PLUS_ONE
} km_alg_t;

#define KM_ALG_COUNT (KM_ALG_COUNT_PLUS_ONE - 1)

typedef enum { KM_KTY_RSA = 1, KM_KTY_EC, KM_KTY_OKP } km_kty_t;

typedef enum {
	KM_CRV_NONE = 0,
	KM_CRV_P256, KM_CRV_P384, KM_CRV_P521,
	KM_CRV_ED25519,
} km_crv_t;

typedef enum { KM_HASH_NONE = 0, KM_HASH_SHA256, KM_HASH_SHA384, KM_HASH_SHA512 } km_hash_t;

typedef struct {
	km_alg_t alg;
	const char *name;       /* JOSE "alg", e.g. "ES256" */
	km_kty_t kty;
	km_crv_t crv;           /* EC/OKP only */
	km_hash_t hash;
	bool pss;               /* RSASSA-PSS */
	size_t sig_len;         /* fixed signature length for EC/OKP (r||s), 0 for RSA */
} km_alg_info_t;

/* Table entry for alg, or NULL for an unknown value. */
const km_alg_info_t *km_alg_info(km_alg_t alg);

/* Parses a JOSE alg name (case-sensitive, "EdDSA"); returns KM_EOK or KM_EALG. */
int km_alg_from_name(const char *name, km_alg_t *ret);

/* JOSE name, or "unknown". */
const char *km_alg_name(km_alg_t alg);

/* JWK "crv" name ("P-256", "Ed25519"), or NULL for RSA. */
const char *km_crv_name(km_crv_t crv);

/* Field width in bytes of a curve's coordinates (32, 48, 66, 32). */
size_t km_crv_field_len(km_crv_t crv);

/* Digest length in bytes of a hash (32, 48, 64), 0 for KM_HASH_NONE. */
size_t km_hash_len(km_hash_t hash);

/* RSA sizes keymgr generates: 2048, 3072, 4096. */
bool km_rsa_bits_valid(unsigned bits);

/* The algorithms kube-apiserver takes for service-account tokens: RS256, ES256, ES384,
 * ES512 (docs/kubernetes.md). */
bool km_alg_kubernetes(km_alg_t alg);

#define KM_RSA_MIN_BITS 2048
#define KM_RSA_DEFAULT_BITS 3072
