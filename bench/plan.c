/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-plan: the cost of km_plan_compute().
 *   1. 10,000 key sets in steady state (nothing due): the daemon's common case.
 *   2. One key set with 1,000 and with 10,000 historical (destroyed) keys: linearity.
 * Each figure is printed next to its peer: a plain loop that only reads the same key arrays
 * (the fields the planner reads), which is the physical floor for any planner that looks at
 * every key. Figures are the best of several rounds; compare ratios, not absolute numbers.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keymgr/common/error.h"
#include "policy/planner.h"

#define DAY 86400
#define NOW ((int64_t)1800000000)
#define N_SETS 10000
#define ROUNDS 7

static volatile int64_t sink;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* A steady key set: active, ready standby, a retired key, then `history` destroyed keys. */
static void fill_set(km_plan_key_t *k, size_t history)
{
	size_t n = 0;
	memset(k, 0, (history + 3) * sizeof(*k));
	for (size_t i = 0; i < history; i++, n++) {
		int64_t t = NOW - (int64_t)(history - i + 1) * 90 * DAY;
		k[n].state = KM_STATE_DESTROYED;
		k[n].at[KM_STATE_GENERATED] = k[n].at[KM_STATE_PUBLISHED] = t - DAY;
		k[n].at[KM_STATE_ACTIVE] = t;
		k[n].at[KM_STATE_RETIRED] = t + 90 * DAY;
		k[n].at[KM_STATE_REMOVED] = t + 91 * DAY;
		k[n].at[KM_STATE_DESTROYED] = t + 121 * DAY;
	}
	k[n].state = KM_STATE_RETIRED;
	k[n].at[KM_STATE_PUBLISHED] = NOW - 101 * DAY;
	k[n].at[KM_STATE_ACTIVE] = NOW - 100 * DAY;
	k[n].at[KM_STATE_RETIRED] = NOW - 7200;
	n++;
	k[n].state = KM_STATE_ACTIVE;
	k[n].at[KM_STATE_PUBLISHED] = NOW - 101 * DAY;
	k[n].at[KM_STATE_ACTIVE] = NOW - 7200;
	n++;
	k[n].state = KM_STATE_PUBLISHED;
	k[n].at[KM_STATE_PUBLISHED] = NOW - 7200;
}

/* The floor: touch what the planner touches, once per key. */
static int64_t read_only(const km_plan_key_t *k, size_t n)
{
	int64_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc += (int64_t)k[i].state + k[i].at[KM_STATE_ACTIVE] + k[i].at[k[i].state];
	return acc;
}

/* Best-of-ROUNDS nanoseconds per planner call over `sets` key sets of n keys each. */
static double time_plan(km_plan_t *plan, const km_plan_key_t *keys, size_t sets, size_t n,
                        const km_policy_t *p, int reps)
{
	double best = 1e300;
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now_ns();
		for (int rep = 0; rep < reps; rep++) {
			for (size_t s = 0; s < sets; s++) {
				if (km_plan_compute(plan, keys + s * n, n, p, NOW) != KM_EOK ||
				    km_plan_n_actions(plan) != 0) {
					fprintf(stderr, "bench-plan: unexpected plan for set %zu\n", s);
					exit(1);
				}
				sink += km_plan_next_wake(plan);
			}
		}
		double dt = (now_ns() - t0) / ((double)sets * reps);
		if (dt < best)
			best = dt;
	}
	return best;
}

static double time_read(const km_plan_key_t *keys, size_t sets, size_t n, int reps)
{
	double best = 1e300;
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now_ns();
		for (int rep = 0; rep < reps; rep++)
			for (size_t s = 0; s < sets; s++)
				sink += read_only(keys + s * n, n);
		double dt = (now_ns() - t0) / ((double)sets * reps);
		if (dt < best)
			best = dt;
	}
	return best;
}

static void row(const char *what, double ours, double peer)
{
	printf("%-44s %12.1f ns %12.1f ns %8.2fx\n", what, ours, peer, ours / peer);
}

int main(void)
{
	km_policy_t p;
	km_plan_t *plan = NULL;
	km_policy_defaults(&p, "production");
	if (km_plan_create(&plan) != KM_EOK)
		return 1;

	printf("bench-plan: km_plan_compute() vs a loop that only reads the same keys\n");
	printf("%-44s %15s %15s %9s\n", "case (per call)", "planner", "read-only peer", "ratio");

	/* 1. Many small key sets, nothing due. */
	size_t n_small = 3 + 2;      /* active, standby, retired, two destroyed */
	km_plan_key_t *sets = calloc(N_SETS * n_small, sizeof(*sets));
	if (sets == NULL)
		return 1;
	for (size_t s = 0; s < N_SETS; s++)
		fill_set(sets + s * n_small, 2);
	double ours = time_plan(plan, sets, N_SETS, n_small, &p, 20);
	double peer = time_read(sets, N_SETS, n_small, 20);
	row("10,000 key sets x 5 keys, nothing due", ours, peer);
	printf("%-44s %12.2f ms %12.2f ms\n", "  one daemon pass over all 10,000 sets",
	       ours * N_SETS / 1e6, peer * N_SETS / 1e6);
	free(sets);

	/* 2. Linearity: one key set with 1,000 and 10,000 historical keys. */
	double t1k = 0, t10k = 0, p1k = 0, p10k = 0;
	const size_t hist[2] = { 1000, 10000 };
	for (int i = 0; i < 2; i++) {
		size_t n = hist[i] + 3;
		km_plan_key_t *big = calloc(n, sizeof(*big));
		if (big == NULL)
			return 1;
		fill_set(big, hist[i]);
		int reps = i == 0 ? 2000 : 200;
		double o = time_plan(plan, big, 1, n, &p, reps);
		double q = time_read(big, 1, n, reps);
		char label[64];
		snprintf(label, sizeof(label), "1 key set, %zu historical keys", hist[i]);
		row(label, o, q);
		if (i == 0) {
			t1k = o;
			p1k = q;
		} else {
			t10k = o;
			p10k = q;
		}
		free(big);
	}
	printf("%-44s %12.2fx    %12.2fx   (10x the keys; linear = 10)\n",
	       "linearity: 10,000 / 1,000 historical keys", t10k / t1k, p10k / p1k);
	printf("%-44s %12.2f ns %12.2f ns\n", "  per historical key", t10k / 10003, p10k / 10003);
	km_plan_free(plan);
	return 0;
}
