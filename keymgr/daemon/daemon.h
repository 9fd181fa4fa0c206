/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgrd's state, shared by its modules (private to keymgr/daemon/):
 *   main.c       options, startup, the main loop
 *   state.c      environments and key sets held by the daemon; reload
 *   scheduler.c  ticks: applying due actions through km_apply, backoff, propagation gating
 *   publisher.c  rendering the JWKS documents, swapping them into km_http, snapshot files
 *   control.c    the control socket (docs/control-protocol.md)
 *   status.c     the status reply
 *   metrics.c    the /metrics text and /healthz state
 *
 * Threads: everything here runs on the main thread. The HTTP pool only calls km_http, which
 * never touches the store or a token; the store and the tokens are used by this thread only.
 */
#pragma once

#include <stdbool.h>
#include <jansson.h>
#include <stdint.h>

#include "keymgr/config/config.h"
#include "keymgr/core/env.h"
#include "keymgr/http/http_server.h"
#include "policy/planner.h"

#define KD_BACKOFF_MIN 1     /* seconds before the first retry of a failed key set */
#define KD_BACKOFF_MAX 300   /* cap of the exponential backoff */
#define KD_ERROR_MAX 512
#define KD_TOKEN_CHECK 300   /* seconds between reachability checks of an idle token */

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
	unsigned failures;         /* consecutive failed runs */
	int64_t retry_at;          /* no automatic run before this after a failure */
	char *error;               /* last failure (malloc'd), NULL when the last run succeeded */
	kd_key_t *keys;            /* from the last refresh */
	size_t n_keys;
	uint64_t fp;               /* fingerprint of keys[] (kid, state, time) */
	bool fp_known;
	bool fp_ours;              /* we changed it since the last refresh: not an outside change */
	uint64_t kids_fp;          /* fingerprint of the kids in its JWKS, in order */
	bool published;            /* its document is in km_http */
	uint8_t digest[32];        /* SHA-256 of the published document */
	unsigned published_max_age;
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
	uint8_t digest[32];
	unsigned published_max_age;
	int64_t serial;            /* serial of the current documents (0: none yet) */
	int64_t changed_at;        /* when the environment document last changed */
	bool token_ok;
	int64_t token_checked_at;  /* last successful open (the token is closed between passes) */
	unsigned token_failures;
	int64_t token_retry_at;
	char *token_error;         /* malloc'd; NULL when the token is reachable */
	char *refresh_error;       /* malloc'd; NULL when the last refresh succeeded */
	uint64_t actions[KM_PLAN_OP_COUNT][2]; /* [op][0] applied, [op][1] failed */
} kd_env_t;

typedef struct {
	/* Options. */
	const char *config_arg;    /* -c, or NULL */
	const char *only[KM_CONFIG_MAX_ENVS];  /* --env NAME ...; n_only == 0: every environment */
	size_t n_only;
	const char *listen;        /* --listen, or NULL: the config's */
	int port;                  /* --port, or -1: the config's */
	const char *control_socket;/* --control-socket, or NULL: the config's */

	km_config_t *cfg;
	kd_env_t *envs;
	size_t n_envs;
	km_http_t *http;
	int ctl_fd;
	char ctl_path[108];

	int64_t started;
	int64_t last_tick;         /* last time any key set was planned */
	int64_t last_tick_ok;      /* last time a pass over all due key sets succeeded */
	bool healthy;
	uint64_t reloads_ok, reloads_failed;
	int64_t config_loaded_at;
	unsigned poll_interval;
} kd_daemon_t;

/* --- state.c --- */
/* Loads the configuration named by the options and opens the selected environments. */
int kd_state_load(kd_daemon_t *d, char *err, size_t errlen);
/* Loads the configuration again and swaps it in; on any error the old one stays. */
int kd_state_reload(kd_daemon_t *d, char *err, size_t errlen);
void kd_state_free(kd_daemon_t *d);
void kd_env_set_error(char **slot, const char *msg);
/* The key set called name in e, or NULL. */
kd_keyset_t *kd_env_keyset(kd_env_t *e, const char *name);
/* "/ENV/NAME/jwks.json" of a key set. */
void kd_keyset_path(const kd_env_t *e, const char *keyset, char *buf, size_t len);

/* --- scheduler.c --- */
/*
 * Plans and applies every due key set of e (all with force). Returns the number of key sets
 * planned; *failed counts the failures.
 */
size_t kd_tick_env(kd_daemon_t *d, kd_env_t *e, int64_t now, bool force, const char *only_keyset,
                   size_t *failed);
/* Earliest time something of e is due. */
int64_t kd_env_next_wake(const kd_env_t *e);
/* Seconds to wait after the n-th consecutive failure (n >= 1). */
int64_t kd_backoff(unsigned n);

/* --- publisher.c --- */
/*
 * Reads e's key sets and keys, publishes every document whose bytes changed under a new
 * serial, writes the snapshot files, and marks key sets changed from outside as due.
 */
int kd_publish_env(kd_daemon_t *d, kd_env_t *e, int64_t now);
/* Stops serving e's documents. */
void kd_unpublish_env(kd_daemon_t *d, kd_env_t *e);

/* --- metrics.c --- */
/* Recomputes /healthz and the /metrics text. */
void kd_metrics_update(kd_daemon_t *d, int64_t now);

/* --- control.c (kd_run_once and kd_reload live in main.c) --- */
/* Creates the control socket at path. */
int kd_control_open(kd_daemon_t *d, const char *path, const char *group, char *err,
                    size_t errlen);
/* Accepts and answers one connection (the listening socket is readable). */
void kd_control_handle(kd_daemon_t *d);
void kd_control_close(kd_daemon_t *d);
/* One pass of the loop's work, as after a wake-up (used by tick and reload requests too). */
size_t kd_run_once(kd_daemon_t *d, bool force, const char *env, const char *keyset,
                   size_t *failed);
/* Reload and log it (SIGHUP and the control socket). */
int kd_reload(kd_daemon_t *d, const char *who, char *err, size_t errlen);

/* --- status.c --- */
/* The status reply {"ok":true,...}, for env (NULL: all) and keyset (NULL: all). */
json_t *kd_status_json(kd_daemon_t *d, const char *env, const char *keyset, int64_t now);
