/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who is asking, and may they sign (authz.c): the peer of a control connection as the kernel
 * gives it, and the signers of a key set resolved to uids and gids.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "keymgr/config/config.h"
#include "keymgr/store/store.h"

#define KD_PEER_GROUPS 64            /* supplementary groups of a peer that are checked */

/* The peer of a control connection, from the kernel at connect time. */
typedef struct {
	bool known;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t groups[KD_PEER_GROUPS];  /* supplementary groups (SO_PEERGROUPS) */
	size_t n_groups;
	char user[KM_STORE_ACTOR_USER_MAX + 1];   /* user name, or "uid-N" */
	char who[64];                  /* "uid=N pid=N" for logs */
} kd_peer_t;

/* Who may sign with one key set: its signers resolved to ids. */
typedef struct {
	uid_t *uids;
	size_t n_uids;
	gid_t *gids;
	size_t n_gids;
} kd_allow_t;

/* Fills *p with fd's peer: uid, gid, pid and supplementary groups, the user name "uid-N"
 * (no name service lookup: the acceptor calls it; kd_peer_name completes it). */
void kd_peer_creds(int fd, kd_peer_t *p);
/* Looks p's user name up; "uid-N" stays when there is none. */
void kd_peer_name(kd_peer_t *p);
/* An audit actor for the peer (via "daemon" or "signing"). */
void kd_peer_actor(const kd_peer_t *p, const char *via, km_store_actor_t *a);
/* Resolves kc's signers to ids (unknown names are logged and left out). KM_EOK/KM_ENOMEM. */
int kd_allow_resolve(const km_keyset_cfg_t *kc, const char *env, kd_allow_t *ret);
void kd_allow_clear(kd_allow_t *a);
/* Whether p's uid is listed, or its gid or a supplementary group is. */
bool kd_allow_check(const kd_allow_t *a, const kd_peer_t *p);
bool kd_allow_equal(const kd_allow_t *x, const kd_allow_t *y);
