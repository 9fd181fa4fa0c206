/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgrd's state, shared by its modules (private to keymgr/daemon/):
 *   main.c       options, startup, the main loop
 *   state.c      environments and key sets held by the daemon; reload
 *   scheduler.c  ticks: applying due actions through km_apply, backoff, propagation gating
 *   publisher.c  rendering the JWKS documents, swapping them into km_http, snapshot files
 *   control.c    the control socket (docs/control-protocol.md): status, reload, tick
 *   ctl_server.c its connections: acceptor and per-connection threads, the main-thread queue
 *   signer.c     the signing service: per environment a signing token and the key sets'
 *                resolved keys and signers, swapped under a rwlock
 *   authz.c      the peer's identity (SO_PEERCRED, SO_PEERGROUPS) and the signers' lists
 *   status.c     the status reply
 *   metrics.c    the /metrics text and /healthz state
 *
 * Threads: the scheduler, the publisher, the stores and the scheduler's token handles belong
 * to the main thread. The HTTP pool only calls km_http, which never touches the store or a
 * token. Control connections run on their own threads: they sign (signer.c: its own token
 * handles and data, under its rwlock) and hand every other request to the main thread.
 */
#pragma once

#include <stdbool.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "keymgr/config/config.h"
#include "keymgr/core/env.h"
#include "keymgr/http/http_server.h"
#include "policy/planner.h"

#define KD_BACKOFF_MIN 1     /* seconds before the first retry of a failed key set */
#define KD_BACKOFF_MAX 300   /* cap of the exponential backoff */
#define KD_ERROR_MAX 512
#define KD_TOKEN_CHECK 300   /* seconds between reachability checks of an idle token */
#define KD_CHECKPOINT_INTERVAL 300   /* seconds between signed audit checkpoints */
#define KD_CTL_MAX_CONNECTIONS 64    /* concurrent control connections (threads) */
#define KD_CTL_IDLE_MS 60000         /* idle time before a control connection is closed */
#define KD_PEER_GROUPS 64            /* supplementary groups of a peer that are checked */

typedef struct kd_signing kd_signing_t;   /* signer.c */
typedef struct kd_ctl kd_ctl_t;           /* ctl_server.c */

/* The peer of a control connection, from the kernel at connect time. */
typedef struct {
	bool known;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t groups[KD_PEER_GROUPS];  /* supplementary groups (SO_PEERGROUPS) */
	size_t n_groups;
	char user[KM_STORE_ACTOR_USER_MAX + 1];   /* user name, or "uid-N" */
	char who[64];                  /* "uid=N pid=N" for logs */
} kd_peer_t;

/* Who may sign with one key set: its signers resolved to ids. */
typedef struct {
	uid_t *uids;
	size_t n_uids;
	gid_t *gids;
	size_t n_gids;
} kd_allow_t;

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
	uint64_t fp;               /* fingerprint of its keys (kid, state, time) as the daemon last
	                            * saw them: at a refresh, or at the end of its own pass */
	bool fp_known;
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
	int64_t checkpoint_at;     /* last audit checkpoint attempt */
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
	kd_ctl_t *ctl;             /* the control connections' threads */
	kd_signing_t *signing;     /* the signing service */

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

/* --- token_check.c --- */
/*
 * Opens e's token if needed and probes it (km_token_check); with force, first retries a
 * lost token at once (km_token_recover). KM_EOK, or the token's code with err set.
 */
int kd_env_token_check(kd_env_t *e, bool force, char *err, size_t errlen);

/* --- publisher.c --- */
/*
 * Reads e's key sets and keys, publishes every document whose bytes changed under a new
 * serial, writes the snapshot files, and marks key sets changed from outside as due.
 */
int kd_publish_env(kd_daemon_t *d, kd_env_t *e, int64_t now);
/*
 * *ret: the fingerprint of key set keyset's keys in e's store now, computed as a refresh
 * computes kd_keyset_t.fp. KM_EOK, or the store's code with err set.
 */
int kd_keyset_fp(kd_env_t *e, const char *keyset, uint64_t *ret, char *err, size_t errlen);
/* Stops serving e's documents. */
void kd_unpublish_env(kd_daemon_t *d, kd_env_t *e);
/* Tells the HTTP server the verifier names the configuration's policies wait for
 * (activate_when_seen_by): their rows of the verifier table are never evicted. At start and
 * after each reload. */
void kd_publish_listed_verifiers(kd_daemon_t *d);

/* --- metrics.c --- */
/* Recomputes /healthz and the /metrics text. */
void kd_metrics_update(kd_daemon_t *d, int64_t now);

/* --- control.c (kd_run_once and kd_reload live in main.c) --- */
/* Creates the control socket at path. */
int kd_control_open(kd_daemon_t *d, const char *path, const char *group, char *err,
                    size_t errlen);
void kd_control_close(kd_daemon_t *d);
/*
 * Records the control socket's path next to the store of every served environment
 * (km_ctl_record_write(): STORE.keymgrd), for clients that cannot read the configuration.
 * A failure is logged, not fatal. Called at start and after each reload.
 */
void kd_control_record(kd_daemon_t *d);
/* One pass of the loop's work, as after a wake-up (used by tick and reload requests too). */
size_t kd_run_once(kd_daemon_t *d, bool force, const char *env, const char *keyset,
                   size_t *failed);
