/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-report-draw: the cost of drawing key timelines (keymgr/report) from a large store.
 *   1. 200 key sets of 20 keys each (4,000 keys, monthly rotation), the last 90 days and the
 *      next 90: `keymgr plan --format svg` over a large environment;
 *   2. one key set with 10,000 historical keys (a rotation every 6 hours), 30 days asked for:
 *      only the window is drawn;
 *   3. the same key set, its whole history asked for (every key drawn).
 * Each figure is printed next to its floor: reading the same keys from the same SQLite store
 * (km_apply_load_keys(), which every drawing does first). Figures are the best of several
 * rounds; compare ratios, not absolute numbers. The store is a real SQLite file in a temporary
 * directory (filled through the store API, as keymgr fills it; no token is opened).
 *
 * Usage: bench-report-draw [ROUNDS]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keymgr/common/error.h"
#include "keymgr/core/apply.h"
#include "keymgr/core/env.h"
#include "keymgr/report/report.h"
#include "keymgr/report/timeline.h"
#include "tests/common/tmpconfig.h"

#define DAY INT64_C(86400)
#define NOW INT64_C(1800000000)
#define N_SETS 200
#define PER_SET 20
#define HISTORY 10000

static const char config_text[] =
	"version: 1\n"
	"environments:\n"
	"  bench:\n"
	"    token: { module: /usr/lib/softhsm/libsofthsm2.so, label: b, pin: file:./p }\n"
	"    store: ./bench.db\n"
	"    policy:\n"
	"      rotation_period: 30d\n"
	"      publish_lead: 1d\n"
	"      retire_retention: 1d\n"
	"      destroy_after: 30d\n"
	"      jwks_max_age: 1h\n";

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what, int r, const char *err)
{
	fprintf(stderr, "bench-report-draw: %s: %s %s\n", what, km_strerror(r), err);
	exit(1);
}

static void keyset(km_store_t *s, const char *name)
{
	char err[512] = "";
	km_store_keyset_t ks = { .alg = KM_ALG_ES256, .created_at = NOW - 3000 * DAY };
	snprintf(ks.name, sizeof(ks.name), "%s", name);
	snprintf(ks.owner, sizeof(ks.owner), "team-%s", name);
	snprintf(ks.purpose, sizeof(ks.purpose), "access-token");
	snprintf(ks.created_by, sizeof(ks.created_by), "bench");
	int r = km_store_keyset_create(s, &ks, NULL, err, sizeof(err));
	if (r != KM_EOK)
		die("keyset", r, err);
}

/* Key n of a key set, made at t and living a period (active after a day); the last one of a
 * set stays active. Keys follow each other, so one is active at a time. */
static void key(km_store_t *s, const char *set, unsigned n, int64_t t, int64_t period, bool last)
{
	char err[512] = "", kid[64], jwk[160];
	km_store_key_t k = { 0 };
	snprintf(k.keyset, sizeof(k.keyset), "%s", set);
	snprintf(k.token_label, sizeof(k.token_label), "b");
	snprintf(kid, sizeof(kid), "%s-%06u-bench-key-xxxxxxxxxxxxxxxxxxxxxxxxx", set, n);
	kid[43] = '\0';
	memset(k.cka_id, 0, sizeof(k.cka_id));
	snprintf((char *)k.cka_id, sizeof(k.cka_id), "%.11s%06u", set, n);
	k.cka_id_len = 20;
	k.state_at[KM_STATE_GENERATED] = t;
	int r = km_store_key_intent(s, &k, NULL, err, sizeof(err));
	snprintf(jwk, sizeof(jwk), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\"}", kid);
	if (r == KM_EOK)
		r = km_store_key_confirm(s, k.cka_id, k.cka_id_len, kid, jwk, t, err, sizeof(err));
	if (r == KM_EOK)
		r = km_store_key_transition(s, kid, KM_STATE_PUBLISHED, t, NULL, err, sizeof(err));
	if (r == KM_EOK)
		r = km_store_key_transition(s, kid, KM_STATE_ACTIVE, t + DAY / 4, NULL, err,
		                            sizeof(err));
	if (!last) {
		if (r == KM_EOK)
			r = km_store_key_transition(s, kid, KM_STATE_RETIRED, t + period + DAY / 4, NULL,
			                            err, sizeof(err));
		if (r == KM_EOK)
			r = km_store_key_transition(s, kid, KM_STATE_REMOVED, t + period + DAY, NULL, err,
			                            sizeof(err));
		if (r == KM_EOK && t + period + 31 * DAY < NOW)
			r = km_store_key_transition(s, kid, KM_STATE_DESTROYED, t + period + 31 * DAY,
			                            NULL, err, sizeof(err));
	}
	if (r != KM_EOK)
		die(kid, r, err);
}

