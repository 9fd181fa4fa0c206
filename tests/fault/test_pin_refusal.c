/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PIN gate (keymgr/core/pin_refusal.c, pkcs11/login.c) on real logins: SoftHSM behind
 * keymgr-p11fault, whose call log counts every C_Login that reaches the token. The wrong PINs
 * are real wrong PINs (SoftHSM answers CKR_PIN_INCORRECT).
 *
 *   - a refused PIN file is presented once, however often the token is opened; the record
 *     names the file's identity and holds no PIN; the right PIN in the file is presented and
 *     removes the record;
 *   - a file that changes only its modification time is a new PIN: presented once more;
 *   - an env: source is identified by its name only: a new value waits for an explicit retry
 *     (km_pin_refusal_forget);
 *   - a record that cannot be used (malformed, writable by others) refuses (fail closed);
 *   - a record that cannot be written is kept in the process's memory, and says so;
 *   - a re-login after lost sessions goes through the gate too: refused once, then neither
 *     the checks nor an explicit km_token_recover() present the same PIN; a new PIN file is
 *     logged in with by km_token_recover().
 *
 * Usage: test_fault_pin_refusal PATH-TO-P11FAULT-MODULE
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/core/pin_refusal.h"
#include "pkcs11/token.h"
#include "tests/common/softhsm.h"
#include "tests/fault/p11calls.h"

#define LABEL "keymgr-pinref"
#define ENV "test"
#define WRONG "wrong-pin-31337"

static km_test_softhsm_t hsm;
static const char *fault_module;
static char good[128];

static void write_file(const char *path, const char *text, mode_t mode)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(rename(tmp, path), 0);
}

/* A PIN file of its own for one test: DIR/NAME.pin holding pin; source "file:PATH". */
static void pin_file(const char *name, const char *pin, char path[400], char source[420])
{
	char text[160];
	snprintf(path, 400, "%s/%s.pin", hsm.dir, name);
	snprintf(source, 420, "file:%s", path);
	snprintf(text, sizeof(text), "%s\n", pin);
	write_file(path, text, 0600);
}

/* A store path of its own for one test (its gate is the process's for that path). */
static void store_of(const char *name, char store[400], char record[420])
{
	snprintf(store, 400, "%s/%s.db", hsm.dir, name);
	snprintf(record, 420, "%s%s", store, KM_PIN_REFUSAL_SUFFIX);
	write_file(store, "", 0600);
}

/* Opens the token with the PIN from source through store's gate; the token is freed. */
static int open_once(const char *store, const char *source, char *err, size_t len)
{
	const km_pin_gate_t *gate = NULL;
	assert_int_equal(km_pin_refusal_gate(store, ENV, &gate), KM_EOK);
	km_token_cfg_t cfg = { .module_path = fault_module, .token_label = LABEL,
	                       .pin_source = source, .sessions = 1, .pin_gate = gate };
	km_token_t *t = NULL;
	err[0] = '\0';
	int r = km_token_open(&cfg, &t, err, len);
	km_token_free(t);
	return r;
}

static size_t logins(void)
{
	char *log = p11calls_read();
	size_t n = p11calls_count(log, "C_Login ");
	free(log);
	return n;
}

