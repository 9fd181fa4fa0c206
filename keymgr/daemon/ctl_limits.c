/* SPDX-License-Identifier: Apache-2.0 */
/* Control socket limits: connections per peer, frame deadlines, request rate (ctl_limits.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "keymgr/common/clock.h"
#include "keymgr/common/error.h"
#include "keymgr/common/ratelimit.h"
#include "keymgr/control/control_proto.h"
#include "keymgr/daemon/ctl_limits.h"
#include "keymgr/daemon/log.h"

typedef struct {
	int fd;                     /* -1: free */
	uid_t uid;
	bool privileged;            /* root, keymgrd's user, a signer */
	uint64_t deadline_ms;       /* 0: no frame being read */
} conn_t;

struct kd_ctl_limits {
	pthread_mutex_t lock;
	conn_t *conns;
	size_t n;
	unsigned per_peer;
	size_t unreserved;          /* what unprivileged peers may hold together */
	km_ratelimit_t *rate;       /* NULL: no rate limit */
	uint64_t cut;               /* connections cut by the watchdog */
};

int kd_ctl_limits_create(size_t max_conns, unsigned per_peer, unsigned reserved, unsigned rate,
                         unsigned burst, kd_ctl_limits_t **ret)
{
	kd_ctl_limits_t *l = calloc(1, sizeof(*l));
	if (l == NULL || (l->conns = calloc(max_conns, sizeof(conn_t))) == NULL) {
		free(l);
		return KM_ENOMEM;
	}
	for (size_t i = 0; i < max_conns; i++)
		l->conns[i].fd = -1;
	l->n = max_conns;
	l->per_peer = per_peer != 0 ? per_peer : KD_CTL_PER_PEER_DEFAULT;
	l->unreserved = reserved < max_conns ? max_conns - reserved : 1;
	if (rate != 0 && km_ratelimit_create(rate, burst, 1024, &l->rate) != KM_EOK) {
		free(l->conns);
		free(l);
		return KM_ENOMEM;
	}
	pthread_mutex_init(&l->lock, NULL);
	*ret = l;
	return KM_EOK;
}

void kd_ctl_limits_free(kd_ctl_limits_t *l)
{
	if (l == NULL)
		return;
	km_ratelimit_free(l->rate);
	pthread_mutex_destroy(&l->lock);
	free(l->conns);
	free(l);
}

static conn_t *find(kd_ctl_limits_t *l, int fd)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->conns[i].fd == fd)
			return &l->conns[i];
	return NULL;
}

bool kd_ctl_limits_admit(kd_ctl_limits_t *l, int fd, uid_t uid, bool privileged, char *why,
                         size_t len)
{
	conn_t *slot = NULL;
	unsigned held = 0;
	size_t unprivileged = 0;
	bool ok = false;
	if (l == NULL)
		return true;
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->n; i++) {
		if (l->conns[i].fd < 0) {
			if (slot == NULL)
				slot = &l->conns[i];
			continue;
		}
		held += l->conns[i].uid == uid;
		unprivileged += !l->conns[i].privileged;
	}
	/* Each refusal names the limit that was reached, not another one. */
	if (held >= l->per_peer)
		snprintf(why, len, "too many control connections from your user (uid %d holds %u, "
		         "daemon.control_per_peer): close some and try again", (int)uid, held);
	else if (!privileged && unprivileged >= l->unreserved)
		snprintf(why, len, "the control connections for users that are not signers are all "
		         "taken (%zu of %zu; daemon.control_reserved keeps %zu for root, keymgrd's "
		         "user and the signers): try again later", unprivileged, l->n,
		         l->n - l->unreserved);
	else if (slot == NULL)
		snprintf(why, len, "keymgrd is serving its maximum number of control connections "
		         "(%zu): try again", l->n);
	else
		ok = true;
	if (ok)
		*slot = (conn_t){ fd, uid, privileged, km_monotonic_ms() + KM_CTL_TIMEOUT_MS };
	pthread_mutex_unlock(&l->lock);
	return ok;
}

void kd_ctl_limits_leave(kd_ctl_limits_t *l, int fd)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	conn_t *c = find(l, fd);
	if (c != NULL)
		c->fd = -1;
	pthread_mutex_unlock(&l->lock);
}

void kd_ctl_limits_frame_begin(kd_ctl_limits_t *l, int fd)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	conn_t *c = find(l, fd);
	if (c != NULL && c->deadline_ms == 0)
		c->deadline_ms = km_monotonic_ms() + KM_CTL_TIMEOUT_MS;
	pthread_mutex_unlock(&l->lock);
}

void kd_ctl_limits_frame_end(kd_ctl_limits_t *l, int fd)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	conn_t *c = find(l, fd);
	if (c != NULL)
		c->deadline_ms = 0;
	pthread_mutex_unlock(&l->lock);
}

size_t kd_ctl_limits_expire(kd_ctl_limits_t *l)
{
	size_t n = 0;
	uint64_t now = km_monotonic_ms();
	if (l == NULL)
		return 0;
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->n; i++) {
		conn_t *c = &l->conns[i];
		if (c->fd < 0 || c->deadline_ms == 0 || now < c->deadline_ms)
			continue;
		/* The connection's thread then reads the end of the stream and closes it. */
		shutdown(c->fd, SHUT_RD);
		c->deadline_ms = 0;
		n++;
	}
	l->cut += n;
	pthread_mutex_unlock(&l->lock);
	if (n > 0) {
		char num[24];
		snprintf(num, sizeof(num), "%zu", n);
		kd_log(KD_LOG_WARNING, "control", "result", "cut off", "connections", num, "error",
		       "a request frame did not arrive within the time allowed", NULL);
	}
	return n;
}

bool kd_ctl_limits_rate_ok(kd_ctl_limits_t *l, uid_t uid, unsigned *retry_ms)
{
	if (l == NULL || l->rate == NULL)
		return true;
	return km_ratelimit_take(l->rate, &uid, sizeof(uid), km_monotonic_ms(), retry_ms);
}

json_t *kd_ctl_limits_rate_reply(unsigned retry_ms)
{
	char msg[128];
	snprintf(msg, sizeof(msg), "too many requests from your user (daemon.control_rate_limit): "
	         "retry in %u ms", retry_ms);
	return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", msg, "code", "busy");
}

void kd_ctl_limits_refuse(int fd, const char *msg)
{
	struct timeval tv = { 0, 100000 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	json_t *reply = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", msg, "code", "busy");
	if (reply != NULL)
		km_ctl_write(fd, reply);
	json_decref(reply);
	close(fd);
}
