/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Recorded configuration errors and what they break (config_int.h, cfg_scope_t), and the
 * questions a caller of km_config_load_partial() asks: is the environment I need intact, is
 * this key set's policy intact, is the daemon section intact.
 *
 * Nothing is guessed: a part an error touches is not handed out at all (an environment), or
 * every accessor of it refuses (a key set's policy), so no caller can fall back to a default
 * where the file meant something else.
 */
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/config/config_int.h"

static const char *pool_or_null(km_config_t *cfg, const char *s)
{
	return s != NULL ? cfg_strdup(cfg, s) : NULL;
}

static bool streq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static void mark(km_config_t *cfg, const cfg_error_t *er)
{
	switch (er->scope) {
	case CFG_SCOPE_ENV:
		for (size_t i = 0; i < cfg->n_envs; i++)
			if (streq(cfg->envs[i]->pub.name, er->env) ||
			    streq(cfg->envs[i]->pub.name, er->env2))
				cfg->envs[i]->broken = true;
		break;
	case CFG_SCOPE_POLICIES:
		for (size_t i = 0; i < cfg->n_envs; i++)
			cfg->envs[i]->policy_broken = true;
		break;
	case CFG_SCOPE_ENV_POLICY: {
		cfg_env_t *env = er->env ? cfg_env_find(cfg, er->env) : NULL;
		if (env != NULL)
			env->policy_broken = true;
		break;
	}
	case CFG_SCOPE_KEYSET: {
		cfg_env_t *env = er->env ? cfg_env_find(cfg, er->env) : NULL;
		cfg_keyset_t *ks = env && er->keyset ? cfg_keyset_find(env, er->keyset) : NULL;
		if (ks != NULL)
			ks->broken = true;
		break;
	}
	case CFG_SCOPE_DAEMON:
		cfg->daemon_broken = true;
		break;
	case CFG_SCOPE_PROBE:
		memset(&cfg->probe, 0, sizeof(cfg->probe));   /* nothing may be probed */
		break;
	case CFG_SCOPE_FILE:
	case CFG_SCOPE_NONE:
		break;
	}
}

int cfg_record(km_config_t *cfg, cfg_err_t *e, int r, cfg_scope_t scope, const char *env,
               const char *env2, const char *keyset)
{
	if (r == KM_ENOMEM)
		scope = CFG_SCOPE_FILE;
	char msg[1024];
	snprintf(msg, sizeof(msg), "%s", e->set && e->buf != NULL ? e->buf : km_strerror(r));
	e->set = false;
	if (e->buf != NULL && e->len > 0)
		e->buf[0] = '\0';
	cfg_error_t *er = cfg_alloc(cfg, sizeof(*er));
	if (er == NULL || (er->msg = cfg_strdup(cfg, msg)) == NULL)
		return KM_ENOMEM;
	er->scope = scope;
	er->code = r;
	er->env = pool_or_null(cfg, env);
	er->env2 = pool_or_null(cfg, env2);
	er->keyset = pool_or_null(cfg, keyset);
	if ((env != NULL && er->env == NULL) || (env2 != NULL && er->env2 == NULL) ||
	    (keyset != NULL && er->keyset == NULL))
		return KM_ENOMEM;
	if (cfg->errors_tail != NULL)
		cfg->errors_tail->next = er;
	else
		cfg->errors = er;
	cfg->errors_tail = er;
	cfg->n_errors++;
	mark(cfg, er);
	return scope == CFG_SCOPE_FILE ? r : KM_EOK;
}

/* Whether er breaks the policy of key set keyset of env (keyset NULL: of env itself). */
static bool breaks_policy(const cfg_error_t *er, const char *env, const char *keyset)
{
	switch (er->scope) {
	case CFG_SCOPE_POLICIES:
		return true;
	case CFG_SCOPE_ENV_POLICY:
		return streq(er->env, env);
	case CFG_SCOPE_KEYSET:
		return keyset != NULL && streq(er->env, env) && streq(er->keyset, keyset);
	default:
		return false;
	}
}

static bool breaks_env(const cfg_error_t *er, const char *env)
{
	return er->scope == CFG_SCOPE_ENV && (streq(er->env, env) || streq(er->env2, env));
}

bool cfg_policy_blocked(const km_config_t *cfg, const char *env, const char *keyset)
{
	for (const cfg_error_t *er = cfg->errors; er != NULL; er = er->next)
		if (breaks_policy(er, env, keyset))
			return true;
	return false;
}

/* Which errors collect() gathers for an environment. */
typedef enum {
	TOUCH_ENV,            /* its own sections */
	TOUCH_KEYSET,         /* those and one key set's policy */
	TOUCH_ANY,            /* those and any of its key sets' policies */
} touch_t;

static bool touches(const cfg_error_t *er, const char *env, const char *keyset, touch_t t)
{
	if (breaks_env(er, env))
		return true;
	if (t == TOUCH_ANY && er->scope == CFG_SCOPE_KEYSET)
		return streq(er->env, env);
	return t != TOUCH_ENV && breaks_policy(er, env, keyset);
}

/* Writes the messages of the errors that touch env into err, joined by "; ". Their number. */
static size_t collect(const km_config_t *cfg, const char *env, const char *keyset, touch_t t,
                      char *err, size_t errlen)
{
	size_t n = 0, count = 0;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	for (const cfg_error_t *er = cfg->errors; er != NULL; er = er->next) {
		if (!touches(er, env, keyset, t))
			continue;
		if (err != NULL && errlen > 0 && n < errlen) {
			int w = snprintf(err + n, errlen - n, "%s%s", count ? "; " : "", er->msg);
			if (w > 0)
				n += (size_t)w;
		}
		count++;
	}
	return count;
}

size_t km_config_env_errors(const km_config_t *cfg, const char *env, char *err, size_t errlen)
{
	return collect(cfg, env, NULL, TOUCH_ANY, err, errlen);
}

int km_config_env_policy(const km_config_t *cfg, const char *env, km_policy_t *ret)
{
	const km_env_cfg_t *e = km_config_env(cfg, env);
	if (e == NULL)
		return env != NULL && km_name_env_valid(env) && cfg_env_find(cfg, env) != NULL
		       ? KM_CONFIG_EBROKEN : KM_ENOENT;
	if (cfg_policy_blocked(cfg, env, NULL))
		return KM_CONFIG_EBROKEN;
	*ret = e->policy;
	return KM_EOK;
}

bool km_config_envs_complete(const km_config_t *cfg)
{
	for (const cfg_error_t *er = cfg->errors; er != NULL; er = er->next)
		if (er->scope == CFG_SCOPE_ENV || er->scope == CFG_SCOPE_NONE)
			return false;
	return true;
}

size_t km_config_error_count(const km_config_t *cfg)
{
	return cfg->n_errors;
}

const char *km_config_error_at(const km_config_t *cfg, size_t i)
{
	const cfg_error_t *er = cfg->errors;
	for (; er != NULL && i > 0; i--)
		er = er->next;
	return er ? er->msg : NULL;
}

int cfg_env_broken_message(const km_config_t *cfg, const char *name, char *err, size_t errlen)
{
	char why[768] = "";
	collect(cfg, name, NULL, TOUCH_ENV, why, sizeof(why));
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "environment '%s' cannot be used: its configuration has errors "
		         "(nothing is guessed for a token, store, HTTP or audit setting): %s", name,
		         why);
	return KM_CONFIG_EBROKEN;
}

