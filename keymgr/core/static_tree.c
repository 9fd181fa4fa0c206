/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keymgr/common/atomic_file.h"
#include "keymgr/common/canon_json.h"
#include "keymgr/common/error.h"
#include "keymgr/common/etag.h"
#include "keymgr/core/documents.h"
#include "keymgr/core/keyops.h"
#include "keymgr/core/static_tree.h"
#include "keymgr/store/store.h"

#define MANIFEST "manifest.json"

typedef struct {
	char rel[PATH_MAX];
	char etag[KM_ETAG_SIZE];
	size_t bytes;
} entry_t;

typedef struct {
	entry_t *v;
	size_t n, cap;
} list_t;

static int list_add(list_t *l, const char *rel, const char *etag, size_t bytes)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		entry_t *v = realloc(l->v, cap * sizeof(*v));
		if (v == NULL)
			return KM_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	entry_t *e = &l->v[l->n++];
	snprintf(e->rel, sizeof(e->rel), "%s", rel);
	snprintf(e->etag, sizeof(e->etag), "%s", etag);
	e->bytes = bytes;
	return KM_EOK;
}

/* Records rel as changed in res. */
static int changed(km_static_result_t *res, const char *rel)
{
	char **v = realloc(res->changed, (res->n_changed + 1) * sizeof(*v));
	if (v == NULL)
		return KM_ENOMEM;
	res->changed = v;
	if ((v[res->n_changed] = strdup(rel)) == NULL)
		return KM_ENOMEM;
	res->n_changed++;
	return KM_EOK;
}

void km_static_result_clear(km_static_result_t *res)
{
	if (res == NULL)
		return;
	for (size_t i = 0; i < res->n_changed; i++)
		free(res->changed[i]);
	free(res->changed);
	res->changed = NULL;
	res->n_changed = 0;
}

/* mkdir -p of the directories of rel below dir (mode 0755). */
static int make_parents(const char *dir, const char *rel, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, rel);
	if (n < 0 || (size_t)n >= sizeof(path))
		return KM_ERANGE;
	for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create directory %s: %s", path, strerror(errno));
			return KM_EIO;
		}
		*p = '/';
	}
	return KM_EOK;
}

/* The bytes of dir/rel equal body? */
static bool same_file(const char *dir, const char *rel, const char *body, size_t len)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return false;
	bool same = true;
	char buf[4096];
	size_t off = 0, n;
	while (same && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
		same = off + n <= len && memcmp(buf, body + off, n) == 0;
		off += n;
	}
	fclose(f);
	return same && off == len;
}

static int put(const char *dir, const char *rel, const char *body, size_t len, list_t *l,
               km_static_result_t *res, char *err, size_t errlen)
{
	char etag[KM_ETAG_SIZE], path[PATH_MAX];
	int r = km_etag_compute(body, len, etag);
	if (r != KM_EOK)
		return r;
	if ((r = make_parents(dir, rel, err, errlen)) != KM_EOK)
		return r;
	if (same_file(dir, rel, body, len)) {
		res->unchanged++;
	} else {
		snprintf(path, sizeof(path), "%s/%s", dir, rel);
		if ((r = km_file_write_atomic(path, body, len, 0644)) != KM_EOK) {
			snprintf(err, errlen, "cannot write %s: %s", path, km_strerror(r));
			return r;
		}
		res->written++;
		if ((r = changed(res, rel)) != KM_EOK)
			return r;
	}
	return list_add(l, rel, etag, len);
}

/* Files of the previous manifest that the new one does not list: removed (only those). */
static int remove_stale(const char *dir, const list_t *now, km_static_result_t *res)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, MANIFEST);
	json_error_t je;
	json_t *old = json_load_file(path, 0, &je);
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(old, "files"), i, f) {
		const char *rel = json_string_value(json_object_get(f, "path"));
		if (rel == NULL || rel[0] == '/' || strstr(rel, "..") != NULL || strcmp(rel, MANIFEST) == 0)
			continue;   /* never outside dir, never what this tree did not write */
		bool kept = false;
		for (size_t k = 0; k < now->n && !kept; k++)
			kept = strcmp(now->v[k].rel, rel) == 0;
		snprintf(path, sizeof(path), "%s/%s", dir, rel);
		if (!kept && unlink(path) == 0) {
			res->removed++;
			if (changed(res, rel) != KM_EOK) {
				json_decref(old);
				return KM_ENOMEM;
			}
		}
	}
	json_decref(old);
	return KM_EOK;
}

/* Whether another key set of the environment names the same issuer. */
static bool issuer_shared(km_env_t *env, const km_env_cfg_t *e, const char *ks,
                          const char *issuer)
{
	for (size_t i = 0; i < e->n_keysets; i++) {
		const km_keyset_cfg_t *o = e->keysets[i];
		if (strcmp(o->name, ks) != 0 && o->issuer != NULL && strcmp(o->issuer, issuer) == 0)
			return true;
	}
	(void)env;
	return false;
}

