/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Store operation latency (bench/ha): the same operations through the store interface on
 * whatever backend STORE names (an SQLite file path or a postgresql:// URI):
 *   keyset_create    a write transaction with its audit event (the change's shape)
 *   keyset_get       a read of one row
 *   jwks_serial_next a short write transaction (one counter)
 *   jwks_change      a key into the JWKS and out again (publish, then revoke: two changes)
 *   jwks_change_docs the same with the documents rendered and written inside each change's
 *                    transaction (a shared store's documents, docs/ha.md); the renderer
 *                    here joins the stored JWKs (core's also checks each against its kid),
 *                    so the difference is the store's own cost. SQLite keeps no documents:
 *                    there the two are the same work.
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

/* The documents of the key sets and the environment: the JWKs of their keys, joined. */
static int render(void *ctx, const km_store_keyset_t *sets, size_t nsets,
                  const km_store_key_t *keys, size_t nkeys, km_store_doc_t **ret, size_t *n,
                  char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	km_store_doc_t *docs = calloc(nsets + 1, sizeof(*docs));
	if (docs == NULL)
		return KM_ENOMEM;
	for (size_t i = 0; i <= nsets; i++) {
		const char *ks = i < nsets ? sets[i].name : NULL;
		size_t cap = 16, len = 0;
		for (size_t k = 0; k < nkeys; k++)
			cap += strlen(keys[k].jwk) + 1;
		char *body = malloc(cap);
		if (body == NULL) {
			km_store_docs_free(docs, nsets + 1);
			return KM_ENOMEM;
		}
		len += (size_t)sprintf(body, "{\"keys\":[");
		for (size_t k = 0; k < nkeys; k++)
			if (ks == NULL || strcmp(keys[k].keyset, ks) == 0)
				len += (size_t)sprintf(body + len, "%s%s", len > 9 ? "," : "", keys[k].jwk);
		len += (size_t)sprintf(body + len, "]}");
		snprintf(docs[i].path, sizeof(docs[i].path), "/bench/%s", ks ? ks : "jwks.json");
		docs[i].body = body;
		docs[i].len = len;
		docs[i].max_age = 60;
	}
	*ret = docs;
	*n = nsets + 1;
	return KM_EOK;
}

/* A confirmed key of keyset "docs" (state generated), kid "kN" with an ES256-sized JWK. */
static int new_key(km_store_t *s, int n, char *kid, size_t kidlen, char *err, size_t errlen)
{
	char jwk[256];
	km_store_key_t k = { 0 };
	snprintf(kid, kidlen, "k%d", n);
	snprintf(k.keyset, sizeof(k.keyset), "docs");
	snprintf(k.token_label, sizeof(k.token_label), "bench");
	memcpy(k.cka_id, "KMGRbench", 9);
	memcpy(k.cka_id + 9, &n, sizeof(n));
	k.cka_id_len = 9 + sizeof(n);
	k.state_at[KM_STATE_GENERATED] = 1000;
	int r = km_store_key_intent(s, &k, NULL, err, errlen);
	snprintf(jwk, sizeof(jwk), "{\"alg\":\"ES256\",\"crv\":\"P-256\",\"kid\":\"%s\","
	         "\"kty\":\"EC\",\"use\":\"sig\",\"x\":\"%043d\",\"y\":\"%043d\"}", kid, n, n);
	if (r == KM_EOK)
		r = km_store_key_confirm(s, k.cka_id, k.cka_id_len, kid, jwk, 1000, err, errlen);
	return r;
}

/* ROUNDS keys, each published then revoked (both changes timed together). */
static int jwks_changes(km_store_t *s, int *next, double *t, int rounds, char *err,
                        size_t errlen)
{
	for (int i = 0; i < rounds; i++) {
		char kid[32];
		int r = new_key(s, (*next)++, kid, sizeof(kid), err, errlen);
		double t0 = now_us();
		if (r == KM_EOK)
			r = km_store_key_transition(s, kid, KM_STATE_PUBLISHED, 1001, NULL, err, errlen);
		if (r == KM_EOK)
			r = km_store_key_transition(s, kid, KM_STATE_REVOKED, 1002, "bench", err,
			                            errlen);
		if (r != KM_EOK)
			return r;
		t[i] = now_us() - t0;
	}
	return KM_EOK;
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
	/* a key set whose JWKS holds two keys throughout, as during a rotation */
	km_store_keyset_t docs_ks = { .alg = KM_ALG_ES256, .created_at = 1000 };
	snprintf(docs_ks.name, sizeof(docs_ks.name), "docs");
	snprintf(docs_ks.owner, sizeof(docs_ks.owner), "bench");
	snprintf(docs_ks.purpose, sizeof(docs_ks.purpose), "access-token");
	snprintf(docs_ks.created_by, sizeof(docs_ks.created_by), "bench");
	int next = 0;
	char kid[32];
	if (km_store_keyset_create(s, &docs_ks, NULL, err, sizeof(err)) != KM_EOK)
		goto fail;
	for (int i = 0; i < 2; i++)
		if (new_key(s, next++, kid, sizeof(kid), err, sizeof(err)) != KM_EOK ||
		    km_store_key_transition(s, kid, KM_STATE_PUBLISHED, 1001, NULL, err,
		                            sizeof(err)) != KM_EOK)
			goto fail;
	if (jwks_changes(s, &next, t, rounds, err, sizeof(err)) != KM_EOK)
		goto fail;
	report("jwks_change", t, rounds);
	km_store_set_docs_renderer(s, render, NULL);
	if (jwks_changes(s, &next, t, rounds, err, sizeof(err)) != KM_EOK)
		goto fail;
	report("jwks_change_docs", t, rounds);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "bench-store-ops: %s\n", err);
out:
	free(t);
	km_store_free(s);
	return rc;
}
