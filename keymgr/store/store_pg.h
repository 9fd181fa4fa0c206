/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the PostgreSQL backend: the schema migrations (store_pg_schema.c).
 */
#pragma once

#include <libpq-fe.h>
#include <stddef.h>

/* The schema version this program writes: the number of migrations (as SQLite's). */
int km_store_pg_schema_version(void);

/*
 * Runs the migrations from version `from` up to the current one and records the version in
 * meta. The caller holds the transaction. Returns KM_EOK or KM_STORE_EIO.
 */
int km_store_pg_migrate(PGconn *db, int from, char *err, size_t errlen);
