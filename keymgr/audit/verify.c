/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verification of an environment's audit trail from its store alone (no token, no config):
 *   1. the hash chain: seq 1, 2, ... without gaps, each prev_hash the hash before it, each
 *      hash recomputed from the row;
 *   2. the checkpoints: each signature valid under its audit key's stored public JWK (itself
 *      recorded in the chain by an audit.key.create event), and each signed (seq, hash) present
 *      in the chain: a shorter chain is a truncated tail, another hash a rewritten chain;
 *   3. the anchors the caller brings (anchor.c: the token's record of the last checkpoint,
 *      the streamed JSON lines, an auditor's --expect-seq/--expect-head): each point they
 *      hold is in the chain, so a log cut back to an earlier checkpoint shows;
 *   4. the tables: key sets, keys, JWKS versions and audit keys are exactly what the replay
 *      of the log says, so an edit of a row (an owner, a state) outside keymgr shows.
 * The result names the first (lowest) bad sequence number over all checks.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/audit/audit.h"
#include "keymgr/audit/audit_int.h"
#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"

/* Records a problem at seq unless one with a lower seq is already recorded. */
__attribute__((format(printf, 3, 4)))
static void problem(km_audit_verify_t *res, int64_t seq, const char *fmt, ...)
{
	if (!res->ok && res->first_bad_seq <= seq)
		return;
	res->ok = false;
	res->first_bad_seq = seq;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->problem, sizeof(res->problem), fmt, ap);
	va_end(ap);
}

static void check_chain(const char *env, const km_store_audit_event_t *ev, size_t n,
                        km_audit_verify_t *res)
{
	char prev[KM_STORE_HASH_HEX + 1];
	memset(prev, '0', KM_STORE_HASH_HEX);
	prev[KM_STORE_HASH_HEX] = '\0';
	for (size_t i = 0; i < n; i++) {
		const km_store_audit_event_t *e = &ev[i];
		int64_t want = (int64_t)i + 1;
		char h[KM_STORE_HASH_HEX + 1];
		if (e->seq != want) {
			problem(res, want, "event %lld is missing (the next stored event is %lld): "
			        "events were deleted or renumbered", (long long)want, (long long)e->seq);
			return;
		}
		if (strcmp(e->prev_hash, prev) != 0) {
			problem(res, want, "prev_hash does not match the hash of event %lld: an event "
			        "before it was removed, reordered or replaced", (long long)want - 1);
			return;
		}
		if (km_store_audit_hash(env, e, h) != KM_EOK || strcmp(h, e->hash) != 0) {
			problem(res, want, "the event's content does not match its hash: it was edited");
			return;
		}
		memcpy(prev, e->hash, sizeof(prev));
	}
}

/* The audit keys table must hold exactly the keys the log's audit.key.create events
 * recorded, with the same public JWK: a replaced audit key shows at its event. */
static void check_audit_keys(const km_store_audit_event_t *ev, size_t n,
                             const km_store_audit_key_t *keys, size_t n_keys,
                             km_audit_verify_t *res)
{
	size_t recorded = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ev[i].action, "audit.key.create") != 0)
			continue;
		recorded++;
		json_t *after = json_loads(ev[i].after, 0, NULL);
		const char *jwk = json_string_value(json_object_get(after, "jwk"));
		const km_store_audit_key_t *k = NULL;
		for (size_t j = 0; j < n_keys && k == NULL; j++)
			if (strcmp(keys[j].kid, ev[i].kid) == 0)
				k = &keys[j];
		if (k == NULL || jwk == NULL || strcmp(jwk, k->jwk) != 0)
			problem(res, ev[i].seq, "the stored audit key %s differs from the one the log "
			        "recorded (replaced or removed)", ev[i].kid);
		json_decref(after);
	}
	if (n_keys != recorded)
		problem(res, (int64_t)n + 1, "the store holds %zu audit keys, the log recorded %zu",
		        n_keys, recorded);
}

static const km_store_audit_key_t *find_key(const km_store_audit_key_t *keys, size_t n,
                                            const char *kid)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].kid, kid) == 0)
			return &keys[i];
	return NULL;
}

