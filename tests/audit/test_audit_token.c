/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit key in a token of its own (issue 16, "one PIN unlocks every key"): with
 * environments.ENV.audit.token, the checkpoint-signing key and the token's checkpoint record
 * live in that token, behind its own PIN, and the environment's PIN opens neither. An audit
 * key made earlier in the environment's token is replaced by a new one in the audit token at
 * the next checkpoint (recorded in the log). A refused audit token PIN fails a checkpoint
 * with a message that names the audit token, and `audit verify` still verifies the store,
 * warning that the token's record was not compared. Everything is checked on two real
 * SoftHSM tokens through the token layer and the keymgr executable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"
#include "pkcs11/token_test.h"
#include "tests/audit/fixture.h"

#define AUDIT_LABEL "audit-only"

static audit_fx_t fx;
static const char *keymgr;
static char audit_pin_source[400];

static int group_setup(void **state)
{
	if (audit_fx_create(&fx) != 0 ||
	    km_test_softhsm_add_token(&fx.hsm, AUDIT_LABEL, "7391-audit-only", audit_pin_source,
	                              sizeof(audit_pin_source)) != 0 ||
	    audit_fx_keyset(&fx, "api", 1800000000) != 0)
		return -1;
	*state = &fx;
	return 0;
}

static int group_teardown(void **state)
{
	audit_fx_destroy(&fx);
	return 0;
}

static km_token_t *token_open(const char *label, const char *pin_source)
{
	km_token_cfg_t cfg = { .module_path = fx.hsm.module, .token_label = label,
	                       .pin_source = pin_source };
	km_token_t *t = NULL;
	char err[512] = "";
	if (km_token_open(&cfg, &t, err, sizeof(err)) != KM_EOK)
		fail_msg("token %s: %s", label, err);
	return t;
}

/* Whether the token holds a key pair with this CKA_ID, labelled as the audit key. */
static bool holds_audit_key(km_token_t *t, const km_store_audit_key_t *k)
{
	km_token_key_info_t *keys = NULL;
	size_t n = 0;
	bool found = false;
	assert_int_equal(km_token_list_keys(t, &keys, &n), KM_EOK);
	for (size_t i = 0; i < n; i++)
		if (keys[i].id_len == k->cka_id_len && memcmp(keys[i].id, k->cka_id, n ? k->cka_id_len
		                                                                       : 0) == 0)
			found = keys[i].has_private &&
			        strcmp(keys[i].label, KM_AUDIT_KEY_LABEL_PREFIX AUDIT_FX_ENV) == 0;
	free(keys);
	return found;
}

/* The seq of the token's checkpoint record (0 when none). */
static int64_t record_seq(km_token_t *t)
{
	km_token_data_t *d = NULL;
	size_t n = 0;
	int64_t seq = 0;
	assert_int_equal(km_token_data_get(t, KM_AUDIT_HEAD_APPLICATION, KM_AUDIT_HEAD_LABEL_PREFIX
	                                   AUDIT_FX_ENV, &d, &n), KM_EOK);
	for (size_t i = 0; i < n; i++) {
		json_t *j = json_loadb((const char *)d[i].value, d[i].len, 0, NULL);
		if (json_integer_value(json_object_get(j, "seq")) > seq)
			seq = json_integer_value(json_object_get(j, "seq"));
		json_decref(j);
	}
	free(d);
	return seq;
}

/* Signs a checkpoint at at; checks that the store then has n audit keys and returns the
 * newest (the one that signed). */
static km_store_audit_key_t checkpoint(int64_t at, bool force, size_t n,
                                       km_store_checkpoint_t *cp)
{
	km_store_audit_key_t *keys = NULL, last;
	size_t got = 0;
	char err[1024] = "";
	if (km_audit_checkpoint(fx.env, at, force, cp, err, sizeof(err)) != KM_EOK)
		fail_msg("checkpoint: %s", err);
	assert_int_equal(km_store_audit_keys(km_env_store(fx.env), &keys, &got, err, sizeof(err)),
	                 KM_EOK);
	assert_int_equal(got, n);
	last = keys[n - 1];
	free(keys);
	assert_string_equal(cp->key_kid, last.kid);
	return last;
}

