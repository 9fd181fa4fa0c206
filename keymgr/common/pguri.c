/* SPDX-License-Identifier: Apache-2.0 */
/* The PostgreSQL store URI: where it lives, and its text without a password (pguri.h). */
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/pguri.h"

#define DEFAULT_SOCKET_DIR "/var/run/postgresql"

static const char *after_scheme(const char *s)
{
	if (s == NULL)
		return NULL;
	if (strncmp(s, "postgresql://", 13) == 0)
		return s + 13;
	if (strncmp(s, "postgres://", 11) == 0)
		return s + 11;
	return NULL;
}

bool km_pguri_is(const char *s)
{
	return after_scheme(s) != NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into out. false on a bad escape, an embedded NUL or overflow. */
static bool decode(const char *s, size_t n, char *out, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			int h = i + 2 < n ? hexval(s[i + 1]) : -1;
			int l = h >= 0 ? hexval(s[i + 2]) : -1;
			if (h < 0 || l < 0 || (h == 0 && l == 0))
				return false;
			c = (char)(h * 16 + l);
			i += 2;
		}
		if (o + 1 >= len)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

static bool ident_ok(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* The schema named by "-c search_path=NAME[,...]" (or "-csearch_path=...") in options. */
static int options_schema(const char *opt, km_pguri_t *u, char *err, size_t errlen)
{
	const char *p = strstr(opt, "search_path=");
	if (p == NULL)
		return KM_EOK;
	p += strlen("search_path=");
	size_t n = strcspn(p, ", ");
	if (n == 0 || n >= sizeof(u->schema)) {
		snprintf(err, errlen, "the store URI's search_path is empty or too long");
		return KM_EINVAL;
	}
	memcpy(u->schema, p, n);
	u->schema[n] = '\0';
	if (!ident_ok(u->schema)) {
		snprintf(err, errlen, "the store URI's search_path '%.63s' is not a plain lowercase "
		         "schema name ([a-z_][a-z0-9_]*)", u->schema);
		return KM_EINVAL;
	}
	return KM_EOK;
}

static int query_param(const char *k, size_t kn, const char *v, size_t vn, km_pguri_t *u,
                       char *err, size_t errlen)
{
	char val[KM_PGURI_PART_MAX];
	if (!decode(v, vn, val, sizeof(val))) {
		snprintf(err, errlen, "the store URI's parameter '%.*s' is badly encoded or too long",
		         (int)(kn > 40 ? 40 : kn), k);
		return KM_EINVAL;
	}
#define IS(name) (kn == strlen(name) && strncmp(k, name, kn) == 0)
	if (IS("host"))
		snprintf(u->host, sizeof(u->host), "%s", val);
	else if (IS("port"))
		snprintf(u->port, sizeof(u->port), "%.7s", val);
	else if (IS("dbname"))
		snprintf(u->dbname, sizeof(u->dbname), "%s", val);
	else if (IS("user"))
		snprintf(u->user, sizeof(u->user), "%s", val);
	else if (IS("options"))
		return options_schema(val, u, err, errlen);
#undef IS
	return KM_EOK;
}

int km_pguri_parse(const char *s, km_pguri_t *ret, char *err, size_t errlen)
{
	const char *p = after_scheme(s);
	km_pguri_t u = { .port = "", .schema = "public" };
	if (p == NULL) {
		snprintf(err, errlen, "not a postgresql:// URI");
		return KM_EINVAL;
	}
	size_t auth_len = strcspn(p, "/?");
	const char *at = memchr(p, '@', auth_len);
	const char *hostport = p;
	if (at != NULL) {
		size_t ulen = strcspn(p, ":@");
		if (!decode(p, ulen, u.user, sizeof(u.user))) {
			snprintf(err, errlen, "the store URI's user name is badly encoded");
			return KM_EINVAL;
		}
		hostport = at + 1;
	}
	size_t hp_len = (size_t)(p + auth_len - hostport);
	if (memchr(hostport, ',', hp_len) != NULL) {
		snprintf(err, errlen, "the store URI names several hosts: give the one primary");
		return KM_EINVAL;
	}
	const char *colon = hostport[0] == '[' ? memchr(hostport, ']', hp_len) : hostport;
	colon = colon ? memchr(colon, ':', hp_len - (size_t)(colon - hostport)) : NULL;
	size_t hlen = colon ? (size_t)(colon - hostport) : hp_len;
	if (!decode(hostport, hlen, u.host, sizeof(u.host))) {
		snprintf(err, errlen, "the store URI's host is badly encoded or too long");
		return KM_EINVAL;
	}
	if (colon != NULL) {
		size_t plen = hp_len - hlen - 1;
		if (plen == 0 || plen >= sizeof(u.port) ||
		    strspn(colon + 1, "0123456789") < plen) {
			snprintf(err, errlen, "the store URI's port is not a number");
			return KM_EINVAL;
		}
		memcpy(u.port, colon + 1, plen);
		u.port[plen] = '\0';
	}
	p += auth_len;
	if (*p == '/') {
		size_t dlen = strcspn(p + 1, "?");
		if (!decode(p + 1, dlen, u.dbname, sizeof(u.dbname))) {
			snprintf(err, errlen, "the store URI's database name is badly encoded");
			return KM_EINVAL;
		}
		p += 1 + dlen;
	}
	if (*p == '?') {
		p++;
		while (*p != '\0') {
			size_t plen = strcspn(p, "&");
			const char *eq = memchr(p, '=', plen);
			if (eq == NULL) {
				snprintf(err, errlen, "the store URI's parameter '%.*s' has no value",
				         (int)(plen > 40 ? 40 : plen), p);
				return KM_EINVAL;
			}
			int r = query_param(p, (size_t)(eq - p), eq + 1, plen - (size_t)(eq - p) - 1,
			                    &u, err, errlen);
			if (r != KM_EOK)
				return r;
			p += plen;
			if (*p == '&')
				p++;
		}
	}
	if (u.port[0] == '\0')
		snprintf(u.port, sizeof(u.port), "5432");
	if (u.port[strspn(u.port, "0123456789")] != '\0') {
		snprintf(err, errlen, "the store URI's port is not a number");
		return KM_EINVAL;
	}
	*ret = u;
	return KM_EOK;
}

/* A host as libpq resolves it: "" and "localhost" over a socket are the default directory. */
static const char *host_of(const km_pguri_t *u)
{
	return u->host[0] == '\0' ? DEFAULT_SOCKET_DIR : u->host;
}

bool km_pguri_same(const km_pguri_t *a, const km_pguri_t *b)
{
	const char *da = a->dbname[0] ? a->dbname : a->user;
	const char *db = b->dbname[0] ? b->dbname : b->user;
	return strcmp(host_of(a), host_of(b)) == 0 && strcmp(a->port, b->port) == 0 &&
	       strcmp(da, db) == 0 && strcmp(a->schema, b->schema) == 0;
}

void km_pguri_redact(const char *s, char *out, size_t len)
{
	const char *p = after_scheme(s);
	size_t o = 0;
	if (len == 0)
		return;
	out[0] = '\0';
	if (p == NULL) {
		snprintf(out, len, "%s", s ? s : "");
		return;
	}
	size_t auth_len = strcspn(p, "/?");
	const char *at = memchr(p, '@', auth_len);
	const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
#define PUT(str, n) do { \
		size_t n_ = (n); \
		if (o + n_ >= len) \
			n_ = len - 1 - o; \
		memcpy(out + o, (str), n_); \
		o += n_; \
		out[o] = '\0'; \
	} while (0)
	const char *q = s;
	if (colon != NULL) {            /* user:password@ */
		PUT(s, (size_t)(colon - s) + 1);
		PUT("***", 3);
		q = at;
	}
	/* a password given as ?password=... or &password=... */
	while (*q != '\0') {
		const char *pw = strstr(q, "password=");
		if (pw == NULL || pw < p || !(pw[-1] == '?' || pw[-1] == '&')) {
			if (pw == NULL) {
				PUT(q, strlen(q));
				break;
			}
			PUT(q, (size_t)(pw - q) + 9);
			q = pw + 9;
			continue;
		}
		PUT(q, (size_t)(pw - q) + 9);
		PUT("***", 3);
		q = pw + 9 + strcspn(pw + 9, "&");
	}
#undef PUT
}
