/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The backend-neutral half of the store: argument validation, the lifecycle rules, and one
 * transaction around every public call. Rows are moved by the backend (store_backend.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/canon_json.h"
#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"
#include "keymgr/common/name.h"
#include "keymgr/common/pguri.h"
#include "keymgr/store/store.h"
#include "keymgr/store/store_backend.h"
#include "keymgr/store/store_int.h"

int km_store__fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

bool km_store__text_ok(const char *s, size_t max, bool allow_empty)
{
	if (s == NULL)
		return allow_empty;
	size_t len = strlen(s);
	if (len > max || (len == 0 && !allow_empty))
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static bool time_ok(int64_t at)
{
	return at >= 0;
}

/* ---- audit event texts (canonical JSON, members in byte order) ---- */

void km_store__cka_hex(const uint8_t *id, size_t len, char out[2 * KM_STORE_CKA_ID_MAX + 1])
{
	km_hex_encode(id, len < KM_STORE_CKA_ID_MAX ? len : KM_STORE_CKA_ID_MAX, out,
	              2 * KM_STORE_CKA_ID_MAX + 1);
}

/* Emits one event whose before/after were built in b1/b2 (freed here). */
static int emit_built(km_store_t *s, const char *action, const char *keyset, const char *kid,
                      km_cjson_t *b1, km_cjson_t *b2, const char *reason, int64_t at, char *err,
                      size_t errlen)
{
	char *before = b1 ? km_cjson_take(b1) : NULL;
	char *after = b2 ? km_cjson_take(b2) : NULL;
	int r;
	if ((b1 && before == NULL) || (b2 && after == NULL))
		r = km_store__fail(err, errlen, KM_ENOMEM, "out of memory");
	else
		r = km_store__audit_emit(s, action, keyset, kid, before, after, reason, at, err,
		                         errlen);
	free(before);
	free(after);
	return r;
}

static int audit_keyset_create(km_store_t *s, const km_store_keyset_t *ks, char *err,
                               size_t errlen)
{
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_kv_str(&b, "alg", km_alg_name(ks->alg));
	km_cjson_kv_str(&b, "created_by", ks->created_by);
	km_cjson_kv_str(&b, "description", ks->description);
	km_cjson_key(&b, "labels");
	km_cjson_open(&b, '[');
	for (size_t i = 0; i < ks->n_labels; i++)
		km_cjson_item_str(&b, ks->labels[i]);
	km_cjson_close(&b, ']');
	km_cjson_kv_str(&b, "owner", ks->owner);
	km_cjson_kv_str(&b, "purpose", ks->purpose);
	km_cjson_kv_int(&b, "rsa_bits", ks->rsa_bits);
	km_cjson_close(&b, '}');
	return emit_built(s, "keyset.create", ks->name, NULL, NULL, &b, NULL, ks->created_at, err,
	                  errlen);
}

static int audit_keyset_set(km_store_t *s, const char *name, const km_store_change_t *c,
                            char *err, size_t errlen)
{
	km_cjson_t b1, b2;
	char action[32];
	km_cjson_init(&b1);
	km_cjson_open(&b1, '{');
	km_cjson_kv_str(&b1, c->field, c->old_value);
	km_cjson_close(&b1, '}');
	km_cjson_init(&b2);
	km_cjson_open(&b2, '{');
	km_cjson_kv_str(&b2, c->field, c->new_value);
	km_cjson_close(&b2, '}');
	snprintf(action, sizeof(action), "keyset.%s", c->field);
	return emit_built(s, action, name, NULL, &b1, &b2, c->reason, c->at, err, errlen);
}

/* A key event: before/after carry the CKA_ID (the key's identity from intent on), the state
 * and pending flag, plus for confirm the kid and the public JWK. */
static void key_state_json(km_cjson_t *b, const km_store_key_t *k, bool with_jwk)
{
	char hex[2 * KM_STORE_CKA_ID_MAX + 1];
	km_store__cka_hex(k->cka_id, k->cka_id_len, hex);
	km_cjson_init(b);
	km_cjson_open(b, '{');
	km_cjson_kv_str(b, "cka_id", hex);
	if (with_jwk) {
		km_cjson_kv_str(b, "jwk", k->jwk);
		km_cjson_kv_str(b, "kid", k->kid);
	}
	km_cjson_kv_bool(b, "pending", k->pending);
	km_cjson_kv_str(b, "state", km_state_name(k->state));
	km_cjson_close(b, '}');
}

static int audit_key_intent(km_store_t *s, const km_store_key_t *k, char *err, size_t errlen)
{
	char hex[2 * KM_STORE_CKA_ID_MAX + 1];
	km_cjson_t b;
	km_store__cka_hex(k->cka_id, k->cka_id_len, hex);
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_kv_str(&b, "alg", km_alg_name(k->alg));
	km_cjson_kv_str(&b, "cka_id", hex);
	km_cjson_kv_str(&b, "owner", k->owner);
	km_cjson_kv_bool(&b, "pending", true);
	km_cjson_kv_str(&b, "purpose", k->purpose);
	km_cjson_kv_int(&b, "rsa_bits", k->rsa_bits);
	km_cjson_kv_str(&b, "state", km_state_name(k->state));
	km_cjson_kv_str(&b, "token_label", k->token_label);
	km_cjson_kv_str(&b, "token_serial", k->token_serial);
	km_cjson_close(&b, '}');
	return emit_built(s, "key.intent", k->keyset, NULL, NULL, &b, NULL,
	                  k->state_at[KM_STATE_GENERATED], err, errlen);
}

static int audit_key_change(km_store_t *s, const char *action, const km_store_key_t *old,
                            const km_store_key_t *nk, bool with_jwk, int64_t at,
                            const char *reason, char *err, size_t errlen)
{
	km_cjson_t b1, b2;
	key_state_json(&b1, old, false);
	key_state_json(&b2, nk, with_jwk);
	return emit_built(s, action, nk->keyset, nk->kid, &b1, &b2, reason, at, err, errlen);
}

int km_store_schema_version(void)
{
	return km_store_backend_sqlite.schema_version();
}

const km_store_backend_t *km_store__backend_for(const char *path)
{
	/* A postgresql:// URI is a PostgreSQL store (docs/ha.md); anything else an SQLite file. */
	return km_pguri_is(path) ? &km_store_backend_pg : &km_store_backend_sqlite;
}

int km_store__open(const char *path, const char *env_name, bool bootstrap, km_store_t **ret,
                   char *err, size_t errlen)
{
	if (path == NULL || *path == '\0' || ret == NULL)
		return km_store__fail(err, errlen, KM_EINVAL, "store path (or result pointer) "
		                      "missing");
	if (!km_name_env_valid(env_name))
		return km_store__fail(err, errlen, KM_ENAME, "invalid environment name '%.40s': "
		                      "use lowercase letters, digits and single '-', starting with "
		                      "a letter", env_name ? env_name : "");
	km_store_t *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return km_store__fail(err, errlen, KM_ENOMEM, "out of memory");
	s->be = km_store__backend_for(path);
	snprintf(s->env, sizeof(s->env), "%s", env_name);
	km_store_actor_self(&s->actor, km_store__default_via());
	s->lock_fd = -1;
	size_t plen = strlen(path);
	if (s->be == &km_store_backend_sqlite &&
	    (s->lock_path = malloc(plen + sizeof(".lock"))) == NULL) {
		free(s);
		return km_store__fail(err, errlen, KM_ENOMEM, "out of memory");
	}
	if (s->lock_path != NULL) {
		memcpy(s->lock_path, path, plen);
		memcpy(s->lock_path + plen, ".lock", sizeof(".lock"));
	}
	int r = s->be->open(path, env_name, &s->ctx, err, errlen);
	if (r != KM_EOK) {
		free(s->lock_path);
		free(s);
		return r;
	}
	/* A new store starts its audit chain; a migrated one records what it already held. */
	if (bootstrap && (r = km_store__audit_bootstrap(s, err, errlen)) != KM_EOK) {
		km_store_free(s);
		return r;
	}
	*ret = s;
	return KM_EOK;
}

int km_store_open(const char *path, const char *env_name, km_store_t **ret, char *err,
                  size_t errlen)
{
	return km_store__open(path, env_name, true, ret, err, errlen);
}

bool km_store_exists(const char *path)
{
	if (km_pguri_is(path))
		return km_store_pg_exists(path);
	return access(path, F_OK) == 0;
}

void km_store_free(km_store_t *s)
{
	if (s == NULL)
		return;
	if (s->in_tx)
		s->be->tx(s->ctx, KM_STORE_TX_ROLLBACK, NULL, 0);
	km_store__change_lock_close(s);     /* a lock row is released through the backend */
	s->be->close(s->ctx);
	km_store__pending_free(s);
	km_store__audit_context_free(s);
	free(s->lock_path);
	free(s);
}

const char *km_store_env(const km_store_t *s)
{
	return s->env;
}

int km_store_begin(km_store_t *s, char *err, size_t errlen)
{
	if (s->in_tx)
		return km_store__fail(err, errlen, KM_EINVAL, "a store transaction is already "
		                      "open");
	int r = s->be->tx(s->ctx, KM_STORE_TX_BEGIN, err, errlen);
	if (r == KM_EOK)
		s->in_tx = true;
	return r;
}

int km_store_commit(km_store_t *s, char *err, size_t errlen)
{
	if (!s->in_tx)
		return km_store__fail(err, errlen, KM_EINVAL, "no store transaction is open");
	int r = s->be->tx(s->ctx, KM_STORE_TX_COMMIT, err, errlen);
	if (r != KM_EOK)
		s->be->tx(s->ctx, KM_STORE_TX_ROLLBACK, NULL, 0);
	s->in_tx = false;
	km_store__pending_tx(s, KM_STORE_TX_COMMIT, r);
	return r;
}

int km_store_rollback(km_store_t *s, char *err, size_t errlen)
{
	if (!s->in_tx)
		return km_store__fail(err, errlen, KM_EINVAL, "no store transaction is open");
	s->in_tx = false;
	km_store__pending_tx(s, KM_STORE_TX_ROLLBACK, KM_EOK);
	return s->be->tx(s->ctx, KM_STORE_TX_ROLLBACK, err, errlen);
}

/* Opens the scope of one public call: a savepoint inside the caller's transaction, or a
 * write transaction of its own. */
int km_store__op_enter(km_store_t *s, char *err, size_t errlen)
{
	km_store_tx_t op = s->in_tx ? KM_STORE_TX_SAVEPOINT : KM_STORE_TX_BEGIN;
	int r = s->be->tx(s->ctx, op, err, errlen);
	if (r == KM_EOK)
		km_store__pending_tx(s, op, r);
	return r;
}

/* Closes the scope opened by km_store__op_enter(): keeps its work when r is KM_EOK, undoes it
 * otherwise. Returns r, or the commit failure. */
int km_store__op_leave(km_store_t *s, int r, char *err, size_t errlen)
{
	if (s->in_tx) {
		if (r != KM_EOK) {
			s->be->tx(s->ctx, KM_STORE_TX_ROLLBACK_TO, NULL, 0);
			km_store__pending_tx(s, KM_STORE_TX_ROLLBACK_TO, r);
		}
		int r2 = s->be->tx(s->ctx, KM_STORE_TX_RELEASE, r == KM_EOK ? err : NULL,
		                   r == KM_EOK ? errlen : 0);
		return r != KM_EOK ? r : r2;
	}
	if (r == KM_EOK) {
		r = s->be->tx(s->ctx, KM_STORE_TX_COMMIT, err, errlen);
		if (r == KM_EOK) {
			km_store__pending_tx(s, KM_STORE_TX_COMMIT, r);
			return KM_EOK;
		}
	}
	s->be->tx(s->ctx, KM_STORE_TX_ROLLBACK, NULL, 0);
	km_store__pending_tx(s, KM_STORE_TX_ROLLBACK, r);
	return r;
}

/* ---- key sets ---- */

static int check_keyset(const km_store_t *s, const km_store_keyset_t *ks, char *err,
                        size_t errlen)
{
	if (ks->env[0] != '\0' && strcmp(ks->env, s->env) != 0)
		return km_store__fail(err, errlen, KM_EWRONGENV, "key set %.40s/%.64s cannot be "
		                      "created in the store of environment '%s'", ks->env, ks->name,
		                      s->env);
	if (!km_name_keyset_valid(ks->name))
		return km_store__fail(err, errlen, KM_ENAME, "invalid key set name '%.64s': use 1 "
		                      "to %d lowercase letters, digits and single '-', starting "
		                      "with a letter", ks->name, KM_KEYSET_NAME_MAX);
	const km_alg_info_t *ai = km_alg_info(ks->alg);
	if (ai == NULL)
		return km_store__fail(err, errlen, KM_EALG, "key set %s: unknown algorithm",
		                      ks->name);
	if (ai->kty == KM_KTY_RSA && !km_rsa_bits_valid(ks->rsa_bits))
		return km_store__fail(err, errlen, KM_EKEYSIZE, "key set %s: RSA size %u not "
		                      "allowed (2048, 3072 or 4096)", ks->name, ks->rsa_bits);
	if (ai->kty != KM_KTY_RSA && ks->rsa_bits != 0)
		return km_store__fail(err, errlen, KM_EKEYSIZE, "key set %s: rsa_bits is set for "
		                      "%s, which is not RSA", ks->name, ai->name);
	if (!km_name_owner_valid(ks->owner))
		return km_store__fail(err, errlen, KM_EOWNER, "key set %s: invalid owner '%.128s'",
		                      ks->name, ks->owner);
	if (!km_name_purpose_valid(ks->purpose))
		return km_store__fail(err, errlen, KM_EPURPOSE, "key set %s: invalid purpose "
		                      "'%.64s'", ks->name, ks->purpose);
	if (!km_store__text_ok(ks->description, KM_STORE_DESC_MAX, true))
		return km_store__fail(err, errlen, KM_EINVAL, "key set %s: description has control "
		                      "characters or is longer than %d bytes", ks->name,
		                      KM_STORE_DESC_MAX);
	if (ks->n_labels > KM_STORE_LABELS_MAX)
		return km_store__fail(err, errlen, KM_EINVAL, "key set %s: more than %d labels",
		                      ks->name, KM_STORE_LABELS_MAX);
	for (size_t i = 0; i < ks->n_labels; i++) {
		if (!km_name_label_valid(ks->labels[i]))
			return km_store__fail(err, errlen, KM_EINVAL, "key set %s: invalid label "
			                      "'%.80s' (expected k=v)", ks->name, ks->labels[i]);
		size_t klen = strcspn(ks->labels[i], "=");
		for (size_t j = 0; j < i; j++)
			if (strncmp(ks->labels[i], ks->labels[j], klen + 1) == 0)
				return km_store__fail(err, errlen, KM_EINVAL, "key set %s: label "
				                      "key '%.*s' given twice", ks->name, (int)klen,
				                      ks->labels[i]);
	}
	if (!time_ok(ks->created_at))
		return km_store__fail(err, errlen, KM_EINVAL, "key set %s: created_at is missing",
		                      ks->name);
	if (!km_store__text_ok(ks->created_by, KM_STORE_WHO_MAX, false))
		return km_store__fail(err, errlen, KM_EINVAL, "key set %s: created_by is missing "
		                      "or invalid", ks->name);
	return KM_EOK;
}

int km_store_keyset_create(km_store_t *s, const km_store_keyset_t *ks, int64_t *id_out,
                           char *err, size_t errlen)
{
	int64_t id = 0;
	int r = check_keyset(s, ks, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = km_store__op_enter(s, err, errlen)) != KM_EOK)
		return r;
	r = s->be->keyset_insert(s->ctx, ks, &id, err, errlen);
	if (r == KM_EEXIST)
		km_store__fail(err, errlen, r, "key set %s/%s already exists", s->env, ks->name);
	if (r == KM_EOK)
		r = audit_keyset_create(s, ks, err, errlen);
	if ((r = km_store__op_leave(s, r, err, errlen)) != KM_EOK)
		return r;
	if (id_out != NULL)
		*id_out = id;
	return KM_EOK;
}

static int keyset_get(km_store_t *s, const char *name, km_store_keyset_t *ret, char *err,
                      size_t errlen)
{
	km_store_keyset_t *list = NULL;
	size_t n = 0;
	if (!km_name_keyset_valid(name))
		return km_store__fail(err, errlen, KM_ENAME, "invalid key set name '%.64s'",
		                      name ? name : "");
	int r = s->be->keyset_query(s->ctx, name, NULL, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	if (n == 0) {
		free(list);
		return km_store__fail(err, errlen, KM_ENOENT, "no key set %s/%s", s->env, name);
	}
	memcpy(ret, &list[0], sizeof(*ret));
	snprintf(ret->env, sizeof(ret->env), "%s", s->env);
	free(list);
	return KM_EOK;
}

int km_store_keyset_get(km_store_t *s, const char *name, km_store_keyset_t *ret, char *err,
                        size_t errlen)
{
	return keyset_get(s, name, ret, err, errlen);
}

int km_store_keyset_list(km_store_t *s, const km_store_keyset_filter_t *f,
                         km_store_keyset_t **ret, size_t *count, char *err, size_t errlen)
{
	km_store_keyset_t *list = NULL;
	size_t n = 0;
	int r = s->be->keyset_query(s->ctx, NULL, f, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	for (size_t i = 0; i < n; i++)
		snprintf(list[i].env, sizeof(list[i].env), "%s", s->env);
	*ret = list;
	*count = n;
	return KM_EOK;
}

void km_store_keysets_free(km_store_keyset_t *list)
{
	free(list);
}

static int keyset_set(km_store_t *s, const char *name, const char *field, const char *value,
                      const char *who, int64_t at, const char *reason, char *err,
                      size_t errlen)
{
	km_store_keyset_t ks;
	km_store_change_t c = { 0 };
	bool owner = strcmp(field, "owner") == 0;
	if (owner ? !km_name_owner_valid(value) : !km_name_purpose_valid(value))
		return km_store__fail(err, errlen, owner ? KM_EOWNER : KM_EPURPOSE, "invalid %s "
		                      "'%.128s'", field, value ? value : "");
	if (!km_store__text_ok(who, KM_STORE_WHO_MAX, false))
		return km_store__fail(err, errlen, KM_EINVAL, "changing the %s needs who changes "
		                      "it", field);
	if (!km_store__text_ok(reason, KM_STORE_TEXT_MAX, true))
		return km_store__fail(err, errlen, KM_EINVAL, "reason has control characters or is "
		                      "longer than %d bytes", KM_STORE_TEXT_MAX);
	if (!time_ok(at))
		return km_store__fail(err, errlen, KM_EINVAL, "time of the %s change is missing",
		                      field);
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = keyset_get(s, name, &ks, err, errlen)) != KM_EOK)
		goto out;
	const char *old = owner ? ks.owner : ks.purpose;
	if (strcmp(old, value) == 0)
		goto out;
	snprintf(c.field, sizeof(c.field), "%s", field);
	snprintf(c.old_value, sizeof(c.old_value), "%s", old);
	snprintf(c.new_value, sizeof(c.new_value), "%s", value);
	snprintf(c.who, sizeof(c.who), "%s", who);
	snprintf(c.reason, sizeof(c.reason), "%s", reason ? reason : "");
	c.at = at;
	if ((r = s->be->keyset_update(s->ctx, ks.id, field, value, err, errlen)) != KM_EOK)
		goto out;
	if ((r = s->be->change_insert(s->ctx, ks.id, &c, err, errlen)) != KM_EOK)
		goto out;
	r = audit_keyset_set(s, ks.name, &c, err, errlen);
out:
	return km_store__op_leave(s, r, err, errlen);
}

int km_store_keyset_set_owner(km_store_t *s, const char *name, const char *owner,
                              const char *who, int64_t at, const char *reason, char *err,
                              size_t errlen)
{
	return keyset_set(s, name, "owner", owner, who, at, reason, err, errlen);
}

int km_store_keyset_set_purpose(km_store_t *s, const char *name, const char *purpose,
                                const char *who, int64_t at, const char *reason, char *err,
                                size_t errlen)
{
	return keyset_set(s, name, "purpose", purpose, who, at, reason, err, errlen);
}

int km_store_keyset_changes(km_store_t *s, const char *name, km_store_change_t **ret,
                            size_t *count, char *err, size_t errlen)
{
	km_store_keyset_t ks;
	km_store_change_t *list = NULL;
	size_t n = 0;
	int r = keyset_get(s, name, &ks, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = s->be->change_query(s->ctx, ks.id, &list, &n, err, errlen)) != KM_EOK)
		return r;
	for (size_t i = 0; i < n; i++)
		snprintf(list[i].keyset, sizeof(list[i].keyset), "%s", ks.name);
	*ret = list;
	*count = n;
	return KM_EOK;
}

