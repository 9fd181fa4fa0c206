/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by the files of keymgr/config/. Not installed, not for other folders.
 *
 * Every string and struct of a loaded configuration lives in one allocation pool owned by
 * the km_config_t, so km_config_free() is a single walk and no accessor has to copy.
 * Policy values are first collected as text with their location (cfg_pset_t), then applied
 * in layer order once every file is read, so included files and the main file merge the
 * same way.
 *
 * Errors are recorded, not returned, wherever the rest of the file can still be read: each
 * with the part of the configuration it breaks (cfg_scope_t). km_config_load() then refuses
 * the file on the first one; km_config_load_partial() refuses it only on a CFG_SCOPE_FILE
 * error and hands out the parts no error touches.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "keymgr/config/config.h"

struct fy_node;
struct fy_document;

/* A position in a config file: file is pool-owned, line and col are 1-based (0: unknown). */
typedef struct {
	const char *file;
	int line;
	int col;
} cfg_loc_t;

/* One policy value as written: field name, scalar text or list items, and where. */
typedef struct cfg_pset {
	struct cfg_pset *next;
	const char *field;
	const char **items;
	size_t n;
	bool is_list;
	cfg_loc_t loc;
} cfg_pset_t;

/* The policy values of one level (defaults, one env, one key set), in file order. */
typedef struct {
	cfg_pset_t *head;
	cfg_pset_t *tail;
} cfg_pblock_t;

/* What a recorded error breaks. */
typedef enum {
	CFG_SCOPE_FILE,        /* the whole configuration: nothing can be used */
	CFG_SCOPE_ENV,         /* one environment: its token, store, http or audit section */
	CFG_SCOPE_POLICIES,    /* every policy (defaults.policy): every key set of every env */
	CFG_SCOPE_ENV_POLICY,  /* every key set of one environment (its policy, its keysets) */
	CFG_SCOPE_KEYSET,      /* one key set's entry (policy, issuer, audiences, signers) */
	CFG_SCOPE_DAEMON,      /* the daemon section */
	CFG_SCOPE_PROBE,       /* the probe section: nothing may be probed */
	CFG_SCOPE_NONE,        /* nothing that can be named (an invalid environment name) */
} cfg_scope_t;

/* One recorded error. Strings are pool-owned. */
typedef struct cfg_error {
	struct cfg_error *next;
	cfg_scope_t scope;
	const char *env;        /* CFG_SCOPE_ENV, _ENV_POLICY, _KEYSET; NULL otherwise */
	const char *env2;       /* the other environment of a wall error, or NULL */
	const char *keyset;     /* CFG_SCOPE_KEYSET */
	int code;               /* KM_CONFIG_EINVAL, KM_POLICY_EUNSAFE, ... */
	const char *msg;        /* "FILE:LINE:COL: what" */
} cfg_error_t;

typedef struct {
	km_keyset_cfg_t pub;
	cfg_pblock_t pol;
	cfg_loc_t loc;
	bool broken;             /* a CFG_SCOPE_KEYSET error names it */
} cfg_keyset_t;

typedef struct {
	km_env_cfg_t pub;
	cfg_pblock_t pol;
	cfg_keyset_t *keysets[KM_CONFIG_MAX_KEYSETS];
	size_t n_keysets;
	cfg_loc_t loc;           /* the environment's key */
	cfg_loc_t token_loc;
	cfg_loc_t audit_token_loc;  /* audit.token, when pub.has_audit_token */
	cfg_loc_t store_loc;
	cfg_loc_t http_loc;
	cfg_loc_t snapshot_loc[KM_CONFIG_MAX_SNAPSHOTS];
	cfg_loc_t static_loc;
	bool broken;             /* a CFG_SCOPE_ENV error names it: not handed out */
	bool policy_broken;      /* its policy cannot be computed (own or inherited errors) */
} cfg_env_t;

struct cfg_pool_item;

/* The include files listed in the main file, resolved, in order. */
typedef struct {
	const char *path[KM_CONFIG_MAX_INCLUDES];
	cfg_loc_t loc[KM_CONFIG_MAX_INCLUDES];
	size_t n;
} cfg_includes_t;

struct km_config {
	struct cfg_pool_item *pool;
	const char *path;        /* absolute, lexically normalised */
	const char *dir;         /* directory of path: base for relative paths */
	cfg_env_t *envs[KM_CONFIG_MAX_ENVS];
	size_t n_envs;
	km_daemon_cfg_t daemon;
	cfg_pblock_t defaults_pol;
	cfg_includes_t includes;
	cfg_error_t *errors;     /* in the order they were found */
	cfg_error_t *errors_tail;
	size_t n_errors;
	bool daemon_broken;      /* a CFG_SCOPE_DAEMON error */
	km_probe_cfg_t probe;    /* cleared when a CFG_SCOPE_PROBE error is recorded */
};

/* The error being reported: the first cfg_errorf() since the last cfg_record(). */
typedef struct {
	char *buf;
	size_t len;
	bool set;
} cfg_err_t;

/* --- pool (config_pool.c) --- */
void *cfg_alloc(km_config_t *cfg, size_t size);       /* zeroed; NULL on ENOMEM */
const char *cfg_strdup(km_config_t *cfg, const char *s);
void cfg_pool_free(km_config_t *cfg);

