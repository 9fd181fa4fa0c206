/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgr reconcile on states made by hand (no crash hooks needed): a pending intent whose
 * pair exists (dry run changes nothing, then adopt), an active key and a published key whose
 * token objects vanished (flagged / revoked), and a keymgr object no record knows
 * (quarantined, never deleted), and pending intents whose pair fails keymgr's checks (an
 * unsafe key pair, a pair whose halves do not belong together: destroyed and abandoned, never
 * adopted). The token is changed in-process through the token layer (and through raw
 * Cryptoki, tests/fault/p11raw.h, for what keymgr never makes); keymgr runs as a user runs it.
 *
 * Usage: test_fault_reconcile PATH-TO-KEYMGR
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store.h"
#include "pkcs11/token.h"
#include "tests/fault/common.h"
#include "tests/fault/p11raw.h"

static kmt_t kmt;
static const char *keymgr_path;

static int group_setup(void **state)
{
	return kmt_setup(&kmt, keymgr_path, NULL);
}

static int group_teardown(void **state)
{
	kmt_teardown(&kmt);
	return 0;
}

static km_token_t *token_open(void)
{
	km_token_cfg_t cfg = { .module_path = kmt.hsm.module, .token_label = "keymgr-crash",
	                       .pin_source = kmt.hsm.pin_source };
	km_token_t *t = NULL;
	char err[512];
	if (km_token_open(&cfg, &t, err, sizeof(err)) != KM_EOK)
		fail_msg("token: %s", err);
	return t;
}

static km_store_t *store_open(void)
{
	km_store_t *s = NULL;
	char err[512];
	if (km_store_open(kmt.store, KMT_ENV, &s, err, sizeof(err)) != KM_EOK)
		fail_msg("store: %s", err);
	return s;
}

static void keyset(const char *ref, bool with_key)
{
	km_run_t *r = calloc(1, sizeof(*r));
	kmt_ok(&kmt, r, (const char *[]){ "keyset", "create", ref, "--no-key", "--alg", "ES256",
	                                  "--owner", "reliability", "--purpose", "access-token",
	                                  NULL });
	if (with_key)
		kmt_ok(&kmt, r, (const char *[]){ "rotate", ref, NULL });
	free(r);
}

/* Runs reconcile --json (dry or not) and returns the parsed output; *status its exit. */
static json_t *reconcile(bool dry_run, int *status)
{
	km_run_t *r = calloc(1, sizeof(*r));
	kmt_run(&kmt, r, NULL, dry_run ? (const char *[]){ "reconcile", KMT_ENV, "--json",
	                                                   "--dry-run", NULL }
	                               : (const char *[]){ "reconcile", KMT_ENV, "--json", NULL });
	json_error_t jerr;
	json_t *j = json_loads(r->out, 0, &jerr);
	if (j == NULL)
		fail_msg("reconcile --json: %s\n%s", r->out, r->err);
	*status = r->status;
	free(r);
	return j;
}

/* The one finding of j, checked to be of this action. */
static json_t *only_finding(json_t *j, const char *action)
{
	json_t *f = json_object_get(j, "findings");
	if (json_array_size(f) != 1)
		fail_msg("expected one finding, got %s", json_dumps(j, 0));
	json_t *e = json_array_get(f, 0);
	assert_string_equal(json_string_value(json_object_get(e, "action")), action);
	return e;
}

/* Records a pending ES256 intent of key set keyset, as a crash before the token step leaves
 * it; *ret gets the row. */
static void pending_intent(const char *keyset, km_store_key_t *ret)
{
	km_store_t *s = store_open();
	km_token_t *t = token_open();
	km_token_info_t info;
	km_token_get_info(t, &info);
	km_store_key_t k;
	memset(&k, 0, sizeof(k));
	snprintf(k.keyset, sizeof(k.keyset), "%s", keyset);
	snprintf(k.token_label, sizeof(k.token_label), "%s", info.label);
	snprintf(k.token_serial, sizeof(k.token_serial), "%s", info.serial);
	assert_int_equal(km_token_new_id(k.cka_id), KM_EOK);
	k.cka_id_len = KM_TOKEN_ID_LEN;
	for (int i = 0; i < KM_STATE_COUNT; i++)
		k.state_at[i] = KM_STORE_TIME_NONE;
	k.state_at[KM_STATE_GENERATED] = 1700000000;
	char err[256];
	assert_int_equal(km_store_key_intent(s, &k, NULL, err, sizeof(err)), KM_EOK);
	km_token_free(t);
	km_store_free(s);
	*ret = k;
}

