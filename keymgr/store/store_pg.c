/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PostgreSQL backend of the store (libpq): an environment's store is one schema of one
 * database, named by a postgresql:// URI (keymgr/common/pguri.h, docs/ha.md).
 *
 * Transactions keep SQLite's rule that one writer works at a time (BEGIN IMMEDIATE): every
 * write transaction first locks the meta row 'env' (FOR UPDATE), waiting up to
 * KM_STORE_BUSY_TIMEOUT_MS (lock_timeout), then KM_STORE_EBUSY. So a read-modify-write in
 * store.c cannot lose an update whichever node runs it, and a transaction that dies with its
 * connection releases the lock with it (a row lock lives in the transaction, not the session).
 * The audit chain's head is a row of its own, locked by every append (store_pg_schema.c).
 *
 * A connection that broke is reset before the next transaction (a PostgreSQL restart); a
 * transaction it was in is lost, as a crashed transaction is, and reported as KM_STORE_EIO.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"
#include "keymgr/common/pguri.h"
#include "keymgr/store/store_backend.h"
#include "keymgr/store/store_pg.h"

typedef struct {
	PGconn *db;
	char *uri;                      /* as configured (libpq reconnects with it) */
	char name[512];                 /* the URI without its password, for messages */
	char schema[64];
	int found_version;              /* the version before any migration (0: new) */
	bool in_tx;                     /* a transaction of pg_tx() is open: never reconnect
	                                 * inside it (its statements would run outside it) */
	/* The change lock while this handle holds it (lock_take): its epoch (0: not held), its
	 * holder text and its time to live, checked and extended by every write transaction. */
	int64_t lock_epoch;
	char lock_holder[256];
	int lock_ttl;
	/* The fence (km_store_set_fence): every write transaction first checks that the leader
	 * lease is held by fence_holder at fence_epoch. fence_epoch 0: none. */
	char fence_holder[KM_STORE_LEASE_HOLDER_MAX + 1];
	int64_t fence_epoch;
} pg_t;

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

/* One line of libpq's message (it ends its messages with a newline). */
static void first_line(const char *msg, char *out, size_t len)
{
	snprintf(out, len, "%s", msg ? msg : "");
	out[strcspn(out, "\n")] = '\0';
}

/* Maps a failed result (or a lost connection) to a KM_* code and writes "what: why". */
static int pg_fail(pg_t *g, const PGresult *res, const char *what, char *err, size_t errlen)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *prim = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char msg[400];
	first_line(prim ? prim : PQerrorMessage(g->db), msg, sizeof(msg));
	if (PQstatus(g->db) != CONNECTION_OK || state == NULL)
		return fail(err, errlen, KM_STORE_EIO, "%s: the store %s cannot be reached: %s",
		            what, g->name, msg[0] ? msg : "connection lost");
	if (strcmp(state, "23505") == 0)
		return fail(err, errlen, KM_EEXIST, "%s: %s", what, msg);
	if (strncmp(state, "23", 2) == 0)
		return fail(err, errlen, KM_STORE_ECONSTRAINT, "%s: %s", what, msg);
	if (strcmp(state, "55P03") == 0 || strcmp(state, "40001") == 0 ||
	    strcmp(state, "40P01") == 0)
		return fail(err, errlen, KM_STORE_EBUSY, "%s: the store %s is locked by another "
		            "writer (its write lock was held for the %d ms we waited); try again",
		            what, g->name, KM_STORE_BUSY_TIMEOUT_MS);
	if (strcmp(state, "53100") == 0)
		return fail(err, errlen, KM_STORE_EIO, "%s: the disk of the store %s is full (%s)",
		            what, g->name, msg);
	if (strcmp(state, "25006") == 0)
		return fail(err, errlen, KM_STORE_EIO, "%s: the store %s is read-only (%s)", what,
		            g->name, msg);
	if (strcmp(state, "53200") == 0)
		return fail(err, errlen, KM_ENOMEM, "%s: the store %s is out of memory", what,
		            g->name);
	return fail(err, errlen, KM_STORE_EIO, "%s: %s (store %s)", what, msg, g->name);
}

/* ---- statement parameters (all sent as text) ---- */

#define MAX_PARAMS 20

typedef struct {
	const char *v[MAX_PARAMS];
	char buf[MAX_PARAMS][2 * KM_STORE_CKA_ID_MAX + 8];
	int n;
} params_t;

static void p_text(params_t *p, const char *s)
{
	p->v[p->n++] = s;
}

/* NULL and "" are SQL NULL (as SQLite's bind_text_or_null). */
static void p_text_or_null(params_t *p, const char *s)
{
	p->v[p->n++] = s != NULL && *s != '\0' ? s : NULL;
}

static void p_int(params_t *p, int64_t x)
{
	snprintf(p->buf[p->n], sizeof(p->buf[0]), "%" PRId64, x);
	p->v[p->n] = p->buf[p->n];
	p->n++;
}

static void p_time(params_t *p, int64_t t)
{
	if (t == KM_STORE_TIME_NONE)
		p->v[p->n++] = NULL;
	else
		p_int(p, t);
}

static void p_bool(params_t *p, bool b)
{
	p->v[p->n++] = b ? "t" : "f";
}

static void p_bytea(params_t *p, const uint8_t *b, size_t len)
{
	char *o = p->buf[p->n];
	memcpy(o, "\\x", 2);
	km_hex_encode(b, len < KM_STORE_CKA_ID_MAX ? len : KM_STORE_CKA_ID_MAX, o + 2,
	              sizeof(p->buf[0]) - 2);
	p->v[p->n] = o;
	p->n++;
}

static int ensure_connected(pg_t *g, char *err, size_t errlen);

/* Runs sql with p (may be NULL). *ret (may be NULL: cleared here) receives the result. A
 * connection found broken outside a transaction is made again first (a restarted server). */
static int run(pg_t *g, const char *sql, const params_t *p, PGresult **ret, const char *what,
               char *err, size_t errlen)
{
	if (PQstatus(g->db) != CONNECTION_OK && !g->in_tx) {
		int r = ensure_connected(g, err, errlen);
		if (r != KM_EOK)
			return r;
	}
	PGresult *res = PQexecParams(g->db, sql, p ? p->n : 0, NULL, p ? p->v : NULL, NULL, NULL,
	                             0);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		int r = pg_fail(g, res, what, err, errlen);
		PQclear(res);
		return r;
	}
	if (ret != NULL)
		*ret = res;
	else
		PQclear(res);
	return KM_EOK;
}

static void col_text(const PGresult *res, int row, int i, char *buf, size_t len)
{
	snprintf(buf, len, "%s", PQgetisnull(res, row, i) ? "" : PQgetvalue(res, row, i));
}

static int64_t col_i64(const PGresult *res, int row, int i)
{
	return PQgetisnull(res, row, i) ? 0 : strtoll(PQgetvalue(res, row, i), NULL, 10);
}

static int64_t col_time(const PGresult *res, int row, int i)
{
	return PQgetisnull(res, row, i) ? KM_STORE_TIME_NONE : col_i64(res, row, i);
}

static bool col_bool(const PGresult *res, int row, int i)
{
	return !PQgetisnull(res, row, i) && PQgetvalue(res, row, i)[0] == 't';
}

static km_state_t col_state(const PGresult *res, int row, int i)
{
	km_state_t s = KM_STATE_GENERATED;
	(void)km_state_from_name(PQgetvalue(res, row, i), &s);
	return s;
}

static void col_bytea(const PGresult *res, int row, int i, uint8_t *out, size_t *len)
{
	size_t n = 0;
	unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, i), &n);
	*len = 0;
	if (b != NULL && n > 0 && n <= KM_STORE_CKA_ID_MAX) {
		memcpy(out, b, n);
		*len = n;
	}
	PQfreemem(b);
}

static char *col_dup(const PGresult *res, int row, int i)
{
	return strdup(PQgetisnull(res, row, i) ? "" : PQgetvalue(res, row, i));
}

/* An array of n elements of size elem, zeroed (NULL when n is 0). */
static int alloc_list(void **arr, size_t n, size_t elem, char *err, size_t errlen)
{
	*arr = NULL;
	if (n == 0)
		return KM_EOK;
	if ((*arr = calloc(n, elem)) == NULL)
		return fail(err, errlen, KM_ENOMEM, "out of memory");
	return KM_EOK;
}

/* ---- open ---- */

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static int check_version(pg_t *g, int have, char *err, size_t errlen)
{
	int known = km_store_pg_schema_version();
	if (have > known)
		return fail(err, errlen, KM_STORE_ESCHEMA, "store %s has schema version %d, but "
		            "this keymgr knows versions up to %d: upgrade keymgr (the store was not "
		            "changed)", g->name, have, known);
	return KM_EOK;
}

