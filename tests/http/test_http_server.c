/* SPDX-License-Identifier: Apache-2.0 */
/*
 * km_http over real HTTP on 127.0.0.1 (ephemeral port): libcurl for well-formed requests,
 * raw sockets where the exact bytes on the wire matter (malformed requests, "no body").
 * Each test starts its own server, so counters and tables start from zero.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "keymgr/common/error.h"
#include "keymgr/http/http_server.h"
#include "keymgr/http/http_util.h"

#define P1 "/production/.well-known/jwks.json"
#define P2 "/production/api/jwks.json"
#define LM 1700000000
#define LM_TEXT "Tue, 14 Nov 2023 22:13:20 GMT"

static const char DOC1[] =
	"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
	"\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
	"\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\","
	"\"kid\":\"k1\",\"use\":\"sig\",\"alg\":\"ES256\"}]}";
static const char DOC2[] =
	"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
	"\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
	"\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\","
	"\"kid\":\"k1\",\"use\":\"sig\",\"alg\":\"ES256\"},{\"kty\":\"EC\",\"crv\":\"P-256\","
	"\"x\":\"gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0\","
	"\"y\":\"SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps\","
	"\"kid\":\"k2\",\"use\":\"sig\",\"alg\":\"ES256\"}]}";

struct hdr {
	char name[64];
	char value[512];
};

struct resp {
	long code;
	char *body;
	size_t len;
	struct hdr h[32];
	size_t nh;
	long connects;          /* new connections opened for this request */
};

struct fx {
	km_http_t *h;
	uint16_t port;
	CURL *curl;             /* reused: keeps its connection alive */
	char etag1[KM_ETAG_SIZE];
};

/* ---------------------------------------------------------------- client helpers */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct resp *r = ud;
	char *grown = realloc(r->body, r->len + sz * n + 1);

	if (grown == NULL)
		return 0;
	r->body = grown;
	memcpy(r->body + r->len, p, sz * n);
	r->len += sz * n;
	r->body[r->len] = '\0';
	return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct resp *r = ud;
	size_t len = sz * n, nl, vl;
	const char *colon = memchr(p, ':', len);

	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		r->nh = 0;      /* a new status line (after 100 Continue): start over */
		return len;
	}
	if (colon == NULL || r->nh == 32)
		return len;
	nl = (size_t)(colon - p);
	colon++;
	while (colon < p + len && *colon == ' ')
		colon++;
	vl = (size_t)(p + len - colon);
	while (vl > 0 && (colon[vl - 1] == '\r' || colon[vl - 1] == '\n'))
		vl--;
	snprintf(r->h[r->nh].name, sizeof(r->h[0].name), "%.*s", (int)nl, p);
	snprintf(r->h[r->nh].value, sizeof(r->h[0].value), "%.*s", (int)vl, colon);
	r->nh++;
	return len;
}

static const char *hdr(const struct resp *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nh; i++)
		if (strcasecmp(r->h[i].name, name) == 0)
			return r->h[i].value;
	return NULL;
}

static void resp_clear(struct resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/*
 * One request with libcurl. method: "GET", "HEAD" or any other; extra: NULL-terminated
 * header lines; body: sent as the request body when not NULL.
 */
static void request(CURL *c, uint16_t port, const char *method, const char *path,
		    const char *const *extra, const char *body, struct resp *r)
{
	struct curl_slist *hl = NULL;
	char url[512];
	bool own = (c == NULL);

	memset(r, 0, sizeof(*r));
	if (own)
		c = curl_easy_init();
	assert_non_null(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);      /* a guard against hangs only */
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	if (body != NULL && strcmp(method, "GET") == 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "GET");
	for (; extra != NULL && *extra != NULL; extra++)
		hl = curl_slist_append(hl, *extra);
	hl = curl_slist_append(hl, "Accept:");  /* keep requests minimal */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r->connects);
	curl_slist_free_all(hl);
	if (own)
		curl_easy_cleanup(c);
}

static void get(struct fx *f, const char *path, const char *h1, struct resp *r)
{
	const char *extra[] = { h1, NULL };

	request(NULL, f->port, "GET", path, extra, NULL, r);
}

static int raw_connect(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = 60 };   /* a guard against hangs only */
	int s = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(s >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return s;
}

static void raw_send(int s, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(s, data, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;         /* the server may close early: the reply tells */
		data += n;
		len -= (size_t)n;
	}
}

