/* SPDX-License-Identifier: Apache-2.0 */
/* km_verify_jwt: the strict checks of keymgr verify, in the order verify.h lists them. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "keymgr/jose/ecdsa_s.h"
#include "keymgr/common/b64url.h"
#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/common/sigverify.h"
#include "keymgr/verify/verify.h"
#include "policy/policy.h"

/* Header members that would let the token choose its own key: never followed. */
static const char *const refused_members[] = { "jku", "x5u", "x5c", "jwk", NULL };

typedef struct {
	const char *seg[3];
	size_t seg_len[3];
	uint8_t *raw[3];
	size_t raw_len[3];
} parts_t;

static void parts_free(parts_t *p)
{
	for (int i = 0; i < 3; i++)
		free(p->raw[i]);
}

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

static int split(const char *token, size_t len, parts_t *p, char *err, size_t errlen)
{
	static const char *const names[] = { "header", "payload", "signature" };
	const char *start = token, *end = token + len;
	int n = 0;

	if (len == 0 || len > KM_VERIFY_TOKEN_MAX)
		return fail(KM_EMALFORMED, err, errlen, "format: token length %zu is out of range "
		            "(1 to %d bytes)", len, KM_VERIFY_TOKEN_MAX);
	for (const char *c = token; c <= end; c++) {
		if (c < end && *c != '.')
			continue;
		if (n == 3)
			return fail(KM_EMALFORMED, err, errlen, "format: more than three segments "
			            "(a JWE or garbage, not a compact JWS)");
		p->seg[n] = start;
		p->seg_len[n] = (size_t)(c - start);
		n++;
		start = c + 1;
	}
	if (n != 3)
		return fail(KM_EMALFORMED, err, errlen, "format: %d segment%s, expected "
		            "header.payload.signature (truncated token?)", n, n == 1 ? "" : "s");
	for (int i = 0; i < 3; i++) {
		if (i < 2 && p->seg_len[i] == 0)
			return fail(KM_EMALFORMED, err, errlen, "format: empty %s", names[i]);
		if ((p->raw[i] = malloc(p->seg_len[i] * 3 / 4 + 1)) == NULL)
			return KM_ENOMEM;
		if (km_b64url_decode(p->seg[i], p->seg_len[i], p->raw[i], &p->raw_len[i]) != KM_EOK)
			return fail(KM_EMALFORMED, err, errlen, "format: %s is not strict base64url "
			            "(no padding, URL-safe alphabet, canonical)", names[i]);
	}
	return KM_EOK;
}

static int load_object(const char *what, const uint8_t *raw, size_t len, json_t **ret,
                       char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		return fail(KM_EMALFORMED, err, errlen, "%s: not valid JSON: %s", what, jerr.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return fail(KM_EMALFORMED, err, errlen, "%s: not a JSON object", what);
	}
	*ret = j;
	return KM_EOK;
}

/* Media type comparison (RFC 7515 4.1.9): case-insensitive, "application/" optional. */
static const char *typ_core(const char *t)
{
	return strncasecmp(t, "application/", 12) == 0 ? t + 12 : t;
}

static int check_alg(const km_verify_opts_t *o, const json_t *hdr, char *err, size_t errlen)
{
	const json_t *v = json_object_get(hdr, "alg");
	km_alg_t alg;
	if (!json_is_string(v))
		return fail(KM_EALG, err, errlen, "alg: missing or not a string");
	const char *a = json_string_value(v);
	if (strcasecmp(a, "none") == 0)
		return fail(KM_EALG, err, errlen, "alg: '%.16s' is refused: unsigned tokens are "
		            "never accepted", a);
	if (strncasecmp(a, "HS", 2) == 0)
		return fail(KM_EALG, err, errlen, "alg: HMAC algorithm '%.16s' is refused: only "
		            "the pinned public-key algorithm %s is accepted", a, km_alg_name(o->alg));
	if (km_alg_from_name(a, &alg) != KM_EOK || alg != o->alg)
		return fail(KM_EALG, err, errlen, "alg: '%.16s' does not match the pinned %s", a,
		            km_alg_name(o->alg));
	return KM_EOK;
}

