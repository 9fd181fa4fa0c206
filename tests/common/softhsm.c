/* SPDX-License-Identifier: Apache-2.0 */
/* Test fixture: a real SoftHSM2 token in a fresh temporary directory (see softhsm.h). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pkcs11/token.h"
#include "tests/common/softhsm.h"

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
/* Test-only PINs: they live in files of the temporary directory, never on a command line. */
#define TEST_USER_PIN "user-1234"
#define TEST_SO_PIN "so-5678"

/* Writes content into path with mode 0600 (created fresh, never following a link). */
static int write_private_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	size_t len = strlen(content);

	if (fd < 0) {
		fprintf(stderr, "softhsm fixture: cannot create %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (write(fd, content, len) != (ssize_t)len || close(fd) != 0) {
		fprintf(stderr, "softhsm fixture: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int token_init(km_test_softhsm_t *t, const char *label, const char *user_pin_source)
{
	char err[512];
	int r = km_token_init_dev(t->module, label, t->so_pin_source, user_pin_source, err,
	                          sizeof(err));

	if (r != 0) {
		fprintf(stderr, "softhsm fixture: cannot initialise token '%s': %s\n", label, err);
		return -1;
	}
	return 0;
}

int km_test_softhsm_create(km_test_softhsm_t *t, const char *label)
{
	const char *tmp = getenv("TMPDIR");
	const char *module = getenv("KEYMGR_TEST_SOFTHSM_MODULE");
	char path[300], conf[700];
	int n;

	memset(t, 0, sizeof(*t));
	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	if (module == NULL || module[0] == '\0')
		module = DEFAULT_MODULE;
	if (label == NULL || strlen(label) >= sizeof(t->label)) {
		fprintf(stderr, "softhsm fixture: bad token label\n");
		return -1;
	}
	n = snprintf(t->dir, sizeof(t->dir), "%s/keymgr-test-XXXXXX", tmp);
	if (n < 0 || (size_t)n >= sizeof(t->dir) ||
	    (size_t)snprintf(t->module, sizeof(t->module), "%s", module) >= sizeof(t->module)) {
		fprintf(stderr, "softhsm fixture: TMPDIR or module path too long\n");
		return -1;
	}
	if (mkdtemp(t->dir) == NULL) {
		fprintf(stderr, "softhsm fixture: mkdtemp %s: %s\n", t->dir, strerror(errno));
		t->dir[0] = '\0';
		return -1;
	}
	snprintf(t->conf, sizeof(t->conf), "%s/softhsm2.conf", t->dir);
	snprintf(t->label, sizeof(t->label), "%s", label);

	snprintf(path, sizeof(path), "%s/tokens", t->dir);
	if (mkdir(path, 0700) != 0) {
		fprintf(stderr, "softhsm fixture: mkdir %s: %s\n", path, strerror(errno));
		goto fail;
	}
	snprintf(conf, sizeof(conf),
	         "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
	         path);
	if (write_private_file(t->conf, conf) != 0)
		goto fail;

	snprintf(path, sizeof(path), "%s/user.pin", t->dir);
	if (write_private_file(path, TEST_USER_PIN "\n") != 0)
		goto fail;
	snprintf(t->pin_source, sizeof(t->pin_source), "file:%s", path);
	snprintf(path, sizeof(path), "%s/so.pin", t->dir);
	if (write_private_file(path, TEST_SO_PIN "\n") != 0)
		goto fail;
	snprintf(t->so_pin_source, sizeof(t->so_pin_source), "file:%s", path);

	/* SoftHSM reads this at C_Initialize, i.e. at the first km_token_* call below. */
	if (setenv("SOFTHSM2_CONF", t->conf, 1) != 0) {
		fprintf(stderr, "softhsm fixture: setenv: %s\n", strerror(errno));
		goto fail;
	}
	if (token_init(t, label, t->pin_source) != 0)
		goto fail;
	return 0;
fail:
	km_test_softhsm_destroy(t);
	return -1;
}

int km_test_softhsm_add_token(km_test_softhsm_t *t, const char *label, const char *user_pin,
                              char *pin_source_out, size_t len)
{
	char path[400], source[420];

	if (label == NULL || user_pin == NULL || strchr(label, '/') != NULL) {
		fprintf(stderr, "softhsm fixture: bad label or PIN for an extra token\n");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s.pin", t->dir, label);
	if (write_private_file(path, user_pin) != 0)
		return -1;
	snprintf(source, sizeof(source), "file:%s", path);
	if (token_init(t, label, source) != 0)
		return -1;
	if ((size_t)snprintf(pin_source_out, len, "%s", source) >= len) {
		fprintf(stderr, "softhsm fixture: pin source buffer too small\n");
		return -1;
	}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0)
		fprintf(stderr, "softhsm fixture: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

void km_test_softhsm_destroy(km_test_softhsm_t *t)
{
	if (t == NULL || t->dir[0] == '\0')
		return;
	/* FTW_PHYS: never follow a link out of the temporary directory. */
	nftw(t->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	t->dir[0] = '\0';
}
