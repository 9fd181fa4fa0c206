/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: HTTP request handling of km_http (libmicrohttpd plus keymgr's handler:
 * method checks, path lookup, If-None-Match, Keymgr-Verifier tracking, HEAD, /healthz,
 * /metrics, the 404/405/413/304 answers).
 *
 * One server runs on 127.0.0.1 (ephemeral port) for the whole fuzzing process, serving a
 * published JWKS. Input byte 0 picks the mode:
 *
 *   structured (bit 7 clear): the harness builds one complete request, so the server always
 *     answers at once and no input waits for a timeout: method from bits 0-2 (GET, HEAD or a
 *     method keymgr refuses), HTTP/1.0 when bit 3 is set, the current ETag as If-None-Match
 *     when bit 4 is, a Keymgr-Verifier name when bit 5 is, "Connection: close" when bit 6 is.
 *     The rest of the input is split at '\n' (CRs dropped, empty lines skipped): the first
 *     line is the request target, every other line a header line, sent as they are. It goes
 *     over one persistent keep-alive connection (reopened when the server closes it), and
 *     the answer is read exactly (status line, headers, Content-Length body; none for HEAD
 *     and 304), then checked: status in the set km_http and libmicrohttpd may answer; a 200
 *     or 304 carrying a JWKS has our ETag, a GET 200 of it our exact body; a 304 only when an
 *     If-None-Match was sent; a method other than GET and HEAD never gets 200 or 304.
 *     A complete request left unanswered for 10 s aborts (a hung handler).
 *   raw (bit 7 set): the other bytes are sent as they are on a new connection, the writing
 *     side shut down; the answer, if any arrives within 2 ms, must start with a status line;
 *     then the connection is reset (an incomplete request is never waited for).
 *
 * Every 256 inputs a probe checks on a new connection that the server still answers. The
 * If-None-Match evaluator is also called directly with the input as the header value.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/http/http_server.h"
#include "keymgr/http/http_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ANSWER_MS 10000   /* a complete request not answered in this time: the server hangs */
#define RAW_MS 2          /* how long a raw request's answer is waited for */
#define RESP_MAX 65536

static km_http_t *server;
static uint16_t port;
static char etag[KM_ETAG_SIZE];
static int conn = -1;     /* the persistent connection of the structured mode */

static const char jwks_path[] = "/production/.well-known/jwks.json";
static const char jwks[] =
	"{\"keys\":[{\"crv\":\"Ed25519\",\"kty\":\"OKP\","
	"\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\","
	"\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\",\"alg\":\"EdDSA\",\"use\":\"sig\"}]}";

static const char *const methods[8] = { "GET", "GET", "HEAD", "GET", "POST", "PUT", "DELETE",
                                        "OPTIONS" };

