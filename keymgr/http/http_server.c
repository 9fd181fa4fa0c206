/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libmicrohttpd glue: daemon life cycle, the published documents, request routing.
 *
 * Every document version owns two ready-made MHD responses (200 with the body, 304 without),
 * built once in km_http_publish() and queued again for every request. The document table (an
 * array plus a hash index on the path, both changed together) is guarded by a
 * writer-preferring rwlock: a request holds it for reading only while it looks up its
 * document and queues the response (MHD then holds its own reference on the response), a
 * publish holds it for writing only to swap a pointer. The old responses are released with
 * MHD_destroy_response() after the swap; MHD frees the body when the last connection that
 * queued it is done (free callback).
 *
 * Connections are accepted by http_listener.c, which spreads them over the thread pool.
 */
#include "keymgr/http/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "keymgr/common/clock.h"
#include "keymgr/common/error.h"
#include "keymgr/common/fnv.h"
#include "keymgr/common/ratelimit.h"
#include "keymgr/http/http_listener.h"
#include "keymgr/http/http_util.h"
#include "keymgr/http/http_verifiers.h"

#define CT_JWKS "application/jwk-set+json"
#define CT_TEXT "text/plain; charset=utf-8"
#define CT_JSON "application/json"
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"
#define HEALTH_REASON_MAX 200
#define MAX_CODE 600
#define MAX_INM 8

struct doc {
	char path[KM_HTTP_PATH_MAX + 1];
	uint64_t hash;                      /* of path */
	struct doc *hnext;                  /* next document in the same hash bucket */
	size_t pos;                         /* index in km_http.docs */
	int64_t serial;
	unsigned max_age;
	time_t last_modified;
	size_t len;
	char etag[KM_ETAG_SIZE];
	struct MHD_Response *ok;            /* 200 */
	struct MHD_Response *not_modified;  /* 304 */
};

struct km_http {
	struct MHD_Daemon *mhd;
	uint16_t port;
	int change_fd;                      /* eventfd: verifier rows changed (km_http_vtab) */

	km_http_listener_t *listener;

	pthread_rwlock_t lock;              /* docs and their index, health, extra metrics */
	struct doc **docs;
	size_t ndocs, cap;
	struct doc **buckets;               /* hash index of docs by path */
	size_t nbuckets;                    /* power of two, >= 2 * ndocs (or 0) */
	struct MHD_Response *health;
	unsigned health_code;
	char *extra_metrics;

	struct MHD_Response *r400, *r404, *r405, *r413, *r429;
	km_http_vtab_t *vtab;
	km_ratelimit_t *rate;               /* per client address; NULL: no limit */

	atomic_uint_fast64_t codes[MAX_CODE];
	atomic_uint_fast64_t rejected;

	/* libmicrohttpd's messages while starting (bind errors), for km_http_start()'s err */
	atomic_bool starting;
	atomic_uint live;                   /* connections the daemon holds (notify callback) */
	char start_log[256];

	bool no_metrics;                    /* /metrics: 404 (an admin server has it) */
	km_http_t *metrics_of;              /* an admin server: whose counters it shows */
};

/* What the single pass over the request headers found. */
struct req_hdrs {
	const char *inm[MAX_INM];
	size_t ninm;
	const char *verifier;
	bool has_body;
};

/* Markers stored in MHD's per-request pointer, to tell apart requests that reached the
 * handler from those libmicrohttpd answered itself; mark_escaped: the raw path holds a
 * percent-encoding (see uri_logged). */
static char mark_seen, mark_answered, mark_escaped;

bool km_http_verifier_name_valid(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return false;
	for (; s[n] != '\0'; n++) {
		char c = s[n];

		if (n >= KM_HTTP_VERIFIER_NAME_MAX)
			return false;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return n > 0;
}

bool km_http_path_valid(const char *path)
{
	size_t n, seg = 0;
	const char *s;

	if (path == NULL || path[0] != '/')
		return false;
	n = strlen(path);
	if (n > KM_HTTP_PATH_MAX || strcmp(path, "/healthz") == 0 || strcmp(path, "/metrics") == 0)
		return false;
	/* segments between slashes: non-empty, not "." or "..", unreserved characters only */
	for (s = path + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			if (seg == 0)
				return false;
			if ((seg == 1 && s[-1] == '.') || (seg == 2 && s[-1] == '.' && s[-2] == '.'))
				return false;
			if (*s == '\0')
				return true;
			seg = 0;
			continue;
		}
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '~' || *s == '-'))
			return false;
		seg++;
	}
}

/* The key of the document index. */
static uint64_t path_hash(const char *path)
{
	return km_fnv_str(KM_FNV_INIT, path);
}

/* ---------------------------------------------------------------- responses */

static struct MHD_Response *static_response(const char *body, const char *ctype)
{
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return NULL;
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES) {
		MHD_destroy_response(r);
		return NULL;
	}
	return r;
}

