/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The served documents of a shared store (PostgreSQL, docs/ha.md): rendered and written
 * inside the transaction of the change that alters them, under that change's JWKS serial;
 * gone with its rollback; kept as they were when the renderer fails, without blocking the
 * change; rendered again by km_store_docs_sync (fenced) for what no change wrote. SQLite has
 * no documents. The renderer here is the test's own (the JWKS one is core's,
 * km_env_docs_render, tested through keymgrd in the ha suite): the kids of each key set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store.h"
#include "tests/store/fixture.h"

typedef struct {
	unsigned max_age;
	bool fail;
	unsigned calls;
} render_t;

/* "/dev/KEYSET" per key set and "/dev" for all: the kids, space-separated. */
static int render(void *ctx, const km_store_keyset_t *sets, size_t nsets,
                  const km_store_key_t *keys, size_t nkeys, km_store_doc_t **ret, size_t *n,
                  char *err, size_t errlen)
{
	render_t *rc = ctx;
	rc->calls++;
	if (rc->fail) {
		snprintf(err, errlen, "stored public key of k9 does not match its kid");
		return KM_EMALFORMED;
	}
	km_store_doc_t *docs = calloc(nsets + 1, sizeof(*docs));
	assert_non_null(docs);
	for (size_t i = 0; i <= nsets; i++) {
		const char *ks = i < nsets ? sets[i].name : NULL;
		char body[1024] = "";
		snprintf(docs[i].path, sizeof(docs[i].path), "/dev%s%s", ks ? "/" : "", ks ? ks : "");
		for (size_t k = 0; k < nkeys; k++) {
			if (ks != NULL && strcmp(keys[k].keyset, ks) != 0)
				continue;
			strcat(body, keys[k].kid);
			strcat(body, " ");
		}
		docs[i].body = strdup(body);
		docs[i].len = strlen(body);
		docs[i].max_age = rc->max_age;
	}
	*ret = docs;
	*n = nsets + 1;
	return KM_EOK;
}

static void move(km_store_t *s, const char *kid, km_state_t to)
{
	char err[512] = "";
	int r = km_store_key_transition(s, kid, to, 200, to == KM_STATE_REVOKED ? "test" : NULL,
	                                err, sizeof(err));
	if (r != KM_EOK)
		fail_msg("%s -> %s: %s", kid, km_state_name(to), err);
}

/* The body and serial of the document at path (NULL body: none). */
static char *doc(km_store_t *s, const char *path, uint64_t *serial, unsigned *max_age)
{
	char err[512] = "";
	km_store_doc_t *docs = NULL;
	size_t n = 0;
	char *body = NULL;
	assert_int_equal(km_store_docs_get(s, 0, &docs, &n, err, sizeof(err)), KM_EOK);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(docs[i].path, path) != 0)
			continue;
		body = strndup(docs[i].body, docs[i].len);
		if (serial != NULL)
			*serial = docs[i].serial;
		if (max_age != NULL)
			*max_age = docs[i].max_age;
	}
	km_store_docs_free(docs, n);
	return body;
}

static uint64_t latest_serial(km_store_t *s)
{
	char err[512] = "";
	km_store_jwks_version_t v;
	assert_int_equal(km_store_jwks_latest(s, &v, err, sizeof(err)), KM_EOK);
	free(v.kids);
	return v.serial;
}

static void assert_doc(km_store_t *s, const char *path, const char *want, uint64_t serial)
{
	uint64_t got = 0;
	char *body = doc(s, path, &got, NULL);
	if (body == NULL || strcmp(body, want) != 0)
		fail_msg("%s: '%s', want '%s'", path, body ? body : "(none)", want);
	assert_int_equal(got, serial);
	free(body);
}

/* The renderer set, key set "api" with k1 published: returns that change's serial. */
static uint64_t api_with_k1(store_fx_t *fx, render_t *rc)
{
	km_store_set_docs_renderer(fx->s, render, rc);
	store_fx_keyset(fx->s, "api");
	store_fx_key(fx->s, "api", "k1", 100);
	move(fx->s, "k1", KM_STATE_PUBLISHED);
	return latest_serial(fx->s);
}

static void test_sqlite_has_no_documents(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	render_t rc = { .max_age = 60 };
	if (fx->pg)
		skip();
	km_store_set_docs_renderer(fx->s, render, &rc);
	assert_false(km_store_has_docs(fx->s));
	store_fx_keyset(fx->s, "api");
	store_fx_key(fx->s, "api", "k1", 100);
	move(fx->s, "k1", KM_STATE_PUBLISHED);
	assert_int_equal(rc.calls, 0);
	assert_int_equal(km_store_docs_sync(fx->s, NULL, err, sizeof(err)), KM_ENOTSUP);
	assert_non_null(strstr(err, "only a PostgreSQL store"));
}

/* Each change that moves a key into or out of the JWKS writes the documents, in its own
 * transaction and under its own serial; an unchanged document keeps its serial. */
