/* SPDX-License-Identifier: Apache-2.0 */
/* The served JWKS documents and the verifiers' pickup records of a store shared by several
 * nodes (store.h), through the backend. */
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

int km_store_docs_put(km_store_t *s, const km_store_doc_t *docs, size_t n, char *err,
                      size_t errlen)
{
	if (!km_store_has_docs(s))
		return no_docs(s, err, errlen);
	for (size_t i = 0; i < n; i++)
		if (docs[i].path[0] != '/' || docs[i].body == NULL || docs[i].serial == 0)
			return km_store__fail(err, errlen, KM_EINVAL, "a document needs a path, a "
			                      "body and a serial");
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	for (size_t i = 0; r == KM_EOK && i < n; i++)
		r = s->be->docs_put(s->ctx, &docs[i], err, errlen);
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
