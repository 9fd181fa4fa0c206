/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reconciliation at start (issue 8, docs/reconcile.md): a keymgr or keymgrd killed in the
 * middle of a change leaves a pending intent, a half-destroyed key or a stray object behind.
 * Before its first pass keymgrd compares each environment's store with its token and repairs
 * that, exactly as `keymgr reconcile ENV` does, logging every finding:
 *
 *   event=reconcile env=prod action=adopt keyset=api kid=... cka_id=... state=generated
 *       result=repaired detail="..."
 *
 * With daemon.remove_unsafe_keys it also destroys the unsafe private keys no record holds
 * (`keymgr reconcile --remove-unsafe`); without, it reports them (result=attention).
 *
 * main() has published the stores' documents and started serving them before (no token
 * needed), so nothing is unserved while the tokens are opened. An environment that cannot be reconciled now (token unreachable) is
 * remembered and tried again after a pass that found its token reachable. Nothing else runs concurrently: the
 * passes, and the only writers in this process, start after it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keymgr/common/error.h"
#include "keymgr/core/reconcile.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/signer.h"
#include "keymgr/daemon/startup.h"
#include "keymgr/daemon/state.h"

/* Names of the environments still to reconcile ("" = none); only the main thread uses it. */
static char pending[KM_CONFIG_MAX_ENVS][KM_ENV_NAME_MAX + 1];

static void on_finding(void *ctx, const km_recon_event_t *ev)
{
	(void)ctx;
	const char *result = ev->result != KM_EOK ? "failed" :
	                     ev->applied ? "repaired" : ev->attention ? "attention" : "found";
	kd_log(ev->result != KM_EOK || ev->attention ? KD_LOG_WARNING : KD_LOG_INFO, "reconcile",
	       "env", ev->env, "action", km_recon_kind_name(ev->kind), "keyset",
	       ev->keyset[0] ? ev->keyset : "-", "kid", ev->kid[0] ? ev->kid : "-", "cka_id",
	       ev->cka_id, "state", ev->state[0] ? ev->state : "-", "result", result, "error",
	       ev->result != KM_EOK ? km_strerror(ev->result) : NULL, "detail", ev->detail, NULL);
}

bool kd_reconcile_env(kd_daemon_t *d, kd_env_t *e)
{
	/* Unsafe private keys no record holds are destroyed when the configuration says so
	 * (daemon.remove_unsafe_keys: the operator's standing confirmation), else reported. */
	km_recon_opts_t o = { .report = on_finding,
	                      .remove_unsafe = km_config_daemon(d->cfg)->remove_unsafe_keys };
	km_recon_summary_t sum = { 0 };
	char err[1024] = "", n1[16], n2[16], n3[16];
	int r = km_reconcile_env(e->env, (int64_t)time(NULL), &o, &sum, err, sizeof(err));
	if (!kd_signing_env_open(d, e->name))
		km_env_close_token(e->env);   /* the first pass opens it when it needs it */
	if (r != KM_EOK) {
		kd_log(KD_LOG_ERROR, "reconcile", "env", e->name, "result", "failed", "error",
		       err[0] ? err : km_strerror(r), "retry", "when the token is reachable", NULL);
		return false;
	}
	snprintf(n1, sizeof(n1), "%zu", sum.repaired);
	snprintf(n2, sizeof(n2), "%zu", sum.attention);
	snprintf(n3, sizeof(n3), "%zu", sum.failed);
	kd_log(sum.failed || sum.attention ? KD_LOG_WARNING : KD_LOG_INFO, "reconcile", "env",
	       e->name, "result", sum.repaired + sum.attention + sum.failed == 0 ? "nothing to repair"
	       : sum.failed ? "some repairs failed" : "done", "repaired", n1, "attention", n2,
	       "failed", n3, NULL);
	return true;
}

void kd_startup_reconcile(kd_daemon_t *d)
{
	/* What this repairs is published by the first pass, right after. */
	for (size_t i = 0; i < d->n_envs && i < KM_CONFIG_MAX_ENVS; i++) {
		kd_env_t *e = &d->envs[i];
		pending[i][0] = '\0';
		/* On a store with a leader lease the leader reconciles, once it leads
		 * (kd_tick_env): a follower's repairs would race the leader's changes. */
		if (km_store_has_lease(km_env_store(e->env)))
			continue;
		if (!kd_reconcile_env(d, e))
			snprintf(pending[i], sizeof(pending[i]), "%s", e->name);
	}
}

void kd_startup_reconcile_retry(kd_daemon_t *d)
{
	for (size_t p = 0; p < KM_CONFIG_MAX_ENVS; p++) {
		if (pending[p][0] == '\0')
			continue;
		for (size_t i = 0; i < d->n_envs; i++) {
			kd_env_t *e = &d->envs[i];
			if (strcmp(e->name, pending[p]) != 0)
				continue;
			if (e->token_ok && kd_reconcile_env(d, e))
				pending[p][0] = '\0';
			break;
		}
	}
}
