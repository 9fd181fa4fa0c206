/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgr store copy: a whole store into a new one, of the same or the other backend
 * (store.h, km_store_copy). Rows move through the backend table, not the public calls: the
 * public calls would append new audit events, and the copy must carry the source's chain
 * event for event. Key and key set ids are the destination's own (nothing outside the store
 * names them); everything the audit chain and `audit verify` read is copied as it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/pguri.h"
#include "keymgr/store/change_lock.h"
#include "keymgr/store/store_int.h"

/* The environment recorded in the (existing) store at path. */
static int source_env(const char *path, char env[KM_ENV_NAME_MAX + 1], char *err,
                      size_t errlen)
{
	const km_store_backend_t *be = km_store__backend_for(path);
	void *ctx = NULL;
	if (!km_store_exists(path))
		return km_store__fail(err, errlen, KM_ENOENT, "there is no store at the source %s",
		                      km_pguri_is(path) ? "URI" : path);
	int r = be->open(path, NULL, &ctx, err, errlen);
	if (r != KM_EOK)
		return r;
	r = be->env_read(ctx, env, KM_ENV_NAME_MAX + 1, err, errlen);
	be->close(ctx);
	if (r == KM_EOK && !km_name_env_valid(env))
		r = km_store__fail(err, errlen, KM_STORE_EOPEN, "the source store records an "
		                   "invalid environment name");
	return r;
}

/* Whether the destination holds nothing at all (no chain, key set, key or audit key). */
static int dest_empty(km_store_t *d, char *err, size_t errlen)
{
	int64_t seq = 0;
	char hash[KM_STORE_HASH_HEX + 1];
	km_store_keyset_t *sets = NULL;
	km_store_key_t *keys = NULL;
	km_store_audit_key_t *aks = NULL;
	size_t n_sets = 0, n_keys = 0, n_aks = 0;
	km_store_key_query_t q = { 0 };
	int r = d->be->audit_head(d->ctx, &seq, hash, err, errlen);
	if (r == KM_EOK)
		r = d->be->keyset_query(d->ctx, NULL, NULL, &sets, &n_sets, err, errlen);
	if (r == KM_EOK)
		r = d->be->key_query(d->ctx, &q, &keys, &n_keys, err, errlen);
	if (r == KM_EOK)
		r = d->be->audit_key_query(d->ctx, &aks, &n_aks, err, errlen);
	free(sets);
	free(keys);
	free(aks);
	if (r == KM_EOK && (seq > 0 || n_sets > 0 || n_keys > 0 || n_aks > 0))
		r = km_store__fail(err, errlen, KM_EEXIST, "the destination store is not empty "
		                   "(%lld audit events, %zu key sets, %zu keys): a copy goes only "
		                   "into a new store; nothing was written", (long long)seq, n_sets,
		                   n_keys);
	return r;
}