static char *slurp(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void assert_refused_earlier(const char *err)
{
	if (strstr(err, "was refused by the token at") == NULL ||
	    strstr(err, "keymgr env login " ENV) == NULL || strstr(err, LABEL) == NULL)
		fail_msg("not a refusal from the record: %s", err);
	assert_null(strstr(err, WRONG));
	assert_null(strstr(err, good));
}

static int group_setup(void **state)
{
	(void)state;
	if (km_test_softhsm_create(&hsm, LABEL) != 0)
		return -1;
	p11calls_init(hsm.dir, hsm.module);
	FILE *f = fopen(hsm.pin_source + 5, "r");
	if (f == NULL || fgets(good, sizeof(good), f) == NULL)
		return -1;
	fclose(f);
	good[strcspn(good, "\n")] = '\0';
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	km_test_softhsm_destroy(&hsm);
	return 0;
}

static int test_setup(void **state)
{
	(void)state;
	p11calls_rules("");
	p11calls_reset();
	return 0;
}

static void test_pin_refusal_file_presented_once(void **state)
{
	char store[400], record[420], path[400], source[420], err[1024];
	struct stat st;
	(void)state;
	store_of("file", store, record);
	pin_file("file", WRONG, path, source);
	assert_int_equal(open_once(store, source, err, sizeof(err)), KM_P11_ELOGIN);
	assert_non_null(strstr(err, "C_Login as user failed: CKR_PIN_INCORRECT"));
	assert_int_equal(logins(), 1);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(open_once(store, source, err, sizeof(err)), KM_P11_ELOGIN);
		assert_refused_earlier(err);
		assert_non_null(strstr(err, path));
	}
	assert_int_equal(logins(), 1);
	/* The record: the file's identity, no PIN, for its owner only. */
	assert_int_equal(stat(record, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	const char *text = slurp(record);
	assert_null(strstr(text, WRONG));
	assert_non_null(strstr(text, "\"kind\":\"file\""));
	assert_int_equal(stat(path, &st), 0);
	char ino[64];
	snprintf(ino, sizeof(ino), "\"ino\":%llu", (unsigned long long)st.st_ino);
	assert_non_null(strstr(text, ino));
	/* The right PIN written to the file: presented, and the record goes. */
	pin_file("file", good, path, source);
	assert_int_equal(open_once(store, source, err, sizeof(err)), KM_EOK);
	assert_int_equal(logins(), 2);
	assert_int_equal(access(record, F_OK), -1);
}

static void test_pin_refusal_touched_file_is_new(void **state)
{
	char store[400], record[420], path[400], source[420], err[1024];
	(void)state;
	store_of("touched", store, record);
	pin_file("touched", WRONG, path, source);
	assert_int_equal(open_once(store, source, err, sizeof(err)), KM_P11_ELOGIN);
	assert_int_equal(open_once(store, source, err, sizeof(err)), KM_P11_ELOGIN);
	assert_int_equal(logins(), 1);
	/* Same inode, same content, another modification time: someone touched it. */
	struct timespec times[2] = { { 0, UTIME_OMIT }, { 1000000000, 42 } };
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
	assert_int_equal(open_once(store, source, err, sizeof(err)), KM_P11_ELOGIN);
	assert_non_null(strstr(err, "CKR_PIN_INCORRECT"));
	assert_null(strstr(err, "was refused by the token at"));
	assert_int_equal(logins(), 2);
	assert_int_equal(open_once(store, source, err, sizeof(err)), KM_P11_ELOGIN);
	assert_int_equal(logins(), 2);
}

static void test_pin_refusal_env_waits_for_retry(void **state)
{
	char store[400], record[420], err[1024];
	(void)state;
	store_of("env", store, record);
	setenv("KEYMGR_TEST_GATED_PIN", WRONG, 1);
	assert_int_equal(open_once(store, "env:KEYMGR_TEST_GATED_PIN", err, sizeof(err)),
	                 KM_P11_ELOGIN);
	assert_int_equal(logins(), 1);
	/* A new value cannot be told from the old one without looking at it: still refused. */
	setenv("KEYMGR_TEST_GATED_PIN", good, 1);
	assert_int_equal(open_once(store, "env:KEYMGR_TEST_GATED_PIN", err, sizeof(err)),
	                 KM_P11_ELOGIN);
	assert_refused_earlier(err);
	assert_non_null(strstr(err, "environment variable KEYMGR_TEST_GATED_PIN"));
	assert_int_equal(logins(), 1);
	assert_null(strstr(slurp(record), good));
	/* The explicit retry. */
	assert_int_equal(km_pin_refusal_forget(store, err, sizeof(err)), KM_EOK);
	assert_int_equal(open_once(store, "env:KEYMGR_TEST_GATED_PIN", err, sizeof(err)), KM_EOK);
	assert_int_equal(logins(), 2);
	unsetenv("KEYMGR_TEST_GATED_PIN");
}

static void test_pin_refusal_unusable_record_refuses(void **state)
{
	char store[400], record[420], err[1024];
	(void)state;
	store_of("unusable", store, record);
	write_file(record, "{\"v\":1,\"source\":", 0600);
	assert_int_equal(open_once(store, hsm.pin_source, err, sizeof(err)), KM_P11_ELOGIN);
	assert_non_null(strstr(err, "cannot be used (malformed)"));
	assert_non_null(strstr(err, record));
	/* Well formed, for another source, but anyone could have written it. */
	write_file(record, "{\"v\":1,\"env\":\"test\",\"source\":\"env:X\",\"kind\":\"env\","
	           "\"refused_at\":1,\"rv\":\"CKR_PIN_INCORRECT\"}", 0666);
	assert_int_equal(open_once(store, hsm.pin_source, err, sizeof(err)), KM_P11_ELOGIN);
	assert_non_null(strstr(err, "writable by group or others"));
	assert_int_equal(logins(), 0);
	/* The same record, as its owner alone could write it: another source, no refusal. */
	assert_int_equal(chmod(record, 0600), 0);
	assert_int_equal(open_once(store, hsm.pin_source, err, sizeof(err)), KM_EOK);
	assert_int_equal(logins(), 1);
	assert_int_equal(access(record, F_OK), -1);   /* a good login removes it */
}

static void test_pin_refusal_kept_in_memory(void **state)
{
	char store[400], path[400], source[420], err[1024];
	(void)state;
	snprintf(store, sizeof(store), "%s/no-such-dir/mem.db", hsm.dir);
	pin_file("mem", WRONG, path, source);
	assert_int_equal(open_once(store, source, err, sizeof(err)), KM_P11_ELOGIN);
	assert_int_equal(open_once(store, source, err, sizeof(err)), KM_P11_ELOGIN);
	assert_refused_earlier(err);
	assert_non_null(strstr(err, "kept in this process's memory only"));
	assert_int_equal(logins(), 1);
	assert_int_equal(km_pin_refusal_forget(store, err, sizeof(err)), KM_EOK);
	assert_int_equal(open_once(store, source, err, sizeof(err)), KM_P11_ELOGIN);
	assert_int_equal(logins(), 2);
}

static void test_pin_refusal_relogin(void **state)
{
	char store[400], record[420], path[400], source[420], err[1024];
	const km_pin_gate_t *gate = NULL;
	km_token_t *t = NULL;
	km_token_health_t h;
	(void)state;
	store_of("relogin", store, record);
	pin_file("relogin", good, path, source);
	assert_int_equal(km_pin_refusal_gate(store, ENV, &gate), KM_EOK);
	km_token_cfg_t cfg = { .module_path = fault_module, .token_label = LABEL,
	                       .pin_source = source, .sessions = 1, .pin_gate = gate };
	assert_int_equal(km_token_open(&cfg, &t, err, sizeof(err)), KM_EOK);
	assert_int_equal(logins(), 1);
	/* The token drops every session (and the login); the PIN file now holds a wrong PIN. */
	pin_file("relogin", WRONG, path, source);
	p11calls_rules("C_GetSessionInfo:DROP:count=1");
	assert_int_equal(km_token_check(t), KM_P11_ESESSION);
	assert_int_equal(km_token_check(t), KM_P11_ELOGIN);     /* the re-open's login */
	assert_int_equal(logins(), 2);
	/* With a gate the backoff goes on (the gate decides), and it decides no. */
	km_token_get_health(t, &h);
	assert_true(h.lost);
	assert_true(h.retry_in_ms <= 30000);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(km_token_recover(t), KM_P11_ELOGIN);
		assert_int_equal(km_token_check(t), KM_P11_ELOGIN);
	}
	assert_refused_earlier(km_token_last_error(t));
	assert_int_equal(logins(), 2);
	/* The right PIN back in the file: the next attempt presents it. */
	pin_file("relogin", good, path, source);
	assert_int_equal(km_token_recover(t), KM_EOK);
	assert_int_equal(km_token_check(t), KM_EOK);
	assert_int_equal(logins(), 3);
	assert_int_equal(access(record, F_OK), -1);
	km_token_free(t);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH-TO-P11FAULT-MODULE\n", argv[0]);
		return 2;
	}
	fault_module = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_pin_refusal_file_presented_once, test_setup),
		cmocka_unit_test_setup(test_pin_refusal_touched_file_is_new, test_setup),
		cmocka_unit_test_setup(test_pin_refusal_env_waits_for_retry, test_setup),
		cmocka_unit_test_setup(test_pin_refusal_unusable_record_refuses, test_setup),
		cmocka_unit_test_setup(test_pin_refusal_kept_in_memory, test_setup),
		cmocka_unit_test_setup(test_pin_refusal_relogin, test_setup),
	};
	return cmocka_run_group_tests_name("pin_refusal", tests, group_setup, group_teardown);
}
