/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "tests/store/fixture.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

bool store_fx_pg(void)
{
	const char *u = getenv("KEYMGR_TEST_PG_URI");
	return u != NULL && *u != '\0';
}

void store_fx_other(const store_fx_t *fx, const char *name, char *out, size_t len)
{
	static unsigned n;
	if (!fx->pg) {
		snprintf(out, len, "%s/%s.db", fx->dir, name);
		return;
	}
	const char *u = getenv("KEYMGR_TEST_PG_URI");
	char schema[64];
	snprintf(schema, sizeof(schema), "t%ld_%u_", (long)getpid(), n++);
	for (const char *c = name; *c && strlen(schema) < sizeof(schema) - 1; c++) {
		size_t l = strlen(schema);
		schema[l] = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ? *c : '_';
		schema[l + 1] = '\0';
	}
	snprintf(out, len, "%s%soptions=-csearch_path%%3D%s", u, strchr(u, '?') ? "&" : "?",
	         schema);
}

/* A libpq connection to the store's schema at uri. */
static PGconn *pg_raw(const char *uri)
{
	PGconn *db = PQconnectdb(uri);
	if (PQstatus(db) != CONNECTION_OK)
		fprintf(stderr, "store fixture: %s", PQerrorMessage(db));
	assert_int_equal(PQstatus(db), CONNECTION_OK);
	return db;
}

void store_fx_raw_exec(const char *path, const char *sql)
{
	if (strncmp(path, "postgresql://", 13) == 0) {
		PGconn *db = pg_raw(path);
		PGresult *res = PQexec(db, sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
			fprintf(stderr, "store fixture: %s: %s", sql, PQerrorMessage(db));
		assert_true(PQresultStatus(res) == PGRES_COMMAND_OK ||
		            PQresultStatus(res) == PGRES_TUPLES_OK);
		PQclear(res);
		PQfinish(db);
		return;
	}
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

bool store_fx_raw_refused(const char *path, const char *sql)
{
	if (strncmp(path, "postgresql://", 13) == 0) {
		PGconn *db = pg_raw(path);
		PGresult *res = PQexec(db, sql);
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		bool refused = PQresultStatus(res) == PGRES_FATAL_ERROR && state != NULL &&
		               strncmp(state, "23", 2) == 0;
		PQclear(res);
		PQfinish(db);
		return refused;
	}
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return (rc & 0xff) == SQLITE_CONSTRAINT;
}

char *store_fx_raw_text(const char *path, const char *sql)
{
	char *out = NULL;
	if (strncmp(path, "postgresql://", 13) == 0) {
		PGconn *db = pg_raw(path);
		PGresult *res = PQexec(db, sql);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 &&
		    !PQgetisnull(res, 0, 0))
			out = strdup(PQgetvalue(res, 0, 0));
		else
			fprintf(stderr, "store fixture: %s: %s", sql, PQerrorMessage(db));
		PQclear(res);
		PQfinish(db);
		assert_non_null(out);
		return out;
	}
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_non_null(out);
	return out;
}

int store_fx_setup(void **state)
{
	char err[512] = "";
	store_fx_t *fx = calloc(1, sizeof(*fx));
	if (fx == NULL)
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(fx->dir, sizeof(fx->dir), "%s/keymgr-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	fx->pg = store_fx_pg();
	store_fx_other(fx, "dev", fx->path, sizeof(fx->path));
	int r = km_store_open(fx->path, "dev", &fx->s, err, sizeof(err));
	if (r != KM_EOK) {
		fprintf(stderr, "store_fx_setup: %s\n", err);
		nftw(fx->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

int store_fx_teardown(void **state)
{
	store_fx_t *fx = *state;
	if (fx == NULL)
		return 0;
	km_store_free(fx->s);
	nftw(fx->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

void store_fx_keyset(km_store_t *s, const char *name)
{
	char err[512] = "";
	km_store_keyset_t ks = { .alg = KM_ALG_ES256, .created_at = 1000 };
	snprintf(ks.name, sizeof(ks.name), "%s", name);
	snprintf(ks.owner, sizeof(ks.owner), "team-a");
	snprintf(ks.purpose, sizeof(ks.purpose), "access-token");
	snprintf(ks.created_by, sizeof(ks.created_by), "alice");
	int r = km_store_keyset_create(s, &ks, NULL, err, sizeof(err));
	if (r != KM_EOK)
		fprintf(stderr, "store_fx_keyset(%s): %s\n", name, err);
	assert_int_equal(r, KM_EOK);
}

void store_fx_cka_id(const char *kid, uint8_t id[20])
{
	size_t n = strlen(kid);
	memset(id, 0, 20);
	memcpy(id, "KMGR", 4);
	memcpy(id + 4, kid, n < 16 ? n : 16);
}

void store_fx_key(km_store_t *s, const char *keyset, const char *kid, int64_t at)
{
	char err[512] = "", jwk[256];
	km_store_key_t k = { 0 };
	snprintf(k.keyset, sizeof(k.keyset), "%s", keyset);
	snprintf(k.token_label, sizeof(k.token_label), "dev-token");
	store_fx_cka_id(kid, k.cka_id);
	k.cka_id_len = 20;
	k.state_at[KM_STATE_GENERATED] = at;
	int r = km_store_key_intent(s, &k, NULL, err, sizeof(err));
	if (r != KM_EOK)
		fprintf(stderr, "store_fx_key(%s) intent: %s\n", kid, err);
	assert_int_equal(r, KM_EOK);
	snprintf(jwk, sizeof(jwk), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\"}", kid);
	r = km_store_key_confirm(s, k.cka_id, k.cka_id_len, kid, jwk, at, err, sizeof(err));
	if (r != KM_EOK)
		fprintf(stderr, "store_fx_key(%s) confirm: %s\n", kid, err);
	assert_int_equal(r, KM_EOK);
}

unsigned char *store_fx_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0;
	if (f == NULL)
		return NULL;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			unsigned char *p = realloc(buf, cap);
			if (p == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = p;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	*len = n;
	return buf;
}
