/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC over HTTP/2 for unary calls (grpc.c), on nghttp2: enough of the gRPC wire protocol
 * for a server of unary methods. Per stream: request HEADERS (:method POST, :path
 * "/PACKAGE.SERVICE/METHOD", content-type application/grpc[+proto]), DATA holding exactly
 * one length-prefixed message (1 byte compressed flag, which must be 0; 4 bytes big-endian
 * length; the bytes), END_STREAM; the reply is HEADERS (:status 200, content-type), one
 * DATA message, then trailers with grpc-status (and grpc-message, percent-encoded). A
 * failure before any reply message is a trailers-only response. No compression, no
 * streaming methods, no deadline propagation (the handler is quick).
 *
 * Knows nothing of the service: each complete request goes to the handler. The transport
 * is the caller's: km_grpc_conn_recv() takes the bytes read from the socket, and
 * km_grpc_conn_send() writes what nghttp2 wants to send through the write callback, which
 * may report EAGAIN; nothing here blocks or reads a clock.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* gRPC status codes used here (grpc/status.h). */
enum {
	KM_GRPC_OK = 0,
	KM_GRPC_INVALID_ARGUMENT = 3,
	KM_GRPC_NOT_FOUND = 5,
	KM_GRPC_PERMISSION_DENIED = 7,
	KM_GRPC_RESOURCE_EXHAUSTED = 8,
	KM_GRPC_FAILED_PRECONDITION = 9,
	KM_GRPC_UNIMPLEMENTED = 12,
	KM_GRPC_INTERNAL = 13,
	KM_GRPC_UNAVAILABLE = 14,
};

#define KM_GRPC_MSG_MAX (64 * 1024)   /* longest request message accepted */
#define KM_GRPC_STATUS_MSG_MAX 512

/*
 * A handler's answer: status KM_GRPC_OK with resp (malloc'd, resp_len bytes; taken over),
 * or another status with msg (one line).
 */
typedef struct {
	int status;
	char msg[KM_GRPC_STATUS_MSG_MAX];
	uint8_t *resp;
	size_t resp_len;
} km_grpc_reply_t;

/* Called for each complete request: path as sent, the message bytes. Fills *reply. */
typedef void (*km_grpc_handler_fn)(void *ctx, const char *path, const uint8_t *msg, size_t len,
                                   km_grpc_reply_t *reply);
/* Writes len bytes: the count written, -1 with errno EAGAIN to try later, -1 on error. */
typedef ssize_t (*km_grpc_write_fn)(void *ctx, const uint8_t *data, size_t len);

typedef struct km_grpc_conn km_grpc_conn_t;

/* *ret: a server connection (the HTTP/2 SETTINGS are queued). KM_EOK, KM_ENOMEM. */
int km_grpc_conn_create(km_grpc_handler_fn handler, void *handler_ctx, km_grpc_write_fn write,
                        void *write_ctx, km_grpc_conn_t **ret);
void km_grpc_conn_free(km_grpc_conn_t *c);
/* Feeds bytes read from the peer (handlers run from here). KM_EOK, or KM_EMALFORMED when the
 * peer broke HTTP/2 (the connection is to be closed after a last km_grpc_conn_send). */
int km_grpc_conn_recv(km_grpc_conn_t *c, const uint8_t *data, size_t len);
/* Writes what is pending, until done or EAGAIN. KM_EOK, KM_EIO. */
int km_grpc_conn_send(km_grpc_conn_t *c);
/* Whether the connection has something to write (wait for POLLOUT). */
bool km_grpc_conn_want_write(const km_grpc_conn_t *c);
/* Whether the connection is over (both sides done, or a fatal error). */
bool km_grpc_conn_done(const km_grpc_conn_t *c);