static int check_header(const km_verify_opts_t *o, const json_t *hdr, const char **kid,
                        char *err, size_t errlen)
{
	const json_t *v;
	int r;
	if ((r = check_alg(o, hdr, err, errlen)) != KM_EOK)
		return r;
	for (size_t i = 0; refused_members[i] != NULL; i++)
		if (json_object_get(hdr, refused_members[i]) != NULL)
			return fail(KM_POLICY_EDENIED, err, errlen, "header: '%s' is refused: keys "
			            "come from the caller's JWKS, never from the token",
			            refused_members[i]);
	if (json_object_get(hdr, "crit") != NULL)
		return fail(KM_POLICY_EDENIED, err, errlen, "crit: refused: this verifier "
		            "understands no JWS extension");
	if (json_object_get(hdr, "b64") != NULL || json_object_get(hdr, "zip") != NULL)
		return fail(KM_POLICY_EDENIED, err, errlen, "header: '%s' is refused",
		            json_object_get(hdr, "b64") != NULL ? "b64" : "zip");
	v = json_object_get(hdr, "typ");
	if (!json_is_string(v))
		return fail(KM_POLICY_EDENIED, err, errlen, "typ: missing, expected %s", o->typ);
	if (strcasecmp(typ_core(json_string_value(v)), typ_core(o->typ)) != 0)
		return fail(KM_POLICY_EDENIED, err, errlen, "typ: '%.64s' is not the expected %s",
		            json_string_value(v), o->typ);
	v = json_object_get(hdr, "kid");
	if (v == NULL)
		return fail(KM_POLICY_EDENIED, err, errlen, "kid: missing");
	if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)) ||
	    !km_name_kid_valid(json_string_value(v)))
		return fail(KM_POLICY_EDENIED, err, errlen, "kid: not an opaque short string (1 to "
		            "%d base64url characters); not looked up", KM_KID_MAX);
	*kid = json_string_value(v);
	return KM_EOK;
}

static int find_key(const km_verify_opts_t *o, const char *kid, const km_jwks_entry_t *keys,
                    size_t n, const km_jwks_entry_t **ret, char *err, size_t errlen)
{
	const km_jwks_entry_t *found = NULL;
	size_t matches = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].kid, kid) == 0) {
			found = &keys[i];
			matches++;
		}
	}
	if (matches == 0)
		return fail(KM_ENOENT, err, errlen, "kid: '%s' is not in the JWKS", kid);
	if (matches > 1)
		return fail(KM_POLICY_EDENIED, err, errlen, "kid: '%s' names %zu keys in the JWKS",
		            kid, matches);
	if (found->alg != KM_ALG_NONE && found->alg != o->alg)
		return fail(KM_EALG, err, errlen, "key: the JWK of kid '%s' is for %s, not the "
		            "pinned %s", kid, km_alg_name(found->alg), km_alg_name(o->alg));
	*ret = found;
	return KM_EOK;
}

static const char *iso(double t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!(t >= 0 && t < 253402300800.0) || gmtime_r(&tt, &tm) == NULL)
		snprintf(buf, len, "%.0f", t);
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static int get_time(const json_t *claims, const char *name, bool required, double *ret,
                    char *err, size_t errlen)
{
	const json_t *v = json_object_get(claims, name);
	if (v == NULL && !required)
		return 1;
	if (v == NULL)
		return fail(KM_POLICY_EDENIED, err, errlen, "%s: missing", name);
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		return fail(KM_POLICY_EDENIED, err, errlen, "%s: not a NumericDate", name);
	*ret = json_number_value(v);
	return KM_EOK;
}

static int check_aud(const km_verify_opts_t *o, const json_t *aud, char *err, size_t errlen)
{
	size_t i;
	json_t *v;
	if (json_is_string(aud) && strcmp(json_string_value(aud), o->aud) == 0)
		return KM_EOK;
	if (json_is_array(aud)) {
		json_array_foreach(aud, i, v) {
			if (!json_is_string(v))
				return fail(KM_POLICY_EDENIED, err, errlen, "aud: array member %zu is "
				            "not a string", i);
			if (strcmp(json_string_value(v), o->aud) == 0)
				return KM_EOK;
		}
	}
	if (aud == NULL)
		return fail(KM_POLICY_EDENIED, err, errlen, "aud: missing, expected %s", o->aud);
	return fail(KM_POLICY_EDENIED, err, errlen, "aud: the token is not for %s", o->aud);
}