static void run(const char *const *args, audit_run_t *r)
{
	const char *argv[12] = { keymgr };
	size_t n = 1;
	for (; args[n - 1] != NULL && n < 11; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	assert_int_equal(audit_fx_run(&fx, argv, r), 0);
}

static void test_audit_key_moves_to_its_own_token(void **state)
{
	km_store_checkpoint_t cp;
	/* Without audit.token: the audit key is made in the environment's token. */
	km_store_audit_key_t old = checkpoint(1800000010, true, 1, &cp);
	km_env_close_token(fx.env);

	/* With it: the next checkpoint (even one that would not sign an unchanged head) makes a
	 * new audit key there, and signs with it. */
	audit_fx_set_audit_token(&fx, "label: " AUDIT_LABEL, audit_pin_source);
	km_store_audit_key_t now = checkpoint(1800000020, false, 2, &cp);
	assert_true(now.active);
	assert_string_not_equal(now.kid, old.kid);
	assert_string_equal(now.token_label, AUDIT_LABEL);
	km_env_close_token(fx.env);

	km_token_t *env_tok = token_open(fx.hsm.label, fx.hsm.pin_source);
	km_token_t *audit_tok = token_open(AUDIT_LABEL, audit_pin_source);
	assert_true(holds_audit_key(audit_tok, &now));
	assert_false(holds_audit_key(env_tok, &now));
	assert_true(holds_audit_key(env_tok, &old));       /* retired, left where it was */
	assert_int_equal(record_seq(audit_tok), cp.seq);   /* the record is in the audit token */
	km_token_private_attrs_t a;
	assert_int_equal(km_token_get_private_attrs(audit_tok, now.cka_id, now.cka_id_len, &a),
	                 KM_EOK);
	assert_true(a.sensitive);
	assert_false(a.copyable);
	km_token_free(env_tok);
	km_token_free(audit_tok);

	/* The log recorded the move; verification compares the audit token's record. */
	audit_run_t r;
	run((const char *[]){ "audit", "verify", AUDIT_FX_ENV, "--json", NULL }, &r);
	assert_int_equal(r.status, 0);
	json_t *j = json_loads(r.out, 0, NULL);
	json_t *e = json_array_get(j, 0);
	assert_string_equal(json_string_value(json_object_get(e, "token_record")), "compared");
	assert_int_equal(json_integer_value(json_object_get(e, "anchor_seq")), cp.seq);
	assert_string_equal(json_string_value(json_object_get(e, "audit_kid")), now.kid);
	json_decref(j);
	audit_run_free(&r);
	/* A pin of the old audit kid now fails: the auditor records the new one. */
	run((const char *[]){ "audit", "verify", AUDIT_FX_ENV, "--audit-kid", old.kid, NULL }, &r);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.out, "not by the expected"));
	audit_run_free(&r);
}

static void test_refused_audit_pin_names_the_audit_token(void **state)
{
	char path[400], source[420];
	snprintf(path, sizeof(path), "%s/wrong-audit.pin", fx.hsm.dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("0000-not-it\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
	snprintf(source, sizeof(source), "file:%s", path);
	audit_fx_set_audit_token(&fx, "label: " AUDIT_LABEL, source);

	audit_run_t r;
	run((const char *[]){ "audit", "checkpoint", AUDIT_FX_ENV, NULL }, &r);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "audit token:"));
	assert_non_null(strstr(r.err, AUDIT_LABEL));
	audit_run_free(&r);
	/* The refusal is recorded apart from the environment's PIN (pin_refusal.h): that PIN is
	 * not presented again, and the environment's own PIN is not refused. */
	char record[420];
	struct stat st;
	snprintf(record, sizeof(record), "%s.audit.pin-refused", fx.store);
	assert_int_equal(stat(record, &st), 0);
	snprintf(record, sizeof(record), "%s.pin-refused", fx.store);
	assert_int_not_equal(stat(record, &st), 0);
	run((const char *[]){ "audit", "checkpoint", AUDIT_FX_ENV, NULL }, &r);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "audit token:"));
	audit_run_free(&r);
	run((const char *[]){ "keyset", "show", AUDIT_FX_ENV "/api", NULL }, &r);
	assert_int_equal(r.status, 0);
	audit_run_free(&r);
	/* The environment's own PIN does not open the audit token either: it is not asked. */
	run((const char *[]){ "audit", "verify", AUDIT_FX_ENV, NULL }, &r);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "the token's checkpoint record was not compared"));
	audit_run_free(&r);
	audit_fx_set_audit_token(&fx, "label: " AUDIT_LABEL, audit_pin_source);
}

/* The configuration cannot see that a serial names the environment's own token (the wall
 * compares labels with labels); policy check opens both and reports it. */
static void test_audit_token_that_is_the_env_token_is_a_violation(void **state)
{
	km_token_info_t info;
	km_token_t *t = token_open(fx.hsm.label, NULL);
	km_token_get_info(t, &info);
	km_token_free(t);
	char selector[64];
	snprintf(selector, sizeof(selector), "serial: \"%s\"", info.serial);
	audit_fx_set_audit_token(&fx, selector, fx.hsm.pin_source);
	audit_run_t r;
	run((const char *[]){ "policy", "check", AUDIT_FX_ENV, "--json", NULL }, &r);
	assert_int_equal(r.status, 1);
	json_t *j = json_loads(r.out, 0, NULL);
	json_t *v, *found = NULL;
	size_t i;
	json_array_foreach(json_object_get(j, "violations"), i, v)
		if (strcmp(json_string_value(json_object_get(v, "check")), "shared-token") == 0)
			found = v;
	if (found == NULL)
		fail_msg("no shared-token violation: %s", r.out);
	assert_non_null(strstr(json_string_value(json_object_get(found, "message")),
	                       "its audit token is its own token"));
	json_decref(j);
	audit_run_free(&r);
	audit_fx_set_audit_token(&fx, "label: " AUDIT_LABEL, audit_pin_source);
}

int main(int argc, char **argv)
{
	if ((keymgr = audit_fx_args(argc, argv)) == NULL)
		return 2;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_audit_key_moves_to_its_own_token),
		cmocka_unit_test(test_refused_audit_pin_names_the_audit_token),
		cmocka_unit_test(test_audit_token_that_is_the_env_token_is_a_violation),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
