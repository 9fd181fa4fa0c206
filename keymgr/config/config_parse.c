/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The keymgr.yaml schema: walks the documents of the main file and of the include files and
 * fills the km_config_t. Every key is checked against the schema (typos are errors) and
 * every value against its type, with the position of the offending node.
 */
#include <arpa/inet.h>
#include <libfyaml.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/common/pguri.h"
#include "keymgr/common/url.h"
#include "keymgr/config/config_int.h"

#define WHERE_MAX 160

/* State of one file walk. */
typedef struct {
	km_config_t *cfg;
	const char *file;      /* pool-owned display name */
	bool main;             /* main file (full schema) or include file (policies only) */
	cfg_err_t *e;
} walk_t;

static cfg_loc_t loc0(const walk_t *w)
{
	cfg_loc_t at = { w->file, 0, 0 };
	return at;
}

static int oom(walk_t *w)
{
	cfg_errorf(w->e, loc0(w), "out of memory");
	return KM_ENOMEM;
}

/*
 * An error r of the part scope (env, keyset) is recorded and the walk goes on with the next
 * part; KM_EOK is returned. A file-level error (or KM_ENOMEM) is recorded and returned.
 */
static int caught(walk_t *w, int r, cfg_scope_t scope, const char *env, const char *keyset)
{
	if (r == KM_EOK)
		return KM_EOK;
	const cfg_error_t *last = w->cfg->errors_tail;
	if (!w->e->set && last != NULL && last->scope == CFG_SCOPE_FILE)
		return r;   /* recorded where it happened, and stopping the walk */
	return cfg_record(w->cfg, w->e, r, scope, env, NULL, keyset);
}

static bool has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* A scalar without control characters, 1..max bytes, copied into the pool. */
static int get_text(walk_t *w, struct fy_node *n, cfg_loc_t at, const char *what, size_t max,
                    const char **ret)
{
	const char *s = NULL;
	int r = cfg_yaml_scalar(n, at, what, &s, w->e);
	if (r != KM_EOK)
		return r;
	at = cfg_yaml_loc(n, at);
	if (*s == '\0') {
		cfg_errorf(w->e, at, "%s: must not be empty", what);
		return KM_CONFIG_EINVAL;
	}
	if (strlen(s) > max) {
		cfg_errorf(w->e, at, "%s: longer than %zu characters", what, max);
		return KM_CONFIG_EINVAL;
	}
	if (has_control(s)) {
		cfg_errorf(w->e, at, "%s: contains control characters", what);
		return KM_CONFIG_EINVAL;
	}
	/* The document is freed after the walk: keep a copy in the pool. */
	if ((*ret = cfg_strdup(w->cfg, s)) == NULL)
		return oom(w);
	return KM_EOK;
}

static int get_uint(walk_t *w, struct fy_node *n, cfg_loc_t at, const char *what,
                    unsigned min, unsigned max, unsigned *ret)
{
	const char *s = NULL;
	int r = cfg_yaml_scalar(n, at, what, &s, w->e);
	if (r != KM_EOK)
		return r;
	at = cfg_yaml_loc(n, at);
	unsigned long v = 0;
	bool ok = *s != '\0' && strlen(s) <= 10;
	for (const char *p = s; ok && *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			ok = false;
		else
			v = v * 10 + (unsigned long)(*p - '0');
	}
	if (!ok || v < min || v > max) {
		cfg_errorf(w->e, at, "%s: expected an integer from %u to %u", what, min, max);
		return KM_CONFIG_EINVAL;
	}
	*ret = (unsigned)v;
	return KM_EOK;
}

/* true or false. */
static int get_bool(walk_t *w, struct fy_node *n, cfg_loc_t at, const char *what, bool *ret)
{
	const char *s = NULL;
	int r = cfg_yaml_scalar(n, at, what, &s, w->e);
	if (r == KM_EOK && strcmp(s, "true") != 0 && strcmp(s, "false") != 0) {
		cfg_errorf(w->e, cfg_yaml_loc(n, at), "%s: expected true or false", what);
		r = KM_CONFIG_EINVAL;
	}
	if (r == KM_EOK)
		*ret = strcmp(s, "true") == 0;
	return r;
}

/* A path, resolved against the config file's directory. */
static int get_path(walk_t *w, struct fy_node *n, cfg_loc_t at, const char *what,
                    const char **ret)
{
	const char *s = NULL;
	int r = get_text(w, n, at, what, PATH_MAX - 1, &s);
	if (r != KM_EOK)
		return r;
	const char *abs = cfg_path_resolve(w->cfg, w->cfg->dir, s);
	if (abs == NULL) {
		cfg_errorf(w->e, cfg_yaml_loc(n, at), "%s: path too long", what);
		return KM_CONFIG_EINVAL;
	}
	*ret = abs;
	return KM_EOK;
}

/* A store: a path (SQLite, made absolute) or a postgresql:// URI, kept as written and
 * checked here; its local files are then named after CONFIGDIR/ENV.local. */
static int get_store(walk_t *w, struct fy_node *n, cfg_loc_t at, const char *what,
                     const char *env, km_env_cfg_t *pub)
{
	const char *s = NULL;
	char local[PATH_MAX];
	int r = get_text(w, n, at, what, PATH_MAX - 1, &s);
	if (r != KM_EOK)
		return r;
	if (!km_pguri_is(s)) {
		if ((r = get_path(w, n, at, what, &pub->store)) == KM_EOK)
			pub->local = pub->store;
		return r;
	}
	km_pguri_t u;
	char why[200];
	if (km_pguri_parse(s, &u, why, sizeof(why)) != KM_EOK) {
		cfg_errorf(w->e, cfg_yaml_loc(n, at), "%s: %s", what, why);
		return KM_CONFIG_EINVAL;
	}
	snprintf(local, sizeof(local), "%s.local", env);
	pub->store = cfg_strdup(w->cfg, s);
	pub->local = cfg_path_resolve(w->cfg, w->cfg->dir, local);
	if (pub->store == NULL || pub->local == NULL)
		return KM_ENOMEM;
	return KM_EOK;
}

