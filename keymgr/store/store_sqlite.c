/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQLite backend of the store: one file per environment, WAL mode, foreign keys on,
 * synchronous=FULL (a committed intent must survive a power cut before the token acts on it),
 * and a busy timeout so that the daemon and the CLI queue behind each other's write
 * transactions instead of failing at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store_backend.h"
#include "keymgr/store/store_sqlite.h"

typedef struct {
	sqlite3 *db;
	struct timespec busy_since;     /* when the current lock wait began */
	char path[512];
	int found_version;              /* PRAGMA user_version before any migration */
} sq_t;

__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* The store's file name for messages ("the store" when SQLite does not know it). */
static const char *db_name(sqlite3 *db)
{
	const char *f = db ? sqlite3_db_filename(db, "main") : NULL;
	return f != NULL && f[0] != '\0' ? f : "(unknown file)";
}

/* Whether the directory holding path is on a read-only file system. */
static bool dir_readonly(const char *path)
{
	char dir[1024];
	struct statvfs sv;
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
	return statvfs(dir, &sv) == 0 && (sv.f_flag & ST_RDONLY) != 0;
}

/*
 * Maps an SQLite result code to a KM_* code and writes "what: why". Lock, full disk, read-only
 * and I/O failures name the store's file and, where the OS said why, its reason (errno), so
 * that "disk I/O error" never stands alone.
 */
static int sq_fail(sqlite3 *db, int rc, const char *what, char *err, size_t errlen)
{
	int sys = db ? sqlite3_system_errno(db) : 0;

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return fail(err, errlen, KM_STORE_EBUSY, "%s: the store %s is locked by another "
		            "writer (its write lock was held for the %d ms we waited); try again", what,
		            db_name(db), KM_STORE_BUSY_TIMEOUT_MS);
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return fail(err, errlen, KM_EEXIST, "%s: %s", what, sqlite3_errmsg(db));
		return fail(err, errlen, KM_STORE_ECONSTRAINT, "%s: %s", what, sqlite3_errmsg(db));
	case SQLITE_NOMEM:
		return fail(err, errlen, KM_ENOMEM, "%s: out of memory", what);
	case SQLITE_NOTADB:
		return fail(err, errlen, KM_STORE_EOPEN, "%s: not an SQLite database", what);
	case SQLITE_FULL:
		return fail(err, errlen, KM_STORE_EIO, "%s: the file system holding the store %s is "
		            "full", what, db_name(db));
	case SQLITE_READONLY:
		if (dir_readonly(db_name(db)))
			return fail(err, errlen, KM_STORE_EIO, "%s: the store %s is on a read-only "
			            "file system", what, db_name(db));
		return fail(err, errlen, KM_STORE_EIO, "%s: the store %s is read-only (%s%s%s)",
		            what, db_name(db), sqlite3_errmsg(db),
		            sys ? ": " : "", sys ? strerror(sys) : "");
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		if (dir_readonly(db_name(db)))
			return fail(err, errlen, KM_STORE_EIO, "%s: the store %s is on a read-only file "
			            "system (SQLite writes its -wal and -shm files next to it)", what,
			            db_name(db));
		if (sys == ENOSPC)
			return fail(err, errlen, KM_STORE_EIO, "%s: the file system holding the store "
			            "%s is full (%s)", what, db_name(db), strerror(sys));
		if (sys == EROFS || sys == EPERM || sys == EACCES)
			return fail(err, errlen, KM_STORE_EIO, "%s: the store %s cannot be written "
			            "(%s)", what, db_name(db), strerror(sys));
		return fail(err, errlen, KM_STORE_EIO, "%s: %s (store %s%s%s)", what,
		            sqlite3_errmsg(db), db_name(db), sys ? ": " : "", sys ? strerror(sys) : "");
	default:
		return fail(err, errlen, KM_STORE_EIO, "%s: %s", what, sqlite3_errmsg(db));
	}
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, const char *what, char *err,
                size_t errlen)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(db, rc, what, err, errlen);
	return KM_EOK;
}

/* Steps a statement that returns no rows (or ignores them) to completion. */
static int run(sqlite3 *db, sqlite3_stmt *st, const char *what, char *err, size_t errlen)
{
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE)
		return sq_fail(db, rc, what, err, errlen);
	return KM_EOK;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL || *s == '\0')
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

static void bind_time(sqlite3_stmt *st, int i, int64_t t)
{
	if (t == KM_STORE_TIME_NONE)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, t);
}

static void col_text(sqlite3_stmt *st, int i, char *buf, size_t len)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(buf, len, "%s", t ? (const char *)t : "");
}

static int64_t col_time(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return KM_STORE_TIME_NONE;
	return sqlite3_column_int64(st, i);
}

static km_state_t col_state(sqlite3_stmt *st, int i)
{
	km_state_t s = KM_STATE_GENERATED;
	(void)km_state_from_name((const char *)sqlite3_column_text(st, i), &s);
	return s;
}

/* Makes room for one more element in a malloc'ed result array. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return KM_EOK;
	size_t ncap = *cap ? *cap * 2 : 8;
	void *p = realloc(*arr, ncap * elem);
	if (p == NULL)
		return KM_ENOMEM;
	*arr = p;
	*cap = ncap;
	return KM_EOK;
}

static int pragma_int(sqlite3 *db, const char *sql, int *ret, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int r = prep(db, sql, &st, "cannot read the store", err, errlen);
	if (r != KM_EOK)
		goto out;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = sq_fail(db, rc, "cannot read the store", err, errlen);
		goto out;
	}
	*ret = sqlite3_column_int(st, 0);
out:
	sqlite3_finalize(st);
	return r;
}

/* ---- open ---- */

/*
 * Waits for another writer's lock in 1 ms steps for up to KM_STORE_BUSY_TIMEOUT_MS.
 * SQLite's own busy timeout backs off to 100 ms sleeps, so a short CLI command could keep
 * missing the gaps between a busy daemon's transactions; polling every millisecond gives
 * both a fair chance.
 */
