/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compliance check (`keymgr policy check`): every rule a security team or an auditor
 * holds a key set to, judged at one instant, each finding one of
 *   VIOLATION  something needs an action: a person (a disallowed owner, a key the policy no
 *              longer allows) or a repair (`keymgr reconcile`, `keymgr apply`) that nobody
 *              has run; `repair` says which;
 *   PENDING    not satisfied now, but satisfied at `until` without any action: the production
 *              standby right after setup or a revocation (ready publish_lead after it was
 *              published), an active key past rotation_period whose successor is published
 *              and activates at `until`;
 *   WARNING    worth a look, breaks no rule: a key set that cannot sign (core/readiness.h).
 *
 * Store against token is judged by reconciliation's own comparison (core/reconcile.h, run as
 * a dry run): what this check flags there, `keymgr reconcile` repairs or explains, with the
 * same words; an intent that never reached the token (an abandoned generation) is no
 * finding, and objects that carry no keymgr CKA_ID are not keymgr's keys.
 */
#pragma once

#include <stdint.h>

#include "keymgr/core/env.h"

typedef enum {
	KM_FINDING_VIOLATION = 0,
	KM_FINDING_PENDING,
	KM_FINDING_WARNING,
} km_finding_level_t;

/* One finding. Strings are owned by the checker and valid during the callback only. */
typedef struct {
	km_finding_level_t level;
	const char *env;
	const char *keyset;      /* NULL when about the environment */
	const char *kid;         /* NULL when about no single key */
	const char *check;       /* stable name: "owner", "no-standby", "missing-token-key", ... */
	const char *message;     /* one sentence, with the numbers */
	const char *repair;      /* what resolves it ("keymgr reconcile production"), or NULL */
	int64_t until;           /* PENDING: when it is satisfied without action; else 0 */
} km_finding_t;

typedef void (*km_finding_fn)(void *ctx, const km_finding_t *f);

/* "violation", "pending", "warning". */
const char *km_finding_level_name(km_finding_level_t level);

/*
 * Judges environment env at now: every key set's rules (owner, purpose, distinct purpose,
 * algorithms of the keys that sign or will, rotation timing, standby, signing readiness) and
 * the store against the token (reconciliation's comparison, under the change lock). Reports
 * each finding through fn. A store or token that cannot be read is itself a violation (the
 * comparison is then skipped). Returns KM_EOK when the environment was judged, or
 * KM_ENOMEM.
 */
int km_compliance_env(km_env_t *env, int64_t now, km_finding_fn fn, void *ctx);

/*
 * Judges what the configuration cannot see: two environments whose tokens (their own or
 * their audit tokens) turn out to be the same device, and an audit token that is the
 * environment's own token (same serial; token info only, no login). Reports violations
 * through fn; with only (not NULL), just those that involve environment only.
 */
void km_compliance_config(const km_config_t *cfg, const char *only, km_finding_fn fn,
                          void *ctx);
