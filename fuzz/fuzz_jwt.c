/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: JWS/JWT parsing and checking in keymgr verify (km_verify_jwt) against a
 * fixed JWKS of three keys (ES256, EdDSA, RS256). The first input byte picks the pinned
 * algorithm; the rest is the compact token. Seeds are real tokens signed for this JWKS
 * (their private keys were discarded), so the fuzzer starts past the format checks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/jose/jwks.h"
#include "keymgr/verify/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char jwks[] = "{\"keys\":[{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"OM1TaWSmfLSA7ITmz1yy5awtw5IB5h2EHooW2klVBLw\",\"y\":\"I-7jKGFAgIFG0zDlICcrKAN8fpWdjmLi-dI7ZnurT1w\",\"kid\":\"QjoKUAipykGyUU1Yny0IbGvsETEFKtm4TeIiihSl7ys\",\"alg\":\"ES256\",\"use\":\"sig\"},{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"jR5mfoYUEeJaa6vHKsnDFjQapbDdLs3eQPY0O3jNn9I\",\"kid\":\"zD7RY--zdL4SWPkQb7HLMMMwlInHN464Ggz8uGSKWTs\",\"alg\":\"EdDSA\",\"use\":\"sig\"},{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"2DmTs0mU27Vf3onjv99dLxUy5vPo_OTI8pK7eRFxgeVLh1A7KzznHyY3VqFbi2wJJD5UleKQ9kDvUekXpEJCUeL6SbBi8qm3PAsdkY6OS-gNnYVQXW_cKfldogJ38DQF0263ti36PhJj6ZZWHZYBrml4rVsbPannCNhBBcdIY11-2tyIiK_Z30PiZ2qQoog4yoPSKBYbMKedKG6EzrJvFgMFTWiOwE2IG5JnE4QtvEMYbg2Y_twEREI--zwtgheT9d3xVhq6eSSgj7VtAYSVutDy2XS0hQU6XMk8HWDsgEpAkNzrSnCSpRmtJH5P-k5esXh2CRq6UWxTF9KIqN7bmw\",\"kid\":\"zoNWq3AdnTRM59sT2F43AM5neOTfZ10Ov_fwopHOMPk\",\"alg\":\"RS256\",\"use\":\"sig\"}]}";

static km_jwks_entry_t *keys;
static size_t n_keys;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (keys == NULL) {
		char err[256];
		if (km_jwks_parse(jwks, strlen(jwks), &keys, &n_keys, err, sizeof(err)) != KM_EOK)
			abort();
	}
	if (size < 1)
		return 0;
	static const km_alg_t pins[] = { KM_ALG_ES256, KM_ALG_EDDSA, KM_ALG_RS256, KM_ALG_PS256 };
	km_verify_opts_t o = {
		.alg = pins[data[0] % 4],
		.iss = "https://issuer.example",
		.aud = "api",
		.typ = "at+jwt",
		.leeway = 60,
		.now = 1700000000,
	};
	/* An exact-size copy without a terminator: the parser must honour len. */
	char *tok = malloc(size - 1 ? size - 1 : 1);
	if (tok == NULL)
		abort();
	memcpy(tok, data + 1, size - 1);
	json_t *claims = NULL;
	char err[512] = "";
	int r = km_verify_jwt(&o, tok, size - 1, keys, n_keys, &claims, err, sizeof(err));
	if (r == KM_EOK) {
		if (!json_is_object(claims))
			abort();
	} else if (err[0] == '\0' || claims != NULL) {
		abort(); /* a refusal names its check and hands out nothing */
	}
	json_decref(claims);
	free(tok);
	return 0;
}