/* Reads until the server closes; returns the bytes (NUL-terminated, caller frees). */
static char *raw_read_all(int s, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	ssize_t k;

	assert_non_null(buf);
	for (;;) {
		if (n + 1024 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		k = recv(s, buf + n, cap - n - 1, 0);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static char *raw_exchange(uint16_t port, const char *req, size_t *len)
{
	int s = raw_connect(port);
	char *out;

	raw_send(s, req, strlen(req));
	out = raw_read_all(s, len);
	close(s);
	return out;
}

/* ---------------------------------------------------------------- fixture */

static int setup(void **state)
{
	km_http_cfg_t cfg = { .listen_addr = "127.0.0.1", .port = 0, .threads = 2,
			      .max_header_size = 4096 };
	struct fx *f = calloc(1, sizeof(*f));
	char err[256] = "";

	if (f == NULL)
		return -1;
	if (km_http_start(&cfg, &f->h, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "km_http_start: %s\n", err);
		free(f);
		return -1;
	}
	f->port = km_http_port(f->h);
	if (f->port == 0 ||
	    km_http_publish(f->h, P1, DOC1, strlen(DOC1), 7, 300, LM) != KM_EOK ||
	    km_etag_compute(DOC1, strlen(DOC1), f->etag1) != KM_EOK ||
	    (f->curl = curl_easy_init()) == NULL) {
		km_http_free(f->h);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	curl_easy_cleanup(f->curl);
	km_http_free(f->h);
	free(f);
	return 0;
}

static int group_setup(void **state)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
	curl_global_cleanup();
	return 0;
}

/* Value of one metrics sample line ("name{labels} value"); -1 if absent. */
static long long metric(struct fx *f, const char *sample)
{
	struct resp r;
	const char *p;
	long long v = -1;
	size_t n = strlen(sample);

	get(f, "/metrics", NULL, &r);
	assert_int_equal(r.code, 200);
	for (p = r.body; p != NULL && *p != '\0'; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, sample, n) == 0 && p[n] == ' ')
			v = atoll(p + n + 1);
	resp_clear(&r);
	return v;
}

/* ---------------------------------------------------------------- documents */

static void test_get_body_and_headers_exact(void **state)
{
	struct fx *f = *state;
	struct resp r;
	char cl[32];

	get(f, P1, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.len, strlen(DOC1));
	assert_memory_equal(r.body, DOC1, r.len);
	snprintf(cl, sizeof(cl), "%zu", strlen(DOC1));
	assert_string_equal(hdr(&r, "Content-Type"), "application/jwk-set+json");
	assert_string_equal(hdr(&r, "ETag"), f->etag1);
	assert_string_equal(hdr(&r, "Cache-Control"), "public, max-age=300");
	assert_string_equal(hdr(&r, "Last-Modified"), LM_TEXT);
	assert_string_equal(hdr(&r, "Content-Length"), cl);
	assert_non_null(hdr(&r, "Date"));
	assert_int_equal(r.nh, 6);      /* nothing else: no Server, no Connection: close */
	resp_clear(&r);

	/* the query string is not part of the path */
	get(f, P1 "?cachebust=1", NULL, &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(hdr(&r, "ETag"), f->etag1);
	resp_clear(&r);
}

static void test_get_keeps_connection_alive(void **state)
{
	struct fx *f = *state;
	struct resp r;
	const char *inm[] = { NULL, NULL };
	char line[128];

	request(f->curl, f->port, "GET", P1, NULL, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.connects, 1);
	resp_clear(&r);
	snprintf(line, sizeof(line), "If-None-Match: %s", f->etag1);
	inm[0] = line;
	request(f->curl, f->port, "GET", P1, inm, NULL, &r);
	assert_int_equal(r.code, 304);
	assert_int_equal(r.connects, 0);        /* reused */
	resp_clear(&r);
	/* the 304 closed it: libmicrohttpd 0.9.75 can omit its Content-Length only that way */
	request(f->curl, f->port, "GET", "/nope", NULL, NULL, &r);
	assert_int_equal(r.code, 404);
	assert_int_equal(r.connects, 1);
	resp_clear(&r);
	request(f->curl, f->port, "HEAD", P1, NULL, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.connects, 0);
	resp_clear(&r);
}

static void test_if_none_match_304_repeats_etag_and_cache_control(void **state)
{
	struct fx *f = *state;
	struct resp r;
	char line[128], req[512], expect_cl[64];
	char *raw;
	size_t len;

	snprintf(line, sizeof(line), "If-None-Match: %s", f->etag1);
	get(f, P1, line, &r);
	assert_int_equal(r.code, 304);
	assert_string_equal(hdr(&r, "ETag"), f->etag1);
	assert_string_equal(hdr(&r, "Cache-Control"), "public, max-age=300");
	assert_null(hdr(&r, "Content-Type"));
	assert_int_equal(r.len, 0);
	resp_clear(&r);

	/* On the wire: nothing after the header block, and a Content-Length, if any, that
	 * equals the 200's (RFC 7230 3.3.2), never a misleading 0. */
	snprintf(req, sizeof(req), "GET " P1 " HTTP/1.1\r\nHost: t\r\nIf-None-Match: %s\r\n"
		 "Connection: close\r\n\r\n", f->etag1);
	raw = raw_exchange(f->port, req, &len);
	assert_true(strncmp(raw, "HTTP/1.1 304 ", 13) == 0);
	assert_non_null(strstr(raw, "\r\n\r\n"));
	assert_int_equal(strlen(strstr(raw, "\r\n\r\n")), 4);
	snprintf(expect_cl, sizeof(expect_cl), "\r\nContent-Length: %zu\r\n", strlen(DOC1));
	assert_true(strstr(raw, "Content-Length:") == NULL || strstr(raw, expect_cl) != NULL);
	free(raw);
}

static void test_if_none_match_lists_weak_and_mismatch(void **state)
{
	struct fx *f = *state;
	struct resp r;
	char line[256];

	snprintf(line, sizeof(line), "If-None-Match: \"0000\", W/%s", f->etag1);
	get(f, P1, line, &r);
	assert_int_equal(r.code, 304);
	assert_string_equal(hdr(&r, "ETag"), f->etag1);
	resp_clear(&r);

	get(f, P1, "If-None-Match: *", &r);
	assert_int_equal(r.code, 304);
	resp_clear(&r);

	get(f, P1, "If-None-Match: \"0000\", W/\"1111\"", &r);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.len, strlen(DOC1));
	assert_string_equal(hdr(&r, "ETag"), f->etag1);
	resp_clear(&r);

	/* unquoted: malformed, ignored -> full answer */
	snprintf(line, sizeof(line), "If-None-Match: %.32s", f->etag1 + 1);
	get(f, P1, line, &r);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.len, strlen(DOC1));
	resp_clear(&r);
}

static void test_head_sends_headers_without_body(void **state)
{
	struct fx *f = *state;
	struct resp r;
	char cl[32], *raw;
	size_t len;

	request(NULL, f->port, "HEAD", P1, NULL, NULL, &r);
	assert_int_equal(r.code, 200);
	snprintf(cl, sizeof(cl), "%zu", strlen(DOC1));
	assert_string_equal(hdr(&r, "Content-Type"), "application/jwk-set+json");
	assert_string_equal(hdr(&r, "ETag"), f->etag1);
	assert_string_equal(hdr(&r, "Cache-Control"), "public, max-age=300");
	assert_string_equal(hdr(&r, "Last-Modified"), LM_TEXT);
	assert_string_equal(hdr(&r, "Content-Length"), cl);
	assert_int_equal(r.len, 0);
	resp_clear(&r);

	raw = raw_exchange(f->port, "HEAD " P1 " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
			   &len);
	assert_true(strncmp(raw, "HTTP/1.1 200 ", 13) == 0);
	assert_int_equal(strlen(strstr(raw, "\r\n\r\n")), 4);
	free(raw);
}

static void test_unknown_path_404(void **state)
{
	struct fx *f = *state;
	const char *paths[] = { "/", "/production", P1 "/", "/production/.well-known/JWKS.json",
				"/staging/.well-known/jwks.json", "//production/.well-known/jwks.json" };
	struct resp r;
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		get(f, paths[i], NULL, &r);
		assert_int_equal(r.code, 404);
		assert_string_equal(hdr(&r, "Content-Type"), "application/json");
		assert_string_equal(r.body, "{\"error\":\"not found\"}\n");
		assert_null(hdr(&r, "ETag"));
		resp_clear(&r);
	}
}

