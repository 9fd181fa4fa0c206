/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reply to a status request: per environment and key set, the active key, the next event
 * the planner schedules, failures, and for every pending (published, not yet active) key the
 * propagation evidence: which verifiers fetched a JWKS holding it and which did not.
 * Built on the main thread from the daemon's state, km_http's verifier table and one planner
 * run per key set (no token work). Times are RFC 3339 UTC strings (null for "never"), like
 * every JSON keymgr prints; durations ("age", "in", "max_age") are seconds.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/common/timefmt.h"
#include "keymgr/core/apply.h"
#include "keymgr/daemon/lease.h"
#include "keymgr/daemon/pickups.h"
#include "keymgr/daemon/state.h"
#include "keymgr/daemon/status.h"

/* t as an RFC 3339 string, or null when it is unset (0, or INT64_MAX for "never"). */
static json_t *time_json(int64_t t)
{
	char buf[KM_TIME_TEXT_MAX];
	if (t <= 0 || t == INT64_MAX || km_time_rfc3339(t, buf, sizeof(buf))[0] == '\0')
		return json_null();
	return json_string(buf);
}

static json_t *next_event(kd_env_t *e, const kd_keyset_t *ks, int64_t now)
{
	km_policy_t pol;
	km_plan_key_t *keys = NULL;
	km_store_key_t *recs = NULL;
	km_plan_t *plan = NULL;
	size_t n = 0;
	char err[256];
	json_t *j = json_null();
	if (km_env_keyset_policy(e->env, ks->name, &pol) != KM_EOK ||
	    km_apply_load_keys(e->env, ks->name, &keys, &recs, &n, err, sizeof(err)) != KM_EOK)
		return j;
	int64_t horizon = 2 * pol.rotation_period + pol.retire_retention + pol.destroy_after;
	if (km_plan_create(&plan) == KM_EOK &&
	    km_plan_upcoming(plan, keys, n, &pol, now, horizon) == KM_EOK &&
	    km_plan_n_actions(plan) > 0) {
		const km_plan_action_t *a = km_plan_action(plan, 0);
		json_decref(j);
		j = json_pack("{s:s, s:o, s:I, s:s, s:s}", "action", km_plan_op_name(a->op), "at",
		              time_json(a->at), "in", (json_int_t)(a->at > now ? a->at - now : 0),
		              "kid", a->key < n ? recs[a->key].kid : "", "reason", a->reason);
	}
	km_plan_free(plan);
	km_store_keys_free(recs);
	free(keys);
	return j;
}

/* Everyone who fetched the key set's or the environment's document, and the listed names. */
static json_t *evidence(kd_daemon_t *d, kd_env_t *e, const kd_keyset_t *ks, const kd_key_t *k,
                        const km_policy_t *pol)
{
	char path[KM_HTTP_PATH_MAX + 1];
	km_http_verifier_t *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	kd_keyset_path(e, ks->name, path, sizeof(path));
	if (kd_pickups_rows(d, e, e->path, &a, &na) != KM_EOK)
		na = 0;
	if (kd_pickups_rows(d, e, path, &b, &nb) != KM_EOK)
		nb = 0;
	json_t *vs = json_object();   /* id -> {named, serial, last_seen, seen} */
	for (size_t i = 0; i < na + nb; i++) {
		const km_http_verifier_t *r = i < na ? &a[i] : &b[i - na];
		json_t *o = json_object_get(vs, r->id);
		if (o == NULL) {
			o = json_pack("{s:b, s:I, s:I, s:b}", "named", r->named, "serial", (json_int_t)0,
			              "last_seen", (json_int_t)0, "by_304", 0);
			json_object_set_new(vs, r->id, o);
		}
		if (r->serial > json_integer_value(json_object_get(o, "serial")))
			json_object_set_new(o, "serial", json_integer(r->serial));
		if ((json_int_t)r->last_seen > json_integer_value(json_object_get(o, "last_seen"))) {
			json_object_set_new(o, "last_seen", json_integer((json_int_t)r->last_seen));
			json_object_set_new(o, "by_304", json_boolean(r->by_304));
		}
	}
	free(a);
	free(b);
	for (size_t i = 0; i < pol->n_activate_when_seen_by; i++)
		if (json_object_get(vs, pol->activate_when_seen_by[i]) == NULL)
			json_object_set_new(vs, pol->activate_when_seen_by[i],
			                    json_pack("{s:b, s:I, s:I, s:b}", "named", 1, "serial",
			                              (json_int_t)0, "last_seen", (json_int_t)0, "by_304", 0));
	json_t *seen = json_array(), *not_seen = json_array(), *list = json_array();
	const char *id;
	json_t *o;
	json_object_foreach(vs, id, o) {
		bool s = k->first_serial > 0 &&
		         json_integer_value(json_object_get(o, "serial")) >= k->first_serial;
		json_object_set_new(o, "seen", json_boolean(s));
		json_object_set_new(o, "id", json_string(id));
		/* Compared as seconds above; shown as a time like every other. */
		json_object_set_new(o, "last_seen",
		                    time_json((int64_t)json_integer_value(json_object_get(o, "last_seen"))));
		json_array_append(list, o);
		json_array_append_new(s ? seen : not_seen, json_string(id));
	}
	json_decref(vs);
	json_t *req = json_array();
	for (size_t i = 0; i < pol->n_activate_when_seen_by; i++)
		json_array_append_new(req, json_string(pol->activate_when_seen_by[i]));
	return json_pack("{s:s, s:o, s:I, s:o, s:o, s:o, s:o, s:o}", "kid", k->kid,
	                 "published_at", time_json(k->state_at), "first_serial",
	                 (json_int_t)k->first_serial, "served_at", time_json(k->served_at),
	                 "required", req, "seen_by", seen, "not_seen_by", not_seen, "verifiers",
	                 list);
}

