/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An environment's audit context: the policy in force (hash + canonical text, handed to the
 * store) and the streaming of committed events to a JSON lines file and to syslog.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/audit/audit.h"
#include "keymgr/audit/audit_int.h"
#include "keymgr/common/error.h"

struct km_audit_stream {
	int fd;                     /* JSON lines file, -1 when none */
	bool syslog;
};

static json_t *policy_json(const km_policy_t *p)
{
	json_t *algs = json_array(), *owners = json_array(), *purposes = json_array();
	json_t *seen_by = json_array();
	for (int a = 1; algs != NULL && a <= KM_ALG_COUNT; a++)
		if (p->algorithms & (1u << a))
			json_array_append_new(algs, json_string(km_alg_name((km_alg_t)a)));
	for (size_t i = 0; owners != NULL && i < p->n_owners; i++)
		json_array_append_new(owners, json_string(p->owners[i]));
	for (size_t i = 0; purposes != NULL && i < p->n_purposes; i++)
		json_array_append_new(purposes, json_string(p->purposes[i]));
	for (size_t i = 0; seen_by != NULL && i < p->n_activate_when_seen_by; i++)
		json_array_append_new(seen_by, json_string(p->activate_when_seen_by[i]));
	return json_pack("{s:o, s:I, s:o, s:I, s:I, s:I, s:I, s:o, s:I, s:o, s:b, s:I, s:I, s:b,"
	                 " s:I}",
	                 "algorithms", algs, "min_rsa_bits", (json_int_t)p->min_rsa_bits,
	                 "owners", owners, "rotation_period", (json_int_t)p->rotation_period,
	                 "jwks_max_age", (json_int_t)p->jwks_max_age,
	                 "max_token_ttl", (json_int_t)p->max_token_ttl,
	                 "clock_skew", (json_int_t)p->clock_skew, "purposes", purposes,
	                 "publish_lead", (json_int_t)p->publish_lead, "activate_when_seen_by",
	                 seen_by, "require_distinct_purpose", p->require_distinct_purpose,
	                 "retire_retention", (json_int_t)p->retire_retention,
	                 "destroy_after", (json_int_t)p->destroy_after, "standby", p->standby,
	                 "activate_when_seen_ceiling", (json_int_t)p->activate_when_seen_ceiling);
}

