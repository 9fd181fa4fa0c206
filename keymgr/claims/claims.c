/* SPDX-License-Identifier: Apache-2.0 */
/* km_claims_prepare: the rules every class shares (iss, aud, exp, keymgr-owned claims). */
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <pthread.h>

#include <stdio.h>
#include <string.h>

#include "keymgr/claims/claims_int.h"
#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "policy/policy.h"

/* Claims keymgr sets itself; a caller that supplies one is refused, not overwritten. */
static const char *const owned[] = { "iat", "nbf", "jti", NULL };

int km_claims_policy_init(km_claims_policy_t *pol, const char *env, const char *keyset,
                          const char *purpose, const km_keyset_cfg_t *kcfg,
                          int64_t max_token_ttl)
{
	if (pol == NULL || !km_name_env_valid(env) || !km_name_keyset_valid(keyset) ||
	    !km_name_purpose_valid(purpose) || max_token_ttl <= 0)
		return KM_EINVAL;
	memset(pol, 0, sizeof(*pol));
	snprintf(pol->env, sizeof(pol->env), "%s", env);
	snprintf(pol->keyset, sizeof(pol->keyset), "%s", keyset);
	snprintf(pol->purpose, sizeof(pol->purpose), "%s", purpose);
	if (kcfg != NULL) {
		pol->issuer = kcfg->issuer;
		pol->audiences = kcfg->audiences;
		pol->n_audiences = kcfg->n_audiences;
	}
	pol->max_token_ttl = max_token_ttl;
	return KM_EOK;
}

static bool audience_allowed(const km_claims_policy_t *pol, const char *aud)
{
	for (size_t i = 0; i < pol->n_audiences; i++)
		if (pol->audiences[i] != NULL && strcmp(pol->audiences[i], aud) == 0)
			return true;
	return false;
}

static void allowed_list(const km_claims_policy_t *pol, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < pol->n_audiences && used < len; i++) {
		int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", pol->audiences[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static int check_one_aud(const km_claims_policy_t *pol, const json_t *v, char *err,
                         size_t errlen)
{
	char allowed[512];
	if (!json_is_string(v) || json_string_length(v) == 0) {
		snprintf(err, errlen, "claim 'aud' must be a non-empty string or an array of them");
		return KM_POLICY_EDENIED;
	}
	if (audience_allowed(pol, json_string_value(v)))
		return KM_EOK;
	allowed_list(pol, allowed, sizeof(allowed));
	snprintf(err, errlen, "claim 'aud' value '%.128s' is not an allowed audience of key set "
	         "%s/%s (allowed: %s)", json_string_value(v), pol->env, pol->keyset, allowed);
	return KM_POLICY_EDENIED;
}

int km_claims_check_aud(const km_claims_policy_t *pol, const json_t *aud, char *err,
                        size_t errlen)
{
	size_t i;
	json_t *v;
	int r;
	if (aud == NULL) {
		snprintf(err, errlen, "claim 'aud' is required: one of the audiences of key set %s/%s",
		         pol->env, pol->keyset);
		return KM_POLICY_EDENIED;
	}
	if (!json_is_array(aud))
		return check_one_aud(pol, aud, err, errlen);
	if (json_array_size(aud) == 0) {
		snprintf(err, errlen, "claim 'aud' is an empty array");
		return KM_POLICY_EDENIED;
	}
	json_array_foreach(aud, i, v) {
		if ((r = check_one_aud(pol, v, err, errlen)) != KM_EOK)
			return r;
	}
	return KM_EOK;
}

int km_claims_check_iss(const km_claims_policy_t *pol, const json_t *iss, char *err,
                        size_t errlen)
{
	if (iss == NULL)
		return KM_EOK;
	if (json_is_string(iss) && strcmp(json_string_value(iss), pol->issuer) == 0)
		return KM_EOK;
	snprintf(err, errlen, "claim 'iss' must be the issuer of key set %s/%s (%s)%s", pol->env,
	         pol->keyset, pol->issuer, json_is_string(iss) ? "" : ": it is not a string");
	return KM_POLICY_EDENIED;
}

