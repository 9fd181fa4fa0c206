/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one way around the claims policy, for `keymgr probe` only (docs/probe.md).
 *
 * A probe checks that a verifier refuses tokens a key set would never sign: expired, not yet
 * valid, for another issuer or audience, of another class, with too long a lifetime, with a
 * crit header, with a duplicate claim. To show that the verifier refuses them for that
 * reason and not for their signature, they must carry the key set's real signature. This
 * function makes them, and nothing else:
 *   - only in an environment that probe.environments names (never production unless named);
 *   - the caller's claims must pass the key set's claims policy first (km_claims_prepare);
 *     then the one named deviation is applied to the result;
 *   - every token is valid for at most KM_CLAIMS_PROBE_TTL seconds (the expired one was,
 *     in the past; the not-yet-valid one will be, for that long; the over-long one has its
 *     iat set back, not its exp forward) and carries a jti made here with the prefix
 *     KM_CLAIMS_PROBE_JTI_PREFIX, which the caller records (keymgr/probe writes it to the
 *     audit log before anything is sent);
 *   - with the key set's active key only, as km_claims_sign() resolves it (the audit key and
 *     a key made for another purpose are refused the same way).
 *
 * NOT reachable from `keymgr sign` or keymgrd's control socket: scripts/check-includes lets
 * only keymgr/probe/ include this header, and tests/arch/test_probe_signer.py checks the
 * built binaries (keymgrd holds no copy of this function; in keymgr only keymgr/probe/'s
 * code calls it). Do not include it anywhere else.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/core/env.h"

#define KM_CLAIMS_PROBE_TTL 60
#define KM_CLAIMS_PROBE_JTI_PREFIX "keymgr-probe-"
#define KM_CLAIMS_PROBE_JTI_MAX 48
/* RFC 2606 .invalid names: they can never be a real issuer or audience. */
#define KM_CLAIMS_PROBE_BAD_ISSUER "https://wrong-issuer.keymgr-probe.invalid"
/* The crit extension no verifier understands (RFC 7515 section 4.1.11). */
#define KM_CLAIMS_PROBE_CRIT_NAME "x-keymgr-probe"

typedef enum {
	KM_CLAIMS_PROBE_GENUINE,        /* what the key set signs, valid for 60 s */
	KM_CLAIMS_PROBE_EXPIRED,        /* exp = now - clock_skew - 60, iat = nbf = exp - 60 */
	KM_CLAIMS_PROBE_NOT_YET_VALID,  /* nbf = now + clock_skew + 60, exp = nbf + 60 */
	KM_CLAIMS_PROBE_WRONG_ISS,      /* iss = KM_CLAIMS_PROBE_BAD_ISSUER */
	KM_CLAIMS_PROBE_WRONG_AUD,      /* aud = arg (none of the token's own audiences) */
	KM_CLAIMS_PROBE_WRONG_TYP,      /* header typ = arg (not the key set's own) */
	KM_CLAIMS_PROBE_OVERLONG,       /* iat = nbf = exp - (max_token_ttl + 60) */
	KM_CLAIMS_PROBE_CRIT,           /* header crit: [KM_CLAIMS_PROBE_CRIT_NAME] and it */
	KM_CLAIMS_PROBE_DUPLICATE_ISS,  /* payload with iss twice, the last one wrong */
} km_claims_probe_t;

/*
 * Signs one probe token for key set keyset of env: claims (a JSON object, borrowed; no iat,
 * nbf, jti or exp: keymgr sets them) prepared at now with a KM_CLAIMS_PROBE_TTL lifetime,
 * then deviation what (arg: the wrong audience or typ; NULL for the others). *ret_jwt is
 * malloc'd; ret_jti receives the token's jti. Both set only on success.
 * Returns KM_EOK; KM_POLICY_EDENIED (environment not marked for probing, claims refused,
 * the audit key, a purpose change; err says which); KM_EINVAL (bad arguments, an arg that
 * is not wrong); the codes of km_claims_sign() for the key and the token.
 */
int km_claims_sign_probe(km_env_t *env, const char *keyset, km_claims_probe_t what,
                         const char *arg, const json_t *claims, int64_t now, char **ret_jwt,
                         char ret_jti[KM_CLAIMS_PROBE_JTI_MAX + 1], char *err, size_t errlen);
