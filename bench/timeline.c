/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy-timeline: draws the key timeline of a policy from the planner's own output
 * (km_plan_upcoming from an empty key set), for docs/timing.md.
 *
 *   policy-timeline [--env NAME] [--set FIELD=VALUE]... [--horizon DUR]
 *                   [--from DUR] [--to DUR] [--width N] [--events]
 *
 * --from/--to pick the window drawn (offsets from bootstrap; default the whole horizon),
 * --events also lists every action in the window with the planner's reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "policy/planner.h"

#define T0 ((int64_t)1767225600)   /* 2026-01-01T00:00:00Z; any time > 0 works */
#define MAX_KEYS 256
#define MAX_CHANGES 8

typedef struct {
	int64_t at[MAX_CHANGES];
	km_state_t state[MAX_CHANGES];
	int n;
} life_t;

static char state_char(km_state_t s)
{
	switch (s) {
	case KM_STATE_GENERATED: return 'g';
	case KM_STATE_PUBLISHED: return 'p';
	case KM_STATE_ACTIVE: return '#';
	case KM_STATE_RETIRED: return 'r';
	case KM_STATE_REMOVED: return '-';
	case KM_STATE_REVOKED: return 'X';
	default: return ' ';
	}
}

/* The key's state at time t, or KM_STATE_COUNT when it does not exist (yet or any more). */
static km_state_t state_at(const life_t *l, int64_t t)
{
	km_state_t s = KM_STATE_COUNT;
	for (int i = 0; i < l->n && l->at[i] <= t; i++)
		s = l->state[i];
	return s == KM_STATE_DESTROYED ? KM_STATE_COUNT : s;
}

static int usage(void)
{
	fprintf(stderr, "usage: policy-timeline [--env NAME] [--set FIELD=VALUE]... "
	        "[--horizon DUR] [--from DUR] [--to DUR] [--width N] [--events]\n");
	return 2;
}

