/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-sign-client: JWT signing requests through keymgrd's control socket, next to the two
 * peers that bound them, on the same token and the same key:
 *   raw   a bare Cryptoki loop (C_SignInit + C_Sign; ES256 hashes with OpenSSL first, as
 *         keymgr does for SoftHSM 2.6.1) in this process, with its own sessions: the token's
 *         own limit;
 *   bare  the same requests to bench-sign-bare (sign_bare.c), a server that only signs
 *         (digest + C_Sign) behind the same kind of socket: the limit of any signing
 *         service behind a Unix socket on this machine.
 * All three run in the same run, on N threads, in rotating rounds so that machine noise hits
 * them alike. bench/sign drives it; bench-sign-bare must be next to this program.
 *
 *   bench-sign-client SOCKET ENV/NAME ALG CKA_ID_HEX MODULE TOKEN_LABEL PIN_SOURCE
 *                     THREADS SECONDS [PIPELINE]
 *
 * Daemon path: one persistent connection per thread, the same request every time
 * ({"op":"sign","keyset":...,"claims":{...},"ttl":60}, framed: 4-byte big-endian length +
 * JSON), each reply read and checked for "ok":true before the next request is sent
 * (PIPELINE > 1: that many requests in flight per connection, answered in order).
 * Raw path: per thread one session; the token is logged in through km_token_open (the login
 * is shared by the process's sessions). Latency is per request / per C_Sign.
 * Bare path: as the daemon path, one connection per thread to bench-sign-bare, which this
 * program starts (socket SOCKET.bare) once it knows the size of keymgrd's replies.
 * Prints: path, threads, signs/s, p50 and p99 latency in microseconds; then the ratio
 * keymgrd/raw, and CPU time per request. Those figures are rounded for reading; the line
 * "ALG THREADS exact PATH OPS SECONDS" per path carries the unrounded counts (SECONDS as
 * %.17g, which reads back as the same double), from which every rate and ratio above is
 * computed: compare figures against these, never against the rounded ones.
 *
 *   bench-sign-client --soak SOCKET ENV/NAME THREADS SECONDS [SAMPLE_FILE]
 *
 * Soak mode (bench/soak): only the daemon path, for SECONDS, counting failures instead of
 * stopping at the first one: an error reply is counted and the next request sent; a closed
 * connection or a bad frame is counted and the thread reconnects. Every 1000th token a
 * thread gets is appended to SAMPLE_FILE (one per line) for verification. Prints
 * "progress SECONDS OPS ERRORS" every 10 s, then "soak OPS ERRORS SECONDS SIGNS/S P50_US
 * P99_US MAX_US" and, on stderr, the last error.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/raw_sign.h"
#include "bench/socket_io.h"
#include "keymgr/common/error.h"
#include "pkcs11/token.h"

#define MAX_THREADS 8
#define MAX_SAMPLES 4000000
#define MAX_PIPELINE 32

/* The JWS signing input of a typical access token (same size as keymgrd's). */
static const uint8_t input[] =
	"eyJhbGciOiJFUzI1NiIsImtpZCI6IjFkN0xWQ2ZQNUlLYklIeHBaVXpBTE5uQkxQS2tpYlZ5cGZRT2dzRnlqdTAi"
	"LCJ0eXAiOiJhdCtqd3QifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5iZW5jaCIsInN1YiI6ImJlbmNoIiwiYXVkI"
	"joiYXBpLmJlbmNoIiwiY2xpZW50X2lkIjoiYmVuY2giLCJleHAiOjE3OTU4ODk4NDMsImlhdCI6MTc5NTg4OTc4M"
	"ywibmJmIjoxNzk1ODg5NzgzLCJqdGkiOiJKTWVKcXJPdjdqX2Y3T2Z4QXZmQ1p3In0";

static const char *sock_path;
static uint8_t *frame;
static size_t frame_len;
static int pipeline = 1;

static uint8_t *frames;          /* frame repeated MAX_PIPELINE times: one send per batch */
static bench_raw_t *peer;
static atomic_bool stop;
static atomic_size_t reply_bytes;   /* a reply frame's size, for bench-sign-bare's */

typedef enum { PATH_KEYMGRD, PATH_RAW, PATH_BARE, N_PATHS } path_t;
static const char *const path_names[N_PATHS] = { "keymgrd", "raw", "bare" };

typedef struct {
	int idx;
	path_t path;
	int fd;                 /* keymgrd and bare paths: the thread's connection */
	unsigned long ops, errors;
	double *lat;            /* microseconds */
	size_t n_lat, cap_lat;
	char last_error[256];
	char *reply;            /* soak mode: the last reply's body, when not NULL */
	int rfd;                /* the connection rbuf belongs to */
	size_t rstart, rend;    /* unread reply bytes: rbuf[rstart..rend) */
	uint8_t rbuf[16384];
} worker_t;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sample(worker_t *w, double us)
{
	if (w->n_lat < w->cap_lat)
		w->lat[w->n_lat++] = us;
}

static int connect_daemon(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Makes w's reply buffer hold at least need bytes: one recv(2) per reply, usually. It waits
 * in poll(2), as an event loop (or a Python socket with a timeout) does, not in recv(2): a
 * thread asleep in recv(2) on a Unix stream socket is also woken, to find nothing, when the
 * daemon consumes its request (the kernel signals write space on the sender's socket), which
 * costs both processes a context switch per request (measured: twice the switches, a few
 * microseconds more per request on each side). */
static bool fill_reply(worker_t *w, size_t need)
{
	if (w->rfd != w->fd) {          /* a new connection (soak mode reconnects) */
		w->rfd = w->fd;
		w->rstart = w->rend = 0;
	}
	if (need > sizeof(w->rbuf))
		return false;
	while (w->rend - w->rstart < need) {
		if (sizeof(w->rbuf) - w->rstart < need) {
			memmove(w->rbuf, w->rbuf + w->rstart, w->rend - w->rstart);
			w->rend -= w->rstart;
			w->rstart = 0;
		}
		struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		ssize_t r = recv(w->fd, w->rbuf + w->rend, sizeof(w->rbuf) - w->rend, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			return false;
		w->rend += (size_t)r;
	}
	return true;
}

/* Reads one reply; true when it says "ok":true. */
static bool read_reply(worker_t *w)
{
	char body[8192];
	if (!fill_reply(w, 4)) {
		snprintf(w->last_error, sizeof(w->last_error), "connection closed");
		w->rstart = w->rend = 0;        /* the connection is done with */
		return false;
	}
	const uint8_t *hdr = w->rbuf + w->rstart;
	size_t len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	if (len >= sizeof(body) || !fill_reply(w, 4 + len)) {
		snprintf(w->last_error, sizeof(w->last_error), "bad reply frame");
		w->rstart = w->rend = 0;
		return false;
	}
	memcpy(body, w->rbuf + w->rstart + 4, len);
	body[len] = '\0';
	w->rstart += 4 + len;
	atomic_store_explicit(&reply_bytes, 4 + len, memory_order_relaxed);
	if (w->reply != NULL)
		memcpy(w->reply, body, len + 1);
	if (strstr(body, "\"ok\":true") == NULL || strstr(body, "\"jwt\"") == NULL) {
		snprintf(w->last_error, sizeof(w->last_error), "%.200s", body);
		return false;
	}
	return true;
}

static bool send_frame(int fd)
{
	return bench_send_all(fd, frame, frame_len);
}

/* Whether a whole reply frame is already in w's buffer (read without waiting). */
static bool reply_buffered(const worker_t *w)
{
	if (w->rfd != w->fd || w->rend - w->rstart < 4)
		return false;
	const uint8_t *h = w->rbuf + w->rstart;
	size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
	return w->rend - w->rstart >= 4 + len;
}

/* Keeps `pipeline` requests in flight on w's connection (1: strict request/reply). Replies
 * that arrived together are read together, and as many requests are sent back in one send,
 * as an issuer batching its writes would. */
static void daemon_loop(worker_t *w)
{
	double sent_at[MAX_PIPELINE];
	int inflight = 0;
	unsigned head = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed) || inflight > 0) {
		int k = atomic_load_explicit(&stop, memory_order_relaxed) ? 0 : pipeline - inflight;
		if (k > 0) {
			double t = now_s();
			for (int i = 0; i < k; i++)
				sent_at[(head + (unsigned)(inflight + i)) % MAX_PIPELINE] = t;
			if (!bench_send_all(w->fd, frames, frame_len * (size_t)k)) {
				w->errors++;
				snprintf(w->last_error, sizeof(w->last_error), "send failed");
				return;
			}
			inflight += k;
		}
		if (inflight == 0)
			break;
		do {
			bool ok = read_reply(w);
			sample(w, (now_s() - sent_at[head % MAX_PIPELINE]) * 1e6);
			head++;
			inflight--;
			if (ok) {
				w->ops++;
			} else {
				w->errors++;
				if (strcmp(w->last_error, "connection closed") == 0)
					return;
			}
		} while (inflight > 0 && reply_buffered(w));
	}
}

static void raw_loop(worker_t *w)
{
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		double t0 = now_s();
		if (bench_raw_sign(peer, w->idx, input, sizeof(input) - 1) != 0) {
			w->errors++;
			continue;
		}
		sample(w, (now_s() - t0) * 1e6);
		w->ops++;
	}
}

static void *worker(void *arg)
{
	worker_t *w = arg;
	if (w->path == PATH_RAW)
		raw_loop(w);
	else
		daemon_loop(w);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

typedef struct {
	unsigned long ops;
	double elapsed;
	double *lat;
	size_t n_lat;
	double cpu_daemon, cpu_self;    /* seconds spent during this path's rounds */
} result_t;

static pid_t server_pid[N_PATHS];   /* keymgrd, bench-sign-bare: their CPU time is read */

/* User + system CPU seconds of process pid so far (all its threads), or 0. */
static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long ut = 0, st = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = pid > 0 ? fopen(path, "r") : NULL;
	if (f == NULL)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');   /* the command name may hold spaces */
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	                        &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* One round of one path on n threads (fds: the path's connections); appends to res. */
static int run_round(path_t path, int n, double seconds, const int *fds, result_t *res)
{
	pthread_t th[MAX_THREADS];
	worker_t w[MAX_THREADS];
	struct timespec d = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
	atomic_store(&stop, false);
	double d0 = proc_cpu_s(server_pid[path]), s0 = self_cpu_s();
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		w[i] = (worker_t){ .idx = i, .path = path, .fd = fds != NULL ? fds[i] : -1 };
		w[i].cap_lat = MAX_SAMPLES / 64;
		w[i].lat = malloc(w[i].cap_lat * sizeof(double));
		if (w[i].lat == NULL || pthread_create(&th[i], NULL, worker, &w[i]) != 0)
			return -1;
	}
	nanosleep(&d, NULL);
	atomic_store(&stop, true);
	int rc = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		res->ops += w[i].ops;
		if (w[i].errors > 0) {
			fprintf(stderr, "%s path: %lu errors (last: %s)\n", path_names[path],
			        w[i].errors, w[i].last_error[0] ? w[i].last_error : "C_Sign failed");
			rc = -1;
		}
		double *grown = realloc(res->lat, (res->n_lat + w[i].n_lat) * sizeof(double));
		if (grown != NULL) {
			memcpy(grown + res->n_lat, w[i].lat, w[i].n_lat * sizeof(double));
			res->lat = grown;
			res->n_lat += w[i].n_lat;
		}
		free(w[i].lat);
	}
	res->elapsed += now_s() - t0;
	res->cpu_self += self_cpu_s() - s0;
	res->cpu_daemon += proc_cpu_s(server_pid[path]) - d0;
	return rc;
}

static double pct(result_t *r, double p)
{
	if (r->n_lat == 0)
		return 0;
	qsort(r->lat, r->n_lat, sizeof(double), cmp_double);
	size_t i = (size_t)(p * (double)(r->n_lat - 1));
	return r->lat[i];
}

/* Starts bench-sign-bare (next to this program) on SOCKET.bare for alg and key id_hex, with
 * replies of keymgrd's size, and connects n times. 0, or -1 with a message. */
static int start_bare(const char *const *tok_args, const char *alg, const char *id_hex, int n,
                      int *fds)
{
	char self[PATH_MAX], prog[PATH_MAX + 32], sock[PATH_MAX], len[32], conns[16], line[16];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash = sl > 0 ? memrchr(self, '/', (size_t)sl) : NULL;
	if (slash == NULL) {
		fprintf(stderr, "cannot find this program's folder (/proc/self/exe)\n");
		return -1;
	}
	*slash = '\0';
	snprintf(prog, sizeof(prog), "%s/bench-sign-bare", self);
	snprintf(sock, sizeof(sock), "%s.bare", sock_path);
	snprintf(len, sizeof(len), "%zu", atomic_load(&reply_bytes));
	snprintf(conns, sizeof(conns), "%d", n);
	char *argv[] = { prog, sock, (char *)tok_args[0], (char *)tok_args[1],
	                 (char *)tok_args[2], (char *)alg, (char *)id_hex, len, conns, NULL };
	int out[2];
	posix_spawn_file_actions_t fa;
	if (pipe(out) != 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	unlink(sock);
	extern char **environ;
	int rc = posix_spawn(&server_pid[PATH_BARE], prog, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	FILE *f = rc == 0 ? fdopen(out[0], "r") : NULL;
	bool ready = f != NULL && fgets(line, sizeof(line), f) != NULL &&
	             strcmp(line, "ready\n") == 0;
	if (f != NULL)
		fclose(f);
	else
		close(out[0]);
	if (rc != 0)
		server_pid[PATH_BARE] = 0;
	if (!ready) {
		fprintf(stderr, "cannot start %s\n", prog);
		return -1;
	}
	for (int i = 0; i < n; i++)
		if ((fds[i] = connect_daemon(sock)) < 0) {
			fprintf(stderr, "cannot connect to %s\n", sock);
			return -1;
		}
	return 0;
}

/* Soak mode: latency histogram in 10-microsecond buckets up to 2 s, plus the maximum. */
#define SOAK_BUCKETS 200000
#define SOAK_SAMPLE_EVERY 1000

static FILE *soak_samples;
static pthread_mutex_t soak_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_ulong soak_ops, soak_errors;
static double soak_deadline;

typedef struct {
	worker_t w;
	uint32_t *hist;
	double max_us;
	char body[8192];
} soak_worker_t;

static void soak_fail(soak_worker_t *s)
{
	s->w.errors++;
	atomic_fetch_add_explicit(&soak_errors, 1, memory_order_relaxed);
}

static void *soak_loop(void *arg)
{
	soak_worker_t *s = arg;
	worker_t *w = &s->w;
	s->w.reply = s->body;
	while (now_s() < soak_deadline) {
		if (w->fd < 0 && (w->fd = connect_daemon(sock_path)) < 0) {
			soak_fail(s);
			snprintf(w->last_error, sizeof(w->last_error), "cannot connect");
			struct timespec d = { 0, 10000000 };
			nanosleep(&d, NULL);
			continue;
		}
		double t0 = now_s();
		bool ok = send_frame(w->fd);
		if (!ok)
			snprintf(w->last_error, sizeof(w->last_error), "send failed");
		else
			ok = read_reply(w);
		double us = (now_s() - t0) * 1e6;
		size_t b = (size_t)(us / 10);
		s->hist[b < SOAK_BUCKETS ? b : SOAK_BUCKETS - 1]++;
		if (us > s->max_us)
			s->max_us = us;
		if (!ok) {
			soak_fail(s);
			if (strcmp(w->last_error, "connection closed") == 0 ||
			    strcmp(w->last_error, "bad reply frame") == 0 ||
			    strcmp(w->last_error, "send failed") == 0) {
				close(w->fd);
				w->fd = -1;
			}
			continue;
		}
		w->ops++;
		atomic_fetch_add_explicit(&soak_ops, 1, memory_order_relaxed);
		if (soak_samples != NULL && w->ops % SOAK_SAMPLE_EVERY == 1) {
			char *jwt = strstr(s->body, "\"jwt\":\"");
			char *end = jwt != NULL ? strchr(jwt + 7, '"') : NULL;
			if (end != NULL) {
				pthread_mutex_lock(&soak_lock);
				fprintf(soak_samples, "%.*s\n", (int)(end - jwt - 7), jwt + 7);
				pthread_mutex_unlock(&soak_lock);
			}
		}
	}
	if (w->fd >= 0)
		close(w->fd);
	return NULL;
}

/* bench-sign-client --soak SOCKET ENV/NAME THREADS SECONDS [SAMPLE_FILE] */
static int soak_main(int argc, char **argv)
{
	if (argc < 6 || argc > 7) {
		fprintf(stderr, "usage: %s --soak SOCKET ENV/NAME THREADS SECONDS [SAMPLE_FILE]\n",
		        argv[0]);
		return 2;
	}
	sock_path = argv[2];
	int threads = atoi(argv[4]);
	double seconds = atof(argv[5]);
	if (threads < 1 || threads > MAX_THREADS || seconds <= 0) {
		fprintf(stderr, "bad THREADS (1..%d) or SECONDS\n", MAX_THREADS);
		return 2;
	}
	char req[512];
	int rl = snprintf(req, sizeof(req), "{\"op\":\"sign\",\"keyset\":\"%s\",\"claims\":{\"sub\":"
	                  "\"bench\",\"aud\":\"api.bench\",\"client_id\":\"bench\"},\"ttl\":60}",
	                  argv[3]);
	uint8_t buf[4 + sizeof(req)];
	buf[0] = (uint8_t)(rl >> 24);
	buf[1] = (uint8_t)(rl >> 16);
	buf[2] = (uint8_t)(rl >> 8);
	buf[3] = (uint8_t)rl;
	memcpy(buf + 4, req, (size_t)rl);
	frame = buf;
	frame_len = 4 + (size_t)rl;
	if (argc > 6 && (soak_samples = fopen(argv[6], "a")) == NULL) {
		perror(argv[6]);
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_t th[MAX_THREADS];
	soak_worker_t *s = calloc((size_t)threads, sizeof(*s));
	int rc = 1, started = 0;
	double t0 = now_s();
	soak_deadline = t0 + seconds;
	for (; s != NULL && started < threads; started++) {
		s[started].w = (worker_t){ .idx = started, .fd = -1 };
		s[started].hist = calloc(SOAK_BUCKETS, sizeof(uint32_t));
		if (s[started].hist == NULL ||
		    pthread_create(&th[started], NULL, soak_loop, &s[started]) != 0)
			break;
	}
	if (s != NULL && started == threads) {
		for (double next = t0 + 10; now_s() < soak_deadline; next += 10) {
			while (now_s() < next && now_s() < soak_deadline) {
				struct timespec d = { 0, 100000000 };
				nanosleep(&d, NULL);
			}
			printf("progress %.0f %lu %lu\n", now_s() - t0, atomic_load(&soak_ops),
			       atomic_load(&soak_errors));
		}
		rc = 0;
	} else {
		fprintf(stderr, "cannot start %d threads\n", threads);
		soak_deadline = 0;
	}
	unsigned long total = 0;
	double max_us = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		if (s[i].w.errors > 0)
			fprintf(stderr, "thread %d: %lu errors (last: %s)\n", i, s[i].w.errors,
			        s[i].w.last_error);
		if (s[i].max_us > max_us)
			max_us = s[i].max_us;
		for (size_t b = 0; b < SOAK_BUCKETS; b++) {
			if (i > 0)
				s[0].hist[b] += s[i].hist[b];
			total += s[i].hist[b];
		}
	}
	double elapsed = now_s() - t0, p[2] = { 0, 0 }, want[2] = { 0.5, 0.99 };
	for (int k = 0; k < 2 && total > 0; k++) {
		unsigned long acc = 0;
		for (size_t b = 0; b < SOAK_BUCKETS; b++)
			if ((acc += s[0].hist[b]) > (unsigned long)(want[k] * (double)(total - 1))) {
				p[k] = (double)b * 10 + 5;
				break;
			}
	}
	if (rc == 0)
		printf("soak %lu %lu %.1f %.0f %.0f %.0f %.0f\n", atomic_load(&soak_ops),
		       atomic_load(&soak_errors), elapsed, (double)atomic_load(&soak_ops) / elapsed,
		       p[0], p[1], max_us);
	for (int i = 0; s != NULL && i < threads; i++)
		free(s[i].hist);
	free(s);
	if (soak_samples != NULL)
		fclose(soak_samples);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--soak") == 0)
		return soak_main(argc, argv);
	if (argc < 10 || argc > 11) {
		fprintf(stderr, "usage: %s SOCKET ENV/NAME ALG CKA_ID_HEX MODULE TOKEN_LABEL "
		        "PIN_SOURCE THREADS SECONDS [PIPELINE]\n", argv[0]);
		return 2;
	}
	sock_path = argv[1];
	const char *keyset = argv[2], *alg = argv[3], *hex = argv[4];
	int threads = atoi(argv[8]);
	double seconds = atof(argv[9]);
	pipeline = argc > 10 ? atoi(argv[10]) : 1;
	if (threads < 1 || threads > MAX_THREADS || seconds <= 0 || pipeline < 1 ||
	    pipeline > MAX_PIPELINE) {
		fprintf(stderr, "bad THREADS (1..%d), SECONDS or PIPELINE (1..%d)\n", MAX_THREADS,
		        MAX_PIPELINE);
		return 2;
	}
	bool rsa = strcmp(alg, "RS256") == 0;
	uint8_t id[64];
	size_t id_len = 0;
	if (bench_raw_parse_id(hex, id, sizeof(id), &id_len) != 0) {
		fprintf(stderr, "bad CKA_ID_HEX\n");
		return 2;
	}
	char req[512];
	int rl = snprintf(req, sizeof(req), "{\"op\":\"sign\",\"keyset\":\"%s\",\"claims\":{\"sub\":"
	                  "\"bench\",\"aud\":\"api.bench\",\"client_id\":\"bench\"},\"ttl\":60}",
	                  keyset);
	frame_len = 4 + (size_t)rl;
	frames = malloc(frame_len * MAX_PIPELINE);
	if (frames == NULL)
		return 1;
	frame = frames;
	frame[0] = (uint8_t)(rl >> 24);
	frame[1] = (uint8_t)(rl >> 16);
	frame[2] = (uint8_t)(rl >> 8);
	frame[3] = (uint8_t)rl;
	memcpy(frame + 4, req, (size_t)rl);
	for (int i = 1; i < MAX_PIPELINE; i++)
		memcpy(frames + (size_t)i * frame_len, frame, frame_len);

	km_token_cfg_t cfg = { .module_path = argv[5], .token_label = argv[6],
	                       .pin_source = argv[7], .sessions = 1 };
	km_token_t *tok = NULL;
	char err[512];
	int rc = 1;
	int fds[MAX_THREADS], bare_fds[MAX_THREADS];
	for (int i = 0; i < threads; i++)
		fds[i] = bare_fds[i] = -1;
	result_t res[N_PATHS] = { { 0 } }, warm = { 0 };
	if (km_token_open(&cfg, &tok, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (bench_raw_open(argv[5], argv[6], id, id_len, rsa, threads, &peer) != 0)
		goto out;
	for (int i = 0; i < threads; i++)
		if ((fds[i] = connect_daemon(sock_path)) < 0) {
			fprintf(stderr, "cannot connect to %s\n", sock_path);
			goto out;
		}
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(fds[0], SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		server_pid[PATH_KEYMGRD] = cred.pid;
	/* keymgrd's warm-up tells the size of its replies, which the bare server copies. */
	const char *const tok_args[] = { argv[5], argv[6], argv[7] };
	if (run_round(PATH_KEYMGRD, threads, 0.3, fds, &warm) != 0 ||
	    start_bare(tok_args, alg, hex, threads, bare_fds) != 0 ||
	    run_round(PATH_BARE, threads, 0.3, bare_fds, &warm) != 0 ||
	    run_round(PATH_RAW, threads, 0.3, NULL, &warm) != 0)
		goto out;
	int rounds = seconds < 0.5 ? 1 : (int)(seconds / 0.25);
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < N_PATHS; k++) {
			path_t path = (path_t)((r + k) % N_PATHS);
			if (run_round(path, threads, seconds / rounds,
			              path == PATH_KEYMGRD ? fds : path == PATH_BARE ? bare_fds : NULL,
			              &res[path]) != 0)
				goto out;
		}
	for (int p = 0; p < N_PATHS; p++)
		printf("%s %d %s %.0f %.0f %.0f\n", alg, threads, path_names[p],
		       (double)res[p].ops / res[p].elapsed, pct(&res[p], 0.5), pct(&res[p], 0.99));
	printf("%s %d ratio %.3f\n", alg, threads,
	       ((double)res[PATH_KEYMGRD].ops / res[PATH_KEYMGRD].elapsed) /
	       ((double)res[PATH_RAW].ops / res[PATH_RAW].elapsed));
	for (int p = 0; p < N_PATHS; p++)
		printf("%s %d exact %s %lu %.17g\n", alg, threads, path_names[p], res[p].ops,
		       res[p].elapsed);
	/* CPU microseconds per request: keymgrd, this client on the keymgrd path, raw; then the
	 * bare server, and this client on the bare path. */
	double per[N_PATHS][2];
	for (int p = 0; p < N_PATHS; p++) {
		per[p][0] = res[p].ops ? res[p].cpu_daemon * 1e6 / (double)res[p].ops : 0;
		per[p][1] = res[p].ops ? res[p].cpu_self * 1e6 / (double)res[p].ops : 0;
	}
	printf("%s %d cpu %.1f %.1f %.1f %.1f %.1f\n", alg, threads, per[PATH_KEYMGRD][0],
	       per[PATH_KEYMGRD][1], per[PATH_RAW][1], per[PATH_BARE][0], per[PATH_BARE][1]);
	rc = 0;
out:
	for (int i = 0; i < threads; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		if (bare_fds[i] >= 0)
			close(bare_fds[i]);
	}
	if (server_pid[PATH_BARE] > 0) {
		int st = 0;   /* it exits once its connections are closed */
		bool killed = rc != 0;   /* it may still wait for them */
		if (killed)
			kill(server_pid[PATH_BARE], SIGTERM);
		if (waitpid(server_pid[PATH_BARE], &st, 0) > 0 && !killed &&
		    (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
			fprintf(stderr, "bench-sign-bare failed\n");
			rc = 1;
		}
	}
	for (int p = 0; p < N_PATHS; p++)
		free(res[p].lat);
	free(warm.lat);
	bench_raw_free(peer);
	km_token_free(tok);
	free(frames);
	return rc;
}
