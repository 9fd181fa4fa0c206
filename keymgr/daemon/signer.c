/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The signing service of keymgrd (docs/control-protocol.md, "Signing"): issuers ask for JWTs
 * over the control socket; each request is authorized (authz.c), checked and signed through
 * km_claims_sign_resolved(), the code path of `keymgr sign`, with the key set's active key.
 *
 * Per environment whose configuration lists signers, a signing context holds:
 *   - its own token handle (km_token_t, a pool of config `sessions` sessions), opened once by
 *     the main thread and kept open, unlike the scheduler's, which is opened per pass;
 *   - per key set with signers, the resolved claims policy and active key (km_claims_key_t:
 *     kid, CKA_ID, alg) and the allowed uids and gids. The key's object handle is looked up
 *     in the token (km_token_get_public warms km_token's handle cache) BEFORE it is swapped
 *     in, so signing never runs C_FindObjects.
 *
 * One writer-preferring rwlock guards all of it. Signers hold it in read mode for a whole
 * request, from finding the key to the end of C_Sign; the main thread takes it in write mode
 * to swap what changed: across every scheduler action that can change which key is active
 * (the ACTIVATE's store transaction and the cache swap, scheduler.c), around a reload, and to
 * swap in what a refresh of the store found (a rotation made with the CLI). So no request
 * signs with a key after the daemon has made another one active, and a request never sees a
 * half-swapped key.
 *
 * Refused audit keys and denied callers are recorded as sign.denied audit events. The store
 * belongs to the main thread: signers queue the events and wake it (kd_signing_flush_audit).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/audit/audit.h"
#include "keymgr/claims/claims.h"
#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/common/timefmt.h"
#include "keymgr/control/control_proto.h"
#include "keymgr/core/pin_refusal.h"
#include "keymgr/daemon/authz.h"
#include "keymgr/daemon/backoff.h"
#include "keymgr/daemon/denials.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/sign_stats.h"
#include "keymgr/daemon/signer.h"
#include "keymgr/daemon/state.h"
#include "keymgr/store/store.h"
#include "policy/policy.h"

#define QUEUE_MAX 256
#define TOKEN_ERR_MAX 1024

typedef struct {
	char name[KM_KEYSET_NAME_MAX + 1];
	km_claims_key_t key;
	kd_allow_t allow;
	kd_sign_stat_t *stats;          /* its /metrics figures (kept across rebuilds) */
} sk_keyset_t;

typedef struct {
	char env[KM_ENV_NAME_MAX + 1];
	/* Our copy of the token configuration: survives the configuration it came from. */
	char *module, *label, *serial, *pin, *init_args;
	unsigned sessions;
	km_token_t *token;              /* NULL until opened */
	int token_r;                    /* why not, when NULL */
	char token_err[TOKEN_ERR_MAX];
	unsigned failures;
	int64_t retry_at;
	atomic_bool reopen;             /* a signer lost its session or the device */
	atomic_bool reinit;             /* the token failed (CKR_GENERAL_ERROR) or lost an active
	                                 * key: the module is initialised again at the reopen */
	char lost[KM_KEYSET_NAME_MAX + 1];   /* a key set whose active key the token lost ("":
	                                      * none); read by kd_signing_health() */
	pthread_mutex_t lost_lock;
	sk_keyset_t *ks;                /* sorted by name */
	size_t n_ks;
	kd_sign_stat_t *other;          /* requests for a key set not signed for here */
	atomic_bool built;              /* its key sets resolved once (rebuild) */
} sk_env_t;

typedef struct {
	char env[KM_ENV_NAME_MAX + 1];
	char keyset[KM_KEYSET_NAME_MAX + 1];
	char kid[KM_KID_MAX + 1];
	char reason[KM_STORE_TEXT_MAX + 1];
	kd_peer_t peer;
	int64_t at;
} sk_denial_t;

struct kd_signing {
	pthread_rwlock_t lock;
	sk_env_t **envs;
	size_t n_envs;
	int wake_fd;

	pthread_mutex_t q_lock;
	sk_denial_t q[QUEUE_MAX];
	size_t q_n;
	uint64_t q_dropped;
	kd_denials_t *denials;          /* repeated denials folded (denials.h) */

	atomic_uint_fast64_t n_ok, n_refused, n_denied, n_failed;
	kd_sign_stats_t *stats;
	kd_sign_stat_t *unserved;       /* requests for an environment not signed for */
	atomic_bool synced;             /* the first kd_signing_sync() is done */
};

int kd_signing_create(kd_signing_t **ret)
{
	kd_signing_t *s = calloc(1, sizeof(*s));
	pthread_rwlockattr_t attr;
	if (s == NULL || kd_sign_stats_create(&s->stats) != KM_EOK ||
	    kd_denials_create(0, &s->denials) != KM_EOK) {
		if (s != NULL)
			kd_sign_stats_free(s->stats);
		free(s);
		return KM_ENOMEM;
	}
	s->unserved = kd_sign_stats_entry(s->stats, "", "");
	/* Writer-preferring: a stream of signers must never starve a rotation. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&s->q_lock, NULL);
	s->wake_fd = -1;
	*ret = s;
	return KM_EOK;
}

static void keysets_free(sk_keyset_t *ks, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kd_allow_clear(&ks[i].allow);
	free(ks);
}

static void env_free(sk_env_t *se)
{
	if (se == NULL)
		return;
	km_token_free(se->token);
	keysets_free(se->ks, se->n_ks);
	free(se->module);
	free(se->label);
	free(se->serial);
	free(se->pin);
	free(se->init_args);
	pthread_mutex_destroy(&se->lost_lock);
	free(se);
}

void kd_signing_free(kd_signing_t *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_envs; i++)
		env_free(s->envs[i]);
	free(s->envs);
	kd_denials_free(s->denials);
	pthread_rwlock_destroy(&s->lock);
	pthread_mutex_destroy(&s->q_lock);
	kd_sign_stats_free(s->stats);
	free(s);
}

void kd_signing_set_wake(kd_signing_t *s, int fd)
{
	s->wake_fd = fd;
}

void kd_signing_write_lock(kd_daemon_t *d)
{
	if (d->signing != NULL)
		pthread_rwlock_wrlock(&d->signing->lock);
}

void kd_signing_write_unlock(kd_daemon_t *d)
{
	if (d->signing != NULL)
		pthread_rwlock_unlock(&d->signing->lock);
}

static sk_env_t *find_env(const kd_signing_t *s, const char *env)
{
	for (size_t i = 0; i < s->n_envs; i++)
		if (strcmp(s->envs[i]->env, env) == 0)
			return s->envs[i];
	return NULL;
}

static sk_keyset_t *find_keyset(const sk_env_t *se, const char *name)
{
	size_t lo = 0, hi = se->n_ks;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(se->ks[mid].name, name);
		if (c == 0)
			return &se->ks[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static bool has_signers(const km_keyset_cfg_t *kc)
{
	return kc->n_signer_users > 0 || kc->n_signer_groups > 0;
}

bool kd_signing_configured(const kd_env_t *e)
{
	for (size_t i = 0; i < e->cfg->n_keysets; i++)
		if (has_signers(e->cfg->keysets[i]))
			return true;
	return false;
}

bool kd_signing_env_open(kd_daemon_t *d, const char *env)
{
	return d->signing != NULL && find_env(d->signing, env) != NULL;
}

/* ---- the main thread's side: building and swapping ---- */

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool token_cfg_same(const sk_env_t *se, const km_token_cfg_t *t)
{
	return same_str(se->module, t->module_path) && same_str(se->label, t->token_label) &&
	       same_str(se->serial, t->token_serial) && same_str(se->pin, t->pin_source) &&
	       same_str(se->init_args, t->init_args) && se->sessions == t->sessions;
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static int token_cfg_copy(sk_env_t *se, const km_token_cfg_t *t)
{
	free(se->module);
	free(se->label);
	free(se->serial);
	free(se->pin);
	free(se->init_args);
	se->module = dup_or_null(t->module_path);
	se->label = dup_or_null(t->token_label);
	se->serial = dup_or_null(t->token_serial);
	se->pin = dup_or_null(t->pin_source);
	se->init_args = dup_or_null(t->init_args);
	se->sessions = t->sessions;
	if ((t->module_path && !se->module) || (t->token_label && !se->label) ||
	    (t->token_serial && !se->serial) || (t->pin_source && !se->pin) ||
	    (t->init_args && !se->init_args))
		return KM_ENOMEM;
	return KM_EOK;
}

static int cmp_keyset(const void *a, const void *b)
{
	return strcmp(((const sk_keyset_t *)a)->name, ((const sk_keyset_t *)b)->name);
}

/* Makes sure the signing token has the handle of each usable key cached (no C_FindObjects
 * when signing). Safe while signers run: km_token is thread-safe. */
static void set_lost(sk_env_t *se, const char *keyset)
{
	pthread_mutex_lock(&se->lost_lock);
	snprintf(se->lost, sizeof(se->lost), "%s", keyset != NULL ? keyset : "");
	pthread_mutex_unlock(&se->lost_lock);
}

/* Looks every active key up in the signing token (caching its handle); one that is missing
 * makes keymgrd unhealthy until it is found again. */
static void warm(sk_env_t *se, const sk_keyset_t *ks, size_t n)
{
	if (se->token == NULL)
		return;
	const char *lost = NULL;
	for (size_t i = 0; i < n; i++) {
		km_pubkey_t pub;
		if (ks[i].key.key_r != KM_EOK)
			continue;
		int r = km_token_get_public(se->token, ks[i].key.cka_id, ks[i].key.cka_id_len, &pub);
		if (r == KM_P11_ENOKEY && lost == NULL)
			lost = ks[i].name;
		if (r != KM_EOK)
			kd_log(KD_LOG_WARNING, "signing-key", "env", se->env, "keyset", ks[i].name,
			       "kid", ks[i].key.kid, "result", "not found in the signing token",
			       "error", km_token_last_error(se->token), NULL);
	}
	set_lost(se, lost);
}

/*
 * A key signs only once keymgrd serves a JWKS that holds it: a verifier never gets a token
 * whose key the daemon has not published. The store's active key that no publication of this
 * daemon has carried yet (a first key activated by the pass that generated it, a `keymgr
 * rotate --now --force` landing between a pass's publication and this refresh) is refused as
 * busy, retryable, until the publication that follows: kd_run_once publishes, then syncs the
 * signers. The key it replaces is not used meanwhile: it is no longer active.
 */
static void hold_until_served(kd_env_t *e, const char *keyset, km_claims_key_t *key)
{
	if (key->key_r != KM_EOK)
		return;
	const kd_keyset_t *ks = kd_env_keyset(e, keyset);
	for (size_t i = 0; ks != NULL && i < ks->n_keys; i++)
		if (strcmp(ks->keys[i].kid, key->kid) == 0 && ks->keys[i].first_serial != 0)
			return;
	key->key_r = KM_EBUSY;
	snprintf(key->key_err, sizeof(key->key_err), "the active key %s of %s/%s is not in the "
	         "JWKS keymgrd serves yet: try again in a moment", key->kid, e->name, keyset);
}

/* The key sets of e that list signers, resolved from e's store and configuration (se: what
 * is in use, whose signers stay when the name service cannot be asked). */
static int build_keysets(kd_env_t *e, const sk_env_t *se, sk_keyset_t **ret, size_t *n_ret)
{
	size_t n = 0;
	sk_keyset_t *ks = calloc(e->cfg->n_keysets + 1, sizeof(*ks));
	if (ks == NULL)
		return KM_ENOMEM;
	for (size_t i = 0; i < e->cfg->n_keysets; i++) {
		const km_keyset_cfg_t *kc = e->cfg->keysets[i];
		if (!has_signers(kc))
			continue;
		snprintf(ks[n].name, sizeof(ks[n].name), "%s", kc->name);
		km_claims_resolve(e->env, kc->name, &ks[n].key);
		hold_until_served(e, kc->name, &ks[n].key);
		const sk_keyset_t *old = find_keyset(se, kc->name);
		if (kd_allow_resolve(kc, e->name, old != NULL ? &old->allow : NULL,
		                     &ks[n].allow) == KM_ENOMEM) {
			keysets_free(ks, n);
			return KM_ENOMEM;
		}
		n++;
	}
	qsort(ks, n, sizeof(*ks), cmp_keyset);
	*ret = ks;
	*n_ret = n;
	return KM_EOK;
}

static bool keysets_equal(const sk_keyset_t *a, size_t na, const sk_keyset_t *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].name, b[i].name) != 0 ||
		    memcmp(&a[i].key, &b[i].key, sizeof(a[i].key)) != 0 ||
		    !kd_allow_equal(&a[i].allow, &b[i].allow))
			return false;
	return true;
}

static void log_changes(const sk_env_t *se, const sk_keyset_t *ks, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const sk_keyset_t *old = find_keyset(se, ks[i].name);
		const char *kid = ks[i].key.key_r == KM_EOK ? ks[i].key.kid : "-";
		if (old != NULL && strcmp(old->key.kid, ks[i].key.kid) == 0 &&
		    old->key.key_r == ks[i].key.key_r)
			continue;
		kd_log(KD_LOG_INFO, "signing-key", "env", se->env, "keyset", ks[i].name, "kid", kid,
		       "result", ks[i].key.pol_r == KM_EOK && ks[i].key.key_r == KM_EOK ? "ok"
		       : "refusing", "error", ks[i].key.pol_r != KM_EOK ? ks[i].key.pol_err
		       : ks[i].key.key_r != KM_EOK ? ks[i].key.key_err : NULL, NULL);
	}
}

