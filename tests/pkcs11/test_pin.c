/* SPDX-License-Identifier: Apache-2.0 */
/* PIN sources (no token needed): file modes, line endings, env, unknown kinds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/common/secret.h"
#include "pkcs11/pin.h"

static char dir[256];

static int rm_entry(const char *p, const struct stat *st, int f, struct FTW *w)
{
	(void)st; (void)f; (void)w;
	return remove(p);
}

static int group_setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/keymgr-pin-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	return nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Writes a file with exactly this content and mode; returns its "file:" source. */
static void make_pin_file(const char *name, const char *content, mode_t mode, char *src,
                          size_t len)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	snprintf(src, len, "file:%s", path);
}

static void test_pin_file_strips_newline(void **state)
{
	char src[500], err[512] = "";
	char *pin = NULL;

	make_pin_file("lf.pin", "abcd-1234\n", 0600, src, sizeof(src));
	assert_int_equal(km_pin_read(src, &pin, err, sizeof(err)), KM_EOK);
	assert_string_equal(pin, "abcd-1234");
	km_secret_free(pin);

	make_pin_file("crlf.pin", "abcd-1234\r\nsecond line\n", 0400, src, sizeof(src));
	assert_int_equal(km_pin_read(src, &pin, err, sizeof(err)), KM_EOK);
	assert_string_equal(pin, "abcd-1234");
	km_secret_free(pin);

	make_pin_file("nonl.pin", "no-newline", 0600, src, sizeof(src));
	assert_int_equal(km_pin_read(src, &pin, err, sizeof(err)), KM_EOK);
	assert_string_equal(pin, "no-newline");
	km_secret_free(pin);
}

static void test_pin_file_group_or_other_bits_refused(void **state)
{
	static const mode_t modes[] = { 0644, 0640, 0604, 0610, 0601, 0660 };
	char src[500], err[512];
	char *pin = NULL;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		err[0] = '\0';
		make_pin_file("wide.pin", "secret-pin-4711\n", modes[i], src, sizeof(src));
		assert_int_equal(km_pin_read(src, &pin, err, sizeof(err)), KM_P11_EPINPERM);
		assert_null(pin);
		assert_non_null(strstr(err, src + 5));            /* names the path */
		assert_null(strstr(err, "secret-pin-4711"));      /* never the content */
	}
}

static void test_pin_file_not_regular_refused(void **state)
{
	char src[500], err[512] = "", path[400];
	char *pin = NULL;

	snprintf(path, sizeof(path), "%s/adir", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(km_pin_read(src, &pin, err, sizeof(err)), KM_P11_EPINSOURCE);
	assert_non_null(strstr(err, "not a regular file"));
	assert_non_null(strstr(err, path));

	snprintf(path, sizeof(path), "%s/afifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(km_pin_read(src, &pin, err, sizeof(err)), KM_P11_EPINSOURCE);
	assert_non_null(strstr(err, "not a regular file"));
	assert_null(pin);
}

static void test_pin_file_missing_or_empty_refused(void **state)
{
	char src[500], err[512] = "";
	char *pin = NULL;

	snprintf(src, sizeof(src), "file:%s/does-not-exist.pin", dir);
	assert_int_equal(km_pin_read(src, &pin, err, sizeof(err)), KM_P11_EPINSOURCE);
	assert_non_null(strstr(err, "does-not-exist.pin"));

	make_pin_file("empty.pin", "\n", 0600, src, sizeof(src));
	assert_int_equal(km_pin_read(src, &pin, err, sizeof(err)), KM_P11_EPINSOURCE);
	assert_non_null(strstr(err, "empty"));

	assert_int_equal(km_pin_read("file:", &pin, err, sizeof(err)), KM_P11_EPINSOURCE);
	assert_null(pin);
}

static void test_pin_env_reads_variable(void **state)
{
	char err[512] = "";
	char *pin = NULL;

	setenv("KEYMGR_TEST_PIN_VAR", "env-pin-2468", 1);
	assert_int_equal(km_pin_read("env:KEYMGR_TEST_PIN_VAR", &pin, err, sizeof(err)), KM_EOK);
	assert_string_equal(pin, "env-pin-2468");
	km_secret_free(pin);
	unsetenv("KEYMGR_TEST_PIN_VAR");
}

static void test_pin_env_missing_or_empty_refused(void **state)
{
	char err[512] = "";
	char *pin = NULL;

	unsetenv("KEYMGR_TEST_NO_SUCH_PIN");
	assert_int_equal(km_pin_read("env:KEYMGR_TEST_NO_SUCH_PIN", &pin, err, sizeof(err)),
	                 KM_P11_EPINSOURCE);
	assert_non_null(strstr(err, "KEYMGR_TEST_NO_SUCH_PIN"));
	assert_non_null(strstr(err, "not set"));

	setenv("KEYMGR_TEST_EMPTY_PIN", "", 1);
	assert_int_equal(km_pin_read("env:KEYMGR_TEST_EMPTY_PIN", &pin, err, sizeof(err)),
	                 KM_P11_EPINSOURCE);
	assert_non_null(strstr(err, "empty"));
	unsetenv("KEYMGR_TEST_EMPTY_PIN");

	assert_int_equal(km_pin_read("env:", &pin, err, sizeof(err)), KM_P11_EPINSOURCE);
	assert_null(pin);
}

static void test_pin_unknown_source_not_echoed(void **state)
{
	char err[512] = "";
	char *pin = NULL;

	/* Someone typed the PIN where the source belongs: it must not come back in the message. */
	assert_int_equal(km_pin_read("typed-pin-1357", &pin, err, sizeof(err)), KM_P11_EPINSOURCE);
	assert_null(strstr(err, "typed-pin-1357"));
	assert_non_null(strstr(err, "file:PATH"));
	assert_int_equal(km_pin_read(NULL, &pin, err, sizeof(err)), KM_P11_EPINSOURCE);
	assert_int_equal(km_pin_read("", &pin, NULL, 0), KM_P11_EPINSOURCE);
	assert_null(pin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pin_file_strips_newline),
		cmocka_unit_test(test_pin_file_group_or_other_bits_refused),
		cmocka_unit_test(test_pin_file_not_regular_refused),
		cmocka_unit_test(test_pin_file_missing_or_empty_refused),
		cmocka_unit_test(test_pin_env_reads_variable),
		cmocka_unit_test(test_pin_env_missing_or_empty_refused),
		cmocka_unit_test(test_pin_unknown_source_not_echoed),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
