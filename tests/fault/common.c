/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keymgr/common/error.h"
#include "keymgr/store/store.h"
#include "pkcs11/token.h"
#include "tests/fault/common.h"

int kmt_setup(kmt_t *t, const char *keymgr, const char *module)
{
	memset(t, 0, sizeof(*t));
	t->keymgr = keymgr;
	if (km_test_softhsm_create(&t->hsm, "keymgr-crash") != 0)
		return -1;
	t->module = module != NULL ? module : t->hsm.module;
	snprintf(t->config, sizeof(t->config), "%s/keymgr.yaml", t->hsm.dir);
	snprintf(t->store, sizeof(t->store), "%s/crash.db", t->hsm.dir);
	FILE *f = fopen(t->config, "w");
	if (f == NULL)
		return -1;
	fprintf(f, "version: 1\n"
	           "environments:\n"
	           "  " KMT_ENV ":\n"
	           "    token:\n"
	           "      module: %s\n"
	           "      label: keymgr-crash\n"
	           "      pin: %s\n"
	           "    store: %s\n"
	           "    http:\n"
	           "      path: /crash\n",
	        t->module, t->hsm.pin_source, t->store);
	fclose(f);
	chmod(t->config, 0600);
	return 0;
}

void kmt_teardown(kmt_t *t)
{
	km_test_softhsm_destroy(&t->hsm);
}

void kmt_run(kmt_t *t, km_run_t *out, const char *const *extra_env, const char *const *args)
{
	const char *argv[32];
	size_t n = 0;
	argv[n++] = t->keymgr;
	argv[n++] = "-c";
	argv[n++] = t->config;
	for (size_t i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	char *saved[8] = { NULL };
	size_t n_env = 0;
	for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL && n_env < 8; i++, n_env++) {
		char *kv = strdup(extra_env[i]);
		char *eq = strchr(kv, '=');
		assert_non_null(eq);
		*eq = '\0';
		setenv(kv, eq + 1, 1);
		saved[n_env] = kv;
	}
	int rc = km_run(t->keymgr, argv, NULL, out);
	for (size_t i = 0; i < n_env; i++) {
		unsetenv(saved[i]);
		free(saved[i]);
	}
	assert_int_equal(rc, 0);
	/* Whatever happened, no sanitizer may have complained. */
	if (strstr(out->err, "Sanitizer") != NULL || strstr(out->err, "runtime error:") != NULL)
		fail_msg("sanitizer report from keymgr:\n%s", out->err);
}

void kmt_ok(kmt_t *t, km_run_t *out, const char *const *args)
{
	kmt_run(t, out, NULL, args);
	if (out->status != 0)
		fail_msg("keymgr %s %s: exit %d\nstdout: %s\nstderr: %s", args[0],
		         args[1] ? args[1] : "", out->status, out->out, out->err);
}

static km_store_t *open_store(kmt_t *t)
{
	km_store_t *s = NULL;
	char err[512];
	if (km_store_open(t->store, KMT_ENV, &s, err, sizeof(err)) != KM_EOK)
		fail_msg("store: %s", err);
	return s;
}

void kmt_active_kid(kmt_t *t, const char *keyset, char *kid, size_t len)
{
	km_store_t *s = open_store(t);
	km_store_key_t k;
	kid[0] = '\0';
	if (km_store_key_active(s, keyset, &k, NULL, 0) == KM_EOK)
		snprintf(kid, len, "%s", k.kid);
	km_store_free(s);
}

bool kmt_check_invariants(kmt_t *t, const char *keyset)
{
	km_store_t *s = open_store(t);
	char err[512];

	/* Exactly one active key, and no intent left pending. */
	km_store_key_filter_t fa = { .keyset = keyset, .states = KM_STORE_STATE_BIT(KM_STATE_ACTIVE) };
	km_store_key_t *active = NULL;
	size_t n_active = 0;
	assert_int_equal(km_store_keys_query(s, &fa, &active, &n_active, err, sizeof(err)), KM_EOK);
	if (n_active != 1)
		fail_msg("%s: %zu active keys, expected exactly 1", keyset, n_active);
	char active_kid[KM_KID_MAX + 1];
	snprintf(active_kid, sizeof(active_kid), "%s", active[0].kid);
	km_store_keys_free(active);

	km_store_key_filter_t fp = { .pending = KM_STORE_PENDING_ONLY };
	km_store_key_t *pending = NULL;
	size_t n_pending = 0;
	assert_int_equal(km_store_keys_query(s, &fp, &pending, &n_pending, err, sizeof(err)), KM_EOK);
	km_store_keys_free(pending);
	if (n_pending != 0)
		fail_msg("%zu intents still pending after reconciliation", n_pending);

	/* The JWKS (as keymgr renders it) contains the active key. */
	km_run_t *r = calloc(1, sizeof(*r));
	char ref[128];
	snprintf(ref, sizeof(ref), KMT_ENV "/%s", keyset);
	kmt_ok(t, r, (const char *[]){ "jwks", ref, NULL });
	json_error_t jerr;
	json_t *jwks = json_loads(r->out, 0, &jerr);
	assert_non_null(jwks);
	bool found = false;
	json_t *key;
	size_t i;
	json_array_foreach(json_object_get(jwks, "keys"), i, key)
		if (strcmp(json_string_value(json_object_get(key, "kid")), active_kid) == 0)
			found = true;
	json_decref(jwks);
	if (!found)
		fail_msg("the JWKS of %s lacks the active key %s:\n%s", ref, active_kid, r->out);

	/* Every keymgr object in the token is tracked by a live row. */
	km_token_cfg_t cfg = { .module_path = t->hsm.module, .token_label = "keymgr-crash",
	                       .pin_source = t->hsm.pin_source };
	km_token_t *tok = NULL;
	if (km_token_open(&cfg, &tok, err, sizeof(err)) != KM_EOK)
		fail_msg("token: %s", err);
	km_token_key_info_t *objs = NULL;
	size_t n_objs = 0;
	assert_int_equal(km_token_list_keys(tok, &objs, &n_objs), KM_EOK);
	for (i = 0; i < n_objs; i++) {
		if (!objs[i].keymgr_id)
			continue;
		km_store_key_t k;
		if (km_store_key_get_by_cka_id(s, objs[i].id, objs[i].id_len, &k, NULL, 0) != KM_EOK)
			fail_msg("untracked token object (label '%s')", objs[i].label);
		if (k.state == KM_STATE_DESTROYED || k.kid[0] == '\0')
			fail_msg("token object of a %s row (kid '%s') survived reconciliation",
			         k.kid[0] ? "destroyed" : "abandoned", k.kid);
	}
	free(objs);
	km_token_free(tok);
	km_store_free(s);

	/* The audit chain verifies, when this keymgr keeps one. */
	bool audited = false;
	kmt_run(t, r, NULL, (const char *[]){ "audit", "verify", "--help", NULL });
	if (r->status == 0) {
		kmt_run(t, r, NULL, (const char *[]){ "audit", "verify", KMT_ENV, NULL });
		if (r->status != 0)
			fail_msg("audit verify: exit %d\n%s%s", r->status, r->out, r->err);
		audited = true;
	}
	free(r);
	return audited;
}
