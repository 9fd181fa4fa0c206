/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgrd's side of the listener (front.h): binding the sockets, starting keymgrd-listener,
 * keeping what it serves so that a new one gets it all, reading what it reports, restarting it.
 *
 * A listener goes through: spawned (CONFIG sent) -> READY received (every document, the
 * health, the metrics text and the listed names sent, then LISTEN once keymgrd listens) ->
 * serving, until its channel closes or fails. Then it is reaped, its end logged, and another
 * one spawned: at once after one that served a minute or more, else after 1, 2, 4 ... 30 s.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/daemon/front.h"
#include "keymgr/daemon/log.h"
#include "keymgr/front/channel.h"
#include "keymgr/http/http_verifiers.h"

#ifndef KEYMGR_LISTENER_NAME
#define KEYMGR_LISTENER_NAME "keymgrd-listener"
#endif
#ifndef KEYMGR_LIBEXECDIR
#define KEYMGR_LIBEXECDIR "/usr/libexec"
#endif

#define READY_TIMEOUT_S 10     /* a listener that is not READY by then is killed */
#define IO_TIMEOUT_MS 5000     /* a blocked channel for this long means a stuck listener */
#define STABLE_S 60            /* a listener that served this long restarts at once */
#define RESTART_MAX_S 30
#define CHILD_FD_CHANNEL 3
#define CHILD_FD_LISTEN 4
#define CHILD_FD_ADMIN 5
#define FD_HIGH 16             /* sources of the child's descriptors are moved above this */

extern char **environ;

typedef struct {
	char path[KM_HTTP_PATH_MAX + 1];
	char *body;
	size_t len;
	int64_t serial;
	unsigned max_age;
	int64_t last_modified;
} doc_t;

typedef enum { F_NONE, F_STARTING, F_SERVING } fstate_t;

struct kd_front {
	/* configuration (strings copied) */
	char listen_addr[64], admin_addr[64], user[KM_CHAN_NAME_MAX + 1];
	km_chan_config_t ccfg;
	char exe[PATH_MAX];
	int pub_fd, admin_fd;
	uint16_t port, admin_port;

	/* the listener running now */
	fstate_t state;
	pid_t pid;
	int ch;
	bool confined;
	int64_t spawned_at;
	char last_stop[512];       /* why the last one stopped, and how */
	bool supervising;          /* started: restarts are planned and logged */

	/* what every listener gets */
	doc_t *docs;               /* sorted by path */
	size_t n_docs, cap_docs;
	bool health_ok;
	char *health_reason;
	char *metrics;
	char **listed;
	size_t n_listed;
	bool listening;

	/* what listeners reported */
	km_http_vtab_t *vtab;
	km_http_verifier_t *fresh; /* named rows not yet taken (kd_front_take_pickups) */
	size_t n_fresh, cap_fresh;

	/* supervision */
	unsigned failures;         /* consecutive short-lived listeners */
	int64_t restart_at;
	uint64_t restarts;

	uint8_t *rbuf;
	size_t rcap;
	km_chan_buf_t out;
};

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* ---------------------------------------------------------------- documents */

