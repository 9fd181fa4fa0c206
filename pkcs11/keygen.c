/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key pair generation inside the token. The private key is sensitive, never extractable,
 * not copyable where the token takes CKA_COPYABLE, and may only sign, with the one mechanism
 * of its algorithm where the token supports CKA_ALLOWED_MECHANISMS. Generation is serialised
 * per token (SoftHSM 2.6.1 fails under concurrent generation, softhsm/SoftHSMv2#576).
 */
#include <string.h>

#include <openssl/rand.h>

#include "keymgr/common/error.h"
#include "keymgr/common/sigverify.h"
#include "pkcs11/failure.h"
#include "pkcs11/internal.h"
#include "pkcs11/keys.h"
#include "pkcs11/mech.h"
#include "pkcs11/pubkey.h"
#include "pkcs11/recover.h"
#include "pkcs11/sign.h"
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
                         unsigned rsa_bits, const char *label)
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
	return KM_EOK;
}

/* Called with admin_lock held: a 20-byte id of km_token_new_id(), or an id of the length the
 * token keeps (km_token_new_id_for()). */
static int check_id(km_token_t *t, const uint8_t *id, size_t id_len)
{
	bool full = id_len == KM_TOKEN_ID_LEN && id != NULL &&
	            memcmp(id, KM_TOKEN_ID_MAGIC, KM_TOKEN_ID_MAGIC_LEN) == 0;
	if (full || (id != NULL && id_len > 0 && id_len == t->id_keep &&
	             t->id_keep < KM_TOKEN_ID_LEN))
		return KM_EOK;
	km_p11_set_error(t, "%s: generate: the CKA_ID was not made by km_token_new_id() or "
	                 "km_token_new_id_for()", t->who);
	return KM_EINVAL;
}

size_t km_token_id_len(km_token_t *t)
{
	pthread_mutex_lock(&t->admin_lock);
	size_t n = t->id_keep;
	pthread_mutex_unlock(&t->admin_lock);
	return n;
}

void km_token_set_id_len(km_token_t *t, size_t len)
{
	if (len == 0 || len >= KM_TOKEN_ID_LEN)
		return;
	pthread_mutex_lock(&t->admin_lock);
	t->id_keep = len;
	pthread_mutex_unlock(&t->admin_lock);
}

/* Whether an object of the token has this CKA_ID (admin_lock held). */
static int id_in_use(km_token_t *t, const uint8_t *id, size_t id_len, bool *ret)
{
	CK_OBJECT_HANDLE found[1];
	CK_ULONG n = 0;
	CK_ATTRIBUTE by_id = { CKA_ID, (void *)id, id_len };
	CK_RV rv = km_p11_find(t, t->admin, &by_id, 1, found, 1, &n);
	if (rv != CKR_OK)
		return km_p11_fail(t, rv, "C_FindObjects (new CKA_ID)");
	*ret = n > 0;
	return KM_EOK;
}

int km_token_new_id_for(km_token_t *t, uint8_t id[KM_TOKEN_ID_LEN], size_t *ret_len)
{
	uint8_t tmp[KM_TOKEN_ID_LEN];
	int r;

	pthread_mutex_lock(&t->admin_lock);
	size_t len = t->id_keep;
	if (len >= KM_TOKEN_ID_LEN) {
		r = km_token_new_id(tmp);
		goto out;
	}
	if ((r = km_p11_ready_locked(t)) != KM_EOK)
		goto out;
	/* 2 bytes give 65536 ids: draw until one is free on the token. */
	r = KM_EEXIST;
	for (int tries = 0; tries < 32; tries++) {
		bool used = true;
		if (RAND_bytes(tmp, (int)len) != 1) {
			r = KM_ECRYPTO;
			break;
		}
		/* Never the id a 20-byte "KMGR..." id is cut to on this token (longer cuts carry
		 * random bytes of their own). */
		if (len <= KM_TOKEN_ID_MAGIC_LEN && memcmp(tmp, KM_TOKEN_ID_MAGIC, len) == 0)
			continue;
		if ((r = id_in_use(t, tmp, len, &used)) != KM_EOK)
			break;
		r = KM_EEXIST;
		if (!used) {
			r = KM_EOK;
			break;
		}
	}
	if (r == KM_EEXIST)
		km_p11_set_error(t, "%s: no free %zu-byte CKA_ID found in 32 random draws", t->who,
		                 len);
out:
	pthread_mutex_unlock(&t->admin_lock);
	if (r == KM_EOK) {
		memcpy(id, tmp, len);
		*ret_len = len;
	}
	return r;
}

