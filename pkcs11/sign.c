/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signing with the JWS algorithm's mechanism (chosen per token by caps.c):
 *   RS*: CKM_SHA{256,384,512}_RSA_PKCS over the message, or CKM_RSA_PKCS over the DER
 *        DigestInfo of a hash made here where the token lacks the combined mechanism
 *   PS*: CKM_SHA{256,384,512}_RSA_PKCS_PSS, or CKM_RSA_PKCS_PSS over a hash made here; MGF1
 *        with the same hash, salt = hash length
 *   ES*: the message hashed here (SoftHSM 2.6.1 has no CKM_ECDSA_SHA*), then CKM_ECDSA;
 *        the result is r||s, each half left-padded to the field width, whether the token
 *        returned r||s or a DER ECDSA-Sig-Value (told apart by parsing, not by its first byte)
 *   EdDSA: CKM_EDDSA over the message
 * The hot path takes a pooled session and a cached handle: no C_FindObjects. After the
 * sessions were re-opened (recover.c) the cache is empty and the key is searched once again.
 * A session prepared for the key (prepare.c) skips the C_SignInit.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "keymgr/common/error.h"
#include "pkcs11/failure.h"
#include "pkcs11/internal.h"
#include "pkcs11/keys.h"
#include "pkcs11/mech.h"
#include "pkcs11/prepare.h"
#include "pkcs11/recover.h"
#include "pkcs11/sign.h"
#include "pkcs11/token_int.h"

#define SIG_BUF_MAX 1024        /* RSA-8192; our own keys stop at 4096 */
#define DIGESTINFO_MAX (19 + EVP_MAX_MD_SIZE)

/* The digests hashed here (make_input), fetched once: OpenSSL 3 fetches EVP_sha256() and its
 * kin from the provider store again at every EVP_DigestInit, which costs about as much as
 * hashing a token's signing input. Kept for the life of the process; NULL when a fetch
 * failed (the implicit fetch is used then). */
static EVP_MD *fetched[3];
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_digests(void)
{
	fetched[0] = EVP_MD_fetch(NULL, "SHA256", NULL);
	fetched[1] = EVP_MD_fetch(NULL, "SHA384", NULL);
	fetched[2] = EVP_MD_fetch(NULL, "SHA512", NULL);
}

static const EVP_MD *hash_md(km_hash_t h)
{
	pthread_once(&fetch_once, fetch_digests);
	switch (h) {
	case KM_HASH_SHA256: return fetched[0] != NULL ? fetched[0] : EVP_sha256();
	case KM_HASH_SHA384: return fetched[1] != NULL ? fetched[1] : EVP_sha384();
	default: return fetched[2] != NULL ? fetched[2] : EVP_sha512();
	}
}

/* One C_SignInit/C_Sign on session s. */
static CK_RV sign_once(km_token_t *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                       const km_alg_info_t *ai, const uint8_t *in, size_t in_len, uint8_t *out,
                       CK_ULONG *out_len)
{
	CK_RV rv = km_p11_sign_init(t, s, key, ai);

	if (rv != CKR_OK)
		return rv;
	return t->fl->C_Sign(s, (CK_BYTE *)in, in_len, out, out_len);
}

