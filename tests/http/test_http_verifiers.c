/* SPDX-License-Identifier: Apache-2.0 */
/* The bounded verifier table: update in place, snapshot filtering and order, eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/common/error.h"
#include "keymgr/http/http_verifiers.h"

#define P1 "/production/.well-known/jwks.json"
#define P2 "/production/api/jwks.json"

static void test_vtab_create_refuses_zero(void **state)
{
	km_http_vtab_t *t = (km_http_vtab_t *)0x1;

	assert_int_equal(km_http_vtab_create(0, &t), KM_EINVAL);
	assert_ptr_equal(t, (km_http_vtab_t *)0x1);
	km_http_vtab_free(NULL);
}

static void test_vtab_record_updates_in_place(void **state)
{
	km_http_vtab_t *t = NULL;
	km_http_verifier_t *v = NULL;
	size_t n = 0;

	assert_int_equal(km_http_vtab_create(8, &t), KM_EOK);
	km_http_vtab_record(t, "gw", true, P1, 3, 100, false);
	km_http_vtab_record(t, "gw", true, P1, 4, 101, true);
	km_http_vtab_record(t, "gw", true, P2, 4, 102, false);
	km_http_vtab_record(t, "10.0.0.1", false, P1, 2, 103, false);
	/* same text, but unnamed: another verifier */
	km_http_vtab_record(t, "gw", false, P1, 1, 104, false);
	assert_int_equal(km_http_vtab_size(t), 4);

	assert_int_equal(km_http_vtab_snapshot(t, P1, &v, &n), KM_EOK);
	assert_int_equal(n, 3);
	/* named first, then by id */
	assert_string_equal(v[0].id, "gw");
	assert_true(v[0].named);
	assert_int_equal(v[0].serial, 4);
	assert_true(v[0].by_304);
	assert_int_equal(v[0].fetches, 2);
	assert_int_equal(v[0].last_seen, 101);
	assert_string_equal(v[1].id, "10.0.0.1");
	assert_false(v[1].named);
	assert_int_equal(v[1].serial, 2);
	assert_string_equal(v[2].id, "gw");
	assert_false(v[2].named);
	assert_int_equal(v[2].serial, 1);
	free(v);

	assert_int_equal(km_http_vtab_snapshot(t, NULL, &v, &n), KM_EOK);
	assert_int_equal(n, 4);
	free(v);
	assert_int_equal(km_http_vtab_snapshot(t, "/nothing", &v, &n), KM_EOK);
	assert_int_equal(n, 0);
	assert_null(v);
	km_http_vtab_free(t);
}

static bool has(km_http_vtab_t *t, const char *id, bool named)
{
	km_http_verifier_t *v = NULL;
	size_t n = 0, i;
	bool found = false;

	assert_int_equal(km_http_vtab_snapshot(t, NULL, &v, &n), KM_EOK);
	for (i = 0; i < n; i++)
		if (strcmp(v[i].id, id) == 0 && v[i].named == named)
			found = true;
	free(v);
	return found;
}

static void test_vtab_evicts_oldest_unnamed_first(void **state)
{
	km_http_vtab_t *t = NULL;

	assert_int_equal(km_http_vtab_create(4, &t), KM_EOK);
	km_http_vtab_record(t, "named-old", true, P1, 1, 1, false);
	km_http_vtab_record(t, "10.0.0.1", false, P1, 1, 2, false);
	km_http_vtab_record(t, "10.0.0.2", false, P1, 1, 3, false);
	km_http_vtab_record(t, "named-new", true, P1, 1, 4, false);
	/* 10.0.0.1 is seen again: 10.0.0.2 is now the least recently seen unnamed row */
	km_http_vtab_record(t, "10.0.0.1", false, P1, 2, 5, false);
	km_http_vtab_record(t, "10.0.0.3", false, P1, 1, 6, false);
	assert_int_equal(km_http_vtab_size(t), 4);
	assert_false(has(t, "10.0.0.2", false));
	assert_true(has(t, "10.0.0.1", false));
	assert_true(has(t, "named-old", true));
	assert_true(has(t, "named-new", true));
	assert_true(has(t, "10.0.0.3", false));
	km_http_vtab_free(t);
}

static void test_vtab_evicts_oldest_named_when_no_unnamed(void **state)
{
	km_http_vtab_t *t = NULL;
	char id[32];
	int i;

	assert_int_equal(km_http_vtab_create(3, &t), KM_EOK);
	for (i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "v%d", i);
		km_http_vtab_record(t, id, true, P1, 1, i, false);
	}
	km_http_vtab_record(t, "v0", true, P1, 2, 10, false);   /* v1 becomes the oldest */
	km_http_vtab_record(t, "v9", true, P1, 1, 11, false);
	assert_int_equal(km_http_vtab_size(t), 3);
	assert_false(has(t, "v1", true));
	assert_true(has(t, "v0", true));
	assert_true(has(t, "v2", true));
	assert_true(has(t, "v9", true));
	km_http_vtab_free(t);
}