/* The schema's recorded version: 0 when it has no keymgr tables yet; KM_STORE_EOPEN when
 * it holds tables that are not a keymgr store. */
static int read_version(pg_t *g, int *ret, char *err, size_t errlen)
{
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	const char *what = "cannot read the store";
	p_text(&p, g->schema);
	int r = run(g, "SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = $1),"
	            " to_regclass(quote_ident($1) || '.meta') IS NOT NULL", &p, &res, what, err,
	            errlen);
	if (r != KM_EOK)
		return r;
	int64_t tables = col_i64(res, 0, 0);
	bool meta = col_bool(res, 0, 1);
	PQclear(res);
	if (!meta) {
		if (tables > 0)
			return fail(err, errlen, KM_STORE_EOPEN, "schema '%s' of %s holds tables but "
			            "is not a keymgr store", g->schema, g->name);
		*ret = 0;
		return KM_EOK;
	}
	if ((r = run(g, "SELECT value FROM meta WHERE key = 'version'", NULL, &res, what, err,
	             errlen)) != KM_EOK)
		return r;
	*ret = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : 0;
	PQclear(res);
	if (*ret <= 0)
		return fail(err, errlen, KM_STORE_EOPEN, "schema '%s' of %s is not a keymgr store "
		            "(no version recorded)", g->schema, g->name);
	return KM_EOK;
}

static int check_env(pg_t *g, const char *env, bool may_record, char *err, size_t errlen)
{
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	int r = run(g, "SELECT value FROM meta WHERE key = 'env'", NULL, &res,
	            "cannot read the store's environment", err, errlen);
	if (r != KM_EOK)
		return r;
	if (PQntuples(res) == 1) {
		const char *have = PQgetvalue(res, 0, 0);
		if (env != NULL && strcmp(have, env) != 0)
			r = fail(err, errlen, KM_EWRONGENV, "store %s belongs to environment '%.40s', "
			         "not '%s'", g->name, have, env);
		PQclear(res);
		return r;
	}
	PQclear(res);
	if (!may_record || env == NULL)
		return fail(err, errlen, KM_STORE_EOPEN, "store %s records no environment", g->name);
	p_text(&p, env);
	return run(g, "INSERT INTO meta(key, value) VALUES ('env', $1)", &p, NULL,
	           "cannot record the environment", err, errlen);
}

/* Brings the schema up to date and records the environment, in one transaction; a
 * transaction-scoped advisory lock on the schema's name keeps two first opens apart. */
static int migrate(pg_t *g, const char *env, char *err, size_t errlen)
{
	int have = 0;
	params_t p = { .n = 0 };
	const char *what = "cannot upgrade the store";
	int r = run(g, "BEGIN", NULL, NULL, what, err, errlen);
	if (r != KM_EOK)
		return r;
	p_text(&p, g->schema);
	if ((r = run(g, "SELECT pg_advisory_xact_lock(hashtext('keymgr-store:' || $1))", &p,
	             NULL, what, err, errlen)) != KM_EOK)
		goto out;
	/* Read again under the lock: another process may have migrated meanwhile. */
	if ((r = read_version(g, &have, err, errlen)) != KM_EOK)
		goto out;
	if ((r = check_version(g, have, err, errlen)) != KM_EOK)
		goto out;
	if (have < km_store_pg_schema_version() &&
	    (r = km_store_pg_migrate(g->db, have, err, errlen)) != KM_EOK)
		goto out;
	if ((r = check_env(g, env, have == 0, err, errlen)) != KM_EOK)
		goto out;
	r = run(g, "COMMIT", NULL, NULL, what, err, errlen);
out:
	if (r != KM_EOK)
		PQclear(PQexec(g->db, "ROLLBACK"));
	return r;
}

/* Creates the schema when it does not exist, and makes it the only one searched. */
static int use_schema(pg_t *g, char *err, size_t errlen)
{
	char sql[160];
	params_t p = { .n = 0 };
	PGresult *res = NULL;
	const char *what = "cannot select the store's schema";
	p_text(&p, g->schema);
	int r = run(g, "SELECT 1 FROM pg_namespace WHERE nspname = $1", &p, &res, what, err,
	            errlen);
	if (r != KM_EOK)
		return r;
	bool exists = PQntuples(res) == 1;
	PQclear(res);
	/* The name is a checked plain identifier (km_pguri_parse). */
	if (!exists) {
		snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS \"%s\"", g->schema);
		if ((r = run(g, sql, NULL, NULL, what, err, errlen)) != KM_EOK)
			return r;
	}
	snprintf(sql, sizeof(sql), "SET search_path TO \"%s\"", g->schema);
	return run(g, sql, NULL, NULL, what, err, errlen);
}

/*
 * libpq's connection to uri with keymgr's bounds on a TCP host, each overridden by the URI's
 * own parameter of that name: an attempt to connect gives up after 10 s, and a connection
 * whose server stopped answering (a host gone, a network cut) is found dead within about
 * 30 s (TCP keep-alives while waiting for an answer, tcp_user_timeout for unacknowledged
 * writes), so that no lease thread, pass or CLI command waits for ever on it. A Unix socket
 * ignores them.
 */
static PGconn *connect_bounded(const char *uri)
{
	static const char *const keys[] = {
		"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "tcp_user_timeout", "dbname", NULL,
	};
	const char *const values[] = { "10", "1", "10", "5", "3", "30000", uri, NULL };
	/* expand_dbname: the URI is expanded in place, its parameters override the ones above */
	return PQconnectdbParams(keys, values, 1);
}

static int pg_connect(pg_t *g, char *err, size_t errlen)
{
	g->db = connect_bounded(g->uri);
	if (g->db == NULL)
		return fail(err, errlen, KM_ENOMEM, "out of memory");
	if (PQstatus(g->db) != CONNECTION_OK) {
		char msg[400];
		first_line(PQerrorMessage(g->db), msg, sizeof(msg));
		return fail(err, errlen, KM_STORE_EOPEN, "cannot connect to the store %s: %s",
		            g->name, msg);
	}
	PQsetNoticeProcessor(g->db, quiet, NULL);
	int r = run(g, "SET client_min_messages = warning", NULL, NULL, "cannot configure the "
	            "store", err, errlen);
	if (r == KM_EOK)
		r = use_schema(g, err, errlen);
	return r;
}

static void pg_close(void *ctx)
{
	pg_t *g = ctx;
	if (g == NULL)
		return;
	PQfinish(g->db);
	free(g->uri);
	free(g);
}

static int pg_open(const char *path, const char *env, void **ctx, char *err, size_t errlen)
{
	km_pguri_t u;
	int have = 0;
	int r = km_pguri_parse(path, &u, err, errlen);
	if (r != KM_EOK)
		return r;
	pg_t *g = calloc(1, sizeof(*g));
	if (g == NULL || (g->uri = strdup(path)) == NULL) {
		free(g);
		return fail(err, errlen, KM_ENOMEM, "out of memory");
	}
	km_pguri_redact(path, g->name, sizeof(g->name));
	snprintf(g->schema, sizeof(g->schema), "%s", u.schema);
	if ((r = pg_connect(g, err, errlen)) != KM_EOK)
		goto out;
	/* Nothing is written before the version is known to be one we understand. */
	if ((r = read_version(g, &have, err, errlen)) != KM_EOK)
		goto out;
	if ((r = check_version(g, have, err, errlen)) != KM_EOK)
		goto out;
	if (have == 0 && env == NULL) {
		r = fail(err, errlen, KM_STORE_EOPEN, "schema '%s' of %s holds no keymgr store",
		         g->schema, g->name);
		goto out;
	}
	g->found_version = have;
	if (have < km_store_pg_schema_version())
		r = migrate(g, env, err, errlen);
	else
		r = check_env(g, env, false, err, errlen);
out:
	if (r != KM_EOK) {
		pg_close(g);
		return r;
	}
	*ctx = g;
	return KM_EOK;
}

static int pg_meta_get(void *ctx, const char *key, char *out, size_t len, char *err,
                       size_t errlen);

static int pg_env_read(void *ctx, char *out, size_t len, char *err, size_t errlen)
{
	pg_t *g = ctx;
	int r = pg_meta_get(ctx, "env", out, len, err, errlen);
	if (r == KM_EOK && out[0] == '\0')
		r = fail(err, errlen, KM_STORE_EOPEN, "store %s records no environment", g->name);
	return r;
}

static int pg_found_version(void *ctx)
{
	return ((const pg_t *)ctx)->found_version;
}

