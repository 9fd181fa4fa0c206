/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The service-account token class (docs/kubernetes.md): kube-apiserver builds the payload,
 * keymgr checks it against the key set and signs it as it is, adding nothing.
 */
#include <stdio.h>
#include <string.h>

#include "keymgr/claims/claims_int.h"
#include "keymgr/common/error.h"
#include "policy/policy.h"

#define SA_PREFIX "system:serviceaccount:"
#define SA_IAT_AHEAD 60   /* seconds kube-apiserver's clock may be ahead of keymgr's */

bool km_claims_is_sa(const char *purpose)
{
	return km_purpose_is_service_account(purpose);
}

static int need_int(const json_t *claims, const char *name, bool required, int64_t *ret,
                    char *err, size_t errlen)
{
	const json_t *v = json_object_get(claims, name);
	if (v == NULL && !required)
		return KM_EOK;
	if (!json_is_integer(v)) {
		snprintf(err, errlen, "claim '%s' %s an integer NumericDate", name,
		         v == NULL ? "is required in service-account tokens:" : "must be");
		return KM_POLICY_EDENIED;
	}
	*ret = (int64_t)json_integer_value(v);
	return KM_EOK;
}

static int check_times(const km_claims_policy_t *pol, const json_t *c, int64_t now, char *err,
                       size_t errlen)
{
	int64_t iat = 0, exp = 0, nbf = INT64_MIN;
	char a[32], b[32];
	int r;
	if ((r = need_int(c, "iat", true, &iat, err, errlen)) != KM_EOK ||
	    (r = need_int(c, "exp", true, &exp, err, errlen)) != KM_EOK ||
	    (r = need_int(c, "nbf", false, &nbf, err, errlen)) != KM_EOK)
		return r;
	if (iat > now + SA_IAT_AHEAD) {
		snprintf(err, errlen, "claim 'iat' (%lld) is %lld s in the future", (long long)iat,
		         (long long)(iat - now));
		return KM_POLICY_EDENIED;
	}
	if (exp <= iat || exp <= now) {
		snprintf(err, errlen, "claim 'exp' (%lld) is not after iat (%lld) and now (%lld): "
		         "the token would be born expired", (long long)exp, (long long)iat,
		         (long long)now);
		return KM_POLICY_EDENIED;
	}
	if (nbf != INT64_MIN && nbf > exp) {
		snprintf(err, errlen, "claim 'nbf' (%lld) is after exp (%lld)", (long long)nbf,
		         (long long)exp);
		return KM_POLICY_EDENIED;
	}
	/* both: a lifetime within the policy, and no token valid beyond max_token_ttl from now
	 * (an old iat would otherwise stretch it) */
	int64_t life = exp - iat > exp - now ? exp - iat : exp - now;
	if (life > pol->max_token_ttl) {
		snprintf(err, errlen, "token lifetime %s exceeds max_token_ttl (%s) of key set %s/%s: "
		         "refused (kube-apiserver's --service-account-max-token-expiration must not be "
		         "above it)", life > KM_DURATION_MAX ? "of more than 100 years" :
		         km_duration_format(life, a, sizeof(a)),
		         km_duration_format(pol->max_token_ttl, b, sizeof(b)), pol->env, pol->keyset);
		return KM_POLICY_EDENIED;
	}
	return KM_EOK;
}

int km_claims_check_sa(const km_claims_policy_t *pol, const char *payload, size_t len,
                       int64_t now, char *err, size_t errlen)
{
	json_t *c = NULL;
	int r;
	if (pol == NULL || payload == NULL)
		return KM_EINVAL;
	if (!km_claims_is_sa(pol->purpose)) {
		snprintf(err, errlen, "key set %s/%s signs %s tokens, not service-account-token "
		         "ones: it does not sign for kube-apiserver", pol->env, pol->keyset,
		         pol->purpose);
		return KM_POLICY_EDENIED;
	}
	if ((r = km_claims_check_configured(pol, err, errlen)) != KM_EOK)
		return r;
	if (memchr(payload, '\0', len) != NULL) {
		snprintf(err, errlen, "the payload is not a JSON object: it holds a NUL byte");
		return KM_EMALFORMED;
	}
	json_error_t je;
	c = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je);
	if (c == NULL || !json_is_object(c)) {
		snprintf(err, errlen, "the payload is not a JSON object%s%s", c == NULL ? ": " : "",
		         c == NULL ? je.text : "");
		json_decref(c);
		return KM_EMALFORMED;
	}
	const json_t *iss = json_object_get(c, "iss"), *sub = json_object_get(c, "sub");
	if (iss == NULL) {
		snprintf(err, errlen, "claim 'iss' is required: the issuer of key set %s/%s (%s)",
		         pol->env, pol->keyset, pol->issuer);
		r = KM_POLICY_EDENIED;
	} else if ((r = km_claims_check_iss(pol, iss, err, errlen)) == KM_EOK &&
	           (r = km_claims_check_aud(pol, json_object_get(c, "aud"), err, errlen)) ==
	           KM_EOK) {
		if (!json_is_string(sub) ||
		    strncmp(json_string_value(sub), SA_PREFIX, strlen(SA_PREFIX)) != 0) {
			snprintf(err, errlen, "claim 'sub' must name a service account "
			         "(" SA_PREFIX "NAMESPACE:NAME)");
			r = KM_POLICY_EDENIED;
		} else if ((r = check_times(pol, c, now, err, errlen)) == KM_EOK) {
			r = km_claims_check_class(pol, c, err, errlen);
		}
	}
	json_decref(c);
	return r;
}