static void test_change_writes_its_documents(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	render_t rc = { .max_age = 60 };
	if (!fx->pg)
		skip();
	store_fx_keyset(fx->s, "api");
	store_fx_keyset(fx->s, "web");
	store_fx_key(fx->s, "api", "k1", 100);
	store_fx_key(fx->s, "web", "k2", 100);
	/* without a renderer (a store opened without a configuration) nothing is written */
	move(fx->s, "k1", KM_STATE_PUBLISHED);
	char *none = doc(fx->s, "/dev", NULL, NULL);
	assert_null(none);
	assert_int_equal(km_store_docs_sync(fx->s, NULL, err, sizeof(err)), KM_ENOTSUP);
	assert_non_null(strstr(err, "without a configuration"));

	km_store_set_docs_renderer(fx->s, render, &rc);
	move(fx->s, "k2", KM_STATE_PUBLISHED);
	uint64_t s1 = latest_serial(fx->s);
	assert_doc(fx->s, "/dev", "k1 k2 ", s1);
	assert_doc(fx->s, "/dev/api", "k1 ", s1);
	assert_doc(fx->s, "/dev/web", "k2 ", s1);

	/* active and back out: only what changed takes the new serial */
	move(fx->s, "k1", KM_STATE_ACTIVE);            /* stays in the JWKS: no new serial */
	assert_int_equal(latest_serial(fx->s), s1);
	move(fx->s, "k2", KM_STATE_REVOKED);
	uint64_t s2 = latest_serial(fx->s);
	assert_true(s2 > s1);
	assert_doc(fx->s, "/dev", "k1 ", s2);
	assert_doc(fx->s, "/dev/web", "", s2);
	assert_doc(fx->s, "/dev/api", "k1 ", s1);

	/* nothing to write: the next sync writes nothing */
	size_t written = 99;
	assert_int_equal(km_store_docs_sync(fx->s, &written, err, sizeof(err)), KM_EOK);
	assert_int_equal(written, 0);
}

/* The documents are part of the change's transaction: another handle does not see them
 * before its commit, and a rollback takes them back with the change. */
static void test_documents_roll_back_with_the_change(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	render_t rc = { .max_age = 60 };
	km_store_t *other = NULL;
	if (!fx->pg)
		skip();
	uint64_t s1 = api_with_k1(fx, &rc);
	store_fx_key(fx->s, "api", "k2", 100);
	assert_int_equal(km_store_open(fx->path, "dev", &other, err, sizeof(err)), KM_EOK);

	assert_int_equal(km_store_begin(fx->s, err, sizeof(err)), KM_EOK);
	move(fx->s, "k2", KM_STATE_PUBLISHED);
	assert_doc(fx->s, "/dev", "k1 k2 ", s1 + 1);    /* inside: written */
	assert_doc(other, "/dev", "k1 ", s1);           /* outside: not yet */
	assert_int_equal(km_store_rollback(fx->s, err, sizeof(err)), KM_EOK);
	assert_doc(fx->s, "/dev", "k1 ", s1);
	assert_doc(other, "/dev", "k1 ", s1);

	assert_int_equal(km_store_begin(fx->s, err, sizeof(err)), KM_EOK);
	move(fx->s, "k2", KM_STATE_PUBLISHED);
	assert_int_equal(km_store_commit(fx->s, err, sizeof(err)), KM_EOK);
	uint64_t s2 = latest_serial(other);
	assert_true(s2 > s1);
	assert_doc(other, "/dev", "k1 k2 ", s2);
	assert_doc(other, "/dev/api", "k1 k2 ", s2);
	km_store_free(other);
}

/* A renderer that fails (a damaged row) does not block the change, a revocation above all;
 * the documents stay as they were, and the sync reports the failure. */
static void test_failing_renderer_does_not_block_a_revocation(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	render_t rc = { .max_age = 60 };
	if (!fx->pg)
		skip();
	uint64_t s1 = api_with_k1(fx, &rc);
	rc.fail = true;
	unsigned calls = rc.calls;
	move(fx->s, "k1", KM_STATE_REVOKED);
	assert_true(rc.calls > calls);
	assert_doc(fx->s, "/dev", "k1 ", s1);
	assert_int_equal(km_store_docs_sync(fx->s, NULL, err, sizeof(err)), KM_EMALFORMED);
	assert_non_null(strstr(err, "does not match its kid"));
	rc.fail = false;
	size_t written = 0;
	assert_int_equal(km_store_docs_sync(fx->s, &written, err, sizeof(err)), KM_EOK);
	assert_int_equal(written, 2);
	assert_doc(fx->s, "/dev", "", latest_serial(fx->s));
}

/* What no change writes (a max-age from a reloaded configuration) the sync writes, under the
 * latest serial, and only when a leader's fence holds. */
static void test_sync_writes_what_changed_fenced(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	render_t rc = { .max_age = 60 };
	km_store_lease_t la;
	if (!fx->pg)
		skip();
	uint64_t s1 = api_with_k1(fx, &rc);
	rc.max_age = 300;
	assert_int_equal(km_store_lease_acquire(fx->s, "node-a", 60000, &la, err, sizeof(err)),
	                 KM_EOK);
	/* a deposed leader's sync is refused and writes nothing */
	km_store_set_fence(fx->s, "node-a", la.epoch + 1);
	size_t written = 99;
	assert_int_equal(km_store_docs_sync(fx->s, &written, err, sizeof(err)),
	                 KM_STORE_EFENCED);
	assert_int_equal(written, 0);
	unsigned age = 0;
	free(doc(fx->s, "/dev", NULL, &age));
	assert_int_equal(age, 60);
	km_store_set_fence(fx->s, "node-a", la.epoch);
	assert_int_equal(km_store_docs_sync(fx->s, &written, err, sizeof(err)), KM_EOK);
	km_store_set_fence(fx->s, NULL, 0);
	assert_int_equal(written, 2);
	uint64_t serial = 0;
	free(doc(fx->s, "/dev/api", &serial, &age));
	assert_int_equal(age, 300);
	assert_int_equal(serial, s1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, store_fx_setup, store_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_sqlite_has_no_documents),
		T(test_change_writes_its_documents),
		T(test_documents_roll_back_with_the_change),
		T(test_failing_renderer_does_not_block_a_revocation),
		T(test_sync_writes_what_changed_fenced),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