static void check_checkpoints(const char *env, const km_store_audit_event_t *ev, size_t n,
                              const km_store_checkpoint_t *cps, size_t n_cps,
                              const km_store_audit_key_t *keys, size_t n_keys,
                              const km_audit_verify_opts_t *o, km_audit_verify_t *res)
{
	for (size_t i = 0; i < n_cps; i++) {
		const km_store_checkpoint_t *c = &cps[i];
		const km_store_audit_key_t *k = find_key(keys, n_keys, c->key_kid);
		char *payload = NULL;
		if (o != NULL && o->pin_kid != NULL && strcmp(o->pin_kid, c->key_kid) != 0) {
			problem(res, c->seq, "checkpoint %lld is signed by audit key %s, not by the "
			        "expected %s", (long long)c->id, c->key_kid, o->pin_kid);
			continue;
		}
		if (k == NULL) {
			problem(res, c->seq, "checkpoint %lld names an unknown audit key %s",
			        (long long)c->id, c->key_kid);
			continue;
		}
		int r = km_audit_checkpoint_payload(env, c, &payload);
		if (r == KM_EOK)
			r = km_audit_signature_verify(k->jwk, k->alg, payload, strlen(payload),
			                              c->signature);
		free(payload);
		if (r != KM_EOK) {
			problem(res, c->seq, "checkpoint %lld (seq %lld) has an invalid signature: the "
			        "checkpoint or the audit key was altered", (long long)c->id,
			        (long long)c->seq);
			continue;
		}
		if (c->seq > (int64_t)n) {
			problem(res, (int64_t)n + 1, "the log ends at seq %lld but checkpoint %lld signed "
			        "seq %lld: events were removed from the end", (long long)n,
			        (long long)c->id, (long long)c->seq);
			continue;
		}
		if (c->seq < 1 || strcmp(ev[c->seq - 1].hash, c->hash) != 0) {
			problem(res, c->seq, "event %lld differs from the one checkpoint %lld signed: the "
			        "log was rewritten at or before this event", (long long)c->seq,
			        (long long)c->id);
			continue;
		}
		if (c->seq >= res->checkpoint_seq) {
			res->checkpoint_seq = c->seq;
			res->checkpoint_at = c->at;
			snprintf(res->checkpoint_kid, sizeof(res->checkpoint_kid), "%s", c->key_kid);
		}
	}
}

/*
 * Each anchor (a point recorded outside the store) must be in the chain: a log that ends
 * before it was rolled back (its tail and the checkpoints over it deleted), another hash
 * there means the log was rewritten.
 */
static void check_anchors(const km_store_audit_event_t *ev, size_t n,
                          const km_audit_verify_opts_t *o, km_audit_verify_t *res)
{
	for (size_t i = 0; o != NULL && i < o->n_anchors; i++) {
		const km_audit_anchor_t *a = &o->anchors[i];
		res->anchors++;
		if (a->seq > res->anchor_seq)
			res->anchor_seq = a->seq;
		if (a->seq > (int64_t)n) {
			problem(res, (int64_t)n + 1, "the log ends at seq %lld, but %s holds seq %lld: "
			        "the events after seq %lld were removed (the log was rolled back)",
			        (long long)n, a->source, (long long)a->seq, (long long)n);
			continue;
		}
		if (a->seq > 0) {
			if (a->hash[0] != '\0' && strcmp(ev[a->seq - 1].hash, a->hash) != 0)
				problem(res, a->seq, "event %lld differs from the one %s holds: the log "
				        "was rewritten at or before this event", (long long)a->seq,
				        a->source);
			continue;
		}
		bool held = false;
		for (size_t j = 0; j < n && !held; j++)
			held = strcmp(ev[j].hash, a->hash) == 0;
		if (!held)
			problem(res, (int64_t)n + 1, "no event of the log has the hash %s holds (%s): the "
			        "log was rolled back or rewritten", a->source, a->hash);
	}
}

