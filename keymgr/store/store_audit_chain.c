/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit chain's links: the canonical serialization and the hash of an event, appending
 * events inside the caller's transaction (with the policy.load that precedes the first change
 * under a new policy), and reading the chain back. The format is specified in store.h and
 * docs/auditor-guide.md; tests/audit/ checks it against an independent Python verifier.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/canon_json.h"
#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"
#include "keymgr/store/store_int.h"

int km_store_audit_canonical(const char *env, const km_store_audit_event_t *e, char **ret,
                             size_t *len)
{
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_kv_str(&b, "action", e->action);
	km_cjson_key(&b, "actor");
	km_cjson_open(&b, '{');
	km_cjson_kv_str(&b, "host", e->actor.host);
	km_cjson_kv_int(&b, "pid", e->actor.pid);
	km_cjson_kv_int(&b, "uid", e->actor.uid);
	km_cjson_kv_str(&b, "user", e->actor.user);
	km_cjson_kv_str(&b, "via", e->actor.via);
	km_cjson_close(&b, '}');
	km_cjson_kv_str(&b, "after", e->after ? e->after : "");
	km_cjson_kv_int(&b, "at", e->at);
	km_cjson_kv_str(&b, "before", e->before ? e->before : "");
	km_cjson_kv_str(&b, "env", env);
	km_cjson_kv_str(&b, "keyset", e->keyset);
	km_cjson_kv_str(&b, "kid", e->kid);
	km_cjson_kv_str(&b, "policy_hash", e->policy_hash);
	km_cjson_kv_str(&b, "reason", e->reason);
	km_cjson_kv_int(&b, "seq", e->seq);
	km_cjson_kv_int(&b, "v", 1);
	km_cjson_close(&b, '}');
	size_t n = b.len;
	char *text = km_cjson_take(&b);
	if (text == NULL)
		return KM_ENOMEM;
	*ret = text;
	if (len != NULL)
		*len = n;
	return KM_EOK;
}

int km_store_audit_hash(const char *env, const km_store_audit_event_t *e,
                        char out[KM_STORE_HASH_HEX + 1])
{
	uint8_t prev[32], md[32];
	unsigned mdlen = 0;
	if (strlen(e->prev_hash) != KM_STORE_HASH_HEX ||
	    km_hex_decode(e->prev_hash, KM_STORE_HASH_HEX, prev, sizeof(prev)) != KM_EOK)
		return KM_EINVAL;
	char *text = NULL;
	size_t len = 0;
	int r = km_store_audit_canonical(env, e, &text, &len);
	if (r != KM_EOK)
		return r;
	EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
	if (md_ctx == NULL || EVP_DigestInit_ex(md_ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md_ctx, prev, sizeof(prev)) != 1 ||
	    EVP_DigestUpdate(md_ctx, text, len) != 1 || EVP_DigestFinal_ex(md_ctx, md, &mdlen) != 1)
		r = KM_ECRYPTO;
	EVP_MD_CTX_free(md_ctx);
	free(text);
	if (r != KM_EOK)
		return r;
	return km_hex_encode(md, sizeof(md), out, KM_STORE_HASH_HEX + 1);
}

/* Whether the chain head (seq head) was written under the policy now set on s. */
static int head_policy_is(km_store_t *s, int64_t head, bool *same, char *err, size_t errlen)
{
	km_store_audit_filter_t f = { .from_seq = head, .to_seq = head };
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	*same = false;
	if (head == 0)
		return KM_EOK;
	int r = s->be->audit_query(s->ctx, &f, &ev, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	*same = n == 1 && strcmp(ev[0].policy_hash, s->policy_hash) == 0;
	km_store_audit_events_free(ev, n);
	return KM_EOK;
}

static int emit_policy_load(km_store_t *s, int64_t at, char *err, size_t errlen)
{
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_key(&b, "policy");
	km_cjson_raw(&b, s->policy_text);
	km_cjson_kv_str(&b, "policy_hash", s->policy_hash);
	km_cjson_close(&b, '}');
	char *after = km_cjson_take(&b);
	if (after == NULL)
		return km_store__fail(err, errlen, KM_ENOMEM, "out of memory");
	int r = km_store__audit_emit(s, "policy.load", NULL, NULL, NULL, after,
	                             "first change under this policy", at, err, errlen);
	free(after);
	return r;
}

int km_store__audit_emit(km_store_t *s, const char *action, const char *keyset,
                         const char *kid, const char *before, const char *after,
                         const char *reason, int64_t at, char *err, size_t errlen)
{
	km_store_audit_event_t e;
	int64_t head = 0;
	char head_hash[KM_STORE_HASH_HEX + 1] = "";
	memset(&e, 0, sizeof(e));
	int r = s->be->audit_head(s->ctx, &head, head_hash, err, errlen);
	if (r != KM_EOK)
		return r;
	if (s->policy_text != NULL && strcmp(action, "policy.load") != 0) {
		bool same = false;
		if ((r = head_policy_is(s, head, &same, err, errlen)) != KM_EOK)
			return r;
		if (!same) {
			if ((r = emit_policy_load(s, at, err, errlen)) != KM_EOK)
				return r;
			if ((r = s->be->audit_head(s->ctx, &head, head_hash, err, errlen)) != KM_EOK)
				return r;
		}
	}
	e.seq = head + 1;
	e.at = at;
	e.actor = s->actor;
	snprintf(e.action, sizeof(e.action), "%s", action);
	snprintf(e.keyset, sizeof(e.keyset), "%s", keyset ? keyset : "");
	snprintf(e.kid, sizeof(e.kid), "%s", kid ? kid : "");
	e.before = (char *)(before ? before : "");
	e.after = (char *)(after ? after : "");
	snprintf(e.reason, sizeof(e.reason), "%s", reason ? reason : "");
	snprintf(e.policy_hash, sizeof(e.policy_hash), "%s", s->policy_hash);
	if (head == 0)
		memset(e.prev_hash, '0', KM_STORE_HASH_HEX);
	else
		snprintf(e.prev_hash, sizeof(e.prev_hash), "%s", head_hash);
	if ((r = km_store_audit_hash(s->env, &e, e.hash)) != KM_EOK)
		return km_store__fail(err, errlen, r, "cannot hash the audit event: %s",
		                      r == KM_EINVAL ? "the chain head's hash is malformed" :
		                      km_strerror(r));
	if ((r = s->be->audit_insert(s->ctx, &e, err, errlen)) != KM_EOK)
		return r;
	if ((r = km_store__pending_push(s, &e)) != KM_EOK)
		return km_store__fail(err, errlen, r, "out of memory");
	return KM_EOK;
}

static bool action_ok(const char *a)
{
	size_t n = a ? strlen(a) : 0;
	if (n == 0 || n > KM_STORE_ACTION_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= '0' && a[i] <= '9') || a[i] == '.' ||
		      a[i] == '-'))
			return false;
	static const char *const reserved[] = { "keyset.", "key.", "jwks.", "audit.key.",
	                                        "store.", "policy.load" };
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strncmp(a, reserved[i], strlen(reserved[i])) == 0)
			return false;
	return true;
}

