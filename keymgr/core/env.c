/* SPDX-License-Identifier: Apache-2.0 */
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/core/documents.h"
#include "keymgr/core/env.h"
#include "keymgr/core/pin_refusal.h"

struct km_env {
	const km_config_t *cfg;
	const km_env_cfg_t *ecfg;
	km_store_t *store;
	km_token_t *token;
	km_token_t *audit_token;        /* audit.token, when configured and opened */
	const km_env_hooks_t *hooks;    /* registered when it was opened, or NULL */
	void *hook_state;               /* what hooks->attach kept */
};

static const km_env_hooks_t *registered_hooks;

void km_env_set_hooks(const km_env_hooks_t *hooks)
{
	registered_hooks = hooks;
}

int km_env_open(const km_config_t *cfg, const char *name, km_env_t **ret, char *err,
                size_t errlen)
{
	const km_env_cfg_t *ecfg = NULL;
	int r = km_config_env_lookup(cfg, name, &ecfg, err, errlen);
	if (r != KM_EOK)
		return r;

	km_env_t *env = calloc(1, sizeof(*env));
	if (env == NULL)
		return KM_ENOMEM;
	env->cfg = cfg;
	env->ecfg = ecfg;
	r = km_store_open(ecfg->store, ecfg->name, &env->store, err, errlen);
	if (r != KM_EOK) {
		free(env);
		return r;
	}
	/* A shared store's documents are written by every change's own transaction, rendered
	 * from this configuration (documents.h). */
	km_store_set_docs_renderer(env->store, km_env_docs_render, env);
	/* What the program attaches (keymgr, keymgrd: the audit context, before any change is
	 * made through this environment). */
	env->hooks = registered_hooks;
	if (env->hooks != NULL && env->hooks->attach != NULL &&
	    (r = env->hooks->attach(env, &env->hook_state, err, errlen)) != KM_EOK) {
		km_env_free(env);
		return r;
	}
	*ret = env;
	return KM_EOK;
}

void km_env_free(km_env_t *env)
{
	if (env == NULL)
		return;
	km_token_free(env->audit_token);
	km_token_free(env->token);
	km_store_free(env->store);
	if (env->hooks != NULL && env->hooks->detach != NULL)
		env->hooks->detach(env->hook_state);
	free(env);
}

const char *km_env_name(const km_env_t *env)
{
	return env->ecfg->name;
}

const km_env_cfg_t *km_env_cfg(const km_env_t *env)
{
	return env->ecfg;
}

const km_config_t *km_env_config(const km_env_t *env)
{
	return env->cfg;
}

km_store_t *km_env_store(km_env_t *env)
{
	return env->store;
}

void *km_env_hook_state(const km_env_t *env, const km_env_hooks_t *hooks)
{
	return env->hooks == hooks ? env->hook_state : NULL;
}

/* What the refusal of the audit token's PIN is recorded under: the store's path plus this
 * (STORE.audit.pin-refused), apart from the environment's PIN, so that a login with one PIN
 * never clears the refusal of the other. */
#define AUDIT_GATE_SUFFIX ".audit"

/* Tells t what earlier processes learned of it (km_env_token_learned): the CKA_ID length it
 * keeps, or that it assigns ids itself. A store that cannot be read here only costs the
 * relearning (one pair made and destroyed, or one intent abandoned). */
static void recall_learned(km_env_t *env, km_token_t *t)
{
	km_token_info_t info;
	size_t len = 0;
	bool assigns = false;
	km_token_get_info(t, &info);
	if (km_store_token_id_len(env->store, info.serial, info.label, &len, NULL, 0) == KM_EOK)
		km_token_set_id_len(t, len);
	if (km_store_token_assigns_ids(env->store, info.serial, info.label, &assigns, NULL,
	                               0) == KM_EOK && assigns)
		km_token_set_assigns_ids(t);
}

int km_env_token_learned(km_env_t *env, km_token_t *t, char *err, size_t errlen)
{
	km_token_info_t info;
	size_t len = km_token_id_len(t);
	km_token_get_info(t, &info);
	if (km_token_assigns_ids(t))
		return km_store_token_assigns_ids_record(env->store, info.serial, info.label, err,
		                                         errlen);
	if (len >= KM_TOKEN_ID_LEN)
		return KM_EOK;
	return km_store_token_id_len_record(env->store, info.serial, info.label, len, err, errlen);
}

