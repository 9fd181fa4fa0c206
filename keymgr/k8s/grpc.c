/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/k8s/grpc.h"

#define PATH_MAX_LEN 128
#define MAX_STREAMS 32   /* concurrent streams a client may open */

typedef struct stream stream_t;
struct stream {
	stream_t *prev, *next;   /* the connection's open streams */
	int32_t id;
	char path[PATH_MAX_LEN];
	bool path_ok;            /* :path fitted */
	bool grpc_ct;            /* content-type application/grpc[+proto] */
	bool post;
	uint8_t *buf;            /* the request's DATA */
	size_t len;
	bool too_big;
	/* the reply */
	uint8_t *out;            /* 5-byte prefix + message */
	size_t out_len, out_off;
	int status;
	char msg[KM_GRPC_STATUS_MSG_MAX * 3 + 1];   /* percent-encoded */
	bool answered;
};

struct km_grpc_conn {
	nghttp2_session *s;
	km_grpc_handler_fn handler;
	void *handler_ctx;
	km_grpc_write_fn write;
	void *write_ctx;
	bool failed;
	stream_t *streams;
};

static void unlink_stream(km_grpc_conn_t *c, stream_t *st)
{
	if (st->prev != NULL)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next != NULL)
		st->next->prev = st->prev;
}

static void stream_free(stream_t *st)
{
	if (st == NULL)
		return;
	free(st->buf);
	free(st->out);
	free(st);
}

/* grpc-message: percent-encoding of every byte outside 0x20..0x7e and of '%' (gRPC HTTP/2
 * protocol, "Responses"). */
static void percent_encode(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p != '\0' && o + 4 < outlen; p++) {
		if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), \
	           NGHTTP2_NV_FLAG_NO_COPY_NAME }

static int submit_trailers(nghttp2_session *s, stream_t *st)
{
	char code[8];
	snprintf(code, sizeof(code), "%d", st->status);
	nghttp2_nv tr[] = { NV("grpc-status", code), NV("grpc-message", st->msg) };
	return nghttp2_submit_trailer(s, st->id, tr, st->msg[0] ? 2 : 1);
}

