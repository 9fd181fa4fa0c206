/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration file (keymgr.yaml(5)): environments, their tokens, stores, HTTP paths,
 * snapshot files and rotation policies, plus the daemon's listener and what `keymgr probe` may
 * reach.
 *
 * Loading parses the YAML with libfyaml, rejects unknown keys and wrong types, resolves
 * relative paths against the directory of the file, computes every effective policy
 * (built-in defaults, then defaults.policy, then environments.ENV.policy, then
 * keysets.NAME.policy) and validates it, and enforces the environment wall: no two
 * environments share a token, a store, an HTTP path or a snapshot file. Every error message
 * starts with "FILE:LINE:COL: " (or "FILE: " when there is no position). A PIN never
 * appears: the config only holds pin SOURCES.
 *
 * Every file read (the main file and its includes) must be a regular file owned by root or
 * by the user keymgr runs as, and writable by nobody else: whoever can write it chooses the
 * PKCS#11 module keymgr loads and who may sign. Anything else is refused (KM_CONFIG_EPERM),
 * by every loader, before the file is parsed.
 *
 * km_config_load() refuses a file with any error. km_config_load_partial() is for the
 * emergency work of the command line (keymgr(1), "A BROKEN CONFIGURATION"): an error
 * confined to one environment, one key set, a policy or the daemon section is recorded, and
 * the load goes on; what the error touches is not handed out (km_config_check() says why),
 * so nothing is ever read from a part that has an error, nor a default put in its place.
 *
 * A loaded km_config_t is read-only; everything it hands out stays valid until
 * km_config_free().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "pkcs11/token.h"
#include "policy/policy.h"

#define KM_CONFIG_DEFAULT_PATH "/etc/keymgr/keymgr.yaml"
#define KM_CONFIG_ENV_VAR "KEYMGR_CONFIG"
#define KM_CONFIG_VERSION 1

#define KM_CONFIG_MAX_ENVS 64
#define KM_CONFIG_MAX_KEYSETS 128       /* per environment */
#define KM_CONFIG_MAX_SNAPSHOTS 8       /* per environment */
#define KM_CONFIG_MAX_HOOK_ARGS 32      /* words of http.static_hook */
#define KM_CONFIG_HOOK_TIMEOUT 60       /* default http.static_hook_timeout, seconds */
#define KM_CONFIG_MAX_AUDIENCES 16      /* per key set */
#define KM_CONFIG_MAX_SIGNERS 32        /* users, and groups, per key set */
#define KM_CONFIG_UNIX_NAME_MAX 32      /* a Unix user or group name */
#define KM_CONFIG_MAX_INCLUDES 16
#define KM_CONFIG_MAX_NODES 100000   /* YAML nodes of a file, every alias expanded */
#define KM_CONFIG_MAX_SESSIONS 64
#define KM_CONFIG_INIT_ARGS_MAX 1024  /* environments.ENV.token.init_args */

#define KM_CONFIG_DEFAULT_LISTEN "127.0.0.1"
#define KM_CONFIG_DEFAULT_PORT 8080
#define KM_CONFIG_DEFAULT_LISTENER_USER "nobody"
#define KM_CONFIG_DEFAULT_ADMIN_LISTEN "127.0.0.1"
#define KM_CONFIG_DEFAULT_CONTROL_SOCKET "/run/keymgr/control.sock"
#define KM_CONFIG_DEFAULT_SESSIONS 4
#define KM_CONFIG_DEFAULT_KEEPALIVE 60      /* token.keepalive, seconds */
#define KM_CONFIG_MAX_KEEPALIVE 86400
#define KM_CONFIG_DEFAULT_POLL_INTERVAL 5
#define KM_CONFIG_DEFAULT_LEASE 15         /* seconds: daemon.lease (docs/ha.md) */
#define KM_CONFIG_DEFAULT_DENIAL_INTERVAL 60   /* seconds a peer's repeated denials fold */
#define KM_CONFIG_DEFAULT_CONTROL_RESERVED 16  /* of the 64 control connections */

typedef struct km_config km_config_t;

/*
 * How often kube-apiserver should call FetchKeys for a key set served to it (seconds): it
 * serves the keys with a max-age up to this long, so a verifier behind it lags by up to two
 * of these; derived from the policy as (publish_lead - clock_skew) / 2, capped at one hour,
 * so that publish_lead >= 2 x hint + clock_skew always holds. 0 when publish_lead is too
 * short for any (the load refuses such a key set).
 */