/*
 * Reload and log it (SIGHUP: peer NULL; the control socket: the peer, who acts in the stores
 * and is named by the config.reload audit event).
 */
int kd_reload(kd_daemon_t *d, const char *who, const kd_peer_t *peer, char *err, size_t errlen);
/*
 * The checks kd_control_dispatch() makes before acting, in its order: op present and one of
 * status/reload/tick, env and keyset valid names, env served here. NULL when the request
 * may be answered (*env_out, *keyset_out set, NULL when absent), else the refusal reply (new
 * reference). *op_out is always set ("-" when missing). Also used by fuzz/fuzz_ctl.c.
 */
json_t *kd_control_check(const kd_daemon_t *d, json_t *req, const char **op_out,
                         const char **env_out, const char **keyset_out);
/* Answers a status, reload or tick request on the main thread, and logs it. New reference. */
json_t *kd_control_dispatch(kd_daemon_t *d, json_t *req, const kd_peer_t *peer);
/* For a connection thread: the refusal of a request without an op, or with an op keymgrd
 * does not know, logged as kd_control_dispatch() logs it (new reference); NULL for the
 * others, which go to the main thread. Needs no daemon state: it does not wait for a pass. */
json_t *kd_control_refuse_early(json_t *req, const kd_peer_t *peer);

/* --- ctl_server.c --- */
/* Starts the acceptor thread on d->ctl_fd. KM_EOK or KM_EIO (message in err). */
int kd_ctl_start(kd_daemon_t *d, char *err, size_t errlen);
/* The eventfd the main loop polls: readable when requests wait for the main thread. */
int kd_ctl_wake_fd(const kd_daemon_t *d);
/* Main thread: answers the queued requests, records queued audit events. */
void kd_ctl_process(kd_daemon_t *d);
/* Stops accepting, ends every connection and waits for their threads. NULL-safe. */
void kd_ctl_stop(kd_daemon_t *d);

/* --- authz.c --- */
/* Fills *p with fd's peer: uid, gid, pid, supplementary groups and user name. */
void kd_peer_get(int fd, kd_peer_t *p);
/* An audit actor for the peer (via "daemon" or "signing"). */
void kd_peer_actor(const kd_peer_t *p, const char *via, km_store_actor_t *a);
/* Resolves kc's signers to ids (unknown names are logged and left out). KM_EOK/KM_ENOMEM. */
int kd_allow_resolve(const km_keyset_cfg_t *kc, const char *env, kd_allow_t *ret);
void kd_allow_clear(kd_allow_t *a);
/* Whether p's uid is listed, or its gid or a supplementary group is. */
bool kd_allow_check(const kd_allow_t *a, const kd_peer_t *p);
bool kd_allow_equal(const kd_allow_t *x, const kd_allow_t *y);

/* --- signer.c --- */
int kd_signing_create(kd_signing_t **ret);
/* Closes the signing tokens. The control threads must be stopped. NULL ok. */
void kd_signing_free(kd_signing_t *s);
/* The eventfd to write when audit events are queued (-1: none). */
void kd_signing_set_wake(kd_signing_t *s, int fd);
/* Whether some key set of e lists signers. */
bool kd_signing_configured(const kd_env_t *e);
/* Whether env has a signing context (its scheduler token then stays open too). */
bool kd_signing_env_open(kd_daemon_t *d, const char *env);
/* Main thread: creates/drops contexts, opens tokens (with backoff), swaps in changed keys. */
void kd_signing_sync(kd_daemon_t *d, int64_t now);
/* Main thread: the write lock, held across a change of the active key and its swap. */
void kd_signing_write_lock(kd_daemon_t *d);
void kd_signing_write_unlock(kd_daemon_t *d);
/* With the write lock held: re-resolves e's key sets from its store and configuration. */
void kd_signing_refresh_locked(kd_daemon_t *d, kd_env_t *e);
/* With the write lock held, after a successful reload: contexts follow the new config. */
void kd_signing_reloaded_locked(kd_daemon_t *d);
/* Without the lock: looks kid up in e's signing token, so its handle is cached. */
void kd_signing_warm_kid(kd_daemon_t *d, kd_env_t *e, const char *kid);
/* Main thread: records the queued sign.denied events. */
void kd_signing_flush_audit(kd_daemon_t *d);
/* Control thread: answers {"op":"sign",...} for peer p. Signed: returns NULL and sets *jwt
 * (malloc'd; the reply is {"ok":true,"jwt":JWT}). Otherwise *jwt = NULL and the refusal
 * reply is returned (new reference; NULL when out of memory). */
json_t *kd_signing_request(kd_signing_t *s, const kd_peer_t *p, json_t *req, char **jwt);
/* For a connection thread about to wait for its next request, which signed last in env:
 * runs the C_SignInit of one session of env's signing token whose last signature used an EC
 * or EdDSA key (km_token_prepare), so that the next request with the same key only pays
 * C_Sign. Which key signs is still decided per request. */
void kd_signing_prepare(kd_signing_t *s, const char *env);
/* Requests signed, refused by policy, denied to the caller, failed in the token. */
void kd_signing_counters(const kd_daemon_t *d, uint64_t out[4]);

/* --- status.c --- */
/* The status reply {"ok":true,...}, for env (NULL: all) and keyset (NULL: all). */
json_t *kd_status_json(kd_daemon_t *d, const char *env, const char *keyset, int64_t now);