/* A connection that broke (a restarted server) is made again between transactions. */
static int ensure_connected(pg_t *g, char *err, size_t errlen)
{
	if (PQstatus(g->db) == CONNECTION_OK)
		return KM_EOK;
	PQreset(g->db);
	if (PQstatus(g->db) != CONNECTION_OK) {
		char msg[400];
		first_line(PQerrorMessage(g->db), msg, sizeof(msg));
		return fail(err, errlen, KM_STORE_EIO, "the store %s cannot be reached: %s",
		            g->name, msg);
	}
	PQsetNoticeProcessor(g->db, quiet, NULL);
	return use_schema(g, err, errlen);
}

/* Inside a write transaction of the lock's holder: still held at our epoch and not expired?
 * Then the expiry moves on (the fence of every step of a change). */
static int lock_check(pg_t *g, char *err, size_t errlen)
{
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	p_int(&p, g->lock_epoch);
	p_text(&p, g->lock_holder);
	p_int(&p, g->lock_ttl);
	int r = run(g, "UPDATE change_lock SET expires_at = now() + make_interval(secs => $3)"
	            " WHERE id = 1 AND epoch = $1 AND holder = $2 AND expires_at > now()", &p,
	            &res, "cannot check the change lock", err, errlen);
	if (r != KM_EOK)
		return r;
	if (strcmp(PQcmdTuples(res), "1") != 0)
		r = fail(err, errlen, KM_STORE_EBUSY, "this process no longer holds the change lock "
		         "of the store %s (epoch %" PRId64 "): it expired and another process may "
		         "have taken it; nothing more is written by this change", g->name,
		         g->lock_epoch);
	PQclear(res);
	return r;
}

/* Inside a write transaction of the leader: does it still hold the lease at its epoch? The
 * row stays locked (FOR SHARE) until the transaction ends: the lease cannot change hands
 * while this transaction writes. */
static int fence_check(pg_t *g, char *err, size_t errlen)
{
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	p_text(&p, g->fence_holder);
	p_int(&p, g->fence_epoch);
	int r = run(g, "SELECT 1 FROM leader_lease WHERE id = 1 AND holder = $1 AND epoch = $2"
	            " AND expires_at > now() FOR SHARE", &p, &res, "cannot check the leader lease",
	            err, errlen);
	if (r != KM_EOK)
		return r;
	if (PQntuples(res) != 1)
		r = fail(err, errlen, KM_STORE_EFENCED, "this node no longer holds the leader lease "
		         "of the store %s at epoch %" PRId64 " (it expired or another node took it): "
		         "the write was refused", g->name, g->fence_epoch);
	PQclear(res);
	return r;
}

static int begin_write(pg_t *g, char *err, size_t errlen)
{
	char sql[64];
	const char *what = "store BEGIN";
	int r = ensure_connected(g, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = run(g, "BEGIN", NULL, NULL, what, err, errlen)) != KM_EOK)
		return r;
	snprintf(sql, sizeof(sql), "SET LOCAL lock_timeout = %d", KM_STORE_BUSY_TIMEOUT_MS);
	if ((r = run(g, sql, NULL, NULL, what, err, errlen)) == KM_EOK)
		r = run(g, "SELECT 1 FROM meta WHERE key = 'env' FOR UPDATE", NULL, NULL, what, err,
		        errlen);
	if (r == KM_EOK && g->fence_epoch != 0)
		r = fence_check(g, err, errlen);
	if (r == KM_EOK && g->lock_epoch != 0)
		r = lock_check(g, err, errlen);
	if (r != KM_EOK)
		PQclear(PQexec(g->db, "ROLLBACK"));
	return r;
}

static int pg_tx(void *ctx, km_store_tx_t op, char *err, size_t errlen)
{
	static const char *const sql[] = {
		[KM_STORE_TX_COMMIT] = "COMMIT",
		[KM_STORE_TX_ROLLBACK] = "ROLLBACK",
		[KM_STORE_TX_SAVEPOINT] = "SAVEPOINT km_op",
		[KM_STORE_TX_RELEASE] = "RELEASE km_op",
		[KM_STORE_TX_ROLLBACK_TO] = "ROLLBACK TO km_op",
	};
	pg_t *g = ctx;
	PGTransactionStatusType ts = PQtransactionStatus(g->db);
	if (op == KM_STORE_TX_BEGIN) {
		int r = begin_write(g, err, errlen);
		g->in_tx = r == KM_EOK;
		return r;
	}
	if (op == KM_STORE_TX_COMMIT || op == KM_STORE_TX_ROLLBACK)
		g->in_tx = false;
	/* Nothing left to undo after a lost connection or outside a transaction. */
	if (op == KM_STORE_TX_ROLLBACK && (ts == PQTRANS_IDLE || ts == PQTRANS_UNKNOWN))
		return KM_EOK;
	/* PostgreSQL answers COMMIT of a failed transaction with a rollback: say so. */
	if (op == KM_STORE_TX_COMMIT && ts != PQTRANS_INTRANS)
		return fail(err, errlen, KM_STORE_EIO, "store COMMIT: the transaction failed "
		            "earlier or the connection to %s was lost; nothing was written",
		            g->name);
	char what[64];
	snprintf(what, sizeof(what), "store %s", sql[op]);
	return run(g, sql[op], NULL, NULL, what, err, errlen);
}

/* ---- key sets ---- */

static int pg_keyset_insert(void *ctx, const km_store_keyset_t *ks, int64_t *id, char *err,
                            size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	const char *what = "cannot create the key set";
	p_text(&p, ks->name);
	p_text(&p, km_alg_name(ks->alg));
	p_int(&p, ks->rsa_bits);
	p_text(&p, ks->owner);
	p_text(&p, ks->purpose);
	p_text(&p, ks->description);
	p_int(&p, ks->created_at);
	p_text(&p, ks->created_by);
	int r = run(g, "INSERT INTO keysets(name, alg, rsa_bits, owner, purpose, description,"
	            " created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
	            &p, &res, what, err, errlen);
	if (r != KM_EOK)
		return r;
	int64_t new_id = col_i64(res, 0, 0);
	PQclear(res);
	for (size_t i = 0; i < ks->n_labels; i++) {
		char key[KM_STORE_LABEL_MAX + 1];
		const char *kv = ks->labels[i];
		size_t klen = strcspn(kv, "=");
		snprintf(key, sizeof(key), "%.*s", (int)klen, kv);
		params_t l = { .n = 0 };
		p_int(&l, new_id);
		p_text(&l, key);
		p_text(&l, kv[klen] ? kv + klen + 1 : "");
		if ((r = run(g, "INSERT INTO keyset_labels(keyset_id, key, value) VALUES ($1, $2, $3)",
		             &l, NULL, what, err, errlen)) != KM_EOK)
			return r;
	}
	*id = new_id;
	return KM_EOK;
}

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

static int pg_keyset_query(void *ctx, const char *name, const km_store_keyset_filter_t *f,
                           km_store_keyset_t **ret, size_t *count, char *err, size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	km_store_keyset_t *list = NULL;
	p_text_or_null(&p, name);
	p_text_or_null(&p, f ? f->owner : NULL);
	p_text_or_null(&p, f ? f->purpose : NULL);
	p_text_or_null(&p, f ? f->label : NULL);
	int r = run(g,
		"SELECT ks.id, ks.name, ks.alg, ks.rsa_bits, ks.owner, ks.purpose, ks.description,"
		"  ks.created_at, ks.created_by,"
		"  (SELECT string_agg(l.key || '=' || l.value, E'\\n' ORDER BY l.key)"
		"     FROM keyset_labels l WHERE l.keyset_id = ks.id)"
		" FROM keysets ks"
		" WHERE ($1::text IS NULL OR ks.name = $1) AND ($2::text IS NULL OR ks.owner = $2)"
		"   AND ($3::text IS NULL OR ks.purpose = $3)"
		"   AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM keyset_labels l"
		"        WHERE l.keyset_id = ks.id AND l.key || '=' || l.value = $4))"
		" ORDER BY ks.name COLLATE \"C\"", &p, &res, "cannot read key sets", err, errlen);
	if (r != KM_EOK)
		return r;
	size_t n = (size_t)PQntuples(res);
	if ((r = alloc_list((void **)&list, n, sizeof(*list), err, errlen)) != KM_EOK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		km_store_keyset_t *ks = &list[i];
		int row = (int)i;
		ks->id = col_i64(res, row, 0);
		col_text(res, row, 1, ks->name, sizeof(ks->name));
		(void)km_alg_from_name(PQgetvalue(res, row, 2), &ks->alg);
		ks->rsa_bits = (unsigned)col_i64(res, row, 3);
		col_text(res, row, 4, ks->owner, sizeof(ks->owner));
		col_text(res, row, 5, ks->purpose, sizeof(ks->purpose));
		col_text(res, row, 6, ks->description, sizeof(ks->description));
		ks->created_at = col_i64(res, row, 7);
		col_text(res, row, 8, ks->created_by, sizeof(ks->created_by));
		split_labels(PQgetisnull(res, row, 9) ? NULL : PQgetvalue(res, row, 9), ks);
	}
	*ret = list;
	*count = n;
out:
	PQclear(res);
	return r;
}

