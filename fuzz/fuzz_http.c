/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: HTTP request handling of km_http (libmicrohttpd plus keymgr's handler:
 * path lookup, If-None-Match, verifier tracking, /healthz, /metrics).
 *
 * One server runs on 127.0.0.1 (ephemeral port) for the whole fuzzing process, serving a
 * published JWKS. Each input is sent as raw bytes over a new loopback connection, the
 * writing side is shut down, and the answer is read (see below for when reading stops);
 * every 256 inputs a probe checks that the server still answers. The If-None-Match
 * evaluator is also called directly with the input as the header value.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/http/http_server.h"
#include "keymgr/http/http_util.h"

static km_http_t *server;
static uint16_t port;
static char etag[KM_HTTP_ETAG_SIZE];

static const char jwks[] =
	"{\"keys\":[{\"crv\":\"Ed25519\",\"kty\":\"OKP\","
	"\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\","
	"\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\",\"alg\":\"EdDSA\",\"use\":\"sig\"}]}";

static void stop(void)
{
	km_http_free(server);
	server = NULL;
}

static void start(void)
{
	km_http_cfg_t cfg = { .listen_addr = "127.0.0.1", .threads = 1, .conn_timeout = 1 };
	char err[256];
	if (km_http_start(&cfg, &server, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "fuzz_http: %s\n", err);
		abort();
	}
	port = km_http_port(server);
	if (km_http_publish(server, "/production/.well-known/jwks.json", jwks, strlen(jwks), 7,
	                    300, 1700000000) != KM_EOK ||
	    km_http_set_health(server, true, NULL) != KM_EOK ||
	    km_http_set_metrics_text(server, "keymgr_fuzz 1\n") != KM_EOK)
		abort();
	km_http_etag_compute(jwks, strlen(jwks), etag);
	atexit(stop);
}

/* Connects to the server; aborts if it stops accepting. */
static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		abort();
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		abort();
	return fd;
}

/* Reads what arrives until the peer closes or wait_ms pass without data. Returns the bytes
 * read (up to len - 1 kept in buf, NUL-terminated). */
static size_t drain(int fd, int first_ms, char *buf, size_t len)
{
	size_t got = 0;
	int wait_ms = first_ms;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, wait_ms) <= 0)
			break;
		char tmp[4096];
		ssize_t rd = recv(fd, tmp, sizeof(tmp), 0);
		if (rd <= 0)
			break;
		if (got < len - 1) {
			size_t keep = (size_t)rd < len - 1 - got ? (size_t)rd : len - 1 - got;
			memcpy(buf + got, tmp, keep);
			got += keep;
		}
		wait_ms = 10;
	}
	buf[got] = '\0';
	return got;
}

/* Closes with a reset: no TIME_WAIT, so many connections do not exhaust ephemeral ports. */
static void hang_up(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* The server must still answer a well-formed request within 10 s (hang detection). */
static void probe(void)
{
	static const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
	int fd = dial();
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1)
		abort();
	char buf[64];
	drain(fd, 10000, buf, sizeof(buf));
	if (strncmp(buf, "HTTP/1.", 7) != 0 || strstr(buf, " 200 ") == NULL) {
		fprintf(stderr, "fuzz_http: the server no longer answers /healthz: '%s'\n", buf);
		abort();
	}
	hang_up(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned runs;
	if (server == NULL)
		start();

	char *field = malloc(size + 1);
	if (field == NULL)
		abort();
	memcpy(field, data, size);
	field[size] = '\0';
	km_http_etag_none_match(field, etag);
	free(field);

	int fd = dial();
	size_t off = 0;
	while (off < size) {
		ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the server may close early on a bad request */
		off += (size_t)w;
	}
	shutdown(fd, SHUT_WR);
	/*
	 * A complete request is answered at once; an incomplete one is not answered at all (MHD
	 * waits for the rest until its idle timeout, even after our FIN). So wait briefly for
	 * the answer, then reset the connection, and check every 256 inputs that the server
	 * still answers a good request (a handler that hangs or dies is caught there).
	 */
	char buf[256];
	drain(fd, 50, buf, sizeof(buf));
	hang_up(fd);
	if (++runs % 256 == 0)
		probe();
	return 0;
}
