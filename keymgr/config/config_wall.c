/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The environment wall, as far as the config can enforce it: no two environments share a
 * token (same module and label, or same serial; their audit tokens count, and an audit token
 * must not be the environment's own token), a file (store, snapshot or static tree
 * directory, compared literally and through realpath(); a PostgreSQL store by its database and
 * schema), or an HTTP path (equal, or one a
 * prefix of the other).
 * Every message names both environments and where the first one claims the resource.
 *
 * A violation breaks both environments (which one is right cannot be told); the check goes
 * on with the others. Environments whose own sections have errors are compared on what was
 * read of them.
 */
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/pguri.h"
#include "keymgr/config/config_int.h"

static int wall_error(km_config_t *cfg, cfg_err_t *e, cfg_loc_t at, const cfg_env_t *a,
                      const cfg_env_t *b, const char *what, cfg_loc_t first)
{
	cfg_errorf(e, at, "environments '%s' and '%s' share %s ('%s' claims it at %s:%d:%d); "
	           "each environment needs its own", b->pub.name, a->pub.name, what, a->pub.name,
	           first.file ? first.file : "?", first.line, first.col);
	return cfg_record(cfg, e, KM_CONFIG_EINVAL, CFG_SCOPE_ENV, b->pub.name, a->pub.name,
	                  NULL);
}

/* Whether two token configurations name the same token: "a token (serial S)" into what. */
static bool same_token(const km_token_cfg_t *ta, const km_token_cfg_t *tb, char *what,
                       size_t len)
{
	if (ta->token_serial != NULL && tb->token_serial != NULL &&
	    strcmp(ta->token_serial, tb->token_serial) == 0) {
		snprintf(what, len, "a token (serial %s)", ta->token_serial);
		return true;
	}
	if (ta->token_label != NULL && tb->token_label != NULL &&
	    strcmp(ta->token_label, tb->token_label) == 0 && ta->module_path != NULL &&
	    tb->module_path != NULL && cfg_path_same(ta->module_path, tb->module_path)) {
		snprintf(what, len, "a token (label %s in module %.100s)", ta->token_label,
		         ta->module_path);
		return true;
	}
	return false;
}

/* One token of an environment: its own, or its audit token. */
typedef struct {
	const km_token_cfg_t *cfg;
	cfg_loc_t loc;
} env_token_t;

static size_t env_tokens(const cfg_env_t *env, env_token_t out[2])
{
	out[0] = (env_token_t){ &env->pub.token, env->token_loc };
	if (!env->pub.has_audit_token)
		return 1;
	out[1] = (env_token_t){ &env->pub.audit_token, env->audit_token_loc };
	return 2;
}

static int check_token(km_config_t *cfg, const cfg_env_t *a, const cfg_env_t *b, cfg_err_t *e)
{
	env_token_t ta[2], tb[2];
	size_t na = env_tokens(a, ta), nb = env_tokens(b, tb);
	char what[200];
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++)
			if (same_token(ta[i].cfg, tb[j].cfg, what, sizeof(what)))
				return wall_error(cfg, e, tb[j].loc, a, b, what, ta[i].loc);
	return KM_EOK;
}

/* An audit token that is the environment's own token separates nothing: refused. */
static int check_audit_token(km_config_t *cfg, const cfg_env_t *env, cfg_err_t *e)
{
	char what[200];
	if (!env->pub.has_audit_token ||
	    !same_token(&env->pub.token, &env->pub.audit_token, what, sizeof(what)))
		return KM_EOK;
	cfg_errorf(e, env->audit_token_loc, "environments.%s.audit.token is %s, the environment's "
	           "own token (%s:%d:%d): the audit key needs another token or slot, with its own "
	           "PIN; leave audit.token out to keep it in the environment's token",
	           env->pub.name, what, env->token_loc.file ? env->token_loc.file : "?",
	           env->token_loc.line, env->token_loc.col);
	return cfg_record(cfg, e, KM_CONFIG_EINVAL, CFG_SCOPE_ENV, env->pub.name, NULL, NULL);
}

/* "/a" and "/a/b" overlap: a request path cannot tell which environment it is for. */
static bool http_overlap(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return false;
	size_t la = strlen(a), lb = strlen(b);
	if (la > lb) {
		const char *t = a;
		a = b;
		b = t;
		size_t tl = la;
		la = lb;
		lb = tl;
	}
	if (strncmp(a, b, la) != 0)
		return false;
	return la == lb || strcmp(a, "/") == 0 || b[la] == '/';
}

