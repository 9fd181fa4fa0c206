/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>

#include "keymgr/common/error.h"
#include "keymgr/core/standby.h"
#include "keymgr/store/store.h"

int km_keyset_standby(km_env_t *env, const char *keyset, char kid[KM_KID_MAX + 1], char *err,
                      size_t errlen)
{
	km_policy_t pol;
	km_store_key_filter_t f = { .keyset = keyset, .states = KM_STORE_STATE_BIT(KM_STATE_PUBLISHED),
	                            .pending = KM_STORE_PENDING_NONE };
	km_store_key_t *keys = NULL;
	size_t n = 0;
	const km_store_key_t *oldest = NULL;
	int r = km_env_keyset_policy(env, keyset, &pol);
	if (r != KM_EOK || !pol.standby) {
		if (r == KM_EOK)
			kid[0] = '\0';
		return r;
	}
	if ((r = km_store_keys_query(km_env_store(env), &f, &keys, &n, err, errlen)) != KM_EOK)
		return r;
	for (size_t i = 0; i < n; i++) {
		const km_store_key_t *k = &keys[i];
		int64_t t = k->state_at[KM_STATE_PUBLISHED];
		if (k->kid[0] == '\0')
			continue; /* an abandoned intent */
		if (k->activate_at != KM_STORE_TIME_NONE)
			continue; /* a requested rotation's successor, not kept for an emergency */
		if (oldest == NULL || t < oldest->state_at[KM_STATE_PUBLISHED] ||
		    (t == oldest->state_at[KM_STATE_PUBLISHED] && k->id < oldest->id))
			oldest = k;
	}
	snprintf(kid, KM_KID_MAX + 1, "%s", oldest != NULL ? oldest->kid : "");
	km_store_keys_free(keys);
	return KM_EOK;
}