static int busy_wait(void *arg, int tries)
{
	sq_t *q = arg;
	struct timespec now, step = { .tv_sec = 0, .tv_nsec = 1000000 };
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (tries == 0)
		q->busy_since = now;
	int64_t waited_ms = (int64_t)(now.tv_sec - q->busy_since.tv_sec) * 1000 +
	                    (now.tv_nsec - q->busy_since.tv_nsec) / 1000000;
	if (waited_ms >= KM_STORE_BUSY_TIMEOUT_MS)
		return 0;
	nanosleep(&step, NULL);
	return 1;
}

/* Creates the file with mode 0600 whatever the umask, and checks an existing one. */
static int prepare_file(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		int rc = fchmod(fd, 0600);
		int e = errno;
		close(fd);
		if (rc != 0)
			return fail(err, errlen, KM_STORE_EOPEN, "cannot set mode 0600 on store %s: "
			            "%s", path, strerror(e));
	} else if (errno != EEXIST) {
		return fail(err, errlen, KM_STORE_EOPEN, "cannot create store %s: %s", path,
		            strerror(errno));
	}
	if (lstat(path, &st) != 0)
		return fail(err, errlen, KM_STORE_EOPEN, "cannot open store %s: %s", path,
		            strerror(errno));
	if (S_ISLNK(st.st_mode))
		return fail(err, errlen, KM_STORE_EOPEN, "store %s is a symbolic link; give the "
		            "real path", path);
	if (!S_ISREG(st.st_mode))
		return fail(err, errlen, KM_STORE_EOPEN, "store %s is not a regular file", path);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return fail(err, errlen, KM_EACCES, "store %s is writable by group or others "
		            "(mode %04o): run chmod 600 on it", path, (unsigned)(st.st_mode & 07777));
	return KM_EOK;
}

/* Checks the recorded environment; records it when the store has none yet and may_record. */
static int check_env(sq_t *q, const char *env, bool may_record, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int r = prep(q->db, "SELECT value FROM meta WHERE key = 'env'", &st,
	             "cannot read the store's environment", err, errlen);
	if (r != KM_EOK)
		goto out;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *have = (const char *)sqlite3_column_text(st, 0);
		if (env == NULL && have != NULL)
			goto out;       /* any environment */
		if (have == NULL || env == NULL || strcmp(have, env) != 0)
			r = fail(err, errlen, KM_EWRONGENV, "store %s belongs to environment '%.40s', "
			         "not '%s'", q->path, have ? have : "", env);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(q->db, rc, "cannot read the store's environment", err, errlen);
		goto out;
	}
	if (!may_record || env == NULL) {
		r = fail(err, errlen, KM_STORE_EOPEN, "store %s records no environment", q->path);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((r = prep(q->db, "INSERT INTO meta(key, value) VALUES ('env', ?1)", &st,
	              "cannot record the environment", err, errlen)) != KM_EOK)
		goto out;
	sqlite3_bind_text(st, 1, env, -1, SQLITE_STATIC);
	r = run(q->db, st, "cannot record the environment", err, errlen);
out:
	sqlite3_finalize(st);
	return r;
}

static int check_version(sq_t *q, int have, char *err, size_t errlen)
{
	int known = km_store_sqlite_schema_version();
	if (have > known)
		return fail(err, errlen, KM_STORE_ESCHEMA, "store %s has schema version %d, but "
		            "this keymgr knows versions up to %d: upgrade keymgr (the store was not "
		            "changed)", q->path, have, known);
	return KM_EOK;
}

static int exec(sqlite3 *db, const char *sql, const char *what, char *err, size_t errlen)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(db, rc, what, err, errlen);
	return KM_EOK;
}

/* Brings the schema up to date and records the environment, in one write transaction. */
static int migrate(sq_t *q, const char *env, char *err, size_t errlen)
{
	int have = 0;
	int r = exec(q->db, "BEGIN IMMEDIATE", "cannot upgrade the store", err, errlen);
	if (r != KM_EOK)
		return r;
	/* Read again under the write lock: another process may have migrated meanwhile. */
	if ((r = pragma_int(q->db, "PRAGMA user_version", &have, err, errlen)) != KM_EOK)
		goto out;
	if ((r = check_version(q, have, err, errlen)) != KM_EOK)
		goto out;
	if (have < km_store_sqlite_schema_version() &&
	    (r = km_store_sqlite_migrate(q->db, have, err, errlen)) != KM_EOK)
		goto out;
	if ((r = check_env(q, env, have == 0, err, errlen)) != KM_EOK)
		goto out;
	r = exec(q->db, "COMMIT", "cannot upgrade the store", err, errlen);
out:
	if (r != KM_EOK && !sqlite3_get_autocommit(q->db))
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static int sq_open(const char *path, const char *env, void **ctx, char *err, size_t errlen)
{
	int have = 0, tables = 0;
	char mode[16] = "";
	sqlite3_stmt *st = NULL;
	if (strlen(path) >= sizeof(((sq_t *)NULL)->path))
		return fail(err, errlen, KM_EINVAL, "store path is too long");
	int r = prepare_file(path, err, errlen);
	if (r != KM_EOK)
		return r;
	sq_t *q = calloc(1, sizeof(*q));
	if (q == NULL)
		return fail(err, errlen, KM_ENOMEM, "out of memory");
	snprintf(q->path, sizeof(q->path), "%s", path);
	/* No SQLITE_OPEN_CREATE: prepare_file() made the file with the right mode. */
	int rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW,
	                         NULL);
	if (rc != SQLITE_OK) {
		r = fail(err, errlen, KM_STORE_EOPEN, "cannot open store %s: %s", path,
		         q->db ? sqlite3_errmsg(q->db) : "out of memory");
		goto out;
	}
	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_busy_handler(q->db, busy_wait, q);

	/* Nothing is written before the version is known to be one we understand. */
	if ((r = pragma_int(q->db, "PRAGMA user_version", &have, err, errlen)) != KM_EOK) {
		if (r == KM_STORE_EOPEN)
			fail(err, errlen, r, "store %s is not an SQLite database", path);
		goto out;
	}
	if ((r = check_version(q, have, err, errlen)) != KM_EOK)
		goto out;
	if (have == 0 && env == NULL) {
		r = fail(err, errlen, KM_STORE_EOPEN, "%s is not a keymgr store", path);
		goto out;
	}
	if (have == 0) {
		r = pragma_int(q->db, "SELECT count(*) FROM sqlite_master", &tables, err, errlen);
		if (r != KM_EOK)
			goto out;
		if (tables > 0) {
			r = fail(err, errlen, KM_STORE_EOPEN, "%s is an SQLite database but not a "
			         "keymgr store", path);
			goto out;
		}
	}

	if ((r = prep(q->db, "PRAGMA journal_mode = WAL", &st, "cannot enable WAL", err,
	              errlen)) != KM_EOK)
		goto out;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = sq_fail(q->db, rc, "cannot enable WAL", err, errlen);
		goto out;
	}
	col_text(st, 0, mode, sizeof(mode));
	sqlite3_finalize(st);
	st = NULL;
	if (strcmp(mode, "wal") != 0) {
		r = fail(err, errlen, KM_STORE_EOPEN, "store %s: WAL mode refused (journal mode "
		         "is '%s')", path, mode);
		goto out;
	}
	if ((r = exec(q->db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL",
	              "cannot configure the store", err, errlen)) != KM_EOK)
		goto out;

	q->found_version = have;
	if (have < km_store_sqlite_schema_version())
		r = migrate(q, env, err, errlen);
	else
		r = check_env(q, env, false, err, errlen);