/* A response that owns a malloc'd copy of body (freed by MHD with the response). */
static struct MHD_Response *owned_response(const char *body, size_t len)
{
	struct MHD_Response *r;
	char *copy = malloc(len > 0 ? len : 1);

	if (copy == NULL)
		return NULL;
	if (len > 0)
		memcpy(copy, body, len);
	r = MHD_create_response_from_buffer_with_free_callback(len, copy, &free);
	if (r == NULL)
		free(copy);
	return r;
}

static ssize_t no_body_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void doc_free(struct doc *d)
{
	if (d == NULL)
		return;
	if (d->ok != NULL)
		MHD_destroy_response(d->ok);
	if (d->not_modified != NULL)
		MHD_destroy_response(d->not_modified);
	free(d);
}

/* A document's media type, from its path: an OpenID provider's metadata
 * (".../.well-known/openid-configuration") is JSON, everything else a JWK set. */
static const char *content_type(const char *path)
{
	static const char disc[] = "/.well-known/openid-configuration";
	size_t n = strlen(path), m = sizeof(disc) - 1;
	return n >= m && strcmp(path + n - m, disc) == 0 ? CT_JSON : CT_JWKS;
}

static int doc_build(const char *path, const char *body, size_t len, int64_t serial,
		     unsigned max_age, time_t last_modified, struct doc **ret)
{
	struct doc *d;
	char cc[64], date[KM_HTTP_DATE_SIZE];
	int r = KM_ENOMEM;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return KM_ENOMEM;
	snprintf(d->path, sizeof(d->path), "%s", path);
	d->hash = path_hash(d->path);
	d->serial = serial;
	d->max_age = max_age;
	d->last_modified = last_modified != 0 ? last_modified : time(NULL);
	d->len = len;
	if ((r = km_etag_compute(len > 0 ? body : "", len, d->etag)) != KM_EOK)
		goto out;
	if ((r = km_http_date_format(d->last_modified, date)) != KM_EOK)
		goto out;
	snprintf(cc, sizeof(cc), "public, max-age=%u", max_age);

	r = KM_ENOMEM;
	if ((d->ok = owned_response(body, len)) == NULL)
		goto out;
	if (MHD_add_response_header(d->ok, MHD_HTTP_HEADER_CONTENT_TYPE, content_type(path)) !=
	    MHD_YES ||
	    MHD_add_response_header(d->ok, MHD_HTTP_HEADER_ETAG, d->etag) != MHD_YES ||
	    MHD_add_response_header(d->ok, MHD_HTTP_HEADER_CACHE_CONTROL, cc) != MHD_YES ||
	    MHD_add_response_header(d->ok, MHD_HTTP_HEADER_LAST_MODIFIED, date) != MHD_YES)
		goto out;
	/* RFC 9110 15.4.5: a 304 repeats ETag and Cache-Control, and carries no body. It should
	 * carry no Content-Length either: clients built on a generic HTTP parser (wrk, node's
	 * http_parser) take a Content-Length as a body to wait for. libmicrohttpd 0.9.75 writes
	 * Content-Length for every 304 of known size (the response's size, "0" for an empty
	 * one), and for one of unknown size either chunked encoding (with a body: wrong) or, in
	 * HTTP/1.0-compatible mode, none at all, closing the connection after it. The last is
	 * the only correct choice: the 304 has no Content-Length and no body, and says
	 * "Connection: close". Verifiers poll every max-age, usually much longer than the idle
	 * timeout, so they reconnect for their next poll anyway. The reader is never called,
	 * so its buffer (allocated with the response, one per document) is one byte, the least
	 * libmicrohttpd accepts: 4096 cost 4 MiB of resident memory with 1,000 key sets. */
	d->not_modified = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1, &no_body_reader,
							    NULL, NULL);
	if (d->not_modified == NULL ||
	    MHD_set_response_options(d->not_modified, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT,
				     MHD_RO_END) != MHD_YES ||
	    MHD_add_response_header(d->not_modified, MHD_HTTP_HEADER_ETAG, d->etag) != MHD_YES ||
	    MHD_add_response_header(d->not_modified, MHD_HTTP_HEADER_CACHE_CONTROL, cc) != MHD_YES)
		goto out;
	*ret = d;
	d = NULL;
	r = KM_EOK;
out:
	doc_free(d);
	return r;
}

/* Caller holds h->lock (for reading at least). */
static struct doc *doc_find(const km_http_t *h, const char *path)
{
	uint64_t hsh;
	struct doc *d;

	if (h->nbuckets == 0)
		return NULL;
	hsh = path_hash(path);
	for (d = h->buckets[hsh & (h->nbuckets - 1)]; d != NULL; d = d->hnext)
		if (d->hash == hsh && strcmp(d->path, path) == 0)
			return d;
	return NULL;
}

/* The link that points at d in its bucket. Caller holds h->lock for writing; d is indexed. */
static struct doc **bucket_link(km_http_t *h, const struct doc *d)
{
	struct doc **link = &h->buckets[d->hash & (h->nbuckets - 1)];

