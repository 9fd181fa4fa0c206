/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reloading the configuration (SIGHUP, or a reload request on the control socket): the new
 * configuration is loaded and its stores opened by kd_state_reload() while signers wait;
 * a refused one changes nothing. Then the documents no longer served are taken out of
 * km_http, the reload is recorded in every environment's audit log, and a pass runs under
 * the new policies.
 */
#include <stdio.h>
#include <time.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"
#include "keymgr/daemon/authz.h"
#include "keymgr/daemon/control.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/metrics.h"
#include "keymgr/daemon/notify.h"
#include "keymgr/daemon/pass.h"
#include "keymgr/daemon/publisher.h"
#include "keymgr/daemon/reload.h"
#include "keymgr/daemon/signer.h"
#include "keymgr/daemon/state.h"

/* config.reload in every environment's audit log, by the peer (or keymgrd for SIGHUP). */
static void record_reload(kd_daemon_t *d, const char *who, const kd_peer_t *peer)
{
	char reason[KM_STORE_TEXT_MAX + 1], err[512];
	km_store_actor_t a;
	snprintf(reason, sizeof(reason), "keymgrd reloaded %.160s (by %.40s)",
	         km_config_path(d->cfg), who);
	if (peer != NULL)
		kd_peer_actor(peer, "daemon", &a);
	else
		km_store_actor_self(&a, "daemon");
	for (size_t i = 0; i < d->n_envs; i++) {
		km_store_t *s = km_env_store(d->envs[i].env);
		km_store_actor_t self = *km_store_actor(s);
		km_store_set_actor(s, &a);
		if (km_audit_record(d->envs[i].env, "config.reload", NULL, NULL, NULL, reason,
		                    (int64_t)time(NULL), err, sizeof(err)) != KM_EOK)
			kd_log(KD_LOG_ERROR, "audit", "env", d->envs[i].name, "action", "config.reload",
			       "result", "failed", "error", err, NULL);
		km_store_set_actor(s, &self);
	}
}

int kd_reload(kd_daemon_t *d, const char *who, const kd_peer_t *peer, char *err, size_t errlen)
{
	kd_paths_t gone = { NULL, 0 };
	kd_notify("RELOADING=1");
	/* Signers wait while the configuration their key sets borrow from is swapped. */
	kd_signing_write_lock(d);
	int r = kd_state_reload(d, &gone, err, errlen);
	if (r == KM_EOK) {
		kd_unpublish_paths(d, &gone);
		kd_signing_reloaded_locked(d);
	}
	kd_signing_write_unlock(d);
	kd_paths_free(&gone);
	if (r == KM_EOK)
		record_reload(d, who, peer);
	if (r != KM_EOK) {
		d->reloads_failed++;
		kd_log(KD_LOG_ERROR, "reload", "by", who, "result", "refused", "error", err,
		       "config", km_config_path(d->cfg), NULL);
	} else {
		d->reloads_ok++;
		d->config_loaded_at = (int64_t)time(NULL);
		kd_control_record(d);   /* environments may have been added */
		kd_publish_listed_verifiers(d);
		kd_log(KD_LOG_INFO, "reload", "by", who, "result", "ok", "config",
		       km_config_path(d->cfg), NULL);
		kd_run_once(d, false, NULL, NULL, NULL);
	}
	kd_metrics_update(d, (int64_t)time(NULL));
	kd_notify("READY=1");
	return r;
}