/* The tables must be exactly what the replay of the log gives. */
static void check_state(km_store_t *s, const km_audit_replay_t *rp, int64_t head,
                        km_audit_verify_t *res, char *err, size_t errlen)
{
	km_store_keyset_t *sets = NULL;
	km_store_key_t *keys = NULL;
	size_t n_sets = 0, n_keys = 0;
	if (km_store_keyset_list(s, NULL, &sets, &n_sets, err, errlen) != KM_EOK ||
	    km_store_keys_query(s, NULL, &keys, &n_keys, err, errlen) != KM_EOK) {
		problem(res, head + 1, "cannot read the key sets and keys to compare");
		goto out;
	}
	for (size_t i = 0; i < n_sets; i++) {
		const km_audit_keyset_state_t *r = NULL;
		for (size_t j = 0; j < rp->n_keysets && r == NULL; j++)
			if (strcmp(rp->keysets[j].name, sets[i].name) == 0)
				r = &rp->keysets[j];
		if (r == NULL)
			problem(res, head + 1, "key set %s is not in the log (inserted outside keymgr)",
			        sets[i].name);
		else if (strcmp(r->owner, sets[i].owner) != 0 || strcmp(r->purpose, sets[i].purpose) != 0 ||
		         strcmp(r->alg, km_alg_name(sets[i].alg)) != 0)
			problem(res, r->last_seq, "key set %s has owner '%s' and purpose '%s' in the store, "
			        "but the log says '%s' and '%s' since this event", sets[i].name,
			        sets[i].owner, sets[i].purpose, r->owner, r->purpose);
	}
	if (n_sets < rp->n_keysets)
		problem(res, head + 1, "the log has %zu key sets, the store %zu: a key set row was "
		        "deleted", rp->n_keysets, n_sets);
	for (size_t i = 0; i < n_keys; i++) {
		char hex[2 * KM_STORE_CKA_ID_MAX + 1];
		const km_audit_key_state_t *r = NULL;
		km_hex_encode(keys[i].cka_id, keys[i].cka_id_len, hex, sizeof(hex));
		for (size_t j = 0; j < rp->n_keys && r == NULL; j++)
			if (strcmp(rp->keys[j].cka_id, hex) == 0)
				r = &rp->keys[j];
		if (r == NULL) {
			problem(res, head + 1, "key %s (CKA_ID %s) is not in the log (inserted outside "
			        "keymgr)", keys[i].kid[0] ? keys[i].kid : "(pending)", hex);
			continue;
		}
		bool same = r->state == keys[i].state && r->pending == keys[i].pending &&
		            r->activate_at == keys[i].activate_at &&
		            strcmp(r->kid, keys[i].kid) == 0 && strcmp(r->keyset, keys[i].keyset) == 0;
		for (int st = 0; same && st < KM_STATE_COUNT; st++)
			same = r->at[st] == keys[i].state_at[st];
		if (!same)
			problem(res, r->last_seq, "key %s is %s in the store, but the log says %s (state "
			        "or dates edited outside keymgr)", keys[i].kid[0] ? keys[i].kid : hex,
			        km_state_name(keys[i].state), km_state_name(r->state));
	}
	if (n_keys < rp->n_keys)
		problem(res, head + 1, "the log has %zu keys, the store %zu: a key row was deleted",
		        rp->n_keys, n_keys);
out:
	free(sets);
	free(keys);
}

