/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store file and key sets: creation mode, WAL, schema version and its refusal, the
 * environment wall, key set creation and validation, owner/purpose history, JWKS serial.
 * Real SQLite files in a temporary directory, or a PostgreSQL schema (store_pg.*); raw
 * sqlite3 or libpq is used only to inspect or to tamper with a store the way an outside
 * actor would. The file-only checks (mode, WAL, symlinks) are skipped on PostgreSQL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store.h"
#include "tests/store/fixture.h"

#define raw_exec store_fx_raw_exec
#define raw_text store_fx_raw_text

/* What an outside look at the store sees: the file's bytes, or on PostgreSQL every meta row,
 * the chain head and the key set count. */
#define PG_FINGERPRINT "SELECT (SELECT string_agg(key || '=' || value, ',' ORDER BY key)" \
	" FROM meta) || '|' || (SELECT seq || hash FROM audit_head) || '|' ||" \
	" (SELECT count(*) FROM keysets)"

static unsigned char *snapshot(const char *path, size_t *len)
{
	if (!store_fx_pg())
		return store_fx_slurp(path, len);
	char *t = store_fx_raw_text(path, PG_FINGERPRINT);
	*len = strlen(t);
	return (unsigned char *)t;
}

static void assert_file_unchanged(const char *path, const unsigned char *before, size_t len)
{
	if (store_fx_pg()) {
		char *now = store_fx_raw_text(path, PG_FINGERPRINT);
		assert_int_equal(strlen(now), len);
		assert_memory_equal(before, now, len);
		free(now);
		return;
	}
	size_t len2 = 0;
	unsigned char *after = store_fx_slurp(path, &len2);
	assert_non_null(after);
	assert_int_equal(len, len2);
	assert_memory_equal(before, after, len);
	free(after);
}

/* ---- the file ---- */

static void test_open_creates_mode_0600_whatever_the_umask(void **state)
{
	store_fx_t *fx = *state;
	static const mode_t umasks[] = { 0, 022, 0777 };
	if (fx->pg)
		skip();         /* a PostgreSQL store has no file */
	for (size_t i = 0; i < sizeof(umasks) / sizeof(umasks[0]); i++) {
		char path[400], err[512] = "";
		struct stat st;
		km_store_t *s = NULL;
		snprintf(path, sizeof(path), "%s/umask%zu.db", fx->dir, i);
		mode_t old = umask(umasks[i]);
		int r = km_store_open(path, "dev", &s, err, sizeof(err));
		umask(old);
		assert_int_equal(r, KM_EOK);
		store_fx_keyset(s, "api");       /* a write, so the -wal file exists */
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0600);
		char wal[420];
		snprintf(wal, sizeof(wal), "%s-wal", path);
		assert_int_equal(stat(wal, &st), 0);
		assert_int_equal(st.st_mode & 077, 0);
		km_store_free(s);
	}
}

static void test_open_sets_wal_version_and_env(void **state)
{
	store_fx_t *fx = *state;
	char *mode = fx->pg ? strdup("wal") : raw_text(fx->path, "PRAGMA journal_mode");
	char *ver = raw_text(fx->path, fx->pg ? "SELECT value FROM meta WHERE key = 'version'" :
	                     "PRAGMA user_version");
	char *env = raw_text(fx->path, "SELECT value FROM meta WHERE key = 'env'");
	char want[16];
	snprintf(want, sizeof(want), "%d", km_store_schema_version());
	assert_string_equal(mode, "wal");
	assert_string_equal(ver, want);
	assert_true(km_store_schema_version() >= 1);
	assert_string_equal(env, "dev");
	assert_string_equal(km_store_env(fx->s), "dev");
	free(mode);
	free(ver);
	free(env);
}

