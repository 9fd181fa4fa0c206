/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one place where a Cryptoki return value becomes a keymgr error code and a message.
 * Every other file in pkcs11/ passes CK_RVs through here (km_p11_fail/km_p11_format_rv).
 */
#include <stdio.h>

#include "keymgr/common/error.h"
#include "pkcs11/internal.h"

typedef struct {
	CK_RV rv;
	const char *name;
	int code;
} rv_entry_t;

#define RV(r, c) { r, #r, c }

static const rv_entry_t rv_table[] = {
	RV(CKR_OK, KM_EOK),
	RV(CKR_CANCEL, KM_P11_EFAIL),
	RV(CKR_HOST_MEMORY, KM_ENOMEM),
	RV(CKR_SLOT_ID_INVALID, KM_P11_ENOTOKEN),
	RV(CKR_GENERAL_ERROR, KM_P11_EFAIL),
	RV(CKR_FUNCTION_FAILED, KM_P11_EFAIL),
	RV(CKR_ARGUMENTS_BAD, KM_EINVAL),
	RV(CKR_CANT_LOCK, KM_P11_EFAIL),
	RV(CKR_ATTRIBUTE_READ_ONLY, KM_EINVAL),
	RV(CKR_ATTRIBUTE_SENSITIVE, KM_EACCES),
	RV(CKR_ATTRIBUTE_TYPE_INVALID, KM_EINVAL),
	RV(CKR_ATTRIBUTE_VALUE_INVALID, KM_EINVAL),
	RV(CKR_ACTION_PROHIBITED, KM_EACCES),
	RV(CKR_DATA_INVALID, KM_EINVAL),
	RV(CKR_DATA_LEN_RANGE, KM_ERANGE),
	RV(CKR_DEVICE_ERROR, KM_P11_EDEVICE),
	RV(CKR_DEVICE_MEMORY, KM_ENOSPC),
	RV(CKR_DEVICE_REMOVED, KM_P11_EDEVICE),
	RV(CKR_FUNCTION_CANCELED, KM_P11_EFAIL),
	RV(CKR_FUNCTION_NOT_SUPPORTED, KM_ENOTSUP),
	RV(CKR_KEY_HANDLE_INVALID, KM_P11_ENOKEY),
	RV(CKR_KEY_SIZE_RANGE, KM_EKEYSIZE),
	RV(CKR_KEY_TYPE_INCONSISTENT, KM_EALG),
	RV(CKR_KEY_FUNCTION_NOT_PERMITTED, KM_EALG),
	RV(CKR_MECHANISM_INVALID, KM_P11_EMECHANISM),
	RV(CKR_MECHANISM_PARAM_INVALID, KM_P11_EMECHANISM),
	RV(CKR_OBJECT_HANDLE_INVALID, KM_P11_ENOKEY),
	RV(CKR_OPERATION_ACTIVE, KM_EBUSY),
	RV(CKR_OPERATION_NOT_INITIALIZED, KM_P11_EFAIL),
	RV(CKR_PIN_INCORRECT, KM_P11_ELOGIN),
	RV(CKR_PIN_INVALID, KM_P11_ELOGIN),
	RV(CKR_PIN_LEN_RANGE, KM_P11_ELOGIN),
	RV(CKR_PIN_EXPIRED, KM_P11_ELOGIN),
	RV(CKR_PIN_LOCKED, KM_P11_EPINLOCKED),
	RV(CKR_SESSION_CLOSED, KM_P11_ESESSION),
	RV(CKR_SESSION_COUNT, KM_EBUSY),
	RV(CKR_SESSION_HANDLE_INVALID, KM_P11_ESESSION),
	RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED, KM_P11_ESESSION),
	RV(CKR_SESSION_READ_ONLY, KM_EACCES),
	RV(CKR_SESSION_EXISTS, KM_EBUSY),
	RV(CKR_SESSION_READ_ONLY_EXISTS, KM_EBUSY),
	RV(CKR_SESSION_READ_WRITE_SO_EXISTS, KM_EBUSY),
	RV(CKR_SIGNATURE_INVALID, KM_ECRYPTO),
	RV(CKR_SIGNATURE_LEN_RANGE, KM_ECRYPTO),
	RV(CKR_TEMPLATE_INCOMPLETE, KM_EINVAL),
	RV(CKR_TEMPLATE_INCONSISTENT, KM_EINVAL),
	RV(CKR_TOKEN_NOT_PRESENT, KM_P11_EDEVICE),
	RV(CKR_TOKEN_NOT_RECOGNIZED, KM_P11_EDEVICE),
	RV(CKR_TOKEN_WRITE_PROTECTED, KM_EACCES),
	RV(CKR_USER_ALREADY_LOGGED_IN, KM_EOK),
	RV(CKR_USER_NOT_LOGGED_IN, KM_P11_ENOTLOGGEDIN),
	RV(CKR_USER_PIN_NOT_INITIALIZED, KM_P11_ELOGIN),
	RV(CKR_USER_TYPE_INVALID, KM_EINVAL),
	RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN, KM_EBUSY),
	RV(CKR_USER_TOO_MANY_TYPES, KM_EBUSY),
	RV(CKR_DOMAIN_PARAMS_INVALID, KM_EINVAL),
	RV(CKR_CURVE_NOT_SUPPORTED, KM_P11_EMECHANISM),
	RV(CKR_BUFFER_TOO_SMALL, KM_ERANGE),
	RV(CKR_RANDOM_NO_RNG, KM_P11_EFAIL),
	RV(CKR_CRYPTOKI_NOT_INITIALIZED, KM_P11_EMODULE),
	RV(CKR_CRYPTOKI_ALREADY_INITIALIZED, KM_EOK),
};

static const rv_entry_t *rv_find(CK_RV rv)
{
	for (size_t i = 0; i < sizeof(rv_table) / sizeof(rv_table[0]); i++)
		if (rv_table[i].rv == rv)
			return &rv_table[i];
	return NULL;
}

int km_p11_rv_code(CK_RV rv)
{
	const rv_entry_t *e = rv_find(rv);
	return e != NULL ? e->code : KM_P11_EFAIL;
}

const char *km_p11_rv_name(CK_RV rv)
{
	static __thread char unknown[32];
	const rv_entry_t *e = rv_find(rv);

	if (e != NULL)
		return e->name;
	snprintf(unknown, sizeof(unknown), "CKR_0x%08lx", (unsigned long)rv);
	return unknown;
}

int km_p11_format_rv(char *buf, size_t len, CK_RV rv, const char *who, const char *op)
{
	int code = km_p11_rv_code(rv);

	if (buf != NULL && len > 0) {
		/* The PIN cases get their own wording: the user must learn the PIN was wrong. */
		const char *why;
		if (rv == CKR_PIN_INCORRECT)
			why = "incorrect PIN";
		else
			why = km_strerror(code == KM_EOK ? KM_P11_EFAIL : code);
		snprintf(buf, len, "%s: %s failed: %s: %s", who, op, km_p11_rv_name(rv), why);
	}
	return code;
}
