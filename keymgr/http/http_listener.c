/* SPDX-License-Identifier: Apache-2.0 */
#include "keymgr/http/http_listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <microhttpd.h>

#include "keymgr/common/error.h"

/* Connections accepted per wake-up before looking at the stop signal again. */
#define ACCEPT_BURST 64
/* Pause after running out of file descriptors or memory (the socket stays readable). */
#define BACKOFF_MS 100

struct km_http_listener {
	int fd;
	int stop_fd;            /* eventfd: readable once the thread must exit */
	uint16_t port;
	bool started;
	pthread_t thread;
	struct MHD_Daemon *mhd;
	atomic_uint *live;      /* connections handed to mhd, not closed (NULL: no limit) */
	unsigned limit;
};

void km_http_listener_set_limit(km_http_listener_t *l, atomic_uint *live, unsigned limit)
{
	l->live = live;
	l->limit = limit;
}

/* The port fd is bound to, or 0. */
static uint16_t bound_port(int fd)
{
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0)
		return 0;
	if (bound.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)&bound)->sin6_port);
	if (bound.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)&bound)->sin_port);
	return 0;
}

int km_http_listener_adopt(int fd, km_http_listener_t **ret, char *err, size_t errlen)
{
	km_http_listener_t *l = calloc(1, sizeof(*l));
	int flags;
	if (l == NULL) {
		close(fd);
		return KM_ENOMEM;
	}
	l->fd = fd;
	l->stop_fd = -1;
	if ((l->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
		snprintf(err, errlen, "fcntl on the listening socket: %s", strerror(errno));
		goto fail;
	}
	if ((l->port = bound_port(fd)) == 0) {
		snprintf(err, errlen, "the socket given is not a bound TCP socket");
		goto fail;
	}
	*ret = l;
	return KM_EOK;
fail:
	km_http_listener_free(l);
	return KM_EIO;
}

int km_http_listener_socket(const struct sockaddr *sa, socklen_t salen, int *ret_fd,
                            char *err, size_t errlen)
{
	const int one = 1;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return KM_EIO;
	}
	/* A restarted daemon binds again while its predecessor's connections are in TIME_WAIT. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (sa->sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)) {
		snprintf(err, errlen, "setsockopt: %s", strerror(errno));
		close(fd);
		return KM_EIO;
	}
	if (bind(fd, sa, salen) != 0) {
		snprintf(err, errlen, "bind: %s", strerror(errno));
		close(fd);
		return KM_EIO;
	}
	*ret_fd = fd;
	return KM_EOK;
}

int km_http_listener_bind(const struct sockaddr *sa, socklen_t salen,
                          km_http_listener_t **ret, char *err, size_t errlen)
{
	km_http_listener_t *l = NULL;
	int r = KM_ENOMEM;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		goto out;
	l->fd = l->stop_fd = -1;
	r = KM_EIO;
	if ((l->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto out;
	}
	if ((r = km_http_listener_socket(sa, salen, &l->fd, err, errlen)) != KM_EOK)
		goto out;
	r = KM_EIO;
	if ((l->port = bound_port(l->fd)) == 0) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		goto out;
	}
	*ret = l;
	l = NULL;
	r = KM_EOK;
out:
	km_http_listener_free(l);
	return r;
}

uint16_t km_http_listener_port(const km_http_listener_t *l)
{
	return l->port;
}

/* Waits up to ms for the stop signal; true if it came. */
static bool stop_within(km_http_listener_t *l, int ms)
{
	struct pollfd p = { .fd = l->stop_fd, .events = POLLIN };

	return poll(&p, 1, ms) > 0;
}

static void *accept_loop(void *arg)
{
	km_http_listener_t *l = arg;
	struct pollfd p[2] = {
		{ .fd = l->fd, .events = POLLIN },
		{ .fd = l->stop_fd, .events = POLLIN },
	};

	for (;;) {
		bool backoff = false;
		int n;

		if (poll(p, 2, -1) < 0) {
			if (errno != EINTR && stop_within(l, BACKOFF_MS))
				break;
			continue;
		}
		if (p[1].revents != 0)
			break;
		for (n = 0; n < ACCEPT_BURST; n++) {
			struct sockaddr_storage ss;
			socklen_t len = sizeof(ss);
			int c = accept4(l->fd, (struct sockaddr *)&ss, &len,
					SOCK_NONBLOCK | SOCK_CLOEXEC);

			if (c >= 0) {
				if (l->live != NULL && atomic_load(l->live) >= l->limit) {
					close(c);   /* full: refused at once, as libmicrohttpd would */
					continue;
				}
				if (l->live != NULL)
					atomic_fetch_add(l->live, 1);
				/* Closes c itself when a limit refuses it. */
				if (MHD_add_connection(l->mhd, c, (struct sockaddr *)&ss, len) != MHD_YES &&
				    l->live != NULL)
					atomic_fetch_sub(l->live, 1);
				continue;
			}
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			backoff = errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
				  errno == ENOMEM;
			break;
		}
		if (backoff && stop_within(l, BACKOFF_MS))
			break;
	}
	return NULL;
}

int km_http_listener_start(km_http_listener_t *l, struct MHD_Daemon *mhd, char *err,
                           size_t errlen)
{
	sigset_t all, old;
	int r;

	if (l->started)
		return KM_EOK;
	if (listen(l->fd, SOMAXCONN) != 0) {
		snprintf(err, errlen, "listen: %s", strerror(errno));
		return KM_EIO;
	}
	l->mhd = mhd;
	/* Signals belong to the daemon's main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&l->thread, NULL, &accept_loop, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		snprintf(err, errlen, "acceptor thread: %s", strerror(r));
		return KM_EIO;
	}
	l->started = true;
	return KM_EOK;
}

void km_http_listener_free(km_http_listener_t *l)
{
	const uint64_t one = 1;

	if (l == NULL)
		return;
	if (l->started) {
		while (write(l->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
		pthread_join(l->thread, NULL);
	}
	if (l->fd >= 0)
		close(l->fd);
	if (l->stop_fd >= 0)
		close(l->stop_fd);
	free(l);
}
