/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgrd: rotates keys on schedule, serves the JWKS over HTTP and proves propagation.
 * See docs/keymgrd.8. This file: options, startup, the main loop and shutdown.
 *
 * The loop sleeps (poll(2)) until the earliest of: a key set's next wake-up from the planner,
 * a retry after a failure, the next store check (daemon.poll_interval), a signal, or a
 * control-socket request. Each wake-up runs one pass (pass.c): it reads the stores
 * (publishing changed documents), applies what is due, and publishes again what that changed.
 *
 * The modules of keymgr/daemon/, each with its header:
 *   state.c      the daemon's state (state.h): environments and key sets; loading, reloading
 *   pass.c       one pass over the environments; reload.c: reloading the configuration
 *   scheduler.c  applying due actions through km_apply, propagation gating (token_check.c:
 *                its token probe; backoff.c: retry delays)
 *   publisher.c  rendering the JWKS documents, handing them to the listener, snapshot files,
 *                the static tree (hook.c: http.static_hook, run after each write of it)
 *   front.c      the listener process: starting, feeding and restarting it
 *   control.c    the control socket (docs/control-protocol.md): status, reload, tick, keys
 *   ctl_server.c its connections: acceptor and per-connection threads, the main-thread queue
 *                (ctl_limits.c: per-peer limits and frame deadlines)
 *   signer.c     the signing service: per environment a signing token and the key sets'
 *                resolved keys and signers, swapped under a rwlock (denials.c: repeated
 *                denials folded)
 *   authz.c      the peer's identity (SO_PEERCRED, SO_PEERGROUPS) and the signers' lists
 *   status.c     the status reply; metrics.c: the /metrics text and /healthz state
 *                (sign_stats.c: the signing figures per key set)
 *   startup.c    reconciliation before the first pass; harden.c: no core dumps, no ptrace
 *   log.c, signals.c, notify.c   the log lines, signals, sd_notify
 * The control protocol's framing, shared with the `keymgr` client, is in keymgr/control/.
 *
 * HTTP is served by another process, keymgrd-listener (front.c, keymgr/front/), which holds
 * no PIN, token or store: the publisher's documents go to it over a channel.
 *
 * Threads: the scheduler, the publisher, the stores, the scheduler's token handles and the
 * listener's channel belong to the main thread. Control connections run on their own threads: they sign (signer.c: its own token
 * handles and data, under its rwlock) and hand every other request to the main thread.
 */
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/common/suggest.h"
#include "keymgr/daemon/control.h"
#include "keymgr/daemon/ctl_server.h"
#include "keymgr/daemon/harden.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/metrics.h"
#include "keymgr/daemon/notify.h"
#include "keymgr/daemon/pass.h"
#include "keymgr/daemon/pickups.h"
#include "keymgr/daemon/publisher.h"
#include "keymgr/daemon/reload.h"
#include "keymgr/daemon/scheduler.h"
#include "keymgr/daemon/signals.h"
#include "keymgr/daemon/signer.h"
#include "keymgr/daemon/startup.h"
#include "keymgr/daemon/state.h"

#ifndef KEYMGR_VERSION
#define KEYMGR_VERSION "unknown"
#endif

static const char usage[] =
	"Usage: keymgrd [-c FILE] [--env NAME]... [--listen ADDR] [--port N] [--admin-port N]\n"
	"               [--control-socket PATH] [--foreground] [--verbose]\n"
	"\n"
	"Rotates the keys of the configured environments on schedule (the planner's actions,\n"
	"applied as `keymgr apply` does), serves their JWKS over HTTP, and records which\n"
	"verifiers fetched which version. Runs in the foreground (systemd Type=notify).\n"
	"HTTP is served by a separate confined process, keymgrd-listener, which keymgrd\n"
	"starts and restarts; it holds no PIN, token or store.\n"
	"  -c, --config FILE        configuration (default: $KEYMGR_CONFIG, then\n"
	"                           /etc/keymgr/keymgr.yaml)\n"
	"  -e, --env NAME           serve only this environment (repeat for more; default:\n"
	"                           every environment of the configuration)\n"
	"  -l, --listen ADDR        HTTP address (default: daemon.listen, 127.0.0.1)\n"
	"  -p, --port N             HTTP port, 0 for any free port (default: daemon.port)\n"
	"  -a, --admin-port N       port of the admin socket (/metrics, /healthz) on\n"
	"                           daemon.admin_listen, 0 for any free port (default:\n"
	"                           daemon.admin_port; none when neither is set)\n"
	"  -s, --control-socket P   control socket (default: daemon.control_socket)\n"
	"  -f, --foreground         accepted for clarity: keymgrd never forks\n"
	"  -v, --verbose            also log debug events (each action as it starts)\n"
	"  -h, --help, -V, --version\n"
	"Signals: SIGHUP reloads the configuration (a bad one is refused and the running one\n"
	"kept); SIGTERM/SIGINT finish the action in flight and exit 0.\n"
	"Exit status: 0 after SIGTERM, 1 startup failure, 2 usage error.\n";