void km_store_changes_free(km_store_change_t *list)
{
	free(list);
}

/* ---- keys ---- */

static bool cka_id_ok(const uint8_t *id, size_t len)
{
	return id != NULL && len > 0 && len <= KM_STORE_CKA_ID_MAX;
}

/* Exactly one key matching q into *ret, or KM_ENOENT with what. */
static int key_one(km_store_t *s, const km_store_key_query_t *q, const char *what,
                   km_store_key_t *ret, char *err, size_t errlen)
{
	km_store_key_t *list = NULL;
	size_t n = 0;
	int r = s->be->key_query(s->ctx, q, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	if (n == 0) {
		free(list);
		return km_store__fail(err, errlen, KM_ENOENT, "no key %s in environment %s", what,
		                      s->env);
	}
	memcpy(ret, &list[0], sizeof(*ret));
	free(list);
	return KM_EOK;
}

static int key_by_cka_id(km_store_t *s, const uint8_t *id, size_t len, km_store_key_t *ret,
                         char *err, size_t errlen)
{
	km_store_key_query_t q = { .cka_id = id, .cka_id_len = len };
	char hex[2 * KM_STORE_CKA_ID_MAX + 1];
	km_store__cka_hex(id, len, hex);
	char what[sizeof(hex) + 16];
	snprintf(what, sizeof(what), "with CKA_ID %s", hex);
	return key_one(s, &q, what, ret, err, errlen);
}

static int key_event(km_store_t *s, const km_store_key_t *k, const char *what, km_state_t from,
                     km_state_t to, int64_t at, const char *reason, char *err, size_t errlen)
{
	km_store_event_t e = { .key_id = k->id, .from = from, .to = to, .at = at };
	snprintf(e.what, sizeof(e.what), "%s", what);
	snprintf(e.reason, sizeof(e.reason), "%s", reason ? reason : "");
	return s->be->event_insert(s->ctx, &e, err, errlen);
}

static int check_key_intent(const km_store_key_t *k, const km_store_keyset_t *ks,
                            km_store_key_t *nk, char *err, size_t errlen)
{
	if (!cka_id_ok(k->cka_id, k->cka_id_len))
		return km_store__fail(err, errlen, KM_EINVAL, "key of %s: CKA_ID must be 1 to %d "
		                      "bytes", ks->name, KM_STORE_CKA_ID_MAX);
	if (!km_store__text_ok(k->token_label, KM_STORE_TOKEN_LABEL_MAX, false) ||
	    !km_store__text_ok(k->token_serial, KM_STORE_TOKEN_SERIAL_MAX, true))
		return km_store__fail(err, errlen, KM_EINVAL, "key of %s: token label (1 to %d "
		                      "characters) or serial (at most %d) invalid", ks->name,
		                      KM_STORE_TOKEN_LABEL_MAX, KM_STORE_TOKEN_SERIAL_MAX);
	if (k->alg != KM_ALG_NONE && k->alg != ks->alg)
		return km_store__fail(err, errlen, KM_EALG, "key of %s: algorithm %s differs from "
		                      "the key set's %s", ks->name, km_alg_name(k->alg),
		                      km_alg_name(ks->alg));
	const km_alg_info_t *ai = km_alg_info(ks->alg);
	unsigned bits = k->rsa_bits ? k->rsa_bits : ks->rsa_bits;
	if (ai == NULL || (ai->kty == KM_KTY_RSA) != (bits != 0) ||
	    (bits != 0 && !km_rsa_bits_valid(bits)))
		return km_store__fail(err, errlen, KM_EKEYSIZE, "key of %s: rsa_bits %u does not "
		                      "fit %s", ks->name, bits, km_alg_name(ks->alg));
	if (k->owner[0] != '\0' && !km_name_owner_valid(k->owner))
		return km_store__fail(err, errlen, KM_EOWNER, "key of %s: invalid owner", ks->name);
	if (k->purpose[0] != '\0' && !km_name_purpose_valid(k->purpose))
		return km_store__fail(err, errlen, KM_EPURPOSE, "key of %s: invalid purpose",
		                      ks->name);
	if (!time_ok(k->state_at[KM_STATE_GENERATED]))
		return km_store__fail(err, errlen, KM_EINVAL, "key of %s: generation time is "
		                      "missing", ks->name);

	memset(nk, 0, sizeof(*nk));
	nk->keyset_id = ks->id;
	snprintf(nk->keyset, sizeof(nk->keyset), "%s", ks->name);
	nk->alg = ks->alg;
	nk->rsa_bits = bits;
	snprintf(nk->token_label, sizeof(nk->token_label), "%s", k->token_label);
	snprintf(nk->token_serial, sizeof(nk->token_serial), "%s", k->token_serial);
	memcpy(nk->cka_id, k->cka_id, k->cka_id_len);
	nk->cka_id_len = k->cka_id_len;
	snprintf(nk->owner, sizeof(nk->owner), "%s", k->owner[0] ? k->owner : ks->owner);
	snprintf(nk->purpose, sizeof(nk->purpose), "%s", k->purpose[0] ? k->purpose : ks->purpose);
	nk->state = KM_STATE_GENERATED;
	nk->pending = true;
	for (unsigned i = 0; i < KM_STATE_COUNT; i++)
		nk->state_at[i] = KM_STORE_TIME_NONE;
	nk->state_at[KM_STATE_GENERATED] = k->state_at[KM_STATE_GENERATED];
	nk->activate_at = KM_STORE_TIME_NONE;
	return KM_EOK;
}

int km_store_key_intent(km_store_t *s, const km_store_key_t *k, int64_t *id_out, char *err,
                        size_t errlen)
{
	km_store_keyset_t ks;
	km_store_key_t nk, existing;
	int64_t id = 0;
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = keyset_get(s, k->keyset, &ks, err, errlen)) != KM_EOK)
		goto out;
	if ((r = check_key_intent(k, &ks, &nk, err, errlen)) != KM_EOK)
		goto out;
	r = key_by_cka_id(s, nk.cka_id, nk.cka_id_len, &existing, NULL, 0);
	if (r == KM_EOK) {
		r = km_store__fail(err, errlen, KM_EEXIST, "a key with this CKA_ID is already "
		                   "recorded (key set %s, state %s)", existing.keyset,
		                   km_state_name(existing.state));
		goto out;
	}
	if (r != KM_ENOENT)
		goto out;
	/* The audit key signs checkpoints only: its CKA_ID never becomes a key set's key. */
	bool audit_key = false;
	if ((r = km_store_audit_key_is(s, nk.cka_id, nk.cka_id_len, &audit_key, err,
	                               errlen)) != KM_EOK)
		goto out;
	if (audit_key) {
		r = km_store__fail(err, errlen, KM_EEXIST, "this CKA_ID belongs to the "
		                   "environment's audit key, which never signs JWTs");
		goto out;
	}
	if ((r = s->be->key_insert(s->ctx, &nk, &id, err, errlen)) != KM_EOK)
		goto out;
	nk.id = id;
	r = key_event(s, &nk, "intent", KM_STATE_GENERATED, KM_STATE_GENERATED,
	              nk.state_at[KM_STATE_GENERATED], NULL, err, errlen);
	if (r == KM_EOK)
		r = audit_key_intent(s, &nk, err, errlen);
