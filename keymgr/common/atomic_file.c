/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keymgr/common/atomic_file.h"
#include "keymgr/common/error.h"

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return KM_EOK;
}

int km_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char *dcopy = NULL, *bcopy = NULL, *tmp = NULL;
	int fd = -1, dfd = -1, r;

	if ((dcopy = strdup(path)) == NULL || (bcopy = strdup(path)) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	const char *dir = dirname(dcopy), *base = basename(bcopy);
	if (asprintf(&tmp, "%s/.%s.XXXXXX", dir, base) < 0) {
		tmp = NULL;
		r = KM_ENOMEM;
		goto out;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		r = -errno;
		free(tmp);
		tmp = NULL; /* nothing to unlink */
		goto out;
	}
	if (fchmod(fd, (mode_t)mode) < 0 || (r = write_all(fd, data, len)) < 0 || fsync(fd) < 0) {
		r = errno != 0 ? -errno : KM_EIO;
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto out;
	}
	free(tmp);
	tmp = NULL;
	/* Make the rename itself durable. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	r = KM_EOK;
out:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	free(dcopy);
	free(bcopy);
	return r;
}
