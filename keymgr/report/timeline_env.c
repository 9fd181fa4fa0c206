/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A key set's real timeline (report.h): the store's record of each key (when it entered each
 * state), the planner's upcoming actions for the future, the exposure of revoked keys, the
 * standby and the owner and purpose changes, added to a km_timeline_t. Keys whose life lies
 * outside the window are never added: a key set with 10,000 historical keys draws only the
 * ones the window shows.
 */
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/core/apply.h"
#include "keymgr/core/standby.h"
#include "keymgr/report/report.h"
#include "keymgr/report/report_int.h"

/* The state a planned action enters; KM_STATE_COUNT for one that enters none (SCHEDULE). */
static km_state_t op_state(km_plan_op_t op)
{
	switch (op) {
	case KM_PLAN_GENERATE: return KM_STATE_GENERATED;
	case KM_PLAN_PUBLISH: return KM_STATE_PUBLISHED;
	case KM_PLAN_ACTIVATE: return KM_STATE_ACTIVE;
	case KM_PLAN_RETIRE: return KM_STATE_RETIRED;
	case KM_PLAN_REMOVE: return KM_STATE_REMOVED;
	case KM_PLAN_DESTROY: return KM_STATE_DESTROYED;
	case KM_PLAN_REVOKE: return KM_STATE_REVOKED;
	default: return KM_STATE_COUNT;
	}
}

/* What the loader keeps of one key (existing ones first, then the plan's new ones). */
typedef struct {
	int64_t start;         /* its first step */
	int64_t end;           /* destroyed (real or planned); INT64_MAX: not */
	size_t tl_key;         /* its number in the timeline; SIZE_MAX: not drawn */
} key_span_t;

/* A key's tooltip: its states with their times, and a revocation's reason. */
static void key_detail(const km_store_key_t *k, char *buf, size_t len)
{
	size_t used = (size_t)snprintf(buf, len, "%s, now %s", km_alg_name(k->alg),
	                               km_state_name(k->state));
	static const km_state_t order[] = { KM_STATE_GENERATED, KM_STATE_PUBLISHED,
	                                    KM_STATE_ACTIVE, KM_STATE_RETIRED, KM_STATE_REMOVED,
	                                    KM_STATE_REVOKED, KM_STATE_DESTROYED };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && used < len; i++) {
		char t[KM_TIME_TEXT_MAX];
		if (k->state_at[order[i]] == KM_STORE_TIME_NONE)
			continue;
		used += (size_t)snprintf(buf + used, len - used, "\n%s %s", km_state_name(order[i]),
		                         km_report_time(k->state_at[order[i]], t, sizeof(t)));
	}
	if (k->revoke_reason[0] != '\0' && used < len)
		snprintf(buf + used, len - used, "\nrevoked because: %s", k->revoke_reason);
}

/* The owner and purpose changes of the key set, on the axis. */
static int add_changes(km_env_t *env, const char *keyset, km_timeline_t *tl, size_t set,
                       char *err, size_t errlen)
{
	km_store_change_t *ch = NULL;
	size_t n = 0;
	int r = km_store_keyset_changes(km_env_store(env), keyset, &ch, &n, err, errlen);
	for (size_t i = 0; r == KM_EOK && i < n; i++) {
		char text[KM_OWNER_MAX + 32], detail[1024], t[KM_TIME_TEXT_MAX];
		snprintf(text, sizeof(text), "%s: %s", ch[i].field, ch[i].new_value);
		snprintf(detail, sizeof(detail), "%s %s: %s -> %s by %s%s%s", km_report_time(ch[i].at,
		         t, sizeof(t)), ch[i].field, ch[i].old_value, ch[i].new_value, ch[i].who,
		         ch[i].reason[0] ? ": " : "", ch[i].reason);
		r = km_timeline_change(tl, set, ch[i].at, text, detail);
	}
	km_store_changes_free(ch);
	return r;
}

