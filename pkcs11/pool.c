/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The signing session pool: N sessions opened once after login and closed only by
 * km_token_free(), when no other thread can be using them (SoftHSM 2.6.1 can crash when
 * sessions are closed under concurrency, softhsm/SoftHSMv2#688). A thread borrows one
 * session for one sign operation; with all sessions busy it waits on the condition variable.
 * A re-open after a lost session (recover.c) first drains the pool: it holds every session
 * while it replaces them, so no signer ever uses a half-rebuilt pool.
 */
#include <stdlib.h>

#include "keymgr/common/error.h"
#include "pkcs11/internal.h"

int km_p11_pool_init(km_p11_pool_t *p, unsigned n)
{
	*p = (km_p11_pool_t){ 0 };
	p->sessions = calloc(n, sizeof(*p->sessions));
	p->free_idx = calloc(n, sizeof(*p->free_idx));
	if (p->sessions == NULL || p->free_idx == NULL) {
		free(p->sessions);
		free(p->free_idx);
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
	p->sessions[p->n_open] = s;
	p->free_idx[p->n_free++] = p->n_open++;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

unsigned km_p11_pool_acquire(km_p11_pool_t *p)
{
	unsigned idx;

	pthread_mutex_lock(&p->lock);
	while (p->n_free == 0)
		pthread_cond_wait(&p->cond, &p->lock);
	idx = p->free_idx[--p->n_free];
	pthread_mutex_unlock(&p->lock);
	return idx;
}

void km_p11_pool_release(km_p11_pool_t *p, unsigned idx)
{
	pthread_mutex_lock(&p->lock);
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

void km_p11_pool_refill(km_p11_pool_t *p)
{
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->n_open; i++)
		p->free_idx[i] = i;
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
	free(p->free_idx);
	*p = (km_p11_pool_t){ 0 };
}