/* --- token --- */

static bool env_var_name_valid(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s != '\0'; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_' ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

/*
 * The pin field holds a pin SOURCE. A value that is not one may be the PIN itself, pasted by
 * mistake, so no message here quotes the value.
 */
static int parse_pin(walk_t *w, struct fy_node *n, cfg_loc_t at, const char *what,
                     const char **ret)
{
	const char *s = NULL;
	int r = cfg_yaml_scalar(n, at, what, &s, w->e);
	if (r != KM_EOK)
		return r;
	at = cfg_yaml_loc(n, at);
	if (strcmp(s, "prompt") == 0) {
		*ret = "prompt";
		return KM_EOK;
	}
	if (strncmp(s, "file:", 5) == 0) {
		const char *p = s + 5;
		if (*p == '\0' || has_control(p) || strlen(p) >= PATH_MAX) {
			cfg_errorf(w->e, at, "%s: 'file:' needs a path", what);
			return KM_CONFIG_EINVAL;
		}
		const char *abs = cfg_path_resolve(w->cfg, w->cfg->dir, p);
		char buf[PATH_MAX + 8];
		if (abs == NULL || (size_t)snprintf(buf, sizeof(buf), "file:%s", abs) >= sizeof(buf)) {
			cfg_errorf(w->e, at, "%s: path too long", what);
			return KM_CONFIG_EINVAL;
		}
		*ret = cfg_strdup(w->cfg, buf);
		return *ret ? KM_EOK : oom(w);
	}
	if (strncmp(s, "env:", 4) == 0) {
		if (!env_var_name_valid(s + 4) || strlen(s + 4) > 255) {
			cfg_errorf(w->e, at, "%s: 'env:' needs a variable name ([A-Za-z_][A-Za-z0-9_]*)",
			           what);
			return KM_CONFIG_EINVAL;
		}
		*ret = cfg_strdup(w->cfg, s);
		return *ret ? KM_EOK : oom(w);
	}
	cfg_errorf(w->e, at, "%s: not a pin source: use 'file:PATH', 'env:NAME' or 'prompt' "
	           "(the value is not shown; never put the PIN itself in the configuration)", what);
	return KM_CONFIG_EINVAL;
}

/* A token mapping (environments.ENV.token, environments.ENV.audit.token) into *t. */
static int parse_token(walk_t *w, struct fy_node *map, cfg_loc_t at, const char *where,
                       km_token_cfg_t *t)
{
	char what[WHERE_MAX + 16];
	int r = cfg_yaml_expect_map(map, at, where, w->e);
	if (r != KM_EOK)
		return r;
	t->sessions = KM_CONFIG_DEFAULT_SESSIONS;
	t->keepalive = KM_CONFIG_DEFAULT_KEEPALIVE;
	t->pin_source = "prompt";
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	while ((r = cfg_yaml_next_pair(map, &it, at, &key, &kat, &val, w->e)) == 1) {
		snprintf(what, sizeof(what), "%s.%s", where, key);
		if (strcmp(key, "module") == 0) {
			r = get_path(w, val, kat, what, &t->module_path);
			if (r == KM_EOK && strncmp(fy_node_get_scalar0(val), "/", 1) != 0) {
				cfg_errorf(w->e, cfg_yaml_loc(val, kat), "%s: must be an absolute path "
				           "(a bare library name would be looked up in the loader's search "
				           "path)", what);
				r = KM_CONFIG_EINVAL;
			}
		} else if (strcmp(key, "label") == 0) {
			r = get_text(w, val, kat, what, KM_TOKEN_LABEL_MAX, &t->token_label);
		} else if (strcmp(key, "serial") == 0) {
			r = get_text(w, val, kat, what, KM_TOKEN_SERIAL_MAX, &t->token_serial);
		} else if (strcmp(key, "pin") == 0) {
			r = parse_pin(w, val, kat, what, &t->pin_source);
		} else if (strcmp(key, "sessions") == 0) {
			r = get_uint(w, val, kat, what, 1, KM_CONFIG_MAX_SESSIONS, &t->sessions);
		} else if (strcmp(key, "keepalive") == 0) {
			r = get_uint(w, val, kat, what, 0, KM_CONFIG_MAX_KEEPALIVE, &t->keepalive);
		} else if (strcmp(key, "init_args") == 0) {
			r = get_text(w, val, kat, what, KM_CONFIG_INIT_ARGS_MAX, &t->init_args);
		} else {
			r = cfg_yaml_unknown_key(w->e, kat, key, where,
			                         "module, label, serial, pin, sessions, keepalive, "
			                         "init_args");
		}
		if (r != KM_EOK)
			return r;
	}
	if (r < 0)
		return r;
	if (t->module_path == NULL) {
		cfg_errorf(w->e, at, "%s: 'module' is required", where);
		return KM_CONFIG_EINVAL;
	}
	if ((t->token_label == NULL) == (t->token_serial == NULL)) {
		cfg_errorf(w->e, at, "%s: give exactly one of 'label' and 'serial'", where);
		return KM_CONFIG_EINVAL;
	}
	return KM_EOK;
}

/* --- http --- */

/* "/" or "/seg(/seg)*" with segments of [A-Za-z0-9._~-], no "." or ".." segment. */
static bool http_path_valid(const char *p)
{
	if (p[0] != '/')
		return false;
	if (p[1] == '\0')
		return true;
	const char *seg = p + 1;
	for (const char *c = p + 1;; c++) {
		if (*c == '/' || *c == '\0') {
			size_t n = (size_t)(c - seg);
			if (n == 0 || (n == 1 && seg[0] == '.') ||
			    (n == 2 && seg[0] == '.' && seg[1] == '.'))
				return false;
			if (*c == '\0')
				return true;
			seg = c + 1;
			continue;
		}
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '~' || *c == '-'))
			return false;
	}
}