static size_t doc_find(const kd_front_t *f, const char *path, bool *found)
{
	size_t lo = 0, hi = f->n_docs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(f->docs[mid].path, path);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

/* ---------------------------------------------------------------- the channel */

static void stop_child(kd_front_t *f, const char *why);

/* Sends the frame in f->out to a running listener; a failure ends that listener. */
static int send_out(kd_front_t *f)
{
	if (f->state == F_NONE)
		return KM_EOK;   /* kept; the next listener gets it */
	if (f->out.oom)
		return KM_ENOMEM;
	if (km_chan_send(f->ch, &f->out) != KM_EOK) {
		char why[128];
		snprintf(why, sizeof(why), "the channel failed: %s", strerror(errno));
		stop_child(f, why);
	}
	return KM_EOK;
}

static int send_doc(kd_front_t *f, const doc_t *d)
{
	km_chan_doc_t cd = { .serial = d->serial, .max_age = d->max_age,
	                     .last_modified = d->last_modified, .body = d->body, .len = d->len };
	memcpy(cd.path, d->path, sizeof(cd.path));
	km_chan_publish(&f->out, &cd);
	return send_out(f);
}

static int send_health(kd_front_t *f)
{
	km_chan_health(&f->out, f->health_ok);
	return send_out(f);
}

static int send_metrics(kd_front_t *f)
{
	if (f->metrics == NULL)
		return KM_EOK;
	km_chan_text(&f->out, KM_CHAN_METRICS, f->metrics, strlen(f->metrics));
	return send_out(f);
}

static int send_listed(kd_front_t *f)
{
	km_chan_listed(&f->out, (const char *const *)f->listed, f->n_listed);
	return send_out(f);
}

static int send_listen(kd_front_t *f)
{
	km_chan_begin(&f->out, KM_CHAN_LISTEN);
	return send_out(f);
}

/* Everything a new listener needs, after its READY. */
static void replay(kd_front_t *f)
{
	for (size_t i = 0; i < f->n_docs && f->state == F_SERVING; i++)
		send_doc(f, &f->docs[i]);
	if (f->state == F_SERVING)
		send_health(f);
	if (f->state == F_SERVING)
		send_metrics(f);
	if (f->state == F_SERVING)
		send_listed(f);
	if (f->state == F_SERVING && f->listening)
		send_listen(f);
}

/* ---------------------------------------------------------------- the process */

static void set_timeouts(int fd)
{
	struct timeval tv = { IO_TIMEOUT_MS / 1000, (IO_TIMEOUT_MS % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int sz = 1 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

/* A close-on-exec copy of fd above FD_HIGH (so that the child's dup2s never overlap a
 * source), the original closed. -1 on failure (fd closed too). */
static int move_high(int fd)
{
	int h = fcntl(fd, F_DUPFD_CLOEXEC, FD_HIGH);
	close(fd);
	return h;
}

/* The variables a listener inherits: none of keymgrd's (a PIN could be in one), only what
 * the C library and sanitizers of a test build read. */
static char **child_env(void)
{
	static const char *const keep[] = {
		"TZ=", "LD_PRELOAD=", "ASAN_OPTIONS=", "UBSAN_OPTIONS=", "LSAN_OPTIONS=",
		"MALLOC_PERTURB_=", "MALLOC_CHECK_=",
	};
	size_t n = 0;
	for (char **e = environ; *e != NULL; e++)
		n++;
	char **env = calloc(n + 1, sizeof(*env));
	if (env == NULL)
		return NULL;
	size_t k = 0;
	for (char **e = environ; *e != NULL; e++)
		for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
			if (strncmp(*e, keep[i], strlen(keep[i])) == 0) {
				env[k++] = *e;
				break;
			}
	return env;
}

static int spawn(kd_front_t *f, char *err, size_t errlen)
{
	int sv[2] = { -1, -1 };
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return KM_EIO;
	}
	int child_ch = move_high(sv[1]);
	if (child_ch < 0) {
		close(sv[0]);
		snprintf(err, errlen, "fcntl: %s", strerror(errno));
		return KM_EIO;
	}
	char chs[8], ls[8], as[8];
	snprintf(chs, sizeof(chs), "%d", CHILD_FD_CHANNEL);
	snprintf(ls, sizeof(ls), "%d", CHILD_FD_LISTEN);
	snprintf(as, sizeof(as), "%d", CHILD_FD_ADMIN);
	char *argv[] = { f->exe, "--channel", chs, "--listen", ls,
	                 f->admin_fd >= 0 ? "--admin" : NULL, as, NULL };

	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, deflt;
	sigemptyset(&none);
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGPIPE);
	sigaddset(&deflt, SIGHUP);
	sigaddset(&deflt, SIGTERM);
	sigaddset(&deflt, SIGINT);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	int rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (rc == 0)
		rc = posix_spawn_file_actions_adddup2(&fa, child_ch, CHILD_FD_CHANNEL);
	if (rc == 0)
		rc = posix_spawn_file_actions_adddup2(&fa, f->pub_fd, CHILD_FD_LISTEN);
	if (rc == 0 && f->admin_fd >= 0)
		rc = posix_spawn_file_actions_adddup2(&fa, f->admin_fd, CHILD_FD_ADMIN);
	if (rc == 0)
		rc = posix_spawn_file_actions_addclosefrom_np(&fa, CHILD_FD_ADMIN + 1);
	if (rc == 0)
		rc = posix_spawnattr_setsigmask(&at, &none);
	if (rc == 0)
		rc = posix_spawnattr_setsigdefault(&at, &deflt);
	if (rc == 0)
		rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	char **env = rc == 0 ? child_env() : NULL;
	pid_t pid = 0;
	if (rc == 0 && env == NULL)
		rc = ENOMEM;
	if (rc == 0)
		rc = posix_spawn(&pid, f->exe, &fa, &at, argv, env);
	free(env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(child_ch);
	if (rc != 0) {
		close(sv[0]);
		snprintf(err, errlen, "cannot start %s: %s", f->exe, strerror(rc));
		return KM_EIO;
	}
	f->pid = pid;
	f->ch = sv[0];
	f->state = F_STARTING;
	f->confined = false;
	f->spawned_at = now_s();
	set_timeouts(f->ch);
	km_chan_config(&f->out, &f->ccfg);
	if (f->out.oom || km_chan_send(f->ch, &f->out) != KM_EOK) {
		snprintf(err, errlen, "cannot send the listener its configuration: %s",
		         strerror(errno));
		stop_child(f, NULL);
		return KM_EIO;
	}
	return KM_EOK;
}

/* How a child ended, for the log. */
static void describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS)
		snprintf(buf, len, "killed by SIGSYS: a system call outside its seccomp allow-list");
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "ended (status 0x%x)", (unsigned)st);
}