/* Rebuilds se's key sets from e; swaps them in (taking the lock unless the caller holds it)
 * when anything differs. */
static void rebuild(kd_signing_t *s, kd_env_t *e, sk_env_t *se, bool locked)
{
	sk_keyset_t *ks = NULL;
	size_t n = 0;
	if (build_keysets(e, se, &ks, &n) != KM_EOK) {
		kd_log(KD_LOG_ERROR, "signing", "env", e->name, "result", "failed", "error",
		       "out of memory", NULL);
		return;
	}
	for (size_t i = 0; i < n; i++)
		ks[i].stats = kd_sign_stats_entry(s->stats, se->env, ks[i].name);
	if (keysets_equal(se->ks, se->n_ks, ks, n)) {
		keysets_free(ks, n);
		atomic_store(&se->built, true);
		return;
	}
	if (!locked)
		warm(se, ks, n);
	log_changes(se, ks, n);
	if (!locked)
		pthread_rwlock_wrlock(&s->lock);
	sk_keyset_t *old = se->ks;
	size_t n_old = se->n_ks;
	se->ks = ks;
	se->n_ks = n;
	atomic_store(&se->built, true);
	if (!locked)
		pthread_rwlock_unlock(&s->lock);
	keysets_free(old, n_old);
}

/* Opens (or reopens) se's token when due, behind the PIN gate of e's store. Called without
 * the lock. */