/* A served path in another spelling (a percent-encoding): refused, never served. A cache in
 * front of keymgr would otherwise keep the document under a key of the attacker's choice;
 * "%00" would end the decoded path early. The query is not judged. */
static void test_percent_encoded_path_400(void **state)
{
	struct fx *f = *state;
	const char *paths[] = { P1 "%00x", P1 "%00", "/production/.well-known/jwks%2Ejson",
				"/production%2F.well-known/jwks.json", "/%2Fproduction/.well-known/jwks.json",
				"/healthz%00" };
	struct resp r;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		get(f, paths[i], NULL, &r);
		if (r.code != 400)
			fail_msg("%s: %ld", paths[i], (long)r.code);
		assert_string_equal(r.body, "{\"error\":\"bad request: a percent-encoded path\"}\n");
		assert_null(hdr(&r, "ETag"));
		resp_clear(&r);
	}
	get(f, P1 "?v=%41", NULL, &r);
	assert_int_equal(r.code, 200);
	resp_clear(&r);
}

static void test_other_methods_405_with_allow(void **state)
{
	struct fx *f = *state;
	const char *methods[] = { "POST", "PUT", "DELETE", "OPTIONS", "PATCH" };
	struct resp r;
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		request(NULL, f->port, methods[i], P1, NULL,
			strcmp(methods[i], "POST") == 0 ? "{\"keys\":[]}" : NULL, &r);
		assert_int_equal(r.code, 405);
		assert_string_equal(hdr(&r, "Allow"), "GET, HEAD");
		resp_clear(&r);
	}
	/* the document was not touched */
	get(f, P1, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_memory_equal(r.body, DOC1, strlen(DOC1));
	resp_clear(&r);
}

static void test_get_with_body_refused_413(void **state)
{
	struct fx *f = *state;
	struct resp r;
	char *raw;
	size_t len;

	request(NULL, f->port, "GET", P1, NULL, "hello", &r);
	assert_int_equal(r.code, 413);
	assert_null(hdr(&r, "ETag"));
	resp_clear(&r);

	raw = raw_exchange(f->port, "GET " P1 " HTTP/1.1\r\nHost: t\r\n"
			   "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", &len);
	assert_true(strncmp(raw, "HTTP/1.1 413 ", 13) == 0);
	assert_null(strstr(raw, "ETag"));
	free(raw);

	/* Content-Length: 0 is no body */
	get(f, P1, "Content-Length: 0", &r);
	assert_int_equal(r.code, 200);
	resp_clear(&r);
}