static inline int64_t km_config_k8s_refresh_hint(int64_t publish_lead, int64_t clock_skew)
{
	int64_t h = (publish_lead - clock_skew) / 2;
	return h <= 0 ? 0 : h > 3600 ? 3600 : h;
}

/* environments.ENV.keysets.NAME */
typedef struct {
	const char *name;
	const char *issuer;                              /* NULL when not set */
	const char *audiences[KM_CONFIG_MAX_AUDIENCES];
	size_t n_audiences;
	km_policy_t policy;                              /* effective: env policy + overrides */
	/* signers: who may sign through keymgrd (docs/keymgrd.8); nobody when both are empty */
	const char *signer_users[KM_CONFIG_MAX_SIGNERS];  /* Unix user names */
	size_t n_signer_users;
	const char *signer_groups[KM_CONFIG_MAX_SIGNERS]; /* Unix group names */
	size_t n_signer_groups;
	/* kubernetes: served to kube-apiserver by keymgr-k8s-signer (docs/kubernetes.md): its
	 * issuer and audiences set, max_token_ttl >= 600 s and publish_lead >= 2 x
	 * km_config_k8s_refresh_hint() + clock_skew, checked at load */
	bool kubernetes;
} km_keyset_cfg_t;

/* environments.ENV */
typedef struct {
	const char *name;
	/*
	 * Ready for km_token_open(). pin_source is a SOURCE ("file:/abs/path", "env:NAME" or
	 * "prompt"), never a PIN; relative pin files are already absolute.
	 */
	km_token_cfg_t token;
	/* absolute path of the SQLite file, or a postgresql:// URI (keymgr/common/pguri.h) */
	const char *store;
	/* What this node's own files for the environment are named after (the PIN refusal
	 * record, keymgrd's control record): the SQLite file, or for a PostgreSQL store
	 * CONFIGDIR/ENV.local, since a database has no directory of this node's. */
	const char *local;
	const char *http_path;                           /* "/production"; default "/ENV" */
	const char *snapshots[KM_CONFIG_MAX_SNAPSHOTS];  /* absolute paths */
	size_t n_snapshots;
	/* http.public_url: where verifiers reach http_path (behind a proxy or CDN), e.g.
	 * "https://keys.example.com"; a discovery document's jwks_uri starts with it. NULL:
	 * not set (no discovery documents). Checked by km_url_parse(). */
	const char *public_url;
	/* http.static_dir: a directory keymgrd keeps a static copy of the documents in
	 * (docs/static-hosting.md); absolute, or NULL */
	const char *static_dir;
	/* http.static_hook: the command keymgrd runs after each write of static_dir, given the
	 * changed paths (docs/static-hosting.md, "The hook"): words, the first an absolute
	 * program, no shell; n_static_hook 0: none. Only with static_dir. */
	const char *static_hook[KM_CONFIG_MAX_HOOK_ARGS];
	size_t n_static_hook;
	unsigned static_hook_timeout;                    /* seconds; default 60 */
	km_policy_t policy;                              /* effective environment policy */
	const km_keyset_cfg_t *keysets[KM_CONFIG_MAX_KEYSETS];
	size_t n_keysets;
	/* environments.ENV.audit: where audit events and checkpoints are streamed besides the
	 * store, and where the audit key lives */
	const char *audit_jsonl;                         /* JSON lines file (absolute) or NULL */
	bool audit_syslog;                               /* syslog(3), facility LOG_AUTHPRIV */
	/* audit.token: the token (and PIN) of the audit key and of the checkpoint record, when
	 * they are not the environment's token (has_audit_token false: token is used) */
	bool has_audit_token;
	km_token_cfg_t audit_token;
} km_env_cfg_t;

