/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: one JWK (km_jwk_to_pubkey) and the strict base64url decoder.
 *
 * The whole input is decoded as base64url (the decoder must never write past the size
 * km_b64url_decode's contract allows, and an accepted string must re-encode to itself), then
 * parsed as JSON and read as a public JWK; an accepted key with an alg is exported again
 * (km_jwk_from_pubkey), which must give it a kid.
 * (The JWS/JWT target over keymgr/verify's parser is added once that lands.)
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/jose/jwk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_b64url(const uint8_t *data, size_t size)
{
	/* Exact-size heap buffers so ASan sees any overrun. */
	size_t cap = size * 3 / 4 + 1;
	uint8_t *out = malloc(cap);
	char *in = malloc(size ? size : 1);
	if (out == NULL || in == NULL)
		abort();
	memcpy(in, data, size);
	size_t out_len = cap;
	if (km_b64url_decode(in, size, out, &out_len) == KM_EOK) {
		if (out_len > cap)
			abort();
		char *enc = malloc(km_b64url_encoded_len(out_len) + 1);
		if (enc == NULL)
			abort();
		size_t n = km_b64url_encode(out, out_len, enc);
		/* Strict decoding: only the canonical text is accepted, so it round-trips. */
		if (n != size || memcmp(enc, in, size) != 0)
			abort();
		free(enc);
	}
	free(in);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_b64url(data, size);
	json_error_t jerr;
	json_t *jwk = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (jwk == NULL)
		return 0;
	km_pubkey_t pub;
	km_alg_t alg = KM_ALG_NONE;
	char kid[KM_KID_MAX + 1];
	char err[512] = "";
	int r = km_jwk_to_pubkey(jwk, &pub, &alg, kid, sizeof(kid), err, sizeof(err));
	if (r == KM_EOK && alg != KM_ALG_NONE) {
		json_t *back = NULL;
		if (km_jwk_from_pubkey(&pub, alg, &back) == KM_EOK) {
			const char *k2 = json_string_value(json_object_get(back, "kid"));
			if (k2 == NULL)
				abort();
			json_decref(back);
		}
	} else if (r != KM_EOK && err[0] == '\0') {
		abort();
	}
	json_decref(jwk);
	return 0;
}
