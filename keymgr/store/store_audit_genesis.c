/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The first link of a store's audit chain, appended by the open that creates the store
 * (store.create) or migrates one that held rows before it had a chain (store.baseline: every
 * key set and key as it was, what a replay of the log starts from).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "keymgr/common/canon_json.h"
#include "keymgr/common/error.h"
#include "keymgr/store/store_int.h"

/* State names in byte order, for canonical "times" objects. */
static const km_state_t states_by_name[KM_STATE_COUNT] = {
	KM_STATE_ACTIVE, KM_STATE_DESTROYED, KM_STATE_GENERATED, KM_STATE_PUBLISHED,
	KM_STATE_REMOVED, KM_STATE_RETIRED, KM_STATE_REVOKED,
};

/* {"keys":[...],"keysets":[...]}: everything a replay of the log needs to start from. */
static int baseline_text(km_store_t *s, char **ret, bool *empty, char *err, size_t errlen)
{
	km_store_keyset_t *sets = NULL;
	km_store_key_t *keys = NULL;
	size_t n_sets = 0, n_keys = 0;
	km_store_key_query_t q = { 0 };
	int r = s->be->keyset_query(s->ctx, NULL, NULL, &sets, &n_sets, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = s->be->key_query(s->ctx, &q, &keys, &n_keys, err, errlen)) != KM_EOK)
		goto out;
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_key(&b, "keys");
	km_cjson_open(&b, '[');
	for (size_t i = 0; i < n_keys; i++) {
		const km_store_key_t *k = &keys[i];
		char hex[2 * KM_STORE_CKA_ID_MAX + 1];
		km_store__cka_hex(k->cka_id, k->cka_id_len, hex);
		km_cjson_item(&b);
		km_cjson_open(&b, '{');
		km_cjson_kv_str(&b, "cka_id", hex);
		km_cjson_kv_str(&b, "jwk", k->jwk);
		km_cjson_kv_str(&b, "keyset", k->keyset);
		km_cjson_kv_str(&b, "kid", k->kid);
		km_cjson_kv_bool(&b, "pending", k->pending);
		km_cjson_kv_str(&b, "state", km_state_name(k->state));
		km_cjson_key(&b, "times");
		km_cjson_open(&b, '{');
		for (int j = 0; j < KM_STATE_COUNT; j++)
			if (k->state_at[states_by_name[j]] != KM_STORE_TIME_NONE)
				km_cjson_kv_int(&b, km_state_name(states_by_name[j]),
				             k->state_at[states_by_name[j]]);
		km_cjson_close(&b, '}');
		km_cjson_close(&b, '}');
	}
	km_cjson_close(&b, ']');
	km_cjson_key(&b, "keysets");
	km_cjson_open(&b, '[');
	for (size_t i = 0; i < n_sets; i++) {
		km_cjson_item(&b);
		km_cjson_open(&b, '{');
		km_cjson_kv_str(&b, "alg", km_alg_name(sets[i].alg));
		km_cjson_kv_str(&b, "name", sets[i].name);
		km_cjson_kv_str(&b, "owner", sets[i].owner);
		km_cjson_kv_str(&b, "purpose", sets[i].purpose);
		km_cjson_close(&b, '}');
	}
	km_cjson_close(&b, ']');
	km_cjson_close(&b, '}');
	char *text = km_cjson_take(&b);
	if (text == NULL) {
		r = km_store__fail(err, errlen, KM_ENOMEM, "out of memory");
		goto out;
	}
	*ret = text;
	*empty = n_sets == 0 && n_keys == 0;
out:
	free(sets);
	free(keys);
	return r;
}

int km_store__audit_bootstrap(km_store_t *s, char *err, size_t errlen)
{
	int64_t head = 0;
	char hash[KM_STORE_HASH_HEX + 1];
	char *after = NULL;
	bool empty = true;
	/* Only a store created or migrated by this open starts a chain: an empty chain in a
	 * store that already had one is evidence (of deletion) and is left for verification. */
	if (s->be->found_version(s->ctx) >= 2)
		return KM_EOK;
	int r = s->be->audit_head(s->ctx, &head, hash, err, errlen);
	if (r != KM_EOK || head > 0)
		return r;
	if ((r = km_store__op_enter(s, err, errlen)) != KM_EOK)
		return r;
	/* Read again under the write lock: another process may have started the chain. */
	if ((r = s->be->audit_head(s->ctx, &head, hash, err, errlen)) != KM_EOK || head > 0)
		goto out;
	if ((r = baseline_text(s, &after, &empty, err, errlen)) != KM_EOK)
		goto out;
	int64_t now = (int64_t)time(NULL);
	char created[32];
	snprintf(created, sizeof(created), "{\"schema\":%d}", s->be->schema_version());
	if (empty)
		r = km_store__audit_emit(s, "store.create", NULL, NULL, NULL, created, NULL, now, err,
		                         errlen);
	else
		r = km_store__audit_emit(s, "store.baseline", NULL, NULL, NULL, after,
		                         "rows that existed before the audit log", now, err, errlen);
	if (r == KM_EOK && !empty)
		r = km_store__jwks_track(s, now, false, NULL, err, errlen);
out:
	free(after);
	return km_store__op_leave(s, r, err, errlen);
}