static int pg_keyset_update(void *ctx, int64_t id, const char *field, const char *value,
                            char *err, size_t errlen)
{
	pg_t *g = ctx;
	params_t p = { .n = 0 };
	bool owner = strcmp(field, "owner") == 0;
	p_text(&p, value);
	p_int(&p, id);
	return run(g, owner ? "UPDATE keysets SET owner = $1 WHERE id = $2" :
	           "UPDATE keysets SET purpose = $1 WHERE id = $2", &p, NULL,
	           "cannot update the key set", err, errlen);
}

static int pg_change_insert(void *ctx, int64_t keyset_id, const km_store_change_t *c,
                            char *err, size_t errlen)
{
	pg_t *g = ctx;
	params_t p = { .n = 0 };
	p_int(&p, keyset_id);
	p_text(&p, c->field);
	p_text(&p, c->old_value);
	p_text(&p, c->new_value);
	p_text(&p, c->who);
	p_int(&p, c->at);
	p_text(&p, c->reason);
	return run(g, "INSERT INTO keyset_changes(keyset_id, field, old_value, new_value,"
	           " changed_by, changed_at, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)", &p,
	           NULL, "cannot record the change", err, errlen);
}

static int pg_change_query(void *ctx, int64_t keyset_id, km_store_change_t **ret,
                           size_t *count, char *err, size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	km_store_change_t *list = NULL;
	p_int(&p, keyset_id);
	int r = run(g, "SELECT id, field, old_value, new_value, changed_by, changed_at, reason"
	            " FROM keyset_changes WHERE keyset_id = $1 ORDER BY id", &p, &res,
	            "cannot read the key set history", err, errlen);
	if (r != KM_EOK)
		return r;
	size_t n = (size_t)PQntuples(res);
	if ((r = alloc_list((void **)&list, n, sizeof(*list), err, errlen)) != KM_EOK)
		goto out;
	for (int i = 0; i < (int)n; i++) {
		km_store_change_t *c = &list[i];
		c->id = col_i64(res, i, 0);
		col_text(res, i, 1, c->field, sizeof(c->field));
		col_text(res, i, 2, c->old_value, sizeof(c->old_value));
		col_text(res, i, 3, c->new_value, sizeof(c->new_value));
		col_text(res, i, 4, c->who, sizeof(c->who));
		c->at = col_i64(res, i, 5);
		col_text(res, i, 6, c->reason, sizeof(c->reason));
	}
	*ret = list;
	*count = n;
out:
	PQclear(res);
	return r;
}

/* ---- keys ---- */

static const char *const state_cols[KM_STATE_COUNT] = {
	[KM_STATE_GENERATED] = "generated_at",
	[KM_STATE_PUBLISHED] = "published_at",
	[KM_STATE_ACTIVE] = "activated_at",
	[KM_STATE_RETIRED] = "retired_at",
	[KM_STATE_REMOVED] = "removed_at",
	[KM_STATE_DESTROYED] = "destroyed_at",
	[KM_STATE_REVOKED] = "revoked_at",
};

/*
 * The LISTEN/NOTIFY channel of the schema: a notice when the served documents change and when
 * a key changes (docs/ha.md). Every node's lease thread listens: a follower serves the leader's
 * new documents at once, and the leader re-reads the store at once when a change was made
 * elsewhere (`keymgr revoke` on any machine), rather than at its next poll. Sent inside the
 * writer's transaction: PostgreSQL delivers it at the commit, once per transaction.
 */
static void channel(const pg_t *g, char *out, size_t len)
{
	snprintf(out, len, "keymgr_docs_%s", g->schema);
}

static int notify(pg_t *g, const char *what, char *err, size_t errlen)
{
	char ch[96], sql[160];
	channel(g, ch, sizeof(ch));
	snprintf(sql, sizeof(sql), "NOTIFY \"%s\"", ch);
	return run(g, sql, NULL, NULL, what, err, errlen);
}

static int pg_key_insert(void *ctx, const km_store_key_t *k, int64_t *id, char *err,
                         size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	p_text_or_null(&p, k->kid);
	p_int(&p, k->keyset_id);
	p_text(&p, km_alg_name(k->alg));
	p_int(&p, k->rsa_bits);
	p_text(&p, k->token_label);
	p_text(&p, k->token_serial);
	p_bytea(&p, k->cka_id, k->cka_id_len);
	p_text(&p, k->owner);
	p_text(&p, k->purpose);
	p_text(&p, km_state_name(k->state));
	p_bool(&p, k->pending);
	p_text_or_null(&p, k->jwk);
	p_int(&p, k->state_at[KM_STATE_GENERATED]);
	int r = run(g, "INSERT INTO keys(kid, keyset_id, alg, rsa_bits, token_label, token_serial,"
	            " cka_id, owner, purpose, state, pending, public_jwk, generated_at)"
	            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
	            &p, &res, "cannot record the key", err, errlen);
	if (r != KM_EOK)
		return r;
	*id = col_i64(res, 0, 0);
	PQclear(res);
	/* An intent (no kid yet) changes no document; a copied key may. */
	return k->kid[0] ? notify(g, "cannot record the key", err, errlen) : KM_EOK;
}

static void read_key(const PGresult *res, int row, km_store_key_t *k)
{
	memset(k, 0, sizeof(*k));
	k->id = col_i64(res, row, 0);
	col_text(res, row, 1, k->kid, sizeof(k->kid));
	k->keyset_id = col_i64(res, row, 2);
	col_text(res, row, 3, k->keyset, sizeof(k->keyset));
	(void)km_alg_from_name(PQgetvalue(res, row, 4), &k->alg);
	k->rsa_bits = (unsigned)col_i64(res, row, 5);
	col_text(res, row, 6, k->token_label, sizeof(k->token_label));
	col_text(res, row, 7, k->token_serial, sizeof(k->token_serial));
	col_bytea(res, row, 8, k->cka_id, &k->cka_id_len);
	col_text(res, row, 9, k->owner, sizeof(k->owner));
	col_text(res, row, 10, k->purpose, sizeof(k->purpose));
	k->state = col_state(res, row, 11);
	k->pending = col_bool(res, row, 12);
	col_text(res, row, 13, k->jwk, sizeof(k->jwk));
	for (unsigned i = 0; i < KM_STATE_COUNT; i++)
		k->state_at[i] = col_time(res, row, 14 + (int)i);
	col_text(res, row, 14 + KM_STATE_COUNT, k->revoke_reason, sizeof(k->revoke_reason));
	k->activate_at = col_time(res, row, 15 + KM_STATE_COUNT);
}

static int pg_key_query(void *ctx, const km_store_key_query_t *kq, km_store_key_t **ret,
                        size_t *count, char *err, size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	km_store_key_t *list = NULL;
	char sql[1536], states[128] = "{";
	size_t used = (size_t)snprintf(sql, sizeof(sql), "SELECT k.id, k.kid, k.keyset_id,"
		" ks.name, k.alg, k.rsa_bits, k.token_label, k.token_serial, k.cka_id, k.owner,"
		" k.purpose, k.state, k.pending, k.public_jwk, k.generated_at, k.published_at,"
		" k.activated_at, k.retired_at, k.removed_at, k.destroyed_at, k.revoked_at,"
		" k.revoke_reason, k.activate_at FROM keys k JOIN keysets ks ON ks.id = k.keyset_id"
		" WHERE TRUE");
	/* Only the clauses in use, so that lookups by kid or CKA_ID use their unique index. */
#define ADD(clause) used += (size_t)snprintf(sql + used, sizeof(sql) - used, " AND " clause, \
                                             p.n)
	if (kq->f.keyset) {
		p_text(&p, kq->f.keyset);
		ADD("ks.name = $%d");
	}
	if (kq->f.states) {
		for (unsigned i = 0; i < KM_STATE_COUNT; i++) {
			if (kq->f.states & KM_STORE_STATE_BIT(i)) {
				if (states[1] != '\0')
					strcat(states, ",");
				strcat(states, km_state_name((km_state_t)i));
			}
		}
		strcat(states, "}");
		p_text(&p, states);
		ADD("k.state = ANY($%d::text[])");
	}
	if (kq->f.owner) {
		p_text(&p, kq->f.owner);
		ADD("k.owner = $%d");
	}
	if (kq->f.purpose) {
		p_text(&p, kq->f.purpose);
		ADD("k.purpose = $%d");
	}
	if (kq->kid) {
		p_text(&p, kq->kid);
		ADD("k.kid = $%d");
	}
	if (kq->cka_id) {
		p_bytea(&p, kq->cka_id, kq->cka_id_len);
		ADD("k.cka_id = $%d");
	}
