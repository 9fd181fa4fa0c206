/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/core/key_owner.h"

void km_key_label(const char *env, const char *keyset, char *out, size_t len)
{
	snprintf(out, len, "keymgr:%s/%s", env, keyset);
}

/* Whether label is one keymgr gives a key of env: "keymgr:ENV/…", or that fitted. */
static bool env_label(const km_env_t *env, const char *label)
{
	char prefix[KM_ENV_NAME_MAX + 16];
	char fitted[KM_TOKEN_FIT_LABEL_MAX + 1];
	km_key_label(km_env_name(env), "", prefix, sizeof(prefix));
	if (strncmp(label, prefix, strlen(prefix)) == 0)
		return true;
	const char *f = km_token_fit_label(prefix, fitted);
	return f != NULL && strncmp(label, f, strlen(f)) == 0;
}

/* Whether an id of len bytes is one keymgr makes where the token cuts ids. */
static bool short_keymgr_id(km_token_t *t, const uint8_t *id, size_t len)
{
	if (len == 0 || len >= KM_TOKEN_ID_LEN)
		return false;
	size_t magic = len < KM_TOKEN_ID_MAGIC_LEN ? len : KM_TOKEN_ID_MAGIC_LEN;
	return len == km_token_id_len(t) || memcmp(id, KM_TOKEN_ID_MAGIC, magic) == 0;
}

int km_env_key_is_keymgrs(km_env_t *env, km_token_t *t, const km_token_key_info_t *o,
                          bool *ret, char *err, size_t errlen)
{
	km_store_t *s = km_env_store(env);
	km_store_key_t row;
	bool audit = false;
	if (o->keymgr_id) {
		*ret = true;
		return KM_EOK;
	}
	if (o->id_len == 0 || o->id_len > KM_STORE_CKA_ID_MAX) {
		*ret = false;
		return KM_EOK;
	}
	int r = km_store_key_get_by_cka_id(s, o->id, o->id_len, &row, err, errlen);
	if (r == KM_EOK) {
		*ret = true;
		return KM_EOK;
	}
	if (r != KM_ENOENT)
		return r;
	if ((r = km_store_audit_key_is(s, o->id, o->id_len, &audit, err, errlen)) != KM_EOK)
		return r;
	*ret = audit || (short_keymgr_id(t, o->id, o->id_len) && env_label(env, o->label));
	return KM_EOK;
}