/* daemon */
typedef struct {
	const char *listen;                              /* IP address literal */
	unsigned port;
	const char *control_socket;                      /* absolute path */
	const char *control_group;                       /* group of the socket; NULL: keep */
	unsigned threads;                                /* HTTP thread pool; 0 = default */
	unsigned connection_limit;                       /* concurrent HTTP connections; 0 = default */
	unsigned timeout;                                /* idle HTTP connection seconds; 0 = default */
	unsigned poll_interval;                          /* seconds between store checks */
	unsigned lease;                                  /* seconds of a leader lease (PostgreSQL
	                                                  * stores; renewed every third) */
	bool remove_unsafe_keys;                         /* reconcile at start destroys unsafe
	                                                  * private keys no record holds */
	unsigned per_ip_limit;                           /* HTTP connections per address; 0 = default */
	unsigned rate_limit;                             /* HTTP requests/s per address; 0 = none */
	unsigned rate_burst;                             /* HTTP burst per address; 0 = 2 * rate */
	unsigned control_per_peer;                       /* control connections per uid; 0 = default */
	unsigned control_rate_limit;                     /* control requests/s per uid; 0 = none */
	unsigned control_rate_burst;                     /* control burst per uid; 0 = 2 * rate */
	/* The listener (keymgrd-listener): the user it runs as, and its admin socket
	 * (/metrics, /healthz), off unless admin_port is set (0: an ephemeral port). */
	const char *listener_user;
	const char *admin_listen;                        /* IP address literal */
	unsigned admin_port;
	bool admin;                                      /* admin_port was set */
	unsigned control_reserved;                       /* control connections kept for root,
	                                                  * keymgrd's user and the signers */
	unsigned denial_interval;                        /* seconds over which a peer's repeated
	                                                  * sign denials are folded */
} km_daemon_cfg_t;

/* probe: what `keymgr probe` may sign for and send to (docs/probe.md). Empty when absent. */
#define KM_CONFIG_MAX_PROBE_HOSTS 64
#define KM_CONFIG_PROBE_HOST_MAX 253                     /* a DNS name, or an IP literal */
typedef struct {
	/* The environments whose key sets may be probed: named one by one (no wildcard), each
	 * one an environment of the file. */
	const char *environments[KM_CONFIG_MAX_ENVS];
	size_t n_environments;
	/* The hosts that may be probed besides loopback: DNS names (lower case) or IP address
	 * literals, matched exactly against a URL's host. */
	const char *allowed_hosts[KM_CONFIG_MAX_PROBE_HOSTS];
	size_t n_allowed_hosts;
} km_probe_cfg_t;

/*
 * Picks the configuration file: cli_path (from -c) if not NULL, else $KEYMGR_CONFIG (read
 * with secure_getenv, ignored when empty), else KM_CONFIG_DEFAULT_PATH. Does not check that
 * the file exists (km_config_load() reports that). Writes the path into out.
 * Returns KM_EOK, KM_EINVAL (cli_path empty) or KM_ERANGE (out too small).
 */
int km_config_locate(const char *cli_path, char *out, size_t len);

/*
 * Loads and validates the file at path (and the files it includes). On failure writes one
 * message "FILE:LINE:COL: what" (the first error of the file) into err and returns
 * KM_ENOENT (missing file), KM_EACCES (unreadable), KM_CONFIG_EPERM (a file writable by
 * group or others, or owned by someone else than root and the caller: the message says
 * which and how to fix it), KM_CONFIG_EPARSE (YAML syntax), KM_CONFIG_EINVAL (schema,
 * names, wall), KM_POLICY_EUNSAFE (a policy fails its timing rules) or KM_ENOMEM. *ret is
 * set only on success and must be released with km_config_free().
 */
int km_config_load(const char *path, km_config_t **ret, char *err, size_t errlen);

/*
 * Like km_config_load(), but errors confined to a part of the file do not fail the load:
 *   - an environment's token, store, http or audit section (or a wall it shares with
 *     another environment): that environment is not handed out (km_config_env*() leave it
 *     out; km_config_env_lookup() and km_config_check() refuse it with the error);
 *   - a policy value (defaults.policy, environments.ENV.policy) or a key set's entry: the
 *     key sets it applies to have no policy (km_config_keyset_policy() refuses,
 *     km_config_keyset() returns NULL, ENV's keysets[] leaves them out);
 *   - the daemon section (km_config_daemon_check()).
 * Each is kept, as "FILE:LINE:COL: what", for km_config_error_at(). The load still fails,
 * with the codes of km_config_load(), when the file cannot be read or trusted (missing,
 * unreadable, KM_CONFIG_EPERM), is not YAML (KM_CONFIG_EPARSE), or has an error that no part
 * contains (version, include, an unknown top-level key, an included file's error outside
 * its environments' policies and key sets).
 */
int km_config_load_partial(const char *path, km_config_t **ret, char *err, size_t errlen);

