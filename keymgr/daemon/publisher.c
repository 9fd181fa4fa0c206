/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The publisher: reads an environment's key sets and keys from its store, and when the set
 * of kids in a JWKS changed, renders that document (km_env_jwks), compares its bytes with
 * what is served, and swaps the changed documents into km_http under ONE new serial from the
 * store (km_store_jwks_serial_next). The environment's document is also written to its
 * snapshot files. Serving never waits for any of this: km_http keeps answering with the
 * previous version until the swap.
 *
 * The same read tells the scheduler about changes made by someone else (the CLI): a key set
 * whose keys differ from what the daemon last saw of them (here, or at the end of its own
 * pass: kd_keyset_fp) is planned again at once.
 *
 * On a shared store (PostgreSQL, docs/ha.md) the documents every node serves are in the
 * store, written by the transaction of each change (the store renders them with
 * km_env_docs_render, the same bytes as here). A follower serves those; the leader serves its
 * own rendering and has the store render again after each pass that published (lead_store).
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keymgr/common/atomic_file.h"
#include "keymgr/common/error.h"
#include "keymgr/common/fnv.h"
#include "keymgr/core/documents.h"
#include "keymgr/core/keyops.h"
#include "keymgr/core/static_tree.h"
#include "keymgr/daemon/hook.h"
#include "keymgr/daemon/lease.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/publisher.h"
#include "keymgr/daemon/scheduler.h"
#include "keymgr/daemon/state.h"

static void sha256(const char *body, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	if (EVP_Digest(body, len, out, &n, EVP_sha256(), NULL) != 1)
		memset(out, 0, 32);  /* never equal to a real digest in practice: republishes */
}

/* Now, rounded UP to a whole second: a key counts as served from the next second on, so that
 * "served for publish_lead" in whole seconds is never less than publish_lead in reality. */
static int64_t served_time(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec + (ts.tv_nsec > 0 ? 1 : 0);
}

static int cmp_keyset(const void *a, const void *b)
{
	return strcmp(((const kd_keyset_t *)a)->name, ((const kd_keyset_t *)b)->name);
}

