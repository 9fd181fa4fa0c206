/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control protocol of keymgrd (docs/control-protocol.md), shared by the daemon and the
 * `keymgr status|reload|tick` client: one request and one reply per connection on a Unix
 * stream socket, each a frame of a 4-byte big-endian length followed by that many bytes of
 * one JSON object (UTF-8, no NUL).
 */
#pragma once

#include <jansson.h>
#include <stddef.h>

#define KM_CTL_MAX_REQUEST (64 * 1024)          /* bytes of a request frame's JSON */
#define KM_CTL_MAX_REPLY (16 * 1024 * 1024)     /* bytes of a reply frame's JSON */
#define KM_CTL_TIMEOUT_MS 2000                  /* server side: per request, read and write */

/*
 * Writes msg (a JSON object) as one frame. Returns KM_EOK, KM_ERANGE (over
 * KM_CTL_MAX_REPLY), KM_ENOMEM or KM_EIO (the peer went away or timed out).
 */
int km_ctl_write(int fd, const json_t *msg);

/*
 * Reads one frame of at most max bytes and parses it. *ret receives a new reference to a
 * JSON object. On failure writes why into err: KM_EIO (closed, short or timed out),
 * KM_ERANGE (the announced length is over max; nothing more is read), KM_EMALFORMED (not a
 * JSON object), KM_ENOMEM.
 */
int km_ctl_read(int fd, size_t max, json_t **ret, char *err, size_t errlen);

/*
 * The "code" member of a refused reply, for programs (docs/control-protocol.md): a stable
 * lowercase word per KM code (policy_denied, malformed, unknown_keyset, no_active_key,
 * invalid_name, wrong_env, bad_request, not_served, busy, denied, token_error, store_error,
 * internal). Never NULL.
 */
const char *km_ctl_code_name(int km_code);

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
