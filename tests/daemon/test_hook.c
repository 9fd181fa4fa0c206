/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The static-tree hook (keymgr/daemon/hook.c) running a real shell script: a success with the
 * changed paths as arguments and only the documented environment; a failure retried after the
 * backoff with the paths of the failed run and those queued since; a hook past its timeout
 * killed with its whole process group. Time is passed in ("now"), never slept: the test waits
 * only for the hook's own exit (its pidfd) or for what the script writes into a FIFO.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "keymgr/common/error.h"
#include "keymgr/daemon/hook.h"

#define T0 1000000   /* the injected clock's start */

typedef struct {
	char dir[PATH_MAX];
	char script[PATH_MAX + 16];
	char out[PATH_MAX + 16];
} fx_t;

static int setup(void **state)
{
	fx_t *fx = calloc(1, sizeof(*fx));
	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/keymgr-hook-XXXXXX");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	snprintf(fx->script, sizeof(fx->script), "%s/hook.sh", fx->dir);
	snprintf(fx->out, sizeof(fx->out), "%s/out", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fx_t *fx = *state;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static void write_script(const fx_t *fx, const char *body)
{
	FILE *f = fopen(fx->script, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(fx->script, 0755), 0);
}

static kd_hook_t *make_hook(const fx_t *fx, unsigned timeout)
{
	const char *argv[] = { fx->script, "--bucket", "a b;$(touch pwned)" };
	kd_hook_cfg_t cfg = { .argv = argv, .argc = 3, .dir = fx->dir, .env_name = "production",
	                      .timeout = timeout };
	kd_hook_t *h = NULL;
	assert_int_equal(kd_hook_create(&cfg, &h), KM_EOK);
	return h;
}

/* Blocks until the running hook has exited (its pidfd readable). */
static void wait_exit(kd_hook_t *h)
{
	struct pollfd p = { .fd = kd_hook_fd(h), .events = POLLIN };
	assert_true(p.fd >= 0);
	assert_int_equal(poll(&p, 1, -1), 1);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char buf[8192];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_hook_success_gets_paths_and_env(void **state)
{
	fx_t *fx = *state;
	write_script(fx, "{ pwd; for a in \"$@\"; do echo \"arg=$a\"; done; env | sort; "
	                 "ls /proc/self/fd | wc -l; } > out");
	kd_hook_t *h = make_hook(fx, 60);
	assert_int_equal(kd_hook_step(h, T0), INT64_MAX);   /* nothing queued: nothing runs */
	const char *p1[] = { "manifest.json", "production/.well-known/jwks.json" };
	const char *p2[] = { "production/api/jwks.json", "manifest.json" };
	assert_int_equal(kd_hook_add(h, p1, 2, 7), KM_EOK);
	assert_int_equal(kd_hook_add(h, p2, 2, 8), KM_EOK);
	assert_int_equal(kd_hook_step(h, T0), T0 + 60);     /* started: its deadline */
	kd_hook_stats_t s;
	kd_hook_stats(h, &s);
	assert_true(s.pid > 0);
	assert_int_equal(s.pending, 0);
	wait_exit(h);
	assert_int_equal(kd_hook_step(h, T0), INT64_MAX);
	kd_hook_stats(h, &s);
	assert_int_equal(s.ok, 1);
	assert_int_equal(s.failed, 0);
	assert_int_equal(s.pid, 0);
	char expect[PATH_MAX + 256];
	/* words as given (no shell), paths deduplicated, manifest.json last; only the documented
	 * environment; stdin, stdout, stderr and the directory listing's own descriptor */
	snprintf(expect, sizeof(expect), "%s\narg=--bucket\narg=a b;$(touch pwned)\n"
	         "arg=production/.well-known/jwks.json\narg=production/api/jwks.json\n"
	         "arg=manifest.json\n", fx->dir);
	const char *out = slurp(fx->out);
	assert_true(strncmp(out, expect, strlen(expect)) == 0);
	assert_non_null(strstr(out, "KEYMGR_ENV=production\n"));
	assert_non_null(strstr(out, "KEYMGR_SERIAL=8\n"));
	char sd[PATH_MAX + 32];
	snprintf(sd, sizeof(sd), "KEYMGR_STATIC_DIR=%s\n", fx->dir);
	assert_non_null(strstr(out, sd));
	assert_null(strstr(out, "HOME="));
	assert_null(strstr(out, "KEYMGR_TEST"));
	char pwned[PATH_MAX + 16];
	snprintf(pwned, sizeof(pwned), "%s/pwned", fx->dir);
	assert_int_equal(access(pwned, F_OK), -1);
	kd_hook_free(h);
}

static void test_hook_failure_retried_after_backoff(void **state)
{
	fx_t *fx = *state;
	/* fails the first time, succeeds the second; each run appends its arguments */
	write_script(fx, "echo \"$*\" >> out\nif [ ! -e failed-once ]; then : > failed-once; "
	                 "exit 3; fi\nexit 0");
	kd_hook_t *h = make_hook(fx, 60);
	const char *p1[] = { "a.json", "manifest.json" };
	assert_int_equal(kd_hook_add(h, p1, 2, 1), KM_EOK);
	assert_int_equal(kd_hook_step(h, T0), T0 + 60);
	wait_exit(h);
	assert_int_equal(kd_hook_step(h, T0), T0 + 1);   /* failed: first retry after 1 s */
	kd_hook_stats_t s;
	kd_hook_stats(h, &s);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.failures, 1);
	assert_int_equal(s.ok, 0);
	assert_int_equal(s.pending, 2);                   /* the failed run's paths wait */
	assert_int_equal(s.retry_at, T0 + 1);
	/* a change meanwhile joins them; the backoff still holds the run */
	const char *p2[] = { "b.json", "manifest.json" };
	assert_int_equal(kd_hook_add(h, p2, 2, 2), KM_EOK);
	assert_int_equal(kd_hook_step(h, T0), T0 + 1);
	kd_hook_stats(h, &s);
	assert_int_equal(s.pid, 0);
	assert_int_equal(s.pending, 3);
	/* at the retry time it runs with everything, and succeeds */
	assert_int_equal(kd_hook_step(h, T0 + 1), T0 + 1 + 60);
	wait_exit(h);
	assert_int_equal(kd_hook_step(h, T0 + 1), INT64_MAX);
	kd_hook_stats(h, &s);
	assert_int_equal(s.ok, 1);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.failures, 0);
	assert_int_equal(s.pending, 0);
	assert_string_equal(slurp(fx->out), "--bucket a b;$(touch pwned) a.json manifest.json\n"
	                    "--bucket a b;$(touch pwned) a.json b.json manifest.json\n");
	kd_hook_free(h);
}

static void test_hook_backoff_grows_and_missing_program_fails(void **state)
{
	fx_t *fx = *state;
	write_script(fx, "exit 1");
	kd_hook_t *h = make_hook(fx, 60);
	const char *p[] = { "x.json" };
	assert_int_equal(kd_hook_add(h, p, 1, 1), KM_EOK);
	int64_t now = T0;
	int64_t waits[] = { 1, 2, 4, 8 };
	for (size_t i = 0; i < 4; i++) {
		kd_hook_step(h, now);
		wait_exit(h);
		int64_t next = kd_hook_step(h, now);
		assert_int_equal(next - now, waits[i]);
		now = next;
	}
	kd_hook_stats_t s;
	kd_hook_stats(h, &s);
	assert_int_equal(s.failed, 4);
	assert_int_equal(s.failures, 4);
	kd_hook_free(h);

	/* a program that cannot start is a failed run too, retried */
	assert_int_equal(unlink(fx->script), 0);
	h = make_hook(fx, 60);
	assert_int_equal(kd_hook_add(h, p, 1, 1), KM_EOK);
	assert_int_equal(kd_hook_step(h, T0), T0 + 1);
	kd_hook_stats(h, &s);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.pid, 0);
	assert_int_equal(s.pending, 1);
	kd_hook_free(h);
}

