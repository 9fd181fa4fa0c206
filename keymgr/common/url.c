/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/url.h"

static int fail(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return KM_EINVAL;
}

static bool path_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '~' || c == '-' || c == '/';
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

bool km_url_host_loopback(const char *host)
{
	struct in_addr a4;
	if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
		return true;
	return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

int km_url_parse(const char *s, km_url_t *ret, char *err, size_t errlen)
{
	memset(ret, 0, sizeof(*ret));
	if (s == NULL || strlen(s) >= KM_URL_MAX)
		return fail(err, errlen, "expected a URL of at most 511 characters");
	const char *p;
	if (strncmp(s, "https://", 8) == 0) {
		ret->https = true;
		p = s + 8;
	} else if (strncmp(s, "http://", 7) == 0) {
		p = s + 7;
	} else {
		return fail(err, errlen, "expected an absolute URL starting with https://");
	}
	if (strpbrk(p, "?#") != NULL)
		return fail(err, errlen, "a query or fragment is not allowed");
	if (strchr(p, '@') != NULL)
		return fail(err, errlen, "user information (user@host) is not allowed");
	size_t hl;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		if (close == NULL)
			return fail(err, errlen, "an IPv6 host without its closing ']'");
		hl = (size_t)(close - p) + 1;
		char a6[64];
		struct in6_addr in6;
		if (hl - 2 >= sizeof(a6))
			return fail(err, errlen, "the IPv6 host is too long");
		memcpy(a6, p + 1, hl - 2);
		a6[hl - 2] = '\0';
		if (inet_pton(AF_INET6, a6, &in6) != 1)
			return fail(err, errlen, "the host is not a valid IPv6 address");
	} else {
		hl = strcspn(p, ":/");
		if (hl == 0)
			return fail(err, errlen, "the URL has no host");
		for (size_t i = 0; i < hl; i++)
			if (!host_char(p[i]))
				return fail(err, errlen, "the host must be lowercase letters, digits, '.' "
				            "and '-' (an IDN in its xn-- form)");
		bool dots = false;
		for (size_t i = 0; i + 1 < hl; i++)
			dots = dots || (p[i] == '.' && p[i + 1] == '.');
		if (p[0] == '.' || p[0] == '-' || p[hl - 1] == '.' || dots)
			return fail(err, errlen, "the host is not a valid name");
	}
	if (hl >= sizeof(ret->host))
		return fail(err, errlen, "the host is too long");
	memcpy(ret->host, p, hl);
	p += hl;
	if (*p == ':') {
		size_t pl = strspn(p + 1, "0123456789");
		if (pl == 0 || pl > 5 || (p[1 + pl] != '\0' && p[1 + pl] != '/'))
			return fail(err, errlen, "the port must be 1 to 65535");
		memcpy(ret->port, p + 1, pl);
		if (atoi(ret->port) < 1 || atoi(ret->port) > 65535 || ret->port[0] == '0')
			return fail(err, errlen, "the port must be 1 to 65535");
		p += 1 + pl;
	}
	if (*p != '\0') {
		size_t n = strlen(p);
		if (p[n - 1] == '/')
			return fail(err, errlen, "a trailing '/' is not allowed");
		for (size_t i = 0; i < n; i++)
			if (!path_char(p[i]))
				return fail(err, errlen, "the path must be letters, digits, '.', '_', '~', "
				            "'-' and '/' (no percent-encoding)");
		for (const char *seg = p; seg != NULL && *seg != '\0';) {
			seg++;   /* past '/' */
			size_t sl = strcspn(seg, "/");
			if (sl == 0 || (sl == 1 && seg[0] == '.') ||
			    (sl == 2 && seg[0] == '.' && seg[1] == '.'))
				return fail(err, errlen, "the path has an empty, '.' or '..' segment");
			seg = seg[sl] == '/' ? seg + sl : NULL;
		}
		memcpy(ret->path, p, n + 1);
	}
	if (!ret->https && !km_url_host_loopback(ret->host))
		return fail(err, errlen, "the scheme must be https (http only for a loopback host)");
	return KM_EOK;
}
