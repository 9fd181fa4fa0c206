/* SPDX-License-Identifier: Apache-2.0 */
/* The plan object's layout, shared by planner.c and upcoming.c only. */
#pragma once

#include "policy/planner.h"

struct km_plan {
	km_plan_action_t *actions;
	size_t n_actions, cap_actions;
	km_plan_warning_t *warnings;
	size_t n_warnings, cap_warnings;
	int64_t next_wake;
	int64_t gap;
	int64_t exposure_until;
	size_t n_new;
};

/* Empties the plan (keeps its arrays). */
void km_plan_reset(km_plan_t *plan);

/* Appends a slot for one action; NULL when out of memory. */
km_plan_action_t *km_plan_push_action(km_plan_t *plan);

/* Appends a slot for one warning; NULL when out of memory. */
km_plan_warning_t *km_plan_push_warning(km_plan_t *plan);
