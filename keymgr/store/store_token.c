/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Facts learned about a token (store.h): rows of the meta table named
 * "token.id_len:SERIAL:LABEL" (the CKA_ID length it keeps) and "token.assigns_ids:SERIAL:LABEL"
 * (it chooses CKA_IDs itself), written through the backend's meta_put.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store_int.h"

#define KEY_PREFIX "token.id_len:"
#define ASSIGNS_PREFIX "token.assigns_ids:"
#define FACT_KEY_MAX (sizeof(ASSIGNS_PREFIX) + KM_STORE_TOKEN_SERIAL_MAX + \
                      KM_STORE_TOKEN_LABEL_MAX + 2)

static int fact_key(const char *prefix, const char *serial, const char *label, char *out,
                    size_t len, char *err, size_t errlen)
{
	if (serial == NULL || label == NULL || strlen(serial) > KM_STORE_TOKEN_SERIAL_MAX ||
	    strlen(label) > KM_STORE_TOKEN_LABEL_MAX)
		return km_store__fail(err, errlen, KM_EINVAL, "token serial of up to %d and label "
		                      "of up to %d bytes required", KM_STORE_TOKEN_SERIAL_MAX,
		                      KM_STORE_TOKEN_LABEL_MAX);
	snprintf(out, len, "%s%s:%s", prefix, serial, label);
	return KM_EOK;
}

/* One meta row, written as its own operation. */
static int put(km_store_t *s, const char *key, const char *value, char *err, size_t errlen)
{
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	r = s->be->meta_put(s->ctx, key, value, err, errlen);
	return km_store__op_leave(s, r, err, errlen);
}

/* The value of one fact's row into value ("" when none). */
static int get(km_store_t *s, const char *prefix, const char *serial, const char *label,
               char *value, size_t len, char *err, size_t errlen)
{
	char key[FACT_KEY_MAX];
	int r = fact_key(prefix, serial, label, key, sizeof(key), err, errlen);
	return r == KM_EOK ? s->be->meta_get(s->ctx, key, value, len, err, errlen) : r;
}

int km_store_token_id_len(km_store_t *s, const char *serial, const char *label, size_t *ret,
                          char *err, size_t errlen)
{
	char value[16];
	int r = get(s, KEY_PREFIX, serial, label, value, sizeof(value), err, errlen);
	if (r != KM_EOK)
		return r;
	char *end = NULL;
	unsigned long n = value[0] ? strtoul(value, &end, 10) : 0;
	/* A row keymgr did not write is not trusted: as if nothing were recorded. */
	*ret = (end == NULL || *end == '\0') && n <= KM_STORE_CKA_ID_MAX ? (size_t)n : 0;
	return KM_EOK;
}

int km_store_token_id_len_record(km_store_t *s, const char *serial, const char *label,
                                 size_t len, char *err, size_t errlen)
{
	char key[FACT_KEY_MAX], value[16];
	if (len == 0 || len > KM_STORE_CKA_ID_MAX)
		return km_store__fail(err, errlen, KM_EINVAL, "a CKA_ID length of 1 to %d bytes "
		                      "required", KM_STORE_CKA_ID_MAX);
	int r = fact_key(KEY_PREFIX, serial, label, key, sizeof(key), err, errlen);
	if (r != KM_EOK)
		return r;
	snprintf(value, sizeof(value), "%zu", len);
	return put(s, key, value, err, errlen);
}

int km_store_token_assigns_ids(km_store_t *s, const char *serial, const char *label, bool *ret,
                               char *err, size_t errlen)
{
	char value[16];
	int r = get(s, ASSIGNS_PREFIX, serial, label, value, sizeof(value), err, errlen);
	if (r != KM_EOK)
		return r;
	*ret = strcmp(value, "yes") == 0;   /* anything else: not written by keymgr */
	return KM_EOK;
}

int km_store_token_assigns_ids_record(km_store_t *s, const char *serial, const char *label,
                                      char *err, size_t errlen)
{
	char key[FACT_KEY_MAX];
	int r = fact_key(ASSIGNS_PREFIX, serial, label, key, sizeof(key), err, errlen);
	return r == KM_EOK ? put(s, key, "yes", err, errlen) : r;
}