/* The planner's actions until the window's end, into events and warnings (may be NULL). */
static int upcoming(km_env_t *env, const char *keyset, const km_plan_key_t *keys, size_t n,
                    const km_store_key_t *recs, const km_policy_t *pol, int64_t now,
                    int64_t to, km_plan_t *plan, json_t *events, json_t *warnings, char *err,
                    size_t errlen)
{
	int r = km_plan_upcoming(plan, keys, n, pol, now, to > now ? to - now : 0);
	if (r != KM_EOK) {
		snprintf(err, errlen, "%s/%s: planning failed: %s", km_env_name(env), keyset,
		         km_strerror(r));
		return r;
	}
	for (size_t i = 0; events != NULL && i < km_plan_n_actions(plan); i++) {
		const km_plan_action_t *a = km_plan_action(plan, i);
		char who[KM_KID_MAX + 16], t[KM_TIME_TEXT_MAX];
		if (a->key < n)
			snprintf(who, sizeof(who), "%s", recs[a->key].kid);
		else    /* numbered as `keymgr plan` numbers them */
			snprintf(who, sizeof(who), "new key #%zu", a->key - n);
		json_array_append_new(events, json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "at",
		                      km_report_time(a->at > now ? a->at : now, t, sizeof(t)), "env",
		                      km_env_name(env), "keyset", keyset, "action",
		                      km_plan_op_name(a->op), "key", who, "due", a->at <= now,
		                      "reason", a->reason));
	}
	for (size_t i = 0; warnings != NULL && i < km_plan_n_warnings(plan); i++) {
		const km_plan_warning_t *w = km_plan_warning(plan, i);
		json_array_append_new(warnings, json_pack("{s:s, s:s, s:s, s:s}", "env",
		                      km_env_name(env), "keyset", keyset, "warning",
		                      km_plan_warn_name(w->code), "message", w->msg));
	}
	return KM_EOK;
}

/* Adds the keys (store and plan) whose life meets the window, with their steps. */
static int add_keys(km_timeline_t *tl, size_t set, const km_store_key_t *recs, size_t n,
                    const km_plan_t *plan, const km_policy_t *pol, const char *standby)
{
	int64_t from, to, now;
	size_t n_new = plan != NULL ? km_plan_n_new_keys(plan) : 0, total = n + n_new;
	size_t n_actions = plan != NULL ? km_plan_n_actions(plan) : 0;
	key_span_t *span = calloc(total + 1, sizeof(*span));
	int r = KM_EOK;
	if (span == NULL)
		return KM_ENOMEM;
	km_timeline_window(tl, &from, &to, &now);
	for (size_t i = 0; i < total; i++) {
		span[i].start = span[i].end = INT64_MAX;
		span[i].tl_key = SIZE_MAX;
	}
	for (size_t i = 0; i < n; i++) {
		for (int s = 0; s < KM_STATE_COUNT; s++)
			if (recs[i].state_at[s] != KM_STORE_TIME_NONE &&
			    recs[i].state_at[s] < span[i].start)
				span[i].start = recs[i].state_at[s];
		if (recs[i].state_at[KM_STATE_DESTROYED] != KM_STORE_TIME_NONE)
			span[i].end = recs[i].state_at[KM_STATE_DESTROYED];
	}
	/* What the plan adds: a new key's start, any key's destruction. */
	for (size_t i = 0; i < n_actions; i++) {
		const km_plan_action_t *a = km_plan_action(plan, i);
		int64_t at = a->at > now ? a->at : now;
		if (a->key >= total)
			continue;
		if (at < span[a->key].start)
			span[a->key].start = at;
		if (a->op == KM_PLAN_DESTROY && at < span[a->key].end)
			span[a->key].end = at;
	}
	for (size_t i = 0; r == KM_EOK && i < total; i++) {
		char label[64], detail[2048];
		const km_store_key_t *k = i < n ? &recs[i] : NULL;
		int64_t last = span[i].end;
		if (k != NULL && k->state_at[KM_STATE_REVOKED] != KM_STORE_TIME_NONE && pol != NULL &&
		    last != INT64_MAX && last < k->state_at[KM_STATE_REVOKED] + pol->jwks_max_age)
			last = k->state_at[KM_STATE_REVOKED] + pol->jwks_max_age;
		if (span[i].start == INT64_MAX || !km_timeline_in_window(tl, span[i].start, last))
			continue;
		if (k != NULL) {
			snprintf(label, sizeof(label), "%.10s%s", k->kid, strlen(k->kid) > 10 ?
			         "\xE2\x80\xA6" : "");
			key_detail(k, detail, sizeof(detail));
		} else {
			snprintf(label, sizeof(label), "new key #%zu", i - n);
			snprintf(detail, sizeof(detail), "a key the planner will make");
		}
		if ((r = km_timeline_key(tl, set, k ? k->kid : "", label, detail,
		                         &span[i].tl_key)) != KM_EOK)
			break;
		for (int s = 0; k != NULL && r == KM_EOK && s < KM_STATE_COUNT; s++)
			if (k->state_at[s] != KM_STORE_TIME_NONE)
				r = km_timeline_step(tl, span[i].tl_key, k->state_at[s], (km_state_t)s);
		if (r == KM_EOK && k != NULL && pol != NULL &&
		    k->state_at[KM_STATE_REVOKED] != KM_STORE_TIME_NONE && pol->jwks_max_age > 0)
			r = km_timeline_exposure(tl, span[i].tl_key, k->state_at[KM_STATE_REVOKED],
			                         k->state_at[KM_STATE_REVOKED] + pol->jwks_max_age);
		if (r == KM_EOK && k != NULL && standby[0] != '\0' && strcmp(k->kid, standby) == 0)
			r = km_timeline_standby(tl, span[i].tl_key);
	}
	for (size_t i = 0; r == KM_EOK && i < n_actions; i++) {
		const km_plan_action_t *a = km_plan_action(plan, i);
		km_state_t st = op_state(a->op);
		if (a->key < total && span[a->key].tl_key != SIZE_MAX && st != KM_STATE_COUNT)
			r = km_timeline_step(tl, span[a->key].tl_key, a->at > now ? a->at : now, st);
	}
	free(span);
	return r;
}

