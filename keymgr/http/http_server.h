/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JWKS HTTP server of keymgrd (libmicrohttpd 0.9.75, epoll, internal thread pool fed by
 * one acceptor thread that spreads connections over the pool).
 *
 * It serves documents that the daemon publishes at exact paths, answers /healthz and
 * /metrics, and records which verifier fetched which serial (propagation evidence). It never
 * touches the store or a token: the daemon renders the JWKS and calls km_http_publish().
 *
 * All functions are thread-safe; they may be called while requests are being served.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct km_http km_http_t;

/* Longest publishable path, and longest verifier id (a name or a textual address). */
#define KM_HTTP_PATH_MAX 255
#define KM_HTTP_VERIFIER_NAME_MAX 64
#define KM_HTTP_VERIFIER_ID_MAX 64

/* Every field may be left 0 / NULL to get the default shown. */
/* The longest text km_http_set_metrics_text() takes (1,000 key sets take about 2.5 MiB). */
#define KM_HTTP_METRICS_TEXT_MAX (6u * 1024 * 1024)

typedef struct {
	const char *listen_addr;  /* IPv4 or IPv6 literal; NULL = "127.0.0.1" */
	uint16_t port;            /* 0 = ephemeral (read it back with km_http_port()) */
	unsigned threads;         /* MHD thread pool size; 0 = 2 */
	unsigned conn_limit;      /* concurrent connections in total; 0 = 1024 */
	unsigned per_ip_limit;    /* concurrent connections per client address; 0 = 256 */
	unsigned conn_timeout;    /* idle seconds before a connection is closed; 0 = 10 */
	size_t max_header_size;   /* request line + headers, bytes (approximate); 0 = 8192 */
	size_t max_verifiers;     /* rows in the verifier table; 0 = 4096 */
	unsigned rate_limit;      /* requests per second per client address; 0 = no limit.
	                           * Over it: 429 with Retry-After, and the connection closed */
	unsigned rate_burst;      /* requests a client may send at once; 0 = 2 * rate_limit */
	bool defer_listen;        /* bind now, accept connections only from km_http_listen() on
	                           * (until then clients are refused at connect) */
	int listen_fd;            /* > 0: serve on this TCP socket, bound (and perhaps already
	                           * listening) by the caller, instead of binding listen_addr and
	                           * port; owned by km_http from then on */
	bool no_metrics;          /* /metrics answers 404: an admin server serves it */
	km_http_t *metrics_of;    /* non-NULL: an admin server. It answers /healthz and
	                           * /metrics only (never a document); its /metrics gives the
	                           * counters, documents and verifier table of metrics_of (a
	                           * server that must outlive it), then its own extra text */
} km_http_cfg_t;

/* One row of the verifier table: the last serial a verifier is known to hold at a path. */
typedef struct {
	char id[KM_HTTP_VERIFIER_ID_MAX + 1]; /* Keymgr-Verifier name, or client address */
	bool named;               /* id came from a valid Keymgr-Verifier header */
	char path[KM_HTTP_PATH_MAX + 1];
	int64_t serial;           /* serial of the document the verifier holds */
	time_t last_seen;         /* when that was last proven (200 or 304) */
	bool by_304;              /* last proof was a 304 (the verifier sent the ETag) */
	uint64_t fetches;         /* GETs answered 200 or 304 for this row */
} km_http_verifier_t;

/*
 * Starts the server: binds, spawns the thread pool and listens (unless cfg.defer_listen).
 * *ret receives a handle that must be released with km_http_free(). On failure a message is
 * written into err (if not NULL) and KM_EINVAL (bad configuration), KM_ENOMEM or KM_EIO (bind/listen/thread failure) is
 * returned; *ret is untouched.
 */
int km_http_start(const km_http_cfg_t *cfg, km_http_t **ret, char *err, size_t errlen);

/*
 * Starts accepting connections on a server started with cfg.defer_listen (typically once its
 * documents are published, so that no client ever sees a 404 for them). Does nothing if it
 * already accepts. Returns KM_EOK or KM_EIO (listen or thread failure; message in err).
 */
