/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who is asking, and may they sign: the peer of a control connection from the kernel
 * (SO_PEERCRED: uid, gid and pid at connect time; SO_PEERGROUPS: its supplementary groups),
 * and the signers of a key set (environments.ENV.keysets.NAME.signers) resolved to uids and
 * gids when the configuration is loaded, so that no name service lookup runs per request.
 *
 * Everything not listed is denied. Root gets no implicit right: uid 0 signs only when "root"
 * is listed among the users, or one of its groups among the groups (docs/keymgrd.8).
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/daemon/authz.h"
#include "keymgr/daemon/log.h"

#define NSS_BUF 16384

void kd_peer_creds(int fd, kd_peer_t *p)
{
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t cl = sizeof(cred);
	memset(p, 0, sizeof(*p));
	p->uid = (uid_t)-1;
	p->gid = (gid_t)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0) {
		p->uid = cred.uid;
		p->gid = cred.gid;
		p->pid = cred.pid;
		p->known = cred.uid != (uid_t)-1;
	}
	socklen_t gl = sizeof(p->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, p->groups, &gl) == 0)
		p->n_groups = gl / sizeof(p->groups[0]);
	/* More groups than we hold (ERANGE): the first KD_PEER_GROUPS are checked, the others
	 * cannot grant anything. Fail closed. */
	snprintf(p->user, sizeof(p->user), "uid-%d", (int)p->uid);
	snprintf(p->who, sizeof(p->who), "uid=%d pid=%d", (int)p->uid, (int)p->pid);
}

void kd_peer_name(kd_peer_t *p)
{
	char buf[NSS_BUF];
	struct passwd pw, *res = NULL;
	if (p->known && getpwuid_r(p->uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		snprintf(p->user, sizeof(p->user), "%s", pw.pw_name);
}

void kd_peer_actor(const kd_peer_t *p, const char *via, km_store_actor_t *a)
{
	km_store_actor_self(a, via);
	snprintf(a->user, sizeof(a->user), "%s", p->user);
	a->uid = (int64_t)p->uid;
	a->pid = (int64_t)p->pid;
}

void kd_allow_clear(kd_allow_t *a)
{
	free(a->uids);
	free(a->gids);
	memset(a, 0, sizeof(*a));
}

int kd_allow_resolve(const km_keyset_cfg_t *kc, const char *env, kd_allow_t *ret)
{
	kd_allow_t a = { 0 };
	char buf[NSS_BUF];
	if (kc->n_signer_users > 0 && (a.uids = calloc(kc->n_signer_users, sizeof(uid_t))) == NULL)
		return KM_ENOMEM;
	if (kc->n_signer_groups > 0 &&
	    (a.gids = calloc(kc->n_signer_groups, sizeof(gid_t))) == NULL) {
		free(a.uids);
		return KM_ENOMEM;
	}
	for (size_t i = 0; i < kc->n_signer_users; i++) {
		struct passwd pw, *res = NULL;
		if (getpwnam_r(kc->signer_users[i], &pw, buf, sizeof(buf), &res) == 0 && res != NULL) {
			a.uids[a.n_uids++] = pw.pw_uid;
			continue;
		}
		kd_log(KD_LOG_WARNING, "signer-unknown", "env", env, "keyset", kc->name, "user",
		       kc->signer_users[i], "result", "ignored (no such user; reload once it exists)",
		       NULL);
	}
	for (size_t i = 0; i < kc->n_signer_groups; i++) {
		struct group gr, *res = NULL;
		if (getgrnam_r(kc->signer_groups[i], &gr, buf, sizeof(buf), &res) == 0 && res != NULL) {
			a.gids[a.n_gids++] = gr.gr_gid;
			continue;
		}
		kd_log(KD_LOG_WARNING, "signer-unknown", "env", env, "keyset", kc->name, "group",
		       kc->signer_groups[i], "result", "ignored (no such group; reload once it exists)",
		       NULL);
	}
	*ret = a;
	return KM_EOK;
}

bool kd_allow_check(const kd_allow_t *a, const kd_peer_t *p)
{
	if (a == NULL || !p->known)
		return false;
	for (size_t i = 0; i < a->n_uids; i++)
		if (a->uids[i] == p->uid)
			return true;
	for (size_t i = 0; i < a->n_gids; i++) {
		if (a->gids[i] == p->gid)
			return true;
		for (size_t j = 0; j < p->n_groups; j++)
			if (a->gids[i] == p->groups[j])
				return true;
	}
	return false;
}

bool kd_allow_equal(const kd_allow_t *x, const kd_allow_t *y)
{
	return x->n_uids == y->n_uids && x->n_gids == y->n_gids &&
	       (x->n_uids == 0 || memcmp(x->uids, y->uids, x->n_uids * sizeof(uid_t)) == 0) &&
	       (x->n_gids == 0 || memcmp(x->gids, y->gids, x->n_gids * sizeof(gid_t)) == 0);
}