static json_t *keyset_json(kd_daemon_t *d, kd_env_t *e, const kd_keyset_t *ks, int64_t now)
{
	km_policy_t pol;
	if (km_env_keyset_policy(e->env, ks->name, &pol) != KM_EOK)
		pol = e->cfg->policy;
	json_t *active = json_null(), *pending = json_array();
	for (size_t i = 0; i < ks->n_keys; i++) {
		const kd_key_t *k = &ks->keys[i];
		if (k->state == KM_STATE_ACTIVE) {
			json_decref(active);
			active = json_pack("{s:s, s:o, s:I}", "kid", k->kid, "since",
			                   time_json(k->state_at), "age", (json_int_t)(now - k->state_at));
		} else if (k->state == KM_STATE_PUBLISHED) {
			json_array_append_new(pending, evidence(d, e, ks, k, &pol));
		}
	}
	int64_t wake = ks->next_wake > ks->retry_at ? ks->next_wake : ks->retry_at;
	return json_pack("{s:s, s:o, s:o, s:o, s:I, s:s?, s:o, s:b, s:I, s:o, s:I}",
	                 "name", ks->name, "active", active, "next_event", next_event(e, ks, now),
	                 "next_wake", time_json(wake),
	                 "failures", (json_int_t)ks->failures, "error", ks->error,
	                 "retry_at", time_json(ks->retry_at), "deferred", ks->deferred,
	                 "max_age", (json_int_t)ks->max_age, "pending", pending,
	                 "ceiling_activations", (json_int_t)ks->ceiling_total);
}

/* The environment's leader lease as this node sees it (null: a store without one). */
static json_t *lease_json(const kd_env_t *e)
{
	kd_lease_view_t v;
	if (e->lease == NULL)
		return json_null();
	kd_lease_view(e->lease, &v);
	return json_pack("{s:b, s:s, s:s, s:I, s:o, s:I, s:I, s:I}", "leader", v.leader, "node",
	                 v.node, "holder", v.holder, "epoch", (json_int_t)v.epoch, "expires",
	                 time_json(v.expires_at), "acquired", (json_int_t)v.acquired, "lost",
	                 (json_int_t)v.lost, "fenced_writes", (json_int_t)v.fenced);
}

json_t *kd_status_json(kd_daemon_t *d, const char *env, const char *keyset, int64_t now)
{
	json_t *envs = json_array();
	for (size_t i = 0; i < d->n_envs; i++) {
		kd_env_t *e = &d->envs[i];
		if (env != NULL && strcmp(env, e->name) != 0)
			continue;
		json_t *kss = json_array();
		for (size_t j = 0; j < e->n_ks; j++)
			if (keyset == NULL || strcmp(keyset, e->ks[j].name) == 0)
				json_array_append_new(kss, keyset_json(d, e, &e->ks[j], now));
		json_array_append_new(envs, json_pack("{s:s, s:s, s:I, s:b, s:s?, s:s?, s:o, s:o}",
		                      "name", e->name, "jwks_path", e->path, "serial",
		                      (json_int_t)e->serial, "token_ok", e->token_ok, "token_error",
		                      e->token_error, "refresh_error", e->refresh_error, "lease",
		                      lease_json(e), "keysets", kss));
	}
	/* The reason stays here: /healthz says only ok or unhealthy (it is public). */
	const char *reason = d->front != NULL ? kd_front_health_reason(d->front) : NULL;
	json_t *listener = d->front == NULL ? json_null() :
		json_pack("{s:I, s:b, s:I, s:i, s:i}", "pid", (json_int_t)kd_front_pid(d->front),
		          "seccomp", kd_front_confined(d->front), "restarts",
		          (json_int_t)kd_front_restarts(d->front), "port",
		          (int)kd_front_port(d->front), "admin_port",
		          (int)kd_front_admin_port(d->front));
	return json_pack("{s:b, s:I, s:o, s:o, s:b, s:s?, s:o, s:o, s:o, s:s, s:o}", "ok", 1,
	                 "pid", (json_int_t)getpid(), "now", time_json(now), "started",
	                 time_json(d->started), "healthy", d->healthy, "health_reason", reason,
	                 "listener", listener, "last_tick", time_json(d->last_tick),
	                 "last_tick_ok", time_json(d->last_tick_ok), "config",
	                 km_config_path(d->cfg), "environments", envs);
}
