/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private data objects (CKO_DATA, CKA_TOKEN, CKA_PRIVATE): small values a caller keeps in the
 * token, where only a holder of the PIN can read or replace them. keymgr keeps the last
 * signed audit checkpoint there (keymgr/audit/checkpoint.c), so that a store rolled back to
 * an earlier checkpoint shows. PKCS#11 counters (CKO_HW_FEATURE) would be better but are
 * read-only hardware objects that SoftHSM cannot create.
 *
 * A value is replaced by creating a new object before destroying the old ones: a crash in
 * between leaves two, which km_token_data_get() returns both of.
 */
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "pkcs11/failure.h"
#include "pkcs11/internal.h"
#include "pkcs11/keys.h"
#include "pkcs11/recover.h"
#include "pkcs11/token_int.h"

#define MAX_OBJECTS 16

static int check_names(km_token_t *t, const char *app, const char *label)
{
	if (app == NULL || app[0] == '\0' || strlen(app) > 64 || label == NULL ||
	    label[0] == '\0' || strlen(label) > 128) {
		km_p11_set_error(t, "%s: data object: an application (1..64 bytes) and a label "
		                 "(1..128 bytes) are required", t->who);
		return KM_EINVAL;
	}
	return KM_EOK;
}

/* The attributes that name a private data object of app and label: N_NAMING entries. */
#define N_NAMING 5
static void naming(CK_ATTRIBUTE tmpl[N_NAMING], const char *app, const char *label)
{
	static CK_OBJECT_CLASS cls = CKO_DATA;
	static CK_BBOOL yes = CK_TRUE;
	tmpl[0] = (CK_ATTRIBUTE){ CKA_CLASS, &cls, sizeof(cls) };
	tmpl[1] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof(yes) };
	tmpl[2] = (CK_ATTRIBUTE){ CKA_PRIVATE, &yes, sizeof(yes) };
	tmpl[3] = (CK_ATTRIBUTE){ CKA_APPLICATION, (void *)app, strlen(app) };
	tmpl[4] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, strlen(label) };
}

/* Finds the handles of the private data objects with app and label (admin_lock held). */
static CK_RV find_data(km_token_t *t, const char *app, const char *label, CK_OBJECT_HANDLE *objs,
                       CK_ULONG *n)
{
	CK_ATTRIBUTE tmpl[N_NAMING];
	naming(tmpl, app, label);
	return km_p11_find(t, t->admin, tmpl, N_NAMING, objs, MAX_OBJECTS, n);
}

/* How a token says that it keeps no such object (NSS softoken: no token data objects). */
bool km_p11_refuses_data(CK_RV rv)
{
	return rv == CKR_ATTRIBUTE_VALUE_INVALID || rv == CKR_ATTRIBUTE_TYPE_INVALID ||
	       rv == CKR_TEMPLATE_INCONSISTENT || rv == CKR_TEMPLATE_INCOMPLETE ||
	       rv == CKR_FUNCTION_NOT_SUPPORTED;
}

int km_token_data_put(km_token_t *t, const char *app, const char *label, const uint8_t *value,
                      size_t len)
{
	CK_OBJECT_HANDLE old[MAX_OBJECTS], h = CK_INVALID_HANDLE;
	CK_ULONG n_old = 0;
	CK_RV rv;
	int r = check_names(t, app, label);

	if (r != KM_EOK)
		return r;
	if (value == NULL || len == 0 || len > KM_TOKEN_DATA_MAX) {
		km_p11_set_error(t, "%s: data object: a value of 1..%d bytes is required", t->who,
		                 KM_TOKEN_DATA_MAX);
		return KM_EINVAL;
	}
	CK_ATTRIBUTE tmpl[N_NAMING + 1];
	naming(tmpl, app, label);
	tmpl[N_NAMING] = (CK_ATTRIBUTE){ CKA_VALUE, (void *)value, len };
	pthread_mutex_lock(&t->admin_lock);
	if ((r = km_p11_ready_locked(t)) != KM_EOK)
		goto out;
	if ((rv = find_data(t, app, label, old, &n_old)) != CKR_OK) {
		r = km_p11_fail(t, rv, "C_FindObjects (data object)");
		goto out;
	}
	rv = t->fl->C_CreateObject(t->admin, tmpl, N_NAMING + 1, &h);
	if (km_p11_refuses_data(rv)) {
		km_p11_set_error(t, "%s: the token keeps no private data objects (C_CreateObject: "
		                 "%s)", t->who, km_p11_rv_name(rv));
		r = KM_ENOTSUP;
		goto out;
	}
	if (rv != CKR_OK) {
		r = km_p11_fail(t, rv, "C_CreateObject (data object)");
		goto out;
	}
	for (CK_ULONG i = 0; i < n_old; i++) {
		rv = t->fl->C_DestroyObject(t->admin, old[i]);
		if (rv != CKR_OK && !km_p11_rv_is_stale_handle(rv)) {
			r = km_p11_fail(t, rv, "C_DestroyObject (old data object)");
			goto out;
		}
	}
	r = KM_EOK;
out:
	pthread_mutex_unlock(&t->admin_lock);
	return r;
}

int km_token_data_get(km_token_t *t, const char *app, const char *label, km_token_data_t **ret,
                      size_t *count)
{
	CK_OBJECT_HANDLE objs[MAX_OBJECTS];
	CK_ULONG n = 0;
	km_token_data_t *vals = NULL;
	size_t got = 0;
	CK_RV rv;
	int r = check_names(t, app, label);

	if (r != KM_EOK)
		return r;
	pthread_mutex_lock(&t->admin_lock);
	if ((r = km_p11_ready_locked(t)) != KM_EOK)
		goto out;
	if ((rv = find_data(t, app, label, objs, &n)) != CKR_OK) {
		r = km_p11_fail(t, rv, "C_FindObjects (data object)");
		goto out;
	}
	if (n > 0 && (vals = calloc(n, sizeof(*vals))) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	for (CK_ULONG i = 0; i < n; i++) {
		CK_ATTRIBUTE a = { CKA_VALUE, vals[got].value, sizeof(vals[got].value) };
		rv = t->fl->C_GetAttributeValue(t->admin, objs[i], &a, 1);
		if (km_p11_rv_is_stale_handle(rv))
			continue;
		if (rv != CKR_OK) {
			r = km_p11_fail(t, rv, "C_GetAttributeValue (data object)");
			goto out;
		}
		vals[got++].len = a.ulValueLen;
	}
	r = KM_EOK;
out:
	pthread_mutex_unlock(&t->admin_lock);
	if (r != KM_EOK) {
		free(vals);
		return r;
	}
	if (got == 0) {
		free(vals);
		vals = NULL;
	}
	*ret = vals;
	*count = got;
	return KM_EOK;
}
