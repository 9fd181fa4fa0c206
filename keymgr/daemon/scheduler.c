/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler: plans and applies every due key set through km_apply_keyset(), the code path
 * `keymgr apply` uses, with three additions of the daemon's own:
 *   - backoff: a failed key set is retried after 1 s, 2 s, 4 s, ... up to 5 min, never in a
 *     hot loop, and reported in the log, /metrics and /healthz until it succeeds;
 *   - stopping: after SIGTERM the action in flight finishes and nothing more is started;
 *   - gating of a rotation's ACTIVATE (km_apply's gate): the key must have been SERVED by this
 *     daemon for publish_lead (not only recorded as published), and, with the policy's
 *     activate_when_seen_by, every named verifier must have fetched a JWKS holding it, or the
 *     activate_when_seen_ceiling must have passed (logged as a warning, counted in /metrics).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keymgr/common/error.h"
#include "keymgr/common/fnv.h"
#include "keymgr/core/apply.h"
#include "keymgr/daemon/backoff.h"
#include "keymgr/daemon/lease.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/pickups.h"
#include "keymgr/daemon/publisher.h"
#include "keymgr/daemon/scheduler.h"
#include "keymgr/daemon/signals.h"
#include "keymgr/daemon/signer.h"
#include "keymgr/daemon/startup.h"
#include "keymgr/daemon/state.h"
#include "keymgr/daemon/token_check.h"
#include "keymgr/store/change_lock.h"

#define MAX_WARNINGS 8
#define KD_TOKEN_CHECK 300   /* seconds between reachability checks of an idle token */

int64_t kd_env_next_wake(const kd_env_t *e)
{
	int64_t w = INT64_MAX;
	if (!e->token_ok)
		return e->token_retry_at;
	for (size_t i = 0; i < e->n_ks; i++) {
		int64_t t = e->ks[i].next_wake > e->ks[i].retry_at ? e->ks[i].next_wake
		                                                     : e->ks[i].retry_at;
		if (t < w)
			w = t;
	}
	return w;
}

typedef struct {
	kd_daemon_t *d;
	kd_env_t *e;
	kd_keyset_t *ks;
	km_plan_warning_t warnings[MAX_WARNINGS];
	size_t n_warnings;
	bool sign_locked;          /* holding the signing service's write lock (before_action) */
} run_ctx_t;

static const char *fmt_i64(int64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "%lld", (long long)v);
	return buf;
}

static void on_report(void *vctx, const km_apply_event_t *ev)
{
	run_ctx_t *c = vctx;
	km_plan_op_t op = ev->action->op;
	bool ok = ev->result == KM_EOK;
	if ((unsigned)op < KM_PLAN_OP_COUNT)
		c->e->actions[op][ok ? 0 : 1]++;
	kd_log(ok ? KD_LOG_INFO : KD_LOG_ERROR, "action", "env", ev->env, "keyset", ev->keyset,
	       "kid", ev->kid[0] ? ev->kid : "-", "action", km_plan_op_name(op), "result",
	       ok ? "ok" : "failed", "error", ok ? NULL : (ev->error && ev->error[0] ? ev->error
	       : km_strerror(ev->result)), "reason", ev->action->reason, NULL);
}

static void on_warn(void *vctx, const char *keyset, const km_plan_warning_t *w)
{
	run_ctx_t *c = vctx;
	(void)keyset;
	if (c->n_warnings < MAX_WARNINGS)
		c->warnings[c->n_warnings++] = *w;
}

static kd_key_t *find_key(kd_keyset_t *ks, const char *kid)
{
	for (size_t i = 0; i < ks->n_keys; i++)
		if (strcmp(ks->keys[i].kid, kid) == 0)
			return &ks->keys[i];
	return NULL;
}

/* Has the named verifier fetched (200 or 304) a document of e or ks at serial >= min? */
static bool seen_by(const km_http_verifier_t *rows, size_t n, const char *name, int64_t min)
{
	for (size_t i = 0; i < n; i++)
		if (rows[i].named && strcmp(rows[i].id, name) == 0 && rows[i].serial >= min)
			return true;
	return false;
}

