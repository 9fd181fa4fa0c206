/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signing operations initialised ahead (km_token_prepare). With SoftHSM 2.6.1, C_SignInit
 * of an EC key costs about twice its C_Sign: it rebuilds the curve's group and decrypts the
 * key at every init. A signing service that answers one request and then waits for the next
 * can run that C_SignInit while it waits, so that the next request only pays C_Sign.
 *
 * A session whose last signature used an EC or EdDSA key is marked PENDING (sign.c). The
 * service calls km_token_prepare() when it is idle: every free PENDING session gets the
 * C_SignInit of its last key and becomes READY. A READY operation is consumed only by a
 * signature with the same key handle and algorithm, found in the same generation of the
 * handle cache (no key was destroyed or dropped since), less than KM_TOKEN_PREPARED_MAX_AGE_MS
 * after its init. Anything else on that session first ends it (km_p11_prep_finish(): PKCS#11 2.40 has no
 * cancel, but a failed C_SignUpdate ends an operation without a signature). RSA keys are not
 * prepared: their C_SignInit is small next to their C_Sign, and their mechanisms take
 * C_SignUpdate, so an unused operation could only be ended by a whole RSA signature.
 *
 * Which key is signed with is decided by the caller for every request, as before: a
 * prepared operation never chooses the key, it only saves a step when the caller's key is
 * the one it was prepared for.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "keymgr/common/clock.h"
#include "keymgr/common/error.h"
#include "pkcs11/internal.h"
#include "pkcs11/mech.h"
#include "pkcs11/prepare.h"
#include "pkcs11/token_int.h"

#define FINISH_BUF_MAX 1024     /* larger than any EC or EdDSA signature */

static bool preparable(const km_alg_info_t *ai)
{
	return ai != NULL && (ai->kty == KM_KTY_EC || ai->kty == KM_KTY_OKP);
}

void km_p11_prep_mark(km_token_t *t, unsigned idx, CK_OBJECT_HANDLE key,
                      const km_alg_info_t *ai, uint64_t gen)
{
	km_p11_prep_t *pr = &t->pool.prep[idx];

	if (!preparable(ai)) {
		*pr = (km_p11_prep_t){ .state = KM_P11_PREP_NONE };
		return;
	}
	*pr = (km_p11_prep_t){ .state = KM_P11_PREP_PENDING, .key = key, .alg = ai->alg,
	                       .cache_gen = gen };
}

/*
 * Ends the operation active on session s, without a signature where the token follows
 * PKCS#11: CKM_ECDSA and CKM_EDDSA are single-part, so C_SignUpdate fails, and a failed
 * C_SignUpdate ends the operation (SoftHSM 2.6.1: CKR_OPERATION_NOT_INITIALIZED, the
 * operation reset). A length query (C_Sign without a buffer, which ends nothing) then says
 * whether it really ended. A token that took the update, or kept the operation after
 * refusing it, gets the operation finished by a signature over zero bytes, wiped. Whatever
 * these return, a lost session shows at the session's next use.
 */
void km_p11_prep_finish(km_token_t *t, CK_SESSION_HANDLE s, const km_alg_info_t *ai)
{
	uint8_t zero[64] = { 0 }, out[FINISH_BUF_MAX];
	CK_ULONG in_len = ai->kty == KM_KTY_EC ? km_hash_len(ai->hash) : 32, len = 0;
	CK_RV rv = t->fl->C_SignUpdate(s, zero, 1);

	if (rv == CKR_OK) {
		len = sizeof(out);
		(void)t->fl->C_SignFinal(s, out, &len);
	} else if (t->fl->C_Sign(s, zero, in_len, NULL, &len) == CKR_OK) {
		len = sizeof(out);
		(void)t->fl->C_Sign(s, zero, in_len, out, &len);
	}
	OPENSSL_cleanse(out, sizeof(out));
}

void km_p11_prep_settle(km_token_t *t, unsigned idx)
{
	km_p11_prep_t *pr = &t->pool.prep[idx];
	const km_alg_info_t *ai = km_alg_info(pr->alg);

	if (pr->state == KM_P11_PREP_READY && ai != NULL)
		km_p11_prep_finish(t, t->pool.sessions[idx], ai);
	*pr = (km_p11_prep_t){ .state = KM_P11_PREP_NONE };
}

bool km_p11_prep_take(km_token_t *t, unsigned idx, CK_OBJECT_HANDLE key, km_alg_t alg,
                      uint64_t gen)
{
	km_p11_prep_t *pr = &t->pool.prep[idx];

	if (pr->state == KM_P11_PREP_READY && pr->key == key && pr->alg == alg &&
	    pr->cache_gen == gen && km_monotonic_ms() - pr->ready_ms < KM_TOKEN_PREPARED_MAX_AGE_MS) {
		*pr = (km_p11_prep_t){ .state = KM_P11_PREP_NONE };
		return true;
	}
	km_p11_prep_settle(t, idx);
	return false;
}

unsigned km_token_prepare(km_token_t *t, unsigned max)
{
	unsigned idx, n = 0;

	if (t == NULL || __atomic_load_n(&t->rec.lost, __ATOMIC_ACQUIRE) != 0)
		return 0;
	while (n < max && km_p11_pool_take_pending(&t->pool, &idx)) {
		km_p11_prep_t *pr = &t->pool.prep[idx];
		const km_alg_info_t *ai = km_alg_info(pr->alg);
		/* A key dropped since (destroyed, or the sessions re-opened) is not prepared. */
		if (ai != NULL && pr->cache_gen == km_p11_cache_generation(&t->cache) &&
		    km_p11_sign_init(t, t->pool.sessions[idx], pr->key, ai) == CKR_OK) {
			pr->state = KM_P11_PREP_READY;
			pr->ready_ms = km_monotonic_ms();
			n++;
		} else {
			/* Not an error of any request: the next signature runs C_SignInit itself and
			 * reports what it finds. */
			*pr = (km_p11_prep_t){ .state = KM_P11_PREP_NONE };
		}
		km_p11_pool_release(&t->pool, idx);
	}
	return n;
}
