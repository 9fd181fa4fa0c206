/* SPDX-License-Identifier: Apache-2.0 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/core/apply.h"
#include "keymgr/core/compliance.h"
#include "keymgr/core/readiness.h"
#include "keymgr/core/reconcile.h"
#include "keymgr/store/change_lock.h"

const char *km_finding_level_name(km_finding_level_t level)
{
	switch (level) {
	case KM_FINDING_VIOLATION: return "violation";
	case KM_FINDING_PENDING: return "pending";
	case KM_FINDING_WARNING: return "warning";
	}
	return "unknown";
}

typedef struct {
	km_env_t *env;
	int64_t now;
	km_finding_fn fn;
	void *ctx;
} judge_t;

__attribute__((format(printf, 8, 9)))
static void finding(judge_t *j, km_finding_level_t level, const char *keyset, const char *kid,
                    const char *check, const char *repair, int64_t until, const char *fmt, ...)
{
	char msg[1536];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	km_finding_t f = {
		.level = level, .env = km_env_name(j->env), .keyset = keyset,
		.kid = kid && kid[0] ? kid : NULL, .check = check, .message = msg, .repair = repair,
		.until = level == KM_FINDING_PENDING ? until : 0,
	};
	j->fn(j->ctx, &f);
}

#define DUR(v, buf) km_duration_format((v), (buf), sizeof(buf))

/* Who may own it and what it is for: rules a person resolves. */
static void judge_names(judge_t *j, const km_store_keyset_t *ks, const km_policy_t *pol)
{
	char allowed[512], key[256];
	const char *e = km_env_name(j->env);
	if (ks->owner[0] == '\0')
		finding(j, KM_FINDING_VIOLATION, ks->name, NULL, "owner", "keymgr keyset set-owner",
		        0, "key set has no owner");
	else if (!km_policy_owner_allowed(pol, ks->owner))
		finding(j, KM_FINDING_VIOLATION, ks->name, NULL, "owner", "keymgr keyset set-owner",
		        0, "owner '%s' is not allowed by the policy: allowed are %s (%s)", ks->owner,
		        km_policy_allowed_text(pol, KM_POLICY_F_OWNERS, allowed, sizeof(allowed)),
		        km_policy_config_key(pol, KM_POLICY_F_OWNERS, e, ks->name, key, sizeof(key)));
	if (!km_policy_purpose_allowed(pol, ks->purpose))
		finding(j, KM_FINDING_VIOLATION, ks->name, NULL, "purpose",
		        "keymgr keyset set-purpose", 0, "purpose '%s' is not allowed by the policy: "
		        "allowed are %s (%s)", ks->purpose,
		        km_policy_allowed_text(pol, KM_POLICY_F_PURPOSES, allowed, sizeof(allowed)),
		        km_policy_config_key(pol, KM_POLICY_F_PURPOSES, e, ks->name, key,
		                             sizeof(key)));
	/* served to kube-apiserver (kubernetes: true; docs/kubernetes.md): the class and the
	 * algorithms it takes; the configuration's own rules were checked at load */
	const km_keyset_cfg_t *kc = km_config_keyset(km_env_config(j->env), e, ks->name);
	bool sa = km_purpose_is_service_account(ks->purpose);
	if (kc != NULL && kc->kubernetes && !sa)
		finding(j, KM_FINDING_VIOLATION, ks->name, NULL, "kubernetes",
		        "keymgr keyset set-purpose", 0, "kubernetes: true, but the key set signs %s "
		        "tokens: keymgr-k8s-signer's Sign is refused until its purpose is "
		        "service-account-token (and a rotation makes a key for it)", ks->purpose);
	else if (kc != NULL && kc->kubernetes && !km_alg_kubernetes(ks->alg))
		finding(j, KM_FINDING_VIOLATION, ks->name, NULL, "kubernetes", NULL, 0,
		        "kubernetes: true, but the key set's algorithm %s is not one kube-apiserver "
		        "takes (RS256, ES256, ES384, ES512): create another key set",
		        km_alg_name(ks->alg));
	else if (sa && (kc == NULL || !kc->kubernetes))
		finding(j, KM_FINDING_WARNING, ks->name, NULL, "kubernetes", NULL, 0,
		        "purpose service-account-token, but not kubernetes: true in the configuration: "
		        "keymgr-k8s-signer cannot serve it");
	char gaps[512];
	if (km_keyset_signing_gaps(j->env, ks->name, gaps, sizeof(gaps)) != 0)
		finding(j, KM_FINDING_WARNING, ks->name, NULL, "cannot-sign", NULL, 0, "%s", gaps);
}