	while (*link != d)
		link = &(*link)->hnext;
	return link;
}

/* Makes room for one more document in the array and the index (which stays at most half
 * full). Caller holds h->lock for writing. KM_EOK or KM_ENOMEM (nothing changed). */
static int docs_reserve(km_http_t *h)
{
	struct doc **grown, **nb, *d;
	size_t cap, n, i;

	if (h->ndocs == h->cap) {
		cap = h->cap ? 2 * h->cap : 8;
		if ((grown = realloc(h->docs, cap * sizeof(*grown))) == NULL)
			return KM_ENOMEM;
		h->docs = grown;
		h->cap = cap;
	}
	if (2 * (h->ndocs + 1) <= h->nbuckets)
		return KM_EOK;
	n = h->nbuckets ? 2 * h->nbuckets : 16;
	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return KM_ENOMEM;
	for (i = 0; i < h->ndocs; i++) {
		d = h->docs[i];
		d->hnext = nb[d->hash & (n - 1)];
		nb[d->hash & (n - 1)] = d;
	}
	free(h->buckets);
	h->buckets = nb;
	h->nbuckets = n;
	return KM_EOK;
}

/* ---------------------------------------------------------------- metrics */

/* Renders /metrics into a malloc'd buffer: the counters and documents of src (h itself, or
 * the server an admin server h shows), then h's extra text. Takes the locks for reading. */
static int metrics_render(km_http_t *h, char **ret, size_t *retlen)
{
	char *buf = NULL;
	size_t len = 0, i;
	FILE *f;
	int r = KM_ENOMEM;
	km_http_t *own = h;
	time_t now = time(NULL);

	if (h->metrics_of != NULL)
		h = h->metrics_of;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return KM_ENOMEM;
	fputs("# HELP keymgr_http_requests_total HTTP requests answered by keymgr, by status code.\n"
	      "# TYPE keymgr_http_requests_total counter\n", f);
	for (i = 0; i < MAX_CODE; i++) {
		uint_fast64_t n = atomic_load_explicit(&h->codes[i], memory_order_relaxed);

		if (n > 0)
			fprintf(f, "keymgr_http_requests_total{code=\"%zu\"} %ju\n", i, (uintmax_t)n);
	}
	fprintf(f, "# HELP keymgr_http_requests_rejected_total Requests answered or dropped by the "
		   "HTTP layer before routing (malformed or oversized headers, aborted).\n"
		   "# TYPE keymgr_http_requests_rejected_total counter\n"
		   "keymgr_http_requests_rejected_total %ju\n",
		(uintmax_t)atomic_load_explicit(&h->rejected, memory_order_relaxed));
	km_http_vtab_counts_t vc;
	km_http_vtab_counts(h->vtab, &vc);
	fprintf(f, "# HELP keymgr_http_verifiers Rows in the verifier table.\n"
		   "# TYPE keymgr_http_verifiers gauge\n"
		   "keymgr_http_verifiers %zu\n"
		   "# HELP keymgr_http_verifiers_listed Rows of listed verifiers "
		   "(activate_when_seen_by), never evicted.\n"
		   "# TYPE keymgr_http_verifiers_listed gauge\n"
		   "keymgr_http_verifiers_listed %zu\n"
		   "# HELP keymgr_http_verifier_evictions_total Rows of other verifiers evicted to make "
		   "room.\n"
		   "# TYPE keymgr_http_verifier_evictions_total counter\n"
		   "keymgr_http_verifier_evictions_total %ju\n"
		   "# HELP keymgr_http_verifier_records_dropped_total Fetches not recorded: the table "
		   "was full of listed verifiers' rows.\n"
		   "# TYPE keymgr_http_verifier_records_dropped_total counter\n"
		   "keymgr_http_verifier_records_dropped_total %ju\n", vc.rows, vc.listed_rows,
		(uintmax_t)vc.evicted, (uintmax_t)vc.dropped);

	pthread_rwlock_rdlock(&h->lock);
	fprintf(f, "# HELP keymgr_http_healthy 1 when /healthz answers 200.\n"
		   "# TYPE keymgr_http_healthy gauge\n"
		   "keymgr_http_healthy %d\n", h->health_code == MHD_HTTP_OK ? 1 : 0);
	fputs("# HELP keymgr_jwks_serial Serial of the JWKS document served, by path.\n"
	      "# TYPE keymgr_jwks_serial gauge\n", f);
	for (i = 0; i < h->ndocs; i++) {
		fputs("keymgr_jwks_serial{path=\"", f);
		km_http_prom_label(f, h->docs[i]->path);
		fprintf(f, "\"} %jd\n", (intmax_t)h->docs[i]->serial);
	}
	fputs("# HELP keymgr_jwks_bytes Size of the JWKS document served, by path.\n"
	      "# TYPE keymgr_jwks_bytes gauge\n", f);
	for (i = 0; i < h->ndocs; i++) {
		fputs("keymgr_jwks_bytes{path=\"", f);
		km_http_prom_label(f, h->docs[i]->path);
		fprintf(f, "\"} %zu\n", h->docs[i]->len);
	}
	fputs("# HELP keymgr_jwks_age_seconds Seconds since the JWKS document served last changed, "
	      "by path.\n"
	      "# TYPE keymgr_jwks_age_seconds gauge\n", f);
	for (i = 0; i < h->ndocs; i++) {
		fputs("keymgr_jwks_age_seconds{path=\"", f);
		km_http_prom_label(f, h->docs[i]->path);
		fprintf(f, "\"} %jd\n", (intmax_t)(h->docs[i]->last_modified > 0 &&
		                                    now > h->docs[i]->last_modified
		                                    ? now - h->docs[i]->last_modified : 0));
	}
	if (own == h && h->extra_metrics != NULL)
		fputs(h->extra_metrics, f);
	pthread_rwlock_unlock(&h->lock);
	if (own != h) {
		pthread_rwlock_rdlock(&own->lock);
		if (own->extra_metrics != NULL)
			fputs(own->extra_metrics, f);
		pthread_rwlock_unlock(&own->lock);
	}

	if (fclose(f) != 0 || buf == NULL) {
		free(buf);
		return r;
	}
	*ret = buf;
	*retlen = len;
	return KM_EOK;
}