static void test_vtab_many_rows_stay_bounded_and_findable(void **state)
{
	km_http_vtab_t *t = NULL;
	km_http_verifier_t *v = NULL;
	size_t n = 0;
	char id[32];
	int i;

	assert_int_equal(km_http_vtab_create(64, &t), KM_EOK);
	for (i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "10.0.%d.%d", i / 256, i % 256);
		km_http_vtab_record(t, id, false, (i % 2) ? P1 : P2, i, i, false);
		km_http_vtab_record(t, "steady", true, P1, i, i, false);
	}
	assert_int_equal(km_http_vtab_size(t), 64);
	/* the named row was refreshed every round and is never evicted; its count is exact */
	assert_int_equal(km_http_vtab_snapshot(t, P1, &v, &n), KM_EOK);
	assert_true(n > 0);
	assert_string_equal(v[0].id, "steady");
	assert_int_equal(v[0].fetches, 1000);
	assert_int_equal(v[0].serial, 999);
	free(v);
	/* the most recent unnamed rows survive */
	assert_true(has(t, "10.0.3.231", false));   /* i = 999 */
	assert_false(has(t, "10.0.0.0", false));
	km_http_vtab_free(t);
}

static void test_vtab_cuts_long_ids(void **state)
{
	km_http_vtab_t *t = NULL;
	km_http_verifier_t *v = NULL;
	char longid[200];
	size_t n = 0;

	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(km_http_vtab_create(2, &t), KM_EOK);
	km_http_vtab_record(t, longid, false, P1, 1, 1, false);
	assert_int_equal(km_http_vtab_snapshot(t, P1, &v, &n), KM_EOK);
	assert_int_equal(n, 1);
	assert_int_equal(strlen(v[0].id), KM_HTTP_VERIFIER_ID_MAX);
	free(v);
	km_http_vtab_free(t);
}

/* The flood of made-up names (issue 16): a listed verifier's row survives 4,200 other names
 * in a table of 64 rows; the others churn among themselves, counted. */
static void test_vtab_listed_rows_survive_a_flood(void **state)
{
	km_http_vtab_t *t = NULL;
	km_http_vtab_counts_t c;
	char id[32];
	const char *listed[] = { "gw-1", "gw-2" };

	assert_int_equal(km_http_vtab_create(64, &t), KM_EOK);
	assert_int_equal(km_http_vtab_set_listed(t, listed, 2), KM_EOK);
	km_http_vtab_record(t, "gw-1", true, P1, 7, 1, false);
	km_http_vtab_record(t, "gw-1", false, P1, 7, 1, false);   /* an address, not a name */
	for (int i = 0; i < 4200; i++) {
		snprintf(id, sizeof(id), "fake-%d", i);
		km_http_vtab_record(t, id, true, P1, 7, 2 + i, false);
	}
	assert_true(has(t, "gw-1", true));
	assert_false(has(t, "gw-1", false));
	km_http_vtab_counts(t, &c);
	assert_int_equal(c.rows, 64);
	assert_int_equal(c.listed_rows, 1);
	assert_int_equal(c.evicted, 4200 + 2 - 64);
	assert_int_equal(c.dropped, 0);
	/* A name that leaves the list is evictable like any other from then on. */
	assert_int_equal(km_http_vtab_set_listed(t, listed + 1, 1), KM_EOK);
	for (int i = 0; i < 64; i++) {
		snprintf(id, sizeof(id), "more-%d", i);
		km_http_vtab_record(t, id, true, P1, 7, 5000 + i, false);
	}
	assert_false(has(t, "gw-1", true));
	km_http_vtab_free(t);
}

/* A name that joins the list is pinned from then on; a table full of listed rows drops new
 * unlisted records (counted) instead of evicting a listed one. */
static void test_vtab_table_full_of_listed_rows(void **state)
{
	km_http_vtab_t *t = NULL;
	km_http_vtab_counts_t c;
	const char *listed[] = { "a", "b" };

	assert_int_equal(km_http_vtab_create(2, &t), KM_EOK);
	km_http_vtab_record(t, "a", true, P1, 1, 1, false);
	km_http_vtab_record(t, "b", true, P1, 1, 2, false);
	assert_int_equal(km_http_vtab_set_listed(t, listed, 2), KM_EOK);
	km_http_vtab_record(t, "x", true, P1, 1, 3, false);
	km_http_vtab_record(t, "10.0.0.1", false, P1, 1, 4, false);
	assert_true(has(t, "a", true));
	assert_true(has(t, "b", true));
	assert_false(has(t, "x", true));
	km_http_vtab_counts(t, &c);
	assert_int_equal(c.listed_rows, 2);
	assert_int_equal(c.dropped, 2);
	assert_int_equal(c.evicted, 0);
	km_http_vtab_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vtab_create_refuses_zero),
		cmocka_unit_test(test_vtab_record_updates_in_place),
		cmocka_unit_test(test_vtab_evicts_oldest_unnamed_first),
		cmocka_unit_test(test_vtab_evicts_oldest_named_when_no_unnamed),
		cmocka_unit_test(test_vtab_many_rows_stay_bounded_and_findable),
		cmocka_unit_test(test_vtab_cuts_long_ids),
		cmocka_unit_test(test_vtab_listed_rows_survive_a_flood),
		cmocka_unit_test(test_vtab_table_full_of_listed_rows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
