/* SPDX-License-Identifier: Apache-2.0 */
/*
 * km_claims_sign_probe: deliberately wrong tokens with a key set's real key, for keymgr
 * probe only (claims_probe.h says why and how it is kept from every other caller).
 */
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keymgr/claims/claims_int.h"
#include "keymgr/claims/claims_probe.h"
#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "keymgr/jose/jws.h"
#include "pkcs11/token.h"
#include "policy/policy.h"

static int new_probe_jti(char out[KM_CLAIMS_PROBE_JTI_MAX + 1])
{
	uint8_t raw[KM_CLAIMS_JTI_BYTES];
	size_t n = strlen(KM_CLAIMS_PROBE_JTI_PREFIX);
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return KM_ECRYPTO;
	memcpy(out, KM_CLAIMS_PROBE_JTI_PREFIX, n);
	out[n + km_b64url_encode(raw, sizeof(raw), out + n)] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return KM_EOK;
}

static bool names_aud(const json_t *aud, const char *v)
{
	size_t i;
	json_t *a;
	if (json_is_string(aud))
		return strcmp(json_string_value(aud), v) == 0;
	json_array_foreach(aud, i, a)
		if (json_is_string(a) && strcmp(json_string_value(a), v) == 0)
			return true;
	return false;
}

static int set_int(json_t *c, const char *name, int64_t v)
{
	return json_object_set_new(c, name, json_integer((json_int_t)v)) == 0 ? KM_EOK : KM_ENOMEM;
}

/* The deviation on the prepared claims c (exp = now + ttl, iat = nbf = now). */
static int deviate(json_t *c, km_claims_probe_t what, const char *arg, const km_policy_t *p,
                   int64_t now, int64_t ttl, char *err, size_t errlen)
{
	int64_t exp = now + ttl;
	int r = KM_EOK;
	switch (what) {
	case KM_CLAIMS_PROBE_EXPIRED:
		exp = now - p->clock_skew - KM_CLAIMS_PROBE_TTL;
		if ((r = set_int(c, "exp", exp)) == KM_EOK && (r = set_int(c, "iat", exp - ttl)) ==
		    KM_EOK)
			r = set_int(c, "nbf", exp - ttl);
		return r;
	case KM_CLAIMS_PROBE_NOT_YET_VALID:
		if ((r = set_int(c, "nbf", now + p->clock_skew + KM_CLAIMS_PROBE_TTL)) == KM_EOK)
			r = set_int(c, "exp", now + p->clock_skew + KM_CLAIMS_PROBE_TTL + ttl);
		return r;
	case KM_CLAIMS_PROBE_OVERLONG:
		if ((r = set_int(c, "iat", exp - p->max_token_ttl - KM_CLAIMS_PROBE_TTL)) == KM_EOK)
			r = set_int(c, "nbf", exp - p->max_token_ttl - KM_CLAIMS_PROBE_TTL);
		return r;
	case KM_CLAIMS_PROBE_WRONG_ISS:
		return json_object_set_new(c, "iss", json_string(KM_CLAIMS_PROBE_BAD_ISSUER)) == 0 ?
		       KM_EOK : KM_ENOMEM;
	case KM_CLAIMS_PROBE_WRONG_AUD:
		if (arg == NULL || arg[0] == '\0' || names_aud(json_object_get(c, "aud"), arg)) {
			snprintf(err, errlen, "a probe's wrong audience must differ from the token's");
			return KM_EINVAL;
		}
		return json_object_set_new(c, "aud", json_string(arg)) == 0 ? KM_EOK : KM_ENOMEM;
	default:
		return KM_EOK;
	}
}

