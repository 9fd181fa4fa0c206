/* SPDX-License-Identifier: Apache-2.0 */
/* Denied sign requests, folded into one line and one audit event per window (denials.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/config/config.h"
#include "keymgr/daemon/denials.h"

typedef struct {
	bool used;
	int64_t opened;                 /* the window's first denial */
	int64_t ends;                   /* opened + the interval when it opened */
	kd_denial_repeats_t r;
} window_t;

struct kd_denials {
	pthread_mutex_t lock;
	unsigned interval;
	window_t w[KD_DENIAL_WINDOWS];
	window_t other;                 /* denials that found no room */
};

int kd_denials_create(unsigned interval, kd_denials_t **ret)
{
	kd_denials_t *dn = calloc(1, sizeof(*dn));
	if (dn == NULL)
		return KM_ENOMEM;
	pthread_mutex_init(&dn->lock, NULL);
	dn->interval = interval != 0 ? interval : KM_CONFIG_DEFAULT_DENIAL_INTERVAL;
	*ret = dn;
	return KM_EOK;
}

void kd_denials_free(kd_denials_t *dn)
{
	if (dn == NULL)
		return;
	pthread_mutex_destroy(&dn->lock);
	free(dn);
}

void kd_denials_set_interval(kd_denials_t *dn, unsigned interval)
{
	if (dn == NULL)
		return;
	pthread_mutex_lock(&dn->lock);
	dn->interval = interval != 0 ? interval : KM_CONFIG_DEFAULT_DENIAL_INTERVAL;
	pthread_mutex_unlock(&dn->lock);
}

/* A wall clock set back keeps the window open (its repeats stay folded) until its end. */
static bool open_at(const window_t *w, int64_t now)
{
	return w->used && now < w->ends;
}

static bool same(const window_t *w, uid_t uid, const char *env, const char *keyset,
                 const char *reason)
{
	return w->r.peer.uid == uid && strcmp(w->r.env, env) == 0 &&
	       strcmp(w->r.keyset, keyset) == 0 && strcmp(w->r.reason, reason) == 0;
}

/* Counts a repeat in w. */
static void repeat(window_t *w, int64_t now)
{
	if (w->r.repeats++ == 0)
		w->r.first = now;
	w->r.last = now;
}

/* The open window of this key (lock held), or NULL. */
static window_t *find(kd_denials_t *dn, uid_t uid, const char *env, const char *keyset,
                      const char *reason, int64_t now, unsigned *held)
{
	*held = 0;
	for (size_t i = 0; i < KD_DENIAL_WINDOWS; i++) {
		window_t *w = &dn->w[i];
		if (!open_at(w, now) || w->r.peer.uid != uid)
			continue;
		if (same(w, uid, env, keyset, reason))
			return w;
		(*held)++;
	}
	return NULL;
}

bool kd_denials_note(kd_denials_t *dn, const kd_peer_t *p, const char *env, const char *keyset,
                     const char *reason, int64_t now)
{
	unsigned held;
	if (dn == NULL)
		return true;
	pthread_mutex_lock(&dn->lock);
	window_t *w = find(dn, p->uid, env, keyset, reason, now, &held);
	if (w == NULL && held >= KD_DENIAL_PER_PEER) {
		/* The peer's further key sets share one window. */
		keyset = "*";
		w = find(dn, p->uid, env, keyset, reason, now, &held);
	}
	if (w != NULL) {
		repeat(w, now);
		pthread_mutex_unlock(&dn->lock);
		return false;
	}
	for (size_t i = 0; i < KD_DENIAL_WINDOWS && w == NULL; i++)
		if (!dn->w[i].used)
			w = &dn->w[i];
	if (w == NULL) {
		/* No room: counted with the other peers' (reported when its interval passed). */
		if (!dn->other.used) {
			dn->other = (window_t){ .used = true, .opened = now,
			                        .ends = now + (int64_t)dn->interval };
			dn->other.r.peer.uid = (uid_t)-1;
			snprintf(dn->other.r.peer.user, sizeof(dn->other.r.peer.user), "other peers");
			snprintf(dn->other.r.env, sizeof(dn->other.r.env), "*");
			snprintf(dn->other.r.keyset, sizeof(dn->other.r.keyset), "*");
			snprintf(dn->other.r.reason, sizeof(dn->other.r.reason), "%s", reason);
		}
		repeat(&dn->other, now);
		pthread_mutex_unlock(&dn->lock);
		return false;
	}
	*w = (window_t){ .used = true, .opened = now, .ends = now + (int64_t)dn->interval };
	w->r.peer = *p;
	snprintf(w->r.env, sizeof(w->r.env), "%s", env);
	snprintf(w->r.keyset, sizeof(w->r.keyset), "%s", keyset);
	snprintf(w->r.reason, sizeof(w->r.reason), "%s", reason);
	pthread_mutex_unlock(&dn->lock);
	return true;
}

void kd_denials_expire(kd_denials_t *dn, int64_t now,
                       void (*report)(void *ctx, const kd_denial_repeats_t *r), void *ctx)
{
	kd_denial_repeats_t *out;
	size_t n = 0;
	if (dn == NULL || (out = malloc((KD_DENIAL_WINDOWS + 1) * sizeof(*out))) == NULL)
		return;
	pthread_mutex_lock(&dn->lock);
	for (size_t i = 0; i <= KD_DENIAL_WINDOWS; i++) {
		window_t *w = i < KD_DENIAL_WINDOWS ? &dn->w[i] : &dn->other;
		if (!w->used || open_at(w, now))
			continue;
		if (w->r.repeats > 0)
			out[n++] = w->r;
		w->used = false;
	}
	pthread_mutex_unlock(&dn->lock);
	for (size_t i = 0; i < n; i++)
		report(ctx, &out[i]);
	free(out);
}
