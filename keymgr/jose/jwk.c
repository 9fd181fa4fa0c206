/* SPDX-License-Identifier: Apache-2.0 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "keymgr/jose/jwk.h"

const char *const km_jwk_private_members[] = {
	"d", "p", "q", "dp", "dq", "qi", "k", "oth", NULL,
};

/* Skips leading zero bytes (RSA n and e are minimal big-endian integers). */
static void strip_zeros(const uint8_t **p, size_t *len)
{
	while (*len > 1 && (*p)[0] == 0) {
		(*p)++;
		(*len)--;
	}
}

/* malloc'd base64url of in[0..len), or NULL on allocation failure. */
static char *b64(const uint8_t *in, size_t len)
{
	char *out = malloc(km_b64url_encoded_len(len) + 1);
	if (out != NULL)
		km_b64url_encode(in, len, out);
	return out;
}

/* Checks that pub is a complete key of a type keymgr knows. */
static int check_pubkey(const km_pubkey_t *pub)
{
	size_t w;
	switch (pub->kty) {
	case KM_KTY_RSA:
		if (pub->n_len == 0 || pub->n_len > KM_PUBKEY_MAX_N || pub->e_len == 0 ||
		    pub->e_len > KM_PUBKEY_MAX_E)
			return KM_EINVAL;
		return KM_EOK;
	case KM_KTY_EC:
		if (pub->crv != KM_CRV_P256 && pub->crv != KM_CRV_P384 && pub->crv != KM_CRV_P521)
			return KM_EINVAL;
		w = km_crv_field_len(pub->crv);
		return pub->x_len == w && pub->y_len == w ? KM_EOK : KM_EINVAL;
	case KM_KTY_OKP:
		if (pub->crv != KM_CRV_ED25519)
			return KM_EINVAL;
		return pub->x_len == km_crv_field_len(pub->crv) ? KM_EOK : KM_EINVAL;
	default:
		return KM_EINVAL;
	}
}

bool km_jwk_alg_fits(const km_pubkey_t *pub, km_alg_t alg)
{
	const km_alg_info_t *info = km_alg_info(alg);
	if (info == NULL || info->kty != pub->kty)
		return false;
	return info->kty == KM_KTY_RSA || info->crv == pub->crv;
}

/* The key members as base64url strings; any may be NULL when unused by the key type. */
struct members {
	char *n, *e, *x, *y;
};

static void members_free(struct members *m)
{
	free(m->n);
	free(m->e);
	free(m->x);
	free(m->y);
}

static int members_encode(const km_pubkey_t *pub, struct members *m)
{
	memset(m, 0, sizeof(*m));
	if (pub->kty == KM_KTY_RSA) {
		const uint8_t *n = pub->n, *e = pub->e;
		size_t n_len = pub->n_len, e_len = pub->e_len;
		strip_zeros(&n, &n_len);
		strip_zeros(&e, &e_len);
		m->n = b64(n, n_len);
		m->e = b64(e, e_len);
		if (m->n == NULL || m->e == NULL)
			goto nomem;
	} else {
		m->x = b64(pub->x, pub->x_len);
		if (m->x == NULL)
			goto nomem;
		if (pub->kty == KM_KTY_EC && (m->y = b64(pub->y, pub->y_len)) == NULL)
			goto nomem;
	}
	return KM_EOK;
nomem:
	members_free(m);
	return KM_ENOMEM;
}

