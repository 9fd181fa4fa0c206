/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/front/channel.h"

/* ---------------------------------------------------------------- writing */

static void reserve(km_chan_buf_t *b, size_t more)
{
	if (b->oom || b->len + more <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more)
		cap *= 2;
	uint8_t *nb = cap <= KM_CHAN_FRAME_MAX + 4 ? realloc(b->buf, cap) : NULL;
	if (nb == NULL) {
		b->oom = true;
		return;
	}
	b->buf = nb;
	b->cap = cap;
}

static void put(km_chan_buf_t *b, const void *p, size_t n)
{
	reserve(b, n);
	if (b->oom)
		return;
	memcpy(b->buf + b->len, p, n);
	b->len += n;
}

void km_chan_begin(km_chan_buf_t *b, km_chan_type_t type)
{
	b->len = 0;
	b->oom = false;
	uint8_t hdr[5] = { 0, 0, 0, 0, (uint8_t)type };
	put(b, hdr, sizeof(hdr));
}

void km_chan_put_u8(km_chan_buf_t *b, uint8_t v)
{
	put(b, &v, 1);
}

void km_chan_put_u32(km_chan_buf_t *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	put(b, x, sizeof(x));
}

void km_chan_put_i64(km_chan_buf_t *b, int64_t v)
{
	uint64_t u = (uint64_t)v;
	km_chan_put_u32(b, (uint32_t)(u >> 32));
	km_chan_put_u32(b, (uint32_t)u);
}

void km_chan_put_str(km_chan_buf_t *b, const char *s, size_t len)
{
	km_chan_put_u32(b, (uint32_t)len);
	put(b, s, len);
}

void km_chan_buf_free(km_chan_buf_t *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

void km_chan_config(km_chan_buf_t *b, const km_chan_config_t *c)
{
	km_chan_begin(b, KM_CHAN_CONFIG);
	km_chan_put_u32(b, c->threads);
	km_chan_put_u32(b, c->conn_limit);
	km_chan_put_u32(b, c->per_ip_limit);
	km_chan_put_u32(b, c->conn_timeout);
	km_chan_put_u32(b, c->rate_limit);
	km_chan_put_u32(b, c->rate_burst);
	km_chan_put_i64(b, (int64_t)c->max_header_size);
	km_chan_put_i64(b, (int64_t)c->max_verifiers);
	km_chan_put_u8(b, c->admin);
	km_chan_put_str(b, c->user, strlen(c->user));
}

void km_chan_publish(km_chan_buf_t *b, const km_chan_doc_t *d)
{
	km_chan_begin(b, KM_CHAN_PUBLISH);
	km_chan_put_str(b, d->path, strlen(d->path));
	km_chan_put_i64(b, d->serial);
	km_chan_put_u32(b, d->max_age);
	km_chan_put_i64(b, d->last_modified);
	km_chan_put_str(b, d->body, d->len);
}

void km_chan_path(km_chan_buf_t *b, km_chan_type_t type, const char *path)
{
	km_chan_begin(b, type);
	km_chan_put_str(b, path, strlen(path));
}

void km_chan_health(km_chan_buf_t *b, bool ok)
{
	km_chan_begin(b, KM_CHAN_HEALTH);
	km_chan_put_u8(b, ok);
}

void km_chan_text(km_chan_buf_t *b, km_chan_type_t type, const char *text, size_t len)
{
	km_chan_begin(b, type);
	km_chan_put_str(b, text != NULL ? text : "", text != NULL ? len : 0);
}

void km_chan_listed(km_chan_buf_t *b, const char *const *names, size_t n)
{
	km_chan_begin(b, KM_CHAN_LISTED);
	km_chan_put_u32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		km_chan_put_str(b, names[i], strlen(names[i]));
}

void km_chan_pickup(km_chan_buf_t *b, const km_http_verifier_t *rows, size_t n)
{
	km_chan_begin(b, KM_CHAN_PICKUP);
	km_chan_put_u32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		const km_http_verifier_t *v = &rows[i];
		km_chan_put_u8(b, (uint8_t)((v->named ? 1 : 0) | (v->by_304 ? 2 : 0)));
		km_chan_put_str(b, v->id, strlen(v->id));
		km_chan_put_str(b, v->path, strlen(v->path));
		km_chan_put_i64(b, v->serial);
		km_chan_put_i64(b, (int64_t)v->last_seen);
		km_chan_put_i64(b, (int64_t)v->fetches);
	}
}

int km_chan_send(int fd, km_chan_buf_t *b)
{
	if (b->oom || b->len < 5 || b->len - 4 > KM_CHAN_FRAME_MAX)
		return KM_ENOMEM;
	uint32_t n = (uint32_t)(b->len - 4);
	b->buf[0] = (uint8_t)(n >> 24);
	b->buf[1] = (uint8_t)(n >> 16);
	b->buf[2] = (uint8_t)(n >> 8);
	b->buf[3] = (uint8_t)n;
	for (size_t off = 0; off < b->len;) {
		ssize_t w = send(fd, b->buf + off, b->len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return KM_EIO;
		off += (size_t)w;
	}
	return KM_EOK;
}

/* ---------------------------------------------------------------- reading */

/* Reads exactly n bytes. 1 done, 0 the peer closed before the first byte, -1 error. */
static int read_all(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 && got == 0)
			return 0;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 1;
}

