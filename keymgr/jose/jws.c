/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "keymgr/jose/ecdsa_s.h"
#include "keymgr/jose/jws.h"

/* Appends base64url(in) to buf at *pos; buf is large enough by construction. */
static void append_b64(char *buf, size_t *pos, const void *in, size_t len)
{
	*pos += km_b64url_encode(in, len, buf + *pos);
}

static json_t *make_header(const km_jws_signer_t *s)
{
	json_t *h = json_object();
	if (h == NULL)
		return NULL;
	if (json_object_set_new(h, "alg", json_string(km_alg_name(s->alg))) < 0 ||
	    json_object_set_new(h, "kid", json_string(s->kid)) < 0 ||
	    (s->typ != NULL && json_object_set_new(h, "typ", json_string(s->typ)) < 0)) {
		json_decref(h);
		return NULL;
	}
	return h;
}

int km_jws_header_b64(const km_jws_signer_t *signer, char **ret)
{
	json_t *header = NULL;
	char *hjson = NULL, *out = NULL;
	size_t hlen;

	if (km_alg_info(signer->alg) == NULL)
		return KM_EALG;
	if (signer->kid == NULL || signer->kid[0] == '\0')
		return KM_EINVAL;
	if ((header = make_header(signer)) == NULL ||
	    (hjson = json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		goto out;
	hlen = strlen(hjson);
	if ((out = malloc(km_b64url_encoded_len(hlen) + 1)) == NULL)
		goto out;
	km_b64url_encode((const uint8_t *)hjson, hlen, out);
	*ret = out;
out:
	free(hjson);
	json_decref(header);
	return out != NULL ? KM_EOK : KM_ENOMEM;
}

int km_jws_sign_encoded(const km_jws_signer_t *signer, const char *header_b64,
                        const char *payload, size_t len, char **ret)
{
	const km_alg_info_t *info = km_alg_info(signer->alg);
	char *out = NULL;
	uint8_t sig[KM_JWS_SIG_MAX];
	size_t sig_len = sizeof(sig), hlen, cap, pos;
	int r;

	if (info == NULL)
		return KM_EALG;
	if (header_b64 == NULL || payload == NULL || signer->sign == NULL)
		return KM_EINVAL;
	hlen = strlen(header_b64);
	cap = hlen + 1 + km_b64url_encoded_len(len) + 1 + km_b64url_encoded_len(KM_JWS_SIG_MAX) + 1;
	if ((out = malloc(cap)) == NULL)
		return KM_ENOMEM;
	memcpy(out, header_b64, hlen);
	pos = hlen;
	out[pos++] = '.';
	append_b64(out, &pos, payload, len);
	/* The signing input is everything so far: header "." payload. */
	if ((r = signer->sign(signer->sign_ctx, (const uint8_t *)out, pos, sig, &sig_len)) < 0)
		goto out;
	if (sig_len == 0 || sig_len > sizeof(sig) || (info->sig_len != 0 && sig_len != info->sig_len)) {
		r = KM_ECRYPTO;
		goto out;
	}
	/* One encoding per token: ECDSA's s in its low form (ecdsa_s.h). */
	km_ecdsa_normalize_s(signer->alg, sig, sig_len);
	out[pos++] = '.';
	append_b64(out, &pos, sig, sig_len);
	*ret = out;
	out = NULL;
	r = KM_EOK;
out:
	free(out);
	return r;
}

int km_jws_sign_claims(const km_jws_signer_t *signer, const json_t *claims, char **ret)
{
	char *header = NULL, *cjson = NULL;
	int r;

	if (km_alg_info(signer->alg) == NULL)
		return KM_EALG;
	if (!json_is_object(claims) || signer->kid == NULL || signer->kid[0] == '\0' ||
	    signer->sign == NULL)
		return KM_EINVAL;
	if ((r = km_jws_header_b64(signer, &header)) != KM_EOK)
		return r;
	r = KM_ENOMEM;
	if ((cjson = json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL)
		r = km_jws_sign_encoded(signer, header, cjson, strlen(cjson), ret);
	free(header);
	free(cjson);
	return r;
}

int km_jws_sign_text(const km_jws_signer_t *signer, const char *claims_json, char **ret,
                     char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *claims;
	int r;

	claims = json_loads(claims_json, JSON_REJECT_DUPLICATES, &jerr);
	if (claims == NULL) {
		if (err != NULL)
			snprintf(err, errlen, "claims are not valid JSON: %s (line %d, column %d)",
			         jerr.text, jerr.line, jerr.column);
		return KM_EMALFORMED;
	}
	if (!json_is_object(claims)) {
		if (err != NULL)
			snprintf(err, errlen, "claims must be a JSON object, not %s",
			         json_is_array(claims) ? "an array" : "a scalar");
		json_decref(claims);
		return KM_EMALFORMED;
	}
	r = km_jws_sign_claims(signer, claims, ret);
	json_decref(claims);
	return r;
}

/* Decodes one base64url part of a compact JWS into a JSON object. */
static int peek_part(const char *b64, size_t len, json_t **ret)
{
	uint8_t *raw = malloc(len * 3 / 4 + 1);
	size_t n = 0;
	if (raw == NULL)
		return KM_ENOMEM;
	int r = km_b64url_decode(b64, len, raw, &n);
	json_t *j = r == KM_EOK ? json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL)
	                        : NULL;
	free(raw);
	if (!json_is_object(j)) {
		json_decref(j);
		return KM_EMALFORMED;
	}
	*ret = j;
	return KM_EOK;
}

int km_jws_peek(const char *compact, json_t **header, json_t **claims)
{
	const char *dot1 = compact != NULL ? strchr(compact, '.') : NULL;
	const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
	json_t *h = NULL, *c = NULL;
	int r;
	if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL)
		return KM_EMALFORMED;
	if ((r = peek_part(compact, (size_t)(dot1 - compact), &h)) != KM_EOK ||
	    (r = peek_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), &c)) != KM_EOK) {
		json_decref(h);
		return r;
	}
	if (header != NULL)
		*header = h;
	else
		json_decref(h);
	if (claims != NULL)
		*claims = c;
	else
		json_decref(c);
	return KM_EOK;
}
