/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /healthz and the daemon's part of /metrics (km_http adds HTTP requests by status and the
 * serial and size of every document). Recomputed by the main loop after every pass, so the
 * HTTP threads only copy a prepared text.
 *
 * Healthy means: every served environment's token opened, its last refresh succeeded, and the
 * last run of each of its key sets succeeded. Otherwise /healthz says the first problem.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KEYMGR_VERSION
#define KEYMGR_VERSION "unknown"
#endif

#include "keymgr/daemon/hook.h"
#include "keymgr/daemon/lease.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/metrics.h"
#include "keymgr/daemon/signer.h"
#include "keymgr/daemon/state.h"

static void label(FILE *f, const char *k, const char *v)
{
	fprintf(f, "%s=\"", k);
	for (const char *p = v; *p; p++) {
		if (*p == '"' || *p == '\\')
			fputc('\\', f);
		if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void keyset_metric(FILE *f, const char *name, const kd_env_t *e, const kd_keyset_t *ks,
                          long long v)
{
	fprintf(f, "%s{", name);
	label(f, "env", e->name);
	fputc(',', f);
	label(f, "keyset", ks->name);
	fprintf(f, "} %lld\n", v);
}

static void lease_metric(FILE *f, const char *name, const char *env, int64_t v)
{
	fprintf(f, "%s{", name);
	label(f, "env", env);
	fprintf(f, "} %lld\n", (long long)v);
}

static const char *health(const kd_daemon_t *d, char *buf, size_t len)
{
	for (size_t i = 0; i < d->n_envs; i++) {
		const kd_env_t *e = &d->envs[i];
		if (e->token_error != NULL) {
			snprintf(buf, len, "%s: token unreachable: %s", e->name, e->token_error);
			return buf;
		}
		if (!e->token_ok) {
			snprintf(buf, len, "%s: token not opened yet", e->name);
			return buf;
		}
		if (e->refresh_error != NULL) {
			snprintf(buf, len, "%s: %s", e->name, e->refresh_error);
			return buf;
		}
		if (!kd_signing_health((kd_daemon_t *)d, e->name, buf, len))
			return buf;
		for (size_t j = 0; j < e->n_ks; j++) {
			if (e->ks[j].error != NULL) {
				snprintf(buf, len, "%s/%s: %s (%u failures, retrying)", e->name,
				         e->ks[j].name, e->ks[j].error, e->ks[j].failures);
				return buf;
			}
		}
	}
	return NULL;
}

static void env_metric(FILE *f, const char *name, const kd_env_t *e, const char *extra,
                       unsigned long long v)
{
	fprintf(f, "%s{", name);
	label(f, "env", e->name);
	fprintf(f, "%s} %llu\n", extra, v);
}

/* http.static_hook: the environments that have one. */
static void hook_metrics(const kd_daemon_t *d, FILE *f)
{
	static const struct {
		const char *name, *type, *help;
	} m[] = {
		{ "keymgr_static_hook_runs_total", "counter", "Runs of http.static_hook by result "
		  "(failed: a non-zero exit, a signal, a failure to start or the timeout)." },
		{ "keymgr_static_hook_timeouts_total", "counter", "Runs of http.static_hook killed "
		  "at http.static_hook_timeout." },
		{ "keymgr_static_hook_failures", "gauge", "Consecutive failed runs of "
		  "http.static_hook (0 after a success; retried with backoff while above 0)." },
		{ "keymgr_static_hook_pending_paths", "gauge", "Changed paths of the static tree "
		  "waiting for a run of http.static_hook." },
	};
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
		        m[k].type);
		for (size_t i = 0; i < d->n_envs; i++) {
			kd_hook_stats_t s;
			if (d->envs[i].hook == NULL)
				continue;
			kd_hook_stats(d->envs[i].hook, &s);
			if (k == 0) {
				env_metric(f, m[k].name, &d->envs[i], ",result=\"ok\"", s.ok);
				env_metric(f, m[k].name, &d->envs[i], ",result=\"failed\"", s.failed);
			} else {
				env_metric(f, m[k].name, &d->envs[i], "", k == 1 ? s.timeouts :
				           k == 2 ? s.failures : s.pending);
			}
		}
	}
}