int km_audit_sha256_hex(const void *data, size_t len, char out[KM_STORE_HASH_HEX + 1])
{
	uint8_t md[32];
	unsigned mdlen = 0;
	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return KM_ECRYPTO;
	for (size_t i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return KM_EOK;
}

char *km_audit_canonical_dumps(const json_t *j)
{
	/* Sorted members, no white space: RFC 8785 for the texts keymgr writes (names and
	 * numbers without control characters or floats). */
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

int km_audit_policy_canonical(const km_config_t *cfg, const km_env_cfg_t *ecfg, char **text,
                              char hash[KM_STORE_HASH_HEX + 1])
{
	/* A change made while parts of the configuration had errors (keymgr(1), A BROKEN
	 * CONFIGURATION) records them, and no policy for what they touch: the policy in force
	 * is what the text says, nothing filled in. Without errors the text is unchanged. */
	km_policy_t envp;
	bool env_ok = km_config_env_policy(cfg, ecfg->name, &envp) == KM_EOK;
	json_t *sets = json_object();
	json_t *root = json_pack("{s:s, s:o, s:o}", "env", ecfg->name, "policy",
	                         env_ok ? policy_json(&envp) : json_null(), "keysets", sets);
	int r = root == NULL || sets == NULL ? KM_ENOMEM : KM_EOK;
	for (size_t i = 0; r == KM_EOK && i < ecfg->n_keysets; i++) {
		km_policy_t p;
		if (km_config_keyset_policy(cfg, ecfg->name, ecfg->keysets[i]->name, &p) != KM_EOK)
			continue;
		if (json_object_set_new(sets, ecfg->keysets[i]->name, policy_json(&p)) != 0)
			r = KM_ENOMEM;
	}
	char errors[4096];
	if (r == KM_EOK && km_config_env_errors(cfg, ecfg->name, errors, sizeof(errors)) > 0 &&
	    json_object_set_new(root, "config_errors", json_string(errors)) != 0)
		r = KM_ENOMEM;
	char *t = r == KM_EOK ? km_audit_canonical_dumps(root) : NULL;
	json_decref(root);
	if (t == NULL)
		return KM_ENOMEM;
	if ((r = km_audit_sha256_hex(t, strlen(t), hash)) != KM_EOK) {
		free(t);
		return r;
	}
	*text = t;
	return KM_EOK;
}

json_t *km_audit_event_json(const char *env, const km_store_audit_event_t *e)
{
	char t[32];
	struct tm tm;
	time_t tt = (time_t)e->at;
	if (gmtime_r(&tt, &tm) != NULL)
		strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
	else
		snprintf(t, sizeof(t), "-");
	json_t *before = e->before && e->before[0] ? json_loads(e->before, 0, NULL) : NULL;
	json_t *after = e->after && e->after[0] ? json_loads(e->after, 0, NULL) : NULL;
	/* A before/after that is not JSON (tampered) is shown as the text it is. */
	if (before == NULL && e->before && e->before[0])
		before = json_string(e->before);
	if (after == NULL && e->after && e->after[0])
		after = json_string(e->after);
	return json_pack("{s:s, s:I, s:s, s:I, s:s, s:{s:s, s:I, s:s, s:s, s:I}, s:s, s:s, s:o?,"
	                 " s:o?, s:s, s:s, s:s, s:s}",
	                 "env", env, "seq", (json_int_t)e->seq, "time", t, "at", (json_int_t)e->at,
	                 "action", e->action, "actor", "user", e->actor.user, "uid",
	                 (json_int_t)e->actor.uid, "host", e->actor.host, "via", e->actor.via, "pid",
	                 (json_int_t)e->actor.pid, "keyset", e->keyset, "kid", e->kid, "before",
	                 before, "after", after, "reason", e->reason, "policy_hash",
	                 e->policy_hash, "prev_hash", e->prev_hash, "hash", e->hash);
}

/* The store's sink: one JSON line per committed event, to the file and/or syslog. */
static void stream_event(void *ctx, const char *env, const km_store_audit_event_t *e)
{
	km_audit_stream_t *st = ctx;
	json_t *j = km_audit_event_json(env, e);
	char *line = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	if (line == NULL)
		return;
	if (st->fd >= 0) {
		size_t len = strlen(line);
		char *buf = malloc(len + 2);
		if (buf != NULL) {
			memcpy(buf, line, len);
			buf[len] = '\n';
			/* One write() per line on an O_APPEND descriptor: lines of concurrent
			 * writers do not interleave. */
			ssize_t w = write(st->fd, buf, len + 1);
			(void)w;
			free(buf);
		}
	}
	if (st->syslog)
		syslog(LOG_AUTHPRIV | LOG_NOTICE, "keymgr-audit %s", line);
	free(line);
}

int km_audit_env_attach(km_env_t *env, void **state, char *err, size_t errlen)
{
	const km_env_cfg_t *ecfg = km_env_cfg(env);
	km_store_t *s = km_env_store(env);
	char hash[KM_STORE_HASH_HEX + 1];
	char *text = NULL;
	int r = km_audit_policy_canonical(km_env_config(env), ecfg, &text, hash);
	if (r != KM_EOK) {
		snprintf(err, errlen, "cannot hash the policy of environment '%s'", ecfg->name);
		return r;
	}
	r = km_store_set_policy(s, hash, text);
	free(text);
	if (r != KM_EOK) {
		snprintf(err, errlen, "cannot set the policy of environment '%s'", ecfg->name);
		return r;
	}
	if (ecfg->audit_jsonl == NULL && !ecfg->audit_syslog)
		return KM_EOK;
	km_audit_stream_t *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return KM_ENOMEM;
	st->fd = -1;
	st->syslog = ecfg->audit_syslog;
	if (ecfg->audit_jsonl != NULL) {
		st->fd = open(ecfg->audit_jsonl, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
		              O_NOFOLLOW, 0600);
		if (st->fd < 0) {
			snprintf(err, errlen, "environment '%s': cannot open the audit log %s: %s",
			         ecfg->name, ecfg->audit_jsonl, strerror(errno));
			free(st);
			return KM_EIO;
		}
	}
	km_store_set_audit_sink(s, stream_event, st);
	*state = st;
	return KM_EOK;
}

void km_audit_env_detach(void *state)
{
	km_audit_stream_t *st = state;
	if (st == NULL)
		return;
	if (st->fd >= 0)
		close(st->fd);
	free(st);
}

int km_audit_record(km_env_t *env, const char *action, const char *keyset, const char *kid,
                    const char *after, const char *reason, int64_t now, char *err,
                    size_t errlen)
{
	return km_store_audit_append(km_env_store(env), action, keyset, kid, NULL, after, reason,
	                             now, NULL, err, errlen);
}
