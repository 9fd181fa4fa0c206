/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One pass of keymgrd's work, run by the main loop after a wake-up, by a tick request, and
 * after a reload: every served environment's store is read (publishing documents that
 * changed), its due key sets are planned and applied (scheduler.c), and what that changed is
 * published again; then /healthz and /metrics, the signing service and the signed audit
 * checkpoints follow.
 */
#include <malloc.h>
#include <string.h>
#include <time.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"
#include "keymgr/daemon/lease.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/metrics.h"
#include "keymgr/daemon/pass.h"
#include "keymgr/daemon/publisher.h"
#include "keymgr/daemon/scheduler.h"
#include "keymgr/daemon/signals.h"
#include "keymgr/daemon/signer.h"
#include "keymgr/daemon/startup.h"
#include "keymgr/daemon/state.h"

#define KD_CHECKPOINT_INTERVAL 300   /* seconds between signed audit checkpoints */

/*
 * Signs the head of each environment's audit chain every KD_CHECKPOINT_INTERVAL seconds
 * (km_audit_checkpoint without force: a head already covered is not signed again).
 */
static void checkpoint(kd_daemon_t *d, int64_t now)
{
	for (size_t i = 0; i < d->n_envs && !kd_signals_stop_requested(); i++) {
		kd_env_t *e = &d->envs[i];
		char err[1024] = "";
		char holder[KM_STORE_LEASE_HOLDER_MAX + 1];
		int64_t epoch;
		if (!e->token_ok || (e->checkpoint_at != 0 && now < e->checkpoint_at +
		                     KD_CHECKPOINT_INTERVAL))
			continue;
		/* On a store with a leader lease, the leader signs the checkpoints. */
		if (km_store_has_lease(km_env_store(e->env)) &&
		    (e->lease == NULL || !kd_lease_leading(e->lease, holder, &epoch)))
			continue;
		e->checkpoint_at = now;
		int r = km_audit_checkpoint(e->env, now, false, NULL, err, sizeof(err));
		if (r != KM_EOK && r != KM_ENOENT)
			kd_log(KD_LOG_ERROR, "audit-checkpoint", "env", e->name, "result", "failed",
			       "error", err[0] ? err : km_strerror(r), NULL);
		else if (r == KM_EOK)
			kd_log(KD_LOG_DEBUG, "audit-checkpoint", "env", e->name, "result", "ok", NULL);
		if (!kd_signing_env_open(d, e->name))
			km_env_close_token(e->env);
	}
}

size_t kd_run_once(kd_daemon_t *d, bool force, const char *env, const char *keyset,
                   size_t *failed)
{
	size_t planned = 0, fails = 0;
	for (size_t i = 0; i < d->n_envs; i++)
		if (env == NULL || strcmp(env, d->envs[i].name) == 0)
			kd_publish_env(d, &d->envs[i], (int64_t)time(NULL));
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < d->n_envs && !kd_signals_stop_requested(); i++)
		if (env == NULL || strcmp(env, d->envs[i].name) == 0)
			planned += kd_tick_env(d, &d->envs[i], now, force, keyset, &fails);
	if (planned > 0)
		for (size_t i = 0; i < d->n_envs; i++)
			if (env == NULL || strcmp(env, d->envs[i].name) == 0)
				kd_publish_env(d, &d->envs[i], (int64_t)time(NULL));
	for (size_t i = 0; i < d->n_envs; i++)
		if (d->envs[i].refresh_error != NULL)
			fails++;
	kd_metrics_update(d, (int64_t)time(NULL));
	/* An environment whose token was away at start is reconciled once it is back. */
	kd_startup_reconcile_retry(d);
	/* The signing service follows what this pass (or the CLI, or a reload) changed; then
	 * the audit log's head is signed when due (after the metrics: /metrics and the snapshot
	 * files describe the same serial as soon as possible). */
	kd_signing_sync(d, (int64_t)time(NULL));
	kd_signing_flush_audit(d);
	checkpoint(d, (int64_t)time(NULL));
	/* Give the pages freed by this pass (store rows, rendered documents, key generation)
	 * back to the system: the resident size stays that of what is kept. */
	malloc_trim(0);
	if (failed != NULL)
		*failed += fails;
	return planned;
}
