/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-sign-bare: the bound of any signing service behind a Unix socket, for bench/sign.
 *
 * A server that does only what a signing service cannot skip: per request frame (4-byte
 * big-endian length + body, framed as keymgrd's control protocol), the digest of the body and
 * C_Sign on the same token and key as keymgrd, then a reply frame of keymgrd's size
 * ({"ok":true,"jwt":"AAA..."}). No JSON, no claims policy, no authorisation, no jti, no
 * JWS, no audit, no lock. It uses every trick keymgrd uses, without keymgrd's conditions:
 * it runs the next request's C_SignInit whenever it is about to wait (keymgrd: only for a
 * connection that signs often, and only for EC and EdDSA keys), answers the frames a client
 * sent early without reading again, and batches their replies the same way.
 *
 *   bench-sign-bare SOCKET MODULE TOKEN_LABEL PIN_SOURCE ALG CKA_ID_HEX REPLY_BYTES CONNECTIONS
 *
 * Listens on SOCKET (created mode 0600), prints "ready" on stdout, serves CONNECTIONS
 * connections, one thread and one token session each, and exits when they have all closed.
 * A token error ends the connection and makes the exit status 1.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench/raw_sign.h"
#include "bench/socket_io.h"
#include "keymgr/common/error.h"
#include "pkcs11/token.h"

#define MAX_CONNECTIONS BENCH_RAW_MAX_SESSIONS
#define IN_CAP (64 * 1024)
#define MAX_BATCH 32            /* bench-sign-client keeps at most this many in flight */
#define MAX_REPLY 4096

static bench_raw_t *raw;
static uint8_t reply[MAX_REPLY];
static size_t reply_len;
static atomic_int failed;

typedef struct {
	int idx;
	int fd;
} conn_t;

/* Whole frames at the start of buf[0..have), up to max; *first_len is the first's body. */
static size_t whole_frames(const uint8_t *buf, size_t have, size_t max, size_t *first_len)
{
	size_t n = 0, off = 0;
	while (n < max && have - off >= 4) {
		const uint8_t *h = buf + off;
		size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
		if (have - off - 4 < len)
			break;
		if (n == 0)
			*first_len = len;
		off += 4 + len;
		n++;
	}
	return n;
}

/* Appends what the socket holds to buf; waits only if wait, and only when nothing is there
 * yet (as keymgrd: no poll(2) for a request that came while the reply was sent). false:
 * closed, error, full. */
static bool take(int fd, uint8_t *buf, size_t *have, bool wait)
{
	for (;;) {
		ssize_t r = recv(fd, buf + *have, IN_CAP - *have, MSG_DONTWAIT);
		if (r > 0) {
			*have += (size_t)r;
			return true;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN && wait) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return false;
			continue;
		}
		return r < 0 && errno == EAGAIN;   /* nothing there, and not asked to wait */
	}
}