/*
 * http.static_hook: [PROGRAM, ARG...] (or PROGRAM alone): words run as they are (no shell),
 * PROGRAM an absolute path.
 */
static int parse_static_hook(walk_t *w, cfg_env_t *env, struct fy_node *val, cfg_loc_t kat,
                             const char *what)
{
	env->pub.n_static_hook = 0;
	if (fy_node_is_scalar(val)) {
		int r = get_text(w, val, kat, what, PATH_MAX - 1, &env->pub.static_hook[0]);
		if (r != KM_EOK)
			return r;
		env->pub.n_static_hook = 1;
	} else {
		int r = cfg_yaml_expect_seq(val, kat, what, w->e);
		void *sit = NULL;
		struct fy_node *item;
		while (r == KM_EOK && (item = fy_node_sequence_iterate(val, &sit)) != NULL) {
			if (env->pub.n_static_hook == KM_CONFIG_MAX_HOOK_ARGS) {
				cfg_errorf(w->e, cfg_yaml_loc(item, kat), "%s: more than %d words", what,
				           KM_CONFIG_MAX_HOOK_ARGS);
				return KM_CONFIG_EINVAL;
			}
			r = get_text(w, item, kat, what, PATH_MAX - 1,
			             &env->pub.static_hook[env->pub.n_static_hook]);
			if (r == KM_EOK)
				env->pub.n_static_hook++;
		}
		if (r != KM_EOK)
			return r;
		if (env->pub.n_static_hook == 0) {
			cfg_errorf(w->e, cfg_yaml_loc(val, kat), "%s: expected [PROGRAM, ARG...], got an "
			           "empty list", what);
			return KM_CONFIG_EINVAL;
		}
	}
	if (env->pub.static_hook[0][0] != '/') {
		cfg_errorf(w->e, cfg_yaml_loc(val, kat), "%s: the program must be an absolute path "
		           "(it is run as it is, without a shell or PATH search)", what);
		env->pub.n_static_hook = 0;
		return KM_CONFIG_EINVAL;
	}
	return KM_EOK;
}

static int parse_http(walk_t *w, cfg_env_t *env, struct fy_node *map, cfg_loc_t at)
{
	cfg_loc_t hook_at = at;
	char where[WHERE_MAX], what[WHERE_MAX + 16];
	snprintf(where, sizeof(where), "environments.%s.http", env->pub.name);
	int r = cfg_yaml_expect_map(map, at, where, w->e);
	if (r != KM_EOK)
		return r;
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	while ((r = cfg_yaml_next_pair(map, &it, at, &key, &kat, &val, w->e)) == 1) {
		snprintf(what, sizeof(what), "%s.%s", where, key);
		if (strcmp(key, "path") == 0) {
			const char *p = NULL;
			r = get_text(w, val, kat, what, 255, &p);
			if (r == KM_EOK && !http_path_valid(p)) {
				cfg_errorf(w->e, cfg_yaml_loc(val, kat), "%s: expected '/' followed by "
				           "segments of letters, digits, '.', '_', '~' or '-' "
				           "(no empty, '.' or '..' segment, no trailing '/')", what);
				r = KM_CONFIG_EINVAL;
			}
			if (r == KM_EOK) {
				env->pub.http_path = p;
				env->http_loc = cfg_yaml_loc(val, kat);
			}
		} else if (strcmp(key, "snapshots") == 0) {
			r = cfg_yaml_expect_seq(val, kat, what, w->e);
			void *sit = NULL;
			struct fy_node *item;
			while (r == KM_EOK && (item = fy_node_sequence_iterate(val, &sit)) != NULL) {
				if (env->pub.n_snapshots == KM_CONFIG_MAX_SNAPSHOTS) {
					cfg_errorf(w->e, cfg_yaml_loc(item, kat), "%s: more than %d files",
					           what, KM_CONFIG_MAX_SNAPSHOTS);
					r = KM_CONFIG_EINVAL;
					break;
				}
				size_t i = env->pub.n_snapshots;
				r = get_path(w, item, kat, what, &env->pub.snapshots[i]);
				if (r == KM_EOK) {
					env->snapshot_loc[i] = cfg_yaml_loc(item, kat);
					env->pub.n_snapshots++;
				}
			}
		} else if (strcmp(key, "public_url") == 0) {
			const char *u = NULL;
			km_url_t url;
			char why[160];
			r = get_text(w, val, kat, what, KM_URL_MAX - 1, &u);
			if (r == KM_EOK && km_url_parse(u, &url, why, sizeof(why)) != KM_EOK) {
				cfg_errorf(w->e, cfg_yaml_loc(val, kat), "%s: %s", what, why);
				r = KM_CONFIG_EINVAL;
			}
			if (r == KM_EOK)
				env->pub.public_url = u;
		} else if (strcmp(key, "static_dir") == 0) {
			r = get_path(w, val, kat, what, &env->pub.static_dir);
			if (r == KM_EOK)
				env->static_loc = cfg_yaml_loc(val, kat);
		} else if (strcmp(key, "static_hook") == 0) {
			r = parse_static_hook(w, env, val, kat, what);
			hook_at = kat;
		} else if (strcmp(key, "static_hook_timeout") == 0) {
			r = get_uint(w, val, kat, what, 1, 3600, &env->pub.static_hook_timeout);
		} else {
			r = cfg_yaml_unknown_key(w->e, kat, key, where, "path, snapshots, public_url, "
			                         "static_dir, static_hook, static_hook_timeout");
		}
		if (r != KM_EOK)
			return r;
	}
	if (r == 0 && env->pub.n_static_hook > 0 && env->pub.static_dir == NULL) {
		cfg_errorf(w->e, hook_at, "%s.static_hook: needs static_dir (the hook is run after "
		           "each write of the static tree)", where);
		return KM_CONFIG_EINVAL;
	}
	return r < 0 ? r : KM_EOK;
}

