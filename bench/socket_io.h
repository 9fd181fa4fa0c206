/* SPDX-License-Identifier: Apache-2.0 */
/* Socket helpers shared by the signing benchmark's client and bare server. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Sends all of buf, retrying short writes and EINTR; false on error or a closed peer. */
static inline bool bench_send_all(int fd, const uint8_t *buf, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t r = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		off += (size_t)r;
	}
	return true;
}