/* Does the plan activate a key now (keymgrd or `apply` has not run since it became due)? */
static const km_plan_action_t *due_activation(const km_plan_t *plan)
{
	for (size_t i = 0; i < km_plan_n_actions(plan); i++)
		if (km_plan_action(plan, i)->op == KM_PLAN_ACTIVATE)
			return km_plan_action(plan, i);
	return NULL;
}

/* The keys: algorithms still allowed, rotation on time, the planner's own warnings. */
static void judge_keys(judge_t *j, const km_store_keyset_t *ks, const km_policy_t *pol)
{
	const char *e = km_env_name(j->env);
	char a[32], b[32], c[32], err[512], apply[KM_ENV_NAME_MAX + KM_KEYSET_NAME_MAX + 16];
	snprintf(apply, sizeof(apply), "keymgr apply %s/%s", e, ks->name);
	km_plan_key_t *keys = NULL;
	km_store_key_t *recs = NULL;
	km_plan_t *plan = NULL;
	size_t n = 0;
	if (km_apply_load_keys(j->env, ks->name, &keys, &recs, &n, err, sizeof(err)) != KM_EOK) {
		finding(j, KM_FINDING_VIOLATION, ks->name, NULL, "store", NULL, 0,
		        "cannot read the keys: %s", err);
		return;
	}
	/* Changes record their time up to KM_STORE_CHANGE_MAX_RAISE ahead of the clock (the
	 * change lock keeps an environment's times in order): judge as of the newest such time,
	 * so that a check run right after a change does not take keymgr's own record for a bad
	 * one. A record further ahead is judged as it is (the planner reports it). */
	int64_t now = j->now;
	for (size_t i = 0; i < n; i++)
		for (int s = 0; s < KM_STATE_COUNT; s++)
			if (recs[i].state_at[s] > now &&
			    recs[i].state_at[s] - j->now <= KM_STORE_CHANGE_MAX_RAISE)
				now = recs[i].state_at[s];
	bool has_successor = false;
	const km_store_key_t *active = NULL;
	for (size_t i = 0; i < n; i++) {
		const km_store_key_t *k = &recs[i];
		if (k->state == KM_STATE_ACTIVE)
			active = k;
		if (k->state == KM_STATE_PUBLISHED)
			has_successor = true;
		if ((k->state == KM_STATE_GENERATED || k->state == KM_STATE_PUBLISHED ||
		     k->state == KM_STATE_ACTIVE) && !km_policy_alg_allowed(pol, k->alg, k->rsa_bits))
			finding(j, KM_FINDING_VIOLATION, ks->name, k->kid, "algorithm",
			        "keymgr rotate (a key set of an allowed algorithm)", 0, "%s%s key is no "
			        "longer allowed by the policy (algorithms, min_rsa_bits %u)",
			        km_alg_name(k->alg), k->rsa_bits && k->rsa_bits < pol->min_rsa_bits
			        ? " (RSA too small)" : "", pol->min_rsa_bits);
	}
	if (km_plan_create(&plan) != KM_EOK ||
	    km_plan_compute(plan, keys, n, pol, now) != KM_EOK) {
		finding(j, KM_FINDING_VIOLATION, ks->name, NULL, "plan", NULL, 0, "the key set "
		        "cannot be planned under its policy");
		goto out;
	}
	const km_plan_action_t *due = due_activation(plan);
	int64_t ready = 0;   /* when a published successor is ready (OVERDUE's until) */
	for (size_t i = 0; i < km_plan_n_warnings(plan); i++)
		if (km_plan_warning(plan, i)->code == KM_PLAN_W_OVERDUE)
			ready = km_plan_warning(plan, i)->until;
	if (active != NULL) {
		int64_t t_act = active->state_at[KM_STATE_ACTIVE];
		if (now > t_act + pol->rotation_period) {
			if (due != NULL)
				finding(j, KM_FINDING_VIOLATION, ks->name, active->kid, "active-too-long",
				        apply, 0, "active for %s, longer than rotation_period %s; its "
				        "successor is ready but not activated (due since %s ago)",
				        DUR(now - t_act, a), DUR(pol->rotation_period, b),
				        DUR(now - due->at, c));
			else if (has_successor && ready > now)
				finding(j, KM_FINDING_PENDING, ks->name, active->kid, "active-too-long",
				        NULL, ready, "active for %s, longer than rotation_period %s; its "
				        "successor was published late and activates once published for "
				        "publish_lead", DUR(now - t_act, a), DUR(pol->rotation_period, b));
			else
				finding(j, KM_FINDING_VIOLATION, ks->name, active->kid, "active-too-long",
				        apply, 0, "active for %s, longer than rotation_period %s",
				        DUR(now - t_act, a), DUR(pol->rotation_period, b));
		}
		if (now > t_act + pol->rotation_period - pol->publish_lead && !has_successor)
			finding(j, KM_FINDING_VIOLATION, ks->name, NULL, "rotation-overdue", apply, 0,
			        "the successor should have been published %s ago (rotation_period %s - "
			        "publish_lead %s)", DUR(now - (t_act + pol->rotation_period -
			                                           pol->publish_lead), a),
			        DUR(pol->rotation_period, b), DUR(pol->publish_lead, c));
	}
	for (size_t i = 0; i < km_plan_n_warnings(plan); i++) {
		const km_plan_warning_t *w = km_plan_warning(plan, i);
		const char *name = km_plan_warn_name(w->code);
		switch (w->code) {
		case KM_PLAN_W_NO_STANDBY:
			/* A standby published less than publish_lead ago is ready at `until` by
			 * itself; none at all (the plan makes one: key >= n) needs keymgrd or
			 * `apply`. */
			if (w->until > now && w->key < n)
				finding(j, KM_FINDING_PENDING, ks->name, NULL, name, NULL, w->until,
				        "the standby was published less than publish_lead (%s) ago",
				        DUR(pol->publish_lead, a));
			else
				finding(j, KM_FINDING_VIOLATION, ks->name, NULL, name, apply, 0, "%s",
				        w->msg);
			break;
		case KM_PLAN_W_NO_ACTIVE:
		case KM_PLAN_W_MULTI_ACTIVE:
		case KM_PLAN_W_BAD_RECORD:
			finding(j, KM_FINDING_VIOLATION, ks->name, NULL, name, apply, 0, "%s", w->msg);
			break;
		default:
			break;
		}
	}
out:
	km_plan_free(plan);
	km_store_keys_free(recs);
	free(keys);
}