out:
	if ((r = km_store__op_leave(s, r, err, errlen)) != KM_EOK)
		return r;
	if (id_out != NULL)
		*id_out = id;
	return KM_EOK;
}

/* The JWK text is rendered by keymgr/jose; here only its shape is checked. */
static bool jwk_ok(const char *jwk)
{
	size_t len = jwk ? strlen(jwk) : 0;
	return len >= 2 && len <= KM_STORE_JWK_MAX && jwk[0] == '{' && jwk[len - 1] == '}' &&
	       km_store__text_ok(jwk, KM_STORE_JWK_MAX, false);
}

int km_store_key_confirm(km_store_t *s, const uint8_t *cka_id, size_t cka_id_len,
                         const char *kid, const char *jwk, int64_t at, char *err,
                         size_t errlen)
{
	km_store_key_t k, nk, other;
	if (!cka_id_ok(cka_id, cka_id_len))
		return km_store__fail(err, errlen, KM_EINVAL, "CKA_ID must be 1 to %d bytes",
		                      KM_STORE_CKA_ID_MAX);
	if (!km_name_kid_valid(kid))
		return km_store__fail(err, errlen, KM_EINVAL, "invalid kid '%.128s': 1 to %d "
		                      "base64url characters", kid ? kid : "", KM_KID_MAX);
	if (!jwk_ok(jwk))
		return km_store__fail(err, errlen, KM_EINVAL, "public JWK of %s is not a JSON "
		                      "object of at most %d bytes", kid, KM_STORE_JWK_MAX);
	if (!time_ok(at))
		return km_store__fail(err, errlen, KM_EINVAL, "confirmation time is missing");
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = key_by_cka_id(s, cka_id, cka_id_len, &k, err, errlen)) != KM_EOK)
		goto out;
	if (!k.pending) {
		r = km_store__fail(err, errlen, KM_EINVAL, "key with kid '%s' of %s is not pending "
		                   "(state %s): nothing to confirm", k.kid[0] ? k.kid : "(none)",
		                   k.keyset, km_state_name(k.state));
		goto out;
	}
	km_store_key_query_t q = { .kid = kid };
	r = key_one(s, &q, kid, &other, NULL, 0);
	if (r == KM_EOK) {
		r = km_store__fail(err, errlen, KM_EEXIST, "kid %s is already used by a key of %s",
		                   kid, other.keyset);
		goto out;
	}
	if (r != KM_ENOENT)
		goto out;
	nk = k;
	snprintf(nk.kid, sizeof(nk.kid), "%s", kid);
	snprintf(nk.jwk, sizeof(nk.jwk), "%s", jwk);
	nk.pending = false;
	if ((r = s->be->key_update(s->ctx, &k, &nk, err, errlen)) != KM_EOK)
		goto out;
	r = key_event(s, &nk, "confirm", k.state, nk.state, at, NULL, err, errlen);
	if (r == KM_EOK)
		r = audit_key_change(s, "key.confirm", &k, &nk, true, at, NULL, err, errlen);