/* --- errors (config_pool.c) --- */
/* Formats "FILE:LINE:COL: msg" (or "FILE: msg" when line is 0) once; later calls are no-ops. */
void cfg_errorf(cfg_err_t *e, cfg_loc_t loc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * Records the error r (with the message in e, or km_strerror(r)) as breaking scope (env,
 * env2 and keyset as cfg_error_t says; NULL when they do not apply), marks what it breaks,
 * and clears e for the next error. Returns KM_EOK when the load can go on, or r for a
 * CFG_SCOPE_FILE error and for KM_ENOMEM (then recorded as CFG_SCOPE_FILE).
 */
int cfg_record(km_config_t *cfg, cfg_err_t *e, int r, cfg_scope_t scope, const char *env,
               const char *env2, const char *keyset);
/* Whether an error already recorded breaks the policy of env (and of keyset, if not NULL). */
bool cfg_policy_blocked(const km_config_t *cfg, const char *env, const char *keyset);
/* Writes why environment name cannot be used into err. Returns KM_CONFIG_EBROKEN. */
int cfg_env_broken_message(const km_config_t *cfg, const char *name, char *err, size_t errlen);

/* --- YAML access (config_yaml.c) --- */
/*
 * Reads and parses file (displayed as display). On a YAML syntax error writes
 * "DISPLAY:LINE:COL: msg". Returns KM_EOK, KM_ENOENT, KM_EACCES, KM_CONFIG_EPERM (owner or
 * mode, see check_owner_mode()), KM_CONFIG_EPARSE,
 * KM_CONFIG_EINVAL (not a regular file, empty) or KM_ENOMEM.
 */
int cfg_yaml_load(const char *file, const char *display, struct fy_document **ret,
                  cfg_err_t *e);
/* Location of a scalar node's text, or fallback for collections and missing tokens. */
cfg_loc_t cfg_yaml_loc(struct fy_node *n, cfg_loc_t fallback);
/* The node must be a plain/quoted scalar without tag; returns its NUL-terminated text. */
int cfg_yaml_scalar(struct fy_node *n, cfg_loc_t at, const char *what, const char **ret,
                    cfg_err_t *e);
int cfg_yaml_expect_map(struct fy_node *n, cfg_loc_t at, const char *what, cfg_err_t *e);
int cfg_yaml_expect_seq(struct fy_node *n, cfg_loc_t at, const char *what, cfg_err_t *e);
/*
 * Iterates a mapping: *key gets the key text, *key_loc its position, *val the value node.
 * Returns 1 while there is a pair, 0 at the end, a KM_* code on a bad key.
 */
int cfg_yaml_next_pair(struct fy_node *map, void **iter, cfg_loc_t map_loc, const char **key,
                       cfg_loc_t *key_loc, struct fy_node **val, cfg_err_t *e);
/* Reports "unknown key 'k' in WHERE (expected: a, b, c)". Returns KM_CONFIG_EINVAL. */
int cfg_yaml_unknown_key(cfg_err_t *e, cfg_loc_t at, const char *key, const char *where,
                         const char *expected);

/* --- paths (config_path.c) --- */
/*
 * Makes path absolute against base_dir and normalises it lexically ("//", ".", ".."
 * removed). Returns a pool string or NULL (ENOMEM or too long).
 */
const char *cfg_path_resolve(km_config_t *cfg, const char *base_dir, const char *path);
/* Directory part of an absolute normalised path ("/" for "/x"). Pool string or NULL. */
const char *cfg_path_dirname(km_config_t *cfg, const char *abs);
/*
 * True when a and b (absolute, normalised) name the same file: equal literally, or equal
 * after realpath() of the file, or of its parent directory plus the base name.
 */
bool cfg_path_same(const char *a, const char *b);

/* --- schema (config_parse.c) --- */
int cfg_parse_main(km_config_t *cfg, struct fy_document *doc, const char *file, cfg_err_t *e);
int cfg_parse_include(km_config_t *cfg, struct fy_document *doc, const char *file,
                      cfg_err_t *e);
cfg_env_t *cfg_env_find(const km_config_t *cfg, const char *name);
cfg_keyset_t *cfg_keyset_find(const cfg_env_t *env, const char *name);

/* --- policies (config_policy.c) --- */
/* Adds a value to a level; refuses a field already set at that level (naming both places). */
int cfg_pblock_add(km_config_t *cfg, cfg_pblock_t *b, cfg_pset_t *ps, const char *where,
                   cfg_err_t *e);
/* Parses a "policy:" mapping into a level (field names and value types checked). */
int cfg_policy_parse(km_config_t *cfg, struct fy_node *map, cfg_loc_t at, cfg_pblock_t *b,
                     const char *where, cfg_err_t *e);
/* Computes and validates every effective policy. */
int cfg_policy_compute(km_config_t *cfg, cfg_err_t *e);

/* --- probe (config_probe.c) --- */
/* Parses the main file's "probe:" mapping into cfg->probe; the environments must already be
 * known (called after the main file's walk). */
int cfg_probe_parse(km_config_t *cfg, struct fy_node *map, cfg_loc_t at, cfg_err_t *e);

/* --- the wall (config_wall.c) --- */
int cfg_wall_check(km_config_t *cfg, cfg_err_t *e);