void kd_metrics_update(kd_daemon_t *d, int64_t now)
{
	char reason[1024];
	const char *why = health(d, reason, sizeof(reason));
	bool ok = why == NULL;
	if (ok != d->healthy)
		kd_log(ok ? KD_LOG_INFO : KD_LOG_WARNING, "health", "result", ok ? "ok" : "unhealthy",
		       "reason", why, NULL);
	d->healthy = ok;
	if (ok)
		d->last_tick_ok = d->last_tick ? d->last_tick : now;
	kd_front_set_health(d->front, ok, why);

	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL)
		return;
	fprintf(f, "# HELP keymgr_keys Keys by environment, key set and state (destroyed keys "
	           "not counted).\n# TYPE keymgr_keys gauge\n");
	for (size_t i = 0; i < d->n_envs; i++) {
		const kd_env_t *e = &d->envs[i];
		for (size_t j = 0; j < e->n_ks; j++) {
			const kd_keyset_t *ks = &e->ks[j];
			unsigned count[KM_STATE_COUNT] = { 0 };
			for (size_t k = 0; k < ks->n_keys; k++)
				if ((unsigned)ks->keys[k].state < KM_STATE_COUNT)
					count[ks->keys[k].state]++;
			for (int s = 0; s < KM_STATE_COUNT; s++) {
				if (count[s] == 0 && s != KM_STATE_ACTIVE && s != KM_STATE_PUBLISHED)
					continue;  /* keep the text small with many key sets */
				fprintf(f, "keymgr_keys{");
				label(f, "env", e->name);
				fputc(',', f);
				label(f, "keyset", ks->name);
				fputc(',', f);
				label(f, "state", km_state_name((km_state_t)s));
				fprintf(f, "} %u\n", count[s]);
			}
		}
	}
	fprintf(f, "# HELP keymgr_keyset_next_event_seconds Seconds until the key set's next "
	           "lifecycle event (publish, activate, retire, remove, destroy) as planned.\n"
	           "# TYPE keymgr_keyset_next_event_seconds gauge\n");
	for (size_t i = 0; i < d->n_envs; i++)
		for (size_t j = 0; j < d->envs[i].n_ks; j++) {
			const kd_keyset_t *ks = &d->envs[i].ks[j];
			if (ks->next_event != 0 && ks->next_event != INT64_MAX)
				keyset_metric(f, "keymgr_keyset_next_event_seconds", &d->envs[i], ks,
				              (long long)(ks->next_event > now ? ks->next_event - now : 0));
		}
	fprintf(f, "# HELP keymgr_keyset_next_event_timestamp_seconds When the key set's next "
	           "lifecycle event is planned.\n"
	           "# TYPE keymgr_keyset_next_event_timestamp_seconds gauge\n");
	for (size_t i = 0; i < d->n_envs; i++)
		for (size_t j = 0; j < d->envs[i].n_ks; j++) {
			const kd_keyset_t *ks = &d->envs[i].ks[j];
			if (ks->next_event != 0 && ks->next_event != INT64_MAX)
				keyset_metric(f, "keymgr_keyset_next_event_timestamp_seconds", &d->envs[i],
				              ks, (long long)ks->next_event);
		}
	fprintf(f, "# HELP keymgr_keyset_next_run_seconds Seconds until keymgrd plans the key set "
	           "again (the next event, or sooner: a propagation recheck, a retry after a "
	           "failure).\n# TYPE keymgr_keyset_next_run_seconds gauge\n");
	for (size_t i = 0; i < d->n_envs; i++)
		for (size_t j = 0; j < d->envs[i].n_ks; j++) {
			const kd_keyset_t *ks = &d->envs[i].ks[j];
			int64_t t = ks->next_wake > ks->retry_at ? ks->next_wake : ks->retry_at;
			if (t != INT64_MAX)
				keyset_metric(f, "keymgr_keyset_next_run_seconds", &d->envs[i], ks,
				              (long long)(t > now ? t - now : 0));
		}
	fprintf(f, "# HELP keymgr_active_key_age_seconds Seconds since the active key was "
	           "activated.\n# TYPE keymgr_active_key_age_seconds gauge\n");
	for (size_t i = 0; i < d->n_envs; i++)
		for (size_t j = 0; j < d->envs[i].n_ks; j++) {
			const kd_keyset_t *ks = &d->envs[i].ks[j];
			for (size_t k = 0; k < ks->n_keys; k++)
				if (ks->keys[k].state == KM_STATE_ACTIVE)
					keyset_metric(f, "keymgr_active_key_age_seconds", &d->envs[i], ks,
					              (long long)(now - ks->keys[k].state_at));
		}
	fprintf(f, "# HELP keymgr_keyset_failures Consecutive failed runs of the key set (0 when "
	           "the last run succeeded).\n# TYPE keymgr_keyset_failures gauge\n");
	for (size_t i = 0; i < d->n_envs; i++)
		for (size_t j = 0; j < d->envs[i].n_ks; j++)
			keyset_metric(f, "keymgr_keyset_failures", &d->envs[i], &d->envs[i].ks[j],
			              d->envs[i].ks[j].failures);
	fprintf(f, "# HELP keymgr_activation_deferred 1 while a rotation's activation waits for "
	           "propagation.\n# TYPE keymgr_activation_deferred gauge\n");
	for (size_t i = 0; i < d->n_envs; i++)
		for (size_t j = 0; j < d->envs[i].n_ks; j++)
			keyset_metric(f, "keymgr_activation_deferred", &d->envs[i], &d->envs[i].ks[j],
			              d->envs[i].ks[j].deferred);
	fprintf(f, "# HELP keymgr_activation_ceiling_total Activations made by "
	           "activate_when_seen_ceiling without propagation evidence.\n"
	           "# TYPE keymgr_activation_ceiling_total counter\n");
	for (size_t i = 0; i < d->n_envs; i++)
		for (size_t j = 0; j < d->envs[i].n_ks; j++)
			keyset_metric(f, "keymgr_activation_ceiling_total", &d->envs[i], &d->envs[i].ks[j],
			              (long long)d->envs[i].ks[j].ceiling_total);
	fprintf(f, "# HELP keymgr_actions_total Lifecycle actions applied or failed.\n"
	           "# TYPE keymgr_actions_total counter\n");
	for (size_t i = 0; i < d->n_envs; i++)
		for (int op = 0; op < KM_PLAN_OP_COUNT; op++)
			for (int res = 0; res < 2; res++) {
				fprintf(f, "keymgr_actions_total{");
				label(f, "env", d->envs[i].name);
				fputc(',', f);
				label(f, "action", km_plan_op_name((km_plan_op_t)op));
				fprintf(f, ",result=\"%s\"} %llu\n", res ? "failed" : "ok",
				        (unsigned long long)d->envs[i].actions[op][res]);
			}
	fprintf(f, "# HELP keymgr_leader 1 while this node holds the environment's leader lease "
	           "(PostgreSQL stores).\n# TYPE keymgr_leader gauge\n"
	           "# HELP keymgr_lease_epoch Epoch of the environment's leader lease, last seen.\n"
	           "# TYPE keymgr_lease_epoch gauge\n"
	           "# HELP keymgr_lease_expiry_timestamp_seconds When the leader lease expires "
	           "(the database's clock), last seen.\n"
	           "# TYPE keymgr_lease_expiry_timestamp_seconds gauge\n"
	           "# HELP keymgr_fenced_writes_total Writes of this node refused because it no "
	           "longer led.\n# TYPE keymgr_fenced_writes_total counter\n");
	for (size_t i = 0; i < d->n_envs; i++) {
		kd_lease_view_t v;
		if (d->envs[i].lease == NULL)
			continue;
		kd_lease_view(d->envs[i].lease, &v);
		lease_metric(f, "keymgr_leader", d->envs[i].name, v.leader);
		lease_metric(f, "keymgr_lease_epoch", d->envs[i].name, v.epoch);
		lease_metric(f, "keymgr_lease_expiry_timestamp_seconds", d->envs[i].name,
		             v.expires_at);
		lease_metric(f, "keymgr_fenced_writes_total", d->envs[i].name, (int64_t)v.fenced);
	}
	fprintf(f, "# HELP keymgr_token_up 1 when the environment's token is open and logged in.\n"
	           "# TYPE keymgr_token_up gauge\n");
	for (size_t i = 0; i < d->n_envs; i++) {
		fprintf(f, "keymgr_token_up{");
		label(f, "env", d->envs[i].name);
		fprintf(f, "} %d\n", d->envs[i].token_ok ? 1 : 0);
	}
	fprintf(f, "# HELP keymgr_env_jwks_serial Serial of the environment's current JWKS "
	           "documents.\n# TYPE keymgr_env_jwks_serial gauge\n");
	for (size_t i = 0; i < d->n_envs; i++) {
		fprintf(f, "keymgr_env_jwks_serial{");
		label(f, "env", d->envs[i].name);
		fprintf(f, "} %lld\n", (long long)d->envs[i].serial);
	}
	fprintf(f, "# HELP keymgr_last_tick_timestamp_seconds Last time a key set was planned.\n"
	           "# TYPE keymgr_last_tick_timestamp_seconds gauge\nkeymgr_last_tick_timestamp_seconds "
	           "%lld\n", (long long)d->last_tick);
	fprintf(f, "# HELP keymgr_last_successful_tick_timestamp_seconds Last time every key set "
	           "was healthy after a pass.\n# TYPE keymgr_last_successful_tick_timestamp_seconds "
	           "gauge\nkeymgr_last_successful_tick_timestamp_seconds %lld\n",
	        (long long)d->last_tick_ok);
	fprintf(f, "# HELP keymgr_config_reloads_total Configuration reloads.\n"
	           "# TYPE keymgr_config_reloads_total counter\n"
	           "keymgr_config_reloads_total{result=\"ok\"} %llu\n"
	           "keymgr_config_reloads_total{result=\"failed\"} %llu\n",
	        (unsigned long long)d->reloads_ok, (unsigned long long)d->reloads_failed);
	fprintf(f, "# HELP keymgr_config_loaded_timestamp_seconds When the running configuration "
	           "was loaded.\n# TYPE keymgr_config_loaded_timestamp_seconds gauge\n"
	           "keymgr_config_loaded_timestamp_seconds %lld\n", (long long)d->config_loaded_at);
	fprintf(f, "# HELP keymgr_build_info keymgrd's version (the value is always 1).\n"
	           "# TYPE keymgr_build_info gauge\nkeymgr_build_info{version=");
	fputc('"', f);
	fputs(KEYMGR_VERSION, f);
	fputs("\",seccomp=\"", f);
	fputs(kd_front_confined(d->front) ? "on" : "off", f);
	fputs("\"} 1\n", f);
	fprintf(f, "# HELP keymgr_listener_up 1 while the listener process serves.\n"
	           "# TYPE keymgr_listener_up gauge\nkeymgr_listener_up %d\n"
	           "# HELP keymgr_listener_restarts_total Listener processes started again after "
	           "one stopped.\n# TYPE keymgr_listener_restarts_total counter\n"
	           "keymgr_listener_restarts_total %llu\n", kd_front_pid(d->front) != 0 ? 1 : 0,
	        (unsigned long long)kd_front_restarts(d->front));
	hook_metrics(d, f);
	kd_signing_metrics(d, f);
	fprintf(f, "# HELP keymgr_start_time_seconds When keymgrd started.\n"
	           "# TYPE keymgr_start_time_seconds gauge\nkeymgr_start_time_seconds %lld\n",
	        (long long)d->started);
	if (fclose(f) == 0)
		kd_front_set_metrics_text(d->front, text);
	free(text);
}
