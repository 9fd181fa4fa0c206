/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: km_jwks_parse() on arbitrary bytes. Every key it accepts is rendered back
 * into a JWKS (km_jwks_add) and that rendering must parse again to the same kids.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/jose/jwks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	km_jwks_entry_t *keys = NULL;
	size_t n = 0;
	char err[512] = "";
	int r = km_jwks_parse((const char *)data, size, &keys, &n, err, sizeof(err));
	if (r != KM_EOK) {
		if (err[0] == '\0')
			abort(); /* a refusal always says why */
		return 0;
	}
	/* Round trip: what was accepted renders and parses again, kid for kid. */
	km_jwks_t *set = NULL;
	if (km_jwks_create(&set) != KM_EOK)
		abort();
	size_t added = 0;
	char (*kids)[KM_KID_MAX + 1] = calloc(n ? n : 1, KM_KID_MAX + 1);
	if (kids == NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (keys[i].alg == KM_ALG_NONE)
			continue;
		if (km_jwks_add(set, &keys[i].pub, keys[i].alg, kids[added]) == KM_EOK)
			added++;
	}
	char *text = NULL;
	size_t len = 0;
	if (km_jwks_render(set, &text, &len) != KM_EOK)
		abort();
	km_jwks_entry_t *again = NULL;
	size_t m = 0;
	if (km_jwks_parse(text, len, &again, &m, err, sizeof(err)) != KM_EOK || m != added)
		abort();
	for (size_t i = 0; i < m; i++)
		if (strcmp(again[i].kid, kids[i]) != 0)
			abort();
	free(again);
	free(text);
	free(kids);
	km_jwks_free(set);
	free(keys);
	return 0;
}
