/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/cli/token_keys.h"
#include "keymgr/common/error.h"

bool km_raw_label_text_valid(const char *text)
{
	size_t n = strlen(text);
	if (n == 0 || n > KM_RAW_TEXT_MAX)
		return false;
	for (const char *p = text; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return false;
	return true;
}

int km_raw_label_make(km_alg_t alg, const char *text, char *out, size_t outlen)
{
	int n;
	if (text != NULL)
		n = snprintf(out, outlen, KM_RAW_LABEL_PREFIX "%s:%s", km_alg_name(alg), text);
	else
		n = snprintf(out, outlen, KM_RAW_LABEL_PREFIX "%s", km_alg_name(alg));
	return n < 0 || (size_t)n >= outlen ? KM_ERANGE : KM_EOK;
}

int km_raw_label_alg(const char *label, km_alg_t *ret)
{
	char name[16];
	size_t plen = strlen(KM_RAW_LABEL_PREFIX);
	if (strncmp(label, KM_RAW_LABEL_PREFIX, plen) != 0)
		return KM_EALG;
	const char *a = label + plen;
	size_t n = strcspn(a, ":");
	if (n == 0 || n >= sizeof(name))
		return KM_EALG;
	memcpy(name, a, n);
	name[n] = '\0';
	return km_alg_from_name(name, ret);
}

static int by_kid(const void *a, const void *b)
{
	return strcmp(((const km_raw_key_t *)a)->kid, ((const km_raw_key_t *)b)->kid);
}

int km_raw_keys_list(km_token_t *t, km_raw_key_t **ret, size_t *count, size_t *skipped)
{
	km_token_key_info_t *infos = NULL;
	km_raw_key_t *keys = NULL;
	size_t n_infos = 0, n = 0, other = 0;
	int r;

	if ((r = km_token_list_keys(t, &infos, &n_infos)) < 0)
		return r;
	if (n_infos > 0 && (keys = calloc(n_infos, sizeof(*keys))) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n_infos; i++) {
		const km_token_key_info_t *ki = &infos[i];
		km_raw_key_t *k = &keys[n];
		if (!ki->keymgr_id)
			continue; /* foreign objects are none of our business */
		if (!ki->has_public || !ki->has_private ||
		    km_raw_label_alg(ki->label, &k->alg) < 0 || ki->id_len > sizeof(k->id)) {
			other++;
			continue;
		}
		memcpy(k->id, ki->id, ki->id_len);
		k->id_len = ki->id_len;
		snprintf(k->label, sizeof(k->label), "%s", ki->label);
		if ((r = km_token_get_public(t, k->id, k->id_len, &k->pub)) < 0)
			goto out;
		if (!km_jwk_alg_fits(&k->pub, k->alg) || km_jwk_thumbprint(&k->pub, k->kid) < 0) {
			other++;
			continue;
		}
		n++;
	}
	if (n > 1)
		qsort(keys, n, sizeof(*keys), by_kid);
	if (n == 0) {
		free(keys);
		keys = NULL;
	}
	*ret = keys;
	*count = n;
	if (skipped != NULL)
		*skipped = other;
	keys = NULL;
	r = KM_EOK;
out:
	free(keys);
	free(infos);
	return r;
}
