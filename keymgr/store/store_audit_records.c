/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The records the audit trail keeps besides its events: the JWKS versions (a new one, with
 * its jwks.publish event, whenever the published kid set changes), the audit keys that sign
 * checkpoints (with their audit.key.create event), and the signed checkpoints themselves.
 */
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/canon_json.h"
#include "keymgr/common/error.h"
#include "keymgr/store/store_int.h"

/* ---- JWKS versions ---- */

void km_store_jwks_versions_free(km_store_jwks_version_t *list, size_t count)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free(list[i].kids);
	free(list);
}

int km_store_jwks_versions(km_store_t *s, km_store_jwks_version_t **ret, size_t *count,
                           char *err, size_t errlen)
{
	km_store_jwks_version_t *list = NULL;
	size_t n = 0;
	int r = s->be->jwks_version_query(s->ctx, false, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	*ret = list;
	*count = n;
	return KM_EOK;
}

int km_store_jwks_latest(km_store_t *s, km_store_jwks_version_t *ret, char *err, size_t errlen)
{
	km_store_jwks_version_t *list = NULL;
	size_t n = 0;
	int r = s->be->jwks_version_query(s->ctx, true, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	if (n == 0) {
		free(list);
		return km_store__fail(err, errlen, KM_ENOENT,
		                      "environment '%s' has published no JWKS yet", s->env);
	}
	*ret = list[0];
	free(list);
	return KM_EOK;
}

/* The kids of the JWKS keys (km_store__jwks_keys), in key order, as a canonical JSON array. */
static int published_kids(const km_store_key_t *keys, size_t n, char **ret, char *err,
                          size_t errlen)
{
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '[');
	for (size_t i = 0; i < n; i++)
		km_cjson_item_str(&b, keys[i].kid);
	km_cjson_close(&b, ']');
	char *text = km_cjson_take(&b);
	if (text == NULL)
		return km_store__fail(err, errlen, KM_ENOMEM, "out of memory");
	*ret = text;
	return KM_EOK;
}

int km_store__jwks_track(km_store_t *s, int64_t at, bool force, uint64_t *serial, char *err,
                         size_t errlen)
{
	km_store_jwks_version_t *last = NULL;
	km_store_key_t *keys = NULL;
	size_t n_last = 0, nkeys = 0;
	char *kids = NULL, *before = NULL, *after = NULL;
	uint64_t v = 0;
	int64_t seq = 0;
	char hash[KM_STORE_HASH_HEX + 1];
	int r = km_store__jwks_keys(s, &keys, &nkeys, err, errlen);
	if (r == KM_EOK)
		r = published_kids(keys, nkeys, &kids, err, errlen);
	if (r != KM_EOK)
		goto out;
	if ((r = s->be->jwks_version_query(s->ctx, true, &last, &n_last, err, errlen)) != KM_EOK)
		goto out;
	if (!force && ((n_last == 1 && strcmp(last[0].kids, kids) == 0) ||
	               (n_last == 0 && strcmp(kids, "[]") == 0))) {
		v = n_last ? last[0].serial : 0;
		goto done;
	}
	if ((r = s->be->counter_next(s->ctx, "jwks_serial", &v, err, errlen)) != KM_EOK)
		goto out;
	km_cjson_t b;
	if (n_last == 1) {
		km_cjson_init(&b);
		km_cjson_open(&b, '{');
		km_cjson_key(&b, "kids");
		km_cjson_raw(&b, last[0].kids);
		km_cjson_kv_int(&b, "serial", (int64_t)last[0].serial);
		km_cjson_close(&b, '}');
		if ((before = km_cjson_take(&b)) == NULL) {
			r = km_store__fail(err, errlen, KM_ENOMEM, "out of memory");
			goto out;
		}
	}
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_key(&b, "kids");
	km_cjson_raw(&b, kids);
	km_cjson_kv_int(&b, "serial", (int64_t)v);
	km_cjson_close(&b, '}');
	if ((after = km_cjson_take(&b)) == NULL) {
		r = km_store__fail(err, errlen, KM_ENOMEM, "out of memory");
		goto out;
	}
	if ((r = km_store__audit_emit(s, "jwks.publish", NULL, NULL, before, after, NULL, at, err,
	                              errlen)) != KM_EOK)
		goto out;
	if ((r = s->be->audit_head(s->ctx, &seq, hash, err, errlen)) != KM_EOK)
		goto out;
	km_store_jwks_version_t ver = { .serial = v, .at = at, .event_seq = seq, .kids = kids };
	if ((r = s->be->jwks_version_insert(s->ctx, &ver, err, errlen)) != KM_EOK)
		goto out;
done:
	/* The documents of this kid set, in this same transaction (docs/ha.md). */
	if ((r = km_store__docs_write(s, v, keys, nkeys, NULL, err, errlen)) != KM_EOK)
		goto out;
	if (serial != NULL)
		*serial = v;
out:
	km_store_jwks_versions_free(last, n_last);
	free(keys);
	free(kids);
	free(before);
	free(after);
	return r;
}

/* ---- audit keys and checkpoints ---- */

int km_store_audit_key_add(km_store_t *s, const km_store_audit_key_t *k, char *err,
                           size_t errlen)
{
	char hex[2 * KM_STORE_CKA_ID_MAX + 1];
	int64_t id = 0;
	size_t jl = strlen(k->jwk);
	if (!km_name_kid_valid(k->kid) || k->cka_id_len == 0 ||
	    k->cka_id_len > KM_STORE_CKA_ID_MAX || jl < 2 || k->jwk[0] != '{' ||
	    k->jwk[jl - 1] != '}' || !km_store__text_ok(k->jwk, KM_STORE_JWK_MAX, true) ||
	    !km_store__text_ok(k->token_label, KM_STORE_TOKEN_LABEL_MAX, true) ||
	    k->token_label[0] == '\0' ||
	    !km_store__text_ok(k->token_serial, KM_STORE_TOKEN_SERIAL_MAX, true) ||
	    km_alg_info(k->alg) == NULL || k->created_at < 0)
		return km_store__fail(err, errlen, KM_EINVAL, "audit key: kid, CKA_ID, public JWK, "
		                      "token, algorithm or time missing or invalid");
	km_store__cka_hex(k->cka_id, k->cka_id_len, hex);
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_kv_str(&b, "alg", km_alg_name(k->alg));
	km_cjson_kv_str(&b, "cka_id", hex);
	km_cjson_kv_str(&b, "jwk", k->jwk);
	km_cjson_kv_str(&b, "kid", k->kid);
	km_cjson_kv_str(&b, "token_label", k->token_label);
	km_cjson_kv_str(&b, "token_serial", k->token_serial);
	km_cjson_close(&b, '}');
	char *after = km_cjson_take(&b);
	if (after == NULL)
		return km_store__fail(err, errlen, KM_ENOMEM, "out of memory");
	km_store_key_query_t q = { .cka_id = k->cka_id, .cka_id_len = k->cka_id_len };
	km_store_key_t *same = NULL;
	size_t n_same = 0;
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		goto out;
	/* A key set's key is never an audit key (nor the other way round). */
	if ((r = s->be->key_query(s->ctx, &q, &same, &n_same, err, errlen)) == KM_EOK && n_same)
		r = km_store__fail(err, errlen, KM_EEXIST,
		                   "this CKA_ID belongs to a key of key set %s", same[0].keyset);
	free(same);
	if (r == KM_EOK)
		r = s->be->audit_key_insert(s->ctx, k, &id, err, errlen);
	if (r == KM_EEXIST)
		km_store__fail(err, errlen, r, "audit key %s (or its CKA_ID) is already recorded",
		               k->kid);
	if (r == KM_EOK)
		r = km_store__audit_emit(s, "audit.key.create", NULL, k->kid, NULL, after,
		                         "checkpoint signing key", k->created_at, err, errlen);
	r = km_store__op_leave(s, r, err, errlen);
out:
	free(after);
	return r;
}

int km_store_audit_keys(km_store_t *s, km_store_audit_key_t **ret, size_t *count, char *err,
                        size_t errlen)
{
	km_store_audit_key_t *list = NULL;
	size_t n = 0;
	int r = s->be->audit_key_query(s->ctx, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	*ret = list;
	*count = n;
	return KM_EOK;
}

int km_store_audit_key_is(km_store_t *s, const uint8_t *cka_id, size_t cka_id_len, bool *ret,
                          char *err, size_t errlen)
{
	km_store_audit_key_t *list = NULL;
	size_t n = 0;
	bool is = false;
	int r = s->be->audit_key_query(s->ctx, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	for (size_t i = 0; i < n; i++)
		if (list[i].cka_id_len == cka_id_len && memcmp(list[i].cka_id, cka_id, cka_id_len) == 0)
			is = true;
	free(list);
	*ret = is;
	return KM_EOK;
}

int km_store_checkpoint_add(km_store_t *s, const km_store_checkpoint_t *c, char *err,
                            size_t errlen)
{
	if (c->seq < 1 || strlen(c->hash) != KM_STORE_HASH_HEX || !km_name_kid_valid(c->key_kid) ||
	    c->signature[0] == '\0' || !km_store__text_ok(c->signature, KM_STORE_SIG_MAX, true) ||
	    c->at < 0)
		return km_store__fail(err, errlen, KM_EINVAL, "checkpoint: sequence, hash, key, "
		                      "signature or time missing or invalid");
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	r = s->be->checkpoint_insert(s->ctx, c, err, errlen);
	return km_store__op_leave(s, r, err, errlen);
}

int km_store_checkpoints(km_store_t *s, km_store_checkpoint_t **ret, size_t *count, char *err,
                         size_t errlen)
{
	km_store_checkpoint_t *list = NULL;
	size_t n = 0;
	int r = s->be->checkpoint_query(s->ctx, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	*ret = list;
	*count = n;
	return KM_EOK;
}
