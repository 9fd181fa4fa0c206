/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Finding a token by label or serial. Slot numbers are never an identity: SoftHSM re-numbers
 * its slots whenever a token is created.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "pkcs11/internal.h"

void km_p11_unpad(char *dst, size_t dstlen, const unsigned char *src, size_t srclen)
{
	size_t n = srclen;

	while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\0'))
		n--;
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

void km_p11_pad(unsigned char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	if (n > len)
		n = len;
	memset(dst, ' ', len);
	memcpy(dst, src, n);
}

static bool field_matches(const char *want, const unsigned char *field, size_t field_len)
{
	char have[64];

	if (want == NULL)
		return true;
	km_p11_unpad(have, sizeof(have), field, field_len);
	return strcmp(have, want) == 0;
}

int km_p11_find_token(CK_FUNCTION_LIST *fl, const char *module_path, const char *label,
                      const char *serial, CK_SLOT_ID *slot_ret, CK_TOKEN_INFO *info_ret,
                      char *errbuf, size_t errlen)
{
	int r = KM_ERROR;
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0, found = 0;
	CK_SLOT_ID slot = 0;
	CK_TOKEN_INFO info, match;
	char want[160];
	char who[320];
	CK_RV rv;

	if ((label == NULL || label[0] == '\0') && (serial == NULL || serial[0] == '\0')) {
		if (errbuf != NULL)
			snprintf(errbuf, errlen, "no token label or serial given (slot numbers are "
			         "not accepted)");
		return KM_EINVAL;
	}
	if (label != NULL && label[0] == '\0')
		label = NULL;
	if (serial != NULL && serial[0] == '\0')
		serial = NULL;
	snprintf(want, sizeof(want), "%s%s%s%s%s", label ? "label '" : "", label ? label : "",
	         label ? "'" : "", serial ? (label ? " serial " : "serial ") : "",
	         serial ? serial : "");
	snprintf(who, sizeof(who), "PKCS#11 module %s", module_path);

	/* The slot list can change between the two calls (a token appears); retry then. */
	for (int attempt = 0; attempt < 4; attempt++) {
		rv = fl->C_GetSlotList(CK_TRUE, NULL, &n);
		if (rv != CKR_OK) {
			r = km_p11_format_rv(errbuf, errlen, rv, who, "C_GetSlotList");
			goto out;
		}
		free(slots);
		slots = calloc(n + 1, sizeof(*slots));
		if (slots == NULL) {
			r = KM_ENOMEM;
			goto out;
		}
		rv = fl->C_GetSlotList(CK_TRUE, slots, &n);
		if (rv != CKR_BUFFER_TOO_SMALL)
			break;
	}
	if (rv != CKR_OK) {
		r = km_p11_format_rv(errbuf, errlen, rv, who, "C_GetSlotList");
		goto out;
	}

	for (CK_ULONG i = 0; i < n; i++) {
		if (fl->C_GetTokenInfo(slots[i], &info) != CKR_OK)
			continue;       /* a token removed meanwhile is simply not a match */
		if (!(info.flags & CKF_TOKEN_INITIALIZED))
			continue;
		if (!field_matches(label, info.label, sizeof(info.label)) ||
		    !field_matches(serial, info.serialNumber, sizeof(info.serialNumber)))
			continue;
		if (found++ == 0) {
			slot = slots[i];
			match = info;
		}
	}
	if (found == 0) {
		if (errbuf != NULL)
			snprintf(errbuf, errlen, "%s: no initialised token with %s", who, want);
		r = KM_P11_ENOTOKEN;
		goto out;
	}
	if (found > 1) {
		if (errbuf != NULL)
			snprintf(errbuf, errlen, "%s: %lu tokens match %s; use the serial to pick one",
			         who, (unsigned long)found, want);
		r = KM_P11_EAMBIGUOUS;
		goto out;
	}
	r = KM_EOK;
out:
	free(slots);
	if (r == KM_EOK) {
		*slot_ret = slot;
		*info_ret = match;
	}
	return r;
}
