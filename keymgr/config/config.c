/* SPDX-License-Identifier: Apache-2.0 */
/* Loading a configuration (main file, then includes, then wall and policies) and reading it. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libfyaml.h>

#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/config/config_int.h"

static int load_file(km_config_t *cfg, const char *path, const char *display, bool main_file,
                     cfg_err_t *e)
{
	struct fy_document *doc = NULL;
	int r = cfg_yaml_load(path, display, &doc, e);
	if (r != KM_EOK)
		return r;
	if (main_file)
		r = cfg_parse_main(cfg, doc, display, e);
	else
		r = cfg_parse_include(cfg, doc, display, e);
	fy_document_destroy(doc);
	return r;
}

static int load_includes(km_config_t *cfg, cfg_err_t *e)
{
	const cfg_includes_t *inc = &cfg->includes;
	for (size_t i = 0; i < inc->n; i++) {
		for (size_t j = 0; j < i; j++) {
			if (cfg_path_same(inc->path[i], inc->path[j])) {
				cfg_errorf(e, inc->loc[i], "include: %s is already included at line %d",
				           inc->path[i], inc->loc[j].line);
				return KM_CONFIG_EINVAL;
			}
		}
		if (cfg_path_same(inc->path[i], cfg->path)) {
			cfg_errorf(e, inc->loc[i], "include: a file cannot include itself");
			return KM_CONFIG_EINVAL;
		}
		/* File-level failures (missing, unreadable) are reported where the include is. */
		char inner[1024];
		cfg_err_t ie = { inner, sizeof(inner), false };
		int r = load_file(cfg, inc->path[i], inc->path[i], false, &ie);
		if (r == KM_EOK)
			continue;
		if (r == KM_ENOENT || r == KM_EACCES)
			cfg_errorf(e, inc->loc[i], "include: %s", ie.set ? inner : km_strerror(r));
		else if (ie.set && e->buf != NULL && e->len > 0 && !e->set) {
			snprintf(e->buf, e->len, "%s", inner);   /* already "INCLUDE:LINE:COL: ..." */
			e->set = true;
		}
		return r;
	}
	return KM_EOK;
}

/* The first recorded error that makes the load fail: any error (strict), or one that
 * breaks the whole file (partial). */
static const cfg_error_t *refusing_error(const km_config_t *cfg, bool partial)
{
	for (const cfg_error_t *er = cfg->errors; er != NULL; er = er->next)
		if (!partial || er->scope == CFG_SCOPE_FILE)
			return er;
	return NULL;
}

/*
 * Loads path. Errors of the parts (environments, key sets, policies, daemon) are recorded in
 * the configuration as they are found; a file-level one stops the load at once. Then a
 * strict load fails on the first recorded error and a partial one on the first file-level
 * error.
 */
static int load(const char *path, bool partial, km_config_t **ret, char *err, size_t errlen)
{
	char buf[1024] = "";
	cfg_err_t e = { buf, sizeof(buf), false };
	km_config_t *cfg = NULL;
	int r = KM_ERROR;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (path == NULL || *path == '\0' || ret == NULL) {
		cfg_errorf(&e, (cfg_loc_t){ "(config)", 0, 0 }, "no configuration file given");
		r = KM_EINVAL;
		goto out;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	char cwd[PATH_MAX];
	if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) == NULL) {
		cfg_errorf(&e, (cfg_loc_t){ path, 0, 0 }, "cannot resolve a relative path: the "
		           "current directory is not accessible");
		r = KM_EACCES;
		goto out;
	}
	const char *display = cfg_strdup(cfg, path);
	cfg->path = cfg_path_resolve(cfg, path[0] == '/' ? "/" : cwd, path);
	cfg->dir = cfg->path ? cfg_path_dirname(cfg, cfg->path) : NULL;
	if (display == NULL || cfg->path == NULL || cfg->dir == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	cfg->daemon.listen = KM_CONFIG_DEFAULT_LISTEN;
	cfg->daemon.port = KM_CONFIG_DEFAULT_PORT;
	cfg->daemon.listener_user = KM_CONFIG_DEFAULT_LISTENER_USER;
	cfg->daemon.admin_listen = KM_CONFIG_DEFAULT_ADMIN_LISTEN;
	cfg->daemon.control_socket = KM_CONFIG_DEFAULT_CONTROL_SOCKET;
	cfg->daemon.poll_interval = KM_CONFIG_DEFAULT_POLL_INTERVAL;
	cfg->daemon.lease = KM_CONFIG_DEFAULT_LEASE;
	cfg->daemon.denial_interval = KM_CONFIG_DEFAULT_DENIAL_INTERVAL;
	cfg->daemon.control_reserved = KM_CONFIG_DEFAULT_CONTROL_RESERVED;

	/* The main file's own failures (missing, syntax) and the includes' are file-level. */
	if ((r = load_file(cfg, cfg->path, display, true, &e)) == KM_EOK)
		r = load_includes(cfg, &e);
	if (r != KM_EOK) {
		if (cfg->errors_tail == NULL || cfg->errors_tail->scope != CFG_SCOPE_FILE)
			r = cfg_record(cfg, &e, r, CFG_SCOPE_FILE, NULL, NULL, NULL);
	} else if ((r = cfg_wall_check(cfg, &e)) == KM_EOK) {
		r = cfg_policy_compute(cfg, &e);
	}
	const cfg_error_t *bad = refusing_error(cfg, partial);
	if (bad != NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s", bad->msg);
		r = bad->code;
		goto out;
	}
	if (r != KM_EOK)
		goto out;
	*ret = cfg;
	cfg = NULL;
	r = KM_EOK;
out:
	if (r != KM_EOK && err != NULL && errlen > 0 && err[0] == '\0') {
		if (e.set)
			snprintf(err, errlen, "%s", buf);
		else
			snprintf(err, errlen, "%s: %s", path ? path : "(config)", km_strerror(r));
	}
	km_config_free(cfg);
	return r;
}

