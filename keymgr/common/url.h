/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The URLs keymgr writes into documents others rely on (an OpenID provider's issuer, the
 * jwks_uri of a discovery document): absolute, https (http only for a loopback host, for
 * tests and local setups), no user information, query or fragment, and a path of the
 * characters keymgr's own paths use. Stricter than RFC 3986 on purpose: what passes here can
 * be compared byte for byte, as OIDC Discovery 1.0 compares issuers, and laid out as a
 * directory tree (keymgr publish --to).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define KM_URL_MAX 512

typedef struct {
	bool https;
	char host[256];   /* lowercase name, IPv4 literal, or [IPv6] with its brackets */
	char port[6];     /* "" when none is given */
	char path[KM_URL_MAX];   /* "" or "/seg/seg", no trailing '/' */
} km_url_t;

/*
 * Parses s into *ret. KM_EOK, or KM_EINVAL with the first problem in err ("the scheme must be
 * https", "a query or fragment is not allowed", ...). A trailing '/' after the host or the
 * path is refused too: two spellings of one URL would not compare equal.
 */
int km_url_parse(const char *s, km_url_t *ret, char *err, size_t errlen);

/* Whether host is 127.0.0.0/8, ::1 or localhost. */
bool km_url_host_loopback(const char *host);