/*
 * Says which option getopt_long refused (opterr is 0) and returns 2. The option is named as
 * typed, without any "=value" (it could be a secret), with the closest known one.
 */
static int bad_option(const char *arg, const struct option *opts)
{
	/* optopt: 0 for an unknown or ambiguous long option, its letter for a long option given
	 * a value it does not take, the character of an unknown short option. */
	if (arg != NULL && strncmp(arg, "--", 2) == 0 &&
	    (optopt == 0 || strchr(arg, '=') != NULL)) {
		char msg[640];
		km_suggest_option(arg, opts, /* hidden_val= */ 0, msg, sizeof(msg));
		fprintf(stderr, "keymgrd: %s\n", msg);
	} else {
		fprintf(stderr, "keymgrd: unknown option '-%c'\n",
		        optopt > 0x20 && optopt < 0x7f ? optopt : '?');
	}
	fprintf(stderr, "Try 'keymgrd --help'.\n");
	return 2;
}

static int parse_args(kd_daemon_t *d, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "env", required_argument, NULL, 'e' },
		{ "listen", required_argument, NULL, 'l' },
		{ "port", required_argument, NULL, 'p' },
		{ "admin-port", required_argument, NULL, 'a' },
		{ "control-socket", required_argument, NULL, 's' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:e:l:p:a:s:fvhV", opts, NULL)) != -1) {
		char *end;
		long v;
		switch (c) {
		case 'c': d->config_arg = optarg; break;
		case 'e':
			if (!km_name_env_valid(optarg)) {
				fprintf(stderr, "keymgrd: --env: invalid environment name\n");
				return 2;
			}
			if (d->n_only == KM_CONFIG_MAX_ENVS) {
				fprintf(stderr, "keymgrd: --env given too often\n");
				return 2;
			}
			d->only[d->n_only++] = optarg;
			break;
		case 'l': d->listen = optarg; break;
		case 'p':
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v < 0 || v > 65535) {
				fprintf(stderr, "keymgrd: --port: expected 0 to 65535\n");
				return 2;
			}
			d->port = (int)v;
			break;
		case 'a':
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v < 0 || v > 65535) {
				fprintf(stderr, "keymgrd: --admin-port: expected 0 to 65535\n");
				return 2;
			}
			d->admin_port = (int)v;
			break;
		case 's': d->control_socket = optarg; break;
		case 'f': break;
		case 'v': kd_log_set_level(KD_LOG_DEBUG); break;
		case 'h': fputs(usage, stdout); return 0;
		case 'V': printf("keymgrd %s\n", KEYMGR_VERSION); return 0;
		case ':':
			fprintf(stderr, "keymgrd: option '%s' needs a value\nTry 'keymgrd --help'.\n",
			        argv[optind - 1]);
			return 2;
		default:
			return bad_option(optind > 0 ? argv[optind - 1] : NULL, opts);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "keymgrd: unexpected argument (keymgrd takes options only)\n"
		        "Try 'keymgrd --help'.\n");
		return 2;
	}
	return -1;
}

/* Binds the HTTP sockets and starts the listener (front.c); it accepts connections only
 * from kd_front_listen() on, once the documents are published. */
static int start_front(kd_daemon_t *d, char *err, size_t errlen)
{
	const km_daemon_cfg_t *dc = km_config_daemon(d->cfg);
	kd_front_cfg_t fc = {
		.listen_addr = d->listen ? d->listen : dc->listen,
		.port = (uint16_t)(d->port >= 0 ? d->port : (int)dc->port),
		.admin = d->admin_port >= 0 || dc->admin,
		.admin_addr = dc->admin_listen,
		.admin_port = (uint16_t)(d->admin_port >= 0 ? d->admin_port : (int)dc->admin_port),
		.user = dc->listener_user,
		.threads = dc->threads,
		.conn_limit = dc->connection_limit,
		.conn_timeout = dc->timeout,
		.per_ip_limit = dc->per_ip_limit,
		.rate_limit = dc->rate_limit,
		.rate_burst = dc->rate_burst,
	};
	return kd_front_start(&fc, &d->front, err, errlen);
}

