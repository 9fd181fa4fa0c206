/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The user login (login.h). A PIN gate (keymgrd and keymgr pass the one of
 * keymgr/core/pin_refusal.c) sees what the PIN was read from, never the PIN: a PIN the token
 * refused once is not presented again while its source is unchanged, since a hardware token
 * locks its PIN, or wipes itself, after a few wrong ones.
 */
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/secret.h"
#include "pkcs11/login.h"
#include "pkcs11/pin.h"
#include "pkcs11/token_int.h"

int km_p11_login(km_token_t *t, const char *op, char *msg, size_t len)
{
	char *pin = NULL, why[KM_P11_ERR_MAX] = "";
	km_pin_id_t id;
	CK_RV rv;
	int r;

	if ((r = km_pin_read_id(t->pin_source, &pin, &id, msg, len)) != KM_EOK)
		return r;
	/* A PIN the token cannot accept by its length never spends a try toward its lockout
	 * (opencryptoki counts a too-long PIN as a wrong one). */
	if ((r = km_pin_check_length(strlen(pin), t->pin_min, t->pin_max, t->who, msg, len)) !=
	    KM_EOK) {
		km_secret_free(pin);
		return r;
	}
	if (t->gate.check != NULL &&
	    (r = t->gate.check(t->gate.ctx, &id, why, sizeof(why))) != KM_EOK) {
		km_secret_free(pin);
		snprintf(msg, len, "%s: %s", t->who, why[0] ? why : km_strerror(r));
		return r;
	}
	rv = t->fl->C_Login(t->admin, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
	km_secret_free(pin);
	/* ALREADY_LOGGED_IN: another km_token_t of this process shares the login; the token did
	 * not look at this PIN, so the gate learns nothing. */
	if (rv == CKR_USER_ALREADY_LOGGED_IN)
		return KM_EOK;
	r = rv == CKR_OK ? KM_EOK : km_p11_format_rv(msg, len, rv, t->who, op);
	if (t->gate.outcome != NULL)
		t->gate.outcome(t->gate.ctx, &id, r, rv == CKR_OK ? NULL : km_p11_rv_name(rv));
	return r;
}