int km_http_listen(km_http_t *h, char *err, size_t errlen);

/*
 * Binds a listening TCP socket on addr (IPv4 or IPv6 literal) and port (0: ephemeral) for a
 * server that another process will run (km_http_cfg_t.listen_fd): bound and listening at
 * once, so that connections made while that process starts or restarts wait in the backlog
 * instead of being refused. *ret_fd (close-on-exec; the caller clears that to pass it on)
 * and *ret_port. KM_EOK, KM_EINVAL (bad address), KM_EIO (reason in err).
 */
int km_http_bind(const char *addr, uint16_t port, int *ret_fd, uint16_t *ret_port, char *err,
                 size_t errlen);

/* Stops the server (waits for its threads) and frees everything. Accepts NULL. */
void km_http_free(km_http_t *h);

/* The TCP port the server is bound to (useful with cfg.port = 0). */
uint16_t km_http_port(const km_http_t *h);

/*
 * Registers or replaces the document served at the exact path (for example
 * "/production/.well-known/jwks.json"). The body is copied. Requests already in flight finish
 * with the previous version; new requests see the new one. The ETag is derived from the
 * bytes, so it changes whenever they change.
 * path: '/' followed by [A-Za-z0-9._~/-], no empty, "." or ".." segment, at most
 * KM_HTTP_PATH_MAX bytes, not "/healthz" or "/metrics".
 * Returns KM_EOK, KM_EINVAL (bad path or NULL body with len > 0) or KM_ENOMEM (nothing
 * changed).
 */
int km_http_publish(km_http_t *h, const char *path, const char *body, size_t len,
                    int64_t serial, unsigned max_age, time_t last_modified);

/* Stops serving path (then 404). Returns KM_EOK or KM_ENOENT if nothing was published there. */
int km_http_unpublish(km_http_t *h, const char *path);

/*
 * Sets what /healthz answers: 200 "ok" or 503 "unhealthy: REASON". The reason is copied,
 * cut to 200 bytes, and non-printable bytes are replaced by '?'. The initial state is
 * 503 "unhealthy: starting". Returns KM_EOK or KM_ENOMEM (state unchanged).
 */
int km_http_set_health(km_http_t *h, bool ok, const char *reason);

/*
 * Replaces the extra Prometheus text appended to /metrics after the server's own metrics
 * (NULL or "" clears it). The text is copied; it should end with a newline. Returns KM_EOK,
 * KM_EINVAL (over 1 MiB) or KM_ENOMEM (unchanged).
 */
int km_http_set_metrics_text(km_http_t *h, const char *text);

/*
 * Copies the verifier table (only rows for path, or all rows when path is NULL), ordered by
 * id then path. *ret receives a malloc'd array the caller frees with free() (NULL when
 * *count is 0). Returns KM_EOK or KM_ENOMEM.
 */
int km_http_verifiers(km_http_t *h, const char *path, km_http_verifier_t **ret, size_t *count);

/*
 * The verifier names that policies wait for (activate_when_seen_by, all environments): their
 * rows are never evicted from the verifier table, whatever other names clients send
 * (http_verifiers.h). Copied. KM_EOK or KM_ENOMEM.
 */
int km_http_set_listed_verifiers(km_http_t *h, const char *const *names, size_t n);

/*
 * The rows of the verifier table changed since the previous call (a fetch recorded), in no
 * particular order, for a process that keeps its own table (keymgrd, fed by its listener).
 * *ret is malloc'd (NULL when *count is 0). KM_EOK or KM_ENOMEM (the changes are kept for
 * the next call).
 */
int km_http_take_verifier_changes(km_http_t *h, km_http_verifier_t **ret, size_t *count);

/* Readable (an eventfd) once a row changed after the last km_http_take_verifier_changes(),
 * which resets it: a process that forwards the changes polls it instead of a timer. */
int km_http_verifier_change_fd(const km_http_t *h);

/* true if s is a valid Keymgr-Verifier name: 1..64 of [A-Za-z0-9._-]. */
bool km_http_verifier_name_valid(const char *s);

/* true if path is publishable (see km_http_publish()). */
bool km_http_path_valid(const char *path);
