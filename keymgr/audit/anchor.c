/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Anchors: points of the audit chain kept outside the store, against a store rolled back to
 * an earlier checkpoint (issue 16). Someone who can write the store can drop its append-only
 * triggers and delete every event and checkpoint after one: what is left is a consistent,
 * signed, shorter log. Only a record of a later point tells:
 *   - the token's record: the last checkpoint's seq and hash, in a private data object of the
 *     audit token, written by every checkpoint (checkpoint.c); changing it needs the PIN;
 *   - the JSON lines stream (audit.jsonl, a SIEM's copy): every event's and checkpoint's seq
 *     and hash, as they were written;
 *   - what an auditor noted (`audit verify --expect-seq N --expect-head HASH`).
 * verify.c checks that the log holds each of them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keymgr/audit/audit.h"
#include "keymgr/audit/audit_int.h"
#include "keymgr/common/canon_json.h"
#include "keymgr/common/error.h"

static void head_label(km_env_t *env, char *buf, size_t len)
{
	snprintf(buf, len, KM_AUDIT_HEAD_LABEL_PREFIX "%s", km_env_name(env));
}

static bool hash_valid(const char *h)
{
	if (h == NULL || strlen(h) != KM_STORE_HASH_HEX)
		return false;
	for (const char *c = h; *c != '\0'; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

int km_audit_token_record(km_env_t *env, km_token_t *t, const km_store_checkpoint_t *cp,
                          char *err, size_t errlen)
{
	char label[96];
	km_cjson_t b;
	km_cjson_init(&b);
	km_cjson_open(&b, '{');
	km_cjson_kv_str(&b, "env", km_env_name(env));
	km_cjson_kv_str(&b, "hash", cp->hash);
	km_cjson_kv_str(&b, "kid", cp->key_kid);
	km_cjson_kv_int(&b, "seq", cp->seq);
	km_cjson_close(&b, '}');
	char *text = km_cjson_take(&b);
	if (text == NULL)
		return KM_ENOMEM;
	head_label(env, label, sizeof(label));
	int r = km_token_data_put(t, KM_AUDIT_HEAD_APPLICATION, label, (const uint8_t *)text,
	                          strlen(text));
	free(text);
	if (r != KM_EOK) {
		const char *why = km_token_last_error(t);
		snprintf(err, errlen, "environment '%s': checkpoint of seq %lld stored, but the "
		         "token's record of it cannot be written: %s", km_env_name(env),
		         (long long)cp->seq, why && why[0] ? why : km_strerror(r));
	}
	return r;
}

/* Parses one record value into *a (source left to the caller). */
static bool parse_record(const km_token_data_t *d, const char *env, km_audit_anchor_t *a)
{
	json_t *j = json_loadb((const char *)d->value, d->len, 0, NULL);
	const char *e = json_string_value(json_object_get(j, "env"));
	const char *hash = json_string_value(json_object_get(j, "hash"));
	json_t *seq = json_object_get(j, "seq");
	bool ok = e != NULL && strcmp(e, env) == 0 && hash_valid(hash) && json_is_integer(seq) &&
	          json_integer_value(seq) > 0;
	if (ok) {
		a->seq = json_integer_value(seq);
		snprintf(a->hash, sizeof(a->hash), "%s", hash);
	}
	json_decref(j);
	return ok;
}

int km_audit_token_anchor(km_env_t *env, km_audit_anchor_t *ret, bool *found, char *err,
                          size_t errlen)
{
	km_token_t *t = NULL;
	km_token_data_t *d = NULL;
	size_t n = 0;
	char label[96];
	int r = km_env_audit_token(env, &t, err, errlen);
	if (r != KM_EOK)
		return r;
	head_label(env, label, sizeof(label));
	if ((r = km_token_data_get(t, KM_AUDIT_HEAD_APPLICATION, label, &d, &n)) != KM_EOK) {
		const char *why = km_token_last_error(t);
		snprintf(err, errlen, "environment '%s': cannot read the token's checkpoint record: "
		         "%s", km_env_name(env), why && why[0] ? why : km_strerror(r));
		return r;
	}
	km_audit_anchor_t best;
	memset(&best, 0, sizeof(best));
	for (size_t i = 0; i < n; i++) {
		km_audit_anchor_t a;
		memset(&a, 0, sizeof(a));
		if (!parse_record(&d[i], km_env_name(env), &a)) {
			snprintf(err, errlen, "environment '%s': the token's checkpoint record (%s) is "
			         "not one keymgr wrote for this environment", km_env_name(env), label);
			free(d);
			return KM_EMALFORMED;
		}
		if (a.seq > best.seq)
			best = a;
	}
	free(d);
	*found = n > 0;
	if (n > 0) {
		snprintf(best.source, sizeof(best.source), "the token's checkpoint record");
		*ret = best;
	}
	return KM_EOK;
}

/* Appends a to *list (grown by doubling). */
static int push(km_audit_anchor_t **list, size_t *n, size_t *cap, const km_audit_anchor_t *a)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		km_audit_anchor_t *p = realloc(*list, ncap * sizeof(*p));
		if (p == NULL)
			return KM_ENOMEM;
		*list = p;
		*cap = ncap;
	}
	(*list)[(*n)++] = *a;
	return KM_EOK;
}

/*
 * One line of the stream: an event ("action", "seq", "hash") or a checkpoint ("type"
 * KM_AUDIT_CHECKPOINT_TYPE, "seq", "hash") of env into *a (*use false for another
 * environment's line). false for anything else.
 */
static bool stream_line(const char *line, size_t len, const char *env, km_audit_anchor_t *a,
                        bool *use)
{
	json_t *j = json_loadb(line, len, 0, NULL);
	const char *e = json_string_value(json_object_get(j, "env"));
	const char *hash = json_string_value(json_object_get(j, "hash"));
	const char *type = json_string_value(json_object_get(j, "type"));
	json_t *seq = json_object_get(j, "seq");
	bool record = type != NULL ? strcmp(type, KM_AUDIT_CHECKPOINT_TYPE) == 0
	                           : json_is_string(json_object_get(j, "action"));
	bool ok = json_is_object(j) && record && e != NULL && hash_valid(hash) &&
	          json_is_integer(seq) && json_integer_value(seq) > 0;
	if (ok) {
		*use = strcmp(e, env) == 0;
		a->seq = json_integer_value(seq);
		snprintf(a->hash, sizeof(a->hash), "%s", hash);
	}
	json_decref(j);
	return ok;
}

int km_audit_stream_anchors(const char *path, const char *env, km_audit_anchor_t **ret,
                            size_t *count, char *err, size_t errlen)
{
	km_audit_anchor_t *list = NULL;
	size_t n = 0, cap = 0, lineno = 0, len = 0;
	char *line = NULL;
	ssize_t got;
	int r = KM_EOK;
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		int e = errno;
		snprintf(err, errlen, "cannot open the audit stream %s: %s", path, strerror(e));
		return e == ENOENT ? KM_ENOENT : e == EACCES ? KM_EACCES : KM_EIO;
	}
	while ((got = getline(&line, &len, f)) >= 0) {
		lineno++;
		size_t l = (size_t)got;
		while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
			l--;
		if (l == 0)
			continue;
		km_audit_anchor_t a;
		bool use = false;
		memset(&a, 0, sizeof(a));
		if (!stream_line(line, l, env, &a, &use)) {
			snprintf(err, errlen, "%s:%zu: not a keymgr audit event or checkpoint (a JSON "
			         "object with env, seq and hash)", path, lineno);
			r = KM_EMALFORMED;
			break;
		}
		if (!use)
			continue;
		snprintf(a.source, sizeof(a.source), "%.170s:%zu", path, lineno);
		if ((r = push(&list, &n, &cap, &a)) != KM_EOK) {
			snprintf(err, errlen, "out of memory");
			break;
		}
	}
	if (r == KM_EOK && ferror(f)) {
		snprintf(err, errlen, "cannot read the audit stream %s", path);
		r = KM_EIO;
	}
	free(line);
	fclose(f);
	if (r != KM_EOK) {
		free(list);
		return r;
	}
	*ret = list;
	*count = n;
	return KM_EOK;
}
