/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/control/control_proto.h"
#include "keymgr/control/ctl_json.h"

/* Sends the concatenation of iov[0..n) with as few sendmsg(2) calls as the socket allows:
 * one, usually, so that the peer wakes once per frame. iov is consumed. */
static int send_iov(int fd, struct iovec *iov, size_t n)
{
	while (n > 0) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = n };
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return KM_EIO;
		size_t left = (size_t)w;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
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

int km_ctl_write_parts(int fd, const struct iovec *parts, size_t n)
{
	struct iovec iov[KM_CTL_MAX_PARTS + 1];
	size_t len = 0;
	if (n > KM_CTL_MAX_PARTS)
		return KM_EINVAL;
	for (size_t i = 0; i < n; i++) {
		len += parts[i].iov_len;
		iov[i + 1] = parts[i];
	}
	if (len > KM_CTL_MAX_REPLY)
		return KM_ERANGE;
	uint8_t hdr[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
	                   (uint8_t)len };
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	return send_iov(fd, iov, n + 1);
}

int km_ctl_write(int fd, const json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	if (text == NULL)
		return KM_ENOMEM;
	struct iovec part = { text, strlen(text) };
	int r = km_ctl_write_parts(fd, &part, 1);
	free(text);
	return r;
}

/* The JSON object of one frame's body (len bytes, no NUL), or NULL with err set. */
static json_t *parse_body(const char *buf, size_t len, char *err, size_t errlen)
{
	json_t *j = memchr(buf, '\0', len) ? NULL : km_ctl_json_parse(buf, len);
	if (j == NULL)
		snprintf(err, errlen, "frame is not a JSON object");
	return j;
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
	json_t *j = parse_body(buf, len, err, errlen);
	free(buf);
	if (j == NULL)
		return KM_EMALFORMED;
	*ret = j;
	return KM_EOK;
}

/* ---- the server's reader: frames from a buffer filled by as few recv(2) calls as possible */

#define READER_MIN 8192

struct km_ctl_reader {
	int fd;
	size_t max;
	uint8_t *buf;
	size_t cap, start, end;         /* unread bytes: buf[start..end) */
};

int km_ctl_reader_create(int fd, size_t max, km_ctl_reader_t **ret)
{
	km_ctl_reader_t *r = calloc(1, sizeof(*r));
	if (r == NULL || (r->buf = malloc(READER_MIN)) == NULL) {
		free(r);
		return KM_ENOMEM;
	}
	r->fd = fd;
	r->max = max;
	r->cap = READER_MIN;
	*ret = r;
	return KM_EOK;
}

void km_ctl_reader_free(km_ctl_reader_t *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r);
}

static size_t frame_len(const uint8_t *h)
{
	return (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
}

bool km_ctl_reader_pending(const km_ctl_reader_t *r)
{
	return r->end > r->start;
}

/* Makes buf[start..] hold at least need bytes, reading what the socket has (perhaps more). */
static int fill(km_ctl_reader_t *r, size_t need, bool *eof)
{
	*eof = false;
	while (r->end - r->start < need) {
		if (r->cap - r->start < need) {
			size_t have = r->end - r->start;
			memmove(r->buf, r->buf + r->start, have);
			r->start = 0;
			r->end = have;
			if (r->cap < need) {
				uint8_t *grown = realloc(r->buf, need);
				if (grown == NULL)
					return KM_ENOMEM;
				r->buf = grown;
				r->cap = need;
			}
		}
		ssize_t n = recv(r->fd, r->buf + r->end, r->cap - r->end, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return KM_EIO;
		if (n == 0) {
			*eof = true;
			return KM_EIO;
		}
		r->end += (size_t)n;
	}
	return KM_EOK;
}

int km_ctl_reader_next(km_ctl_reader_t *r, json_t **ret, char *err, size_t errlen)
{
	bool eof;
	int rc = fill(r, 4, &eof);
	if (rc == KM_ENOMEM)
		return rc;
	if (rc != KM_EOK) {
		snprintf(err, errlen, eof ? "connection closed before a complete frame header"
		                          : "reading the frame header failed or timed out");
		return KM_EIO;
	}
	size_t len = frame_len(r->buf + r->start);
	if (len > r->max) {
		snprintf(err, errlen, "frame of %zu bytes is over the limit of %zu", len, r->max);
		return KM_ERANGE;
	}
	if ((rc = fill(r, 4 + len, &eof)) != KM_EOK) {
		if (rc == KM_ENOMEM)
			return rc;
		snprintf(err, errlen, "connection closed or timed out inside a frame");
		return KM_EIO;
	}
	json_t *j = parse_body((const char *)r->buf + r->start + 4, len, err, errlen);
	r->start += 4 + len;
	if (r->start == r->end) {
		r->start = r->end = 0;
		if (r->cap > 4 * READER_MIN) {   /* after a large request: give the memory back */
			uint8_t *small = realloc(r->buf, READER_MIN);
			if (small != NULL) {
				r->buf = small;
				r->cap = READER_MIN;
			}
		}
	}
	if (j == NULL)
		return KM_EMALFORMED;
	*ret = j;
	return KM_EOK;
}

size_t km_ctl_reader_frames(const km_ctl_reader_t *r, size_t max)
{
	size_t n = 0, at = r->start;
	while (n < max && r->end - at >= 4) {
		size_t len = frame_len(r->buf + at);
		if (len > r->max || r->end - at - 4 < len)
			break;
		at += 4 + len;
		n++;
	}
	return n;
}

size_t km_ctl_reader_take_ready(km_ctl_reader_t *r)
{
	if (r->start > 0 && r->cap - r->end < READER_MIN / 2) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->end == r->cap)
		return 0;
	ssize_t n = recv(r->fd, r->buf + r->end, r->cap - r->end, MSG_DONTWAIT);
	if (n <= 0)
		return 0;
	r->end += (size_t)n;
	return (size_t)n;
}

/* ---- the server's writer: replies batched in one buffer, sent together */

#define WRITER_MIN 4096
#define WRITER_KEEP (64 * 1024)   /* a larger buffer is given back after a flush */

struct km_ctl_writer {
	int fd;
	uint8_t *buf;
	size_t cap, len, frames;
};

int km_ctl_writer_create(int fd, km_ctl_writer_t **ret)
{
	km_ctl_writer_t *w = calloc(1, sizeof(*w));
	if (w == NULL || (w->buf = malloc(WRITER_MIN)) == NULL) {
		free(w);
		return KM_ENOMEM;
	}
	w->fd = fd;
	w->cap = WRITER_MIN;
	*ret = w;
	return KM_EOK;
}

void km_ctl_writer_free(km_ctl_writer_t *w)
{
	if (w == NULL)
		return;
	free(w->buf);
	free(w);
}

int km_ctl_writer_add_parts(km_ctl_writer_t *w, const struct iovec *parts, size_t n)
{
	size_t len = 0;
	if (n > KM_CTL_MAX_PARTS)
		return KM_EINVAL;
	for (size_t i = 0; i < n; i++)
		len += parts[i].iov_len;
	if (len > KM_CTL_MAX_REPLY)
		return KM_ERANGE;
	if (w->cap - w->len < 4 + len) {
		size_t cap = w->cap * 2 > w->len + 4 + len ? w->cap * 2 : w->len + 4 + len;
		uint8_t *grown = realloc(w->buf, cap);
		if (grown == NULL)
			return KM_ENOMEM;
		w->buf = grown;
		w->cap = cap;
	}
	uint8_t *p = w->buf + w->len;
	*p++ = (uint8_t)(len >> 24);
	*p++ = (uint8_t)(len >> 16);
	*p++ = (uint8_t)(len >> 8);
	*p++ = (uint8_t)len;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, parts[i].iov_base, parts[i].iov_len);
		p += parts[i].iov_len;
	}
	w->len += 4 + len;
	w->frames++;
	return KM_EOK;
}

