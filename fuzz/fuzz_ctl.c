/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the control-socket protocol's frame reader (km_ctl_read: 4-byte
 * big-endian length, then one JSON object) as keymgrd reads a request, over a real Unix
 * socket pair. Input byte 0 picks the mode: even = the bytes are sent as they are (length
 * prefix included, so lying and huge lengths are tried); odd = the harness prefixes the
 * correct length, so the fuzzer reaches the JSON part. The daemon's dispatcher behind the
 * reader (keymgr/daemon/control.c) needs a running daemon and is not covered here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/daemon/control_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	if (data[0] & 1) {
		uint32_t n = (uint32_t)(size - 1);
		uint8_t len[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
		send_all(sv[1], len, 4);
	}
	send_all(sv[1], data + 1, size - 1); /* inputs are small: fits the socket buffer */
	shutdown(sv[1], SHUT_WR);
	json_t *req = NULL;
	char err[512] = "";
	int r = km_ctl_read(sv[0], KM_CTL_MAX_REQUEST, &req, err, sizeof(err));
	if (r == KM_EOK) {
		if (!json_is_object(req))
			abort();
		/* What the server would answer must frame again. */
		if (km_ctl_write(sv[0], req) != KM_EOK)
			abort();
	} else if (err[0] == '\0' || req != NULL) {
		abort();
	}
	json_decref(req);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