static void test_reconcile_adopt_dry_run_then_real(void **state)
{
	keyset(KMT_ENV "/ra", false);
	/* An intent and its pair, as a crash after the token step leaves them. */
	km_store_key_t k;
	pending_intent("ra", &k);
	km_token_t *t = token_open();
	km_pubkey_t pub;
	assert_int_equal(km_token_generate_with_id(t, KM_ALG_ES256, 0, "keymgr:crash/ra", k.cka_id,
	                                           k.cka_id_len, &pub), KM_EOK);
	km_token_free(t);
	char err[256];
	km_store_t *s;
	int st;
	json_t *j = reconcile(true, &st);
	assert_int_equal(st, 0);
	json_t *e = only_finding(j, "adopt");
	assert_false(json_is_true(json_object_get(e, "applied")));
	char kid[KM_KID_MAX + 1];
	snprintf(kid, sizeof(kid), "%s", json_string_value(json_object_get(e, "kid")));
	assert_true(strlen(kid) == 43);
	json_decref(j);
	/* The dry run changed nothing: still pending. */
	s = store_open();
	km_store_key_t again;
	assert_int_equal(km_store_key_get_by_cka_id(s, k.cka_id, k.cka_id_len, &again, err,
	                                            sizeof(err)), KM_EOK);
	assert_true(again.pending);
	km_store_free(s);

	j = reconcile(false, &st);
	assert_int_equal(st, 0);
	e = only_finding(j, "adopt");
	assert_true(json_is_true(json_object_get(e, "applied")));
	assert_string_equal(json_string_value(json_object_get(e, "kid")), kid);
	json_decref(j);
	s = store_open();
	assert_int_equal(km_store_key_get(s, kid, &again, err, sizeof(err)), KM_EOK);
	assert_false(again.pending);
	assert_int_equal(again.state, KM_STATE_GENERATED);
	km_store_free(s);
	j = reconcile(false, &st);
	assert_int_equal(json_array_size(json_object_get(j, "findings")), 0);
	json_decref(j);
}

static bool pair_in_token(const km_store_key_t *k)
{
	p11raw_t raw;
	p11raw_open(&raw, kmt.hsm.module, "keymgr-crash", kmt.hsm.pin_source);
	bool there = p11raw_find(&raw, CKO_PRIVATE_KEY, k->cka_id, k->cka_id_len) !=
	             CK_INVALID_HANDLE;
	p11raw_close(&raw);
	return there;
}

/*
 * Reconciles (dry run, then for real) a pending intent whose pair must not be adopted: the
 * intent abandoned (never adopted), the finding's detail naming why (detail), the abandoned
 * row's reason too (reason). With destroyed, the same run destroys the pair; otherwise the
 * abandoned row's objects are purged by the next run, as any abandoned intent's are.
 */
static void expect_refused(const km_store_key_t *k, const char *detail_has,
                           const char *reason_has, bool destroyed)
{
	int st;
	char err[256];
	for (int dry = 1; dry >= 0; dry--) {
		json_t *j = reconcile(dry, &st);
		assert_int_equal(st, 0);
		json_t *e = only_finding(j, "abandon");
		const char *detail = json_string_value(json_object_get(e, "detail"));
		if (strstr(detail, detail_has) == NULL)
			fail_msg("detail: %s", detail);
		assert_int_equal(json_is_true(json_object_get(e, "applied")), !dry);
		assert_string_equal(json_string_value(json_object_get(e, "kid")), "");
		json_decref(j);
		km_store_t *s = store_open();
		km_store_key_t again;
		assert_int_equal(km_store_key_get_by_cka_id(s, k->cka_id, k->cka_id_len, &again, err,
		                                            sizeof(err)), KM_EOK);
		assert_int_equal(again.pending, dry);
		if (!dry) {
			assert_int_equal(again.state, KM_STATE_REVOKED);
			assert_string_equal(again.kid, "");
			if (strstr(again.revoke_reason, reason_has) == NULL)
				fail_msg("reason: %s", again.revoke_reason);
		}
		km_store_free(s);
		assert_int_equal(pair_in_token(k), dry || !destroyed);
	}
	json_t *j = reconcile(false, &st);
	if (destroyed) {
		assert_int_equal(json_array_size(json_object_get(j, "findings")), 0);
	} else {
		json_t *e = only_finding(j, "purge");
		assert_true(json_is_true(json_object_get(e, "applied")));
		assert_false(pair_in_token(k));
	}
	json_decref(j);
}

/* An extractable, not sensitive pair with the intent's CKA_ID (what a token's lower template
 * rung can make, left by a crash before the read-back): reconcile must not adopt it (the
 * unsafe-key check, reconcile.h, abandons the intent before the adoption's own checks). */
