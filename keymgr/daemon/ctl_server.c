/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control socket's connections: an acceptor thread and one thread per connection, at
 * most KD_CTL_MAX_CONNECTIONS at once (one more is answered {"code":"busy"} and closed).
 * A connection carries any number of requests, answered in order. A client may pipeline them
 * (send several before reading a reply): requests already buffered whole are answered
 * without reading the socket again, and their replies are batched (flush_due) into fewer
 * writes; a sign request is still signed, and its reply built, before the next is read.
 *
 *   sign                  answered by the connection's thread (signer.c), concurrently with
 *                         the scheduler's pass and with other connections;
 *   status, reload, tick  handed to the main thread (they use the stores and the daemon's
 *                         state, which only it touches) through a queue and an eventfd that
 *                         its poll(2) watches; answered between passes;
 *   anything else         (no op, an unknown op) refused by the connection's thread, at once.
 *
 * Reads inside a frame and every write are bounded by KM_CTL_TIMEOUT_MS; a connection idle
 * for KD_CTL_IDLE_MS between requests is closed.
 *
 * A connection that signs often (its last two signatures less than half of
 * KM_TOKEN_PREPARED_MAX_AGE_MS apart) has the next C_SignInit run after its replies are
 * sent, before the thread waits for its next request (kd_signing_prepare,
 * pkcs11/prepare.c): that request then only pays C_Sign. Before it waits, the thread reads
 * what the socket already holds (one recv that does not block): a request that came in
 * meanwhile costs no poll(2).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "keymgr/common/clock.h"
#include "keymgr/common/error.h"
#include "keymgr/control/control_proto.h"
#include "keymgr/daemon/authz.h"
#include "keymgr/daemon/control.h"
#include "keymgr/daemon/ctl_limits.h"
#include "keymgr/daemon/ctl_server.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/signer.h"
#include "keymgr/daemon/state.h"
#include "pkcs11/token.h"

#define ACCEPT_BACKOFF_MS 100   /* after EMFILE/ENFILE: no busy loop on a full table */
#define STACK_SIZE (512 * 1024)
#define FLUSH_BYTES (32 * 1024)   /* batched replies sent at once past this size */

/* A request waiting for the main thread. */
typedef struct pending {
	struct pending *next;
	json_t *req;
	const kd_peer_t *peer;
	json_t *reply;
	bool done;
} pending_t;

struct kd_ctl {
	int listen_fd;
	int stop_fd;                    /* eventfd: wakes the acceptor to stop */
	int wake_fd;                    /* eventfd: wakes the main thread */
	kd_signing_t *signing;
	kd_ctl_limits_t *limits;        /* per-peer limits, frame deadlines (ctl_limits.c) */
	pthread_t acceptor;
	bool acceptor_started;

	pthread_mutex_t lock;
	pthread_cond_t cond;            /* a pending request is done, or a connection ended */
	int conns[KD_CTL_MAX_CONNECTIONS];
	size_t n_conns;
	bool stopping;
	pending_t *head, *tail;
};

static void wake(int fd)
{
	uint64_t one = 1;
	ssize_t w = write(fd, &one, sizeof(one));
	(void)w;
}

/* Hands req to the main thread and waits for its reply (NULL when the daemon stops). */
static json_t *forward(kd_ctl_t *c, json_t *req, const kd_peer_t *p)
{
	pending_t pr = { .req = req, .peer = p };
	pthread_mutex_lock(&c->lock);
	if (c->stopping) {
		pthread_mutex_unlock(&c->lock);
		return NULL;
	}
	if (c->tail != NULL)
		c->tail->next = &pr;
	else
		c->head = &pr;
	c->tail = &pr;
	wake(c->wake_fd);
	while (!pr.done)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	return pr.reply;
}

void kd_ctl_process(kd_daemon_t *d)
{
	kd_ctl_t *c = d->ctl;
	uint64_t v;
	if (c == NULL)
		return;
	ssize_t rd = read(c->wake_fd, &v, sizeof(v));   /* non-blocking: drains the count */
	(void)rd;
	kd_signing_flush_audit(d);
	for (;;) {
		pthread_mutex_lock(&c->lock);
		pending_t *p = c->head;
		if (p != NULL) {
			c->head = p->next;
			if (c->head == NULL)
				c->tail = NULL;
		}
		pthread_mutex_unlock(&c->lock);
		if (p == NULL)
			break;
		json_t *reply = kd_control_dispatch(d, p->req, p->peer);
		pthread_mutex_lock(&c->lock);
		p->reply = reply;
		p->done = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
	}
	kd_signing_flush_audit(d);
}

