/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The listening socket of km_http and its acceptor thread (internal to keymgr/http/).
 *
 * libmicrohttpd's own thread pool lets every worker accept from one shared socket: the worker
 * that wakes first takes up to ten connections per turn, so a burst of connections (a load
 * balancer or wrk opening 64 at once) lands on one worker and the others idle. Here one thread
 * accepts and hands every connection to MHD_add_connection(), which spreads them over the
 * pool (socket number modulo pool size: a burst alternates between the workers). The
 * per-address and total connection limits stay libmicrohttpd's (checked in that call).
 *
 * The socket is bound when created but listens only from km_http_listener_start() on: until
 * then a client is refused at connect (no 404 while nothing is published yet).
 */
#pragma once

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

struct MHD_Daemon;

typedef struct km_http_listener km_http_listener_t;

/*
 * A TCP socket bound to sa (SO_REUSEADDR; IPv6 only for an IPv6 address), non-blocking and
 * close-on-exec, not listening: into *ret_fd. KM_EOK or KM_EIO (reason in err).
 */
int km_http_listener_socket(const struct sockaddr *sa, socklen_t salen, int *ret_fd,
                            char *err, size_t errlen);

/*
 * Creates a TCP socket bound to sa (SO_REUSEADDR; IPv6 only for an IPv6 address), not yet
 * listening. *ret is freed with km_http_listener_free(). Returns KM_EOK, KM_ENOMEM or KM_EIO
 * (socket or bind failed: the reason is written into err).
 */
int km_http_listener_bind(const struct sockaddr *sa, socklen_t salen,
                          km_http_listener_t **ret, char *err, size_t errlen);

/*
 * Takes over fd, a TCP socket the caller bound (listening already or not), e.g. one that a
 * privileged process bound and passed down. It is made non-blocking and close-on-exec; the
 * listener closes it when freed. Returns KM_EOK, KM_ENOMEM or KM_EIO (not a bound socket:
 * reason in err); on failure fd is closed.
 */
int km_http_listener_adopt(int fd, km_http_listener_t **ret, char *err, size_t errlen);

/* The port the socket is bound to. */
uint16_t km_http_listener_port(const km_http_listener_t *l);

/*
 * Starts listening and the acceptor thread, which passes each accepted connection to mhd (a
 * daemon started with MHD_USE_NO_LISTEN_SOCKET and MHD_USE_ITC). Calling it again does
 * nothing. Returns KM_EOK or KM_EIO (reason in err).
 */
int km_http_listener_start(km_http_listener_t *l, struct MHD_Daemon *mhd, char *err,
                           size_t errlen);

/*
 * The connection limit, kept by the acceptor itself. *live counts the connections handed to
 * mhd and not yet closed: the acceptor adds one before MHD_add_connection() (and takes it back
 * when that call refuses the connection), the caller takes one away at mhd's
 * MHD_CONNECTION_NOTIFY_CLOSED. A connection accepted while *live is at limit is closed at
 * once, without reaching mhd. (Counting at NOTIFY_STARTED instead lags behind a burst: the
 * workers start connections after the acceptor has taken more, and a flood of 1,000 at a limit
 * of 900 filled every descriptor of the listener, so that the admin socket could not accept.)
 * libmicrohttpd 0.9.75 must never reach its own limit through MHD_add_connection(): its worker
 * threads then wait forever on a mutex (seen with 900 slow clients at a limit of 900), so the
 * daemon's limit is set above this one. Call before km_http_listener_start().
 */
void km_http_listener_set_limit(km_http_listener_t *l, atomic_uint *live, unsigned limit);

/* Stops the acceptor thread (waits for it) and closes the socket. Accepts NULL. Call it
 * before stopping the daemon the connections are handed to. */
void km_http_listener_free(km_http_listener_t *l);