static void check_jwks(km_store_t *s, const km_store_audit_event_t *ev, size_t n,
                       km_audit_verify_t *res, char *err, size_t errlen)
{
	km_store_jwks_version_t *v = NULL;
	size_t nv = 0, n_events = 0;
	if (km_store_jwks_versions(s, &v, &nv, err, errlen) != KM_EOK) {
		problem(res, (int64_t)n + 1, "cannot read the JWKS history");
		return;
	}
	for (size_t i = 0; i < n; i++)
		n_events += strcmp(ev[i].action, "jwks.publish") == 0;
	for (size_t i = 0; i < nv; i++) {
		char want[16384];
		snprintf(want, sizeof(want), "{\"kids\":%s,\"serial\":%llu}", v[i].kids,
		         (unsigned long long)v[i].serial);
		const km_store_audit_event_t *e = v[i].event_seq >= 1 && v[i].event_seq <= (int64_t)n
		                                  ? &ev[v[i].event_seq - 1] : NULL;
		if (e == NULL || strcmp(e->action, "jwks.publish") != 0 || strcmp(e->after, want) != 0 ||
		    e->at != v[i].at)
			problem(res, e ? e->seq : (int64_t)n + 1, "JWKS version %llu differs from the "
			        "jwks.publish event that recorded it", (unsigned long long)v[i].serial);
	}
	if (nv != n_events)
		problem(res, (int64_t)n + 1, "the log has %zu JWKS versions, the store %zu", n_events,
		        nv);
	km_store_jwks_versions_free(v, nv);
}

/* One verification from the reads it makes now (see km_audit_verify). */
static int verify_once(km_store_t *s, const km_audit_verify_opts_t *o, km_audit_verify_t *res,
                       char *err, size_t errlen)
{
	km_store_audit_event_t *ev = NULL;
	km_store_checkpoint_t *cps = NULL;
	km_store_audit_key_t *keys = NULL;
	km_audit_replay_t rp = { 0 };
	size_t n = 0, n_cps = 0, n_keys = 0;
	km_audit_verify_t v;
	char msg[512] = "";
	memset(&v, 0, sizeof(v));
	v.ok = true;
	int r = km_store_audit_query(s, NULL, &ev, &n, err, errlen);
	if (r != KM_EOK)
		return r;
	if ((r = km_store_checkpoints(s, &cps, &n_cps, err, errlen)) != KM_EOK)
		goto out;
	if ((r = km_store_audit_keys(s, &keys, &n_keys, err, errlen)) != KM_EOK)
		goto out;
	const char *env = km_store_env(s);
	v.events = (int64_t)n;
	v.checkpoints = n_cps;
	if (n > 0) {
		v.head_seq = ev[n - 1].seq;
		memcpy(v.head_hash, ev[n - 1].hash, sizeof(v.head_hash));
	} else {
		problem(&v, 1, "the log is empty");
	}
	check_chain(env, ev, n, &v);
	check_audit_keys(ev, n, keys, n_keys, &v);
	check_checkpoints(env, ev, n, cps, n_cps, keys, n_keys, o, &v);
	check_anchors(ev, n, o, &v);
	int64_t bad_seq = 0;
	int rr = km_audit_replay(ev, n, 0, &rp, &bad_seq, msg, sizeof(msg));
	if (rr == KM_ENOMEM) {
		r = rr;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (rr != KM_EOK)
		problem(&v, bad_seq, "the log does not replay: %s", msg);
	else
		check_state(s, &rp, (int64_t)n, &v, msg, sizeof(msg));
	check_jwks(s, ev, n, &v, msg, sizeof(msg));
	*res = v;
out:
	km_audit_replay_free(&rp);
	km_store_audit_events_free(ev, n);
	free(cps);
	free(keys);
	return r;
}

/* A change committed between the reads of one pass makes the tables newer than the log read
 * before them: it looks like an edit outside keymgr. Every change of the tables appends to
 * the log in its own transaction, so a head that did not move during the pass means the
 * reads saw one state; otherwise the pass is made again (a live leader commits a few times a
 * rotation), and after the last try its result stands. */
#define VERIFY_TRIES 5

int km_audit_verify(km_store_t *s, const km_audit_verify_opts_t *o, km_audit_verify_t *res,
                    char *err, size_t errlen)
{
	km_audit_verify_t v;
	for (int i = 0;; i++) {
		int64_t head = 0;
		char hash[KM_STORE_HASH_HEX + 1];
		int r = verify_once(s, o, &v, err, errlen);
		if (r != KM_EOK)
			return r;
		if ((r = km_store_audit_head(s, &head, hash, err, errlen)) != KM_EOK)
			return r;
		if (head == v.head_seq || i + 1 == VERIFY_TRIES)
			break;
	}
	*res = v;
	return KM_EOK;
}
