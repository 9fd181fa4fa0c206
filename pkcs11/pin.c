/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PIN sources. Messages name the source (a path, a variable name) and never its content.
 * An unrecognised source string is not echoed either: a user who typed the PIN itself where
 * a source was expected must not see it printed back into a log.
 *
 * Memory: the PIN returned lives alone in a page-aligned page, locked in RAM (mlock) and
 * excluded from core dumps (MADV_DONTDUMP) where the system allows it; the read buffers on
 * the stack are locked while they hold it. km_secret_free() wipes it and unlocks the page.
 * EPERM/ENOMEM from mlock (RLIMIT_MEMLOCK) are ignored: locking is a hardening, not a need.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/common/secret.h"
#include "pkcs11/pin.h"

#define PIN_MAX 256              /* Cryptoki PINs are short; refuse absurd files */
#define PIN_FILE_READ_MAX 4096

__attribute__((format(printf, 3, 4)))
static void err(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* Locks [p, p+len) in RAM if allowed (quietly not otherwise). */
static void lock_mem(void *p, size_t len)
{
	(void)mlock(p, len);
}

/* Wipes and unlocks [p, p+len). */
static void wipe_unlock(void *p, size_t len)
{
	km_secret_wipe(p, len);
	(void)munlock(p, len);
}

/*
 * A copy of the len bytes at s, NUL-terminated, in a page of its own, locked and left out
 * of core dumps where allowed. NULL when out of memory. Freed with km_secret_free().
 */
static char *secret_copy(const char *s, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t size = page > 0 ? (size_t)page : 4096;
	void *p = NULL;

	while (size < len + 1)
		size *= 2;
	if (posix_memalign(&p, size, size) != 0)
		return NULL;
	lock_mem(p, size);
	(void)madvise(p, size, MADV_DONTDUMP);
	memcpy(p, s, len);
	((char *)p)[len] = '\0';
	return p;
}

/* Cuts the PIN at the first line end. Returns its length. */
static size_t first_line(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n' || s[i] == '\r' || s[i] == '\0') {
			return i;
		}
	}
	return len;
}

static int pin_from_file(const char *path, char **ret, km_pin_id_t *id, char *errbuf,
                         size_t errlen)
{
	int r = KM_P11_EPINSOURCE;
	int fd = -1;
	struct stat st;
	char buf[PIN_FILE_READ_MAX] = { 0 }; /* zeroed: mlock() below is declared as reading it */
	size_t len = 0;
	char *pin = NULL;

	lock_mem(buf, sizeof(buf));
	if (path[0] == '\0') {
		err(errbuf, errlen, "PIN source 'file:' has no path");
		wipe_unlock(buf, sizeof(buf));
		return KM_P11_EPINSOURCE;
	}
	/* O_NONBLOCK: a FIFO must not hang us before the regular-file check below. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		err(errbuf, errlen, "cannot open PIN file %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		err(errbuf, errlen, "cannot stat PIN file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err(errbuf, errlen, "PIN file %s is not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		err(errbuf, errlen, "PIN file %s has mode %04o: it must not be accessible by group "
		    "or others (chmod 600)", path, (unsigned)(st.st_mode & 07777));
		r = KM_P11_EPINPERM;
		goto out;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		err(errbuf, errlen, "PIN file %s is owned by uid %u, neither the caller nor root",
		    path, (unsigned)st.st_uid);
		r = KM_P11_EPINPERM;
		goto out;
	}
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err(errbuf, errlen, "cannot read PIN file %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	len = first_line(buf, len);
	if (len == 0) {
		err(errbuf, errlen, "PIN file %s is empty", path);
		goto out;
	}
	if (len > PIN_MAX) {
		err(errbuf, errlen, "PIN file %s: first line longer than %d bytes", path, PIN_MAX);
		goto out;
	}
	pin = secret_copy(buf, len);
	if (pin == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	/* The identity of what was read: this descriptor's, not the path's a moment later. */
	id->dev = (uint64_t)st.st_dev;
	id->ino = (uint64_t)st.st_ino;
	id->mtime_sec = (int64_t)st.st_mtim.tv_sec;
	id->mtime_nsec = (int64_t)st.st_mtim.tv_nsec;
	id->size = (int64_t)st.st_size;
	r = KM_EOK;
out:
	wipe_unlock(buf, sizeof(buf));
	if (fd >= 0)
		close(fd);
	if (r == KM_EOK)
		*ret = pin;
	return r;
}

