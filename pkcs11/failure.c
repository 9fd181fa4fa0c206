/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a call leaves on the token (failure.h): the last error; a lost session or login marked
 * for recover.c to re-open, with the backoff it waits (the first re-open after a loss is
 * tried on the next call, a loss right after a re-open waits); a success resets the backoff.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "keymgr/common/clock.h"
#include "keymgr/common/error.h"
#include "pkcs11/failure.h"
#include "pkcs11/internal.h"
#include "pkcs11/token_int.h"

void km_p11_set_error(km_token_t *t, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&t->err_lock);
	va_start(ap, fmt);
	vsnprintf(t->last_error, sizeof(t->last_error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&t->err_lock);
}

int km_p11_fail(km_token_t *t, CK_RV rv, const char *op)
{
	char msg[KM_P11_ERR_MAX];
	int code = km_p11_format_rv(msg, sizeof(msg), rv, t->who, op);

	km_p11_set_error(t, "%s", msg);
	/* Lost sessions or login: re-opened by a later call (recover.c). */
	if (km_p11_rv_is_session_lost(rv))
		km_p11_note_session_lost(t, rv);
	return code;
}

const char *km_token_last_error(const km_token_t *t)
{
	static __thread char copy[KM_P11_ERR_MAX];

	if (t == NULL)
		return "";
	pthread_mutex_lock((pthread_mutex_t *)&t->err_lock);
	memcpy(copy, t->last_error, sizeof(copy));
	pthread_mutex_unlock((pthread_mutex_t *)&t->err_lock);
	return copy;
}

bool km_p11_rv_is_session_lost(CK_RV rv)
{
	/* CKR_OPERATION_ACTIVE: keymgr never leaves an operation open (C_SignInit is always
	 * followed by C_Sign), so a session that still has one is stuck, e.g. after a C_Sign
	 * that failed without ending its operation, as PKCS#11 says it must. */
	/* CKR_CRYPTOKI_NOT_INITIALIZED: the module is being initialised again (module.c), or
	 * its C_Initialize failed then; the re-open searches for the token, which retries it. */
	return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	       rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_DEVICE_REMOVED ||
	       rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_OPERATION_ACTIVE ||
	       rv == CKR_CRYPTOKI_NOT_INITIALIZED;
}

void km_p11_recovery_init(km_token_t *t)
{
	t->rec = (km_p11_recovery_t){ 0 };
	pthread_mutex_init(&t->rec.lock, NULL);
}

void km_p11_recovery_destroy(km_token_t *t)
{
	pthread_mutex_destroy(&t->rec.lock);
}

void km_p11_note_session_lost(km_token_t *t, CK_RV rv)
{
	km_p11_recovery_t *rec = &t->rec;

	pthread_mutex_lock(&rec->lock);
	if (rec->lost == 0) {
		rec->lost_rv = rv;
		rec->code = km_p11_rv_code(rv);
		snprintf(rec->why, sizeof(rec->why), "%s: the sessions were lost (%s); they are "
		         "re-opened and the login repeated by a later call", t->who,
		         km_p11_rv_name(rv));
		/* A loss right after a re-open waits for the backoff; the first one does not. */
		rec->next_attempt_ms = km_monotonic_ms() + rec->delay_ms;
		__atomic_store_n(&rec->lost, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&rec->lock);
}

void km_p11_note_ok(km_token_t *t)
{
	if (__atomic_load_n(&t->rec.delay_ms, __ATOMIC_RELAXED) == 0)
		return;
	pthread_mutex_lock(&t->rec.lock);
	if (t->rec.lost == 0)
		__atomic_store_n(&t->rec.delay_ms, 0u, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&t->rec.lock);
}
