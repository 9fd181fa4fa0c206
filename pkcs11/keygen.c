/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key pair generation inside the token. The private key is sensitive, never extractable,
 * not copyable where the token takes CKA_COPYABLE, and may only sign, with the one mechanism
 * of its algorithm where the token supports CKA_ALLOWED_MECHANISMS. Generation is serialised per token (SoftHSM 2.6.1 fails under
 * concurrent generation, softhsm/SoftHSMv2#576).
 */
#include <string.h>

#include <openssl/rand.h>

#include "keymgr/common/error.h"
#include "pkcs11/failure.h"
#include "pkcs11/internal.h"
#include "pkcs11/keys.h"
#include "pkcs11/mech.h"
#include "pkcs11/pubkey.h"
#include "pkcs11/recover.h"
#include "pkcs11/token_int.h"

#define LABEL_MAX 128

int km_token_new_id(uint8_t id[KM_TOKEN_ID_LEN])
{
	uint8_t tmp[KM_TOKEN_ID_LEN];

	memcpy(tmp, KM_TOKEN_ID_MAGIC, KM_TOKEN_ID_MAGIC_LEN);
	if (RAND_bytes(tmp + KM_TOKEN_ID_MAGIC_LEN, KM_TOKEN_ID_LEN - KM_TOKEN_ID_MAGIC_LEN) != 1)
		return KM_ECRYPTO;
	memcpy(id, tmp, KM_TOKEN_ID_LEN);
	return KM_EOK;
}

static int check_request(km_token_t *t, const km_alg_info_t *ai, km_alg_t alg,
                         unsigned rsa_bits, const char *label, const uint8_t *id)
{
	if (ai == NULL) {
		km_p11_set_error(t, "%s: generate: unknown algorithm %d", t->who, (int)alg);
		return KM_EALG;
	}
	if (ai->kty == KM_KTY_RSA && !km_rsa_bits_valid(rsa_bits)) {
		km_p11_set_error(t, "%s: generate: RSA key size %u is not allowed (2048, 3072 or "
		                 "4096)", t->who, rsa_bits);
		return KM_EKEYSIZE;
	}
	if (label == NULL || label[0] == '\0' || strlen(label) > LABEL_MAX) {
		km_p11_set_error(t, "%s: generate: a label of 1..%d bytes is required", t->who,
		                 LABEL_MAX);
		return KM_EINVAL;
	}
	if (id == NULL || memcmp(id, KM_TOKEN_ID_MAGIC, KM_TOKEN_ID_MAGIC_LEN) != 0) {
		km_p11_set_error(t, "%s: generate: the CKA_ID was not made by km_token_new_id()",
		                 t->who);
		return KM_EINVAL;
	}
	return KM_EOK;
}

/* Called with admin_lock held. */
static int generate_locked(km_token_t *t, const km_alg_info_t *ai, unsigned rsa_bits,
                           const char *label, const uint8_t *id, km_pubkey_t *pub)
{
	static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	static CK_BYTE exponent[] = { 0x01, 0x00, 0x01 };
	CK_SESSION_HANDLE s = t->admin;
	CK_OBJECT_HANDLE existing[1], hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
	CK_ULONG n = 0, bits = rsa_bits;
	CK_MECHANISM_TYPE sign_mech = km_p11_alg_mechanism(ai->alg);
	CK_MECHANISM mech = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	size_t params_len = 0;
	const uint8_t *params = km_p11_curve_params(ai->crv, &params_len);
	km_p11_key_t k = { 0 };
	km_pubkey_t p;
	CK_RV rv;
	int r;

	/* The ID must be new: a second pair with it would make lookups ambiguous. */
	CK_ATTRIBUTE by_id = { CKA_ID, (void *)id, KM_TOKEN_ID_LEN };
	rv = km_p11_find(t, s, &by_id, 1, existing, 1, &n);
	if (rv != CKR_OK)
		return km_p11_fail(t, rv, "C_FindObjects (generate)");
	if (n > 0) {
		km_p11_set_error(t, "%s: generate: objects with this CKA_ID already exist", t->who);
		return KM_EEXIST;
	}

	CK_ATTRIBUTE pub_tmpl[10] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &no, sizeof(no) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
		{ CKA_ENCRYPT, &no, sizeof(no) },
		{ CKA_WRAP, &no, sizeof(no) },
		{ CKA_DERIVE, &no, sizeof(no) },
		{ CKA_ID, (void *)id, KM_TOKEN_ID_LEN },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_ULONG n_pub = 8;
	CK_ATTRIBUTE priv_tmpl[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_DECRYPT, &no, sizeof(no) },
		{ CKA_UNWRAP, &no, sizeof(no) },
		{ CKA_DERIVE, &no, sizeof(no) },
		{ CKA_ID, (void *)id, KM_TOKEN_ID_LEN },
		{ CKA_LABEL, (void *)label, strlen(label) },
		/* The two optional attributes, last, so that the fallbacks below can drop them:
		 * no copy of the key can be made with C_CopyObject (a copy could be given other
		 * attributes), and the key signs with its one mechanism only. */
		{ CKA_COPYABLE, &no, sizeof(no) },
		{ CKA_ALLOWED_MECHANISMS, &sign_mech, sizeof(sign_mech) },
	};
	CK_ULONG n_priv = sizeof(priv_tmpl) / sizeof(priv_tmpl[0]);
	bool with_allowed = true;

	switch (ai->kty) {
	case KM_KTY_RSA:
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		pub_tmpl[n_pub++] = (CK_ATTRIBUTE){ CKA_MODULUS_BITS, &bits, sizeof(bits) };
		pub_tmpl[n_pub++] = (CK_ATTRIBUTE){ CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent) };
		break;
	case KM_KTY_EC:
		mech.mechanism = CKM_EC_KEY_PAIR_GEN;
		pub_tmpl[n_pub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, (void *)params, params_len };
		break;
	case KM_KTY_OKP:
		mech.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
		pub_tmpl[n_pub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, (void *)params, params_len };
		break;
	}

	rv = t->fl->C_GenerateKeyPair(s, &mech, pub_tmpl, n_pub, priv_tmpl, n_priv, &hpub, &hpriv);
	if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_VALUE_INVALID) {
		/* A token that does not take CKA_COPYABLE (a PKCS#11 2.40 attribute; some
		 * refuse setting it): without it, CKA_ALLOWED_MECHANISMS moved into its place. */
		priv_tmpl[n_priv - 2] = priv_tmpl[n_priv - 1];
		n_priv--;
		rv = t->fl->C_GenerateKeyPair(s, &mech, pub_tmpl, n_pub, priv_tmpl, n_priv, &hpub,
		                              &hpriv);
	}
	if (rv == CKR_ATTRIBUTE_TYPE_INVALID) {
		/* A token without CKA_ALLOWED_MECHANISMS: the key still signs only (CKA_SIGN). */
		n_priv--;
		with_allowed = false;
		rv = t->fl->C_GenerateKeyPair(s, &mech, pub_tmpl, n_pub, priv_tmpl, n_priv, &hpub,
		                              &hpriv);
	}
	if (rv != CKR_OK) {
		char op[64];
		snprintf(op, sizeof(op), "C_GenerateKeyPair (%s)", ai->name);
		return km_p11_fail(t, rv, op);
	}

	memcpy(k.id, id, KM_TOKEN_ID_LEN);
	k.id_len = KM_TOKEN_ID_LEN;
	k.priv = hpriv;
	k.pub = hpub;
	k.kty = ai->kty;
	k.crv = ai->crv;
	k.rsa_bits = rsa_bits;
	if (with_allowed) {
		k.allowed[0] = sign_mech;
		k.n_allowed = 1;
		k.allowed_known = true;
	}
	if ((r = km_p11_read_public(t, s, &k, &p)) != KM_EOK) {
		/* Leave nothing behind that the caller does not know about. */
		t->fl->C_DestroyObject(s, hpriv);
		t->fl->C_DestroyObject(s, hpub);
		return r;
	}
	if (ai->kty == KM_KTY_RSA)
		k.rsa_bits = p.rsa_bits;
	(void)km_p11_cache_put(&t->cache, &k, km_p11_cache_generation(&t->cache));
	*pub = p;
	return KM_EOK;
}