int km_chan_recv(int fd, uint8_t **buf, size_t *cap, km_chan_msg_t *m)
{
	uint8_t hdr[4];
	int r = read_all(fd, hdr, sizeof(hdr));
	if (r == 0)
		return KM_ENOENT;
	if (r < 0)
		return KM_EIO;
	uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 |
	             hdr[3];
	if (n == 0 || n > KM_CHAN_FRAME_MAX)
		return KM_EMALFORMED;
	if (*cap < n) {
		uint8_t *nb = realloc(*buf, n);
		if (nb == NULL)
			return KM_ENOMEM;
		*buf = nb;
		*cap = n;
	}
	if (read_all(fd, *buf, n) != 1)
		return KM_EMALFORMED;
	memset(m, 0, sizeof(*m));
	m->type = (km_chan_type_t)(*buf)[0];
	m->p = *buf + 1;
	m->len = n - 1;
	return KM_EOK;
}

static const uint8_t *take(km_chan_msg_t *m, size_t n)
{
	if (m->bad || n > m->len - m->pos) {
		m->bad = true;
		return NULL;
	}
	const uint8_t *p = m->p + m->pos;
	m->pos += n;
	return p;
}

uint8_t km_chan_get_u8(km_chan_msg_t *m)
{
	const uint8_t *p = take(m, 1);
	return p ? p[0] : 0;
}

uint32_t km_chan_get_u32(km_chan_msg_t *m)
{
	const uint8_t *p = take(m, 4);
	return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

int64_t km_chan_get_i64(km_chan_msg_t *m)
{
	uint64_t hi = km_chan_get_u32(m), lo = km_chan_get_u32(m);
	return (int64_t)(hi << 32 | lo);
}

const char *km_chan_get_blob(km_chan_msg_t *m, size_t *len)
{
	uint32_t n = km_chan_get_u32(m);
	const uint8_t *p = take(m, n);
	*len = p ? n : 0;
	return p ? (const char *)p : "";
}

void km_chan_get_str(km_chan_msg_t *m, char *out, size_t max)
{
	size_t n = 0;
	const char *p = km_chan_get_blob(m, &n);
	if (n > max || memchr(p, '\0', n) != NULL) {
		m->bad = true;
		n = 0;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

/* A frame read to its end and no further: anything left over is malformed too. */
static int done(km_chan_msg_t *m)
{
	return m->bad || m->pos != m->len ? KM_EMALFORMED : KM_EOK;
}

int km_chan_get_config(km_chan_msg_t *m, km_chan_config_t *c)
{
	memset(c, 0, sizeof(*c));
	c->threads = km_chan_get_u32(m);
	c->conn_limit = km_chan_get_u32(m);
	c->per_ip_limit = km_chan_get_u32(m);
	c->conn_timeout = km_chan_get_u32(m);
	c->rate_limit = km_chan_get_u32(m);
	c->rate_burst = km_chan_get_u32(m);
	c->max_header_size = (uint64_t)km_chan_get_i64(m);
	c->max_verifiers = (uint64_t)km_chan_get_i64(m);
	c->admin = km_chan_get_u8(m) != 0;
	km_chan_get_str(m, c->user, KM_CHAN_NAME_MAX);
	return done(m);
}

int km_chan_get_publish(km_chan_msg_t *m, km_chan_doc_t *d)
{
	memset(d, 0, sizeof(*d));
	km_chan_get_str(m, d->path, KM_HTTP_PATH_MAX);
	d->serial = km_chan_get_i64(m);
	d->max_age = km_chan_get_u32(m);
	d->last_modified = km_chan_get_i64(m);
	d->body = km_chan_get_blob(m, &d->len);
	return done(m);
}

int km_chan_get_pickup(km_chan_msg_t *m, void (*fn)(void *ctx, const km_http_verifier_t *v),
                       void *ctx)
{
	uint32_t n = km_chan_get_u32(m);
	if (n > KM_CHAN_FRAME_MAX / 32)
		return KM_EMALFORMED;
	for (uint32_t i = 0; i < n; i++) {
		km_http_verifier_t v;
		memset(&v, 0, sizeof(v));
		uint8_t flags = km_chan_get_u8(m);
		v.named = (flags & 1) != 0;
		v.by_304 = (flags & 2) != 0;
		km_chan_get_str(m, v.id, KM_HTTP_VERIFIER_ID_MAX);
		km_chan_get_str(m, v.path, KM_HTTP_PATH_MAX);
		v.serial = km_chan_get_i64(m);
		v.last_seen = (time_t)km_chan_get_i64(m);
		v.fetches = (uint64_t)km_chan_get_i64(m);
		if (m->bad || (flags & ~3u) != 0 || v.id[0] == '\0' || v.path[0] != '/')
			return KM_EMALFORMED;
		fn(ctx, &v);
	}
	return done(m);
}