int km_report_timeline_keyset(km_env_t *env, const char *keyset, km_timeline_t *tl,
                              json_t *events, json_t *warnings, char *err, size_t errlen)
{
	km_store_keyset_t ks;
	km_policy_t pol;
	km_plan_key_t *keys = NULL;
	km_store_key_t *recs = NULL;
	km_plan_t *plan = NULL;
	size_t n = 0, set;
	int64_t from, to, now;
	char title[KM_ENV_NAME_MAX + KM_KEYSET_NAME_MAX + 2], sub[KM_OWNER_MAX + KM_PURPOSE_MAX + 48];
	char standby[KM_KID_MAX + 1] = "", ignored[256];
	int r = km_store_keyset_get(km_env_store(env), keyset, &ks, err, errlen);
	if (r == KM_ENOENT)
		snprintf(err, errlen, "unknown key set %s/%s", km_env_name(env), keyset);
	if (r != KM_EOK)
		return r;
	km_timeline_window(tl, &from, &to, &now);
	snprintf(title, sizeof(title), "%s/%s", km_env_name(env), keyset);
	snprintf(sub, sizeof(sub), "%s \xC2\xB7 %s \xC2\xB7 %s", ks.owner, ks.purpose,
	         km_alg_name(ks.alg));
	if ((r = km_timeline_keyset(tl, title, sub, &set)) != KM_EOK)
		return r;
	int pr = km_env_keyset_policy(env, keyset, &pol);
	if ((r = km_apply_load_keys(env, keyset, &keys, &recs, &n, err, errlen)) != KM_EOK)
		goto out;
	if (pr == KM_EOK && pol.standby &&
	    km_keyset_standby(env, keyset, standby, ignored, sizeof(ignored)) != KM_EOK)
		standby[0] = '\0';    /* drawn without its standby rather than not at all */
	if (pr == KM_EOK) {
		if ((r = km_plan_create(&plan)) != KM_EOK ||
		    (r = upcoming(env, keyset, keys, n, recs, &pol, now, to, plan, events, warnings,
		                  err, errlen)) != KM_EOK)
			goto out;
	}
	if ((r = add_keys(tl, set, recs, n, plan, pr == KM_EOK ? &pol : NULL, standby)) != KM_EOK ||
	    (r = add_changes(env, keyset, tl, set, err, errlen)) != KM_EOK)
		goto out;
	if (pr != KM_EOK) {
		/* Never planned with a policy that was not validated: the past only. */
		r = km_timeline_note(tl, set, "not planned: the key set's policy has errors in the "
		                     "configuration");
		if (r == KM_EOK) {
			r = pr;
			if (km_config_check(km_env_config(env), km_env_name(env), keyset, err,
			                    errlen) == KM_EOK)
				snprintf(err, errlen, "%s: %s", title, km_strerror(pr));
		}
	}
out:
	km_plan_free(plan);
	km_store_keys_free(recs);
	free(keys);
	return r;
}

int km_report_timeline_env(km_env_t *env, km_timeline_t *tl, char *err, size_t errlen)
{
	km_store_keyset_t *list = NULL;
	size_t n = 0;
	int r = km_store_keyset_list(km_env_store(env), NULL, &list, &n, err, errlen);
	for (size_t i = 0; r == KM_EOK && i < n; i++) {
		r = km_report_timeline_keyset(env, list[i].name, tl, NULL, NULL, err, errlen);
		if (r == KM_CONFIG_EBROKEN)
			r = KM_EOK;   /* drawn without its plan, and the page says so */
	}
	km_store_keysets_free(list);
	return r;
}