/* Milliseconds until unix second t (0 if past), at most cap_s seconds. */
static int wait_ms(int64_t t, unsigned cap_s)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	int64_t cap = (int64_t)cap_s * 1000;
	int64_t ms = t >= INT64_MAX / 2000 ? cap : t * 1000 - now_ms;
	if (ms < 0)
		ms = 0;
	return (int)(ms < cap ? ms : cap);
}

static void loop(kd_daemon_t *d, int sig_fd)
{
	int64_t last_pass = (int64_t)time(NULL);   /* main() has just run one */
	while (!kd_signals_stop_requested()) {
		int64_t now = (int64_t)time(NULL);
		int64_t wake = last_pass + d->poll_interval;   /* the store check */
		for (size_t i = 0; i < d->n_envs; i++) {
			int64_t w = kd_env_next_wake(&d->envs[i]);
			if (w < wake)
				wake = w;
		}
		/* At most one pass per second: times are whole seconds, so nothing planned in a
		 * pass is due again within the same second, and the loop can never spin. */
		if (wake <= now && last_pass < now) {
			kd_run_once(d, false, NULL, NULL, NULL);
			last_pass = now;
			continue;
		}
		int64_t front_at = kd_front_tick(d->front, now);   /* restarts a dead listener */
		if (front_at < wake)
			wake = front_at;
		bool hooks_changed = false;
		int64_t hook_at = kd_static_hooks_step(d, now, &hooks_changed);
		if (hooks_changed)
			kd_metrics_update(d, now);
		if (hook_at < wake)
			wake = hook_at;
		if (wake <= now)
			wake = now + 1;
		struct pollfd fds[4 + KM_CONFIG_MAX_ENVS] = {
			{ .fd = sig_fd, .events = POLLIN },
			{ .fd = kd_ctl_wake_fd(d), .events = POLLIN },
			{ .fd = kd_front_fd(d->front), .events = POLLIN },
			{ .fd = d->docs_wake_fd, .events = POLLIN },
		};
		int hook_fds[KM_CONFIG_MAX_ENVS];
		size_t nh = kd_static_hooks_fds(d, hook_fds, KM_CONFIG_MAX_ENVS);
		for (size_t i = 0; i < nh; i++)
			fds[4 + i] = (struct pollfd){ .fd = hook_fds[i], .events = POLLIN };
		/* a hook's exit only wakes the loop: the next turn reaps it */
		int n = poll(fds, (nfds_t)(4 + nh), wait_ms(wake, d->poll_interval));
		if (n <= 0)
			continue;
		if (fds[3].revents & POLLIN) {
			/* The leader wrote new documents: serve them now, not at the next poll. */
			uint64_t count;
			if (read(d->docs_wake_fd, &count, sizeof(count)) < 0) {
				/* EAGAIN: another reader took it; nothing to do */
			}
			for (size_t i = 0; i < d->n_envs; i++)
				kd_publish_env(d, &d->envs[i], (int64_t)time(NULL));
			kd_signing_sync(d, (int64_t)time(NULL));
		}
		if (fds[2].revents != 0) {
			kd_front_process(d->front);   /* verifier rows, or the listener's end */
			kd_pickups_share(d);          /* into a shared store (pickups.h) */
		}
		if (fds[0].revents & POLLIN)
			kd_signals_drain();
		if (kd_signals_take_reload()) {
			char err[2048];
			kd_reload(d, "SIGHUP", NULL, err, sizeof(err));
		}
		if (!kd_signals_stop_requested() && (fds[1].revents & POLLIN))
			kd_ctl_process(d);
	}
}