int km_config_check(const km_config_t *cfg, const char *env, const char *keyset, char *err,
                    size_t errlen)
{
	const km_env_cfg_t *e = NULL;
	int r = km_config_env_lookup(cfg, env, &e, err, errlen);
	if (r != KM_EOK)
		return r;
	if (keyset == NULL)
		return KM_EOK;
	if (!km_name_keyset_valid(keyset)) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "invalid key set name");
		return KM_ENAME;
	}
	char why[768] = "";
	if (collect(cfg, env, keyset, TOUCH_KEYSET, why, sizeof(why)) == 0)
		return KM_EOK;
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "the configuration of key set %s/%s has errors (its policy is "
		         "not used): %s", env, keyset, why);
	return KM_CONFIG_EBROKEN;
}

int km_config_daemon_check(const km_config_t *cfg, char *err, size_t errlen)
{
	if (!cfg->daemon_broken)
		return KM_EOK;
	size_t n = 0;
	if (err != NULL && errlen > 0) {
		n = (size_t)snprintf(err, errlen, "the daemon section has errors:");
		for (const cfg_error_t *er = cfg->errors; er != NULL && n < errlen; er = er->next)
			if (er->scope == CFG_SCOPE_DAEMON)
				n += (size_t)snprintf(err + n, errlen - n, " %s", er->msg);
	}
	return KM_CONFIG_EBROKEN;
}
