/* SPDX-License-Identifier: Apache-2.0 */
/* Opening and closing a token: module, token lookup, login, sessions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keymgr/common/error.h"
#include "pkcs11/caps.h"
#include "pkcs11/failure.h"
#include "pkcs11/internal.h"
#include "pkcs11/login.h"
#include "pkcs11/token_int.h"

static void copy_err(char *errbuf, size_t errlen, const char *msg)
{
	if (errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s", msg);
}

int km_token_open(const km_token_cfg_t *cfg, km_token_t **ret, char *errbuf, size_t errlen)
{
	int r = KM_ERROR;
	km_token_t *t = NULL;
	CK_TOKEN_INFO ti;
	char msg[KM_P11_ERR_MAX] = "";
	CK_RV rv;

	if (cfg == NULL || ret == NULL) {
		copy_err(errbuf, errlen, "km_token_open: no configuration given");
		return KM_EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return KM_ENOMEM;
	pthread_mutex_init(&t->admin_lock, NULL);
	pthread_mutex_init(&t->err_lock, NULL);
	t->id_keep = KM_TOKEN_ID_LEN;
	km_p11_recovery_init(t);
	/* Kept for re-opening lost sessions (recover.c): the module and the PIN's source. */
	if (cfg->module_path != NULL && (t->module_path = strdup(cfg->module_path)) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	if (cfg->pin_source != NULL && (t->pin_source = strdup(cfg->pin_source)) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	if (cfg->pin_gate != NULL)
		t->gate = *cfg->pin_gate;
	if ((r = km_p11_cache_init(&t->cache)) != KM_EOK)
		goto out;
	unsigned n_sessions = cfg->sessions ? cfg->sessions : KM_P11_DEFAULT_SESSIONS;
	if (n_sessions > 256) {
		snprintf(msg, sizeof(msg), "session pool of %u is too large (at most 256)",
		         n_sessions);
		r = KM_EINVAL;
		goto out;
	}
	if ((r = km_p11_pool_init(&t->pool, n_sessions)) != KM_EOK)
		goto out;

	r = km_p11_module_get(cfg->module_path, cfg->init_args, &t->mod, &t->fl, msg,
	                      sizeof(msg));
	if (r != KM_EOK)
		goto out;
	r = km_p11_module_find_token(t->mod, cfg->module_path, cfg->token_label,
	                             cfg->token_serial, /* seen= */ false, &t->slot, &ti, msg,
	                             sizeof(msg));
	/*
	 * SoftHSM reads its token directory at C_Initialize. If another process was rewriting
	 * the token's files at that moment, the token stays invisible to this process until the
	 * module is initialised again. So before reporting "no such token", look again with a
	 * fresh initialisation (which only happens when no other user in this process holds
	 * the module), a few times over about half a second.
	 */
	for (int again = 1; r == KM_P11_ENOTOKEN && again <= 3; again++) {
		struct timespec pause = { 0, 50000000L * again };
		km_p11_module_put(t->mod);
		t->mod = NULL;
		nanosleep(&pause, NULL);
		if ((r = km_p11_module_get(cfg->module_path, cfg->init_args, &t->mod, &t->fl,
		                           msg, sizeof(msg))) != KM_EOK)
			goto out;
		r = km_p11_find_token(t->fl, cfg->module_path, cfg->token_label, cfg->token_serial,
		                      &t->slot, &ti, msg, sizeof(msg));
	}
	if (r != KM_EOK)
		goto out;
	km_p11_unpad(t->info.label, sizeof(t->info.label), ti.label, sizeof(ti.label));
	km_p11_unpad(t->info.serial, sizeof(t->info.serial), ti.serialNumber,
	             sizeof(ti.serialNumber));
	km_p11_unpad(t->info.manufacturer, sizeof(t->info.manufacturer), ti.manufacturerID,
	             sizeof(ti.manufacturerID));
	km_p11_unpad(t->info.model, sizeof(t->info.model), ti.model, sizeof(ti.model));
	t->info.slot_id = t->slot;
	snprintf(t->who, sizeof(t->who), "token '%s'", t->info.label);
	km_p11_caps_probe(t);

	rv = t->fl->C_OpenSession(t->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
	                          &t->admin);
	if (rv != CKR_OK) {
		r = km_p11_format_rv(msg, sizeof(msg), rv, t->who, "C_OpenSession");
		goto out;
	}
	t->admin_open = true;

	if (t->pin_source != NULL) {
		/* the token's PIN length limits, checked by km_p11_login before C_Login */
		t->pin_min = ti.ulMinPinLen;
		t->pin_max = ti.ulMaxPinLen;
		km_p11_module_login_ref(t->mod, t->slot);
		if ((r = km_p11_login(t, "C_Login as user", msg, sizeof(msg))) != KM_EOK) {
			km_p11_module_login_unref(t->mod, t->slot);
			goto out;
		}
		t->logged_in = true;
	}

	t->sessions_open = true;        /* pool.sessions[0..n_open) are open handles */
	for (unsigned i = 0; i < n_sessions; i++) {
		CK_SESSION_HANDLE s;
		rv = km_p11_open_pool_session(t, &s);
		/* A token out of sessions (YubiHSM 2 has 16 per device, and its token info
		 * claims no limit): sign with fewer; km_token_check() grows the pool back. */
		if (rv == CKR_SESSION_COUNT && i > 0)
			break;
		if (rv != CKR_OK) {
			r = km_p11_format_rv(msg, sizeof(msg), rv, t->who,
			                     "C_OpenSession (signing pool)");
			goto out;
		}
		km_p11_pool_add(&t->pool, s);
	}
	r = KM_EOK;
out:
	if (r != KM_EOK) {
		if (msg[0] == '\0')
			snprintf(msg, sizeof(msg), "opening the token failed: %s", km_strerror(r));
		copy_err(errbuf, errlen, msg);
		km_token_free(t);
		return r;
	}
	*ret = t;
	return KM_EOK;
}

void km_token_free(km_token_t *t)
{
	if (t == NULL)
		return;
	/* The login is shared by the whole process: only the last user of the slot logs out. */
	if (t->logged_in && km_p11_module_login_unref(t->mod, t->slot) == 0 && t->admin_open)
		t->fl->C_Logout(t->admin);
	/* A failed re-open (recover.c) leaves no pool session open. */
	for (unsigned i = 0; t->sessions_open && i < t->pool.n_open; i++)
		t->fl->C_CloseSession(t->pool.sessions[i]);
	if (t->admin_open)
		t->fl->C_CloseSession(t->admin);
	km_p11_pool_destroy(&t->pool);
	km_p11_cache_destroy(&t->cache);
	km_p11_module_put(t->mod);
	pthread_mutex_destroy(&t->admin_lock);
	pthread_mutex_destroy(&t->err_lock);
	km_p11_recovery_destroy(t);
	free(t->module_path);
	free(t->pin_source);
	free(t);
}

void km_token_get_info(const km_token_t *t, km_token_info_t *ret)
{
	*ret = t->info;
}

CK_RV km_p11_open_pool_session(km_token_t *t, CK_SESSION_HANDLE *ret)
{
	CK_RV rv = CKR_GENERAL_ERROR;

	if (!t->pool_rw) {
		rv = t->fl->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL, ret);
		if (rv == CKR_OK || rv == CKR_SESSION_COUNT || km_p11_rv_is_session_lost(rv))
			return rv;
	}
	CK_RV rw = t->fl->C_OpenSession(t->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
	                                ret);
	if (rw == CKR_OK)
		t->pool_rw = true;
	/* Both refused: the read-only answer says more about why (the read-write one only
	 * repeats it), unless read-write was the only try. */
	return rw == CKR_OK || t->pool_rw ? rw : rv;
}
