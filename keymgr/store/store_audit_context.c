/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit context of a store handle: who acts through it (the actor, with the process's
 * default "via") and under which policy (hash and canonical text). Every event appended
 * through the handle records both (store_audit_chain.c).
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store_int.h"

static void clean_copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
	for (char *c = dst; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
}

void km_store_actor_self(km_store_actor_t *a, const char *via)
{
	struct passwd pw, *res = NULL;
	char buf[1024], host[KM_STORE_ACTOR_HOST_MAX + 1] = "";
	memset(a, 0, sizeof(*a));
	uid_t uid = getuid();
	a->uid = (int64_t)uid;
	a->pid = (int64_t)getpid();
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		clean_copy(a->user, sizeof(a->user), res->pw_name);
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "unknown");
	clean_copy(a->host, sizeof(a->host), host);
	clean_copy(a->via, sizeof(a->via), via ? via : "process");
}

void km_store_set_actor(km_store_t *s, const km_store_actor_t *a)
{
	clean_copy(s->actor.user, sizeof(s->actor.user), a->user);
	clean_copy(s->actor.host, sizeof(s->actor.host), a->host);
	clean_copy(s->actor.via, sizeof(s->actor.via), a->via);
	s->actor.uid = a->uid;
	s->actor.pid = a->pid;
}

const km_store_actor_t *km_store_actor(const km_store_t *s)
{
	return &s->actor;
}

int km_store_set_policy(km_store_t *s, const char *hex, const char *text)
{
	if (hex == NULL || *hex == '\0') {
		s->policy_hash[0] = '\0';
		free(s->policy_text);
		s->policy_text = NULL;
		return KM_EOK;
	}
	size_t tl = text ? strlen(text) : 0;
	if (strlen(hex) != KM_STORE_HASH_HEX || strspn(hex, "0123456789abcdef") != KM_STORE_HASH_HEX ||
	    tl < 2 || text[0] != '{' || text[tl - 1] != '}')
		return KM_EINVAL;
	char *copy = strdup(text);
	if (copy == NULL)
		return KM_ENOMEM;
	free(s->policy_text);
	s->policy_text = copy;
	snprintf(s->policy_hash, sizeof(s->policy_hash), "%s", hex);
	return KM_EOK;
}

static char default_via[KM_STORE_ACTOR_VIA_MAX + 1] = "process";

void km_store_set_default_via(const char *via)
{
	clean_copy(default_via, sizeof(default_via), via);
}

const char *km_store__default_via(void)
{
	return default_via;
}

void km_store__audit_context_free(km_store_t *s)
{
	free(s->policy_text);
	s->policy_text = NULL;
}