static json_t *stopping_reply(void)
{
	return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "keymgrd is stopping", "code",
	                 "unavailable");
}

/* Waits until fd is readable (a request) or the idle time passes. */
static bool wait_request(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	for (;;) {
		int n = poll(&pfd, 1, ms);
		if (n < 0 && errno == EINTR)
			continue;
		return n > 0 && (pfd.revents & (POLLIN | POLLHUP)) != 0;
	}
}

typedef struct {
	kd_ctl_t *c;
	int fd;
	kd_peer_t peer;                 /* from the acceptor, without the user name */
} conn_arg_t;

static void conn_end(kd_ctl_t *c, int fd)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n_conns; i++) {
		if (c->conns[i] == fd) {
			c->conns[i] = c->conns[--c->n_conns];
			break;
		}
	}
	kd_ctl_limits_leave(c->limits, fd);   /* before close: the number may be reused */
	close(fd);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Appends a signed JWT as {"ok":true,"jwt":"..."}: built in place (a compact JWS holds only
 * base64url characters and dots, nothing to escape). */
static bool add_jwt(km_ctl_writer_t *wr, const char *jwt)
{
	static const char pre[] = "{\"ok\":true,\"jwt\":\"", post[] = "\"}";
	struct iovec parts[3] = {
		{ (void *)pre, sizeof(pre) - 1 },
		{ (void *)jwt, strlen(jwt) },
		{ (void *)post, sizeof(post) - 1 },
	};
	return km_ctl_writer_add_parts(wr, parts, 3) == KM_EOK;
}

/* Whether the replies batched so far go out now. A client pipelining requests sent the
 * buffered frames early: answer them first, but not all in one batch: send when the batch
 * is as long as what is left to answer (about half of what the client keeps in flight), so
 * it gets replies, and sends more requests, while the rest are signed. What it sent
 * meanwhile is taken from the socket first (one recv that does not wait). Strict
 * request/reply (nothing left buffered): at once, with no extra syscall. */
static bool flush_due(km_ctl_reader_t *rd, const km_ctl_writer_t *wr)
{
	size_t batched = km_ctl_writer_frames(wr);
	if (km_ctl_writer_bytes(wr) >= FLUSH_BYTES)
		return true;
	size_t left = km_ctl_reader_frames(rd, batched + 1);
	if (left == 0 || left > batched)
		return left == 0;
	km_ctl_reader_take_ready(rd);
	return km_ctl_reader_frames(rd, batched + 1) <= batched;
}