/* The key set's live keys (confirmed, not destroyed): those a token still holds or should. */
static bool key_live(const km_store_key_t *k)
{
	return !k->pending && k->kid[0] != '\0' && k->state != KM_STATE_DESTROYED;
}

/*
 * One warning per live key of keyset with a token.exception record; with token_exc (the
 * environment's token has that exception now), also for live keys without one (made before
 * keymgr recorded exceptions).
 */
static void judge_exceptions(judge_t *j, const char *keyset, const char *token_label,
                             const char *token_exc)
{
	km_store_t *s = km_env_store(j->env);
	km_store_key_filter_t kf = { .keyset = keyset, .pending = KM_STORE_PENDING_NONE };
	km_store_audit_filter_t af = { .keyset = keyset, .action = "token.exception" };
	km_store_key_t *keys = NULL;
	km_store_audit_event_t *ev = NULL;
	size_t n_keys = 0, n_ev = 0;
	if (km_store_keys_query(s, &kf, &keys, &n_keys, NULL, 0) != KM_EOK ||
	    km_store_audit_query(s, &af, &ev, &n_ev, NULL, 0) != KM_EOK)
		goto out;
	for (size_t i = 0; i < n_keys; i++) {
		const km_store_key_t *k = &keys[i];
		if (!key_live(k))
			continue;
		const km_store_audit_event_t *rec = NULL;
		for (size_t e = 0; e < n_ev && rec == NULL; e++)
			if (strcmp(ev[e].kid, k->kid) == 0)
				rec = &ev[e];
		if (rec != NULL) {
			json_t *a = json_loads(rec->after, 0, NULL);
			const char *exc = json_string_value(json_object_get(a, "exception"));
			const char *lab = json_string_value(json_object_get(a, "token_label"));
			finding(j, KM_FINDING_WARNING, keyset, k->kid, "token-exception", NULL, 0,
			        "%s key made in token '%s', which has a recorded exception: %s "
			        "(recorded in the audit log, event %lld)", km_state_name(k->state),
			        lab ? lab : k->token_label, exc ? exc : "(unreadable record)",
			        (long long)rec->seq);
			json_decref(a);
		} else if (token_exc != NULL && strcmp(k->token_label, token_label) == 0) {
			finding(j, KM_FINDING_WARNING, keyset, k->kid, "token-exception", NULL, 0,
			        "%s key made in token '%s', which has a recorded exception: %s (the key "
			        "was made before keymgr recorded exceptions in the audit log)",
			        km_state_name(k->state), k->token_label, token_exc);
		}
	}
out:
	km_store_audit_events_free(ev, n_ev);
	km_store_keys_free(keys);
}

