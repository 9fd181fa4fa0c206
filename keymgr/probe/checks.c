/* SPDX-License-Identifier: Apache-2.0 */
/* The catalogue of checks a probe run sends, in order, with what each tests and its source. */
#include "keymgr/probe/probe_int.h"

static const km_probe_check_t catalogue[] = {
	[PROBE_NO_TOKEN] = { "no-token", KM_PROBE_CONTROL, false,
		"the request without any token: the endpoint must ask for one", "RFC 6750 3.1" },
	[PROBE_GENUINE] = { "genuine", KM_PROBE_CONTROL, true,
		"a token the key set signs, for the endpoint's audience, valid for 60 s",
		"RFC 7519 7.2; RFC 9068 4" },
	[PROBE_EXPIRED] = { "expired", KM_PROBE_REAL, false,
		"exp is the policy's clock_skew + 60 s in the past", "RFC 7519 4.1.4; RFC 9068 4" },
	[PROBE_NOT_YET_VALID] = { "not-yet-valid", KM_PROBE_REAL, false,
		"nbf is the policy's clock_skew + 60 s in the future", "RFC 7519 4.1.5" },
	[PROBE_WRONG_ISSUER] = { "wrong-issuer", KM_PROBE_REAL, false,
		"iss names another issuer (" KM_PROBE_BAD_ISSUER_TEXT ")",
		"RFC 8725 3.8; RFC 9068 4" },
	[PROBE_WRONG_AUDIENCE] = { "wrong-audience", KM_PROBE_REAL, false,
		"aud names an audience nobody has (" KM_PROBE_BAD_AUDIENCE ")",
		"RFC 8725 3.9; RFC 7519 4.1.3; RFC 9068 4" },
	[PROBE_OTHER_AUDIENCE] = { "other-audience", KM_PROBE_REAL, false,
		"aud names another audience of the same key set: a token for a sibling service",
		"RFC 8725 3.9; RFC 9068 4" },
	[PROBE_TYP_ACCESS] = { "typ-access-token", KM_PROBE_REAL, false,
		"header typ at+jwt: an access token of the same issuer where another class belongs",
		"RFC 8725 3.11, 3.12; RFC 9068 2.1" },
	[PROBE_TYP_ID] = { "typ-id-token", KM_PROBE_REAL, false,
		"header typ JWT: an ID token of the same issuer where another class belongs",
		"RFC 8725 3.11, 3.12; RFC 9068 4" },
	[PROBE_TYP_LOGOUT] = { "typ-logout-token", KM_PROBE_REAL, false,
		"header typ logout+jwt: a logout token of the same issuer",
		"RFC 8725 3.12; OIDC Back-Channel Logout 2.4" },
	[PROBE_OVERLONG] = { "overlong-lifetime", KM_PROBE_REAL, false,
		"exp - iat is the key set's max_token_ttl + 60 s (iat set back, exp within 60 s)",
		"RFC 7519 4.1.6; RFC 8725 3.10" },
	[PROBE_CRIT] = { "crit-unknown", KM_PROBE_REAL, false,
		"header crit names an extension nobody understands",
		"RFC 7515 4.1.11" },
	[PROBE_DUPLICATE] = { "duplicate-claim", KM_PROBE_REAL, false,
		"the payload has iss twice, the last one wrong: refuse, or read the last",
		"RFC 7519 4; RFC 7515 5.2" },
	[PROBE_SIG_LENGTH] = { "signature-length", KM_PROBE_REAL, false,
		"a genuine signature with one byte appended", "RFC 7518 3.1; RFC 8725 3.3" },
	[PROBE_ALG_NONE] = { "alg-none", KM_PROBE_FORGED, false,
		"alg none, the real kid, no signature", "RFC 8725 2.1, 3.1; RFC 7518 3.6" },
	[PROBE_HS_PEM] = { "hs256-public-pem", KM_PROBE_FORGED, false,
		"HS256 keyed with the key set's public key as PEM (SubjectPublicKeyInfo)",
		"RFC 8725 2.1, 3.1" },
	[PROBE_HS_JWK] = { "hs256-public-jwk", KM_PROBE_FORGED, false,
		"HS256 keyed with the key set's public JWK as published",
		"RFC 8725 2.1, 3.1" },
	[PROBE_WRONG_KEY] = { "wrong-key", KM_PROBE_FORGED, false,
		"the real kid and alg, signed by another key", "RFC 7515 5.2" },
	[PROBE_JKU] = { "jku", KM_PROBE_FORGED, false,
		"jku points at the probe's own key on a loopback listener (fetch recorded)",
		"RFC 8725 2.9, 3.10; RFC 7515 4.1.2" },
	[PROBE_X5U] = { "x5u", KM_PROBE_FORGED, false,
		"x5u points at the probe's own certificate on a loopback listener (fetch recorded)",
		"RFC 8725 2.9, 3.10; RFC 7515 4.1.5" },
	[PROBE_JWK] = { "jwk-embedded", KM_PROBE_FORGED, false,
		"a jwk header carrying the probe's own key, which signed the token",
		"RFC 8725 3.10; RFC 7515 4.1.3" },
	[PROBE_KID_PATH] = { "kid-path-traversal", KM_PROBE_FORGED, false,
		"kid " KM_PROBE_KID_PATH ", HS256 keyed with the empty file it names",
		"RFC 8725 2.9, 3.10" },
	[PROBE_KID_SQL] = { "kid-sql-injection", KM_PROBE_FORGED, false,
		"kid " KM_PROBE_KID_SQL_TEXT ", HS256 keyed with the value it selects",
		"RFC 8725 2.9, 3.10" },
	[PROBE_KID_HEADER] = { "kid-header-injection", KM_PROBE_FORGED, false,
		"the real kid followed by CR LF and a header line, signed by another key",
		"RFC 8725 2.9, 3.10" },
	[PROBE_ECDSA_R0] = { "ecdsa-r-zero", KM_PROBE_FORGED, false,
		"ES*: a signature with r = 0", "RFC 8725 3.3; RFC 7518 3.4; CVE-2022-21449" },
	[PROBE_ECDSA_S0] = { "ecdsa-s-zero", KM_PROBE_FORGED, false,
		"ES*: a signature with s = 0", "RFC 8725 3.3; RFC 7518 3.4; CVE-2022-21449" },
	[PROBE_ECDSA_ZERO] = { "ecdsa-zero", KM_PROBE_FORGED, false,
		"ES*: a signature with r = s = 0 (the \"psychic signature\")",
		"RFC 8725 3.3; RFC 7518 3.4; CVE-2022-21449" },
	[PROBE_RSA_SWAP] = { "rsa-pss-pkcs1-swap", KM_PROBE_FORGED, false,
		"RS*/PS*: the other RSA padding's alg with the real kid, signed by another key",
		"RFC 8725 3.1; RFC 7518 3.3, 3.5" },
	[PROBE_GENUINE_AGAIN] = { "genuine-again", KM_PROBE_CONTROL, true,
		"a second genuine token, last: the run was not cut short by a rate limit or a block",
		"RFC 7519 7.2" },
};

_Static_assert(sizeof(catalogue) / sizeof(catalogue[0]) == PROBE_COUNT,
               "one catalogue entry per check");

const km_probe_check_t *km_probe_checks(size_t *n)
{
	if (n != NULL)
		*n = PROBE_COUNT;
	return catalogue;
}

const char *km_probe_verdict_name(km_probe_verdict_t v)
{
	switch (v) {
	case KM_PROBE_PASS: return "pass";
	case KM_PROBE_FAIL: return "FAIL";
	case KM_PROBE_WARN: return "warn";
	case KM_PROBE_ERROR: return "error";
	default: return "n/a";
	}
}

const char *km_probe_group_name(km_probe_group_t g)
{
	switch (g) {
	case KM_PROBE_CONTROL: return "control";
	case KM_PROBE_REAL: return "real key";
	default: return "forged";
	}
}