static void *conn_main(void *arg)
{
	conn_arg_t a = *(conn_arg_t *)arg;
	kd_ctl_t *c = a.c;
	int fd = a.fd;
	kd_peer_t peer = a.peer;
	km_ctl_reader_t *rd = NULL;
	km_ctl_writer_t *wr = NULL;
	free(arg);
	struct timeval tv = { KM_CTL_TIMEOUT_MS / 1000, (KM_CTL_TIMEOUT_MS % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	kd_peer_name(&peer);
	if (km_ctl_reader_create(fd, KM_CTL_MAX_REQUEST, &rd) != KM_EOK ||
	    km_ctl_writer_create(fd, &wr) != KM_EOK) {
		kd_log(KD_LOG_ERROR, "control", "peer", peer.who, "result", "connection dropped",
		       "error", "out of memory", NULL);
		km_ctl_reader_free(rd);
		conn_end(c, fd);
		return NULL;
	}
	bool signed_since_wait = false;
	uint64_t last_sign_ms = 0, sign_gap_ms = UINT64_MAX;   /* between its last two signatures */
	char sign_env[KM_ENV_NAME_MAX + 1] = "";               /* the environment of the last */
	for (bool first = true;; first = false) {
		json_t *req = NULL, *reply = NULL;
		char err[256] = "", *jwt = NULL;
		int r;
		if (km_ctl_reader_frames(rd, 1) == 1) {
			/* Sent early and whole (pipelining): no read, so no frame deadline either. */
			r = km_ctl_reader_next(rd, &req, err, sizeof(err));
		} else {
			/* Nothing left to answer without reading: the batch goes out before any wait.
			 * A frame the client sent early (begun) is read at once, under the frame
			 * deadline; only an empty buffer waits, as long as the idle time. */
			if (km_ctl_writer_flush(wr) != KM_EOK)
				break;
			if (signed_since_wait && sign_gap_ms < KM_TOKEN_PREPARED_MAX_AGE_MS / 2 &&
			    !km_ctl_reader_pending(rd)) {
				/* The replies are out and the client, which signs often, is on its way:
				 * the next request's C_SignInit can run now instead of on its path. A
				 * connection that signs once, or rarely, is not prepared for: the
				 * operation would be too old to use when its next request came. */
				kd_signing_prepare(c->signing, sign_env);
			}
			signed_since_wait = false;
			/* What the client sent meanwhile is taken without waiting: a client that signs
			 * often has its next request there by now, so it costs no poll(2). Only an
			 * empty socket is waited on (and its end of stream is read below). */
			if (!first && !km_ctl_reader_pending(rd) && km_ctl_reader_take_ready(rd) == 0 &&
			    !wait_request(fd, KD_CTL_IDLE_MS))
				break;
			kd_ctl_limits_frame_begin(c->limits, fd);   /* whole within KM_CTL_TIMEOUT_MS */
			r = km_ctl_reader_next(rd, &req, err, sizeof(err));
			kd_ctl_limits_frame_end(c->limits, fd);
		}
		if (r == KM_EIO || r == KM_ENOMEM)
			break;   /* closed (the usual end), or timed out inside a frame */
		if (r != KM_EOK) {
			/* After an oversized length the stream is out of step: answer, then close. */
			reply = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "", "code", "bad_request");
			char msg[300];
			snprintf(msg, sizeof(msg), "bad request: %s", err);
			json_object_set_new(reply, "error", json_string(msg));
			kd_log(KD_LOG_WARNING, "control", "op", "-", "peer", peer.who, "result",
			       "refused", "error", msg, NULL);
			if (reply != NULL)
				km_ctl_writer_add(wr, reply);
			json_decref(reply);
			break;
		}
		const char *op = json_string_value(json_object_get(req, "op"));
		unsigned retry_ms = 0;
		bool sent;
		if (!kd_ctl_limits_rate_ok(c->limits, peer.uid, &retry_ms)) {
			reply = kd_ctl_limits_rate_reply(retry_ms);
		} else if (op != NULL && strcmp(op, "sign") == 0) {
			reply = kd_signing_request(c->signing, &peer, req, &jwt);
			if (jwt != NULL) {
				/* Signed, so "keyset" is a valid ENV/NAME: ENV fits sign_env. */
				const char *ref = json_string_value(json_object_get(req, "keyset"));
				size_t env_len = strcspn(ref, "/");
				if (env_len > KM_ENV_NAME_MAX)
					env_len = KM_ENV_NAME_MAX;
				memcpy(sign_env, ref, env_len);
				sign_env[env_len] = '\0';
				uint64_t now = km_monotonic_ms();
				sign_gap_ms = last_sign_ms != 0 ? now - last_sign_ms : UINT64_MAX;
				last_sign_ms = now;
				signed_since_wait = true;
			}
		} else {
			/* Earlier replies do not wait for the main thread; this one is sent as is
			 * (a status reply can be large). */
			if (km_ctl_writer_flush(wr) != KM_EOK) {
				json_decref(req);
				break;
			}
			if ((reply = kd_control_refuse_early(req, &peer)) == NULL &&
			    (reply = forward(c, req, &peer)) == NULL)
				reply = stopping_reply();
			json_decref(req);
			sent = reply != NULL && km_ctl_write(fd, reply) == KM_EOK;
			json_decref(reply);
			if (!sent)
				break;
			continue;
		}
		json_decref(req);
		sent = jwt != NULL ? add_jwt(wr, jwt)
		       : reply != NULL && km_ctl_writer_add(wr, reply) == KM_EOK;
		free(jwt);
		json_decref(reply);
		if (!sent || (flush_due(rd, wr) && km_ctl_writer_flush(wr) != KM_EOK))
			break;
	}
	km_ctl_writer_flush(wr);   /* the last replies (a refused frame's, say), if it still reads */
	km_ctl_writer_free(wr);
	km_ctl_reader_free(rd);
	conn_end(c, fd);
	return NULL;
}

static void busy(int fd)
{
	struct timeval tv = { 0, 100000 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	json_t *reply = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "keymgrd is serving its "
	                          "maximum number of control connections: try again", "code", "busy");
	if (reply != NULL)
		km_ctl_write(fd, reply);
	json_decref(reply);
	close(fd);
}

/* Whether p may use the connections reserved (daemon.control_reserved): root, keymgrd's own
 * user, a listed signer. */
static bool privileged(kd_ctl_t *c, const kd_peer_t *p)
{
	return p->known && (p->uid == 0 || p->uid == geteuid() ||
	                    kd_signing_is_signer(c->signing, p));
}

static void *acceptor_main(void *arg)
{
	kd_ctl_t *c = arg;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, STACK_SIZE);
	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = c->listen_fd, .events = POLLIN },
			{ .fd = c->stop_fd, .events = POLLIN },
		};
		/* Wakes every KD_CTL_WATCH_MS to cut off connections whose frame is late. */
		int np = poll(fds, 2, KD_CTL_WATCH_MS);
		kd_ctl_limits_expire(c->limits);
		if (np <= 0)
			continue;
		if (fds[1].revents & POLLIN)
			break;
		int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of descriptors (or memory): the pending connection stays readable, so
			 * accepting again at once would spin. Wait a little, still watching stop. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				struct pollfd st = { .fd = c->stop_fd, .events = POLLIN };
				if (poll(&st, 1, ACCEPT_BACKOFF_MS) > 0)
					break;
			}
			continue;
		}
		kd_peer_t peer;
		char why[256];
		kd_peer_creds(fd, &peer);
		if (!kd_ctl_limits_admit(c->limits, fd, peer.uid, privileged(c, &peer), why,
		                         sizeof(why))) {
			kd_ctl_limits_refuse(fd, why);
			continue;
		}
		pthread_mutex_lock(&c->lock);
		bool full = c->stopping || c->n_conns == KD_CTL_MAX_CONNECTIONS;
		if (!full)
			c->conns[c->n_conns++] = fd;
		pthread_mutex_unlock(&c->lock);
		if (full) {
			kd_ctl_limits_leave(c->limits, fd);
			busy(fd);
			continue;
		}
		conn_arg_t *ca = malloc(sizeof(*ca));
		pthread_t th;
		if (ca != NULL) {
			*ca = (conn_arg_t){ c, fd, peer };
			if (pthread_create(&th, &attr, conn_main, ca) == 0)
				continue;
			free(ca);
		}
		kd_log(KD_LOG_ERROR, "control", "result", "connection dropped", "error",
		       "cannot start a thread for it", NULL);
		conn_end(c, fd);
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

