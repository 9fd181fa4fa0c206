/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The forgeries: tokens no key of any environment signed. Each is what a known verifier
 * mistake would accept (docs/probe.md lists them): no signature, an HMAC keyed with what is
 * public, a key the token brings along or points to, a kid that reaches a file or a query,
 * the right kid with another key, ECDSA values that verify anything on a broken library.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "keymgr/jose/jws.h"
#include "keymgr/probe/probe_int.h"

/* BASE64URL(header) "." BASE64URL(payload), malloc'd with room for "." and a signature. */
static char *signing_input(const json_t *header, const char *payload, size_t *len)
{
	char *h = json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER);
	size_t hl = h != NULL ? strlen(h) : 0, pl = strlen(payload);
	char *out = h != NULL ? malloc(km_b64url_encoded_len(hl) + km_b64url_encoded_len(pl) +
	                               km_b64url_encoded_len(KM_JWS_SIG_MAX + 1) + 3) : NULL;
	if (out != NULL) {
		size_t n = km_b64url_encode((const uint8_t *)h, hl, out);
		out[n++] = '.';
		n += km_b64url_encode((const uint8_t *)payload, pl, out + n);
		out[n] = '\0';
		*len = n;
	}
	free(h);
	return out;
}

static void append_sig(char *input, size_t len, const uint8_t *sig, size_t sig_len)
{
	input[len++] = '.';
	input[len + km_b64url_encode(sig, sig_len, input + len)] = '\0';
}

/* How a forgery is signed. */
typedef enum { SIG_NONE, SIG_HMAC, SIG_KEY, SIG_FIXED } sig_kind_t;

typedef struct {
	sig_kind_t kind;
	const void *hmac_key;
	size_t hmac_len;
	const probe_key_t *key;
	km_alg_t key_alg;
	uint8_t fixed[2 * 66];
	size_t fixed_len;
} how_t;

static int sign_and_join(const json_t *header, const char *payload, const how_t *how,
                         char **ret)
{
	uint8_t sig[KM_JWS_SIG_MAX];
	size_t len = 0, sig_len = 0;
	char *input = signing_input(header, payload, &len);
	int r = KM_EOK;
	if (input == NULL)
		return KM_ENOMEM;
	if (how->kind == SIG_HMAC) {
		r = probe_hs256(how->hmac_key, how->hmac_len, (const uint8_t *)input, len, sig);
		sig_len = 32;
	} else if (how->kind == SIG_KEY) {
		r = probe_key_sign(how->key, how->key_alg, (const uint8_t *)input, len, sig, &sig_len);
	} else if (how->kind == SIG_FIXED) {
		memcpy(sig, how->fixed, how->fixed_len);
		sig_len = how->fixed_len;
	}
	if (r != KM_EOK) {
		free(input);
		return r;
	}
	append_sig(input, len, sig, sig_len);
	*ret = input;
	return KM_EOK;
}

/* RS256 <-> PS256 and so on: the other RSA padding with the same hash. */
static km_alg_t rsa_swap(km_alg_t alg)
{
	switch (alg) {
	case KM_ALG_RS256: return KM_ALG_PS256;
	case KM_ALG_RS384: return KM_ALG_PS384;
	case KM_ALG_RS512: return KM_ALG_PS512;
	case KM_ALG_PS256: return KM_ALG_RS256;
	case KM_ALG_PS384: return KM_ALG_RS384;
	case KM_ALG_PS512: return KM_ALG_RS512;
	default: return KM_ALG_NONE;
	}
}

/* ECDSA r||s at the field width of alg's curve: r and s each 0 or 1. */
static int ecdsa_fixed(km_alg_t alg, int r, int s, how_t *how)
{
	const km_alg_info_t *ai = km_alg_info(alg);
	if (ai == NULL || ai->kty != KM_KTY_EC)
		return KM_EINVAL;
	size_t w = km_crv_field_len(ai->crv);
	memset(how->fixed, 0, 2 * w);
	how->fixed[w - 1] = (uint8_t)r;
	how->fixed[2 * w - 1] = (uint8_t)s;
	how->fixed_len = 2 * w;
	how->kind = SIG_FIXED;
	return KM_EOK;
}

/* The header and signer of forgery id. */
static int plan(const probe_forge_t *f, probe_id_t id, json_t *h, how_t *how)
{
	const char *alg = km_alg_name(f->alg), *own_kid = json_string_value(
		json_object_get(f->same_jwk, "kid"));
	char kid[512];
	int bad = 0;
	how->kind = SIG_KEY;
	how->key = f->same;
	how->key_alg = f->alg;
	switch (id) {
	case PROBE_ALG_NONE:
		alg = "none";
		how->kind = SIG_NONE;
		break;
	case PROBE_HS_PEM:
	case PROBE_HS_JWK:
		alg = "HS256";
		how->kind = SIG_HMAC;
		how->hmac_key = id == PROBE_HS_PEM ? f->public_pem : f->public_jwk;
		how->hmac_len = strlen(how->hmac_key);
		break;
	case PROBE_WRONG_KEY:
		break;
	case PROBE_JKU:
	case PROBE_X5U:
	case PROBE_JWK:
		bad |= json_object_set_new(h, "kid", json_string(own_kid));
		bad |= id == PROBE_JKU ? json_object_set_new(h, "jku", json_string(f->jku_url)) :
		       id == PROBE_X5U ? json_object_set_new(h, "x5u", json_string(f->x5u_url)) :
		       json_object_set(h, "jwk", (json_t *)f->same_jwk);
		break;
	case PROBE_KID_PATH:
	case PROBE_KID_SQL:
		alg = "HS256";
		how->kind = SIG_HMAC;
		how->hmac_key = id == PROBE_KID_PATH ? "" : KM_PROBE_KID_SQL_SECRET;
		how->hmac_len = strlen(how->hmac_key);
		bad |= json_object_set_new(h, "kid", json_string(id == PROBE_KID_PATH ?
		                                                 KM_PROBE_KID_PATH : KM_PROBE_KID_SQL));
		break;
	case PROBE_KID_HEADER:
		snprintf(kid, sizeof(kid), "%s%s", f->kid, KM_PROBE_KID_HEADER_TAIL);
		bad |= json_object_set_new(h, "kid", json_string(kid));
		break;
	case PROBE_ECDSA_R0:
	case PROBE_ECDSA_S0:
	case PROBE_ECDSA_ZERO:
		if (ecdsa_fixed(f->alg, id == PROBE_ECDSA_S0, id == PROBE_ECDSA_R0, how) != KM_EOK)
			return KM_EINVAL;
		break;
	case PROBE_RSA_SWAP:
		if (f->rsa == NULL || rsa_swap(f->alg) == KM_ALG_NONE)
			return KM_EINVAL;
		how->key = f->rsa;
		how->key_alg = rsa_swap(f->alg);
		alg = km_alg_name(how->key_alg);
		break;
	default:
		return KM_EINVAL;
	}
	bad |= json_object_set_new(h, "alg", json_string(alg));
	return bad ? KM_ENOMEM : KM_EOK;
}

int probe_forge(const probe_forge_t *f, probe_id_t id, const char *payload, char **ret)
{
	how_t how;
	/* alg first, then kid and typ, as keymgr's own header; the member added last. */
	json_t *h = json_pack("{s:s, s:s, s:s}", "alg", "", "kid", f->kid, "typ", f->typ);
	int r = h != NULL ? plan(f, id, h, &how) : KM_ENOMEM;
	if (r == KM_EOK)
		r = sign_and_join(h, payload, &how, ret);
	json_decref(h);
	return r;
}
