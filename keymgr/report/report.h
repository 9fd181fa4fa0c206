/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pictures and pages for people who would rather look than read: the key timeline of real
 * key sets (store history and the planner's upcoming actions) and the self-contained HTML
 * pages of `keymgr plan --format html` and `keymgr audit report --format html`
 * (docs/auditor-guide.md explains how to read them). The pure drawing is timeline.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "keymgr/core/env.h"
#include "keymgr/report/timeline.h"

/*
 * Draws key set keyset of env into tl as one band ("ENV/NAME"; owner, purpose, algorithm):
 *   - its keys from the store whose life meets tl's window, each state from when it began;
 *   - what the planner will do until the window's end, simulated from tl's now
 *     (km_plan_upcoming()): the later steps of these keys, and the keys it will make
 *     ("new key #0", ..., numbered as the text plan numbers them);
 *   - each revoked key's exposure window (until jwks_max_age after its revocation: verifiers
 *     that cached the JWKS may still accept it), the standby, the owner and purpose changes.
 * events and warnings (JSON arrays, may be NULL) receive each planned action in the window,
 * {"at", "env", "keyset", "action", "key", "due", "reason"}, and each planner warning,
 * {"env", "keyset", "warning", "message"}.
 * A key set whose policy cannot be used (a configuration with errors) is drawn without a
 * plan, with a note that says so, and KM_CONFIG_EBROKEN is returned with the errors in err:
 * the caller decides whether that fails. Otherwise KM_EOK, KM_ENOENT (no such key set),
 * store and planner codes (err says which), KM_ENOMEM.
 */
int km_report_timeline_keyset(km_env_t *env, const char *keyset, km_timeline_t *tl,
                              json_t *events, json_t *warnings, char *err, size_t errlen);

/*
 * Every key set of env, by name, as km_report_timeline_keyset(); a key set whose policy has
 * errors is drawn without its plan and is no error here.
 */
int km_report_timeline_env(km_env_t *env, km_timeline_t *tl, char *err, size_t errlen);

/*
 * The page of `keymgr plan --format html`: title (what is drawn), the window, the timeline,
 * then the planned actions and the warnings (as km_report_timeline_keyset() collects them).
 * No script. Written to out. KM_ENOMEM, KM_ECRYPTO, KM_EIO.
 */
int km_report_plan_html(const char *title, km_timeline_t *tl, json_t *events,
                        json_t *warnings, FILE *out);

typedef struct {
	int64_t now;               /* the page's "generated" time and the timeline's now */
	bool has_at;
	int64_t at;                /* --at: the "trusted at" section and a line on the timeline */
} km_report_audit_opts_t;

/*
 * The page of `keymgr audit report --format html`, from rep (km_audit_report()'s JSON) and
 * env (its timeline and the audit key of its last checkpoint): a failed verification first,
 * in plain words; the chain's state; with has_at, the keys trusted at that time; the key sets;
 * the timeline from a year before now or at, whichever is earlier (or from a week before the
 * first key set was created, when that is later) until 90 days after now;
 * the ownership table, one row per key, sortable in the browser (a small script allowed by
 * its hash). Every text is escaped. Written to out. KM_ENOMEM, KM_ECRYPTO, KM_EIO, and the
 * timeline's store codes (err says which).
 */
int km_report_audit_html(km_env_t *env, json_t *rep, const km_report_audit_opts_t *o,
                         FILE *out, char *err, size_t errlen);