static int pin_from_env(const char *name, char **ret, char *errbuf, size_t errlen)
{
	const char *v;
	char *pin;

	if (name[0] == '\0') {
		err(errbuf, errlen, "PIN source 'env:' has no variable name");
		return KM_P11_EPINSOURCE;
	}
	v = secure_getenv(name);
	if (v == NULL) {
		err(errbuf, errlen, "PIN environment variable %s is not set (or the process is "
		    "set-uid, where the environment is not trusted)", name);
		return KM_P11_EPINSOURCE;
	}
	if (v[0] == '\0') {
		err(errbuf, errlen, "PIN environment variable %s is empty", name);
		return KM_P11_EPINSOURCE;
	}
	if (strlen(v) > PIN_MAX) {
		err(errbuf, errlen, "PIN environment variable %s is longer than %d bytes", name,
		    PIN_MAX);
		return KM_P11_EPINSOURCE;
	}
	pin = secret_copy(v, strlen(v));
	if (pin == NULL)
		return KM_ENOMEM;
	*ret = pin;
	return KM_EOK;
}

static int pin_from_prompt(char **ret, char *errbuf, size_t errlen)
{
	static const char prompt[] = "Token PIN: ";
	int r = KM_P11_EPINSOURCE;
	int fd;
	struct termios old, noecho;
	bool restore = false;
	char buf[PIN_MAX + 2] = { 0 };
	size_t len = 0;
	char *pin = NULL;

	lock_mem(buf, sizeof(buf));
	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		err(errbuf, errlen, "cannot prompt for the PIN: no controlling terminal (%s)",
		    strerror(errno));
		wipe_unlock(buf, sizeof(buf));
		return KM_P11_EPINSOURCE;
	}
	if (tcgetattr(fd, &old) != 0) {
		err(errbuf, errlen, "cannot prompt for the PIN: /dev/tty: %s", strerror(errno));
		goto out;
	}
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	noecho.c_lflag |= ICANON;
	if (tcsetattr(fd, TCSAFLUSH, &noecho) != 0) {
		err(errbuf, errlen, "cannot turn off echo on /dev/tty: %s", strerror(errno));
		goto out;
	}
	restore = true;
	if (write(fd, prompt, sizeof(prompt) - 1) < 0) {
		err(errbuf, errlen, "cannot write the PIN prompt: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == '\n' || c == '\r')
			break;
		if (len >= sizeof(buf) - 1) {
			err(errbuf, errlen, "PIN typed at the prompt is longer than %d bytes", PIN_MAX);
			goto out;
		}
		buf[len++] = c;
	}
	if (len == 0) {
		err(errbuf, errlen, "no PIN typed at the prompt");
		goto out;
	}
	pin = secret_copy(buf, len);
	if (pin == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	r = KM_EOK;
out:
	wipe_unlock(buf, sizeof(buf));
	if (restore) {
		tcsetattr(fd, TCSAFLUSH, &old);
		if (write(fd, "\n", 1) < 0) {
			/* nothing useful to do: the PIN is read already */
		}
	}
	close(fd);
	if (r == KM_EOK)
		*ret = pin;
	return r;
}

int km_pin_check_length(size_t len, unsigned long min, unsigned long max, const char *who,
                        char *errbuf, size_t errlen)
{
	bool have_max = max > 0 && max != (unsigned long)-1 && max >= min;

	if ((min > 0 && min != (unsigned long)-1 && len < min) || (have_max && len > max)) {
		err(errbuf, errlen, "%s: the PIN has %zu characters but the token accepts %lu to %lu: "
		    "not tried (a wrong PIN counts toward the token's lockout)", who, len, min,
		    have_max ? max : 255ul);
		return KM_P11_EPINSOURCE;
	}
	return KM_EOK;
}

int km_pin_read_id(const char *source, char **ret, km_pin_id_t *ret_id, char *errbuf,
                   size_t errlen)
{
	km_pin_id_t id = { .source = source };
	int r;

	if (source == NULL || source[0] == '\0') {
		err(errbuf, errlen, "no PIN source given (expected file:PATH, env:NAME or prompt)");
		return KM_P11_EPINSOURCE;
	}
	if (strncmp(source, "file:", 5) == 0) {
		id.kind = KM_PIN_FROM_FILE;
		r = pin_from_file(source + 5, ret, &id, errbuf, errlen);
	} else if (strncmp(source, "env:", 4) == 0) {
		id.kind = KM_PIN_FROM_ENV;
		r = pin_from_env(source + 4, ret, errbuf, errlen);
	} else if (strcmp(source, "prompt") == 0) {
		id.kind = KM_PIN_FROM_PROMPT;
		r = pin_from_prompt(ret, errbuf, errlen);
	} else {
		err(errbuf, errlen, "unknown kind of PIN source (expected file:PATH, env:NAME or "
		    "prompt; a PIN itself is never accepted here)");
		return KM_P11_EPINSOURCE;
	}
	if (r == KM_EOK && ret_id != NULL)
		*ret_id = id;
	return r;
}

int km_pin_read(const char *source, char **ret, char *errbuf, size_t errlen)
{
	return km_pin_read_id(source, ret, NULL, errbuf, errlen);
}