static void test_malformed_request_line_refused(void **state)
{
	struct fx *f = *state;
	struct resp r;
	char *raw;
	size_t len;

	/* a request line with an extra element: 400 from libmicrohttpd */
	raw = raw_exchange(f->port, "GET " P1 " HTTP/1.1 extra\r\nHost: t\r\n\r\n", &len);
	assert_true(strncmp(raw, "HTTP/1.1 400 ", 13) == 0);
	assert_null(strstr(raw, "ETag"));
	free(raw);
	/* a malformed header line: 400 */
	raw = raw_exchange(f->port, "GET " P1 " HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n",
			   &len);
	assert_true(strncmp(raw, "HTTP/1.1 400 ", 13) == 0);
	free(raw);
	/* an unknown protocol version: 505 */
	raw = raw_exchange(f->port, "GET " P1 " HTTP/9.9\r\nHost: t\r\n\r\n", &len);
	assert_true(strncmp(raw, "HTTP/1.1 505 ", 13) == 0);
	free(raw);
	/* strict parsing: HTTP/1.1 without Host, or a space before the colon: 400 */
	raw = raw_exchange(f->port, "GET " P1 " HTTP/1.1\r\n\r\n", &len);
	assert_true(strncmp(raw, "HTTP/1.1 400 ", 13) == 0);
	free(raw);
	raw = raw_exchange(f->port, "GET " P1 " HTTP/1.1\r\nHost : t\r\n\r\n", &len);
	assert_true(strncmp(raw, "HTTP/1.1 400 ", 13) == 0);
	free(raw);
	/* no URI at all: libmicrohttpd 0.9.75 closes without answering; never a document */
	raw = raw_exchange(f->port, "GARBAGE\r\n\r\n", &len);
	assert_true(len == 0 || strncmp(raw, "HTTP/1.1 400 ", 13) == 0);
	free(raw);

	/* HTTP/1.0 needs no Host */
	raw = raw_exchange(f->port, "GET " P1 " HTTP/1.0\r\n\r\n", &len);
	assert_true(strncmp(raw, "HTTP/1.1 200 ", 13) == 0);
	assert_non_null(strstr(raw, "\r\n\r\n{\"keys\""));
	free(raw);

	/* none of this disturbed the server */
	get(f, P1, NULL, &r);
	assert_int_equal(r.code, 200);
	resp_clear(&r);
	assert_int_equal(metric(f, "keymgr_http_requests_total{code=\"400\"}"), -1);
	/* counted once the request line was understood (here: the bad header line) */
	assert_true(metric(f, "keymgr_http_requests_rejected_total") >= 1);
}

