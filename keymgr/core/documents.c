/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/alg.h"
#include "keymgr/common/canon_json.h"
#include "keymgr/common/error.h"
#include "keymgr/common/url.h"
#include "keymgr/core/documents.h"
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
