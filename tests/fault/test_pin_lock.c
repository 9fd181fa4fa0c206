/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PIN memory (pkcs11/pin.c): a PIN read from a file: or env: source sits in a page locked in
 * RAM (VmLck in /proc/self/status grows while it is held) and km_secret_free() wipes and
 * unlocks it. Where the process may not lock memory (RLIMIT_MEMLOCK 0, no CAP_IPC_LOCK), or
 * mlock is a no-op (AddressSanitizer builds), the read still works and the test checks only
 * that.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/common/secret.h"
#include "pkcs11/pin.h"

#define PIN "lock-me-48151623"

/* VmLck of this process in KiB (-1 when unreadable). */
static long vm_locked(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Whether mlock really locks here: allowed (RLIMIT_MEMLOCK, CAP_IPC_LOCK) and not a no-op
 * (AddressSanitizer intercepts mlock and does nothing). */
static bool can_lock(void)
{
	static char probe[4096] __attribute__((aligned(4096)));
	long before = vm_locked();
	if (mlock(probe, sizeof(probe)) != 0)
		return false;
	bool locked = vm_locked() > before;
	munlock(probe, sizeof(probe));
	return locked;
}

static void check_locked_while_held(const char *source)
{
	char err[256] = "", *pin = NULL;
	long before = vm_locked();
	assert_int_equal(km_pin_read(source, &pin, err, sizeof(err)), KM_EOK);
	assert_string_equal(pin, PIN);
	long held = vm_locked();
	km_secret_free(pin);
	long after = vm_locked();
	if (!can_lock()) {
		print_message("mlock does not lock here (not allowed, or a sanitizer build): only "
		              "the read was checked\n");
		return;
	}
	assert_true(before >= 0);
	if (held < before + 4)
		fail_msg("%s: VmLck %ld kB while the PIN is held, %ld kB before", source, held, before);
	assert_int_equal(after, before);
}

static void test_pin_lock_file_source(void **state)
{
	char dir[] = "/tmp/keymgr-pinlock-XXXXXX", path[300], source[320];
	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/user.pin", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, PIN "\n", strlen(PIN) + 1), (ssize_t)strlen(PIN) + 1);
	close(fd);
	snprintf(source, sizeof(source), "file:%s", path);
	check_locked_while_held(source);
	unlink(path);
	rmdir(dir);
}

static void test_pin_lock_env_source(void **state)
{
	(void)state;
	setenv("KEYMGR_TEST_LOCKED_PIN", PIN, 1);
	check_locked_while_held("env:KEYMGR_TEST_LOCKED_PIN");
	unsetenv("KEYMGR_TEST_LOCKED_PIN");
}

/* Many reads and frees: nothing stays locked (no creeping RLIMIT_MEMLOCK use). */
static void test_pin_lock_no_creep(void **state)
{
	(void)state;
	setenv("KEYMGR_TEST_LOCKED_PIN", PIN, 1);
	long before = vm_locked();
	for (int i = 0; i < 200; i++) {
		char err[256], *pin = NULL;
		assert_int_equal(km_pin_read("env:KEYMGR_TEST_LOCKED_PIN", &pin, err, sizeof(err)),
		                 KM_EOK);
		km_secret_free(pin);
	}
	assert_int_equal(vm_locked(), before);
	unsetenv("KEYMGR_TEST_LOCKED_PIN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pin_lock_file_source),
		cmocka_unit_test(test_pin_lock_env_source),
		cmocka_unit_test(test_pin_lock_no_creep),
	};
	return cmocka_run_group_tests_name("pin_lock", tests, NULL, NULL);
}