out:
	return km_store__op_leave(s, r, err, errlen);
}

int km_store_key_abandon(km_store_t *s, const uint8_t *cka_id, size_t cka_id_len, int64_t at,
                         const char *reason, char *err, size_t errlen)
{
	km_store_key_t k, nk;
	if (!cka_id_ok(cka_id, cka_id_len))
		return km_store__fail(err, errlen, KM_EINVAL, "CKA_ID must be 1 to %d bytes",
		                      KM_STORE_CKA_ID_MAX);
	if (!km_store__text_ok(reason, KM_STORE_TEXT_MAX, false))
		return km_store__fail(err, errlen, KM_EINVAL, "abandoning a key needs a reason (at "
		                      "most %d bytes, no control characters)", KM_STORE_TEXT_MAX);
	if (!time_ok(at))
		return km_store__fail(err, errlen, KM_EINVAL, "time of abandon is missing");
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = key_by_cka_id(s, cka_id, cka_id_len, &k, err, errlen)) != KM_EOK)
		goto out;
	if (!k.pending) {
		r = km_store__fail(err, errlen, KM_EINVAL, "key of %s is not pending (state %s): "
		                   "use a state transition instead", k.keyset,
		                   km_state_name(k.state));
		goto out;
	}
	nk = k;
	nk.pending = false;
	nk.state = KM_STATE_REVOKED;
	nk.state_at[KM_STATE_REVOKED] = at;
	snprintf(nk.revoke_reason, sizeof(nk.revoke_reason), "%s", reason);
	if ((r = s->be->key_update(s->ctx, &k, &nk, err, errlen)) != KM_EOK)
		goto out;
	r = key_event(s, &nk, "abandon", k.state, nk.state, at, reason, err, errlen);
	if (r == KM_EOK)
		r = audit_key_change(s, "key.abandon", &k, &nk, false, at, reason, err, errlen);
