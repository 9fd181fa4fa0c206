/* SPDX-License-Identifier: Apache-2.0 */
/* The recorded JWKS versions: which one was in force when, and its document. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"
#include "keymgr/jose/jwk.h"
#include "keymgr/jose/jwks.h"

int km_audit_jwks_version(km_store_t *s, uint64_t serial, int64_t at,
                          km_store_jwks_version_t *ret, char *err, size_t errlen)
{
	km_store_jwks_version_t *v = NULL;
	size_t n = 0;
	int r = km_store_jwks_versions(s, &v, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	size_t pick = n;
	for (size_t i = 0; i < n; i++) {
		if (serial != 0 ? v[i].serial == serial : v[i].at <= at)
			pick = i;
	}
	if (pick == n) {
		if (serial != 0)
			snprintf(err, errlen, "environment '%s' has no JWKS serial %llu (%zu recorded)",
			         km_store_env(s), (unsigned long long)serial, n);
		else
			snprintf(err, errlen, "environment '%s' published no JWKS at or before that time",
			         km_store_env(s));
		km_store_jwks_versions_free(v, n);
		return KM_ENOENT;
	}
	*ret = v[pick];
	v[pick].kids = NULL;
	km_store_jwks_versions_free(v, n);
	return KM_EOK;
}

int km_audit_jwks_render(km_store_t *s, const char *kids_json, char **ret, size_t *len,
                         char *err, size_t errlen)
{
	json_t *kids = json_loads(kids_json, 0, NULL);
	km_jwks_t *jwks = NULL;
	size_t i;
	json_t *it;
	int r = json_is_array(kids) ? km_jwks_create(&jwks) : KM_EMALFORMED;
	if (r != KM_EOK) {
		snprintf(err, errlen, "the recorded kid list is malformed");
		goto out;
	}
	json_array_foreach(kids, i, it) {
		km_store_key_t k;
		const char *kid = json_string_value(it);
		if (kid == NULL || (r = km_store_key_get(s, kid, &k, err, errlen)) != KM_EOK) {
			r = r != KM_EOK ? r : KM_EMALFORMED;
			goto out;
		}
		/* As km_env_jwks(): the stored JWK must still be the key of its kid. */
		if ((r = km_jwks_add_stored(jwks, k.jwk, k.alg, kid)) != KM_EOK) {
			snprintf(err, errlen, "stored public key of %s does not match its kid: the store "
			         "may have been altered", kid);
			goto out;
		}
	}
	r = km_jwks_render(jwks, ret, len);
out:
	km_jwks_free(jwks);
	json_decref(kids);
	return r;
}