out:
	sqlite3_finalize(st);
	if (r != KM_EOK) {
		sqlite3_close(q->db);
		free(q);
		return r;
	}
	*ctx = q;
	return KM_EOK;
}

static void sq_close(void *ctx)
{
	sq_t *q = ctx;
	if (q == NULL)
		return;
	sqlite3_close(q->db);
	free(q);
}

static int sq_meta_get(void *ctx, const char *key, char *out, size_t len, char *err,
                       size_t errlen);

static int sq_env_read(void *ctx, char *out, size_t len, char *err, size_t errlen)
{
	sq_t *q = ctx;
	int r = sq_meta_get(ctx, "env", out, len, err, errlen);
	if (r == KM_EOK && out[0] == '\0')
		r = fail(err, errlen, KM_STORE_EOPEN, "store %s records no environment", q->path);
	return r;
}

static int sq_found_version(void *ctx)
{
	return ((const sq_t *)ctx)->found_version;
}

static int sq_tx(void *ctx, km_store_tx_t op, char *err, size_t errlen)
{
	static const char *const sql[] = {
		[KM_STORE_TX_BEGIN] = "BEGIN IMMEDIATE",
		[KM_STORE_TX_COMMIT] = "COMMIT",
		[KM_STORE_TX_ROLLBACK] = "ROLLBACK",
		[KM_STORE_TX_SAVEPOINT] = "SAVEPOINT km_op",
		[KM_STORE_TX_RELEASE] = "RELEASE km_op",
		[KM_STORE_TX_ROLLBACK_TO] = "ROLLBACK TO km_op",
	};
	sq_t *q = ctx;
	/* SQLite ends a transaction by itself after some errors; nothing left to undo then. */
	if (op == KM_STORE_TX_ROLLBACK && sqlite3_get_autocommit(q->db))
		return KM_EOK;
	char what[64];
	snprintf(what, sizeof(what), "store %s", sql[op]);
	return exec(q->db, sql[op], what, err, errlen);
}

/* ---- key sets ---- */

static int sq_keyset_insert(void *ctx, const km_store_keyset_t *ks, int64_t *id, char *err,
                            size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot create the key set";
	int r = prep(q->db, "INSERT INTO keysets(name, alg, rsa_bits, owner, purpose, "
	             "description, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	             &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	sqlite3_bind_text(st, 1, ks->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, km_alg_name(ks->alg), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)ks->rsa_bits);
	sqlite3_bind_text(st, 4, ks->owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, ks->purpose, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, ks->description, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, ks->created_at);
	sqlite3_bind_text(st, 8, ks->created_by, -1, SQLITE_STATIC);
	if ((r = run(q->db, st, what, err, errlen)) != KM_EOK)
		goto out;
	int64_t new_id = sqlite3_last_insert_rowid(q->db);
	sqlite3_finalize(st);
	st = NULL;
	if ((r = prep(q->db, "INSERT INTO keyset_labels(keyset_id, key, value) "
	              "VALUES (?1, ?2, ?3)", &st, what, err, errlen)) != KM_EOK)
		goto out;
	for (size_t i = 0; i < ks->n_labels; i++) {
		const char *kv = ks->labels[i];
		size_t klen = strcspn(kv, "=");
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, new_id);
		sqlite3_bind_text(st, 2, kv, (int)klen, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, kv[klen] ? kv + klen + 1 : "", -1, SQLITE_STATIC);
		if ((r = run(q->db, st, what, err, errlen)) != KM_EOK)
			goto out;
	}
	*id = new_id;
out:
	sqlite3_finalize(st);
	return r;
}

/* Labels come back as one "k=v\nk=v" string, read in the same statement as the key set. */
static void split_labels(const char *all, km_store_keyset_t *ks)
{
	ks->n_labels = 0;
	while (all != NULL && *all != '\0' && ks->n_labels < KM_STORE_LABELS_MAX) {
		size_t len = strcspn(all, "\n");
		snprintf(ks->labels[ks->n_labels++], KM_STORE_LABEL_MAX + 1, "%.*s", (int)len, all);
		all += len;
		if (*all == '\n')
			all++;
	}
}