/* exp - now must be in (0, max_token_ttl]. With ttl, keymgr sets exp and refuses the caller's. */
static int check_exp(const km_claims_policy_t *pol, const json_t *exp, int64_t now, int64_t ttl,
                     int64_t *exp_out, char *err, size_t errlen)
{
	char a[32], b[32];
	int64_t life;
	if (ttl > 0 && exp != NULL) {
		snprintf(err, errlen, "claim 'exp' and a ttl were both given: give one of them");
		return KM_POLICY_EDENIED;
	}
	if (ttl > 0) {
		life = ttl;
	} else if (exp == NULL) {
		snprintf(err, errlen, "claim 'exp' is required (at most max_token_ttl = %s after "
		         "now)", km_duration_format(pol->max_token_ttl, a, sizeof(a)));
		return KM_POLICY_EDENIED;
	} else if (!json_is_integer(exp)) {
		snprintf(err, errlen, "claim 'exp' must be an integer NumericDate (seconds since "
		         "the epoch)");
		return KM_POLICY_EDENIED;
	} else {
		json_int_t v = json_integer_value(exp);
		if (v <= now) {
			snprintf(err, errlen, "claim 'exp' (%lld) is not after iat (%lld): the token "
			         "would be born expired", (long long)v, (long long)now);
			return KM_POLICY_EDENIED;
		}
		if (v - now > KM_DURATION_MAX)
			life = KM_DURATION_MAX + 1;
		else
			life = (int64_t)v - now;
	}
	if (life > pol->max_token_ttl) {
		snprintf(err, errlen, "token lifetime exp - iat = %s exceeds max_token_ttl (%s) of "
		         "key set %s/%s: refused, not shortened",
		         life > KM_DURATION_MAX ? "more than 100 years" :
		         km_duration_format(life, a, sizeof(a)),
		         km_duration_format(pol->max_token_ttl, b, sizeof(b)), pol->env, pol->keyset);
		return KM_POLICY_EDENIED;
	}
	*exp_out = now + life;
	return KM_EOK;
}

/* jti bytes come from a per-thread pool refilled with one RAND_bytes call per JTI_POOL
 * tokens (a call costs about as much as 1 KiB of output). A jti is public once signed; each
 * slot is used once and wiped. A forked child starts with an empty pool, never its parent's. */
#define JTI_POOL 64

static _Thread_local struct {
	uint8_t bytes[JTI_POOL][KM_CLAIMS_JTI_BYTES];
	unsigned left;
} jti_pool;
static pthread_once_t jti_once = PTHREAD_ONCE_INIT;

static void jti_after_fork(void)
{
	OPENSSL_cleanse(&jti_pool, sizeof(jti_pool));
}

static void jti_init(void)
{
	pthread_atfork(NULL, NULL, jti_after_fork);
}

static int new_jti(char out[KM_CLAIMS_JTI_BYTES * 2])
{
	pthread_once(&jti_once, jti_init);
	if (jti_pool.left == 0) {
		if (RAND_bytes(&jti_pool.bytes[0][0], sizeof(jti_pool.bytes)) != 1)
			return KM_ECRYPTO;
		jti_pool.left = JTI_POOL;
	}
	uint8_t *raw = jti_pool.bytes[--jti_pool.left];
	km_b64url_encode(raw, KM_CLAIMS_JTI_BYTES, out);
	OPENSSL_cleanse(raw, KM_CLAIMS_JTI_BYTES);
	return KM_EOK;
}

int km_claims_check_configured(const km_claims_policy_t *pol, char *err, size_t errlen)
{
	if (pol->issuer == NULL || pol->issuer[0] == '\0') {
		snprintf(err, errlen, "key set %s/%s has no issuer configured: set "
		         "environments.%s.keysets.%s.issuer (and .audiences) in the configuration",
		         pol->env, pol->keyset, pol->env, pol->keyset);
		return KM_POLICY_EDENIED;
	}
	if (pol->n_audiences == 0) {
		snprintf(err, errlen, "key set %s/%s has no audiences configured: set "
		         "environments.%s.keysets.%s.audiences in the configuration", pol->env,
		         pol->keyset, pol->env, pol->keyset);
		return KM_POLICY_EDENIED;
	}
	return KM_EOK;
}