/*
 * The keygen template ladder. Tokens refuse attributes they do not know, or values they do not
 * support, in many ways (CKR_ATTRIBUTE_TYPE_INVALID, CKR_TEMPLATE_INCONSISTENT, and
 * CKR_GENERAL_ERROR from tpm2-pkcs11 for CKA_DECRYPT=FALSE, CKR_HOST_MEMORY from others).
 * Generation tries rung 0 (the full template), then rung 1 (without the attributes marked
 * DROP_AT_1: CKA_COPYABLE, a PKCS#11 2.40 attribute), then rung 2 (without those marked
 * DROP_AT_2 too: CKA_ALLOWED_MECHANISMS), then rung 3 (the minimal template: without those
 * marked DROP_AT_3 too), then rung 4 (the label and the algorithm's parameters only: Google's
 * kmsp11 takes a keygen template of CKA_LABEL and its algorithm and nothing else), on any of
 * those errors. What a rung left out is not trusted: the
 * private key's attributes are read back after every generation (check_private) and the key
 * must make a test signature that verifies outside the token (confirm).
 * An attribute that some tokens refuse gets a DROP_AT_* mark; nothing else changes.
 */
#define RUNGS 5
/* OMIT: never in the template (a CKA_ID where the token assigns it: km_token_generate_assigned) */
enum { KEEP = 0, DROP_AT_1 = 1, DROP_AT_2 = 2, DROP_AT_3 = 3, DROP_AT_4 = 4, OMIT = 99 };

typedef struct {
	CK_ATTRIBUTE a;
	unsigned drop_at;      /* KEEP, or the first rung without it */
} tmpl_attr_t;

#define TMPL_MAX 16

struct ec_params { const uint8_t *p; size_t len; };

/* The attributes of tmpl kept on rung, into out. Returns their count. */
static CK_ULONG rung_template(const tmpl_attr_t *tmpl, size_t n, unsigned rung,
                              CK_ATTRIBUTE *out)
{
	CK_ULONG k = 0;
	for (size_t i = 0; i < n; i++)
		if (tmpl[i].drop_at != OMIT && (tmpl[i].drop_at == KEEP || rung < tmpl[i].drop_at))
			out[k++] = tmpl[i].a;
	return k;
}

/* CK_RVs after which the next rung (or the next parameter encoding) is tried. */
static bool ladder_rv(CK_RV rv)
{
	return rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_VALUE_INVALID ||
	       rv == CKR_TEMPLATE_INCONSISTENT || rv == CKR_TEMPLATE_INCOMPLETE ||
	       rv == CKR_GENERAL_ERROR || rv == CKR_HOST_MEMORY || rv == CKR_FUNCTION_FAILED ||
	       rv == CKR_DOMAIN_PARAMS_INVALID || rv == CKR_CURVE_NOT_SUPPORTED;
}

/* Reads one CK_BBOOL attribute of obj (one per call: some tokens fail a whole batch for one
 * attribute they do not know). -1 when the token does not report it. */
static int read_bool(km_token_t *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj,
                     CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL v = CK_FALSE;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };
	if (t->fl->C_GetAttributeValue(s, obj, &a, 1) != CKR_OK || a.ulValueLen != sizeof(v))
		return -1;
	return v ? 1 : 0;
}

/* What a key check is part of: a generation (the key is new and destroyed when refused) or a
 * check of an existing pair (km_token_check_key: reconcile's adoption). */