void km_compliance_exceptions(km_env_t *env, const char *keyset, km_finding_fn fn, void *ctx)
{
	judge_t j = { env, 0, fn, ctx };
	judge_exceptions(&j, keyset, "", NULL);
}

/* Reconciliation's findings, as compliance findings: the same comparison, the same words. */
static void on_recon(void *vctx, const km_recon_event_t *ev)
{
	judge_t *j = vctx;
	char repair[256];
	const char *check = "token-mismatch";
	snprintf(repair, sizeof(repair), "keymgr reconcile %s", ev->env);
	switch (ev->kind) {
	case KM_RECON_QUARANTINE:
		check = "unknown-token-key";
		snprintf(repair, sizeof(repair), "inspect it; destroy it by hand if it is not needed");
		break;
	case KM_RECON_MISSING:
		check = "missing-token-key";
		if (strcmp(ev->state, "active") == 0)
			snprintf(repair, sizeof(repair), "keymgr rotate %s/%s --now --force", ev->env,
			         ev->keyset);
		else
			repair[0] = '\0';   /* retired: it signs nothing, its public key verifies */
		break;
	case KM_RECON_REVOKE_MISSING:
	case KM_RECON_DESTROYED:
		check = "missing-token-key";
		break;
	case KM_RECON_ADOPT:
	case KM_RECON_ABANDON:
		check = "pending-intent";
		break;
	case KM_RECON_PURGE:
		check = "leftover-token-key";
		break;
	case KM_RECON_UNSAFE:
		/* A private key that is not sensitive, is extractable or can decrypt, unwrap or
		 * derive (what a generation cut off inside the token leaves behind). */
		check = "unsafe-token-key";
		if (ev->kid[0] == '\0')
			snprintf(repair, sizeof(repair), "keymgr reconcile %s --remove-unsafe", ev->env);
		else if (ev->keyset[0] == '\0')   /* the audit key */
			snprintf(repair, sizeof(repair), "set environments.%s.audit.token", ev->env);
		else if (strcmp(ev->state, "removed") == 0 || strcmp(ev->state, "revoked") == 0)
			snprintf(repair, sizeof(repair), "keymgr destroy %s --env %s", ev->kid, ev->env);
		else
			snprintf(repair, sizeof(repair), "keymgr revoke %s --env %s --reason ...",
			         ev->kid, ev->env);
		break;
	}
	km_finding_t f = {
		.level = KM_FINDING_VIOLATION, .env = ev->env,
		.keyset = ev->keyset[0] ? ev->keyset : NULL, .kid = ev->kid[0] ? ev->kid : NULL,
		.check = check, .message = ev->detail, .repair = repair[0] ? repair : NULL,
	};
	j->fn(j->ctx, &f);
}

