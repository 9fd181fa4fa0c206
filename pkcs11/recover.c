/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Re-opening lost sessions. When a call returns CKR_SESSION_HANDLE_INVALID,
 * CKR_SESSION_CLOSED, CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT or
 * CKR_OPERATION_ACTIVE (a session stuck in an operation a failed call did not end),
 * the failing operation returns its error at once and the token is marked lost (failure.c,
 * which also starts and resets the backoff below). The next operation on the token (or
 * km_token_recover) re-opens it, on the caller's thread:
 *
 *   1. take admin_lock, then every pool session (signers in flight finish first; new ones
 *      wait), so nobody uses a session while it is replaced;
 *   2. close the old sessions (errors ignored: they are usually gone already);
 *   3. find the token again by its label and serial (it may come back in another slot),
 *      open the admin session, log in with the PIN read again from the pin source (wiped
 *      right after C_Login), open the pool sessions;
 *   4. clear the handle cache (its generation moves on): every handle found before is stale,
 *      keys are searched again on first use.
 *
 * Backoff: the first re-open after a loss is tried on the next call. A failed re-open, or a
 * loss soon after a re-open (no operation succeeded in between), doubles the wait, from
 * 100 ms up to 30 s; during the wait operations fail at once without touching the token, so
 * a caller retrying in a loop never makes the module spin. A successful operation resets it.
 * A PIN the token refuses (CKR_PIN_INCORRECT) is never tried again by itself: a real token
 * locks its PIN after a few wrong ones. Without a PIN gate, only km_token_recover() (an
 * explicit request, which ignores the wait) tries again, with the PIN read anew from its
 * source. With a gate (login.c), re-opens go on with the usual backoff and the gate decides
 * whether the PIN is presented: not while its source is the one refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/clock.h"
#include "keymgr/common/error.h"
#include "pkcs11/failure.h"
#include "pkcs11/internal.h"
#include "pkcs11/login.h"
#include "pkcs11/prepare.h"
#include "pkcs11/recover.h"
#include "pkcs11/token_int.h"

#define KM_P11_BACKOFF_MIN_MS 100u      /* first wait after a failed or repeated re-open */
#define KM_P11_BACKOFF_MAX_MS 30000u    /* the wait never grows beyond this */

static unsigned next_delay(unsigned d)
{
	if (d == 0)
		return KM_P11_BACKOFF_MIN_MS;
	return d >= KM_P11_BACKOFF_MAX_MS / 2 ? KM_P11_BACKOFF_MAX_MS : d * 2;
}

static bool is_lost(km_token_t *t)
{
	return __atomic_load_n(&t->rec.lost, __ATOMIC_ACQUIRE) != 0;
}

/* Closes every session this token has open (admin_lock held, pool drained). */
static void close_sessions(km_token_t *t)
{
	if (t->sessions_open)
		for (unsigned i = 0; i < t->pool.n_open; i++)
			t->fl->C_CloseSession(t->pool.sessions[i]);
	t->sessions_open = false;
	if (t->admin_open)
		t->fl->C_CloseSession(t->admin);
	t->admin_open = false;
}

/* Logs in on the admin session with the PIN read again from its source. */
static int login_again(km_token_t *t, char *msg, size_t len)
{
	if (strcmp(t->pin_source, "prompt") == 0) {
		snprintf(msg, len, "%s: cannot log in again: the PIN came from a prompt (use a "
		         "file: or env: PIN source for long-running processes)", t->who);
		return KM_P11_EPINSOURCE;
	}
	return km_p11_login(t, "C_Login as user (re-open)", msg, len);
}

/* Steps 2 and 3 above. On failure no session is left open and msg says why. */
static int reopen(km_token_t *t, char *msg, size_t len)
{
	CK_TOKEN_INFO ti;
	CK_SLOT_ID slot;
	unsigned opened = 0;
	CK_RV rv;
	int r;

	close_sessions(t);
	r = km_p11_module_find_token(t->mod, t->module_path, t->info.label,
	                             t->info.serial[0] ? t->info.serial : NULL, /* seen= */ true,
	                             &slot, &ti, msg, len);
	if (r != KM_EOK)
		return r;
	if (slot != t->slot && t->logged_in) {
		/* The process-wide login count follows the token to its new slot. */
		km_p11_module_login_unref(t->mod, t->slot);
		km_p11_module_login_ref(t->mod, slot);
	}
	t->slot = slot;
	t->info.slot_id = slot;

	rv = t->fl->C_OpenSession(t->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
	                          &t->admin);
	if (rv != CKR_OK)
		return km_p11_format_rv(msg, len, rv, t->who, "C_OpenSession (re-open)");
	t->admin_open = true;
	if (t->logged_in && (r = login_again(t, msg, len)) != KM_EOK)
		goto out;
	/* Up to the pool's full size: a pool that shrank grows back where the token allows. */
	for (; opened < t->pool.n; opened++) {
		rv = km_p11_open_pool_session(t, &t->pool.sessions[opened]);
		if (rv == CKR_SESSION_COUNT && opened > 0)
			break;
		if (rv != CKR_OK) {
			r = km_p11_format_rv(msg, len, rv, t->who, "C_OpenSession (re-open, pool)");
			goto out;
		}
	}
	t->sessions_open = true;
	km_p11_pool_set_open(&t->pool, opened);
	r = KM_EOK;
out:
	if (r != KM_EOK) {
		for (unsigned i = 0; i < opened; i++)
			t->fl->C_CloseSession(t->pool.sessions[i]);
		t->fl->C_CloseSession(t->admin);
		t->admin_open = false;
	}
	return r;
}