typedef struct {
	const char *op;         /* "generate", "check" */
	const char *subject;    /* "the new private key", "the private key" */
	const char *verdict;    /* what happens to a refused key */
} check_ctx_t;

static const check_ctx_t AT_GENERATE = { "generate", "the new private key",
                                         "destroyed, generation refused" };
static const check_ctx_t AT_CHECK = { "check", "the private key", "refused" };

/*
 * The private key as the token made it, whatever the template asked: sensitive, never
 * extractable, able to sign, and able to do nothing else, except what the quirk table says
 * the token cannot turn off (a recorded exception, km_token_caps_t.exception).
 */
static int check_private(km_token_t *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv,
                         const uint8_t *id, size_t id_len, const check_ctx_t *c)
{
	static const struct {
		CK_ATTRIBUTE_TYPE type;
		const char *name;
		int want;          /* 1 TRUE, 0 FALSE */
		bool required;     /* an unreported value is refused too */
		unsigned quirk;    /* a KM_P11_Q_* that excuses the other value */
	} rules[] = {
		/* rung 4 leaves these to the token: a session object would vanish, a public
		 * private key would be seen without a login */
		{ CKA_TOKEN, "CKA_TOKEN", 1, false, 0 },
		{ CKA_PRIVATE, "CKA_PRIVATE", 1, false, 0 },
		{ CKA_SENSITIVE, "CKA_SENSITIVE", 1, true, 0 },
		{ CKA_EXTRACTABLE, "CKA_EXTRACTABLE", 0, true, 0 },
		{ CKA_NEVER_EXTRACTABLE, "CKA_NEVER_EXTRACTABLE", 1, false, 0 },
		{ CKA_SIGN, "CKA_SIGN", 1, true, 0 },
		{ CKA_DECRYPT, "CKA_DECRYPT", 0, false, KM_P11_Q_DECRYPT_ALWAYS },
		{ CKA_UNWRAP, "CKA_UNWRAP", 0, false, 0 },
		{ CKA_DERIVE, "CKA_DERIVE", 0, false, 0 },
	};
	uint8_t got[KM_P11_ID_MAX];
	CK_ATTRIBUTE a = { CKA_ID, got, sizeof(got) };

	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		int v = read_bool(t, s, priv, rules[i].type);
		if (v == rules[i].want || (v < 0 && !rules[i].required))
			continue;
		if (v >= 0 && t->quirk != NULL && (t->quirk->flags & rules[i].quirk))
			continue;      /* the recorded exception of this token */
		if (v < 0)
			km_p11_set_error(t, "%s: %s: %s does not report %s: %s", t->who, c->op,
			                 c->subject, rules[i].name, c->verdict);
		else
			km_p11_set_error(t, "%s: %s: %s has %s=%s although keymgr asks for %s: %s",
			                 t->who, c->op, c->subject, rules[i].name, v ? "TRUE" : "FALSE",
			                 rules[i].want ? "TRUE" : "FALSE", c->verdict);
		return KM_P11_EKEYREFUSED;
	}
	/* Keys are found by the CKA_ID on record: a token that changed it is refused. */
	CK_RV rv = t->fl->C_GetAttributeValue(s, priv, &a, 1);
	if (rv == CKR_OK && a.ulValueLen > 0 && a.ulValueLen < id_len &&
	    memcmp(got, id, a.ulValueLen) == 0) {
		/* It kept only the first bytes (YubiHSM 2 before 2.4.0: 2): every long id would
		 * become the same one. Later ids are drawn at the length it keeps. */
		t->id_keep = a.ulValueLen;
		km_p11_set_error(t, "%s: %s: the token kept only %lu of the %zu bytes of the "
		                 "CKA_ID keymgr gave the key: %s; ids of %lu bytes are used with it "
		                 "from now on", t->who, c->op, (unsigned long)a.ulValueLen, id_len,
		                 c->verdict, (unsigned long)a.ulValueLen);
		return KM_P11_EKEYREFUSED;
	}
	if (rv != CKR_OK || a.ulValueLen != id_len || memcmp(got, id, id_len) != 0) {
		km_p11_set_error(t, "%s: %s: the token did not keep the %zu-byte CKA_ID keymgr gave "
		                 "the key: %s", t->who, c->op, id_len, c->verdict);
		return KM_P11_EKEYREFUSED;
	}
	return KM_EOK;
}

