/* SPDX-License-Identifier: Apache-2.0 */
/* The served JWKS documents and the verifiers' pickup records of a store shared by several
 * nodes (store.h), through the backend: the documents rendered inside the transaction of the
 * change that alters them (km_store__docs_write, called by km_store__jwks_track). */
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store_int.h"

bool km_store_has_docs(const km_store_t *s)
{
	return s->be->docs_put != NULL;
}

static int no_docs(const km_store_t *s, char *err, size_t errlen)
{
	return km_store__fail(err, errlen, KM_ENOTSUP, "the store of environment '%s' keeps no "
	                      "served documents (only a PostgreSQL store does)", s->env);
}

void km_store_set_docs_renderer(km_store_t *s, km_store_docs_render_fn fn, void *ctx)
{
	s->docs_render = fn;
	s->docs_render_ctx = ctx;
}

static const km_store_doc_t *doc_at(const km_store_doc_t *docs, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(docs[i].path, path) == 0)
			return &docs[i];
	return NULL;
}

/* km_store__docs_write(); strict: a renderer's failure is returned, not passed over. */
static int docs_write(km_store_t *s, uint64_t serial, const km_store_key_t *keys,
                      size_t nkeys, bool strict, size_t *written, char *err, size_t errlen)
{
	km_store_keyset_t *sets = NULL;
	km_store_doc_t *docs = NULL, *old = NULL;
	size_t nsets = 0, n = 0, nold = 0, count = 0;
	if (written != NULL)
		*written = 0;
	if (!km_store_has_docs(s) || s->docs_render == NULL || serial == 0)
		return KM_EOK;
	int r = s->be->keyset_query(s->ctx, NULL, NULL, &sets, &nsets, err, errlen);
	if (r == KM_EOK)
		r = s->be->docs_get(s->ctx, 0, &old, &nold, err, errlen);
	if (r != KM_EOK)
		goto out;
	if ((r = s->docs_render(s->docs_render_ctx, sets, nsets, keys, nkeys, &docs, &n, err,
	                        errlen)) != KM_EOK) {
		docs = NULL;
		n = 0;
		if (!strict)
			r = KM_EOK;   /* the change goes on; the leader's publisher reports it */
		goto out;
	}
	for (size_t i = 0; r == KM_EOK && i < n; i++) {
		const km_store_doc_t *o = doc_at(old, nold, docs[i].path);
		if (o != NULL && o->len == docs[i].len && o->max_age == docs[i].max_age &&
		    memcmp(o->body, docs[i].body, o->len) == 0)
			continue;   /* the same bytes stay under the serial they came with */
		docs[i].serial = serial;
		if ((r = s->be->docs_put(s->ctx, &docs[i], err, errlen)) == KM_EOK)
			count++;
	}
	if (r == KM_EOK && written != NULL)
		*written = count;
out:
	km_store_docs_free(docs, n);
	km_store_docs_free(old, nold);
	km_store_keysets_free(sets);
	return r;
}

int km_store__docs_write(km_store_t *s, uint64_t serial, const km_store_key_t *keys,
                         size_t nkeys, size_t *written, char *err, size_t errlen)
{
	return docs_write(s, serial, keys, nkeys, false, written, err, errlen);
}

int km_store_docs_sync(km_store_t *s, size_t *ret_written, char *err, size_t errlen)
{
	km_store_jwks_version_t *last = NULL;
	km_store_key_t *keys = NULL;
	size_t n_last = 0, nkeys = 0;
	if (ret_written != NULL)
		*ret_written = 0;
	if (!km_store_has_docs(s))
		return no_docs(s, err, errlen);
	if (s->docs_render == NULL)
		return km_store__fail(err, errlen, KM_ENOTSUP, "the store of environment '%s' was "
		                      "opened without a configuration: it cannot render its "
		                      "documents", s->env);
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	r = s->be->jwks_version_query(s->ctx, true, &last, &n_last, err, errlen);
	if (r == KM_EOK)
		r = km_store__jwks_keys(s, &keys, &nkeys, err, errlen);
	if (r == KM_EOK)
		r = docs_write(s, n_last ? last[0].serial : 0, keys, nkeys, true, ret_written, err,
		               errlen);
	km_store_jwks_versions_free(last, n_last);
	km_store_keys_free(keys);
	return km_store__op_leave(s, r, err, errlen);
}

int km_store_docs_get(km_store_t *s, uint64_t newer_than, km_store_doc_t **ret, size_t *n,
                      char *err, size_t errlen)
{
	if (!km_store_has_docs(s))
		return no_docs(s, err, errlen);
	return s->be->docs_get(s->ctx, newer_than, ret, n, err, errlen);
}

void km_store_docs_free(km_store_doc_t *docs, size_t n)
{
	for (size_t i = 0; docs != NULL && i < n; i++)
		free(docs[i].body);
	free(docs);
}

int km_store_docs_listen(km_store_t *s, int *fd, char *err, size_t errlen)
{
	if (!km_store_has_docs(s))
		return no_docs(s, err, errlen);
	return s->be->docs_listen(s->ctx, fd, err, errlen);
}

bool km_store_docs_notified(km_store_t *s)
{
	return km_store_has_docs(s) && s->be->docs_notified(s->ctx);
}

bool km_store_has_pickups(const km_store_t *s)
{
	return s->be->pickup_put != NULL;
}

static int no_pickups(const km_store_t *s, char *err, size_t errlen)
{
	return km_store__fail(err, errlen, KM_ENOTSUP, "the store of environment '%s' keeps no "
	                      "pickup records (only a PostgreSQL store does)", s->env);
}

int km_store_pickups_put(km_store_t *s, const km_store_pickup_t *rows, size_t n, char *err,
                         size_t errlen)
{
	if (!km_store_has_pickups(s))
		return no_pickups(s, err, errlen);
	for (size_t i = 0; i < n; i++)
		if (rows[i].path[0] != '/' || rows[i].verifier[0] == '\0' || rows[i].serial < 0)
			return km_store__fail(err, errlen, KM_EINVAL, "a pickup record needs a path, "
			                      "a verifier name and a serial");
	if (n == 0)
		return KM_EOK;
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	for (size_t i = 0; r == KM_EOK && i < n; i++)
		r = s->be->pickup_put(s->ctx, &rows[i], err, errlen);
	return km_store__op_leave(s, r, err, errlen);
}

int km_store_pickups_get(km_store_t *s, const char *path, km_store_pickup_t **ret, size_t *n,
                         char *err, size_t errlen)
{
	if (!km_store_has_pickups(s))
		return no_pickups(s, err, errlen);
	if (path == NULL || path[0] != '/')
		return km_store__fail(err, errlen, KM_EINVAL, "a pickup path starts with '/'");
	return s->be->pickup_get(s->ctx, path, ret, n, err, errlen);
}
