/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The signing service (signer.c): per environment a signing token and the key sets' resolved
 * keys and signers, swapped under a rwlock. Control connection threads sign through it; the
 * main thread builds and swaps what they use.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "keymgr/daemon/authz.h"
#include "keymgr/daemon/state.h"

int kd_signing_create(kd_signing_t **ret);
/* Closes the signing tokens. The control threads must be stopped. NULL ok. */
void kd_signing_free(kd_signing_t *s);
/* The eventfd to write when audit events are queued (-1: none). */
void kd_signing_set_wake(kd_signing_t *s, int fd);
/* Whether some key set of e lists signers. */
bool kd_signing_configured(const kd_env_t *e);
/* Whether env has a signing context (its scheduler token then stays open too). */
bool kd_signing_env_open(kd_daemon_t *d, const char *env);
/* Main thread: creates/drops contexts, opens tokens (with backoff), swaps in changed keys. */
void kd_signing_sync(kd_daemon_t *d, int64_t now);
/* Main thread: the write lock, held across a change of the active key and its swap. */
void kd_signing_write_lock(kd_daemon_t *d);
void kd_signing_write_unlock(kd_daemon_t *d);
/* With the write lock held: re-resolves e's key sets from its store and configuration. */
void kd_signing_refresh_locked(kd_daemon_t *d, kd_env_t *e);
/* With the write lock held, after a successful reload: contexts follow the new config. */
void kd_signing_reloaded_locked(kd_daemon_t *d);
/* Without the lock: looks kid up in e's signing token, so its handle is cached. */
void kd_signing_warm_kid(kd_daemon_t *d, kd_env_t *e, const char *kid);
/* Main thread: records the queued sign.denied events, and the repeats of every denial
 * window that has passed (denials.h). */
void kd_signing_flush_audit(kd_daemon_t *d);
/* Main thread, once no signer runs (keymgrd stopping): the same, every window closed. */
void kd_signing_flush_final(kd_daemon_t *d);
/* Control thread: answers {"op":"sign",...} for peer p. Signed: returns NULL and sets *jwt
 * (malloc'd; the reply is {"ok":true,"jwt":JWT}). Otherwise *jwt = NULL and the refusal
 * reply is returned (new reference; NULL when out of memory). */
json_t *kd_signing_request(kd_signing_t *s, const kd_peer_t *p, json_t *req, char **jwt);
/* Any thread: whether p is among the signers of some key set keymgrd signs for (the
 * control connections reserved for signers, ctl_limits.h). */
bool kd_signing_is_signer(kd_signing_t *s, const kd_peer_t *p);
/* For a connection thread about to wait for its next request, which signed last in env:
 * runs the C_SignInit of one session of env's signing token whose last signature used an EC
 * or EdDSA key (km_token_prepare), so that the next request with the same key only pays
 * C_Sign. Which key signs is still decided per request. */
void kd_signing_prepare(kd_signing_t *s, const char *env);
/* Requests signed, refused by policy, denied to the caller, failed in the token. */
void kd_signing_counters(const kd_daemon_t *d, uint64_t out[4]);
/* Whether env's signing service can sign with every key set's active key: false, with the
 * reason in buf, while the token has lost one (a failed signature said so, or the token
 * check after reopening). */
bool kd_signing_health(kd_daemon_t *d, const char *env, char *buf, size_t len);
/* Main thread: the per-key-set signing figures (sign_stats.h) and each environment's signing
 * sessions (open, wanted), in Prometheus text format. */
void kd_signing_metrics(kd_daemon_t *d, FILE *f);
