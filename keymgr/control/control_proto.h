/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control protocol of keymgrd (docs/control-protocol.md), shared by the daemon and the
 * `keymgr status|reload|tick` client: requests and replies on a Unix stream socket, each a
 * frame of a 4-byte big-endian length followed by that many bytes of one JSON object (UTF-8,
 * no NUL). A connection carries any number of requests; a client may pipeline them (send
 * several before reading), and the replies come back in request order.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#define KM_CTL_MAX_REQUEST (64 * 1024)          /* bytes of a request frame's JSON */
#define KM_CTL_MAX_REPLY (16 * 1024 * 1024)     /* bytes of a reply frame's JSON */
#define KM_CTL_TIMEOUT_MS 2000                  /* server side: per request, read and write */

/*
 * Writes msg (a JSON object) as one frame. Returns KM_EOK, KM_ERANGE (over
 * KM_CTL_MAX_REPLY), KM_ENOMEM or KM_EIO (the peer went away or timed out).
 */
int km_ctl_write(int fd, const json_t *msg);

/* Most parts km_ctl_write_parts() takes. */
#define KM_CTL_MAX_PARTS 8

/*
 * Writes the concatenation of parts[0..n) (the text of one JSON object, which the caller
 * vouches for) as one frame, header and body in one sendmsg(2) when the socket takes it, so
 * the peer wakes once. Returns KM_EOK, KM_EINVAL (more than KM_CTL_MAX_PARTS parts),
 * KM_ERANGE (over KM_CTL_MAX_REPLY) or KM_EIO.
 */
int km_ctl_write_parts(int fd, const struct iovec *parts, size_t n);

/*
 * Reads one frame of at most max bytes and parses it. *ret receives a new reference to a
 * JSON object. On failure writes why into err: KM_EIO (closed, short or timed out),
 * KM_ERANGE (the announced length is over max; nothing more is read), KM_EMALFORMED (not a
 * JSON object), KM_ENOMEM.
 */
int km_ctl_read(int fd, size_t max, json_t **ret, char *err, size_t errlen);

/*
 * A connection's frame reader (the server side): reads what the socket holds into its own
 * buffer, so that a frame usually costs one recv(2), and frames a client sent early are
 * kept for the next call. fd stays the caller's (not closed by free). KM_EOK or KM_ENOMEM.
 */
typedef struct km_ctl_reader km_ctl_reader_t;
int km_ctl_reader_create(int fd, size_t max, km_ctl_reader_t **ret);
void km_ctl_reader_free(km_ctl_reader_t *r);

/* True when bytes of the next frame are already buffered (sent with the previous one): the
 * caller reads it at once, inside its frame deadline, rather than waiting for fd to become
 * readable, which it may never do again if the whole frame is there. */
bool km_ctl_reader_pending(const km_ctl_reader_t *r);

/*
 * The next frame, as km_ctl_read() (same codes and messages): *ret receives a new reference.
 * After KM_ERANGE the stream is out of step: answer and close.
 */
int km_ctl_reader_next(km_ctl_reader_t *r, json_t **ret, char *err, size_t errlen);

/*
 * How many whole frames are buffered, counting up to max: frames answerable without reading
 * the socket (a client pipelining requests sent them early). 0 when the next frame is not
 * whole yet or its length is over the reader's limit (km_ctl_reader_next() then reads or
 * refuses it).
 */
size_t km_ctl_reader_frames(const km_ctl_reader_t *r, size_t max);

/*
 * Reads what the socket already holds into the buffer, without waiting (one recv(2) with
 * MSG_DONTWAIT, into the room the buffer has): the frames a pipelining client sent while the
 * previous ones were answered, or the next request of a client that sent it while the last
 * reply went out (then no poll(2) is needed before it is read). Errors and the end of the
 * stream are left for km_ctl_reader_next() to report. Returns the bytes read (0: nothing
 * there).
 */
size_t km_ctl_reader_take_ready(km_ctl_reader_t *r);

/*
 * A connection's reply batcher (the server side): replies to pipelined requests are
 * appended in order and sent together, in as few send(2) calls as the socket allows, so the
 * client wakes once per batch rather than once per reply. fd stays the caller's.
 * KM_EOK or KM_ENOMEM.
 */
typedef struct km_ctl_writer km_ctl_writer_t;
int km_ctl_writer_create(int fd, km_ctl_writer_t **ret);
void km_ctl_writer_free(km_ctl_writer_t *w);

/* Appends one frame: the concatenation of parts[0..n), as km_ctl_write_parts() writes it.
 * KM_EOK, KM_EINVAL (more than KM_CTL_MAX_PARTS parts), KM_ERANGE, KM_ENOMEM. */
int km_ctl_writer_add_parts(km_ctl_writer_t *w, const struct iovec *parts, size_t n);

/* Appends msg (a JSON object) as one frame. KM_EOK, KM_ERANGE or KM_ENOMEM. */
int km_ctl_writer_add(km_ctl_writer_t *w, const json_t *msg);

/* Frames appended and not sent yet, and their bytes. */
size_t km_ctl_writer_frames(const km_ctl_writer_t *w);
size_t km_ctl_writer_bytes(const km_ctl_writer_t *w);

/* Sends every appended frame, in order (nothing to send: KM_EOK at once). KM_EOK or KM_EIO
 * (the peer went away or did not read within the socket's send timeout). */
int km_ctl_writer_flush(km_ctl_writer_t *w);

/*
 * The "code" member of a refused reply, for programs (docs/control-protocol.md): a stable
 * lowercase word per KM code (policy_denied, malformed, unknown_keyset, no_active_key,
 * invalid_name, wrong_env, bad_request, not_served, busy, denied, token_error, store_error,
 * internal). Never NULL.
 */
const char *km_ctl_code_name(int km_code);

/*
 * A refused reply {"ok": false, "error": msg, "code": code} (a new reference; NULL only when
 * out of memory). A msg that is not valid UTF-8 (a request's bytes echoed, cut) cannot be a
 * JSON string: the reply then says fallback instead, so that a refusal is never lost to its
 * message.
 */
json_t *km_ctl_refusal(const char *msg, const char *code, const char *fallback);

/* The KM code a reply's code stands for (KM_ERROR for unknown or NULL codes). */
int km_ctl_code_value(const char *code);

/*
 * Client side: connects to the daemon's socket at path, sends req and reads the reply
 * (timeout timeout_ms for connecting and for each read/write; 0 = none). *reply receives a
 * new reference. Returns KM_EOK, KM_ENOENT (no daemon listening there), KM_EACCES (no
 * permission on the socket), or the codes of km_ctl_write()/km_ctl_read(); err says which.
 */
int km_ctl_call(const char *path, const json_t *req, int timeout_ms, json_t **reply,
                char *err, size_t errlen);

/* km_ctl_call()'s two halves, for a client that keeps its connection (keymgr-k8s-signer):
 * *ret_fd, a connection to path with the timeouts set (codes and messages of km_ctl_call);
 * then one request and its reply on fd (path only names it in err). */
int km_ctl_connect(const char *path, int timeout_ms, int *ret_fd, char *err, size_t errlen);
int km_ctl_exchange(int fd, const char *path, const json_t *req, json_t **reply, char *err,
                    size_t errlen);