/*
 * Opens *slot with cfg on first use, behind the PIN gate of gate_key (a store path,
 * pin_refusal.h). what: "" or "audit token: " for messages.
 */
static int open_token(km_env_t *env, const km_token_cfg_t *cfg, const char *gate_key,
                      km_token_t **slot, const char *what, char *err, size_t errlen)
{
	if (*slot == NULL) {
		char msg[1024] = "";
		km_token_cfg_t tc = *cfg;
		int r = km_pin_refusal_gate(gate_key, env->ecfg->name, &tc.pin_gate);
		if (r != KM_EOK) {
			snprintf(err, errlen, "environment '%s': %s%s", env->ecfg->name, what,
			         km_strerror(r));
			return r;
		}
		r = km_token_open(&tc, slot, msg, sizeof(msg));
		if (r != KM_EOK) {
			snprintf(err, errlen, "environment '%s': %s%s", env->ecfg->name, what,
			         msg[0] ? msg : km_strerror(r));
			*slot = NULL;
			return r;
		}
		recall_learned(env, *slot);
	}
	return KM_EOK;
}

/* The environment wall on the token's identity marker: a token marked for another
 * environment is never used here. Closes the token when it refuses it. */
static int check_marker(km_env_t *env, char *err, size_t errlen)
{
	char marked[KM_TOKEN_MARKER_MAX];
	km_token_info_t info;
	int r = km_token_marker_read(env->token, marked, sizeof(marked));
	if (r == KM_EOK && (marked[0] == '\0' || strcmp(marked, env->ecfg->name) == 0))
		return KM_EOK;
	km_token_get_info(env->token, &info);
	if (r != KM_EOK) {
		snprintf(err, errlen, "environment '%s': cannot read the identity marker of token "
		         "'%s': %s", env->ecfg->name, info.label, km_token_last_error(env->token));
	} else {
		r = KM_EWRONGENV;
		snprintf(err, errlen, "environment '%s': token '%s' (serial %s) is marked for "
		         "environment '%s' (its identity marker, written by `keymgr token init "
		         "--env %s`): refused", env->ecfg->name, info.label, info.serial, marked,
		         marked);
	}
	km_token_free(env->token);
	env->token = NULL;
	return r;
}

int km_env_token(km_env_t *env, km_token_t **ret, char *err, size_t errlen)
{
	bool fresh = env->token == NULL;
	int r = open_token(env, &env->ecfg->token, env->ecfg->local, &env->token, "", err,
	                   errlen);
	if (r == KM_EOK && fresh && env->ecfg->token.pin_source != NULL)
		r = check_marker(env, err, errlen);
	if (r == KM_EOK)
		*ret = env->token;
	return r;
}

int km_env_mark_token(km_env_t *env, bool *ret_created, char *err, size_t errlen)
{
	km_token_t *t = NULL;
	bool created = false;
	int r = km_env_token(env, &t, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = km_token_marker_write(t, env->ecfg->name, &created)) != KM_EOK) {
		snprintf(err, errlen, "environment '%s': %s", env->ecfg->name,
		         km_token_last_error(t));
		return r;
	}
	*ret_created = created;
	return KM_EOK;
}

/* The gate key of the audit token's PIN (AUDIT_GATE_SUFFIX). KM_EOK or KM_ERANGE. */
static int audit_gate_key(const km_env_t *env, char key[PATH_MAX])
{
	if ((size_t)snprintf(key, PATH_MAX, "%s" AUDIT_GATE_SUFFIX, env->ecfg->local) >= PATH_MAX)
		return KM_ERANGE;
	return KM_EOK;
}

int km_env_audit_token(km_env_t *env, km_token_t **ret, char *err, size_t errlen)
{
	char key[PATH_MAX];
	if (!env->ecfg->has_audit_token)
		return km_env_token(env, ret, err, errlen);
	int r = audit_gate_key(env, key);
	if (r == KM_EOK)
		r = open_token(env, &env->ecfg->audit_token, key, &env->audit_token, "audit token: ",
		               err, errlen);
	else
		snprintf(err, errlen, "environment '%s': store path too long", env->ecfg->name);
	if (r == KM_EOK)
		*ret = env->audit_token;
	return r;
}

km_token_t *km_env_token_if_open(km_env_t *env)
{
	return env->token;
}

void km_env_close_token(km_env_t *env)
{
	if (env == NULL)
		return;
	km_token_free(env->audit_token);
	km_token_free(env->token);
	env->audit_token = NULL;
	env->token = NULL;
}