/* A session or the login was lost (failure.c noted it): not the key's fault. */
static bool token_away(int r)
{
	return r == KM_P11_ESESSION || r == KM_P11_ENOTLOGGEDIN || r == KM_P11_EDEVICE;
}

/*
 * The test signature: the key signs a random message through the same path as every later
 * signature, and OpenSSL verifies it with the public key read from the token. Tokens claim
 * mechanisms and sizes they cannot use (tpm2-pkcs11 and P-521).
 */
static int confirm(km_token_t *t, CK_SESSION_HANDLE s, const km_p11_key_t *k,
                   const km_alg_info_t *ai, const km_pubkey_t *pub, const check_ctx_t *c)
{
	uint8_t msg[48], sig[KM_PUBKEY_MAX_N];
	size_t sig_len = sizeof(sig);
	int r;

	memcpy(msg, "keymgr test signature ", 22);
	if (RAND_bytes(msg + 22, (int)(sizeof(msg) - 22)) != 1)
		return KM_ECRYPTO;
	if ((r = km_p11_sign_on(t, s, k, ai, msg, sizeof(msg), sig, &sig_len)) != KM_EOK) {
		if (token_away(r))
			return r;
		char why[KM_P11_ERR_MAX];
		snprintf(why, sizeof(why), "%s", km_token_last_error(t));
		km_p11_set_error(t, "%.300s (the key's test signature failed: %s)", why, c->verdict);
		return KM_P11_EKEYREFUSED;
	}
	if (km_verify_signature(pub, ai->alg, msg, sizeof(msg), sig, sig_len) != KM_EOK) {
		km_p11_set_error(t, "%s: %s: the key's %s test signature does not verify with its "
		                 "public key: %s", t->who, c->op, ai->name, c->verdict);
		return KM_P11_EKEYREFUSED;
	}
	return KM_EOK;
}

/*
 * Everything a key pair must pass before keymgr keeps it: its public key read back, its
 * private key's attributes and CKA_ID, and the test signature. Writes the public key into *pub
 * (and the modulus size into k->rsa_bits).
 */
static int check_pair(km_token_t *t, CK_SESSION_HANDLE s, km_p11_key_t *k,
                      const km_alg_info_t *ai, km_pubkey_t *pub, const check_ctx_t *c)
{
	km_pubkey_t p;
	int r = km_p11_read_public(t, s, k, &p);

	if (r != KM_EOK)
		return r;
	if (ai->kty == KM_KTY_RSA)
		k->rsa_bits = p.rsa_bits;
	if ((r = check_private(t, s, k->priv, k->id, k->id_len, c)) != KM_EOK)
		return r;
	if ((r = confirm(t, s, k, ai, &p, c)) != KM_EOK)
		return r;
	*pub = p;
	return KM_EOK;
}

/* Where the label sits in generate_locked's templates. */
#define AT_LABEL_PUB 7
#define AT_LABEL_PRIV 9
#define FIT_LABEL_MAX KM_TOKEN_FIT_LABEL_MAX

/*
 * A label that strict tokens take, into out: the characters [A-Za-z0-9_-] of label (others
 * become '-'), at most FIT_LABEL_MAX bytes (YubiHSM 2 takes 40, kmsp11 63 of those
 * characters). NULL when label already is one.
 */
static const char *fit_label(const char *label, char out[FIT_LABEL_MAX + 1])
{
	size_t n = 0;
	bool same = strlen(label) <= FIT_LABEL_MAX;
	for (; label[n] != '\0' && n < FIT_LABEL_MAX; n++) {
		char c = label[n];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' || c == '-';
		out[n] = ok ? c : '-';
		same = same && ok;
	}
	out[n] = '\0';
	return same ? NULL : out;
}