/* Comma-separated names of the listed verifiers that have not seen serial min. */
static size_t missing(const km_policy_t *p, const km_http_verifier_t *a, size_t na,
                      const km_http_verifier_t *b, size_t nb, int64_t min, char *buf, size_t len)
{
	size_t n = 0, used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < p->n_activate_when_seen_by; i++) {
		const char *name = p->activate_when_seen_by[i];
		if (seen_by(a, na, name, min) || seen_by(b, nb, name, min))
			continue;
		int w = snprintf(buf + used, used < len ? len - used : 0, "%s%s", n ? "," : "", name);
		if (w > 0)
			used += (size_t)w;
		n++;
	}
	return n;
}

static km_apply_verdict_t gate(void *vctx, const char *keyset, const km_plan_action_t *a,
                               const char *kid, int64_t now, int64_t *recheck_at)
{
	run_ctx_t *c = vctx;
	char t1[32], t2[32];
	if (kd_signals_stop_requested())
		return KM_APPLY_STOP;
	kd_log(KD_LOG_DEBUG, "action-start", "env", c->e->name, "keyset", keyset, "kid",
	       kid[0] ? kid : "-", "action", km_plan_op_name(a->op), NULL);
	if (a->op != KM_PLAN_ACTIVATE || a->early)
		return KM_APPLY_GO;  /* bootstrap and emergencies are never held back */
	km_policy_t p;
	if (km_env_keyset_policy(c->e->env, keyset, &p) != KM_EOK)
		return KM_APPLY_GO;
	kd_key_t *k = find_key(c->ks, kid);
	if (k == NULL || k->first_serial == 0) {
		/* Not served yet (published by this very pass, or the refresh failed). */
		*recheck_at = now + 1;
		c->ks->deferred = true;
		return KM_APPLY_DEFER;
	}
	/* Published while this daemon runs: count publish_lead from when it was really served. */
	if (k->state_at >= c->d->started && k->served_at + p.publish_lead > now) {
		*recheck_at = k->served_at + p.publish_lead;
		c->ks->deferred = true;
		kd_log(KD_LOG_DEBUG, "activation-deferred", "env", c->e->name, "keyset", keyset,
		       "kid", kid, "reason", "served for less than publish_lead", "until",
		       fmt_i64(*recheck_at, t1, sizeof(t1)), NULL);
		return KM_APPLY_DEFER;
	}
	if (p.n_activate_when_seen_by == 0) {
		c->ks->deferred = false;
		return KM_APPLY_GO;
	}
	char ks_path[KM_HTTP_PATH_MAX + 1], names[KM_POLICY_MAX_LIST * (KM_POLICY_VERIFIER_MAX + 1)];
	kd_keyset_path(c->e, keyset, ks_path, sizeof(ks_path));
	km_http_verifier_t *ra = NULL, *rb = NULL;
	size_t na = 0, nb = 0;
	/* this node's fetches and, on a shared store, every node's (pickups.h) */
	if (kd_pickups_rows(c->d, c->e, c->e->path, &ra, &na) != KM_EOK)
		na = 0;
	if (kd_pickups_rows(c->d, c->e, ks_path, &rb, &nb) != KM_EOK)
		nb = 0;
	size_t n_missing = missing(&p, ra, na, rb, nb, k->first_serial, names, sizeof(names));
	free(ra);
	free(rb);
	int64_t deadline = a->at + p.activate_when_seen_ceiling;
	fmt_i64(k->first_serial, t2, sizeof(t2));
	if (n_missing == 0) {
		kd_log(KD_LOG_INFO, "activation-gate", "env", c->e->name, "keyset", keyset, "kid", kid,
		       "result", "seen-by-all", "serial", t2, NULL);
		c->ks->deferred = false;
		return KM_APPLY_GO;
	}
	if (now >= deadline) {
		c->ks->ceiling_total++;
		c->ks->deferred = false;
		kd_log(KD_LOG_WARNING, "activation-ceiling", "env", c->e->name, "keyset", keyset,
		       "kid", kid, "result", "activating without propagation evidence",
		       "not_seen_by", names, "serial", t2, NULL);
		return KM_APPLY_GO;
	}
	*recheck_at = deadline < now + 1 ? deadline : now + 1;
	c->ks->deferred = true;
	if (!k->deferral_logged) {
		k->deferral_logged = true;
		kd_log(KD_LOG_INFO, "activation-deferred", "env", c->e->name, "keyset", keyset,
		       "kid", kid, "reason", "waiting for verifiers", "not_seen_by", names, "serial", t2,
		       "ceiling_at", fmt_i64(deadline, t1, sizeof(t1)), NULL);
	}
	return KM_APPLY_DEFER;
}