/* The re-open itself; force ignores the backoff (km_token_recover). */
static int ready_locked(km_token_t *t, bool force)
{
	km_p11_recovery_t *rec = &t->rec;
	char msg[KM_P11_ERR_MAX] = "";
	uint64_t now;
	int r;

	if (!is_lost(t))
		return KM_EOK;
	pthread_mutex_lock(&rec->lock);
	now = km_monotonic_ms();
	if (rec->lost == 0) {
		pthread_mutex_unlock(&rec->lock);
		return KM_EOK;          /* another thread re-opened it meanwhile */
	}
	if (now < rec->next_attempt_ms && !force) {
		r = rec->code;
		if (rec->next_attempt_ms == UINT64_MAX)
			snprintf(msg, sizeof(msg), "%.400s (the PIN was refused: not tried again until "
			         "an explicit recovery)", rec->why);
		else
			snprintf(msg, sizeof(msg), "%.400s (next re-open attempt in %llu ms)", rec->why,
			         (unsigned long long)(rec->next_attempt_ms - now));
		pthread_mutex_unlock(&rec->lock);
		km_p11_set_error(t, "%s", msg);
		return r;
	}
	pthread_mutex_unlock(&rec->lock);

	km_p11_pool_drain(&t->pool);
	r = reopen(t, msg, sizeof(msg));
	if (r == KM_EOK)
		km_p11_cache_clear(&t->cache);

	pthread_mutex_lock(&rec->lock);
	rec->delay_ms = next_delay(rec->delay_ms);
	if (r == KM_EOK) {
		rec->recoveries++;
		rec->epoch++;
		rec->why[0] = '\0';
		__atomic_store_n(&rec->lost, 0, __ATOMIC_RELEASE);
	} else {
		rec->failed_attempts++;
		rec->code = r;
		snprintf(rec->why, sizeof(rec->why), "%.400s", msg);
		if (r == KM_P11_ELOGIN && t->gate.check == NULL) {
			rec->next_attempt_ms = UINT64_MAX;
			snprintf(msg, sizeof(msg), "%.400s (re-open failed; a refused PIN is not "
			         "tried again automatically)", rec->why);
		} else {
			rec->next_attempt_ms = km_monotonic_ms() + rec->delay_ms;
			snprintf(msg, sizeof(msg), "%.400s (re-open failed; next attempt in %u ms)",
			         rec->why, rec->delay_ms);
		}
	}
	pthread_mutex_unlock(&rec->lock);
	km_p11_pool_refill(&t->pool);
	if (r != KM_EOK)
		km_p11_set_error(t, "%s", msg);
	return r;
}

int km_p11_ready_locked(km_token_t *t)
{
	return ready_locked(t, false);
}

int km_p11_ready(km_token_t *t)
{
	int r;

	if (!is_lost(t))
		return KM_EOK;
	pthread_mutex_lock(&t->admin_lock);
	r = ready_locked(t, false);
	pthread_mutex_unlock(&t->admin_lock);
	return r;
}

int km_p11_session_get_for(km_token_t *t, CK_OBJECT_HANDLE key, km_alg_t alg, unsigned *idx)
{
	int r = km_p11_ready(t);
	unsigned i;

	if (r != KM_EOK)
		return r;
	i = km_p11_pool_acquire_for(&t->pool, key, alg);
	if (is_lost(t)) {
		/* Lost while we waited: the session may be closed by now (or soon). */
		char why[KM_P11_ERR_MAX];
		km_p11_pool_release(&t->pool, i);
		pthread_mutex_lock(&t->rec.lock);
		r = t->rec.code != KM_EOK ? t->rec.code : KM_P11_ESESSION;
		memcpy(why, t->rec.why, sizeof(why));
		pthread_mutex_unlock(&t->rec.lock);
		km_p11_set_error(t, "%s", why);
		return r;
	}
	*idx = i;
	return KM_EOK;
}

