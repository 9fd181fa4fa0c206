/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A static copy of what an environment publishes (static_tree.c; docs/static-hosting.md),
 * for a web server or an object store to serve as it is:
 *
 *   DIR/manifest.json                       what is there: serial, and per file its path,
 *                                           ETag (as keymgrd's) and size; written last
 *   DIR/ENV/.well-known/jwks.json           the documents at keymgrd's paths (http.path):
 *   DIR/ENV/KEYSET/jwks.json                serve DIR at the environment's http.public_url
 *   DIR/ENV/KEYSET/.well-known/openid-configuration
 *   DIR/issuers/HOST[:PORT]/PATH/.well-known/openid-configuration
 *                                           each discovery document where OIDC clients look
 *                                           for it (the issuer URL + /.well-known/...):
 *                                           serve DIR/issuers/HOST at the issuer's host
 *
 * Each file is replaced atomically (readers see the old or the new one); files the previous
 * manifest listed that are no longer published are removed; nothing else in DIR is touched.
 * `keymgr publish ENV --to DIR` writes it once; keymgrd writes http.static_dir after every
 * change it publishes.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keymgr/core/env.h"

typedef struct {
	int64_t serial;        /* of the environment's JWKS written */
	size_t written;        /* files whose bytes changed (or were new) */
	size_t unchanged;      /* files already holding those bytes */
	size_t removed;        /* files of the previous manifest no longer published */
	size_t discovery;      /* key sets with a discovery document */
	size_t shared_issuers; /* of those, left out of issuers/: their issuer is another key
	                        * set's too, and one issuer URL has one discovery document */
	char **changed;        /* the paths (relative to dir) written or removed, manifest.json
	                        * last when its bytes changed; free with km_static_result_clear */
	size_t n_changed;
} km_static_result_t;

/*
 * Writes env's documents into dir (an existing directory, not writable by group or others
 * unless it is sticky) at serial (0: the store's latest JWKS serial); res->changed lists what
 * changed (for http.static_hook). KM_EOK; KM_ENOENT (dir
 * missing), KM_EINVAL (not a directory, or too open: err says which), KM_EIO and negative
 * errno codes of a write (err names the file), the store's codes, KM_ENOMEM.
 */
int km_static_write(km_env_t *env, const char *dir, int64_t serial, km_static_result_t *res,
                    char *err, size_t errlen);
/* Frees res->changed (after success or failure of km_static_write). NULL-safe. */
void km_static_result_clear(km_static_result_t *res);