static int check_claims(const km_verify_opts_t *o, const json_t *c, char *err, size_t errlen)
{
	char a[32], b[32], lw[32];
	const json_t *iss = json_object_get(c, "iss");
	double exp = 0, nbf = 0, iat = 0, now = (double)o->now, leeway = (double)o->leeway;
	int r;

	if (!json_is_string(iss) || strcmp(json_string_value(iss), o->iss) != 0)
		return fail(KM_POLICY_EDENIED, err, errlen, "iss: %s, expected %s",
		            iss == NULL ? "missing" : "another issuer", o->iss);
	if ((r = check_aud(o, json_object_get(c, "aud"), err, errlen)) != KM_EOK)
		return r;
	km_duration_format(o->leeway, lw, sizeof(lw));
	if ((r = get_time(c, "exp", true, &exp, err, errlen)) < 0)
		return r;
	if (now >= exp + leeway)
		return fail(KM_POLICY_EDENIED, err, errlen, "exp: expired at %s (now %s, leeway %s)",
		            iso(exp, a, sizeof(a)), iso(now, b, sizeof(b)), lw);
	if ((r = get_time(c, "nbf", false, &nbf, err, errlen)) < 0)
		return r;
	if (r == KM_EOK && now + leeway < nbf)
		return fail(KM_POLICY_EDENIED, err, errlen, "nbf: not valid before %s (now %s, "
		            "leeway %s)", iso(nbf, a, sizeof(a)), iso(now, b, sizeof(b)), lw);
	if ((r = get_time(c, "iat", false, &iat, err, errlen)) < 0)
		return r;
	if (r == KM_EOK && iat > now + leeway)
		return fail(KM_POLICY_EDENIED, err, errlen, "iat: issued in the future at %s (now "
		            "%s, leeway %s)", iso(iat, a, sizeof(a)), iso(now, b, sizeof(b)), lw);
	/* A lifetime the issuer's policy never gives: a token minted outside it (or with its
	 * iat set back to look fresh for longer than allowed). */
	if (o->max_ttl > 0 && r != KM_EOK)
		return fail(KM_POLICY_EDENIED, err, errlen, "iat: missing, and --max-ttl needs it");
	if (o->max_ttl > 0 && exp - iat > (double)o->max_ttl)
		return fail(KM_POLICY_EDENIED, err, errlen, "lifetime: exp - iat is %.0f s, more "
		            "than the %lld s allowed", exp - iat, (long long)o->max_ttl);
	return KM_EOK;
}

int km_verify_jwt(const km_verify_opts_t *opts, const char *token, size_t len,
                  const km_jwks_entry_t *keys, size_t n, json_t **claims, char *err,
                  size_t errlen)
{
	char dummy[1];
	parts_t p;
	json_t *hdr = NULL, *payload = NULL;
	const km_jwks_entry_t *key = NULL;
	const char *kid = NULL;
	int r;

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (opts == NULL || token == NULL || opts->alg == KM_ALG_NONE || opts->iss == NULL ||
	    opts->aud == NULL || opts->typ == NULL || opts->leeway < 0 ||
	    opts->leeway > KM_VERIFY_LEEWAY_MAX || (keys == NULL && n > 0))
		return KM_EINVAL;
	memset(&p, 0, sizeof(p));
	if ((r = split(token, len, &p, err, errlen)) != KM_EOK ||
	    (r = load_object("header", p.raw[0], p.raw_len[0], &hdr, err, errlen)) != KM_EOK ||
	    (r = check_header(opts, hdr, &kid, err, errlen)) != KM_EOK ||
	    (r = find_key(opts, kid, keys, n, &key, err, errlen)) != KM_EOK)
		goto out;
	const km_alg_info_t *ai = km_alg_info(opts->alg);
	size_t want = ai->kty == KM_KTY_RSA ? key->pub.n_len : ai->sig_len;
	if (key->pub.kty == ai->kty && p.raw_len[2] != want) {
		r = fail(KM_ECRYPTO, err, errlen, "signature: %zu bytes, expected %zu for %s",
		         p.raw_len[2], want, km_alg_name(opts->alg));
		goto out;
	}
	if (opts->low_s && !km_ecdsa_is_low_s(opts->alg, p.raw[2], p.raw_len[2])) {
		r = fail(KM_ECRYPTO, err, errlen, "signature: its ECDSA s is in the high half of the "
		         "curve order (a second encoding of some signature, refused by --low-s)");
		goto out;
	}
	/* The signing input is the two encoded segments as they appear in the token. */
	r = km_verify_signature(&key->pub, opts->alg, (const uint8_t *)token,
	                        p.seg_len[0] + 1 + p.seg_len[1], p.raw[2], p.raw_len[2]);
	if (r == KM_EKEYSIZE) {
		fail(r, err, errlen, "key: the RSA key of kid '%s' has %u bits, fewer than %d",
		     kid, key->pub.rsa_bits, KM_RSA_MIN_BITS);
		goto out;
	}
	if (r == KM_EALG) {
		fail(r, err, errlen, "key: the JWK of kid '%s' cannot verify %s", kid,
		     km_alg_name(opts->alg));
		goto out;
	}
	if (r != KM_EOK) {
		fail(r, err, errlen, "signature: does not verify with the key of kid '%s'", kid);
		goto out;
	}
	if ((r = load_object("payload", p.raw[1], p.raw_len[1], &payload, err, errlen)) != KM_EOK ||
	    (r = check_claims(opts, payload, err, errlen)) != KM_EOK)
		goto out;
	if (claims != NULL) {
		*claims = payload;
		payload = NULL;
	}
	r = KM_EOK;
out:
	json_decref(payload);
	json_decref(hdr);
	parts_free(&p);
	return r;
}
