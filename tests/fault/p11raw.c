/* SPDX-License-Identifier: Apache-2.0 */
/* Raw Cryptoki for tests (p11raw.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fault/p11raw.h"

static void unpad(char *dst, const unsigned char *src, size_t n)
{
	while (n > 0 && src[n - 1] == ' ')
		n--;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

void p11raw_open(p11raw_t *r, const char *module, const char *label, const char *pin_source)
{
	CK_C_GetFunctionList get = NULL;
	CK_SLOT_ID slots[32];
	CK_ULONG n = 32;
	char pin[256] = "";

	memset(r, 0, sizeof(*r));
	r->dl = dlopen(module, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	assert_non_null(r->dl);
	*(void **)&get = dlsym(r->dl, "C_GetFunctionList");
	assert_non_null(get);
	assert_int_equal(get(&r->fl), CKR_OK);
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_RV rv = r->fl->C_Initialize(&args);
	assert_true(rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED);
	r->initialised_here = rv == CKR_OK;
	assert_int_equal(r->fl->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	CK_SLOT_ID slot = (CK_SLOT_ID)-1;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		char have[33];
		if (r->fl->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		unpad(have, ti.label, sizeof(ti.label));
		if (strcmp(have, label) == 0)
			slot = slots[i];
	}
	if (slot == (CK_SLOT_ID)-1)
		fail_msg("p11raw: no token '%s'", label);
	assert_int_equal(r->fl->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
	                                      NULL, &r->s), CKR_OK);
	assert_true(strncmp(pin_source, "file:", 5) == 0);
	FILE *f = fopen(pin_source + 5, "r");
	assert_non_null(f);
	assert_non_null(fgets(pin, sizeof(pin), f));
	fclose(f);
	pin[strcspn(pin, "\r\n")] = '\0';
	rv = r->fl->C_Login(r->s, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
	memset(pin, 0, sizeof(pin));
	assert_true(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN);
}

void p11raw_close(p11raw_t *r)
{
	r->fl->C_Logout(r->s);
	r->fl->C_CloseSession(r->s);
	if (r->initialised_here)
		r->fl->C_Finalize(NULL);
	memset(r, 0, sizeof(*r));
}

CK_OBJECT_HANDLE p11raw_find(p11raw_t *r, CK_OBJECT_CLASS cls, const uint8_t *id, size_t len)
{
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_ID, (void *)id, len } };
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n = 0;
	assert_int_equal(r->fl->C_FindObjectsInit(r->s, t, 2), CKR_OK);
	assert_int_equal(r->fl->C_FindObjects(r->s, h, 2, &n), CKR_OK);
	assert_int_equal(r->fl->C_FindObjectsFinal(r->s), CKR_OK);
	assert_true(n <= 1);
	return n == 1 ? h[0] : CK_INVALID_HANDLE;
}