#undef ADD
	if (kq->f.pending == KM_STORE_PENDING_ONLY)
		used += (size_t)snprintf(sql + used, sizeof(sql) - used, " AND k.pending");
	if (kq->f.pending == KM_STORE_PENDING_NONE)
		used += (size_t)snprintf(sql + used, sizeof(sql) - used, " AND NOT k.pending");
	snprintf(sql + used, sizeof(sql) - used, " ORDER BY k.id");
	int r = run(g, sql, &p, &res, "cannot read keys", err, errlen);
	if (r != KM_EOK)
		return r;
	size_t n = (size_t)PQntuples(res);
	if ((r = alloc_list((void **)&list, n, sizeof(*list), err, errlen)) != KM_EOK)
		goto out;
	for (size_t i = 0; i < n; i++)
		read_key(res, (int)i, &list[i]);
	*ret = list;
	*count = n;
out:
	PQclear(res);
	return r;
}

static int pg_key_update(void *ctx, const km_store_key_t *old, const km_store_key_t *nk,
                         char *err, size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	char sql[512];
	size_t used = (size_t)snprintf(sql, sizeof(sql), "UPDATE keys SET kid = $1, "
	                               "public_jwk = $2, pending = $3, state = $4, "
	                               "revoke_reason = $5");
	p_text_or_null(&p, nk->kid);
	p_text_or_null(&p, nk->jwk);
	p_bool(&p, nk->pending);
	p_text(&p, km_state_name(nk->state));
	p_text_or_null(&p, nk->revoke_reason);
	/* generated_at never changes; the other state times follow as $6.. */
	for (unsigned i = 1; i < KM_STATE_COUNT; i++) {
		p_time(&p, nk->state_at[i]);
		used += (size_t)snprintf(sql + used, sizeof(sql) - used, ", %s = $%d",
		                         state_cols[i], p.n);
	}
	p_time(&p, nk->activate_at);
	p_int(&p, old->id);
	p_text(&p, km_state_name(old->state));
	p_bool(&p, old->pending);
	snprintf(sql + used, sizeof(sql) - used, ", activate_at = $%d WHERE id = $%d AND "
	         "state = $%d AND pending = $%d", p.n - 3, p.n - 2, p.n - 1, p.n);
	int r = run(g, sql, &p, &res, "cannot update the key", err, errlen);
	if (r != KM_EOK)
		return r;
	if (strcmp(PQcmdTuples(res), "1") != 0)
		r = fail(err, errlen, KM_ERROR, "key %s changed underneath this update",
		         old->kid[0] ? old->kid : "(pending)");
	PQclear(res);
	return r == KM_EOK ? notify(g, "cannot update the key", err, errlen) : r;
}

static int pg_event_insert(void *ctx, const km_store_event_t *e, char *err, size_t errlen)
{
	pg_t *g = ctx;
	params_t p = { .n = 0 };
	p_int(&p, e->key_id);
	p_text(&p, e->what);
	p_text(&p, km_state_name(e->from));
	p_text(&p, km_state_name(e->to));
	p_int(&p, e->at);
	p_text(&p, e->reason);
	return run(g, "INSERT INTO key_events(key_id, what, from_state, to_state, at, reason)"
	           " VALUES ($1, $2, $3, $4, $5, $6)", &p, NULL, "cannot record the key event",
	           err, errlen);
}

static int pg_event_query(void *ctx, int64_t key_id, km_store_event_t **ret, size_t *count,
                          char *err, size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	km_store_event_t *list = NULL;
	p_int(&p, key_id);
	int r = run(g, "SELECT id, key_id, what, from_state, to_state, at, reason"
	            " FROM key_events WHERE key_id = $1 ORDER BY id", &p, &res,
	            "cannot read the key history", err, errlen);
	if (r != KM_EOK)
		return r;
	size_t n = (size_t)PQntuples(res);
	if ((r = alloc_list((void **)&list, n, sizeof(*list), err, errlen)) != KM_EOK)
		goto out;
	for (int i = 0; i < (int)n; i++) {
		km_store_event_t *e = &list[i];
		e->id = col_i64(res, i, 0);
		e->key_id = col_i64(res, i, 1);
		col_text(res, i, 2, e->what, sizeof(e->what));
		e->from = col_state(res, i, 3);
		e->to = col_state(res, i, 4);
		e->at = col_i64(res, i, 5);
		col_text(res, i, 6, e->reason, sizeof(e->reason));
	}
	*ret = list;
	*count = n;
out:
	PQclear(res);
	return r;
}

static int pg_counter_next(void *ctx, const char *name, uint64_t *ret, char *err,
                           size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	p_text(&p, name);
	int r = run(g, "UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value",
	            &p, &res, "cannot advance the counter", err, errlen);
	if (r != KM_EOK)
		return r;
	if (PQntuples(res) != 1)
		r = fail(err, errlen, KM_STORE_EIO, "store has no counter '%s'", name);
	else
		*ret = (uint64_t)col_i64(res, 0, 0);
	PQclear(res);
	return r;
}

static int pg_meta_get(void *ctx, const char *key, char *out, size_t len, char *err,
                       size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	p_text(&p, key);
	int r = run(g, "SELECT value FROM meta WHERE key = $1", &p, &res,
	            "cannot read the store's meta table", err, errlen);
	if (r != KM_EOK)
		return r;
	if (PQntuples(res) == 1)
		col_text(res, 0, 0, out, len);
	else
		out[0] = '\0';
	PQclear(res);
	return KM_EOK;
}

static int pg_meta_put(void *ctx, const char *key, const char *value, char *err,
                       size_t errlen)
{
	pg_t *g = ctx;
	params_t p = { .n = 0 };
	p_text(&p, key);
	p_text(&p, value);
	return run(g, "INSERT INTO meta(key, value) VALUES ($1, $2)"
	           " ON CONFLICT (key) DO UPDATE SET value = excluded.value", &p, NULL,
	           "cannot write the store's meta table", err, errlen);
}

/* ---- audit trail ---- */

/* Appends e and moves the head row to it, which audit_head() locked in this transaction: an
 * append whose seq does not follow the head is refused (a fork). */
static int pg_audit_insert(void *ctx, const km_store_audit_event_t *e, char *err,
                           size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	const char *what = "cannot append the audit event";
	p_int(&p, e->seq);
	p_int(&p, e->at);
	p_text(&p, e->actor.user);
	p_int(&p, e->actor.uid);
	p_text(&p, e->actor.host);
	p_text(&p, e->actor.via);
	p_int(&p, e->actor.pid);
	p_text(&p, e->action);
	p_text(&p, e->keyset);
	p_text(&p, e->kid);
	p_text(&p, e->before ? e->before : "");
	p_text(&p, e->after ? e->after : "");
	p_text(&p, e->reason);
	p_text(&p, e->policy_hash);
	p_text(&p, e->prev_hash);
	p_text(&p, e->hash);
	int r = run(g, "INSERT INTO audit_events(seq, at, actor_user, actor_uid, actor_host,"
	            " actor_via, actor_pid, action, keyset, kid, before, after, reason,"
	            " policy_hash, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
	            " $10, $11, $12, $13, $14, $15, $16)", &p, NULL, what, err, errlen);
	if (r != KM_EOK)
		return r;
	params_t h = { .n = 0 };
	p_int(&h, e->seq);
	p_text(&h, e->hash);
	p_text(&h, e->prev_hash);
	if ((r = run(g, "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1"
	             " AND seq = $1 - 1 AND hash = (CASE WHEN $1 = 1 THEN '' ELSE $3 END)", &h,
	             &res, what, err, errlen)) != KM_EOK)
		return r;
	if (strcmp(PQcmdTuples(res), "1") != 0)
		r = fail(err, errlen, KM_STORE_ECONSTRAINT, "%s: event %" PRId64 " does not follow "
		         "the chain's head (another writer appended first)", what, e->seq);
	PQclear(res);
	return r;
}

/* The head, locked until the end of the transaction (FOR UPDATE): the append that follows
 * in this transaction extends exactly this head. */