/* ---------------------------------------------------------------- request handling */

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct req_hdrs *rq = cls;

	if (key == NULL || value == NULL)
		return MHD_YES;
	if (strcasecmp(key, MHD_HTTP_HEADER_IF_NONE_MATCH) == 0) {
		if (rq->ninm < MAX_INM)
			rq->inm[rq->ninm++] = value;
	} else if (strcasecmp(key, "Keymgr-Verifier") == 0) {
		if (rq->verifier == NULL)
			rq->verifier = value;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		if (value[strspn(value, "0")] != '\0')
			rq->has_body = true;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		rq->has_body = true;
	}
	return MHD_YES;
}

static bool inm_matches(const struct req_hdrs *rq, const char *etag)
{
	size_t i;

	for (i = 0; i < rq->ninm; i++)
		if (km_http_etag_none_match(rq->inm[i], etag))
			return true;
	return false;
}

/* The verifier's id: its valid Keymgr-Verifier name, else its address. */
static bool verifier_id(struct MHD_Connection *c, const struct req_hdrs *rq,
			char id[KM_HTTP_VERIFIER_ID_MAX + 1])
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	if (km_http_verifier_name_valid(rq->verifier)) {
		snprintf(id, KM_HTTP_VERIFIER_ID_MAX + 1, "%s", rq->verifier);
		return true;
	}
	strcpy(id, "unknown");
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return false;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, id,
			  KM_HTTP_VERIFIER_ID_MAX + 1);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			  id, KM_HTTP_VERIFIER_ID_MAX + 1);
	return false;
}

static void count_code(km_http_t *h, unsigned code)
{
	if (code < MAX_CODE)
		atomic_fetch_add_explicit(&h->codes[code], 1, memory_order_relaxed);
}

static enum MHD_Result queue(km_http_t *h, struct MHD_Connection *c, unsigned code,
			     struct MHD_Response *r)
{
	enum MHD_Result ret = MHD_queue_response(c, code, r);

	if (ret == MHD_YES)
		count_code(h, code);
	return ret;
}

static enum MHD_Result serve_metrics(km_http_t *h, struct MHD_Connection *c)
{
	struct MHD_Response *r;
	char *buf = NULL;
	size_t len = 0;
	enum MHD_Result ret;