static int parse_dur(const char *opt, const char *s, int64_t *ret)
{
	char why[96];
	if (km_duration_parse_err(s, ret, why, sizeof(why)) != KM_EOK) {
		fprintf(stderr, "policy-timeline: %s '%s': %s\n", opt, s, why);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *env = "production";
	const char *sets[32];
	int n_sets = 0, width = 72;
	int64_t horizon = 0, from = 0, to = 0;
	bool events = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--events") == 0) {
			events = true;
			continue;
		}
		if (v == NULL)
			return usage();
		i++;
		if (strcmp(a, "--env") == 0)
			env = v;
		else if (strcmp(a, "--set") == 0 && n_sets < 32)
			sets[n_sets++] = v;
		else if (strcmp(a, "--horizon") == 0 && parse_dur(a, v, &horizon) == 0)
			;
		else if (strcmp(a, "--from") == 0 && parse_dur(a, v, &from) == 0)
			;
		else if (strcmp(a, "--to") == 0 && parse_dur(a, v, &to) == 0)
			;
		else if (strcmp(a, "--width") == 0 && atoi(v) >= 10 && atoi(v) <= 400)
			width = atoi(v);
		else
			return usage();
	}

	km_policy_t p;
	char err[512];
	km_policy_defaults(&p, env);
	for (int i = 0; i < n_sets; i++) {
		char field[64];
		const char *eq = strchr(sets[i], '=');
		if (eq == NULL || (size_t)(eq - sets[i]) >= sizeof(field))
			return usage();
		memcpy(field, sets[i], (size_t)(eq - sets[i]));
		field[eq - sets[i]] = '\0';
		if (km_policy_set(&p, field, eq + 1, KM_POLICY_SRC_ENV, err, sizeof(err)) != KM_EOK) {
			fprintf(stderr, "policy-timeline: %s\n", err);
			return 2;
		}
	}
	if (km_policy_validate(&p, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "policy-timeline: %s\n", err);
		return 2;
	}
	if (horizon == 0)
		horizon = 2 * p.rotation_period + p.retire_retention + p.destroy_after;
	if (to == 0 || to > horizon)
		to = horizon;
	if (from >= to)
		return usage();

	km_plan_t *plan = NULL;
	int r = km_plan_create(&plan);
	if (r == KM_EOK)
		r = km_plan_upcoming(plan, NULL, 0, &p, T0, horizon);
	if (r != KM_EOK) {
		fprintf(stderr, "policy-timeline: planning failed: %s\n", km_strerror(r));
		km_plan_free(plan);
		return 1;
	}

	static life_t life[MAX_KEYS];
	size_t n_keys = km_plan_n_new_keys(plan);
	if (n_keys > MAX_KEYS)
		n_keys = MAX_KEYS;
	static const km_state_t to_state[KM_PLAN_OP_COUNT] = {
		KM_STATE_GENERATED, KM_STATE_PUBLISHED, KM_STATE_ACTIVE, KM_STATE_RETIRED,
		KM_STATE_REMOVED, KM_STATE_DESTROYED, KM_STATE_REVOKED,
	};
	for (size_t i = 0; i < km_plan_n_actions(plan); i++) {
		const km_plan_action_t *a = km_plan_action(plan, i);
		if (a->key >= n_keys || life[a->key].n >= MAX_CHANGES)
			continue;
		life_t *l = &life[a->key];
		l->at[l->n] = a->at - T0;
		l->state[l->n++] = to_state[a->op];
	}

	char b[9][32];
	printf("policy: %s defaults", env);
	for (int i = 0; i < n_sets; i++)
		printf("%s%s", i ? ", " : " with ", sets[i]);
	printf("\n  R rotation_period %s   P publish_lead %s   M jwks_max_age %s   S clock_skew %s\n"
	       "  T max_token_ttl %s   Ret retire_retention %s   D destroy_after %s   standby %s\n",
	       km_duration_format(p.rotation_period, b[0], 32),
	       km_duration_format(p.publish_lead, b[1], 32),
	       km_duration_format(p.jwks_max_age, b[2], 32),
	       km_duration_format(p.clock_skew, b[3], 32),
	       km_duration_format(p.max_token_ttl, b[4], 32),
	       km_duration_format(p.retire_retention, b[5], 32),
	       km_duration_format(p.destroy_after, b[6], 32), p.standby ? "yes" : "no");
	int64_t col = (to - from + width - 1) / width;
	printf("window +%s .. +%s after bootstrap; one column = %s\n\n",
	       km_duration_format(from, b[0], 32), km_duration_format(to, b[1], 32),
	       km_duration_format(col, b[2], 32));

	/* Axis: a label every 12 columns. */
	char axis[512];
	memset(axis, ' ', sizeof(axis));
	for (int c = 0; c < width; c += 12) {
		char lab[32];
		int n = snprintf(lab, sizeof(lab), "|+%s", km_duration_format(from + c * col, b[3], 32));
		if (c + n < (int)sizeof(axis) - 1)
			memcpy(axis + c, lab, (size_t)n);
	}
	int end = width + 12 < (int)sizeof(axis) ? width + 12 : (int)sizeof(axis) - 1;
	axis[end] = '\0';
	while (end > 0 && axis[end - 1] == ' ')
		axis[--end] = '\0';
	printf("%-8s %s\n", "", axis);
	for (size_t k = 0; k < n_keys; k++) {
		char line[512];
		bool any = false;
		for (int c = 0; c < width; c++) {
			/* Sample the middle of the column. */
			km_state_t s = state_at(&life[k], from + c * col + col / 2);
			line[c] = state_char(s);
			any |= s != KM_STATE_COUNT;
		}
		int last = width;
		while (last > 0 && line[last - 1] == ' ')
			last--;
		line[last] = '\0';
		if (any)
			printf("key %-4zu %s\n", k, line);
	}
	printf("\n  p published (in the JWKS, signs nothing)   # active (signs)   r retired (in the "
	       "JWKS, verifies)\n  - removed (token only)   X revoked   blank: not made yet, or "
	       "destroyed\n");

	if (events) {
		printf("\nevents (offset after bootstrap, action, key, the planner's reason):\n");
		for (size_t i = 0; i < km_plan_n_actions(plan); i++) {
			const km_plan_action_t *a = km_plan_action(plan, i);
			int64_t off = a->at - T0;
			if (off < from || off > to)
				continue;
			printf("  +%-10s %-9s key %-3zu %s%s\n", km_duration_format(off, b[0], 32),
			       km_plan_op_name(a->op), a->key, a->reason, a->early ? "  [early]" : "");
		}
	}
	for (size_t i = 0; from == 0 && i < km_plan_n_warnings(plan); i++)
		printf("%swarning at bootstrap: %s\n", i ? "" : "\n", km_plan_warning(plan, i)->msg);
	km_plan_free(plan);
	return 0;
}
