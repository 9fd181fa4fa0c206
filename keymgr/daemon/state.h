/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgrd's state (state.c): the environments and key sets it serves, what it last saw and
 * served of each, and the daemon as a whole. Every module of keymgr/daemon/ reads it; the
 * main thread alone changes it (see the list of modules and threads in main.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/config/config.h"
#include "keymgr/core/env.h"
#include "keymgr/daemon/front.h"
#include "keymgr/http/http_server.h"
#include "policy/planner.h"

#define KD_ERROR_MAX 512     /* bytes of an error message in a reply or a publication */

typedef struct kd_signing kd_signing_t;   /* the signing service: signer.h */
typedef struct kd_ctl kd_ctl_t;           /* the control connections: ctl_server.h */
typedef struct kd_hook kd_hook_t;         /* a static-tree hook: hook.h */
typedef struct kd_lease kd_lease_t;       /* the leader lease: lease.h */

/* One key of a key set as the daemon last saw it in the store (destroyed keys left out). */
typedef struct {
	char kid[KM_KID_MAX + 1];
	km_state_t state;
	int64_t state_at;          /* when it entered its current state */
	int64_t first_serial;      /* serial of the first served JWKS holding it; 0: never served */
	int64_t served_at;         /* when that JWKS was swapped in */
	bool deferral_logged;      /* an activation deferral of this key was logged */
} kd_key_t;

typedef struct {
	char name[KM_KEYSET_NAME_MAX + 1];
	unsigned max_age;          /* the key set's jwks_max_age (Cache-Control of its document) */
	int64_t next_wake;         /* when to plan it again; 0: now */
	int64_t next_event;        /* its next lifecycle event as last planned (INT64_MAX: none,
	                            * 0: not planned yet); next_wake may be earlier (a gate's
	                            * recheck, a retry) */
	unsigned failures;         /* consecutive failed runs */
	int64_t retry_at;          /* no automatic run before this after a failure */
	char *error;               /* last failure (malloc'd), NULL when the last run succeeded */
	kd_key_t *keys;            /* from the last refresh */
	size_t n_keys;
	uint64_t fp;               /* fingerprint of its keys (kid, state, time) as the daemon last
	                            * saw them: at a refresh, or at the end of its own pass */
	bool fp_known;
	uint64_t kids_fp;          /* fingerprint of the kids in its JWKS, in order */
	bool published;            /* its document is in km_http */
	uint8_t digest[32];        /* SHA-256 of the published document */
	unsigned published_max_age;
	/* its discovery document (keymgr/core/documents.h), rendered again when the
	 * configuration it was made from is replaced */
	const km_env_cfg_t *disc_cfg;   /* NULL: not rendered yet */
	bool disc_published;
	uint8_t disc_digest[32];
	bool deferred;             /* an activation is being held back by the gate */
	uint64_t ceiling_total;    /* activations released by activate_when_seen_ceiling */
	uint64_t warn_fp;          /* the planner warnings last logged */
} kd_keyset_t;

typedef struct {
	char name[KM_ENV_NAME_MAX + 1];
	km_env_t *env;             /* store open, token opened by the first tick */
	const km_env_cfg_t *cfg;   /* owned by the daemon's current km_config_t */
	kd_keyset_t *ks;           /* sorted by name, like the store lists them */
	size_t n_ks;
	char path[KM_HTTP_PATH_MAX + 1];   /* "/ENV/.well-known/jwks.json" */
	bool published;
	bool stale;                /* a key set document changed; the environment's must follow */
	int64_t static_serial;     /* serial of the static tree last written (http.static_dir) */
	const km_env_cfg_t *static_cfg;   /* the configuration it was written with */
	kd_hook_t *hook;           /* http.static_hook, NULL when none (kept in step with the
	                            * configuration by the main loop and each write) */
	uint8_t digest[32];
	unsigned published_max_age;
	int64_t serial;            /* serial of the current documents (0: none yet) */
	int64_t changed_at;        /* when the environment document last changed */
	bool token_ok;
	int64_t token_checked_at;  /* last successful open (the token is closed between passes) */
	unsigned token_failures;
	int64_t token_retry_at;
	int64_t checkpoint_at;     /* last audit checkpoint attempt */
	char *token_error;         /* malloc'd; NULL when the token is reachable */
	char *refresh_error;       /* malloc'd; NULL when the last refresh succeeded */
	uint64_t actions[KM_PLAN_OP_COUNT][2]; /* [op][0] applied, [op][1] failed */
	/* A PostgreSQL store's leader lease (lease.h): only its holder plans, applies and
	 * reconciles. NULL: a store without one (SQLite, one node), or not started yet. */
	kd_lease_t *lease;
	int64_t reconciled_epoch;  /* the lease epoch this node last reconciled at */
	int64_t docs_epoch;        /* the lease epoch at which this node, leading, last had the
	                            * store render its documents (publisher.c, lead_store) */
} kd_env_t;

typedef struct {
	/* Options. */
	const char *config_arg;    /* -c, or NULL */
	const char *only[KM_CONFIG_MAX_ENVS];  /* --env NAME ...; n_only == 0: every environment */
	size_t n_only;
	const char *listen;        /* --listen, or NULL: the config's */
	int port;                  /* --port, or -1: the config's */
	int admin_port;            /* --admin-port, or -1: the config's */
	const char *control_socket;/* --control-socket, or NULL: the config's */

	km_config_t *cfg;
	kd_env_t *envs;
	size_t n_envs;
	kd_front_t *front;         /* the listener (front.h): everything served goes there */
	int ctl_fd;
	char ctl_path[108];
	kd_ctl_t *ctl;             /* the control connections' threads */
	kd_signing_t *signing;     /* the signing service */

	int64_t started;
	int64_t last_tick;         /* last time any key set was planned */
	int64_t last_tick_ok;      /* last time a pass over all due key sets succeeded */
	bool healthy;
	uint64_t reloads_ok, reloads_failed;
	int64_t config_loaded_at;
	unsigned poll_interval;
	int docs_wake_fd;          /* eventfd: a lease thread heard of new documents in a store */
} kd_daemon_t;

/* HTTP paths to stop serving (kd_state_reload). */
typedef struct {
	char (*path)[KM_HTTP_PATH_MAX + 1];
	size_t n;
} kd_paths_t;

/* Loads the configuration named by the options and opens the selected environments. */
int kd_state_load(kd_daemon_t *d, char *err, size_t errlen);

/*
 * Loads the configuration again and swaps it in; on any error the old one stays (and
 * *ret_gone is left untouched). On success *ret_gone receives the paths that are served no
 * more (the documents of a removed environment, or of one whose http.path changed), already
 * marked unpublished in the state: the caller takes them out of km_http and frees the list
 * (kd_paths_free). KM_EOK, the configuration's and the stores' codes, KM_ENOMEM.
 */
int kd_state_reload(kd_daemon_t *d, kd_paths_t *ret_gone, char *err, size_t errlen);
void kd_state_free(kd_daemon_t *d);
/* Frees the list (not p itself). NULL-safe. */
void kd_paths_free(kd_paths_t *p);
/* Replaces *slot (malloc'd or NULL) with a copy of msg (NULL: no error). */
void kd_env_set_error(char **slot, const char *msg);
/* The key set called name in e, or NULL. */
kd_keyset_t *kd_env_keyset(kd_env_t *e, const char *name);
/* "/ENV/NAME/jwks.json" of a key set (keymgr/core/documents.h). */
void kd_keyset_path(const kd_env_t *e, const char *keyset, char *buf, size_t len);
/* "/ENV/NAME/.well-known/openid-configuration" of a key set. */
void kd_discovery_path(const kd_env_t *e, const char *keyset, char *buf, size_t len);