int km_config_load(const char *path, km_config_t **ret, char *err, size_t errlen)
{
	return load(path, false, ret, err, errlen);
}

int km_config_load_partial(const char *path, km_config_t **ret, char *err, size_t errlen)
{
	return load(path, true, ret, err, errlen);
}

void km_config_free(km_config_t *cfg)
{
	if (cfg == NULL)
		return;
	cfg_pool_free(cfg);
	free(cfg);
}

const char *km_config_path(const km_config_t *cfg)
{
	return cfg->path;
}

/* Environments with errors of their own (cfg_env_t.broken) are not handed out. */
size_t km_config_env_count(const km_config_t *cfg)
{
	size_t n = 0;
	for (size_t i = 0; i < cfg->n_envs; i++)
		n += !cfg->envs[i]->broken;
	return n;
}

const km_env_cfg_t *km_config_env_at(const km_config_t *cfg, size_t i)
{
	for (size_t j = 0; j < cfg->n_envs; j++) {
		if (cfg->envs[j]->broken)
			continue;
		if (i-- == 0)
			return &cfg->envs[j]->pub;
	}
	return NULL;
}

const km_env_cfg_t *km_config_env(const km_config_t *cfg, const char *name)
{
	if (name == NULL || !km_name_env_valid(name))
		return NULL;
	const cfg_env_t *env = cfg_env_find(cfg, name);
	return env && !env->broken ? &env->pub : NULL;
}

char *km_config_env_names(const km_config_t *cfg, char *buf, size_t len)
{
	if (len == 0)
		return buf;
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < cfg->n_envs; i++) {
		if (cfg->envs[i]->broken)
			continue;
		int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", cfg->envs[i]->pub.name);
		if (w < 0 || (size_t)w >= len - n) {
			if (len >= 4)
				memcpy(buf + len - 4, "...", 4);
			break;
		}
		n += (size_t)w;
	}
	return buf;
}

int km_config_env_lookup(const km_config_t *cfg, const char *name, const km_env_cfg_t **ret,
                         char *err, size_t errlen)
{
	char known[256];
	if (name == NULL || !km_name_env_valid(name)) {
		char shown[80] = "";
		if (name != NULL) {
			snprintf(shown, sizeof(shown), "%.64s", name);
			for (char *c = shown; *c != '\0'; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					*c = '?';
		}
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "invalid environment name '%s' (known: %s)", shown,
			         km_config_env_names(cfg, known, sizeof(known)));
		return KM_ENAME;
	}
	const cfg_env_t *broken = cfg_env_find(cfg, name);
	if (broken != NULL && broken->broken)
		return cfg_env_broken_message(cfg, name, err, errlen);
	const km_env_cfg_t *env = km_config_env(cfg, name);
	if (env == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "unknown environment '%s' (known: %s)", name,
			         km_config_env_names(cfg, known, sizeof(known)));
		return KM_ENOENT;
	}
	*ret = env;
	return KM_EOK;
}

const km_keyset_cfg_t *km_config_keyset(const km_config_t *cfg, const char *env,
                                        const char *keyset)
{
	if (env == NULL || keyset == NULL || !km_name_env_valid(env))
		return NULL;
	const cfg_env_t *e = cfg_env_find(cfg, env);
	const cfg_keyset_t *ks = e && !e->broken ? cfg_keyset_find(e, keyset) : NULL;
	return ks && !ks->broken && !e->policy_broken ? &ks->pub : NULL;
}

int km_config_keyset_policy(const km_config_t *cfg, const char *env, const char *keyset,
                            km_policy_t *out)
{
	const km_env_cfg_t *e = km_config_env(cfg, env);
	if (e == NULL)
		return env != NULL && km_name_env_valid(env) && cfg_env_find(cfg, env) != NULL
		       ? KM_CONFIG_EBROKEN : KM_ENOENT;
	if (keyset == NULL || !km_name_keyset_valid(keyset))
		return KM_ENAME;
	/* Never the environment's policy in place of a key set entry that has errors. */
	if (cfg_policy_blocked(cfg, env, keyset))
		return KM_CONFIG_EBROKEN;
	const km_keyset_cfg_t *ks = km_config_keyset(cfg, env, keyset);
	*out = ks ? ks->policy : e->policy;
	return KM_EOK;
}

const km_daemon_cfg_t *km_config_daemon(const km_config_t *cfg)
{
	return &cfg->daemon;
}
