/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQLite schema as a list of migrations, one function per step (v0 -> v1, ...).
 *
 * Policy (docs/store.md): a released migration is never edited; a schema change is a new
 * function appended to the table. PRAGMA user_version holds the number of migrations applied.
 * All steps of one open run in the caller's single write transaction, so a crash mid-way
 * leaves the store at its old version.
 */
#include <stdio.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store_sqlite.h"

/* v1: meta, key sets with labels and owner/purpose history, keys, key events, counters. */
static const char schema_v1[] =
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY NOT NULL,"
	"  value TEXT NOT NULL"
	") STRICT;"

	"CREATE TABLE keysets ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  alg TEXT NOT NULL,"
	"  rsa_bits INTEGER NOT NULL DEFAULT 0,"
	"  owner TEXT NOT NULL,"
	"  purpose TEXT NOT NULL,"
	"  description TEXT NOT NULL DEFAULT '',"
	"  created_at INTEGER NOT NULL,"
	"  created_by TEXT NOT NULL"
	") STRICT;"

	"CREATE TABLE keyset_labels ("
	"  keyset_id INTEGER NOT NULL REFERENCES keysets(id),"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY (keyset_id, key)"
	") STRICT;"

	"CREATE TABLE keyset_changes ("
	"  id INTEGER PRIMARY KEY,"
	"  keyset_id INTEGER NOT NULL REFERENCES keysets(id),"
	"  field TEXT NOT NULL CHECK (field IN ('owner', 'purpose')),"
	"  old_value TEXT NOT NULL,"
	"  new_value TEXT NOT NULL,"
	"  changed_by TEXT NOT NULL,"
	"  changed_at INTEGER NOT NULL,"
	"  reason TEXT NOT NULL DEFAULT ''"
	") STRICT;"

	"CREATE TABLE keys ("
	"  id INTEGER PRIMARY KEY,"
	"  kid TEXT UNIQUE,"                                 /* NULL until confirmed */
	"  keyset_id INTEGER NOT NULL REFERENCES keysets(id),"
	"  alg TEXT NOT NULL,"
	"  rsa_bits INTEGER NOT NULL DEFAULT 0,"
	"  token_label TEXT NOT NULL,"
	"  token_serial TEXT NOT NULL DEFAULT '',"
	"  cka_id BLOB NOT NULL UNIQUE,"
	"  owner TEXT NOT NULL,"
	"  purpose TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('generated', 'published', 'active', 'retired',"
	"                                       'removed', 'destroyed', 'revoked')),"
	"  pending INTEGER NOT NULL DEFAULT 1 CHECK (pending IN (0, 1)),"
	"  public_jwk TEXT,"
	"  generated_at INTEGER NOT NULL,"
	"  published_at INTEGER,"
	"  activated_at INTEGER,"
	"  retired_at INTEGER,"
	"  removed_at INTEGER,"
	"  destroyed_at INTEGER,"
	"  revoked_at INTEGER,"
	"  revoke_reason TEXT,"
	/* pending rows have no kid; confirmed rows have one; an abandoned intent is revoked */
	"  CHECK ((pending = 1 AND kid IS NULL AND state = 'generated')"
	"      OR (pending = 0 AND kid IS NOT NULL AND public_jwk IS NOT NULL)"
	"      OR (pending = 0 AND kid IS NULL AND state = 'revoked'))"
	") STRICT;"
	/* The invariant the whole rotation rests on, enforced by the database itself. */
	"CREATE UNIQUE INDEX keys_one_active ON keys(keyset_id) WHERE state = 'active';"
	"CREATE INDEX keys_by_keyset ON keys(keyset_id, state);"
	"CREATE TRIGGER keys_never_deleted BEFORE DELETE ON keys BEGIN"
	"  SELECT RAISE(ABORT, 'key records are never deleted');"
	"END;"

	"CREATE TABLE key_events ("
	"  id INTEGER PRIMARY KEY,"
	"  key_id INTEGER NOT NULL REFERENCES keys(id),"
	"  what TEXT NOT NULL CHECK (what IN ('intent', 'confirm', 'abandon', 'transition')),"
	"  from_state TEXT NOT NULL,"
	"  to_state TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  reason TEXT NOT NULL DEFAULT ''"
	") STRICT;"
	"CREATE INDEX key_events_by_key ON key_events(key_id);"
	"CREATE TRIGGER key_events_never_deleted BEFORE DELETE ON key_events BEGIN"
	"  SELECT RAISE(ABORT, 'history is never deleted');"
	"END;"
	"CREATE TRIGGER keyset_changes_never_deleted BEFORE DELETE ON keyset_changes BEGIN"
	"  SELECT RAISE(ABORT, 'history is never deleted');"
	"END;"

	"CREATE TABLE counters ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  value INTEGER NOT NULL"
	") STRICT;"
	"INSERT INTO counters(name, value) VALUES ('jwks_serial', 0);";

static int migrate_0_to_1(sqlite3 *db, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, schema_v1, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "store schema v1: %s", msg ? msg : "failed");
		sqlite3_free(msg);
		return KM_STORE_EIO;
	}
	return KM_EOK;
}

/*
 * v2: the audit trail. An append-only hash chain of events (UPDATE and DELETE refused by
 * triggers), the recorded JWKS versions, the audit keys that sign checkpoints, and the signed
 * checkpoints. docs/auditor-guide.md describes what each proves.
 */
