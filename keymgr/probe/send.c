/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The requests of a probe run (libcurl): the endpoint's URL as target.c checked it, the
 * token in the header templates, no proxy (the endpoint itself is what is probed), no
 * redirect followed (a 3xx is an answer like any other), http and https only. The body of
 * an answer is read and dropped (at most 1 MiB).
 */
#include <curl/curl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/probe/probe_int.h"

#define TOKEN_MARK "{token}"
#define BODY_MAX (1024 * 1024)
#define HEADER_MAX 1024
#define ACCEPT_MAX 16

struct probe_client {
	bool curl_global;                /* curl_global_init() succeeded: clean up once */
	CURL *curl;
	struct curl_slist *resolve;      /* a loopback name pinned to its address */
	const char *headers[KM_PROBE_MAX_HEADERS];
	size_t n_headers;
	struct { long lo, hi; } accept[ACCEPT_MAX];
	size_t n_accept;
	size_t body;
	char cerr[CURL_ERROR_SIZE];
};

/* "Name: value": a header name of token characters, a value without CR, LF or NUL. */
static bool header_ok(const char *h)
{
	const char *colon = strchr(h, ':');
	if (colon == NULL || colon == h || strlen(h) > HEADER_MAX)
		return false;
	for (const char *c = h; c < colon; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= '0' && *c <= '9') || strchr("!#$%&'*+-.^_`|~", *c) != NULL))
			return false;
	return strpbrk(colon, "\r\n") == NULL;
}

/* "2xx", "200", "200,204", "2xx,302". */
static int parse_accept(probe_client_t *c, const char *s, char *err, size_t errlen)
{
	for (const char *p = s;; p++) {
		size_t n = strcspn(p, ",");
		bool digits = n == 3 && p[0] >= '1' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
		              p[2] >= '0' && p[2] <= '9';
		bool cls = n == 3 && p[0] >= '1' && p[0] <= '5' && p[1] == 'x' && p[2] == 'x';
		if ((!digits && !cls) || c->n_accept == ACCEPT_MAX) {
			snprintf(err, errlen, "--accept '%.64s': expected HTTP statuses or classes "
			         "separated by commas, such as 2xx or 200,204 (at most %d)", s,
			         ACCEPT_MAX);
			return KM_EINVAL;
		}
		c->accept[c->n_accept].lo = cls ? (p[0] - '0') * 100 : strtol(p, NULL, 10);
		c->accept[c->n_accept].hi = cls ? c->accept[c->n_accept].lo + 99 :
		                            c->accept[c->n_accept].lo;
		c->n_accept++;
		p += n;
		if (*p == '\0')
			return KM_EOK;
	}
}

static int check_opts(probe_client_t *c, const km_probe_opts_t *o, char *err, size_t errlen)
{
	static const char *const def = "Authorization: Bearer " TOKEN_MARK;
	const char *method = o->method != NULL ? o->method : "GET";
	bool marked = false;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
	    strcmp(method, "POST") != 0) {
		snprintf(err, errlen, "--method '%.16s': expected GET, HEAD or POST (a probe sends "
		         "an accepted genuine token: point it at an endpoint that only reads)",
		         method);
		return KM_EINVAL;
	}
	if (o->n_headers > KM_PROBE_MAX_HEADERS) {
		snprintf(err, errlen, "at most %d --header options", KM_PROBE_MAX_HEADERS);
		return KM_EINVAL;
	}
	c->n_headers = o->n_headers;
	for (size_t i = 0; i < o->n_headers; i++) {
		if (o->headers[i] == NULL || !header_ok(o->headers[i])) {
			snprintf(err, errlen, "--header #%zu: expected 'Name: value' on one line (at "
			         "most %d characters)", i + 1, HEADER_MAX);
			return KM_EINVAL;
		}
		marked = marked || strstr(o->headers[i], TOKEN_MARK) != NULL;
		c->headers[i] = o->headers[i];
	}
	if (c->n_headers == 0) {
		c->headers[c->n_headers++] = def;
		marked = true;
	}
	if (!marked) {
		snprintf(err, errlen, "no --header carries the token: put " TOKEN_MARK " where it "
		         "goes, as in 'Authorization: Bearer " TOKEN_MARK "'");
		return KM_EINVAL;
	}
	if (o->timeout_ms > KM_PROBE_TIMEOUT_MS_MAX) {
		snprintf(err, errlen, "--timeout is at most %d s", KM_PROBE_TIMEOUT_MS_MAX / 1000);
		return KM_EINVAL;
	}
	return parse_accept(c, o->accept != NULL ? o->accept : "2xx", err, errlen);
}

static size_t drop_body(char *data, size_t size, size_t nmemb, void *ctx)
{
	probe_client_t *c = ctx;
	size_t n = size * nmemb;
	(void)data;
	if (n > BODY_MAX - c->body)
		return 0;   /* CURLE_WRITE_ERROR: enough of that */
	c->body += n;
	return n;
}

