/* SPDX-License-Identifier: Apache-2.0 */
/* The leader lease and the fence of a store handle (store.h), through the backend. */
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store_int.h"

bool km_store_has_lease(const km_store_t *s)
{
	return s->be->lease != NULL;
}

static int lease(km_store_t *s, km_store_lease_op_t op, const char *holder, int64_t epoch,
                 int ttl_ms, km_store_lease_t *ret, char *err, size_t errlen)
{
	km_store_lease_t l;
	if (s->be->lease == NULL)
		return km_store__fail(err, errlen, KM_ENOTSUP, "the store of environment '%s' has "
		                      "no leader lease (only a PostgreSQL store has one)", s->env);
	if (op != KM_STORE_LEASE_READ &&
	    (holder == NULL || !km_store__text_ok(holder, KM_STORE_LEASE_HOLDER_MAX, false)))
		return km_store__fail(err, errlen, KM_EINVAL, "invalid lease holder");
	if ((op == KM_STORE_LEASE_ACQUIRE || op == KM_STORE_LEASE_RENEW) && ttl_ms < 1000)
		return km_store__fail(err, errlen, KM_EINVAL, "a lease lasts at least 1 s");
	memset(&l, 0, sizeof(l));
	int r = s->be->lease(s->ctx, op, holder, epoch, ttl_ms, &l, err, errlen);
	if (r == KM_EOK && ret != NULL)
		*ret = l;
	return r;
}

int km_store_lease_acquire(km_store_t *s, const char *holder, int ttl_ms, km_store_lease_t *ret,
                           char *err, size_t errlen)
{
	return lease(s, KM_STORE_LEASE_ACQUIRE, holder, 0, ttl_ms, ret, err, errlen);
}

int km_store_lease_renew(km_store_t *s, const char *holder, int64_t epoch, int ttl_ms,
                         km_store_lease_t *ret, char *err, size_t errlen)
{
	return lease(s, KM_STORE_LEASE_RENEW, holder, epoch, ttl_ms, ret, err, errlen);
}

int km_store_lease_read(km_store_t *s, km_store_lease_t *ret, char *err, size_t errlen)
{
	return lease(s, KM_STORE_LEASE_READ, NULL, 0, 0, ret, err, errlen);
}

int km_store_lease_release(km_store_t *s, const char *holder, int64_t epoch, char *err,
                           size_t errlen)
{
	return lease(s, KM_STORE_LEASE_RELEASE, holder, epoch, 0, NULL, err, errlen);
}

void km_store_set_fence(km_store_t *s, const char *holder, int64_t epoch)
{
	if (s->be->fence != NULL)
		s->be->fence(s->ctx, holder, epoch);
}