int km_env_pin_retry(km_env_t *env, char *err, size_t errlen)
{
	char why[PATH_MAX + 128] = "", key[PATH_MAX];
	int r = km_pin_refusal_forget(env->ecfg->local, why, sizeof(why));
	/* The audit token's PIN too: an explicit retry is for every PIN of the environment. */
	if (r == KM_EOK && env->ecfg->has_audit_token && (r = audit_gate_key(env, key)) == KM_EOK)
		r = km_pin_refusal_forget(key, why, sizeof(why));
	if (r != KM_EOK)
		snprintf(err, errlen, "environment '%s': %s", env->ecfg->name,
		         why[0] ? why : km_strerror(r));
	return r;
}

int km_env_login(km_env_t *env, char *err, size_t errlen)
{
	km_token_t *t = NULL;
	int r;
	if (env->ecfg->token.pin_source == NULL) {
		snprintf(err, errlen, "environment '%s' has no PIN source: nothing to log in with",
		         env->ecfg->name);
		return KM_EINVAL;
	}
	if ((r = km_env_pin_retry(env, err, errlen)) != KM_EOK)
		return r;
	km_env_close_token(env);
	if ((r = km_env_token(env, &t, err, errlen)) != KM_EOK)
		return r;
	return km_env_audit_token(env, &t, err, errlen);
}

int km_env_keyset_policy(const km_env_t *env, const char *keyset, km_policy_t *ret)
{
	return km_config_keyset_policy(env->cfg, env->ecfg->name, keyset, ret);
}

/*
 * Calls fn for every other environment whose store file exists and opens. Stops when fn
 * returns non-zero and returns that value.
 */
static int each_other_store(km_env_t *env, int (*fn)(const km_env_cfg_t *, km_store_t *, void *),
                            void *ctx)
{
	for (size_t i = 0; i < km_config_env_count(env->cfg); i++) {
		const km_env_cfg_t *other = km_config_env_at(env->cfg, i);
		if (other == env->ecfg || !km_store_exists(other->store))
			continue;
		km_store_t *s = NULL;
		char ignored[256];
		if (km_store_open(other->store, other->name, &s, ignored, sizeof(ignored)) != KM_EOK)
			continue;
		int r = fn(other, s, ctx);
		km_store_free(s);
		if (r != 0)
			return r;
	}
	return 0;
}

typedef struct {
	const char *kid;
	const char *found_in;
} kid_search_t;

static int find_kid(const km_env_cfg_t *other, km_store_t *s, void *ctx)
{
	kid_search_t *q = ctx;
	bool exists = false;
	char ignored[256];
	if (km_store_kid_exists(s, q->kid, &exists, ignored, sizeof(ignored)) != KM_EOK || !exists)
		return 0;
	q->found_in = other->name;
	return 1;
}

int km_env_explain_unknown_kid(km_env_t *env, const char *kid, char *err, size_t errlen)
{
	if (!km_name_kid_valid(kid)) {
		snprintf(err, errlen, "invalid kid: expected 1 to %d base64url characters",
		         KM_KID_MAX);
		return KM_EINVAL;
	}
	kid_search_t q = { kid, NULL };
	each_other_store(env, find_kid, &q);
	if (q.found_in != NULL) {
		snprintf(err, errlen, "kid %s belongs to environment '%s', not '%s': refused",
		         kid, q.found_in, env->ecfg->name);
		return KM_EWRONGENV;
	}
	snprintf(err, errlen, "unknown kid %s in environment '%s'", kid, env->ecfg->name);
	return KM_ENOENT;
}

int km_env_kid_unique(km_env_t *env, const char *kid, char *err, size_t errlen)
{
	kid_search_t q = { kid, NULL };
	each_other_store(env, find_kid, &q);
	if (q.found_in != NULL) {
		snprintf(err, errlen, "kid %s already exists in environment '%s': kids must be "
		         "unique across environments", kid, q.found_in);
		return KM_EEXIST;
	}
	return KM_EOK;
}

const char *km_env_actor(char *buf, size_t len)
{
	uid_t uid = getuid();
	struct passwd *pw = getpwuid(uid);
	char host[64] = "";
	if (gethostname(host, sizeof(host) - 1) != 0)
		strcpy(host, "unknown");
	snprintf(buf, len, "%s(%u)@%s", pw ? pw->pw_name : "uid", (unsigned)uid, host);
	return buf;
}
