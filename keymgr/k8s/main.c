/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgr-k8s-signer: Kubernetes' external JWT signer (docs/kubernetes.md). Serves
 * v1.ExternalJWTSigner and v1alpha1.ExternalJWTSigner over gRPC (grpc.c, on nghttp2) on a
 * Unix socket for kube-apiserver (--service-account-signing-endpoint), and asks keymgrd for
 * every answer over its control socket (service.c). It holds no key, PIN, token or store,
 * and needs no privilege: keymgrd lists its user among the key set's signers.
 *
 * One thread: a poll(2) loop over the listening socket and the client connections; each
 * request is answered when it is complete (a call to keymgrd takes a millisecond or so).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/control/control_proto.h"
#include "keymgr/k8s/grpc.h"
#include "keymgr/k8s/service.h"

#ifndef KEYMGR_VERSION
#define KEYMGR_VERSION "unknown"
#endif

#define MAX_CONNS 16
#define MAX_ALLOW 16
#define CALL_TIMEOUT_MS 5000

static const char usage[] =
	"Usage: keymgr-k8s-signer --keyset ENV/NAME --listen PATH [--control-socket PATH]\n"
	"                         [--allow-user USER]...\n"
	"\n"
	"Kubernetes' external JWT signer: serves v1.ExternalJWTSigner (and v1alpha1) over gRPC\n"
	"on the Unix socket PATH for kube-apiserver (--service-account-signing-endpoint=PATH),\n"
	"signing with key set ENV/NAME through keymgrd. The key set needs purpose\n"
	"service-account-token, kubernetes: true in keymgr.yaml, and this program's user among\n"
	"its signers. Holds no key, PIN or token; runs unprivileged. See docs/kubernetes.md.\n"
	"  -k, --keyset ENV/NAME      the key set to sign with (required)\n"
	"  -l, --listen PATH          the socket to create for kube-apiserver (required);\n"
	"                             mode 0660, replaced if stale\n"
	"  -s, --control-socket PATH  keymgrd's control socket (default:\n"
	"                             $KEYMGR_CONTROL_SOCKET, then /run/keymgr/control.sock)\n"
	"  -u, --allow-user USER      a user whose processes may call (repeat; default: root\n"
	"                             and this program's own user); others get PERMISSION_DENIED\n"
	"  -h, --help, -V, --version\n"
	"Logs one line per refused call and per start and stop on stderr.\n"
	"Exit status: 0 after SIGTERM or SIGINT, 1 startup failure, 2 usage error.\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

typedef struct {
	int fd;
	km_grpc_conn_t *g;
	km_k8s_peer_t peer;
} conn_t;

typedef struct {
	const char *socket;
	int fd;                   /* kept open between calls; -1: connect at the next */
} call_ctx_t;

/* One request to keymgrd on the kept connection; a connection keymgrd closed meanwhile (it
 * closes idle ones after 60 s, and restarts) is made again once. */
static int call_keymgrd(void *ctx, const json_t *req, json_t **reply, char *err, size_t errlen)
{
	call_ctx_t *c = ctx;
	int r = KM_EIO;
	for (int attempt = 0; attempt < 2 && r == KM_EIO; attempt++) {
		if (c->fd < 0 &&
		    (r = km_ctl_connect(c->socket, CALL_TIMEOUT_MS, &c->fd, err, errlen)) != KM_EOK)
			return r;
		if ((r = km_ctl_exchange(c->fd, c->socket, req, reply, err, errlen)) != KM_EOK) {
			close(c->fd);
			c->fd = -1;
		}
	}
	return r;
}

static ssize_t write_fd(void *ctx, const uint8_t *data, size_t len)
{
	return send(*(int *)ctx, data, len, MSG_NOSIGNAL);
}

/* Logs refusals; the service itself never prints. */
static void handle(void *ctx, const char *path, const uint8_t *msg, size_t len,
                   km_grpc_reply_t *reply)
{
	const km_k8s_peer_t *p = ctx;
	km_k8s_handle(ctx, path, msg, len, reply);
	if (reply->status != KM_GRPC_OK)
		fprintf(stderr, "keymgr-k8s-signer: event=call path=%.128s peer=\"%s\" status=%d "
		        "error=\"%s\"\n", path, p->peer, reply->status, reply->msg);
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "keymgr-k8s-signer: --listen: path too long\n");
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	/* a stale socket (nobody accepting) is replaced; a live one is not */
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct stat st;
	if (probe >= 0 && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			fprintf(stderr, "keymgr-k8s-signer: %s: another signer answers there\n", path);
			close(probe);
			close(fd);
			return -1;
		}
		unlink(path);
	}
	if (probe >= 0)
		close(probe);
	mode_t old = umask(0117);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r != 0 || listen(fd, 64) != 0) {
		fprintf(stderr, "keymgr-k8s-signer: %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void conn_close(conn_t *c)
{
	km_grpc_conn_free(c->g);
	close(c->fd);
	c->fd = -1;
	c->g = NULL;
}

static void conn_accept(int lfd, conn_t *conns, const km_k8s_service_t *svc,
                        const uid_t *allow, size_t n_allow)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	conn_t *c = NULL;
	for (size_t i = 0; i < MAX_CONNS && c == NULL; i++)
		if (conns[i].fd < 0)
			c = &conns[i];
	if (c == NULL) {
		close(fd);   /* full: kube-apiserver reconnects */
		return;
	}
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	c->peer = (km_k8s_peer_t){ .svc = svc };
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0) {
		for (size_t i = 0; i < n_allow; i++)
			c->peer.allowed = c->peer.allowed || cred.uid == allow[i];
		struct passwd *pw = getpwuid(cred.uid);
		snprintf(c->peer.peer, sizeof(c->peer.peer), "%.32s (uid %u)",
		         pw ? pw->pw_name : "?", (unsigned)cred.uid);
	} else {
		snprintf(c->peer.peer, sizeof(c->peer.peer), "an unknown peer");
	}
	c->fd = fd;
	if (km_grpc_conn_create(handle, &c->peer, write_fd, &c->fd, &c->g) != KM_EOK) {
		close(fd);
		c->fd = -1;
	}
}