/*
 * Ends the current listener: closes the channel, kills it unless it is gone already, reaps
 * it, logs why (why NULL: stopping on purpose, nothing logged) and plans the next one.
 */
static void stop_child(kd_front_t *f, const char *why)
{
	if (f->state == F_NONE)
		return;
	close(f->ch);
	f->ch = -1;
	int st = 0;
	pid_t r = waitpid(f->pid, &st, WNOHANG);
	if (r == 0) {
		/* It closed the channel or broke it without exiting (or is exiting right now):
		 * give it a moment, then make sure. */
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		r = waitpid(f->pid, &st, WNOHANG);
		if (r == 0) {
			kill(f->pid, SIGKILL);
			r = waitpid(f->pid, &st, 0);
		}
	}
	char how[160] = "reaped elsewhere";
	if (r == f->pid)
		describe_status(st, how, sizeof(how));
	snprintf(f->last_stop, sizeof(f->last_stop), "%s (%s)", why ? why : "stopped", how);
	int64_t now = now_s();
	bool stable = f->state == F_SERVING && now - f->spawned_at >= STABLE_S;
	f->state = F_NONE;
	f->pid = 0;
	f->confined = false;
	if (why == NULL || !f->supervising)
		return;
	f->failures = stable ? 0 : f->failures + 1;
	int64_t delay = 0;
	if (f->failures > 1) {
		delay = (int64_t)1 << (f->failures - 2 < 5 ? f->failures - 2 : 5);
		if (delay > RESTART_MAX_S)
			delay = RESTART_MAX_S;
	}
	f->restart_at = now + delay;
	char in[24];
	snprintf(in, sizeof(in), "%lld", (long long)delay);
	kd_log(KD_LOG_ERROR, "listener-stopped", "reason", why, "status", how, "restart_in", in,
	       NULL);
}

/* ---------------------------------------------------------------- reports */

typedef struct {
	kd_front_t *f;
	size_t kept, refused;
} pickup_ctx_t;

/* A row of a listed verifier name (a policy's activate_when_seen_by), kept for
 * kd_front_take_pickups(): only those, so that made-up names cannot grow the store's table.
 * Bounded: beyond FRESH_MAX rows not taken yet, a row updates its own earlier copy or is
 * dropped (the verifier table has it anyway). */
#define FRESH_MAX 4096
static void keep_fresh(kd_front_t *f, const km_http_verifier_t *v)
{
	bool listed = false;
	for (size_t i = 0; i < f->n_listed && !listed; i++)
		listed = strcmp(f->listed[i], v->id) == 0;
	if (!listed)
		return;
	for (size_t i = 0; i < f->n_fresh; i++)
		if (strcmp(f->fresh[i].id, v->id) == 0 && strcmp(f->fresh[i].path, v->path) == 0) {
			if (v->serial > f->fresh[i].serial)
				f->fresh[i] = *v;
			return;
		}
	if (f->n_fresh == f->cap_fresh) {
		size_t cap = f->cap_fresh ? 2 * f->cap_fresh : 16;
		if (cap > FRESH_MAX || f->n_fresh >= FRESH_MAX)
			return;
		km_http_verifier_t *n = realloc(f->fresh, cap * sizeof(*n));
		if (n == NULL)
			return;
		f->fresh = n;
		f->cap_fresh = cap;
	}
	f->fresh[f->n_fresh++] = *v;
}