int km_ctl_writer_add(km_ctl_writer_t *w, const json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	if (text == NULL)
		return KM_ENOMEM;
	struct iovec part = { text, strlen(text) };
	int r = km_ctl_writer_add_parts(w, &part, 1);
	free(text);
	return r;
}

size_t km_ctl_writer_frames(const km_ctl_writer_t *w)
{
	return w->frames;
}

size_t km_ctl_writer_bytes(const km_ctl_writer_t *w)
{
	return w->len;
}

int km_ctl_writer_flush(km_ctl_writer_t *w)
{
	if (w->len == 0)
		return KM_EOK;
	struct iovec iov = { w->buf, w->len };
	int r = send_iov(w->fd, &iov, 1);
	w->len = 0;
	w->frames = 0;
	if (w->cap > WRITER_KEEP) {
		uint8_t *small = realloc(w->buf, WRITER_MIN);
		if (small != NULL) {
			w->buf = small;
			w->cap = WRITER_MIN;
		}
	}
	return r;
}

static void set_timeouts(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int km_ctl_connect(const char *path, int timeout_ms, int *ret_fd, char *err, size_t errlen)
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
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		int r = e == EACCES || e == EPERM ? KM_EACCES : KM_ENOENT;
		snprintf(err, errlen, r == KM_EACCES
		         ? "no permission to use the control socket %s (mode 0660: join its group)"
		         : "no keymgrd listening on %s (%s)", path, strerror(e));
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return KM_EOK;
}

int km_ctl_exchange(int fd, const char *path, const json_t *req, json_t **reply, char *err,
                    size_t errlen)
{
	int r;
	if ((r = km_ctl_write(fd, req)) != KM_EOK) {
		snprintf(err, errlen, "sending the request to %s failed", path);
	} else if ((r = km_ctl_read(fd, KM_CTL_MAX_REPLY, reply, err, errlen)) != KM_EOK) {
		char why[256];
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "reading the reply from %s: %s", path, why);
	}
	return r;
}

int km_ctl_call(const char *path, const json_t *req, int timeout_ms, json_t **reply,
                char *err, size_t errlen)
{
	int fd = -1;
	int r = km_ctl_connect(path, timeout_ms, &fd, err, errlen);
	if (r != KM_EOK)
		return r;
	r = km_ctl_exchange(fd, path, req, reply, err, errlen);
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

json_t *km_ctl_refusal(const char *msg, const char *code, const char *fallback)
{
	json_t *reply = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", msg, "code", code);
	return reply != NULL ? reply : json_pack("{s:b, s:s, s:s}", "ok", 0, "error", fallback,
	                                         "code", code);
}

const char *km_ctl_code_name(int km_code)
{
	if (km_is_token_error(km_code))
		return "token_error";
	if (km_is_store_error(km_code))
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
