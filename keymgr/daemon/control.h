/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control socket (control.c, docs/control-protocol.md): the socket itself, its record
 * next to the stores, and the answers to status, reload and tick.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "keymgr/daemon/authz.h"
#include "keymgr/daemon/state.h"

/* Creates the control socket at path. */
int kd_control_open(kd_daemon_t *d, const char *path, const char *group, char *err,
                    size_t errlen);
void kd_control_close(kd_daemon_t *d);
/*
 * Records the control socket's path next to the store of every served environment
 * (km_ctl_record_write(): STORE.keymgrd), for clients that cannot read the configuration.
 * A failure is logged, not fatal. Called at start and after each reload.
 */
void kd_control_record(kd_daemon_t *d);
/*
 * The checks kd_control_dispatch() makes before acting, in its order: op present and one of
 * status/reload/tick, env and keyset valid names, env served here. NULL when the request
 * may be answered (*env_out, *keyset_out set, NULL when absent), else the refusal reply (new
 * reference). *op_out is always set ("-" when missing). Also used by fuzz/fuzz_ctl.c.
 */
json_t *kd_control_check(const kd_daemon_t *d, json_t *req, const char **op_out,
                         const char **env_out, const char **keyset_out);
/* Answers a status, reload, tick or keys request on the main thread, and logs it. New
 * reference. */
json_t *kd_control_dispatch(kd_daemon_t *d, json_t *req, const kd_peer_t *peer);
/* For a connection thread: the refusal of a request without an op, or with an op keymgrd
 * does not know, logged as kd_control_dispatch() logs it (new reference); NULL for the
 * others, which go to the main thread. Needs no daemon state: it does not wait for a pass. */
json_t *kd_control_refuse_early(json_t *req, const kd_peer_t *peer);