int km_compliance_env(km_env_t *env, int64_t now, km_finding_fn fn, void *ctx)
{
	judge_t j = { env, now, fn, ctx };
	char err[1024] = "";
	km_store_keyset_t *list = NULL;
	size_t n = 0;
	if (km_store_keyset_list(km_env_store(env), NULL, &list, &n, err, sizeof(err)) != KM_EOK) {
		finding(&j, KM_FINDING_VIOLATION, NULL, NULL, "store", NULL, 0, "%s", err);
	} else {
		for (size_t k = 0; k < n; k++) {
			km_policy_t pol;
			if (km_env_keyset_policy(env, list[k].name, &pol) != KM_EOK)
				continue;
			judge_names(&j, &list[k], &pol);
			judge_keys(&j, &list[k], &pol);
			for (size_t i = 0; pol.require_distinct_purpose && i < k; i++)
				if (strcmp(list[i].purpose, list[k].purpose) == 0)
					finding(&j, KM_FINDING_VIOLATION, list[k].name, NULL, "distinct-purpose",
					        "keymgr keyset set-purpose", 0, "shares purpose '%s' with key set "
					        "%s, but the policy requires a distinct purpose", list[k].purpose,
					        list[i].name);
		}
	}

	km_recon_opts_t o = { .dry_run = true, .report = on_recon, .ctx = &j };
	int r = km_reconcile_env(env, now, &o, NULL, err, sizeof(err));
	if (r != KM_EOK)
		finding(&j, KM_FINDING_VIOLATION, NULL, NULL, "token", NULL, 0, "store and token not "
		        "compared: %s", err[0] ? err : km_strerror(r));
	/* Recorded exceptions: from the audit log, and from the token the comparison opened. */
	km_token_t *t = km_env_token_if_open(env);
	km_token_caps_t caps = { 0 };
	km_token_info_t info = { 0 };
	if (t != NULL) {
		km_token_get_caps(t, &caps);
		km_token_get_info(t, &info);
	}
	for (size_t k = 0; k < n; k++)
		judge_exceptions(&j, list[k].name, info.label,
		                 caps.exception[0] ? caps.exception : NULL);
	km_store_keysets_free(list);
	return KM_EOK;
}

/* The serial of the token cfg names, read without login ("" when it cannot be opened). */
static void token_serial(const km_token_cfg_t *cfg, char serial[KM_TOKEN_SERIAL_MAX + 1])
{
	km_token_cfg_t tc = *cfg;
	km_token_t *t = NULL;
	char err[256];
	serial[0] = '\0';
	tc.pin_source = NULL; /* token info only: no login, no PIN needed */
	if (km_token_open(&tc, &t, err, sizeof(err)) != KM_EOK)
		return;
	km_token_info_t info;
	km_token_get_info(t, &info);
	snprintf(serial, KM_TOKEN_SERIAL_MAX + 1, "%s", info.serial);
	km_token_free(t);
}

/* One token an environment uses: its own (audit false) or its audit token. */
typedef struct {
	const km_env_cfg_t *env;
	bool audit;
	char serial[KM_TOKEN_SERIAL_MAX + 1];
} used_token_t;

void km_compliance_config(const km_config_t *cfg, const char *only, km_finding_fn fn,
                          void *ctx)
{
	size_t n_envs = km_config_env_count(cfg), n = 0;
	used_token_t *used = calloc(2 * n_envs + 1, sizeof(*used));
	if (used == NULL)
		return;
	for (size_t i = 0; i < n_envs; i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		for (int audit = 0; audit < 2; audit++) {
			if (audit && !e->has_audit_token)
				continue;
			used_token_t *u = &used[n++];
			u->env = e;
			u->audit = audit;
			token_serial(audit ? &e->audit_token : &e->token, u->serial);
			for (size_t k = 0; u->serial[0] && k + 1 < n; k++) {
				if (strcmp(used[k].serial, u->serial) != 0 ||
				    (only != NULL && strcmp(only, e->name) != 0 &&
				     strcmp(only, used[k].env->name) != 0))
					continue;
				char msg[512];
				/* Two environments on one device, or an audit token that is the
				 * environment's own token (its PIN then opens the audit key too). */
				if (used[k].env == e)
					snprintf(msg, sizeof(msg), "its audit token is its own token (serial "
					         "%s): the environment's PIN opens the audit key too",
					         u->serial);
				else
					snprintf(msg, sizeof(msg), "%s the same token (serial %s) as %s"
					         "environment '%s'", u->audit ? "its audit token is" : "uses",
					         u->serial, used[k].audit ? "the audit token of " : "",
					         used[k].env->name);
				km_finding_t f = {
					.level = KM_FINDING_VIOLATION, .env = e->name, .check = "shared-token",
					.message = msg, .repair = used[k].env == e
					? "give the audit key another token or slot, with its own PIN"
					: "give each environment its own token",
				};
				fn(ctx, &f);
			}
		}
	}
	free(used);
}