/* Key sets with their change history; ids[i] maps sets[i].id to the destination's id. */
static int copy_keysets(km_store_t *s, km_store_t *d, km_store_keyset_t **ret_sets,
                        int64_t **ret_ids, size_t *ret_n, km_store_copy_stats_t *st,
                        char *err, size_t errlen)
{
	km_store_keyset_t *sets = NULL;
	size_t n = 0;
	int64_t *ids = NULL;
	int r = s->be->keyset_query(s->ctx, NULL, NULL, &sets, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	if (n > 0 && (ids = calloc(n, sizeof(*ids))) == NULL)
		r = km_store__fail(err, errlen, KM_ENOMEM, "out of memory");
	for (size_t i = 0; r == KM_EOK && i < n; i++) {
		km_store_change_t *ch = NULL;
		size_t nch = 0;
		if ((r = d->be->keyset_insert(d->ctx, &sets[i], &ids[i], err, errlen)) != KM_EOK)
			break;
		if ((r = s->be->change_query(s->ctx, sets[i].id, &ch, &nch, err, errlen)) != KM_EOK)
			break;
		for (size_t j = 0; r == KM_EOK && j < nch; j++)
			r = d->be->change_insert(d->ctx, ids[i], &ch[j], err, errlen);
		free(ch);
	}
	if (r != KM_EOK) {
		free(sets);
		free(ids);
		return r;
	}
	st->keysets = n;
	*ret_sets = sets;
	*ret_ids = ids;
	*ret_n = n;
	return KM_EOK;
}

/* Keys (every state, pending intents too) with their history. */
static int copy_keys(km_store_t *s, km_store_t *d, const km_store_keyset_t *sets,
                     const int64_t *ids, size_t n_sets, km_store_copy_stats_t *st, char *err,
                     size_t errlen)
{
	km_store_key_t *keys = NULL;
	size_t n = 0;
	km_store_key_query_t q = { 0 };
	int r = s->be->key_query(s->ctx, &q, &keys, &n, err, errlen);
	for (size_t i = 0; r == KM_EOK && i < n; i++) {
		km_store_key_t k = keys[i], as_inserted;
		km_store_event_t *ev = NULL;
		size_t nev = 0;
		size_t m = 0;
		while (m < n_sets && sets[m].id != keys[i].keyset_id)
			m++;
		if (m == n_sets) {
			r = km_store__fail(err, errlen, KM_STORE_EIO, "key %s names a key set the "
			                   "source does not have", k.kid[0] ? k.kid : "(pending)");
			break;
		}
		k.keyset_id = ids[m];
		if ((r = d->be->key_insert(d->ctx, &k, &k.id, err, errlen)) != KM_EOK)
			break;
		/* The row as inserted, then every state time, reason and activation over it. */
		as_inserted = k;
		if ((r = d->be->key_update(d->ctx, &as_inserted, &k, err, errlen)) != KM_EOK)
			break;
		if ((r = s->be->event_query(s->ctx, keys[i].id, &ev, &nev, err, errlen)) != KM_EOK)
			break;
		for (size_t j = 0; r == KM_EOK && j < nev; j++) {
			ev[j].key_id = k.id;
			r = d->be->event_insert(d->ctx, &ev[j], err, errlen);
		}
		st->key_events += nev;
		free(ev);
	}
	st->keys = n;
	free(keys);
	return r;
}

/* The audit chain event for event, then what refers to it. */
static int copy_audit(km_store_t *s, km_store_t *d, km_store_copy_stats_t *st, char *err,
                      size_t errlen)
{
	km_store_audit_event_t *ev = NULL;
	km_store_jwks_version_t *vs = NULL;
	km_store_audit_key_t *aks = NULL;
	km_store_checkpoint_t *cps = NULL;
	size_t nev = 0, nvs = 0, naks = 0, ncps = 0;
	int r = s->be->audit_query(s->ctx, NULL, &ev, &nev, err, errlen);
	for (size_t i = 0; r == KM_EOK && i < nev; i++) {
		/* the destination's head row, where it has one, is locked and moved by each */
		int64_t seq;
		char hash[KM_STORE_HASH_HEX + 1];
		if ((r = d->be->audit_head(d->ctx, &seq, hash, err, errlen)) == KM_EOK)
			r = d->be->audit_insert(d->ctx, &ev[i], err, errlen);
	}
	if (r == KM_EOK)
		r = s->be->jwks_version_query(s->ctx, false, &vs, &nvs, err, errlen);
	for (size_t i = 0; r == KM_EOK && i < nvs; i++)
		r = d->be->jwks_version_insert(d->ctx, &vs[i], err, errlen);
	/* The counter the JWKS serials come from, to the newest serial. */
	uint64_t serial = 0;
	while (r == KM_EOK && nvs > 0 && serial < vs[nvs - 1].serial)
		r = d->be->counter_next(d->ctx, "jwks_serial", &serial, err, errlen);
	if (r == KM_EOK)
		r = s->be->audit_key_query(s->ctx, &aks, &naks, err, errlen);
	/* Each insert makes its key the active one: only the newest may be active. */
	for (size_t i = 0; r == KM_EOK && i < naks; i++) {
		int64_t id;
		if (aks[i].active != (i + 1 == naks))
			r = km_store__fail(err, errlen, KM_STORE_EIO, "the source's active audit key "
			                   "is not its newest: not copied");
		else
			r = d->be->audit_key_insert(d->ctx, &aks[i], &id, err, errlen);
	}
	if (r == KM_EOK)
		r = s->be->checkpoint_query(s->ctx, &cps, &ncps, err, errlen);
	for (size_t i = 0; r == KM_EOK && i < ncps; i++)
		r = d->be->checkpoint_insert(d->ctx, &cps[i], err, errlen);
	if (r == KM_EOK && nev > 0) {
		st->head_seq = ev[nev - 1].seq;
		snprintf(st->head_hash, sizeof(st->head_hash), "%s", ev[nev - 1].hash);
	}
	st->audit_events = nev;
	st->jwks_versions = nvs;
	st->audit_keys = naks;
	st->checkpoints = ncps;
	km_store_audit_events_free(ev, nev);
	km_store_jwks_versions_free(vs, nvs);
	free(aks);
	free(cps);
	return r;
}

/* Every row, inside the source's read and the destination's write transaction. */
static int copy_rows(km_store_t *s, km_store_t *d, km_store_copy_stats_t *st, char *err,
                     size_t errlen)
{
	km_store_keyset_t *sets = NULL;
	int64_t *ids = NULL;
	size_t n_sets = 0;
	int r = dest_empty(d, err, errlen);
	if (r == KM_EOK)
		r = copy_keysets(s, d, &sets, &ids, &n_sets, st, err, errlen);
	if (r == KM_EOK)
		r = copy_keys(s, d, sets, ids, n_sets, st, err, errlen);
	if (r == KM_EOK)
		r = copy_audit(s, d, st, err, errlen);
	free(sets);
	free(ids);
	return r;
}

int km_store_copy(const char *from, const char *to, km_store_copy_stats_t *ret, char *err,
                  size_t errlen)
{
	km_store_copy_stats_t st = { .env = "" };
	km_store_t *s = NULL, *d = NULL;
	if (from == NULL || to == NULL || *from == '\0' || *to == '\0')
		return km_store__fail(err, errlen, KM_EINVAL, "a copy needs a source and a "
		                      "destination");
	int r = source_env(from, st.env, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = km_store_open(from, st.env, &s, err, errlen)) != KM_EOK)
		return r;
	/* No change of the source may start or be half done while it is read. */
	if ((r = km_store_change_lock(s, "store-copy", KM_STORE_CHANGE_WAIT_MS, err,
	                              errlen)) != KM_EOK)
		goto out;
	if ((r = km_store_begin(s, err, errlen)) != KM_EOK)
		goto unlock;
	if ((r = km_store__open(to, st.env, false, &d, err, errlen)) != KM_EOK)
		goto rollback;
	if ((r = d->be->tx(d->ctx, KM_STORE_TX_BEGIN, err, errlen)) != KM_EOK)
		goto rollback;
	r = copy_rows(s, d, &st, err, errlen);
	if (r == KM_EOK)
		r = d->be->tx(d->ctx, KM_STORE_TX_COMMIT, err, errlen);
	if (r != KM_EOK)
		d->be->tx(d->ctx, KM_STORE_TX_ROLLBACK, NULL, 0);
rollback:
	km_store_rollback(s, NULL, 0);
unlock:
	km_store_change_unlock(s);
out:
	km_store_free(d);
	km_store_free(s);
	if (r == KM_EOK && ret != NULL)
		*ret = st;
	return r;
}