static void open_token(kd_signing_t *s, sk_env_t *se, const kd_env_t *e, int64_t now)
{
	bool reinit = atomic_exchange(&se->reinit, false);
	if (atomic_exchange(&se->reopen, false) && se->token != NULL) {
		kd_log(KD_LOG_WARNING, "signing-token", "env", se->env, "result",
		       reinit ? "reinitialising the module" : "reopening", "error", reinit ?
		       "the token failed or lost an active key" : "a signer lost its session or "
		       "the device", NULL);
		pthread_rwlock_wrlock(&s->lock);
		km_token_t *old = se->token;
		se->token = NULL;
		se->token_r = KM_P11_ESESSION;
		snprintf(se->token_err, sizeof(se->token_err), "environment '%s': the signing token "
		         "is being reopened", se->env);
		pthread_rwlock_unlock(&s->lock);
		km_token_free(old);   /* nobody holds it: signers hold the lock while they use it */
		/* The scheduler's handle too: with no token of the module left open, the module is
		 * finalized, and opened again below with C_Initialize (its state read anew). */
		if (reinit)
			km_env_close_token(e->env);
		se->retry_at = 0;
	}
	if (se->token != NULL || now < se->retry_at)
		return;
	km_token_cfg_t cfg = { .module_path = se->module, .token_label = se->label,
	                       .token_serial = se->serial, .pin_source = se->pin,
	                       .sessions = se->sessions, .init_args = se->init_args };
	km_token_t *t = NULL;
	char err[TOKEN_ERR_MAX - 64] = "", num[32];
	int r = km_pin_refusal_gate(e->cfg->local, se->env, &cfg.pin_gate);
	if (r == KM_EOK)
		r = km_token_open(&cfg, &t, err, sizeof(err));
	pthread_rwlock_wrlock(&s->lock);
	if (r == KM_EOK) {
		se->token = t;
		se->token_r = KM_EOK;
		se->token_err[0] = '\0';
		se->failures = 0;
	} else {
		se->token_r = r;
		snprintf(se->token_err, sizeof(se->token_err), "environment '%s': %s", se->env,
		         err[0] ? err : km_strerror(r));
		se->failures++;
		se->retry_at = now + kd_backoff(se->failures);
	}
	pthread_rwlock_unlock(&s->lock);
	snprintf(num, sizeof(num), "%u", se->sessions);
	if (r == KM_EOK)
		kd_log(KD_LOG_INFO, "signing-token", "env", se->env, "result", "ok", "sessions", num,
		       NULL);
	else
		kd_log(KD_LOG_ERROR, "signing-token", "env", se->env, "result", "failed", "error",
		       se->token_err, NULL);
}

