/* SPDX-License-Identifier: Apache-2.0 */
/* The claims policy of a key set from its environment, and the one signing path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/claims/claims.h"
#include "keymgr/common/error.h"
#include "keymgr/core/keyops.h"

int km_claims_policy_from_env(km_env_t *env, const char *keyset, km_claims_policy_t *pol,
                              char *err, size_t errlen)
{
	km_store_keyset_t ks;
	km_policy_t p;
	int r = km_store_keyset_get(km_env_store(env), keyset, &ks, err, errlen);
	if (r == KM_ENOENT)
		snprintf(err, errlen, "unknown key set %s/%s", km_env_name(env), keyset);
	if (r != KM_EOK)
		return r;
	if ((r = km_env_keyset_policy(env, keyset, &p)) != KM_EOK) {
		snprintf(err, errlen, "key set %s/%s: no effective policy", km_env_name(env), keyset);
		return r;
	}
	const km_keyset_cfg_t *kcfg = km_config_keyset(km_env_config(env), km_env_name(env),
	                                               keyset);
	r = km_claims_policy_init(pol, km_env_name(env), keyset, ks.purpose, kcfg,
	                          p.max_token_ttl);
	if (r != KM_EOK)
		snprintf(err, errlen, "key set %s/%s: cannot build its claims policy",
		         km_env_name(env), keyset);
	return r;
}

int km_claims_sign(km_env_t *env, const char *keyset, const char *claims_json, int64_t now,
                   int64_t ttl, char **ret, char *err, size_t errlen)
{
	char typ[KM_CLAIMS_TYP_MAX + 1];
	km_claims_policy_t pol;
	km_store_key_t k;
	json_t *claims = NULL;
	char *text = NULL;
	int r;

	if ((r = km_claims_policy_from_env(env, keyset, &pol, err, errlen)) != KM_EOK)
		return r;
	if ((r = km_claims_prepare(&pol, claims_json, now, ttl, &claims, err, errlen)) != KM_EOK)
		return r;
	/* A key signs the class it was made for (RFC 8725 3.12): after a purpose change the key
	 * set must rotate before it signs the new class. */
	r = km_store_key_active(km_env_store(env), keyset, &k, err, errlen);
	if (r == KM_EOK && strcmp(k.purpose, pol.purpose) != 0) {
		snprintf(err, errlen, "the active key %s of %s/%s was made for %s tokens, and the "
		         "key set now signs %s tokens: rotate it first", k.kid, pol.env, pol.keyset,
		         k.purpose, pol.purpose);
		r = KM_POLICY_EDENIED;
		goto out;
	}
	if (r != KM_EOK && r != KM_ENOACTIVE)
		goto out;
	if ((text = json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	r = km_keyset_sign(env, keyset, text, km_claims_typ(pol.purpose, typ), ret, err, errlen);
out:
	free(text);
	json_decref(claims);
	return r;
}
