/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Resource limits of the control socket (ctl_limits.c), used by ctl_server.c:
 *   - per peer (uid, from SO_PEERCRED) at most `per_peer` concurrent connections, so that
 *     one local user cannot take all KD_CTL_MAX_CONNECTIONS;
 *   - `reserved` connections kept for privileged peers (root, keymgrd's own user, the users
 *     and groups listed as signers): the others together hold at most max - reserved, so
 *     that local users holding idle connections cannot starve a status or a signature;
 *   - every request frame must arrive whole within KM_CTL_TIMEOUT_MS of its first byte (and
 *     the first one within KM_CTL_TIMEOUT_MS of the connection): a client trickling one byte
 *     at a time (slowloris) is cut off; the acceptor's watchdog shuts the reading side of
 *     late connections down, so their thread sees the end of the stream;
 *   - optionally a request rate per peer (token bucket), refused with {"code":"busy"}.
 * Every function accepts a NULL limits handle (no limits).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define KD_CTL_WATCH_MS 200           /* how often the acceptor checks frame deadlines */
#define KD_CTL_PER_PEER_DEFAULT 48    /* of KD_CTL_MAX_CONNECTIONS (64) */

typedef struct kd_ctl_limits kd_ctl_limits_t;

/*
 * Limits for up to max_conns connections: per_peer connections per uid (0: default), reserved
 * of them for privileged peers (at most max_conns - 1), rate requests per second per uid with
 * bursts of burst (rate 0: no rate limit). KM_EOK or KM_ENOMEM.
 */
int kd_ctl_limits_create(size_t max_conns, unsigned per_peer, unsigned reserved, unsigned rate,
                         unsigned burst, kd_ctl_limits_t **ret);
void kd_ctl_limits_free(kd_ctl_limits_t *l);

/*
 * Registers connection fd of uid (privileged: root, keymgrd's user or a signer) and arms its
 * first frame's deadline. False (nothing registered) when uid already holds per_peer
 * connections, when an unprivileged peer finds the unreserved connections all taken, or when
 * the table is full; why then names that limit (the reply to the refused peer).
 */
bool kd_ctl_limits_admit(kd_ctl_limits_t *l, int fd, uid_t uid, bool privileged, char *why,
                         size_t len);

/* Forgets fd: call before closing it (the watchdog must never touch a reused number). */
void kd_ctl_limits_leave(kd_ctl_limits_t *l, int fd);

/* A frame is read on fd now: it must be complete within KM_CTL_TIMEOUT_MS (a deadline
 * already armed, the connection's first, is kept). frame_end disarms it. */
void kd_ctl_limits_frame_begin(kd_ctl_limits_t *l, int fd);
void kd_ctl_limits_frame_end(kd_ctl_limits_t *l, int fd);

/* Shuts down the reading side of the connections past their deadline. Returns how many. */
size_t kd_ctl_limits_expire(kd_ctl_limits_t *l);

/* Takes one request of uid from its bucket; false (with *retry_ms) when over the rate. */
bool kd_ctl_limits_rate_ok(kd_ctl_limits_t *l, uid_t uid, unsigned *retry_ms);

/* The reply to a request over the rate: {"ok":false,"code":"busy",...}. New reference. */
json_t *kd_ctl_limits_rate_reply(unsigned retry_ms);

/* Answers {"ok":false,"code":"busy","error":msg} and closes fd (a refused connection). */
void kd_ctl_limits_refuse(int fd, const char *msg);
