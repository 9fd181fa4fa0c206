/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Store operation latency (bench/ha): the same operations through the store interface on
 * whatever backend STORE names (an SQLite file path or a postgresql:// URI):
 *   keyset_create    a write transaction with its audit event (the change's shape)
 *   keyset_get       a read of one row
 *   jwks_serial_next a short write transaction (one counter)
 * ROUNDS of each, one after the other; prints one JSON line per operation with the median,
 * p99, minimum and maximum in microseconds.
 *
 *   bench-store-ops STORE [ROUNDS]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *op, double *t, int n)
{
	qsort(t, (size_t)n, sizeof(*t), cmp);
	int p99 = (int)((double)n * 0.99);
	if (p99 >= n)
		p99 = n - 1;
	printf("{\"op\":\"%s\",\"rounds\":%d,\"median_us\":%.1f,\"p99_us\":%.1f,\"min_us\":%.1f,"
	       "\"max_us\":%.1f}\n", op, n, t[n / 2], t[p99], t[0], t[n - 1]);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: bench-store-ops STORE [ROUNDS]\n");
		return 2;
	}
	int rounds = argc == 3 ? atoi(argv[2]) : 200;
	if (rounds < 1 || rounds > 1000000) {
		fprintf(stderr, "bench-store-ops: ROUNDS must be 1 to 1000000\n");
		return 2;
	}
	char err[1024] = "";
	km_store_t *s = NULL;
	if (km_store_open(argv[1], "bench", &s, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "bench-store-ops: %s\n", err);
		return 1;
	}
	double *t = calloc((size_t)rounds, sizeof(*t));
	int rc = 1;
	if (t == NULL)
		goto out;
	for (int i = 0; i < rounds; i++) {
		km_store_keyset_t ks = { .alg = KM_ALG_ES256, .created_at = 1000 + i };
		snprintf(ks.name, sizeof(ks.name), "ks%d", i);
		snprintf(ks.owner, sizeof(ks.owner), "bench");
		snprintf(ks.purpose, sizeof(ks.purpose), "access-token");
		snprintf(ks.created_by, sizeof(ks.created_by), "bench");
		double t0 = now_us();
		if (km_store_keyset_create(s, &ks, NULL, err, sizeof(err)) != KM_EOK)
			goto fail;
		t[i] = now_us() - t0;
	}
	report("keyset_create", t, rounds);
	for (int i = 0; i < rounds; i++) {
		km_store_keyset_t ks;
		char name[32];
		snprintf(name, sizeof(name), "ks%d", i);
		double t0 = now_us();
		if (km_store_keyset_get(s, name, &ks, err, sizeof(err)) != KM_EOK)
			goto fail;
		t[i] = now_us() - t0;
	}
	report("keyset_get", t, rounds);
	for (int i = 0; i < rounds; i++) {
		uint64_t v;
		double t0 = now_us();
		if (km_store_jwks_serial_next(s, &v, err, sizeof(err)) != KM_EOK)
			goto fail;
		t[i] = now_us() - t0;
	}
	report("jwks_serial_next", t, rounds);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "bench-store-ops: %s\n", err);
out:
	free(t);
	km_store_free(s);
	return rc;
}