int kd_ctl_start(kd_daemon_t *d, char *err, size_t errlen)
{
	kd_ctl_t *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return KM_ENOMEM;
	c->listen_fd = d->ctl_fd;
	c->signing = d->signing;
	const km_daemon_cfg_t *dc = km_config_daemon(d->cfg);
	if (kd_ctl_limits_create(KD_CTL_MAX_CONNECTIONS, dc->control_per_peer,
	                         dc->control_reserved, dc->control_rate_limit,
	                         dc->control_rate_burst, &c->limits) != KM_EOK) {
		free(c);
		return KM_ENOMEM;
	}
	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (c->stop_fd < 0 || c->wake_fd < 0 ||
	    pthread_create(&c->acceptor, NULL, acceptor_main, c) != 0) {
		snprintf(err, errlen, "control socket: cannot start its threads: %s", strerror(errno));
		d->ctl = c;
		kd_ctl_stop(d);
		return KM_EIO;
	}
	c->acceptor_started = true;
	kd_signing_set_wake(d->signing, c->wake_fd);
	d->ctl = c;
	return KM_EOK;
}

int kd_ctl_wake_fd(const kd_daemon_t *d)
{
	return d->ctl != NULL ? d->ctl->wake_fd : -1;
}

void kd_ctl_stop(kd_daemon_t *d)
{
	kd_ctl_t *c = d->ctl;
	if (c == NULL)
		return;
	if (c->acceptor_started) {
		wake(c->stop_fd);
		pthread_join(c->acceptor, NULL);
	}
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	/* Requests still waiting for the main thread: it will not answer them now. */
	for (pending_t *p = c->head; p != NULL; p = p->next) {
		p->reply = NULL;
		p->done = true;
	}
	c->head = c->tail = NULL;
	pthread_cond_broadcast(&c->cond);
	/* Wake the connections' threads (reads return end of stream) and wait for them. */
	for (size_t i = 0; i < c->n_conns; i++)
		shutdown(c->conns[i], SHUT_RDWR);
	while (c->n_conns > 0)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	kd_signing_flush_final(d);   /* the signers are done: their last denial windows */
	if (d->signing != NULL)
		kd_signing_set_wake(d->signing, -1);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	kd_ctl_limits_free(c->limits);
	free(c);
	d->ctl = NULL;
}