static bool proc_gone_or_zombie(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return true;
	char state = '?';
	int r = fscanf(f, "%*d (%*[^)]) %c", &state);
	fclose(f);
	return r == 1 && state == 'Z';
}

static void test_hook_timeout_kills_group(void **state)
{
	fx_t *fx = *state;
	char fifo[PATH_MAX + 16];
	snprintf(fifo, sizeof(fifo), "%s/fifo", fx->dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* the hook's child (sleep) outlives nothing once the group is killed; orphans come to
	 * this process (a subreaper), so that the test can reap and see how it ended */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	write_script(fx, "sleep 1000 &\necho $! > fifo\nwait");
	kd_hook_t *h = make_hook(fx, 5);
	const char *p[] = { "manifest.json" };
	assert_int_equal(kd_hook_add(h, p, 1, 1), KM_EOK);
	assert_int_equal(kd_hook_step(h, T0), T0 + 5);
	FILE *f = fopen(fifo, "r");   /* blocks until the script has started its child */
	assert_non_null(f);
	int child = 0;
	assert_int_equal(fscanf(f, "%d", &child), 1);
	fclose(f);
	kd_hook_stats_t s;
	kd_hook_stats(h, &s);
	pid_t pid = s.pid;
	assert_true(pid > 0);
	assert_int_equal(kd_hook_step(h, T0 + 4), T0 + 5);   /* before the deadline: left alone */
	assert_int_equal(kill(pid, 0), 0);
	assert_int_equal(kd_hook_step(h, T0 + 5), T0 + 5 + 1);   /* killed; retry in 1 s */
	kd_hook_stats(h, &s);
	assert_int_equal(s.timeouts, 1);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.pid, 0);
	assert_int_equal(s.pending, 1);
	assert_int_equal(kill(pid, 0), -1);   /* the hook was reaped */
	/* its child was killed too: it exits (a 10 s guard turns a survivor into a failure
	 * rather than a hang; no time is asserted) */
	int cfd = (int)syscall(SYS_pidfd_open, child, 0);
	assert_true(cfd >= 0);
	struct pollfd cp = { .fd = cfd, .events = POLLIN };
	assert_int_equal(poll(&cp, 1, 10000), 1);
	close(cfd);
	int st = 0;
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_true(proc_gone_or_zombie(child));
	kd_hook_free(h);
}