/* --- audit streaming --- */

static int parse_audit(walk_t *w, cfg_env_t *env, struct fy_node *map, cfg_loc_t at)
{
	char where[WHERE_MAX], what[WHERE_MAX + 16];
	snprintf(where, sizeof(where), "environments.%s.audit", env->pub.name);
	int r = cfg_yaml_expect_map(map, at, where, w->e);
	if (r != KM_EOK)
		return r;
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	while ((r = cfg_yaml_next_pair(map, &it, at, &key, &kat, &val, w->e)) == 1) {
		snprintf(what, sizeof(what), "%s.%s", where, key);
		if (strcmp(key, "jsonl") == 0) {
			r = get_path(w, val, kat, what, &env->pub.audit_jsonl);
		} else if (strcmp(key, "syslog") == 0) {
			r = get_bool(w, val, kat, what, &env->pub.audit_syslog);
		} else if (strcmp(key, "token") == 0) {
			r = parse_token(w, val, kat, what, &env->pub.audit_token);
			env->audit_token_loc = kat;
			if (r == KM_EOK)
				env->pub.has_audit_token = true;
		} else {
			r = cfg_yaml_unknown_key(w->e, kat, key, where, "jsonl, syslog, token");
		}
		if (r != KM_EOK)
			return r;
	}
	return r < 0 ? r : KM_EOK;
}

/* --- key sets --- */

static cfg_keyset_t *keyset_get(walk_t *w, cfg_env_t *env, const char *name, cfg_loc_t at)
{
	cfg_keyset_t *ks = cfg_keyset_find(env, name);
	if (ks != NULL)
		return ks;
	if (env->n_keysets == KM_CONFIG_MAX_KEYSETS) {
		cfg_errorf(w->e, at, "environment '%s': more than %d key sets", env->pub.name,
		           KM_CONFIG_MAX_KEYSETS);
		return NULL;
	}
	ks = cfg_alloc(w->cfg, sizeof(*ks));
	if (ks == NULL || (ks->pub.name = cfg_strdup(w->cfg, name)) == NULL) {
		oom(w);
		return NULL;
	}
	ks->loc = at;
	env->keysets[env->n_keysets++] = ks;
	return ks;
}

static int parse_audiences(walk_t *w, cfg_keyset_t *ks, struct fy_node *seq, cfg_loc_t at,
                           const char *what)
{
	int r = cfg_yaml_expect_seq(seq, at, what, w->e);
	void *it = NULL;
	struct fy_node *item;
	while (r == KM_EOK && (item = fy_node_sequence_iterate(seq, &it)) != NULL) {
		if (ks->pub.n_audiences == KM_CONFIG_MAX_AUDIENCES) {
			cfg_errorf(w->e, cfg_yaml_loc(item, at), "%s: more than %d audiences", what,
			           KM_CONFIG_MAX_AUDIENCES);
			return KM_CONFIG_EINVAL;
		}
		r = get_text(w, item, at, what, 255, &ks->pub.audiences[ks->pub.n_audiences]);
		if (r == KM_EOK)
			ks->pub.n_audiences++;
	}
	return r;
}

