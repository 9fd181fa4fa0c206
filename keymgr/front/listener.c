/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgrd-listener: the process that faces the network (docs/architecture.md, "The
 * listener"). keymgrd starts it, supervises it, and gives it
 *   --channel FD   the channel to keymgrd (keymgr/front/channel.h)
 *   --listen FD    the public TCP socket, bound and listening (keymgrd bound it)
 *   --admin FD     the admin socket (loopback by default): /metrics and /healthz only
 * It holds no PIN, loads no PKCS#11 module and opens no store: it serves the documents keymgrd
 * sends, answers /healthz with keymgrd's verdict (no detail), and sends back who fetched
 * what. Confinement (keymgr/front/sandbox.h): RLIMIT_NOFILE sized to its connections, no
 * core dump, an unprivileged user, NoNewPrivs, a seccomp allow-list.
 * It is not meant to be run by hand: keymgrd passes the descriptors.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/front/channel.h"
#include "keymgr/front/sandbox.h"
#include "keymgr/http/http_server.h"

#define PICKUP_GAP_MS 20      /* between two reports of fetches: a flood of them is batched */
#define PICKUP_ROWS_MAX 4096
#define FD_RESERVE 64          /* channel, epoll, eventfds, the admin server's own */

static const char usage[] =
	"Usage: keymgrd-listener --channel FD --listen FD [--admin FD]\n"
	"keymgrd's network-facing process; keymgrd starts it with these descriptors.\n";

/* Tells keymgrd why, then exits: it restarts the listener with a backoff. */
static int failed(int ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int failed(int ch, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	km_chan_buf_t b = { 0 };
	km_chan_text(&b, KM_CHAN_FAILED, msg, strlen(msg));
	km_chan_send(ch, &b);
	km_chan_buf_free(&b);
	fprintf(stderr, "keymgrd-listener: %s\n", msg);
	return 1;
}

static int fd_arg(const char *s)
{
	char *end = NULL;
	long v = strtol(s, &end, 10);
	return end != s && *end == '\0' && v > 2 && v < 1 << 20 ? (int)v : -1;
}

/* Sends the verifier rows that changed since the last time, in frames of bounded size. */
static int send_pickups(int ch, km_http_t *pub, km_chan_buf_t *b)
{
	km_http_verifier_t *rows = NULL;
	size_t n = 0;
	if (km_http_take_verifier_changes(pub, &rows, &n) != KM_EOK)
		return KM_EOK;   /* out of memory: kept for the next round */
	int r = KM_EOK;
	for (size_t i = 0; i < n && r == KM_EOK; i += PICKUP_ROWS_MAX) {
		km_chan_pickup(b, rows + i, n - i < PICKUP_ROWS_MAX ? n - i : PICKUP_ROWS_MAX);
		r = km_chan_send(ch, b);
	}
	free(rows);
	return r;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int serve(int ch, km_http_t *pub, km_http_t *admin)
{
	km_chan_buf_t out = { 0 };
	uint8_t *buf = NULL;
	size_t cap = 0;
	int rc = 0;
	/* A fetch is reported as soon as it is recorded (the server's change eventfd), at most
	 * once per PICKUP_GAP_MS, also while keymgrd sends frame after frame. */
	int64_t last_sent = 0, due = -1;   /* due: when to report; -1: nothing to report */
	for (;;) {
		int64_t now = mono_ms();
		if (due >= 0 && now >= due) {
			if (send_pickups(ch, pub, &out) != KM_EOK)
				break;   /* keymgrd is gone */
			last_sent = now;
			due = -1;
		}
		struct pollfd p[2] = {
			{ .fd = ch, .events = POLLIN },
			{ .fd = km_http_verifier_change_fd(pub), .events = POLLIN },
		};
		int n = poll(p, due >= 0 ? 1 : 2, due >= 0 ? (int)(due - now) : -1);
		if (n < 0 && errno != EINTR) {
			rc = failed(ch, "poll on the channel: %s", strerror(errno));
			break;
		}
		if (n > 0 && (p[1].revents & POLLIN) && due < 0)
			due = last_sent + PICKUP_GAP_MS > now ? last_sent + PICKUP_GAP_MS : now;
		if (n <= 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		km_chan_msg_t m;
		int r = km_chan_recv(ch, &buf, &cap, &m);
		if (r == KM_ENOENT)
			break;       /* keymgrd closed the channel: it stops, or replaces us */
		if (r != KM_EOK) {
			rc = failed(ch, "reading the channel: %s", km_strerror(r));
			break;
		}
		char path[KM_HTTP_PATH_MAX + 1];
		km_chan_doc_t d;
		switch (m.type) {
		case KM_CHAN_PUBLISH:
			if (km_chan_get_publish(&m, &d) != KM_EOK ||
			    km_http_publish(pub, d.path, d.body, d.len, d.serial, d.max_age,
			                    (time_t)d.last_modified) != KM_EOK)
				rc = failed(ch, "PUBLISH refused");
			break;
		case KM_CHAN_UNPUBLISH:
			km_chan_get_str(&m, path, KM_HTTP_PATH_MAX);
			if (m.bad || m.pos != m.len)
				rc = failed(ch, "UNPUBLISH malformed");
			else
				km_http_unpublish(pub, path);
			break;
		case KM_CHAN_HEALTH: {
			bool ok = km_chan_get_u8(&m) != 0;
			/* the verdict only: the reason (module paths, token labels) stays with keymgrd's
			 * control socket */
			if (m.bad || m.pos != m.len ||
			    km_http_set_health(pub, ok, NULL) != KM_EOK ||
			    (admin != NULL && km_http_set_health(admin, ok, NULL) != KM_EOK))
				rc = failed(ch, "HEALTH malformed");
			break;
		}
		case KM_CHAN_METRICS: {
			size_t len = 0;
			const char *t = km_chan_get_blob(&m, &len);
			char *text = m.bad || m.pos != m.len ? NULL : strndup(t, len);
			if (text == NULL || strlen(text) != len)
				rc = failed(ch, "METRICS malformed");
			else if (admin != NULL && km_http_set_metrics_text(admin, text) != KM_EOK)
				fprintf(stderr, "keymgrd-listener: metrics text of %zu bytes not taken "
				        "(too long, or out of memory): the previous one stays\n", len);
			free(text);
			break;
		}
		case KM_CHAN_LISTED: {
			uint32_t count = km_chan_get_u32(&m);
			char (*names)[KM_HTTP_VERIFIER_NAME_MAX + 1] = NULL;
			const char **ptrs = NULL;
			if (count > 4096 || (count > 0 &&
			    ((names = calloc(count, sizeof(*names))) == NULL ||
			     (ptrs = calloc(count, sizeof(*ptrs))) == NULL))) {
				rc = failed(ch, "LISTED refused");
			} else {
				for (uint32_t i = 0; i < count; i++) {
					km_chan_get_str(&m, names[i], KM_HTTP_VERIFIER_NAME_MAX);
					ptrs[i] = names[i];
				}
				if (m.bad || m.pos != m.len ||
				    km_http_set_listed_verifiers(pub, ptrs, count) != KM_EOK)
					rc = failed(ch, "LISTED malformed");
			}
			free(names);
			free(ptrs);
			break;
		}
		case KM_CHAN_LISTEN: {
			char err[256] = "";
			if (km_http_listen(pub, err, sizeof(err)) != KM_EOK)
				rc = failed(ch, "cannot accept connections: %s", err);
			break;
		}
		default:
			rc = failed(ch, "unknown frame type %u", (unsigned)m.type);
			break;
		}
		if (rc != 0)
			break;
	}
	free(buf);
	km_chan_buf_free(&out);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "channel", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "admin", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch = -1, lfd = -1, afd = -1, o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'c': ch = fd_arg(optarg); break;
		case 'l': lfd = fd_arg(optarg); break;
		case 'a': afd = fd_arg(optarg); break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (ch < 0 || lfd < 0 || optind != argc) {
		fputs(usage, stderr);
		return 2;
	}

	km_chan_msg_t m;
	km_chan_config_t cfg;
	uint8_t *buf = NULL;
	size_t cap = 0;
	char err[512] = "";
	int r = km_chan_recv(ch, &buf, &cap, &m);
	if (r != KM_EOK || m.type != KM_CHAN_CONFIG || km_chan_get_config(&m, &cfg) != KM_EOK) {
		free(buf);
		return failed(ch, "the first frame is not a valid CONFIG");
	}
	free(buf);
	if ((cfg.admin) != (afd >= 0))
		return failed(ch, "CONFIG and --admin disagree");
	unsigned nofile = (cfg.conn_limit ? cfg.conn_limit : 1024) + FD_RESERVE;
	if (km_sandbox_preload(err, sizeof(err)) != KM_EOK ||
	    km_sandbox_limits(nofile, err, sizeof(err)) != KM_EOK)
		return failed(ch, "%s", err);

	km_http_t *pub = NULL, *admin = NULL;
	km_http_cfg_t hc = {
		.threads = cfg.threads, .conn_limit = cfg.conn_limit, .per_ip_limit = cfg.per_ip_limit,
		.conn_timeout = cfg.conn_timeout, .max_header_size = (size_t)cfg.max_header_size,
		.max_verifiers = (size_t)cfg.max_verifiers, .rate_limit = cfg.rate_limit,
		.rate_burst = cfg.rate_burst, .defer_listen = true, .listen_fd = lfd,
		.no_metrics = true,
	};
	if (km_http_start(&hc, &pub, err, sizeof(err)) != KM_EOK)
		return failed(ch, "%s", err);
	if (afd >= 0) {
		km_http_cfg_t ac = { .threads = 1, .conn_limit = 16, .per_ip_limit = 16,
		                     .listen_fd = afd, .metrics_of = pub };
		if (km_http_start(&ac, &admin, err, sizeof(err)) != KM_EOK) {
			km_http_free(pub);
			return failed(ch, "admin: %s", err);
		}
	}
	bool confined = false;
	if (km_sandbox_drop(cfg.user, err, sizeof(err)) != KM_EOK ||
	    km_sandbox_seccomp(&confined, err, sizeof(err)) != KM_EOK) {
		km_http_free(admin);
		km_http_free(pub);
		return failed(ch, "%s", err);
	}
	km_chan_buf_t b = { 0 };
	km_chan_begin(&b, KM_CHAN_READY);
	km_chan_put_u8(&b, confined);
	km_chan_put_u32(&b, (uint32_t)getuid());
	r = km_chan_send(ch, &b);
	km_chan_buf_free(&b);
	int rc = r == KM_EOK ? serve(ch, pub, admin) : 1;
	km_http_free(admin);
	km_http_free(pub);
	return rc;
}