const char *km_token_fit_label(const char *label, char out[KM_TOKEN_FIT_LABEL_MAX + 1])
{
	return fit_label(label, out);
}

/*
 * Walks the template ladder (each rung, for each Ed25519 parameter encoding) until the token
 * generates or refuses otherwise than ladder_rv(). Writes the rung that was last tried into
 * *rung and the first CK_RV into *first_rv (when still CKR_OK). Returns the last CK_RV.
 */
static CK_RV ladder(km_token_t *t, CK_MECHANISM *mech, tmpl_attr_t *pub_tmpl, size_t n_pub,
                    const tmpl_attr_t *priv_tmpl, size_t n_priv, size_t at_params,
                    const struct ec_params *params, size_t n_params, CK_RV *first_rv,
                    unsigned *rung, CK_OBJECT_HANDLE *hpub, CK_OBJECT_HANDLE *hpriv)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	for (size_t e = 0; e < n_params && rv != CKR_OK; e++) {
		if (at_params) {
			pub_tmpl[at_params].a.pValue = (void *)params[e].p;
			pub_tmpl[at_params].a.ulValueLen = params[e].len;
		}
		for (*rung = 0; *rung < RUNGS; (*rung)++) {
			CK_ATTRIBUTE pa[TMPL_MAX], va[TMPL_MAX];
			CK_ULONG np = rung_template(pub_tmpl, n_pub, *rung, pa);
			CK_ULONG nv = rung_template(priv_tmpl, n_priv, *rung, va);
			rv = t->fl->C_GenerateKeyPair(t->admin, mech, pa, np, va, nv, hpub, hpriv);
			if (*first_rv == CKR_OK)
				*first_rv = rv;
			/* Expected refusals walk the ladder: they are not the token failing. */
			if (rv == CKR_OK || !ladder_rv(rv))
				break;
		}
		if (rv != CKR_OK && !ladder_rv(rv))
			break;
	}
	return rv;
}

/*
 * A token that assigns CKA_IDs itself (kmsp11): the id of the new pair, read back from its
 * private key into k, must be on its public key too and on no other object of the token.
 */
static int read_assigned_id(km_token_t *t, CK_SESSION_HANDLE s, km_p11_key_t *k)
{
	uint8_t pub_id[KM_P11_ID_MAX];
	CK_ATTRIBUTE a = { CKA_ID, k->id, sizeof(k->id) }, b = { CKA_ID, pub_id, sizeof(pub_id) };
	CK_OBJECT_HANDLE found[3];
	CK_ULONG n = 0;
	CK_RV rv = t->fl->C_GetAttributeValue(s, k->priv, &a, 1);

	if (rv != CKR_OK || a.ulValueLen == 0 || a.ulValueLen > KM_P11_ID_MAX) {
		km_p11_set_error(t, "%s: generate: the token gave the new private key no CKA_ID of "
		                 "1..%d bytes: %s", t->who, KM_P11_ID_MAX, AT_GENERATE.verdict);
		return KM_P11_EKEYREFUSED;
	}
	rv = t->fl->C_GetAttributeValue(s, k->pub, &b, 1);
	if (rv != CKR_OK || b.ulValueLen != a.ulValueLen || memcmp(pub_id, k->id, a.ulValueLen)) {
		km_p11_set_error(t, "%s: generate: the token gave the new public key another CKA_ID "
		                 "than its private key: %s", t->who, AT_GENERATE.verdict);
		return KM_P11_EKEYREFUSED;
	}
	CK_ATTRIBUTE by_id = { CKA_ID, k->id, a.ulValueLen };
	if ((rv = km_p11_find(t, s, &by_id, 1, found, 3, &n)) != CKR_OK)
		return km_p11_fail(t, rv, "C_FindObjects (assigned CKA_ID)");
	if (n != 2) {
		km_p11_set_error(t, "%s: generate: the CKA_ID the token assigned %s: %s", t->who,
		                 n > 2 ? "is not unique: other objects of the token have it too" :
		                 "does not find the new pair", AT_GENERATE.verdict);
		return KM_P11_EKEYREFUSED;
	}
	k->id_len = a.ulValueLen;
	return KM_EOK;
}