/* A row is believed only for a path served, at a serial that was served there. */
static void on_pickup(void *ctx, const km_http_verifier_t *v)
{
	pickup_ctx_t *c = ctx;
	bool found;
	size_t i = doc_find(c->f, v->path, &found);
	if (!found || v->serial > c->f->docs[i].serial || v->serial < 0) {
		c->refused++;
		return;
	}
	km_http_vtab_merge(c->f->vtab, v);
	c->kept++;
	if (v->named)
		keep_fresh(c->f, v);
}

void kd_front_process(kd_front_t *f)
{
	if (f == NULL || f->state == F_NONE)
		return;
	/* Everything that is there now, without blocking for more. */
	for (;;) {
		struct pollfd p = { .fd = f->ch, .events = POLLIN };
		if (poll(&p, 1, 0) <= 0)
			return;
		km_chan_msg_t m;
		int r = km_chan_recv(f->ch, &f->rbuf, &f->rcap, &m);
		if (r == KM_ENOENT) {
			stop_child(f, f->state == F_STARTING ? "it stopped before it was ready" :
			           "it closed the channel");
			return;
		}
		if (r != KM_EOK) {
			char why[128];
			snprintf(why, sizeof(why), "reading the channel: %s", km_strerror(r));
			stop_child(f, why);
			return;
		}
		if (m.type == KM_CHAN_READY && f->state == F_STARTING) {
			f->confined = km_chan_get_u8(&m) != 0;
			uint32_t uid = km_chan_get_u32(&m);
			if (m.bad || m.pos != m.len) {
				stop_child(f, "a malformed READY");
				return;
			}
			f->state = F_SERVING;
			char pid[16], uids[16];
			snprintf(pid, sizeof(pid), "%ld", (long)f->pid);
			snprintf(uids, sizeof(uids), "%lu", (unsigned long)uid);
			/* keymgrd not running as root (the shipped unit's User=keymgr) cannot give
			 * it another user: it shares keymgrd's uid, and seccomp keeps it from
			 * opening any file (docs/architecture.md, "The listener") */
			kd_log(KD_LOG_INFO, "listener-ready", "pid", pid, "uid", uids, "user",
			       geteuid() == 0 ? f->user : "keymgrd's (keymgrd is not root)", "seccomp",
			       f->confined ? "on" : "off (built without it)", NULL);
			replay(f);
		} else if (m.type == KM_CHAN_PICKUP && f->state == F_SERVING) {
			pickup_ctx_t c = { .f = f };
			if (km_chan_get_pickup(&m, on_pickup, &c) != KM_EOK) {
				stop_child(f, "a malformed PICKUP");
				return;
			}
			if (c.refused > 0) {
				char n[24];
				snprintf(n, sizeof(n), "%zu", c.refused);
				kd_log(KD_LOG_WARNING, "listener-pickup-refused", "rows", n, "reason",
				       "a path or serial keymgrd never served", NULL);
			}
		} else if (m.type == KM_CHAN_FAILED) {
			char why[512];
			km_chan_get_str(&m, why, sizeof(why) - 1);
			stop_child(f, m.bad ? "it failed (a malformed reason)" : why);
			return;
		} else {
			char why[64];
			snprintf(why, sizeof(why), "an unexpected frame (type %u)", (unsigned)m.type);
			stop_child(f, why);
			return;
		}
	}
}

