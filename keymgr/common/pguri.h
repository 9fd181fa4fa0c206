/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An environment's store given as a libpq connection URI (keymgr.yaml(5), docs/ha.md):
 *   postgresql://[user[:password]@][host][:port][/dbname][?param=value&...]
 * (postgres:// too). The host may be a Unix socket directory, in the host part
 * percent-encoded or as ?host=/path. The store's schema is the first entry of a
 * `-c search_path=NAME` in the options parameter (default "public").
 *
 * Only what keymgr itself needs is read here, without libpq: whether a store is one, where it
 * lives (host, port, database, schema: two environments may not share one), and its text with
 * the password hidden (for messages and logs). libpq parses the URI again to connect.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define KM_PGURI_PART_MAX 256

typedef struct {
	char host[KM_PGURI_PART_MAX];     /* "" means the default socket directory */
	char port[8];                     /* "5432" when none is given */
	char dbname[KM_PGURI_PART_MAX];   /* "" means the user's name (libpq's default) */
	char user[KM_PGURI_PART_MAX];
	char schema[64];                  /* "public" when the options set no search_path */
} km_pguri_t;

/* Whether s is a PostgreSQL URI (starts with postgresql:// or postgres://). */
bool km_pguri_is(const char *s);

/*
 * Parses the parts of s that say where the store lives into *ret. KM_EINVAL with the
 * problem in err (bad percent-encoding, a port that is not a number, a search_path that is
 * not a plain lowercase identifier, more than one host).
 */
int km_pguri_parse(const char *s, km_pguri_t *ret, char *err, size_t errlen);

/* Whether a and b name the same database and schema (default host and dbname resolved). */
bool km_pguri_same(const km_pguri_t *a, const km_pguri_t *b);

/* s with a password replaced by "***" (for messages). Truncated to len. */
void km_pguri_redact(const char *s, char *out, size_t len);