/* Makes e->ks the store's key sets (state of known ones kept; new ones due at once). */
static int sync_keysets(kd_env_t *e, char *err, size_t errlen)
{
	km_store_keyset_t *list = NULL;
	size_t n = 0;
	int r = km_store_keyset_list(km_env_store(e->env), NULL, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	kd_keyset_t *ks = calloc(n ? n : 1, sizeof(*ks));
	if (ks == NULL) {
		km_store_keysets_free(list);
		return KM_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		kd_keyset_t *old = kd_env_keyset(e, list[i].name);
		if (old != NULL) {
			ks[i] = *old;
			memset(old, 0, sizeof(*old));   /* moved */
		} else {
			snprintf(ks[i].name, sizeof(ks[i].name), "%s", list[i].name);
			kd_log(KD_LOG_INFO, "keyset-found", "env", e->name, "keyset", list[i].name, NULL);
		}
		if (ks[i].max_age == 0)
			ks[i].max_age = km_doc_max_age(e->env, ks[i].name);
	}
	for (size_t i = 0; i < e->n_ks; i++) {
		free(e->ks[i].error);
		free(e->ks[i].keys);
	}
	free(e->ks);
	qsort(ks, n, sizeof(*ks), cmp_keyset);
	e->ks = ks;
	e->n_ks = n;
	km_store_keysets_free(list);
	return KM_EOK;
}

/* One key's part of its key set's fingerprint: kid, state, when it entered that state. */
static uint64_t key_fp(uint64_t h, const char *kid, km_state_t state, int64_t state_at)
{
	h = km_fnv(h, kid, strlen(kid) + 1);
	h = km_fnv(h, &state, sizeof(state));
	return km_fnv(h, &state_at, sizeof(state_at));
}

/* The keys the daemon follows: confirmed ones (no pending intent), destroyed ones left out. */
static km_store_key_filter_t live_keys(const char *keyset)
{
	km_store_key_filter_t f = {
		.keyset = keyset,
		.states = ~KM_STORE_STATE_BIT(KM_STATE_DESTROYED) & ((1u << KM_STATE_COUNT) - 1),
		.pending = KM_STORE_PENDING_NONE,
	};
	return f;
}

int kd_keyset_fp(kd_env_t *e, const char *keyset, uint64_t *ret, char *err, size_t errlen)
{
	km_store_key_filter_t f = live_keys(keyset);
	km_store_key_t *keys = NULL;
	size_t n = 0;
	int r = km_store_keys_query(km_env_store(e->env), &f, &keys, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	uint64_t h = KM_FNV_INIT;
	for (size_t j = 0; j < n; j++)   /* in the store's order, as sync_keys() reads them */
		if (keys[j].kid[0])
			h = key_fp(h, keys[j].kid, keys[j].state, keys[j].state_at[keys[j].state]);
	km_store_keys_free(keys);
	*ret = h;
	return KM_EOK;
}

static const kd_key_t *find_key(const kd_keyset_t *ks, const char *kid)
{
	for (size_t i = 0; i < ks->n_keys; i++)
		if (strcmp(ks->keys[i].kid, kid) == 0)
			return &ks->keys[i];
	return NULL;
}

/*
 * Replaces every key set's keys[] with the store's, carrying the serving history of known
 * kids over. new_kids_fp[i] receives the fingerprint of key set i's JWKS kids.
 */
static int sync_keys(kd_env_t *e, int64_t now, uint64_t *new_kids_fp, char *err, size_t errlen)
{
	km_store_key_filter_t f = live_keys(NULL);
	km_store_key_t *keys = NULL;
	size_t n = 0;
	int r = km_store_keys_query(km_env_store(e->env), &f, &keys, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	size_t *owner = malloc((n ? n : 1) * sizeof(*owner));
	size_t *count = calloc(e->n_ks ? e->n_ks : 1, sizeof(*count));
	kd_key_t **fresh = calloc(e->n_ks ? e->n_ks : 1, sizeof(*fresh));
	if (owner == NULL || count == NULL || fresh == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	for (size_t j = 0; j < n; j++) {
		kd_keyset_t *ks = keys[j].kid[0] ? kd_env_keyset(e, keys[j].keyset) : NULL;
		owner[j] = ks ? (size_t)(ks - e->ks) : SIZE_MAX;  /* a key set created meanwhile */
		if (ks != NULL)
			count[owner[j]]++;
	}
	for (size_t i = 0; i < e->n_ks; i++) {
		if (count[i] > 0 && (fresh[i] = calloc(count[i], sizeof(kd_key_t))) == NULL) {
			r = KM_ENOMEM;
			goto out;
		}
		count[i] = 0;
	}
	for (size_t i = 0; i < e->n_ks; i++)
		new_kids_fp[i] = KM_FNV_INIT;
	uint64_t *fp = calloc(e->n_ks ? e->n_ks : 1, sizeof(*fp));
	if (fp == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < e->n_ks; i++)
		fp[i] = KM_FNV_INIT;
	for (size_t j = 0; j < n; j++) {
		if (owner[j] == SIZE_MAX)
			continue;
		size_t i = owner[j];
		kd_key_t *k = &fresh[i][count[i]++];
		const km_store_key_t *s = &keys[j];
		snprintf(k->kid, sizeof(k->kid), "%s", s->kid);
		k->state = s->state;
		k->state_at = s->state_at[s->state];
		const kd_key_t *old = find_key(&e->ks[i], s->kid);
		if (old != NULL) {
			k->first_serial = old->first_serial;
			k->served_at = old->served_at;
			k->deferral_logged = old->deferral_logged;
		}
		fp[i] = key_fp(fp[i], k->kid, k->state, k->state_at);
		if (km_state_in_jwks(k->state))
			new_kids_fp[i] = km_fnv(new_kids_fp[i], k->kid, strlen(k->kid) + 1);
	}
	for (size_t i = 0; i < e->n_ks; i++) {
		kd_keyset_t *ks = &e->ks[i];
		if (ks->fp_known && ks->fp != fp[i]) {
			kd_log(KD_LOG_INFO, "store-change", "env", e->name, "keyset", ks->name,
			       "result", "planning again", NULL);
			ks->next_wake = now;
			ks->retry_at = 0;
		}
		ks->fp = fp[i];
		ks->fp_known = true;
		free(ks->keys);
		ks->keys = fresh[i];
		ks->n_keys = count[i];
		fresh[i] = NULL;
	}
	free(fp);
	r = KM_EOK;
out:
	for (size_t i = 0; fresh != NULL && i < e->n_ks; i++)
		free(fresh[i]);
	free(fresh);
	free(count);
	free(owner);
	km_store_keys_free(keys);
	return r;
}

typedef struct {
	char *body;
	size_t len;
	uint8_t digest[32];
	bool bytes_changed;
} doc_t;

static int render(kd_env_t *e, const char *keyset, const uint8_t *old, bool was_published,
                  doc_t *doc, char *err, size_t errlen)
{
	int r = km_env_jwks(e->env, keyset, &doc->body, &doc->len, err, errlen);
	if (r != KM_EOK)
		return r;
	sha256(doc->body, doc->len, doc->digest);
	doc->bytes_changed = !was_published || memcmp(doc->digest, old, 32) != 0;
	return KM_EOK;
}

static void write_snapshots(kd_env_t *e, const doc_t *doc, int64_t serial)
{
	char num[32];
	snprintf(num, sizeof(num), "%lld", (long long)serial);
	for (size_t i = 0; i < e->cfg->n_snapshots; i++) {
		const char *path = e->cfg->snapshots[i];
		char side[4200], line[32];
		snprintf(side, sizeof(side), "%s.serial", path);
		int len = snprintf(line, sizeof(line), "%lld\n", (long long)serial);
		int r = km_file_write_atomic(path, doc->body, doc->len, 0644);
		if (r == KM_EOK)
			r = km_file_write_atomic(side, line, (size_t)len, 0644);
		if (r != KM_EOK) {
			char msg[KD_ERROR_MAX];
			snprintf(msg, sizeof(msg), "snapshot %s: %s", path, km_strerror(r));
			kd_log(KD_LOG_ERROR, "snapshot", "env", e->name, "file", path, "serial", num,
			       "result", "failed", "error", km_strerror(r), NULL);
			kd_env_set_error(&e->refresh_error, msg);
		} else {
			kd_log(KD_LOG_INFO, "snapshot", "env", e->name, "file", path, "serial", num,
			       "result", "ok", NULL);
		}
	}
}

/* Is every kid of the JSON array text in e's JWKS (and as many)? */
static bool same_kids(const kd_env_t *e, const char *kids_json)
{
	json_error_t je;
	json_t *arr = kids_json ? json_loads(kids_json, 0, &je) : NULL;
	size_t n = 0;
	bool same = json_is_array(arr);
	for (size_t i = 0; same && i < e->n_ks; i++) {
		for (size_t k = 0; same && k < e->ks[i].n_keys; k++) {
			const kd_key_t *key = &e->ks[i].keys[k];
			if (!km_state_in_jwks(key->state))
				continue;
			n++;
			bool found = false;
			size_t j;
			json_t *v;
			json_array_foreach(arr, j, v)
				found = found || (json_is_string(v) && strcmp(json_string_value(v), key->kid) == 0);
			same = found;
		}
	}
	same = same && json_array_size(arr) == n;
	json_decref(arr);
	return same;
}

/*
 * The serial of a new version: the store records a JWKS version itself whenever a transition
 * changes the published kid set, so that one is used when it describes what is about to be
 * served; any other change (the first publication, a kid set the store did not record) gets
 * km_store_jwks_serial_next(). Serials only grow.
 */
static int next_serial(kd_env_t *e, int64_t *serial, char *err, size_t errlen)
{
	km_store_jwks_version_t v;
	memset(&v, 0, sizeof(v));
	int r = km_store_jwks_latest(km_env_store(e->env), &v, err, errlen);
	if (r != KM_EOK && r != KM_ENOENT)
		return r;
	bool reuse = r == KM_EOK && (int64_t)v.serial > e->serial && same_kids(e, v.kids);
	int64_t latest = (int64_t)v.serial;
	free(v.kids);
	if (reuse) {
		*serial = latest;
		return KM_EOK;
	}
	uint64_t s = 0;
	if ((r = km_store_jwks_serial_next(km_env_store(e->env), &s, err, errlen)) != KM_EOK)
		return r;
	*serial = (int64_t)s;
	return KM_EOK;
}

/*
 * The key sets' discovery documents: rendered when the configuration they come from is
 * replaced (an issuer or http.public_url may have changed) or the key set is new, served
 * under the environment's current serial, taken out when the key set no longer has one.
 * Returns whether any changed.
 */
static bool publish_discovery(kd_daemon_t *d, kd_env_t *e)
{
	bool changed = false;
	for (size_t i = 0; i < e->n_ks; i++) {
		kd_keyset_t *ks = &e->ks[i];
		if (ks->disc_cfg == e->cfg)
			continue;
		char path[KM_HTTP_PATH_MAX + 1], why[512];
		char *body = NULL;
		size_t len = 0;
		kd_discovery_path(e, ks->name, path, sizeof(path));
		int r = km_discovery_document(e->env, ks->name, &body, &len, why, sizeof(why));
		if (r == KM_ENOENT) {
			if (ks->disc_published) {
				kd_front_unpublish(d->front, path);
				changed = true;
				kd_log(KD_LOG_INFO, "discovery", "env", e->name, "keyset", ks->name,
				       "path", path, "result", "withdrawn", "reason", why, NULL);
			}
			ks->disc_published = false;
			ks->disc_cfg = e->cfg;
			continue;
		}
		if (r != KM_EOK) {
			kd_log(KD_LOG_ERROR, "discovery", "env", e->name, "keyset", ks->name, "result",
			       "failed", "error", why, NULL);
			continue;   /* tried again at the next pass */
		}
		uint8_t digest[32];
		sha256(body, len, digest);
		if (!ks->disc_published || memcmp(digest, ks->disc_digest, 32) != 0) {
			r = kd_front_publish(d->front, path, body, len, e->serial, ks->max_age,
			                     (time_t)time(NULL));
			if (r != KM_EOK) {
				kd_log(KD_LOG_ERROR, "discovery", "env", e->name, "keyset", ks->name,
				       "path", path, "result", "failed", "error", km_strerror(r), NULL);
				free(body);
				continue;
			}
			memcpy(ks->disc_digest, digest, 32);
			ks->disc_published = true;
			changed = true;
			kd_log(KD_LOG_INFO, "discovery", "env", e->name, "keyset", ks->name, "path",
			       path, "result", "published", NULL);
		}
		ks->disc_cfg = e->cfg;
		free(body);
	}
	return changed;
}

/* e's http.static_hook as its configuration says now: kept across reloads that leave its
 * command alone (its queue and counters too), replaced otherwise, NULL when none. */
static kd_hook_t *env_hook(kd_env_t *e)
{
	const km_env_cfg_t *c = e->cfg;
	if (c->n_static_hook == 0 || c->static_dir == NULL) {
		kd_hook_free(e->hook);
		e->hook = NULL;
		return NULL;
	}
	kd_hook_cfg_t hc = { .argv = c->static_hook, .argc = c->n_static_hook,
	                     .dir = c->static_dir, .env_name = e->name,
	                     .timeout = c->static_hook_timeout };
	if (e->hook != NULL && kd_hook_same(e->hook, &hc))
		return e->hook;
	kd_hook_free(e->hook);   /* a running one of the old command is killed */
	e->hook = NULL;
	int r = kd_hook_create(&hc, &e->hook);
	if (r != KM_EOK)
		kd_log(KD_LOG_ERROR, "static-hook", "env", e->name, "program", hc.argv[0], "result",
		       "failed", "error", km_strerror(r), NULL);
	return e->hook;
}

/* Hands the paths a static-tree write changed to the environment's hook, and starts it. */
static void queue_hook(kd_env_t *e, const km_static_result_t *res, int64_t now)
{
	kd_hook_t *h = env_hook(e);
	if (h == NULL || res->n_changed == 0)
		return;
	if (kd_hook_add(h, (const char *const *)res->changed, res->n_changed, res->serial) !=
	    KM_EOK) {
		kd_log(KD_LOG_ERROR, "static-hook", "env", e->name, "result", "failed", "error",
		       "out of memory: changed paths not queued", NULL);
		return;
	}
	kd_hook_step(h, now);
}

/* http.static_dir: the static tree written again after anything it holds changed; what the
 * write changed (even a failed one's part) goes to http.static_hook. */
static void write_static(kd_env_t *e, bool changed, int64_t now)
{
	const char *dir = e->cfg->static_dir;
	if (dir == NULL || e->serial == 0 ||
	    (!changed && e->static_serial == e->serial && e->static_cfg == e->cfg))
		return;
	km_static_result_t res;
	char err[1024] = "", num[32], w[24], rm[24];
	snprintf(num, sizeof(num), "%lld", (long long)e->serial);
	int r = km_static_write(e->env, dir, e->serial, &res, err, sizeof(err));
	queue_hook(e, &res, now);
	km_static_result_clear(&res);
	if (r != KM_EOK) {
		char msg[KD_ERROR_MAX];
		snprintf(msg, sizeof(msg), "snapshot static tree: %.400s", err[0] ? err :
		         km_strerror(r));
		kd_log(KD_LOG_ERROR, "static-tree", "env", e->name, "dir", dir, "serial", num,
		       "result", "failed", "error", err[0] ? err : km_strerror(r), NULL);
		kd_env_set_error(&e->refresh_error, msg);
		return;
	}
	e->static_serial = e->serial;
	e->static_cfg = e->cfg;
	if (e->refresh_error != NULL && strncmp(e->refresh_error, "snapshot static tree", 20) == 0)
		kd_env_set_error(&e->refresh_error, NULL);
	snprintf(w, sizeof(w), "%zu", res.written);
	snprintf(rm, sizeof(rm), "%zu", res.removed);
	kd_log(KD_LOG_INFO, "static-tree", "env", e->name, "dir", dir, "serial", num, "written",
	       w, "removed", rm, "result", "ok", NULL);
}

int64_t kd_static_hooks_step(kd_daemon_t *d, int64_t now, bool *ret_changed)
{
	int64_t wake = INT64_MAX;
	bool changed = false;
	for (size_t i = 0; i < d->n_envs; i++) {
		/* follows the configuration at once: a reload that drops or changes the hook takes
		 * effect here, not at the next write */
		kd_hook_t *h = env_hook(&d->envs[i]);
		if (h == NULL)
			continue;
		kd_hook_stats_t a, b;
		kd_hook_stats(h, &a);
		int64_t w = kd_hook_step(h, now);
		kd_hook_stats(h, &b);
		changed = changed || a.ok != b.ok || a.failed != b.failed || a.pid != b.pid;
		if (w < wake)
			wake = w;
	}
	*ret_changed = changed;
	return wake;
}

size_t kd_static_hooks_fds(const kd_daemon_t *d, int *fds, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n_envs && n < max; i++)
		if (d->envs[i].hook != NULL && kd_hook_fd(d->envs[i].hook) >= 0)
			fds[n++] = kd_hook_fd(d->envs[i].hook);
	return n;
}

/* The kids of a JWKS document, for the served-keys bookkeeping of a follower. */
static void mark_served(kd_keyset_t *ks, const char *body, size_t len, int64_t serial)
{
	json_t *doc = json_loadb(body, len, 0, NULL), *k;
	size_t i;
	json_array_foreach(json_object_get(doc, "keys"), i, k) {
		const char *kid = json_string_value(json_object_get(k, "kid"));
		for (size_t j = 0; kid != NULL && j < ks->n_keys; j++) {
			if (strcmp(ks->keys[j].kid, kid) == 0 && ks->keys[j].first_serial == 0) {
				ks->keys[j].first_serial = serial;
				ks->keys[j].served_at = served_time();
			}
		}
	}
	json_decref(doc);
}

/*
 * A follower of a shared store (docs/ha.md) serves the documents its leader wrote into the
 * store, byte for byte (so the ETag too), under the leader's serial. A key counts as served
 * by this node once a document it serves holds it: the signing rule stays per node. Returns
 * KM_ENOENT when the store holds no document yet (a first start): the node renders its own.
 */
static int follow_store(kd_daemon_t *d, kd_env_t *e, int64_t now, char *err, size_t errlen)
{
	km_store_doc_t *docs = NULL;
	size_t n = 0;
	uint64_t *kids_fp = NULL;
	int r = sync_keysets(e, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((kids_fp = calloc(e->n_ks ? e->n_ks : 1, sizeof(*kids_fp))) == NULL)
		return KM_ENOMEM;
	if ((r = sync_keys(e, now, kids_fp, err, errlen)) != KM_EOK)
		goto out;
	if ((r = km_store_docs_get(km_env_store(e->env), 0, &docs, &n, err, errlen)) != KM_EOK)
		goto out;
	if (n == 0) {
		r = KM_ENOENT;
		goto out;
	}
	char path[KM_HTTP_PATH_MAX + 1], num[32];
	for (size_t i = 0; i < n; i++) {
		km_store_doc_t *doc = &docs[i];
		kd_keyset_t *ks = NULL;
		uint8_t digest[32];
		for (size_t j = 0; ks == NULL && j < e->n_ks; j++) {
			kd_keyset_path(e, e->ks[j].name, path, sizeof(path));
			if (strcmp(path, doc->path) == 0)
				ks = &e->ks[j];
		}
		bool env_doc = strcmp(doc->path, e->path) == 0;
		if (ks == NULL && !env_doc)
			continue;       /* a key set this node's configuration does not serve */
		sha256(doc->body, doc->len, digest);
		bool same = env_doc ? e->published && memcmp(e->digest, digest, 32) == 0 &&
		                      e->published_max_age == doc->max_age :
		                      ks->published && memcmp(ks->digest, digest, 32) == 0 &&
		                      ks->published_max_age == doc->max_age;
		if (same && (int64_t)doc->serial <= e->serial)
			continue;
		if ((r = kd_front_publish(d->front, doc->path, doc->body, doc->len,
		                         (int64_t)doc->serial, doc->max_age, (time_t)now)) != KM_EOK) {
			snprintf(err, errlen, "publishing %s: %s", doc->path, km_strerror(r));
			goto out;
		}
		snprintf(num, sizeof(num), "%llu", (unsigned long long)doc->serial);
		if (env_doc) {
			e->published = true;
			e->stale = false;
			e->published_max_age = doc->max_age;
			memcpy(e->digest, digest, 32);
			if (!same) {
				doc_t snap = { .body = doc->body, .len = doc->len };
				e->changed_at = now;
				write_snapshots(e, &snap, (int64_t)doc->serial);
			}
		} else {
			ks->published = true;
			ks->published_max_age = doc->max_age;
			memcpy(ks->digest, digest, 32);
			/* unknown here: a node that comes to lead renders again and compares bytes */
			ks->kids_fp = 0;
			mark_served(ks, doc->body, doc->len, (int64_t)doc->serial);
		}
		kd_log(env_doc ? KD_LOG_INFO : KD_LOG_DEBUG, "publish", "env", e->name, "path",
		       doc->path, "serial", num, "source", "store", "result",
		       same ? "headers" : "changed", NULL);
		if ((int64_t)doc->serial > e->serial)
			e->serial = (int64_t)doc->serial;
	}
	r = KM_EOK;
out:
	km_store_docs_free(docs, n);
	free(kids_fp);
	return r;
}

/*
 * The leader of a shared store has the store render its documents once more (fenced: a
 * deposed leader's write is refused) and write those that differ: what no change's own
 * transaction wrote, a new leader's first pass on a store that holds none yet or a reload
 * that changed a max-age. A change's documents are already there, written by its own
 * transaction (km_store_docs_sync, docs/ha.md). Returns whether it succeeded.
 */
static bool lead_store(kd_daemon_t *d, kd_env_t *e)
{
	char err[1024] = "", holder[KM_STORE_LEASE_HOLDER_MAX + 1], num[24];
	int64_t epoch;
	size_t written = 0;
	km_store_t *s = km_env_store(e->env);
	if (!kd_env_leading(d, e, holder, &epoch))
		return false;
	km_store_set_fence(s, holder, epoch);
	int r = km_store_docs_sync(s, &written, err, sizeof(err));
	km_store_set_fence(s, NULL, 0);
	if (r == KM_STORE_EFENCED)
		kd_lease_fenced(e->lease);
	if (r != KM_EOK) {
		kd_log(KD_LOG_ERROR, "publish", "env", e->name, "result", "failed", "error",
		       err[0] ? err : km_strerror(r), "source", "store", NULL);
		return false;
	}
	if (written > 0) {
		snprintf(num, sizeof(num), "%zu", written);
		kd_log(KD_LOG_INFO, "publish", "env", e->name, "source", "store", "documents", num,
		       "result", "written", NULL);
	}
	return true;
}

int kd_publish_env(kd_daemon_t *d, kd_env_t *e, int64_t now)
{
	char err[1024] = "";
	uint64_t *kids_fp = NULL;
	doc_t *docs = NULL;
	doc_t env_doc = { 0 };
	bool want_env = false, any = false, bytes = false, published = false;
	unsigned env_max_age = 0, *ages = NULL;
	int64_t serial = 0;
	int r;
	char holder[KM_STORE_LEASE_HOLDER_MAX + 1];
	int64_t epoch = 0;
	bool shared = km_store_has_docs(km_env_store(e->env));
	bool leads = !shared || kd_env_leading(d, e, holder, &epoch);
	if (!leads) {
		r = follow_store(d, e, now, err, sizeof(err));
		if (r != KM_ENOENT)
			goto out;
		err[0] = '\0';   /* nothing in the store yet: render, as a single node does */
	}
	if ((r = sync_keysets(e, err, sizeof(err))) != KM_EOK)
		goto out;
	kids_fp = calloc(e->n_ks ? e->n_ks : 1, sizeof(*kids_fp));
	docs = calloc(e->n_ks ? e->n_ks : 1, sizeof(*docs));
	if (kids_fp == NULL || docs == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	if ((r = sync_keys(e, now, kids_fp, err, sizeof(err))) != KM_EOK)
		goto out;

	for (size_t i = 0; i < e->n_ks; i++) {
		kd_keyset_t *ks = &e->ks[i];
		if (ks->published && ks->kids_fp == kids_fp[i] && ks->published_max_age == ks->max_age)
			continue;
		if ((r = render(e, ks->name, ks->digest, ks->published, &docs[i], err,
		                sizeof(err))) != KM_EOK)
			goto out;
		want_env = true;
		if (!docs[i].bytes_changed && ks->published_max_age == ks->max_age) {
			free(docs[i].body);   /* same bytes: nothing to swap */
			docs[i].body = NULL;
			ks->kids_fp = kids_fp[i];
			continue;
		}
		any = true;
		bytes = bytes || docs[i].bytes_changed;
	}
	if ((ages = calloc(e->n_ks ? e->n_ks : 1, sizeof(*ages))) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < e->n_ks; i++)
		ages[i] = e->ks[i].max_age;
	env_max_age = km_doc_env_max_age(e->env, ages, e->n_ks);
	if (want_env)
		e->stale = true;
	if (e->stale || !e->published || e->published_max_age != env_max_age) {
		if ((r = render(e, NULL, e->digest, e->published, &env_doc, err, sizeof(err))) != KM_EOK)
			goto out;
		if (env_doc.bytes_changed || e->published_max_age != env_max_age) {
			any = true;
			bytes = bytes || env_doc.bytes_changed;
		} else {
			free(env_doc.body);
			env_doc.body = NULL;
			e->stale = false;
		}
	}
	if (!any) {
		r = KM_EOK;
		goto out;
	}

	serial = e->serial;
	if (bytes || serial == 0) {
		if ((r = next_serial(e, &serial, err, sizeof(err))) != KM_EOK)
			goto out;
	}
	char path[KM_HTTP_PATH_MAX + 1], num[32];
	snprintf(num, sizeof(num), "%lld", (long long)serial);
	for (size_t i = 0; i < e->n_ks; i++) {
		kd_keyset_t *ks = &e->ks[i];
		if (docs[i].body == NULL)
			continue;
		kd_keyset_path(e, ks->name, path, sizeof(path));
		if ((r = kd_front_publish(d->front, path, docs[i].body, docs[i].len, serial, ks->max_age,
		                         (time_t)now)) != KM_EOK) {
			snprintf(err, sizeof(err), "publishing %s: %s", path, km_strerror(r));
			goto out;
		}
		ks->published = true;
		ks->published_max_age = ks->max_age;
		ks->kids_fp = kids_fp[i];
		memcpy(ks->digest, docs[i].digest, 32);
		for (size_t k = 0; k < ks->n_keys; k++) {
			if (km_state_in_jwks(ks->keys[k].state) && ks->keys[k].first_serial == 0) {
				ks->keys[k].first_serial = serial;
				ks->keys[k].served_at = served_time();
			}
		}
		kd_log(KD_LOG_DEBUG, "publish", "env", e->name, "keyset", ks->name, "path", path,
		       "serial", num, NULL);
	}
	if (env_doc.body != NULL) {
		if ((r = kd_front_publish(d->front, e->path, env_doc.body, env_doc.len, serial,
		                         env_max_age, (time_t)now)) != KM_EOK) {
			snprintf(err, sizeof(err), "publishing %s: %s", e->path, km_strerror(r));
			goto out;
		}
		bool changed = env_doc.bytes_changed;
		e->published = true;
		e->stale = false;
		e->published_max_age = env_max_age;
		memcpy(e->digest, env_doc.digest, 32);
		char bytes_s[32], age_s[16];
		snprintf(bytes_s, sizeof(bytes_s), "%zu", env_doc.len);
		snprintf(age_s, sizeof(age_s), "%u", env_max_age);
		kd_log(KD_LOG_INFO, "publish", "env", e->name, "path", e->path, "serial", num,
		       "bytes", bytes_s, "max_age", age_s, "result", changed ? "changed" : "headers",
		       NULL);
		if (changed) {
			e->changed_at = now;
			kd_env_set_error(&e->refresh_error, NULL);
			write_snapshots(e, &env_doc, serial);
		}
	}
	e->serial = serial;
	r = KM_EOK;
	published = true;
out:
	if (r == KM_EOK && shared && leads && (published || e->docs_epoch != epoch) &&
	    lead_store(d, e))
		e->docs_epoch = epoch;
	if (r == KM_EOK) {
		bool disc = publish_discovery(d, e);
		write_static(e, published || disc, now);
	}
	if (r != KM_EOK) {
		if (err[0] == '\0')
			snprintf(err, sizeof(err), "%s", km_strerror(r));
		kd_log(KD_LOG_ERROR, "refresh", "env", e->name, "result", "failed", "error", err, NULL);
		kd_env_set_error(&e->refresh_error, err);
	} else if (e->refresh_error != NULL && strncmp(e->refresh_error, "snapshot ", 9) != 0) {
		kd_env_set_error(&e->refresh_error, NULL);
	}
	for (size_t i = 0; docs != NULL && i < e->n_ks; i++)
		free(docs[i].body);
	free(docs);
	free(env_doc.body);
	free(kids_fp);
	free(ages);
	return r;
}

void kd_unpublish_paths(kd_daemon_t *d, const kd_paths_t *paths)
{
	if (d->front == NULL)
		return;
	for (size_t i = 0; i < paths->n; i++)
		kd_front_unpublish(d->front, paths->path[i]);
}

void kd_publish_listed_verifiers(kd_daemon_t *d)
{
	const char *names[KM_CONFIG_MAX_KEYSETS * KM_POLICY_MAX_LIST];
	size_t n = 0;
	for (size_t i = 0; i < km_config_env_count(d->cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(d->cfg, i);
		const km_policy_t *pols[KM_CONFIG_MAX_KEYSETS + 1];
		size_t np = 0;
		pols[np++] = &e->policy;
		for (size_t k = 0; k < e->n_keysets; k++)
			pols[np++] = &e->keysets[k]->policy;
		for (size_t p = 0; p < np; p++)
			for (size_t v = 0; v < pols[p]->n_activate_when_seen_by; v++) {
				const char *name = pols[p]->activate_when_seen_by[v];
				bool dup = false;
				for (size_t j = 0; j < n && !dup; j++)
					dup = strcmp(names[j], name) == 0;
				if (!dup && n < sizeof(names) / sizeof(names[0]))
					names[n++] = name;
			}
	}
	if (kd_front_set_listed_verifiers(d->front, names, n) != KM_EOK)
		kd_log(KD_LOG_ERROR, "verifiers", "result", "failed", "error",
		       "out of memory: the listed verifiers' rows may be evicted", NULL);
}