static int sq_keyset_query(void *ctx, const char *name, const km_store_keyset_filter_t *f,
                           km_store_keyset_t **ret, size_t *count, char *err, size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	km_store_keyset_t *list = NULL;
	size_t n = 0, cap = 0;
	const char *what = "cannot read key sets";
	int rc, r = prep(q->db,
		"SELECT ks.id, ks.name, ks.alg, ks.rsa_bits, ks.owner, ks.purpose, ks.description,"
		"  ks.created_at, ks.created_by,"
		"  (SELECT group_concat(kv, char(10)) FROM (SELECT l.key || '=' || l.value AS kv"
		"     FROM keyset_labels l WHERE l.keyset_id = ks.id ORDER BY l.key))"
		" FROM keysets ks"
		" WHERE (?1 IS NULL OR ks.name = ?1) AND (?2 IS NULL OR ks.owner = ?2)"
		"   AND (?3 IS NULL OR ks.purpose = ?3)"
		"   AND (?4 IS NULL OR EXISTS (SELECT 1 FROM keyset_labels l"
		"        WHERE l.keyset_id = ks.id AND l.key || '=' || l.value = ?4))"
		" ORDER BY ks.name", &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	bind_text_or_null(st, 1, name);
	if (f != NULL) {
		bind_text_or_null(st, 2, f->owner);
		bind_text_or_null(st, 3, f->purpose);
		bind_text_or_null(st, 4, f->label);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = grow((void **)&list, &cap, n, sizeof(*list))) != KM_EOK) {
			fail(err, errlen, r, "out of memory");
			goto out;
		}
		km_store_keyset_t *ks = &list[n++];
		memset(ks, 0, sizeof(*ks));
		ks->id = sqlite3_column_int64(st, 0);
		col_text(st, 1, ks->name, sizeof(ks->name));
		(void)km_alg_from_name((const char *)sqlite3_column_text(st, 2), &ks->alg);
		ks->rsa_bits = (unsigned)sqlite3_column_int(st, 3);
		col_text(st, 4, ks->owner, sizeof(ks->owner));
		col_text(st, 5, ks->purpose, sizeof(ks->purpose));
		col_text(st, 6, ks->description, sizeof(ks->description));
		ks->created_at = sqlite3_column_int64(st, 7);
		col_text(st, 8, ks->created_by, sizeof(ks->created_by));
		split_labels((const char *)sqlite3_column_text(st, 9), ks);
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(q->db, rc, what, err, errlen);
		goto out;
	}
	*ret = list;
	*count = n;
	list = NULL;
out:
	free(list);
	sqlite3_finalize(st);
	return r;
}

