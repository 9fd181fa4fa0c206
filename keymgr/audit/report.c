/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ownership review (`keymgr audit report`): every key set and key as the audit log tells
 * it (replayed, so it is as tamper-evident as the chain): the owner and purpose each key was
 * made for and the key set's current ones, who did each step of its life (the actor of that
 * step's event), rotation compliance against the policy, until when verifiers' cached JWKS may
 * still hold a key that left the JWKS, and with --at the keys verifiers trusted at that moment.
 * The JSON is the schema of docs/auditor-guide.md (KM_AUDIT_REPORT_VERSION).
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

/* The steps of a key's life, by the state each one enters (times{}, steps{}). */
static const char *const step_names[KM_STATE_COUNT] = {
	"generated", "published", "activated", "retired", "removed", "destroyed", "revoked",
};

static json_t *actor_json(const km_store_actor_t *a)
{
	return json_pack("{s:s, s:I, s:s, s:s, s:I}", "user", a->user, "uid", (json_int_t)a->uid,
	                 "host", a->host, "via", a->via, "pid", (json_int_t)a->pid);
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
	return json_pack("{s:I, s:o, s:s, s:s, s:s, s:o, s:s, s:o, s:s}", "seq", (json_int_t)e->seq,
	                 "time", iso(e->at), "action", e->action, "from", from, "to", to, "by",
	                 actor_str(&e->actor), "via", e->actor.via, "actor", actor_json(&e->actor),
	                 "reason", e->reason);
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

/* What the log says about one key: the event of each step, the owner and purpose it was made
 * for, and the event that took it out of the JWKS. Appends its events to hist. */
typedef struct {
	const km_store_audit_event_t *step[KM_STATE_COUNT];   /* NULL: no event (or never) */
	const km_store_audit_event_t *left;                   /* NULL: has not left the JWKS */
	bool made_known;                                      /* its key.intent is in the log */
	char owner[KM_OWNER_MAX + 1];                         /* at its creation */
	char purpose[KM_PURPOSE_MAX + 1];
	const char *revoke_reason;
} key_log_t;

static bool state_of(const char *json_text, km_state_t *ret)
{
	char name[32];
	return km_state_from_name(jstr(json_text, "state", name, sizeof(name)), ret) == KM_EOK;
}

static void key_log(const km_audit_key_state_t *k, const km_store_audit_event_t *ev, size_t n,
                    json_t *hist, key_log_t *kl)
{
	memset(kl, 0, sizeof(*kl));
	kl->revoke_reason = "";
	for (size_t i = 0; i < n; i++) {
		const km_store_audit_event_t *e = &ev[i];
		km_state_t from, to;
		if (!key_event_of(e, k))
			continue;
		json_array_append_new(hist, history_entry(e, "state"));
		if (strcmp(e->action, "key.intent") == 0) {
			kl->step[KM_STATE_GENERATED] = e;
			kl->made_known = true;
			jstr(e->after, "owner", kl->owner, sizeof(kl->owner));
			jstr(e->after, "purpose", kl->purpose, sizeof(kl->purpose));
			continue;
		}
		/* key.confirm assigns the kid: no step. The replay checked every state name. */
		if (!state_of(e->before, &from) || !state_of(e->after, &to) || from == to)
			continue;
		kl->step[to] = e;
		if (to == KM_STATE_REVOKED)
			kl->revoke_reason = e->reason;
		if (kl->left == NULL && km_state_in_jwks(from) && !km_state_in_jwks(to))
			kl->left = e;
	}
}

/*
 * jwks_max_age as it was in force for a change: the key set's (else the environment's) value
 * in the policy.load event of the change's policy hash. -1 when the log does not hold it.
 */
static int64_t logged_max_age(const km_store_audit_event_t *ev, size_t n, const char *hash,
                              const char *keyset)
{
	for (size_t i = 0; hash[0] != '\0' && i < n; i++) {
		if (strcmp(ev[i].action, "policy.load") != 0 || strcmp(ev[i].policy_hash, hash) != 0)
			continue;
		json_t *j = json_loads(ev[i].after, 0, NULL);
		json_t *pol = json_object_get(j, "policy");
		json_t *v = json_object_get(json_object_get(json_object_get(pol, "keysets"), keyset),
		                            "jwks_max_age");
		if (!json_is_integer(v))
			v = json_object_get(json_object_get(pol, "policy"), "jwks_max_age");
		int64_t r = json_is_integer(v) && json_integer_value(v) >= 0 ? json_integer_value(v)
		                                                              : -1;
		json_decref(j);
		return r;
	}
	return -1;
}

/* A key that left the JWKS, and until when verifiers' cached copies may still hold it. */
typedef struct {
	int64_t left_at;           /* KM_STORE_TIME_NONE: still in the JWKS, or never in it */
	int64_t max_age;           /* jwks_max_age in force when it left */
	const char *from;          /* "log" (the policy of the leaving event) or "config" */
	int64_t until;             /* left_at + max_age */
} cache_window_t;

static void cache_window(const km_audit_key_state_t *k, const key_log_t *kl,
                         const km_store_audit_event_t *ev, size_t n, const km_policy_t *pol,
                         cache_window_t *w)
{
	const char *hash = "";
	w->left_at = w->until = KM_STORE_TIME_NONE;
	w->max_age = 0;
	w->from = NULL;
	if (kl->left != NULL) {
		w->left_at = kl->left->at;
		hash = kl->left->policy_hash;
	} else if (!km_state_in_jwks(k->state) && k->at[KM_STATE_PUBLISHED] != KM_STORE_TIME_NONE) {
		/* It left before the log began (store.baseline): its recorded dates tell when. */
		static const km_state_t gone[] = { KM_STATE_REMOVED, KM_STATE_REVOKED };
		for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
			if (k->at[gone[i]] != KM_STORE_TIME_NONE &&
			    (w->left_at == KM_STORE_TIME_NONE || k->at[gone[i]] < w->left_at))
				w->left_at = k->at[gone[i]];
	}
	if (w->left_at == KM_STORE_TIME_NONE)
		return;
	int64_t logged = logged_max_age(ev, n, hash, k->keyset);
	if (logged < 0 && pol == NULL) {
		w->from = "unknown";   /* not in the log, and the key set's policy has errors */
		return;
	}
	w->max_age = logged >= 0 ? logged : pol->jwks_max_age;
	w->from = logged >= 0 ? "log" : "config";
	w->until = w->left_at + w->max_age;
}

/* "jwks": served at `at`; "cache": out of the JWKS for less than jwks_max_age, so a verifier
 * that cached an earlier JWKS may still accept it; "none". */
static const char *trust_at(const km_audit_key_state_t *then, const cache_window_t *w,
                            int64_t at)
{
	if (then != NULL && km_audit_key_trusted(then))
		return "jwks";
	if (w->left_at != KM_STORE_TIME_NONE && w->left_at <= at && at < w->until)
		return "cache";
	return "none";
}

/* One step: when, which event, who, why; a date without an event predates the log. */
static json_t *step_json(const km_store_audit_event_t *e, int64_t at)
{
	if (e != NULL)
		return json_pack("{s:o, s:I, s:o, s:s}", "at", iso(e->at), "seq", (json_int_t)e->seq,
		                 "actor", actor_json(&e->actor), "reason", e->reason);
	if (at == KM_STORE_TIME_NONE)
		return json_null();
	return json_pack("{s:o, s:n, s:n, s:s}", "at", iso(at), "seq", "actor", "reason", "");
}

static json_t *opt_str(const char *v)
{
	return v != NULL ? json_string(v) : json_null();
}

static json_t *key_json(const km_audit_key_state_t *k, const km_audit_keyset_state_t *ks,
                        const km_audit_replay_t *at_state, const km_store_audit_event_t *ev,
                        size_t n, const km_policy_t *pol, const km_audit_report_opts_t *o,
                        json_t *findings, json_t *cached)
{
	json_t *times = json_object(), *steps = json_object(), *hist = json_array();
	key_log_t kl;
	cache_window_t w;
	key_log(k, ev, n, hist, &kl);
	cache_window(k, &kl, ev, n, pol, &w);
	for (int s = 0; s < KM_STATE_COUNT; s++) {
		json_object_set_new(times, step_names[s], iso(k->at[s]));
		json_object_set_new(steps, step_names[s], step_json(kl.step[s], k->at[s]));
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
	bool left = w.left_at != KM_STORE_TIME_NONE;
	json_t *j = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s, s:o,"
	                      " s:o, s:o, s:o, s:o, s:o}",
	                      "kid", k->kid, "cka_id", k->cka_id, "state", km_state_name(k->state),
	                      "pending", k->pending, "owner", ks->owner, "purpose", ks->purpose,
	                      "owner_at_creation", opt_str(kl.made_known ? kl.owner : NULL),
	                      "purpose_at_creation", opt_str(kl.made_known ? kl.purpose : NULL),
	                      "times", times, "steps", steps, "revoke_reason", kl.revoke_reason,
	                      "rotation", rot, "signed_for",
	                      signed_for >= 0 ? dur(signed_for) : json_null(),
	                      "left_jwks_at", iso(w.left_at),
	                      "jwks_max_age", left ? dur(w.max_age) : json_null(),
	                      "jwks_max_age_from", opt_str(w.from),
	                      "cached_until", iso(w.until), "history", hist);
	if (j != NULL && o->has_at) {
		const km_audit_key_state_t *then = find_key(at_state, k->cka_id);
		const char *trust = trust_at(then, &w, o->at);
		json_object_set_new(j, "state_at", then ? json_string(km_state_name(then->state))
		                                        : json_null());
		json_object_set_new(j, "trusted_at", json_boolean(strcmp(trust, "jwks") == 0));
		json_object_set_new(j, "trust_at", json_string(trust));
		if (strcmp(trust, "cache") == 0)
			json_array_append_new(cached, json_pack("{s:s, s:s, s:o, s:o}", "kid", k->kid,
			                      "keyset", k->keyset, "left_jwks_at", iso(w.left_at),
			                      "cached_until", iso(w.until)));
	}
	return j;
}

static json_t *keyset_json(km_env_t *env, const km_audit_keyset_state_t *ks,
                           const km_audit_replay_t *all, const km_audit_replay_t *at_state,
                           const km_store_audit_event_t *ev, size_t n,
                           const km_audit_report_opts_t *o, json_t *cached)
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
		json_array_append_new(keys, key_json(k, ks, at_state, ev, n, have_pol ? &pol : NULL, o,
		                                     findings, cached));
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
	json_t *sets = json_array(), *cached = json_array();
	for (size_t i = 0; sets != NULL && i < all.n_keysets; i++)
		json_array_append_new(sets, keyset_json(env, &all.keysets[i], &all, &then, ev, n, o,
		                                        cached));
	json_t *audit = json_pack("{s:b, s:I, s:o, s:s, s:I, s:o, s:I}", "verified", v.ok,
	                          "events", (json_int_t)v.events, "first_bad_seq",
	                          v.ok ? json_null() : json_integer(v.first_bad_seq), "problem",
	                          v.problem, "checkpoint_seq", (json_int_t)v.checkpoint_seq,
	                          "checkpoint_at", v.checkpoint_seq ? iso(v.checkpoint_at) : json_null(),
	                          "unsigned_events", (json_int_t)(v.head_seq - v.checkpoint_seq));
	root = json_pack("{s:i, s:s, s:o, s:o, s:o, s:o}", "version", KM_AUDIT_REPORT_VERSION,
	                 "env", km_env_name(env), "generated_at", iso(o->now), "at",
	                 o->has_at ? iso(o->at) : json_null(), "audit", audit, "keysets", sets);
	if (root != NULL && o->has_at) {
		json_t *kids = json_array();
		for (size_t i = 0; i < then.n_keys; i++)
			if (km_audit_key_trusted(&then.keys[i]))
				json_array_append_new(kids, json_string(then.keys[i].kid));
		km_store_jwks_version_t ver;
		char ignored[256];
		bool have = km_audit_jwks_version(s, 0, o->at, &ver, ignored, sizeof(ignored)) == KM_EOK;
		json_object_set_new(root, "trusted_at", json_pack("{s:o, s:o, s:o, s:O}", "at",
		                    iso(o->at), "jwks_serial", have ? json_integer((json_int_t)ver.serial)
		                    : json_null(), "kids", kids, "cached", cached));
		if (have)
			free(ver.kids);
	}
	json_decref(cached);
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
