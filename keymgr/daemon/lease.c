/* SPDX-License-Identifier: Apache-2.0 */
/* The leader lease of an environment: its thread, and this node's belief (lease.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/daemon/lease.h"
#include "keymgr/daemon/log.h"

struct kd_lease {
	pthread_t thread;
	pthread_mutex_t mu;
	bool stop;
	int stop_pipe[2];             /* written by kd_lease_stop: ends the thread's poll */
	int wake_fd;                  /* the daemon's eventfd for new documents (-1: none) */
	int listen_fd;                /* the connection's socket while it LISTENs (-1: not) */
	km_store_t *store;            /* the thread's own connection */
	char env[KM_ENV_NAME_MAX + 1];
	int ttl_ms;
	int64_t margin_ms;
	/* under mu */
	kd_lease_view_t v;
	int64_t deadline_ms;          /* monotonic: leading until then (0: not leading) */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *num(int64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "%lld", (long long)v);
	return buf;
}

/* Steps down (mu held); logs why. */
static void step_down(kd_lease_t *l, const char *why)
{
	char e[32];
	if (!l->v.leader)
		return;
	l->v.leader = false;
	l->deadline_ms = 0;
	l->v.lost++;
	kd_log(KD_LOG_WARNING, "lease", "env", l->env, "result", "stepped-down", "epoch",
	       num(l->v.epoch, e, sizeof(e)), "reason", why, NULL);
}

/* One renewal or acquisition attempt, outside mu. */
static void attempt(kd_lease_t *l)
{
	char err[512] = "", e[32];
	km_store_lease_t got;
	char holder[KM_STORE_LEASE_HOLDER_MAX + 1];
	int64_t epoch;
	pthread_mutex_lock(&l->mu);
	bool leading = l->v.leader;
	snprintf(holder, sizeof(holder), "%s", l->v.node);
	epoch = l->v.epoch;
	pthread_mutex_unlock(&l->mu);

	int64_t sent = mono_ms();
	int r = leading ? km_store_lease_renew(l->store, holder, epoch, l->ttl_ms, &got, err,
	                                      sizeof(err)) :
	                  km_store_lease_acquire(l->store, holder, l->ttl_ms, &got, err,
	                                         sizeof(err));
	pthread_mutex_lock(&l->mu);
	if (r != KM_EOK) {
		if (l->v.leader)
			step_down(l, err[0] ? err : km_strerror(r));
		else
			kd_log(KD_LOG_DEBUG, "lease", "env", l->env, "result", "failed", "error",
			       err[0] ? err : km_strerror(r), NULL);
	} else if (got.held) {
		/* The database set the expiry after `sent`: sent + ttl is never later. */
		l->deadline_ms = sent + l->ttl_ms - l->margin_ms;
		if (!l->v.leader) {
			l->v.acquired++;
			kd_log(KD_LOG_INFO, "lease", "env", l->env, "result", "acquired", "epoch",
			       num(got.epoch, e, sizeof(e)), "node", holder, NULL);
		}
		l->v.leader = true;
		snprintf(l->v.holder, sizeof(l->v.holder), "%s", got.holder);
		l->v.epoch = got.epoch;
		l->v.expires_at = got.expires_at;
	} else {
		snprintf(l->v.holder, sizeof(l->v.holder), "%s", got.holder);
		l->v.epoch = got.epoch;
		l->v.expires_at = got.expires_at;
	}
	pthread_mutex_unlock(&l->mu);
}

/* Tells the main loop that the store may hold new documents. */
static void wake(kd_lease_t *l)
{
	uint64_t one = 1;
	if (l->wake_fd >= 0 && write(l->wake_fd, &one, sizeof(one)) != sizeof(one)) {
		/* the counter is full: the main loop has a wake-up pending anyway */
	}
}

/* Waits until the next attempt is due, the stop pipe is written, or a notice of new
 * documents arrives on the connection (handed to the main loop). */
static void wait_next(kd_lease_t *l, int64_t due_ms)
{
	char err[256];
	if (l->listen_fd < 0 && km_store_has_docs(l->store) &&
	    km_store_docs_listen(l->store, &l->listen_fd, err, sizeof(err)) == KM_EOK)
		wake(l);   /* (re)listening: a notice may have been missed meanwhile */
	for (;;) {
		int64_t left = due_ms - mono_ms();
		if (left <= 0)
			return;
		struct pollfd fds[2] = {
			{ .fd = l->stop_pipe[0], .events = POLLIN },
			{ .fd = l->listen_fd, .events = POLLIN },
		};
		int n = poll(fds, l->listen_fd >= 0 ? 2 : 1, (int)left);
		if (n < 0 && errno != EINTR)
			return;
		if (n > 0 && fds[0].revents != 0)
			return;
		if (n > 0 && l->listen_fd >= 0 && fds[1].revents != 0) {
			if (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL))
				l->listen_fd = -1;   /* listen again after the next attempt */
			if (km_store_docs_notified(l->store))
				wake(l);
			if (l->listen_fd < 0)
				return;
		}
	}
}