static void test_reconcile_adopt_refuses_unsafe_pair(void **state)
{
	keyset(KMT_ENV "/ru", false);
	km_store_key_t k;
	pending_intent("ru", &k);
	static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
	                                0x07 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &yes, 1 }, { CKA_VERIFY, &yes, 1 },
		{ CKA_EC_PARAMS, (void *)p256, sizeof(p256) },
		{ CKA_ID, k.cka_id, k.cka_id_len },
	};
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &yes, 1 }, { CKA_PRIVATE, &yes, 1 }, { CKA_SIGN, &yes, 1 },
		{ CKA_SENSITIVE, &no, 1 }, { CKA_EXTRACTABLE, &yes, 1 },
		{ CKA_ID, k.cka_id, k.cka_id_len },
	};
	CK_OBJECT_HANDLE hp, hs;
	p11raw_t raw;
	p11raw_open(&raw, kmt.hsm.module, "keymgr-crash", kmt.hsm.pin_source);
	assert_int_equal(raw.fl->C_GenerateKeyPair(raw.s, &mech, pub, 4, priv, 6, &hp, &hs),
	                 CKR_OK);
	p11raw_close(&raw);
	expect_refused(&k, "is not safe", "is not safe", false);
}

/* A private key with the intent's CKA_ID whose public key belongs to another private key: its
 * attributes are sound, but its test signature does not verify with that public key. */
static void test_reconcile_adopt_refuses_mismatched_pair(void **state)
{
	keyset(KMT_ENV "/rx", false);
	km_store_key_t k;
	pending_intent("rx", &k);
	uint8_t other[KM_TOKEN_ID_LEN];
	km_pubkey_t pub;
	km_token_t *t = token_open();
	assert_int_equal(km_token_generate_with_id(t, KM_ALG_ES256, 0, "keymgr:crash/rx",
	                                           k.cka_id, k.cka_id_len, &pub), KM_EOK);
	assert_int_equal(km_token_generate(t, KM_ALG_ES256, 0, "keymgr:crash/rx", other, &pub),
	                 KM_EOK);
	km_token_free(t);
	p11raw_t raw;
	p11raw_open(&raw, kmt.hsm.module, "keymgr-crash", kmt.hsm.pin_source);
	assert_int_equal(raw.fl->C_DestroyObject(raw.s, p11raw_find(&raw, CKO_PUBLIC_KEY, k.cka_id,
	                                                            k.cka_id_len)), CKR_OK);
	assert_int_equal(raw.fl->C_DestroyObject(raw.s, p11raw_find(&raw, CKO_PRIVATE_KEY, other,
	                                                            sizeof(other))), CKR_OK);
	CK_ATTRIBUTE id = { CKA_ID, k.cka_id, k.cka_id_len };
	assert_int_equal(raw.fl->C_SetAttributeValue(raw.s, p11raw_find(&raw, CKO_PUBLIC_KEY,
	                                                                other, sizeof(other)),
	                                             &id, 1), CKR_OK);
	p11raw_close(&raw);
	expect_refused(&k, "does not verify", "does not verify", true);
}

static void test_reconcile_missing_active_is_flagged_not_changed(void **state)
{
	keyset(KMT_ENV "/rm", true);
	char kid[128];
	kmt_active_kid(&kmt, "rm", kid, sizeof(kid));
	km_store_t *s = store_open();
	km_store_key_t k;
	char err[256];
	assert_int_equal(km_store_key_get(s, kid, &k, err, sizeof(err)), KM_EOK);
	km_store_free(s);
	km_token_t *t = token_open();
	assert_int_equal(km_token_destroy(t, k.cka_id, k.cka_id_len), KM_EOK);
	km_token_free(t);

	int st;
	json_t *j = reconcile(false, &st);
	assert_int_equal(st, 1);
	json_t *e = only_finding(j, "missing");
	assert_true(json_is_true(json_object_get(e, "attention")));
	assert_non_null(strstr(json_string_value(json_object_get(e, "detail")), "--now --force"));
	json_decref(j);
	char still[128];
	kmt_active_kid(&kmt, "rm", still, sizeof(still));
	assert_string_equal(kid, still);   /* flagged, not revoked: its tokens still verify */

	/* The operator's way out: an immediate rotation; the key keeps verifying as retired. */
	km_run_t *r = calloc(1, sizeof(*r));
	kmt_ok(&kmt, r, (const char *[]){ "rotate", KMT_ENV "/rm", "--now", "--force", NULL });
	kmt_ok(&kmt, r, (const char *[]){ "jwks", KMT_ENV "/rm", NULL });
	assert_non_null(strstr(r->out, kid));
	free(r);
	kmt_active_kid(&kmt, "rm", still, sizeof(still));
	assert_string_not_equal(kid, still);
	j = reconcile(false, &st);
	e = only_finding(j, "missing");  /* now as a retired key: reported, left alone */
	assert_string_equal(json_string_value(json_object_get(e, "state")), "retired");
	json_decref(j);
	/* Take it out of the picture for the next tests: remove + destroy (objects gone). */
	r = calloc(1, sizeof(*r));
	kmt_ok(&kmt, r, (const char *[]){ "key", "remove", kid, "--env", KMT_ENV, "--force", NULL });
	kmt_ok(&kmt, r, (const char *[]){ "destroy", kid, "--env", KMT_ENV, NULL });
	free(r);
}