int64_t kd_front_tick(kd_front_t *f, int64_t now)
{
	if (f == NULL)
		return INT64_MAX;
	if (f->state == F_STARTING) {
		if (now - f->spawned_at < READY_TIMEOUT_S)
			return f->spawned_at + READY_TIMEOUT_S;
		stop_child(f, "not ready in time");
	}
	if (f->state != F_NONE)
		return INT64_MAX;
	if (now < f->restart_at)
		return f->restart_at;
	char err[512];
	f->restarts++;
	if (spawn(f, err, sizeof(err)) != KM_EOK) {
		f->failures++;
		int64_t delay = f->failures > 5 ? RESTART_MAX_S : (int64_t)1 << (f->failures - 1);
		f->restart_at = now + (delay > RESTART_MAX_S ? RESTART_MAX_S : delay);
		kd_log(KD_LOG_ERROR, "listener-start", "result", "failed", "error", err, NULL);
		return f->restart_at;
	}
	char pid[16], count[24];
	snprintf(pid, sizeof(pid), "%ld", (long)f->pid);
	snprintf(count, sizeof(count), "%llu", (unsigned long long)f->restarts);
	kd_log(KD_LOG_INFO, "listener-restart", "pid", pid, "restarts", count, NULL);
	return f->spawned_at + READY_TIMEOUT_S;
}

/* ---------------------------------------------------------------- life */

/* The listener's executable: next to keymgrd's own (a build tree, or an installation that
 * keeps them together), else in the configured libexecdir. */
static int find_exe(kd_front_t *f, char *err, size_t errlen)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash != NULL) {
			slash[1] = '\0';
			int w = snprintf(f->exe, sizeof(f->exe), "%s%s", self, KEYMGR_LISTENER_NAME);
			if (w > 0 && (size_t)w < sizeof(f->exe) && access(f->exe, X_OK) == 0)
				return KM_EOK;
		}
	}
	snprintf(f->exe, sizeof(f->exe), "%s/%s", KEYMGR_LIBEXECDIR, KEYMGR_LISTENER_NAME);
	if (access(f->exe, X_OK) == 0)
		return KM_EOK;
	snprintf(err, errlen, "the listener program %s is missing (%s)", f->exe, strerror(errno));
	return KM_EIO;
}

static int copy_str(char *dst, size_t len, const char *src, const char *what, char *err,
                    size_t errlen)
{
	if (src == NULL)
		src = "";
	if (strlen(src) >= len) {
		snprintf(err, errlen, "%s too long", what);
		return KM_EINVAL;
	}
	memcpy(dst, src, strlen(src) + 1);
	return KM_EOK;
}

int kd_front_start(const kd_front_cfg_t *cfg, kd_front_t **ret, char *err, size_t errlen)
{
	*ret = NULL;
	kd_front_t *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return KM_ENOMEM;
	f->pub_fd = f->admin_fd = f->ch = -1;
	f->health_ok = false;
	int r;
	if ((r = copy_str(f->listen_addr, sizeof(f->listen_addr), cfg->listen_addr, "listen",
	                  err, errlen)) != KM_EOK ||
	    (r = copy_str(f->admin_addr, sizeof(f->admin_addr), cfg->admin_addr, "admin_listen",
	                  err, errlen)) != KM_EOK ||
	    (r = copy_str(f->user, sizeof(f->user), cfg->user, "listener_user", err, errlen)) !=
	    KM_EOK)
		goto fail;
	f->ccfg = (km_chan_config_t){
		.threads = cfg->threads, .conn_limit = cfg->conn_limit,
		.per_ip_limit = cfg->per_ip_limit, .conn_timeout = cfg->conn_timeout,
		.rate_limit = cfg->rate_limit, .rate_burst = cfg->rate_burst,
		.max_header_size = cfg->max_header_size, .max_verifiers = cfg->max_verifiers,
		.admin = cfg->admin,
	};
	memcpy(f->ccfg.user, f->user, sizeof(f->ccfg.user));
	if ((r = km_http_vtab_create(cfg->max_verifiers ? cfg->max_verifiers : 10000, &f->vtab)) !=
	    KM_EOK)
		goto fail;
	if ((r = find_exe(f, err, errlen)) != KM_EOK)
		goto fail;
	/* The listener's descriptors: its connections and a reserve, within the hard limit it
	 * inherits from us. Raised here if we may (CAP_SYS_RESOURCE), else the configuration
	 * does not fit and is refused, rather than a listener failing on EMFILE under load. */
	struct rlimit rl;
	unsigned conns = cfg->conn_limit ? cfg->conn_limit : KM_CHAN_DEFAULT_CONNECTIONS;
	rlim_t need = (rlim_t)conns + KM_CHAN_FD_RESERVE;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
	    need > rl.rlim_max && setrlimit(RLIMIT_NOFILE, &(struct rlimit){ need, need }) != 0) {
		snprintf(err, errlen, "daemon.connection_limit %u needs %u descriptors in the "
		         "listener, more than the hard limit of %llu (RLIMIT_NOFILE; systemd: "
		         "LimitNOFILE=): lower the one or raise the other", conns,
		         conns + KM_CHAN_FD_RESERVE, (unsigned long long)rl.rlim_max);
		r = KM_EINVAL;
		goto fail;
	}
	int fd = -1;
	if ((r = km_http_bind(f->listen_addr, cfg->port, &fd, &f->port, err, errlen)) != KM_EOK)
		goto fail;
	if ((f->pub_fd = move_high(fd)) < 0) {
		snprintf(err, errlen, "fcntl: %s", strerror(errno));
		r = KM_EIO;
		goto fail;
	}
	if (cfg->admin) {
		char aerr[512];
		if ((r = km_http_bind(f->admin_addr, cfg->admin_port, &fd, &f->admin_port, aerr,
		                      sizeof(aerr))) != KM_EOK) {
			snprintf(err, errlen, "admin: %s", aerr);
			goto fail;
		}
		if ((f->admin_fd = move_high(fd)) < 0) {
			snprintf(err, errlen, "fcntl: %s", strerror(errno));
			r = KM_EIO;
			goto fail;
		}
	}
	if ((r = spawn(f, err, errlen)) != KM_EOK)
		goto fail;
	/* Wait for READY (or the reason it gave up). */
	int64_t deadline = f->spawned_at + READY_TIMEOUT_S;
	while (f->state == F_STARTING) {
		int64_t left = deadline - now_s();
		struct pollfd p = { .fd = f->ch, .events = POLLIN };
		int n = left > 0 ? poll(&p, 1, (int)left * 1000) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			stop_child(f, "not ready in time");
			break;
		}
		kd_front_process(f);
	}
	if (f->state != F_SERVING) {
		snprintf(err, errlen, "the listener did not start: %s", f->last_stop);
		r = KM_EIO;
		goto fail;
	}
	f->supervising = true;
	*ret = f;
	return KM_EOK;