static void test_hook_free_kills_running(void **state)
{
	fx_t *fx = *state;
	write_script(fx, "exec sleep 1000");
	kd_hook_t *h = make_hook(fx, 60);
	const char *p[] = { "manifest.json" };
	assert_int_equal(kd_hook_add(h, p, 1, 1), KM_EOK);
	kd_hook_step(h, T0);
	kd_hook_stats_t s;
	kd_hook_stats(h, &s);
	assert_true(s.pid > 0);
	kd_hook_free(h);
	assert_int_equal(kill(s.pid, 0), -1);
}

static void test_hook_create_refuses_relative(void **state)
{
	(void)state;
	const char *argv[] = { "sync.sh" };
	kd_hook_cfg_t cfg = { .argv = argv, .argc = 1, .dir = "/tmp", .env_name = "e",
	                      .timeout = 1 };
	kd_hook_t *h = NULL;
	assert_int_equal(kd_hook_create(&cfg, &h), KM_EINVAL);
	argv[0] = "/bin/true";
	cfg.timeout = 0;
	assert_int_equal(kd_hook_create(&cfg, &h), KM_EINVAL);
	assert_null(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hook_success_gets_paths_and_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hook_failure_retried_after_backoff, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_hook_backoff_grows_and_missing_program_fails,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_hook_timeout_kills_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hook_free_kills_running, setup, teardown),
		cmocka_unit_test(test_hook_create_refuses_relative),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
