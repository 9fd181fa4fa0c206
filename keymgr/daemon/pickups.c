/* SPDX-License-Identifier: Apache-2.0 */
/* The pickup records shared through the store (pickups.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/core/env.h"
#include "keymgr/daemon/front.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/pickups.h"

/* Whether e serves path: its environment document or one of its key sets' documents. */
static bool serves(const kd_env_t *e, const char *path)
{
	char ks[KM_HTTP_PATH_MAX + 1];
	if (strcmp(e->path, path) == 0)
		return true;
	for (size_t i = 0; i < e->n_ks; i++) {
		kd_keyset_path(e, e->ks[i].name, ks, sizeof(ks));
		if (strcmp(ks, path) == 0)
			return true;
	}
	return false;
}

static km_store_t *shared_store(const kd_env_t *e)
{
	if (e->env == NULL)
		return NULL;
	km_store_t *s = km_env_store(e->env);
	return s != NULL && km_store_has_pickups(s) ? s : NULL;
}

void kd_pickups_share(kd_daemon_t *d)
{
	km_http_verifier_t *rows = NULL;
	size_t n = kd_front_take_pickups(d->front, &rows);
	km_store_pickup_t *out = n ? calloc(n, sizeof(*out)) : NULL;
	for (size_t i = 0; out != NULL && i < d->n_envs; i++) {
		kd_env_t *e = &d->envs[i];
		km_store_t *s = shared_store(e);
		size_t m = 0;
		if (s == NULL)
			continue;
		for (size_t j = 0; j < n; j++) {
			if (!serves(e, rows[j].path))
				continue;
			snprintf(out[m].path, sizeof(out[m].path), "%s", rows[j].path);
			snprintf(out[m].verifier, sizeof(out[m].verifier), "%s", rows[j].id);
			out[m].serial = rows[j].serial;
			m++;
		}
		char err[512];
		if (m > 0 && km_store_pickups_put(s, out, m, err, sizeof(err)) != KM_EOK)
			kd_log(KD_LOG_WARNING, "pickups-shared", "env", e->name, "result", "failed",
			       "error", err, NULL);
	}
	free(out);
	free(rows);
}

int kd_pickups_rows(kd_daemon_t *d, kd_env_t *e, const char *path, km_http_verifier_t **ret,
                    size_t *n)
{
	km_http_verifier_t *mine = NULL;
	size_t nm = 0;
	int r = kd_front_verifiers(d->front, path, &mine, &nm);
	if (r != KM_EOK)
		nm = 0;
	km_store_t *s = shared_store(e);
	km_store_pickup_t *theirs = NULL;
	size_t nt = 0;
	char err[512];
	if (s != NULL && km_store_pickups_get(s, path, &theirs, &nt, err, sizeof(err)) != KM_EOK) {
		kd_log(KD_LOG_WARNING, "pickups-read", "env", e->name, "result", "failed", "error",
		       err, NULL);
		nt = 0;
	}
	if (nt > 0) {
		km_http_verifier_t *all = realloc(mine, (nm + nt) * sizeof(*all));
		if (all == NULL) {
			free(mine);
			free(theirs);
			return KM_ENOMEM;
		}
		mine = all;
		for (size_t i = 0; i < nt; i++) {
			km_http_verifier_t *v = &mine[nm + i];
			memset(v, 0, sizeof(*v));
			snprintf(v->id, sizeof(v->id), "%s", theirs[i].verifier);
			snprintf(v->path, sizeof(v->path), "%s", theirs[i].path);
			v->named = true;
			v->serial = theirs[i].serial;
		}
	}
	free(theirs);
	*ret = mine;
	*n = nm + nt;
	return KM_EOK;
}
