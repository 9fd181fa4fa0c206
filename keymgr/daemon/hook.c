/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/daemon/backoff.h"
#include "keymgr/daemon/hook.h"
#include "keymgr/daemon/log.h"

#define MANIFEST "manifest.json"

typedef struct {
	char **v;
	size_t n, cap;
} strv_t;

struct kd_hook {
	char **argv;           /* the configured words, NULL-terminated */
	size_t argc;
	char *dir;
	char *env_name;
	unsigned timeout;
	strv_t pending;        /* paths waiting for a run */
	strv_t running;        /* the paths of the running one */
	int64_t serial;        /* of the latest tree queued */
	pid_t pid;
	int pidfd;
	int64_t deadline;
	int64_t retry_at;
	unsigned failures;
	uint64_t ok, failed, timeouts;
};

static void strv_clear(strv_t *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static bool strv_has(const strv_t *s, const char *p)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], p) == 0)
			return true;
	return false;
}

/* Appends a copy of p unless present. */
static int strv_add(strv_t *s, const char *p)
{
	if (strv_has(s, p))
		return KM_EOK;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		char **v = realloc(s->v, cap * sizeof(*v));
		if (v == NULL)
			return KM_ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	if ((s->v[s->n] = strdup(p)) == NULL)
		return KM_ENOMEM;
	s->n++;
	return KM_EOK;
}

int kd_hook_create(const kd_hook_cfg_t *cfg, kd_hook_t **ret)
{
	if (cfg->argc == 0 || cfg->argv[0] == NULL || cfg->argv[0][0] != '/' || cfg->timeout == 0 ||
	    cfg->dir == NULL || cfg->env_name == NULL)
		return KM_EINVAL;
	kd_hook_t *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return KM_ENOMEM;
	h->pidfd = -1;
	h->timeout = cfg->timeout;
	h->argc = cfg->argc;
	h->argv = calloc(cfg->argc + 1, sizeof(*h->argv));
	h->dir = strdup(cfg->dir);
	h->env_name = strdup(cfg->env_name);
	bool ok = h->argv != NULL && h->dir != NULL && h->env_name != NULL;
	for (size_t i = 0; ok && i < cfg->argc; i++)
		ok = (h->argv[i] = strdup(cfg->argv[i])) != NULL;
	if (!ok) {
		kd_hook_free(h);
		return KM_ENOMEM;
	}
	*ret = h;
	return KM_EOK;
}

bool kd_hook_same(const kd_hook_t *h, const kd_hook_cfg_t *cfg)
{
	if (h->argc != cfg->argc || h->timeout != cfg->timeout || strcmp(h->dir, cfg->dir) != 0)
		return false;
	for (size_t i = 0; i < h->argc; i++)
		if (strcmp(h->argv[i], cfg->argv[i]) != 0)
			return false;
	return true;
}

