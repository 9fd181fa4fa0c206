/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replay of the audit log into the key sets and keys it describes. A key is identified by
 * its CKA_ID from its intent on (it has no kid before confirmation). Each event must follow
 * from the state before it: a transition whose "before" state is not the key's current one,
 * or an event about a key or key set the log never created, means the log is not a history.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"

typedef struct {
	km_audit_replay_t *r;
	size_t cap_keys, cap_sets;
} rp_t;

__attribute__((format(printf, 5, 6)))
static int bad(int64_t seq, int64_t *bad_seq, char *err, size_t errlen, const char *fmt, ...)
{
	if (bad_seq != NULL)
		*bad_seq = seq;
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		int n = snprintf(err, errlen, "seq %lld: ", (long long)seq);
		if (n > 0 && (size_t)n < errlen)
			vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return KM_EMALFORMED;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v;
}

static km_audit_key_state_t *key_find(km_audit_replay_t *r, const char *cka_id)
{
	for (size_t i = 0; cka_id != NULL && i < r->n_keys; i++)
		if (strcmp(r->keys[i].cka_id, cka_id) == 0)
			return &r->keys[i];
	return NULL;
}

static km_audit_keyset_state_t *set_find(km_audit_replay_t *r, const char *name)
{
	for (size_t i = 0; name != NULL && i < r->n_keysets; i++)
		if (strcmp(r->keysets[i].name, name) == 0)
			return &r->keysets[i];
	return NULL;
}

static km_audit_key_state_t *key_add(rp_t *p)
{
	km_audit_replay_t *r = p->r;
	if (r->n_keys == p->cap_keys) {
		size_t ncap = p->cap_keys ? p->cap_keys * 2 : 16;
		void *np = realloc(r->keys, ncap * sizeof(*r->keys));
		if (np == NULL)
			return NULL;
		r->keys = np;
		p->cap_keys = ncap;
	}
	km_audit_key_state_t *k = &r->keys[r->n_keys++];
	memset(k, 0, sizeof(*k));
	for (int i = 0; i < KM_STATE_COUNT; i++)
		k->at[i] = KM_STORE_TIME_NONE;
	k->activate_at = KM_STORE_TIME_NONE;
	return k;
}

static km_audit_keyset_state_t *set_add(rp_t *p)
{
	km_audit_replay_t *r = p->r;
	if (r->n_keysets == p->cap_sets) {
		size_t ncap = p->cap_sets ? p->cap_sets * 2 : 8;
		void *np = realloc(r->keysets, ncap * sizeof(*r->keysets));
		if (np == NULL)
			return NULL;
		r->keysets = np;
		p->cap_sets = ncap;
	}
	km_audit_keyset_state_t *ks = &r->keysets[r->n_keysets++];
	memset(ks, 0, sizeof(*ks));
	return ks;
}

