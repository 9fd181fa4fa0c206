/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The systemd readiness protocol (sd_notify(3)) without libsystemd: one datagram to
 * $NOTIFY_SOCKET, e.g. "READY=1" once the JWKS is served, "RELOADING=1", "STOPPING=1",
 * "STATUS=...". Does nothing when $NOTIFY_SOCKET is not set (not started by systemd).
 */
#pragma once

/* Sends state; errors are ignored (systemd then times the unit out and says so). */
void kd_notify(const char *state);