static int add_env(kd_signing_t *s, const kd_env_t *e, sk_env_t **ret)
{
	sk_env_t *se = calloc(1, sizeof(*se));
	if (se != NULL)
		pthread_mutex_init(&se->lost_lock, NULL);
	sk_env_t **grown = realloc(s->envs, (s->n_envs + 1) * sizeof(*grown));
	if (se == NULL || grown == NULL) {
		free(se);
		if (grown != NULL)
			s->envs = grown;
		return KM_ENOMEM;
	}
	s->envs = grown;
	snprintf(se->env, sizeof(se->env), "%s", e->name);
	se->token_r = KM_P11_ENOTOKEN;
	snprintf(se->token_err, sizeof(se->token_err), "environment '%s': the signing token is "
	         "not open yet", e->name);
	se->other = kd_sign_stats_entry(s->stats, se->env, "");
	if (token_cfg_copy(se, &e->cfg->token) != KM_EOK) {
		env_free(se);
		return KM_ENOMEM;
	}
	s->envs[s->n_envs++] = se;
	*ret = se;
	return KM_EOK;
}

static kd_env_t *daemon_env(kd_daemon_t *d, const char *name)
{
	for (size_t i = 0; i < d->n_envs; i++)
		if (strcmp(d->envs[i].name, name) == 0)
			return &d->envs[i];
	return NULL;
}

/* Drops signing contexts whose environment is gone or lists no signers any more, and closes
 * tokens whose configuration changed. */
static void prune(kd_signing_t *s, kd_daemon_t *d, bool locked)
{
	for (size_t i = 0; i < s->n_envs;) {
		sk_env_t *se = s->envs[i];
		kd_env_t *e = daemon_env(d, se->env);
		if (e != NULL && kd_signing_configured(e)) {
			if (!token_cfg_same(se, &e->cfg->token)) {
				if (!locked)
					pthread_rwlock_wrlock(&s->lock);
				km_token_free(se->token);
				se->token = NULL;
				se->token_r = KM_P11_ENOTOKEN;
				snprintf(se->token_err, sizeof(se->token_err), "environment '%s': the "
				         "signing token is not open yet", se->env);
				se->retry_at = 0;
				se->failures = 0;
				token_cfg_copy(se, &e->cfg->token);
				if (!locked)
					pthread_rwlock_unlock(&s->lock);
			}
			i++;
			continue;
		}
		if (!locked)
			pthread_rwlock_wrlock(&s->lock);
		s->envs[i] = s->envs[--s->n_envs];
		if (!locked)
			pthread_rwlock_unlock(&s->lock);
		kd_log(KD_LOG_INFO, "signing", "env", se->env, "result", "stopped", NULL);
		env_free(se);
	}
}

/* A signing pool that opened short (the token answered CKR_SESSION_COUNT) grows back by one
 * session per pass while the token allows it (km_token_check). Called by the sync thread,
 * the only one that replaces se->token. */
static void grow_pool(sk_env_t *se)
{
	km_token_health_t h;
	if (se->token == NULL)
		return;
	km_token_get_health(se->token, &h);
	if (!h.lost && h.sessions < h.sessions_wanted)
		(void)km_token_check(se->token);   /* a loss it finds is the signers' to see */
}

/* Signing sessions idle for token.keepalive seconds get a cheap call (km_token_keepalive):
 * some network HSMs close sessions idle for a few minutes. Called by the sync thread. */