out:
	return km_store__op_leave(s, r, err, errlen);
}

int km_store_key_transition(km_store_t *s, const char *kid, km_state_t to, int64_t at,
                            const char *reason, char *err, size_t errlen)
{
	km_store_key_t k, nk, active;
	char msg[256];
	if (!km_name_kid_valid(kid))
		return km_store__fail(err, errlen, KM_EINVAL, "invalid kid '%.128s'",
		                      kid ? kid : "");
	if ((unsigned)to >= KM_STATE_COUNT)
		return km_store__fail(err, errlen, KM_EINVAL, "unknown target state %d", (int)to);
	if (!time_ok(at))
		return km_store__fail(err, errlen, KM_EINVAL, "time of the transition is missing");
	if (!km_store__text_ok(reason, KM_STORE_TEXT_MAX, to != KM_STATE_REVOKED))
		return km_store__fail(err, errlen, KM_EINVAL, to == KM_STATE_REVOKED ?
		                      "revoking key %s needs a reason (at most 255 bytes)" :
		                      "reason for key %s has control characters or is too long",
		                      kid);
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	km_store_key_query_t q = { .kid = kid };
	if ((r = key_one(s, &q, kid, &k, err, errlen)) != KM_EOK)
		goto out;
	if (k.pending) {
		r = km_store__fail(err, errlen, KM_EINVAL, "key %s is pending confirmation", kid);
		goto out;
	}
	if ((r = km_state_check_transition(k.state, to, msg, sizeof(msg))) != KM_EOK) {
		r = km_store__fail(err, errlen, r, "key %s of %s/%s: %s", kid, s->env, k.keyset,
		                   msg);
		goto out;
	}
	if (to == KM_STATE_ACTIVE) {
		km_store_key_query_t qa = {
			.f = { .keyset = k.keyset, .states = KM_STORE_STATE_BIT(KM_STATE_ACTIVE) },
		};
		r = key_one(s, &qa, "active", &active, NULL, 0);
		if (r == KM_EOK) {
			r = km_store__fail(err, errlen, KM_EACTIVE, "key set %s/%s already has an "
			                   "active key (%s): retire or revoke it first", s->env,
			                   k.keyset, active.kid);
			goto out;
		}
		if (r != KM_ENOENT)
			goto out;
	}
	nk = k;
	nk.state = to;
	nk.state_at[to] = at;
	if (to == KM_STATE_REVOKED)
		snprintf(nk.revoke_reason, sizeof(nk.revoke_reason), "%s", reason);
	r = s->be->key_update(s->ctx, &k, &nk, err, errlen);
	if (r == KM_EEXIST && to == KM_STATE_ACTIVE)
		r = km_store__fail(err, errlen, KM_EACTIVE, "key set %s/%s already has an active "
		                   "key", s->env, k.keyset);
	if (r != KM_EOK)
		goto out;
	if ((r = key_event(s, &nk, "transition", k.state, to, at, reason, err, errlen)) != KM_EOK)
		goto out;
	if ((r = audit_key_change(s, "key.transition", &k, &nk, false, at, reason, err,
	                          errlen)) != KM_EOK)
		goto out;
	/* Into or out of the JWKS: record the new published set as a JWKS version. */
	if (km_state_in_jwks(k.state) != km_state_in_jwks(to))
		r = km_store__jwks_track(s, at, false, NULL, err, errlen);
out:
	return km_store__op_leave(s, r, err, errlen);
}