static int sq_keyset_update(void *ctx, int64_t id, const char *field, const char *value,
                            char *err, size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	bool owner = strcmp(field, "owner") == 0;
	const char *what = "cannot update the key set";
	int r = prep(q->db, owner ? "UPDATE keysets SET owner = ?1 WHERE id = ?2" :
	             "UPDATE keysets SET purpose = ?1 WHERE id = ?2", &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	sqlite3_bind_text(st, 1, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	r = run(q->db, st, what, err, errlen);
out:
	sqlite3_finalize(st);
	return r;
}

static int sq_change_insert(void *ctx, int64_t keyset_id, const km_store_change_t *c,
                            char *err, size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot record the change";
	int r = prep(q->db, "INSERT INTO keyset_changes(keyset_id, field, old_value, new_value,"
	             " changed_by, changed_at, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	             &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	sqlite3_bind_int64(st, 1, keyset_id);
	sqlite3_bind_text(st, 2, c->field, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, c->old_value, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, c->new_value, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, c->who, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, c->at);
	sqlite3_bind_text(st, 7, c->reason, -1, SQLITE_STATIC);
	r = run(q->db, st, what, err, errlen);
out:
	sqlite3_finalize(st);
	return r;
}

static int sq_change_query(void *ctx, int64_t keyset_id, km_store_change_t **ret,
                           size_t *count, char *err, size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	km_store_change_t *list = NULL;
	size_t n = 0, cap = 0;
	const char *what = "cannot read the key set history";
	int rc, r = prep(q->db, "SELECT id, field, old_value, new_value, changed_by, changed_at,"
	                 " reason FROM keyset_changes WHERE keyset_id = ?1 ORDER BY id",
	                 &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	sqlite3_bind_int64(st, 1, keyset_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = grow((void **)&list, &cap, n, sizeof(*list))) != KM_EOK) {
			fail(err, errlen, r, "out of memory");
			goto out;
		}
		km_store_change_t *c = &list[n++];
		memset(c, 0, sizeof(*c));
		c->id = sqlite3_column_int64(st, 0);
		col_text(st, 1, c->field, sizeof(c->field));
		col_text(st, 2, c->old_value, sizeof(c->old_value));
		col_text(st, 3, c->new_value, sizeof(c->new_value));
		col_text(st, 4, c->who, sizeof(c->who));
		c->at = sqlite3_column_int64(st, 5);
		col_text(st, 6, c->reason, sizeof(c->reason));
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(q->db, rc, what, err, errlen);
		goto out;
	}
	*ret = list;
	*count = n;
	list = NULL;
out:
	free(list);
	sqlite3_finalize(st);
	return r;
}

/* ---- keys ---- */

/* The state_at[] columns, in km_state_t order. */
static const char *const state_cols[KM_STATE_COUNT] = {
	[KM_STATE_GENERATED] = "generated_at",
	[KM_STATE_PUBLISHED] = "published_at",
	[KM_STATE_ACTIVE] = "activated_at",
	[KM_STATE_RETIRED] = "retired_at",
	[KM_STATE_REMOVED] = "removed_at",
	[KM_STATE_DESTROYED] = "destroyed_at",
	[KM_STATE_REVOKED] = "revoked_at",
};

static int sq_key_insert(void *ctx, const km_store_key_t *k, int64_t *id, char *err,
                         size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot record the key";
	int r = prep(q->db, "INSERT INTO keys(kid, keyset_id, alg, rsa_bits, token_label,"
	             " token_serial, cka_id, owner, purpose, state, pending, public_jwk,"
	             " generated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	             &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	bind_text_or_null(st, 1, k->kid);
	sqlite3_bind_int64(st, 2, k->keyset_id);
	sqlite3_bind_text(st, 3, km_alg_name(k->alg), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, (int)k->rsa_bits);
	sqlite3_bind_text(st, 5, k->token_label, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, k->token_serial, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 7, k->cka_id, (int)k->cka_id_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, k->owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, k->purpose, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, km_state_name(k->state), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 11, k->pending ? 1 : 0);
	bind_text_or_null(st, 12, k->jwk);
	sqlite3_bind_int64(st, 13, k->state_at[KM_STATE_GENERATED]);
	if ((r = run(q->db, st, what, err, errlen)) != KM_EOK)
		goto out;
	*id = sqlite3_last_insert_rowid(q->db);
out:
	sqlite3_finalize(st);
	return r;
}

static void read_key(sqlite3_stmt *st, km_store_key_t *k)
{
	memset(k, 0, sizeof(*k));
	k->id = sqlite3_column_int64(st, 0);
	col_text(st, 1, k->kid, sizeof(k->kid));
	k->keyset_id = sqlite3_column_int64(st, 2);
	col_text(st, 3, k->keyset, sizeof(k->keyset));
	(void)km_alg_from_name((const char *)sqlite3_column_text(st, 4), &k->alg);
	k->rsa_bits = (unsigned)sqlite3_column_int(st, 5);
	col_text(st, 6, k->token_label, sizeof(k->token_label));
	col_text(st, 7, k->token_serial, sizeof(k->token_serial));
	int len = sqlite3_column_bytes(st, 8);
	const void *blob = sqlite3_column_blob(st, 8);
	if (blob != NULL && len > 0 && len <= KM_STORE_CKA_ID_MAX) {
		memcpy(k->cka_id, blob, (size_t)len);
		k->cka_id_len = (size_t)len;
	}
	col_text(st, 9, k->owner, sizeof(k->owner));
	col_text(st, 10, k->purpose, sizeof(k->purpose));
	k->state = col_state(st, 11);
	k->pending = sqlite3_column_int(st, 12) != 0;
	col_text(st, 13, k->jwk, sizeof(k->jwk));
	for (unsigned i = 0; i < KM_STATE_COUNT; i++)
		k->state_at[i] = col_time(st, 14 + (int)i);
	col_text(st, 14 + KM_STATE_COUNT, k->revoke_reason, sizeof(k->revoke_reason));
	k->activate_at = col_time(st, 15 + KM_STATE_COUNT);
}

/* Builds the WHERE clause from the query; only the clauses in use are emitted so that
 * lookups by kid or CKA_ID use their unique index. */
static void key_where(const km_store_key_query_t *q, char *sql, size_t len)
{
	size_t used = strlen(sql);
#define ADD(clause) used += (size_t)snprintf(sql + used, len - used, " AND %s", clause)
	if (q->f.keyset)
		ADD("ks.name = :keyset");
	if (q->f.states)
		ADD("instr(:states, ',' || k.state || ',') > 0");
	if (q->f.owner)
		ADD("k.owner = :owner");
	if (q->f.purpose)
		ADD("k.purpose = :purpose");
	if (q->f.pending == KM_STORE_PENDING_ONLY)
		ADD("k.pending = 1");
	if (q->f.pending == KM_STORE_PENDING_NONE)
		ADD("k.pending = 0");
	if (q->kid)
		ADD("k.kid = :kid");
	if (q->cka_id)
		ADD("k.cka_id = :cka_id");
#undef ADD
	snprintf(sql + used, len - used, " ORDER BY k.id");
}

static void bind_named_text(sqlite3_stmt *st, const char *name, const char *v)
{
	int i = sqlite3_bind_parameter_index(st, name);
	if (i > 0)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

static int sq_key_query(void *ctx, const km_store_key_query_t *kq, km_store_key_t **ret,
                        size_t *count, char *err, size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	km_store_key_t *list = NULL;
	size_t n = 0, cap = 0;
	char sql[1536], states[128] = ",";
	const char *what = "cannot read keys";
	snprintf(sql, sizeof(sql), "SELECT k.id, k.kid, k.keyset_id, ks.name, k.alg, k.rsa_bits,"
	         " k.token_label, k.token_serial, k.cka_id, k.owner, k.purpose, k.state,"
	         " k.pending, k.public_jwk, k.generated_at, k.published_at, k.activated_at,"
	         " k.retired_at, k.removed_at, k.destroyed_at, k.revoked_at, k.revoke_reason,"
	         " k.activate_at FROM keys k JOIN keysets ks ON ks.id = k.keyset_id WHERE 1");
	key_where(kq, sql, sizeof(sql));
	int rc, r = prep(q->db, sql, &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	for (unsigned i = 0; i < KM_STATE_COUNT; i++) {
		if (kq->f.states & KM_STORE_STATE_BIT(i)) {
			strcat(states, km_state_name((km_state_t)i));
			strcat(states, ",");
		}
	}
	bind_named_text(st, ":keyset", kq->f.keyset);
	bind_named_text(st, ":states", states);
	bind_named_text(st, ":owner", kq->f.owner);
	bind_named_text(st, ":purpose", kq->f.purpose);
	bind_named_text(st, ":kid", kq->kid);
	if (kq->cka_id)
		sqlite3_bind_blob(st, sqlite3_bind_parameter_index(st, ":cka_id"), kq->cka_id,
		                  (int)kq->cka_id_len, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = grow((void **)&list, &cap, n, sizeof(*list))) != KM_EOK) {
			fail(err, errlen, r, "out of memory");
			goto out;
		}
		read_key(st, &list[n++]);
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(q->db, rc, what, err, errlen);
		goto out;
	}
	*ret = list;
	*count = n;
	list = NULL;
out:
	free(list);
	sqlite3_finalize(st);
	return r;
}

static int sq_key_update(void *ctx, const km_store_key_t *old, const km_store_key_t *nk,
                         char *err, size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot update the key";
	char sql[512];
	size_t used = (size_t)snprintf(sql, sizeof(sql), "UPDATE keys SET kid = ?1, "
	                               "public_jwk = ?2, pending = ?3, state = ?4, "
	                               "revoke_reason = ?5");
	/* generated_at never changes; the other state times follow as ?6.. */
	for (unsigned i = 1; i < KM_STATE_COUNT; i++)
		used += (size_t)snprintf(sql + used, sizeof(sql) - used, ", %s = ?%u",
		                         state_cols[i], 5 + i);
	snprintf(sql + used, sizeof(sql) - used, ", activate_at = ?15 WHERE id = ?12 AND "
	         "state = ?13 AND pending = ?14");
	int r = prep(q->db, sql, &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	bind_text_or_null(st, 1, nk->kid);
	bind_text_or_null(st, 2, nk->jwk);
	sqlite3_bind_int(st, 3, nk->pending ? 1 : 0);
	sqlite3_bind_text(st, 4, km_state_name(nk->state), -1, SQLITE_STATIC);
	bind_text_or_null(st, 5, nk->revoke_reason);
	for (unsigned i = 1; i < KM_STATE_COUNT; i++)
		bind_time(st, 5 + (int)i, nk->state_at[i]);
	sqlite3_bind_int64(st, 12, old->id);
	sqlite3_bind_text(st, 13, km_state_name(old->state), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 14, old->pending ? 1 : 0);
	bind_time(st, 15, nk->activate_at);
	if ((r = run(q->db, st, what, err, errlen)) != KM_EOK)
		goto out;
	if (sqlite3_changes(q->db) != 1)
		r = fail(err, errlen, KM_ERROR, "key %s changed underneath this update",
		         old->kid[0] ? old->kid : "(pending)");
out:
	sqlite3_finalize(st);
	return r;
}

static int sq_event_insert(void *ctx, const km_store_event_t *e, char *err, size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot record the key event";
	int r = prep(q->db, "INSERT INTO key_events(key_id, what, from_state, to_state, at,"
	             " reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	sqlite3_bind_int64(st, 1, e->key_id);
	sqlite3_bind_text(st, 2, e->what, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, km_state_name(e->from), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, km_state_name(e->to), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, e->at);
	sqlite3_bind_text(st, 6, e->reason, -1, SQLITE_STATIC);
	r = run(q->db, st, what, err, errlen);
out:
	sqlite3_finalize(st);
	return r;
}

static int sq_event_query(void *ctx, int64_t key_id, km_store_event_t **ret, size_t *count,
                          char *err, size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	km_store_event_t *list = NULL;
	size_t n = 0, cap = 0;
	const char *what = "cannot read the key history";
	int rc, r = prep(q->db, "SELECT id, key_id, what, from_state, to_state, at, reason"
	                 " FROM key_events WHERE key_id = ?1 ORDER BY id", &st, what, err,
	                 errlen);
	if (r != KM_EOK)
		goto out;
	sqlite3_bind_int64(st, 1, key_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = grow((void **)&list, &cap, n, sizeof(*list))) != KM_EOK) {
			fail(err, errlen, r, "out of memory");
			goto out;
		}
		km_store_event_t *e = &list[n++];
		memset(e, 0, sizeof(*e));
		e->id = sqlite3_column_int64(st, 0);
		e->key_id = sqlite3_column_int64(st, 1);
		col_text(st, 2, e->what, sizeof(e->what));
		e->from = col_state(st, 3);
		e->to = col_state(st, 4);
		e->at = sqlite3_column_int64(st, 5);
		col_text(st, 6, e->reason, sizeof(e->reason));
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(q->db, rc, what, err, errlen);
		goto out;
	}
	*ret = list;
	*count = n;
	list = NULL;
out:
	free(list);
	sqlite3_finalize(st);
	return r;
}

static int sq_counter_next(void *ctx, const char *name, uint64_t *ret, char *err,
                           size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot advance the counter";
	int r = prep(q->db, "UPDATE counters SET value = value + 1 WHERE name = ?1"
	             " RETURNING value", &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = fail(err, errlen, KM_STORE_EIO, "store has no counter '%s'", name);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = sq_fail(q->db, rc, what, err, errlen);
		goto out;
	}
	uint64_t v = (uint64_t)sqlite3_column_int64(st, 0);
	if ((r = run(q->db, st, what, err, errlen)) != KM_EOK)
		goto out;
	*ret = v;
out:
	sqlite3_finalize(st);
	return r;
}

static int sq_meta_get(void *ctx, const char *key, char *out, size_t len, char *err,
                       size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot read the store's meta table";
	int r = prep(q->db, "SELECT value FROM meta WHERE key = ?1", &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		col_text(st, 0, out, len);
	else if (rc == SQLITE_DONE)
		out[0] = '\0';
	else
		r = sq_fail(q->db, rc, what, err, errlen);
out:
	sqlite3_finalize(st);
	return r;
}

static int sq_meta_put(void *ctx, const char *key, const char *value, char *err,
                       size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot write the store's meta table";
	int r = prep(q->db, "INSERT INTO meta(key, value) VALUES (?1, ?2)"
	             " ON CONFLICT(key) DO UPDATE SET value = excluded.value", &st, what, err,
	             errlen);
	if (r == KM_EOK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
		r = run(q->db, st, what, err, errlen);
	}
	sqlite3_finalize(st);
	return r;
}

/* ---- audit trail (schema v2) ---- */

static int sq_audit_insert(void *ctx, const km_store_audit_event_t *e, char *err, size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot append the audit event";
	int r = prep(q->db, "INSERT INTO audit_events(seq, at, actor_user, actor_uid, actor_host,"
	             " actor_via, actor_pid, action, keyset, kid, before, after, reason,"
	             " policy_hash, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
	             " ?10, ?11, ?12, ?13, ?14, ?15, ?16)", &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	sqlite3_bind_int64(st, 1, e->seq);
	sqlite3_bind_int64(st, 2, e->at);
	sqlite3_bind_text(st, 3, e->actor.user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, e->actor.uid);
	sqlite3_bind_text(st, 5, e->actor.host, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, e->actor.via, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, e->actor.pid);
	sqlite3_bind_text(st, 8, e->action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, e->keyset, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, e->kid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, e->before ? e->before : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, e->after ? e->after : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 13, e->reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 14, e->policy_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 15, e->prev_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 16, e->hash, -1, SQLITE_STATIC);
	r = run(q->db, st, what, err, errlen);
out:
	sqlite3_finalize(st);
	return r;
}

static int sq_audit_head(void *ctx, int64_t *seq, char hash[KM_STORE_HASH_HEX + 1], char *err,
                         size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot read the audit chain head";
	int r = prep(q->db, "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1", &st,
	             what, err, errlen);
	if (r != KM_EOK)
		goto out;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		col_text(st, 1, hash, KM_STORE_HASH_HEX + 1);
	} else if (rc == SQLITE_DONE) {
		*seq = 0;
		hash[0] = '\0';
	} else {
		r = sq_fail(q->db, rc, what, err, errlen);
	}
out:
	sqlite3_finalize(st);
	return r;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return strdup(t ? (const char *)t : "");
}

static int sq_audit_query(void *ctx, const km_store_audit_filter_t *f,
                          km_store_audit_event_t **ret, size_t *count, char *err,
                          size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	km_store_audit_event_t *list = NULL;
	size_t n = 0, cap = 0;
	const char *what = "cannot read the audit log";
	int rc, r = prep(q->db, "SELECT seq, at, actor_user, actor_uid, actor_host, actor_via,"
	                 " actor_pid, action, keyset, kid, before, after, reason, policy_hash,"
	                 " prev_hash, hash FROM audit_events"
	                 " WHERE (?1 = 0 OR seq >= ?1) AND (?2 = 0 OR seq <= ?2)"
	                 " AND (?3 = 0 OR at >= ?3) AND (?4 = 0 OR at <= ?4)"
	                 " AND (?5 IS NULL OR keyset = ?5) AND (?6 IS NULL OR kid = ?6)"
	                 " AND (?7 IS NULL OR action = ?7) ORDER BY seq", &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	km_store_audit_filter_t none = { 0 };
	if (f == NULL)
		f = &none;
	sqlite3_bind_int64(st, 1, f->from_seq);
	sqlite3_bind_int64(st, 2, f->to_seq);
	sqlite3_bind_int64(st, 3, f->since);
	sqlite3_bind_int64(st, 4, f->until);
	bind_text_or_null(st, 5, f->keyset);
	bind_text_or_null(st, 6, f->kid);
	bind_text_or_null(st, 7, f->action);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = grow((void **)&list, &cap, n, sizeof(*list))) != KM_EOK) {
			fail(err, errlen, r, "out of memory");
			goto out;
		}
		km_store_audit_event_t *e = &list[n];
		memset(e, 0, sizeof(*e));
		e->seq = sqlite3_column_int64(st, 0);
		e->at = sqlite3_column_int64(st, 1);
		col_text(st, 2, e->actor.user, sizeof(e->actor.user));
		e->actor.uid = sqlite3_column_int64(st, 3);
		col_text(st, 4, e->actor.host, sizeof(e->actor.host));
		col_text(st, 5, e->actor.via, sizeof(e->actor.via));
		e->actor.pid = sqlite3_column_int64(st, 6);
		col_text(st, 7, e->action, sizeof(e->action));
		col_text(st, 8, e->keyset, sizeof(e->keyset));
		col_text(st, 9, e->kid, sizeof(e->kid));
		e->before = col_dup(st, 10);
		e->after = col_dup(st, 11);
		n++;
		if (e->before == NULL || e->after == NULL) {
			r = fail(err, errlen, KM_ENOMEM, "out of memory");
			goto out;
		}
		col_text(st, 12, e->reason, sizeof(e->reason));
		col_text(st, 13, e->policy_hash, sizeof(e->policy_hash));
		col_text(st, 14, e->prev_hash, sizeof(e->prev_hash));
		col_text(st, 15, e->hash, sizeof(e->hash));
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(q->db, rc, what, err, errlen);
		goto out;
	}
	*ret = list;
	*count = n;
	list = NULL;
	n = 0;
out:
	km_store_audit_events_free(list, n);
	sqlite3_finalize(st);
	return r;
}

static int sq_jwks_version_insert(void *ctx, const km_store_jwks_version_t *v, char *err,
                                  size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot record the JWKS version";
	int r = prep(q->db, "INSERT INTO jwks_versions(serial, at, kids, event_seq)"
	             " VALUES (?1, ?2, ?3, ?4)", &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	sqlite3_bind_int64(st, 1, (int64_t)v->serial);
	sqlite3_bind_int64(st, 2, v->at);
	sqlite3_bind_text(st, 3, v->kids, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, v->event_seq);
	r = run(q->db, st, what, err, errlen);
out:
	sqlite3_finalize(st);
	return r;
}

static int sq_jwks_version_query(void *ctx, bool latest_only, km_store_jwks_version_t **ret,
                                 size_t *count, char *err, size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	km_store_jwks_version_t *list = NULL;
	size_t n = 0, cap = 0;
	const char *what = "cannot read the JWKS history";
	int rc, r = prep(q->db, latest_only ?
	                 "SELECT serial, at, kids, event_seq FROM jwks_versions"
	                 " ORDER BY serial DESC LIMIT 1" :
	                 "SELECT serial, at, kids, event_seq FROM jwks_versions ORDER BY serial",
	                 &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = grow((void **)&list, &cap, n, sizeof(*list))) != KM_EOK) {
			fail(err, errlen, r, "out of memory");
			goto out;
		}
		km_store_jwks_version_t *v = &list[n++];
		v->serial = (uint64_t)sqlite3_column_int64(st, 0);
		v->at = sqlite3_column_int64(st, 1);
		v->kids = col_dup(st, 2);
		v->event_seq = sqlite3_column_int64(st, 3);
		if (v->kids == NULL) {
			r = fail(err, errlen, KM_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(q->db, rc, what, err, errlen);
		goto out;
	}
	*ret = list;
	*count = n;
	list = NULL;
	n = 0;
out:
	km_store_jwks_versions_free(list, n);
	sqlite3_finalize(st);
	return r;
}

static int sq_audit_key_insert(void *ctx, const km_store_audit_key_t *k, int64_t *id,
                               char *err, size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot record the audit key";
	int r = exec(q->db, "UPDATE audit_keys SET active = 0 WHERE active = 1", what, err,
	             errlen);
	if (r != KM_EOK)
		return r;
	if ((r = prep(q->db, "INSERT INTO audit_keys(kid, alg, token_label, token_serial, cka_id,"
	              " public_jwk, created_at, active) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1)",
	              &st, what, err, errlen)) != KM_EOK)
		goto out;
	sqlite3_bind_text(st, 1, k->kid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, km_alg_name(k->alg), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, k->token_label, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, k->token_serial, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, k->cka_id, (int)k->cka_id_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, k->jwk, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, k->created_at);
	if ((r = run(q->db, st, what, err, errlen)) != KM_EOK)
		goto out;
	*id = sqlite3_last_insert_rowid(q->db);
out:
	sqlite3_finalize(st);
	return r;
}

static int sq_audit_key_query(void *ctx, km_store_audit_key_t **ret, size_t *count, char *err,
                              size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	km_store_audit_key_t *list = NULL;
	size_t n = 0, cap = 0;
	const char *what = "cannot read the audit keys";
	int rc, r = prep(q->db, "SELECT id, kid, alg, token_label, token_serial, cka_id,"
	                 " public_jwk, created_at, active FROM audit_keys ORDER BY id", &st, what,
	                 err, errlen);
	if (r != KM_EOK)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = grow((void **)&list, &cap, n, sizeof(*list))) != KM_EOK) {
			fail(err, errlen, r, "out of memory");
			goto out;
		}
		km_store_audit_key_t *k = &list[n++];
		memset(k, 0, sizeof(*k));
		k->id = sqlite3_column_int64(st, 0);
		col_text(st, 1, k->kid, sizeof(k->kid));
		(void)km_alg_from_name((const char *)sqlite3_column_text(st, 2), &k->alg);
		col_text(st, 3, k->token_label, sizeof(k->token_label));
		col_text(st, 4, k->token_serial, sizeof(k->token_serial));
		int len = sqlite3_column_bytes(st, 5);
		const void *blob = sqlite3_column_blob(st, 5);
		if (blob != NULL && len > 0 && len <= KM_STORE_CKA_ID_MAX) {
			memcpy(k->cka_id, blob, (size_t)len);
			k->cka_id_len = (size_t)len;
		}
		col_text(st, 6, k->jwk, sizeof(k->jwk));
		k->created_at = sqlite3_column_int64(st, 7);
		k->active = sqlite3_column_int(st, 8) != 0;
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(q->db, rc, what, err, errlen);
		goto out;
	}
	*ret = list;
	*count = n;
	list = NULL;
out:
	free(list);
	sqlite3_finalize(st);
	return r;
}