static void *serve(void *arg)
{
	const conn_t *c = arg;
	uint8_t *in = malloc(IN_CAP), *out = malloc(MAX_BATCH * reply_len);
	size_t have = 0, batched = 0;
	bool ready = false;   /* a C_SignInit waits on this connection's session */
	if (in == NULL || out == NULL) {
		fprintf(stderr, "bench-sign-bare: out of memory on connection %d\n", c->idx);
		atomic_store(&failed, 1);
		goto out;
	}
	for (;;) {
		size_t len = 0;
		if (whole_frames(in, have, 1, &len) == 0) {
			if (batched > 0 && !bench_send_all(c->fd, out, batched * reply_len))
				break;
			batched = 0;
			if (!ready && bench_raw_sign_init(raw, c->idx) != 0)
				goto token_failed;
			ready = true;
			if (have == IN_CAP || !take(c->fd, in, &have, true))
				break;
			continue;
		}
		if ((!ready && bench_raw_sign_init(raw, c->idx) != 0) ||
		    bench_raw_sign_prepared(raw, c->idx, in + 4, len) != 0)
			goto token_failed;
		ready = false;
		memmove(in, in + 4 + len, have - 4 - len);
		have -= 4 + len;
		memcpy(out + batched * reply_len, reply, reply_len);
		batched++;
		/* keymgrd's flush_due: send once the batch is as long as what is left to answer,
		 * after taking what the client sent meanwhile. */
		size_t left = whole_frames(in, have, batched + 1, &len);
		if (left > 0 && left <= batched && have < IN_CAP) {
			if (!take(c->fd, in, &have, false))
				break;
			left = whole_frames(in, have, batched + 1, &len);
		}
		if (batched == MAX_BATCH || (left > 0 && left <= batched)) {
			if (!bench_send_all(c->fd, out, batched * reply_len))
				break;
			batched = 0;
		}
	}
	goto out;
token_failed:
	fprintf(stderr, "bench-sign-bare: C_SignInit or C_Sign failed on connection %d\n", c->idx);
	atomic_store(&failed, 1);
out:
	free(in);
	free(out);
	close(c->fd);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 9) {
		fprintf(stderr, "usage: %s SOCKET MODULE TOKEN_LABEL PIN_SOURCE ALG CKA_ID_HEX "
		        "REPLY_BYTES CONNECTIONS\n", argv[0]);
		return 2;
	}
	uint8_t id[64];
	size_t id_len = 0;
	long rl = atol(argv[7]), nc = atol(argv[8]);
	static const char pre[] = "{\"ok\":true,\"jwt\":\"", post[] = "\"}";
	if (bench_raw_parse_id(argv[6], id, sizeof(id), &id_len) != 0 ||
	    rl < (long)(4 + sizeof(pre) + sizeof(post)) || rl > MAX_REPLY || nc < 1 ||
	    nc > MAX_CONNECTIONS) {
		fprintf(stderr, "bench-sign-bare: bad CKA_ID_HEX, REPLY_BYTES (at most %d) or "
		        "CONNECTIONS (1..%d)\n", MAX_REPLY, MAX_CONNECTIONS);
		return 2;
	}
	reply_len = (size_t)rl;
	size_t body = reply_len - 4;
	reply[0] = (uint8_t)(body >> 24);
	reply[1] = (uint8_t)(body >> 16);
	reply[2] = (uint8_t)(body >> 8);
	reply[3] = (uint8_t)body;
	memset(reply + 4, 'A', body);
	memcpy(reply + 4, pre, sizeof(pre) - 1);
	memcpy(reply + reply_len - (sizeof(post) - 1), post, sizeof(post) - 1);

	km_token_cfg_t cfg = { .module_path = argv[2], .token_label = argv[3],
	                       .pin_source = argv[4], .sessions = 1 };
	km_token_t *tok = NULL;
	char err[512];
	if (km_token_open(&cfg, &tok, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "bench-sign-bare: %s\n", err);
		return 1;
	}
	int rc = 1, lfd = -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (bench_raw_open(argv[2], argv[3], id, id_len, strcmp(argv[5], "RS256") == 0, (int)nc,
	                   &raw) != 0)
		goto out;
	if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "bench-sign-bare: socket path too long\n");
		goto out;
	}
	strcpy(sa.sun_path, argv[1]);
	mode_t old = umask(077);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int bound = lfd >= 0 ? bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) : -1;
	umask(old);
	if (bound != 0 || listen(lfd, (int)nc) != 0) {
		fprintf(stderr, "bench-sign-bare: cannot listen on %s: %s\n", argv[1],
		        strerror(errno));
		goto out;
	}
	printf("ready\n");
	fflush(stdout);
	pthread_t th[MAX_CONNECTIONS];
	conn_t conns[MAX_CONNECTIONS];
	int started = 0;
	for (; started < nc; started++) {
		conns[started] = (conn_t){ started, accept4(lfd, NULL, NULL, SOCK_CLOEXEC) };
		if (conns[started].fd < 0 ||
		    pthread_create(&th[started], NULL, serve, &conns[started]) != 0) {
			if (conns[started].fd >= 0)
				close(conns[started].fd);
			fprintf(stderr, "bench-sign-bare: cannot serve connection %d\n", started);
			break;
		}
	}
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	rc = started == nc && !atomic_load(&failed) ? 0 : 1;
out:
	if (lfd >= 0) {
		close(lfd);
		unlink(argv[1]);
	}
	bench_raw_free(raw);
	km_token_free(tok);
	return rc;
}
