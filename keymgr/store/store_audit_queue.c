/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The events a transaction appended, queued until it ends: handed to the handle's streaming
 * sink after COMMIT, dropped on ROLLBACK (and back to the savepoint on ROLLBACK TO), so the
 * sink never sees an event that is not in the chain. store.c reports every transaction step
 * (km_store__pending_tx).
 */
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store_int.h"

void km_store_set_audit_sink(km_store_t *s, km_store_audit_sink_fn fn, void *ctx)
{
	s->sink = fn;
	s->sink_ctx = ctx;
}

static void pending_truncate(km_store_t *s, size_t n)
{
	while (s->n_pending > n)
		km_store__event_clear(&s->pending[--s->n_pending]);
}

void km_store__pending_free(km_store_t *s)
{
	pending_truncate(s, 0);
	free(s->pending);
	s->pending = NULL;
	s->cap_pending = 0;
}

void km_store__pending_tx(km_store_t *s, km_store_tx_t op, int result)
{
	switch (op) {
	case KM_STORE_TX_SAVEPOINT:
		s->savepoint_mark = s->n_pending;
		break;
	case KM_STORE_TX_ROLLBACK_TO:
		pending_truncate(s, s->savepoint_mark);
		break;
	case KM_STORE_TX_COMMIT:
		for (size_t i = 0; result == KM_EOK && s->sink != NULL && i < s->n_pending; i++)
			s->sink(s->sink_ctx, s->env, &s->pending[i]);
		pending_truncate(s, 0);
		break;
	case KM_STORE_TX_ROLLBACK:
		pending_truncate(s, 0);
		break;
	default:
		break;
	}
}

int km_store__pending_push(km_store_t *s, const km_store_audit_event_t *e)
{
	if (s->sink == NULL)
		return KM_EOK;
	if (s->n_pending == s->cap_pending) {
		size_t ncap = s->cap_pending ? s->cap_pending * 2 : 8;
		km_store_audit_event_t *p = realloc(s->pending, ncap * sizeof(*p));
		if (p == NULL)
			return KM_ENOMEM;
		s->pending = p;
		s->cap_pending = ncap;
	}
	km_store_audit_event_t *c = &s->pending[s->n_pending];
	*c = *e;
	c->before = strdup(e->before ? e->before : "");
	c->after = strdup(e->after ? e->after : "");
	if (c->before == NULL || c->after == NULL) {
		km_store__event_clear(c);
		return KM_ENOMEM;
	}
	s->n_pending++;
	return KM_EOK;
}
