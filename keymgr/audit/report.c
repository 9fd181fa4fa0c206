/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ownership review (`keymgr audit report`): every key set and key as the audit log tells
 * it (replayed, so it is as tamper-evident as the chain), with who did what, rotation
 * compliance against the policy, and with --at the keys verifiers trusted at that moment.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"

static json_t *iso(int64_t t)
{
	char buf[32];
	struct tm tm;
	time_t tt = (time_t)t;
	if (t == KM_STORE_TIME_NONE || gmtime_r(&tt, &tm) == NULL)
		return json_null();
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static json_t *dur(int64_t secs)
{
	char buf[48];
	return json_string(km_duration_format(secs, buf, sizeof(buf)));
}

static json_t *actor_str(const km_store_actor_t *a)
{
	char buf[KM_STORE_ACTOR_USER_MAX + KM_STORE_ACTOR_HOST_MAX + 40];
	snprintf(buf, sizeof(buf), "%s(%lld)@%s", a->user[0] ? a->user : "?", (long long)a->uid,
	         a->host);
	return json_string(buf);
}

static const char *jstr(const char *json_text, const char *member, char *buf, size_t len)
{
	json_t *j = json_text && json_text[0] ? json_loads(json_text, 0, NULL) : NULL;
	const char *v = json_string_value(json_object_get(j, member));
	snprintf(buf, len, "%s", v ? v : "");
	json_decref(j);
	return buf;
}

/* One history entry: what, from -> to, by whom, why. */
static json_t *history_entry(const km_store_audit_event_t *e, const char *field)
{
	char from[128], to[128];
	jstr(e->before, field, from, sizeof(from));
	jstr(e->after, field, to, sizeof(to));
	if (strcmp(from, to) == 0)
		from[0] = '\0';     /* e.g. key.confirm: no state change, the kid was assigned */
	return json_pack("{s:I, s:o, s:s, s:s, s:s, s:o, s:s, s:s}", "seq", (json_int_t)e->seq,
	                 "time", iso(e->at), "action", e->action, "from", from, "to", to, "by",
	                 actor_str(&e->actor), "via", e->actor.via, "reason", e->reason);
}

static bool key_event_of(const km_store_audit_event_t *e, const km_audit_key_state_t *k)
{
	char cka[2 * KM_STORE_CKA_ID_MAX + 1];
	if (strncmp(e->action, "key.", 4) != 0)
		return false;
	jstr(e->after, "cka_id", cka, sizeof(cka));
	return strcmp(cka, k->cka_id) == 0;
}

static const km_audit_key_state_t *find_key(const km_audit_replay_t *r, const char *cka)
{
	for (size_t i = 0; i < r->n_keys; i++)
		if (strcmp(r->keys[i].cka_id, cka) == 0)
			return &r->keys[i];
	return NULL;
}

/* Rotation compliance of one key up to ref; appends findings. */
static const char *rotation(const km_audit_key_state_t *k, const km_policy_t *pol, int64_t ref,
                            int64_t *signed_for, json_t *findings)
{
	int64_t from = k->at[KM_STATE_ACTIVE];
	*signed_for = -1;
	if (from == KM_STORE_TIME_NONE || from > ref)
		return "never active";
	int64_t end = ref;
	if (k->at[KM_STATE_RETIRED] != KM_STORE_TIME_NONE && k->at[KM_STATE_RETIRED] < end)
		end = k->at[KM_STATE_RETIRED];
	if (k->at[KM_STATE_REVOKED] != KM_STORE_TIME_NONE && k->at[KM_STATE_REVOKED] < end)
		end = k->at[KM_STATE_REVOKED];
	*signed_for = end - from;
	if (pol == NULL)
		return "unknown";   /* the key set's policy has errors (a partial configuration) */
	if (end - from <= pol->rotation_period)
		return "ok";
	char a[48], b[48], c[48];
	char msg[300];
	snprintf(msg, sizeof(msg), "key %s signed for %s, longer than rotation_period %s "
	         "(overdue by %s)", k->kid, km_duration_format(end - from, a, sizeof(a)),
	         km_duration_format(pol->rotation_period, b, sizeof(b)),
	         km_duration_format(end - from - pol->rotation_period, c, sizeof(c)));
	json_array_append_new(findings, json_string(msg));
	return "overdue";
}

static json_t *key_json(const km_audit_key_state_t *k, const km_audit_replay_t *at_state,
                        const km_store_audit_event_t *ev, size_t n, const km_policy_t *pol,
                        const km_audit_report_opts_t *o, json_t *findings)
{
	json_t *times = json_object(), *hist = json_array();
	static const char *const names[KM_STATE_COUNT] = {
		"generated", "published", "activated", "retired", "removed", "destroyed", "revoked",
	};
	for (int s = 0; s < KM_STATE_COUNT; s++)
		json_object_set_new(times, names[s], iso(k->at[s]));
	const char *revoke_reason = "";
	for (size_t i = 0; i < n; i++) {
		if (!key_event_of(&ev[i], k))
			continue;
		json_array_append_new(hist, history_entry(&ev[i], "state"));
		if (strcmp(ev[i].action, "key.transition") == 0 ||
		    strcmp(ev[i].action, "key.abandon") == 0) {
			char to[32];
			if (strcmp(jstr(ev[i].after, "state", to, sizeof(to)), "revoked") == 0)
				revoke_reason = ev[i].reason;
		}
	}
	int64_t ref = o->has_at ? o->at : o->now;
	int64_t signed_for;
	const char *rot = rotation(k, pol, ref, &signed_for, findings);
	/* Removed keys are destroyed destroy_after later: report the token still holding one. */
	if (pol != NULL && k->state == KM_STATE_REMOVED && !o->has_at &&
	    ref - k->at[KM_STATE_REMOVED] > pol->destroy_after) {
		char a[48], msg[256];
		snprintf(msg, sizeof(msg), "key %s was removed %s ago but is not destroyed "
		         "(destroy_after %s)", k->kid, km_duration_format(ref - k->at[KM_STATE_REMOVED],
		         a, sizeof(a)), km_duration_format(pol->destroy_after, a + 24, 24));
		json_array_append_new(findings, json_string(msg));
	}
	json_t *j = json_pack("{s:s, s:s, s:s, s:b, s:o, s:s, s:s, s:o, s:o}", "kid", k->kid,
	                      "cka_id", k->cka_id, "state", km_state_name(k->state), "pending",
	                      k->pending, "times", times, "revoke_reason", revoke_reason,
	                      "rotation", rot, "signed_for",
	                      signed_for >= 0 ? dur(signed_for) : json_null(), "history", hist);
	if (j != NULL && o->has_at) {
		const km_audit_key_state_t *then = find_key(at_state, k->cka_id);
		json_object_set_new(j, "state_at", then ? json_string(km_state_name(then->state))
		                                        : json_null());
		json_object_set_new(j, "trusted_at", json_boolean(then && km_audit_key_trusted(then)));
	}
	return j;
}

static json_t *keyset_json(km_env_t *env, const km_audit_keyset_state_t *ks,
                           const km_audit_replay_t *all, const km_audit_replay_t *at_state,
                           const km_store_audit_event_t *ev, size_t n,
                           const km_audit_report_opts_t *o)
{
	km_policy_t pol;
	km_store_keyset_t row;
	char by[160] = "", created_by[KM_STORE_WHO_MAX + 1] = "";
	json_t *findings = json_array(), *keys = json_array(), *hist = json_array();
	memset(&pol, 0, sizeof(pol));
	/* A policy with errors (a partial configuration) is not checked against, and says so. */
	bool have_pol = km_env_keyset_policy(env, ks->name, &pol) == KM_EOK;
	if (!have_pol)
		json_array_append_new(findings, json_pack("s", "the key set's policy has errors in "
		                                          "the configuration: not checked"));
	bool have_row = km_store_keyset_get(km_env_store(env), ks->name, &row, NULL, 0) == KM_EOK;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(ev[i].action, "keyset.", 7) != 0 || strcmp(ev[i].keyset, ks->name) != 0)
			continue;
		if (strcmp(ev[i].action, "keyset.create") == 0) {
			json_t *a = actor_str(&ev[i].actor);
			snprintf(by, sizeof(by), "%s", json_string_value(a));
			json_decref(a);
			jstr(ev[i].after, "created_by", created_by, sizeof(created_by));
			json_array_append_new(hist, history_entry(&ev[i], "owner"));
		} else {
			json_array_append_new(hist, history_entry(&ev[i], ev[i].action + 7));
		}
	}
	km_alg_t alg = KM_ALG_NONE;
	if (have_pol && km_alg_from_name(ks->alg, &alg) == KM_EOK &&
	    !km_policy_alg_allowed(&pol, alg, have_row ? row.rsa_bits : 0))
		json_array_append_new(findings, json_pack("s", "the policy no longer allows the key "
		                                          "set's algorithm"));
	if (have_pol && !km_policy_owner_allowed(&pol, ks->owner))
		json_array_append_new(findings, json_pack("s", "the owner is not allowed by the "
		                                          "policy"));
	bool any = false, active = false;
	for (size_t i = 0; i < all->n_keys; i++) {
		const km_audit_key_state_t *k = &all->keys[i];
		if (strcmp(k->keyset, ks->name) != 0)
			continue;
		/* Keys made after --at are listed too, with state_at null. */
		any = true;
		const km_audit_replay_t *ref_state = o->has_at ? at_state : all;
		const km_audit_key_state_t *r = find_key(ref_state, k->cka_id);
		active |= r != NULL && r->state == KM_STATE_ACTIVE;
		json_array_append_new(keys, key_json(k, at_state, ev, n, have_pol ? &pol : NULL, o,
		                                     findings));
	}
	if (any && !active)
		json_array_append_new(findings, json_pack("s", "no active key"));
	json_t *policy = !have_pol ? json_null()
	               : json_pack("{s:o, s:o, s:o, s:o, s:o}", "rotation_period",
	                           dur(pol.rotation_period), "publish_lead", dur(pol.publish_lead),
	                           "retire_retention", dur(pol.retire_retention), "destroy_after",
	                           dur(pol.destroy_after), "jwks_max_age", dur(pol.jwks_max_age));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:o, s:o, s:b, s:o, s:o}",
	                 "name", ks->name, "alg", ks->alg, "owner", ks->owner, "purpose",
	                 ks->purpose, "description", have_row ? row.description : "", "created_at",
	                 iso(ks->created_at), "created_by", created_by, "created_by_actor", by,
	                 "policy", policy, "history", hist, "compliant",
	                 json_array_size(findings) == 0, "findings", findings, "keys", keys);
}