static int baseline(rp_t *p, const km_store_audit_event_t *e, json_t *after, int64_t *bad_seq,
                    char *err, size_t errlen)
{
	size_t i;
	json_t *it;
	json_array_foreach(json_object_get(after, "keysets"), i, it) {
		km_audit_keyset_state_t *ks = set_add(p);
		if (ks == NULL)
			return KM_ENOMEM;
		snprintf(ks->name, sizeof(ks->name), "%s", jstr(it, "name") ? jstr(it, "name") : "");
		snprintf(ks->alg, sizeof(ks->alg), "%s", jstr(it, "alg") ? jstr(it, "alg") : "");
		snprintf(ks->owner, sizeof(ks->owner), "%s", jstr(it, "owner") ? jstr(it, "owner") : "");
		snprintf(ks->purpose, sizeof(ks->purpose), "%s",
		         jstr(it, "purpose") ? jstr(it, "purpose") : "");
		ks->created_at = KM_STORE_TIME_NONE;
		ks->last_seq = e->seq;
	}
	json_array_foreach(json_object_get(after, "keys"), i, it) {
		km_audit_key_state_t *k = key_add(p);
		const char *state = jstr(it, "state");
		if (k == NULL)
			return KM_ENOMEM;
		if (jstr(it, "cka_id") == NULL || state == NULL ||
		    km_state_from_name(state, &k->state) != KM_EOK)
			return bad(e->seq, bad_seq, err, errlen, "baseline key %zu is malformed", i);
		snprintf(k->cka_id, sizeof(k->cka_id), "%s", jstr(it, "cka_id"));
		snprintf(k->kid, sizeof(k->kid), "%s", jstr(it, "kid") ? jstr(it, "kid") : "");
		snprintf(k->keyset, sizeof(k->keyset), "%s", jstr(it, "keyset") ? jstr(it, "keyset") : "");
		k->pending = json_is_true(json_object_get(it, "pending"));
		json_t *times = json_object_get(it, "times");
		for (int s = 0; s < KM_STATE_COUNT; s++) {
			json_t *t = json_object_get(times, km_state_name((km_state_t)s));
			if (json_is_integer(t))
				k->at[s] = json_integer_value(t);
		}
		k->first_seq = k->last_seq = e->seq;
	}
	return KM_EOK;
}