	if (metrics_render(h, &buf, &len) != KM_EOK)
		return MHD_NO;
	if ((r = MHD_create_response_from_buffer_with_free_callback(len, buf, &free)) == NULL) {
		free(buf);
		return MHD_NO;
	}
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CT_PROM) != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES)
		ret = MHD_NO;
	else
		ret = queue(h, c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result serve_doc(km_http_t *h, struct MHD_Connection *c, const char *url,
				 const struct req_hdrs *rq, bool head)
{
	char id[KM_HTTP_VERIFIER_ID_MAX + 1];
	enum MHD_Result ret;
	int64_t serial = 0;
	unsigned code = 0;
	struct doc *d;
	bool named;

	pthread_rwlock_rdlock(&h->lock);
	if ((d = doc_find(h, url)) == NULL) {
		pthread_rwlock_unlock(&h->lock);
		return queue(h, c, MHD_HTTP_NOT_FOUND, h->r404);
	}
	if (inm_matches(rq, d->etag)) {
		code = MHD_HTTP_NOT_MODIFIED;
		ret = MHD_queue_response(c, code, d->not_modified);
	} else {
		code = MHD_HTTP_OK;
		ret = MHD_queue_response(c, code, d->ok);
	}
	serial = d->serial;
	pthread_rwlock_unlock(&h->lock);
	if (ret != MHD_YES)
		return ret;
	count_code(h, code);

	/* A 200 to GET delivered the document; a 304 proves the verifier holds the bytes whose
	 * ETag it sent, which are this serial's. A 200 to HEAD proves nothing. */
	if (code == MHD_HTTP_OK && head)
		return ret;
	named = verifier_id(c, rq, id);
	km_http_vtab_record(h->vtab, id, named, url, serial, time(NULL),
			    code == MHD_HTTP_NOT_MODIFIED);
	return ret;
}

/* Takes one request from the client address's bucket (rate_limit, rate_burst). */
static bool rate_ok(km_http_t *h, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return true;
	if (sa->sa_family == AF_INET)
		return km_ratelimit_take(h->rate, &((const struct sockaddr_in *)(const void *)sa)->
					 sin_addr, 4, km_monotonic_ms(), NULL);
	if (sa->sa_family == AF_INET6)
		return km_ratelimit_take(h->rate, &((const struct sockaddr_in6 *)(const void *)sa)->
					 sin6_addr, 16, km_monotonic_ms(), NULL);
	return true;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **req_cls)
{
	km_http_t *h = cls;
	struct req_hdrs rq = { .ninm = 0 };
	bool head;
	enum MHD_Result ret;

	/* First call (headers received): refuse what we never serve at once. Queueing this
	 * early makes libmicrohttpd close the connection without reading a body, which is what
	 * we want for these; a good request is answered on the second call instead, so that
	 * its connection stays alive. */
	if (*req_cls != &mark_answered) {
		bool escaped = *req_cls == &mark_escaped;
		*req_cls = &mark_answered;
		if (h->rate != NULL && !rate_ok(h, c))
			return queue(h, c, MHD_HTTP_TOO_MANY_REQUESTS, h->r429);
		if (escaped)
			return queue(h, c, MHD_HTTP_BAD_REQUEST, h->r400);
		head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
		if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
			return queue(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, h->r405);
		MHD_get_connection_values(c, MHD_HEADER_KIND, &scan_header, &rq);
		if (rq.has_body)
			return queue(h, c, MHD_HTTP_CONTENT_TOO_LARGE, h->r413);
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		/* Only reachable if a body arrived without Content-Length/Transfer-Encoding,
		 * which libmicrohttpd does not allow; refuse it anyway. */
		*upload_data_size = 0;
		return MHD_NO;
	}
	head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	MHD_get_connection_values(c, MHD_HEADER_KIND, &scan_header, &rq);

	if (strcmp(url, "/healthz") == 0) {
		pthread_rwlock_rdlock(&h->lock);
		ret = queue(h, c, h->health_code, h->health);
		pthread_rwlock_unlock(&h->lock);
		return ret;
	}
	if (strcmp(url, "/metrics") == 0 && !h->no_metrics)
		return serve_metrics(h, c);
	if (h->metrics_of != NULL)   /* an admin server serves no document */
		return queue(h, c, MHD_HTTP_NOT_FOUND, h->r404);
	return serve_doc(h, c, url, &rq, head);
}

/*
 * Sees the request target as sent, before libmicrohttpd decodes it. Every path keymgr serves
 * is plain unreserved characters, so a percent-encoding in the path only ever names a served
 * document in another spelling: "/production/api/jwks.json%00x" decodes to a C string ending
 * at the NUL, which a cache in front of keymgr keeps under another key than the document's.
 * Such a request is refused (400), whatever it decodes to; the query is not looked at.
 */
static void *uri_logged(void *cls, const char *uri, struct MHD_Connection *c)
{
	for (const char *p = uri; p != NULL && *p != '\0' && *p != '?'; p++)
		if (*p == '%')
			return &mark_escaped;
	return &mark_seen;
}

static void connection_notified(void *cls, struct MHD_Connection *c, void **socket_ctx,
				enum MHD_ConnectionNotificationCode code)
{
	km_http_t *h = cls;
	(void)c;
	(void)socket_ctx;
	/* The acceptor counted the connection when it handed it over (http_listener.h). */
	if (code == MHD_CONNECTION_NOTIFY_CLOSED)
		atomic_fetch_sub(&h->live, 1);
}

static void request_completed(void *cls, struct MHD_Connection *c, void **req_cls,
			      enum MHD_RequestTerminationCode toe)
{
	km_http_t *h = cls;

	if (req_cls != NULL && (*req_cls == &mark_seen || *req_cls == &mark_escaped))
		atomic_fetch_add_explicit(&h->rejected, 1, memory_order_relaxed);
}

/* libmicrohttpd's own format strings. */
__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	km_http_t *h = cls;

	/* Only startup messages (bind errors) are kept; request-level messages would echo
	 * client input and are dropped. */
	if (atomic_load(&h->starting))
		vsnprintf(h->start_log, sizeof(h->start_log), fmt, ap);
}

/* ---------------------------------------------------------------- life cycle */