/* A key.schedule event's before and after: the key's identity and state (as for the other
 * key events) and its activate_at (null when none). */
static void key_schedule_json(km_cjson_t *b, const km_store_key_t *k)
{
	char hex[2 * KM_STORE_CKA_ID_MAX + 1];
	km_store__cka_hex(k->cka_id, k->cka_id_len, hex);
	km_cjson_init(b);
	km_cjson_open(b, '{');
	if (k->activate_at == KM_STORE_TIME_NONE)
		km_cjson_kv_null(b, "activate_at");
	else
		km_cjson_kv_int(b, "activate_at", k->activate_at);
	km_cjson_kv_str(b, "cka_id", hex);
	km_cjson_kv_bool(b, "pending", k->pending);
	km_cjson_kv_str(b, "state", km_state_name(k->state));
	km_cjson_close(b, '}');
}

int km_store_key_schedule(km_store_t *s, const char *kid, int64_t activate_at, int64_t at,
                          const char *reason, char *err, size_t errlen)
{
	km_store_key_t k, nk;
	if (!km_name_kid_valid(kid))
		return km_store__fail(err, errlen, KM_EINVAL, "invalid kid '%.128s'",
		                      kid ? kid : "");
	if (!time_ok(at) || activate_at <= 0)
		return km_store__fail(err, errlen, KM_EINVAL, "time of the scheduled activation is "
		                      "missing");
	if (!km_store__text_ok(reason, KM_STORE_TEXT_MAX, true))
		return km_store__fail(err, errlen, KM_EINVAL, "reason for key %s has control "
		                      "characters or is too long", kid);
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	km_store_key_query_t q = { .kid = kid };
	if ((r = key_one(s, &q, kid, &k, err, errlen)) != KM_EOK)
		goto out;
	if (k.pending || k.state != KM_STATE_PUBLISHED) {
		r = km_store__fail(err, errlen, KM_EINVAL, "key %s of %s/%s is %s: only a "
		                   "published key can be scheduled to activate", kid, s->env,
		                   k.keyset,
		                   k.pending ? "pending confirmation" : km_state_name(k.state));
		goto out;
	}
	nk = k;
	nk.activate_at = activate_at;
	if ((r = s->be->key_update(s->ctx, &k, &nk, err, errlen)) != KM_EOK)
		goto out;
	km_cjson_t b1, b2;
	key_schedule_json(&b1, &k);
	key_schedule_json(&b2, &nk);
	r = emit_built(s, "key.schedule", nk.keyset, nk.kid, &b1, &b2, reason, at, err, errlen);
out:
	return km_store__op_leave(s, r, err, errlen);
}