/* DER DigestInfo prefixes (RFC 8017 section 9.2, note 1). */
static const uint8_t di_sha256[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                     0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
static const uint8_t di_sha384[] = { 0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                     0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30 };
static const uint8_t di_sha512[] = { 0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                     0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40 };

/*
 * What C_Sign gets for alg on this token (caps.c): the message itself (*in = data), or its
 * hash, or the DigestInfo of its hash, written into buf (DIGESTINFO_MAX bytes).
 */
static int make_input(km_token_t *t, const km_alg_info_t *ai, const uint8_t *data,
                      size_t len, uint8_t *buf, const uint8_t **in, size_t *in_len)
{
	km_p11_input_t kind = t->via[ai->alg - 1].input;
	const uint8_t *prefix = ai->hash == KM_HASH_SHA256 ? di_sha256 :
	                        ai->hash == KM_HASH_SHA384 ? di_sha384 : di_sha512;
	size_t pre = kind == KM_P11_IN_DIGESTINFO ? sizeof(di_sha256) : 0;
	unsigned dl = 0;

	if (kind == KM_P11_IN_MESSAGE) {
		*in = data;
		*in_len = len;
		return KM_EOK;
	}
	if (EVP_Digest(data, len, buf + pre, &dl, hash_md(ai->hash), NULL) != 1) {
		km_p11_set_error(t, "%s: sign: hashing the message for %s failed", t->who, ai->name);
		return KM_ECRYPTO;
	}
	memcpy(buf, prefix, pre);
	*in = buf;
	*in_len = pre + dl;
	return KM_EOK;
}

/* Reads a DER length at p[*at] (definite, at most 2 bytes); false when malformed. */
static bool der_len(const uint8_t *p, size_t len, size_t *at, size_t *ret)
{
	if (*at >= len)
		return false;
	uint8_t b = p[(*at)++];
	if (b < 0x80) {
		*ret = b;
		return true;
	}
	if (b != 0x81 || *at >= len || p[*at] < 0x80)
		return false;
	*ret = p[(*at)++];
	return true;
}

/* One positive minimal INTEGER of at most field bytes (without its sign byte). */
static bool der_int(const uint8_t *p, size_t len, size_t *at, size_t field,
                    const uint8_t **v, size_t *vlen)
{
	size_t n;
	if (*at >= len || p[(*at)++] != 0x02 || !der_len(p, len, at, &n) || n == 0 ||
	    n > len - *at)
		return false;
	const uint8_t *q = p + *at;
	if (q[0] & 0x80)
		return false;                        /* negative */
	if (n > 1 && q[0] == 0 && !(q[1] & 0x80))
		return false;                        /* not minimal */
	*at += n;
	if (q[0] == 0 && n > 1) {
		q++;
		n--;
	}
	if (n > field)
		return false;
	*v = q;
	*vlen = n;
	return true;
}

/*
 * An ECDSA-Sig-Value SEQUENCE { r INTEGER, s INTEGER } that spans the whole buffer exactly,
 * each value at most field bytes: a token that returns DER instead of r||s. By structure and
 * length, never by the first byte alone (an r||s may start with 0x30).
 */
static bool ecdsa_from_der(const uint8_t *p, size_t len, size_t field, uint8_t *rs)
{
	size_t at = 0, n, rl, sl;
	const uint8_t *r, *s;

	if (len < 8 || p[at++] != 0x30 || !der_len(p, len, &at, &n) || n != len - at)
		return false;
	if (!der_int(p, len, &at, field, &r, &rl) || !der_int(p, len, &at, field, &s, &sl) ||
	    at != len)
		return false;
	memset(rs, 0, 2 * field);
	memcpy(rs + field - rl, r, rl);
	memcpy(rs + 2 * field - sl, s, sl);
	return true;
}

/* The token's C_Sign output as the JOSE signature (want: RSA/EdDSA length). */
static int jose_output(km_token_t *t, const km_alg_info_t *ai, size_t want, const uint8_t *out,
                       size_t out_len, uint8_t *sig, size_t *sig_len)
{
	if (ai->kty == KM_KTY_EC) {
		size_t field = ai->sig_len / 2, half = out_len / 2;
		/* r||s of exactly the curve's length is taken as it is; anything else must
		 * parse as DER. A shorter even r||s had leading zeros of each half dropped. */
		if (out_len != ai->sig_len && ecdsa_from_der(out, out_len, field, sig)) {
			*sig_len = ai->sig_len;
			return KM_EOK;
		}
		if (out_len % 2 != 0 || half > field || half == 0) {
			km_p11_set_error(t, "%s: CKM_ECDSA returned %zu bytes for %s, neither r||s "
			                 "nor DER", t->who, out_len, ai->name);
			return KM_ECRYPTO;
		}
		memset(sig, 0, ai->sig_len);
		memcpy(sig + (field - half), out, half);
		memcpy(sig + field + (field - half), out + half, half);
		*sig_len = ai->sig_len;
		return KM_EOK;
	}
	if (out_len != want) {
		km_p11_set_error(t, "%s: C_Sign returned %zu bytes for %s, expected %zu", t->who,
		                 out_len, ai->name, want);
		return KM_ECRYPTO;
	}
	memcpy(sig, out, out_len);
	*sig_len = out_len;
	return KM_EOK;
}

int km_p11_sign_on(km_token_t *t, CK_SESSION_HANDLE s, const km_p11_key_t *k,
                   const km_alg_info_t *ai, const uint8_t *data, size_t len, uint8_t *sig,
                   size_t *sig_len)
{
	uint8_t digest[DIGESTINFO_MAX], out[SIG_BUF_MAX];
	CK_ULONG out_len = sizeof(out);
	const uint8_t *in;
	size_t in_len;
	size_t want = ai->kty == KM_KTY_RSA ? (k->rsa_bits + 7) / 8 : ai->sig_len;
	int r;

	if (*sig_len < want) {
		km_p11_set_error(t, "%s: sign: a %s signature needs %zu bytes", t->who, ai->name,
		                 want);
		return KM_ERANGE;
	}
	if ((r = make_input(t, ai, data, len, digest, &in, &in_len)) != KM_EOK)
		return r;
	CK_RV rv = sign_once(t, s, k->priv, ai, in, in_len, out, &out_len);
	if (rv != CKR_OK) {
		char op[64];
		snprintf(op, sizeof(op), "C_Sign (%s, test signature)", ai->name);
		return km_p11_fail(t, rv, op);
	}
	return jose_output(t, ai, want, out, out_len, sig, sig_len);
}

/* KM_EOK when key k may sign as alg; otherwise stores a message and returns KM_EALG. */
static int check_key_fits(km_token_t *t, const km_p11_key_t *k, const km_alg_info_t *ai)
{
	CK_MECHANISM_TYPE mech = km_p11_alg_mechanism(t, ai->alg);

	if (k->priv == CK_INVALID_HANDLE) {
		km_p11_set_error(t, "%s: the key pair has no private key object", t->who);
		return KM_P11_ENOKEY;
	}
	if (k->kty != ai->kty || (ai->kty != KM_KTY_RSA && k->crv != ai->crv)) {
		const char *have = k->kty == KM_KTY_RSA ? "an RSA key" :
		                   k->crv != KM_CRV_NONE ? km_crv_name(k->crv) : "an unsupported key";
		km_p11_set_error(t, "%s: cannot sign %s with %s", t->who, ai->name, have);
		return KM_EALG;
	}
	if (ai->kty == KM_KTY_RSA && k->rsa_bits < KM_RSA_MIN_BITS) {
		km_p11_set_error(t, "%s: RSA key of %u bits is below the %d-bit minimum", t->who,
		                 k->rsa_bits, KM_RSA_MIN_BITS);
		return KM_EKEYSIZE;
	}
	if (k->allowed_known) {
		for (size_t i = 0; i < k->n_allowed; i++)
			if (k->allowed[i] == mech)
				return KM_EOK;
		km_p11_set_error(t, "%s: the key's CKA_ALLOWED_MECHANISMS do not permit %s", t->who,
		                 ai->name);
		return KM_EALG;
	}
	return KM_EOK;
}

/*
 * Borrows a session for a signature with the key of this CKA_ID and fills *k. A key in the
 * handle cache gets a session prepared for it when one is free (prepare.c); otherwise the
 * key is searched on a session with nothing prepared.
 */
static int session_for_key(km_token_t *t, const uint8_t *id, size_t id_len, km_alg_t alg,
                           unsigned *idx, km_p11_key_t *k, uint64_t *gen)
{
	/* Lost sessions are re-opened first (recover.c; fails at once during its backoff): the
	 * re-open empties the cache, so the key is looked up after it. */
	int r = km_p11_ready(t);

	if (r != KM_EOK)
		return r;
	/* Read before the key is: a drop after it makes a prepared operation unusable. */
	*gen = km_p11_cache_generation(&t->cache);
	if (km_p11_cache_get(&t->cache, id, id_len, k))
		return km_p11_session_get_for(t, k->priv, alg, idx);
	if ((r = km_p11_session_get(t, idx)) != KM_EOK)
		return r;
	if ((r = km_p11_key_resolve(t, t->pool.sessions[*idx], id, id_len, k)) != KM_EOK)
		km_p11_pool_release(&t->pool, *idx);
	return r;
}

/* One signature (km_token_sign); *failed_rv gets the CK_RV of a failed C_SignInit/C_Sign. */
static int sign_attempt(km_token_t *t, const uint8_t *id, size_t id_len, km_alg_t alg,
                        const uint8_t *data, size_t data_len, uint8_t *sig, size_t *sig_len,
                        CK_RV *failed_rv)
{
	int r = KM_ERROR;
	const km_alg_info_t *ai = km_alg_info(alg);
	km_p11_key_t k;
	uint8_t digest[DIGESTINFO_MAX];
	const uint8_t *in = data;
	size_t in_len = data_len, want;
	uint8_t out[SIG_BUF_MAX];
	CK_ULONG out_len = sizeof(out);
	CK_RV rv;
	bool held = false;
	unsigned idx = 0;
	uint64_t gen;

	if (ai == NULL) {
		km_p11_set_error(t, "%s: sign: unknown algorithm %d", t->who, (int)alg);
		return KM_EALG;
	}
	if (sig == NULL || sig_len == NULL || (data == NULL && data_len > 0)) {
		km_p11_set_error(t, "%s: sign: missing buffer", t->who);
		return KM_EINVAL;
	}

	if ((r = session_for_key(t, id, id_len, alg, &idx, &k, &gen)) != KM_EOK)
		return r;
	held = true;
	CK_SESSION_HANDLE s = t->pool.sessions[idx];

	if ((r = check_key_fits(t, &k, ai)) != KM_EOK)
		goto out;
	want = ai->kty == KM_KTY_RSA ? (k.rsa_bits + 7) / 8 : ai->sig_len;
	if (*sig_len < want) {
		km_p11_set_error(t, "%s: sign: a %s signature needs %zu bytes, the buffer holds %zu",
		                 t->who, ai->name, want, *sig_len);
		r = KM_ERANGE;
		goto out;
	}
	if ((r = make_input(t, ai, data, data_len, digest, &in, &in_len)) != KM_EOK)
		goto out;

	if (km_p11_prep_take(t, idx, k.priv, alg, gen)) {
		rv = t->fl->C_Sign(s, (CK_BYTE *)in, in_len, out, &out_len);
		if (rv == CKR_OPERATION_NOT_INITIALIZED) {
			/* The token dropped the prepared operation (some end idle ones): sign as
			 * without it, after making sure nothing is left active. */
			km_p11_prep_finish(t, s, ai);
			out_len = sizeof(out);
			rv = sign_once(t, s, k.priv, ai, in, in_len, out, &out_len);
		}
	} else {
		rv = sign_once(t, s, k.priv, ai, in, in_len, out, &out_len);
	}
	if (km_p11_rv_is_stale_handle(rv)) {
		/* Destroyed (perhaps by another process) since we cached it: look again once. */
		km_p11_cache_drop(&t->cache, id, id_len);
		if ((r = km_p11_key_resolve(t, s, id, id_len, &k)) != KM_EOK)
			goto out;
		if ((r = check_key_fits(t, &k, ai)) != KM_EOK)
			goto out;
		out_len = sizeof(out);
		rv = sign_once(t, s, k.priv, ai, in, in_len, out, &out_len);
	}
	if (rv != CKR_OK) {
		char op[64];
		snprintf(op, sizeof(op), "C_Sign (%s)", ai->name);
		*failed_rv = rv;
		r = km_p11_fail(t, rv, op);
		if (km_p11_rv_is_stale_handle(rv))
			km_p11_cache_drop(&t->cache, id, id_len);
		goto out;
	}
	km_p11_note_ok(t);
	km_p11_prep_mark(t, idx, k.priv, ai, gen);
	km_p11_pool_release(&t->pool, idx);
	held = false;

	r = jose_output(t, ai, want, out, out_len, sig, sig_len);
out:
	if (held)
		km_p11_pool_release(&t->pool, idx);
	return r;
}

/* What a token that closed the session answers (network HSMs close idle sessions). */
static bool closed_by_token(CK_RV rv)
{
	return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	       rv == CKR_DEVICE_REMOVED;
}

int km_token_sign(km_token_t *t, const uint8_t *id, size_t id_len, km_alg_t alg,
                  const uint8_t *data, size_t data_len, uint8_t *sig, size_t *sig_len)
{
	CK_RV rv = CKR_OK;
	size_t cap = sig_len != NULL ? *sig_len : 0;
	int r = sign_attempt(t, id, id_len, alg, data, data_len, sig, sig_len, &rv);
	if (r == KM_EOK || !closed_by_token(rv))
		return r;
	/* The token closed the session under us: the failure marked the sessions lost
	 * (failure.c), so the next attempt re-opens them first (recover.c: at once after a
	 * first loss, after the backoff after a repeated one) and signs once more. */
	*sig_len = cap;
	rv = CKR_OK;
	return sign_attempt(t, id, id_len, alg, data, data_len, sig, sig_len, &rv);
}