/* The checks that need no class knowledge, in the order a caller fixes them. */
static int check_common(const km_claims_policy_t *pol, const json_t *in, int64_t now,
                        int64_t ttl, int64_t *exp, char *err, size_t errlen)
{
	int r;
	if (km_claims_is_sa(pol->purpose)) {
		snprintf(err, errlen, "key set %s/%s signs service-account-token tokens: only the "
		         "payloads kube-apiserver builds, through keymgr-k8s-signer (docs/"
		         "kubernetes.md); keymgr adds no claims to them", pol->env, pol->keyset);
		return KM_POLICY_EDENIED;
	}
	if ((r = km_claims_check_configured(pol, err, errlen)) != KM_EOK)
		return r;
	for (size_t i = 0; owned[i] != NULL; i++) {
		if (json_object_get(in, owned[i]) != NULL) {
			snprintf(err, errlen, "claim '%s' is set by keymgr: leave it out of the "
			         "claims", owned[i]);
			return KM_POLICY_EDENIED;
		}
	}
	const json_t *sub = json_object_get(in, "sub");
	if (sub != NULL && !json_is_string(sub)) {
		snprintf(err, errlen, "claim 'sub' must be a string");
		return KM_POLICY_EDENIED;
	}
	if ((r = km_claims_check_iss(pol, json_object_get(in, "iss"), err, errlen)) != KM_EOK ||
	    (r = km_claims_check_aud(pol, json_object_get(in, "aud"), err, errlen)) != KM_EOK ||
	    (r = check_exp(pol, json_object_get(in, "exp"), now, ttl, exp, err, errlen)) != KM_EOK)
		return r;
	return km_claims_check_class(pol, in, err, errlen);
}

int km_claims_prepare_object(const km_claims_policy_t *pol, const json_t *in, int64_t now,
                             int64_t ttl, json_t **out, char *err, size_t errlen)
{
	char dummy[1], jti[KM_CLAIMS_JTI_BYTES * 2];
	json_t *res = NULL, *v;
	const char *k;
	int64_t exp = 0;
	int r;

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (pol == NULL || in == NULL || out == NULL || ttl < 0 || now < 0)
		return KM_EINVAL;
	if (!json_is_object(in)) {
		snprintf(err, errlen, "claims must be a JSON object");
		return KM_EMALFORMED;
	}
	if ((r = check_common(pol, in, now, ttl, &exp, err, errlen)) != KM_EOK)
		goto out;
	if ((r = new_jti(jti)) != KM_EOK) {
		snprintf(err, errlen, "no random bytes for the jti");
		goto out;
	}
	r = KM_ENOMEM;
	if ((res = json_object()) == NULL ||
	    json_object_set_new(res, "iss", json_string(pol->issuer)) < 0)
		goto out;
	json_object_foreach((json_t *)in, k, v) {
		if (strcmp(k, "iss") != 0 && json_object_set(res, k, v) < 0)
			goto out;
	}
	if ((ttl > 0 && json_object_set_new(res, "exp", json_integer(exp)) < 0) ||
	    json_object_set_new(res, "iat", json_integer(now)) < 0 ||
	    json_object_set_new(res, "nbf", json_integer(now)) < 0 ||
	    json_object_set_new(res, "jti", json_string(jti)) < 0)
		goto out;
	*out = res;
	res = NULL;
	r = KM_EOK;
out:
	json_decref(res);
	return r;
}

int km_claims_prepare_text(const km_claims_policy_t *pol, const json_t *in, int64_t now,
                           int64_t ttl, char **out, size_t *out_len, char *err, size_t errlen)
{
	char dummy[1], jti[KM_CLAIMS_JTI_BYTES * 2];
	int64_t exp = 0;
	int r;

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (pol == NULL || in == NULL || out == NULL || out_len == NULL || ttl < 0 || now < 0)
		return KM_EINVAL;
	if (!json_is_object(in)) {
		snprintf(err, errlen, "claims must be a JSON object");
		return KM_EMALFORMED;
	}
	if ((r = check_common(pol, in, now, ttl, &exp, err, errlen)) != KM_EOK)
		return r;
	if ((r = new_jti(jti)) != KM_EOK) {
		snprintf(err, errlen, "no random bytes for the jti");
		return r;
	}
	return km_claims_print(pol->issuer, in, ttl > 0, exp, now, jti, out, out_len);
}

int km_claims_parse(const char *claims_json, json_t **ret, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *in = json_loads(claims_json, JSON_REJECT_DUPLICATES, &jerr);
	if (in == NULL) {
		snprintf(err, errlen, "claims are not valid JSON: %s (line %d, column %d)",
		         jerr.text, jerr.line, jerr.column);
		return KM_EMALFORMED;
	}
	*ret = in;
	return KM_EOK;
}

int km_claims_prepare(const km_claims_policy_t *pol, const char *claims_json, int64_t now,
                      int64_t ttl, json_t **out, char *err, size_t errlen)
{
	char dummy[1];
	json_t *in;
	int r;

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (pol == NULL || claims_json == NULL || out == NULL || ttl < 0 || now < 0)
		return KM_EINVAL;
	if ((r = km_claims_parse(claims_json, &in, err, errlen)) != KM_EOK)
		return r;
	r = km_claims_prepare_object(pol, in, now, ttl, out, err, errlen);
	json_decref(in);
	return r;
}
