/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control socket's connections (ctl_server.c): an acceptor thread, one thread per
 * connection, and the queue that hands status, reload and tick to the main thread.
 */
#pragma once

#include <stddef.h>

#include "keymgr/daemon/state.h"

#define KD_CTL_MAX_CONNECTIONS 64    /* concurrent control connections (threads) */
#define KD_CTL_IDLE_MS 60000         /* idle time before a control connection is closed */

/* Starts the acceptor thread on d->ctl_fd. KM_EOK or KM_EIO (message in err). */
int kd_ctl_start(kd_daemon_t *d, char *err, size_t errlen);
/* The eventfd the main loop polls: readable when requests wait for the main thread. */
int kd_ctl_wake_fd(const kd_daemon_t *d);
/* Main thread: answers the queued requests, records queued audit events. */
void kd_ctl_process(kd_daemon_t *d);
/* Stops accepting, ends every connection and waits for their threads. NULL-safe. */
void kd_ctl_stop(kd_daemon_t *d);