static int cmp_sets(const void *a, const void *b)
{
	return strcmp(((const km_audit_keyset_state_t *)a)->name,
	              ((const km_audit_keyset_state_t *)b)->name);
}

int km_audit_report(km_env_t *env, const km_audit_report_opts_t *o, json_t **ret, char *err,
                    size_t errlen)
{
	km_store_t *s = km_env_store(env);
	km_store_audit_event_t *ev = NULL;
	km_audit_replay_t all = { 0 }, then = { 0 };
	km_audit_verify_t v;
	size_t n = 0;
	json_t *root = NULL;
	int r = km_audit_verify(s, NULL, &v, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = km_store_audit_query(s, NULL, &ev, &n, err, errlen)) != KM_EOK)
		return r;
	if ((r = km_audit_replay(ev, n, 0, &all, NULL, err, errlen)) != KM_EOK)
		goto out;
	if (o->has_at && (r = km_audit_replay(ev, n, o->at, &then, NULL, err, errlen)) != KM_EOK)
		goto out;
	qsort(all.keysets, all.n_keysets, sizeof(*all.keysets), cmp_sets);
	json_t *sets = json_array();
	for (size_t i = 0; sets != NULL && i < all.n_keysets; i++)
		json_array_append_new(sets, keyset_json(env, &all.keysets[i], &all, &then, ev, n, o));
	json_t *audit = json_pack("{s:b, s:I, s:o, s:s, s:I, s:o, s:I}", "verified", v.ok,
	                          "events", (json_int_t)v.events, "first_bad_seq",
	                          v.ok ? json_null() : json_integer(v.first_bad_seq), "problem",
	                          v.problem, "checkpoint_seq", (json_int_t)v.checkpoint_seq,
	                          "checkpoint_at", v.checkpoint_seq ? iso(v.checkpoint_at) : json_null(),
	                          "unsigned_events", (json_int_t)(v.head_seq - v.checkpoint_seq));
	root = json_pack("{s:s, s:o, s:o, s:o, s:o}", "env", km_env_name(env), "generated_at",
	                 iso(o->now), "at", o->has_at ? iso(o->at) : json_null(), "audit", audit,
	                 "keysets", sets);
	if (root != NULL && o->has_at) {
		json_t *kids = json_array();
		for (size_t i = 0; i < then.n_keys; i++)
			if (km_audit_key_trusted(&then.keys[i]))
				json_array_append_new(kids, json_string(then.keys[i].kid));
		km_store_jwks_version_t ver;
		char ignored[256];
		bool have = km_audit_jwks_version(s, 0, o->at, &ver, ignored, sizeof(ignored)) == KM_EOK;
		json_object_set_new(root, "trusted_at", json_pack("{s:o, s:o, s:o}", "at", iso(o->at),
		                    "jwks_serial", have ? json_integer((json_int_t)ver.serial)
		                                        : json_null(), "kids", kids));
		if (have)
			free(ver.kids);
	}
	if (root == NULL) {
		r = KM_ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	*ret = root;
out:
	km_audit_replay_free(&all);
	km_audit_replay_free(&then);
	km_store_audit_events_free(ev, n);
	return r;
}