/*
 * An action that can change which key signs (ACTIVATE, and a RETIRE or REVOKE of the active
 * key) runs with the signing service's write lock held: taken here, before its store
 * transaction, and dropped by after_action() once the signers' key has been swapped. No
 * request signs with a key once another is active. The new key's handle is looked up in the
 * signing token first, outside the lock, so the swap costs the signers no token search.
 */
static void before_action(void *vctx, const char *keyset, const km_plan_action_t *a,
                          const char *kid)
{
	run_ctx_t *c = vctx;
	(void)keyset;
	if (!kd_signing_env_open(c->d, c->e->name) ||
	    (a->op != KM_PLAN_ACTIVATE && a->op != KM_PLAN_RETIRE && a->op != KM_PLAN_REVOKE))
		return;
	if (a->op == KM_PLAN_ACTIVATE)
		kd_signing_warm_kid(c->d, c->e, kid);
	kd_signing_write_lock(c->d);
	c->sign_locked = true;
}

/* The signers see the key set's new state and may sign again. */
static void after_action(void *vctx, const char *keyset, const km_plan_action_t *a,
                         const char *kid, int result)
{
	run_ctx_t *c = vctx;
	(void)keyset, (void)a, (void)kid, (void)result;
	if (!c->sign_locked)
		return;
	kd_signing_refresh_locked(c->d, c->e);
	kd_signing_write_unlock(c->d);
	c->sign_locked = false;
}

static uint64_t warnings_fp(const run_ctx_t *c)
{
	uint64_t h = KM_FNV_INIT;
	for (size_t i = 0; i < c->n_warnings; i++)
		h = km_fnv(h, &c->warnings[i].code, sizeof(c->warnings[i].code));
	return h;
}

/*
 * The token is opened by the actions that need it and closed after every pass (see
 * kd_tick_env), so it is checked here: at start, after a failure (with backoff), and every
 * KD_TOKEN_CHECK seconds, for /healthz.
 */
static bool ensure_token(kd_env_t *e, int64_t now, bool force)
{
	/* A tick (keymgr tick, or a CLI change) checks the token now, whatever its state. */
	if (e->token_ok && !force && now < e->token_checked_at + KD_TOKEN_CHECK)
		return true;
	if (!e->token_ok && !force && now < e->token_retry_at)
		return false;
	char err[1024] = "", retry[32];
	int r = kd_env_token_check(e, force, err, sizeof(err));
	if (r == KM_EOK) {
		bool was_ok = e->token_ok;
		e->token_ok = true;
		e->token_checked_at = now;
		e->token_failures = 0;
		e->token_retry_at = 0;
		kd_env_set_error(&e->token_error, NULL);
		if (!was_ok)
			kd_log(KD_LOG_INFO, "token", "env", e->name, "result", "ok", NULL);
		return true;
	}
	e->token_ok = false;
	e->token_failures++;
	int64_t delay = kd_backoff(e->token_failures);
	e->token_retry_at = now + delay;
	kd_env_set_error(&e->token_error, err[0] ? err : km_strerror(r));
	/* A refused PIN is kept from the token by the PIN gate (keymgr/core/pin_refusal.c): the
	 * checks with backoff, and ticks, only notice a changed PIN source. */
	kd_log(KD_LOG_ERROR, "token", "env", e->name, "result", "failed", "error", e->token_error,
	       "retry_in", fmt_i64(delay, retry, sizeof(retry)), "retry", r == KM_P11_ELOGIN ?
	       "when the PIN source changes, or keymgr env login ENV, or keymgr reload --retry-pin"
	       : NULL, NULL);
	return false;
}

/*
 * Called with the change lock held, before the pass plans: a change someone else made since
 * the daemon last looked (a `keymgr rotate` that this pass waited for, typically) is theirs,
 * not the pass's: logged like one the refresh finds.
 */