/* Reads what is there, answers, writes. */
static void conn_io(conn_t *c, short revents)
{
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		uint8_t buf[16384];
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_close(c);
			return;
		}
		if (n > 0)
			km_grpc_conn_recv(c->g, buf, (size_t)n);
	}
	km_grpc_conn_send(c->g);
	if (km_grpc_conn_done(c->g))
		conn_close(c);
}

static int parse_user(const char *name, uid_t *ret)
{
	struct passwd *pw = getpwnam(name);
	if (pw == NULL) {
		fprintf(stderr, "keymgr-k8s-signer: --allow-user: no user '%s'\n", name);
		return -1;
	}
	*ret = pw->pw_uid;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keyset", required_argument, NULL, 'k' },
		{ "listen", required_argument, NULL, 'l' },
		{ "control-socket", required_argument, NULL, 's' },
		{ "allow-user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *ref = NULL, *listen_path = NULL, *ctl = NULL;
	uid_t allow[MAX_ALLOW];
	size_t n_allow = 0;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":k:l:s:u:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'k': ref = optarg; break;
		case 'l': listen_path = optarg; break;
		case 's': ctl = optarg; break;
		case 'u':
			if (n_allow == MAX_ALLOW) {
				fprintf(stderr, "keymgr-k8s-signer: --allow-user given too often\n");
				return 2;
			}
			if (parse_user(optarg, &allow[n_allow]) != 0)
				return 2;
			n_allow++;
			break;
		case 'h': fputs(usage, stdout); return 0;
		case 'V': printf("keymgr-k8s-signer %s\n", KEYMGR_VERSION); return 0;
		case ':':
			fprintf(stderr, "keymgr-k8s-signer: option '%s' needs a value\n"
			        "Try 'keymgr-k8s-signer --help'.\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "keymgr-k8s-signer: unknown option '%s'\n"
			        "Try 'keymgr-k8s-signer --help'.\n", argv[optind - 1]);
			return 2;
		}
	}
	char env[KM_ENV_NAME_MAX + 1], keyset[KM_KEYSET_NAME_MAX + 1], err[256];
	if (optind < argc || ref == NULL || listen_path == NULL) {
		fprintf(stderr, "keymgr-k8s-signer: %s\nTry 'keymgr-k8s-signer --help'.\n",
		        optind < argc ? "unexpected argument (options only)" :
		        "--keyset ENV/NAME and --listen PATH are required");
		return 2;
	}
	if (km_name_split(ref, false, env, keyset, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "keymgr-k8s-signer: --keyset: %s\n", err);
		return 2;
	}
	if (ctl == NULL)
		ctl = secure_getenv("KEYMGR_CONTROL_SOCKET");
	if (ctl == NULL || ctl[0] == '\0')
		ctl = "/run/keymgr/control.sock";
	if (n_allow == 0) {
		allow[n_allow++] = 0;
		allow[n_allow++] = geteuid();
	}

	/* SIGTERM and SIGINT stay blocked but inside ppoll(2): one arriving between the loop's
	 * test of stop and the wait would otherwise be missed until the next connection */
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block, waitmask;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);

	int lfd = listen_on(listen_path);
	if (lfd < 0)
		return 1;
	call_ctx_t cc = { .socket = ctl, .fd = -1 };
	km_k8s_service_t svc = { .env = env, .keyset = keyset, .call = call_keymgrd,
	                         .call_ctx = &cc };
	conn_t conns[MAX_CONNS];
	for (size_t i = 0; i < MAX_CONNS; i++)
		conns[i] = (conn_t){ .fd = -1 };
	fprintf(stderr, "keymgr-k8s-signer: event=start version=%s keyset=%s/%s listen=%s "
	        "control_socket=%s pid=%ld\n", KEYMGR_VERSION, env, keyset, listen_path, ctl,
	        (long)getpid());
	while (!stop) {
		struct pollfd pfd[MAX_CONNS + 1];
		size_t idx[MAX_CONNS + 1], n = 0;
		pfd[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (size_t i = 0; i < MAX_CONNS; i++) {
			if (conns[i].fd < 0)
				continue;
			idx[n] = i;
			pfd[n++] = (struct pollfd){ .fd = conns[i].fd, .events = (short)(POLLIN |
			           (km_grpc_conn_want_write(conns[i].g) ? POLLOUT : 0)) };
		}
		if (ppoll(pfd, (nfds_t)n, NULL, &waitmask) < 0)
			continue;   /* EINTR: a signal; the loop looks at stop */
		for (size_t k = 1; k < n; k++)
			if (pfd[k].revents != 0)
				conn_io(&conns[idx[k]], pfd[k].revents);
		if (pfd[0].revents & POLLIN)
			conn_accept(lfd, conns, &svc, allow, n_allow);
	}
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (conns[i].fd >= 0)
			conn_close(&conns[i]);
	close(lfd);
	if (cc.fd >= 0)
		close(cc.fd);
	unlink(listen_path);
	fprintf(stderr, "keymgr-k8s-signer: event=stop\n");
	return 0;
}