static void keep_warm(sk_env_t *se, unsigned keepalive_s)
{
	unsigned kept = 0;
	if (se->token == NULL || keepalive_s == 0)
		return;
	/* A session the token closed already is the signers' to see (marked lost, re-opened by
	 * the next signature). */
	(void)km_token_keepalive(se->token, keepalive_s * 1000u, &kept);
	if (kept > 0 && kd_log_enabled(KD_LOG_DEBUG)) {
		char n[16];
		snprintf(n, sizeof(n), "%u", kept);
		kd_log(KD_LOG_DEBUG, "signing", "env", se->env, "keepalive", n, NULL);
	}
}

void kd_signing_sync(kd_daemon_t *d, int64_t now)
{
	kd_signing_t *s = d->signing;
	if (s == NULL)
		return;
	kd_denials_set_interval(s->denials, km_config_daemon(d->cfg)->denial_interval);
	prune(s, d, false);
	for (size_t i = 0; i < d->n_envs; i++) {
		kd_env_t *e = &d->envs[i];
		if (!kd_signing_configured(e))
			continue;
		sk_env_t *se = find_env(s, e->name);
		if (se == NULL) {
			pthread_rwlock_wrlock(&s->lock);
			int r = add_env(s, e, &se);
			pthread_rwlock_unlock(&s->lock);
			if (r != KM_EOK)
				continue;
		}
		bool was_open = se->token != NULL;
		/* The scheduler's login works again (a new PIN, an explicit retry): so will ours. */
		if (se->token == NULL && se->token_r == KM_P11_ELOGIN && e->token_ok)
			se->retry_at = 0;
		open_token(s, se, e, now);
		if (!was_open && se->token != NULL)
			warm(se, se->ks, se->n_ks);
		else
			grow_pool(se);
		keep_warm(se, e->cfg->token.keepalive);
		rebuild(s, e, se, false);
	}
	atomic_store(&s->synced, true);
}

void kd_signing_reloaded_locked(kd_daemon_t *d)
{
	kd_signing_t *s = d->signing;
	if (s == NULL)
		return;
	prune(s, d, true);
	for (size_t i = 0; i < s->n_envs; i++) {
		kd_env_t *e = daemon_env(d, s->envs[i]->env);
		if (e != NULL)
			rebuild(s, e, s->envs[i], true);
	}
}

void kd_signing_warm_kid(kd_daemon_t *d, kd_env_t *e, const char *kid)
{
	sk_env_t *se = d->signing ? find_env(d->signing, e->name) : NULL;
	km_store_key_t k;
	km_pubkey_t pub;
	char err[256];
	if (se == NULL || se->token == NULL || kid == NULL || kid[0] == '\0' ||
	    km_store_key_get(km_env_store(e->env), kid, &k, err, sizeof(err)) != KM_EOK)
		return;
	(void)km_token_get_public(se->token, k.cka_id, k.cka_id_len, &pub);
}

void kd_signing_refresh_locked(kd_daemon_t *d, kd_env_t *e)
{
	sk_env_t *se = d->signing ? find_env(d->signing, e->name) : NULL;
	if (se != NULL)
		rebuild(d->signing, e, se, true);
}

/* ---- audit events of refusals: queued by signers, recorded by the main thread ---- */

static void queue_denial(kd_signing_t *s, const char *env, const char *keyset, const char *kid,
                         const char *reason, const kd_peer_t *p)
{
	pthread_mutex_lock(&s->q_lock);
	if (s->q_n < QUEUE_MAX) {
		sk_denial_t *q = &s->q[s->q_n++];
		snprintf(q->env, sizeof(q->env), "%s", env);
		snprintf(q->keyset, sizeof(q->keyset), "%s", keyset);
		snprintf(q->kid, sizeof(q->kid), "%s", kid ? kid : "");
		snprintf(q->reason, sizeof(q->reason), "%s", reason);
		q->peer = *p;
		q->at = (int64_t)time(NULL);
	} else {
		s->q_dropped++;
	}
	pthread_mutex_unlock(&s->q_lock);
	if (s->wake_fd >= 0) {
		uint64_t one = 1;
		ssize_t w = write(s->wake_fd, &one, sizeof(one));
		(void)w;
	}
}

static void record(kd_daemon_t *d, const sk_denial_t *q, const char *after, const char *reason)
{
	kd_env_t *e = daemon_env(d, q->env);
	km_store_actor_t a, self;
	char err[512];
	if (e == NULL)
		return;
	self = *km_store_actor(km_env_store(e->env));
	kd_peer_actor(&q->peer, "signing", &a);
	km_store_set_actor(km_env_store(e->env), &a);
	if (km_audit_record(e->env, "sign.denied", q->keyset[0] ? q->keyset : NULL,
	                    q->kid[0] ? q->kid : NULL, after,
	                    reason, q->at, err, sizeof(err)) != KM_EOK)
		kd_log(KD_LOG_ERROR, "audit", "env", q->env, "action", "sign.denied", "result",
		       "failed", "error", err, NULL);
	km_store_set_actor(km_env_store(e->env), &self);
}

/* The repeats of a denial window that has passed: one log line, one audit event (the
 * environment's; other peers' in every environment). Main thread. */
