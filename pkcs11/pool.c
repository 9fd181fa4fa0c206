/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The signing session pool: N sessions opened once after login and closed only by
 * km_token_free(), when no other thread can be using them (SoftHSM 2.6.1 can crash when
 * sessions are closed under concurrency, softhsm/SoftHSMv2#688). A thread borrows one
 * session for one sign operation; with all sessions busy it waits on the condition variable.
 * A re-open after a lost session (recover.c) first drains the pool: it holds every session
 * while it replaces them, so no signer ever uses a half-rebuilt pool.
 *
 * Each session carries its prepared-operation state (prepare.c). A borrower asks for a
 * session READY for its key when it has one (km_p11_pool_acquire_for), so that a prepared
 * C_SignInit is consumed by the signature it was made for, and everything else takes a
 * session with nothing prepared when one is free.
 */
#include <stdlib.h>

#include "keymgr/common/clock.h"
#include "keymgr/common/error.h"
#include "pkcs11/internal.h"

int km_p11_pool_init(km_p11_pool_t *p, unsigned n)
{
	*p = (km_p11_pool_t){ 0 };
	p->sessions = calloc(n, sizeof(*p->sessions));
	p->prep = calloc(n, sizeof(*p->prep));
	p->free_idx = calloc(n, sizeof(*p->free_idx));
	p->used_ms = calloc(n, sizeof(*p->used_ms));
	if (p->sessions == NULL || p->prep == NULL || p->free_idx == NULL || p->used_ms == NULL) {
		free(p->sessions);
		free(p->prep);
		free(p->free_idx);
		free(p->used_ms);
		return KM_ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->n = n;
	p->n_free = 0;          /* filled by the caller as sessions are opened */
	p->initialised = true;
	return KM_EOK;
}

void km_p11_pool_add(km_p11_pool_t *p, CK_SESSION_HANDLE s)
{
	pthread_mutex_lock(&p->lock);
	if (p->n_open >= p->n) {       /* full: never happens, callers check */
		pthread_mutex_unlock(&p->lock);
		return;
	}
	p->sessions[p->n_open] = s;
	p->prep[p->n_open] = (km_p11_prep_t){ .state = KM_P11_PREP_NONE };
	p->used_ms[p->n_open] = km_monotonic_ms();
	p->free_idx[p->n_free++] = p->n_open++;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* Removes free_idx[at] from the free stack (caller holds the lock); returns the index. */
static unsigned take_at(km_p11_pool_t *p, unsigned at)
{
	unsigned idx = p->free_idx[at];
	p->free_idx[at] = p->free_idx[--p->n_free];
	return idx;
}

unsigned km_p11_pool_acquire_for(km_p11_pool_t *p, CK_OBJECT_HANDLE key, km_alg_t alg)
{
	unsigned idx, pick = p->n;   /* p->n: none chosen yet */

	pthread_mutex_lock(&p->lock);
	while (p->n_free == 0)
		pthread_cond_wait(&p->cond, &p->lock);
	for (unsigned at = p->n_free; at-- > 0;) {
		const km_p11_prep_t *pr = &p->prep[p->free_idx[at]];
		if (pr->state != KM_P11_PREP_READY) {
			if (pick == p->n)
				pick = at;    /* nothing prepared, the most recently released: warm pages */
		} else if (key != CK_INVALID_HANDLE && pr->key == key && pr->alg == alg) {
			pick = at;        /* prepared for this very signature: best */
			break;
		}
	}
	idx = take_at(p, pick != p->n ? pick : p->n_free - 1);
	pthread_mutex_unlock(&p->lock);
	return idx;
}

bool km_p11_pool_take_pending(km_p11_pool_t *p, unsigned *idx)
{
	bool found = false;

	pthread_mutex_lock(&p->lock);
	for (unsigned at = p->n_free; at-- > 0;) {
		if (p->prep[p->free_idx[at]].state == KM_P11_PREP_PENDING) {
			*idx = take_at(p, at);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return found;
}

bool km_p11_pool_take_idle(km_p11_pool_t *p, uint64_t before_ms, unsigned *idx)
{
	bool found = false;

	pthread_mutex_lock(&p->lock);
	for (unsigned at = p->n_free; at-- > 0;) {
		if (p->used_ms[p->free_idx[at]] <= before_ms) {
			*idx = take_at(p, at);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return found;
}

void km_p11_pool_release(km_p11_pool_t *p, unsigned idx)
{
	uint64_t now = km_monotonic_ms();
	pthread_mutex_lock(&p->lock);
	p->used_ms[idx] = now;
	p->free_idx[p->n_free++] = idx;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void km_p11_pool_drain(km_p11_pool_t *p)
{
	pthread_mutex_lock(&p->lock);
	while (p->n_free < p->n_open)
		pthread_cond_wait(&p->cond, &p->lock);
	p->n_free = 0;
	pthread_mutex_unlock(&p->lock);
}

void km_p11_pool_set_open(km_p11_pool_t *p, unsigned n_open)
{
	pthread_mutex_lock(&p->lock);
	p->n_open = n_open <= p->n ? n_open : p->n;
	pthread_mutex_unlock(&p->lock);
}

unsigned km_p11_pool_open_count(km_p11_pool_t *p)
{
	pthread_mutex_lock(&p->lock);
	unsigned n = p->n_open;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void km_p11_pool_refill(km_p11_pool_t *p)
{
	pthread_mutex_lock(&p->lock);
	uint64_t now = km_monotonic_ms();
	for (unsigned i = 0; i < p->n_open; i++) {
		p->free_idx[i] = i;
		p->prep[i] = (km_p11_prep_t){ .state = KM_P11_PREP_NONE };
		p->used_ms[i] = now;
	}
	p->n_free = p->n_open;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void km_p11_pool_destroy(km_p11_pool_t *p)
{
	if (!p->initialised)
		return;
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->sessions);
	free(p->prep);
	free(p->free_idx);
	free(p->used_ms);
	*p = (km_p11_pool_t){ 0 };
}