static const char schema_v2[] =
	"CREATE TABLE audit_events ("
	"  seq INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  actor_user TEXT NOT NULL,"
	"  actor_uid INTEGER NOT NULL,"
	"  actor_host TEXT NOT NULL,"
	"  actor_via TEXT NOT NULL,"
	"  actor_pid INTEGER NOT NULL,"
	"  action TEXT NOT NULL,"
	"  keyset TEXT NOT NULL DEFAULT '',"
	"  kid TEXT NOT NULL DEFAULT '',"
	"  before TEXT NOT NULL DEFAULT '',"
	"  after TEXT NOT NULL DEFAULT '',"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  policy_hash TEXT NOT NULL DEFAULT '',"
	"  prev_hash TEXT NOT NULL,"
	"  hash TEXT NOT NULL"
	") STRICT;"
	"CREATE INDEX audit_events_by_kid ON audit_events(kid);"
	"CREATE INDEX audit_events_by_keyset ON audit_events(keyset);"
	"CREATE TRIGGER audit_events_never_deleted BEFORE DELETE ON audit_events BEGIN"
	"  SELECT RAISE(ABORT, 'the audit log is append-only');"
	"END;"
	"CREATE TRIGGER audit_events_never_updated BEFORE UPDATE ON audit_events BEGIN"
	"  SELECT RAISE(ABORT, 'the audit log is append-only');"
	"END;"

	"CREATE TABLE jwks_versions ("
	"  serial INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  kids TEXT NOT NULL,"                              /* JSON array, JWKS order */
	"  event_seq INTEGER NOT NULL REFERENCES audit_events(seq)"
	") STRICT;"
	"CREATE TRIGGER jwks_versions_never_deleted BEFORE DELETE ON jwks_versions BEGIN"
	"  SELECT RAISE(ABORT, 'history is never deleted');"
	"END;"

	"CREATE TABLE audit_keys ("
	"  id INTEGER PRIMARY KEY,"
	"  kid TEXT NOT NULL UNIQUE,"
	"  alg TEXT NOT NULL,"
	"  token_label TEXT NOT NULL,"
	"  token_serial TEXT NOT NULL DEFAULT '',"
	"  cka_id BLOB NOT NULL UNIQUE,"
	"  public_jwk TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  active INTEGER NOT NULL CHECK (active IN (0, 1))"
	") STRICT;"
	"CREATE UNIQUE INDEX audit_keys_one_active ON audit_keys(active) WHERE active = 1;"
	"CREATE TRIGGER audit_keys_never_deleted BEFORE DELETE ON audit_keys BEGIN"
	"  SELECT RAISE(ABORT, 'audit keys are never deleted');"
	"END;"

	"CREATE TABLE audit_checkpoints ("
	"  id INTEGER PRIMARY KEY,"
	"  seq INTEGER NOT NULL,"
	"  hash TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  key_kid TEXT NOT NULL,"
	"  signature TEXT NOT NULL"
	") STRICT;"
	"CREATE TRIGGER audit_checkpoints_never_deleted BEFORE DELETE ON audit_checkpoints BEGIN"
	"  SELECT RAISE(ABORT, 'checkpoints are never deleted');"
	"END;";

static int migrate_1_to_2(sqlite3 *db, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, schema_v2, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "store schema v2: %s", msg ? msg : "failed");
		sqlite3_free(msg);
		return KM_STORE_EIO;
	}
	return KM_EOK;
}

/*
 * v3: requested rotations. keys.activate_at is when a published key that `keymgr rotate`
 * made the successor activates (NULL: no request). History of the request is the
 * key.schedule audit event.
 */
static int migrate_2_to_3(sqlite3 *db, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, "ALTER TABLE keys ADD COLUMN activate_at INTEGER;", NULL, NULL,
	                 &msg) != SQLITE_OK) {
		snprintf(err, errlen, "store schema v3: %s", msg ? msg : "failed");
		sqlite3_free(msg);
		return KM_STORE_EIO;
	}
	return KM_EOK;
}

/* The verifiers' pickup records (store.h): used by a store several nodes share (PostgreSQL);
 * created here too so that both backends keep one schema and one version. */
static int migrate_3_to_4(sqlite3 *db, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, "CREATE TABLE verifier_pickups ("
	                 "  path TEXT NOT NULL,"
	                 "  verifier TEXT NOT NULL,"
	                 "  serial INTEGER NOT NULL CHECK (serial >= 0),"
	                 "  PRIMARY KEY (path, verifier)"
	                 ");", NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "store schema v4: %s", msg ? msg : "failed");
		sqlite3_free(msg);
		return KM_STORE_EIO;
	}
	return KM_EOK;
}

/* migrations[i] takes the schema from version i to i + 1. Append only. */
static int (*const migrations[])(sqlite3 *db, char *err, size_t errlen) = {
	migrate_0_to_1,
	migrate_1_to_2,
	migrate_2_to_3,
	migrate_3_to_4,
};

#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

int km_store_sqlite_schema_version(void)
{
	return N_MIGRATIONS;
}

int km_store_sqlite_migrate(sqlite3 *db, int from, char *err, size_t errlen)
{
	char sql[64];
	for (int v = from; v < N_MIGRATIONS; v++) {
		int r = migrations[v](db, err, errlen);
		if (r != KM_EOK)
			return r;
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", N_MIGRATIONS);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "store: cannot set schema version: %s", sqlite3_errmsg(db));
		return KM_STORE_EIO;
	}
	return KM_EOK;
}