int main(int argc, char **argv)
{
	/* Large transient arrays (a refresh of 1,000 key sets) go back to the system at once,
	 * and the HTTP threads share few malloc arenas: keeps the resident size small. */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024);
	mallopt(M_ARENA_MAX, 2);

	kd_daemon_t d = { .port = -1, .admin_port = -1, .ctl_fd = -1, .docs_wake_fd = -1 };
	int rc = parse_args(&d, argc, argv);
	if (rc >= 0)
		return rc;
	km_store_set_default_via("daemon");   /* the audit log's actor of everything we do */
	km_env_set_hooks(&km_audit_env_hooks);
	char err[2048] = "", port[16];
	/* Before any PIN is read: no core dumps, no ptrace or /proc/PID/mem for the same uid. */
	if (kd_harden(err, sizeof(err)) != KM_EOK) {
		kd_log(KD_LOG_ERROR, "start", "result", "failed", "error", err, NULL);
		return 1;
	}
	kd_raise_nofile();
	int sig_fd = kd_signals_init();
	if (sig_fd < 0) {
		fprintf(stderr, "keymgrd: cannot install signal handlers\n");
		return 1;
	}
	d.started = (int64_t)time(NULL);
	d.config_loaded_at = d.started;
	/* Woken by a lease thread that heard of new documents (PostgreSQL stores, docs/ha.md). */
	d.docs_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rc = 1;
	if (kd_signing_create(&d.signing) != KM_EOK) {
		fprintf(stderr, "keymgrd: out of memory\n");
		return 1;
	}
	if (kd_state_load(&d, err, sizeof(err)) != KM_EOK) {
		kd_log(KD_LOG_ERROR, "start", "result", "failed", "error", err, NULL);
		goto out;
	}
	if (start_front(&d, err, sizeof(err)) != KM_EOK) {
		kd_log(KD_LOG_ERROR, "start", "result", "failed", "error", err, NULL);
		goto out;
	}
	kd_publish_listed_verifiers(&d);
	const km_daemon_cfg_t *dc = km_config_daemon(d.cfg);
	if (kd_control_open(&d, d.control_socket ? d.control_socket : dc->control_socket,
	                    dc->control_group, err, sizeof(err)) != KM_EOK ||
	    kd_ctl_start(&d, err, sizeof(err)) != KM_EOK) {
		kd_log(KD_LOG_ERROR, "start", "result", "failed", "error", err, NULL);
		goto out;
	}
	/* Accept HTTP connections only once the stores' documents are in place: across a
	 * restart a verifier is refused at connect for a moment, never answered 404 for a key
	 * set that is served. Reading a store needs no token, so this is quick; reconciliation,
	 * which opens every token, comes after, and the first pass publishes what it repaired. */
	for (size_t i = 0; i < d.n_envs; i++)
		kd_publish_env(&d, &d.envs[i], (int64_t)time(NULL));
	if (kd_front_listen(d.front, err, sizeof(err)) != KM_EOK) {
		kd_log(KD_LOG_ERROR, "start", "result", "failed", "error", err, NULL);
		goto out;
	}
	snprintf(port, sizeof(port), "%u", (unsigned)kd_front_port(d.front));
	char admin_port[16] = "", listener_pid[16];
	if (kd_front_admin_port(d.front) != 0)
		snprintf(admin_port, sizeof(admin_port), "%u", (unsigned)kd_front_admin_port(d.front));
	snprintf(listener_pid, sizeof(listener_pid), "%ld", (long)kd_front_pid(d.front));
	char envs[1024] = "";
	for (size_t i = 0; i < d.n_envs; i++)
		snprintf(envs + strlen(envs), sizeof(envs) - strlen(envs), "%s%s", i ? "," : "",
		         d.envs[i].name);
	kd_control_record(&d);   /* before "start": a client that saw it finds the record */
	kd_log(KD_LOG_INFO, "start", "version", KEYMGR_VERSION, "config", km_config_path(d.cfg),
	       "envs", envs, "listen", d.listen ? d.listen : dc->listen, "port", port,
	       "admin_listen", admin_port[0] ? dc->admin_listen : NULL,
	       "admin_port", admin_port[0] ? admin_port : NULL, "listener_pid", listener_pid,
	       "listener_seccomp", kd_front_confined(d.front) ? "on" : "off",
	       "control_socket", d.ctl_path, NULL);
	/* Repair what a crash left half done before anything is planned or published. */
	kd_startup_reconcile(&d);
	kd_run_once(&d, false, NULL, NULL, NULL);
	kd_notify("READY=1");
	loop(&d, sig_fd);
	kd_notify("STOPPING=1");
	kd_log(KD_LOG_INFO, "stop", "result", "ok", NULL);
	rc = 0;
out:
	kd_ctl_stop(&d);
	kd_control_close(&d);
	kd_front_free(d.front);
	kd_signing_free(d.signing);
	kd_state_free(&d);           /* stops the lease threads, which write docs_wake_fd */
	if (d.docs_wake_fd >= 0)
		close(d.docs_wake_fd);
	return rc;
}
