/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What an environment publishes, and where (documents.c): the paths of its documents below
 * its http.path, which keymgrd serves and `keymgr publish --to` lays out as files, and the
 * OpenID Connect discovery document of each key set that has an issuer (docs/discovery.md).
 *
 *   /ENV/.well-known/jwks.json                      every key of the environment
 *   /ENV/KEYSET/jwks.json                           the keys of one key set
 *   /ENV/KEYSET/.well-known/openid-configuration    its discovery document
 *
 * A discovery document (OpenID Connect Discovery 1.0, section 3, as Kubernetes serves one for
 * its service-account issuer) names the key set's issuer, its JWKS at the environment's
 * http.public_url, and its algorithm:
 *   {"id_token_signing_alg_values_supported":["ES256"],"issuer":"https://...",
 *    "jwks_uri":"https://keys.example.com/production/api/jwks.json",
 *    "response_types_supported":["id_token"],"subject_types_supported":["public"]}
 * in canonical JSON, so the same key set always gives the same bytes.
 *
 * The JWKS documents are rendered here too, for keymgrd's publisher and for the store, which
 * writes a shared store's documents inside the change's own transaction (docs/ha.md).
 */
#pragma once

#include <stddef.h>

#include "keymgr/config/config.h"
#include "keymgr/core/env.h"
#include "keymgr/store/store.h"

#define KM_DOC_PATH_MAX 384

typedef enum {
	KM_DOC_JWKS,        /* keyset NULL: the environment's JWKS */
	KM_DOC_DISCOVERY,   /* a key set's discovery document */
} km_doc_kind_t;

/* The path of a document (see above). KM_EOK, KM_EINVAL (DISCOVERY without a key set),
 * KM_ERANGE (too long for len). */
int km_doc_path(const km_env_cfg_t *e, const char *keyset, km_doc_kind_t kind, char *buf,
                size_t len);

/*
 * The JWKS of keys (keyset NULL: all of them; else those of that key set), in their order:
 * each key's public JWK from the store, checked against its kid (km_jwks_add_stored). *ret
 * is malloc'd, *len optional. KM_EOK, or km_jwks_add_stored()'s code with err naming the key
 * (the store may have been altered), KM_ENOMEM.
 */
int km_doc_jwks(const km_store_key_t *keys, size_t n, const char *keyset, char **ret,
                size_t *len, char *err, size_t errlen);

/*
 * The max-age (seconds) a document is served with: a key set's JWKS takes its policy's
 * jwks_max_age; the environment's JWKS the smallest of its key sets' (ages, n of them), or
 * the environment policy's when it has none. Out of range (0, a year or more): 1.
 */
unsigned km_doc_max_age(const km_env_t *env, const char *keyset);
unsigned km_doc_env_max_age(const km_env_t *env, const unsigned *ages, size_t n);

/*
 * The environment's renderer of its store's documents (km_store_docs_render_fn, installed
 * by km_env_open; ctx is the km_env_t): every key set's JWKS and the environment's, at
 * their paths, with their max-age, as keymgrd's publisher renders them, so that the bytes a
 * change's transaction writes are the ones every node serves.
 */
int km_env_docs_render(void *ctx, const km_store_keyset_t *sets, size_t nsets,
                       const km_store_key_t *keys, size_t nkeys, km_store_doc_t **ret,
                       size_t *n, char *err, size_t errlen);

/*
 * The discovery document of key set keyset, into *ret (malloc'd) and *len. KM_EOK;
 * KM_ENOENT when the key set has none, with why in err: no issuer, an issuer that is not an
 * https URL (OIDC compares it byte for byte with the token's iss), or no http.public_url in
 * the environment; the store's codes (its algorithm is read there), KM_ENOMEM.
 */
int km_discovery_document(km_env_t *env, const char *keyset, char **ret, size_t *len,
                          char *err, size_t errlen);

/*
 * Where a client looks for the discovery document of issuer (Discovery 1.0, section 4: the
 * issuer + "/.well-known/openid-configuration"), as a relative path "HOST[:PORT]/PATH/..."
 * for a static tree laid out by issuer. KM_EOK, KM_EINVAL (not an https URL), KM_ERANGE.
 */
int km_discovery_issuer_path(const char *issuer, char *buf, size_t len);