static int make_health(bool ok, const char *reason, struct MHD_Response **ret)
{
	char body[HEALTH_REASON_MAX + 32];
	size_t n, i;
	struct MHD_Response *r;

	if (ok) {
		snprintf(body, sizeof(body), "ok\n");
	} else if (reason == NULL || reason[0] == '\0') {
		snprintf(body, sizeof(body), "unhealthy\n");
	} else {
		n = (size_t)snprintf(body, sizeof(body), "unhealthy: ");
		for (i = 0; reason[i] != '\0' && i < HEALTH_REASON_MAX; i++)
			body[n++] = (reason[i] >= 0x20 && reason[i] < 0x7f) ? reason[i] : '?';
		body[n++] = '\n';
		body[n] = '\0';
	}
	if ((r = owned_response(body, strlen(body))) == NULL)
		return KM_ENOMEM;
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CT_TEXT) != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES) {
		MHD_destroy_response(r);
		return KM_ENOMEM;
	}
	*ret = r;
	return KM_EOK;
}

static int parse_listen(const char *addr, uint16_t port, struct sockaddr_storage *ss,
			bool *v6)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*v6 = false;
		return KM_EOK;
	}
	if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*v6 = true;
		return KM_EOK;
	}
	return KM_EINVAL;
}

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int km_http_bind(const char *addr, uint16_t port, int *ret_fd, uint16_t *ret_port, char *err,
                 size_t errlen)
{
	struct sockaddr_storage ss;
	bool v6 = false;
	int fd = -1;
	if (parse_listen(addr, port, &ss, &v6) != KM_EOK) {
		set_err(err, errlen, "'%s' is not an IPv4 or IPv6 address literal", addr);
		return KM_EINVAL;
	}
	char why[160] = "";
	if (km_http_listener_socket((struct sockaddr *)&ss, v6 ? sizeof(struct sockaddr_in6) :
				    sizeof(struct sockaddr_in), &fd, why, sizeof(why)) != KM_EOK) {
		set_err(err, errlen, "cannot listen on %s port %u: %s", addr, (unsigned)port, why);
		return KM_EIO;
	}
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	if (listen(fd, SOMAXCONN) != 0 ||
	    getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
		set_err(err, errlen, "cannot listen on %s port %u: %s", addr, (unsigned)port,
			strerror(errno));
		close(fd);
		return KM_EIO;
	}
	*ret_port = bound.ss_family == AF_INET6 ?
		    ntohs(((const struct sockaddr_in6 *)(const void *)&bound)->sin6_port) :
		    ntohs(((const struct sockaddr_in *)(const void *)&bound)->sin_port);
	*ret_fd = fd;
	return KM_EOK;
}