static int check_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	if (stat(dir, &st) != 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return errno == ENOENT ? KM_ENOENT : KM_EIO;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", dir);
		return KM_EINVAL;
	}
	if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0) {
		snprintf(err, errlen, "%s is writable by group or others: anyone who can write there "
		         "can replace what verifiers fetch (chmod go-w %s)", dir, dir);
		return KM_EINVAL;
	}
	return KM_EOK;
}

int km_static_write(km_env_t *env, const char *dir, int64_t serial, km_static_result_t *res,
                    char *err, size_t errlen)
{
	memset(res, 0, sizeof(*res));   /* res->changed owned by the caller from here on */
	int r = check_dir(dir, err, errlen);
	if (r != KM_EOK)
		return r;
	if (serial == 0) {
		km_store_jwks_version_t v;
		memset(&v, 0, sizeof(v));
		r = km_store_jwks_latest(km_env_store(env), &v, err, errlen);
		if (r != KM_EOK && r != KM_ENOENT)
			return r;
		serial = r == KM_EOK ? (int64_t)v.serial : 0;
		free(v.kids);
	}
	res->serial = serial;
	const km_env_cfg_t *e = km_env_cfg(env);
	km_store_keyset_t *kss = NULL;
	size_t n = 0;
	list_t l = { 0 };
	char rel[PATH_MAX], *body = NULL;
	size_t len = 0;
	if ((r = km_store_keyset_list(km_env_store(env), NULL, &kss, &n, err, errlen)) != KM_EOK)
		return r;
	/* the environment's JWKS, then per key set its JWKS and discovery document */
	for (size_t i = 0; i <= n && r == KM_EOK; i++) {
		const char *ks = i < n ? kss[i].name : NULL;
		if ((r = km_doc_path(e, ks, KM_DOC_JWKS, rel, sizeof(rel))) != KM_EOK ||
		    (r = km_env_jwks(env, ks, &body, &len, err, errlen)) != KM_EOK)
			break;
		r = put(dir, rel + 1, body, len, &l, res, err, errlen);
		free(body);
		body = NULL;
		if (r != KM_EOK || ks == NULL)
			continue;
		char why[256];
		if (km_discovery_document(env, ks, &body, &len, why, sizeof(why)) != KM_EOK)
			continue;   /* this key set has none (no issuer, no public_url) */
		if ((r = km_doc_path(e, ks, KM_DOC_DISCOVERY, rel, sizeof(rel))) == KM_EOK)
			r = put(dir, rel + 1, body, len, &l, res, err, errlen);
		const km_keyset_cfg_t *kc = km_config_keyset(km_env_config(env), e->name, ks);
		char ip[PATH_MAX - 16];
		if (r == KM_EOK && kc != NULL &&
		    km_discovery_issuer_path(kc->issuer, ip, sizeof(ip)) == KM_EOK) {
			if (issuer_shared(env, e, ks, kc->issuer))
				res->shared_issuers++;
			else if (snprintf(rel, sizeof(rel), "issuers/%s", ip) > 0)
				r = put(dir, rel, body, len, &l, res, err, errlen);
		}
		res->discovery++;
		free(body);
		body = NULL;
	}
	km_store_keysets_free(kss);
	if (r == KM_EOK)
		r = remove_stale(dir, &l, res);
	if (r == KM_EOK) {
		km_cjson_t b;
		km_cjson_init(&b);
		km_cjson_open(&b, '{');
		km_cjson_kv_str(&b, "env", e->name);
		km_cjson_key(&b, "files");
		km_cjson_open(&b, '[');
		for (size_t i = 0; i < l.n; i++) {
			km_cjson_item(&b);
			km_cjson_open(&b, '{');
			km_cjson_kv_int(&b, "bytes", (int64_t)l.v[i].bytes);
			km_cjson_kv_str(&b, "etag", l.v[i].etag);
			km_cjson_kv_str(&b, "path", l.v[i].rel);
			km_cjson_close(&b, '}');
		}
		km_cjson_close(&b, ']');
		km_cjson_kv_int(&b, "serial", serial);
		km_cjson_close(&b, '}');
		char *text = km_cjson_take(&b);
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir, MANIFEST);
		if (text == NULL)
			r = KM_ENOMEM;
		else if (same_file(dir, MANIFEST, text, strlen(text)))
			;   /* nothing changed: no write, nothing for the hook */
		else if ((r = km_file_write_atomic(path, text, strlen(text), 0644)) != KM_EOK)
			snprintf(err, errlen, "cannot write %s: %s", path, km_strerror(r));
		else
			r = changed(res, MANIFEST);
		free(text);
	}
	free(l.v);
	return r;
}