/* {"alg","kid","typ"} as km_jws writes it, and for CRIT the extension it cannot know. */
static int header_b64(km_alg_t alg, const char *kid, const char *typ, bool crit, char **ret)
{
	json_t *h = json_pack("{s:s, s:s, s:s}", "alg", km_alg_name(alg), "kid", kid, "typ", typ);
	char *text = NULL;
	int r = KM_ENOMEM;
	if (h != NULL && crit &&
	    (json_object_set_new(h, "crit", json_pack("[s]", KM_CLAIMS_PROBE_CRIT_NAME)) != 0 ||
	     json_object_set_new(h, KM_CLAIMS_PROBE_CRIT_NAME, json_true()) != 0))
		goto out;
	if (h == NULL || (text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		goto out;
	size_t n = strlen(text);
	if ((*ret = malloc(km_b64url_encoded_len(n) + 1)) == NULL)
		goto out;
	(*ret)[km_b64url_encode((const uint8_t *)text, n, *ret)] = '\0';
	r = KM_EOK;
out:
	free(text);
	json_decref(h);
	return r;
}

/* The payload: c printed, and for DUPLICATE_ISS a second, wrong iss after every member (a
 * parser that keeps the last value sees the wrong issuer; one that keeps the first, the
 * right one; a strict one refuses the token). */
static int payload_text(const json_t *c, km_claims_probe_t what, char **ret)
{
	char *text = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text == NULL)
		return KM_ENOMEM;
	if (what == KM_CLAIMS_PROBE_DUPLICATE_ISS) {
		size_t n = strlen(text);
		const char *dup = ",\"iss\":\"" KM_CLAIMS_PROBE_BAD_ISSUER "\"}";
		char *p = realloc(text, n + strlen(dup));
		if (p == NULL) {
			free(text);
			return KM_ENOMEM;
		}
		text = p;
		memcpy(text + n - 1, dup, strlen(dup) + 1);   /* over the closing brace */
	}
	*ret = text;
	return KM_EOK;
}

/* The key's refusal, the token and its serial, the signature over header_b64.payload. */
static int sign_with_key(km_env_t *env, const km_claims_key_t *k, int64_t now, const char *hdr,
                         const char *payload, char **ret, char *err, size_t errlen)
{
	km_token_t *t = NULL;
	km_token_info_t info;
	int r;
	if (k->key_r != KM_EOK) {
		snprintf(err, errlen, "%s", k->key_err);
		if (k->audit_key)
			km_store_audit_append(km_env_store(env), "sign.denied", k->pol.keyset, k->kid,
			                      NULL, NULL, "the audit key never signs JWTs (keymgr "
			                      "probe)", now, NULL, NULL, 0);
		return k->key_r;
	}
	if ((r = km_env_token(env, &t, err, errlen)) != KM_EOK)
		return r;
	km_token_get_info(t, &info);
	if (k->token_serial[0] != '\0' && strcmp(k->token_serial, info.serial) != 0) {
		snprintf(err, errlen, "key %s was made in token serial %s, but environment '%s' "
		         "uses token serial %s: refused", k->kid, k->token_serial, k->pol.env,
		         info.serial);
		return KM_EWRONGENV;
	}
	km_claims__sign_ctx_t ctx = { t, k };
	km_jws_signer_t signer = { .alg = k->alg, .kid = k->kid, .sign = km_claims__sign_with_token,
	                           .sign_ctx = &ctx };
	if ((r = km_jws_sign_encoded(&signer, hdr, payload, strlen(payload), ret)) != KM_EOK) {
		const char *why = km_token_last_error(t);
		snprintf(err, errlen, "environment '%s': signing with %s failed: %s", k->pol.env,
		         k->kid, why && why[0] ? why : km_strerror(r));
	}
	return r;
}

/* What km_claims_sign_probe() promises, checked on what it is about to sign: the probe jti,
 * and at most KM_CLAIMS_PROBE_TTL seconds of validity from when the token becomes valid. */
static bool within_promise(const json_t *c, const char *jti, int64_t now)
{
	const json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
	const json_t *j = json_object_get(c, "jti");
	if (!json_is_integer(exp) || !json_is_integer(nbf) || !json_is_string(j) ||
	    strcmp(json_string_value(j), jti) != 0)
		return false;
	int64_t from = (int64_t)json_integer_value(nbf);
	if (from < now)
		from = now;
	return (int64_t)json_integer_value(exp) - from <= KM_CLAIMS_PROBE_TTL;
}

int km_claims_sign_probe(km_env_t *env, const char *keyset, km_claims_probe_t what,
                         const char *arg, const json_t *claims, int64_t now, char **ret_jwt,
                         char ret_jti[KM_CLAIMS_PROBE_JTI_MAX + 1], char *err, size_t errlen)
{
	char typ[KM_CLAIMS_TYP_MAX + 1], jti[KM_CLAIMS_PROBE_JTI_MAX + 1];
	char *hdr = NULL, *payload = NULL;
	km_claims_key_t *k = NULL;
	json_t *c = NULL;
	km_policy_t p;
	int r;

	if (env == NULL || keyset == NULL || !json_is_object(claims) || ret_jwt == NULL ||
	    ret_jti == NULL || now <= 0 || what > KM_CLAIMS_PROBE_DUPLICATE_ISS)
		return KM_EINVAL;
	if (!km_config_probe_env(km_env_config(env), km_env_name(env))) {
		snprintf(err, errlen, "environment '%s' is not marked for probing: name it in "
		         "probe.environments of %s to let keymgr probe sign test tokens with its "
		         "keys", km_env_name(env), km_config_path(km_env_config(env)));
		return KM_POLICY_EDENIED;
	}
	if ((k = malloc(sizeof(*k))) == NULL)
		return KM_ENOMEM;
	if ((r = km_claims_resolve(env, keyset, k)) != KM_EOK)
		goto out;
	if (k->pol_r != KM_EOK) {
		snprintf(err, errlen, "%s", k->pol_err);
		r = k->pol_r;
		goto out;
	}
	if ((r = km_env_keyset_policy(env, keyset, &p)) != KM_EOK) {
		snprintf(err, errlen, "key set %s/%s: no effective policy", km_env_name(env), keyset);
		goto out;
	}
	/* The key set's own rules first: whatever is wrong with a probe token is the deviation
	 * named here, nothing the caller slipped into the claims. */
	int64_t ttl = p.max_token_ttl < KM_CLAIMS_PROBE_TTL ? p.max_token_ttl : KM_CLAIMS_PROBE_TTL;
	if ((r = km_claims_prepare_object(&k->pol, claims, now, ttl, &c, err, errlen)) != KM_EOK)
		goto out;
	if ((r = new_probe_jti(jti)) != KM_EOK) {
		snprintf(err, errlen, "no random bytes for the jti");
		goto out;
	}
	const char *own = km_claims_typ(k->pol.purpose, typ);
	if (what == KM_CLAIMS_PROBE_WRONG_TYP &&
	    (arg == NULL || arg[0] == '\0' || strcasecmp(arg, own) == 0)) {
		snprintf(err, errlen, "a probe's wrong typ must differ from the key set's (%s)", own);
		r = KM_EINVAL;
		goto out;
	}
	r = json_object_set_new(c, "jti", json_string(jti)) == 0 ? KM_EOK : KM_ENOMEM;
	if (r == KM_EOK)
		r = deviate(c, what, arg, &p, now, ttl, err, errlen);
	if (r == KM_EOK && !within_promise(c, jti, now)) {
		snprintf(err, errlen, "a probe token must be valid for at most %d s", KM_CLAIMS_PROBE_TTL);
		r = KM_EINVAL;
	}
	if (r == KM_EOK)
		r = header_b64(k->alg, k->kid, what == KM_CLAIMS_PROBE_WRONG_TYP ? arg : own,
		               what == KM_CLAIMS_PROBE_CRIT, &hdr);
	if (r == KM_EOK)
		r = payload_text(c, what, &payload);
	if (r == KM_EOK)
		r = sign_with_key(env, k, now, hdr, payload, ret_jwt, err, errlen);
	if (r == KM_EOK)
		memcpy(ret_jti, jti, strlen(jti) + 1);
out:
	free(hdr);
	free(payload);
	json_decref(c);
	free(k);
	return r;
}