int probe_client_new(const probe_target_t *t, const km_probe_opts_t *o,
                     probe_client_t **ret, char *err, size_t errlen)
{
	probe_client_t *c = calloc(1, sizeof(*c));
	const char *method = o->method != NULL ? o->method : "GET";
	long timeout = o->timeout_ms != 0 ? (long)o->timeout_ms : KM_PROBE_TIMEOUT_MS_DEFAULT;
	char pin[300];
	int r;

	if (c == NULL)
		return KM_ENOMEM;
	if ((r = check_opts(c, o, err, errlen)) != KM_EOK)
		goto fail;
	r = KM_ENOMEM;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		goto fail;
	c->curl_global = true;
	if ((c->curl = curl_easy_init()) == NULL)
		goto fail;
	/* "localhost" is loopback only if it resolves there: it always does for the probe. */
	if (t->loopback && strcmp(t->host, "localhost") == 0) {
		snprintf(pin, sizeof(pin), "localhost:%ld:127.0.0.1", t->port);
		if ((c->resolve = curl_slist_append(NULL, pin)) == NULL)
			goto fail;
	}
	if (curl_easy_setopt(c->curl, CURLOPT_URL, t->url) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_PROXY, "") != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "keymgr-probe") != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, drop_body) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->cerr) != CURLE_OK ||
	    (c->resolve != NULL &&
	     curl_easy_setopt(c->curl, CURLOPT_RESOLVE, c->resolve) != CURLE_OK))
		goto fail;
	if (strcmp(method, "HEAD") == 0)
		r = curl_easy_setopt(c->curl, CURLOPT_NOBODY, 1L) == CURLE_OK ? KM_EOK : KM_ENOMEM;
	else if (strcmp(method, "POST") == 0)
		r = curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "") == CURLE_OK ? KM_EOK : KM_ENOMEM;
	else
		r = KM_EOK;
	if (r != KM_EOK)
		goto fail;
	*ret = c;
	return KM_EOK;
fail:
	probe_client_free(c);
	return r;
}

void probe_client_free(probe_client_t *c)
{
	if (c == NULL)
		return;
	curl_easy_cleanup(c->curl);
	if (c->curl_global)
		curl_global_cleanup();
	curl_slist_free_all(c->resolve);
	free(c);
}

/* The header template h with every {token} replaced by token. malloc'd, or NULL. */
static char *fill(const char *h, const char *token)
{
	size_t n = 0, tl = strlen(token), ml = strlen(TOKEN_MARK);
	for (const char *p = strstr(h, TOKEN_MARK); p != NULL; p = strstr(p + ml, TOKEN_MARK))
		n++;
	char *out = malloc(strlen(h) + n * tl + 1), *o = out;
	if (out == NULL)
		return NULL;
	for (const char *p = h, *m; ; p = m + ml) {
		m = strstr(p, TOKEN_MARK);
		size_t k = m != NULL ? (size_t)(m - p) : strlen(p);
		memcpy(o, p, k);
		o += k;
		if (m == NULL)
			break;
		memcpy(o, token, tl);
		o += tl;
	}
	*o = '\0';
	return out;
}

int probe_client_send(probe_client_t *c, const char *token, long *status, char *err,
                      size_t errlen)
{
	struct curl_slist *list = NULL, *more;
	int r = KM_ENOMEM;
	*status = 0;
	for (size_t i = 0; i < c->n_headers; i++) {
		bool carries = strstr(c->headers[i], TOKEN_MARK) != NULL;
		if (carries && token == NULL)
			continue;
		char *h = carries ? fill(c->headers[i], token) : strdup(c->headers[i]);
		more = h != NULL ? curl_slist_append(list, h) : NULL;
		free(h);
		if (more == NULL)
			goto out;
		list = more;
	}
	c->body = 0;
	c->cerr[0] = '\0';
	if (curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, list) != CURLE_OK)
		goto out;
	CURLcode cc = curl_easy_perform(c->curl);
	if (cc == CURLE_WRITE_ERROR && c->body > 0)
		cc = CURLE_OK;   /* the body was dropped: the status is what counts */
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		snprintf(err, errlen, "no answer within the timeout");
		r = KM_ETIMEDOUT;
	} else if (cc == CURLE_WEIRD_SERVER_REPLY || cc == CURLE_UNSUPPORTED_PROTOCOL ||
	           cc == CURLE_GOT_NOTHING) {
		snprintf(err, errlen, "the answer is not HTTP (%s)", c->cerr[0] ? c->cerr :
		         curl_easy_strerror(cc));
		r = KM_EIO;
	} else if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s", c->cerr[0] ? c->cerr : curl_easy_strerror(cc));
		r = KM_EIO;
	} else if (curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status) != CURLE_OK ||
	           *status < 100 || *status > 599) {
		snprintf(err, errlen, "the answer is not HTTP");
		*status = 0;
		r = KM_EIO;
	} else {
		r = KM_EOK;
	}
out:
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(list);
	return r;
}

bool probe_client_accepts(const probe_client_t *c, long status)
{
	for (size_t i = 0; i < c->n_accept; i++)
		if (status >= c->accept[i].lo && status <= c->accept[i].hi)
			return true;
	return false;
}