static void report_repeats(void *ctx, const kd_denial_repeats_t *r)
{
	kd_daemon_t *d = ctx;
	char n[24], uid[16], first[KM_TIME_TEXT_MAX], last[KM_TIME_TEXT_MAX];
	char why[KM_STORE_TEXT_MAX + 1], after[160];
	sk_denial_t q = { .peer = r->peer, .at = (int64_t)time(NULL) };
	snprintf(n, sizeof(n), "%llu", (unsigned long long)r->repeats);
	snprintf(uid, sizeof(uid), "%d", (int)r->peer.uid);
	km_time_rfc3339(r->first, first, sizeof(first));
	km_time_rfc3339(r->last, last, sizeof(last));
	kd_log(KD_LOG_WARNING, "sign-denied", "env", r->env, "keyset", r->keyset, "peer_uid", uid,
	       "peer_user", r->peer.user, "reason", r->reason, "repeated", n, "from", first, "to",
	       last, NULL);
	snprintf(why, sizeof(why), "%.64s (uid %d): %s: %llu more denials from %s to %s (folded)",
	         r->peer.user, (int)r->peer.uid, r->reason, (unsigned long long)r->repeats, first,
	         last);
	snprintf(after, sizeof(after), "{\"repeated\":%llu,\"from\":\"%s\",\"to\":\"%s\"}",
	         (unsigned long long)r->repeats, first, last);
	snprintf(q.keyset, sizeof(q.keyset), "%s", strcmp(r->keyset, "*") != 0 ? r->keyset : "");
	for (size_t i = 0; i < d->n_envs; i++) {
		if (strcmp(r->env, "*") != 0 && strcmp(r->env, d->envs[i].name) != 0)
			continue;
		snprintf(q.env, sizeof(q.env), "%s", d->envs[i].name);
		record(d, &q, after, why);
	}
}

void kd_signing_flush_audit(kd_daemon_t *d)
{
	kd_signing_t *s = d->signing;
	sk_denial_t *batch;
	size_t n;
	uint64_t dropped;
	if (s == NULL)
		return;
	kd_denials_expire(s->denials, (int64_t)time(NULL), report_repeats, d);
	pthread_mutex_lock(&s->q_lock);
	n = s->q_n;
	dropped = s->q_dropped;
	batch = n > 0 ? malloc(n * sizeof(*batch)) : NULL;
	if (batch != NULL)
		memcpy(batch, s->q, n * sizeof(*batch));
	else
		dropped += n;
	s->q_n = 0;
	s->q_dropped = 0;
	pthread_mutex_unlock(&s->q_lock);
	for (size_t i = 0; batch != NULL && i < n; i++)
		record(d, &batch[i], NULL, batch[i].reason);
	if (dropped > 0 && n > 0 && batch != NULL) {
		char why[KM_STORE_TEXT_MAX + 1];
		snprintf(why, sizeof(why), "%llu more sign.denied events not recorded one by one "
		         "(queue full); see keymgrd's log", (unsigned long long)dropped);
		record(d, &batch[n - 1], NULL, why);
	}
	free(batch);
}

void kd_signing_flush_final(kd_daemon_t *d)
{
	if (d->signing == NULL)
		return;
	kd_denials_expire(d->signing->denials, INT64_MAX, report_repeats, d);
	kd_signing_flush_audit(d);
}

/* ---- the signers' side (control connection threads) ---- */

static int signing_token(void *ctx, km_token_t **ret, char *err, size_t errlen)
{
	sk_env_t *se = ctx;
	if (se->token == NULL) {
		snprintf(err, errlen, "%s", se->token_err);
		return se->token_r != KM_EOK ? se->token_r : KM_P11_ENOTOKEN;
	}
	*ret = se->token;
	return KM_EOK;
}

static json_t *refusal(int r, const char *code, const char *msg)
{
	/* Same words as `keymgr sign` when the claims layer gave none. */
	if ((msg == NULL || msg[0] == '\0') && r == KM_EMALFORMED)
		msg = "malformed claims JSON";
	/* A message jansson refuses (not UTF-8) still gets a refusal, in the code's own words. */
	return km_ctl_refusal(msg && msg[0] ? msg : km_strerror(r),
	                      code ? code : km_ctl_code_name(r), km_strerror(r));
}

/* ttl: a duration string ("10m") or positive whole seconds; absent = 0 (claims carry exp). */
static bool parse_ttl(json_t *v, int64_t *ttl, char *err, size_t errlen)
{
	*ttl = 0;
	if (v == NULL || json_is_null(v))
		return true;
	if (json_is_integer(v) && json_integer_value(v) > 0) {
		*ttl = (int64_t)json_integer_value(v);
		return true;
	}
	char why[256] = "";
	if (json_is_string(v) &&
	    km_duration_parse_err(json_string_value(v), ttl, why, sizeof(why)) == KM_EOK &&
	    *ttl > 0)
		return true;
	snprintf(err, errlen, "\"ttl\": %s", why[0] ? why : "expected a positive duration (\"10m\") "
	         "or a positive number of seconds");
	return false;
}

/* One request; *stat receives the figures it counts toward (left alone before the key set
 * is known: the caller's default). */