/*
 * Called with admin_lock held. With id NULL the templates carry no CKA_ID: the token assigns
 * it, and the new pair goes into *assigned (its handles and the id read back) unchecked; pub
 * is not written.
 */
static int generate_locked(km_token_t *t, const km_alg_info_t *ai, unsigned rsa_bits,
                           const char *label, const uint8_t *id, size_t id_len,
                           km_pubkey_t *pub, km_p11_key_t *assigned)
{
	static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	static CK_BYTE exponent[] = { 0x01, 0x00, 0x01 };
	CK_SESSION_HANDLE s = t->admin;
	CK_OBJECT_HANDLE existing[1], hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
	CK_ULONG n = 0, bits = rsa_bits;
	CK_MECHANISM_TYPE sign_mech = km_p11_alg_mechanism(t, ai->alg);
	CK_MECHANISM mech = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	struct ec_params params[3] = { { NULL, 0 } };
	size_t n_params = 1;
	km_p11_key_t k = { 0 };
	km_pubkey_t p;
	CK_RV rv, first_rv = CKR_OK;
	unsigned rung = 0;
	int r;

	if (id != NULL && (r = check_id(t, id, id_len)) != KM_EOK)
		return r;
	/* The ID must be new: a second pair with it would make lookups ambiguous. */
	CK_ATTRIBUTE by_id = { CKA_ID, (void *)id, id_len };
	rv = id ? km_p11_find(t, s, &by_id, 1, existing, 1, &n) : CKR_OK;
	if (rv != CKR_OK)
		return km_p11_fail(t, rv, "C_FindObjects (generate)");
	if (n > 0) {
		km_p11_set_error(t, "%s: generate: objects with this CKA_ID already exist", t->who);
		return KM_EEXIST;
	}

	/* Ed25519: the RFC 8410 OID, then the PrintableString "edwards25519" (YubiHSM 2), then
	 * Luna's OID, each on the whole ladder. */
	params[0].p = km_p11_curve_params(ai->crv, &params[0].len);
	while (ai->kty == KM_KTY_OKP && n_params < 3 &&
	       (params[n_params].p = km_p11_ed25519_params(n_params, &params[n_params].len)))
		n_params++;
	tmpl_attr_t pub_tmpl[TMPL_MAX] = {
		{ { CKA_TOKEN, &yes, sizeof(yes) }, DROP_AT_4 },
		{ { CKA_PRIVATE, &no, sizeof(no) }, DROP_AT_3 },
		{ { CKA_VERIFY, &yes, sizeof(yes) }, DROP_AT_4 },
		{ { CKA_ENCRYPT, &no, sizeof(no) }, DROP_AT_3 },
		{ { CKA_WRAP, &no, sizeof(no) }, DROP_AT_3 },
		{ { CKA_DERIVE, &no, sizeof(no) }, DROP_AT_3 },
		{ { CKA_ID, (void *)id, id_len }, id ? KEEP : OMIT },
		{ { CKA_LABEL, (void *)label, strlen(label) }, KEEP },
	};
	size_t n_pub = 8, at_params = 0;
	tmpl_attr_t priv_tmpl[TMPL_MAX] = {
		{ { CKA_TOKEN, &yes, sizeof(yes) }, DROP_AT_4 },
		{ { CKA_PRIVATE, &yes, sizeof(yes) }, DROP_AT_4 },
		{ { CKA_SENSITIVE, &yes, sizeof(yes) }, DROP_AT_4 },
		{ { CKA_EXTRACTABLE, &no, sizeof(no) }, DROP_AT_4 },
		{ { CKA_SIGN, &yes, sizeof(yes) }, DROP_AT_4 },
		{ { CKA_DECRYPT, &no, sizeof(no) }, DROP_AT_3 },
		{ { CKA_UNWRAP, &no, sizeof(no) }, DROP_AT_3 },
		{ { CKA_DERIVE, &no, sizeof(no) }, DROP_AT_3 },
		{ { CKA_ID, (void *)id, id_len }, id ? KEEP : OMIT },
		{ { CKA_LABEL, (void *)label, strlen(label) }, KEEP },
		/* No copy of the key can be made with C_CopyObject (a copy could be given other
		 * attributes; issue 16). */
		{ { CKA_COPYABLE, &no, sizeof(no) }, DROP_AT_1 },
		{ { CKA_ALLOWED_MECHANISMS, &sign_mech, sizeof(sign_mech) }, DROP_AT_2 },
	};
	size_t n_priv = 12;

	switch (ai->kty) {
	case KM_KTY_RSA:
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		pub_tmpl[n_pub++] = (tmpl_attr_t){ { CKA_MODULUS_BITS, &bits, sizeof(bits) }, KEEP };
		pub_tmpl[n_pub++] = (tmpl_attr_t){ { CKA_PUBLIC_EXPONENT, exponent,
		                                     sizeof(exponent) }, KEEP };
		break;
	case KM_KTY_EC:
	case KM_KTY_OKP:
		mech.mechanism = ai->kty == KM_KTY_EC ? CKM_EC_KEY_PAIR_GEN :
		                                        CKM_EC_EDWARDS_KEY_PAIR_GEN;
		at_params = n_pub;
		pub_tmpl[n_pub++] = (tmpl_attr_t){ { CKA_EC_PARAMS, (void *)params[0].p,
		                                     params[0].len }, KEEP };
		break;
	}

	/* The whole ladder with the caller's label, then with one that fits strict tokens
	 * (fit_label): the label is for humans, keys are found by their CKA_ID. */
	char fitted[FIT_LABEL_MAX + 1];
	const char *labels[2] = { label, fit_label(label, fitted) };
	rv = CKR_GENERAL_ERROR;
	for (size_t l = 0; l < 2 && labels[l] != NULL && rv != CKR_OK; l++) {
		pub_tmpl[AT_LABEL_PUB].a = (CK_ATTRIBUTE){ CKA_LABEL, (void *)labels[l],
		                                          strlen(labels[l]) };
		priv_tmpl[AT_LABEL_PRIV].a = pub_tmpl[AT_LABEL_PUB].a;
		rv = ladder(t, &mech, pub_tmpl, n_pub, priv_tmpl, n_priv, at_params, params, n_params,
		            &first_rv, &rung, &hpub, &hpriv);
		if (rv != CKR_OK && !ladder_rv(rv))
			break;
	}
	if (rv != CKR_OK) {
		char op[96];
		snprintf(op, sizeof(op), "C_GenerateKeyPair (%s; first attempt %s)", ai->name,
		         km_p11_rv_name(first_rv));
		return km_p11_fail(t, rv, op);
	}

	if (id != NULL)
		memcpy(k.id, id, id_len);
	k.id_len = id_len;
	k.priv = hpriv;
	k.pub = hpub;
	k.kty = ai->kty;
	k.crv = ai->crv;
	k.rsa_bits = rsa_bits;
	if (rung < DROP_AT_2) {      /* CKA_ALLOWED_MECHANISMS was in the template */
		k.allowed[0] = sign_mech;
		k.n_allowed = 1;
		k.allowed_known = true;
	}
	if (id == NULL) {
		if ((r = read_assigned_id(t, s, &k)) != KM_EOK) {
			t->fl->C_DestroyObject(s, hpriv);
			t->fl->C_DestroyObject(s, hpub);
			return r;
		}
		t->ids_assigned = true;
		*assigned = k;
		return KM_EOK;
	}
	if ((r = check_pair(t, s, &k, ai, &p, &AT_GENERATE)) != KM_EOK) {
		/* Leave nothing behind that the caller does not know about. */
		t->fl->C_DestroyObject(s, hpriv);
		t->fl->C_DestroyObject(s, hpub);
		return r;
	}
	(void)km_p11_cache_put(&t->cache, &k, km_p11_cache_generation(&t->cache));
	*pub = p;
	return KM_EOK;
}