static void test_oversized_header_431_while_other_client_served(void **state)
{
	struct fx *f = *state;
	struct resp r;
	char *big, *raw;
	size_t len, n = 16 * 1024;
	int s;

	big = malloc(n + 1);
	assert_non_null(big);
	memset(big, 'a', n);
	big[n] = '\0';
	/* a slow, oversized request is in progress on one connection... */
	s = raw_connect(f->port);
	raw_send(s, "GET " P1 " HTTP/1.1\r\nHost: t\r\nX-Filler: ", 44);
	raw_send(s, big, 2000);
	/* ...while another client is served normally */
	get(f, P1, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_memory_equal(r.body, DOC1, strlen(DOC1));
	resp_clear(&r);
	/* the oversized one is refused with a 4xx (431) and no document */
	raw_send(s, big, n);
	raw_send(s, "\r\n\r\n", 4);
	raw = raw_read_all(s, &len);
	close(s);
	assert_true(len >= 13);
	assert_true(strncmp(raw, "HTTP/1.1 4", 10) == 0);
	/* libmicrohttpd 0.9.75 says 431, or 414 when the line that overflows is the first
	 * header line it has not finished yet */
	assert_true(strncmp(raw, "HTTP/1.1 431 ", 13) == 0 ||
		    strncmp(raw, "HTTP/1.1 414 ", 13) == 0);
	assert_null(strstr(raw, "\"keys\""));
	free(raw);
	free(big);
	/* and the server still serves */
	get(f, P1, NULL, &r);
	assert_int_equal(r.code, 200);
	resp_clear(&r);
	/* the oversized request never reached the handler: only the two good ones did */
	assert_int_equal(metric(f, "keymgr_http_requests_total{code=\"200\"}"), 2);
	assert_int_equal(metric(f, "keymgr_http_requests_total{code=\"431\"}"), -1);
}

static void test_swap_changes_etag_and_body(void **state)
{
	struct fx *f = *state;
	struct resp r;
	char line[128], etag2[KM_ETAG_SIZE];

	assert_int_equal(km_http_publish(f->h, P1, DOC2, strlen(DOC2), 8, 60, LM + 60), KM_EOK);
	get(f, P1, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.len, strlen(DOC2));
	assert_memory_equal(r.body, DOC2, r.len);
	assert_int_equal(km_etag_compute(DOC2, strlen(DOC2), etag2), KM_EOK);
	assert_string_equal(hdr(&r, "ETag"), etag2);
	assert_string_not_equal(etag2, f->etag1);
	assert_string_equal(hdr(&r, "Cache-Control"), "public, max-age=60");
	assert_string_equal(hdr(&r, "Last-Modified"), "Tue, 14 Nov 2023 22:14:20 GMT");
	resp_clear(&r);

	/* the old ETag no longer gives 304 */
	snprintf(line, sizeof(line), "If-None-Match: %s", f->etag1);
	get(f, P1, line, &r);
	assert_int_equal(r.code, 200);
	assert_memory_equal(r.body, DOC2, strlen(DOC2));
	resp_clear(&r);
	snprintf(line, sizeof(line), "If-None-Match: %s", etag2);
	get(f, P1, line, &r);
	assert_int_equal(r.code, 304);
	assert_string_equal(hdr(&r, "ETag"), etag2);
	resp_clear(&r);
	assert_int_equal(metric(f, "keymgr_jwks_serial{path=\"" P1 "\"}"), 8);
}

static void test_publish_second_path_and_unpublish(void **state)
{
	struct fx *f = *state;
	struct resp r;

	assert_int_equal(km_http_publish(f->h, P2, DOC2, strlen(DOC2), 3, 300, LM), KM_EOK);
	get(f, P2, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_memory_equal(r.body, DOC2, strlen(DOC2));
	resp_clear(&r);
	get(f, P1, NULL, &r);
	assert_memory_equal(r.body, DOC1, strlen(DOC1));
	resp_clear(&r);

	assert_int_equal(km_http_unpublish(f->h, P1), KM_EOK);
	get(f, P1, NULL, &r);
	assert_int_equal(r.code, 404);
	resp_clear(&r);
	assert_int_equal(km_http_unpublish(f->h, P1), KM_ENOENT);
	assert_int_equal(km_http_unpublish(f->h, NULL), KM_ENOENT);
	get(f, P2, NULL, &r);
	assert_int_equal(r.code, 200);
	resp_clear(&r);
	assert_int_equal(metric(f, "keymgr_jwks_serial{path=\"" P1 "\"}"), -1);
	assert_int_equal(metric(f, "keymgr_jwks_serial{path=\"" P2 "\"}"), 3);
}

static void test_publish_bad_input_changes_nothing(void **state)
{
	struct fx *f = *state;
	const char *bad[] = { NULL, "", "jwks.json", "/", "/a//b", "/a/../b", "/a/./b", "/a b",
			      "/a%2fb", "/a?b", "/healthz", "/metrics", "/a/" };
	struct resp r;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(km_http_publish(f->h, bad[i], DOC2, strlen(DOC2), 9, 1, LM),
				 KM_EINVAL);
	assert_int_equal(km_http_publish(f->h, P1, NULL, 5, 9, 1, LM), KM_EINVAL);
	get(f, P1, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_memory_equal(r.body, DOC1, strlen(DOC1));
	assert_string_equal(hdr(&r, "ETag"), f->etag1);
	resp_clear(&r);
	get(f, "/healthz", NULL, &r);
	assert_int_equal(r.code, 503);  /* still the server's own */
	resp_clear(&r);
	assert_int_equal(metric(f, "keymgr_jwks_serial{path=\"" P1 "\"}"), 7);
	assert_int_equal(metric(f, "keymgr_jwks_bytes{path=\"" P1 "\"}"), (long long)strlen(DOC1));
}

static void test_publish_empty_body(void **state)
{
	struct fx *f = *state;
	struct resp r;

	assert_int_equal(km_http_publish(f->h, P2, NULL, 0, 1, 10, LM), KM_EOK);
	get(f, P2, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.len, 0);
	assert_string_equal(hdr(&r, "ETag"), "\"e3b0c44298fc1c149afbf4c8996fb924\"");
	assert_string_equal(hdr(&r, "Content-Length"), "0");
	resp_clear(&r);
}

/* Swaps documents while a client fetches: every answer is one whole version, and its ETag
 * is the hash of exactly the bytes received. */
struct flip {
	km_http_t *h;
	int rounds;
};

static void *flipper(void *arg)
{
	struct flip *fl = arg;
	int i;

	for (i = 0; i < fl->rounds; i++) {
		const char *d = (i % 2) ? DOC1 : DOC2;

		if (km_http_publish(fl->h, P1, d, strlen(d), 100 + i, 300, LM) != KM_EOK)
			return (void *)1;
	}
	return NULL;
}

static void test_swap_under_load_is_atomic(void **state)
{
	struct fx *f = *state;
	struct flip fl = { .h = f->h, .rounds = 400 };
	char tag[KM_ETAG_SIZE];
	pthread_t t;
	struct resp r;
	void *tr = NULL;
	int i;

	assert_int_equal(pthread_create(&t, NULL, flipper, &fl), 0);
	for (i = 0; i < 150; i++) {
		request(f->curl, f->port, "GET", P1, NULL, NULL, &r);
		assert_int_equal(r.code, 200);
		assert_true((r.len == strlen(DOC1) && memcmp(r.body, DOC1, r.len) == 0) ||
			    (r.len == strlen(DOC2) && memcmp(r.body, DOC2, r.len) == 0));
		assert_int_equal(km_etag_compute(r.body, r.len, tag), KM_EOK);
		assert_string_equal(hdr(&r, "ETag"), tag);
		resp_clear(&r);
	}
	assert_int_equal(pthread_join(t, &tr), 0);
	assert_null(tr);
	assert_int_equal(metric(f, "keymgr_jwks_serial{path=\"" P1 "\"}"), 100 + 399);
}

/* ---------------------------------------------------------------- healthz, metrics */

static void test_healthz_follows_setter(void **state)
{
	struct fx *f = *state;
	struct resp r;

	get(f, "/healthz", NULL, &r);
	assert_int_equal(r.code, 503);
	assert_string_equal(r.body, "unhealthy: starting\n");
	assert_string_equal(hdr(&r, "Cache-Control"), "no-store");
	resp_clear(&r);

	assert_int_equal(km_http_set_health(f->h, true, NULL), KM_EOK);
	get(f, "/healthz", NULL, &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(r.body, "ok\n");
	assert_string_equal(hdr(&r, "Content-Type"), "text/plain; charset=utf-8");
	resp_clear(&r);

	assert_int_equal(km_http_set_health(f->h, false, "token unreachable\r\nX: y"), KM_EOK);
	get(f, "/healthz", NULL, &r);
	assert_int_equal(r.code, 503);
	assert_string_equal(r.body, "unhealthy: token unreachable??X: y\n");
	resp_clear(&r);
	assert_int_equal(metric(f, "keymgr_http_healthy"), 0);

	request(NULL, f->port, "HEAD", "/healthz", NULL, NULL, &r);
	assert_int_equal(r.code, 503);
	assert_int_equal(r.len, 0);
	resp_clear(&r);
	request(NULL, f->port, "POST", "/healthz", NULL, "x", &r);
	assert_int_equal(r.code, 405);
	resp_clear(&r);
}

static void test_metrics_counts_requests_by_status(void **state)
{
	struct fx *f = *state;
	struct resp r;
	char line[128];

	get(f, P1, NULL, &r);
	resp_clear(&r);
	get(f, P1, NULL, &r);
	resp_clear(&r);
	snprintf(line, sizeof(line), "If-None-Match: %s", f->etag1);
	get(f, P1, line, &r);
	resp_clear(&r);
	get(f, "/missing", NULL, &r);
	resp_clear(&r);
	request(NULL, f->port, "DELETE", P1, NULL, NULL, &r);
	resp_clear(&r);
	get(f, "/healthz", NULL, &r);           /* 503 */
	resp_clear(&r);

	get(f, "/metrics", NULL, &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(hdr(&r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
	assert_non_null(strstr(r.body, "# TYPE keymgr_http_requests_total counter\n"));
	assert_non_null(strstr(r.body, "\nkeymgr_http_requests_total{code=\"200\"} 2\n"));
	assert_non_null(strstr(r.body, "\nkeymgr_http_requests_total{code=\"304\"} 1\n"));
	assert_non_null(strstr(r.body, "\nkeymgr_http_requests_total{code=\"404\"} 1\n"));
	assert_non_null(strstr(r.body, "\nkeymgr_http_requests_total{code=\"405\"} 1\n"));
	assert_non_null(strstr(r.body, "\nkeymgr_http_requests_total{code=\"503\"} 1\n"));
	assert_null(strstr(r.body, "code=\"413\""));
	assert_non_null(strstr(r.body, "\nkeymgr_jwks_serial{path=\"" P1 "\"} 7\n"));
	assert_non_null(strstr(r.body, "\nkeymgr_http_requests_rejected_total 0\n"));
	resp_clear(&r);
	/* the previous /metrics request is counted now */
	assert_int_equal(metric(f, "keymgr_http_requests_total{code=\"200\"}"), 3);
}

static void test_metrics_extra_text(void **state)
{
	struct fx *f = *state;
	struct resp r;
	char *huge;

	assert_int_equal(km_http_set_metrics_text(f->h, "# TYPE keymgr_keys gauge\n"
						  "keymgr_keys{state=\"active\"} 1\n"), KM_EOK);
	assert_int_equal(metric(f, "keymgr_keys{state=\"active\"}"), 1);

	huge = malloc(KM_HTTP_METRICS_TEXT_MAX + 2);
	assert_non_null(huge);
	memset(huge, '#', KM_HTTP_METRICS_TEXT_MAX + 1);
	huge[KM_HTTP_METRICS_TEXT_MAX + 1] = '\0';
	assert_int_equal(km_http_set_metrics_text(f->h, huge), KM_EINVAL);
	free(huge);
	assert_int_equal(metric(f, "keymgr_keys{state=\"active\"}"), 1);       /* unchanged */

	assert_int_equal(km_http_set_metrics_text(f->h, NULL), KM_EOK);
	get(f, "/metrics", NULL, &r);
	assert_null(strstr(r.body, "keymgr_keys"));
	resp_clear(&r);
}

/* ---------------------------------------------------------------- verifier tracking */

static const km_http_verifier_t *find_v(const km_http_verifier_t *v, size_t n, const char *id,
					bool named, const char *path)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].id, id) == 0 && v[i].named == named && strcmp(v[i].path, path) == 0)
			return &v[i];
	return NULL;
}

static void test_verifiers_named_unnamed_and_304(void **state)
{
	struct fx *f = *state;
	const km_http_verifier_t *x;
	km_http_verifier_t *v = NULL;
	size_t n = 0;
	struct resp r;
	char inm[128];
	const char *named_inm[] = { "Keymgr-Verifier: api-gw-1", inm, NULL };
	const char *named_only[] = { "Keymgr-Verifier: api-gw-1", NULL };

	assert_int_equal(km_http_verifiers(f->h, NULL, &v, &n), KM_EOK);
	assert_int_equal(n, 0);
	assert_null(v);

	/* named: a 200 for serial 7 */
	request(NULL, f->port, "GET", P1, named_only, NULL, &r);
	assert_int_equal(r.code, 200);
	resp_clear(&r);
	/* unnamed: tracked by address */
	get(f, P1, NULL, &r);
	resp_clear(&r);
	/* HEAD 200 proves nothing; /healthz and 404s are not JWKS fetches */
	request(NULL, f->port, "HEAD", P2, named_only, NULL, &r);
	resp_clear(&r);
	request(NULL, f->port, "HEAD", P1, NULL, NULL, &r);
	resp_clear(&r);
	get(f, P2, "Keymgr-Verifier: api-gw-1", &r);
	assert_int_equal(r.code, 404);
	resp_clear(&r);

	assert_int_equal(km_http_verifiers(f->h, P1, &v, &n), KM_EOK);
	assert_int_equal(n, 2);
	x = find_v(v, n, "api-gw-1", true, P1);
	assert_non_null(x);
	assert_int_equal(x->serial, 7);
	assert_false(x->by_304);
	assert_int_equal(x->fetches, 1);
	x = find_v(v, n, "127.0.0.1", false, P1);
	assert_non_null(x);
	assert_int_equal(x->serial, 7);
	assert_int_equal(x->fetches, 1);
	free(v);

	/* a new version; the verifier revalidates with the ETag of serial 7: 200, now holds 8 */
	assert_int_equal(km_http_publish(f->h, P1, DOC2, strlen(DOC2), 8, 300, LM), KM_EOK);
	snprintf(inm, sizeof(inm), "If-None-Match: %s", f->etag1);
	request(NULL, f->port, "GET", P1, named_inm, NULL, &r);
	assert_int_equal(r.code, 200);
	snprintf(inm, sizeof(inm), "If-None-Match: %s", hdr(&r, "ETag"));
	resp_clear(&r);
	assert_int_equal(km_http_verifiers(f->h, P1, &v, &n), KM_EOK);
	x = find_v(v, n, "api-gw-1", true, P1);
	assert_non_null(x);
	assert_int_equal(x->serial, 8);
	assert_false(x->by_304);
	free(v);

	/* same bytes republished as serial 9: the ETag is unchanged, so the 304 proves the
	 * verifier holds serial 9's bytes */
	assert_int_equal(km_http_publish(f->h, P1, DOC2, strlen(DOC2), 9, 300, LM), KM_EOK);
	request(NULL, f->port, "GET", P1, named_inm, NULL, &r);
	assert_int_equal(r.code, 304);
	resp_clear(&r);
	/* a HEAD that gets a 304 also proves it */
	request(NULL, f->port, "HEAD", P1, named_inm, NULL, &r);
	assert_int_equal(r.code, 304);
	resp_clear(&r);

	assert_int_equal(km_http_verifiers(f->h, NULL, &v, &n), KM_EOK);
	assert_int_equal(n, 2);
	x = find_v(v, n, "api-gw-1", true, P1);
	assert_non_null(x);
	assert_int_equal(x->serial, 9);
	assert_true(x->by_304);
	assert_int_equal(x->fetches, 4);
	x = find_v(v, n, "127.0.0.1", false, P1);
	assert_non_null(x);
	assert_int_equal(x->serial, 7);         /* it has not come back */
	free(v);
	assert_int_equal(metric(f, "keymgr_http_verifiers"), 2);
}

static void test_verifiers_invalid_name_is_unnamed(void **state)
{
	struct fx *f = *state;
	const char *bad[] = { "Keymgr-Verifier: api gw", "Keymgr-Verifier: a/b",
			      ("Keymgr-Verifier: "
			       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
			      "Keymgr-Verifier:" };
	km_http_verifier_t *v = NULL;
	struct resp r;
	size_t n = 0, i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		get(f, P1, bad[i], &r);
		assert_int_equal(r.code, 200);
		resp_clear(&r);
	}
	assert_int_equal(km_http_verifiers(f->h, P1, &v, &n), KM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, "127.0.0.1");
	assert_false(v[0].named);
	assert_int_equal(v[0].fetches, sizeof(bad) / sizeof(bad[0]));
	free(v);
}

/* A fetch makes the change fd readable once; taking the changes resets it and returns the
 * row; with no new fetch it stays quiet (the listener waits on it instead of a timer). */
static void test_verifier_changes_wake_once(void **state)
{
	struct fx *f = *state;
	km_http_verifier_t *v = NULL;
	struct resp r;
	size_t n = 99;
	struct pollfd p = { .fd = km_http_verifier_change_fd(f->h), .events = POLLIN };

	assert_true(p.fd >= 0);
	assert_int_equal(km_http_take_verifier_changes(f->h, &v, &n), KM_EOK);
	free(v);
	assert_int_equal(poll(&p, 1, 0), 0);
	get(f, P1, "Keymgr-Verifier: gw-9", &r);
	resp_clear(&r);
	get(f, P1, "Keymgr-Verifier: gw-9", &r);
	resp_clear(&r);
	assert_int_equal(poll(&p, 1, 0), 1);
	assert_int_equal(km_http_take_verifier_changes(f->h, &v, &n), KM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, "gw-9");
	assert_int_equal(v[0].fetches, 2);
	free(v);
	assert_int_equal(poll(&p, 1, 0), 0);
	assert_int_equal(km_http_take_verifier_changes(f->h, &v, &n), KM_EOK);
	assert_int_equal(n, 0);
	assert_null(v);
}

/* ---------------------------------------------------------------- start errors */

static void test_start_refuses_bad_config(void **state)
{
	struct fx *f = *state;
	km_http_cfg_t cfg = { 0 };
	km_http_t *h = (km_http_t *)0x1;
	char err[256];

	cfg.listen_addr = "localhost";
	err[0] = '\0';
	assert_int_equal(km_http_start(&cfg, &h, err, sizeof(err)), KM_EINVAL);
	assert_non_null(strstr(err, "listen address"));
	cfg.listen_addr = "300.1.2.3";
	assert_int_equal(km_http_start(&cfg, &h, err, sizeof(err)), KM_EINVAL);
	cfg.listen_addr = NULL;
	cfg.threads = 1000;
	err[0] = '\0';
	assert_int_equal(km_http_start(&cfg, &h, err, sizeof(err)), KM_EINVAL);
	assert_non_null(strstr(err, "out of range"));
	cfg.threads = 0;
	cfg.max_header_size = 100;
	assert_int_equal(km_http_start(&cfg, &h, err, sizeof(err)), KM_EINVAL);

	/* the port is taken by the fixture's server */
	cfg.max_header_size = 0;
	cfg.port = f->port;
	err[0] = '\0';
	assert_int_equal(km_http_start(&cfg, &h, err, sizeof(err)), KM_EIO);
	assert_non_null(strstr(err, "cannot start HTTP server"));
	assert_ptr_equal(h, (km_http_t *)0x1);
	km_http_free(NULL);
}

static void test_ipv6_loopback_tracks_address(void **state)
{
	km_http_cfg_t cfg = { .listen_addr = "::1" };
	km_http_verifier_t *v = NULL;
	km_http_t *h = NULL;
	CURL *c;
	char err[256], url[128];
	long code = 0;
	size_t n = 0;
	FILE *null;

	if (km_http_start(&cfg, &h, err, sizeof(err)) != KM_EOK) {
		print_message("no IPv6 loopback here (%s): skipped\n", err);
		skip();
	}
	assert_int_equal(km_http_publish(h, P1, DOC1, strlen(DOC1), 1, 60, LM), KM_EOK);
	snprintf(url, sizeof(url), "http://[::1]:%u" P1, km_http_port(h));
	c = curl_easy_init();
	null = fopen("/dev/null", "w");
	assert_non_null(c);
	assert_non_null(null);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_WRITEDATA, null);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	assert_int_equal(code, 200);
	curl_easy_cleanup(c);
	fclose(null);
	assert_int_equal(km_http_verifiers(h, P1, &v, &n), KM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, "::1");
	assert_false(v[0].named);
	free(v);
	km_http_free(h);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_get_body_and_headers_exact),
		T(test_get_keeps_connection_alive),
		T(test_if_none_match_304_repeats_etag_and_cache_control),
		T(test_if_none_match_lists_weak_and_mismatch),
		T(test_head_sends_headers_without_body),
		T(test_unknown_path_404),
		T(test_percent_encoded_path_400),
		T(test_other_methods_405_with_allow),
		T(test_get_with_body_refused_413),
		T(test_malformed_request_line_refused),
		T(test_oversized_header_431_while_other_client_served),
		T(test_swap_changes_etag_and_body),
		T(test_publish_second_path_and_unpublish),
		T(test_publish_bad_input_changes_nothing),
		T(test_publish_empty_body),
		T(test_swap_under_load_is_atomic),
		T(test_healthz_follows_setter),
		T(test_metrics_counts_requests_by_status),
		T(test_metrics_extra_text),
		T(test_verifiers_named_unnamed_and_304),
		T(test_verifiers_invalid_name_is_unnamed),
		T(test_verifier_changes_wake_once),
		T(test_start_refuses_bad_config),
		cmocka_unit_test(test_ipv6_loopback_tracks_address),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