int km_http_start(const km_http_cfg_t *cfg, km_http_t **ret, char *err, size_t errlen)
{
	static const km_http_cfg_t defaults = { 0 };
	const char *addr;
	unsigned threads, conn_limit, per_ip, timeout;
	size_t max_header, max_verifiers;
	struct sockaddr_storage ss;
	pthread_rwlockattr_t attr;
	char why[160] = "";
	unsigned flags;
	km_http_t *h = NULL;
	bool v6 = false, lock_ok = false;
	int r = KM_EINVAL;

	if (cfg == NULL)
		cfg = &defaults;
	addr = cfg->listen_addr != NULL ? cfg->listen_addr : "127.0.0.1";
	threads = cfg->threads != 0 ? cfg->threads : 2;
	conn_limit = cfg->conn_limit != 0 ? cfg->conn_limit : 1024;
	per_ip = cfg->per_ip_limit != 0 ? cfg->per_ip_limit : 256;
	timeout = cfg->conn_timeout != 0 ? cfg->conn_timeout : 10;
	max_header = cfg->max_header_size != 0 ? cfg->max_header_size : 8192;
	max_verifiers = cfg->max_verifiers != 0 ? cfg->max_verifiers : 4096;

	if (parse_listen(addr, cfg->port, &ss, &v6) != KM_EOK) {
		set_err(err, errlen, "listen address is not an IPv4 or IPv6 literal");
		goto out;
	}
	if (threads > 256 || conn_limit < threads || conn_limit > (1u << 20) || max_header < 1024 ||
	    max_header > 1024 * 1024 || max_verifiers > (1u << 24)) {
		set_err(err, errlen, "HTTP configuration out of range (threads 1..256, connection "
			"limit threads..1M, max header size 1 KiB..1 MiB, verifiers <= 16M)");
		goto out;
	}

	r = KM_ENOMEM;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		goto nomem;
	h->change_fd = -1;
	if (pthread_rwlockattr_init(&attr) != 0)
		goto nomem;
	/* A publish must not wait behind a stream of readers. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	lock_ok = pthread_rwlock_init(&h->lock, &attr) == 0;
	pthread_rwlockattr_destroy(&attr);
	if (!lock_ok)
		goto nomem;
	h->r400 = static_response("{\"error\":\"bad request: a percent-encoded path\"}\n",
				  CT_JSON);
	h->r404 = static_response("{\"error\":\"not found\"}\n", CT_JSON);
	h->r405 = static_response("{\"error\":\"method not allowed\"}\n", CT_JSON);
	h->r413 = static_response("{\"error\":\"request body not allowed\"}\n", CT_JSON);
	h->r429 = static_response("{\"error\":\"too many requests from this address\"}\n",
				  CT_JSON);
	if (h->r400 == NULL || h->r404 == NULL || h->r405 == NULL || h->r413 == NULL ||
	    h->r429 == NULL ||
	    MHD_add_response_header(h->r429, "Retry-After", "1") != MHD_YES ||
	    MHD_add_response_header(h->r429, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES ||
	    MHD_add_response_header(h->r405, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES ||
	    MHD_add_response_header(h->r413, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)
		goto nomem;
	if (make_health(false, "starting", &h->health) != KM_EOK)
		goto nomem;
	h->health_code = MHD_HTTP_SERVICE_UNAVAILABLE;
	if (km_http_vtab_create(max_verifiers, &h->vtab) != KM_EOK)
		goto nomem;
	if ((h->change_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		goto nomem;
	km_http_vtab_set_notify(h->vtab, h->change_fd);
	if (cfg->rate_limit != 0 &&
	    km_ratelimit_create(cfg->rate_limit, cfg->rate_burst, max_verifiers, &h->rate) != KM_EOK)
		goto nomem;

	h->no_metrics = cfg->no_metrics;
	h->metrics_of = cfg->metrics_of;
	r = KM_EIO;
	if (cfg->listen_fd > 0) {
		int fd = cfg->listen_fd;
		if (km_http_listener_adopt(fd, &h->listener, why, sizeof(why)) != KM_EOK) {
			set_err(err, errlen, "cannot serve on the socket given (fd %d): %s", fd, why);
			goto out;
		}
	} else if (km_http_listener_bind((struct sockaddr *)&ss, v6 ? sizeof(struct sockaddr_in6)
					 : sizeof(struct sockaddr_in), &h->listener, why,
					 sizeof(why)) != KM_EOK) {
		set_err(err, errlen, "cannot start HTTP server on %s port %u: %s", addr,
			(unsigned)cfg->port, why);
		goto out;
	}
	/* No listening socket of its own: the listener hands connections to the pool. */
	flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
		MHD_USE_NO_LISTEN_SOCKET;
	atomic_store(&h->starting, true);
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, &handle, h,
		MHD_OPTION_EXTERNAL_LOGGER, &mhd_log, h,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		/* the acceptor keeps conn_limit (km_http_listener_set_limit); libmicrohttpd's own
		 * limit, above it, is never reached. It is split among the pool's workers, and a
		 * connection handed over is counted by its worker only when the worker takes it:
		 * each worker's share is at least conn_limit, so that no worker can refuse one
		 * the acceptor already counted (such a refusal is not notified: the count would
		 * never come back down). */
		MHD_OPTION_CONNECTION_LIMIT, conn_limit * threads + 64,
		MHD_OPTION_NOTIFY_CONNECTION, &connection_notified, h,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, timeout,
		/* the pool holds the request line and headers plus our response headers */
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, max_header + (size_t)2048,
		/* refuse sloppy syntax (no Host in HTTP/1.1, space in the URI, space before
		 * a colon): a JWKS endpoint usually sits behind a proxy or CDN */
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_URI_LOG_CALLBACK, &uri_logged, h,
		MHD_OPTION_NOTIFY_COMPLETED, &request_completed, h,
		MHD_OPTION_END);
	atomic_store(&h->starting, false);
	if (h->mhd == NULL) {
		set_err(err, errlen, "cannot start HTTP server on %s port %u: %s", addr,
			(unsigned)cfg->port, h->start_log[0] ? h->start_log : "libmicrohttpd failed");
		goto out;
	}
	h->port = km_http_listener_port(h->listener);
	km_http_listener_set_limit(h->listener, &h->live, conn_limit);
	if (!cfg->defer_listen &&
	    km_http_listener_start(h->listener, h->mhd, why, sizeof(why)) != KM_EOK) {
		set_err(err, errlen, "cannot start HTTP server on %s port %u: %s", addr,
			(unsigned)h->port, why);
		goto out;
	}
	*ret = h;
	h = NULL;
	r = KM_EOK;
	goto out;
nomem:
	set_err(err, errlen, "out of memory starting the HTTP server");
out:
	km_http_free(h);
	return r;
}

