/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one channel between keymgrd and the process that faces the network (its listener,
 * keymgrd-listener: docs/architecture.md, "The listener"). keymgrd holds the PINs, the token
 * sessions and the stores; the listener holds none of them and parses every HTTP request.
 * What crosses is documents and health out, and evidence of who fetched what back:
 *
 *   keymgrd -> listener   CONFIG (once, first), PUBLISH, UNPUBLISH, HEALTH, METRICS, LISTED,
 *                         LISTEN (start accepting: the documents are there)
 *   listener -> keymgrd   READY (sandboxed, serving: whether seccomp is on, its uid),
 *                         PICKUP (verifier rows changed),
 *                         FAILED (why it stops, then it exits)
 *
 * A frame is a 4-byte big-endian length, then that many bytes: a type byte and its payload.
 * The payloads are fixed fields and length-prefixed strings (KM_CHAN_*); nothing in them is
 * trusted beyond its bounds by the reader: every string is checked against its limit and
 * NUL-free, every frame against KM_CHAN_FRAME_MAX. Later users of this channel (followers of
 * a highly available keymgrd, the Kubernetes signer, static publishing) add frame types; an
 * unknown type is refused by both sides (a version skew is an error, not a silent drop).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/http/http_server.h"

#define KM_CHAN_FRAME_MAX (8u * 1024 * 1024)   /* a JWKS of thousands of keys fits */
#define KM_CHAN_NAME_MAX 64                    /* a Unix user name */

typedef enum {
	KM_CHAN_CONFIG = 1,
	KM_CHAN_PUBLISH = 2,
	KM_CHAN_UNPUBLISH = 3,
	KM_CHAN_HEALTH = 4,
	KM_CHAN_METRICS = 5,
	KM_CHAN_LISTED = 6,
	KM_CHAN_LISTEN = 7,
	KM_CHAN_READY = 64,
	KM_CHAN_PICKUP = 65,
	KM_CHAN_FAILED = 66,
} km_chan_type_t;

/* What the listener needs to serve (km_http_cfg_t's limits), and who it runs as. */
typedef struct {
	unsigned threads, conn_limit, per_ip_limit, conn_timeout, rate_limit, rate_burst;
	uint64_t max_header_size, max_verifiers;
	bool admin;                         /* an admin socket was passed too */
	char user[KM_CHAN_NAME_MAX + 1];    /* drop to this user ("" : stay, when not root) */
} km_chan_config_t;

/* One document to serve (PUBLISH). body points into the frame (len bytes). */
typedef struct {
	char path[KM_HTTP_PATH_MAX + 1];
	int64_t serial;
	uint32_t max_age;
	int64_t last_modified;
	const char *body;
	size_t len;
} km_chan_doc_t;

/* A growable frame being written. */
typedef struct {
	uint8_t *buf;
	size_t len, cap;
	bool oom;
} km_chan_buf_t;

/* ---- writing ---- */

/* Starts a frame of this type in b (reusing its buffer). */
void km_chan_begin(km_chan_buf_t *b, km_chan_type_t type);
void km_chan_put_u8(km_chan_buf_t *b, uint8_t v);
void km_chan_put_u32(km_chan_buf_t *b, uint32_t v);
void km_chan_put_i64(km_chan_buf_t *b, int64_t v);
/* A string: u32 length, then the bytes (no NUL). */
void km_chan_put_str(km_chan_buf_t *b, const char *s, size_t len);
void km_chan_buf_free(km_chan_buf_t *b);

/* Frames of each type. */
void km_chan_config(km_chan_buf_t *b, const km_chan_config_t *c);
void km_chan_publish(km_chan_buf_t *b, const km_chan_doc_t *d);
void km_chan_path(km_chan_buf_t *b, km_chan_type_t type, const char *path);
void km_chan_health(km_chan_buf_t *b, bool ok);
void km_chan_text(km_chan_buf_t *b, km_chan_type_t type, const char *text, size_t len);
void km_chan_listed(km_chan_buf_t *b, const char *const *names, size_t n);
void km_chan_pickup(km_chan_buf_t *b, const km_http_verifier_t *rows, size_t n);

/*
 * Sends the frame in b on fd (blocking, whole frame; MSG_NOSIGNAL). KM_EOK, KM_ENOMEM (the
 * frame could not be built), KM_EIO (the peer is gone or the socket failed: errno kept).
 */
int km_chan_send(int fd, km_chan_buf_t *b);

/* ---- reading ---- */

/* A frame read whole: its type and payload (owned by the reader). */
typedef struct {
	km_chan_type_t type;
	const uint8_t *p;
	size_t len, pos;
	bool bad;            /* a read went past the payload, or a string broke its rules */
} km_chan_msg_t;

/*
 * Reads one whole frame from fd into *buf (grown as needed, caller frees) and describes it
 * in *m. KM_EOK, KM_ENOENT (the peer closed the channel at a frame boundary), KM_EMALFORMED
 * (too long, empty or cut), KM_EIO, KM_ENOMEM.
 */
int km_chan_recv(int fd, uint8_t **buf, size_t *cap, km_chan_msg_t *m);

uint8_t km_chan_get_u8(km_chan_msg_t *m);
uint32_t km_chan_get_u32(km_chan_msg_t *m);
int64_t km_chan_get_i64(km_chan_msg_t *m);
/* A string of at most max bytes, NUL-free, copied into out (max + 1 bytes). */
void km_chan_get_str(km_chan_msg_t *m, char *out, size_t max);
/* A string of any length up to the payload, not copied: *len bytes at the return value. */
const char *km_chan_get_blob(km_chan_msg_t *m, size_t *len);

/* Decoders of each frame: KM_EOK, or KM_EMALFORMED (the frame breaks its layout). */
int km_chan_get_config(km_chan_msg_t *m, km_chan_config_t *c);
int km_chan_get_publish(km_chan_msg_t *m, km_chan_doc_t *d);
/*
 * PICKUP: calls fn for each row (n at most KM_CHAN_FRAME_MAX / 32). Stops at the first
 * malformed row (KM_EMALFORMED).
 */
int km_chan_get_pickup(km_chan_msg_t *m, void (*fn)(void *ctx, const km_http_verifier_t *v),
                       void *ctx);
