/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The environments keymgrd serves: loading the configuration, opening each selected
 * environment's store (its token is opened later, by the first tick: after any fork, and only
 * for the selected environments), and reloading: a new configuration is loaded and every
 * store opened BEFORE anything of the old one is released, so a bad configuration changes
 * nothing. What a reload stops serving is returned to the caller (reload.c), which takes it
 * out of km_http: this file keeps the state and publishes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/core/documents.h"
#include "keymgr/daemon/hook.h"
#include "keymgr/daemon/lease.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/state.h"

void kd_env_set_error(char **slot, const char *msg)
{
	free(*slot);
	*slot = msg ? strdup(msg) : NULL;
}

kd_keyset_t *kd_env_keyset(kd_env_t *e, const char *name)
{
	size_t lo = 0, hi = e->n_ks;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(e->ks[mid].name, name);
		if (c == 0)
			return &e->ks[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void kd_keyset_path(const kd_env_t *e, const char *keyset, char *buf, size_t len)
{
	if (km_doc_path(e->cfg, keyset, KM_DOC_JWKS, buf, len) != KM_EOK && len > 0)
		buf[0] = '\0';
}

void kd_discovery_path(const kd_env_t *e, const char *keyset, char *buf, size_t len)
{
	if (km_doc_path(e->cfg, keyset, KM_DOC_DISCOVERY, buf, len) != KM_EOK && len > 0)
		buf[0] = '\0';
}

static void keyset_clear(kd_keyset_t *k)
{
	free(k->error);
	free(k->keys);
}

static void env_free(kd_env_t *e)
{
	kd_lease_stop(e->lease);   /* a clean stop hands the lease over at once */
	for (size_t i = 0; i < e->n_ks; i++)
		keyset_clear(&e->ks[i]);
	free(e->ks);
	free(e->token_error);
	free(e->refresh_error);
	kd_hook_free(e->hook);   /* a running hook is killed */
	e->hook = NULL;
	km_env_free(e->env);
}

/* Frees n environments, their array and the configuration they borrow from. */
static void envs_free(kd_env_t *envs, size_t n, km_config_t *cfg)
{
	for (size_t i = 0; envs != NULL && i < n; i++)
		env_free(&envs[i]);
	free(envs);
	km_config_free(cfg);
}

static bool selected(const kd_daemon_t *d, const char *name)
{
	if (d->n_only == 0)
		return true;
	for (size_t i = 0; i < d->n_only; i++)
		if (strcmp(d->only[i], name) == 0)
			return true;
	return false;
}

/* Loads the configuration and opens the selected environments' stores into *envs. */
static int open_all(kd_daemon_t *d, km_config_t **cfg_ret, kd_env_t **envs_ret, size_t *n_ret,
                    char *err, size_t errlen)
{
	char path[4096];
	km_config_t *cfg = NULL;
	kd_env_t *envs = NULL;
	size_t n = 0;
	int r = km_config_locate(d->config_arg, path, sizeof(path));
	if (r != KM_EOK) {
		snprintf(err, errlen, "cannot locate the configuration file: %s", km_strerror(r));
		return r;
	}
	if ((r = km_config_load(path, &cfg, err, errlen)) != KM_EOK)
		return r;
	for (size_t i = 0; i < d->n_only; i++) {
		const km_env_cfg_t *ec;
		if ((r = km_config_env_lookup(cfg, d->only[i], &ec, err, errlen)) != KM_EOK)
			goto out;
	}
	envs = calloc(km_config_env_count(cfg) + 1, sizeof(*envs));
	if (envs == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *ec = km_config_env_at(cfg, i);
		if (!selected(d, ec->name))
			continue;
		kd_env_t *e = &envs[n];
		snprintf(e->name, sizeof(e->name), "%s", ec->name);
		e->cfg = ec;
		km_doc_path(ec, NULL, KM_DOC_JWKS, e->path, sizeof(e->path));
		char msg[1024] = "";
		if ((r = km_env_open(cfg, ec->name, &e->env, msg, sizeof(msg))) != KM_EOK) {
			snprintf(err, errlen, "environment '%s': %s", ec->name, msg);
			goto out;
		}
		n++;
	}
	if (n == 0) {
		snprintf(err, errlen, "no environment to serve");
		r = KM_EINVAL;
		goto out;
	}
	*cfg_ret = cfg;
	*envs_ret = envs;
	*n_ret = n;
	return KM_EOK;
out:
	envs_free(envs, n, cfg);
	return r;
}

int kd_state_load(kd_daemon_t *d, char *err, size_t errlen)
{
	int r = open_all(d, &d->cfg, &d->envs, &d->n_envs, err, errlen);
	if (r == KM_EOK)
		d->poll_interval = km_config_daemon(d->cfg)->poll_interval;
	return r;
}

void kd_paths_free(kd_paths_t *p)
{
	if (p == NULL)
		return;
	free(p->path);
	p->path = NULL;
	p->n = 0;
}

/* The environment of the new configuration called name, or NULL. */
static const kd_env_t *find_env(const kd_env_t *envs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(envs[i].name, name) == 0)
			return &envs[i];
	return NULL;
}

/* Whether the reload stops serving old's documents: removed, or moved to another path. */
static bool served_no_more(const kd_env_t *old, const kd_env_t *envs, size_t n)
{
	const kd_env_t *e = find_env(envs, n, old->name);
	return e == NULL || strcmp(e->path, old->path) != 0;
}

/*
 * The paths of every environment whose documents the new environments (envs[0..n)) no
 * longer serve: its own and each of its key sets', whether published or not (unpublishing
 * an unknown path is harmless). KM_EOK or KM_ENOMEM.
 */
static int gone_paths(const kd_daemon_t *d, const kd_env_t *envs, size_t n, kd_paths_t *ret)
{
	size_t count = 0, k = 0;
	for (size_t j = 0; j < d->n_envs; j++)
		if (served_no_more(&d->envs[j], envs, n))
			count += 1 + 2 * d->envs[j].n_ks;
	ret->path = NULL;
	ret->n = 0;
	if (count == 0)
		return KM_EOK;
	if ((ret->path = calloc(count, sizeof(*ret->path))) == NULL)
		return KM_ENOMEM;
	for (size_t j = 0; j < d->n_envs; j++) {
		const kd_env_t *old = &d->envs[j];
		if (!served_no_more(old, envs, n))
			continue;
		snprintf(ret->path[k++], sizeof(ret->path[0]), "%s", old->path);
		for (size_t i = 0; i < old->n_ks; i++) {
			kd_keyset_path(old, old->ks[i].name, ret->path[k++], sizeof(ret->path[0]));
			kd_discovery_path(old, old->ks[i].name, ret->path[k++], sizeof(ret->path[0]));
		}
	}
	ret->n = k;
	return KM_EOK;
}

/* Marks e's documents as not served (they are taken out of km_http by the caller). */
static void mark_unpublished(kd_env_t *e)
{
	for (size_t i = 0; i < e->n_ks; i++) {
		e->ks[i].published = false;
		e->ks[i].disc_published = false;
		e->ks[i].disc_cfg = NULL;
	}
	e->published = false;
}

int kd_state_reload(kd_daemon_t *d, kd_paths_t *ret_gone, char *err, size_t errlen)
{
	km_config_t *cfg = NULL;
	kd_env_t *envs = NULL;
	kd_paths_t gone;
	size_t n = 0;
	int r = open_all(d, &cfg, &envs, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = gone_paths(d, envs, n, &gone)) != KM_EOK) {
		snprintf(err, errlen, "%s", km_strerror(r));
		envs_free(envs, n, cfg);
		return r;
	}
	const km_daemon_cfg_t *od = km_config_daemon(d->cfg), *nd = km_config_daemon(cfg);
	/* Carry each surviving environment's state over (what was served, counters, ...). */
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < d->n_envs; j++) {
			kd_env_t *old = &d->envs[j];
			if (old->env == NULL || strcmp(old->name, envs[i].name) != 0)
				continue;
			kd_env_t fresh = envs[i];
			if (strcmp(old->path, fresh.path) != 0)
				mark_unpublished(old);
			/* The lease belongs to the store and the duration it was taken under: for
			 * another store (or daemon.lease) it is handed over, and the next pass takes
			 * the new one (kd_env_leading). Kept, its thread would go on renewing the old
			 * store's lease while the passes wrote to the new store. */
			if (old->lease != NULL && (strcmp(old->cfg->store, fresh.cfg->store) != 0 ||
			                           od->lease != nd->lease)) {
				kd_lease_stop(old->lease);
				old->lease = NULL;
				old->reconciled_epoch = 0;   /* epochs of the old lease row */
				old->docs_epoch = 0;
				kd_log(KD_LOG_INFO, "lease", "env", old->name, "result", "released",
				       "reason", "the store or daemon.lease changed: taken again under "
				       "the new configuration", NULL);
			}
			km_env_free(old->env);  /* its token too: the next tick logs in again */
			old->env = NULL;
			envs[i] = *old;
			envs[i].env = fresh.env;
			envs[i].cfg = fresh.cfg;
			memcpy(envs[i].path, fresh.path, sizeof(fresh.path));
			envs[i].token_ok = false;
			envs[i].token_retry_at = 0;
			for (size_t k = 0; k < envs[i].n_ks; k++) {
				envs[i].ks[k].next_wake = 0;       /* plan again under the new policy */
				envs[i].ks[k].retry_at = 0;
				envs[i].ks[k].max_age = 0;         /* recomputed by the next refresh */
			}
			memset(old, 0, sizeof(*old));
			break;
		}
	}
	for (size_t j = 0; j < d->n_envs; j++) {
		if (d->envs[j].env != NULL) {
			kd_log(KD_LOG_INFO, "env-removed", "env", d->envs[j].name, NULL);
			env_free(&d->envs[j]);
		}
	}
	if (strcmp(od->listen, nd->listen) != 0 || od->port != nd->port ||
	    strcmp(od->control_socket, nd->control_socket) != 0 || od->threads != nd->threads ||
	    od->connection_limit != nd->connection_limit || od->timeout != nd->timeout ||
	    od->per_ip_limit != nd->per_ip_limit || od->rate_limit != nd->rate_limit ||
	    od->rate_burst != nd->rate_burst || od->control_per_peer != nd->control_per_peer ||
	    od->control_rate_limit != nd->control_rate_limit ||
	    od->control_rate_burst != nd->control_rate_burst ||
	    od->control_reserved != nd->control_reserved)
		kd_log(KD_LOG_WARNING, "reload", "result", "partial", "error",
		       "daemon.listen, port, control_socket, threads, connection_limit, timeout, "
		       "control_reserved and the rate and per-peer limits take effect at the next "
		       "restart", NULL);
	free(d->envs);
	km_config_free(d->cfg);
	d->cfg = cfg;
	d->envs = envs;
	d->n_envs = n;
	d->poll_interval = nd->poll_interval;
	*ret_gone = gone;
	return KM_EOK;
}

void kd_state_free(kd_daemon_t *d)
{
	envs_free(d->envs, d->n_envs, d->cfg);
	d->envs = NULL;
	d->n_envs = 0;
	d->cfg = NULL;
}