static json_t *sign_request(kd_signing_t *s, const kd_peer_t *p, json_t *req, char **jwt_out,
                            kd_sign_stat_t **stat)
{
	char env[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1], err[1024] = "";
	const char *ref = json_string_value(json_object_get(req, "keyset"));
	json_t *cv = json_object_get(req, "claims");
	int64_t ttl = 0;
	*jwt_out = NULL;
	if (ref == NULL)
		return refusal(KM_EINVAL, "bad_request", "sign: missing \"keyset\": \"ENV/NAME\"");
	if (km_name_split(ref, false, env, name, err, sizeof(err)) != KM_EOK)
		return refusal(KM_ENAME, "invalid_name", err);
	/* "payload": the JWT's second segment as kube-apiserver built it (keymgr-k8s-signer) */
	const char *payload = json_string_value(json_object_get(req, "payload"));
	if (payload != NULL && cv != NULL)
		return refusal(KM_EINVAL, "bad_request", "sign: give \"claims\" or \"payload\", not "
		               "both");
	if (payload == NULL && (cv == NULL || !(json_is_object(cv) || json_is_string(cv))))
		return refusal(KM_EINVAL, "bad_request", "sign: missing \"claims\" (a JSON object, "
		               "or a string holding one)");
	if (!parse_ttl(json_object_get(req, "ttl"), &ttl, err, sizeof(err)))
		return refusal(KM_EINVAL, "bad_request", err);

	char *jwt = NULL;
	char kid[KM_KID_MAX + 1] = "";
	bool audit_denied = false;
	int r;
	pthread_rwlock_rdlock(&s->lock);
	sk_env_t *se = find_env(s, env);
	sk_keyset_t *ks = se ? find_keyset(se, name) : NULL;
	if (se != NULL)
		*stat = ks != NULL ? ks->stats : se->other;
	/* Just after start (the control socket opens before the first pass): neither "not
	 * served" nor "not an allowed signer" would be true yet. */
	if ((se == NULL && !atomic_load(&s->synced)) || (se != NULL && !atomic_load(&se->built))) {
		pthread_rwlock_unlock(&s->lock);
		snprintf(err, sizeof(err), "keymgrd is starting: the signing keys of '%s' are not "
		         "loaded yet; try again in a moment", env);
		return refusal(KM_EBUSY, "busy", err);
	}
	if (se == NULL) {
		pthread_rwlock_unlock(&s->lock);
		snprintf(err, sizeof(err), "keymgrd does not sign for environment '%s' (none of its "
		         "key sets lists signers, or it is not served here)", env);
		return refusal(KM_ENOTSUP, "not_served", err);
	}
	if (ks == NULL || !kd_allow_check(&ks->allow, p)) {
		pthread_rwlock_unlock(&s->lock);
		atomic_fetch_add(&s->n_denied, 1);
		snprintf(err, sizeof(err), "%s (uid %d) may not sign with %s/%s: not listed in "
		         "environments.%s.keysets.%s.signers", p->user, (int)p->uid, env, name, env,
		         name);
		/* Logged and recorded once per peer, key set and interval; repeats are counted. */
		if (kd_denials_note(s->denials, p, env, name, "not an allowed signer",
		                    (int64_t)time(NULL))) {
			char uid[16], pid[16];
			snprintf(uid, sizeof(uid), "%d", (int)p->uid);
			snprintf(pid, sizeof(pid), "%d", (int)p->pid);
			kd_log(KD_LOG_WARNING, "sign-denied", "env", env, "keyset", name, "peer_uid",
			       uid, "peer_user", p->user, "peer_pid", pid, "reason",
			       "not an allowed signer", NULL);
			char why[KM_STORE_TEXT_MAX + 1];
			snprintf(why, sizeof(why), "%.64s (uid %d, pid %d) is not an allowed signer",
			         p->user, (int)p->uid, (int)p->pid);
			queue_denial(s, env, name, NULL, why, p);
		}
		return refusal(KM_POLICY_EDENIED, "denied", err);
	}
	/* Claims given as an object are checked and signed as parsed with the request; a string
	 * is parsed here, so that its parse errors read exactly as `keymgr sign` reports them. */
	if (payload != NULL)
		r = km_claims_sign_payload_resolved(&ks->key, signing_token, se, payload,
		                                    (int64_t)time(NULL), &jwt, &audit_denied, err,
		                                    sizeof(err));
	else if (json_is_object(cv))
		r = km_claims_sign_resolved_object(&ks->key, signing_token, se, cv,
		                                   (int64_t)time(NULL), ttl, &jwt, &audit_denied, err,
		                                   sizeof(err));
	else
		r = km_claims_sign_resolved(&ks->key, signing_token, se, json_string_value(cv),
		                            (int64_t)time(NULL), ttl, &jwt, &audit_denied, err,
		                            sizeof(err));
	memcpy(kid, ks->key.kid, sizeof(kid));   /* for the log and audit, after the unlock */
	if (r == KM_P11_ESESSION || r == KM_P11_ENOTLOGGEDIN || r == KM_P11_EDEVICE)
		atomic_store(&se->reopen, true);
	/* A token in trouble (SoftHSM out of descriptors lost its objects and answered every
	 * later call with these): a new session does not help, a new module instance does. */
	if (r == KM_P11_EFAIL || r == KM_P11_ENOKEY) {
		atomic_store(&se->reinit, true);
		atomic_store(&se->reopen, true);
		if (r == KM_P11_ENOKEY)
			set_lost(se, name);
	} else if (r == KM_EOK) {
		/* the token has this key set's key (again) */
		pthread_mutex_lock(&se->lost_lock);
		if (strcmp(se->lost, name) == 0)
			se->lost[0] = '\0';
		pthread_mutex_unlock(&se->lost_lock);
	}
	pthread_rwlock_unlock(&s->lock);

	if (r == KM_EOK) {
		atomic_fetch_add_explicit(&s->n_ok, 1, memory_order_relaxed);
		if (kd_log_enabled(KD_LOG_DEBUG)) {
			char uid[16];
			snprintf(uid, sizeof(uid), "%d", (int)p->uid);
			kd_log(KD_LOG_DEBUG, "sign", "env", env, "keyset", name, "kid", kid, "peer_uid",
			       uid, "result", "ok", NULL);
		}
		*jwt_out = jwt;
		return NULL;
	}
	char uid[16];
	snprintf(uid, sizeof(uid), "%d", (int)p->uid);
	bool token_failure = km_is_token_error(r);
	atomic_fetch_add(token_failure ? &s->n_failed : &s->n_refused, 1);
	kd_log(token_failure ? KD_LOG_ERROR : KD_LOG_INFO, "sign", "env", env, "keyset", name,
	       "peer_uid", uid, "result", token_failure ? "failed" : "refused", "error", err, NULL);
	if (audit_denied && kd_denials_note(s->denials, p, env, name,
	                                    "the audit key never signs JWTs", (int64_t)time(NULL)))
		queue_denial(s, env, name, kid, "the audit key never signs JWTs", p);
	if (token_failure && s->wake_fd >= 0) {
		uint64_t one = 1;
		ssize_t w = write(s->wake_fd, &one, sizeof(one));
		(void)w;
	}
	return refusal(r, NULL, err);
}

