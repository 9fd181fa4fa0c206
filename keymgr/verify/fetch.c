/* SPDX-License-Identifier: Apache-2.0 */
/* km_verify_fetch: a JWKS over http(s) with libcurl, bounded in time and size. */
#include <curl/curl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keymgr/common/error.h"
#include "keymgr/verify/verify.h"

typedef struct {
	char *buf;
	size_t len;
	bool too_large;
} sink_t;

static size_t on_data(char *data, size_t size, size_t nmemb, void *ctx)
{
	sink_t *s = ctx;
	size_t n = size * nmemb;
	if (n > KM_VERIFY_JWKS_MAX - s->len) {
		s->too_large = true;
		return 0;   /* aborts the transfer (CURLE_WRITE_ERROR) */
	}
	char *p = realloc(s->buf, s->len + n + 1);
	if (p == NULL)
		return 0;
	memcpy(p + s->len, data, n);
	s->buf = p;
	s->len += n;
	s->buf[s->len] = '\0';
	return n;
}

int km_verify_fetch(const char *url, char **ret, size_t *len, char *err, size_t errlen)
{
	char dummy[1], cerr[CURL_ERROR_SIZE] = "";
	sink_t s = { NULL, 0, false };
	CURL *c = NULL;
	long status = 0;
	int r = KM_EIO;

	if (err == NULL) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (url == NULL || ret == NULL || len == NULL)
		return KM_EINVAL;
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
		snprintf(err, errlen, "only http:// and https:// URLs are fetched");
		return KM_EINVAL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "cannot initialise libcurl");
		return KM_ENOMEM;
	}
	if ((c = curl_easy_init()) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	/* The URL the caller gave, and nothing else: no redirects, no other scheme. */
	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)KM_VERIFY_FETCH_TIMEOUT_MS) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
	                     (curl_off_t)KM_VERIFY_JWKS_MAX) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_USERAGENT, "keymgr-verify") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s) != CURLE_OK) {
		snprintf(err, errlen, "cannot configure libcurl");
		r = KM_ENOMEM;
		goto out;
	}
	CURLcode cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (s.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(err, errlen, "%s: larger than %d bytes", url, KM_VERIFY_JWKS_MAX);
		r = KM_ERANGE;
		goto out;
	}
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		snprintf(err, errlen, "%s: no complete answer within %d ms", url,
		         KM_VERIFY_FETCH_TIMEOUT_MS);
		r = KM_ETIMEDOUT;
		goto out;
	}
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s: %s", url, cerr[0] ? cerr : curl_easy_strerror(cc));
		goto out;
	}
	if (status >= 300 && status < 400) {
		snprintf(err, errlen, "%s: HTTP %ld redirect not followed: give the final URL",
		         url, status);
		goto out;
	}
	if (status != 200) {
		snprintf(err, errlen, "%s: HTTP status %ld, expected 200", url, status);
		goto out;
	}
	if (s.buf == NULL && (s.buf = calloc(1, 1)) == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	*ret = s.buf;
	*len = s.len;
	s.buf = NULL;
	r = KM_EOK;
out:
	free(s.buf);
	curl_easy_cleanup(c);
	curl_global_cleanup();
	return r;
}
