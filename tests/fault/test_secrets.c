/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PIN secrecy (issue 8): with a distinctive PIN (7391-8264-5520, in a 0600 pin file), runs
 * keymgr through successful and failing paths (wrong PIN, locked PIN through the fault
 * module, bad pin sources, reconcile, --json outputs) and scans stdout, stderr, the fault
 * module's log and /proc/PID/cmdline and /proc/PID/environ of a running keymgr for the PIN,
 * with and without its dashes.
 *
 * Usage: test_fault_secrets PATH-TO-KEYMGR PATH-TO-P11FAULT-MODULE
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/fault/common.h"

#define PIN "7391-8264-5520"
#define PIN_BARE "739182645520"

static kmt_t kmt;
static const char *keymgr_path, *fault_module;
static char pin_source[400], fault_log[400];

/* memmem over the whole buffer (outputs may hold NULs: /proc files). */
static void assert_no_pin(const char *what, const char *buf, size_t len)
{
	if (memmem(buf, len, PIN, strlen(PIN)) != NULL ||
	    memmem(buf, len, PIN_BARE, strlen(PIN_BARE)) != NULL)
		fail_msg("the PIN appears in %s", what);
}

static void scan(const char *what, const km_run_t *r)
{
	assert_no_pin(what, r->out, strlen(r->out));
	assert_no_pin(what, r->err, strlen(r->err));
}

static int group_setup(void **state)
{
	if (kmt_setup(&kmt, keymgr_path, NULL) != 0)
		return -1;
	/* The environment's token gets the distinctive PIN: a second token, config rewritten. */
	if (km_test_softhsm_add_token(&kmt.hsm, "keymgr-secret", PIN, pin_source,
	                              sizeof(pin_source)) != 0)
		return -1;
	snprintf(fault_log, sizeof(fault_log), "%s/p11fault.log", kmt.hsm.dir);
	FILE *f = fopen(kmt.config, "w");
	if (f == NULL)
		return -1;
	fprintf(f, "version: 1\nenvironments:\n  " KMT_ENV ":\n    token:\n      module: %s\n"
	           "      label: keymgr-secret\n      pin: %s\n    store: %s\n",
	        fault_module, pin_source, kmt.store);
	fclose(f);
	setenv("KEYMGR_P11FAULT_MODULE", kmt.hsm.module, 1);
	setenv("KEYMGR_P11FAULT_LOG", fault_log, 1);
	return 0;
}

static int group_teardown(void **state)
{
	kmt_teardown(&kmt);
	return 0;
}

static void test_secrets_outputs_never_hold_the_pin(void **state)
{
	km_run_t *r = calloc(1, sizeof(*r));
	const char *const *cmds[] = {
		(const char *[]){ "keyset", "create", KMT_ENV "/s1", "--no-key", "--alg", "ES256",
		                  "--owner", "reliability", "--purpose", "access-token", "--json",
		                  NULL },
		(const char *[]){ "rotate", KMT_ENV "/s1", "--json", NULL },
		(const char *[]){ "key", "list", KMT_ENV, "--json", NULL },
		(const char *[]){ "jwks", KMT_ENV, NULL },
		(const char *[]){ "reconcile", KMT_ENV, "--json", NULL },
		(const char *[]){ "env", "list", "--json", NULL },
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		kmt_ok(&kmt, r, cmds[i]);
		scan(cmds[i][0], r);
	}
	/* Failing paths: the PIN is refused, locked, or handed over the wrong way. */
	const char *faults[] = { "KEYMGR_P11FAULT=C_Login:CKR_PIN_INCORRECT",
	                         "KEYMGR_P11FAULT=C_Login:CKR_PIN_LOCKED",
	                         "KEYMGR_P11FAULT=C_GenerateKeyPair:CKR_DEVICE_ERROR" };
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		kmt_run(&kmt, r, (const char *[]){ faults[i], NULL },
		        (const char *[]){ "rotate", KMT_ENV "/s1", "--json", NULL });
		assert_int_equal(r->status, 1);
		scan(faults[i], r);
	}
	/* A PIN typed where a pin source belongs is refused without being echoed. */
	kmt_run(&kmt, r, NULL, (const char *[]){ "token", "keygen", "--alg", "ES256", "--token",
	                                        "keymgr-secret", "--pin-source", PIN, NULL });
	assert_int_equal(r->status, 2);
	scan("--pin-source PIN", r);
	kmt_run(&kmt, r, NULL, (const char *[]){ "token", "keygen", "--alg", "ES256", "--token",
	                                        "keymgr-secret", "--pin=" PIN, NULL });
	assert_int_equal(r->status, 2);
	scan("--pin=PIN", r);
	/* The fault module's log of what failed. */
	char log[8192] = "";
	FILE *f = fopen(fault_log, "r");
	assert_non_null(f);
	size_t n = fread(log, 1, sizeof(log) - 1, f);
	fclose(f);
	assert_true(n > 0);
	assert_no_pin("the fault module's log", log, n);
	free(r);
}

static size_t slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, len);
	close(fd);
	return n > 0 ? (size_t)n : 0;
}

/* A keymgr that is logged in and waiting (reading claims from stdin): its cmdline and
 * environment hold no PIN. */
static void test_secrets_running_process(void **state)
{
	int in[2];
	assert_int_equal(pipe(in), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		close(in[1]);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execl(keymgr_path, keymgr_path, "-c", kmt.config, "sign", KMT_ENV "/s1",
		      "--claims", "@-", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	/* Wait until it has logged in: the fault log shows its C_Login... or a few retries. */
	char path[64], buf[65536];
	size_t n = 0;
	for (int i = 0; i < 200 && n == 0; i++) {
		usleep(10000);
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		n = slurp(path, buf, sizeof(buf));
	}
	assert_true(n > 0);
	assert_no_pin("/proc/PID/cmdline", buf, n);
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	n = slurp(path, buf, sizeof(buf));
	assert_no_pin("/proc/PID/environ", buf, n);
	close(in[1]);
	int st;
	waitpid(pid, &st, 0);
}

int main(int argc, char **argv)
{
	static char keymgr_abs[PATH_MAX], module_abs[PATH_MAX];
	if (argc < 3 || realpath(argv[1], keymgr_abs) == NULL ||
	    realpath(argv[2], module_abs) == NULL) {
		fprintf(stderr, "usage: %s PATH-TO-KEYMGR PATH-TO-P11FAULT\n", argv[0]);
		return 2;
	}
	keymgr_path = keymgr_abs;
	fault_module = module_abs;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secrets_outputs_never_hold_the_pin),
		cmocka_unit_test(test_secrets_running_process),
	};
	return cmocka_run_group_tests_name("secrets", tests, group_setup, group_teardown);
}
