/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the SQLite backend: the schema migrations (store_sqlite_schema.c).
 */
#pragma once

#include <sqlite3.h>
#include <stddef.h>

/* The schema version this program writes: the number of migrations. */
int km_store_sqlite_schema_version(void);

/*
 * Runs the migrations from version `from` up to the current one and sets PRAGMA
 * user_version. The caller holds the write transaction. Returns KM_EOK or KM_STORE_EIO.
 */
int km_store_sqlite_migrate(sqlite3 *db, int from, char *err, size_t errlen);