/* A file an environment writes: its store or one of its snapshots. */
typedef struct {
	const cfg_env_t *env;
	const char *kind;
	const char *path;
	cfg_loc_t loc;
} claim_t;

static size_t collect_files(const km_config_t *cfg, claim_t *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < cfg->n_envs; i++) {
		const cfg_env_t *env = cfg->envs[i];
		if (n < max && env->pub.store != NULL)
			out[n++] = (claim_t){ env, "store", env->pub.store, env->store_loc };
		for (size_t s = 0; s < env->pub.n_snapshots && n < max; s++)
			out[n++] = (claim_t){ env, "snapshot file", env->pub.snapshots[s],
			                      env->snapshot_loc[s] };
		if (n < max && env->pub.static_dir != NULL)
			out[n++] = (claim_t){ env, "static tree", env->pub.static_dir,
			                      env->static_loc };
	}
	return n;
}

/* Two PostgreSQL stores are the same when they name one database and schema, however the
 * URIs are spelt; a URI is never a file. */
static bool claims_same(const claim_t *a, const claim_t *b)
{
	bool pa = km_pguri_is(a->path), pb = km_pguri_is(b->path);
	if (pa != pb)
		return false;
	if (!pa)
		return cfg_path_same(a->path, b->path);
	km_pguri_t ua, ub;
	char ignored[200];
	return km_pguri_parse(a->path, &ua, ignored, sizeof(ignored)) == KM_EOK &&
	       km_pguri_parse(b->path, &ub, ignored, sizeof(ignored)) == KM_EOK &&
	       km_pguri_same(&ua, &ub);
}

static int check_files(km_config_t *cfg, cfg_err_t *e)
{
	claim_t local[KM_CONFIG_MAX_ENVS * (2 + KM_CONFIG_MAX_SNAPSHOTS)];
	size_t n = collect_files(cfg, local, sizeof(local) / sizeof(local[0]));
	int r;
	for (size_t j = 0; j < n; j++) {
		for (size_t i = 0; i < j; i++) {
			if (!claims_same(&local[i], &local[j]))
				continue;
			char what[400];
			if (local[i].env == local[j].env) {
				cfg_errorf(e, local[j].loc, "environment '%s' uses %.200s both as %s and as "
				           "%s (first at %s:%d:%d)", local[j].env->pub.name, local[j].path,
				           local[i].kind, local[j].kind, local[i].loc.file, local[i].loc.line,
				           local[i].loc.col);
				r = cfg_record(cfg, e, KM_CONFIG_EINVAL, CFG_SCOPE_ENV,
				               local[j].env->pub.name, NULL, NULL);
				if (r != KM_EOK)
					return r;
				continue;
			}
			char shown[256];
			km_pguri_redact(local[j].path, shown, sizeof(shown));
			snprintf(what, sizeof(what), "%s (%.200s, %s of '%s', %s of '%s')",
			         km_pguri_is(local[j].path) ? "a PostgreSQL database and schema" :
			         "a file", shown, local[i].kind, local[i].env->pub.name, local[j].kind,
			         local[j].env->pub.name);
			if ((r = wall_error(cfg, e, local[j].loc, local[i].env, local[j].env, what,
			                    local[i].loc)) != KM_EOK)
				return r;
		}
	}
	return KM_EOK;
}

int cfg_wall_check(km_config_t *cfg, cfg_err_t *e)
{
	for (size_t j = 0; j < cfg->n_envs; j++) {
		const cfg_env_t *b = cfg->envs[j];
		int r0 = check_audit_token(cfg, b, e);
		if (r0 != KM_EOK)
			return r0;
		for (size_t i = 0; i < j; i++) {
			const cfg_env_t *a = cfg->envs[i];
			int r = check_token(cfg, a, b, e);
			if (r != KM_EOK)
				return r;
			if (http_overlap(a->pub.http_path, b->pub.http_path)) {
				char what[300];
				snprintf(what, sizeof(what), "an HTTP path ('%s' and '%s' overlap)",
				         a->pub.http_path, b->pub.http_path);
				if ((r = wall_error(cfg, e, b->http_loc, a, b, what, a->http_loc)) != KM_EOK)
					return r;
			}
		}
	}
	return check_files(cfg, e);
}