static int pg_audit_head(void *ctx, int64_t *seq, char hash[KM_STORE_HASH_HEX + 1], char *err,
                         size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	bool in_tx = PQtransactionStatus(g->db) == PQTRANS_INTRANS;
	int r = run(g, in_tx ? "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE" :
	            "SELECT seq, hash FROM audit_head WHERE id = 1", NULL, &res,
	            "cannot read the audit chain head", err, errlen);
	if (r != KM_EOK)
		return r;
	if (PQntuples(res) == 1) {
		*seq = col_i64(res, 0, 0);
		col_text(res, 0, 1, hash, KM_STORE_HASH_HEX + 1);
	} else {
		r = fail(err, errlen, KM_STORE_EIO, "the store %s has lost its audit chain head "
		         "row", g->name);
	}
	PQclear(res);
	return r;
}

static int pg_audit_query(void *ctx, const km_store_audit_filter_t *f,
                          km_store_audit_event_t **ret, size_t *count, char *err,
                          size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	km_store_audit_event_t *list = NULL;
	km_store_audit_filter_t none = { 0 };
	size_t n = 0;
	if (f == NULL)
		f = &none;
	p_int(&p, f->from_seq);
	p_int(&p, f->to_seq);
	p_int(&p, f->since);
	p_int(&p, f->until);
	p_text_or_null(&p, f->keyset);
	p_text_or_null(&p, f->kid);
	p_text_or_null(&p, f->action);
	int r = run(g, "SELECT seq, at, actor_user, actor_uid, actor_host, actor_via,"
	            " actor_pid, action, keyset, kid, before, after, reason, policy_hash,"
	            " prev_hash, hash FROM audit_events"
	            " WHERE ($1::bigint = 0 OR seq >= $1) AND ($2::bigint = 0 OR seq <= $2)"
	            " AND ($3::bigint = 0 OR at >= $3) AND ($4::bigint = 0 OR at <= $4)"
	            " AND ($5::text IS NULL OR keyset = $5) AND ($6::text IS NULL OR kid = $6)"
	            " AND ($7::text IS NULL OR action = $7) ORDER BY seq", &p, &res,
	            "cannot read the audit log", err, errlen);
	if (r != KM_EOK)
		return r;
	size_t rows = (size_t)PQntuples(res);
	if ((r = alloc_list((void **)&list, rows, sizeof(*list), err, errlen)) != KM_EOK)
		goto out;
	for (int i = 0; i < (int)rows; i++) {
		km_store_audit_event_t *e = &list[i];
		e->seq = col_i64(res, i, 0);
		e->at = col_i64(res, i, 1);
		col_text(res, i, 2, e->actor.user, sizeof(e->actor.user));
		e->actor.uid = col_i64(res, i, 3);
		col_text(res, i, 4, e->actor.host, sizeof(e->actor.host));
		col_text(res, i, 5, e->actor.via, sizeof(e->actor.via));
		e->actor.pid = col_i64(res, i, 6);
		col_text(res, i, 7, e->action, sizeof(e->action));
		col_text(res, i, 8, e->keyset, sizeof(e->keyset));
		col_text(res, i, 9, e->kid, sizeof(e->kid));
		e->before = col_dup(res, i, 10);
		e->after = col_dup(res, i, 11);
		n++;
		if (e->before == NULL || e->after == NULL) {
			r = fail(err, errlen, KM_ENOMEM, "out of memory");
			goto out;
		}
		col_text(res, i, 12, e->reason, sizeof(e->reason));
		col_text(res, i, 13, e->policy_hash, sizeof(e->policy_hash));
		col_text(res, i, 14, e->prev_hash, sizeof(e->prev_hash));
		col_text(res, i, 15, e->hash, sizeof(e->hash));
	}
	*ret = list;
	*count = n;
	list = NULL;
	n = 0;
out:
	km_store_audit_events_free(list, n);
	PQclear(res);
	return r;
}

static int pg_jwks_version_insert(void *ctx, const km_store_jwks_version_t *v, char *err,
                                  size_t errlen)
{
	pg_t *g = ctx;
	params_t p = { .n = 0 };
	p_int(&p, (int64_t)v->serial);
	p_int(&p, v->at);
	p_text(&p, v->kids);
	p_int(&p, v->event_seq);
	return run(g, "INSERT INTO jwks_versions(serial, at, kids, event_seq)"
	           " VALUES ($1, $2, $3, $4)", &p, NULL, "cannot record the JWKS version", err,
	           errlen);
}

static int pg_jwks_version_query(void *ctx, bool latest_only, km_store_jwks_version_t **ret,
                                 size_t *count, char *err, size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	km_store_jwks_version_t *list = NULL;
	size_t n = 0;
	int r = run(g, latest_only ?
	            "SELECT serial, at, kids, event_seq FROM jwks_versions"
	            " ORDER BY serial DESC LIMIT 1" :
	            "SELECT serial, at, kids, event_seq FROM jwks_versions ORDER BY serial", NULL,
	            &res, "cannot read the JWKS history", err, errlen);
	if (r != KM_EOK)
		return r;
	size_t rows = (size_t)PQntuples(res);
	if ((r = alloc_list((void **)&list, rows, sizeof(*list), err, errlen)) != KM_EOK)
		goto out;
	for (int i = 0; i < (int)rows; i++) {
		km_store_jwks_version_t *v = &list[i];
		v->serial = (uint64_t)col_i64(res, i, 0);
		v->at = col_i64(res, i, 1);
		v->kids = col_dup(res, i, 2);
		v->event_seq = col_i64(res, i, 3);
		n++;
		if (v->kids == NULL) {
			r = fail(err, errlen, KM_ENOMEM, "out of memory");
			goto out;
		}
	}
	*ret = list;
	*count = n;
	list = NULL;
	n = 0;
out:
	km_store_jwks_versions_free(list, n);
	PQclear(res);
	return r;
}

static int pg_audit_key_insert(void *ctx, const km_store_audit_key_t *k, int64_t *id,
                               char *err, size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	const char *what = "cannot record the audit key";
	int r = run(g, "UPDATE audit_keys SET active = FALSE WHERE active", NULL, NULL, what, err,
	            errlen);
	if (r != KM_EOK)
		return r;
	p_text(&p, k->kid);
	p_text(&p, km_alg_name(k->alg));
	p_text(&p, k->token_label);
	p_text(&p, k->token_serial);
	p_bytea(&p, k->cka_id, k->cka_id_len);
	p_text(&p, k->jwk);
	p_int(&p, k->created_at);
	if ((r = run(g, "INSERT INTO audit_keys(kid, alg, token_label, token_serial, cka_id,"
	             " public_jwk, created_at, active) VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE)"
	             " RETURNING id", &p, &res, what, err, errlen)) != KM_EOK)
		return r;
	*id = col_i64(res, 0, 0);
	PQclear(res);
	return KM_EOK;
}

static int pg_audit_key_query(void *ctx, km_store_audit_key_t **ret, size_t *count, char *err,
                              size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	km_store_audit_key_t *list = NULL;
	int r = run(g, "SELECT id, kid, alg, token_label, token_serial, cka_id, public_jwk,"
	            " created_at, active FROM audit_keys ORDER BY id", NULL, &res,
	            "cannot read the audit keys", err, errlen);
	if (r != KM_EOK)
		return r;
	size_t n = (size_t)PQntuples(res);
	if ((r = alloc_list((void **)&list, n, sizeof(*list), err, errlen)) != KM_EOK)
		goto out;
	for (int i = 0; i < (int)n; i++) {
		km_store_audit_key_t *k = &list[i];
		k->id = col_i64(res, i, 0);
		col_text(res, i, 1, k->kid, sizeof(k->kid));
		(void)km_alg_from_name(PQgetvalue(res, i, 2), &k->alg);
		col_text(res, i, 3, k->token_label, sizeof(k->token_label));
		col_text(res, i, 4, k->token_serial, sizeof(k->token_serial));
		col_bytea(res, i, 5, k->cka_id, &k->cka_id_len);
		col_text(res, i, 6, k->jwk, sizeof(k->jwk));
		k->created_at = col_i64(res, i, 7);
		k->active = col_bool(res, i, 8);
	}
	*ret = list;
	*count = n;
out:
	PQclear(res);
	return r;
}

static int pg_checkpoint_insert(void *ctx, const km_store_checkpoint_t *c, char *err,
                                size_t errlen)
{
	pg_t *g = ctx;
	params_t p = { .n = 0 };
	p_int(&p, c->seq);
	p_text(&p, c->hash);
	p_int(&p, c->at);
	p_text(&p, c->key_kid);
	p_text(&p, c->signature);
	return run(g, "INSERT INTO audit_checkpoints(seq, hash, at, key_kid, signature)"
	           " VALUES ($1, $2, $3, $4, $5)", &p, NULL, "cannot record the checkpoint", err,
	           errlen);
}