/* Kills the running hook's process group and reaps it; returns its wait status. */
static int kill_and_reap(kd_hook_t *h)
{
	int st = 0;
	kill(-h->pid, SIGKILL);
	while (waitpid(h->pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

static void end_run(kd_hook_t *h)
{
	if (h->pidfd >= 0)
		close(h->pidfd);
	h->pidfd = -1;
	h->pid = 0;
}

void kd_hook_free(kd_hook_t *h)
{
	if (h == NULL)
		return;
	if (h->pid > 0) {
		kill_and_reap(h);
		end_run(h);
	}
	for (size_t i = 0; h->argv != NULL && i < h->argc; i++)
		free(h->argv[i]);
	free(h->argv);
	free(h->dir);
	free(h->env_name);
	strv_clear(&h->pending);
	strv_clear(&h->running);
	free(h);
}

int kd_hook_add(kd_hook_t *h, const char *const *paths, size_t n, int64_t serial)
{
	strv_t s = { 0 };
	/* all or nothing: built beside the queue, then swapped in */
	for (size_t i = 0; i < h->pending.n; i++)
		if (strv_add(&s, h->pending.v[i]) != KM_EOK)
			goto nomem;
	for (size_t i = 0; i < n; i++)
		if (strv_add(&s, paths[i]) != KM_EOK)
			goto nomem;
	strv_clear(&h->pending);
	h->pending = s;
	if (serial > h->serial)
		h->serial = serial;
	return KM_EOK;
nomem:
	strv_clear(&s);
	return KM_ENOMEM;
}

static void failed(kd_hook_t *h, int64_t now, const char *why)
{
	/* the paths of the failed run go back in front of any queued since */
	strv_t s = { 0 };
	bool ok = true;
	for (size_t i = 0; ok && i < h->running.n; i++)
		ok = strv_add(&s, h->running.v[i]) == KM_EOK;
	for (size_t i = 0; ok && i < h->pending.n; i++)
		ok = strv_add(&s, h->pending.v[i]) == KM_EOK;
	if (ok) {
		strv_clear(&h->pending);
		h->pending = s;
	} else {
		strv_clear(&s);   /* out of memory: the queued paths stay; the next write adds more */
	}
	strv_clear(&h->running);
	h->failed++;
	h->failures++;
	h->retry_at = now + kd_backoff(h->failures);
	char n[24], retry[24];
	snprintf(n, sizeof(n), "%u", h->failures);
	snprintf(retry, sizeof(retry), "%lld", (long long)(h->retry_at - now));
	kd_log(KD_LOG_ERROR, "static-hook", "env", h->env_name, "program", h->argv[0], "result",
	       "failed", "error", why, "failures", n, "retry_in", retry, NULL);
}

static void finished(kd_hook_t *h, int st, int64_t now)
{
	char why[96];
	end_run(h);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		char n[24];
		snprintf(n, sizeof(n), "%zu", h->running.n);
		strv_clear(&h->running);
		h->ok++;
		h->failures = 0;
		h->retry_at = 0;
		kd_log(KD_LOG_INFO, "static-hook", "env", h->env_name, "program", h->argv[0],
		       "paths", n, "result", "ok", NULL);
		return;
	}
	if (WIFEXITED(st))
		snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(st));
	else
		snprintf(why, sizeof(why), "ended with wait status %d", st);
	failed(h, now, why);
}

/* The hook's environment: only what it needs; never the daemon's (a PIN may be there). */
static int make_env(const kd_hook_t *h, char **env, size_t n, char *buf, size_t len)
{
	int w = snprintf(buf, len, "PATH=/usr/local/bin:/usr/bin:/bin%cKEYMGR_ENV=%s%c"
	                 "KEYMGR_STATIC_DIR=%s%cKEYMGR_SERIAL=%lld", 0, h->env_name, 0, h->dir, 0,
	                 (long long)h->serial);
	if (w < 0 || (size_t)w >= len || n < 5)
		return KM_ERANGE;
	char *p = buf;
	for (size_t i = 0; i < 4; i++) {
		env[i] = p;
		p += strlen(p) + 1;
	}
	env[4] = NULL;
	return KM_EOK;
}

static int start(kd_hook_t *h, int64_t now, char *err, size_t errlen)
{
	/* the configured words, the paths (manifest.json last), NULL */
	char **argv = calloc(h->argc + h->running.n + 1, sizeof(*argv));
	if (argv == NULL)
		return KM_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < h->argc; i++)
		argv[k++] = h->argv[i];
	for (size_t i = 0; i < h->running.n; i++)
		if (strcmp(h->running.v[i], MANIFEST) != 0)
			argv[k++] = h->running.v[i];
	if (strv_has(&h->running, MANIFEST))
		argv[k++] = MANIFEST;
	char *env[5], envbuf[8192];
	int r = make_env(h, env, 5, envbuf, sizeof(envbuf));
	if (r != KM_EOK) {
		free(argv);
		snprintf(err, errlen, "environment too long");
		return r;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, deflt;
	sigemptyset(&none);
	sigfillset(&deflt);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	int rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (rc == 0)
		rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (rc == 0)
		rc = posix_spawn_file_actions_addchdir_np(&fa, h->dir);
	if (rc == 0)
		rc = posix_spawnattr_setsigmask(&at, &none);
	if (rc == 0)
		rc = posix_spawnattr_setsigdefault(&at, &deflt);
	if (rc == 0)
		rc = posix_spawnattr_setpgroup(&at, 0);
	if (rc == 0)
		rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
		                              POSIX_SPAWN_SETPGROUP);
	pid_t pid = 0;
	if (rc == 0)
		rc = posix_spawn(&pid, h->argv[0], &fa, &at, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	free(argv);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start: %s", strerror(rc));
		return KM_EIO;
	}
	h->pid = pid;
	h->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);   /* -1 on old kernels: the deadline */
	h->deadline = now + h->timeout;
	char n[24], serial[24];
	snprintf(n, sizeof(n), "%zu", h->running.n);
	snprintf(serial, sizeof(serial), "%lld", (long long)h->serial);
	kd_log(KD_LOG_DEBUG, "static-hook", "env", h->env_name, "program", h->argv[0], "paths", n,
	       "serial", serial, "result", "started", NULL);
	return KM_EOK;
}

int64_t kd_hook_step(kd_hook_t *h, int64_t now)
{
	if (h->pid > 0) {
		int st = 0;
		pid_t r = waitpid(h->pid, &st, WNOHANG);
		if (r == h->pid) {
			finished(h, st, now);
		} else if (now >= h->deadline) {
			kill_and_reap(h);
			end_run(h);
			h->timeouts++;
			char why[64];
			snprintf(why, sizeof(why), "timed out after %u s (killed)", h->timeout);
			failed(h, now, why);
		} else {
			/* without a pidfd, look again every second */
			return h->pidfd >= 0 ? h->deadline : now + 1;
		}
	}
	if (h->pending.n == 0)
		return INT64_MAX;
	if (now < h->retry_at)
		return h->retry_at;
	h->running = h->pending;
	memset(&h->pending, 0, sizeof(h->pending));
	char err[256];
	if (start(h, now, err, sizeof(err)) != KM_EOK) {
		failed(h, now, err);
		return h->retry_at;
	}
	return h->pidfd >= 0 ? h->deadline : now + 1;
}

int kd_hook_fd(const kd_hook_t *h)
{
	return h->pid > 0 ? h->pidfd : -1;
}

void kd_hook_stats(const kd_hook_t *h, kd_hook_stats_t *ret)
{
	*ret = (kd_hook_stats_t){
		.ok = h->ok, .failed = h->failed, .timeouts = h->timeouts, .failures = h->failures,
		.pending = h->pending.n, .pid = h->pid, .retry_at = h->retry_at,
	};
}
