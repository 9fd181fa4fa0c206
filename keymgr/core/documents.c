/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/alg.h"
#include "keymgr/common/canon_json.h"
#include "keymgr/common/error.h"
#include "keymgr/common/url.h"
#include "keymgr/core/documents.h"
#include "keymgr/jose/jwks.h"
#include "keymgr/store/store.h"

static int fit(int n, size_t len)
{
	return n < 0 || (size_t)n >= len ? KM_ERANGE : KM_EOK;
}

int km_doc_path(const km_env_cfg_t *e, const char *keyset, km_doc_kind_t kind, char *buf,
                size_t len)
{
	if (kind == KM_DOC_JWKS && keyset == NULL)
		return fit(snprintf(buf, len, "%s/.well-known/jwks.json", e->http_path), len);
	if (keyset == NULL)
		return KM_EINVAL;
	if (kind == KM_DOC_JWKS)
		return fit(snprintf(buf, len, "%s/%s/jwks.json", e->http_path, keyset), len);
	return fit(snprintf(buf, len, "%s/%s/.well-known/openid-configuration", e->http_path,
	                    keyset), len);
}

int km_doc_jwks(const km_store_key_t *keys, size_t n, const char *keyset, char **ret,
                size_t *len, char *err, size_t errlen)
{
	km_jwks_t *jwks = NULL;
	int r = km_jwks_create(&jwks);
	for (size_t i = 0; r == KM_EOK && i < n; i++) {
		if (keyset != NULL && strcmp(keys[i].keyset, keyset) != 0)
			continue;
		r = km_jwks_add_stored(jwks, keys[i].jwk, keys[i].alg, keys[i].kid);
		if (r != KM_EOK)
			snprintf(err, errlen, "stored public key of %s does not match its kid: the "
			         "store may have been altered", keys[i].kid);
	}
	if (r == KM_EOK)
		r = km_jwks_render(jwks, ret, len);
	km_jwks_free(jwks);
	return r;
}

static unsigned clamp_age(int64_t age)
{
	return age > 0 && age < 86400 * 365 ? (unsigned)age : 1;
}

unsigned km_doc_max_age(const km_env_t *env, const char *keyset)
{
	km_policy_t p;
	if (km_env_keyset_policy(env, keyset, &p) != KM_EOK)
		p = km_env_cfg(env)->policy;
	return clamp_age(p.jwks_max_age);
}

unsigned km_doc_env_max_age(const km_env_t *env, const unsigned *ages, size_t n)
{
	unsigned age = 0;
	for (size_t i = 0; i < n; i++)
		if (age == 0 || ages[i] < age)
			age = ages[i];
	return age != 0 ? age : clamp_age(km_env_cfg(env)->policy.jwks_max_age);
}

int km_env_docs_render(void *ctx, const km_store_keyset_t *sets, size_t nsets,
                       const km_store_key_t *keys, size_t nkeys, km_store_doc_t **ret,
                       size_t *n, char *err, size_t errlen)
{
	const km_env_t *env = ctx;
	const km_env_cfg_t *e = km_env_cfg(env);
	km_store_doc_t *docs = calloc(nsets + 1, sizeof(*docs));
	unsigned *ages = calloc(nsets + 1, sizeof(*ages));
	int r = docs == NULL || ages == NULL ? KM_ENOMEM : KM_EOK;
	for (size_t i = 0; r == KM_EOK && i <= nsets; i++) {
		const char *ks = i < nsets ? sets[i].name : NULL;   /* last: the environment's */
		if ((r = km_doc_path(e, ks, KM_DOC_JWKS, docs[i].path, sizeof(docs[i].path))) !=
		    KM_EOK) {
			snprintf(err, errlen, "the JWKS path of %s/%s is too long", e->name,
			         ks ? ks : ".well-known");
			break;
		}
		r = km_doc_jwks(keys, nkeys, ks, &docs[i].body, &docs[i].len, err, errlen);
		docs[i].max_age = ks ? (ages[i] = km_doc_max_age(env, ks)) :
		                       km_doc_env_max_age(env, ages, nsets);
	}
	free(ages);
	if (r != KM_EOK) {
		km_store_docs_free(docs, nsets + 1);
		return r;
	}
	*ret = docs;
	*n = nsets + 1;
	return KM_EOK;
}

int km_discovery_document(km_env_t *env, const char *keyset, char **ret, size_t *len,
                          char *err, size_t errlen)
{
	*ret = NULL;
	const km_env_cfg_t *e = km_env_cfg(env);
	const km_keyset_cfg_t *kc = km_config_keyset(km_env_config(env), e->name, keyset);
	km_url_t url;
	char why[160], jwks[KM_DOC_PATH_MAX];
	if (kc == NULL || kc->issuer == NULL) {
		snprintf(err, errlen, "%s/%s has no issuer (environments.%s.keysets.%s.issuer)",
		         e->name, keyset, e->name, keyset);
		return KM_ENOENT;
	}
	if (km_url_parse(kc->issuer, &url, why, sizeof(why)) != KM_EOK) {
		snprintf(err, errlen, "%s/%s: its issuer is not a URL a discovery document can "
		         "name (%s)", e->name, keyset, why);
		return KM_ENOENT;
	}
	if (e->public_url == NULL) {
		snprintf(err, errlen, "environment %s has no http.public_url: the jwks_uri of a "
		         "discovery document needs it", e->name);
		return KM_ENOENT;
	}
	km_store_keyset_t ks;
	int r = km_store_keyset_get(km_env_store(env), keyset, &ks, err, errlen);
	if (r != KM_EOK)
		return r;
	if (km_doc_path(e, keyset, KM_DOC_JWKS, jwks, sizeof(jwks)) != KM_EOK) {
		snprintf(err, errlen, "%s/%s: the JWKS path is too long", e->name, keyset);
		return KM_ERANGE;
	}
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_key(&b, "id_token_signing_alg_values_supported");
	km_cjson_open(&b, '[');
	km_cjson_item_str(&b, km_alg_name(ks.alg));
	km_cjson_close(&b, ']');
	km_cjson_kv_str(&b, "issuer", kc->issuer);
	km_cjson_key(&b, "jwks_uri");
	char uri[KM_URL_MAX + KM_DOC_PATH_MAX];
	snprintf(uri, sizeof(uri), "%s%s", e->public_url, jwks);
	km_cjson_str(&b, uri);
	km_cjson_key(&b, "response_types_supported");
	km_cjson_open(&b, '[');
	km_cjson_item_str(&b, "id_token");
	km_cjson_close(&b, ']');
	km_cjson_key(&b, "subject_types_supported");
	km_cjson_open(&b, '[');
	km_cjson_item_str(&b, "public");
	km_cjson_close(&b, ']');
	km_cjson_close(&b, '}');
	char *text = km_cjson_take(&b);
	if (text == NULL)
		return KM_ENOMEM;
	*ret = text;
	if (len != NULL)
		*len = strlen(text);
	return KM_EOK;
}

int km_discovery_issuer_path(const char *issuer, char *buf, size_t len)
{
	km_url_t u;
	char why[160];
	if (km_url_parse(issuer, &u, why, sizeof(why)) != KM_EOK)
		return KM_EINVAL;
	return fit(snprintf(buf, len, "%s%s%s%s/.well-known/openid-configuration", u.host,
	                    u.port[0] ? ":" : "", u.port, u.path), len);
}
