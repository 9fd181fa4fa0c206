/* SPDX-License-Identifier: Apache-2.0 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/jose/jwk.h"
#include "keymgr/jose/jwks.h"

struct km_jwks {
	json_t *keys; /* array of JWK objects */
};

int km_jwks_create(km_jwks_t **ret)
{
	km_jwks_t *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return KM_ENOMEM;
	if ((j->keys = json_array()) == NULL) {
		free(j);
		return KM_ENOMEM;
	}
	*ret = j;
	return KM_EOK;
}

void km_jwks_free(km_jwks_t *jwks)
{
	if (jwks == NULL)
		return;
	json_decref(jwks->keys);
	free(jwks);
}

int km_jwks_add(km_jwks_t *jwks, const km_pubkey_t *pub, km_alg_t alg, char *kid_out)
{
	json_t *jwk = NULL;
	int r;

	if ((r = km_jwk_from_pubkey(pub, alg, &jwk)) < 0)
		return r;
	/* The array now owns jwk (also on failure, where jansson releases it). */
	if (json_array_append_new(jwks->keys, jwk) < 0)
		return KM_ENOMEM;
	if (kid_out != NULL)
		snprintf(kid_out, KM_JWK_THUMBPRINT_LEN + 1, "%s",
		         json_string_value(json_object_get(jwk, "kid")));
	return KM_EOK;
}

int km_jwks_add_stored(km_jwks_t *jwks, const char *jwk_text, km_alg_t alg, const char *kid)
{
	json_t *jwk = json_loads(jwk_text, 0, NULL);
	km_pubkey_t pub;
	km_alg_t ignored = KM_ALG_NONE;
	char got[KM_JWK_THUMBPRINT_LEN + 1];
	int r = jwk ? km_jwk_to_pubkey(jwk, &pub, &ignored, NULL, 0, NULL, 0) : KM_EMALFORMED;
	json_decref(jwk);
	if (r != KM_EOK)
		return r;
	/* thumbprint first: a mismatch leaves the set unchanged */
	if (km_jwk_thumbprint(&pub, got) != KM_EOK || strcmp(got, kid) != 0)
		return KM_EMALFORMED;
	return km_jwks_add(jwks, &pub, alg, NULL);
}

size_t km_jwks_count(const km_jwks_t *jwks)
{
	return json_array_size(jwks->keys);
}

int km_jwks_render(const km_jwks_t *jwks, char **ret, size_t *len)
{
	json_t *doc = json_object();
	char *s = NULL;
	int r = KM_ENOMEM;

	if (doc == NULL || json_object_set(doc, "keys", jwks->keys) < 0)
		goto out;
	/* Fixed member order (insertion order) and no white space: byte-stable output. */
	if ((s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		goto out;
	if (len != NULL)
		*len = strlen(s);
	*ret = s;
	r = KM_EOK;
out:
	json_decref(doc);
	return r;
}

int km_jwks_parse(const char *text, size_t len, km_jwks_entry_t **ret, size_t *count,
                  char *err, size_t errlen)
{
	char dummy[1];
	char kerr[160];
	json_error_t jerr;
	json_t *doc = NULL, *keys;
	km_jwks_entry_t *entries = NULL;
	size_t n = 0;
	int r = KM_EMALFORMED;

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		snprintf(err, errlen, "JWKS is not valid JSON: %s (line %d, column %d)", jerr.text,
		         jerr.line, jerr.column);
		goto out;
	}
	keys = json_object_get(doc, "keys");
	if (!json_is_object(doc) || !json_is_array(keys)) {
		snprintf(err, errlen, "JWKS has no \"keys\" array");
		goto out;
	}
	n = json_array_size(keys);
	if (n > 0 && (entries = calloc(n, sizeof(*entries))) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		km_jwks_entry_t *e = &entries[i];
		r = km_jwk_to_pubkey(json_array_get(keys, i), &e->pub, &e->alg, e->kid,
		                     sizeof(e->kid), kerr, sizeof(kerr));
		if (r < 0) {
			snprintf(err, errlen, "JWKS key %zu: %s", i, kerr);
			goto out;
		}
	}
	*ret = entries;
	*count = n;
	entries = NULL;
	r = KM_EOK;
out:
	free(entries);
	json_decref(doc);
	return r;
}