int km_p11_session_get(km_token_t *t, unsigned *idx)
{
	int r = km_p11_session_get_for(t, CK_INVALID_HANDLE, 0, idx);

	if (r == KM_EOK)
		km_p11_prep_settle(t, *idx);
	return r;
}

int km_token_recover(km_token_t *t)
{
	int r;

	if (!is_lost(t))
		return KM_EOK;
	pthread_mutex_lock(&t->admin_lock);
	r = ready_locked(t, true);
	pthread_mutex_unlock(&t->admin_lock);
	return r;
}

/*
 * One more signing session when the pool has fewer than wanted (a token that answered
 * CKR_SESSION_COUNT when it was opened); a token still out of sessions keeps it as it is.
 * admin_lock held, the token not lost.
 */
static void grow_pool(km_token_t *t)
{
	CK_SESSION_HANDLE s;

	if (km_p11_pool_open_count(&t->pool) >= t->pool.n)
		return;
	if (km_p11_open_pool_session(t, &s) == CKR_OK)
		km_p11_pool_add(&t->pool, s);
}

int km_token_check(km_token_t *t)
{
	CK_TOKEN_INFO ti;
	CK_SESSION_INFO si;
	CK_RV rv;
	int r;

	pthread_mutex_lock(&t->admin_lock);
	if ((r = ready_locked(t, false)) != KM_EOK)
		goto out;
	if ((rv = t->fl->C_GetTokenInfo(t->slot, &ti)) != CKR_OK) {
		r = km_p11_fail(t, rv, "C_GetTokenInfo (check)");
		goto out;
	}
	if ((rv = t->fl->C_GetSessionInfo(t->admin, &si)) != CKR_OK) {
		r = km_p11_fail(t, rv, "C_GetSessionInfo (check)");
		goto out;
	}
	if (t->logged_in && si.state != CKS_RW_USER_FUNCTIONS && si.state != CKS_RO_USER_FUNCTIONS) {
		/* Logged out behind our back (another process, a token reset). */
		km_p11_note_session_lost(t, CKR_USER_NOT_LOGGED_IN);
		km_p11_set_error(t, "%s: the login was lost (session state %lu); it is repeated "
		                 "by a later call", t->who, (unsigned long)si.state);
		r = KM_P11_ENOTLOGGEDIN;
		goto out;
	}
	grow_pool(t);
	r = KM_EOK;
out:
	pthread_mutex_unlock(&t->admin_lock);
	return r;
}

int km_token_keepalive(km_token_t *t, unsigned idle_ms, unsigned *ret_kept)
{
	unsigned n = 0, kept = 0;
	int r = KM_EOK;
	uint64_t now = km_monotonic_ms();
	uint64_t before = now >= idle_ms ? now - idle_ms : 0;

	if (is_lost(t)) {
		if (ret_kept != NULL)
			*ret_kept = 0;
		return KM_EOK;
	}
	/* Every idle session is held before any is asked, so none is asked twice. */
	unsigned *held = calloc(t->pool.n > 0 ? t->pool.n : 1, sizeof(*held));
	if (held == NULL)
		return KM_ENOMEM;
	while (n < t->pool.n && km_p11_pool_take_idle(&t->pool, before, &held[n]))
		n++;
	for (unsigned i = 0; i < n; i++) {
		CK_SESSION_INFO si;
		CK_RV rv = r == KM_EOK ? t->fl->C_GetSessionInfo(t->pool.sessions[held[i]], &si) :
		                         CKR_OK;
		if (rv != CKR_OK)
			r = km_p11_fail(t, rv, "C_GetSessionInfo (keep-alive)");
		else if (r == KM_EOK)
			kept++;
	}
	for (unsigned i = 0; i < n; i++)
		km_p11_pool_release(&t->pool, held[i]);
	free(held);
	if (ret_kept != NULL)
		*ret_kept = kept;
	return r;
}

void km_token_get_health(km_token_t *t, km_token_health_t *ret)
{
	km_token_health_t h = { 0 };
	uint64_t now = km_monotonic_ms();

	pthread_mutex_lock(&t->rec.lock);
	h.lost = t->rec.lost != 0;
	h.recoveries = t->rec.recoveries;
	h.failed_attempts = t->rec.failed_attempts;
	if (h.lost && t->rec.next_attempt_ms > now)
		h.retry_in_ms = (unsigned)(t->rec.next_attempt_ms - now);
	pthread_mutex_unlock(&t->rec.lock);
	h.sessions = km_p11_pool_open_count(&t->pool);
	h.sessions_wanted = t->pool.n;
	*ret = h;
}
