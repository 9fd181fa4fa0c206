/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which URLs may be probed: http(s) on loopback or on a host of probe.allowed_hosts, parsed
 * by libcurl's own URL parser, so that the host checked here is the host it connects to
 * (send.c requests the URL as normalised here). Nothing is resolved or sent: a name that is
 * not allowed is refused before any DNS lookup.
 */
#include <curl/curl.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keymgr/common/error.h"
#include "keymgr/probe/probe_int.h"

static bool loopback_host(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* A URL part as text (NULL when absent). */
static char *part(CURLU *u, CURLUPart what)
{
	char *s = NULL;
	return curl_url_get(u, what, &s, 0) == CURLUE_OK ? s : NULL;
}

static bool allowed(const km_config_t *cfg, const char *host)
{
	const km_probe_cfg_t *p = km_config_probe(cfg);
	for (size_t i = 0; i < p->n_allowed_hosts; i++)
		if (strcasecmp(p->allowed_hosts[i], host) == 0)
			return true;
	return false;
}

/* Host and port of a parsed URL into t. */
static int host_of(CURLU *u, probe_target_t *t, char *err, size_t errlen)
{
	char *host = part(u, CURLUPART_HOST), *port = part(u, CURLUPART_PORT);
	char *scheme = part(u, CURLUPART_SCHEME);
	int r = KM_EINVAL;
	if (host == NULL || host[0] == '\0' || strlen(host) >= sizeof(t->host)) {
		snprintf(err, errlen, "--url: no host");
		goto out;
	}
	/* An IPv6 literal comes back in brackets. */
	size_t n = strlen(host);
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	for (char *c = host; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	snprintf(t->host, sizeof(t->host), "%s", host);
	t->port = port != NULL ? strtol(port, NULL, 10) :
	          scheme != NULL && strcmp(scheme, "https") == 0 ? 443 : 80;
	r = KM_EOK;
out:
	curl_free(host);
	curl_free(port);
	curl_free(scheme);
	return r;
}

int probe_target_parse(const km_config_t *cfg, const char *url, probe_target_t *ret,
                       char *err, size_t errlen)
{
	probe_target_t t = { .port = 0 };
	CURLU *u = NULL;
	char *user = NULL, *text = NULL, *scheme = NULL;
	int r = KM_EINVAL;

	if (cfg == NULL || url == NULL || url[0] == '\0' || ret == NULL) {
		snprintf(err, errlen, "--url is required");
		return KM_EINVAL;
	}
	if (strlen(url) >= sizeof(t.url)) {
		snprintf(err, errlen, "--url is longer than %zu characters", sizeof(t.url) - 1);
		return KM_EINVAL;
	}
	if ((u = curl_url()) == NULL)
		return KM_ENOMEM;
	/* The scheme must be written: a bare host:port would otherwise be guessed at. */
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    (scheme = part(u, CURLUPART_SCHEME)) == NULL) {
		snprintf(err, errlen, "--url '%.200s' is not a URL (expected http://HOST[:PORT]/PATH "
		         "or https://...)", url);
		goto out;
	}
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		snprintf(err, errlen, "--url: only http:// and https:// endpoints are probed, not "
		         "%.16s://", scheme);
		goto out;
	}
	if ((user = part(u, CURLUPART_USER)) != NULL) {
		snprintf(err, errlen, "--url: no user name or password in the URL (give "
		         "credentials with --header)");
		goto out;
	}
	if ((r = host_of(u, &t, err, errlen)) != KM_EOK)
		goto out;
	t.loopback = loopback_host(t.host);
	if (!t.loopback && !allowed(cfg, t.host)) {
		snprintf(err, errlen, "--url: host '%s' is neither loopback nor listed in "
		         "probe.allowed_hosts of %s: refused, nothing was sent (a probe sends real "
		         "tokens; it is never aimed at a host the configuration does not name)",
		         t.host, km_config_path(cfg));
		r = KM_POLICY_EDENIED;
		goto out;
	}
	if ((text = part(u, CURLUPART_URL)) == NULL || strlen(text) >= sizeof(t.url)) {
		r = KM_EINVAL;
		snprintf(err, errlen, "--url '%.200s' cannot be normalised", url);
		goto out;
	}
	snprintf(t.url, sizeof(t.url), "%s", text);
	*ret = t;
	r = KM_EOK;
out:
	curl_free(scheme);
	curl_free(user);
	curl_free(text);
	curl_url_cleanup(u);
	return r;
}

int km_probe_target_check(const km_config_t *cfg, const char *url, char *err, size_t errlen)
{
	probe_target_t t;
	return probe_target_parse(cfg, url, &t, err, errlen);
}
