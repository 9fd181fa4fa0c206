/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Capability probing (caps.h): C_GetMechanismList and C_GetMechanismInfo of the token's slot,
 * once per km_token_open(), then what each JOSE algorithm needs:
 *   RS*: CKM_RSA_PKCS_KEY_PAIR_GEN, and CKM_SHAx_RSA_PKCS, else CKM_RSA_PKCS over a DigestInfo
 *        hashed in software (opencryptoki's soft token has no CKM_SHA256_RSA_PKCS)
 *   PS*: CKM_SHAx_RSA_PKCS_PSS, else CKM_RSA_PKCS_PSS over a hash made in software
 *   ES*: CKM_EC_KEY_PAIR_GEN whose key sizes hold the curve, and CKM_ECDSA (hashed here)
 *   EdDSA: CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA
 * and what the quirk table (quirks.c) says on top. Tokens can claim what they cannot do:
 * every new key is confirmed by a test signature anyway (keygen.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "pkcs11/caps.h"
#include "pkcs11/quirks.h"
#include "pkcs11/token_int.h"

typedef struct {
	CK_MECHANISM_TYPE mech;
	const char *name;
} mech_name_t;

static const mech_name_t names[] = {
	{ CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN" },
	{ CKM_RSA_PKCS, "CKM_RSA_PKCS" },
	{ CKM_SHA256_RSA_PKCS, "CKM_SHA256_RSA_PKCS" },
	{ CKM_SHA384_RSA_PKCS, "CKM_SHA384_RSA_PKCS" },
	{ CKM_SHA512_RSA_PKCS, "CKM_SHA512_RSA_PKCS" },
	{ CKM_RSA_PKCS_PSS, "CKM_RSA_PKCS_PSS" },
	{ CKM_SHA256_RSA_PKCS_PSS, "CKM_SHA256_RSA_PKCS_PSS" },
	{ CKM_SHA384_RSA_PKCS_PSS, "CKM_SHA384_RSA_PKCS_PSS" },
	{ CKM_SHA512_RSA_PKCS_PSS, "CKM_SHA512_RSA_PKCS_PSS" },
	{ CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN" },
	{ CKM_ECDSA, "CKM_ECDSA" },
	{ CKM_EC_EDWARDS_KEY_PAIR_GEN, "CKM_EC_EDWARDS_KEY_PAIR_GEN" },
	{ CKM_EDDSA, "CKM_EDDSA" },
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

const char *km_p11_mech_name(CK_MECHANISM_TYPE m)
{
	static __thread char other[32];

	for (size_t i = 0; i < N_NAMES; i++)
		if (names[i].mech == m)
			return names[i].name;
	snprintf(other, sizeof(other), "CKM_0x%lx", (unsigned long)m);
	return other;
}

/* The standard mechanisms, before (or without) probing. */
static km_p11_sign_via_t standard_via(const km_alg_info_t *ai)
{
	static const CK_MECHANISM_TYPE rsa[] = { CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS,
	                                         CKM_SHA512_RSA_PKCS };
	static const CK_MECHANISM_TYPE pss[] = { CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS,
	                                         CKM_SHA512_RSA_PKCS_PSS };
	unsigned h = ai->hash == KM_HASH_SHA256 ? 0 : ai->hash == KM_HASH_SHA384 ? 1 : 2;

	switch (ai->kty) {
	case KM_KTY_RSA:
		return (km_p11_sign_via_t){ ai->pss ? pss[h] : rsa[h], KM_P11_IN_MESSAGE };
	case KM_KTY_EC:
		return (km_p11_sign_via_t){ CKM_ECDSA, KM_P11_IN_HASH };
	default:
		return (km_p11_sign_via_t){ CKM_EDDSA, KM_P11_IN_MESSAGE };
	}
}

static CK_MECHANISM_TYPE keygen_mech(km_kty_t kty)
{
	return kty == KM_KTY_RSA ? CKM_RSA_PKCS_KEY_PAIR_GEN :
	       kty == KM_KTY_EC ? CKM_EC_KEY_PAIR_GEN : CKM_EC_EDWARDS_KEY_PAIR_GEN;
}

typedef struct {
	CK_MECHANISM_TYPE *list;
	CK_ULONG n;
} mech_list_t;

static const CK_MECHANISM_INFO *info_of(km_token_t *t, const mech_list_t *ml,
                                        CK_MECHANISM_TYPE m, CK_MECHANISM_INFO *buf)
{
	for (CK_ULONG i = 0; i < ml->n; i++)
		if (ml->list[i] == m)
			return t->fl->C_GetMechanismInfo(t->slot, m, buf) == CKR_OK ? buf : NULL;
	return NULL;
}

static bool can_sign(km_token_t *t, const mech_list_t *ml, CK_MECHANISM_TYPE m)
{
	CK_MECHANISM_INFO mi;
	const CK_MECHANISM_INFO *p = info_of(t, ml, m, &mi);
	return p != NULL && (p->flags & CKF_SIGN);
}

/* Key sizes in bits; some modules report RSA sizes in bytes (PKCS#11 2.01). */
static void rsa_sizes(const CK_MECHANISM_INFO *mi, unsigned *lo, unsigned *hi)
{
	unsigned long mul = mi->ulMaxKeySize > 0 && mi->ulMaxKeySize < 512 ? 8 : 1;
	*lo = (unsigned)(mi->ulMinKeySize * mul);
	/* NSS reports 0xFFFFFFFF: no upper limit worth naming. */
	*hi = mi->ulMaxKeySize > 65536 ? 0 : (unsigned)(mi->ulMaxKeySize * mul);
}

/* Fills caps->algs[alg - 1] and t->via[alg - 1] for one algorithm. */
static void probe_alg(km_token_t *t, const mech_list_t *ml, const km_alg_info_t *ai)
{
	km_token_alg_caps_t *c = &t->caps.algs[ai->alg - 1];
	km_p11_sign_via_t via = standard_via(ai);
	CK_MECHANISM_INFO gi;
	const CK_MECHANISM_INFO *gen = info_of(t, ml, keygen_mech(ai->kty), &gi);
	static const char *hash_names[] = { "", "SHA-256", "SHA-384", "SHA-512" };

	*c = (km_token_alg_caps_t){ .alg = ai->alg };
	if (gen == NULL || !(gen->flags & CKF_GENERATE_KEY_PAIR)) {
		snprintf(c->why, sizeof(c->why), "no %s", km_p11_mech_name(keygen_mech(ai->kty)));
		return;
	}
	if (ai->kty == KM_KTY_RSA) {
		rsa_sizes(gen, &c->min_bits, &c->max_bits);
		if (!can_sign(t, ml, via.mech)) {
			CK_MECHANISM_TYPE raw = ai->pss ? CKM_RSA_PKCS_PSS : CKM_RSA_PKCS;
			if (!can_sign(t, ml, raw)) {
				snprintf(c->why, sizeof(c->why), "no %s and no %s",
				         km_p11_mech_name(via.mech), km_p11_mech_name(raw));
				return;
			}
			via = (km_p11_sign_via_t){ raw, ai->pss ? KM_P11_IN_HASH :
			                                          KM_P11_IN_DIGESTINFO };
		}
	} else {
		if (!can_sign(t, ml, via.mech)) {
			snprintf(c->why, sizeof(c->why), "no %s", km_p11_mech_name(via.mech));
			return;
		}
		/* EC key sizes are the field sizes in bits (P-521: 521); 0 means unreported. */
		unsigned long bits = ai->kty == KM_KTY_EC ? (ai->crv == KM_CRV_P521 ? 521 :
		                     km_crv_field_len(ai->crv) * 8) : 0;
		if (bits && gen->ulMaxKeySize && (bits < gen->ulMinKeySize ||
		                                  bits > gen->ulMaxKeySize)) {
			snprintf(c->why, sizeof(c->why), "%s covers %lu..%lu bits, not %s",
			         km_p11_mech_name(keygen_mech(ai->kty)), gen->ulMinKeySize,
			         gen->ulMaxKeySize, km_crv_name(ai->crv));
			return;
		}
	}
	if (km_p11_quirk_broken(t->quirk, ai->alg)) {
		snprintf(c->why, sizeof(c->why), "%s (quirk table: %s)", t->quirk->broken_why,
		         t->quirk->name);
		return;
	}
	c->supported = true;
	if (via.input == KM_P11_IN_DIGESTINFO)
		snprintf(c->via, sizeof(c->via), "%s + DigestInfo (%s in software)",
		         km_p11_mech_name(via.mech), hash_names[ai->hash]);
	else if (via.input == KM_P11_IN_HASH)
		snprintf(c->via, sizeof(c->via), "%s (%s in software)", km_p11_mech_name(via.mech),
		         hash_names[ai->hash]);
	else
		snprintf(c->via, sizeof(c->via), "%s", km_p11_mech_name(via.mech));
	t->via[ai->alg - 1] = via;
}

static void probe_mechs(km_token_t *t, const mech_list_t *ml)
{
	for (size_t i = 0; i < N_NAMES && t->caps.n_mechs < KM_TOKEN_MECHS_MAX; i++) {
		CK_MECHANISM_INFO mi;
		if (info_of(t, ml, names[i].mech, &mi) == NULL)
			continue;
		km_token_mech_t *m = &t->caps.mechs[t->caps.n_mechs++];
		snprintf(m->name, sizeof(m->name), "%s", names[i].name);
		m->min_size = mi.ulMinKeySize;
		m->max_size = mi.ulMaxKeySize;
		m->sign = (mi.flags & CKF_SIGN) != 0;
		m->generate_key_pair = (mi.flags & CKF_GENERATE_KEY_PAIR) != 0;
	}
}

void km_p11_caps_probe(km_token_t *t)
{
	CK_INFO info;
	mech_list_t ml = { NULL, 0 };

	t->caps = (km_token_caps_t){ 0 };
	for (int a = KM_ALG_RS256; a <= KM_ALG_EDDSA; a++) {
		const km_alg_info_t *ai = km_alg_info((km_alg_t)a);
		t->via[a - 1] = standard_via(ai);
		t->caps.algs[a - 1] = (km_token_alg_caps_t){ .alg = ai->alg, .supported = true };
		snprintf(t->caps.algs[a - 1].via, sizeof(t->caps.algs[a - 1].via), "%s",
		         km_p11_mech_name(t->via[a - 1].mech));
	}
	if (t->fl->C_GetInfo(&info) == CKR_OK) {
		char manu[33], desc[33];
		km_p11_unpad(manu, sizeof(manu), info.manufacturerID, sizeof(info.manufacturerID));
		km_p11_unpad(desc, sizeof(desc), info.libraryDescription,
		             sizeof(info.libraryDescription));
		snprintf(t->caps.library, sizeof(t->caps.library), "%s, %s", manu, desc);
		t->quirk = km_p11_quirk_find(manu);
	}
	if (t->quirk != NULL) {
		snprintf(t->caps.quirk, sizeof(t->caps.quirk), "%s", t->quirk->name);
		if (t->quirk->flags & KM_P11_Q_DECRYPT_ALWAYS)
			snprintf(t->caps.exception, sizeof(t->caps.exception), "CKA_DECRYPT: the "
			         "token sets it TRUE on every private key (keymgr only signs with them)");
	}
	if (t->fl->C_GetMechanismList(t->slot, NULL, &ml.n) != CKR_OK || ml.n == 0)
		return;
	/* Twice the room asked for: p11-kit 0.24's client (p11-kit-client.so), dropping the
	 * mechanisms its remoting cannot carry, moves entries from past the count it returns
	 * (a read beyond the array, seen under AddressSanitizer by the hsm suite). */
	if ((ml.list = calloc(2 * ml.n + 2, sizeof(*ml.list))) == NULL)
		return;
	if (t->fl->C_GetMechanismList(t->slot, ml.list, &ml.n) == CKR_OK) {
		t->caps.probed = true;
		probe_mechs(t, &ml);
		for (int a = KM_ALG_RS256; a <= KM_ALG_EDDSA; a++)
			probe_alg(t, &ml, km_alg_info((km_alg_t)a));
	}
	free(ml.list);
}

void km_token_get_caps(const km_token_t *t, km_token_caps_t *ret)
{
	*ret = t->caps;
}

int km_token_alg_check(const km_token_t *t, km_alg_t alg, unsigned rsa_bits, char *err,
                       size_t errlen)
{
	const km_alg_info_t *ai = km_alg_info(alg);
	char can[200] = "";
	size_t used = 0;

	if (ai == NULL)
		return KM_EALG;
	const km_token_alg_caps_t *c = &t->caps.algs[alg - 1];
	bool size_ok = ai->kty != KM_KTY_RSA ||
	               (rsa_bits >= c->min_bits && (c->max_bits == 0 || rsa_bits <= c->max_bits));
	if (c->supported && size_ok)
		return KM_EOK;
	for (int a = KM_ALG_RS256; a <= KM_ALG_EDDSA && used < sizeof(can); a++) {
		if (!t->caps.algs[a - 1].supported)
			continue;
		int n = snprintf(can + used, sizeof(can) - used, "%s%s", used ? " " : "",
		                 km_alg_name((km_alg_t)a));
		if (n < 0)
			break;
		used += (size_t)n;
	}
	if (err != NULL) {
		if (c->supported)
			snprintf(err, errlen, "PKCS#11 module %s (%s) cannot make %s keys of %u bits: "
			         "its RSA key pair generator takes %u..%u bits", t->module_path, t->who,
			         ai->name, rsa_bits, c->min_bits, c->max_bits);
		else
			snprintf(err, errlen, "PKCS#11 module %s (%s) cannot do %s: %s; it can do: %s",
			         t->module_path, t->who, ai->name, c->why, used ? can : "none of "
			         "keymgr's algorithms");
	}
	return KM_P11_EMECHANISM;
}