int km_jwk_canonical(const km_pubkey_t *pub, char **ret)
{
	struct members m;
	char *s = NULL;
	int r, n = -1;

	if ((r = check_pubkey(pub)) < 0)
		return r;
	if ((r = members_encode(pub, &m)) < 0)
		return r;
	/* RFC 7638 section 3.2: required members only, sorted, no white space. */
	if (pub->kty == KM_KTY_RSA)
		n = asprintf(&s, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", m.e, m.n);
	else if (pub->kty == KM_KTY_EC)
		n = asprintf(&s, "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
		             km_crv_name(pub->crv), m.x, m.y);
	else
		n = asprintf(&s, "{\"crv\":\"%s\",\"kty\":\"OKP\",\"x\":\"%s\"}",
		             km_crv_name(pub->crv), m.x);
	members_free(&m);
	if (n < 0)
		return KM_ENOMEM;
	*ret = s;
	return KM_EOK;
}

int km_jwk_thumbprint(const km_pubkey_t *pub, char kid[KM_JWK_THUMBPRINT_LEN + 1])
{
	char *canon = NULL;
	uint8_t digest[32];
	unsigned int dlen = 0;
	int r;

	if ((r = km_jwk_canonical(pub, &canon)) < 0)
		return r;
	if (EVP_Digest(canon, strlen(canon), digest, &dlen, EVP_sha256(), NULL) != 1 ||
	    dlen != sizeof(digest)) {
		r = KM_ECRYPTO;
		goto out;
	}
	km_b64url_encode(digest, sizeof(digest), kid);
	r = KM_EOK;
out:
	free(canon);
	return r;
}

/* Sets key to a new string value; returns -1 on failure (jansson's convention). */
static int set_str(json_t *obj, const char *key, const char *value)
{
	return json_object_set_new(obj, key, json_string(value));
}

int km_jwk_from_pubkey(const km_pubkey_t *pub, km_alg_t alg, json_t **ret)
{
	struct members m = { 0 };
	char kid[KM_JWK_THUMBPRINT_LEN + 1];
	json_t *jwk = NULL;
	int r;

	if ((r = check_pubkey(pub)) < 0)
		return r;
	if (!km_jwk_alg_fits(pub, alg))
		return KM_EALG;
	if ((r = km_jwk_thumbprint(pub, kid)) < 0)
		return r;
	if ((r = members_encode(pub, &m)) < 0)
		return r;
	r = KM_ENOMEM;
	if ((jwk = json_object()) == NULL)
		goto out;
	/* Only public members are ever set here. */
	if (pub->kty == KM_KTY_RSA) {
		if (set_str(jwk, "kty", "RSA") < 0 || set_str(jwk, "n", m.n) < 0 ||
		    set_str(jwk, "e", m.e) < 0)
			goto out;
	} else if (pub->kty == KM_KTY_EC) {
		if (set_str(jwk, "kty", "EC") < 0 || set_str(jwk, "crv", km_crv_name(pub->crv)) < 0 ||
		    set_str(jwk, "x", m.x) < 0 || set_str(jwk, "y", m.y) < 0)
			goto out;
	} else {
		if (set_str(jwk, "kty", "OKP") < 0 ||
		    set_str(jwk, "crv", km_crv_name(pub->crv)) < 0 || set_str(jwk, "x", m.x) < 0)
			goto out;
	}
	if (set_str(jwk, "kid", kid) < 0 || set_str(jwk, "alg", km_alg_name(alg)) < 0 ||
	    set_str(jwk, "use", "sig") < 0)
		goto out;
	*ret = jwk;
	jwk = NULL;
	r = KM_EOK;
out:
	members_free(&m);
	json_decref(jwk);
	return r;
}

/*
 * Decodes the base64url string member name of jwk into out (cap bytes). With exact, the
 * decoded length must equal cap. Leading zeros are stripped when strip is set.
 */
static int get_bytes(const json_t *jwk, const char *name, uint8_t *out, size_t cap, bool exact,
                     bool strip, size_t *out_len, char *err, size_t errlen)
{
	const json_t *v = json_object_get(jwk, name);
	const char *s;
	size_t slen, len = 0;
	uint8_t *buf = NULL;
	int r = KM_EMALFORMED;

	if (!json_is_string(v)) {
		snprintf(err, errlen, "JWK member \"%s\" missing or not a string", name);
		return KM_EMALFORMED;
	}
	s = json_string_value(v);
	slen = json_string_length(v);
	/* Bound the work before decoding: cap bytes need at most 4*ceil(cap/3) characters,
	 * plus room for leading zeros we strip (a few bytes are plenty). */
	if (slen == 0 || slen > km_b64url_encoded_len(cap + 8)) {
		snprintf(err, errlen, "JWK member \"%s\" has a bad length", name);
		return KM_EMALFORMED;
	}
	if ((buf = malloc(slen * 3 / 4 + 1)) == NULL)
		return KM_ENOMEM;
	if (km_b64url_decode(s, slen, buf, &len) < 0) {
		snprintf(err, errlen, "JWK member \"%s\" is not valid base64url", name);
		goto out;
	}
	const uint8_t *p = buf;
	if (strip)
		strip_zeros(&p, &len);
	if (len == 0 || len > cap || (exact && len != cap)) {
		snprintf(err, errlen, "JWK member \"%s\" has a bad length", name);
		goto out;
	}
	memcpy(out, p, len);
	*out_len = len;
	r = KM_EOK;
out:
	free(buf);
	return r;
}

static int crv_from_name(const char *name, km_crv_t *ret)
{
	static const km_crv_t crvs[] = { KM_CRV_P256, KM_CRV_P384, KM_CRV_P521, KM_CRV_ED25519 };
	for (size_t i = 0; i < sizeof(crvs) / sizeof(crvs[0]); i++) {
		if (strcmp(km_crv_name(crvs[i]), name) == 0) {
			*ret = crvs[i];
			return KM_EOK;
		}
	}
	return KM_EALG;
}

static unsigned bit_length(const uint8_t *p, size_t len)
{
	if (len == 0)
		return 0;
	unsigned bits = (unsigned)(len - 1) * 8;
	for (uint8_t top = p[0]; top != 0; top >>= 1)
		bits++;
	return bits;
}

int km_jwk_to_pubkey(const json_t *jwk, km_pubkey_t *pub, km_alg_t *alg_out, char *kid_out,
                     size_t kid_len, char *err, size_t errlen)
{
	char dummy[1];
	km_pubkey_t k;
	km_alg_t alg = KM_ALG_NONE;
	const json_t *v;
	const char *kty;
	int r;

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (!json_is_object(jwk)) {
		snprintf(err, errlen, "JWK is not a JSON object");
		return KM_EMALFORMED;
	}
	for (size_t i = 0; km_jwk_private_members[i] != NULL; i++) {
		if (json_object_get(jwk, km_jwk_private_members[i]) != NULL) {
			snprintf(err, errlen, "JWK carries private member \"%s\"",
			         km_jwk_private_members[i]);
			return KM_EMALFORMED;
		}
	}
	v = json_object_get(jwk, "use");
	if (v != NULL && (!json_is_string(v) || strcmp(json_string_value(v), "sig") != 0)) {
		snprintf(err, errlen, "JWK \"use\" is not \"sig\"");
		return KM_EMALFORMED;
	}
	if (!json_is_string(v = json_object_get(jwk, "kty"))) {
		snprintf(err, errlen, "JWK member \"kty\" missing or not a string");
		return KM_EMALFORMED;
	}
	kty = json_string_value(v);
	memset(&k, 0, sizeof(k));
	if (strcmp(kty, "RSA") == 0) {
		k.kty = KM_KTY_RSA;
		if ((r = get_bytes(jwk, "n", k.n, sizeof(k.n), false, true, &k.n_len, err,
		                   errlen)) < 0 ||
		    (r = get_bytes(jwk, "e", k.e, sizeof(k.e), false, true, &k.e_len, err,
		                   errlen)) < 0)
			return r;
		k.rsa_bits = bit_length(k.n, k.n_len);
	} else if (strcmp(kty, "EC") == 0 || strcmp(kty, "OKP") == 0) {
		k.kty = kty[0] == 'E' ? KM_KTY_EC : KM_KTY_OKP;
		if (!json_is_string(v = json_object_get(jwk, "crv")) ||
		    crv_from_name(json_string_value(v), &k.crv) < 0 ||
		    (k.kty == KM_KTY_OKP) != (k.crv == KM_CRV_ED25519)) {
			snprintf(err, errlen, "JWK \"crv\" missing or unsupported for kty %s", kty);
			return KM_EALG;
		}
		size_t w = km_crv_field_len(k.crv);
		if ((r = get_bytes(jwk, "x", k.x, w, true, false, &k.x_len, err, errlen)) < 0)
			return r;
		if (k.kty == KM_KTY_EC &&
		    (r = get_bytes(jwk, "y", k.y, w, true, false, &k.y_len, err, errlen)) < 0)
			return r;
	} else {
		snprintf(err, errlen, "JWK kty \"%.16s\" is not supported", kty);
		return KM_EALG;
	}
	if ((v = json_object_get(jwk, "alg")) != NULL) {
		if (!json_is_string(v) || km_alg_from_name(json_string_value(v), &alg) < 0) {
			snprintf(err, errlen, "JWK \"alg\" is not a supported algorithm");
			return KM_EALG;
		}
		if (!km_jwk_alg_fits(&k, alg)) {
			snprintf(err, errlen, "JWK \"alg\" %s does not fit the key", km_alg_name(alg));
			return KM_EALG;
		}
	}
	v = json_object_get(jwk, "kid");
	if (v != NULL && (!json_is_string(v) || json_string_length(v) == 0)) {
		snprintf(err, errlen, "JWK \"kid\" is not a non-empty string");
		return KM_EMALFORMED;
	}
	if (kid_out != NULL && kid_len > 0) {
		if (v != NULL && json_string_length(v) >= kid_len) {
			snprintf(err, errlen, "JWK \"kid\" is too long");
			return KM_EMALFORMED;
		}
		snprintf(kid_out, kid_len, "%s", v != NULL ? json_string_value(v) : "");
	}
	if (alg_out != NULL)
		*alg_out = alg;
	*pub = k;
	return KM_EOK;
}