static void note_outside_change(kd_env_t *e, kd_keyset_t *ks)
{
	char err[512];
	uint64_t fp;
	if (!ks->fp_known || kd_keyset_fp(e, ks->name, &fp, err, sizeof(err)) != KM_EOK ||
	    fp == ks->fp)
		return;
	kd_log(KD_LOG_INFO, "store-change", "env", e->name, "keyset", ks->name, "result",
	       "planning again", NULL);
}

/*
 * One pass over a key set: plan and apply (km_apply_keyset), under the environment's change
 * lock taken here already, so that the pass can tell its own changes from other processes'.
 * What the store holds when the pass has the lock is compared with what the daemon last saw
 * (note_outside_change), and what it holds at the end of the pass becomes what the daemon
 * saw: the next refresh reports any other difference as an outside change. (A flag "this
 * pass changed the key set" instead took a CLI change made while the pass waited for the
 * lock, or made between the pass and the next refresh, for the daemon's own.)
 */
static bool run_keyset(kd_daemon_t *d, kd_env_t *e, kd_keyset_t *ks, int64_t now)
{
	run_ctx_t c = { .d = d, .e = e, .ks = ks };
	ks->deferred = false;   /* set again by the gate if it still holds an activation back */
	km_apply_opts_t o = { .report = on_report, .warn = on_warn, .ctx = &c, .gate = gate,
	                      .before = before_action, .after = after_action,
	                      .next_event = &ks->next_event };
	char err[1024] = "", num[32], n2[32];
	int64_t w = INT64_MAX;
	km_store_t *s = km_env_store(e->env);
	int r = km_store_change_lock(s, "apply", 0, err, sizeof(err));
	if (r == KM_STORE_EBUSY) {
		/* Said once, before the wait: explains a slow pass (and tests wait for it). */
		kd_log(KD_LOG_INFO, "change-lock", "env", e->name, "keyset", ks->name, "result",
		       "waiting", "reason", "another process is changing the environment", NULL);
		err[0] = '\0';
		r = km_store_change_lock(s, "apply", KM_STORE_CHANGE_WAIT_MS, err, sizeof(err));
	}
	if (r == KM_EOK) {
		/* Plan at the time the pass really starts: it may have waited for another change
		 * (up to 10 s), and the times it records must not be earlier than its actions. */
		int64_t t = (int64_t)time(NULL);
		if (t > now)
			now = t;
		note_outside_change(e, ks);
		r = km_apply_keyset(e->env, ks->name, now, &o, &w, err, sizeof(err));
		char ferr[512];
		ks->fp_known = kd_keyset_fp(e, ks->name, &ks->fp, ferr, sizeof(ferr)) == KM_EOK;
		km_store_change_unlock(s);
	}
	/* Warnings: logged when they change, not at every (possibly 1 s) recheck. */
	uint64_t wfp = warnings_fp(&c);
	if (wfp != ks->warn_fp) {
		ks->warn_fp = wfp;
		for (size_t i = 0; i < c.n_warnings; i++)
			kd_log(KD_LOG_WARNING, "plan-warning", "env", e->name, "keyset", ks->name,
			       "warning", km_plan_warn_name(c.warnings[i].code), "message",
			       c.warnings[i].msg, NULL);
	}
	if (r == KM_EOK) {
		if (ks->failures > 0)
			kd_log(KD_LOG_INFO, "keyset-recovered", "env", e->name, "keyset", ks->name,
			       "failures", fmt_i64(ks->failures, num, sizeof(num)), NULL);
		ks->failures = 0;
		ks->retry_at = 0;
		kd_env_set_error(&ks->error, NULL);
		ks->next_wake = w;
		return true;
	}
	/* Deposed: another node leads now; this one stops changing anything at once. */
	if (r == KM_STORE_EFENCED && e->lease != NULL)
		kd_lease_fenced(e->lease);
	ks->failures++;
	int64_t delay = kd_backoff(ks->failures);
	ks->retry_at = now + delay;
	ks->next_wake = ks->retry_at;
	kd_env_set_error(&ks->error, err[0] ? err : km_strerror(r));
	kd_log(KD_LOG_ERROR, "keyset-failed", "env", e->name, "keyset", ks->name, "result", "failed",
	       "error", ks->error, "failures", fmt_i64(ks->failures, num, sizeof(num)), "retry_in",
	       fmt_i64(delay, n2, sizeof(n2)), NULL);
	return false;
}