void km_http_free(km_http_t *h)
{
	size_t i;

	if (h == NULL)
		return;
	/* no new connection first, then the workers and their connections */
	km_http_listener_free(h->listener);
	if (h->mhd != NULL)
		MHD_stop_daemon(h->mhd);
	for (i = 0; i < h->ndocs; i++)
		doc_free(h->docs[i]);
	free(h->docs);
	free(h->buckets);
	if (h->health != NULL)
		MHD_destroy_response(h->health);
	if (h->r400 != NULL)
		MHD_destroy_response(h->r400);
	if (h->r404 != NULL)
		MHD_destroy_response(h->r404);
	if (h->r405 != NULL)
		MHD_destroy_response(h->r405);
	if (h->r413 != NULL)
		MHD_destroy_response(h->r413);
	if (h->r429 != NULL)
		MHD_destroy_response(h->r429);
	km_ratelimit_free(h->rate);
	free(h->extra_metrics);
	km_http_vtab_free(h->vtab);
	if (h->change_fd >= 0)
		close(h->change_fd);
	pthread_rwlock_destroy(&h->lock);
	free(h);
}

uint16_t km_http_port(const km_http_t *h)
{
	return h->port;
}

int km_http_listen(km_http_t *h, char *err, size_t errlen)
{
	char why[160] = "";

	if (km_http_listener_start(h->listener, h->mhd, why, sizeof(why)) != KM_EOK) {
		set_err(err, errlen, "cannot listen for HTTP on port %u: %s", (unsigned)h->port, why);
		return KM_EIO;
	}
	return KM_EOK;
}

int km_http_publish(km_http_t *h, const char *path, const char *body, size_t len,
                    int64_t serial, unsigned max_age, time_t last_modified)
{
	struct doc *d = NULL, *old = NULL, **link;
	int r;

	if (!km_http_path_valid(path) || (body == NULL && len > 0))
		return KM_EINVAL;
	if ((r = doc_build(path, body, len, serial, max_age, last_modified, &d)) != KM_EOK)
		return r;

	r = KM_EOK;
	pthread_rwlock_wrlock(&h->lock);
	if ((old = doc_find(h, path)) != NULL) {
		/* the array slot and the bucket link, both under the same write lock */
		d->pos = old->pos;
		h->docs[d->pos] = d;
		link = bucket_link(h, old);
		d->hnext = old->hnext;
		*link = d;
	} else if ((r = docs_reserve(h)) != KM_EOK) {
		old = d;        /* not published: dropped below */
	} else {
		d->pos = h->ndocs;
		h->docs[h->ndocs++] = d;
		link = &h->buckets[d->hash & (h->nbuckets - 1)];
		d->hnext = *link;
		*link = d;
	}
	pthread_rwlock_unlock(&h->lock);
	/* Requests that queued the old responses hold MHD references of their own. */
	doc_free(old);
	return r;
}

int km_http_unpublish(km_http_t *h, const char *path)
{
	struct doc *old = NULL, **link;

	if (path == NULL)
		return KM_ENOENT;
	pthread_rwlock_wrlock(&h->lock);
	if ((old = doc_find(h, path)) != NULL) {
		link = bucket_link(h, old);
		*link = old->hnext;
		h->docs[old->pos] = h->docs[--h->ndocs];
		h->docs[old->pos]->pos = old->pos;
	}
	pthread_rwlock_unlock(&h->lock);
	if (old == NULL)
		return KM_ENOENT;
	doc_free(old);
	return KM_EOK;
}

int km_http_set_health(km_http_t *h, bool ok, const char *reason)
{
	struct MHD_Response *r, *old;
	int rc;

	if ((rc = make_health(ok, reason, &r)) != KM_EOK)
		return rc;
	pthread_rwlock_wrlock(&h->lock);
	old = h->health;
	h->health = r;
	h->health_code = ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
	pthread_rwlock_unlock(&h->lock);
	MHD_destroy_response(old);
	return KM_EOK;
}

int km_http_set_metrics_text(km_http_t *h, const char *text)
{
	char *copy = NULL, *old;

	if (text != NULL && strlen(text) > KM_HTTP_METRICS_TEXT_MAX)
		return KM_EINVAL;
	if (text != NULL && text[0] != '\0' && (copy = strdup(text)) == NULL)
		return KM_ENOMEM;
	pthread_rwlock_wrlock(&h->lock);
	old = h->extra_metrics;
	h->extra_metrics = copy;
	pthread_rwlock_unlock(&h->lock);
	free(old);
	return KM_EOK;
}

int km_http_verifiers(km_http_t *h, const char *path, km_http_verifier_t **ret, size_t *count)
{
	return km_http_vtab_snapshot(h->vtab, path, ret, count);
}

int km_http_take_verifier_changes(km_http_t *h, km_http_verifier_t **ret, size_t *count)
{
	uint64_t v;
	ssize_t r = read(h->change_fd, &v, sizeof(v));   /* reset before taking: none missed */
	(void)r;
	return km_http_vtab_take_changes(h->vtab, ret, count);
}

int km_http_verifier_change_fd(const km_http_t *h)
{
	return h->change_fd;
}

int km_http_set_listed_verifiers(km_http_t *h, const char *const *names, size_t n)
{
	return km_http_vtab_set_listed(h->vtab, names, n);
}