static int sq_checkpoint_insert(void *ctx, const km_store_checkpoint_t *c, char *err,
                                size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	const char *what = "cannot record the checkpoint";
	int r = prep(q->db, "INSERT INTO audit_checkpoints(seq, hash, at, key_kid, signature)"
	             " VALUES (?1, ?2, ?3, ?4, ?5)", &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	sqlite3_bind_int64(st, 1, c->seq);
	sqlite3_bind_text(st, 2, c->hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, c->at);
	sqlite3_bind_text(st, 4, c->key_kid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, c->signature, -1, SQLITE_STATIC);
	r = run(q->db, st, what, err, errlen);
out:
	sqlite3_finalize(st);
	return r;
}

static int sq_checkpoint_query(void *ctx, km_store_checkpoint_t **ret, size_t *count,
                               char *err, size_t errlen)
{
	sq_t *q = ctx;
	sqlite3_stmt *st = NULL;
	km_store_checkpoint_t *list = NULL;
	size_t n = 0, cap = 0;
	const char *what = "cannot read the checkpoints";
	int rc, r = prep(q->db, "SELECT id, seq, hash, at, key_kid, signature"
	                 " FROM audit_checkpoints ORDER BY id", &st, what, err, errlen);
	if (r != KM_EOK)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = grow((void **)&list, &cap, n, sizeof(*list))) != KM_EOK) {
			fail(err, errlen, r, "out of memory");
			goto out;
		}
		km_store_checkpoint_t *c = &list[n++];
		memset(c, 0, sizeof(*c));
		c->id = sqlite3_column_int64(st, 0);
		c->seq = sqlite3_column_int64(st, 1);
		col_text(st, 2, c->hash, sizeof(c->hash));
		c->at = sqlite3_column_int64(st, 3);
		col_text(st, 4, c->key_kid, sizeof(c->key_kid));
		col_text(st, 5, c->signature, sizeof(c->signature));
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(q->db, rc, what, err, errlen);
		goto out;
	}
	*ret = list;
	*count = n;
	list = NULL;