bool kd_env_leading(kd_daemon_t *d, kd_env_t *e, char *holder, int64_t *epoch)
{
	char err[512] = "";
	if (!km_store_has_lease(km_env_store(e->env)))
		return true;
	if (e->lease == NULL) {
		int r = kd_lease_start(e->cfg->store, e->name, km_config_daemon(d->cfg)->lease,
		                       d->docs_wake_fd, &e->lease, err, sizeof(err));
		if (r != KM_EOK) {
			kd_log(KD_LOG_ERROR, "lease", "env", e->name, "result", "failed", "error",
			       err[0] ? err : km_strerror(r), NULL);
			return false;
		}
	}
	return kd_lease_leading(e->lease, holder, epoch);
}

size_t kd_tick_env(kd_daemon_t *d, kd_env_t *e, int64_t now, bool force, const char *only_keyset,
                   size_t *failed)
{
	size_t planned = 0;
	char holder[KM_STORE_LEASE_HOLDER_MAX + 1] = "";
	int64_t epoch = 0;
	bool token = ensure_token(e, now, force);
	if (!token && failed != NULL && force)
		(*failed)++;
	/* A follower checks its token (health) and serves what the store holds, but changes
	 * nothing: the leader rotates. */
	if (!token || !kd_env_leading(d, e, holder, &epoch)) {
		if (!kd_signing_env_open(d, e->name))
			km_env_close_token(e->env);   /* opened by the check, or left by a pass */
		return 0;
	}
	km_store_t *store = km_env_store(e->env);
	if (e->lease != NULL) {
		/* Every write of this pass checks that this node still leads at this epoch. */
		km_store_set_fence(store, holder, epoch);
		/* A new leader first repairs what a deposed or crashed one left half done. */
		if (e->reconciled_epoch != epoch && kd_reconcile_env(d, e))
			e->reconciled_epoch = epoch;
	}
	int64_t last_publish = (int64_t)time(NULL);
	for (size_t i = 0; i < e->n_ks && !kd_signals_stop_requested(); i++) {
		kd_keyset_t *ks = &e->ks[i];
		if (only_keyset != NULL && strcmp(ks->name, only_keyset) != 0)
			continue;
		if (!force && (ks->next_wake > now || ks->retry_at > now))
			continue;
		planned++;
		char name[KM_KEYSET_NAME_MAX + 1];
		snprintf(name, sizeof(name), "%s", ks->name);
		if (!run_keyset(d, e, ks, now) && failed != NULL)
			(*failed)++;
		/* A long pass (a bootstrap of many key sets) publishes what it did every second,
		 * so that served documents follow the store closely. The refresh may re-sort the
		 * key sets (one created meanwhile): find our place again by name. */
		if ((int64_t)time(NULL) > last_publish) {
			/* Close the token first: its memory is freed before the documents are
			 * allocated, which then fill those holes instead of interleaving with the
			 * token's objects (keeps the heap from fragmenting during a long pass). */
			if (!kd_signing_env_open(d, e->name))
				km_env_close_token(e->env);
			kd_signing_flush_audit(d);
			kd_publish_env(d, e, (int64_t)time(NULL));
			if (e->lease != NULL)   /* the publication's own fenced write cleared it */
				km_store_set_fence(store, holder, epoch);
			last_publish = (int64_t)time(NULL);
			for (i = 0; i < e->n_ks && strcmp(e->ks[i].name, name) < 0; i++)
				;
			if (i < e->n_ks && strcmp(e->ks[i].name, name) == 0)
				continue;
			i--;   /* our key set vanished: the loop's i++ lands on the next one */
		}
	}

	/* Without signers the token is only needed by the actions of a pass. Closing it keeps no
	 * session logged in between passes and releases a software token's in-memory copy of its
	 * objects (SoftHSM holds every object of the token: ~8 KiB each). An environment that
	 * signs keeps its signing token logged in anyway, so there is nothing to save; and
	 * closing sessions while signers use the same module can crash SoftHSM 2.6.1
	 * (softhsm/SoftHSMv2#688): its scheduler token stays open too. */
	if (!kd_signing_env_open(d, e->name))
		km_env_close_token(e->env);
	km_store_set_fence(store, NULL, 0);   /* the signing service's audit events are not */
	if (planned > 0)
		d->last_tick = now;
	return planned;
}