static int apply_event(rp_t *p, const km_store_audit_event_t *e, int64_t *bad_seq, char *err,
                       size_t errlen)
{
	const char *a = e->action;
	bool keyish = strncmp(a, "key.", 4) == 0 || strncmp(a, "keyset.", 7) == 0 ||
	              strcmp(a, "store.baseline") == 0;
	if (!keyish)
		return KM_EOK;
	json_t *before = e->before[0] ? json_loads(e->before, 0, NULL) : NULL;
	json_t *after = e->after[0] ? json_loads(e->after, 0, NULL) : NULL;
	int r = KM_EOK;
	if ((e->before[0] && before == NULL) || after == NULL) {
		r = bad(e->seq, bad_seq, err, errlen, "%s: before/after is not JSON", a);
		goto out;
	}
	if (strcmp(a, "store.baseline") == 0) {
		r = baseline(p, e, after, bad_seq, err, errlen);
	} else if (strcmp(a, "keyset.create") == 0) {
		if (set_find(p->r, e->keyset) != NULL) {
			r = bad(e->seq, bad_seq, err, errlen, "key set %s created twice", e->keyset);
			goto out;
		}
		km_audit_keyset_state_t *ks = set_add(p);
		if (ks == NULL) {
			r = KM_ENOMEM;
			goto out;
		}
		snprintf(ks->name, sizeof(ks->name), "%s", e->keyset);
		snprintf(ks->alg, sizeof(ks->alg), "%s", jstr(after, "alg") ? jstr(after, "alg") : "");
		snprintf(ks->owner, sizeof(ks->owner), "%s",
		         jstr(after, "owner") ? jstr(after, "owner") : "");
		snprintf(ks->purpose, sizeof(ks->purpose), "%s",
		         jstr(after, "purpose") ? jstr(after, "purpose") : "");
		ks->created_at = e->at;
		ks->last_seq = e->seq;
	} else if (strcmp(a, "keyset.owner") == 0 || strcmp(a, "keyset.purpose") == 0) {
		bool owner = strcmp(a, "keyset.owner") == 0;
		const char *field = owner ? "owner" : "purpose";
		km_audit_keyset_state_t *ks = set_find(p->r, e->keyset);
		const char *old = jstr(before, field), *nv = jstr(after, field);
		if (ks == NULL || old == NULL || nv == NULL ||
		    strcmp(old, owner ? ks->owner : ks->purpose) != 0) {
			r = bad(e->seq, bad_seq, err, errlen, "%s change of key set %s does not follow "
			        "its history", field, e->keyset);
			goto out;
		}
		if (owner)
			snprintf(ks->owner, sizeof(ks->owner), "%s", nv);
		else
			snprintf(ks->purpose, sizeof(ks->purpose), "%s", nv);
		ks->last_seq = e->seq;
	} else if (strcmp(a, "key.intent") == 0) {
		const char *cka = jstr(after, "cka_id");
		if (cka == NULL || key_find(p->r, cka) != NULL || set_find(p->r, e->keyset) == NULL) {
			r = bad(e->seq, bad_seq, err, errlen, "intent for a known CKA_ID or an unknown key "
			        "set %s", e->keyset);
			goto out;
		}
		km_audit_key_state_t *k = key_add(p);
		if (k == NULL) {
			r = KM_ENOMEM;
			goto out;
		}
		snprintf(k->cka_id, sizeof(k->cka_id), "%s", cka);
		snprintf(k->keyset, sizeof(k->keyset), "%s", e->keyset);
		k->state = KM_STATE_GENERATED;
		k->pending = true;
		k->at[KM_STATE_GENERATED] = e->at;
		k->first_seq = k->last_seq = e->seq;
	} else if (strncmp(a, "key.", 4) == 0) {
		km_audit_key_state_t *k = key_find(p->r, jstr(after, "cka_id"));
		const char *from = jstr(before, "state"), *to = jstr(after, "state");
		km_state_t fs, ts;
		if (k == NULL || from == NULL || to == NULL || km_state_from_name(from, &fs) != KM_EOK ||
		    km_state_from_name(to, &ts) != KM_EOK || fs != k->state ||
		    json_is_true(json_object_get(before, "pending")) != k->pending) {
			r = bad(e->seq, bad_seq, err, errlen, "%s of %s does not follow the key's history",
			        a, e->kid[0] ? e->kid : "a pending key");
			goto out;
		}
		if (strcmp(a, "key.confirm") == 0) {
			snprintf(k->kid, sizeof(k->kid), "%s", jstr(after, "kid") ? jstr(after, "kid") : "");
		} else if (strcmp(a, "key.schedule") == 0) {
			json_t *t = json_object_get(after, "activate_at");
			if (ts != KM_STATE_PUBLISHED || !json_is_integer(t)) {
				r = bad(e->seq, bad_seq, err, errlen, "key.schedule of %s is malformed",
				        e->kid[0] ? e->kid : "a pending key");
				goto out;
			}
			k->activate_at = json_integer_value(t);
		} else if (strcmp(a, "key.transition") != 0 && strcmp(a, "key.abandon") != 0) {
			r = bad(e->seq, bad_seq, err, errlen, "unknown key action %s", a);
			goto out;
		}
		k->pending = json_is_true(json_object_get(after, "pending"));
		if (ts != k->state)
			k->at[ts] = e->at;
		k->state = ts;
		k->last_seq = e->seq;
	}
out:
	json_decref(before);
	json_decref(after);
	return r;
}

int km_audit_replay(const km_store_audit_event_t *ev, size_t n, int64_t until,
                    km_audit_replay_t *out, int64_t *bad_seq, char *err, size_t errlen)
{
	km_audit_replay_t r = { 0 };
	rp_t p = { &r, 0, 0 };
	int rc = KM_EOK;
	for (size_t i = 0; i < n && rc == KM_EOK; i++) {
		if (until != 0 && ev[i].at > until)
			continue;
		rc = apply_event(&p, &ev[i], bad_seq, err, errlen);
	}
	if (rc != KM_EOK) {
		if (rc == KM_ENOMEM && err != NULL)
			snprintf(err, errlen, "out of memory");
		km_audit_replay_free(&r);
		return rc;
	}
	*out = r;
	return KM_EOK;
}

void km_audit_replay_free(km_audit_replay_t *r)
{
	if (r == NULL)
		return;
	free(r->keys);
	free(r->keysets);
	memset(r, 0, sizeof(*r));
}

bool km_audit_key_trusted(const km_audit_key_state_t *k)
{
	return !k->pending && k->kid[0] != '\0' && km_state_in_jwks(k->state);
}