static bool json_object_text_ok(const char *s)
{
	size_t len = s ? strlen(s) : 0;
	return s == NULL || len == 0 || (len >= 2 && s[0] == '{' && s[len - 1] == '}' &&
	                                 km_store__text_ok(s, 65536, true));
}

int km_store_audit_append(km_store_t *s, const char *action, const char *keyset,
                          const char *kid, const char *before, const char *after,
                          const char *reason, int64_t at, int64_t *seq, char *err,
                          size_t errlen)
{
	int64_t head = 0;
	char hash[KM_STORE_HASH_HEX + 1];
	if (!action_ok(action))
		return km_store__fail(err, errlen, KM_EINVAL, "invalid audit action '%.40s': use "
		                      "[a-z0-9.-], outside the store's own actions (keyset.*, "
		                      "key.*, jwks.*, audit.key.*, store.*, policy.load)",
		                      action ? action : "");
	if ((keyset && *keyset && !km_name_keyset_valid(keyset)) ||
	    (kid && *kid && !km_name_kid_valid(kid)))
		return km_store__fail(err, errlen, KM_EINVAL,
		                      "audit event: invalid key set name or kid");
	if (!km_store__text_ok(reason, KM_STORE_TEXT_MAX, true))
		return km_store__fail(err, errlen, KM_EINVAL, "audit event: reason has control "
		                      "characters or is longer than %d bytes", KM_STORE_TEXT_MAX);
	if (!json_object_text_ok(before) || !json_object_text_ok(after))
		return km_store__fail(err, errlen, KM_EINVAL, "audit event: before/after must be "
		                      "JSON objects on one line");
	if (at < 0)
		return km_store__fail(err, errlen, KM_EINVAL, "audit event: time is missing");
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	r = km_store__audit_emit(s, action, keyset, kid, before, after, reason, at, err, errlen);
	if (r == KM_EOK)
		r = s->be->audit_head(s->ctx, &head, hash, err, errlen);
	if ((r = km_store__op_leave(s, r, err, errlen)) != KM_EOK)
		return r;
	if (seq != NULL)
		*seq = head;
	return KM_EOK;
}

int km_store_audit_query(km_store_t *s, const km_store_audit_filter_t *f,
                         km_store_audit_event_t **ret, size_t *count, char *err,
                         size_t errlen)
{
	km_store_audit_event_t *list = NULL;
	size_t n = 0;
	int r = s->be->audit_query(s->ctx, f, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	*ret = list;
	*count = n;
	return KM_EOK;
}

void km_store__event_clear(km_store_audit_event_t *e)
{
	free(e->before);
	free(e->after);
	e->before = e->after = NULL;
}

void km_store_audit_events_free(km_store_audit_event_t *list, size_t count)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		km_store__event_clear(&list[i]);
	free(list);
}

int km_store_audit_head(km_store_t *s, int64_t *seq, char hash[KM_STORE_HASH_HEX + 1],
                        char *err, size_t errlen)
{
	int64_t v = 0;
	char h[KM_STORE_HASH_HEX + 1] = "";
	int r = s->be->audit_head(s->ctx, &v, h, err, errlen);
	if (r != KM_EOK)
		return r;
	*seq = v;
	memcpy(hash, h, sizeof(h));
	return KM_EOK;
}
