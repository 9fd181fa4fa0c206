/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgrd's network face, kept in another process (docs/architecture.md, "The listener"):
 * keymgrd binds the public socket (and the admin one) itself, starts keymgrd-listener with
 * them and a channel (keymgr/front/channel.h), and supervises it. Everything keymgrd serves
 * goes through here: documents, the health verdict, the metrics text, the listed verifier
 * names. What the listener learns (who fetched which serial) comes back into a verifier table
 * kept here, which the scheduler (propagation gating) and `keymgr status` read.
 *
 * The listener holds no PIN, no token module and no store handle. When it dies, keymgrd
 * starts another with a backoff (1 s, doubling to 30 s) and gives it every document at once;
 * connections made meanwhile wait in the listening socket's backlog, which keymgrd keeps.
 * Signing and rotation go on, since they never pass through it.
 *
 * Called from keymgrd's main thread only (kd_front_verifiers() from any thread).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "keymgr/http/http_server.h"

typedef struct kd_front kd_front_t;

typedef struct {
	const char *listen_addr;
	uint16_t port;                 /* 0: ephemeral */
	bool admin;                    /* an admin socket (/metrics, /healthz) */
	const char *admin_addr;
	uint16_t admin_port;           /* 0: ephemeral */
	const char *user;              /* the listener's user */
	unsigned threads, conn_limit, per_ip_limit, conn_timeout, rate_limit, rate_burst;
	size_t max_header_size, max_verifiers;
} kd_front_cfg_t;

/*
 * Binds the sockets and starts the listener; returns once it is confined and serving (its
 * READY), or with the reason it gave or the failure to start it. KM_EOK, KM_EINVAL,
 * KM_EIO, KM_ENOMEM; *ret is freed with kd_front_free().
 */
int kd_front_start(const kd_front_cfg_t *cfg, kd_front_t **ret, char *err, size_t errlen);

/* Stops the listener (SIGTERM, then SIGKILL after 5 s) and closes the sockets. NULL ok. */
void kd_front_free(kd_front_t *f);

uint16_t kd_front_port(const kd_front_t *f);
uint16_t kd_front_admin_port(const kd_front_t *f);   /* 0 without an admin socket */
pid_t kd_front_pid(const kd_front_t *f);              /* 0 while none runs */
bool kd_front_confined(const kd_front_t *f);          /* its seccomp filter is on */

/* Serves body at path (copied: given again to every listener started later). KM_EOK,
 * KM_EINVAL (bad path), KM_ENOMEM. A listener that cannot take it is restarted. */
int kd_front_publish(kd_front_t *f, const char *path, const char *body, size_t len,
                     int64_t serial, unsigned max_age, time_t last_modified);
int kd_front_unpublish(kd_front_t *f, const char *path);

/* The health verdict (the reason stays here: kd_front_health_reason(), for the control
 * socket only; /healthz says ok or unhealthy). */
int kd_front_set_health(kd_front_t *f, bool ok, const char *reason);
const char *kd_front_health_reason(const kd_front_t *f);

int kd_front_set_metrics_text(kd_front_t *f, const char *text);
int kd_front_set_listed_verifiers(kd_front_t *f, const char *const *names, size_t n);

/* The listener accepts connections from now on (and every later one at once). */
int kd_front_listen(kd_front_t *f, char *err, size_t errlen);

/* As km_http_verifiers(), from the table the listener's reports fill. */
int kd_front_verifiers(kd_front_t *f, const char *path, km_http_verifier_t **ret,
                       size_t *count);

/* The rows of listed verifier names (kd_front_set_listed_verifiers) the listener reported
 * since the last call (each path and name once, its newest serial), for the store's shared
 * pickup records (pickups.h). *ret: free() (NULL when none). Returns their number. */
size_t kd_front_take_pickups(kd_front_t *f, km_http_verifier_t **ret);

/* The channel, for keymgrd's poll(): readable means kd_front_process() has work; -1 while no
 * listener runs. */
int kd_front_fd(const kd_front_t *f);

/* Reads what the listener sent (verifier rows, a failure), or notices it died. */
void kd_front_process(kd_front_t *f);

/* Restarts a dead listener when its backoff has passed; returns when to call again (unix
 * seconds, INT64_MAX when one is running). */
int64_t kd_front_tick(kd_front_t *f, int64_t now);

/* Listener restarts since start, for /metrics. */
uint64_t kd_front_restarts(const kd_front_t *f);