out:
	free(list);
	sqlite3_finalize(st);
	return r;
}

const km_store_backend_t km_store_backend_sqlite = {
	.name = "sqlite",
	.schema_version = km_store_sqlite_schema_version,
	.open = sq_open,
	.env_read = sq_env_read,
	.close = sq_close,
	.tx = sq_tx,
	.keyset_insert = sq_keyset_insert,
	.keyset_query = sq_keyset_query,
	.keyset_update = sq_keyset_update,
	.change_insert = sq_change_insert,
	.change_query = sq_change_query,
	.key_insert = sq_key_insert,
	.key_query = sq_key_query,
	.key_update = sq_key_update,
	.event_insert = sq_event_insert,
	.event_query = sq_event_query,
	.counter_next = sq_counter_next,
	.meta_get = sq_meta_get,
	.meta_put = sq_meta_put,
	.found_version = sq_found_version,
	.audit_insert = sq_audit_insert,
	.audit_head = sq_audit_head,
	.audit_query = sq_audit_query,
	.jwks_version_insert = sq_jwks_version_insert,
	.jwks_version_query = sq_jwks_version_query,
	.audit_key_insert = sq_audit_key_insert,
	.audit_key_query = sq_audit_key_query,
	.checkpoint_insert = sq_checkpoint_insert,
	.checkpoint_query = sq_checkpoint_query,
};