/* The errors a partial load recorded (0 after km_config_load()), in the order found, as
 * "FILE:LINE:COL: what" (owned by cfg; NULL when i is out of range). */
size_t km_config_error_count(const km_config_t *cfg);
const char *km_config_error_at(const km_config_t *cfg, size_t i);

/*
 * Whether a command can use environment env and, when keyset is not NULL, the configuration
 * of key set keyset (its entry and the policies it inherits). Returns KM_EOK; the codes and
 * messages of km_config_env_lookup() for an unknown, invalid or broken environment; KM_ENAME
 * for an invalid key set name; or KM_CONFIG_EBROKEN with the errors that touch the key set
 * in err.
 */
int km_config_check(const km_config_t *cfg, const char *env, const char *keyset, char *err,
                    size_t errlen);

/*
 * The errors of a partial load that touch environment env: its own sections, the policies
 * it inherits and any of its key sets' entries, joined by "; " into err (may be NULL).
 * Returns their number.
 */
size_t km_config_env_errors(const km_config_t *cfg, const char *env, char *err, size_t errlen);

/* The effective policy of environment env itself: KM_EOK (*ret set), KM_ENOENT, or
 * KM_CONFIG_EBROKEN when the environment or a policy value it inherits has errors. */
int km_config_env_policy(const km_config_t *cfg, const char *env, km_policy_t *ret);

/* False when a partial load left an environment out (its own sections, or its name, have
 * errors): a command over "every environment" did not see them all. */
bool km_config_envs_complete(const km_config_t *cfg);

/* KM_EOK, or KM_CONFIG_EBROKEN with the daemon section's errors in err. */
int km_config_daemon_check(const km_config_t *cfg, char *err, size_t errlen);

/* Releases a loaded configuration. Accepts NULL. */
void km_config_free(km_config_t *cfg);

/* Absolute path of the loaded file (owned by cfg). */
const char *km_config_path(const km_config_t *cfg);

/* Number of environments, and the i-th in file order (NULL when out of range). After a
 * partial load, environments with errors of their own are left out. */
size_t km_config_env_count(const km_config_t *cfg);
const km_env_cfg_t *km_config_env_at(const km_config_t *cfg, size_t i);

/* The environment called name, or NULL (also for NULL or invalid names). Owned by cfg. */
const km_env_cfg_t *km_config_env(const km_config_t *cfg, const char *name);

/*
 * Writes the environment names in file order, comma separated ("production, staging,
 * development"), into buf (truncated with "..." when too small). Returns buf.
 */
char *km_config_env_names(const km_config_t *cfg, char *buf, size_t len);

/*
 * Like km_config_env() but for user input: on failure writes "unknown environment 'x'
 * (known: production, staging)", a message about an invalid name, or (after a partial load)
 * "environment 'x' cannot be used: its configuration has errors ...: FILE:LINE:COL: what"
 * into err. Returns KM_EOK (sets *ret), KM_ENAME, KM_ENOENT or KM_CONFIG_EBROKEN.
 */
int km_config_env_lookup(const km_config_t *cfg, const char *name, const km_env_cfg_t **ret,
                         char *err, size_t errlen);

/* The configured key set env/keyset, or NULL when the config does not mention it (or, after
 * a partial load, when its configuration has errors: see km_config_check()). */
const km_keyset_cfg_t *km_config_keyset(const km_config_t *cfg, const char *env,
                                        const char *keyset);

/*
 * Effective policy of key set keyset in env: the key set's configured policy, or the
 * environment policy when the config has no entry for it. src[] tells where each value
 * came from. Returns KM_EOK (writes *out), KM_ENOENT (unknown env), KM_ENAME (invalid
 * key set name) or, after a partial load, KM_CONFIG_EBROKEN (the environment, or a policy
 * value or entry the key set's policy is made of, has errors: never the environment's
 * policy in place of a broken key set entry).
 */
int km_config_keyset_policy(const km_config_t *cfg, const char *env, const char *keyset,
                            km_policy_t *out);

/* The daemon section (defaults filled in). Owned by cfg. */
const km_daemon_cfg_t *km_config_daemon(const km_config_t *cfg);

/* The probe section (owned by cfg): empty when the file has none, and after a partial load
 * when it has errors (then nothing may be probed). */
const km_probe_cfg_t *km_config_probe(const km_config_t *cfg);

/* Whether the probe section names environment env (exact match). */
bool km_config_probe_env(const km_config_t *cfg, const char *env);