/* Closes with a reset: no TIME_WAIT, so many connections do not exhaust ephemeral ports. */
static void hang_up(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void stop(void)
{
	if (conn >= 0)
		hang_up(conn);
	conn = -1;
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
	if (km_http_publish(server, jwks_path, jwks, strlen(jwks), 7, 300, 1700000000) != KM_EOK ||
	    km_http_publish(server, "/production/api/jwks.json", jwks, strlen(jwks), 7, 300,
	                    1700000000) != KM_EOK ||
	    km_http_set_health(server, true, NULL) != KM_EOK ||
	    km_http_set_metrics_text(server, "keymgr_fuzz 1\n") != KM_EOK)
		abort();
	km_etag_compute(jwks, strlen(jwks), etag);
	atexit(stop);
}

/*
 * Connects to the server; aborts if it stops accepting. Running out of local ports (many
 * connections the server closed first sit in TIME_WAIT, more so when other programs on the
 * machine use loopback too) is the machine's limit, not the server's: those errors are retried
 * for up to 10 s. A refused connection means the listener is gone and aborts at once.
 */
static int dial(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = -1;
	for (int attempt = 0;; attempt++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			abort();
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		int e = errno;
		close(fd);
		bool transient = e == EADDRNOTAVAIL || e == EAGAIN || e == EINTR || e == ETIMEDOUT;
		if (!transient || attempt >= 1000) {
			fprintf(stderr, "fuzz_http: connect to 127.0.0.1:%u: %s\n", (unsigned)port,
			        strerror(e));
			abort();
		}
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static bool send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* One parsed answer. */
typedef struct {
	unsigned status;
	bool has_etag, etag_ours, close, is_jwks, has_length;
	size_t length;           /* Content-Length */
	const char *body;        /* GET bodies, in the buffer */
} answer_t;

/* The value of header name in the header block hdr (ends at "\r\n\r\n"), or NULL. */
static const char *header(const char *hdr, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(hdr, "\r\n"); p != NULL && p[2] != '\r';
	     p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			v += strspn(v, " \t");
			*len = strcspn(v, "\r");
			return v;
		}
	}
	return NULL;
}

/*
 * Reads one answer to a request (no body for HEAD and 304) into buf. Returns 1 when read
 * whole, 0 when the connection ended before its first byte, -1 when it ended or broke in the
 * middle, and aborts when nothing arrives for ANSWER_MS.
 */
static int read_answer(int fd, bool head, char *buf, size_t cap, answer_t *a)
{
	size_t got = 0, need = 0, hdr_end = 0;
	memset(a, 0, sizeof(*a));
	for (;;) {
		if (hdr_end == 0) {
			char *e = got >= 4 ? memmem(buf, got, "\r\n\r\n", 4) : NULL;
			if (e != NULL) {
				hdr_end = (size_t)(e - buf) + 4;
				buf[hdr_end - 2] = '\0';   /* header() stops at the blank line */
				if (strncmp(buf, "HTTP/1.", 7) != 0 || got < 12) {
					fprintf(stderr, "fuzz_http: not a status line: '%.40s'\n", buf);
					abort();
				}
				a->status = (unsigned)strtoul(buf + 9, NULL, 10);
				if (a->status >= 100 && a->status < 200) {
					/* An interim answer (100 Continue): the real one follows. */
					memmove(buf, buf + hdr_end, got - hdr_end);
					got -= hdr_end;
					hdr_end = 0;
					continue;
				}
				size_t vl = 0;
				const char *v;
				a->has_etag = (v = header(buf, "ETag", &vl)) != NULL;
				a->etag_ours = a->has_etag && vl == strlen(etag) && memcmp(v, etag, vl) == 0;
				v = header(buf, "Connection", &vl);
				a->close = v != NULL && vl == 5 && strncasecmp(v, "close", 5) == 0;
				v = header(buf, "Content-Type", &vl);
				a->is_jwks = v != NULL && strncmp(v, "application/jwk-set+json", vl) == 0;
				if ((v = header(buf, "Content-Length", &vl)) != NULL) {
					a->has_length = true;
					a->length = (size_t)strtoull(v, NULL, 10);
				} else if (header(buf, "Transfer-Encoding", &vl) != NULL) {
					return -1;   /* km_http never sends chunked answers */
				}
				need = hdr_end + (head || a->status == 304 ? 0 : a->length);
				if (need > cap - 1)
					return -1;
			}
		}
		if (hdr_end != 0 && got >= need) {
			a->body = buf + hdr_end;
			return got == need ? 1 : -1;   /* more: the next answer came unasked */
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, ANSWER_MS);
		if (n == 0) {
			fprintf(stderr, "fuzz_http: no answer in %d ms to a complete request\n",
			        ANSWER_MS);
			abort();
		}
		ssize_t rd = n > 0 ? recv(fd, buf + got, cap - 1 - got, 0) : -1;
		if (rd <= 0)
			return got == 0 ? 0 : -1;
		got += (size_t)rd;
		if (got >= cap - 1)
			return -1;
	}
}

static void check(const answer_t *a, const char *method, bool head, bool sent_inm)
{
	static const unsigned allowed[] = { 200, 304, 400, 404, 405, 413, 414, 417, 431, 500,
	                                    501, 505 };
	bool ok = false;
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		ok = ok || allowed[i] == a->status;
	const char *why = NULL;
	bool get = strcmp(method, "GET") == 0;
	if (!ok)
		why = "status outside the allowed set";
	else if ((a->status == 200 || a->status == 304) && !get && !head)
		why = "a method other than GET/HEAD was served";
	else if (a->status == 304 && !a->etag_ours)
		why = "304 without our ETag";
	else if (a->status == 304 && !sent_inm)
		why = "304 to a request without If-None-Match";
	else if (a->status == 200 && a->is_jwks && !a->etag_ours)
		why = "JWKS 200 without our ETag";
	else if (a->status == 200 && a->is_jwks &&
	         (!a->has_length || a->length != strlen(jwks) ||
	          (get && memcmp(a->body, jwks, a->length) != 0)))
		why = "JWKS 200 with another body or length";
	if (why != NULL) {
		fprintf(stderr, "fuzz_http: %s (status %u, %s)\n", why, a->status, method);
		abort();
	}
}

/* The structured mode: one complete request on the persistent connection. */
static void structured(const uint8_t *data, size_t size)
{
	uint8_t mode = data[0];
	const char *method = methods[mode & 7];
	bool head = strcmp(method, "HEAD") == 0, v10 = (mode & 8) != 0;
	bool sent_inm = (mode & 0x10) != 0;
	size_t cap = 3 * size + 256 + sizeof(etag);
	char *req = malloc(cap), *target = malloc(size + 2), *buf = malloc(RESP_MAX);
	if (req == NULL || target == NULL || buf == NULL)
		abort();

	/* Split the input into lines: the target, then header lines. */
	size_t tl = 0, i = 1;
	while (i < size && data[i] != '\n') {
		if (data[i] != '\r')
			target[tl++] = (char)data[i];
		i++;
	}
	if (tl == 0)
		target[tl++] = '/';
	target[tl] = '\0';
	int n = snprintf(req, cap, "%s %s HTTP/1.%c\r\nHost: 127.0.0.1\r\n", method, target,
	                 v10 ? '0' : '1');
	size_t len = (size_t)n;
	while (i < size) {
		size_t start = ++i, ll = 0;
		while (i < size && data[i] != '\n')
			i++;
		for (size_t j = start; j < i; j++)
			if (data[j] != '\r')
				req[len + ll++] = (char)data[j];
		if (ll == 0)
			continue;
		if (ll >= 13 && strncasecmp(req + len, "if-none-match", 13) == 0)
			sent_inm = true;
		len += ll;
		req[len++] = '\r';
		req[len++] = '\n';
	}
	if (mode & 0x10)
		len += (size_t)snprintf(req + len, cap - len, "If-None-Match: %s\r\n", etag);
	if (mode & 0x20)
		len += (size_t)snprintf(req + len, cap - len, "Keymgr-Verifier: fuzz-verifier\r\n");
	if (mode & 0x40)
		len += (size_t)snprintf(req + len, cap - len, "Connection: close\r\n");
	len += (size_t)snprintf(req + len, cap - len, "\r\n");

	/* A kept connection with something to read was closed by the server (or holds an
	 * answer nobody asked for): start afresh. */
	if (conn >= 0) {
		struct pollfd p = { .fd = conn, .events = POLLIN };
		if (poll(&p, 1, 0) != 0) {
			hang_up(conn);
			conn = -1;
		}
	}
	answer_t a;
	int r = 0;
	for (int attempt = 0; attempt < 2 && r == 0; attempt++) {
		bool fresh = conn < 0;
		if (conn < 0)
			conn = dial();
		r = send_all(conn, req, len) ? read_answer(conn, head, buf, RESP_MAX, &a) : 0;
		if (r != 1) {
			hang_up(conn);
			conn = -1;
		}
		if (fresh)
			break;   /* only a reused connection may have been closed under us */
	}
	if (r == 1) {
		check(&a, method, head, sent_inm);
		if (a.close || v10) {
			hang_up(conn);
			conn = -1;
		}
	}
	free(req);
	free(target);
	free(buf);
}

/* The raw mode: the bytes as they are, a short wait, a reset. */
static void raw(const uint8_t *data, size_t size)
{
	int fd = dial();
	bool sent = send_all(fd, (const char *)data, size);
	shutdown(fd, SHUT_WR);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[16];
	if (sent && poll(&p, 1, RAW_MS) > 0) {
		ssize_t rd = recv(fd, buf, sizeof(buf), 0);
		if (rd >= 7 && strncmp(buf, "HTTP/1.", 7) != 0) {
			fprintf(stderr, "fuzz_http: raw: not a status line: '%.*s'\n", (int)rd, buf);
			abort();
		}
	}
	hang_up(fd);
}

/* The server must still answer a well-formed request within 10 s (hang detection). */
static void probe(void)
{
	static const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
	int fd = dial();
	char buf[4096];
	answer_t a;
	if (!send_all(fd, req, sizeof(req) - 1) ||
	    read_answer(fd, false, buf, sizeof(buf), &a) != 1 || a.status != 200) {
		fprintf(stderr, "fuzz_http: the server no longer answers /healthz\n");
		abort();
	}
	hang_up(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned runs;
	if (size < 1)
		return 0;
	if (server == NULL)
		start();

	char *field = malloc(size + 1);
	if (field == NULL)
		abort();
	memcpy(field, data, size);
	field[size] = '\0';
	km_http_etag_none_match(field, etag);
	free(field);

	if (data[0] & 0x80)
		raw(data + 1, size - 1);
	else
		structured(data, size);
	if (++runs % 256 == 0)
		probe();
	return 0;
}