static void test_reconcile_missing_published_is_revoked(void **state)
{
	keyset(KMT_ENV "/rp", true);
	km_run_t *r = calloc(1, sizeof(*r));
	kmt_ok(&kmt, r, (const char *[]){ "rotate", KMT_ENV "/rp", "--json", NULL });
	json_error_t jerr;
	json_t *out = json_loads(r->out, 0, &jerr);
	assert_non_null(out);
	char kid[128];
	const char *k1 = json_string_value(json_object_get(out, "kid"));
	if (k1 == NULL)
		k1 = json_string_value(json_object_get(json_object_get(out, "key"), "kid"));
	assert_non_null(k1);
	snprintf(kid, sizeof(kid), "%s", k1);
	json_decref(out);
	km_store_t *s = store_open();
	km_store_key_t k;
	char err[256];
	assert_int_equal(km_store_key_get(s, kid, &k, err, sizeof(err)), KM_EOK);
	assert_int_equal(k.state, KM_STATE_PUBLISHED);
	km_store_free(s);
	km_token_t *t = token_open();
	assert_int_equal(km_token_destroy(t, k.cka_id, k.cka_id_len), KM_EOK);
	km_token_free(t);

	int st;
	json_t *j = reconcile(false, &st);
	assert_int_equal(st, 0);
	only_finding(j, "revoke-missing");
	json_decref(j);
	s = store_open();
	assert_int_equal(km_store_key_get(s, kid, &k, err, sizeof(err)), KM_EOK);
	assert_int_equal(k.state, KM_STATE_DESTROYED);
	assert_non_null(strstr(k.revoke_reason, "missing from token"));
	km_store_free(s);
	kmt_ok(&kmt, r, (const char *[]){ "jwks", KMT_ENV "/rp", NULL });
	assert_null(strstr(r->out, kid));
	kmt_check_invariants(&kmt, "rp");
	free(r);
}

static void test_reconcile_unknown_object_is_quarantined_never_deleted(void **state)
{
	km_token_t *t = token_open();
	uint8_t id[KM_TOKEN_ID_LEN];
	km_pubkey_t pub;
	assert_int_equal(km_token_generate(t, KM_ALG_ES256, 0, "keymgr:stray", id, &pub), KM_EOK);
	km_token_free(t);
	for (int dry = 1; dry >= 0; dry--) {
		int st;
		json_t *j = reconcile(dry, &st);
		assert_int_equal(st, 1);
		json_t *e = only_finding(j, "quarantine");
		assert_true(json_is_true(json_object_get(e, "attention")));
		assert_false(json_is_true(json_object_get(e, "applied")));
		json_decref(j);
	}
	t = token_open();
	km_pubkey_t again;
	assert_int_equal(km_token_get_public(t, id, sizeof(id), &again), KM_EOK);  /* still there */
	assert_int_equal(km_token_destroy(t, id, sizeof(id)), KM_EOK);
	km_token_free(t);
}

static void test_reconcile_bad_usage(void **state)
{
	km_run_t *r = calloc(1, sizeof(*r));
	kmt_run(&kmt, r, NULL, (const char *[]){ "reconcile", "nosuchenv", NULL });
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "unknown environment"));
	kmt_run(&kmt, r, NULL, (const char *[]){ "reconcile", KMT_ENV, "extra", NULL });
	assert_int_equal(r->status, 2);
	kmt_run(&kmt, r, NULL, (const char *[]){ "reconcile", "--frobnicate", NULL });
	assert_int_equal(r->status, 2);
	free(r);
}

int main(int argc, char **argv)
{
	static char keymgr_abs[PATH_MAX];
	if (argc < 2 || realpath(argv[1], keymgr_abs) == NULL) {
		fprintf(stderr, "usage: %s PATH-TO-KEYMGR\n", argv[0]);
		return 2;
	}
	keymgr_path = keymgr_abs;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reconcile_adopt_dry_run_then_real),
		cmocka_unit_test(test_reconcile_adopt_refuses_unsafe_pair),
		cmocka_unit_test(test_reconcile_adopt_refuses_mismatched_pair),
		cmocka_unit_test(test_reconcile_missing_active_is_flagged_not_changed),
		cmocka_unit_test(test_reconcile_missing_published_is_revoked),
		cmocka_unit_test(test_reconcile_unknown_object_is_quarantined_never_deleted),
		cmocka_unit_test(test_reconcile_bad_usage),
	};
	return cmocka_run_group_tests_name("reconcile", tests, group_setup, group_teardown);
}
