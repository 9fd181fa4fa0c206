/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Creating a development token in a SoftHSM-style free slot (keymgr token init, and the
 * test fixture). Idempotency is the caller's: an existing token with the label is KM_EEXIST.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/secret.h"
#include "pkcs11/internal.h"
#include "pkcs11/pin.h"

/* The first slot holding a present but uninitialised token. */
static int find_free_slot(CK_FUNCTION_LIST *fl, const char *who, CK_SLOT_ID *ret, char *msg,
                          size_t len)
{
	CK_ULONG n = 0;
	CK_SLOT_ID *slots = NULL;
	int r = KM_P11_ENOTOKEN;
	CK_RV rv = fl->C_GetSlotList(CK_TRUE, NULL, &n);

	if (rv != CKR_OK)
		return km_p11_format_rv(msg, len, rv, who, "C_GetSlotList");
	slots = calloc(n + 1, sizeof(*slots));
	if (slots == NULL)
		return KM_ENOMEM;
	rv = fl->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK) {
		r = km_p11_format_rv(msg, len, rv, who, "C_GetSlotList");
		goto out;
	}
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		if (fl->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    !(ti.flags & CKF_TOKEN_INITIALIZED)) {
			*ret = slots[i];
			r = KM_EOK;
			goto out;
		}
	}
	snprintf(msg, len, "%s: no slot with an uninitialised token", who);
out:
	free(slots);
	return r;
}

int km_token_init_dev(const char *module_path, const char *label, const char *so_pin_source,
                      const char *user_pin_source, char *errbuf, size_t errlen)
{
	int r = KM_ERROR;
	km_p11_module_t *mod = NULL;
	CK_FUNCTION_LIST *fl = NULL;
	char msg[KM_P11_ERR_MAX] = "";
	char who[KM_P11_ERR_MAX / 2];
	char *so_pin = NULL, *user_pin = NULL;
	CK_SLOT_ID slot, new_slot;
	CK_TOKEN_INFO ti;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	bool so_logged_in = false;
	unsigned char label32[32];
	CK_RV rv;

	if (label == NULL || label[0] == '\0' || strlen(label) > KM_TOKEN_LABEL_MAX) {
		snprintf(msg, sizeof(msg), "a token label of 1..%d bytes is required",
		         KM_TOKEN_LABEL_MAX);
		r = KM_EINVAL;
		goto out;
	}
	snprintf(who, sizeof(who), "token '%s'", label);
	if ((r = km_p11_module_get(module_path, /* init_args= */ NULL, &mod, &fl, msg,
	                           sizeof(msg))) != KM_EOK)
		goto out;

	r = km_p11_find_token(fl, module_path, label, NULL, &slot, &ti, msg, sizeof(msg));
	if (r == KM_EOK || r == KM_P11_EAMBIGUOUS) {
		snprintf(msg, sizeof(msg), "%s already exists", who);
		r = KM_EEXIST;
		goto out;
	}
	if (r != KM_P11_ENOTOKEN)
		goto out;
	msg[0] = '\0';
	if ((r = find_free_slot(fl, who, &slot, msg, sizeof(msg))) != KM_EOK)
		goto out;

	/* Both PINs are read before anything changes, so a bad source changes nothing. */
	if ((r = km_pin_read(so_pin_source, &so_pin, msg, sizeof(msg))) != KM_EOK)
		goto out;
	if ((r = km_pin_read(user_pin_source, &user_pin, msg, sizeof(msg))) != KM_EOK)
		goto out;

	km_p11_pad(label32, sizeof(label32), label);
	rv = fl->C_InitToken(slot, (CK_UTF8CHAR *)so_pin, strlen(so_pin), label32);
	if (rv != CKR_OK) {
		r = km_p11_format_rv(msg, sizeof(msg), rv, who, "C_InitToken");
		goto out;
	}
	/* SoftHSM moves the new token to another slot number: find it by label again. */
	r = km_p11_find_token(fl, module_path, label, NULL, &new_slot, &ti, msg, sizeof(msg));
	if (r != KM_EOK)
		goto out;
	rv = fl->C_OpenSession(new_slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
	if (rv != CKR_OK) {
		r = km_p11_format_rv(msg, sizeof(msg), rv, who, "C_OpenSession");
		goto out;
	}
	rv = fl->C_Login(s, CKU_SO, (CK_UTF8CHAR *)so_pin, strlen(so_pin));
	km_secret_free(so_pin);
	so_pin = NULL;
	if (rv != CKR_OK) {
		r = km_p11_format_rv(msg, sizeof(msg), rv, who, "C_Login as security officer");
		goto out;
	}
	so_logged_in = true;
	rv = fl->C_InitPIN(s, (CK_UTF8CHAR *)user_pin, strlen(user_pin));
	km_secret_free(user_pin);
	user_pin = NULL;
	if (rv != CKR_OK) {
		r = km_p11_format_rv(msg, sizeof(msg), rv, who, "C_InitPIN");
		goto out;
	}
	r = KM_EOK;
out:
	km_secret_free(so_pin);
	km_secret_free(user_pin);
	if (so_logged_in)
		fl->C_Logout(s);
	if (s != CK_INVALID_HANDLE)
		fl->C_CloseSession(s);
	km_p11_module_put(mod);
	if (r != KM_EOK && errbuf != NULL && errlen > 0) {
		if (msg[0] == '\0')
			snprintf(msg, sizeof(msg), "initialising the token failed: %s", km_strerror(r));
		snprintf(errbuf, errlen, "%s", msg);
	}
	return r;
}