int km_token_generate_with_id(km_token_t *t, km_alg_t alg, unsigned rsa_bits, const char *label,
                              const uint8_t id[KM_TOKEN_ID_LEN], km_pubkey_t *pub)
{
	const km_alg_info_t *ai = km_alg_info(alg);
	int r = check_request(t, ai, alg, rsa_bits, label, id);

	if (r != KM_EOK)
		return r;
	if (pub == NULL) {
		km_p11_set_error(t, "%s: generate: no public key output given", t->who);
		return KM_EINVAL;
	}
	pthread_mutex_lock(&t->admin_lock);
	if ((r = km_p11_ready_locked(t)) == KM_EOK)
		r = generate_locked(t, ai, rsa_bits, label, id, pub);
	pthread_mutex_unlock(&t->admin_lock);
	return r;
}

int km_token_generate(km_token_t *t, km_alg_t alg, unsigned rsa_bits, const char *label,
                      uint8_t id_out[KM_TOKEN_ID_LEN], km_pubkey_t *pub)
{
	uint8_t id[KM_TOKEN_ID_LEN];
	int r = km_token_new_id(id);

	if (r != KM_EOK) {
		km_p11_set_error(t, "%s: generate: RAND_bytes failed", t->who);
		return r;
	}
	r = km_token_generate_with_id(t, alg, rsa_bits, label, id, pub);
	if (r == KM_EOK)
		memcpy(id_out, id, KM_TOKEN_ID_LEN);
	return r;
}
