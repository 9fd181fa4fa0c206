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
#include "keymgr/common/canon_json.h"
#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"

struct km_audit_stream {
	int fd;                     /* JSON lines file, -1 when none */
	bool syslog;
};

/* "key":[...] of the n names of a policy list (rows of size bytes). */
static void names(km_cjson_t *b, const char *key, const void *rows, size_t size, size_t n)
{
	km_cjson_key(b, key);
	km_cjson_open(b, '[');
	for (size_t i = 0; i < n; i++)
		km_cjson_item_str(b, (const char *)rows + i * size);
	km_cjson_close(b, ']');
}

/* One policy as a canonical JSON object: every field, members in byte order. */
static void policy_write(km_cjson_t *b, const km_policy_t *p)
{
	km_cjson_open(b, '{');
	names(b, "activate_when_seen_by", p->activate_when_seen_by,
	      sizeof(p->activate_when_seen_by[0]), p->n_activate_when_seen_by);
	km_cjson_kv_int(b, "activate_when_seen_ceiling", p->activate_when_seen_ceiling);
	km_cjson_key(b, "algorithms");
	km_cjson_open(b, '[');
	for (int a = 1; a <= KM_ALG_COUNT; a++)
		if (p->algorithms & (1u << a))
			km_cjson_item_str(b, km_alg_name((km_alg_t)a));
	km_cjson_close(b, ']');
	km_cjson_kv_int(b, "clock_skew", p->clock_skew);
	km_cjson_kv_int(b, "destroy_after", p->destroy_after);
	km_cjson_kv_int(b, "jwks_max_age", p->jwks_max_age);
	km_cjson_kv_int(b, "max_token_ttl", p->max_token_ttl);
	km_cjson_kv_int(b, "min_rsa_bits", p->min_rsa_bits);
	names(b, "owners", p->owners, sizeof(p->owners[0]), p->n_owners);
	km_cjson_kv_int(b, "publish_lead", p->publish_lead);
	names(b, "purposes", p->purposes, sizeof(p->purposes[0]), p->n_purposes);
	km_cjson_kv_bool(b, "require_distinct_purpose", p->require_distinct_purpose);
	km_cjson_kv_int(b, "retire_retention", p->retire_retention);
	km_cjson_kv_int(b, "rotation_period", p->rotation_period);
	km_cjson_kv_bool(b, "standby", p->standby);
	km_cjson_close(b, '}');
}

int km_audit_sha256_hex(const void *data, size_t len, char out[KM_STORE_HASH_HEX + 1])
{
	uint8_t md[32];
	unsigned mdlen = 0;
	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return KM_ECRYPTO;
	return km_hex_encode(md, sizeof(md), out, KM_STORE_HASH_HEX + 1);
}

static int by_name(const void *a, const void *b)
{
	const km_keyset_cfg_t *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

int km_audit_policy_canonical(const km_config_t *cfg, const km_env_cfg_t *ecfg, char **text,
                              char hash[KM_STORE_HASH_HEX + 1])
{
	/* A change made while parts of the configuration had errors (keymgr(1), A BROKEN
	 * CONFIGURATION) records them, and no policy for what they touch: the policy in force
	 * is what the text says, nothing filled in. Without errors the text is unchanged. */
	km_policy_t envp;
	bool env_ok = km_config_env_policy(cfg, ecfg->name, &envp) == KM_EOK;
	char errors[4096];
	bool has_errors = km_config_env_errors(cfg, ecfg->name, errors, sizeof(errors)) > 0;
	/* {"config_errors":..., "env":..., "keysets":{NAME: policy, ...}, "policy": policy}:
	 * members and key sets in byte order of their names; a key set whose effective policy
	 * cannot be computed is left out. */
	const km_keyset_cfg_t *sets[KM_CONFIG_MAX_KEYSETS];
	memcpy(sets, ecfg->keysets, ecfg->n_keysets * sizeof(sets[0]));
	qsort(sets, ecfg->n_keysets, sizeof(*sets), by_name);
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	if (has_errors)
		km_cjson_kv_str(&b, "config_errors", errors);
	km_cjson_kv_str(&b, "env", ecfg->name);
	km_cjson_key(&b, "keysets");
	km_cjson_open(&b, '{');
	for (size_t i = 0; i < ecfg->n_keysets; i++) {
		km_policy_t p;
		if (km_config_keyset_policy(cfg, ecfg->name, sets[i]->name, &p) != KM_EOK)
			continue;
		km_cjson_key(&b, sets[i]->name);
		policy_write(&b, &p);
	}
	km_cjson_close(&b, '}');
	if (env_ok) {
		km_cjson_key(&b, "policy");
		policy_write(&b, &envp);
	} else {
		km_cjson_kv_null(&b, "policy");
	}
	km_cjson_close(&b, '}');
	char *t = km_cjson_take(&b);
	if (t == NULL)
		return KM_ENOMEM;
	int r = km_audit_sha256_hex(t, strlen(t), hash);
	if (r != KM_EOK) {
		free(t);
		return r;
	}
	*text = t;
	return KM_EOK;
}

/* at as "2026-11-28T17:00:00Z" ("-" when it cannot be shown). */
static void iso_time(int64_t at, char t[32])
{
	struct tm tm;
	time_t tt = (time_t)at;
	if (gmtime_r(&tt, &tm) == NULL || strftime(t, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(t, 32, "-");
}

json_t *km_audit_event_json(const char *env, const km_store_audit_event_t *e)
{
	char t[32];
	iso_time(e->at, t);
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

/* One JSON line (j is consumed) to the file and/or syslog. */
static void stream_json(km_audit_stream_t *st, json_t *j)
{
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

/* The store's sink: one JSON line per committed event. */
static void stream_event(void *ctx, const char *env, const km_store_audit_event_t *e)
{
	stream_json(ctx, km_audit_event_json(env, e));
}

void km_audit_stream_checkpoint(km_env_t *env, const km_store_checkpoint_t *cp)
{
	km_audit_stream_t *st = km_env_hook_state(env, &km_audit_env_hooks);
	char t[32];
	if (st == NULL)
		return;
	iso_time(cp->at, t);
	/* The signed payload's members (km_audit_checkpoint_payload()), its signature and the
	 * time: a SIEM can check the signature from the line alone. */
	stream_json(st, json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:i, s:s, s:s}", "at",
	                          (json_int_t)cp->at, "env", km_env_name(env), "hash", cp->hash,
	                          "kid", cp->key_kid, "seq", (json_int_t)cp->seq, "type",
	                          KM_AUDIT_CHECKPOINT_TYPE, "v", 1, "signature", cp->signature,
	                          "time", t));
}

static int env_attach(km_env_t *env, void **state, char *err, size_t errlen)
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

static void env_detach(void *state)
{
	km_audit_stream_t *st = state;
	if (st == NULL)
		return;
	if (st->fd >= 0)
		close(st->fd);
	free(st);
}

const km_env_hooks_t km_audit_env_hooks = {
	.attach = env_attach,
	.detach = env_detach,
};

int km_audit_record(km_env_t *env, const char *action, const char *keyset, const char *kid,
                    const char *after, const char *reason, int64_t now, char *err,
                    size_t errlen)
{
	return km_store_audit_append(km_env_store(env), action, keyset, kid, NULL, after, reason,
	                             now, NULL, err, errlen);
}