static int pg_checkpoint_query(void *ctx, km_store_checkpoint_t **ret, size_t *count,
                               char *err, size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	km_store_checkpoint_t *list = NULL;
	int r = run(g, "SELECT id, seq, hash, at, key_kid, signature FROM audit_checkpoints"
	            " ORDER BY id", NULL, &res, "cannot read the checkpoints", err, errlen);
	if (r != KM_EOK)
		return r;
	size_t n = (size_t)PQntuples(res);
	if ((r = alloc_list((void **)&list, n, sizeof(*list), err, errlen)) != KM_EOK)
		goto out;
	for (int i = 0; i < (int)n; i++) {
		km_store_checkpoint_t *c = &list[i];
		c->id = col_i64(res, i, 0);
		c->seq = col_i64(res, i, 1);
		col_text(res, i, 2, c->hash, sizeof(c->hash));
		c->at = col_i64(res, i, 3);
		col_text(res, i, 4, c->key_kid, sizeof(c->key_kid));
		col_text(res, i, 5, c->signature, sizeof(c->signature));
	}
	*ret = list;
	*count = n;
out:
	PQclear(res);
	return r;
}

/* ---- the change lock row (change_lock.h) ---- */

static int pg_lock_take(void *ctx, const char *holder, const char *stale, int64_t stale_epoch,
                        int ttl_s, int64_t *epoch, char *cur, size_t curlen, int64_t *cur_epoch,
                        char *err, size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	const char *what = "cannot take the change lock";
	int r = ensure_connected(g, err, errlen);
	if (r != KM_EOK)
		return r;
	/* A leader's pass (fenced by its lease) names its lease epoch in the row: a holder
	 * that names an older epoch than the lease a fenced taker holds now is a deposed
	 * leader's pass, stopped or cut off but not dead. Each of its writes is refused by
	 * its fence anyway, so the new leader takes the lock at once rather than waiting for
	 * the row's expiry (KM_STORE_CHANGE_LOCK_TTL_S) before it can reconcile. */
	char me[256];
	if (g->fence_epoch > 0)
		snprintf(me, sizeof(me), "%s lease=%" PRId64, holder, g->fence_epoch);
	else
		snprintf(me, sizeof(me), "%s", holder);
	p_text(&p, me);
	p_int(&p, ttl_s);
	p_text(&p, stale);
	p_int(&p, stale_epoch);
	p_int(&p, g->fence_epoch);
	p_text(&p, g->fence_holder);
	/* One statement, its own transaction: the row lock orders two takers. */
	if ((r = run(g, "UPDATE change_lock SET holder = $1, epoch = epoch + 1,"
	             " expires_at = now() + make_interval(secs => $2)"
	             " WHERE id = 1 AND (holder IS NULL OR expires_at <= now()"
	             "   OR (holder = $3 AND epoch = $4)"
	             "   OR ($5::bigint > 0"
	             "       AND substring(holder from ' lease=([0-9]+)$')::bigint < $5::bigint"
	             "       AND EXISTS (SELECT 1 FROM leader_lease WHERE id = 1 AND holder = $6"
	             "                   AND epoch = $5::bigint AND expires_at > now())))"
	             " RETURNING epoch", &p, &res, what, err, errlen)) != KM_EOK)
		return r;
	if (PQntuples(res) == 1) {
		*epoch = col_i64(res, 0, 0);
		PQclear(res);
		g->lock_epoch = *epoch;
		snprintf(g->lock_holder, sizeof(g->lock_holder), "%s", me);
		g->lock_ttl = ttl_s;
		return KM_EOK;
	}
	PQclear(res);
	*epoch = 0;
	if ((r = run(g, "SELECT holder, epoch FROM change_lock WHERE id = 1", NULL, &res, what,
	             err, errlen)) != KM_EOK)
		return r;
	if (PQntuples(res) == 1) {
		col_text(res, 0, 0, cur, curlen);
		*cur_epoch = col_i64(res, 0, 1);
	}
	PQclear(res);
	return KM_EOK;
}

static int pg_lock_release(void *ctx, int64_t epoch, char *err, size_t errlen)
{
	pg_t *g = ctx;
	params_t p = { .n = 0 };
	g->lock_epoch = 0;
	if (ensure_connected(g, err, errlen) != KM_EOK)
		return KM_STORE_EIO;   /* it expires by itself */
	p_int(&p, epoch);
	return run(g, "UPDATE change_lock SET holder = NULL, expires_at = NULL"
	           " WHERE id = 1 AND epoch = $1", &p, NULL, "cannot release the change lock", err,
	           errlen);
}

/* ---- the leader lease (store.h) ---- */

static void read_lease(const PGresult *res, km_store_lease_t *l)
{
	col_text(res, 0, 0, l->holder, sizeof(l->holder));
	l->epoch = col_i64(res, 0, 1);
	l->expires_in_ms = PQgetisnull(res, 0, 2) ? 0 : col_i64(res, 0, 2);
	l->expires_at = PQgetisnull(res, 0, 3) ? 0 : col_i64(res, 0, 3);
}

#define LEASE_COLS "holder, epoch," \
	" (extract(epoch FROM expires_at - now()) * 1000)::bigint," \
	" extract(epoch FROM expires_at)::bigint"

/* An UPDATE ... RETURNING of the lease row: ret->held when it changed the row. */
static int lease_row(pg_t *g, const char *sql, const params_t *p, const char *what,
                     km_store_lease_t *ret, char *err, size_t errlen)
{
	PGresult *res = NULL;
	int r = run(g, sql, p, &res, what, err, errlen);
	if (r != KM_EOK)
		return r;
	ret->held = PQntuples(res) == 1;
	if (ret->held)
		read_lease(res, ret);
	PQclear(res);
	return KM_EOK;
}

static int pg_lease(void *ctx, km_store_lease_op_t op, const char *holder, int64_t epoch,
                    int ttl_ms, km_store_lease_t *ret, char *err, size_t errlen)
{
	pg_t *g = ctx;
	PGresult *res = NULL;
	params_t p = { .n = 0 };
	const char *what = "cannot read the leader lease";
	int r = ensure_connected(g, err, errlen);
	if (r != KM_EOK)
		return r;
	switch (op) {
	case KM_STORE_LEASE_ACQUIRE:
		/* One statement, its own transaction: two nodes racing are ordered by the row. */
		p_text(&p, holder);
		p_int(&p, ttl_ms);
		r = lease_row(g, "UPDATE leader_lease SET holder = $1, epoch = epoch + 1,"
		              " expires_at = now() + make_interval(secs => $2::double precision"
		              " / 1000) WHERE id = 1 AND (holder IS NULL OR expires_at IS NULL"
		              " OR expires_at <= now()) RETURNING " LEASE_COLS, &p,
		              "cannot take the leader lease", ret, err, errlen);
		if (r != KM_EOK || ret->held)
			return r;
		break;      /* taken: say by whom */
	case KM_STORE_LEASE_RENEW:
		p_text(&p, holder);
		p_int(&p, epoch);
		p_int(&p, ttl_ms);
		r = lease_row(g, "UPDATE leader_lease SET expires_at = now() + make_interval(secs =>"
		              " $3::double precision / 1000) WHERE id = 1 AND holder = $1"
		              " AND epoch = $2 AND expires_at > now() RETURNING " LEASE_COLS, &p,
		              "cannot renew the leader lease", ret, err, errlen);
		if (r != KM_EOK || ret->held)
			return r;
		return fail(err, errlen, KM_STORE_EFENCED, "the leader lease of the store %s is no "
		            "longer held at epoch %" PRId64 ": it expired or another node took it",
		            g->name, epoch);
	case KM_STORE_LEASE_RELEASE:
		p_text(&p, holder);
		p_int(&p, epoch);
		return run(g, "UPDATE leader_lease SET expires_at = now() WHERE id = 1"
		           " AND holder = $1 AND epoch = $2 AND expires_at > now()", &p, NULL,
		           "cannot release the leader lease", err, errlen);
	case KM_STORE_LEASE_READ:
		break;
	}
	if ((r = run(g, "SELECT " LEASE_COLS " FROM leader_lease WHERE id = 1", NULL, &res, what,
	             err, errlen)) != KM_EOK)
		return r;
	if (PQntuples(res) == 1) {
		read_lease(res, ret);
		/* read: held by anyone; a failed acquire: not by the asker */
		ret->held = op == KM_STORE_LEASE_READ && ret->holder[0] != '\0' &&
		            ret->expires_in_ms > 0;
	}
	PQclear(res);
	return KM_EOK;
}

