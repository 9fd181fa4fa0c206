/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit chain of the store (backend-neutral half): the canonical serialization and the
 * hash of an event, appending events inside the caller's transaction, the recorded JWKS
 * versions, audit keys and checkpoints. The format is specified in store.h and
 * docs/auditor-guide.md; tests/audit/ checks it against an independent Python verifier.
 */
#include <openssl/evp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store_int.h"

__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* ---- canonical JSON builder ---- */

void km_jb_init(km_jb_t *b)
{
	memset(b, 0, sizeof(*b));
	b->first = true;
}

void km_jb_free(km_jb_t *b)
{
	free(b->buf);
	km_jb_init(b);
}

static void jb_put(km_jb_t *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 256;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		char *p = realloc(b->buf, ncap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->buf = p;
		b->cap = ncap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

void km_jb_raw(km_jb_t *b, const char *s)
{
	jb_put(b, s, strlen(s));
}

/* RFC 8785 string escaping: '"', '\\', the five short escapes, \u00xx (lowercase) for the
 * other control characters; every other byte as is. */
void km_jb_str(km_jb_t *b, const char *s)
{
	jb_put(b, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c != '\0'; c++) {
		char esc[8];
		switch (*c) {
		case '"': jb_put(b, "\\\"", 2); break;
		case '\\': jb_put(b, "\\\\", 2); break;
		case '\b': jb_put(b, "\\b", 2); break;
		case '\f': jb_put(b, "\\f", 2); break;
		case '\n': jb_put(b, "\\n", 2); break;
		case '\r': jb_put(b, "\\r", 2); break;
		case '\t': jb_put(b, "\\t", 2); break;
		default:
			if (*c < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04x", *c);
				jb_put(b, esc, 6);
			} else {
				jb_put(b, (const char *)c, 1);
			}
		}
	}
	jb_put(b, "\"", 1);
}

void km_jb_open(km_jb_t *b, char c)
{
	jb_put(b, &c, 1);
	b->first = true;
}

void km_jb_close(km_jb_t *b, char c)
{
	jb_put(b, &c, 1);
	b->first = false;
}

void km_jb_key(km_jb_t *b, const char *key)
{
	if (!b->first)
		jb_put(b, ",", 1);
	b->first = false;
	km_jb_str(b, key);
	jb_put(b, ":", 1);
}

void km_jb_kv_str(km_jb_t *b, const char *key, const char *v)
{
	km_jb_key(b, key);
	km_jb_str(b, v);
}

void km_jb_kv_int(km_jb_t *b, const char *key, int64_t v)
{
	char num[32];
	snprintf(num, sizeof(num), "%lld", (long long)v);
	km_jb_key(b, key);
	km_jb_raw(b, num);
}

void km_jb_kv_bool(km_jb_t *b, const char *key, bool v)
{
	km_jb_key(b, key);
	km_jb_raw(b, v ? "true" : "false");
}

void km_jb_kv_null(km_jb_t *b, const char *key)
{
	km_jb_key(b, key);
	km_jb_raw(b, "null");
}

void km_jb_item_str(km_jb_t *b, const char *v)
{
	if (!b->first)
		jb_put(b, ",", 1);
	b->first = false;
	km_jb_str(b, v);
}

char *km_jb_take(km_jb_t *b)
{
	if (b->oom || b->buf == NULL) {
		bool empty = !b->oom;
		km_jb_free(b);
		return empty ? strdup("") : NULL;
	}
	char *p = b->buf;
	b->buf = NULL;
	km_jb_free(b);
	return p;
}

/* ---- canonical event and hash ---- */

int km_store_audit_canonical(const char *env, const km_store_audit_event_t *e, char **ret,
                             size_t *len)
{
	km_jb_t b;
	km_jb_init(&b);
	km_jb_open(&b, '{');
	km_jb_kv_str(&b, "action", e->action);
	km_jb_key(&b, "actor");
	km_jb_open(&b, '{');
	km_jb_kv_str(&b, "host", e->actor.host);
	km_jb_kv_int(&b, "pid", e->actor.pid);
	km_jb_kv_int(&b, "uid", e->actor.uid);
	km_jb_kv_str(&b, "user", e->actor.user);
	km_jb_kv_str(&b, "via", e->actor.via);
	km_jb_close(&b, '}');
	km_jb_kv_str(&b, "after", e->after ? e->after : "");
	km_jb_kv_int(&b, "at", e->at);
	km_jb_kv_str(&b, "before", e->before ? e->before : "");
	km_jb_kv_str(&b, "env", env);
	km_jb_kv_str(&b, "keyset", e->keyset);
	km_jb_kv_str(&b, "kid", e->kid);
	km_jb_kv_str(&b, "policy_hash", e->policy_hash);
	km_jb_kv_str(&b, "reason", e->reason);
	km_jb_kv_int(&b, "seq", e->seq);
	km_jb_kv_int(&b, "v", 1);
	km_jb_close(&b, '}');
	size_t n = b.len;
	char *text = km_jb_take(&b);
	if (text == NULL)
		return KM_ENOMEM;
	*ret = text;
	if (len != NULL)
		*len = n;
	return KM_EOK;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int km_store_audit_hash(const char *env, const km_store_audit_event_t *e,
                        char out[KM_STORE_HASH_HEX + 1])
{
	uint8_t prev[32], md[32];
	unsigned mdlen = 0;
	if (strlen(e->prev_hash) != KM_STORE_HASH_HEX)
		return KM_EINVAL;
	for (size_t i = 0; i < 32; i++) {
		int hi = hexval(e->prev_hash[2 * i]), lo = hexval(e->prev_hash[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return KM_EINVAL;
		prev[i] = (uint8_t)(hi << 4 | lo);
	}
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
	for (size_t i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return KM_EOK;
}

/* ---- actor and context ---- */

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

void km_store_set_audit_sink(km_store_t *s, km_store_audit_sink_fn fn, void *ctx)
{
	s->sink = fn;
	s->sink_ctx = ctx;
}

/* ---- events queued for the sink ---- */

static void event_clear(km_store_audit_event_t *e)
{
	free(e->before);
	free(e->after);
	e->before = e->after = NULL;
}

static void pending_truncate(km_store_t *s, size_t n)
{
	while (s->n_pending > n)
		event_clear(&s->pending[--s->n_pending]);
}

void km_store__pending_free(km_store_t *s)
{
	free(s->policy_text);
	s->policy_text = NULL;
	pending_truncate(s, 0);
	free(s->pending);
	s->pending = NULL;
	s->cap_pending = 0;
}

void km_store__pending_tx(km_store_t *s, km_store_tx_t op, int result)
{
	switch (op) {
	case KM_STORE_TX_SAVEPOINT:
		s->savepoint_mark = s->n_pending;
		break;
	case KM_STORE_TX_ROLLBACK_TO:
		pending_truncate(s, s->savepoint_mark);
		break;
	case KM_STORE_TX_COMMIT:
		for (size_t i = 0; result == KM_EOK && s->sink != NULL && i < s->n_pending; i++)
			s->sink(s->sink_ctx, s->env, &s->pending[i]);
		pending_truncate(s, 0);
		break;
	case KM_STORE_TX_ROLLBACK:
		pending_truncate(s, 0);
		break;
	default:
		break;
	}
}

static int pending_push(km_store_t *s, const km_store_audit_event_t *e)
{
	if (s->sink == NULL)
		return KM_EOK;
	if (s->n_pending == s->cap_pending) {
		size_t ncap = s->cap_pending ? s->cap_pending * 2 : 8;
		km_store_audit_event_t *p = realloc(s->pending, ncap * sizeof(*p));
		if (p == NULL)
			return KM_ENOMEM;
		s->pending = p;
		s->cap_pending = ncap;
	}
	km_store_audit_event_t *c = &s->pending[s->n_pending];
	*c = *e;
	c->before = strdup(e->before ? e->before : "");
	c->after = strdup(e->after ? e->after : "");
	if (c->before == NULL || c->after == NULL) {
		event_clear(c);
		return KM_ENOMEM;
	}
	s->n_pending++;
	return KM_EOK;
}

/* ---- appending ---- */

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
	km_jb_t b;
	km_jb_init(&b);
	km_jb_open(&b, '{');
	km_jb_key(&b, "policy");
	km_jb_raw(&b, s->policy_text);
	km_jb_kv_str(&b, "policy_hash", s->policy_hash);
	km_jb_close(&b, '}');
	char *after = km_jb_take(&b);
	if (after == NULL)
		return fail(err, errlen, KM_ENOMEM, "out of memory");
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
		return fail(err, errlen, r, "cannot hash the audit event: %s",
		            r == KM_EINVAL ? "the chain head's hash is malformed" : km_strerror(r));
	if ((r = s->be->audit_insert(s->ctx, &e, err, errlen)) != KM_EOK)
		return r;
	if ((r = pending_push(s, &e)) != KM_EOK)
		return fail(err, errlen, r, "out of memory");
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

static bool text_ok(const char *s, size_t max)
{
	if (s == NULL)
		return true;
	size_t len = strlen(s);
	if (len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static bool json_object_text_ok(const char *s)
{
	size_t len = s ? strlen(s) : 0;
	return s == NULL || len == 0 || (len >= 2 && s[0] == '{' && s[len - 1] == '}' &&
	                                 text_ok(s, 65536));
}

int km_store_audit_append(km_store_t *s, const char *action, const char *keyset,
                          const char *kid, const char *before, const char *after,
                          const char *reason, int64_t at, int64_t *seq, char *err,
                          size_t errlen)
{
	int64_t head = 0;
	char hash[KM_STORE_HASH_HEX + 1];
	if (!action_ok(action))
		return fail(err, errlen, KM_EINVAL, "invalid audit action '%.40s': use [a-z0-9.-], "
		            "outside the store's own actions (keyset.*, key.*, jwks.*, audit.key.*, "
		            "store.*, policy.load)",
		            action ? action : "");
	if ((keyset && *keyset && !km_name_keyset_valid(keyset)) ||
	    (kid && *kid && !km_name_kid_valid(kid)))
		return fail(err, errlen, KM_EINVAL, "audit event: invalid key set name or kid");
	if (!text_ok(reason, KM_STORE_TEXT_MAX))
		return fail(err, errlen, KM_EINVAL, "audit event: reason has control characters or "
		            "is longer than %d bytes", KM_STORE_TEXT_MAX);
	if (!json_object_text_ok(before) || !json_object_text_ok(after))
		return fail(err, errlen, KM_EINVAL, "audit event: before/after must be JSON objects "
		            "on one line");
	if (at < 0)
		return fail(err, errlen, KM_EINVAL, "audit event: time is missing");
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

void km_store_audit_events_free(km_store_audit_event_t *list, size_t count)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		event_clear(&list[i]);
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

/* ---- JWKS versions ---- */

void km_store_jwks_versions_free(km_store_jwks_version_t *list, size_t count)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free(list[i].kids);
	free(list);
}

int km_store_jwks_versions(km_store_t *s, km_store_jwks_version_t **ret, size_t *count,
                           char *err, size_t errlen)
{
	km_store_jwks_version_t *list = NULL;
	size_t n = 0;
	int r = s->be->jwks_version_query(s->ctx, false, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	*ret = list;
	*count = n;
	return KM_EOK;
}

int km_store_jwks_latest(km_store_t *s, km_store_jwks_version_t *ret, char *err, size_t errlen)
{
	km_store_jwks_version_t *list = NULL;
	size_t n = 0;
	int r = s->be->jwks_version_query(s->ctx, true, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	if (n == 0) {
		free(list);
		return fail(err, errlen, KM_ENOENT, "environment '%s' has published no JWKS yet",
		            s->env);
	}
	*ret = list[0];
	free(list);
	return KM_EOK;
}

/* The kids the environment's JWKS serves now (published, active, retired), in key order,
 * as a canonical JSON array. */
static int published_kids(km_store_t *s, char **ret, char *err, size_t errlen)
{
	km_store_key_query_t q = { 0 };
	km_store_key_t *keys = NULL;
	size_t n = 0;
	q.f.states = KM_STORE_STATE_BIT(KM_STATE_PUBLISHED) | KM_STORE_STATE_BIT(KM_STATE_ACTIVE) |
	             KM_STORE_STATE_BIT(KM_STATE_RETIRED);
	q.f.pending = KM_STORE_PENDING_NONE;
	int r = s->be->key_query(s->ctx, &q, &keys, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	km_jb_t b;
	km_jb_init(&b);
	km_jb_open(&b, '[');
	for (size_t i = 0; i < n; i++)
		km_jb_item_str(&b, keys[i].kid);
	km_jb_close(&b, ']');
	free(keys);
	char *text = km_jb_take(&b);
	if (text == NULL)
		return fail(err, errlen, KM_ENOMEM, "out of memory");
	*ret = text;
	return KM_EOK;
}

int km_store__jwks_track(km_store_t *s, int64_t at, bool force, uint64_t *serial, char *err,
                         size_t errlen)
{
	km_store_jwks_version_t *last = NULL;
	size_t n_last = 0;
	char *kids = NULL, *before = NULL, *after = NULL;
	uint64_t v = 0;
	int64_t seq = 0;
	char hash[KM_STORE_HASH_HEX + 1];
	int r = published_kids(s, &kids, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = s->be->jwks_version_query(s->ctx, true, &last, &n_last, err, errlen)) != KM_EOK)
		goto out;
	if (!force && ((n_last == 1 && strcmp(last[0].kids, kids) == 0) ||
	               (n_last == 0 && strcmp(kids, "[]") == 0))) {
		v = n_last ? last[0].serial : 0;
		goto done;
	}
	if ((r = s->be->counter_next(s->ctx, "jwks_serial", &v, err, errlen)) != KM_EOK)
		goto out;
	km_jb_t b;
	if (n_last == 1) {
		km_jb_init(&b);
		km_jb_open(&b, '{');
		km_jb_key(&b, "kids");
		km_jb_raw(&b, last[0].kids);
		km_jb_kv_int(&b, "serial", (int64_t)last[0].serial);
		km_jb_close(&b, '}');
		if ((before = km_jb_take(&b)) == NULL) {
			r = fail(err, errlen, KM_ENOMEM, "out of memory");
			goto out;
		}
	}
	km_jb_init(&b);
	km_jb_open(&b, '{');
	km_jb_key(&b, "kids");
	km_jb_raw(&b, kids);
	km_jb_kv_int(&b, "serial", (int64_t)v);
	km_jb_close(&b, '}');
	if ((after = km_jb_take(&b)) == NULL) {
		r = fail(err, errlen, KM_ENOMEM, "out of memory");
		goto out;
	}
	if ((r = km_store__audit_emit(s, "jwks.publish", NULL, NULL, before, after, NULL, at, err,
	                              errlen)) != KM_EOK)
		goto out;
	if ((r = s->be->audit_head(s->ctx, &seq, hash, err, errlen)) != KM_EOK)
		goto out;
	km_store_jwks_version_t ver = { .serial = v, .at = at, .event_seq = seq, .kids = kids };
	if ((r = s->be->jwks_version_insert(s->ctx, &ver, err, errlen)) != KM_EOK)
		goto out;
done:
	if (serial != NULL)
		*serial = v;
out:
	km_store_jwks_versions_free(last, n_last);
	free(kids);
	free(before);
	free(after);
	return r;
}

/* ---- audit keys and checkpoints ---- */

static void hex_of(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
	out[2 * n] = '\0';
}

int km_store_audit_key_add(km_store_t *s, const km_store_audit_key_t *k, char *err,
                           size_t errlen)
{
	char hex[2 * KM_STORE_CKA_ID_MAX + 1];
	int64_t id = 0;
	size_t jl = strlen(k->jwk);
	if (!km_name_kid_valid(k->kid) || k->cka_id_len == 0 ||
	    k->cka_id_len > KM_STORE_CKA_ID_MAX || jl < 2 || k->jwk[0] != '{' ||
	    k->jwk[jl - 1] != '}' || !text_ok(k->jwk, KM_STORE_JWK_MAX) ||
	    !text_ok(k->token_label, KM_STORE_TOKEN_LABEL_MAX) || k->token_label[0] == '\0' ||
	    !text_ok(k->token_serial, KM_STORE_TOKEN_SERIAL_MAX) || km_alg_info(k->alg) == NULL ||
	    k->created_at < 0)
		return fail(err, errlen, KM_EINVAL, "audit key: kid, CKA_ID, public JWK, token, "
		            "algorithm or time missing or invalid");
	hex_of(k->cka_id, k->cka_id_len, hex);
	km_jb_t b;
	km_jb_init(&b);
	km_jb_open(&b, '{');
	km_jb_kv_str(&b, "alg", km_alg_name(k->alg));
	km_jb_kv_str(&b, "cka_id", hex);
	km_jb_kv_str(&b, "jwk", k->jwk);
	km_jb_kv_str(&b, "kid", k->kid);
	km_jb_kv_str(&b, "token_label", k->token_label);
	km_jb_kv_str(&b, "token_serial", k->token_serial);
	km_jb_close(&b, '}');
	char *after = km_jb_take(&b);
	if (after == NULL)
		return fail(err, errlen, KM_ENOMEM, "out of memory");
	km_store_key_query_t q = { .cka_id = k->cka_id, .cka_id_len = k->cka_id_len };
	km_store_key_t *same = NULL;
	size_t n_same = 0;
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		goto out;
	/* A key set's key is never an audit key (nor the other way round). */
	if ((r = s->be->key_query(s->ctx, &q, &same, &n_same, err, errlen)) == KM_EOK && n_same)
		r = fail(err, errlen, KM_EEXIST, "this CKA_ID belongs to a key of key set %s",
		         same[0].keyset);
	free(same);
	if (r == KM_EOK)
		r = s->be->audit_key_insert(s->ctx, k, &id, err, errlen);
	if (r == KM_EEXIST)
		fail(err, errlen, r, "audit key %s (or its CKA_ID) is already recorded", k->kid);
	if (r == KM_EOK)
		r = km_store__audit_emit(s, "audit.key.create", NULL, k->kid, NULL, after,
		                         "checkpoint signing key", k->created_at, err, errlen);
	r = km_store__op_leave(s, r, err, errlen);
out:
	free(after);
	return r;
}

int km_store_audit_keys(km_store_t *s, km_store_audit_key_t **ret, size_t *count, char *err,
                        size_t errlen)
{
	km_store_audit_key_t *list = NULL;
	size_t n = 0;
	int r = s->be->audit_key_query(s->ctx, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	*ret = list;
	*count = n;
	return KM_EOK;
}

int km_store_audit_key_is(km_store_t *s, const uint8_t *cka_id, size_t cka_id_len, bool *ret,
                          char *err, size_t errlen)
{
	km_store_audit_key_t *list = NULL;
	size_t n = 0;
	bool is = false;
	int r = s->be->audit_key_query(s->ctx, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	for (size_t i = 0; i < n; i++)
		if (list[i].cka_id_len == cka_id_len && memcmp(list[i].cka_id, cka_id, cka_id_len) == 0)
			is = true;
	free(list);
	*ret = is;
	return KM_EOK;
}

int km_store_checkpoint_add(km_store_t *s, const km_store_checkpoint_t *c, char *err,
                            size_t errlen)
{
	if (c->seq < 1 || strlen(c->hash) != KM_STORE_HASH_HEX || !km_name_kid_valid(c->key_kid) ||
	    c->signature[0] == '\0' || !text_ok(c->signature, KM_STORE_SIG_MAX) || c->at < 0)
		return fail(err, errlen, KM_EINVAL, "checkpoint: sequence, hash, key, signature or "
		            "time missing or invalid");
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	r = s->be->checkpoint_insert(s->ctx, c, err, errlen);
	return km_store__op_leave(s, r, err, errlen);
}

int km_store_checkpoints(km_store_t *s, km_store_checkpoint_t **ret, size_t *count, char *err,
                         size_t errlen)
{
	km_store_checkpoint_t *list = NULL;
	size_t n = 0;
	int r = s->be->checkpoint_query(s->ctx, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	*ret = list;
	*count = n;
	return KM_EOK;
}

/* ---- first open ---- */

/* State names in byte order, for canonical "times" objects. */
static const km_state_t states_by_name[KM_STATE_COUNT] = {
	KM_STATE_ACTIVE, KM_STATE_DESTROYED, KM_STATE_GENERATED, KM_STATE_PUBLISHED,
	KM_STATE_REMOVED, KM_STATE_RETIRED, KM_STATE_REVOKED,
};

/* {"keys":[...],"keysets":[...]}: everything a replay of the log needs to start from. */
static int baseline_text(km_store_t *s, char **ret, bool *empty, char *err, size_t errlen)
{
	km_store_keyset_t *sets = NULL;
	km_store_key_t *keys = NULL;
	size_t n_sets = 0, n_keys = 0;
	km_store_key_query_t q = { 0 };
	int r = s->be->keyset_query(s->ctx, NULL, NULL, &sets, &n_sets, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = s->be->key_query(s->ctx, &q, &keys, &n_keys, err, errlen)) != KM_EOK)
		goto out;
	km_jb_t b;
	km_jb_init(&b);
	km_jb_open(&b, '{');
	km_jb_key(&b, "keys");
	km_jb_open(&b, '[');
	for (size_t i = 0; i < n_keys; i++) {
		const km_store_key_t *k = &keys[i];
		char hex[2 * KM_STORE_CKA_ID_MAX + 1];
		hex_of(k->cka_id, k->cka_id_len, hex);
		if (!b.first)
			km_jb_raw(&b, ",");
		km_jb_open(&b, '{');
		km_jb_kv_str(&b, "cka_id", hex);
		km_jb_kv_str(&b, "jwk", k->jwk);
		km_jb_kv_str(&b, "keyset", k->keyset);
		km_jb_kv_str(&b, "kid", k->kid);
		km_jb_kv_bool(&b, "pending", k->pending);
		km_jb_kv_str(&b, "state", km_state_name(k->state));
		km_jb_key(&b, "times");
		km_jb_open(&b, '{');
		for (int j = 0; j < KM_STATE_COUNT; j++)
			if (k->state_at[states_by_name[j]] != KM_STORE_TIME_NONE)
				km_jb_kv_int(&b, km_state_name(states_by_name[j]),
				             k->state_at[states_by_name[j]]);
		km_jb_close(&b, '}');
		km_jb_close(&b, '}');
	}
	km_jb_close(&b, ']');
	km_jb_key(&b, "keysets");
	km_jb_open(&b, '[');
	for (size_t i = 0; i < n_sets; i++) {
		if (!b.first)
			km_jb_raw(&b, ",");
		km_jb_open(&b, '{');
		km_jb_kv_str(&b, "alg", km_alg_name(sets[i].alg));
		km_jb_kv_str(&b, "name", sets[i].name);
		km_jb_kv_str(&b, "owner", sets[i].owner);
		km_jb_kv_str(&b, "purpose", sets[i].purpose);
		km_jb_close(&b, '}');
	}
	km_jb_close(&b, ']');
	km_jb_close(&b, '}');
	char *text = km_jb_take(&b);
	if (text == NULL) {
		r = fail(err, errlen, KM_ENOMEM, "out of memory");
		goto out;
	}
	*ret = text;
	*empty = n_sets == 0 && n_keys == 0;
out:
	free(sets);
	free(keys);
	return r;
}

int km_store__audit_bootstrap(km_store_t *s, char *err, size_t errlen)
{
	int64_t head = 0;
	char hash[KM_STORE_HASH_HEX + 1];
	char *after = NULL;
	bool empty = true;
	/* Only a store created or migrated by this open starts a chain: an empty chain in a
	 * store that already had one is evidence (of deletion) and is left for verification. */
	if (s->be->found_version(s->ctx) >= 2)
		return KM_EOK;
	int r = s->be->audit_head(s->ctx, &head, hash, err, errlen);
	if (r != KM_EOK || head > 0)
		return r;
	if ((r = km_store__op_enter(s, err, errlen)) != KM_EOK)
		return r;
	/* Read again under the write lock: another process may have started the chain. */
	if ((r = s->be->audit_head(s->ctx, &head, hash, err, errlen)) != KM_EOK || head > 0)
		goto out;
	if ((r = baseline_text(s, &after, &empty, err, errlen)) != KM_EOK)
		goto out;
	int64_t now = (int64_t)time(NULL);
	char created[32];
	snprintf(created, sizeof(created), "{\"schema\":%d}", s->be->schema_version());
	if (empty)
		r = km_store__audit_emit(s, "store.create", NULL, NULL, NULL, created, NULL, now, err,
		                         errlen);
	else
		r = km_store__audit_emit(s, "store.baseline", NULL, NULL, NULL, after,
		                         "rows that existed before the audit log", now, err, errlen);
	if (r == KM_EOK && !empty)
		r = km_store__jwks_track(s, now, false, NULL, err, errlen);
out:
	free(after);
	return km_store__op_leave(s, r, err, errlen);
}