static ssize_t read_reply(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                          uint32_t *flags, nghttp2_data_source *src, void *user)
{
	(void)id;
	(void)user;
	stream_t *st = src->ptr;
	size_t n = st->out_len - st->out_off;
	if (n > length)
		n = length;
	memcpy(buf, st->out + st->out_off, n);
	st->out_off += n;
	if (st->out_off == st->out_len) {
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (submit_trailers(s, st) != 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return (ssize_t)n;
}

/* Answers a complete request (or one that can never be). */
static void answer(km_grpc_conn_t *c, stream_t *st)
{
	km_grpc_reply_t r = { .status = KM_GRPC_INTERNAL };
	if (st->answered)
		return;
	st->answered = true;
	if (!st->post || !st->path_ok) {
		r.status = KM_GRPC_UNIMPLEMENTED;
		snprintf(r.msg, sizeof(r.msg), "expected a POST to /PACKAGE.SERVICE/METHOD");
	} else if (!st->grpc_ct) {
		r.status = KM_GRPC_INVALID_ARGUMENT;   /* a gRPC server answers 415; clients read 3 */
		snprintf(r.msg, sizeof(r.msg), "content-type must be application/grpc");
	} else if (st->too_big) {
		r.status = KM_GRPC_RESOURCE_EXHAUSTED;
		snprintf(r.msg, sizeof(r.msg), "request message longer than %d bytes",
		         KM_GRPC_MSG_MAX);
	} else if (st->len < 5) {
		r.status = KM_GRPC_INVALID_ARGUMENT;
		snprintf(r.msg, sizeof(r.msg), "no request message");
	} else if (st->buf[0] != 0) {
		r.status = KM_GRPC_UNIMPLEMENTED;
		snprintf(r.msg, sizeof(r.msg), "compressed messages are not supported");
	} else {
		size_t n = (size_t)st->buf[1] << 24 | (size_t)st->buf[2] << 16 |
		           (size_t)st->buf[3] << 8 | st->buf[4];
		if (n + 5 != st->len) {
			r.status = KM_GRPC_INVALID_ARGUMENT;
			snprintf(r.msg, sizeof(r.msg), "expected exactly one length-prefixed message");
		} else {
			c->handler(c->handler_ctx, st->path, st->buf + 5, n, &r);
		}
	}
	free(st->buf);
	st->buf = NULL;
	st->status = r.status;
	percent_encode(r.msg, st->msg, sizeof(st->msg));
	nghttp2_nv hd[] = {
		NV(":status", "200"), NV("content-type", "application/grpc"),
		NV("grpc-status", ""), NV("grpc-message", st->msg),
	};
	int rv;
	if (r.status == KM_GRPC_OK && r.resp_len <= UINT32_MAX &&
	    (st->out = malloc(r.resp_len + 5)) != NULL) {
		st->out[0] = 0;
		st->out[1] = (uint8_t)(r.resp_len >> 24);
		st->out[2] = (uint8_t)(r.resp_len >> 16);
		st->out[3] = (uint8_t)(r.resp_len >> 8);
		st->out[4] = (uint8_t)r.resp_len;
		if (r.resp_len > 0)
			memcpy(st->out + 5, r.resp, r.resp_len);
		st->out_len = r.resp_len + 5;
		nghttp2_data_provider dp = { .source.ptr = st, .read_callback = read_reply };
		rv = nghttp2_submit_response(c->s, st->id, hd, 2, &dp);
	} else {
		if (r.status == KM_GRPC_OK) {
			st->status = KM_GRPC_INTERNAL;
			snprintf(st->msg, sizeof(st->msg), "out of memory");
		}
		char code[8];
		snprintf(code, sizeof(code), "%d", st->status);
		hd[2].value = (uint8_t *)code;
		hd[2].valuelen = strlen(code);
		hd[3].valuelen = strlen(st->msg);
		/* trailers-only: one HEADERS frame ending the stream */
		rv = nghttp2_submit_response(c->s, st->id, hd, st->msg[0] ? 4 : 3, NULL);
	}
	free(r.resp);
	if (rv != 0)
		nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	km_grpc_conn_t *c = user;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	stream_t *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	st->id = f->hd.stream_id;
	if (nghttp2_session_set_stream_user_data(s, st->id, st) != 0) {
		free(st);
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	st->next = c->streams;
	if (c->streams != NULL)
		c->streams->prev = st;
	c->streams = st;
	return 0;
}

static bool is(const uint8_t *v, size_t len, const char *s)
{
	return len == strlen(s) && memcmp(v, s, len) == 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
	(void)flags;
	(void)user;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;   /* trailers from a client: ignored */
	stream_t *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (st == NULL)
		return 0;
	if (is(name, namelen, ":path")) {
		st->path_ok = valuelen > 0 && valuelen < sizeof(st->path) && value[0] == '/' &&
		              memchr(value, '\0', valuelen) == NULL;
		if (st->path_ok) {
			memcpy(st->path, value, valuelen);
			st->path[valuelen] = '\0';
		}
	} else if (is(name, namelen, ":method")) {
		st->post = is(value, valuelen, "POST");
	} else if (is(name, namelen, "content-type")) {
		st->grpc_ct = is(value, valuelen, "application/grpc") ||
		              (valuelen > 17 && memcmp(value, "application/grpc+", 17) == 0) ||
		              (valuelen > 17 && memcmp(value, "application/grpc;", 17) == 0);
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
	(void)flags;
	(void)user;
	stream_t *st = nghttp2_session_get_stream_user_data(s, id);
	if (st == NULL || st->too_big || st->answered)
		return 0;
	if (st->len + len > KM_GRPC_MSG_MAX + 5) {
		st->too_big = true;   /* the rest is dropped; answered at the end of the stream */
		free(st->buf);
		st->buf = NULL;
		st->len = 0;
		return 0;
	}
	uint8_t *b = realloc(st->buf, st->len + len);
	if (b == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	memcpy(b + st->len, data, len);
	st->buf = b;
	st->len += len;
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	km_grpc_conn_t *c = user;
	if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	stream_t *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (st != NULL)
		answer(c, st);
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
	(void)code;
	stream_t *st = nghttp2_session_get_stream_user_data(s, id);
	if (st != NULL) {
		nghttp2_session_set_stream_user_data(s, id, NULL);
		unlink_stream(user, st);
		stream_free(st);
	}
	return 0;
}

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags,
                       void *user)
{
	(void)s;
	(void)flags;
	km_grpc_conn_t *c = user;
	ssize_t n = c->write(c->write_ctx, data, len);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? NGHTTP2_ERR_WOULDBLOCK
		                                               : NGHTTP2_ERR_CALLBACK_FAILURE;
	return n;
}

int km_grpc_conn_create(km_grpc_handler_fn handler, void *handler_ctx, km_grpc_write_fn write,
                        void *write_ctx, km_grpc_conn_t **ret)
{
	km_grpc_conn_t *c = calloc(1, sizeof(*c));
	nghttp2_session_callbacks *cb = NULL;
	if (c == NULL || nghttp2_session_callbacks_new(&cb) != 0) {
		free(c);
		return KM_ENOMEM;
	}
	c->handler = handler;
	c->handler_ctx = handler_ctx;
	c->write = write;
	c->write_ctx = write_ctx;
	nghttp2_session_callbacks_set_send_callback(cb, on_send);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	int rv = nghttp2_session_server_new(&c->s, cb, c);
	nghttp2_session_callbacks_del(cb);
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384 },
	};
	if (rv != 0 || nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 2) != 0) {
		km_grpc_conn_free(c);
		return KM_ENOMEM;
	}
	*ret = c;
	return KM_EOK;
}

void km_grpc_conn_free(km_grpc_conn_t *c)
{
	if (c == NULL)
		return;
	nghttp2_session_del(c->s);
	while (c->streams != NULL) {
		stream_t *st = c->streams;
		unlink_stream(c, st);
		stream_free(st);
	}
	free(c);
}

int km_grpc_conn_recv(km_grpc_conn_t *c, const uint8_t *data, size_t len)
{
	ssize_t n = nghttp2_session_mem_recv(c->s, data, len);
	if (n < 0) {
		c->failed = true;
		return KM_EMALFORMED;
	}
	return KM_EOK;
}

int km_grpc_conn_send(km_grpc_conn_t *c)
{
	if (nghttp2_session_send(c->s) != 0) {
		c->failed = true;
		return KM_EIO;
	}
	return KM_EOK;
}

bool km_grpc_conn_want_write(const km_grpc_conn_t *c)
{
	return !c->failed && nghttp2_session_want_write(c->s);
}

bool km_grpc_conn_done(const km_grpc_conn_t *c)
{
	return c->failed ||
	       (!nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s));
}