static void pg_fence(void *ctx, const char *holder, int64_t epoch)
{
	pg_t *g = ctx;
	snprintf(g->fence_holder, sizeof(g->fence_holder), "%s", holder ? holder : "");
	g->fence_epoch = holder != NULL ? epoch : 0;
}

/* ---- the served documents (store.h) ---- */

static int pg_docs_put(void *ctx, const km_store_doc_t *d, char *err, size_t errlen)
{
	pg_t *g = ctx;
	const char *what = "cannot record the served document";
	const char *v[4];
	int lens[4] = { 0 }, fmts[4] = { 0, 0, 0, 1 };
	char serial[24], age[16];
	snprintf(serial, sizeof(serial), "%" PRIu64, d->serial);
	snprintf(age, sizeof(age), "%u", d->max_age);
	v[0] = d->path;
	v[1] = serial;
	v[2] = age;
	v[3] = d->body;
	lens[3] = (int)d->len;
	/* The body as binary: its bytes exactly. */
	PGresult *res = PQexecParams(g->db, "INSERT INTO jwks_documents(path, serial, max_age,"
	                             " body) VALUES ($1, $2, $3, $4) ON CONFLICT (path) DO UPDATE"
	                             " SET serial = EXCLUDED.serial, max_age = EXCLUDED.max_age,"
	                             " body = EXCLUDED.body"
	                             " WHERE jwks_documents.serial <= EXCLUDED.serial", 4, NULL, v,
	                             lens, fmts, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		int r = pg_fail(g, res, what, err, errlen);
		PQclear(res);
		return r;
	}
	PQclear(res);
	return notify(g, what, err, errlen);
}

static int pg_docs_get(void *ctx, uint64_t newer_than, km_store_doc_t **ret, size_t *n,
                       char *err, size_t errlen)
{
	pg_t *g = ctx;
	char since[24];
	const char *v[1] = { since };
	km_store_doc_t *list = NULL;
	snprintf(since, sizeof(since), "%" PRIu64, newer_than);
	PGresult *res = NULL;
	int r = ensure_connected(g, err, errlen);
	if (r != KM_EOK)
		return r;
	/* Binary results: the body's bytes exactly. */
	res = PQexecParams(g->db, "SELECT path, serial, max_age, body FROM jwks_documents"
	                   " WHERE serial > $1::bigint ORDER BY path", 1, NULL, v, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = pg_fail(g, res, "cannot read the served documents", err, errlen);
		PQclear(res);
		return r;
	}
	size_t rows = (size_t)PQntuples(res);
	if ((r = alloc_list((void **)&list, rows, sizeof(*list), err, errlen)) != KM_EOK)
		goto out;
	for (size_t i = 0; i < rows; i++) {
		int row = (int)i;
		km_store_doc_t *d = &list[i];
		const unsigned char *b;
		snprintf(d->path, sizeof(d->path), "%.*s", PQgetlength(res, row, 0),
		         PQgetvalue(res, row, 0));
		b = (const unsigned char *)PQgetvalue(res, row, 1);
		for (int k = 0; k < 8; k++)
			d->serial = (d->serial << 8) | b[k];
		b = (const unsigned char *)PQgetvalue(res, row, 2);
		d->max_age = (unsigned)b[0] << 24 | (unsigned)b[1] << 16 | (unsigned)b[2] << 8 | b[3];
		d->len = (size_t)PQgetlength(res, row, 3);
		if ((d->body = malloc(d->len + 1)) == NULL) {
			km_store_docs_free(list, i);
			list = NULL;
			r = fail(err, errlen, KM_ENOMEM, "out of memory");
			goto out;
		}
		memcpy(d->body, PQgetvalue(res, row, 3), d->len);
		d->body[d->len] = '\0';
	}
	*ret = list;
	*n = rows;
out:
	PQclear(res);
	return r;
}

/* ---- the verifiers' pickup records (store.h) ---- */

static int pg_pickup_put(void *ctx, const km_store_pickup_t *pk, char *err, size_t errlen)
{
	pg_t *g = ctx;
	params_t p = { .n = 0 };
	p_text(&p, pk->path);
	p_text(&p, pk->verifier);
	p_int(&p, pk->serial);
	return run(g, "INSERT INTO verifier_pickups(path, verifier, serial) VALUES ($1, $2, $3)"
	           " ON CONFLICT (path, verifier) DO UPDATE"
	           " SET serial = GREATEST(verifier_pickups.serial, EXCLUDED.serial)", &p, NULL,
	           "cannot record the verifier's pickup", err, errlen);
}

static int pg_pickup_get(void *ctx, const char *path, km_store_pickup_t **ret, size_t *n,
                         char *err, size_t errlen)
{
	pg_t *g = ctx;
	params_t p = { .n = 0 };
	PGresult *res = NULL;
	km_store_pickup_t *list = NULL;
	p_text(&p, path);
	int r = run(g, "SELECT verifier, serial FROM verifier_pickups WHERE path = $1"
	            " ORDER BY verifier", &p, &res, "cannot read the verifiers' pickups", err,
	            errlen);
	if (r != KM_EOK)
		return r;
	size_t rows = (size_t)PQntuples(res);
	if ((r = alloc_list((void **)&list, rows, sizeof(*list), err, errlen)) == KM_EOK) {
		for (int i = 0; i < (int)rows; i++) {
			snprintf(list[i].path, sizeof(list[i].path), "%s", path);
			col_text(res, i, 0, list[i].verifier, sizeof(list[i].verifier));
			list[i].serial = col_i64(res, i, 1);
		}
		*ret = list;
		*n = rows;
	}
	PQclear(res);
	return r;
}

static int pg_docs_listen(void *ctx, int *fd, char *err, size_t errlen)
{
	pg_t *g = ctx;
	char ch[96], sql[160];
	channel(g, ch, sizeof(ch));
	snprintf(sql, sizeof(sql), "LISTEN \"%s\"", ch);
	int r = run(g, sql, NULL, NULL, "cannot listen for new documents", err, errlen);
	if (r == KM_EOK)
		*fd = PQsocket(g->db);
	return r;
}

static bool pg_docs_notified(void *ctx)
{
	pg_t *g = ctx;
	bool any = false;
	PGnotify *nf;
	if (PQconsumeInput(g->db) != 1)
		return true;   /* a broken connection: whatever was sent is lost, look anyway */
	while ((nf = PQnotifies(g->db)) != NULL) {
		any = true;
		PQfreemem(nf);
	}
	return any;
}

bool km_store_pg_exists(const char *uri)
{
	km_pguri_t u;
	char ignored[256];
	bool exists = true;
	if (km_pguri_parse(uri, &u, ignored, sizeof(ignored)) != KM_EOK)
		return true;
	PGconn *db = connect_bounded(uri);
	if (db != NULL && PQstatus(db) == CONNECTION_OK) {
		const char *v[1] = { u.schema };
		PGresult *res = PQexecParams(db, "SELECT to_regclass(quote_ident($1) || '.meta')"
		                             " IS NOT NULL", 1, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			exists = PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
	}
	PQfinish(db);
	return exists;
}

const km_store_backend_t km_store_backend_pg = {
	.name = "postgresql",
	.schema_version = km_store_pg_schema_version,
	.open = pg_open,
	.env_read = pg_env_read,
	.close = pg_close,
	.tx = pg_tx,
	.keyset_insert = pg_keyset_insert,
	.keyset_query = pg_keyset_query,
	.keyset_update = pg_keyset_update,
	.change_insert = pg_change_insert,
	.change_query = pg_change_query,
	.key_insert = pg_key_insert,
	.key_query = pg_key_query,
	.key_update = pg_key_update,
	.event_insert = pg_event_insert,
	.event_query = pg_event_query,
	.counter_next = pg_counter_next,
	.meta_get = pg_meta_get,
	.meta_put = pg_meta_put,
	.found_version = pg_found_version,
	.audit_insert = pg_audit_insert,
	.audit_head = pg_audit_head,
	.audit_query = pg_audit_query,
	.jwks_version_insert = pg_jwks_version_insert,
	.jwks_version_query = pg_jwks_version_query,
	.audit_key_insert = pg_audit_key_insert,
	.audit_key_query = pg_audit_key_query,
	.checkpoint_insert = pg_checkpoint_insert,
	.checkpoint_query = pg_checkpoint_query,
	.lock_take = pg_lock_take,
	.lock_release = pg_lock_release,
	.lease = pg_lease,
	.fence = pg_fence,
	.docs_put = pg_docs_put,
	.docs_get = pg_docs_get,
	.docs_listen = pg_docs_listen,
	.docs_notified = pg_docs_notified,
	.pickup_put = pg_pickup_put,
	.pickup_get = pg_pickup_get,
};