int km_store_key_get(km_store_t *s, const char *kid, km_store_key_t *ret, char *err,
                     size_t errlen)
{
	if (!km_name_kid_valid(kid))
		return km_store__fail(err, errlen, KM_EINVAL, "invalid kid '%.128s'",
		                      kid ? kid : "");
	km_store_key_query_t q = { .kid = kid };
	return key_one(s, &q, kid, ret, err, errlen);
}

int km_store_key_get_by_cka_id(km_store_t *s, const uint8_t *cka_id, size_t cka_id_len,
                               km_store_key_t *ret, char *err, size_t errlen)
{
	if (!cka_id_ok(cka_id, cka_id_len))
		return km_store__fail(err, errlen, KM_EINVAL, "CKA_ID must be 1 to %d bytes",
		                      KM_STORE_CKA_ID_MAX);
	return key_by_cka_id(s, cka_id, cka_id_len, ret, err, errlen);
}

int km_store_key_active(km_store_t *s, const char *keyset, km_store_key_t *ret, char *err,
                        size_t errlen)
{
	km_store_keyset_t ks;
	int r = keyset_get(s, keyset, &ks, err, errlen);
	if (r != KM_EOK)
		return r;
	km_store_key_query_t q = {
		.f = { .keyset = keyset, .states = KM_STORE_STATE_BIT(KM_STATE_ACTIVE) },
	};
	r = key_one(s, &q, "active", ret, NULL, 0);
	if (r == KM_ENOENT)
		return km_store__fail(err, errlen, KM_ENOACTIVE, "key set %s/%s has no active key",
		                      s->env, keyset);
	return r;
}