static void test_open_reopen_keeps_data(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_keyset_t ks;
	store_fx_keyset(fx->s, "api");
	store_fx_key(fx->s, "api", "kid-one", 1000);
	km_store_free(fx->s);
	fx->s = NULL;
	assert_int_equal(km_store_open(fx->path, "dev", &fx->s, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_keyset_get(fx->s, "api", &ks, err, sizeof(err)), KM_EOK);
	assert_string_equal(ks.owner, "team-a");
	bool exists = false;
	assert_int_equal(km_store_kid_exists(fx->s, "kid-one", &exists, err, sizeof(err)), KM_EOK);
	assert_true(exists);
}

static void test_open_future_schema_refused_file_unchanged(void **state)
{
	store_fx_t *fx = *state;
	char sql[64], err[512] = "", want_have[32], want_known[32];
	size_t len = 0;
	km_store_t *s = NULL;
	int future = km_store_schema_version() + 1;
	store_fx_keyset(fx->s, "api");
	km_store_free(fx->s);
	fx->s = NULL;
	if (fx->pg)
		snprintf(sql, sizeof(sql), "UPDATE meta SET value = '%d' WHERE key = 'version'",
		         future);
	else
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", future);
	raw_exec(fx->path, sql);
	unsigned char *before = snapshot(fx->path, &len);
	assert_non_null(before);

	assert_int_equal(km_store_open(fx->path, "dev", &s, err, sizeof(err)), KM_STORE_ESCHEMA);
	assert_null(s);
	snprintf(want_have, sizeof(want_have), "version %d", future);
	snprintf(want_known, sizeof(want_known), "up to %d", km_store_schema_version());
	assert_non_null(strstr(err, want_have));
	assert_non_null(strstr(err, want_known));
	/* the store is named (on PostgreSQL by its URI: this one has no password) */
	assert_non_null(strstr(err, fx->path));
	assert_file_unchanged(fx->path, before, len);
	free(before);
}

static void test_open_wrong_env_refused(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	size_t len = 0;
	km_store_t *s = NULL;
	store_fx_keyset(fx->s, "api");
	km_store_free(fx->s);
	fx->s = NULL;
	unsigned char *before = snapshot(fx->path, &len);
	assert_non_null(before);

	assert_int_equal(km_store_open(fx->path, "production", &s, err, sizeof(err)),
	                 KM_EWRONGENV);
	assert_null(s);
	assert_non_null(strstr(err, "'dev'"));
	assert_non_null(strstr(err, "'production'"));
	assert_file_unchanged(fx->path, before, len);
	free(before);
	/* the right environment still opens */
	assert_int_equal(km_store_open(fx->path, "dev", &fx->s, err, sizeof(err)), KM_EOK);
}

static void test_open_bad_env_name_creates_nothing(void **state)
{
	store_fx_t *fx = *state;
	char path[400], err[512] = "";
	km_store_t *s = NULL;
	store_fx_other(fx, "other", path, sizeof(path));
	static const char *const bad[] = { "", "Prod", "dev/../prod", "-dev", "dev-", "a--b" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(km_store_open(path, bad[i], &s, err, sizeof(err)), KM_ENAME);
		assert_null(s);
		assert_non_null(strstr(err, "environment"));
		if (!fx->pg)
			assert_int_equal(access(path, F_OK), -1);
	}
	assert_int_equal(km_store_open(path, NULL, &s, err, sizeof(err)), KM_ENAME);
}

static void test_open_not_a_store_refused(void **state)
{
	store_fx_t *fx = *state;
	char text[400], other[400], err[512] = "";
	size_t len = 0;
	km_store_t *s = NULL;

	if (fx->pg) {
		/* a schema holding someone else's tables is refused, and left alone */
		store_fx_other(fx, "app", other, sizeof(other));
		char *schema = strstr(other, "%3D") + 3;
		char sql[200];
		snprintf(sql, sizeof(sql), "CREATE SCHEMA %s; CREATE TABLE %s.users(name TEXT)",
		         schema, schema);
		store_fx_raw_exec(getenv("KEYMGR_TEST_PG_URI"), sql);
		assert_int_equal(km_store_open(other, "dev", &s, err, sizeof(err)), KM_STORE_EOPEN);
		assert_null(s);
		assert_non_null(strstr(err, "not a keymgr store"));
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_tables WHERE schemaname = '%s'",
		         schema);
		char *n = store_fx_raw_text(getenv("KEYMGR_TEST_PG_URI"), sql);
		assert_string_equal(n, "1");
		free(n);
		return;
	}
	snprintf(text, sizeof(text), "%s/notes.txt", fx->dir);
	FILE *f = fopen(text, "w");
	assert_non_null(f);
	for (int i = 0; i < 200; i++)
		fputs("this is not a database, just some text\n", f);
	fclose(f);
	chmod(text, 0600);
	unsigned char *before = store_fx_slurp(text, &len);
	assert_int_equal(km_store_open(text, "dev", &s, err, sizeof(err)), KM_STORE_EOPEN);
	assert_null(s);
	assert_non_null(strstr(err, "not an SQLite database"));
	assert_file_unchanged(text, before, len);
	free(before);

	snprintf(other, sizeof(other), "%s/app.db", fx->dir);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE users(name TEXT)", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	chmod(other, 0600);
	before = store_fx_slurp(other, &len);
	assert_int_equal(km_store_open(other, "dev", &s, err, sizeof(err)), KM_STORE_EOPEN);
	assert_non_null(strstr(err, "not a keymgr store"));
	assert_file_unchanged(other, before, len);
	free(before);
}

