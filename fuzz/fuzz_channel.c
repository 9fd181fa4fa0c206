/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the channel between keymgrd and its listener (keymgr/front/channel.h),
 * from the bytes on the socket to the decoded frames, as either end reads them. A listener
 * taken over by an attacker writes whatever it likes to keymgrd, so keymgrd's reader is an
 * attack surface like the HTTP parser.
 *
 * The input is written to one end of a real Unix socket pair (then shut down) and read back
 * with km_chan_recv() until it fails; each frame is decoded by every decoder that applies to
 * its type. Invariants (abort on violation): a frame is never longer than KM_CHAN_FRAME_MAX;
 * a decoder that accepts a frame consumed it exactly; a decoded string is NUL-free and within
 * its limit; encoding what was decoded and decoding that again gives the same fields
 * (CONFIG, PUBLISH, PICKUP, LISTED).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/front/channel.h"

#define INPUT_MAX 65536   /* fits the socket buffer: written whole before reading */

static km_chan_msg_t reencode(km_chan_buf_t *b)
{
	km_chan_msg_t m;
	memset(&m, 0, sizeof(m));
	if (b->oom || b->len < 5)
		abort();
	m.type = (km_chan_type_t)b->buf[4];
	m.p = b->buf + 5;
	m.len = b->len - 5;
	return m;
}

typedef struct {
	km_http_verifier_t rows[64];
	size_t n;
} rows_t;

static void collect(void *ctx, const km_http_verifier_t *v)
{
	rows_t *r = ctx;
	if (strlen(v->id) > KM_HTTP_VERIFIER_ID_MAX || strlen(v->path) > KM_HTTP_PATH_MAX ||
	    v->path[0] != '/')
		abort();
	if (r->n < 64)
		r->rows[r->n] = *v;
	r->n++;
}

static void check_frame(km_chan_msg_t *m)
{
	km_chan_buf_t b = { 0 };
	km_chan_msg_t c = *m;
	switch (m->type) {
	case KM_CHAN_CONFIG: {
		km_chan_config_t cfg, again;
		if (km_chan_get_config(&c, &cfg) != KM_EOK)
			break;
		if (c.pos != c.len || strlen(cfg.user) > KM_CHAN_NAME_MAX)
			abort();
		km_chan_config(&b, &cfg);
		km_chan_msg_t r = reencode(&b);
		if (km_chan_get_config(&r, &again) != KM_EOK || memcmp(&cfg, &again, sizeof(cfg)))
			abort();
		break;
	}
	case KM_CHAN_PUBLISH: {
		km_chan_doc_t d, again;
		if (km_chan_get_publish(&c, &d) != KM_EOK)
			break;
		if (c.pos != c.len || strlen(d.path) > KM_HTTP_PATH_MAX)
			abort();
		km_chan_publish(&b, &d);
		km_chan_msg_t r = reencode(&b);
		if (km_chan_get_publish(&r, &again) != KM_EOK || strcmp(d.path, again.path) ||
		    d.serial != again.serial || d.max_age != again.max_age ||
		    d.last_modified != again.last_modified || d.len != again.len ||
		    memcmp(d.body, again.body, d.len))
			abort();
		break;
	}
	case KM_CHAN_PICKUP: {
		rows_t got = { .n = 0 }, again = { .n = 0 };
		if (km_chan_get_pickup(&c, collect, &got) != KM_EOK || got.n > 64)
			break;
		km_chan_pickup(&b, got.rows, got.n);
		km_chan_msg_t r = reencode(&b);
		if (km_chan_get_pickup(&r, collect, &again) != KM_EOK || again.n != got.n ||
		    memcmp(got.rows, again.rows, got.n * sizeof(got.rows[0])))
			abort();
		break;
	}
	case KM_CHAN_LISTED: {
		uint32_t n = km_chan_get_u32(&c);
		char names[16][KM_HTTP_VERIFIER_NAME_MAX + 1];
		const char *ptrs[16];
		if (n > 16)
			break;
		for (uint32_t i = 0; i < n; i++) {
			km_chan_get_str(&c, names[i], KM_HTTP_VERIFIER_NAME_MAX);
			ptrs[i] = names[i];
		}
		if (c.bad || c.pos != c.len)
			break;
		km_chan_listed(&b, ptrs, n);
		km_chan_msg_t r = reencode(&b);
		if (km_chan_get_u32(&r) != n)
			abort();
		for (uint32_t i = 0; i < n; i++) {
			char again[KM_HTTP_VERIFIER_NAME_MAX + 1];
			km_chan_get_str(&r, again, KM_HTTP_VERIFIER_NAME_MAX);
			if (r.bad || strcmp(again, names[i]) != 0)
				abort();
		}
		break;
	}
	default: {
		/* UNPUBLISH, FAILED, METRICS, HEALTH, READY, unknown types: the string and
		 * number readers never read past the payload */
		char s[KM_HTTP_PATH_MAX + 1];
		km_chan_get_str(&c, s, KM_HTTP_PATH_MAX);
		if (!c.bad && (c.pos > c.len || strlen(s) > KM_HTTP_PATH_MAX))
			abort();
		c = *m;
		(void)km_chan_get_u8(&c);
		(void)km_chan_get_u32(&c);
		if (c.pos > c.len)
			abort();
		break;
	}
	}
	km_chan_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > INPUT_MAX)
		return 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	int sz = INPUT_MAX * 2;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	for (size_t off = 0; off < size;) {
		ssize_t w = write(sv[0], data + off, size - off);
		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	shutdown(sv[0], SHUT_WR);
	uint8_t *buf = NULL;
	size_t cap = 0;
	km_chan_msg_t m;
	while (km_chan_recv(sv[1], &buf, &cap, &m) == KM_EOK) {
		if (m.len + 1 > KM_CHAN_FRAME_MAX)
			abort();
		check_frame(&m);
	}
	free(buf);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
