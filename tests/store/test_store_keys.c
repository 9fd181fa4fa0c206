/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keys in the store: the intent/confirm ordering, every legal and illegal state transition,
 * the one-active invariant (in code and in the schema), destroyed records kept, queries, and
 * transactions. Real SQLite files in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store.h"
#include "tests/store/fixture.h"

static km_store_key_t get_key(km_store_t *s, const char *kid)
{
	char err[512] = "";
	km_store_key_t k;
	int r = km_store_key_get(s, kid, &k, err, sizeof(err));
	if (r != KM_EOK)
		fail_msg("get %s: %s", kid, err);
	return k;
}

static void move(km_store_t *s, const char *kid, km_state_t to, int64_t at)
{
	char err[512] = "";
	int r = km_store_key_transition(s, kid, to, at, to == KM_STATE_REVOKED ? "test" : NULL,
	                                err, sizeof(err));
	if (r != KM_EOK)
		fail_msg("%s -> %s: %s", kid, km_state_name(to), err);
}

/* ---- intent and confirm ---- */

static void test_key_intent_then_confirm(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_key_t k = { 0 }, got, *list = NULL;
	km_store_event_t *ev = NULL;
	size_t n = 0;
	int64_t id = 0;
	store_fx_keyset(fx->s, "api");
	snprintf(k.keyset, sizeof(k.keyset), "api");
	snprintf(k.token_label, sizeof(k.token_label), "dev-token");
	snprintf(k.token_serial, sizeof(k.token_serial), "0123456789abcdef");
	store_fx_cka_id("fresh", k.cka_id);
	k.cka_id_len = 20;
	k.state_at[KM_STATE_GENERATED] = 5000;
	assert_int_equal(km_store_key_intent(fx->s, &k, &id, err, sizeof(err)), KM_EOK);
	assert_true(id > 0);

	/* recorded before the token acts: pending, generated, no kid, defaults from key set */
	assert_int_equal(km_store_key_get_by_cka_id(fx->s, k.cka_id, 20, &got, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(got.id, id);
	assert_true(got.pending);
	assert_int_equal(got.state, KM_STATE_GENERATED);
	assert_string_equal(got.kid, "");
	assert_string_equal(got.jwk, "");
	assert_string_equal(got.keyset, "api");
	assert_int_equal(got.alg, KM_ALG_ES256);
	assert_int_equal(got.rsa_bits, 0);
	assert_string_equal(got.owner, "team-a");
	assert_string_equal(got.purpose, "access-token");
	assert_string_equal(got.token_label, "dev-token");
	assert_string_equal(got.token_serial, "0123456789abcdef");
	assert_int_equal(got.state_at[KM_STATE_GENERATED], 5000);
	assert_int_equal(got.state_at[KM_STATE_PUBLISHED], KM_STORE_TIME_NONE);

	km_store_key_filter_t f = { .pending = KM_STORE_PENDING_ONLY };
	assert_int_equal(km_store_keys_query(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	km_store_keys_free(list);

	/* a pending key cannot move */
	assert_int_equal(km_store_key_transition(fx->s, "not-yet", KM_STATE_PUBLISHED, 5001, NULL,
	                 err, sizeof(err)), KM_ENOENT);

	const char *jwk = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"AA\",\"y\":\"BB\"}";
	assert_int_equal(km_store_key_confirm(fx->s, k.cka_id, 20, "thumb-1", jwk, 5001, err,
	                 sizeof(err)), KM_EOK);
	got = get_key(fx->s, "thumb-1");
	assert_false(got.pending);
	assert_int_equal(got.state, KM_STATE_GENERATED);
	assert_string_equal(got.jwk, jwk);
	assert_memory_equal(got.cka_id, k.cka_id, 20);
	assert_int_equal(got.cka_id_len, 20);

	f.pending = KM_STORE_PENDING_ONLY;
	assert_int_equal(km_store_keys_query(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 0);

	assert_int_equal(km_store_key_events(fx->s, "thumb-1", &ev, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 2);
	assert_string_equal(ev[0].what, "intent");
	assert_int_equal(ev[0].at, 5000);
	assert_string_equal(ev[1].what, "confirm");
	assert_string_equal(ev[1].kid, "thumb-1");
	km_store_events_free(ev);
}

static void test_key_intent_refusals_record_nothing(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_key_t k = { 0 }, *list = NULL;
	size_t n = 0;
	store_fx_keyset(fx->s, "api");
	store_fx_key(fx->s, "api", "taken", 100);
	snprintf(k.keyset, sizeof(k.keyset), "api");
	snprintf(k.token_label, sizeof(k.token_label), "dev-token");
	k.cka_id_len = 20;
	k.state_at[KM_STATE_GENERATED] = 200;

	store_fx_cka_id("taken", k.cka_id);     /* CKA_ID already recorded */
	assert_int_equal(km_store_key_intent(fx->s, &k, NULL, err, sizeof(err)), KM_EEXIST);
	assert_non_null(strstr(err, "CKA_ID"));

	store_fx_cka_id("new", k.cka_id);
	snprintf(k.keyset, sizeof(k.keyset), "nope");
	assert_int_equal(km_store_key_intent(fx->s, &k, NULL, err, sizeof(err)), KM_ENOENT);
	snprintf(k.keyset, sizeof(k.keyset), "api");
	k.alg = KM_ALG_RS256;
	assert_int_equal(km_store_key_intent(fx->s, &k, NULL, err, sizeof(err)), KM_EALG);
	assert_non_null(strstr(err, "ES256"));
	k.alg = KM_ALG_NONE;
	k.rsa_bits = 2048;
	assert_int_equal(km_store_key_intent(fx->s, &k, NULL, err, sizeof(err)), KM_EKEYSIZE);
	k.rsa_bits = 0;
	k.cka_id_len = 0;
	assert_int_equal(km_store_key_intent(fx->s, &k, NULL, err, sizeof(err)), KM_EINVAL);
	k.cka_id_len = 20;
	k.token_label[0] = '\0';
	assert_int_equal(km_store_key_intent(fx->s, &k, NULL, err, sizeof(err)), KM_EINVAL);
	snprintf(k.token_label, sizeof(k.token_label), "dev-token");
	k.state_at[KM_STATE_GENERATED] = KM_STORE_TIME_NONE;
	assert_int_equal(km_store_key_intent(fx->s, &k, NULL, err, sizeof(err)), KM_EINVAL);
	assert_non_null(strstr(err, "generation time"));

	assert_int_equal(km_store_keys_query(fx->s, NULL, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].kid, "taken");
	km_store_keys_free(list);
}

static void test_key_confirm_refusals_keep_pending(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	uint8_t id[20];
	km_store_key_t k = { 0 }, got;
	const char *jwk = "{\"kty\":\"EC\"}";
	store_fx_keyset(fx->s, "api");
	store_fx_key(fx->s, "api", "taken", 100);
	snprintf(k.keyset, sizeof(k.keyset), "api");
	snprintf(k.token_label, sizeof(k.token_label), "dev-token");
	store_fx_cka_id("pend", k.cka_id);
	k.cka_id_len = 20;
	k.state_at[KM_STATE_GENERATED] = 200;
	assert_int_equal(km_store_key_intent(fx->s, &k, NULL, err, sizeof(err)), KM_EOK);

	assert_int_equal(km_store_key_confirm(fx->s, k.cka_id, 20, "taken", jwk, 201, err,
	                 sizeof(err)), KM_EEXIST);
	assert_non_null(strstr(err, "taken"));
	assert_int_equal(km_store_key_confirm(fx->s, k.cka_id, 20, "has space", jwk, 201, err,
	                 sizeof(err)), KM_EINVAL);
	assert_int_equal(km_store_key_confirm(fx->s, k.cka_id, 20, "fine", "not json", 201, err,
	                 sizeof(err)), KM_EINVAL);
	store_fx_cka_id("unknown", id);
	assert_int_equal(km_store_key_confirm(fx->s, id, 20, "fine", jwk, 201, err, sizeof(err)),
	                 KM_ENOENT);
	store_fx_cka_id("taken", id);            /* already confirmed */
	assert_int_equal(km_store_key_confirm(fx->s, id, 20, "fine", jwk, 201, err, sizeof(err)),
	                 KM_EINVAL);
	assert_non_null(strstr(err, "not pending"));

	assert_int_equal(km_store_key_get_by_cka_id(fx->s, k.cka_id, 20, &got, err, sizeof(err)),
	                 KM_EOK);
	assert_true(got.pending);
	assert_string_equal(got.kid, "");
}

static void test_key_abandon_keeps_record(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_key_t k = { 0 }, got;
	store_fx_keyset(fx->s, "api");
	snprintf(k.keyset, sizeof(k.keyset), "api");
	snprintf(k.token_label, sizeof(k.token_label), "dev-token");
	store_fx_cka_id("doomed", k.cka_id);
	k.cka_id_len = 20;
	k.state_at[KM_STATE_GENERATED] = 200;
	assert_int_equal(km_store_key_intent(fx->s, &k, NULL, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_key_abandon(fx->s, k.cka_id, 20, 201, NULL, err, sizeof(err)),
	                 KM_EINVAL);
	assert_int_equal(km_store_key_abandon(fx->s, k.cka_id, 20, 201, "token full", err,
	                 sizeof(err)), KM_EOK);
	assert_int_equal(km_store_key_get_by_cka_id(fx->s, k.cka_id, 20, &got, err, sizeof(err)),
	                 KM_EOK);
	assert_false(got.pending);
	assert_int_equal(got.state, KM_STATE_REVOKED);
	assert_int_equal(got.state_at[KM_STATE_REVOKED], 201);
	assert_string_equal(got.revoke_reason, "token full");
	/* twice is refused */
	assert_int_equal(km_store_key_abandon(fx->s, k.cka_id, 20, 202, "again", err, sizeof(err)),
	                 KM_EINVAL);
}

/* ---- transitions ---- */

/* Legal path from a fresh (confirmed, generated) key to each state. */
static const km_state_t paths[KM_STATE_COUNT][6] = {
	[KM_STATE_GENERATED] = { KM_STATE_COUNT },
	[KM_STATE_PUBLISHED] = { KM_STATE_PUBLISHED, KM_STATE_COUNT },
	[KM_STATE_ACTIVE] = { KM_STATE_PUBLISHED, KM_STATE_ACTIVE, KM_STATE_COUNT },
	[KM_STATE_RETIRED] = { KM_STATE_PUBLISHED, KM_STATE_ACTIVE, KM_STATE_RETIRED,
	                       KM_STATE_COUNT },
	[KM_STATE_REMOVED] = { KM_STATE_PUBLISHED, KM_STATE_ACTIVE, KM_STATE_RETIRED,
	                       KM_STATE_REMOVED, KM_STATE_COUNT },
	[KM_STATE_DESTROYED] = { KM_STATE_PUBLISHED, KM_STATE_ACTIVE, KM_STATE_RETIRED,
	                         KM_STATE_REMOVED, KM_STATE_DESTROYED, KM_STATE_COUNT },
	[KM_STATE_REVOKED] = { KM_STATE_REVOKED, KM_STATE_COUNT },
};

static void test_key_transition_every_pair(void **state)
{
	store_fx_t *fx = *state;
	int legal = 0, illegal = 0;
	for (unsigned from = 0; from < KM_STATE_COUNT; from++) {
		for (unsigned to = 0; to < KM_STATE_COUNT; to++) {
			char ks[32], kid[32], err[512] = "";
			snprintf(ks, sizeof(ks), "ks-%u-%u", from, to);
			snprintf(kid, sizeof(kid), "k-%u-%u", from, to);
			store_fx_keyset(fx->s, ks);
			store_fx_key(fx->s, ks, kid, 100);
			int64_t t = 101;
			for (const km_state_t *p = paths[from]; *p != KM_STATE_COUNT; p++)
				move(fx->s, kid, *p, t++);
			km_store_key_t before = get_key(fx->s, kid);
			assert_int_equal(before.state, from);

			int r = km_store_key_transition(fx->s, kid, (km_state_t)to, 500,
			                                to == KM_STATE_REVOKED ? "compromised" : NULL,
			                                err, sizeof(err));
			km_store_key_t after = get_key(fx->s, kid);
			if (km_state_transition_ok((km_state_t)from, (km_state_t)to)) {
				legal++;
				if (r != KM_EOK)
					fail_msg("%s -> %s refused: %s", km_state_name(from),
					         km_state_name(to), err);
				assert_int_equal(after.state, to);
				assert_int_equal(after.state_at[to], 500);
				for (unsigned i = 0; i < KM_STATE_COUNT; i++)
					if (i != to)
						assert_int_equal(after.state_at[i], before.state_at[i]);
				if (to == KM_STATE_REVOKED)
					assert_string_equal(after.revoke_reason, "compromised");
			} else {
				illegal++;
				if (r != KM_ETRANSITION)
					fail_msg("%s -> %s: got %d (%s)", km_state_name(from),
					         km_state_name(to), r, err);
				assert_non_null(strstr(err, "cannot become"));
				assert_non_null(strstr(err, kid));
				assert_memory_equal(&before, &after, sizeof(before));
			}
		}
	}
	assert_int_equal(legal, 12);
	assert_int_equal(illegal, 49 - 12);
}

static void test_key_transition_bad_arguments_change_nothing(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	store_fx_keyset(fx->s, "api");
	store_fx_key(fx->s, "api", "k1", 100);
	km_store_key_t before = get_key(fx->s, "k1");
	assert_int_equal(km_store_key_transition(fx->s, "k1", KM_STATE_REVOKED, 200, NULL, err,
	                 sizeof(err)), KM_EINVAL);
	assert_non_null(strstr(err, "needs a reason"));
	assert_int_equal(km_store_key_transition(fx->s, "k1", KM_STATE_REVOKED, 200, "", err,
	                 sizeof(err)), KM_EINVAL);
	assert_int_equal(km_store_key_transition(fx->s, "k1", KM_STATE_COUNT, 200, NULL, err,
	                 sizeof(err)), KM_EINVAL);
	assert_int_equal(km_store_key_transition(fx->s, "k1", KM_STATE_PUBLISHED, -1, NULL, err,
	                 sizeof(err)), KM_EINVAL);
	assert_int_equal(km_store_key_transition(fx->s, "no-such", KM_STATE_PUBLISHED, 200, NULL,
	                 err, sizeof(err)), KM_ENOENT);
	assert_non_null(strstr(err, "no-such"));
	assert_int_equal(km_store_key_transition(fx->s, "bad kid!", KM_STATE_PUBLISHED, 200, NULL,
	                 err, sizeof(err)), KM_EINVAL);
	km_store_key_t after = get_key(fx->s, "k1");
	assert_memory_equal(&before, &after, sizeof(before));
}

static void test_key_one_active_per_keyset(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_key_t k;
	store_fx_keyset(fx->s, "api");
	store_fx_keyset(fx->s, "web");
	store_fx_key(fx->s, "api", "a1", 100);
	store_fx_key(fx->s, "api", "a2", 100);
	store_fx_key(fx->s, "web", "w1", 100);
	move(fx->s, "a1", KM_STATE_PUBLISHED, 101);
	move(fx->s, "a2", KM_STATE_PUBLISHED, 101);
	move(fx->s, "w1", KM_STATE_PUBLISHED, 101);

	assert_int_equal(km_store_key_active(fx->s, "api", &k, err, sizeof(err)), KM_ENOACTIVE);
	assert_non_null(strstr(err, "dev/api"));
	move(fx->s, "a1", KM_STATE_ACTIVE, 102);
	move(fx->s, "w1", KM_STATE_ACTIVE, 102);   /* another key set: independent */

	km_store_key_t before = get_key(fx->s, "a2");
	assert_int_equal(km_store_key_transition(fx->s, "a2", KM_STATE_ACTIVE, 103, NULL, err,
	                 sizeof(err)), KM_EACTIVE);
	assert_non_null(strstr(err, "a1"));
	km_store_key_t after = get_key(fx->s, "a2");
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(km_store_key_active(fx->s, "api", &k, err, sizeof(err)), KM_EOK);
	assert_string_equal(k.kid, "a1");

	/* the schema enforces it too, even against a writer that bypasses keymgr */
	assert_true(store_fx_raw_refused(fx->path,
	                                 "UPDATE keys SET state = 'active' WHERE kid = 'a2'"));

	move(fx->s, "a1", KM_STATE_RETIRED, 104);
	move(fx->s, "a2", KM_STATE_ACTIVE, 104);
	assert_int_equal(km_store_key_active(fx->s, "api", &k, err, sizeof(err)), KM_EOK);
	assert_string_equal(k.kid, "a2");
}

static void test_key_destroyed_record_kept(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_event_t *ev = NULL;
	size_t n = 0;
	store_fx_keyset(fx->s, "api");
	store_fx_key(fx->s, "api", "gone", 100);
	move(fx->s, "gone", KM_STATE_REVOKED, 101);
	move(fx->s, "gone", KM_STATE_DESTROYED, 102);
	km_store_key_t k = get_key(fx->s, "gone");
	assert_int_equal(k.state, KM_STATE_DESTROYED);
	assert_int_equal(k.state_at[KM_STATE_REVOKED], 101);
	assert_int_equal(k.state_at[KM_STATE_DESTROYED], 102);
	assert_string_equal(k.revoke_reason, "test");
	assert_string_not_equal(k.jwk, "");
	bool exists = false;
	assert_int_equal(km_store_kid_exists(fx->s, "gone", &exists, err, sizeof(err)), KM_EOK);
	assert_true(exists);
	assert_int_equal(km_store_key_events(fx->s, "gone", &ev, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 4);   /* intent, confirm, revoked, destroyed */
	assert_int_equal(ev[2].from, KM_STATE_GENERATED);
	assert_int_equal(ev[2].to, KM_STATE_REVOKED);
	assert_string_equal(ev[2].reason, "test");
	assert_int_equal(ev[3].to, KM_STATE_DESTROYED);
	km_store_events_free(ev);

	/* no one deletes key records or history, not even by hand */
	assert_true(store_fx_raw_refused(fx->path, "DELETE FROM keys"));
	assert_true(store_fx_raw_refused(fx->path, "DELETE FROM key_events"));
	k = get_key(fx->s, "gone");
	assert_int_equal(k.state, KM_STATE_DESTROYED);
}

/* ---- queries ---- */

static void test_key_queries(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_key_t *list = NULL;
	size_t n = 0;
	bool exists = true;
	store_fx_keyset(fx->s, "api");
	store_fx_keyset(fx->s, "web");
	store_fx_key(fx->s, "api", "a1", 100);
	store_fx_key(fx->s, "api", "a2", 100);
	store_fx_key(fx->s, "web", "w1", 100);
	move(fx->s, "a1", KM_STATE_PUBLISHED, 101);
	move(fx->s, "a1", KM_STATE_ACTIVE, 102);
	move(fx->s, "a2", KM_STATE_PUBLISHED, 101);
	assert_int_equal(km_store_keyset_set_owner(fx->s, "web", "team-b", "bob", 150, NULL, err,
	                 sizeof(err)), KM_EOK);
	store_fx_key(fx->s, "web", "w2", 200);   /* created under the new owner */

	km_store_key_filter_t f = { .keyset = "api" };
	assert_int_equal(km_store_keys_query(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].kid, "a1");
	assert_string_equal(list[1].kid, "a2");
	km_store_keys_free(list);

	f = (km_store_key_filter_t){ .states = KM_STORE_STATE_BIT(KM_STATE_PUBLISHED) |
	                                       KM_STORE_STATE_BIT(KM_STATE_ACTIVE) };
	assert_int_equal(km_store_keys_query(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 2);
	km_store_keys_free(list);

	f = (km_store_key_filter_t){ .states = KM_STORE_STATE_BIT(KM_STATE_GENERATED) };
	assert_int_equal(km_store_keys_query(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].kid, "w1");
	km_store_keys_free(list);

	f = (km_store_key_filter_t){ .owner = "team-b" };
	assert_int_equal(km_store_keys_query(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].kid, "w2");
	km_store_keys_free(list);

	f = (km_store_key_filter_t){ .purpose = "access-token", .keyset = "web" };
	assert_int_equal(km_store_keys_query(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 2);
	km_store_keys_free(list);

	f = (km_store_key_filter_t){ .purpose = "id-token" };
	list = (km_store_key_t *)&f;
	assert_int_equal(km_store_keys_query(fx->s, &f, &list, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 0);
	assert_null(list);

	f = (km_store_key_filter_t){ .states = 1u << KM_STATE_COUNT };
	assert_int_equal(km_store_keys_query(fx->s, &f, &list, &n, err, sizeof(err)), KM_EINVAL);

	assert_int_equal(km_store_kid_exists(fx->s, "nobody", &exists, err, sizeof(err)), KM_EOK);
	assert_false(exists);
	assert_int_equal(km_store_kid_exists(fx->s, "w2", &exists, err, sizeof(err)), KM_EOK);
	assert_true(exists);
	assert_int_equal(km_store_kid_exists(fx->s, "", &exists, err, sizeof(err)), KM_EINVAL);
}

/* ---- facts learned about a token ---- */

static void test_token_id_len_recorded_per_token(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	size_t len = 99;
	km_store_t *other = NULL;
	assert_int_equal(km_store_token_id_len(fx->s, "0123", "yubi", &len, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(len, 0);
	assert_int_equal(km_store_token_id_len_record(fx->s, "0123", "yubi", 2, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(km_store_token_id_len_record(fx->s, "0123", "yubi", 3, err, sizeof(err)),
	                 KM_EOK);
	/* a new handle (the next process) reads it; another token has none */
	assert_int_equal(km_store_open(fx->path, "dev", &other, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_token_id_len(other, "0123", "yubi", &len, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(len, 3);
	assert_int_equal(km_store_token_id_len(other, "0124", "yubi", &len, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(len, 0);
	/* bad input is refused and changes nothing */
	assert_int_equal(km_store_token_id_len_record(other, "0123", "yubi", 0, err, sizeof(err)),
	                 KM_EINVAL);
	assert_int_equal(km_store_token_id_len_record(other, "0123", "yubi", KM_STORE_CKA_ID_MAX + 1,
	                                              err, sizeof(err)), KM_EINVAL);
	assert_int_equal(km_store_token_id_len_record(other, "01234567890123456", "yubi", 2, err,
	                                              sizeof(err)), KM_EINVAL);
	assert_non_null(strstr(err, "token serial"));
	assert_int_equal(km_store_token_id_len(other, "0123", "yubi", &len, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(len, 3);
	/* a token that assigns ids itself (kmsp11): its own fact, beside the length */
	bool assigns = true;
	assert_int_equal(km_store_token_assigns_ids(other, "0123", "kms", &assigns, err,
	                                            sizeof(err)), KM_EOK);
	assert_false(assigns);
	assert_int_equal(km_store_token_assigns_ids_record(fx->s, "0123", "kms", err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(km_store_token_assigns_ids(other, "0123", "kms", &assigns, err,
	                                            sizeof(err)), KM_EOK);
	assert_true(assigns);
	assert_int_equal(km_store_token_assigns_ids(other, "0123", "yubi", &assigns, err,
	                                            sizeof(err)), KM_EOK);
	assert_false(assigns);
	assert_int_equal(km_store_token_assigns_ids_record(other, "0123", NULL, err, sizeof(err)),
	                 KM_EINVAL);
	km_store_free(other);
}

/* ---- transactions ---- */

static void test_tx_rollback_and_commit(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	store_fx_keyset(fx->s, "api");
	store_fx_key(fx->s, "api", "k1", 100);

	assert_int_equal(km_store_begin(fx->s, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_begin(fx->s, err, sizeof(err)), KM_EINVAL);
	move(fx->s, "k1", KM_STATE_PUBLISHED, 101);
	assert_int_equal(km_store_rollback(fx->s, err, sizeof(err)), KM_EOK);
	assert_int_equal(get_key(fx->s, "k1").state, KM_STATE_GENERATED);

	/* a refused step inside a transaction undoes only itself */
	assert_int_equal(km_store_begin(fx->s, err, sizeof(err)), KM_EOK);
	move(fx->s, "k1", KM_STATE_PUBLISHED, 101);
	assert_int_equal(km_store_key_transition(fx->s, "k1", KM_STATE_DESTROYED, 102, NULL, err,
	                 sizeof(err)), KM_ETRANSITION);
	move(fx->s, "k1", KM_STATE_ACTIVE, 103);
	assert_int_equal(km_store_commit(fx->s, err, sizeof(err)), KM_EOK);
	km_store_key_t k = get_key(fx->s, "k1");
	assert_int_equal(k.state, KM_STATE_ACTIVE);
	assert_int_equal(k.state_at[KM_STATE_DESTROYED], KM_STORE_TIME_NONE);

	assert_int_equal(km_store_commit(fx->s, err, sizeof(err)), KM_EINVAL);
	assert_non_null(strstr(err, "no store transaction"));
	assert_int_equal(km_store_rollback(fx->s, err, sizeof(err)), KM_EINVAL);
}

static void test_tx_second_writer_gets_busy(void **state)
{
	store_fx_t *fx = *state;
	char err[512] = "";
	km_store_t *other = NULL;
	store_fx_keyset(fx->s, "api");
	assert_int_equal(km_store_open(fx->path, "dev", &other, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_begin(fx->s, err, sizeof(err)), KM_EOK);
	/* waits KM_STORE_BUSY_TIMEOUT_MS for the lock, then gives up with a clear message */
	assert_int_equal(km_store_begin(other, err, sizeof(err)), KM_STORE_EBUSY);
	assert_non_null(strstr(err, "locked by another writer"));
	store_fx_keyset(fx->s, "web");
	assert_int_equal(km_store_commit(fx->s, err, sizeof(err)), KM_EOK);
	/* once the lock is free the other handle works and sees the committed key set */
	km_store_keyset_t ks;
	assert_int_equal(km_store_begin(other, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_keyset_get(other, "web", &ks, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_store_commit(other, err, sizeof(err)), KM_EOK);
	km_store_free(other);
}

#define T(f) cmocka_unit_test_setup_teardown(f, store_fx_setup, store_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_key_intent_then_confirm),
		T(test_key_intent_refusals_record_nothing),
		T(test_key_confirm_refusals_keep_pending),
		T(test_key_abandon_keeps_record),
		T(test_key_transition_every_pair),
		T(test_key_transition_bad_arguments_change_nothing),
		T(test_key_one_active_per_keyset),
		T(test_key_destroyed_record_kept),
		T(test_key_queries),
		T(test_token_id_len_recorded_per_token),
		T(test_tx_rollback_and_commit),
		T(test_tx_second_writer_gets_busy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