int km_token_generate_with_id(km_token_t *t, km_alg_t alg, unsigned rsa_bits, const char *label,
                              const uint8_t *id, size_t id_len, km_pubkey_t *pub)
{
	const km_alg_info_t *ai = km_alg_info(alg);
	int r = check_request(t, ai, alg, rsa_bits, label);

	if (r != KM_EOK)
		return r;
	if (pub == NULL) {
		km_p11_set_error(t, "%s: generate: no public key output given", t->who);
		return KM_EINVAL;
	}
	pthread_mutex_lock(&t->admin_lock);
	if ((r = km_p11_ready_locked(t)) == KM_EOK)
		r = generate_locked(t, ai, rsa_bits, label, id, id_len, pub, NULL);
	pthread_mutex_unlock(&t->admin_lock);
	return r;
}

int km_token_generate_assigned(km_token_t *t, km_alg_t alg, unsigned rsa_bits, const char *label,
                               uint8_t ret_id[KM_TOKEN_ID_MAX], size_t *ret_len)
{
	const km_alg_info_t *ai = km_alg_info(alg);
	km_p11_key_t k = { 0 };
	int r = check_request(t, ai, alg, rsa_bits, label);

	if (r != KM_EOK)
		return r;
	pthread_mutex_lock(&t->admin_lock);
	if ((r = km_p11_ready_locked(t)) == KM_EOK)
		r = generate_locked(t, ai, rsa_bits, label, NULL, 0, NULL, &k);
	pthread_mutex_unlock(&t->admin_lock);
	if (r == KM_EOK) {
		memcpy(ret_id, k.id, k.id_len);
		*ret_len = k.id_len;
	}
	return r;
}