static void fill(km_store_t *s)
{
	char err[512] = "", name[32];
	int r = km_store_begin(s, err, sizeof(err));
	if (r != KM_EOK)
		die("begin", r, err);
	for (unsigned i = 0; i < N_SETS; i++) {
		snprintf(name, sizeof(name), "set%03u", i);
		keyset(s, name);
		for (unsigned k = 0; k < PER_SET; k++)
			key(s, name, k, NOW - (int64_t)(PER_SET - k) * 30 * DAY + (int64_t)i * 600,
			    30 * DAY, k + 1 == PER_SET);
	}
	keyset(s, "zhistory");
	for (unsigned k = 0; k < HISTORY; k++)
		key(s, "zhistory", k, NOW - (int64_t)(HISTORY - k) * DAY / 4, DAY / 4,
		    k + 1 == HISTORY);
	if ((r = km_store_commit(s, err, sizeof(err))) != KM_EOK)
		die("commit", r, err);
}

/* The floor: read every key of the key sets drawn (one key set, or all). */
static double load_keys(km_env_t *env, const char *only, size_t *n_keys)
{
	char err[512] = "";
	km_store_keyset_t *list = NULL;
	size_t n = 0;
	*n_keys = 0;
	double t0 = now_ms();
	int r = km_store_keyset_list(km_env_store(env), NULL, &list, &n, err, sizeof(err));
	for (size_t i = 0; r == KM_EOK && i < n; i++) {
		km_plan_key_t *keys = NULL;
		km_store_key_t *recs = NULL;
		size_t m = 0;
		if (only != NULL && strcmp(list[i].name, only) != 0)
			continue;
		r = km_apply_load_keys(env, list[i].name, &keys, &recs, &m, err, sizeof(err));
		*n_keys += m;
		km_store_keys_free(recs);
		free(keys);
	}
	km_store_keysets_free(list);
	if (r != KM_EOK)
		die("load", r, err);
	return now_ms() - t0;
}

/* Draws (store, planner, layout, SVG) the key sets asked for over [from, to]. */
static double draw(km_env_t *env, const char *only, int64_t from, int64_t to, size_t *drawn,
                   size_t *bytes)
{
	char err[512] = "", *buf = NULL;
	size_t len = 0;
	km_timeline_t *tl = NULL;
	double t0 = now_ms();
	int r = km_timeline_create(from, to, NOW, &tl);
	if (r == KM_EOK)
		r = only != NULL ? km_report_timeline_keyset(env, only, tl, NULL, NULL, err,
		                                             sizeof(err)) :
		    km_report_timeline_env(env, tl, err, sizeof(err));
	FILE *f = r == KM_EOK ? open_memstream(&buf, &len) : NULL;
	if (f != NULL) {
		r = km_timeline_svg(tl, KM_TIMELINE_STANDALONE, f);
		fclose(f);
	}
	double ms = now_ms() - t0;
	if (r != KM_EOK)
		die("draw", r, err);
	*drawn = km_timeline_n_drawn(tl);
	*bytes = len;
	free(buf);
	km_timeline_free(tl);
	return ms;
}

static void row(km_env_t *env, int rounds, const char *what, const char *only, int64_t from,
                int64_t to)
{
	double best_draw = 1e18, best_load = 1e18;
	size_t drawn = 0, bytes = 0, keys = 0;
	for (int i = 0; i < rounds; i++) {
		double l = load_keys(env, only, &keys), d = draw(env, only, from, to, &drawn, &bytes);
		best_load = l < best_load ? l : best_load;
		best_draw = d < best_draw ? d : best_draw;
	}
	printf("%-44s %7zu %7zu %9.1f %9.1f %7.2f %8zu\n", what, keys, drawn, best_draw, best_load,
	       best_draw / best_load, bytes / 1024);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	km_test_config_t c;
	km_env_t *env = NULL;
	char err[512] = "";
	if (rounds < 1 || km_test_config_create(&c, config_text) != 0)
		return 2;
	int r = km_env_open(c.cfg, "bench", &env, err, sizeof(err));
	if (r != KM_EOK)
		die("open", r, err);
	double t0 = now_ms();
	fill(km_env_store(env));
	printf("store: %d key sets, %d keys (%.0f ms to fill); best of %d rounds\n\n",
	       N_SETS + 1, N_SETS * PER_SET + HISTORY, now_ms() - t0, rounds);
	printf("%-44s %7s %7s %9s %9s %7s %8s\n", "case", "keys", "drawn", "draw ms", "read ms",
	       "ratio", "svg KiB");
	row(env, rounds, "every key set, now -90d .. now +90d", NULL, NOW - 90 * DAY,
	    NOW + 90 * DAY);
	row(env, rounds, "10,000-key history, 30 days", "zhistory", NOW - 30 * DAY, NOW);
	row(env, rounds, "10,000-key history, all of it", "zhistory", NOW - 2600 * DAY, NOW);
	printf("\nread: km_apply_load_keys() of the same key sets (the floor: every drawing "
	       "reads them);\ndraw: that, the planner's upcoming actions, layout and SVG.\n");
	km_env_free(env);
	km_test_config_destroy(&c);
	return 0;
}
