/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The listener's confinement, in the order it is applied:
 *   0. km_sandbox_preload(): what would open files on first use later, loaded now (OpenSSL's
 *      configuration and the SHA-256 the HTTP layer's ETags use, glibc's time zone);
 *   1. km_sandbox_limits(): RLIMIT_NOFILE sized to its connections (soft and hard), no core
 *      files, not dumpable;
 *   2. km_sandbox_drop(): setgroups([]), setgid, setuid to an unprivileged user (the
 *      configuration's daemon.listener_user), then PR_SET_NO_NEW_PRIVS;
 *   3. km_sandbox_seccomp(): a seccomp allow-list of the system calls a running libmicrohttpd
 *      server and the channel need, on every thread (TSYNC); anything else kills the process.
 *      Applied once its threads run, so that nothing is allowed for setting up only.
 * A build with -Dseccomp=false (sanitizers, valgrind: they need ptrace and more) leaves step
 * 3 out; km_sandbox_seccomp() then says so and does nothing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* KM_EOK, or KM_EIO with the reason in err. */
int km_sandbox_preload(char *err, size_t errlen);

/* KM_EOK, or KM_EIO with the failing call in err. */
int km_sandbox_limits(unsigned nofile, char *err, size_t errlen);

/* Drops to user (a name). When not running as root, only checks that the process is not
 * root and sets NoNewPrivs. KM_EOK, KM_ENOENT (no such user), KM_EIO. */
int km_sandbox_drop(const char *user, char *err, size_t errlen);

/* KM_EOK (installed, or built without seccomp: *installed false), KM_EIO. */
int km_sandbox_seccomp(bool *installed, char *err, size_t errlen);