void km_token_set_assigns_ids(km_token_t *t)
{
	pthread_mutex_lock(&t->admin_lock);
	t->ids_assigned = true;
	pthread_mutex_unlock(&t->admin_lock);
}

bool km_token_assigns_ids(km_token_t *t)
{
	pthread_mutex_lock(&t->admin_lock);
	bool v = t->ids_assigned;
	pthread_mutex_unlock(&t->admin_lock);
	return v;
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
	r = km_token_generate_with_id(t, alg, rsa_bits, label, id, KM_TOKEN_ID_LEN, pub);
	if (r == KM_EOK)
		memcpy(id_out, id, KM_TOKEN_ID_LEN);
	return r;
}

int km_token_check_key(km_token_t *t, const uint8_t *id, size_t id_len, km_alg_t alg,
                       km_pubkey_t *pub)
{
	const km_alg_info_t *ai = km_alg_info(alg);
	km_p11_key_t k;
	km_pubkey_t p;
	int r;

	if (ai == NULL || pub == NULL) {
		km_p11_set_error(t, "%s: check: unknown algorithm or no output given", t->who);
		return KM_EINVAL;
	}
	pthread_mutex_lock(&t->admin_lock);
	if ((r = km_p11_ready_locked(t)) != KM_EOK)
		goto out;
	if ((r = km_p11_key_lookup(t, t->admin, id, id_len, &k)) != KM_EOK)
		goto out;
	if (k.priv == CK_INVALID_HANDLE || k.pub == CK_INVALID_HANDLE) {
		km_p11_set_error(t, "%s: check: the pair has no %s key object: refused", t->who,
		                 k.priv == CK_INVALID_HANDLE ? "private" : "public");
		r = KM_P11_EKEYREFUSED;
		goto out;
	}
	if (k.kty != ai->kty || (ai->kty != KM_KTY_RSA && k.crv != ai->crv)) {
		km_p11_set_error(t, "%s: check: the key pair is not a %s key: refused", t->who,
		                 ai->name);
		r = KM_P11_EKEYREFUSED;
		goto out;
	}
	if ((r = check_pair(t, t->admin, &k, ai, &p, &AT_CHECK)) == KM_EOK) {
		km_p11_note_ok(t);
		*pub = p;
	}
out:
	pthread_mutex_unlock(&t->admin_lock);
	return r;
}