static void *lease_main(void *arg)
{
	kd_lease_t *l = arg;
	int64_t every = l->ttl_ms / 3;
	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		pthread_mutex_unlock(&l->mu);
		int64_t start = mono_ms();
		attempt(l);
		wait_next(l, start + every);
		pthread_mutex_lock(&l->mu);
	}
	bool held = l->v.leader;
	int64_t epoch = l->v.epoch;
	l->v.leader = false;
	pthread_mutex_unlock(&l->mu);
	/* A clean stop hands over at once: another node need not wait for the expiry. */
	if (held)
		(void)km_store_lease_release(l->store, l->v.node, epoch, NULL, 0);
	return NULL;
}

/* Frees a lease whose thread is not running (never started, or joined). */
static void lease_free(kd_lease_t *l)
{
	km_store_free(l->store);
	close(l->stop_pipe[0]);
	close(l->stop_pipe[1]);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

int kd_lease_start(const char *store, const char *env, unsigned lease_s, int wake_fd,
                   kd_lease_t **ret, char *err, size_t errlen)
{
	char host[65] = "";
	kd_lease_t *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return KM_ENOMEM;
	if (pipe2(l->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		free(l);
		return KM_EIO;
	}
	l->wake_fd = wake_fd;
	l->listen_fd = -1;
	int r = km_store_open(store, env, &l->store, err, errlen);
	if (r != KM_EOK) {
		close(l->stop_pipe[0]);
		close(l->stop_pipe[1]);
		free(l);
		return r;
	}
	snprintf(l->env, sizeof(l->env), "%s", env);
	l->ttl_ms = (int)lease_s * 1000;
	/* Step down a sixth of the lease before its expiry: the deadline is kept by this node's
	 * monotonic clock, whose rate may differ from the database's a little. */
	l->margin_ms = l->ttl_ms / 6;
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "unknown");
	unsigned rnd = (unsigned)(mono_ms() ^ ((int64_t)getpid() << 16));
	snprintf(l->v.node, sizeof(l->v.node), "%.64s:%ld:%04x", host, (long)getpid(),
	         rnd & 0xffff);
	pthread_mutex_init(&l->mu, NULL);
	if (pthread_create(&l->thread, NULL, lease_main, l) != 0) {
		lease_free(l);
		snprintf(err, errlen, "cannot start the lease thread of environment '%s'", env);
		return KM_ERROR;
	}
	*ret = l;
	return KM_EOK;
}

void kd_lease_stop(kd_lease_t *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = true;
	pthread_mutex_unlock(&l->mu);
	if (write(l->stop_pipe[1], "x", 1) != 1) {
		/* the pipe is non-blocking and never full: one byte ends the poll */
	}
	pthread_join(l->thread, NULL);
	lease_free(l);
}

bool kd_lease_leading(kd_lease_t *l, char *holder, int64_t *epoch)
{
	pthread_mutex_lock(&l->mu);
	if (l->v.leader && mono_ms() >= l->deadline_ms)
		step_down(l, "the lease was not renewed in time");
	bool leading = l->v.leader;
	if (leading) {
		snprintf(holder, KM_STORE_LEASE_HOLDER_MAX + 1, "%s", l->v.node);
		*epoch = l->v.epoch;
	}
	pthread_mutex_unlock(&l->mu);
	return leading;
}

void kd_lease_fenced(kd_lease_t *l)
{
	pthread_mutex_lock(&l->mu);
	l->v.fenced++;
	step_down(l, "a write was refused by the fence");
	pthread_mutex_unlock(&l->mu);
}

void kd_lease_view(kd_lease_t *l, kd_lease_view_t *ret)
{
	char h[KM_STORE_LEASE_HOLDER_MAX + 1];
	int64_t e;
	(void)kd_lease_leading(l, h, &e);   /* a passed deadline shows as not leading */
	pthread_mutex_lock(&l->mu);
	*ret = l->v;
	pthread_mutex_unlock(&l->mu);
}
