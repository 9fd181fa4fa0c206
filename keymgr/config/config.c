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
		char inner[512];
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

int km_config_load(const char *path, km_config_t **ret, char *err, size_t errlen)
{
	char local[16];
	cfg_err_t e = { err ? err : local, err ? errlen : sizeof(local), false };
	km_config_t *cfg = NULL;
	int r = KM_ERROR;
	if (path == NULL || *path == '\0' || ret == NULL) {
		cfg_errorf(&e, (cfg_loc_t){ "(config)", 0, 0 }, "no configuration file given");
		r = KM_EINVAL;
		goto out;
	}
	if (e.len > 0)
		e.buf[0] = '\0';
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
	cfg->daemon.control_socket = KM_CONFIG_DEFAULT_CONTROL_SOCKET;
	cfg->daemon.poll_interval = KM_CONFIG_DEFAULT_POLL_INTERVAL;

	if ((r = load_file(cfg, cfg->path, display, true, &e)) != KM_EOK)
		goto out;
	if ((r = load_includes(cfg, &e)) != KM_EOK)
		goto out;
	if ((r = cfg_wall_check(cfg, &e)) != KM_EOK)
		goto out;
	if ((r = cfg_policy_compute(cfg, &e)) != KM_EOK)
		goto out;
	*ret = cfg;
	cfg = NULL;
	r = KM_EOK;
out:
	if (r != KM_EOK && !e.set)
		cfg_errorf(&e, (cfg_loc_t){ path ? path : "(config)", 0, 0 }, "%s", km_strerror(r));
	km_config_free(cfg);
	return r;
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

size_t km_config_env_count(const km_config_t *cfg)
{
	return cfg->n_envs;
}

const km_env_cfg_t *km_config_env_at(const km_config_t *cfg, size_t i)
{
	return i < cfg->n_envs ? &cfg->envs[i]->pub : NULL;
}

const km_env_cfg_t *km_config_env(const km_config_t *cfg, const char *name)
{
	if (name == NULL || !km_name_env_valid(name))
		return NULL;
	const cfg_env_t *env = cfg_env_find(cfg, name);
	return env ? &env->pub : NULL;
}

char *km_config_env_names(const km_config_t *cfg, char *buf, size_t len)
{
	if (len == 0)
		return buf;
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < cfg->n_envs; i++) {
		int w = snprintf(buf + n, len - n, "%s%s", i ? ", " : "", cfg->envs[i]->pub.name);
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
	const cfg_keyset_t *ks = e ? cfg_keyset_find(e, keyset) : NULL;
	return ks ? &ks->pub : NULL;
}

int km_config_keyset_policy(const km_config_t *cfg, const char *env, const char *keyset,
                            km_policy_t *out)
{
	const km_env_cfg_t *e = km_config_env(cfg, env);
	if (e == NULL)
		return KM_ENOENT;
	if (keyset == NULL || !km_name_keyset_valid(keyset))
		return KM_ENAME;
	const km_keyset_cfg_t *ks = km_config_keyset(cfg, env, keyset);
	*out = ks ? ks->policy : e->policy;
	return KM_EOK;
}

const km_daemon_cfg_t *km_config_daemon(const km_config_t *cfg)
{
	return &cfg->daemon;
}
