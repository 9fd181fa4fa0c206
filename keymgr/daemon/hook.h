/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The static-tree hook (hook.c; docs/static-hosting.md, "The hook"): after keymgrd writes an
 * environment's http.static_dir, it runs http.static_hook with the paths that changed, to sync
 * them to an object store or a CDN. One hook per environment, one run at a time:
 *
 *   - the command is an argv list (no shell): the configured words, then one argument per
 *     changed path, relative to the static directory (written or removed: a path whose file
 *     is gone was removed), manifest.json last; its working directory is the static
 *     directory; its environment holds only PATH, KEYMGR_ENV, KEYMGR_STATIC_DIR and
 *     KEYMGR_SERIAL (never the daemon's, which may hold a PIN); stdin is /dev/null, stdout and
 *     stderr are keymgrd's (the journal); no other descriptor is inherited;
 *   - it runs in a process group of its own, killed (SIGKILL) when it outlives the timeout;
 *   - exit status 0 is success; anything else (a failure to start, a non-zero status, a
 *     signal, the timeout) is logged, counted, and the same paths (with any changed since)
 *     are handed to a new run after a backoff (1, 2, 4 ... up to 300 s).
 *
 * Nothing here reads a clock: the caller passes "now" to kd_hook_step() (unit seconds), which
 * is how tests drive the timeout and the retries without sleeping.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct kd_hook kd_hook_t;

typedef struct {
	const char *const *argv;  /* argv[0] an absolute program; argc words */
	size_t argc;
	const char *dir;          /* the static directory: working directory, KEYMGR_STATIC_DIR */
	const char *env_name;     /* KEYMGR_ENV, and the log lines' env= */
	unsigned timeout;         /* seconds a run may last (>= 1) */
} kd_hook_cfg_t;

typedef struct {
	uint64_t ok;              /* runs that exited 0 */
	uint64_t failed;          /* runs that failed (including timeouts and failed starts) */
	uint64_t timeouts;        /* of those, runs killed at the timeout */
	unsigned failures;        /* consecutive failed runs (0 after a success) */
	size_t pending;           /* paths waiting for a run (the running one's not counted) */
	pid_t pid;                /* the running hook, 0 when none */
	int64_t retry_at;         /* no run before this after a failure */
} kd_hook_stats_t;

/* *ret: a hook running cfg (copied). KM_EOK, KM_EINVAL (argv[0] not absolute, timeout 0),
 * KM_ENOMEM. Free with kd_hook_free(). */
int kd_hook_create(const kd_hook_cfg_t *cfg, kd_hook_t **ret);
/* Kills (SIGKILL, its process group) and reaps a running hook, then frees h. NULL-safe. */
void kd_hook_free(kd_hook_t *h);
/* Whether h runs the same command as cfg (a reload keeps a hook whose command is unchanged,
 * with its pending paths and counters). */
bool kd_hook_same(const kd_hook_t *h, const kd_hook_cfg_t *cfg);
/* Queues the n changed paths of the tree written at serial for the next run. KM_EOK,
 * KM_ENOMEM (nothing queued). */
int kd_hook_add(kd_hook_t *h, const char *const *paths, size_t n, int64_t serial);
/*
 * Moves h on at time now: reaps a finished run (success, or failure and a retry planned),
 * kills a run past its timeout, starts a run when paths wait and no backoff holds them.
 * Returns when it wants to be called again (a running hook's deadline, a retry time), or
 * INT64_MAX when it has nothing to do; a running hook's exit also makes kd_hook_fd()
 * readable.
 */
int64_t kd_hook_step(kd_hook_t *h, int64_t now);
/* A descriptor that becomes readable when the running hook exits (a pidfd), or -1. */
int kd_hook_fd(const kd_hook_t *h);
void kd_hook_stats(const kd_hook_t *h, kd_hook_stats_t *ret);