json_t *kd_signing_request(kd_signing_t *s, const kd_peer_t *p, json_t *req, char **jwt_out)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	kd_sign_stat_t *stat = s->unserved;
	json_t *reply = sign_request(s, p, req, jwt_out, &stat);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	uint64_t ns = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
	if (*jwt_out != NULL) {
		kd_sign_stat_record(stat, KD_SIGN_SIGNED, NULL, ns);
	} else {
		const char *code = json_string_value(json_object_get(reply, "code"));
		kd_sign_stat_record(stat, code != NULL && strcmp(code, "token_error") == 0 ?
		                    KD_SIGN_TOKEN_ERROR : KD_SIGN_REFUSED, code, ns);
	}
	return reply;
}

bool kd_signing_is_signer(kd_signing_t *s, const kd_peer_t *p)
{
	bool found = false;
	if (s == NULL)
		return false;
	pthread_rwlock_rdlock(&s->lock);
	for (size_t i = 0; i < s->n_envs && !found; i++)
		for (size_t j = 0; j < s->envs[i]->n_ks && !found; j++)
			found = kd_allow_check(&s->envs[i]->ks[j].allow, p);
	pthread_rwlock_unlock(&s->lock);
	return found;
}

void kd_signing_prepare(kd_signing_t *s, const char *env)
{
	if (s == NULL)
		return;
	pthread_rwlock_rdlock(&s->lock);
	sk_env_t *se = find_env(s, env);
	if (se != NULL)
		km_token_prepare(se->token, 1);
	pthread_rwlock_unlock(&s->lock);
}

void kd_signing_counters(const kd_daemon_t *d, uint64_t out[4])
{
	kd_signing_t *s = d->signing;
	out[0] = s ? atomic_load(&s->n_ok) : 0;
	out[1] = s ? atomic_load(&s->n_refused) : 0;
	out[2] = s ? atomic_load(&s->n_denied) : 0;
	out[3] = s ? atomic_load(&s->n_failed) : 0;
}

void kd_signing_metrics(kd_daemon_t *d, FILE *f)
{
	kd_signing_t *s = d->signing;
	if (s == NULL)
		return;
	kd_sign_stats_render(s->stats, f);
	fprintf(f, "# HELP keymgr_signing_sessions Signing sessions open on the environment's "
	           "token (fewer than keymgr_signing_sessions_wanted while the token answers "
	           "CKR_SESSION_COUNT).\n# TYPE keymgr_signing_sessions gauge\n");
	pthread_rwlock_rdlock(&s->lock);
	for (size_t i = 0; i < s->n_envs; i++) {
		km_token_health_t h = { 0 };
		if (s->envs[i]->token != NULL)
			km_token_get_health(s->envs[i]->token, &h);
		fprintf(f, "keymgr_signing_sessions{env=\"%s\"} %u\n", s->envs[i]->env, h.sessions);
	}
	fprintf(f, "# HELP keymgr_signing_sessions_wanted The signing session pool's size "
	           "(token.sessions).\n# TYPE keymgr_signing_sessions_wanted gauge\n");
	for (size_t i = 0; i < s->n_envs; i++)
		fprintf(f, "keymgr_signing_sessions_wanted{env=\"%s\"} %u\n", s->envs[i]->env,
		        s->envs[i]->sessions);
	pthread_rwlock_unlock(&s->lock);
}

bool kd_signing_health(kd_daemon_t *d, const char *env, char *buf, size_t len)
{
	kd_signing_t *s = d->signing;
	bool ok = true;
	if (s == NULL)
		return true;
	pthread_rwlock_rdlock(&s->lock);
	sk_env_t *se = find_env(s, env);
	if (se != NULL) {
		pthread_mutex_lock(&se->lost_lock);
		if (se->lost[0] != '\0') {
			snprintf(buf, len, "%s/%s: the signing token does not find the active key "
			         "(re-initialising the module)", env, se->lost);
			ok = false;
		}
		pthread_mutex_unlock(&se->lost_lock);
	}
	pthread_rwlock_unlock(&s->lock);
	return ok;
}
