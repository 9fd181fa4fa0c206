/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/daemon/control_proto.h"

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return KM_EIO;
		p += w;
		len -= (size_t)w;
	}
	return KM_EOK;
}

/* Returns bytes read (== len), or fewer at end of stream, or -1 on error/timeout. */
static ssize_t read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t got = 0;
	while (got < len) {
		ssize_t r = recv(fd, p + got, len - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int km_ctl_write(int fd, const json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	if (text == NULL)
		return KM_ENOMEM;
	size_t len = strlen(text);
	int r = KM_ERANGE;
	if (len <= KM_CTL_MAX_REPLY) {
		uint8_t hdr[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
		                   (uint8_t)len };
		r = write_all(fd, hdr, sizeof(hdr));
		if (r == KM_EOK)
			r = write_all(fd, text, len);
	}
	free(text);
	return r;
}

int km_ctl_read(int fd, size_t max, json_t **ret, char *err, size_t errlen)
{
	uint8_t hdr[4];
	ssize_t n = read_all(fd, hdr, sizeof(hdr));
	if (n != (ssize_t)sizeof(hdr)) {
		snprintf(err, errlen, n < 0 ? "reading the frame header failed or timed out"
		                            : "connection closed before a complete frame header");
		return KM_EIO;
	}
	size_t len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	if (len > max) {
		snprintf(err, errlen, "frame of %zu bytes is over the limit of %zu", len, max);
		return KM_ERANGE;
	}
	char *buf = malloc(len + 1);
	if (buf == NULL)
		return KM_ENOMEM;
	n = read_all(fd, buf, len);
	if (n != (ssize_t)len) {
		snprintf(err, errlen, "connection closed or timed out inside a frame");
		free(buf);
		return KM_EIO;
	}
	buf[len] = '\0';
	json_error_t je;
	json_t *j = memchr(buf, '\0', len) ? NULL : json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (j == NULL || !json_is_object(j)) {
		snprintf(err, errlen, "frame is not a JSON object");
		json_decref(j);
		return KM_EMALFORMED;
	}
	*ret = j;
	return KM_EOK;
}

static void set_timeouts(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int km_ctl_call(const char *path, const json_t *req, int timeout_ms, json_t **reply,
                char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (path == NULL || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket path is missing or too long");
		return KM_EINVAL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return KM_EIO;
	}
	if (timeout_ms > 0)
		set_timeouts(fd, timeout_ms);
	int r;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		r = e == EACCES || e == EPERM ? KM_EACCES : KM_ENOENT;
		snprintf(err, errlen, r == KM_EACCES
		         ? "no permission to use the control socket %s (mode 0660: join its group)"
		         : "no keymgrd listening on %s (%s)", path, strerror(e));
		close(fd);
		return r;
	}
	if ((r = km_ctl_write(fd, req)) != KM_EOK) {
		snprintf(err, errlen, "sending the request to %s failed", path);
	} else if ((r = km_ctl_read(fd, KM_CTL_MAX_REPLY, reply, err, errlen)) != KM_EOK) {
		char why[256];
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "reading the reply from %s: %s", path, why);
	}
	close(fd);
	return r;
}

static const struct {
	int code;
	const char *name;
} codes[] = {
	{ KM_POLICY_EDENIED, "policy_denied" },
	{ KM_EMALFORMED, "malformed" },
	{ KM_ENOENT, "unknown_keyset" },
	{ KM_ENOACTIVE, "no_active_key" },
	{ KM_ENAME, "invalid_name" },
	{ KM_EWRONGENV, "wrong_env" },
	{ KM_EINVAL, "bad_request" },
	{ KM_ENOTSUP, "not_served" },
	{ KM_EBUSY, "busy" },
	{ KM_EACCES, "denied" },
	{ KM_P11_EFAIL, "token_error" },
	{ KM_STORE_EIO, "store_error" },
	{ KM_ERROR, "internal" },
};

const char *km_ctl_code_name(int km_code)
{
	if (km_code <= KM_P11_EMODULE && km_code >= KM_P11_EFAIL)
		return "token_error";
	if (km_code <= KM_STORE_EOPEN && km_code >= KM_STORE_EIO)
		return "store_error";
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].code == km_code)
			return codes[i].name;
	return "internal";
}

int km_ctl_code_value(const char *code)
{
	for (size_t i = 0; code != NULL && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(codes[i].name, code) == 0)
			return codes[i].code;
	return KM_ERROR;
}