fail:
	kd_front_free(f);
	return r;
}

void kd_front_free(kd_front_t *f)
{
	if (f == NULL)
		return;
	if (f->state != F_NONE) {
		/* Closing the channel asks it to stop; SIGTERM if it does not, SIGKILL last. */
		close(f->ch);
		f->ch = -1;
		int st;
		pid_t r = 0;
		for (int i = 0; i < 100 && (r = waitpid(f->pid, &st, WNOHANG)) == 0; i++) {
			if (i == 20)
				kill(f->pid, SIGTERM);
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		if (r == 0) {
			kill(f->pid, SIGKILL);
			waitpid(f->pid, &st, 0);
		}
	}
	if (f->pub_fd >= 0)
		close(f->pub_fd);
	if (f->admin_fd >= 0)
		close(f->admin_fd);
	for (size_t i = 0; i < f->n_docs; i++)
		free(f->docs[i].body);
	free(f->docs);
	free(f->health_reason);
	free(f->metrics);
	for (size_t i = 0; i < f->n_listed; i++)
		free(f->listed[i]);
	free(f->listed);
	km_http_vtab_free(f->vtab);
	free(f->fresh);
	free(f->rbuf);
	km_chan_buf_free(&f->out);
	free(f);
}

/* ---------------------------------------------------------------- what it serves */

int kd_front_publish(kd_front_t *f, const char *path, const char *body, size_t len,
                     int64_t serial, unsigned max_age, time_t last_modified)
{
	if (path == NULL || path[0] != '/' || strlen(path) > KM_HTTP_PATH_MAX || body == NULL ||
	    len > KM_CHAN_FRAME_MAX - KM_HTTP_PATH_MAX - 64)
		return KM_EINVAL;
	bool found;
	size_t i = doc_find(f, path, &found);
	char *copy = malloc(len ? len : 1);
	if (copy == NULL)
		return KM_ENOMEM;
	memcpy(copy, body, len);
	if (!found) {
		if (f->n_docs == f->cap_docs) {
			size_t cap = f->cap_docs ? f->cap_docs * 2 : 16;
			doc_t *d = realloc(f->docs, cap * sizeof(*d));
			if (d == NULL) {
				free(copy);
				return KM_ENOMEM;
			}
			f->docs = d;
			f->cap_docs = cap;
		}
		memmove(&f->docs[i + 1], &f->docs[i], (f->n_docs - i) * sizeof(*f->docs));
		f->n_docs++;
		memset(&f->docs[i], 0, sizeof(f->docs[i]));
		memcpy(f->docs[i].path, path, strlen(path) + 1);
	}
	doc_t *d = &f->docs[i];
	free(d->body);
	d->body = copy;
	d->len = len;
	d->serial = serial;
	d->max_age = max_age;
	d->last_modified = (int64_t)last_modified;
	return f->state == F_SERVING ? send_doc(f, d) : KM_EOK;
}

int kd_front_unpublish(kd_front_t *f, const char *path)
{
	bool found;
	size_t i = doc_find(f, path, &found);
	if (!found)
		return KM_ENOENT;
	free(f->docs[i].body);
	memmove(&f->docs[i], &f->docs[i + 1], (f->n_docs - i - 1) * sizeof(*f->docs));
	f->n_docs--;
	if (f->state != F_SERVING)
		return KM_EOK;
	km_chan_path(&f->out, KM_CHAN_UNPUBLISH, path);
	return send_out(f);
}

int kd_front_set_health(kd_front_t *f, bool ok, const char *reason)
{
	char *r = NULL;
	if (!ok && reason != NULL && (r = strdup(reason)) == NULL)
		return KM_ENOMEM;
	free(f->health_reason);
	f->health_reason = r;
	bool changed = ok != f->health_ok;
	f->health_ok = ok;
	return changed && f->state == F_SERVING ? send_health(f) : KM_EOK;
}

const char *kd_front_health_reason(const kd_front_t *f)
{
	return f->health_reason;
}

int kd_front_set_metrics_text(kd_front_t *f, const char *text)
{
	char *t = strdup(text);
	if (t == NULL)
		return KM_ENOMEM;
	free(f->metrics);
	f->metrics = t;
	return f->state == F_SERVING ? send_metrics(f) : KM_EOK;
}

int kd_front_set_listed_verifiers(kd_front_t *f, const char *const *names, size_t n)
{
	char **l = n ? calloc(n, sizeof(*l)) : NULL;
	if (n && l == NULL)
		return KM_ENOMEM;
	for (size_t i = 0; i < n; i++)
		if ((l[i] = strdup(names[i])) == NULL) {
			for (size_t j = 0; j < i; j++)
				free(l[j]);
			free(l);
			return KM_ENOMEM;
		}
	int r = km_http_vtab_set_listed(f->vtab, names, n);
	if (r != KM_EOK) {
		for (size_t i = 0; i < n; i++)
			free(l[i]);
		free(l);
		return r;
	}
	for (size_t i = 0; i < f->n_listed; i++)
		free(f->listed[i]);
	free(f->listed);
	f->listed = l;
	f->n_listed = n;
	return f->state == F_SERVING ? send_listed(f) : KM_EOK;
}

int kd_front_listen(kd_front_t *f, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	f->listening = true;
	return f->state == F_SERVING ? send_listen(f) : KM_EOK;
}

int kd_front_verifiers(kd_front_t *f, const char *path, km_http_verifier_t **ret,
                       size_t *count)
{
	return km_http_vtab_snapshot(f->vtab, path, ret, count);
}

size_t kd_front_take_pickups(kd_front_t *f, km_http_verifier_t **ret)
{
	size_t n = f->n_fresh;
	*ret = f->fresh;
	f->fresh = NULL;
	f->n_fresh = f->cap_fresh = 0;
	return n;
}

/* ---------------------------------------------------------------- facts */

uint16_t kd_front_port(const kd_front_t *f)
{
	return f->port;
}

uint16_t kd_front_admin_port(const kd_front_t *f)
{
	return f->admin_fd >= 0 ? f->admin_port : 0;
}

pid_t kd_front_pid(const kd_front_t *f)
{
	return f->state == F_NONE ? 0 : f->pid;
}

bool kd_front_confined(const kd_front_t *f)
{
	return f->state == F_SERVING && f->confined;
}

int kd_front_fd(const kd_front_t *f)
{
	return f != NULL && f->state != F_NONE ? f->ch : -1;
}

uint64_t kd_front_restarts(const kd_front_t *f)
{
	return f->restarts;
}