static void test_open_writable_by_others_refused(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_t *s = NULL;
	if (fx->pg)
		skip();         /* a PostgreSQL store has no file */
	km_store_free(fx->s);
	fx->s = NULL;
	assert_int_equal(chmod(fx->path, 0664), 0);
	assert_int_equal(km_store_open(fx->path, "dev", &s, err, sizeof(err)), KM_EACCES);
	assert_null(s);
	assert_non_null(strstr(err, "chmod 600"));
	assert_int_equal(chmod(fx->path, 0600), 0);
	assert_int_equal(km_store_open(fx->path, "dev", &fx->s, err, sizeof(err)), KM_EOK);
}

static void test_open_symlink_refused(void **state)
{
	store_fx_t *fx = *state;
	char link[400], err[512] = "";
	km_store_t *s = NULL;
	if (fx->pg)
		skip();         /* a PostgreSQL store has no file */
	snprintf(link, sizeof(link), "%s/link.db", fx->dir);
	assert_int_equal(symlink(fx->path, link), 0);
	assert_int_equal(km_store_open(link, "dev", &s, err, sizeof(err)), KM_STORE_EOPEN);
	assert_null(s);
	assert_non_null(strstr(err, "symbolic link"));
}

/* ---- key sets ---- */

static km_store_keyset_t sample_keyset(void)
{
	km_store_keyset_t ks = { .alg = KM_ALG_RS256, .rsa_bits = 3072, .created_at = 1700000000 };
	snprintf(ks.env, sizeof(ks.env), "dev");
	snprintf(ks.name, sizeof(ks.name), "login");
	snprintf(ks.owner, sizeof(ks.owner), "identity-team");
	snprintf(ks.purpose, sizeof(ks.purpose), "id-token");
	snprintf(ks.description, sizeof(ks.description), "ID tokens of the login service");
	snprintf(ks.labels[0], sizeof(ks.labels[0]), "tier=gold");
	snprintf(ks.labels[1], sizeof(ks.labels[1]), "cost-center=42");
	ks.n_labels = 2;
	snprintf(ks.created_by, sizeof(ks.created_by), "alice@example.org");
	return ks;
}

static void test_keyset_create_and_get(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	int64_t id = 0;
	km_store_keyset_t in = sample_keyset(), out;
	assert_int_equal(km_store_keyset_create(fx->s, &in, &id, err, sizeof(err)), KM_EOK);
	assert_true(id > 0);
	assert_int_equal(km_store_keyset_get(fx->s, "login", &out, err, sizeof(err)), KM_EOK);
	assert_int_equal(out.id, id);
	assert_string_equal(out.env, "dev");
	assert_string_equal(out.name, "login");
	assert_int_equal(out.alg, KM_ALG_RS256);
	assert_int_equal(out.rsa_bits, 3072);
	assert_string_equal(out.owner, "identity-team");
	assert_string_equal(out.purpose, "id-token");
	assert_string_equal(out.description, "ID tokens of the login service");
	assert_int_equal(out.n_labels, 2);
	assert_string_equal(out.labels[0], "cost-center=42");   /* sorted by key */
	assert_string_equal(out.labels[1], "tier=gold");
	assert_int_equal(out.created_at, 1700000000);
	assert_string_equal(out.created_by, "alice@example.org");

	assert_int_equal(km_store_keyset_get(fx->s, "nope", &out, err, sizeof(err)), KM_ENOENT);
	assert_non_null(strstr(err, "dev/nope"));
}