/* A Unix user or group name as useradd(8) accepts it: [a-z_][a-z0-9_-]*, at most 32. */
static bool unix_name_valid(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || *s == '_') || strlen(s) > KM_CONFIG_UNIX_NAME_MAX)
		return false;
	for (s++; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

static int parse_unix_names(walk_t *w, struct fy_node *seq, cfg_loc_t at, const char *what,
                            const char **out, size_t *n)
{
	int r = cfg_yaml_expect_seq(seq, at, what, w->e);
	void *it = NULL;
	struct fy_node *item;
	while (r == KM_EOK && (item = fy_node_sequence_iterate(seq, &it)) != NULL) {
		cfg_loc_t iat = cfg_yaml_loc(item, at);
		if (*n == KM_CONFIG_MAX_SIGNERS) {
			cfg_errorf(w->e, iat, "%s: more than %d names", what, KM_CONFIG_MAX_SIGNERS);
			return KM_CONFIG_EINVAL;
		}
		const char *name = NULL;
		if ((r = get_text(w, item, at, what, KM_CONFIG_UNIX_NAME_MAX, &name)) != KM_EOK)
			return r;
		if (!unix_name_valid(name)) {
			cfg_errorf(w->e, iat, "%s: '%s' is not a valid Unix user or group name", what,
			           name);
			return KM_CONFIG_EINVAL;
		}
		out[(*n)++] = name;
	}
	return r;
}

/* keysets.NAME.signers: { users: [...], groups: [...] } */
static int parse_signers(walk_t *w, cfg_keyset_t *ks, struct fy_node *map, cfg_loc_t at,
                         const char *where)
{
	char what[WHERE_MAX + 32];
	int r = cfg_yaml_expect_map(map, at, where, w->e);
	if (r != KM_EOK)
		return r;
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	while ((r = cfg_yaml_next_pair(map, &it, at, &key, &kat, &val, w->e)) == 1) {
		snprintf(what, sizeof(what), "%s.%s", where, key);
		if (strcmp(key, "users") == 0)
			r = parse_unix_names(w, val, kat, what, ks->pub.signer_users,
			                     &ks->pub.n_signer_users);
		else if (strcmp(key, "groups") == 0)
			r = parse_unix_names(w, val, kat, what, ks->pub.signer_groups,
			                     &ks->pub.n_signer_groups);
		else
			r = cfg_yaml_unknown_key(w->e, kat, key, where, "users, groups");
		if (r != KM_EOK)
			return r;
	}
	return r < 0 ? r : KM_EOK;
}

static int parse_keyset_body(walk_t *w, cfg_keyset_t *ks, const char *where,
                             struct fy_node *map, cfg_loc_t at)
{
	char what[WHERE_MAX + 16];
	int r = cfg_yaml_expect_map(map, at, where, w->e);
	if (r != KM_EOK)
		return r;
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	while ((r = cfg_yaml_next_pair(map, &it, at, &key, &kat, &val, w->e)) == 1) {
		snprintf(what, sizeof(what), "%s.%s", where, key);
		if (strcmp(key, "policy") == 0) {
			r = cfg_policy_parse(w->cfg, val, kat, &ks->pol, what, w->e);
		} else if (w->main && strcmp(key, "issuer") == 0) {
			r = get_text(w, val, kat, what, 255, &ks->pub.issuer);
		} else if (w->main && strcmp(key, "audiences") == 0) {
			r = parse_audiences(w, ks, val, kat, what);
		} else if (w->main && strcmp(key, "signers") == 0) {
			r = parse_signers(w, ks, val, kat, what);
		} else if (w->main && strcmp(key, "kubernetes") == 0) {
			r = get_bool(w, val, kat, what, &ks->pub.kubernetes);
		} else {
			r = cfg_yaml_unknown_key(w->e, kat, key, where,
			                         w->main ? "policy, issuer, audiences, signers, kubernetes"
			                                 : "policy (in an included file)");
		}
		if (r != KM_EOK)
			return r;
	}
	return r < 0 ? r : KM_EOK;
}

/*
 * One key set entry. An error inside it breaks that key set only; an invalid name, which
 * cannot tell which key set was meant, breaks every key set of the environment (returned).
 */
static int parse_keyset(walk_t *w, cfg_env_t *env, const char *name, struct fy_node *map,
                        cfg_loc_t at)
{
	char where[WHERE_MAX];
	char shown[80];
	if (!km_name_keyset_valid(name)) {
		snprintf(shown, sizeof(shown), "%.64s", name);
		for (char *c = shown; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = '?';
		cfg_errorf(w->e, at, "invalid key set name '%s' in environment '%s': use lowercase "
		           "letters, digits and single '-', starting with a letter (at most %d)",
		           shown, env->pub.name, KM_KEYSET_NAME_MAX);
		return KM_CONFIG_EINVAL;
	}
	snprintf(where, sizeof(where), "environments.%s.keysets.%s", env->pub.name, name);
	cfg_keyset_t *ks = keyset_get(w, env, name, at);
	if (ks == NULL)
		return w->e->set ? KM_CONFIG_EINVAL : KM_ENOMEM;
	return caught(w, parse_keyset_body(w, ks, where, map, at), CFG_SCOPE_KEYSET,
	              env->pub.name, name);
}

static int parse_keysets(walk_t *w, cfg_env_t *env, struct fy_node *map, cfg_loc_t at)
{
	char where[WHERE_MAX];
	snprintf(where, sizeof(where), "environments.%s.keysets", env->pub.name);
	int r = cfg_yaml_expect_map(map, at, where, w->e);
	if (r != KM_EOK)
		return r;
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	while ((r = cfg_yaml_next_pair(map, &it, at, &key, &kat, &val, w->e)) == 1) {
		r = parse_keyset(w, env, key, val, kat);
		if (r != KM_EOK)
			return r;
	}
	return r < 0 ? r : KM_EOK;
}

/* --- environments --- */

static int env_name_check(walk_t *w, const char *name, cfg_loc_t at)
{
	if (km_name_env_valid(name))
		return KM_EOK;
	char shown[80];
	snprintf(shown, sizeof(shown), "%.64s", name);
	for (char *c = shown; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	cfg_errorf(w->e, at, "invalid environment name '%s': use lowercase letters, digits and "
	           "single '-', starting with a letter (at most %d)", shown, KM_ENV_NAME_MAX);
	return KM_CONFIG_EINVAL;
}

/* The keys of environments.ENV; an error returned breaks the environment (main file) or
 * its key sets (included file). Errors of its policy and key sets are recorded here. */
static int parse_env_body(walk_t *w, cfg_env_t *env, const char *where, struct fy_node *map,
                          cfg_loc_t at)
{
	char what[WHERE_MAX + 16];
	const char *name = env->pub.name;
	int r = cfg_yaml_expect_map(map, at, where, w->e);
	if (r != KM_EOK)
		return r;
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	bool have_token = false;
	while ((r = cfg_yaml_next_pair(map, &it, at, &key, &kat, &val, w->e)) == 1) {
		snprintf(what, sizeof(what), "%s.%s", where, key);
		if (strcmp(key, "policy") == 0) {
			r = caught(w, cfg_policy_parse(w->cfg, val, kat, &env->pol, what, w->e),
			           CFG_SCOPE_ENV_POLICY, name, NULL);
		} else if (strcmp(key, "keysets") == 0) {
			r = caught(w, parse_keysets(w, env, val, kat), CFG_SCOPE_ENV_POLICY, name, NULL);
		} else if (w->main && strcmp(key, "token") == 0) {
			char where_token[WHERE_MAX];
			snprintf(where_token, sizeof(where_token), "environments.%s.token", env->pub.name);
			r = parse_token(w, val, kat, where_token, &env->pub.token);
			env->token_loc = kat;
			have_token = true;
		} else if (w->main && strcmp(key, "store") == 0) {
			r = get_store(w, val, kat, what, name, &env->pub);
			env->store_loc = cfg_yaml_loc(val, kat);
		} else if (w->main && strcmp(key, "http") == 0) {
			r = parse_http(w, env, val, kat);
		} else if (w->main && strcmp(key, "audit") == 0) {
			r = parse_audit(w, env, val, kat);
		} else {
			r = cfg_yaml_unknown_key(w->e, kat, key, where,
			                         w->main ? "token, store, http, audit, policy, keysets"
			                                 : "policy, keysets (in an included file)");
		}
		if (r != KM_EOK)
			return r;
	}
	if (r < 0)
		return r;
	if (!w->main)
		return KM_EOK;
	if (!have_token) {
		cfg_errorf(w->e, at, "%s: 'token' is required", where);
		return KM_CONFIG_EINVAL;
	}
	if (env->pub.store == NULL) {
		cfg_errorf(w->e, at, "%s: 'store' is required", where);
		return KM_CONFIG_EINVAL;
	}
	if (env->pub.http_path == NULL) {
		char p[KM_ENV_NAME_MAX + 2];
		snprintf(p, sizeof(p), "/%s", name);
		if ((env->pub.http_path = cfg_strdup(w->cfg, p)) == NULL)
			return oom(w);
		env->http_loc = at;
	}
	if (env->pub.static_hook_timeout == 0)
		env->pub.static_hook_timeout = KM_CONFIG_HOOK_TIMEOUT;
	return KM_EOK;
}

static int parse_env(walk_t *w, const char *name, struct fy_node *map, cfg_loc_t at)
{
	char where[WHERE_MAX];
	int r = env_name_check(w, name, at);
	if (r != KM_EOK)
		return caught(w, r, CFG_SCOPE_NONE, NULL, NULL);
	snprintf(where, sizeof(where), "environments.%s", name);
	cfg_env_t *env;
	if (!w->main) {
		env = cfg_env_find(w->cfg, name);
		if (env == NULL) {
			/* Which environment's policy was meant cannot be told: the whole file. */
			char known[256];
			cfg_errorf(w->e, at, "unknown environment '%s' (known: %s); an included file "
			           "can only set policies of environments of the main file", name,
			           km_config_env_names(w->cfg, known, sizeof(known)));
			return caught(w, KM_CONFIG_EINVAL, CFG_SCOPE_FILE, NULL, NULL);
		}
	} else {
		if (w->cfg->n_envs == KM_CONFIG_MAX_ENVS) {
			cfg_errorf(w->e, at, "more than %d environments", KM_CONFIG_MAX_ENVS);
			return caught(w, KM_CONFIG_EINVAL, CFG_SCOPE_FILE, NULL, NULL);
		}
		env = cfg_alloc(w->cfg, sizeof(*env));
		if (env == NULL || (env->pub.name = cfg_strdup(w->cfg, name)) == NULL)
			return caught(w, oom(w), CFG_SCOPE_FILE, NULL, NULL);
		env->loc = at;
		w->cfg->envs[w->cfg->n_envs++] = env;
	}
	return caught(w, parse_env_body(w, env, where, map, at),
	              w->main ? CFG_SCOPE_ENV : CFG_SCOPE_ENV_POLICY, name, NULL);
}

static int parse_envs(walk_t *w, struct fy_node *map, cfg_loc_t at)
{
	int r = cfg_yaml_expect_map(map, at, "environments", w->e);
	if (r != KM_EOK)
		return r;
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	while ((r = cfg_yaml_next_pair(map, &it, at, &key, &kat, &val, w->e)) == 1) {
		if ((r = parse_env(w, key, val, kat)) != KM_EOK)
			return r;
	}
	if (r < 0)
		return r;
	if (w->main && w->cfg->n_envs == 0) {
		cfg_errorf(w->e, at, "environments: at least one environment is required");
		return KM_CONFIG_EINVAL;
	}
	return KM_EOK;
}

/* --- defaults, daemon, include, version --- */

static int parse_defaults(walk_t *w, struct fy_node *map, cfg_loc_t at)
{
	int r = cfg_yaml_expect_map(map, at, "defaults", w->e);
	if (r != KM_EOK)
		return r;
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	while ((r = cfg_yaml_next_pair(map, &it, at, &key, &kat, &val, w->e)) == 1) {
		if (strcmp(key, "policy") == 0)
			r = cfg_policy_parse(w->cfg, val, kat, &w->cfg->defaults_pol, "defaults.policy",
			                     w->e);
		else
			r = cfg_yaml_unknown_key(w->e, kat, key, "defaults", "policy");
		if (r != KM_EOK)
			return r;
	}
	return r < 0 ? r : KM_EOK;
}

/* An IP address literal (daemon.listen, daemon.admin_listen). */
static int get_addr(walk_t *w, struct fy_node *val, cfg_loc_t kat, const char *what,
                    const char **ret)
{
	const char *s = NULL;
	unsigned char addr[sizeof(struct in6_addr)];
	int r = get_text(w, val, kat, what, INET6_ADDRSTRLEN, &s);
	if (r == KM_EOK && inet_pton(AF_INET, s, addr) != 1 && inet_pton(AF_INET6, s, addr) != 1) {
		cfg_errorf(w->e, cfg_yaml_loc(val, kat), "%s: expected an IPv4 or IPv6 address "
		           "literal, such as 127.0.0.1", what);
		r = KM_CONFIG_EINVAL;
	}
	if (r == KM_EOK)
		*ret = s;
	return r;
}

static int parse_daemon(walk_t *w, struct fy_node *map, cfg_loc_t at)
{
	int r = cfg_yaml_expect_map(map, at, "daemon", w->e);
	if (r != KM_EOK)
		return r;
	km_daemon_cfg_t *d = &w->cfg->daemon;
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	while ((r = cfg_yaml_next_pair(map, &it, at, &key, &kat, &val, w->e)) == 1) {
		if (strcmp(key, "listen") == 0) {
			r = get_addr(w, val, kat, "daemon.listen", &d->listen);
		} else if (strcmp(key, "admin_listen") == 0) {
			r = get_addr(w, val, kat, "daemon.admin_listen", &d->admin_listen);
		} else if (strcmp(key, "admin_port") == 0) {
			r = get_uint(w, val, kat, "daemon.admin_port", 0, 65535, &d->admin_port);
			d->admin = r == KM_EOK;
		} else if (strcmp(key, "listener_user") == 0) {
			r = get_text(w, val, kat, "daemon.listener_user", 32, &d->listener_user);
			if (r == KM_EOK && strcmp(d->listener_user, "root") == 0) {
				cfg_errorf(w->e, cfg_yaml_loc(val, kat), "daemon.listener_user: the "
				           "listener never runs as root; name an unprivileged user");
				r = KM_CONFIG_EINVAL;
			}
		} else if (strcmp(key, "port") == 0) {
			r = get_uint(w, val, kat, "daemon.port", 1, 65535, &d->port);
		} else if (strcmp(key, "control_socket") == 0) {
			r = get_path(w, val, kat, "daemon.control_socket", &d->control_socket);
			if (r == KM_EOK &&
			    strlen(d->control_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
				cfg_errorf(w->e, cfg_yaml_loc(val, kat), "daemon.control_socket: path "
				           "longer than a socket address allows (%zu)",
				           sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
				r = KM_CONFIG_EINVAL;
			}
		} else if (strcmp(key, "control_group") == 0) {
			r = get_text(w, val, kat, "daemon.control_group", 32, &d->control_group);
		} else if (strcmp(key, "threads") == 0) {
			r = get_uint(w, val, kat, "daemon.threads", 1, 64, &d->threads);
		} else if (strcmp(key, "connection_limit") == 0) {
			r = get_uint(w, val, kat, "daemon.connection_limit", 1, 65536, &d->connection_limit);
		} else if (strcmp(key, "timeout") == 0) {
			r = get_uint(w, val, kat, "daemon.timeout", 1, 3600, &d->timeout);
		} else if (strcmp(key, "poll_interval") == 0) {
			r = get_uint(w, val, kat, "daemon.poll_interval", 1, 3600, &d->poll_interval);
		} else if (strcmp(key, "lease") == 0) {
			r = get_uint(w, val, kat, "daemon.lease", 3, 3600, &d->lease);
		} else if (strcmp(key, "remove_unsafe_keys") == 0) {
			r = get_bool(w, val, kat, "daemon.remove_unsafe_keys", &d->remove_unsafe_keys);
		} else if (strcmp(key, "per_ip_limit") == 0) {
			r = get_uint(w, val, kat, "daemon.per_ip_limit", 1, 65536, &d->per_ip_limit);
		} else if (strcmp(key, "rate_limit") == 0) {
			r = get_uint(w, val, kat, "daemon.rate_limit", 0, 1000000, &d->rate_limit);
		} else if (strcmp(key, "rate_burst") == 0) {
			r = get_uint(w, val, kat, "daemon.rate_burst", 0, 1000000, &d->rate_burst);
		} else if (strcmp(key, "control_per_peer") == 0) {
			r = get_uint(w, val, kat, "daemon.control_per_peer", 1, 1024,
			             &d->control_per_peer);
		} else if (strcmp(key, "control_rate_limit") == 0) {
			r = get_uint(w, val, kat, "daemon.control_rate_limit", 0, 1000000,
			             &d->control_rate_limit);
		} else if (strcmp(key, "control_rate_burst") == 0) {
			r = get_uint(w, val, kat, "daemon.control_rate_burst", 0, 1000000,
			             &d->control_rate_burst);
		} else if (strcmp(key, "control_reserved") == 0) {
			r = get_uint(w, val, kat, "daemon.control_reserved", 0, 63, &d->control_reserved);
		} else if (strcmp(key, "denial_interval") == 0) {
			r = get_uint(w, val, kat, "daemon.denial_interval", 1, 86400,
			             &d->denial_interval);
		} else {
			r = cfg_yaml_unknown_key(w->e, kat, key, "daemon", "listen, port, control_socket, "
			                         "control_group, threads, connection_limit, timeout, "
			                         "poll_interval, lease, remove_unsafe_keys, "
			                         "per_ip_limit, rate_limit, rate_burst, control_per_peer, "
			                         "control_rate_limit, control_rate_burst, control_reserved, "
			                         "denial_interval, listener_user, admin_listen, admin_port");
		}
		if (r != KM_EOK)
			return r;
	}
	return r < 0 ? r : KM_EOK;
}

static int add_include(walk_t *w, struct fy_node *n, cfg_loc_t at)
{
	cfg_includes_t *inc = &w->cfg->includes;
	if (inc->n == KM_CONFIG_MAX_INCLUDES) {
		cfg_errorf(w->e, cfg_yaml_loc(n, at), "include: more than %d files",
		           KM_CONFIG_MAX_INCLUDES);
		return KM_CONFIG_EINVAL;
	}
	int r = get_path(w, n, at, "include", &inc->path[inc->n]);
	if (r != KM_EOK)
		return r;
	inc->loc[inc->n] = cfg_yaml_loc(n, at);
	inc->n++;
	return KM_EOK;
}

static int parse_include(walk_t *w, struct fy_node *n, cfg_loc_t at)
{
	if (n != NULL && fy_node_get_type(n) == FYNT_SCALAR)
		return add_include(w, n, at);
	int r = cfg_yaml_expect_seq(n, at, "include", w->e);
	void *it = NULL;
	struct fy_node *item;
	while (r == KM_EOK && (item = fy_node_sequence_iterate(n, &it)) != NULL)
		r = add_include(w, item, at);
	return r;
}

static int parse_version(walk_t *w, struct fy_node *n, cfg_loc_t at)
{
	unsigned v = 0;
	int r = get_uint(w, n, at, "version", 0, 1000000, &v);
	if (r != KM_EOK)
		return r;
	if (v != KM_CONFIG_VERSION) {
		cfg_errorf(w->e, cfg_yaml_loc(n, at), "version: %u is not supported (this keymgr "
		           "reads version %d)", v, KM_CONFIG_VERSION);
		return KM_CONFIG_EINVAL;
	}
	return KM_EOK;
}

static int parse_root(walk_t *w, struct fy_document *doc)
{
	struct fy_node *root = fy_document_root(doc);
	cfg_loc_t at = { w->file, 1, 1 };
	int r = cfg_yaml_expect_map(root, at, "top level", w->e);
	if (r != KM_EOK)
		return r;
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	bool have_version = false, have_envs = false;
	struct fy_node *probe = NULL;   /* parsed once every environment is known */
	cfg_loc_t probe_at = at;
	while ((r = cfg_yaml_next_pair(root, &it, at, &key, &kat, &val, w->e)) == 1) {
		if (strcmp(key, "defaults") == 0) {
			r = caught(w, parse_defaults(w, val, kat), CFG_SCOPE_POLICIES, NULL, NULL);
		} else if (strcmp(key, "environments") == 0) {
			r = parse_envs(w, val, kat);
			have_envs = true;
		} else if (w->main && strcmp(key, "version") == 0) {
			r = parse_version(w, val, kat);
			have_version = true;
		} else if (w->main && strcmp(key, "include") == 0) {
			r = parse_include(w, val, kat);
		} else if (w->main && strcmp(key, "daemon") == 0) {
			r = caught(w, parse_daemon(w, val, kat), CFG_SCOPE_DAEMON, NULL, NULL);
		} else if (w->main && strcmp(key, "probe") == 0) {
			probe = val;
			probe_at = kat;
			r = KM_EOK;
		} else {
			r = cfg_yaml_unknown_key(w->e, kat, key, "the top level",
			                         w->main ? "version, include, defaults, environments, "
			                                   "daemon, probe"
			                                 : "defaults, environments (in an included "
			                                   "file)");
		}
		if (r != KM_EOK)
			return r;
	}
	if (r < 0)
		return r;
	if (w->main && !have_version) {
		cfg_errorf(w->e, loc0(w), "'version: %d' is required", KM_CONFIG_VERSION);
		return KM_CONFIG_EINVAL;
	}
	if (w->main && !have_envs) {
		cfg_errorf(w->e, loc0(w), "'environments' is required");
		return KM_CONFIG_EINVAL;
	}
	if (probe != NULL)
		return caught(w, cfg_probe_parse(w->cfg, probe, probe_at, w->e), CFG_SCOPE_PROBE,
		              NULL, NULL);
	return KM_EOK;
}

int cfg_parse_main(km_config_t *cfg, struct fy_document *doc, const char *file, cfg_err_t *e)
{
	walk_t w = { cfg, file, true, e };
	return parse_root(&w, doc);
}

int cfg_parse_include(km_config_t *cfg, struct fy_document *doc, const char *file, cfg_err_t *e)
{
	walk_t w = { cfg, file, false, e };
	return parse_root(&w, doc);
}

cfg_env_t *cfg_env_find(const km_config_t *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_envs; i++)
		if (strcmp(cfg->envs[i]->pub.name, name) == 0)
			return cfg->envs[i];
	return NULL;
}

cfg_keyset_t *cfg_keyset_find(const cfg_env_t *env, const char *name)
{
	for (size_t i = 0; i < env->n_keysets; i++)
		if (strcmp(env->keysets[i]->pub.name, name) == 0)
			return env->keysets[i];
	return NULL;
}