km_store_key_filter_t km_store_jwks_filter(const char *keyset)
{
	km_store_key_filter_t f = { .keyset = keyset, .pending = KM_STORE_PENDING_NONE };
	for (unsigned st = 0; st < KM_STATE_COUNT; st++)
		if (km_state_in_jwks((km_state_t)st))
			f.states |= KM_STORE_STATE_BIT(st);
	return f;
}

int km_store__jwks_keys(km_store_t *s, km_store_key_t **ret, size_t *n, char *err,
                        size_t errlen)
{
	km_store_key_query_t q = { .f = km_store_jwks_filter(NULL) };
	return s->be->key_query(s->ctx, &q, ret, n, err, errlen);
}

int km_store_keys_query(km_store_t *s, const km_store_key_filter_t *f, km_store_key_t **ret,
                        size_t *count, char *err, size_t errlen)
{
	km_store_key_query_t q = { 0 };
	km_store_key_t *list = NULL;
	size_t n = 0;
	if (f != NULL)
		q.f = *f;
	if (q.f.states >> KM_STATE_COUNT)
		return km_store__fail(err, errlen, KM_EINVAL, "state filter names an unknown "
		                      "state");
	int r = s->be->key_query(s->ctx, &q, &list, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	*ret = list;
	*count = n;
	return KM_EOK;
}

void km_store_keys_free(km_store_key_t *list)
{
	free(list);
}

int km_store_kid_exists(km_store_t *s, const char *kid, bool *ret, char *err, size_t errlen)
{
	km_store_key_t k;
	if (!km_name_kid_valid(kid))
		return km_store__fail(err, errlen, KM_EINVAL, "invalid kid '%.128s'",
		                      kid ? kid : "");
	km_store_key_query_t q = { .kid = kid };
	int r = key_one(s, &q, kid, &k, err, errlen);
	if (r != KM_EOK && r != KM_ENOENT)
		return r;
	*ret = r == KM_EOK;
	return KM_EOK;
}

int km_store_key_events(km_store_t *s, const char *kid, km_store_event_t **ret, size_t *count,
                        char *err, size_t errlen)
{
	km_store_key_t k;
	km_store_event_t *list = NULL;
	size_t n = 0;
	int r = km_store_key_get(s, kid, &k, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = s->be->event_query(s->ctx, k.id, &list, &n, err, errlen)) != KM_EOK)
		return r;
	for (size_t i = 0; i < n; i++)
		snprintf(list[i].kid, sizeof(list[i].kid), "%s", k.kid);
	*ret = list;
	*count = n;
	return KM_EOK;
}

void km_store_events_free(km_store_event_t *list)
{
	free(list);
}

int km_store_jwks_serial_next(km_store_t *s, uint64_t *ret, char *err, size_t errlen)
{
	uint64_t v = 0;
	int r = km_store__op_enter(s, err, errlen);
	if (r != KM_EOK)
		return r;
	r = km_store__jwks_track(s, (int64_t)time(NULL), true, &v, err, errlen);
	if ((r = km_store__op_leave(s, r, err, errlen)) != KM_EOK)
		return r;
	*ret = v;
	return KM_EOK;
}