static void test_keyset_duplicate_refused(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_keyset_t in = sample_keyset(), out, *list = NULL;
	size_t n = 0;
	assert_int_equal(km_store_keyset_create(fx->s, &in, NULL, err, sizeof(err)), KM_EOK);
	snprintf(in.owner, sizeof(in.owner), "intruder");
	assert_int_equal(km_store_keyset_create(fx->s, &in, NULL, err, sizeof(err)), KM_EEXIST);
	assert_non_null(strstr(err, "dev/login already exists"));
	assert_int_equal(km_store_keyset_get(fx->s, "login", &out, err, sizeof(err)), KM_EOK);
	assert_string_equal(out.owner, "identity-team");
	assert_int_equal(km_store_keyset_list(fx->s, NULL, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	km_store_keysets_free(list);
}

/* Breaks one field of a valid key set; returns the code and a word of the message. */
static bool break_keyset(int i, km_store_keyset_t *ks, int *code, const char **msg)
{
	switch (i) {
	case 0: snprintf(ks->env, sizeof(ks->env), "production");
		*code = KM_EWRONGENV; *msg = "environment"; return true;
	case 1: snprintf(ks->name, sizeof(ks->name), "Login");
		*code = KM_ENAME; *msg = "key set name"; return true;
	case 2: snprintf(ks->name, sizeof(ks->name), "a/b");
		*code = KM_ENAME; *msg = "key set name"; return true;
	case 3: ks->alg = KM_ALG_NONE;
		*code = KM_EALG; *msg = "algorithm"; return true;
	case 4: ks->rsa_bits = 1024;
		*code = KM_EKEYSIZE; *msg = "1024"; return true;
	case 5: ks->alg = KM_ALG_ES256;
		*code = KM_EKEYSIZE; *msg = "not RSA"; return true;
	case 6: ks->owner[0] = '\0';
		*code = KM_EOWNER; *msg = "owner"; return true;
	case 7: snprintf(ks->owner, sizeof(ks->owner), "bad owner");
		*code = KM_EOWNER; *msg = "owner"; return true;
	case 8: snprintf(ks->purpose, sizeof(ks->purpose), "Bad_Purpose");
		*code = KM_EPURPOSE; *msg = "purpose"; return true;
	case 9: snprintf(ks->labels[0], sizeof(ks->labels[0]), "novalue");
		*code = KM_EINVAL; *msg = "label"; return true;
	case 10: snprintf(ks->labels[1], sizeof(ks->labels[1]), "tier=silver");
		*code = KM_EINVAL; *msg = "twice"; return true;
	case 11: ks->n_labels = KM_STORE_LABELS_MAX + 1;
		*code = KM_EINVAL; *msg = "labels"; return true;
	case 12: snprintf(ks->description, sizeof(ks->description), "a\nb");
		*code = KM_EINVAL; *msg = "description"; return true;
	case 13: ks->created_at = -5;
		*code = KM_EINVAL; *msg = "created_at"; return true;
	case 14: ks->created_by[0] = '\0';
		*code = KM_EINVAL; *msg = "created_by"; return true;
	default:
		return false;
	}
}

static void test_keyset_invalid_refused_nothing_created(void **state)
{
	store_fx_t *fx = *state;
	char err[512];
	km_store_keyset_t *list = NULL;
	size_t n = 99;
	int i, code = 0;
	const char *msg = NULL;
	km_store_keyset_t ks = sample_keyset();
	for (i = 0; break_keyset(i, &ks, &code, &msg); i++, ks = sample_keyset()) {
		err[0] = '\0';
		int r = km_store_keyset_create(fx->s, &ks, NULL, err, sizeof(err));
		if (r != code || strstr(err, msg) == NULL)
			fail_msg("case %d: got %d '%s', want %d '%s'", i, r, err, code, msg);
	}
	assert_int_equal(i, 15);
	assert_int_equal(km_store_keyset_list(fx->s, NULL, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 0);
	km_store_keysets_free(list);
}

static void test_keyset_list_filters(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_keyset_t ks = sample_keyset(), *list = NULL;
	size_t n = 0;
	assert_int_equal(km_store_keyset_create(fx->s, &ks, NULL, err, sizeof(err)), KM_EOK);
	store_fx_keyset(fx->s, "api");
	store_fx_keyset(fx->s, "batch");

	assert_int_equal(km_store_keyset_list(fx->s, NULL, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].name, "api");
	assert_string_equal(list[2].name, "login");
	km_store_keysets_free(list);

	km_store_keyset_filter_t f = { .owner = "team-a" };
	assert_int_equal(km_store_keyset_list(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 2);
	km_store_keysets_free(list);

	f = (km_store_keyset_filter_t){ .purpose = "id-token" };
	assert_int_equal(km_store_keyset_list(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, "login");
	km_store_keysets_free(list);

	f = (km_store_keyset_filter_t){ .label = "tier=gold" };
	assert_int_equal(km_store_keyset_list(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	km_store_keysets_free(list);

	f = (km_store_keyset_filter_t){ .label = "tier=silver" };
	list = (km_store_keyset_t *)&f;   /* must be overwritten */
	assert_int_equal(km_store_keyset_list(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 0);
	assert_null(list);
}

static void test_keyset_owner_change_recorded(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_keyset_t ks;
	km_store_change_t *ch = NULL;
	size_t n = 0;
	store_fx_keyset(fx->s, "api");
	assert_int_equal(km_store_keyset_set_owner(fx->s, "api", "team-b", "bob", 2000,
	                 "reorg", err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_keyset_set_owner(fx->s, "api", "team-c", "carol", 3000, NULL,
	                 err, sizeof(err)), KM_EOK);
	/* same value: nothing recorded */
	assert_int_equal(km_store_keyset_set_owner(fx->s, "api", "team-c", "carol", 3500, NULL,
	                 err, sizeof(err)), KM_EOK);
	/* refused changes leave owner and history alone */
	assert_int_equal(km_store_keyset_set_owner(fx->s, "api", "bad owner", "eve", 4000, NULL,
	                 err, sizeof(err)), KM_EOWNER);
	assert_int_equal(km_store_keyset_set_owner(fx->s, "api", "team-d", "", 4000, NULL,
	                 err, sizeof(err)), KM_EINVAL);
	assert_int_equal(km_store_keyset_set_owner(fx->s, "nope", "team-d", "eve", 4000, NULL,
	                 err, sizeof(err)), KM_ENOENT);

	assert_int_equal(km_store_keyset_get(fx->s, "api", &ks, err, sizeof(err)), KM_EOK);
	assert_string_equal(ks.owner, "team-c");
	assert_int_equal(km_store_keyset_changes(fx->s, "api", &ch, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 2);
	assert_string_equal(ch[0].keyset, "api");
	assert_string_equal(ch[0].field, "owner");
	assert_string_equal(ch[0].old_value, "team-a");
	assert_string_equal(ch[0].new_value, "team-b");
	assert_string_equal(ch[0].who, "bob");
	assert_int_equal(ch[0].at, 2000);
	assert_string_equal(ch[0].reason, "reorg");
	assert_string_equal(ch[1].old_value, "team-b");
	assert_string_equal(ch[1].new_value, "team-c");
	assert_string_equal(ch[1].who, "carol");
	assert_string_equal(ch[1].reason, "");
	km_store_changes_free(ch);
}

static void test_keyset_purpose_change_recorded(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_keyset_t ks;
	km_store_change_t *ch = NULL;
	size_t n = 0;
	store_fx_keyset(fx->s, "api");
	assert_int_equal(km_store_keyset_set_purpose(fx->s, "api", "Not A Purpose", "bob", 2000,
	                 NULL, err, sizeof(err)), KM_EPURPOSE);
	assert_int_equal(km_store_keyset_set_purpose(fx->s, "api", "logout-token", "bob", 2000,
	                 "split", err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_keyset_get(fx->s, "api", &ks, err, sizeof(err)), KM_EOK);
	assert_string_equal(ks.purpose, "logout-token");
	assert_string_equal(ks.owner, "team-a");
	assert_int_equal(km_store_keyset_changes(fx->s, "api", &ch, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(ch[0].field, "purpose");
	assert_string_equal(ch[0].old_value, "access-token");
	assert_string_equal(ch[0].new_value, "logout-token");
	km_store_changes_free(ch);
}

static void test_jwks_serial_counts_and_persists(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	uint64_t v = 0;
	assert_int_equal(km_store_jwks_serial_next(fx->s, &v, err, sizeof(err)), KM_EOK);
	assert_int_equal(v, 1);
	assert_int_equal(km_store_jwks_serial_next(fx->s, &v, err, sizeof(err)), KM_EOK);
	assert_int_equal(v, 2);
	km_store_free(fx->s);
	fx->s = NULL;
	assert_int_equal(km_store_open(fx->path, "dev", &fx->s, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_jwks_serial_next(fx->s, &v, err, sizeof(err)), KM_EOK);
	assert_int_equal(v, 3);
	/* a rolled-back increment is not counted */
	assert_int_equal(km_store_begin(fx->s, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_jwks_serial_next(fx->s, &v, err, sizeof(err)), KM_EOK);
	assert_int_equal(v, 4);
	assert_int_equal(km_store_rollback(fx->s, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_jwks_serial_next(fx->s, &v, err, sizeof(err)), KM_EOK);
	assert_int_equal(v, 4);
}

/* ---- the verifiers' pickup records (PostgreSQL; SQLite has none) ---- */

static km_store_pickup_t pickup(const char *path, const char *verifier, int64_t serial)
{
	km_store_pickup_t p;
	memset(&p, 0, sizeof(p));
	snprintf(p.path, sizeof(p.path), "%s", path);
	snprintf(p.verifier, sizeof(p.verifier), "%s", verifier);
	p.serial = serial;
	return p;
}

static void test_pickups_keep_the_newest_serial_bad_rows_refused(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_pickup_t *got = NULL;
	size_t n = 0;
	km_store_pickup_t rows[3] = { pickup("/dev/.well-known/jwks.json", "gw-1", 5),
	                              pickup("/dev/.well-known/jwks.json", "gw-2", 7),
	                              pickup("/dev/api/jwks.json", "gw-1", 9) };
	if (!fx->pg) {
		assert_false(km_store_has_pickups(fx->s));
		assert_int_equal(km_store_pickups_put(fx->s, rows, 1, err, sizeof(err)), KM_ENOTSUP);
		assert_non_null(strstr(err, "only a PostgreSQL store"));
		return;
	}
	assert_true(km_store_has_pickups(fx->s));
	assert_int_equal(km_store_pickups_put(fx->s, rows, 3, err, sizeof(err)), KM_EOK);
	/* an older serial never replaces a newer one; a newer one does */
	km_store_pickup_t older = pickup("/dev/.well-known/jwks.json", "gw-1", 2);
	km_store_pickup_t newer = pickup("/dev/.well-known/jwks.json", "gw-2", 8);
	assert_int_equal(km_store_pickups_put(fx->s, &older, 1, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_pickups_put(fx->s, &newer, 1, err, sizeof(err)), KM_EOK);
	/* bad rows: refused with a message, nothing of the call written */
	km_store_pickup_t bad[2][2] = {
		{ pickup("/dev/.well-known/jwks.json", "gw-3", 1), pickup("relative", "gw-3", 1) },
		{ pickup("/dev/.well-known/jwks.json", "gw-3", 1), pickup("/x", "", 1) },
	};
	for (size_t i = 0; i < 2; i++) {
		err[0] = '\0';
		assert_int_equal(km_store_pickups_put(fx->s, bad[i], 2, err, sizeof(err)), KM_EINVAL);
		assert_non_null(strstr(err, "pickup record needs"));
	}
	km_store_pickup_t neg = pickup("/x", "gw-3", -1);
	assert_int_equal(km_store_pickups_put(fx->s, &neg, 1, err, sizeof(err)), KM_EINVAL);
	assert_int_equal(km_store_pickups_get(fx->s, "nope", &got, &n, err, sizeof(err)),
	                 KM_EINVAL);
	assert_int_equal(km_store_pickups_get(fx->s, "/dev/.well-known/jwks.json", &got, &n, err,
	                                      sizeof(err)), KM_EOK);
	assert_int_equal(n, 2);
	assert_string_equal(got[0].verifier, "gw-1");
	assert_int_equal(got[0].serial, 5);
	assert_string_equal(got[1].verifier, "gw-2");
	assert_int_equal(got[1].serial, 8);
	assert_string_equal(got[1].path, "/dev/.well-known/jwks.json");
	free(got);
	got = NULL;
	assert_int_equal(km_store_pickups_get(fx->s, "/dev/api/jwks.json", &got, &n, err,
	                                      sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].serial, 9);
	free(got);
	/* another handle (another node) reads the same rows */
	km_store_t *other = NULL;
	assert_int_equal(km_store_open(fx->path, "dev", &other, err, sizeof(err)), KM_EOK);
	got = NULL;
	assert_int_equal(km_store_pickups_get(other, "/dev/api/jwks.json", &got, &n, err,
	                                      sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	free(got);
	km_store_free(other);
}

#define T(f) cmocka_unit_test_setup_teardown(f, store_fx_setup, store_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open_creates_mode_0600_whatever_the_umask),
		T(test_open_sets_wal_version_and_env),
		T(test_open_reopen_keeps_data),
		T(test_open_future_schema_refused_file_unchanged),
		T(test_open_wrong_env_refused),
		T(test_open_bad_env_name_creates_nothing),
		T(test_open_not_a_store_refused),
		T(test_open_writable_by_others_refused),
		T(test_open_symlink_refused),
		T(test_keyset_create_and_get),
		T(test_keyset_duplicate_refused),
		T(test_keyset_invalid_refused_nothing_created),
		T(test_keyset_list_filters),
		T(test_keyset_owner_change_recorded),
		T(test_keyset_purpose_change_recorded),
		T(test_jwks_serial_counts_and_persists),
		T(test_pickups_keep_the_newest_serial_bad_rows_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
